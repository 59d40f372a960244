//! The admin listener (loopback by default, never exposed by nginx): `/metrics`.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{ApiError, GatewayError};
use crate::metrics::Metrics;
use crate::request_id::RequestId;
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
