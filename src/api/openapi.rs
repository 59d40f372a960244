//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API, derived from the handlers'
//! annotations and the answer types (`views`), built once at start.

use actix_web::{web, HttpResponse, ResponseError};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{deliveries, manage, runs, trigger};
use crate::error::GatewayError;
use crate::request_id::RequestId;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowgate internal API",
        description = "Trigger Prefect deployments by name through flowgate's durable path, follow a queued request to its flow run, read run status and history. Errors are RFC 9457 problem details with a stable `code`.",
    ),
    paths(
        trigger::trigger,
        deliveries::delivery,
        runs::show,
        runs::cancel,
        runs::deployment,
        runs::history,
        manage::put,
        manage::delete,
        manage::pause,
        manage::resume,
        manage::list,
        document,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "runs", description = "Start, read and cancel flow runs"),
        (name = "deliveries", description = "Requests answered `queued`, followed to their run"),
        (name = "deployments", description = "Deployments by `flow/deployment` name; managed ones (scope `manage`) kept in Prefect as desired state"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme: an API token of `[[api.tokens]]`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token of `[[api.tokens]]`"))
                    .build(),
            ),
        );
    }
}

/// The document as served (the crate's version as the API's).
pub fn json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_json().unwrap_or_default()
}

/// The document, served without a token (it holds no secret) while the API is on.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "deployments",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn document(
    state: web::Data<AppState>,
    doc: web::Data<Document>,
    request_id: RequestId,
) -> HttpResponse {
    if state.api_tokens().is_empty() {
        return GatewayError::NotFound
            .with_request_id(&request_id)
            .error_response();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}

/// The serialized document, shared by the workers.
#[derive(Clone)]
pub struct Document(pub web::Bytes);

impl Document {
    pub fn build() -> Self {
        Self(web::Bytes::from(json()))
    }
}
