//! What each command does to the PostgreSQL tables, and how it changes the counts once
//! committed. Each statement is a primary-key write or an index seek with a limit.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::super::command::{Command, Output};
use super::super::counts::Change;
use super::super::managed::{ManagedWrite, SyncOutcome};
use super::super::rejections::{v7_floor, RejectionWrite};
use super::super::{EntryState, OutboxEntry, RememberedOutcome};

type PgResult<T> = Result<T, tokio_postgres::Error>;

pub const COLUMNS: &str = "id, route, deployment, parameters, tags, name, idempotency_key, attempts, created_at, next_attempt_at, last_error";

/// An entry stored: `$1`…`$11` as in `COLUMNS`, queued.
pub(crate) const INSERT_SQL: &str = "INSERT INTO outbox (id, route, deployment, parameters, tags, name, idempotency_key, state, attempts, created_at, next_attempt_at, last_error)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, $11)";
/// A delivered entry leaves the outbox (a primary-key delete).
pub(crate) const DELIVERED_SQL: &str =
    "DELETE FROM outbox WHERE id = $1 RETURNING route, state, deployment, attempts, created_at";

async fn exec(tx: &Transaction<'_>, sql: &str, args: &[&(dyn ToSql + Sync)]) -> PgResult<u64> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(&stmt, args).await
}

async fn one(
    tx: &Transaction<'_>,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> PgResult<Option<Row>> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.query_opt(&stmt, args).await
}

