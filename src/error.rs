//! `GatewayError`: every way a request can fail, each with one status and one stable code.
//! Bodies are `application/problem+json`; 5xx details are generic and the cause goes to the log.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::domain::{DeploymentRef, FieldError, IdempotencyKeyError};
use crate::prefect::PrefectError;
pub use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::request_log::RequestNote;

/// The problems' media type, built once (a `&str` is copied into a new value per answer).
const PROBLEM_JSON: header::HeaderValue =
    header::HeaderValue::from_static("application/problem+json");

/// Seconds a sender should wait before retrying a 503.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 5;
/// Seconds a sender should wait when the target deployment does not exist (yet).
pub const RETRY_AFTER_DEPLOYMENT_SECS: u64 = 30;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// 404 `not_found`: no such path.
    #[error("no such path")]
    NotFound,
    /// 404 `unknown_route`: `/hooks/{route}` names no configured route.
    #[error("no route named \"{0}\"")]
    UnknownRoute(String),
    /// 405 `method_not_allowed`.
    #[error("method not allowed; use {allowed}")]
    MethodNotAllowed { allowed: &'static str },
    /// 413 `payload_too_large`: the body is over the route's cap.
    #[error("the body is larger than this route's limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 415 `unsupported_media_type`: a Content-Type the route does not accept.
    #[error("this route accepts {accepted}")]
    UnsupportedMediaType { accepted: String },
    /// 400 `malformed_body`: the body is not valid JSON or form data.
    #[error("{0}")]
    MalformedBody(String),
    /// 401 `missing_signature`: the scheme's signature header is absent.
    #[error("the {0} header is missing")]
    MissingSignature(String),
    /// 401 `invalid_signature`: malformed, or no signature matches an active secret.
    #[error("the signature does not match")]
    InvalidSignature,
    /// 401 `timestamp_out_of_window`: the signed timestamp is too old or in the future.
    #[error("{}", if *too_new { format!("the signed timestamp is more than {window} s in the future") } else { format!("the signed timestamp is older than {window} s") })]
    TimestampOutOfWindow { too_new: bool, window: u64 },
    /// 401 `invalid_token`: no or unknown bearer token.
    #[error("a valid bearer token is required")]
    InvalidToken,
    /// 403 `ip_not_allowed`: the client address is not on the route's allow-list.
    #[error("this client address may not call this route")]
    IpNotAllowed,
    /// 403 `origin_not_allowed`: a CORS preflight from an origin (or for a method/header) the route does not allow.
    #[error("this origin may not call this route from a browser")]
    OriginNotAllowed,
    /// 408 `request_timeout`: the body did not arrive in time.
    #[error("the request body did not arrive within {0} ms")]
    RequestTimeout(u64),
    /// 429 `rate_limited` + Retry-After.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 400 `body_too_complex`: JSON nested too deep, or too many fields.
    #[error("the body is too complex: {0}")]
    BodyTooComplex(String),
    /// 400 `invalid_idempotency_key`.
    #[error("{0}")]
    InvalidIdempotencyKey(#[from] IdempotencyKeyError),
    /// 422 `validation_failed`: one entry per failing field.
    #[error("{} field(s) failed validation", .0.len())]
    ValidationFailed(Vec<FieldError>),
    /// 422 `reload_failed`: the configuration file (or a secret it names) is invalid; the
    /// running configuration stays. `errors` names each problem's field path.
    #[error("the configuration was not reloaded: {} problem(s); the running configuration stays", .0.len())]
    ReloadFailed(Vec<FieldError>),
    /// 422 `parameters_rejected`: Prefect refused the parameters (its reason, without echoing values).
    #[error("the deployment refused the flow parameters")]
    ParametersRejected(Vec<FieldError>),
    /// 503 `deployment_not_found` + Retry-After: Prefect has no such deployment.
    #[error("deployment {0} was not found in Prefect")]
    DeploymentNotFound(DeploymentRef),
    /// 404 `unknown_deployment`: the API's caller named a deployment Prefect does not have.
    #[error("Prefect has no deployment {0}")]
    UnknownDeployment(DeploymentRef),
    /// 503 `upstream_unavailable` + Retry-After: Prefect is down, busy or failing.
    #[error("Prefect is unavailable")]
    UpstreamUnavailable(#[source] Arc<PrefectError>),
    /// 504 `upstream_timeout`: Prefect did not answer in time.
    #[error("Prefect did not answer in time")]
    UpstreamTimeout(#[source] Arc<PrefectError>),
    /// 503 `store_unavailable` + Retry-After: Prefect could not take the request and it could
    /// not be stored either; nothing was accepted.
    #[error("the request could not be stored; nothing was accepted")]
    StoreUnavailable,
    /// 502 `upstream_error`: Prefect answered something flowgate cannot use (e.g. refused its credentials).
    #[error("Prefect gave an unexpected answer")]
    UpstreamError(#[source] Arc<PrefectError>),
    /// 409 `run_finished`: the run is already final (or Prefect refused the change).
    #[error("{0}")]
    RunFinished(String),
    /// 403 `forbidden`: the API token may not use this deployment or lacks the scope.
    #[error("{0}")]
    Forbidden(String),
    /// 400 `invalid_query`: an admin filter or cursor that cannot be read.
    #[error("{0}")]
    InvalidQuery(String),
    /// 409 `replay_not_allowed`: the request failed authentication; a replay must not launder it.
    #[error("{0}")]
    ReplayNotAllowed(String),
    /// 409 `replay_unavailable`: what a replay needs (the whole body) was not kept.
    #[error("{0}")]
    ReplayUnavailable(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::UnknownRoute(_) | Self::UnknownDeployment(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MalformedBody(_) | Self::BodyTooComplex(_) | Self::InvalidIdempotencyKey(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::MissingSignature(_)
            | Self::InvalidSignature
            | Self::TimestampOutOfWindow { .. }
            | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::IpNotAllowed | Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ValidationFailed(_) | Self::ParametersRejected(_) | Self::ReloadFailed(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::DeploymentNotFound(_) | Self::UpstreamUnavailable(_) | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamError(_) => StatusCode::BAD_GATEWAY,
            Self::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RunFinished(_) => StatusCode::CONFLICT,
            Self::ReplayNotAllowed(_) | Self::ReplayUnavailable(_) => StatusCode::CONFLICT,
        }
    }

    /// The stable, documented code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::UnknownRoute(_) => "unknown_route",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::MalformedBody(_) => "malformed_body",
            Self::BodyTooComplex(_) => "body_too_complex",
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::MissingSignature(_) => "missing_signature",
            Self::InvalidSignature => "invalid_signature",
            Self::TimestampOutOfWindow { .. } => "timestamp_out_of_window",
            Self::InvalidToken => "invalid_token",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::RequestTimeout(_) => "request_timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::ValidationFailed(_) => "validation_failed",
            Self::ReloadFailed(_) => "reload_failed",
            Self::ParametersRejected(_) => "parameters_rejected",
            Self::DeploymentNotFound(_) => "deployment_not_found",
            Self::UnknownDeployment(_) => "unknown_deployment",
            Self::UpstreamUnavailable(_) => "upstream_unavailable",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::UpstreamError(_) => "upstream_error",
            Self::InvalidQuery(_) => "invalid_query",
            Self::Forbidden(_) => "forbidden",
            Self::RunFinished(_) => "run_finished",
            Self::ReplayNotAllowed(_) => "replay_not_allowed",
            Self::ReplayUnavailable(_) => "replay_unavailable",
            Self::StoreUnavailable => "store_unavailable",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::DeploymentNotFound(_) => Some(RETRY_AFTER_DEPLOYMENT_SECS),
            Self::UpstreamUnavailable(_) | Self::StoreUnavailable => {
                Some(RETRY_AFTER_UNAVAILABLE_SECS)
            }
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            Self::ValidationFailed(e) | Self::ParametersRejected(e) | Self::ReloadFailed(e) => {
                Some(e)
            }
            _ => None,
        }
    }

    /// Attaches the request id, making this a response.
    pub fn with_request_id(self, request_id: &RequestId) -> ApiError {
        ApiError {
            error: self,
            request_id: *request_id,
        }
    }
}

/// A `GatewayError` for one request: what handlers return.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    #[source]
    pub error: GatewayError,
    pub request_id: RequestId,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        let (mut response, note) = self.answer();
        response.extensions_mut().insert(note);
        response
    }
}

impl ApiError {
    /// The problem answer, and the note for the request's log line (the caller hands it on:
    /// `error_response` as a response extension, the webhook handler on the request).
    pub fn answer(&self) -> (HttpResponse, RequestNote) {
        let status = self.error.status();
        let code = self.error.code();
        // The request's one log line carries the code; a server error's cause goes with it.
        let mut note = RequestNote::code(code);
        if status.is_server_error() {
            note = note.with_detail(&error_chain(&self.error));
        }
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        if let Some(secs) = self.error.retry_after() {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let GatewayError::MethodNotAllowed { allowed } = self.error {
            response.insert_header((header::ALLOW, allowed));
        }
        if let GatewayError::InvalidToken = self.error {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        // Sized for a 422 naming a dozen fields: no regrowth while it is written.
        let mut body = Vec::with_capacity(1024);
        Problem::new(&self.error, self.request_id.as_str()).write_json(&mut body);
        (response.body(body), note)
    }
}

/// `error: cause: cause…`, for logs only.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
