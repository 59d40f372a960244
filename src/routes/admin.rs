//! The admin listener (loopback by default, never exposed by nginx): `/metrics`.

use actix_web::{web, HttpResponse};

use crate::metrics::Metrics;

pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
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