/// Runs one command of a group inside the group's transaction.
pub async fn run(tx: &Transaction<'_>, cmd: &Command) -> PgResult<(Output, Option<Change>)> {
    Ok(match cmd {
        Command::Enqueue(e, _) => {
            let parameters = serde_json::to_string(&e.parameters).unwrap_or_else(|_| "{}".into());
            let tags = serde_json::to_string(&e.tags).unwrap_or_else(|_| "[]".into());
            let attempts = i32::try_from(e.attempts).unwrap_or(i32::MAX);
            exec(
                tx,
                INSERT_SQL,
                &[
                    &e.id,
                    &e.route,
                    &e.deployment,
                    &parameters,
                    &tags,
                    &e.name,
                    &e.idempotency_key,
                    &attempts,
                    &e.created_at,
                    &e.next_attempt_at,
                    &e.last_error,
                ],
            )
            .await?;
            (Output::Unit, Some(Change::Queued(e.route.clone())))
        }
        Command::Delivered(id, run, _) => {
            let gone = one(tx, DELIVERED_SQL, &[id]).await?;
            let Some(gone) = gone else {
                return Ok((Output::Unit, None));
            };
            let (route, state): (String, String) = (gone.get(0), gone.get(1));
            let (deployment, attempts, created_at): (String, i32, i64) =
                (gone.get(2), gone.get(3), gone.get(4));
            exec(
                tx,
                "INSERT INTO delivered (id, route, deployment, flow_run_id, attempts, created_at, delivered_at)
                 VALUES ($1, $2, $3, $4, $5 + 1, $6, extract(epoch FROM now())::bigint)
                 ON CONFLICT (id) DO UPDATE SET flow_run_id = EXCLUDED.flow_run_id, attempts = EXCLUDED.attempts, delivered_at = EXCLUDED.delivered_at",
                &[id, &route, &deployment, run, &attempts, &created_at],
            )
            .await?;
            let change = (state == EntryState::Queued.as_str()).then_some(Change::Settled(route));
            (Output::Unit, change)
        }
        Command::Reschedule(id, next, error, _) => {
            exec(
                tx,
                // Deferred to later: the claim is given up, so any replica takes the entry when it
                // is due again. Still due now (the pace waits, not the entry): kept.
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3,
                    claimed_by = CASE WHEN next_attempt_at = $2 THEN claimed_by END,
                    claimed_until = CASE WHEN next_attempt_at = $2 THEN claimed_until ELSE 0 END
                 WHERE id = $1",
                &[id, next, error],
            )
            .await?;
            (Output::Unit, None)
        }
        Command::Dead(id, error, _) => {
            let route = one(
                tx,
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = $2, claimed_by = NULL, claimed_until = 0 WHERE id = $1 AND state = 'queued' RETURNING route",
                &[id, error],
            )
            .await?
            .map(|r| r.get::<_, String>(0));
            (Output::Unit, route.map(Change::Died))
        }
        Command::Requeue(id, now, _) => {
            let route = one(
                tx,
                "UPDATE outbox SET state = 'queued', next_attempt_at = $2, created_at = $2, claimed_by = NULL, claimed_until = 0 WHERE id = $1 AND state = 'dead' RETURNING route",
                &[id, now],
            )
            .await?
            .map(|r| r.get::<_, String>(0));
            (Output::Flag(route.is_some()), route.map(Change::Revived))
        }
        Command::Remember(route, delivery, outcome, _) => {
            let (kind, id) = match outcome {
                RememberedOutcome::Run(id) => ("run", id),
                RememberedOutcome::Queued(id) => ("queued", id),
            };
            exec(
                tx,
                "INSERT INTO deliveries (route, delivery_id, kind, id, created_at)
                 VALUES ($1, $2, $3, $4, extract(epoch FROM now())::bigint) ON CONFLICT DO NOTHING",
                &[route, delivery, &kind, id],
            )
            .await?;
            (Output::Unit, None)
        }
        Command::Flush(_) => (Output::Unit, None),
        Command::Managed(w, _) => (Output::Generation(managed(tx, w).await?), None),
        Command::Rejection(w, _) => (Output::Count(rejection(tx, w).await?), None),
        Command::Discard(id, reason, _) => {
            let found = one(
                tx,
                "UPDATE outbox o SET state = 'discarded', last_error = $2, claimed_by = NULL, claimed_until = 0
                 FROM (SELECT id, state FROM outbox WHERE id = $1 AND state IN ('queued', 'dead') FOR UPDATE) old
                 WHERE o.id = old.id RETURNING o.route, old.state",
                &[id, reason],
            )
            .await?;
            let change = found.map(|r| Change::Discarded {
                route: r.get(0),
                was_dead: r.get::<_, String>(1) == "dead",
            });
            (Output::Flag(change.is_some()), change)
        }
        Command::Prune(before, limit, _) => {
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let ids = exec(
                tx,
                "DELETE FROM deliveries WHERE ctid IN (SELECT ctid FROM deliveries WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                &[before, &limit],
            )
            .await?;
            let runs = exec(
                tx,
                "DELETE FROM delivered WHERE id IN (SELECT id FROM delivered WHERE delivered_at < $1 ORDER BY delivered_at LIMIT $2)",
                &[before, &limit],
            )
            .await?;
            (Output::Count((ids + runs) as usize), None)
        }
        // Reads: answered by the store from its pool, never sent to the writer.
        Command::Due(..) | Command::Oldest(_) | Command::List(..) => (Output::Unit, None),
    })
}

async fn rejection(tx: &Transaction<'_>, w: &RejectionWrite) -> PgResult<usize> {
    let n = match w {
        RejectionWrite::Insert(r) => {
            let count = i64::try_from(r.count).unwrap_or(i64::MAX);
            let status = i32::from(r.status);
            let field_errors = r.field_errors.as_ref().map(|v| v.to_string());
            let headers = serde_json::to_string(&r.headers).unwrap_or_else(|_| "[]".into());
            let body_size = i64::try_from(r.body_size).unwrap_or(i64::MAX);
            exec(
                tx,
                "INSERT INTO rejections (id, first_ms, last_ms, count, route, client, status, code, detail, field_errors, request_id, headers, body, body_size, authenticated, delivery_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING",
                &[&r.id, &r.first_ms, &r.last_ms, &count, &r.route, &r.client, &status, &r.code, &r.detail, &field_errors, &r.request_id, &headers, &r.body, &body_size, &r.authenticated, &r.delivery_id],
            )
            .await?
        }
        RejectionWrite::AddCount { id, n, last_ms } => {
            let n = i64::try_from(*n).unwrap_or(i64::MAX);
            exec(
                tx,
                "UPDATE rejections SET count = count + $2, last_ms = GREATEST(last_ms, $3) WHERE id = $1",
                &[id, &n, last_ms],
            )
            .await?
        }
        RejectionWrite::Replayed { id, at_ms, outcome } => {
            exec(
                tx,
                "UPDATE rejections SET replayed_ms = $2, replay_outcome = $3 WHERE id = $1",
                &[id, at_ms, outcome],
            )
            .await?
        }
        RejectionWrite::Prune { before_ms, keep } => {
            let keep = i64::try_from(*keep).unwrap_or(i64::MAX);
            exec(tx, "DELETE FROM rejections WHERE id < $1", &[&v7_floor(*before_ms)]).await?
                + exec(
                    tx,
                    "DELETE FROM rejections WHERE id <= (SELECT id FROM rejections ORDER BY id DESC LIMIT 1 OFFSET $1)",
                    &[&keep],
                )
                .await?
        }
    };
    Ok(n as usize)
}

