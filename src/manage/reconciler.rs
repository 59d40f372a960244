//! The reconciler: one task that applies managed deployments' desired state to Prefect — when
//! one changes (woken at once), after a failure (with backoff), and every `resync` interval for
//! all of them, which repairs drift (a deployment deleted or rescheduled by hand is put back).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use super::apply::{apply, remove, Applied};
use super::spec::DesiredDeployment;
use crate::domain::DeploymentRef;
use crate::pipeline::verify::unix_now;
use crate::prefect::{Deadline, PrefectClient, PrefectError};
use crate::store::{ManagedRow, ManagedWrite, Store, SyncOutcome};

/// Time one deployment's apply may take.
const APPLY_BUDGET: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often the reconciler looks for changes it was not woken for (written by another replica
/// sharing the store), and renews its lease.
const POLL: Duration = Duration::from_secs(2);
/// The reconciler's lease among replicas: one applies at a time; another takes over when the
/// holder stops renewing it.
const LEASE: Duration = Duration::from_secs(15);
const LEASE_NAME: &str = "reconciler";

/// A deployment's sync after an attempt: `(name, generation, sync)`.
pub type SyncEvent = (String, i64, &'static str);

pub struct Manager {
    pub store: Arc<dyn Store>,
    pub prefect: PrefectClient,
    wake: Notify,
    events: broadcast::Sender<SyncEvent>,
    /// Transient failures (Prefect unreachable or overloaded): the reason, attempts, and when
    /// to try again. Kept in memory: the entry stays `pending`.
    waiting: Mutex<HashMap<String, (String, u32, Instant)>>,
    resync: Duration,
}

impl Manager {
    pub fn new(store: Arc<dyn Store>, prefect: PrefectClient, resync: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            prefect,
            wake: Notify::new(),
            events: broadcast::channel(256).0,
            waiting: Mutex::new(HashMap::new()),
            resync,
        })
    }

    /// Events of attempts from now on (subscribe before `wake`).
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// Stores the configuration file's desired deployments (an unchanged one keeps its
    /// generation: nothing to apply) and wakes the reconciler.
    pub async fn adopt(&self, from_file: &std::collections::BTreeMap<String, DesiredDeployment>) {
        for (name, spec) in from_file {
            let Ok(spec) = serde_json::to_string(spec) else {
                continue;
            };
            let write = ManagedWrite::Put {
                name: name.clone(),
                spec,
                now: now(),
            };
            if let Err(e) = self.store.write_managed(write).await {
                tracing::warn!(deployment = %name, error = %e, "desired deployment from the configuration not stored");
            }
        }
        self.wake();
    }

    /// Asks the reconciler to look at the managed deployments now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Why the last attempt for `name` failed, while it waits to try again.
    pub fn waiting_reason(&self, name: &str) -> Option<String> {
        self.waiting
            .lock()
            .ok()
            .and_then(|w| w.get(name).map(|(reason, ..)| reason.clone()))
    }

    /// Runs until the process stops. Among replicas sharing a store, only the holder of the
    /// reconciler's lease applies; the others wait to take it over.
    pub async fn run(self: Arc<Self>) {
        let mut next_resync = Instant::now();
        let mut leading = false;
        loop {
            let poll_at = Instant::now() + POLL;
            match self.store.lead(LEASE_NAME, LEASE).await {
                Ok(now_leading) => {
                    if now_leading != leading {
                        tracing::info!(leading = now_leading, "reconciler lease");
                        // A new holder compares everything at once.
                        next_resync = Instant::now();
                    }
                    leading = now_leading;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the reconciler's lease cannot be renewed");
                    leading = false;
                }
            }
            if !leading {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep_until(poll_at) => {}
                }
                continue;
            }
            let full = Instant::now() >= next_resync;
            if full {
                next_resync = Instant::now() + self.resync;
            }
            let next_retry = self.pass(full).await;
            let until = next_retry
                .map_or(next_resync, |r| r.min(next_resync))
                .min(poll_at);
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// One look at every managed deployment: pending ones (and, on a full pass, all) applied.
    /// Returns when the earliest retry is due.
    async fn pass(&self, full: bool) -> Option<Instant> {
        let rows = match self.store.all_managed().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "managed deployments cannot be read");
                return Some(Instant::now() + BACKOFF_MAX);
            }
        };
        let now = Instant::now();
        for row in rows {
            let retry_at = self.retry_at(&row.name);
            let pending = row.synced_generation < row.generation && row.error.is_none();
            let due = retry_at.is_none_or(|at| at <= now);
            if (pending || full) && due {
                self.attempt(&row).await;
            }
        }
        self.waiting
            .lock()
            .ok()
            .and_then(|w| w.values().map(|(_, _, at)| *at).min())
    }

    fn retry_at(&self, name: &str) -> Option<Instant> {
        self.waiting
            .lock()
            .ok()
            .and_then(|w| w.get(name).map(|(_, _, at)| *at))
    }

    async fn attempt(&self, row: &ManagedRow) {
        let outcome = self.try_apply(row).await;
        let (write, sync) = match outcome {
            Ok(Some(o)) => {
                if let Ok(mut w) = self.waiting.lock() {
                    w.remove(&row.name);
                }
                let sync = if matches!(o, SyncOutcome::Removed) {
                    "removed"
                } else {
                    "in_sync"
                };
                (Some(o), sync)
            }
            Ok(None) => (None, "in_sync"),
            Err(e) if e.is_transient() => {
                let reason = crate::outbox::describe(
                    &crate::error::GatewayError::UpstreamUnavailable(Arc::new(e)),
                );
                tracing::info!(deployment = %row.name, %reason, "managed deployment waits for Prefect");
                if let Ok(mut w) = self.waiting.lock() {
                    let attempts = w.get(&row.name).map_or(0, |(_, a, _)| *a) + 1;
                    let wait = BACKOFF_MIN
                        .saturating_mul(1 << attempts.min(6))
                        .min(BACKOFF_MAX);
                    w.insert(row.name.clone(), (reason, attempts, Instant::now() + wait));
                }
                (None, "pending")
            }
            Err(e) => {
                let reason = crate::error::error_chain(&e);
                tracing::warn!(deployment = %row.name, %reason, "managed deployment refused by Prefect");
                if let Ok(mut w) = self.waiting.lock() {
                    w.remove(&row.name);
                }
                (Some(SyncOutcome::Failed(reason)), "error")
            }
        };
        if let Some(outcome) = write {
            let w = ManagedWrite::Synced {
                name: row.name.clone(),
                generation: row.generation,
                outcome,
            };
            if let Err(e) = self.store.write_managed(w).await {
                tracing::warn!(deployment = %row.name, error = %e, "sync state not stored");
            }
        }
        let _ = self.events.send((row.name.clone(), row.generation, sync));
    }

    /// `Ok(None)`: nothing to record (in sync, and recorded so).
    async fn try_apply(&self, row: &ManagedRow) -> Result<Option<SyncOutcome>, PrefectError> {
        let name = DeploymentRef::parse(&row.name)
            .map_err(|e| PrefectError::Unexpected(format!("stored name {:?}: {e}", row.name)))?;
        let deadline = Deadline::after(APPLY_BUDGET);
        if row.deleted {
            remove(&self.prefect, &name, deadline).await?;
            tracing::info!(target: "flowgate::manage", deployment = %row.name, "managed deployment removed from Prefect");
            return Ok(Some(SyncOutcome::Removed));
        }
        let desired: DesiredDeployment = serde_json::from_str(&row.spec)
            .map_err(|e| PrefectError::Unexpected(format!("stored desired state: {e}")))?;
        let recorded = row.synced_generation >= row.generation && row.error.is_none();
        match apply(&self.prefect, &name, &desired, deadline).await? {
            Applied::Unchanged { .. } if recorded => Ok(None),
            Applied::Unchanged { id } => Ok(Some(SyncOutcome::Applied(id))),
            Applied::Written {
                id,
                created,
                changed,
            } => {
                if recorded {
                    // It was in sync: someone changed (or deleted) it in Prefect.
                    tracing::warn!(target: "flowgate::manage", deployment = %row.name, ?changed, created, "drift repaired: the managed deployment was changed outside flowgate");
                } else {
                    tracing::info!(target: "flowgate::manage", deployment = %row.name, ?changed, created, generation = row.generation, "managed deployment applied");
                }
                Ok(Some(SyncOutcome::Applied(id)))
            }
            Applied::Removed => Ok(Some(SyncOutcome::Removed)),
        }
    }
}

/// Unix seconds, for the store's `updated_at`.
pub fn now() -> i64 {
    unix_now()
}
