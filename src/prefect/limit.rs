//! The cap on calls to Prefect in flight, fixed or adaptive.
//!
//! Adaptive mode is additive-increase / multiplicative-decrease, as in Netflix's
//! concurrency-limits: after a window of successful calls made while the limit was in use, the
//! limit grows by one; an overload answer (503, 429, a timeout, a dropped connection) cuts it to
//! 70 %, never below the minimum. A grown limit that fails at once doubles the window before the
//! next probe (up to a ceiling), so a Prefect that takes one write at a time (SQLite) settles at
//! one with a rare probe, while one that scales (PostgreSQL) climbs to what it can serve.
//! Until the first overload the limit is in slow start: it grows by one per base window
//! whatever its size, so a fast Prefect is used fully within a few thousand calls (each step also waits
//! out the calls started under the previous limit).

use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Successful calls per unit of limit before it grows by one.
const BASE_WINDOW: u32 = 16;
/// Largest multiple of the base window a failed probe can push the next probe to.
const MAX_WINDOW_FACTOR: u32 = 256;
/// What an overload leaves of the limit.
const DECREASE: f64 = 0.7;
/// How long after a request found no free slot the outbox's deliverer yields half the limit.
const PRESSURE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitMode {
    Fixed,
    Adaptive,
}

/// What a finished call says about Prefect's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered (any status that is not an overload).
    Served,
    /// 503, 429, a timeout or a dropped connection: too much, or Prefect is down.
    Overloaded,
}

/// The limiter's state, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSnapshot {
    pub limit: usize,
    pub in_flight: usize,
    pub overloads: u64,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    /// Bumped on every change of the limit: a call's signal counts only for the limit it ran under.
    epoch: u64,
    /// Served calls, made while the limit was in use, since the last change.
    served: u32,
    /// Base windows needed before the next increase.
    window_factor: u32,
    /// The last change was an increase not yet confirmed by a full window.
    probing: bool,
    /// No overload seen yet: grow by one per base window.
    slow_start: bool,
    /// The limit at which the last probe failed: below it the limit climbs at the base pace
    /// (back after an outage), from it on at the slowed pace.
    ceiling: Option<usize>,
    overloads: u64,
    /// When a request last found no free slot.
    refused_at: Option<Instant>,
    /// This replica's part of the configured maximum (all of it for one replica).
    max: usize,
}

#[derive(Debug)]
struct Inner {
    mode: LimitMode,
    min: usize,
    max: usize,
    state: Mutex<State>,
    freed: Notify,
}

/// Shared by every clone of the Prefect client: one limit per Prefect API.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit(Arc<Inner>);

