//! What a failed attempt to create a run means, for the sender, the deliverer and the breaker.
//! One table, used by the request path and the deliverer alike.

use std::time::Duration;

use crate::error::GatewayError;
use crate::prefect::PrefectError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No call slot was free: Prefect is busy with other calls. Not a failure of Prefect.
    Busy,
    /// 503, 429, 502/504, a timeout or a dropped connection: Prefect is saturated (or a proxy in
    /// front of it is). The concurrency limit slows the pace; the entry stays due.
    Overloaded { retry_after: Option<Duration> },
    /// No connection could be made: Prefect is down. Delivery pauses until a probe answers.
    Unreachable,
    /// The deployment does not exist (yet): the entry waits out a backoff.
    Missing,
    /// Prefect answered an error another attempt later may not repeat (500, refused
    /// credentials, an unreadable answer): the entry waits out a backoff.
    Failing,
    /// The request itself is refused (the deployment's schema, Prefect's 409, bad input):
    /// retrying cannot help.
    Refused,
}

impl Failure {
    /// Kept for later (queued, or left in the outbox) rather than refused.
    pub fn is_deferrable(self) -> bool {
        !matches!(self, Self::Refused)
    }

    /// Counts toward the circuit breaker: Prefect itself did not serve the call.
    pub fn counts_against_prefect(self) -> bool {
        matches!(
            self,
            Self::Overloaded { .. } | Self::Unreachable | Self::Failing
        )
    }
}

/// Most characters of a stored reason.
const MAX_REASON: usize = 300;

/// Why an attempt failed, as stored with the entry and shown to operators and API callers: the
/// code and the public detail, never a value. A failure to reach Prefect adds its cause chain
/// (a refused TLS certificate, a refused connection: no request data, and Prefect's URL carries
/// no credentials), cut to `MAX_REASON` characters.
pub fn describe(e: &GatewayError) -> String {
    let detail = match e {
        GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamTimeout(_) => {
            crate::error::error_chain(e)
        }
        _ => e.to_string(),
    };
    let full = format!("{}: {detail}", e.code());
    match full.char_indices().nth(MAX_REASON) {
        Some((cut, _)) => format!("{}…", &full[..cut]),
        None => full,
    }
}

pub fn classify(e: &GatewayError) -> Failure {
    match e {
        GatewayError::UpstreamUnavailable(p) | GatewayError::UpstreamTimeout(p) => match &**p {
            PrefectError::Busy => Failure::Busy,
            PrefectError::Connect(_) => Failure::Unreachable,
            PrefectError::RateLimited { retry_after } => Failure::Overloaded {
                retry_after: *retry_after,
            },
            PrefectError::Timeout | PrefectError::Transport(_) => {
                Failure::Overloaded { retry_after: None }
            }
            PrefectError::ServerError { status: 502..=504 } => {
                Failure::Overloaded { retry_after: None }
            }
            _ => Failure::Failing,
        },
        GatewayError::UpstreamError(_) => Failure::Failing,
        GatewayError::DeploymentNotFound(_) => Failure::Missing,
        _ => Failure::Refused,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::DeploymentRef;

    fn unavailable(e: PrefectError) -> Failure {
        classify(&GatewayError::UpstreamUnavailable(Arc::new(e)))
    }

    #[test]
    fn a_full_concurrency_limit_is_not_a_failure_of_prefect() {
        let busy = unavailable(PrefectError::Busy);
        assert_eq!(busy, Failure::Busy);
        assert!(busy.is_deferrable());
        assert!(!busy.counts_against_prefect());
    }

    #[test]
    fn overload_down_missing_and_refused_are_told_apart() {
        assert_eq!(
            unavailable(PrefectError::ServerError { status: 503 }),
            Failure::Overloaded { retry_after: None }
        );
        assert_eq!(
            unavailable(PrefectError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }),
            Failure::Overloaded {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            classify(&GatewayError::UpstreamTimeout(Arc::new(
                PrefectError::Timeout
            ))),
            Failure::Overloaded { retry_after: None }
        );
        assert_eq!(
            unavailable(PrefectError::ServerError { status: 500 }),
            Failure::Failing
        );
        let missing = classify(&GatewayError::DeploymentNotFound(
            DeploymentRef::parse("f/d").unwrap(),
        ));
        assert_eq!(missing, Failure::Missing);
        assert!(!missing.counts_against_prefect());
        let refused = classify(&GatewayError::ParametersRejected(vec![]));
        assert_eq!(refused, Failure::Refused);
        assert!(!refused.is_deferrable());
    }

    #[test]
    fn a_reason_names_the_cause_of_an_unreachable_prefect_and_stays_short() {
        let why = describe(&GatewayError::UpstreamUnavailable(Arc::new(
            PrefectError::ServerError { status: 503 },
        )));
        assert!(why.starts_with("upstream_unavailable: "), "{why}");
        assert!(why.contains("503"), "the cause is kept: {why}");
        let long = describe(&GatewayError::UpstreamUnavailable(Arc::new(
            PrefectError::Unexpected("x".repeat(2_000)),
        )));
        assert_eq!(long.chars().count(), MAX_REASON + 1, "{long}");
        let refused = describe(&GatewayError::ParametersRejected(vec![]));
        assert!(refused.starts_with("parameters_rejected: "), "{refused}");
    }
}
