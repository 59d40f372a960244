//! The internal API under `/api/v1` on the public listener, for backends: trigger any
//! deployment by name through the same durable path as webhooks, and follow a request to its
//! flow run. Bearer tokens with deployments and scopes (`tokens`); problem+json errors; the
//! OpenAPI document at `/api/v1/openapi.json` (`openapi`).

use actix_web::web;

pub mod deliveries;
pub mod manage;
pub mod openapi;
pub mod runs;
pub mod tokens;
pub mod trigger;
pub mod views;

/// The `/api/v1` routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(openapi::Document::build()))
        .route("/api/v1/openapi.json", web::get().to(openapi::document))
        .route(
            "/api/v1/deployments/{flow}/{deployment}/runs",
            web::post().to(trigger::trigger),
        )
        .route(
            "/api/v1/deployments/{flow}/{deployment}/runs",
            web::get().to(runs::history),
        )
        .route("/api/v1/deployments", web::get().to(manage::list))
        .route(
            "/api/v1/deployments/{flow}/{deployment}",
            web::get().to(runs::deployment),
        )
        .route(
            "/api/v1/deployments/{flow}/{deployment}",
            web::put().to(manage::put),
        )
        .route(
            "/api/v1/deployments/{flow}/{deployment}",
            web::delete().to(manage::delete),
        )
        .route(
            "/api/v1/deployments/{flow}/{deployment}/pause",
            web::post().to(manage::pause),
        )
        .route(
            "/api/v1/deployments/{flow}/{deployment}/resume",
            web::post().to(manage::resume),
        )
        .route(
            "/api/v1/deliveries/{delivery_id}",
            web::get().to(deliveries::delivery),
        )
        .route("/api/v1/runs/{flow_run_id}", web::get().to(runs::show))
        .route(
            "/api/v1/runs/{flow_run_id}/cancel",
            web::post().to(runs::cancel),
        );
}
