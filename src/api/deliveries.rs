//! `GET /api/v1/deliveries/{delivery_id}`: where a queued request stands — `queued` (attempts,
//! next attempt, last error), `delivered` (its `flow_run_id`), `dead` or `discarded` (the
//! reason) — for webhook and API requests alike.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use super::tokens::Scope;
use crate::domain::DeploymentRef;
use crate::error::GatewayError;
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::timefmt::rfc3339_secs;

pub async fn delivery(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    match show(&req, &id, &state).await {
        Ok(response) => response,
        Err(e) => e.with_request_id(&request_id).error_response(),
    }
}

async fn show(req: &HttpRequest, id: &str, state: &AppState) -> Result<HttpResponse, GatewayError> {
    let token = state.api_tokens.authenticate(req.headers())?;
    token.has(Scope::Read)?;
    let id = uuid::Uuid::parse_str(id)
        .map_err(|_| GatewayError::InvalidQuery("delivery_id: not a UUID".into()))?;
    let found = state
        .store
        .delivery(id)
        .await
        .map_err(|_| GatewayError::StoreUnavailable)?
        .ok_or(GatewayError::NotFound)?;
    // A token sees only deliveries of its own deployments (others look absent).
    let allowed = DeploymentRef::parse(&found.deployment).is_ok_and(|d| token.may_use(&d));
    if !allowed {
        return Err(GatewayError::NotFound);
    }
    Ok(HttpResponse::Ok().json(json!({
        "delivery_id": found.id,
        "status": found.state,
        "route": found.route,
        "deployment": found.deployment,
        "attempts": found.attempts,
        "created_at": rfc3339_secs(found.created_at),
        "next_attempt_at": found.next_attempt_at.filter(|_| found.state == "queued").map(rfc3339_secs),
        "last_error": found.last_error.as_ref().filter(|_| found.state == "queued"),
        "reason": found.last_error.as_ref().filter(|_| matches!(found.state.as_str(), "dead" | "discarded")),
        "flow_run_id": found.flow_run_id,
        "delivered_at": found.delivered_at.map(rfc3339_secs),
    })))
}
