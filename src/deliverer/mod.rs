//! The deliverer: drains the outbox into Prefect at the pace Prefect sets. Up to twice the
//! concurrency limit's deliveries run at once (the limit itself caps the calls in flight; the
//! rest are writing their outcome or waiting for a slot); each route's entries go in the order
//! they became due, routes taking turns by share. Every entry keeps its own idempotency key,
//! so an attempt that succeeded before a crash or timeout is never repeated as a second run.
//!
//! What a failure does (see `outbox::Failure`): an overload keeps the entry due and holds
//! briefly (the limit slows the pace); an unreachable Prefect pauses delivery until a health
//! probe answers, the entries untouched; a missing deployment or a failing Prefect puts the
//! entry on a backoff with jitter; a refusal makes it dead. Entries older than the configured
//! age go dead (visible to ops). Store work per wake is a seek per route with entries waiting.

mod pace;
mod rate;
mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use pace::Pacer;
pub use rate::{DrainMeter, Outcome, OutcomeLabels};
use schedule::Schedule;

use crate::breaker::Breaker;
use crate::domain::DeploymentRef;
use crate::error::{error_chain, GatewayError};
use crate::outbox::{classify, describe, Failure};
use crate::pipeline::dispatch::{create_run, RunRequest};
use crate::pipeline::resolve::DeploymentResolver;
use crate::pipeline::verify::unix_now;
use crate::prefect::{Deadline, Patience, PrefectClient, RetryPolicy};
use crate::store::{OutboxEntry, Store};

/// How often the deliverer writes its one summary line while it works.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DelivererSettings {
    /// An entry still undelivered after this long goes dead.
    pub max_age: Duration,
    pub backoff: RetryPolicy,
    /// Entries read from the outbox at a time, per route.
    pub batch_size: usize,
    /// Time for one delivery attempt (resolve + create), retries included.
    pub attempt_budget: Duration,
    /// How often Prefect's health is probed while it is unreachable, and the longest hold
    /// after overloads.
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
    pub meter: Arc<DrainMeter>,
    pub settings: DelivererSettings,
}

/// How one attempt ended.
enum Attempt {
    /// Delivered: the run exists.
    Delivered,
    /// Given up (too old, or refused): kept for ops.
    Dead,
    /// Still due: back at the front of its route's queue.
    Again(Failure),
    /// Due again after a backoff.
    Later(Failure),
}

/// What happened since the last summary line.
#[derive(Default)]
struct Tally {
    delivered: u64,
    deferred: u64,
    dead: u64,
}

