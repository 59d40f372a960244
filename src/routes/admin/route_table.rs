//! `GET /admin/routes`: the route table with each route's deployment as resolved now.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::Authorized;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn list_routes(
    auth: Authorized,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let _ = &auth;
    let mut routes = Vec::new();
    let table = state.routes();
    for route in table.iter() {
        let cached = state.resolver.cached(route.deployment()).await;
        routes.push(json!({
                "name": route.name().to_string(),
                "path": format!("/hooks/{}", route.name()),
                "deployment": route.deployment().to_string(),
                "deployment_id": cached,
                "cache": if cached.is_some() { "resolved" } else { "not_resolved" },
                "auth": route.auth().kind(),
                "queue": route.queues(),
                "queued": state.store.queued(route.name().as_ref()),
        }));
    }
    let current = state.live.current();
    let last = state.live.last_reload();
    Ok(HttpResponse::Ok().json(json!({
        "generation": current.generation,
        "loaded_at": crate::timefmt::rfc3339_secs(current.loaded_at),
        "last_reload": (last.at > 0).then(|| json!({
            "at": crate::timefmt::rfc3339_secs(last.at),
            "ok": last.ok,
            "errors": last.errors,
            "needs_restart": last.needs_restart,
        })),
        "routes": routes,
    })))
}
