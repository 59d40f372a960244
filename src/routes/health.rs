//! `/healthz`: the process is alive. `/readyz`: the gateway can accept, which needs the
//! configuration and a working outbox; Prefect being down does not make it unready (requests
//! are queued), but it is reported.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::error_chain;
use crate::pipeline::verify::unix_now;
use crate::state::AppState;

const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let prefect = match state.prefect.health(READY_PROBE_TIMEOUT).await {
        Ok(()) => "reachable",
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "Prefect unreachable; requests will be queued");
            "unreachable"
        }
    };
    match state.outbox.store().stats(unix_now()).await {
        Ok(stats) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "routes": state.routes.len(),
            "prefect": prefect,
            "outbox_queued": stats.queued,
            "outbox_oldest_age_seconds": stats.oldest_queued_age_secs,
        })),
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "not ready: the outbox cannot be read");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "not_ready",
                "routes": state.routes.len(),
                "prefect": prefect,
                "outbox": "unavailable",
            }))
        }
    }
}
