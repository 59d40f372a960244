//! Durable state behind one small trait: the outbox of requests Prefect has not taken yet, and
//! the delivery ids already accepted, the rejection log and the managed deployments. SQLite (one
//! file, WAL, fsync on commit) by default; PostgreSQL for several replicas sharing one state.
//!
//! Cost does not grow with what is stored: every operation is an index seek with a limit, and
//! the counts behind metrics, readiness and load leveling are kept in memory as entries come
//! and go (counted from the file once, at open).

mod command;
mod counts;
mod managed;
pub(crate) mod postgres;
mod rejections;
mod sqlite;

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::domain::Parameters;

pub use counts::OutboxCounts;
pub use managed::{ManagedRow, ManagedWrite, SyncOutcome};
pub use postgres::{PgConnect, PgStore};
pub use rejections::{v7_floor, Rejection, RejectionCount, RejectionQuery, RejectionWrite};
pub use sqlite::SqliteStore;

/// One request waiting for Prefect.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: uuid::Uuid,
    pub route: String,
    /// `flow-name/deployment-name`.
    pub deployment: String,
    pub parameters: Parameters,
    pub tags: Vec<String>,
    pub name: Option<String>,
    /// The namespaced key sent to Prefect: a retry can never create a second run.
    pub idempotency_key: String,
    pub attempts: u32,
    /// Unix seconds.
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub last_error: String,
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Queued,
    Delivered,
    Dead,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

/// What the outbox holds, for metrics and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub queued: u64,
    pub dead: u64,
    /// Age in seconds of the oldest queued entry (0 when empty).
    pub oldest_queued_age_secs: u64,
}

/// Where a delivery id stands, for the delivery status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: uuid::Uuid,
    /// `queued`, `dead`, `discarded` or `delivered`.
    pub state: String,
    pub route: String,
    pub deployment: String,
    /// Attempts made (for a delivered entry, including the one that made the run).
    pub attempts: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// Queued: when the next attempt is due.
    pub next_attempt_at: Option<i64>,
    /// Queued: the last failure; dead and discarded: the reason.
    pub last_error: Option<String>,
    pub flow_run_id: Option<uuid::Uuid>,
    pub delivered_at: Option<i64>,
}

/// The first answer given for a partner's delivery id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RememberedOutcome {
    Run(uuid::Uuid),
    Queued(uuid::Uuid),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is full")]
    Full,
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("the store failed: {0}")]
    Failed(String),
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: String, reason: String },
}

