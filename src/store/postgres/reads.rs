//! What the PostgreSQL store answers from its pool, beside the writer: the deliverer's claims,
//! point lookups, ops' lists, and the leases. Each is an index seek with a limit.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

use super::super::rejections::{v7_floor, Rejection, RejectionCount, RejectionQuery};
use super::super::{Delivery, EntryState, ManagedRow, OutboxEntry, RememberedOutcome};
use super::commands::{entry, entry_at, COLUMNS};

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// Claims up to `per_route` due entries of each route with entries queued for `me` until
/// `lease_until`: entries nobody holds, whose lease ran out, or already this replica's (their
/// lease is renewed). Rows another replica is claiming at this moment are skipped, not waited
/// for. Each route's entries in the order they became due.
pub async fn claim_due(
    conn: &Object,
    now: i64,
    per_route: usize,
    me: uuid::Uuid,
    lease_until: i64,
) -> PgResult<Vec<Result<OutboxEntry, String>>> {
    let routes = conn
        .prepare_cached("SELECT route FROM outbox_counts WHERE queued > 0 ORDER BY route")
        .await?;
    let routes: Vec<String> = conn
        .query(&routes, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let claim = conn.prepare_cached(&claim_sql()).await?;
    let limit = i64::try_from(per_route).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for route in &routes {
        let mut rows = conn
            .query(&claim, &[route, &now, &limit, &me, &lease_until])
            .await?;
        rows.sort_by_key(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)));
        out.extend(rows.iter().map(|r| entry_at(r, 3)));
    }
    Ok(out)
}

/// The claim of one route's due entries: `$1` route, `$2` now, `$3` limit, `$4` this
/// replica, `$5` the lease's end. An index seek on `outbox_route_next` with a limit; each
/// claimed row is updated where the seek locked it (its ctid, stable while locked).
pub(crate) fn claim_sql() -> String {
    format!(
        "UPDATE outbox o SET claimed_by = $4, claimed_until = $5
         FROM (SELECT ctid FROM outbox
               WHERE state = 'queued' AND route = $1 AND next_attempt_at <= $2
                 AND (claimed_until < $2 OR claimed_by = $4)
               ORDER BY next_attempt_at, created_at, seq LIMIT $3
               FOR UPDATE SKIP LOCKED) due
         WHERE o.ctid = due.ctid
         RETURNING o.next_attempt_at, o.created_at, o.seq, {}",
        prefixed(COLUMNS)
    )
}

fn prefixed(columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("o.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn oldest(conn: &Object) -> PgResult<Option<i64>> {
    let stmt = conn
        .prepare_cached("SELECT min(created_at) FROM outbox WHERE state = 'queued'")
        .await?;
    Ok(conn.query_one(&stmt, &[]).await?.get(0))
}

pub async fn list(
    conn: &Object,
    state: EntryState,
    limit: usize,
) -> PgResult<Vec<Result<OutboxEntry, String>>> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE state = $1 ORDER BY created_at, seq LIMIT $2"
        ))
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(conn
        .query(&stmt, &[&state.as_str(), &limit])
        .await?
        .iter()
        .map(entry)
        .collect())
}

pub async fn delivery(conn: &Object, id: uuid::Uuid) -> PgResult<Option<Delivery>> {
    let waiting = conn
        .prepare_cached(
            "SELECT state, route, deployment, attempts, created_at, next_attempt_at, last_error FROM outbox WHERE id = $1",
        )
        .await?;
    if let Some(r) = conn.query_opt(&waiting, &[&id]).await? {
        return Ok(Some(Delivery {
            id,
            state: r.get(0),
            route: r.get(1),
            deployment: r.get(2),
            attempts: u32::try_from(r.get::<_, i32>(3)).unwrap_or(0),
            created_at: r.get(4),
            next_attempt_at: Some(r.get(5)),
            last_error: Some(r.get::<_, String>(6)).filter(|e| !e.is_empty()),
            flow_run_id: None,
            delivered_at: None,
        }));
    }
    let delivered = conn
        .prepare_cached(
            "SELECT route, deployment, flow_run_id, attempts, created_at, delivered_at FROM delivered WHERE id = $1",
        )
        .await?;
    Ok(conn.query_opt(&delivered, &[&id]).await?.map(|r| Delivery {
        id,
        state: "delivered".into(),
        route: r.get(0),
        deployment: r.get(1),
        flow_run_id: Some(r.get(2)),
        attempts: u32::try_from(r.get::<_, i32>(3)).unwrap_or(0),
        created_at: r.get(4),
        delivered_at: Some(r.get(5)),
        next_attempt_at: None,
        last_error: None,
    }))
}

