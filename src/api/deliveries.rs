//! `GET /api/v1/deliveries/{delivery_id}`: where a queued request stands — `queued` (attempts,
//! next attempt, last error), `delivered` (its `flow_run_id`), `dead` or `discarded` (the
//! reason) — for webhook and API requests alike.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::tokens::Scope;
use super::views::DeliveryView;
use crate::domain::DeploymentRef;
use crate::error::{GatewayError, Problem};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::timefmt::rfc3339_secs;

#[utoipa::path(
    get,
    path = "/api/v1/deliveries/{delivery_id}",
    tag = "deliveries",
    params(("delivery_id" = uuid::Uuid, Path, description = "The `delivery_id` of a `queued` answer")),
    responses(
        (status = 200, description = "Where the request stands", body = DeliveryView),
        (status = 400, description = "`invalid_query`: not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the token lacks the `read` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: unknown, pruned, or of a deployment the token may not use", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
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
    let tokens = state.api_tokens();
    let token = tokens.authenticate(req.headers())?;
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
    let queued = found.state == "queued";
    let ended = matches!(found.state.as_str(), "dead" | "discarded");
    Ok(HttpResponse::Ok().json(DeliveryView {
        delivery_id: found.id,
        route: found.route,
        deployment: found.deployment,
        attempts: found.attempts,
        created_at: rfc3339_secs(found.created_at),
        next_attempt_at: found.next_attempt_at.filter(|_| queued).map(rfc3339_secs),
        last_error: found.last_error.clone().filter(|_| queued),
        reason: found.last_error.filter(|_| ended),
        flow_run_id: found.flow_run_id,
        delivered_at: found.delivered_at.map(rfc3339_secs),
        status: found.state,
    }))
}
