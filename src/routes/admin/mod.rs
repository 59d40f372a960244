//! The admin listener (loopback by default, never exposed by nginx): `/metrics`, and the admin
//! API behind the admin token (fail closed: no token, no API): the rejection log and replays,
//! the outbox, the route table.

mod outbox;
pub(crate) mod rejections;
mod reload;
mod route_table;

pub use outbox::{discard, list_outbox, retry_dead};
pub use rejections::{get_rejection, list_rejections, replay_rejection};
pub use reload::reload;
pub use route_table::list_routes;

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::FromRequest;

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

/// The admin token, when one is configured.
pub struct AdminToken(pub Option<secrecy::SecretString>);

/// Admin endpoints answer only on the admin listener, and only with the bearer token.
pub(crate) fn authorize(
    req: &HttpRequest,
    admin: &AdminPort,
    token: &AdminToken,
) -> Result<(), GatewayError> {
    use secrecy::ExposeSecret;

    let Some(expected) = token.0.as_ref() else {
        return Err(GatewayError::NotFound);
    };
    if admin.0 != Some(req.app_config().local_addr().port()) {
        return Err(GatewayError::NotFound);
    }
    crate::pipeline::verify::check_bearer(req.headers(), [expected.expose_secret().as_bytes()])
}

/// An admin request that passed `authorize`: its handlers take this first.
pub struct Authorized {
    pub request_id: RequestId,
}

impl Authorized {
    /// The error as this request's answer.
    pub fn fail(&self, e: GatewayError) -> ApiError {
        e.with_request_id(&self.request_id)
    }
}

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request_id = RequestId::of(req);
        let admin = req.app_data::<web::Data<AdminPort>>();
        let token = req.app_data::<web::Data<AdminToken>>();
        let checked = match (admin, token) {
            (Some(admin), Some(token)) => authorize(req, admin, token),
            _ => Err(GatewayError::NotFound),
        };
        ready(match checked {
            Ok(()) => Ok(Self { request_id }),
            Err(e) => Err(e.with_request_id(&request_id)),
        })
    }
}

/// Logs an admin action on the request's one line (code and what was done).
pub(crate) fn noted(mut response: HttpResponse, code: &'static str, what: &str) -> HttpResponse {
    tracing::info!(target: "flowgate::admin", action = code, what, "admin action");
    response
        .extensions_mut()
        .insert(RequestNote::code(code).with_detail(what));
    response
}
