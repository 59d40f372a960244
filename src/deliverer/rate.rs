//! Deliveries counted per second, for the drain-rate gauge and the total counter; attempts,
//! in all and by outcome.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::outbox::Failure;

/// Seconds the drain rate is averaged over.
pub const WINDOW_SECS: i64 = 10;

/// How the deliverer's turn with one outbox entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The run exists.
    Delivered,
    /// No call slot was free for the whole attempt.
    Busy,
    /// Prefect is saturated; the entry stays due.
    Overloaded,
    /// Prefect is down; delivery pauses.
    Unreachable,
    /// The deployment does not exist (yet); the entry waits out a backoff.
    Missing,
    /// Prefect answered an error; the entry waits out a backoff.
    Failing,
    /// Prefect or the schema refused the parameters; the entry is dead.
    Refused,
    /// Given up without an attempt (too old, or an unreadable deployment name); dead.
    Dead,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Self::Delivered,
        Self::Busy,
        Self::Overloaded,
        Self::Unreachable,
        Self::Missing,
        Self::Failing,
        Self::Refused,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Busy => "busy",
            Self::Overloaded => "overloaded",
            Self::Unreachable => "unreachable",
            Self::Missing => "missing",
            Self::Failing => "failing",
            Self::Refused => "refused",
            Self::Dead => "dead",
        }
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Busy => Self::Busy,
            Failure::Overloaded { .. } => Self::Overloaded,
            Failure::Unreachable => Self::Unreachable,
            Failure::Missing => Self::Missing,
            Failure::Failing => Self::Failing,
            Failure::Refused => Self::Refused,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Runs created from the outbox: a running total and the last seconds' counts; attempts.
#[derive(Debug)]
pub struct DrainMeter {
    /// (unix second, count) for the last `WINDOW_SECS` seconds.
    seconds: Mutex<Vec<(i64, u64)>>,
    delivered: Counter,
    attempts: Counter,
    outcomes: Family<OutcomeLabels, Counter>,
}

impl Default for DrainMeter {
    fn default() -> Self {
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        // Every outcome is served from the start, at 0, so a rate over it has a series.
        for outcome in Outcome::ALL {
            let _ = outcomes.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        Self {
            seconds: Mutex::default(),
            delivered: Counter::default(),
            attempts: Counter::default(),
            outcomes,
        }
    }
}

impl DrainMeter {
    pub fn delivered_counter(&self) -> Counter {
        self.delivered.clone()
    }

    /// Delivery attempts (calls toward Prefect) made by the deliverer since start.
    pub fn attempts_counter(&self) -> Counter {
        self.attempts.clone()
    }

    pub fn attempted(&self) {
        self.attempts.inc();
    }

    /// The deliverer's turns with an entry, by outcome.
    pub fn outcomes(&self) -> Family<OutcomeLabels, Counter> {
        self.outcomes.clone()
    }

    /// Counts how a turn with an entry ended.
    pub fn ended(&self, outcome: Outcome) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Runs created from the outbox since start.
    pub fn total(&self) -> u64 {
        self.delivered.get()
    }

    pub fn record(&self, now: i64) {
        self.delivered.inc();
        let mut seconds = self.seconds();
        match seconds.last_mut() {
            Some((second, count)) if *second == now => *count += 1,
            _ => seconds.push((now, 1)),
        }
        seconds.retain(|(second, _)| *second > now - WINDOW_SECS);
    }

    /// Runs per second over the last `WINDOW_SECS` whole seconds (the current one excluded).
    pub fn per_second(&self, now: i64) -> f64 {
        let done: u64 = self
            .seconds()
            .iter()
            .filter(|(second, _)| *second < now && *second >= now - WINDOW_SECS)
            .map(|(_, count)| count)
            .sum();
        done as f64 / WINDOW_SECS as f64
    }

    fn seconds(&self) -> std::sync::MutexGuard<'_, Vec<(i64, u64)>> {
        // Plain counts: a panicking holder cannot leave them half-updated.
        self.seconds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_covers_the_last_whole_seconds() {
        let meter = DrainMeter::default();
        for _ in 0..30 {
            meter.record(100);
        }
        for _ in 0..20 {
            meter.record(105);
        }
        assert_eq!(meter.per_second(105), 3.0, "second 105 is not over yet");
        assert_eq!(meter.per_second(106), 5.0);
        assert_eq!(meter.per_second(111), 2.0, "second 100 left the window");
        assert_eq!(meter.per_second(200), 0.0);
        assert_eq!(meter.delivered_counter().get(), 50);
    }

    #[test]
    fn every_outcome_is_served_from_the_start_and_counted_apart() {
        let meter = DrainMeter::default();
        meter.ended(Outcome::from(Failure::Overloaded { retry_after: None }));
        meter.ended(Outcome::Delivered);
        meter.ended(Outcome::Delivered);
        let count = |outcome: Outcome| {
            meter
                .outcomes()
                .get(&OutcomeLabels {
                    outcome: outcome.as_str(),
                })
                .map(|c| c.get())
        };
        assert_eq!(count(Outcome::Delivered), Some(2));
        assert_eq!(count(Outcome::Overloaded), Some(1));
        for outcome in Outcome::ALL {
            assert!(count(outcome).is_some(), "{outcome:?} has a series");
        }
        assert_eq!(count(Outcome::Dead), Some(0));
    }
}
