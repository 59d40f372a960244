//! The admin listener (loopback by default, never exposed by nginx): `/metrics`.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{ApiError, GatewayError};
use crate::metrics::Metrics;
use crate::request_id::RequestId;
use crate::request_log::RequestNote;
use crate::startup::AdminPort;

/// `GET /metrics`, on the admin listener only (404 on the public one).
pub async fn metrics(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    admin: web::Data<AdminPort>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    if admin.0 != Some(req.app_config().local_addr().port()) {
        return Err(GatewayError::NotFound.with_request_id(&request_id));
    }
    Ok(render(&metrics).await)
}

async fn render(metrics: &Metrics) -> HttpResponse {
    match metrics.render().await {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

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

/// The admin token, when one is configured.
pub struct AdminToken(pub Option<secrecy::SecretString>);

/// Admin endpoints answer only on the admin listener, and only with the bearer token.
fn authorize(req: &HttpRequest, admin: &AdminPort, token: &AdminToken) -> Result<(), GatewayError> {
    use secrecy::ExposeSecret;

    let Some(expected) = token.0.as_ref() else {
        return Err(GatewayError::NotFound);
    };
    if admin.0 != Some(req.app_config().local_addr().port()) {
        return Err(GatewayError::NotFound);
    }
    crate::pipeline::verify::check_bearer(req.headers(), [expected.expose_secret().as_bytes()])
}

/// `GET /admin/outbox`: waiting or dead requests with their last error (no parameters: PII).
pub async fn list_outbox(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<crate::state::AppState>,
    admin: web::Data<AdminPort>,
    token: web::Data<AdminToken>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let fail = |e: GatewayError| e.with_request_id(&request_id);
    authorize(&req, &admin, &token).map_err(fail)?;
    let which = match query.state.as_str() {
        "dead" => crate::store::EntryState::Dead,
        "queued" => crate::store::EntryState::Queued,
        _ => {
            return Err(fail(GatewayError::MalformedBody(
                "state must be dead or queued".into(),
            )))
        }
    };
    let entries = state
        .outbox
        .store()
        .list(which, query.limit.min(1000))
        .await
        .map_err(|_| fail(GatewayError::StoreUnavailable))?;
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
                "last_error": e.last_error,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "entries": entries })))
}

/// `POST /admin/outbox/{delivery_id}/retry`: a dead entry goes back in the queue (after a fix).
pub async fn retry_dead(
    req: HttpRequest,
    id: web::Path<uuid::Uuid>,
    state: web::Data<crate::state::AppState>,
    admin: web::Data<AdminPort>,
    token: web::Data<AdminToken>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let fail = |e: GatewayError| e.with_request_id(&request_id);
    authorize(&req, &admin, &token).map_err(fail)?;
    let requeued = state
        .outbox
        .store()
        .requeue_dead(*id, crate::pipeline::verify::unix_now())
        .await
        .map_err(|_| fail(GatewayError::StoreUnavailable))?;
    if !requeued {
        return Err(fail(GatewayError::NotFound));
    }
    state.outbox.wake();
    let mut response = HttpResponse::Accepted()
        .json(serde_json::json!({ "status": "requeued", "delivery_id": *id }));
    // The admin action is on the request's one log line.
    response.extensions_mut().insert(
        RequestNote::code("requeued").with_detail(&format!("dead entry {id} requeued by ops")),
    );
    Ok(response)
}
