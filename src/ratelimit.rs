//! Keyed token buckets (governor) configured in plain words, with bounded key memory:
//! keys whose bucket has refilled are evicted on a schedule, so a flood of distinct
//! addresses cannot grow memory without bound. The clock is injectable for tests.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use serde::Deserialize;

/// A rate in plain words: `per_minute` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once before the sustained rate applies.
    pub burst: u32,
}

impl LimitSettings {
    /// The governor quota; `None` when either number is zero (checked at config time).
    pub fn quota(&self) -> Option<Quota> {
        let per_minute = NonZeroU32::new(self.per_minute)?;
        let burst = NonZeroU32::new(self.burst)?;
        Some(Quota::per_minute(per_minute).allow_burst(burst))
    }
}

/// How the buckets are found: foldhash, seeded per process. SipHash (the default) was 2 % of a
/// flood's CPU; keys are addresses (or one unit key), in a map pruned of idle ones.
type KeyHasher = foldhash::fast::RandomState;

/// One token bucket per key.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock + Clone = DefaultClock> {
    limiter: RateLimiter<K, DashMapStateStore<K, KeyHasher>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> std::fmt::Debug for KeyedLimiter<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("keys", &self.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K, DefaultClock> {
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedLimiter<K, C> {
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            limiter: RateLimiter::dashmap_with_clock_and_hasher(
                quota,
                clock.clone(),
                KeyHasher::default(),
            ),
            clock,
        }
    }

    /// `Err(wait)` when `key` is over its rate; `wait` is how long until one more is allowed.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys idle long enough (bucket full again, plus one emission interval, as governor
    /// counts it); returns the keys left.
    pub fn evict_idle(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.limiter.len()
    }

    /// Keys currently held: the memory gauge.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// `Retry-After` seconds for a wait: whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::{IpAddr, Ipv4Addr};

    fn limiter(
        per_minute: u32,
        burst: u32,
    ) -> (KeyedLimiter<IpAddr, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = LimitSettings { per_minute, burst }.quota().unwrap();
        (KeyedLimiter::with_clock(quota, clock.clone()), clock)
    }

    #[test]
    fn a_burst_is_allowed_then_the_wait_is_one_token() {
        let (l, _clock) = limiter(60, 5);
        let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        for _ in 0..5 {
            assert_eq!(l.check(&ip), Ok(()));
        }
        assert_eq!(l.check(&ip), Err(Duration::from_secs(1)));
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(l.check(&other), Ok(()), "another key is unaffected");
    }

    #[test]
    fn two_hundred_thousand_addresses_are_forgotten_after_the_idle_period() {
        let (l, clock) = limiter(120, 30);
        for i in 0..200_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(l.check(&ip), Ok(()));
        }
        assert_eq!(l.len(), 200_000);
        assert_eq!(l.evict_idle(), 200_000, "recent keys are kept");
        // 30 tokens at 120/min refill in 15 s; after that each key is indistinguishable from new.
        clock.advance(Duration::from_secs(16));
        assert_eq!(l.evict_idle(), 0);
        assert!(l.is_empty());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
