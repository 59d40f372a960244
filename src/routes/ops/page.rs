//! How the ops page answers: HTML with its security headers, only on the admin listener and
//! only when an admin token is configured (404 otherwise, like the admin API).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use secrecy::SecretString;

use super::views::{Chrome, Message};
use crate::error::GatewayError;
use crate::request_id::RequestId;
use crate::request_log::RequestNote;
use crate::routes::admin::AdminToken;
use crate::startup::AdminPort;

/// The page needs no script, frame, font or image: only its own inline style and its own forms.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// Headers on every answer of the ops page (errors and redirects too).
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// Why a request gets no page: the answer is made by [`Refused::answer`].
pub enum Refused {
    /// The public listener, or no admin token configured: the admin API's 404.
    NotFound(RequestId),
    /// A form without this session's CSRF token (or without a session): 403.
    CsrfFailed,
}

impl Refused {
    pub fn answer(self) -> HttpResponse {
        match self {
            Self::NotFound(request_id) => GatewayError::NotFound
                .with_request_id(&request_id)
                .error_response(),
            Self::CsrfFailed => csrf_failed(),
        }
    }
}

/// The admin token, if this request came to the admin listener and a token is configured.
pub fn gate(req: &HttpRequest) -> Result<SecretString, Refused> {
    let admin = req.app_data::<web::Data<AdminPort>>();
    let token = req.app_data::<web::Data<AdminToken>>();
    let found = match (admin, token) {
        (Some(admin), Some(token)) if admin.0 == Some(req.app_config().local_addr().port()) => {
            token.0.clone()
        }
        _ => None,
    };
    found.ok_or_else(|| Refused::NotFound(request_id(req)))
}

pub fn request_id(req: &HttpRequest) -> RequestId {
    RequestId::of(req)
}

/// A rendered template as an HTML answer.
pub fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the ops page");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// A short page saying what went wrong, with a stable code (also on the request's log line).
pub fn message(
    status: StatusCode,
    code: &'static str,
    text: &str,
    csrf: Option<String>,
) -> HttpResponse {
    let mut response = html(
        status,
        &Message {
            chrome: Chrome {
                title: format!("{} {code}", status.as_u16()),
                csrf,
            },
            code: code.to_owned(),
            text: text.to_owned(),
        },
    );
    response.extensions_mut().insert(RequestNote::code(code));
    response
}

/// 403 `csrf_failed`: a form without this session's token (or without a session).
pub fn csrf_failed() -> HttpResponse {
    message(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "This form is out of date or did not come from this page. Reload the page and try again.",
        None,
    )
}

/// 303 to `location`, optionally with a `Set-Cookie`.
pub fn see_other(location: &str, cookie: Option<String>) -> HttpResponse {
    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::LOCATION, location));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.insert_header((header::SET_COOKIE, cookie));
    }
    response.finish()
}
