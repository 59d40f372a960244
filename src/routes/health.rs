//! `/healthz`: the process is alive. `/readyz`: the gateway can accept, which needs the
//! configuration and a working outbox; Prefect being down does not make it unready (requests
//! are queued), but it is reported. Both answer from memory: no store read, no call to Prefect.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.outbox.store();
    let current = state.live.current();
    let last = state.live.last_reload();
    let config = json!({
        "generation": current.generation,
        "last_reload": if last.at == 0 { "none" } else if last.ok { "ok" } else { "failed" },
        "errors": last.errors,
    });
    let prefect = state.readiness.prefect().as_str();
    if !store.healthy() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "routes": state.routes().len(),
            "prefect": prefect,
            "outbox": "unavailable",
            "config": config,
        }));
    }
    HttpResponse::Ok().json(json!({
        "status": "ready",
        "routes": state.routes().len(),
        "prefect": prefect,
        "outbox_queued": store.counts().queued_total(),
        "outbox_oldest_age_seconds": state.readiness.oldest_age_secs(),
        "replicas": store.replicas(),
        "config": config,
    }))
}
