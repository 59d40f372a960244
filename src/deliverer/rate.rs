//! Deliveries counted per second, for the drain-rate gauge and the total counter; attempts.

use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;

/// Seconds the drain rate is averaged over.
pub const WINDOW_SECS: i64 = 10;

/// Runs created from the outbox: a running total and the last seconds' counts.
#[derive(Debug, Default)]
pub struct DrainMeter {
    /// (unix second, count) for the last `WINDOW_SECS` seconds.
    seconds: Mutex<Vec<(i64, u64)>>,
    delivered: Counter,
    attempts: Counter,
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
}
