//! `/admin/rejections`: refused requests with their reason, newest first, filtered and paged;
//! one in full (secrets never stored, configured fields masked); a replay after a fix.

use std::time::SystemTime;

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{noted, Authorized};
use crate::error::{ApiError, GatewayError};
use crate::pipeline::route::find_route;
use crate::pipeline::verify::unix_now_ms;
use crate::rejections::{content_type, mask};
use crate::request_id::RequestId;
use crate::routes::hooks::{answer, replay, IDEMPOTENCY_KEY_HEADER};
use crate::state::AppState;
use crate::store::{Rejection, RejectionQuery, RejectionWrite};

/// Records a page holds by default and at most.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// Codes of requests that failed authentication (or were refused before it): never replayed.
const NOT_REPLAYABLE: [&str; 6] = [
    "missing_signature",
    "invalid_signature",
    "timestamp_out_of_window",
    "invalid_token",
    "ip_not_allowed",
    "origin_not_allowed",
];

/// Filters of `GET /admin/rejections`: `route`, `code`, `client`, `from` and `to` (RFC 3339 or
/// unix milliseconds), `limit`, and `cursor` (the `next_cursor` of the previous page).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub route: Option<String>,
    pub code: Option<String>,
    pub client: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl ListParams {
    /// The store query these filters mean, or what is wrong with them.
    pub fn query(&self) -> Result<RejectionQuery, GatewayError> {
        let nonempty = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
        Ok(RejectionQuery {
            route: nonempty(&self.route),
            code: nonempty(&self.code),
            client: nonempty(&self.client),
            from_ms: self
                .from
                .as_deref()
                .map(|t| parse_time("from", t))
                .transpose()?,
            to_ms: self
                .to
                .as_deref()
                .map(|t| parse_time("to", t))
                .transpose()?,
            before: match self.cursor.as_deref().filter(|c| !c.is_empty()) {
                Some(c) => Some(uuid::Uuid::parse_str(c).map_err(|_| {
                    GatewayError::InvalidQuery("cursor: not a cursor this API gave".into())
                })?),
                None => None,
            },
            limit: self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
        })
    }
}

fn parse_time(name: &str, raw: &str) -> Result<i64, GatewayError> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(raw)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            GatewayError::InvalidQuery(format!(
                "{name}: expected RFC 3339 (2026-12-24T18:00:00Z) or unix milliseconds"
            ))
        })
}

pub use crate::timefmt::rfc3339_ms as rfc3339;

/// Why a record cannot be replayed, if it cannot.
pub fn replay_refusal(r: &Rejection) -> Option<GatewayError> {
    if !r.authenticated || NOT_REPLAYABLE.contains(&r.code.as_str()) {
        return Some(GatewayError::ReplayNotAllowed(format!(
            "a request refused with {} did not pass authentication; a replay must not launder it",
            r.code
        )));
    }
    if !r.body_complete() {
        return Some(GatewayError::ReplayUnavailable(
            "the body was not kept whole (counted only, or over rejections.max_body_bytes)".into(),
        ));
    }
    None
}

/// A record as listed.
pub fn summary(r: &Rejection) -> Value {
    json!({
        "id": r.id,
        "first_at": rfc3339(r.first_ms),
        "last_at": rfc3339(r.last_ms),
        "count": r.count,
        "route": r.route,
        "client": r.client,
        "status": r.status,
        "code": r.code,
        "detail": r.detail,
        "request_id": r.request_id,
        "replayable": replay_refusal(r).is_none(),
        "replayed": r.replayed.as_ref().map(|(at, outcome)| json!({
            "at": rfc3339(*at),
            "outcome": outcome,
        })),
    })
}

/// A record in full, with the body masked for display.
pub fn detail(r: &Rejection, mask_fields: &[String]) -> Value {
    let mut v = summary(r);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "field_errors".into(),
            r.field_errors.clone().unwrap_or(Value::Null),
        );
        map.insert(
            "headers".into(),
            Value::Array(r.headers.iter().map(|(n, v)| json!([n, v])).collect()),
        );
        map.insert(
            "body".into(),
            r.body
                .as_deref()
                .map(|b| Value::String(mask::display_body(b, content_type(r), mask_fields)))
                .unwrap_or(Value::Null),
        );
        map.insert("body_size".into(), json!(r.body_size));
        map.insert("body_complete".into(), json!(r.body_complete()));
        map.insert(
            "replay_refused".into(),
            replay_refusal(r).map_or(Value::Null, |e| Value::String(e.to_string())),
        );
    }
    v
}

