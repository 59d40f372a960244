//! SQLite store: one file, WAL, fsync on commit. One connection owned by one writer thread
//! (group commit); a second connection checkpoints the WAL in the background, so no commit
//! waits for a checkpoint.

mod commands;
mod managed;
mod reader;
mod rejections;
mod schema;
mod seen;
mod writer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rusqlite::Connection;
use tokio::sync::mpsc;

use super::command::{Command, Shared, Writer};
use super::{
    Delivery, EntryState, ManagedRow, ManagedWrite, OutboxCounts, OutboxEntry, OutboxStats,
    Rejection, RejectionCount, RejectionQuery, RejectionWrite, RememberedOutcome, Store,
    StoreError,
};

/// Commands waiting for the writer; a sender beyond this waits (asynchronously) for room.
const QUEUE: usize = 8192;
/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

pub struct SqliteStore {
    commands: Writer,
    shared: Arc<Shared>,
    readers: reader::Readers,
    /// The delivery ids the table may hold: a new one is answered without a read.
    seen: Arc<seen::SeenIds>,
    /// Dropped with the store: the checkpointer stops.
    _checkpoints: std_mpsc::Sender<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`. `max_size_mb` caps the file: when it is
    /// full, enqueue fails (and the sender gets 503) rather than the disk filling up.
    pub fn open(path: &Path, max_size_mb: u64) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let soft_limit =
            schema::configure(&conn, max_size_mb).map_err(|e| open_error(e.to_string()))?;
        let counts = writer::count_all(&conn).map_err(|e| open_error(e.to_string()))?;
        let seen = Arc::new(seen::SeenIds::new());
        commands::each_delivery(&conn, |route, id, at| seen.insert(route, id, at))
            .map_err(|e| open_error(e.to_string()))?;
        let shared = Arc::new(Shared {
            counts: counts.into(),
            healthy: true.into(),
        });
        let checkpointer = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let (stop_checkpoints, checkpoint_stop) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("flowgate-checkpoint".into())
            .spawn(move || checkpoints(checkpointer, checkpoint_stop))
            .map_err(|e| open_error(e.to_string()))?;
        let (commands, receiver) = mpsc::channel(QUEUE);
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("flowgate-store".into())
            .spawn(move || writer::writer(conn, receiver, soft_limit, for_writer))
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            commands: Writer::new(commands),
            shared,
            readers: reader::Readers::new(path.to_path_buf()),
            seen,
            _checkpoints: stop_checkpoints,
        })
    }
}

/// Copies the WAL into the database file every `CHECKPOINT_EVERY`, off the writer's thread, so
/// the WAL stays small and commits never pay for it. Ends when the store is dropped.
fn checkpoints(conn: Connection, stop: std_mpsc::Receiver<()>) {
    let _ = conn.busy_timeout(Duration::from_millis(100));
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

impl Store for SqliteStore {
    fn enqueue(&self, entry: OutboxEntry) -> BoxFuture<'_, Result<(), StoreError>> {
        self.commands.ask(|r| Command::Enqueue(Box::new(entry), r))
    }
    fn due(
        &self,
        now: i64,
        per_route: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        self.commands.ask(move |r| Command::Due(now, per_route, r))
    }
    fn counts(&self) -> OutboxCounts {
        self.shared.counts().clone()
    }
    fn queued(&self, route: &str) -> u64 {
        self.shared.counts().queued(route)
    }
    fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed) && !self.commands.is_closed()
    }
    fn mark_delivered(
        &self,
        id: uuid::Uuid,
        flow_run_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.commands
            .ask(move |r| Command::Delivered(id, flow_run_id, r))
    }
    fn reschedule(
        &self,
        id: uuid::Uuid,
        next_attempt_at: i64,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.commands
            .ask(move |r| Command::Reschedule(id, next_attempt_at, error, r))
    }
    fn mark_dead(&self, id: uuid::Uuid, error: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.commands.ask(move |r| Command::Dead(id, error, r))
    }
    fn stats(&self, now: i64) -> BoxFuture<'_, Result<OutboxStats, StoreError>> {
        async move {
            let oldest = self.commands.ask(Command::Oldest).await?;
            let counts = self.counts();
            Ok(super::stats(
                counts.queued_total(),
                counts.dead,
                oldest,
                now,
            ))
        }
        .boxed()
    }
    fn delivery(&self, id: uuid::Uuid) -> BoxFuture<'_, Result<Option<Delivery>, StoreError>> {
        let found = self.readers.with(|conn| commands::delivery(conn, id));
        async move { found }.boxed()
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.commands.ask(Command::Flush)
    }
    fn remember_delivery(
        &self,
        route: String,
        delivery_id: String,
        outcome: RememberedOutcome,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        // A second later than the row's own time: the filter never forgets it before the table.
        let at = crate::pipeline::verify::unix_now().saturating_add(1);
        self.seen.insert(&route, &delivery_id, at);
        self.commands
            .hand_over(|r| Command::Remember(route, delivery_id, outcome, r))
    }
    fn discard(&self, id: uuid::Uuid, reason: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.commands.ask(move |r| Command::Discard(id, reason, r))
    }
    fn write_rejection(&self, write: RejectionWrite) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.commands.hand_over(|r| Command::Rejection(write, r))
    }
    fn list_rejections(
        &self,
        query: RejectionQuery,
    ) -> BoxFuture<'_, Result<Vec<Rejection>, StoreError>> {
        let page = self.readers.with(|conn| rejections::list(conn, &query));
        async move { page }.boxed()
    }
    fn get_rejection(
        &self,
        id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<Option<Rejection>, StoreError>> {
        let found = self.readers.with(|conn| rejections::get(conn, id));
        async move { found }.boxed()
    }
    fn rejection_counts(
        &self,
        since_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<RejectionCount>, StoreError>> {
        let counts = self
            .readers
            .with(|conn| rejections::counts_since(conn, since_ms));
        async move { counts }.boxed()
    }
    fn recall_delivery(
        &self,
        route: String,
        delivery_id: String,
        since: i64,
    ) -> BoxFuture<'_, Result<Option<RememberedOutcome>, StoreError>> {
        let recalled = if self.seen.may_hold(&route, &delivery_id) {
            self.readers
                .with(|conn| commands::recall(conn, &route, &delivery_id, since))
        } else {
            Ok(None)
        };
        async move { recalled }.boxed()
    }
    fn prune_deliveries(
        &self,
        before: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.seen.expire(before);
        self.commands.ask(move |r| Command::Prune(before, limit, r))
    }
    fn list(
        &self,
        state: EntryState,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        self.commands.ask(move |r| Command::List(state, limit, r))
    }
    fn requeue_dead(&self, id: uuid::Uuid, now: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.commands.ask(move |r| Command::Requeue(id, now, r))
    }

    fn write_managed(&self, write: ManagedWrite) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.commands.ask(move |r| Command::Managed(write, r))
    }

    fn managed(&self, name: String) -> BoxFuture<'_, Result<Option<ManagedRow>, StoreError>> {
        let found = self.readers.with(|conn| managed::get(conn, &name));
        async move { found }.boxed()
    }

    fn all_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedRow>, StoreError>> {
        let rows = self.readers.with(managed::all);
        async move { rows }.boxed()
    }
}

#[cfg(test)]
pub(crate) use super::command::Command as StoreCommand;
#[cfg(test)]
pub(crate) use commands::{run as run_command, Context as StoreContext};
#[cfg(test)]
pub(crate) use schema::configure;
