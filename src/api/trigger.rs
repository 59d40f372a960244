//! `POST /api/v1/deployments/{flow}/{deployment}/runs`: start a run of any deployment by name,
//! through the webhooks' path (the deployment's schema checked at the edge, load leveling, the
//! outbox when Prefect cannot take it, idempotency through Prefect). No route configuration
//! per deployment.

use std::sync::Arc;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::tokens::Scope;
use crate::domain::{FieldError, IdempotencyKey, RouteName};
use crate::error::{GatewayError, Problem};
use crate::pipeline::map::FlowRunPlan;
use crate::request_id::RequestId;
use crate::route_table::Route;
use crate::routes::hooks::{answer, Answer, IDEMPOTENCY_KEY_HEADER};
use crate::state::AppState;

/// The outbox share and idempotency namespace of API triggers.
pub const API_ROUTE: &str = "api";
/// Largest trigger body.
const MAX_BODY: usize = 256 * 1024;
/// Most tags, and longest tag and run name.
const MAX_TAGS: usize = 50;
const MAX_TEXT: usize = 200;

/// The trigger's body (empty means no parameters).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Flow parameters, by name, checked against the deployment's parameter schema.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// Tags of the run (at most 50, each 1 to 200 characters).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The flow run's name, 1 to 200 characters (Prefect picks one when absent).
    pub name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/deployments/{flow}/{deployment}/runs",
    tag = "runs",
    params(
        ("flow" = String, Path, description = "The flow's name"),
        ("deployment" = String, Path, description = "The deployment's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key start one run (1 to 255 visible ASCII characters)"),
    ),
    request_body(content = Option<TriggerBody>, content_type = "application/json"),
    responses(
        (status = 202, description = "`created` (the run exists) or `queued` (stored durably; follow `delivery_id`)", body = Answer),
        (status = 200, description = "`duplicate`: this Idempotency-Key was answered before", body = Answer),
        (status = 400, description = "`malformed_body`, `invalid_idempotency_key` or `invalid_query` (bad name)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not a deployment or scope of this token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_deployment`: Prefect has no such deployment", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: over 256 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `errors` names each field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable` or `upstream_unavailable` (nothing stored; retry)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn trigger(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Bytes,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    match run(&req, &path, &body, &state, &request_id).await {
        Ok(response) => response,
        Err(e) => e.with_request_id(&request_id).error_response(),
    }
}

async fn run(
    req: &HttpRequest,
    path: &(String, String),
    body: &[u8],
    state: &AppState,
    request_id: &RequestId,
) -> Result<HttpResponse, GatewayError> {
    let tokens = state.api_tokens();
    let token = tokens.authenticate(req.headers())?;
    let target = super::runs::target(path)?;
    token.allow(&target, Scope::Trigger)?;
    if body.len() > MAX_BODY {
        return Err(GatewayError::PayloadTooLarge { limit: MAX_BODY });
    }
    let input = parse(body)?;
    let route = Arc::new(Route::for_api(
        RouteName::parse(API_ROUTE).map_err(|e| GatewayError::InvalidQuery(e.to_string()))?,
        target,
        MAX_BODY,
        input.tags,
    ));
    let idempotency_key = match req.headers().get(&IDEMPOTENCY_KEY_HEADER) {
        Some(v) => IdempotencyKey::from_header(
            v.to_str()
                .map_err(|_| crate::domain::IdempotencyKeyError::InvalidCharacter)?,
        )?,
        // Without a key every trigger is a new run (the key still covers this request's retries).
        None => IdempotencyKey::from_delivery(request_id.as_str()),
    };
    let plan = FlowRunPlan {
        route,
        parameters: input.parameters.into(),
        name: input.name,
        idempotency_key,
    };
    let outcome = state
        .submitter
        .submit(&plan, true)
        .await
        .map_err(|e| match e {
            GatewayError::DeploymentNotFound(d) => GatewayError::UnknownDeployment(d),
            other => other,
        })?;
    Ok(answer(outcome, request_id))
}

/// The body: `{}` or empty means no parameters; field errors name what is wrong.
fn parse(body: &[u8]) -> Result<TriggerBody, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(TriggerBody::default());
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let parsed: TriggerBody = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() && path != "." {
            GatewayError::ValidationFailed(vec![FieldError::new(path, inner.to_string())])
        } else {
            GatewayError::MalformedBody(format!(
                "expected {{\"parameters\": {{…}}, \"tags\": […], \"name\": \"…\"}}: {inner}"
            ))
        }
    })?;
    let mut errors = Vec::new();
    if parsed.tags.len() > MAX_TAGS {
        errors.push(FieldError::new("tags", format!("at most {MAX_TAGS} tags")));
    }
    if parsed
        .tags
        .iter()
        .any(|t| t.is_empty() || t.chars().count() > MAX_TEXT)
    {
        errors.push(FieldError::new(
            "tags",
            format!("each tag 1 to {MAX_TEXT} characters"),
        ));
    }
    if parsed
        .name
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.chars().count() > MAX_TEXT)
    {
        errors.push(FieldError::new(
            "name",
            format!("1 to {MAX_TEXT} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(GatewayError::ValidationFailed(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_json_is_malformed_and_a_wrong_type_names_the_field() {
        assert!(matches!(
            parse(b"{\"parameters\":"),
            Err(GatewayError::MalformedBody(_))
        ));
        assert!(matches!(
            parse(b"[1]"),
            Err(GatewayError::ValidationFailed(_) | GatewayError::MalformedBody(_))
        ));
        match parse(br#"{"parameters": [1]}"#) {
            Err(GatewayError::ValidationFailed(e)) => assert_eq!(&*e[0].field, "parameters"),
            other => panic!("{other:?}"),
        }
        match parse(br#"{"params": {}}"#) {
            Err(GatewayError::ValidationFailed(e)) => assert!(e[0].message.contains("params")),
            other => panic!("{other:?}"),
        }
        assert!(parse(b"").is_ok());
    }
}
