//! `/healthz`: the process is alive. `/readyz`: configuration loaded and Prefect reachable.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::error_chain;
use crate::state::AppState;

const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.prefect.health(READY_PROBE_TIMEOUT).await {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "routes": state.routes.len(),
            "prefect": "reachable",
        })),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "not ready: Prefect unreachable");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "not_ready",
                "routes": state.routes.len(),
                "prefect": "unreachable",
            }))
        }
    }
}