/// `GET /admin/rejections`: a page, newest first, and the cursor of the next.
pub async fn list_rejections(
    auth: Authorized,
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = params.query().map_err(|e| auth.fail(e))?;
    settle(&state).await;
    let limit = query.limit;
    let page = state
        .store
        .list_rejections(query)
        .await
        .map_err(|_| auth.fail(GatewayError::StoreUnavailable))?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|r| r.id))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "items": page.iter().map(summary).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /admin/rejections/{id}`.
pub async fn get_rejection(
    auth: Authorized,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let found = load(&auth, &state, *id).await?;
    Ok(HttpResponse::Ok().json(detail(&found, &state.rejections.settings().mask_fields)))
}

/// Makes the rejection log current before a read: counts gathered in memory are written, and
/// what the request path handed to the store without waiting is committed (milliseconds).
pub(crate) async fn settle(state: &AppState) {
    state.rejections.flush();
    if let Err(e) = state.store.flush().await {
        tracing::warn!(error = %crate::error::error_chain(&e), "cannot flush the store");
    }
}

pub(crate) async fn load(
    auth: &Authorized,
    state: &AppState,
    id: uuid::Uuid,
) -> Result<Rejection, ApiError> {
    settle(state).await;
    state
        .store
        .get_rejection(id)
        .await
        .map_err(|_| auth.fail(GatewayError::StoreUnavailable))?
        .ok_or_else(|| auth.fail(GatewayError::NotFound))
}

/// `POST /admin/rejections/{id}/replay`: the stored body through the pipeline with the current
/// configuration; the answer is the pipeline's (202 created/queued, 200 duplicate, or its
/// error). Refused (409) for authentication failures and bodies not kept whole.
pub async fn replay_rejection(
    auth: Authorized,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = load(&auth, &state, *id).await?;
    let (response, what) = replay_and_note(&state, &record, &auth.request_id).await;
    let response = match response {
        Ok((response, _)) => response,
        Err(e) => auth.fail(e).error_response(),
    };
    Ok(noted(response, "replayed", &what))
}

/// Replays a record and notes the outcome on it (unless the replay was refused); returns the
/// pipeline's answer (or error) and a line saying what was done, for the admin log.
pub(crate) async fn replay_and_note(
    state: &AppState,
    record: &Rejection,
    request_id: &RequestId,
) -> (Result<(HttpResponse, &'static str), GatewayError>, String) {
    let response = run_replay(state, record, request_id).await;
    let outcome = response
        .as_ref()
        .map_or_else(|e| e.code(), |(_, word)| *word);
    let refused = matches!(
        &response,
        Err(GatewayError::ReplayNotAllowed(_) | GatewayError::ReplayUnavailable(_))
    );
    if !refused {
        if let Err(e) = state
            .store
            .write_rejection(RejectionWrite::Replayed {
                id: record.id,
                at_ms: unix_now_ms(),
                outcome: outcome.to_owned(),
            })
            .await
        {
            tracing::warn!(error = %crate::error::error_chain(&e), "cannot note the replay");
        }
    }
    let what = format!(
        "rejection {} ({} on {}) replayed: {outcome}",
        record.id, record.code, record.route
    );
    (response, what)
}

pub(crate) async fn run_replay(
    state: &AppState,
    record: &Rejection,
    request_id: &RequestId,
) -> Result<(HttpResponse, &'static str), GatewayError> {
    if let Some(refusal) = replay_refusal(record) {
        return Err(refusal);
    }
    let route = find_route(&state.routes(), &record.route)?;
    let header = |name: &str| {
        record
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let outcome = replay(
        state,
        &route,
        &record.headers,
        Bytes::from(record.body.clone().unwrap_or_default()),
        header(IDEMPOTENCY_KEY_HEADER.as_str()),
        record.delivery_id.as_deref(),
        request_id,
    )
    .await?;
    let word = outcome.word();
    Ok((answer(outcome, request_id), word))
}
