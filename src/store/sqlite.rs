//! SQLite store: one connection owned by one writer thread. Commands queue on a channel; the
//! thread takes every command waiting, runs them in one transaction and commits once (group
//! commit), so a burst of queued requests costs one fsync, not one each.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::oneshot;

use super::{EntryState, OutboxEntry, OutboxStats, RememberedOutcome, Store, StoreError};

/// Most commands committed together.
const MAX_GROUP: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Enqueue(Box<OutboxEntry>, Reply<()>),
    Due(i64, usize, Reply<Vec<OutboxEntry>>),
    Delivered(uuid::Uuid, uuid::Uuid, Reply<()>),
    Reschedule(uuid::Uuid, i64, String, Reply<()>),
    Dead(uuid::Uuid, String, Reply<()>),
    Stats(i64, Reply<OutboxStats>),
    QueuedByRoute(Reply<Vec<(String, u64)>>),
    WakeAll(i64, Reply<()>),
    List(EntryState, usize, Reply<Vec<OutboxEntry>>),
    Requeue(uuid::Uuid, i64, Reply<bool>),
    Remember(String, String, RememberedOutcome, Reply<()>),
    Recall(String, String, Reply<Option<RememberedOutcome>>),
}

pub struct SqliteStore {
    commands: mpsc::SyncSender<Command>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`. `max_size_mb` caps the file: when it is
    /// full, enqueue fails (and the sender gets 503) rather than the disk filling up.
    pub fn open(path: &Path, max_size_mb: u64) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let conn = Connection::open(path).map_err(open_error)?;
        configure(&conn, max_size_mb).map_err(open_error)?;
        let soft_limit = soft_limit_pages(&conn, max_size_mb).map_err(open_error)?;
        let (commands, receiver) = mpsc::sync_channel(8192);
        std::thread::Builder::new()
            .name("flowgate-store".into())
            .spawn(move || writer(conn, receiver, soft_limit))
            .map_err(|e| open_error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        Ok(Self { commands })
    }

    fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.commands.send(make(tx));
        async move {
            sent.map_err(|_| StoreError::Stopped)?;
            rx.await.map_err(|_| StoreError::Stopped)?
        }
        .boxed()
    }
}

fn configure(conn: &Connection, max_size_mb: u64) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (fsync) before it returns; an acknowledged entry survives kill -9.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // The size cap is enforced on enqueue (soft); the hard cap leaves headroom so entries can
    // always be marked delivered or dead, which is how a full store drains.
    let soft = soft_limit_pages(conn, max_size_mb)?;
    conn.pragma_update(None, "max_page_count", soft + (soft / 10).max(256))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS outbox (
            id TEXT PRIMARY KEY,
            route TEXT NOT NULL,
            deployment TEXT NOT NULL,
            parameters TEXT NOT NULL,
            tags TEXT NOT NULL,
            name TEXT,
            idempotency_key TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            flow_run_id TEXT
         );
         CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_at, created_at);
         CREATE INDEX IF NOT EXISTS outbox_route ON outbox(state, route, created_at);
         CREATE TABLE IF NOT EXISTS deliveries (
            route TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (route, delivery_id)
         );",
    )
}

fn soft_limit_pages(conn: &Connection, max_size_mb: u64) -> rusqlite::Result<i64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages = max_size_mb.saturating_mul(1024 * 1024) / page_size.max(512) as u64;
    Ok(i64::try_from(pages).unwrap_or(i64::MAX / 2).max(16))
}

fn writer(mut conn: Connection, receiver: mpsc::Receiver<Command>, soft_limit: i64) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(cmd) => group.push(cmd),
                Err(_) => break,
            }
        }
        run_group(&mut conn, group, soft_limit);
    }
}

/// Runs every command in one transaction; each reply is sent only after the commit. If the
/// store is full, SQLite may roll the whole transaction back: then the group is rolled back,
/// the commands that hit the limit are refused, and the others run again one by one.
fn run_group(conn: &mut Connection, group: Vec<Command>, soft_limit: i64) {
    let outcome = conn.transaction().and_then(|tx| {
        let results: Vec<rusqlite::Result<Output>> =
            group.iter().map(|cmd| run(&tx, cmd, soft_limit)).collect();
        if results.iter().any(is_full) {
            drop(tx);
            return Ok(Err(results));
        }
        tx.commit().map(|()| Ok(results))
    });
    match outcome {
        Ok(Ok(results)) => {
            for (cmd, result) in group.into_iter().zip(results) {
                reply(cmd, result.map_err(|e| to_store_error(&e)));
            }
        }
        Ok(Err(results)) => {
            for (cmd, result) in group.into_iter().zip(results) {
                if is_full(&result) {
                    reply(cmd, Err(StoreError::Full));
                } else {
                    let alone = conn.transaction().and_then(|tx| {
                        let r = run(&tx, &cmd, soft_limit);
                        tx.commit().map(|()| r)
                    });
                    reply(cmd, alone.and_then(|r| r).map_err(|e| to_store_error(&e)));
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            for cmd in group {
                reply(cmd, Err(StoreError::Corrupt(message.clone())));
            }
        }
    }
}

fn is_full(result: &rusqlite::Result<Output>) -> bool {
    matches!(result, Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
}

fn to_store_error(e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full,
        _ => StoreError::Corrupt(e.to_string()),
    }
}

/// What a command produced.
enum Output {
    Unit,
    Entries(Vec<OutboxEntry>),
    Stats(OutboxStats),
    Counts(Vec<(String, u64)>),
    Recalled(Option<RememberedOutcome>),
    Flag(bool),
}

fn run(tx: &Transaction<'_>, cmd: &Command, soft_limit: i64) -> rusqlite::Result<Output> {
    Ok(match cmd {
        Command::Enqueue(entry, _) => {
            let used: i64 = tx.query_row(
                "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())",
                [],
                |r| r.get(0),
            )?;
            if used >= soft_limit {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    Some("the store has reached store.max_size_mb".into()),
                ));
            }
            insert(tx, entry).map(|()| Output::Unit)?
        }
        Command::Due(now, limit, _) => Output::Entries(due(tx, *now, *limit)?),
        Command::Delivered(id, run, _) => {
            // The run exists in Prefect: the entry has served its purpose and frees its space.
            tracing::debug!(delivery_id = %id, flow_run_id = %run, "outbox entry delivered");
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![id.to_string()])?;
            Output::Unit
        }
        Command::Reschedule(id, next, error, _) => {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id.to_string(), next, error],
            )?;
            Output::Unit
        }
        Command::Dead(id, error, _) => {
            tx.execute(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id.to_string(), error],
            )?;
            Output::Unit
        }
        Command::Stats(now, _) => Output::Stats(stats(tx, *now)?),
        Command::QueuedByRoute(_) => Output::Counts(queued_by_route(tx)?),
        Command::WakeAll(now, _) => {
            tx.execute(
                "UPDATE outbox SET next_attempt_at = ?1 WHERE state = 'queued' AND next_attempt_at > ?1",
                params![now],
            )?;
            Output::Unit
        }
        Command::Remember(route, delivery, outcome, _) => {
            let (kind, id) = match outcome {
                RememberedOutcome::Run(id) => ("run", id),
                RememberedOutcome::Queued(id) => ("queued", id),
            };
            tx.execute(
                "INSERT OR IGNORE INTO deliveries (route, delivery_id, kind, id, created_at) VALUES (?1, ?2, ?3, ?4, unixepoch())",
                params![route, delivery, kind, id.to_string()],
            )?;
            Output::Unit
        }
        Command::Recall(route, delivery, _) => Output::Recalled(recall(tx, route, delivery)?),
        Command::List(state, limit, _) => Output::Entries(select(tx, "state = ?1", params![state.as_str(), *limit as i64])?),
        Command::Requeue(id, now, _) => Output::Flag(
            tx.execute(
                "UPDATE outbox SET state = 'queued', next_attempt_at = ?2, created_at = ?2 WHERE id = ?1 AND state = 'dead'",
                params![id.to_string(), now],
            )? == 1,
        ),
    })
}

/// Sends a command's answer; a reply of the wrong shape cannot happen (each command makes one).
fn reply(cmd: Command, result: Result<Output, StoreError>) {
    fn send<T>(
        reply: Reply<T>,
        result: Result<Output, StoreError>,
        pick: impl FnOnce(Output) -> Option<T>,
    ) {
        let value = result.and_then(|o| {
            pick(o).ok_or_else(|| StoreError::Corrupt("unexpected command output".into()))
        });
        let _ = reply.send(value);
    }
    let unit = |o| matches!(o, Output::Unit).then_some(());
    match cmd {
        Command::Enqueue(_, r)
        | Command::Delivered(_, _, r)
        | Command::Reschedule(_, _, _, r)
        | Command::Dead(_, _, r)
        | Command::WakeAll(_, r)
        | Command::Remember(_, _, _, r) => send(r, result, unit),
        Command::Due(_, _, r) => send(r, result, |o| match o {
            Output::Entries(e) => Some(e),
            _ => None,
        }),
        Command::Stats(_, r) => send(r, result, |o| match o {
            Output::Stats(s) => Some(s),
            _ => None,
        }),
        Command::QueuedByRoute(r) => send(r, result, |o| match o {
            Output::Counts(c) => Some(c),
            _ => None,
        }),
        Command::Recall(_, _, r) => send(r, result, |o| match o {
            Output::Recalled(v) => Some(v),
            _ => None,
        }),
        Command::List(_, _, r) => send(r, result, |o| match o {
            Output::Entries(e) => Some(e),
            _ => None,
        }),
        Command::Requeue(_, _, r) => send(r, result, |o| match o {
            Output::Flag(f) => Some(f),
            _ => None,
        }),
    }
}

fn insert(tx: &Transaction<'_>, e: &OutboxEntry) -> rusqlite::Result<()> {
    let parameters = serde_json::to_string(&e.parameters).unwrap_or_else(|_| "{}".into());
    let tags = serde_json::to_string(&e.tags).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO outbox (id, route, deployment, parameters, tags, name, idempotency_key, state, attempts, created_at, next_attempt_at, last_error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?10, ?11)",
        params![
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
        ],
    )
    .map(drop)
}

/// Up to `per_route` due entries of every route, each route's oldest first.
fn due(tx: &Transaction<'_>, now: i64, per_route: usize) -> rusqlite::Result<Vec<OutboxEntry>> {
    let routes: Vec<String> = tx
        .prepare_cached(
            "SELECT DISTINCT route FROM outbox WHERE state = 'queued' AND next_attempt_at <= ?1",
        )?
        .query_map(params![now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut due = Vec::new();
    for route in routes {
        due.extend(select(
            tx,
            "state = 'queued' AND route = ?3 AND next_attempt_at <= ?1",
            params![now, per_route as i64, route],
        )?);
    }
    Ok(due)
}

fn queued_by_route(tx: &Transaction<'_>) -> rusqlite::Result<Vec<(String, u64)>> {
    tx.prepare_cached("SELECT route, COUNT(*) FROM outbox WHERE state = 'queued' GROUP BY route")?
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
        .collect()
}

/// Entries matching `condition` (with `?1`; `?2` is the limit), oldest first.
fn select(
    tx: &Transaction<'_>,
    condition: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<OutboxEntry>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT id, route, deployment, parameters, tags, name, idempotency_key, attempts, created_at, next_attempt_at, last_error
         FROM outbox WHERE {condition} ORDER BY created_at, rowid LIMIT ?2"
    ))?;
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

fn stats(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<OutboxStats> {
    tx.query_row(
        "SELECT
            COALESCE(SUM(state = 'queued'), 0),
            COALESCE(SUM(state = 'dead'), 0),
            COALESCE(MIN(CASE WHEN state = 'queued' THEN created_at END), ?1)
         FROM outbox",
        params![now],
        |r| {
            let oldest: i64 = r.get(2)?;
            Ok(OutboxStats {
                queued: r.get::<_, i64>(0)?.max(0) as u64,
                dead: r.get::<_, i64>(1)?.max(0) as u64,
                oldest_queued_age_secs: now.saturating_sub(oldest).max(0) as u64,
            })
        },
    )
}

fn recall(
    tx: &Transaction<'_>,
    route: &str,
    delivery: &str,
) -> rusqlite::Result<Option<RememberedOutcome>> {
    tx.query_row(
        "SELECT kind, id FROM deliveries WHERE route = ?1 AND delivery_id = ?2",
        params![route, delivery],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )
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

impl Store for SqliteStore {
    fn enqueue(&self, entry: OutboxEntry) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ask(|r| Command::Enqueue(Box::new(entry), r))
    }
    fn due(
        &self,
        now: i64,
        per_route: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        self.ask(|r| Command::Due(now, per_route, r))
    }
    fn queued_by_route(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        self.ask(Command::QueuedByRoute)
    }
    fn mark_delivered(
        &self,
        id: uuid::Uuid,
        flow_run_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ask(|r| Command::Delivered(id, flow_run_id, r))
    }
    fn reschedule(
        &self,
        id: uuid::Uuid,
        next_attempt_at: i64,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ask(|r| Command::Reschedule(id, next_attempt_at, error, r))
    }
    fn mark_dead(&self, id: uuid::Uuid, error: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ask(|r| Command::Dead(id, error, r))
    }
    fn stats(&self, now: i64) -> BoxFuture<'_, Result<OutboxStats, StoreError>> {
        self.ask(|r| Command::Stats(now, r))
    }
    fn list(
        &self,
        state: EntryState,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        self.ask(|r| Command::List(state, limit, r))
    }
    fn requeue_dead(&self, id: uuid::Uuid, now: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.ask(|r| Command::Requeue(id, now, r))
    }
    fn wake_all(&self, now: i64) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ask(|r| Command::WakeAll(now, r))
    }
    fn remember_delivery(
        &self,
        route: String,
        delivery_id: String,
        outcome: RememberedOutcome,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.ask(|r| Command::Remember(route, delivery_id, outcome, r))
    }
    fn recall_delivery(
        &self,
        route: String,
        delivery_id: String,
    ) -> BoxFuture<'_, Result<Option<RememberedOutcome>, StoreError>> {
        self.ask(|r| Command::Recall(route, delivery_id, r))
    }
}
