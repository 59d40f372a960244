//! A circuit breaker on Prefect: after `threshold` failures in a row, requests skip the
//! synchronous attempt and go straight to the outbox for `cooldown`; then exactly one request
//! probes (half-open) while the others keep queueing, until an answer closes or reopens it.
//! Sender latency stays low during an outage.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use crate::pipeline::verify::unix_now_ms as now_ms;

pub struct Breaker {
    threshold: u32,
    cooldown_ms: i64,
    failures: AtomicU32,
    open_until_ms: AtomicI64,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_ms: i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX / 2),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
        }
    }

    /// True while Prefect should not be tried synchronously (for metrics).
    pub fn is_open(&self) -> bool {
        self.tripped() && now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    /// May this request try Prefect? Always while closed; while open, no; once the cooldown
    /// is over, yes for exactly one caller (the probe), which re-arms the cooldown for the rest.
    pub fn admit(&self) -> bool {
        if !self.tripped() {
            return true;
        }
        let until = self.open_until_ms.load(Ordering::Relaxed);
        let now = now_ms();
        if now < until {
            return false;
        }
        self.open_until_ms
            .compare_exchange(
                until,
                now.saturating_add(self.cooldown_ms),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Relaxed);
    }

    pub fn failure(&self) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures >= self.threshold {
            let until = now_ms().saturating_add(self.cooldown_ms);
            self.open_until_ms.store(until, Ordering::Relaxed);
        }
    }

    fn tripped(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_failures_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_secs(60));
        b.failure();
        b.failure();
        assert!(!b.is_open());
        assert!(b.admit());
        b.failure();
        assert!(b.is_open());
        assert!(!b.admit());
        b.success();
        assert!(!b.is_open());
        assert!(b.admit());
    }

    #[test]
    fn after_the_cooldown_exactly_one_caller_probes() {
        let b = Breaker::new(1, Duration::from_secs(60));
        b.failure();
        b.open_until_ms.store(0, Ordering::Relaxed); // the cooldown is over
        let admitted = (0..100).filter(|_| b.admit()).count();
        assert_eq!(admitted, 1, "one probe while half-open, the rest queue");
        assert!(
            b.is_open(),
            "the probe re-armed the cooldown for the others"
        );
        b.failure();
        assert!(!b.admit(), "a failed probe keeps it open");
        b.success();
        assert!(b.admit());
    }
}
