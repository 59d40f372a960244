//! What each command does to the file, and how it changes the in-memory counts once committed.
//! Each statement is an index seek (or a primary-key write) with a limit.

use rusqlite::{params, OptionalExtension, Transaction};

use super::super::command::{Command, Output};
use super::super::counts::Change;
use super::super::{EntryState, OutboxEntry, RememberedOutcome, StoreError};

/// What a command needs from its group.
pub struct Context<'a> {
    /// The store is at its size cap: enqueues are refused.
    pub full: bool,
    /// Routes with entries queued (for `Due`).
    pub routes: &'a [String],
}

const COLUMNS: &str = "id, route, deployment, parameters, tags, name, idempotency_key, attempts, created_at, next_attempt_at, last_error";

pub fn run(
    tx: &Transaction<'_>,
    cmd: &Command,
    cx: &Context<'_>,
) -> rusqlite::Result<(Output, Option<Change>)> {
    Ok(match cmd {
        Command::Enqueue(entry, _) => {
            if cx.full {
                return Err(full());
            }
            insert(tx, entry)?;
            (Output::Unit, Some(Change::Queued(entry.route.clone())))
        }
        Command::Due(now, per_route, _) => {
            let mut due = Vec::new();
            for route in cx.routes {
                due.extend(select(
                    tx,
                    &format!("SELECT {COLUMNS} FROM outbox INDEXED BY outbox_route_next WHERE state = 'queued' AND route = ?1 AND next_attempt_at <= ?2 ORDER BY next_attempt_at, created_at, rowid LIMIT ?3"),
                    params![route, now, *per_route as i64],
                )?);
            }
            (Output::Entries(due), None)
        }
        Command::Delivered(id, run, _) => {
            // The run exists in Prefect: the entry has served its purpose and frees its space.
            tracing::debug!(delivery_id = %id, flow_run_id = %run, "outbox entry delivered");
            let gone: Option<(String, String, String, i64, i64)> = tx
                .prepare_cached(
                    "DELETE FROM outbox WHERE id = ?1 RETURNING route, state, deployment, attempts, created_at",
                )?
                .query_row(params![id.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            // What the delivery became stays readable (delivery status) for a while.
            if let Some((route, _, deployment, attempts, created_at)) = &gone {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO delivered (id, route, deployment, flow_run_id, attempts, created_at, delivered_at) VALUES (?1, ?2, ?3, ?4, ?5 + 1, ?6, unixepoch())",
                )?
                .execute(params![id.to_string(), route, deployment, run.to_string(), attempts, created_at])?;
            }
            let change = gone.and_then(|(route, state, ..)| {
                (state == EntryState::Queued.as_str()).then_some(Change::Settled(route))
            });
            (Output::Unit, change)
        }
        Command::Reschedule(id, next, error, _) => {
            tx.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
            )?
            .execute(params![id.to_string(), next, error])?;
            (Output::Unit, None)
        }
        Command::Dead(id, error, _) => {
            let route: Option<String> = tx
                .prepare_cached(
                    "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND state = 'queued' RETURNING route",
                )?
                .query_row(params![id.to_string(), error], |r| r.get(0))
                .optional()?;
            (Output::Unit, route.map(Change::Died))
        }
        Command::Oldest(_) => (
            Output::Oldest(
                tx.prepare_cached("SELECT MIN(created_at) FROM outbox WHERE state = 'queued'")?
                    .query_row([], |r| r.get(0))?,
            ),
            None,
        ),
        Command::List(state, limit, _) => (
            Output::Entries(select(
                tx,
                &format!("SELECT {COLUMNS} FROM outbox WHERE state = ?1 ORDER BY created_at, rowid LIMIT ?2"),
                params![state.as_str(), *limit as i64],
            )?),
            None,
        ),
        Command::Requeue(id, now, _) => {
            let route: Option<String> = tx
                .prepare_cached(
                    "UPDATE outbox SET state = 'queued', next_attempt_at = ?2, created_at = ?2 WHERE id = ?1 AND state = 'dead' RETURNING route",
                )?
                .query_row(params![id.to_string(), now], |r| r.get(0))
                .optional()?;
            (Output::Flag(route.is_some()), route.map(Change::Revived))
        }
        Command::Remember(route, delivery, outcome, _) => {
            let (kind, id) = match outcome {
                RememberedOutcome::Run(id) => ("run", id),
                RememberedOutcome::Queued(id) => ("queued", id),
            };
            tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (route, delivery_id, kind, id, created_at) VALUES (?1, ?2, ?3, ?4, unixepoch())",
            )?
            .execute(params![route, delivery, kind, id.to_string()])?;
            (Output::Unit, None)
        }
        Command::Flush(_) => (Output::Unit, None),
        Command::Managed(w, _) => (Output::Generation(super::managed::write(tx, w)?), None),
        Command::Rejection(w, _) => (Output::Count(super::rejections::write(tx, w)?), None),
        Command::Discard(id, reason, _) => {
            let found: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT route, state FROM outbox WHERE id = ?1 AND state IN ('queued', 'dead')",
                )?
                .query_row(params![id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if found.is_some() {
                tx.prepare_cached(
                    "UPDATE outbox SET state = 'discarded', last_error = ?2 WHERE id = ?1",
                )?
                .execute(params![id.to_string(), reason])?;
            }
            (
                Output::Flag(found.is_some()),
                found.map(|(route, state)| Change::Discarded {
                    route,
                    was_dead: state == "dead",
                }),
            )
        }
        Command::Prune(before, limit, _) => (
            Output::Count(
                tx.prepare_cached(
                    "DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
                )?
                .execute(params![before, *limit as i64])?
                    + tx
                        .prepare_cached(
                            "DELETE FROM delivered WHERE rowid IN (SELECT rowid FROM delivered WHERE delivered_at < ?1 ORDER BY delivered_at LIMIT ?2)",
                        )?
                        .execute(params![before, *limit as i64])?,
            ),
            None,
        ),
    })
}