impl ConcurrencyLimit {
    /// `min..=max` bounds the adaptive limit, which starts at `min`; a fixed limit is `max`.
    pub fn new(mode: LimitMode, min: usize, max: usize) -> Self {
        let max = max.max(1);
        let min = min.clamp(1, max);
        let limit = match mode {
            LimitMode::Fixed => max,
            LimitMode::Adaptive => min,
        };
        Self(Arc::new(Inner {
            mode,
            min,
            max,
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                epoch: 0,
                served: 0,
                window_factor: 1,
                probing: false,
                ceiling: None,
                slow_start: true,
                overloads: 0,
                refused_at: None,
                max,
            }),
            freed: Notify::new(),
        }))
    }

    pub fn snapshot(&self) -> LimitSnapshot {
        let s = self.state();
        LimitSnapshot {
            limit: s.limit,
            in_flight: s.in_flight,
            overloads: s.overloads,
        }
    }

    /// Divides the configured maximum among `replicas` sharing one Prefect: this one may have
    /// ⌈max / replicas⌉ calls in flight (never less than the minimum), so N replicas together
    /// send about what one would. A fixed limit is that share; an adaptive one is capped by it.
    pub fn share_among(&self, replicas: usize) {
        let share = self.0.max.div_ceil(replicas.max(1)).max(self.0.min);
        let mut s = self.state();
        if s.max == share {
            return;
        }
        tracing::info!(
            replicas,
            share,
            "Prefect concurrency divided among replicas"
        );
        s.max = share;
        let limit = match self.0.mode {
            LimitMode::Fixed => share,
            LimitMode::Adaptive => s.limit.min(share),
        };
        if limit != s.limit {
            s.limit = limit;
            s.served = 0;
            s.epoch += 1;
        }
        drop(s);
        self.0.freed.notify_waiters();
    }

    /// A slot now, or `None` when the limit is reached.
    pub fn try_acquire(&self) -> Option<Permit> {
        self.try_acquire_leaving(0)
    }

    /// A slot now for a request that can be queued instead, leaving `leave` slots free; a
    /// refusal is remembered (see `requests_refused_recently`).
    pub fn try_acquire_for_request(&self, leave: usize) -> Option<Permit> {
        let permit = self.try_acquire_leaving(leave);
        if permit.is_none() {
            self.state().refused_at = Some(Instant::now());
        }
        permit
    }

    /// A request found no free slot within the last second: the outbox's deliverer then keeps
    /// to half the limit, so fresh requests still go straight through while a backlog drains.
    pub fn requests_refused_recently(&self) -> bool {
        self.state()
            .refused_at
            .is_some_and(|at| at.elapsed() < PRESSURE)
    }

    /// A slot now if `leave` more would still be free after it, else `None`.
    fn try_acquire_leaving(&self, leave: usize) -> Option<Permit> {
        let mut s = self.state();
        if s.in_flight.saturating_add(leave) >= s.limit {
            return None;
        }
        s.in_flight += 1;
        Some(Permit {
            limit: self.clone(),
            epoch: s.epoch,
            // The limit is in use when this call fills at least half of it.
            saturated: s.in_flight * 2 >= s.limit,
            signal: None,
        })
    }

    /// Waits for a slot until `deadline`; `None` if none came.
    pub async fn acquire(&self, deadline: Instant) -> Option<Permit> {
        loop {
            let freed = self.0.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(permit) = self.try_acquire() {
                return Some(permit);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a few
        // assignments with no call out in between.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, epoch: u64, saturated: bool, signal: Option<Signal>) {
        let grew = {
            let mut s = self.state();
            s.in_flight = s.in_flight.saturating_sub(1);
            if signal == Some(Signal::Overloaded) {
                s.overloads += 1;
            }
            let before = s.limit;
            if self.0.mode == LimitMode::Adaptive && epoch == s.epoch {
                match signal {
                    Some(Signal::Served) if saturated => self.served(&mut s),
                    Some(Signal::Overloaded) => self.overloaded(&mut s),
                    _ => {}
                }
            }
            s.limit > before
        };
        if grew {
            self.0.freed.notify_waiters();
        }
        self.0.freed.notify_one();
    }

    fn served(&self, s: &mut State) {
        s.served += 1;
        let slowed = s.ceiling.is_some_and(|c| s.limit + 1 >= c);
        let factor = if slowed { s.window_factor } else { 1 };
        let size = if s.slow_start {
            1
        } else {
            u32::try_from(s.limit).unwrap_or(u32::MAX)
        };
        let window = BASE_WINDOW.saturating_mul(factor).saturating_mul(size);
        if s.served < window {
            return;
        }
        if s.probing && s.ceiling.is_some_and(|c| s.limit >= c) {
            // The level that failed before held for a whole window: probe at the base pace again.
            s.ceiling = None;
            s.window_factor = 1;
        }
        s.probing = false;
        if s.limit < s.max {
            s.limit += 1;
            s.probing = true;
            tracing::debug!(
                limit = s.limit,
                "Prefect keeps up; concurrency limit raised"
            );
        }
        s.served = 0;
        s.epoch += 1;
    }

    fn overloaded(&self, s: &mut State) {
        s.slow_start = false;
        if s.probing {
            s.window_factor = (s.window_factor * 2).min(MAX_WINDOW_FACTOR);
            s.ceiling = Some(s.limit);
            s.probing = false;
        }
        let cut = ((s.limit as f64) * DECREASE).floor() as usize;
        let limit = cut.clamp(self.0.min, s.max);
        if limit != s.limit {
            tracing::debug!(
                from = s.limit,
                to = limit,
                "Prefect is overloaded; concurrency limit lowered"
            );
        }
        s.limit = limit;
        s.served = 0;
        s.epoch += 1;
    }
}

/// A call slot. Dropped without a signal, it frees the slot and teaches the limit nothing.
#[derive(Debug)]
pub struct Permit {
    limit: ConcurrencyLimit,
    epoch: u64,
    saturated: bool,
    signal: Option<Signal>,
}

impl Permit {
    pub fn record(mut self, signal: Signal) {
        self.signal = Some(signal);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limit.release(self.epoch, self.saturated, self.signal);
    }
}

#[cfg(test)]
mod tests;