pub trait Store: Send + Sync {
    /// Writes the entry durably (fsync'd) before returning.
    fn enqueue(&self, entry: OutboxEntry) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Queued entries due at `now`: up to `per_route` of each route that has entries waiting,
    /// each route's in the order they became due (oldest first for entries never deferred).
    /// A store shared by replicas hands an entry to one replica at a time: it is claimed for
    /// this replica for a lease (renewed by the next call that answers it again).
    fn due(
        &self,
        now: i64,
        per_route: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>>;
    /// What the outbox holds, from memory: no read of the store.
    fn counts(&self) -> OutboxCounts;
    /// Entries `route` has queued, from memory.
    fn queued(&self, route: &str) -> u64;
    /// False once the store could not commit (or its writer stopped); true again after a
    /// successful commit.
    fn healthy(&self) -> bool;
    fn mark_delivered(
        &self,
        id: uuid::Uuid,
        flow_run_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Counts a failed attempt and records its reason; the entry is next due at
    /// `next_attempt_at` (its current value to keep it due).
    fn reschedule(
        &self,
        id: uuid::Uuid,
        next_attempt_at: i64,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn mark_dead(&self, id: uuid::Uuid, error: String) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The counts, plus the age of the oldest queued entry (one index seek).
    fn stats(&self, now: i64) -> BoxFuture<'_, Result<OutboxStats, StoreError>>;
    /// Takes a queued or dead entry out of the outbox for good (kept, with the reason, as
    /// `discarded`); false when there is no such entry.
    fn discard(&self, id: uuid::Uuid, reason: String) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// A write to the rejection log. Handed to the store when called, like
    /// `remember_delivery`: the request path does not wait for it.
    fn write_rejection(&self, write: RejectionWrite) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// A page of the rejection log, newest first, without headers and bodies.
    fn list_rejections(
        &self,
        query: RejectionQuery,
    ) -> BoxFuture<'_, Result<Vec<Rejection>, StoreError>>;
    fn get_rejection(&self, id: uuid::Uuid)
        -> BoxFuture<'_, Result<Option<Rejection>, StoreError>>;
    /// Requests per route and code among rejections first seen at or after `since_ms`.
    fn rejection_counts(
        &self,
        since_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<RejectionCount>, StoreError>>;
    /// Where a delivery id stands (an outbox entry, or a delivered one within the delivery
    /// memory's retention); `None` when unknown.
    fn delivery(&self, id: uuid::Uuid) -> BoxFuture<'_, Result<Option<Delivery>, StoreError>>;
    /// Resolves once everything handed to the store before this call is durable.
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Remembers a delivery id's first answer. The write is handed to the store when this is
    /// called (unless the store's queue is full: then only when the future is polled); the
    /// future resolves once it is durable. A request path may answer without waiting: Prefect's
    /// idempotency key still maps a redelivery to the same run.
    fn remember_delivery(
        &self,
        route: String,
        delivery_id: String,
        outcome: RememberedOutcome,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The first answer for a delivery id remembered at or after `since` (unix seconds).
    fn recall_delivery(
        &self,
        route: String,
        delivery_id: String,
        since: i64,
    ) -> BoxFuture<'_, Result<Option<RememberedOutcome>, StoreError>>;
    /// Forgets delivery ids remembered before `before`, oldest first, at most `limit` of them;
    /// returns how many went. Called in a loop in the background, never on the request path.
    fn prune_deliveries(
        &self,
        before: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// Entries in `state` (queued or dead), oldest first, for ops.
    fn list(
        &self,
        state: EntryState,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>>;
    /// Puts a dead entry back in the queue, due now, its age counted from now. False if there
    /// is no dead entry with that id.
    fn requeue_dead(&self, id: uuid::Uuid, now: i64) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// A change to the managed deployments (durable when it resolves); the row's generation
    /// afterwards (0: no row).
    fn write_managed(&self, write: ManagedWrite) -> BoxFuture<'_, Result<i64, StoreError>>;
    /// One managed deployment by `flow/deployment` name.
    fn managed(&self, name: String) -> BoxFuture<'_, Result<Option<ManagedRow>, StoreError>>;
    /// Every managed deployment, by name.
    fn all_managed(&self) -> BoxFuture<'_, Result<Vec<ManagedRow>, StoreError>>;
    /// Takes or renews the lease `name` for `ttl`: true while this replica holds it (one
    /// reconciler at a time among replicas). A store of one process always holds it.
    fn lead(&self, name: &'static str, ttl: Duration) -> BoxFuture<'_, Result<bool, StoreError>> {
        let _ = (name, ttl);
        async { Ok(true) }.boxed()
    }
    /// Gives back every entry this replica claimed and did not finish (at a graceful stop), so
    /// the other replicas need not wait for the lease; how many.
    fn release_claims(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        async { Ok(0) }.boxed()
    }
    /// Replicas sharing this store now (their heartbeats), at least 1.
    fn replicas(&self) -> u64 {
        1
    }
}

/// Stats from the counts and the oldest entry's creation time.
pub(crate) fn stats(queued: u64, dead: u64, oldest: Option<i64>, now: i64) -> OutboxStats {
    OutboxStats {
        queued,
        dead,
        oldest_queued_age_secs: oldest.map_or(0, |t| now.saturating_sub(t).max(0) as u64),
    }
}

#[cfg(test)]
mod tests;
