//! When the deliverer may start attempts: always while Prefect serves; after an overload, a
//! short hold that grows while overloads continue (the concurrency limit cuts the pace too);
//! while Prefect cannot be reached, nothing until a health probe answers.

use std::time::Duration;

use tokio::time::Instant;

/// The first hold after an overload; it doubles per overload in a row, up to the probe interval.
const FIRST_HOLD: Duration = Duration::from_millis(25);

#[derive(Debug)]
pub enum Pace {
    Running,
    Held {
        until: Instant,
    },
    /// Prefect is unreachable: wait for a probe.
    Down,
}

#[derive(Debug)]
pub struct Pacer {
    pub pace: Pace,
    /// Overloads in a row (reset by a delivered entry).
    overloads: u32,
    max_hold: Duration,
}

impl Pacer {
    pub fn new(max_hold: Duration) -> Self {
        Self {
            pace: Pace::Running,
            overloads: 0,
            max_hold,
        }
    }

    /// Attempts may start now (a hold that has run out is over).
    pub fn may_start(&mut self, now: Instant) -> bool {
        match self.pace {
            Pace::Running => true,
            Pace::Held { until } if now >= until => {
                self.pace = Pace::Running;
                true
            }
            Pace::Held { .. } | Pace::Down => false,
        }
    }

    pub fn is_down(&self) -> bool {
        matches!(self.pace, Pace::Down)
    }

    pub fn served(&mut self) {
        self.overloads = 0;
    }

    /// Holds for the server's Retry-After, or a doubling hold; never past `max_hold`.
    pub fn overloaded(&mut self, now: Instant, retry_after: Option<Duration>) {
        self.overloads = self.overloads.saturating_add(1);
        let doubling = FIRST_HOLD.saturating_mul(1 << self.overloads.min(16).saturating_sub(1));
        let hold = retry_after.unwrap_or(doubling).min(self.max_hold);
        if !self.is_down() {
            let until = now + hold;
            self.pace = match self.pace {
                Pace::Held { until: held } if held > until => Pace::Held { until: held },
                _ => Pace::Held { until },
            };
        }
    }

    pub fn unreachable(&mut self) {
        self.pace = Pace::Down;
    }

    /// A probe answered: deliver again.
    pub fn reachable(&mut self) {
        self.pace = Pace::Running;
        self.overloads = 0;
    }

    /// When the loop must look again without any other event: the end of a hold.
    pub fn wake_at(&self) -> Option<Instant> {
        match self.pace {
            Pace::Held { until } => Some(until),
            Pace::Running | Pace::Down => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_double_while_overloads_continue_and_stay_capped() {
        let now = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(2));
        let mut holds = Vec::new();
        for _ in 0..10 {
            p.overloaded(now, None);
            holds.push(p.wake_at().map(|t| t - now));
            p.pace = Pace::Running;
        }
        assert_eq!(holds[0], Some(Duration::from_millis(25)));
        assert_eq!(holds[1], Some(Duration::from_millis(50)));
        assert_eq!(holds[9], Some(Duration::from_secs(2)), "capped");
        p.served();
        p.overloaded(now, None);
        assert_eq!(p.wake_at(), Some(now + Duration::from_millis(25)), "reset");
        assert!(!p.may_start(now));
        assert!(p.may_start(now + Duration::from_millis(25)));
    }

    #[test]
    fn retry_after_is_honoured_and_down_waits_for_a_probe() {
        let now = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(5));
        p.overloaded(now, Some(Duration::from_secs(3)));
        assert_eq!(p.wake_at(), Some(now + Duration::from_secs(3)));
        p.unreachable();
        p.overloaded(now, None);
        assert!(p.is_down(), "an overload does not end the wait for a probe");
        assert!(!p.may_start(now + Duration::from_secs(60)));
        p.reachable();
        assert!(p.may_start(now));
    }
}
