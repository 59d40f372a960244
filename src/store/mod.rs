//! Durable state behind one small trait: the outbox of requests Prefect has not taken yet, and
//! the delivery ids already accepted. SQLite (one file, WAL, fsync on commit) by default; the
//! trait is what a PostgreSQL store for several replicas implements later.

mod sqlite;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

pub use sqlite::SqliteStore;

/// One request waiting for Prefect.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: uuid::Uuid,
    pub route: String,
    /// `flow-name/deployment-name`.
    pub deployment: String,
    pub parameters: Map<String, Value>,
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
    #[error("the store failed")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("a stored entry is unreadable: {0}")]
    Corrupt(String),
    #[error("cannot open the store at {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

pub trait Store: Send + Sync {
    /// Writes the entry durably (fsync'd) before returning.
    fn enqueue(&self, entry: OutboxEntry) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Queued entries due at `now`: up to `per_route` of each route, each route's oldest first.
    fn due(
        &self,
        now: i64,
        per_route: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>>;
    /// How many entries each route has queued (routes with none are left out).
    fn queued_by_route(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>>;
    fn mark_delivered(
        &self,
        id: uuid::Uuid,
        flow_run_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn reschedule(
        &self,
        id: uuid::Uuid,
        next_attempt_at: i64,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn mark_dead(&self, id: uuid::Uuid, error: String) -> BoxFuture<'_, Result<(), StoreError>>;
    fn stats(&self, now: i64) -> BoxFuture<'_, Result<OutboxStats, StoreError>>;
    /// Makes every queued entry due now (Prefect is back: no need to wait out backoffs).
    fn wake_all(&self, now: i64) -> BoxFuture<'_, Result<(), StoreError>>;
    fn remember_delivery(
        &self,
        route: String,
        delivery_id: String,
        outcome: RememberedOutcome,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn recall_delivery(
        &self,
        route: String,
        delivery_id: String,
    ) -> BoxFuture<'_, Result<Option<RememberedOutcome>, StoreError>>;
    /// Entries in `state` (queued or dead), oldest first, for ops.
    fn list(
        &self,
        state: EntryState,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>>;
    /// Puts a dead entry back in the queue, due now, its age counted from now. False if there
    /// is no dead entry with that id.
    fn requeue_dead(&self, id: uuid::Uuid, now: i64) -> BoxFuture<'_, Result<bool, StoreError>>;
}

#[cfg(test)]
mod tests;
