//! PostgreSQL store: the same outbox, delivery memory, rejection log and managed deployments as
//! the SQLite store, shared by several replicas. Writes go through one writer task per replica
//! (group commit, as in SQLite); reads and the deliverer's claims use a small pool. Entries are
//! claimed with `FOR UPDATE SKIP LOCKED` and a lease, so two replicas never deliver one entry
//! at once and a dead replica's claims return to the queue when the lease runs out; the
//! entry's idempotency key keeps a delivery repeated by another replica from making a second
//! run.

pub(crate) mod commands;
mod connect;
pub(crate) mod reads;
mod schema;
mod writer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::command::{Command, Shared, Writer};
use super::{
    Delivery, EntryState, ManagedRow, ManagedWrite, OutboxCounts, OutboxEntry, OutboxStats,
    Rejection, RejectionCount, RejectionQuery, RejectionWrite, RememberedOutcome, Store,
    StoreError,
};
pub use connect::PgConnect;

/// Commands waiting for the writer; a sender beyond this waits (asynchronously) for room.
const QUEUE: usize = 8192;
/// How often the counts are read back from the table (other replicas' changes) and this
/// replica's heartbeat is renewed.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// A replica whose heartbeat is older than this is not counted as live.
const HEARTBEAT_TTL_MS: i64 = 10_000;

pub struct PgStore {
    pool: Pool,
    commands: Writer,
    shared: Arc<Shared>,
    /// This replica's id: the holder of its claims and leases.
    me: uuid::Uuid,
    lease_secs: i64,
    /// Entries claimed by this replica since it started and not known to be finished: what a
    /// graceful stop gives back (bounded by what the deliverer holds and has in flight).
    claimed: Mutex<HashSet<uuid::Uuid>>,
    replicas: Arc<AtomicU64>,
    /// Stopped when the store is dropped.
    _heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self._heartbeat.abort();
    }
}

impl PgStore {
    /// Connects, applies the migrations this database lacks, and starts the writer.
    pub async fn open(connect: &PgConnect) -> Result<Self, StoreError> {
        let pool = connect.pool()?;
        let (_, conn) = migrated(connect, &pool).await?;
        let counts = load_counts(&conn)
            .await
            .map_err(|e| connect.error(error_text(&e)))?;
        drop(conn);
        let shared = Arc::new(Shared {
            counts: counts.into(),
            healthy: true.into(),
        });
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(writer::writer(
            pool.clone(),
            receiver,
            shared.clone(),
            REFRESH_EVERY,
        ));
        let me = uuid::Uuid::new_v4();
        let replicas = Arc::new(AtomicU64::new(1));
        let heartbeat = tokio::spawn(heartbeat(pool.clone(), me, replicas.clone()));
        tracing::info!(replica = %me, "PostgreSQL store open");
        Ok(Self {
            pool,
            commands: Writer::new(sender),
            shared,
            me,
            lease_secs: i64::try_from(connect.lease.as_secs()).unwrap_or(60).max(1),
            claimed: Mutex::default(),
            replicas,
            _heartbeat: heartbeat,
        })
    }

    /// Applies the migrations only (`flowgate migrate`); answers how many ran.
    pub async fn migrate(connect: &PgConnect) -> Result<usize, StoreError> {
        let pool = connect.pool()?;
        Ok(migrated(connect, &pool).await?.0)
    }

    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Failed(format!(
                "no connection to PostgreSQL: {}",
                pool_error_text(&e)
            ))
        })
    }

    fn claimed(&self) -> MutexGuard<'_, HashSet<uuid::Uuid>> {
        // A set of ids: a panicking holder cannot leave it half-updated.
        self.claimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a read on a pooled connection.
    fn read<'a, T: Send + 'a>(
        &'a self,
        read: impl for<'c> FnOnce(&'c Object) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>
            + Send
            + 'a,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        async move {
            let conn = self.conn().await?;
            read(&conn)
                .await
                .map_err(|e| StoreError::Failed(error_text(&e)))
        }
        .boxed()
    }
}

/// Why no connection could be had, with PostgreSQL's own message when it answered.
pub(crate) fn pool_error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => error_text(e),
        other => other.to_string(),
    }
}

/// A PostgreSQL error with its server message (tokio-postgres' own text is only "db error").
pub(crate) fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => crate::error::error_chain(e),
    }
}

/// A connection from `pool` to a database with every migration applied; how many ran.
async fn migrated(connect: &PgConnect, pool: &Pool) -> Result<(usize, Object), StoreError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| connect.error(pool_error_text(&e)))?;
    let ran = schema::migrate(&mut conn)
        .await
        .map_err(|e| connect.error(error_text(&e)))?;
    Ok((ran, conn))
}

