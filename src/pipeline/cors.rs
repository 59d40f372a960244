//! CORS for browser senders: preflight answers, and the headers on actual responses.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::HttpResponse;

use crate::error::GatewayError;
use crate::route_table::Route;

/// Answers `OPTIONS /hooks/{route}`: 204 with the allowances, or 403 `origin_not_allowed`.
pub fn preflight(route: &Route, request: &HeaderMap) -> Result<HttpResponse, GatewayError> {
    let policy = route.cors().ok_or(GatewayError::OriginNotAllowed)?;
    let origin = request
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or(GatewayError::OriginNotAllowed)?;
    let allowed = policy
        .allow_origin(origin)
        .ok_or(GatewayError::OriginNotAllowed)?;
    let method_ok = request
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m == "POST");
    let headers_ok = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|h| policy.allows_headers(h));
    if !method_ok || !headers_ok {
        return Err(GatewayError::OriginNotAllowed);
    }
    let mut response = HttpResponse::NoContent();
    response
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            policy.allowed_headers(),
        ))
        .insert_header((
            header::ACCESS_CONTROL_MAX_AGE,
            policy.max_age_secs().to_string(),
        ))
        .insert_header((header::VARY, "Origin"));
    if policy.credentials() {
        response.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
    }
    Ok(response.finish())
}

/// Adds `Access-Control-Allow-Origin` (and friends) to an actual response, when allowed.
pub fn decorate(route: Option<&Route>, request: &HeaderMap, response: &mut HttpResponse) {
    let Some(policy) = route.and_then(Route::cors) else {
        return;
    };
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = request.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(allowed) = policy
        .allow_origin(origin)
        .and_then(|o| HeaderValue::from_str(&o).ok())
    else {
        return;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, retry-after"),
    );
    if policy.credentials() {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}
