use std::time::Duration;

/// The cause of a failed connection or exchange, from either transport.
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong talking to Prefect. Never carries a request or response body.
#[derive(Debug, thiserror::Error)]
pub enum PrefectError {
    /// 404: no such deployment (by name or by id).
    #[error("Prefect answered 404 Not Found")]
    NotFound,
    /// 409: Prefect refused the parameters; `detail` is Prefect's message (may echo a value).
    #[error("Prefect refused the request with {status}")]
    Rejected { status: u16, detail: String },
    /// 401/403: Prefect refused flowgate's credentials.
    #[error("Prefect refused flowgate's credentials ({status})")]
    Unauthorized { status: u16 },
    /// 5xx other than a timeout-like stall.
    #[error("Prefect answered {status}")]
    ServerError { status: u16 },
    /// 429.
    #[error("Prefect is rate limiting (429)")]
    RateLimited { retry_after: Option<Duration> },
    /// The connection could not be made: nothing was sent.
    #[error("cannot connect to Prefect")]
    Connect(#[source] TransportError),
    /// The connection failed after the request may have been sent.
    #[error("the connection to Prefect failed")]
    Transport(#[source] TransportError),
    /// No answer within the call timeout.
    #[error("Prefect did not answer within the timeout")]
    Timeout,
    /// Every call slot was taken (at once, or for the whole time budget).
    #[error("Prefect is at its concurrency limit")]
    Busy,
    /// A 2xx whose body flowgate cannot read, or another unexpected status.
    #[error("unexpected answer from Prefect: {0}")]
    Unexpected(String),
}

impl PrefectError {
    /// Worth another attempt with the same idempotency key.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::ServerError { status: 502..=504 }
                | Self::RateLimited { .. }
                | Self::Connect(_)
                | Self::Transport(_)
                | Self::Timeout
        )
    }

    /// Another attempt later may well succeed: Prefect unreachable, overloaded, failing, or
    /// every call slot taken. (A refusal of the request itself is not.)
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Busy | Self::ServerError { .. }) || self.is_retryable()
    }

    /// Prefect is saturated or unreachable: the concurrency limit should come down. The same
    /// answers that are worth another attempt.
    pub fn is_overload(&self) -> bool {
        self.is_retryable()
    }

    /// The request may have reached Prefect and committed even though no answer came back.
    pub fn may_have_committed(&self) -> bool {
        matches!(
            self,
            Self::Transport(_) | Self::Timeout | Self::ServerError { status: 500 }
        )
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect(e.into())
        } else {
            Self::Transport(e.into())
        }
    }
}
