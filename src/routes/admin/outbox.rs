//! `/admin/outbox`: requests waiting for Prefect or dead, retry and discard.

use actix_web::{web, HttpResponse};

use super::{noted, Authorized};
use crate::error::{ApiError, GatewayError};
use crate::state::AppState;
use crate::store::EntryState;

/// `?state=dead|queued&limit=N` for `GET /admin/outbox`.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(default = "default_state")]
    state: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_state() -> String {
    "dead".into()
}

fn default_limit() -> usize {
    100
}

/// `GET /admin/outbox`: waiting or dead requests with their last error (no parameters: PII).
pub async fn list_outbox(
    auth: Authorized,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let which = match query.state.as_str() {
        "dead" => EntryState::Dead,
        "queued" => EntryState::Queued,
        _ => {
            return Err(auth.fail(GatewayError::InvalidQuery(
                "state must be dead or queued".into(),
            )))
        }
    };
    let entries = state
        .store
        .list(which, query.limit.clamp(1, 1000))
        .await
        .map_err(|_| auth.fail(GatewayError::StoreUnavailable))?;
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "delivery_id": e.id,
                "state": which.as_str(),
                "route": e.route,
                "deployment": e.deployment,
                "attempts": e.attempts,
                "created_at": e.created_at,
                "next_attempt_at": e.next_attempt_at,
                "last_error": e.last_error,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "entries": entries })))
}

/// `POST /admin/outbox/{delivery_id}/retry`: a dead entry goes back in the queue (after a fix).
pub async fn retry_dead(
    auth: Authorized,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let requeued = state
        .store
        .requeue_dead(*id, crate::pipeline::verify::unix_now())
        .await
        .map_err(|_| auth.fail(GatewayError::StoreUnavailable))?;
    if !requeued {
        return Err(auth.fail(GatewayError::NotFound));
    }
    state.outbox.wake();
    Ok(noted(
        HttpResponse::Accepted()
            .json(serde_json::json!({ "status": "requeued", "delivery_id": *id })),
        "requeued",
        &format!("dead entry {id} requeued"),
    ))
}

/// `{"reason": "..."}` for a discard.
#[derive(serde::Deserialize)]
pub struct DiscardBody {
    reason: String,
}

/// `POST /admin/outbox/{delivery_id}/discard` with a reason: a queued or dead entry is taken
/// out for good (kept as `discarded`, with the reason); it will never run.
pub async fn discard(
    auth: Authorized,
    id: web::Path<uuid::Uuid>,
    body: Option<web::Json<DiscardBody>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.map(|b| b.into_inner().reason).unwrap_or_default();
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(auth.fail(GatewayError::InvalidQuery(
            "a discard needs a reason: {\"reason\": \"...\"}, up to 500 characters".into(),
        )));
    }
    let discarded = state
        .store
        .discard(*id, format!("discarded by ops: {reason}"))
        .await
        .map_err(|_| auth.fail(GatewayError::StoreUnavailable))?;
    if !discarded {
        return Err(auth.fail(GatewayError::NotFound));
    }
    Ok(noted(
        HttpResponse::Ok().json(serde_json::json!({
            "status": "discarded",
            "delivery_id": *id,
            "reason": reason,
        })),
        "discarded",
        &format!("outbox entry {id} discarded: {reason}"),
    ))
}
