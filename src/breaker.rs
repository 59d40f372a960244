//! A circuit breaker on Prefect: after `threshold` failures in a row, requests skip the
//! synchronous attempt and go straight to the outbox for `cooldown`; then one attempt probes.
//! Sender latency stays low during an outage.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    open_until_ms: AtomicI64,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU32::new(0),
            open_until_ms: AtomicI64::new(0),
        }
    }

    /// True while Prefect should not be tried synchronously.
    pub fn is_open(&self) -> bool {
        now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Relaxed);
    }

    pub fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.threshold {
            let until = now_ms() + i64::try_from(self.cooldown.as_millis()).unwrap_or(i64::MAX / 2);
            self.open_until_ms.store(until, Ordering::Relaxed);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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
        b.failure();
        assert!(b.is_open());
        b.success();
        assert!(!b.is_open());
    }

    #[test]
    fn a_zero_cooldown_lets_the_next_attempt_probe() {
        let b = Breaker::new(1, Duration::ZERO);
        b.failure();
        assert!(!b.is_open());
    }
}
