//! The deliverer: drains the outbox into Prefect at the pace Prefect sets. As many deliveries
//! run at once as the concurrency limit allows (plus one waiting for the next free slot); each
//! route's entries go oldest first, routes taking turns by share. Every entry keeps its own
//! idempotency key, so an attempt that succeeded before a crash or timeout is never repeated
//! as a second run. Backoff with jitter between attempts; entries older than the configured
//! age go dead (visible to ops). When Prefect comes back, every waiting entry becomes due.

mod rate;
mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{watch, Notify};

pub use rate::DrainMeter;
use schedule::Schedule;

use crate::breaker::Breaker;
use crate::domain::DeploymentRef;
use crate::error::{error_chain, GatewayError};
use crate::outbox::{is_deferrable, Backlog};
use crate::pipeline::dispatch::{create_run, RunRequest};
use crate::pipeline::resolve::DeploymentResolver;
use crate::pipeline::verify::unix_now;
use crate::prefect::{Deadline, Patience, PrefectClient, RetryPolicy};
use crate::store::{OutboxEntry, Store};

#[derive(Debug, Clone)]
pub struct DelivererSettings {
    /// An entry still undelivered after this long goes dead.
    pub max_age: Duration,
    pub backoff: RetryPolicy,
    /// Entries read from the outbox at a time, per route.
    pub batch_size: usize,
    /// Time for one delivery attempt (resolve + create), retries included.
    pub attempt_budget: Duration,
    /// How often Prefect's health is probed while entries wait.
    pub probe_every: Duration,
    /// Each route's share of deliveries while several routes have entries waiting.
    pub shares: HashMap<String, u32>,
}

pub struct Deliverer {
    pub store: Arc<dyn Store>,
    pub resolver: DeploymentResolver,
    pub prefect: PrefectClient,
    pub breaker: Arc<Breaker>,
    pub wake: Arc<Notify>,
    pub backlog: Arc<Backlog>,
    pub meter: Arc<DrainMeter>,
    pub settings: DelivererSettings,
}

impl Deliverer {
    /// Runs until `stop` turns true; attempts in progress finish first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut schedule = Schedule::new(self.settings.shares.clone());
        let mut active = FuturesUnordered::new();
        // A delivery was deferred (Prefect failing): start no more until the next probe or a
        // new request.
        let mut paused = false;
        self.count_backlog().await;
        loop {
            if *stop.borrow() {
                break;
            }
            if !paused && schedule.needs_refill() {
                let per_route = self.settings.batch_size + schedule.in_flight();
                match self.store.due(unix_now(), per_route).await {
                    Ok(due) => schedule.offer(due),
                    Err(e) => {
                        tracing::error!(error = %error_chain(&e), "cannot read the outbox");
                        schedule.offer(vec![]);
                    }
                }
            }
            let room = active.len() < self.prefect.limit().snapshot().limit + 1;
            if !paused && room {
                if let Some(entry) = schedule.next() {
                    active.push(self.attempt(entry));
                    continue;
                }
            }
            tokio::select! {
                Some((entry, attempt)) = active.next(), if !active.is_empty() => {
                    schedule.finished(entry.id);
                    match attempt {
                        Attempt::Done => self.backlog.settled(&entry.route),
                        Attempt::Later => paused = true,
                    }
                }
                _ = self.wake.notified() => {
                    paused = false;
                    schedule.request_refill();
                }
                _ = tokio::time::sleep(self.settings.probe_every) => {
                    if paused && self.prefect.health(Duration::from_secs(2)).await.is_ok() {
                        tracing::info!("Prefect answers again; delivering every waiting entry now");
                        if let Err(e) = self.store.wake_all(unix_now()).await {
                            tracing::error!(error = %error_chain(&e), "cannot reschedule the outbox");
                        }
                    }
                    // Entries whose backoff has run out are tried again either way.
                    paused = false;
                    if schedule.is_idle() {
                        self.count_backlog().await;
                    }
                    schedule.request_refill();
                }
                _ = stop.changed() => {}
            }
        }
        while let Some((entry, attempt)) = active.next().await {
            if let Attempt::Done = attempt {
                self.backlog.settled(&entry.route);
            }
        }
    }

    /// Recounts what each route has waiting, from the store.
    async fn count_backlog(&self) {
        match self.store.queued_by_route().await {
            Ok(counts) => self.backlog.reset(counts),
            Err(e) => tracing::error!(error = %error_chain(&e), "cannot count the outbox"),
        }
    }

    async fn attempt(&self, entry: OutboxEntry) -> (OutboxEntry, Attempt) {
        let attempt = self.deliver(&entry).await;
        (entry, attempt)
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
                    Patience::UntilDeadline,
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
                self.meter.record(unix_now());
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
