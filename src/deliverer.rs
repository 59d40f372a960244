//! The deliverer: drains the outbox into Prefect, oldest first, each entry with its own
//! idempotency key, so an attempt that succeeded before a crash or timeout is never repeated
//! as a second run. Backoff with jitter between attempts; entries older than the configured
//! age go dead (visible to ops). When Prefect comes back, every waiting entry becomes due.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::breaker::Breaker;
use crate::domain::DeploymentRef;
use crate::error::{error_chain, GatewayError};
use crate::outbox::is_deferrable;
use crate::pipeline::dispatch::{create_run, RunRequest};
use crate::pipeline::resolve::DeploymentResolver;
use crate::pipeline::verify::unix_now;
use crate::prefect::{Deadline, PrefectClient, RetryPolicy};
use crate::store::{OutboxEntry, Store};

#[derive(Debug, Clone)]
pub struct DelivererSettings {
    /// An entry still undelivered after this long goes dead.
    pub max_age: Duration,
    pub backoff: RetryPolicy,
    pub batch_size: usize,
    /// Time for one delivery attempt (resolve + create), retries included.
    pub attempt_budget: Duration,
    /// How often Prefect's health is probed while entries wait.
    pub probe_every: Duration,
}

pub struct Deliverer {
    pub store: Arc<dyn Store>,
    pub resolver: DeploymentResolver,
    pub prefect: PrefectClient,
    pub breaker: Arc<Breaker>,
    pub wake: Arc<Notify>,
    pub settings: DelivererSettings,
}

impl Deliverer {
    /// Runs until `stop` turns true; an attempt in progress finishes first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut waiting = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let now = unix_now();
            let due = match self.store.due(now, self.settings.batch_size).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "cannot read the outbox");
                    vec![]
                }
            };
            let mut progressed = false;
            for entry in due {
                match self.deliver(&entry).await {
                    Attempt::Done => progressed = true,
                    Attempt::Later => {
                        waiting = true;
                        break;
                    }
                }
                if *stop.borrow() {
                    return;
                }
            }
            if progressed {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.probe_every) => {
                    if waiting && self.prefect.health(Duration::from_secs(2)).await.is_ok() {
                        tracing::info!("Prefect answers again; delivering every waiting entry now");
                        waiting = false;
                        if let Err(e) = self.store.wake_all(unix_now()).await {
                            tracing::error!(error = %error_chain(&e), "cannot reschedule the outbox");
                        }
                    }
                }
                _ = stop.changed() => {}
            }
        }
    }

    #[tracing::instrument(name = "deliver", skip_all, fields(delivery_id = %entry.id, route = %entry.route, attempt = entry.attempts + 1))]
    async fn deliver(&self, entry: &OutboxEntry) -> Attempt {
        let now = unix_now();
        let age = now.saturating_sub(entry.created_at).max(0) as u64;
        if age > self.settings.max_age.as_secs() {
            let reason = format!("undelivered after {age} s: {}", entry.last_error);
            self.settle(self.store.mark_dead(entry.id, reason.clone()).await, "dead");
            tracing::error!(reason, "delivery given up; the entry is dead");
            return Attempt::Done;
        }
        let result = match DeploymentRef::parse(&entry.deployment) {
            Ok(target) => {
                let run = RunRequest {
                    target: &target,
                    parameters: &entry.parameters,
                    tags: &entry.tags,
                    name: entry.name.as_deref(),
                    idempotency_key: &entry.idempotency_key,
                };
                create_run(
                    &run,
                    &self.resolver,
                    &self.prefect,
                    Deadline::after(self.settings.attempt_budget),
                )
                .await
            }
            Err(e) => {
                self.settle(
                    self.store
                        .mark_dead(entry.id, format!("bad deployment name: {e}"))
                        .await,
                    "dead",
                );
                return Attempt::Done;
            }
        };
        match result {
            Ok(run) => {
                self.breaker.success();
                self.settle(
                    self.store.mark_delivered(entry.id, run.flow_run_id).await,
                    "delivered",
                );
                tracing::info!(flow_run_id = %run.flow_run_id, "delivered from the outbox");
                Attempt::Done
            }
            Err(e) if is_deferrable(&e) => {
                self.breaker.failure();
                let wait = self.settings.backoff.delay(entry.attempts + 1, None);
                let next = now + i64::try_from(wait.as_secs().max(1)).unwrap_or(i64::MAX / 2);
                tracing::warn!(
                    code = e.code(),
                    wait_secs = wait.as_secs(),
                    "delivery deferred"
                );
                self.settle(
                    self.store.reschedule(entry.id, next, describe(&e)).await,
                    "rescheduled",
                );
                Attempt::Later
            }
            Err(e) => {
                // Prefect (or its schema) refuses these parameters: retrying cannot help.
                tracing::error!(code = e.code(), "delivery refused; the entry is dead");
                self.settle(self.store.mark_dead(entry.id, describe(&e)).await, "dead");
                Attempt::Done
            }
        }
    }

    fn settle(&self, result: Result<(), crate::store::StoreError>, what: &str) {
        if let Err(e) = result {
            // The entry stays queued; its next attempt reuses the idempotency key.
            tracing::error!(error = %error_chain(&e), what, "cannot record a delivery outcome");
        }
    }
}

enum Attempt {
    Done,
    Later,
}

/// The reason recorded on an entry: the code and the public detail, never a value.
fn describe(e: &GatewayError) -> String {
    format!("{}: {}", e.code(), e)
}