async fn load_counts(conn: &Object) -> Result<OutboxCounts, tokio_postgres::Error> {
    let mut counts = OutboxCounts::default();
    for (route, queued, dead) in reads::counts(conn).await? {
        counts.set_queued(route, u64::try_from(queued).unwrap_or(0));
        counts.dead += u64::try_from(dead).unwrap_or(0);
    }
    Ok(counts)
}

/// Every `REFRESH_EVERY`: this replica's heartbeat, and how many replicas are live.
async fn heartbeat(pool: Pool, me: uuid::Uuid, replicas: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let name = format!("replica:{me}");
    loop {
        tick.tick().await;
        let live = async {
            let conn = pool.get().await.map_err(|e| pool_error_text(&e))?;
            reads::lease(&conn, &name, me, HEARTBEAT_TTL_MS)
                .await
                .map_err(|e| error_text(&e))?;
            reads::live_replicas(&conn)
                .await
                .map_err(|e| error_text(&e))
        }
        .await;
        match live {
            Ok(live) => replicas.store(live.max(1), Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, "replica heartbeat skipped"),
        }
    }
}

fn entries(rows: Vec<Result<OutboxEntry, String>>) -> Result<Vec<OutboxEntry>, StoreError> {
    rows.into_iter()
        .map(|r| r.map_err(|e| StoreError::Failed(format!("an outbox row cannot be read: {e}"))))
        .collect()
}

impl Store for PgStore {
    fn enqueue(&self, entry: OutboxEntry) -> BoxFuture<'_, Result<(), StoreError>> {
        self.commands.ask(|r| Command::Enqueue(Box::new(entry), r))
    }
    fn due(
        &self,
        now: i64,
        per_route: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        let (me, until) = (self.me, now.saturating_add(self.lease_secs));
        async move {
            let rows = self
                .read(move |c| reads::claim_due(c, now, per_route, me, until).boxed())
                .await?;
            let due = entries(rows)?;
            self.claimed().extend(due.iter().map(|e| e.id));
            Ok(due)
        }
        .boxed()
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
        self.claimed().remove(&id);
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
        self.claimed().remove(&id);
        self.commands.ask(move |r| Command::Dead(id, error, r))
    }
    fn stats(&self, now: i64) -> BoxFuture<'_, Result<OutboxStats, StoreError>> {
        async move {
            let oldest = self.read(|c| reads::oldest(c).boxed()).await?;
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
        self.read(move |c| async move { reads::rejections(c, &query).await }.boxed())
    }
    fn get_rejection(
        &self,
        id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<Option<Rejection>, StoreError>> {
        self.read(move |c| reads::rejection_by_id(c, id).boxed())
    }
    fn rejection_counts(
        &self,
        since_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<RejectionCount>, StoreError>> {
        self.read(move |c| reads::rejection_counts(c, since_ms).boxed())
    }
    fn delivery(&self, id: uuid::Uuid) -> BoxFuture<'_, Result<Option<Delivery>, StoreError>> {
        self.read(move |c| reads::delivery(c, id).boxed())
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
        self.commands
            .hand_over(|r| Command::Remember(route, delivery_id, outcome, r))
    }
    fn recall_delivery(
        &self,
        route: String,
        delivery_id: String,
        since: i64,
    ) -> BoxFuture<'_, Result<Option<RememberedOutcome>, StoreError>> {
        self.read(move |c| {
            async move { reads::recall(c, &route, &delivery_id, since).await }.boxed()
        })
    }
    fn prune_deliveries(
        &self,
        before: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.commands.ask(move |r| Command::Prune(before, limit, r))
    }
    fn list(
        &self,
        state: EntryState,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        async move {
            entries(
                self.read(move |c| reads::list(c, state, limit).boxed())
                    .await?,
            )
        }
        .boxed()
    }
    fn requeue_dead(&self, id: uuid::Uuid, now: i64) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.commands.ask(move |r| Command::Requeue(id, now, r))
    }
    fn write_managed(&self, write: ManagedWrite) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.commands.ask(move |r| Command::Managed(write, r))
    }
    fn managed(&self, name: String) -> BoxFuture<'_, Result<Option<ManagedRow>, StoreError>> {
        self.read(move |c| async move { reads::managed(c, &name).await }.boxed())
    }
    fn all_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedRow>, StoreError>> {
        self.read(|c| reads::all_managed(c).boxed())
    }
    fn lead(&self, name: &'static str, ttl: Duration) -> BoxFuture<'_, Result<bool, StoreError>> {
        let (me, ttl_ms) = (self.me, i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.read(move |c| reads::lease(c, name, me, ttl_ms).boxed())
    }
    fn replicas(&self) -> u64 {
        self.replicas.load(Ordering::Relaxed)
    }
    fn release_claims(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let ids: Vec<uuid::Uuid> = self.claimed().drain().collect();
        let me = self.me;
        async move {
            if ids.is_empty() {
                return Ok(0);
            }
            self.read(move |c| async move { reads::release(c, &ids, me).await }.boxed())
                .await
        }
        .boxed()
    }
}