pub async fn recall(
    conn: &Object,
    route: &str,
    delivery: &str,
    since: i64,
) -> PgResult<Option<RememberedOutcome>> {
    let stmt = conn
        .prepare_cached(
            "SELECT kind, id FROM deliveries WHERE route = $1 AND delivery_id = $2 AND created_at >= $3",
        )
        .await?;
    Ok(conn
        .query_opt(&stmt, &[&route, &delivery, &since])
        .await?
        .map(|r| {
            let id: uuid::Uuid = r.get(1);
            if r.get::<_, String>(0) == "run" {
                RememberedOutcome::Run(id)
            } else {
                RememberedOutcome::Queued(id)
            }
        }))
}

const SUMMARY: &str = "id, first_ms, last_ms, count, route, client, status, code, detail, field_errors, request_id, NULL::text, NULL::bytea, body_size, authenticated, replayed_ms, replay_outcome, delivery_id, (body IS NOT NULL AND length(body) = body_size)";
const FULL: &str = "id, first_ms, last_ms, count, route, client, status, code, detail, field_errors, request_id, headers, body, body_size, authenticated, replayed_ms, replay_outcome, delivery_id, (body IS NOT NULL AND length(body) = body_size)";

pub async fn rejections(conn: &Object, q: &RejectionQuery) -> PgResult<Vec<Rejection>> {
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();
    let mut bind = |clause: &str, value: Box<dyn ToSql + Sync + Send>| {
        args.push(value);
        clauses.push(format!("{clause} ${}", args.len()));
    };
    for (column, value) in [
        ("route", &q.route),
        ("code", &q.code),
        ("client", &q.client),
    ] {
        if let Some(v) = value {
            bind(&format!("{column} ="), Box::new(v.clone()));
        }
    }
    if let Some(from) = q.from_ms {
        bind("id >=", Box::new(v7_floor(from)));
    }
    if let Some(to) = q.to_ms {
        bind("id <", Box::new(v7_floor(to)));
    }
    if let Some(before) = q.before {
        bind("id <", Box::new(before));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    args.push(Box::new(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {SUMMARY} FROM rejections {filter} ORDER BY id DESC LIMIT ${}",
        args.len()
    );
    let stmt = conn.prepare_cached(&sql).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    Ok(conn
        .query(&stmt, &refs)
        .await?
        .iter()
        .map(rejection)
        .collect())
}

pub async fn rejection_by_id(conn: &Object, id: uuid::Uuid) -> PgResult<Option<Rejection>> {
    let stmt = conn
        .prepare_cached(&format!("SELECT {FULL} FROM rejections WHERE id = $1"))
        .await?;
    Ok(conn.query_opt(&stmt, &[&id]).await?.as_ref().map(rejection))
}

pub async fn rejection_counts(conn: &Object, since_ms: i64) -> PgResult<Vec<RejectionCount>> {
    let stmt = conn
        .prepare_cached(
            "SELECT route, code, SUM(count)::bigint FROM rejections WHERE id >= $1 GROUP BY route, code ORDER BY 3 DESC",
        )
        .await?;
    Ok(conn
        .query(&stmt, &[&v7_floor(since_ms)])
        .await?
        .iter()
        .map(|r| RejectionCount {
            route: r.get(0),
            code: r.get(1),
            count: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
        })
        .collect())
}

fn rejection(r: &tokio_postgres::Row) -> Rejection {
    let headers: Option<String> = r.get(11);
    let field_errors: Option<String> = r.get(9);
    let replayed_ms: Option<i64> = r.get(15);
    let replay_outcome: Option<String> = r.get(16);
    Rejection {
        id: r.get(0),
        first_ms: r.get(1),
        last_ms: r.get(2),
        count: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
        route: r.get(4),
        client: r.get(5),
        status: u16::try_from(r.get::<_, i32>(6)).unwrap_or(0),
        code: r.get(7),
        detail: r.get(8),
        field_errors: field_errors.and_then(|s| serde_json::from_str(&s).ok()),
        request_id: r.get(10),
        headers: headers
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        body: r.get(12),
        body_size: u64::try_from(r.get::<_, i64>(13)).unwrap_or(0),
        authenticated: r.get(14),
        replayed: replayed_ms.zip(replay_outcome),
        delivery_id: r.get(17),
        body_kept: r.get(18),
    }
}

const MANAGED: &str =
    "name, spec, deleted, generation, synced_generation, error, prefect_id, updated_at";

fn managed_row(r: &tokio_postgres::Row) -> ManagedRow {
    ManagedRow {
        name: r.get(0),
        spec: r.get(1),
        deleted: r.get(2),
        generation: r.get(3),
        synced_generation: r.get(4),
        error: r.get(5),
        prefect_id: r.get(6),
        updated_at: r.get(7),
    }
}

pub async fn managed(conn: &Object, name: &str) -> PgResult<Option<ManagedRow>> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {MANAGED} FROM managed_deployments WHERE name = $1"
        ))
        .await?;
    Ok(conn
        .query_opt(&stmt, &[&name])
        .await?
        .as_ref()
        .map(managed_row))
}