impl Deliverer {
    /// Runs until `stop` turns true; attempts in progress finish first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut schedule = Schedule::new(self.settings.shares.clone());
        let mut active = FuturesUnordered::new();
        let mut pacer = Pacer::new(self.settings.probe_every);
        let mut tally = Tally::default();
        let mut tick = tokio::time::interval(self.settings.probe_every);
        let mut summary = tokio::time::interval(SUMMARY_EVERY);
        loop {
            if *stop.borrow() {
                break;
            }
            let go = pacer.may_start(Instant::now());
            if go && schedule.needs_refill() {
                self.refill(&mut schedule).await;
            }
            let room = active.len() < self.concurrency();
            if go && room {
                if let Some(entry) = schedule.next() {
                    active.push(self.attempt(entry));
                    continue;
                }
            }
            let hold_over = pacer.wake_at();
            tokio::select! {
                Some((entry, attempt)) = active.next(), if !active.is_empty() => {
                    schedule.finished(entry.id);
                    match attempt {
                        Attempt::Delivered => pacer.served(),
                        Attempt::Dead => tally.dead += 1,
                        Attempt::Again(failure) => {
                            tally.deferred += 1;
                            self.pause_for(&mut pacer, failure);
                            schedule.put_back(entry);
                        }
                        Attempt::Later(failure) => {
                            tally.deferred += 1;
                            self.pause_for(&mut pacer, failure);
                        }
                    }
                }
                // Ignored while Prefect is down or a hold runs: a new request costs the
                // deliverer nothing then (the permit waits, coalesced, for the next look).
                _ = self.wake.notified(), if go => {
                    if schedule.wants_more(&self.store.counts()) {
                        schedule.request_refill();
                    }
                }
                _ = sleep_until(hold_over), if hold_over.is_some() => {}
                _ = tick.tick() => {
                    if pacer.is_down() && self.prefect.health(Duration::from_secs(2)).await.is_ok() {
                        tracing::info!("Prefect answers again; delivery resumed");
                        pacer.reachable();
                    }
                    // Entries whose backoff ran out are read on the next look.
                    schedule.request_refill();
                }
                _ = summary.tick() => self.summarize(&mut tally),
                _ = stop.changed() => {}
            }
        }
        while active.next().await.is_some() {}
    }

    /// Deliveries at once: twice the limit (the limit caps the calls; the rest are recording an
    /// outcome or next in line), or half the limit while requests find no free slot, so fresh
    /// requests go straight to a fast Prefect instead of queueing behind the backlog.
    fn concurrency(&self) -> usize {
        let limit = self.prefect.limit();
        let n = limit.snapshot().limit;
        if limit.requests_refused_recently() {
            n.div_ceil(2)
        } else {
            2 * n + 1
        }
    }

    async fn refill(&self, schedule: &mut Schedule) {
        let per_route = self.settings.batch_size + schedule.in_flight();
        match self.store.due(unix_now(), per_route).await {
            Ok(due) => schedule.offer(due),
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "cannot read the outbox");
                schedule.offer(vec![]);
            }
        }
    }

    fn pause_for(&self, pacer: &mut Pacer, failure: Failure) {
        match failure {
            Failure::Overloaded { retry_after } => pacer.overloaded(Instant::now(), retry_after),
            Failure::Unreachable => {
                if !pacer.is_down() {
                    tracing::warn!(
                        probe_every_secs = self.settings.probe_every.as_secs(),
                        "Prefect unreachable; delivery paused until it answers"
                    );
                }
                pacer.unreachable();
            }
            Failure::Busy | Failure::Missing | Failure::Failing | Failure::Refused => {}
        }
    }

    /// One line per `SUMMARY_EVERY` while entries move; none when idle.
    fn summarize(&self, tally: &mut Tally) {
        let total = self.meter.total();
        let delivered = total.saturating_sub(tally.delivered);
        if delivered > 0 || tally.deferred > 0 || tally.dead > 0 {
            tracing::info!(
                delivered,
                deferred = tally.deferred,
                dead = tally.dead,
                waiting = self.store.counts().queued_total(),
                "outbox delivery"
            );
        }
        *tally = Tally {
            delivered: total,
            ..Tally::default()
        };
    }

    async fn attempt(&self, mut entry: OutboxEntry) -> (OutboxEntry, Attempt) {
        let attempt = self.deliver(&mut entry).await;
        (entry, attempt)
    }

    #[tracing::instrument(level = "debug", name = "deliver", skip_all, fields(delivery_id = %entry.id, route = %entry.route, attempt = entry.attempts + 1))]
    async fn deliver(&self, entry: &mut OutboxEntry) -> Attempt {
        let now = unix_now();
        let age = now.saturating_sub(entry.created_at).max(0) as u64;
        if age > self.settings.max_age.as_secs() {
            let reason = format!("undelivered after {age} s: {}", entry.last_error);
            self.meter.ended(Outcome::Dead);
            self.settle(self.store.mark_dead(entry.id, reason).await, "dead");
            tracing::warn!(delivery_id = %entry.id, "delivery given up; the entry is dead");
            return Attempt::Dead;
        }
        let result = match DeploymentRef::parse(&entry.deployment) {
            Ok(target) => {
                self.meter.attempted();
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
                let reason = format!("bad deployment name: {e}");
                self.meter.ended(Outcome::Dead);
                self.settle(self.store.mark_dead(entry.id, reason).await, "dead");
                return Attempt::Dead;
            }
        };
        match result {
            Ok(run) => {
                self.meter.ended(Outcome::Delivered);
                self.breaker.success();
                self.settle(
                    self.store.mark_delivered(entry.id, run.flow_run_id).await,
                    "delivered",
                );
                self.meter.record(unix_now());
                tracing::debug!(flow_run_id = %run.flow_run_id, "delivered from the outbox");
                Attempt::Delivered
            }
            Err(e) => self.defer(entry, &e, now).await,
        }
    }

    async fn defer(&self, entry: &mut OutboxEntry, e: &GatewayError, now: i64) -> Attempt {
        let failure = classify(e);
        self.meter.ended(Outcome::from(failure));
        if failure.counts_against_prefect() {
            self.breaker.failure();
        }
        let reason = describe(e);
        tracing::debug!(code = e.code(), ?failure, "delivery deferred");
        match failure {
            Failure::Refused => {
                // Prefect (or its schema) refuses these parameters: retrying cannot help.
                tracing::warn!(delivery_id = %entry.id, code = e.code(), "delivery refused; the entry is dead");
                self.settle(self.store.mark_dead(entry.id, reason).await, "dead");
                Attempt::Dead
            }
            Failure::Busy => Attempt::Again(failure),
            Failure::Overloaded { .. } | Failure::Unreachable => {
                // Counted and explained, still due: the pace, not the entry, waits.
                self.settle(
                    self.store
                        .reschedule(entry.id, entry.next_attempt_at, reason.clone())
                        .await,
                    "attempt",
                );
                entry.attempts += 1;
                entry.last_error = reason;
                Attempt::Again(failure)
            }
            Failure::Missing | Failure::Failing => {
                let wait = self.settings.backoff.delay(entry.attempts + 1, None);
                let next = now + i64::try_from(wait.as_secs().max(1)).unwrap_or(i64::MAX / 2);
                self.settle(
                    self.store.reschedule(entry.id, next, reason).await,
                    "rescheduled",
                );
                Attempt::Later(failure)
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
