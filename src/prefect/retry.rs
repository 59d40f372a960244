//! Bounded retries for calls made idempotent by a key, inside the sender's time budget.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::PrefectError;

/// The moment a request's time budget runs out.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn instant(&self) -> Instant {
        self.0
    }
}

/// How many attempts, and how long between them: `base · 2ⁿ` capped at `max`, with full jitter
/// on the upper half, or the server's `Retry-After` when it gave one.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// What a retried call returned, and whether an earlier attempt may have committed already.
#[derive(Debug)]
pub struct Retried<T> {
    pub value: T,
    pub after_uncertain_attempt: bool,
}

/// Runs `call` until it succeeds, fails for good, runs out of attempts, or the next wait would
/// pass the deadline. `call` gets the time left for that attempt.
pub async fn retry<T, F, Fut>(
    policy: RetryPolicy,
    deadline: Deadline,
    call_timeout: Duration,
    mut call: F,
) -> Result<Retried<T>, PrefectError>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, PrefectError>>,
{
    let mut uncertain = false;
    let mut attempt = 1;
    loop {
        let left = deadline.remaining();
        if left.is_zero() {
            return Err(PrefectError::Timeout);
        }
        match call(call_timeout.min(left)).await {
            Ok(value) => {
                return Ok(Retried {
                    value,
                    after_uncertain_attempt: uncertain,
                })
            }
            Err(e) => {
                uncertain |= e.may_have_committed();
                let wait = policy.delay(attempt, e.retry_after());
                if !e.is_retryable() || attempt >= policy.attempts || wait >= deadline.remaining() {
                    return Err(e);
                }
                tracing::warn!(attempt, error = %e, wait_ms = wait.as_millis() as u64, "retrying Prefect call");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const POLICY: RetryPolicy = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
    };

    #[test]
    fn delays_grow_and_stay_capped() {
        let ms = Duration::from_millis;
        let policy = RetryPolicy {
            attempts: 10,
            base_delay: ms(100),
            max_delay: ms(1000),
        };
        // Jitter keeps a delay within [exp/2, exp] for exp = min(base · 2ⁿ⁻¹, max): until the cap,
        // each attempt's shortest wait is the previous attempt's longest, whatever is drawn.
        let bounds = [
            (1, ms(50), ms(100)),
            (2, ms(100), ms(200)),
            (3, ms(200), ms(400)),
            (4, ms(400), ms(800)),
            (5, ms(500), ms(1000)),
            (6, ms(500), ms(1000)),
            (40, ms(500), ms(1000)),
            (u32::MAX, ms(500), ms(1000)),
        ];
        let mut longest_before = Duration::ZERO;
        for (attempt, low, high) in bounds {
            let drawn: Vec<Duration> = (0..200).map(|_| policy.delay(attempt, None)).collect();
            for d in &drawn {
                assert!(
                    (low..=high).contains(d),
                    "attempt {attempt}: {d:?} outside {low:?}..={high:?}"
                );
            }
            if attempt <= 4 {
                let shortest = drawn.iter().min().copied().unwrap_or_default();
                assert!(
                    shortest >= longest_before,
                    "attempt {attempt} waited {shortest:?}, less than an earlier {longest_before:?}"
                );
                longest_before = drawn.iter().max().copied().unwrap_or_default();
            }
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[tokio::test]
    async fn retries_retryable_errors_up_to_the_limit() {
        let calls = AtomicU32::new(0);
        let result: Result<Retried<()>, _> = retry(
            POLICY,
            Deadline::after(Duration::from_secs(5)),
            Duration::from_secs(1),
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(PrefectError::ServerError { status: 503 }) }
            },
        )
        .await;
        assert!(matches!(
            result,
            Err(PrefectError::ServerError { status: 503 })
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_a_refusal_and_reports_uncertain_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<Retried<()>, _> = retry(
            POLICY,
            Deadline::after(Duration::from_secs(5)),
            Duration::from_secs(1),
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(PrefectError::NotFound) }
            },
        )
        .await;
        assert!(matches!(result, Err(PrefectError::NotFound)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let result = retry(
            POLICY,
            Deadline::after(Duration::from_secs(5)),
            Duration::from_secs(1),
            |_| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(PrefectError::Timeout)
                    } else {
                        Ok(7)
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(result.value, 7);
        assert!(result.after_uncertain_attempt);
    }

    #[tokio::test]
    async fn an_expired_deadline_makes_no_call() {
        let calls = AtomicU32::new(0);
        let result: Result<Retried<()>, _> = retry(
            POLICY,
            Deadline::after(Duration::ZERO),
            Duration::from_secs(1),
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            },
        )
        .await;
        assert!(matches!(result, Err(PrefectError::Timeout)));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