async fn managed(tx: &Transaction<'_>, w: &ManagedWrite) -> PgResult<i64> {
    let name = match w {
        ManagedWrite::Put { name, spec, now } => {
            exec(
                tx,
                "INSERT INTO managed_deployments AS m (name, spec, deleted, generation, synced_generation, error, prefect_id, updated_at)
                 VALUES ($1, $2, false, 1, 0, NULL, NULL, $3)
                 ON CONFLICT (name) DO UPDATE SET spec = $2, deleted = false, generation = m.generation + 1, error = NULL, updated_at = $3
                 WHERE m.spec <> $2 OR m.deleted",
                &[name, spec, now],
            )
            .await?;
            name
        }
        ManagedWrite::Delete { name, now } => {
            exec(
                tx,
                "UPDATE managed_deployments SET deleted = true, generation = generation + 1, error = NULL, updated_at = $2 WHERE name = $1 AND NOT deleted",
                &[name, now],
            )
            .await?;
            name
        }
        ManagedWrite::Synced {
            name,
            generation,
            outcome,
        } => {
            match outcome {
                SyncOutcome::Applied(id) => {
                    exec(
                        tx,
                        "UPDATE managed_deployments SET synced_generation = $2, error = NULL, prefect_id = $3 WHERE name = $1 AND generation = $2",
                        &[name, generation, id],
                    )
                    .await?
                }
                SyncOutcome::Removed => {
                    exec(
                        tx,
                        "DELETE FROM managed_deployments WHERE name = $1 AND generation = $2 AND deleted",
                        &[name, generation],
                    )
                    .await?
                }
                SyncOutcome::Failed(error) => {
                    exec(
                        tx,
                        "UPDATE managed_deployments SET error = $3 WHERE name = $1 AND generation = $2",
                        &[name, generation, error],
                    )
                    .await?
                }
            };
            name
        }
    };
    Ok(one(
        tx,
        "SELECT generation FROM managed_deployments WHERE name = $1",
        &[name],
    )
    .await?
    .map_or(0, |r| r.get(0)))
}

/// An outbox row read with `COLUMNS`.
pub fn entry(r: &Row) -> Result<OutboxEntry, String> {
    entry_at(r, 0)
}

/// An outbox row whose `COLUMNS` start at `offset` (after others a statement returns first).
pub fn entry_at(r: &Row, offset: usize) -> Result<OutboxEntry, String> {
    let parameters: String = r.get(offset + 3);
    let tags: String = r.get(offset + 4);
    Ok(OutboxEntry {
        id: r.get(offset),
        route: r.get(offset + 1),
        deployment: r.get(offset + 2),
        parameters: serde_json::from_str(&parameters).map_err(|e| format!("parameters: {e}"))?,
        tags: serde_json::from_str(&tags).map_err(|e| format!("tags: {e}"))?,
        name: r.get(offset + 5),
        idempotency_key: r.get(offset + 6),
        attempts: u32::try_from(r.get::<_, i32>(offset + 7)).unwrap_or(0),
        created_at: r.get(offset + 8),
        next_attempt_at: r.get(offset + 9),
        last_error: r.get(offset + 10),
    })
}