pub async fn all_managed(conn: &Object) -> PgResult<Vec<ManagedRow>> {
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {MANAGED} FROM managed_deployments ORDER BY name"
        ))
        .await?;
    Ok(conn
        .query(&stmt, &[])
        .await?
        .iter()
        .map(managed_row)
        .collect())
}

/// Takes or renews the lease `name` for `me` for `ttl_ms` (the database's clock): true when
/// `me` holds it now.
pub async fn lease(conn: &Object, name: &str, me: uuid::Uuid, ttl_ms: i64) -> PgResult<bool> {
    let stmt = conn
        .prepare_cached(
            "INSERT INTO leases AS l (name, holder, until_ms)
             VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $3)
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until_ms = EXCLUDED.until_ms
             WHERE l.holder = EXCLUDED.holder OR l.until_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint
             RETURNING holder",
        )
        .await?;
    Ok(conn
        .query_opt(&stmt, &[&name, &me, &ttl_ms])
        .await?
        .is_some())
}

/// Gives back `me`'s claims on `ids` (those it still holds).
pub async fn release(conn: &Object, ids: &[uuid::Uuid], me: uuid::Uuid) -> PgResult<u64> {
    let stmt = conn
        .prepare_cached(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = 0 WHERE id = ANY($1) AND claimed_by = $2",
        )
        .await?;
    conn.execute(&stmt, &[&ids, &me]).await
}

/// Replicas whose heartbeat lease is current.
pub async fn live_replicas(conn: &Object) -> PgResult<u64> {
    let stmt = conn
        .prepare_cached(
            "SELECT count(*) FROM leases WHERE name LIKE 'replica:%' AND until_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        )
        .await?;
    Ok(u64::try_from(conn.query_one(&stmt, &[]).await?.get::<_, i64>(0)).unwrap_or(0))
}

/// Per-route counts as the table holds them.
pub async fn counts(conn: &Object) -> PgResult<Vec<(String, i64, i64)>> {
    let stmt = conn
        .prepare_cached("SELECT route, queued, dead FROM outbox_counts")
        .await?;
    Ok(conn
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