fn full() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        Some("the store has reached store.max_size_mb".into()),
    )
}

pub fn is_full(result: &rusqlite::Result<(Output, Option<Change>)>) -> bool {
    matches!(result, Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
}

pub fn to_store_error(e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full,
        _ => StoreError::Failed(e.to_string()),
    }
}

fn insert(tx: &Transaction<'_>, e: &OutboxEntry) -> rusqlite::Result<()> {
    let parameters = serde_json::to_string(&e.parameters).unwrap_or_else(|_| "{}".into());
    let tags = serde_json::to_string(&e.tags).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "INSERT INTO outbox (id, route, deployment, parameters, tags, name, idempotency_key, state, attempts, created_at, next_attempt_at, last_error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        e.id.to_string(),
        e.route,
        e.deployment,
        parameters,
        tags,
        e.name,
        e.idempotency_key,
        e.attempts,
        e.created_at,
        e.next_attempt_at,
        e.last_error
    ])
    .map(drop)
}

fn select(
    tx: &Transaction<'_>,
    sql: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<OutboxEntry>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map(args, |r| {
        let parse_err = |i: usize, e: String| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        };
        let id: String = r.get(0)?;
        let parameters: String = r.get(3)?;
        let tags: String = r.get(4)?;
        Ok(OutboxEntry {
            id: uuid::Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
            route: r.get(1)?,
            deployment: r.get(2)?,
            parameters: serde_json::from_str(&parameters)
                .map_err(|e| parse_err(3, e.to_string()))?,
            tags: serde_json::from_str(&tags).map_err(|e| parse_err(4, e.to_string()))?,
            name: r.get(5)?,
            idempotency_key: r.get(6)?,
            attempts: r.get(7)?,
            created_at: r.get(8)?,
            next_attempt_at: r.get(9)?,
            last_error: r.get(10)?,
        })
    })?;
    rows.collect()
}

pub fn recall(
    conn: &rusqlite::Connection,
    route: &str,
    delivery: &str,
    since: i64,
) -> rusqlite::Result<Option<RememberedOutcome>> {
    conn.prepare_cached(
        "SELECT kind, id FROM deliveries WHERE route = ?1 AND delivery_id = ?2 AND created_at >= ?3",
    )?
    .query_row(params![route, delivery, since], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })
    .optional()
    .map(|found| {
        found.and_then(|(kind, id)| {
            let id = uuid::Uuid::parse_str(&id).ok()?;
            Some(if kind == "run" {
                RememberedOutcome::Run(id)
            } else {
                RememberedOutcome::Queued(id)
            })
        })
    })
}

/// Every stored delivery id with its route and creation time (once, at open).
pub fn each_delivery(
    conn: &rusqlite::Connection,
    mut each: impl FnMut(&str, &str, i64),
) -> rusqlite::Result<()> {
    let mut statement = conn.prepare("SELECT route, delivery_id, created_at FROM deliveries")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        each(
            row.get_ref(0)?.as_str()?,
            row.get_ref(1)?.as_str()?,
            row.get(2)?,
        );
    }
    Ok(())
}

/// Where a delivery id stands: in the outbox (queued, dead, discarded) or delivered.
pub fn delivery(
    conn: &rusqlite::Connection,
    id: uuid::Uuid,
) -> rusqlite::Result<Option<super::super::Delivery>> {
    use super::super::Delivery;
    let text = id.to_string();
    let waiting = conn
        .prepare_cached(
            "SELECT state, route, deployment, attempts, created_at, next_attempt_at, last_error FROM outbox WHERE id = ?1",
        )?
        .query_row(params![text], |r| {
            Ok(Delivery {
                id,
                state: r.get(0)?,
                route: r.get(1)?,
                deployment: r.get(2)?,
                attempts: r.get::<_, i64>(3)?.max(0) as u32,
                created_at: r.get(4)?,
                next_attempt_at: Some(r.get(5)?),
                last_error: Some(r.get::<_, String>(6)?).filter(|e| !e.is_empty()),
                flow_run_id: None,
                delivered_at: None,
            })
        })
        .optional()?;
    if waiting.is_some() {
        return Ok(waiting);
    }
    conn.prepare_cached(
        "SELECT route, deployment, flow_run_id, attempts, created_at, delivered_at FROM delivered WHERE id = ?1",
    )?
    .query_row(params![text], |r| {
        Ok(Delivery {
            id,
            state: "delivered".into(),
            route: r.get(0)?,
            deployment: r.get(1)?,
            flow_run_id: uuid::Uuid::parse_str(&r.get::<_, String>(2)?).ok(),
            attempts: r.get::<_, i64>(3)?.max(0) as u32,
            created_at: r.get(4)?,
            delivered_at: Some(r.get(5)?),
            next_attempt_at: None,
            last_error: None,
        })
    })
    .optional()
}
