//! Run status, history and cancel, and a deployment's description, read from Prefect for
//! callers holding an API token: `GET /api/v1/runs/{id}`, `POST /api/v1/runs/{id}/cancel`,
//! `GET /api/v1/deployments/{flow}/{deployment}` and `…/runs?state=&limit=&cursor=`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::tokens::{ApiToken, Scope};
use crate::domain::DeploymentRef;
use crate::error::GatewayError;
use crate::prefect::{Call, Deadline, Patience, PrefectError};
use crate::request_id::RequestId;
use crate::state::AppState;

/// Prefect's state types, as a `state` filter takes them.
const STATE_TYPES: [&str; 9] = [
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
    "PAUSED",
    "CANCELLING",
];
const FINAL: [&str; 4] = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"];
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 200;

fn reply(result: Result<HttpResponse, GatewayError>, request_id: &RequestId) -> HttpResponse {
    result.unwrap_or_else(|e| e.with_request_id(request_id).error_response())
}

fn deadline(state: &AppState) -> Deadline {
    Deadline::after(state.submitter.budget)
}

/// A Prefect failure as the API answers it: 404 for a missing object, else 503/504/502.
fn upstream(e: impl Into<Arc<PrefectError>>) -> GatewayError {
    let e = e.into();
    match e.as_ref() {
        PrefectError::NotFound => GatewayError::NotFound,
        PrefectError::Timeout => GatewayError::UpstreamTimeout(e),
        PrefectError::Unauthorized { .. }
        | PrefectError::Unexpected(_)
        | PrefectError::Rejected { .. } => GatewayError::UpstreamError(e),
        PrefectError::ServerError { .. }
        | PrefectError::RateLimited { .. }
        | PrefectError::Connect(_)
        | PrefectError::Transport(_)
        | PrefectError::Busy => GatewayError::UpstreamUnavailable(e),
    }
}

/// The `flow/deployment` name of a deployment id (two reads; cached by nothing: API reads are rare).
async fn deployment_name(state: &AppState, id: &str) -> Result<DeploymentRef, GatewayError> {
    let prefect = &state.submitter.prefect;
    let d = prefect
        .read_path(Call::ReadObject, &["deployments", id], deadline(state))
        .await
        .map_err(upstream)?;
    let flow_id = d["flow_id"].as_str().unwrap_or_default().to_owned();
    let f = prefect
        .read_path(Call::ReadObject, &["flows", &flow_id], deadline(state))
        .await
        .map_err(upstream)?;
    DeploymentRef::parse(&format!(
        "{}/{}",
        f["name"].as_str().unwrap_or_default(),
        d["name"].as_str().unwrap_or_default()
    ))
    .map_err(|e| GatewayError::UpstreamError(Arc::new(PrefectError::Unexpected(e.to_string()))))
}

/// The run, if the token may read (or `scope`) its deployment; a run of a deployment the token
/// may not use answers 404, like one that does not exist.
async fn run_for(
    state: &AppState,
    token: &ApiToken,
    id: uuid::Uuid,
    scope: Scope,
) -> Result<(Value, Option<DeploymentRef>), GatewayError> {
    token.has(scope)?;
    let run = state
        .submitter
        .prefect
        .read_flow_run(id, deadline(state))
        .await
        .map_err(upstream)?;
    let name = match run["deployment_id"].as_str() {
        Some(d) => Some(deployment_name(state, d).await?),
        None => None,
    };
    match &name {
        Some(n) if token.may_use(n) => Ok((run, name)),
        _ => Err(GatewayError::NotFound),
    }
}

fn run_id(raw: &str) -> Result<uuid::Uuid, GatewayError> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| GatewayError::InvalidQuery("flow_run_id: not a UUID".into()))
}

fn shape(run: &Value, deployment: Option<&DeploymentRef>) -> Value {
    json!({
        "flow_run_id": run["id"],
        "name": run["name"],
        "deployment": deployment.map(ToString::to_string),
        "deployment_id": run["deployment_id"],
        "state": run["state_type"],
        "state_name": run["state_name"],
        "final": run["state_type"].as_str().is_some_and(|s| FINAL.contains(&s)),
        "created": run["created"],
        "expected_start_time": run["expected_start_time"],
        "start_time": run["start_time"],
        "end_time": run["end_time"],
        "total_run_time": run["total_run_time"],
        "parameters": run["parameters"],
        "tags": run["tags"],
    })
}

/// `GET /api/v1/runs/{flow_run_id}`.
pub async fn show(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let token = state.api_tokens.authenticate(req.headers())?;
        let (run, name) = run_for(&state, token, run_id(&id)?, Scope::Read).await?;
        Ok(HttpResponse::Ok().json(shape(&run, name.as_ref())))
    };
    reply(result.await, &request_id)
}

/// `POST /api/v1/runs/{flow_run_id}/cancel`: a run not started yet is cancelled, a running one
/// asked to cancel (Prefect's `CANCELLING`); a finished one is 409 `run_finished`.
pub async fn cancel(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let token = state.api_tokens.authenticate(req.headers())?;
        let run_id = run_id(&id)?;
        let (run, _) = run_for(&state, token, run_id, Scope::Cancel).await?;
        let current = run["state_type"].as_str().unwrap_or_default();
        if FINAL.contains(&current) || current == "CANCELLING" {
            return Err(GatewayError::RunFinished(format!(
                "the run is already {current}"
            )));
        }
        let (to, name) = if current == "RUNNING" {
            ("CANCELLING", "Cancelling")
        } else {
            ("CANCELLED", "Cancelled")
        };
        let answer = state
            .submitter
            .prefect
            .set_flow_run_state(run_id, to, name, deadline(&state))
            .await
            .map_err(upstream)?;
        let accepted = answer["status"] == "ACCEPT";
        if !accepted {
            return Err(GatewayError::RunFinished(format!(
                "Prefect did not accept the cancel: {}",
                answer["details"]["reason"]
                    .as_str()
                    .unwrap_or("no reason given")
            )));
        }
        tracing::info!(target: "flowgate::api", token = %token.name, flow_run_id = %run_id, to, "run cancelled");
        Ok(HttpResponse::Ok().json(json!({
            "flow_run_id": run_id,
            "status": to.to_ascii_lowercase(),
            "previous_state": current,
        })))
    };
    reply(result.await, &request_id)
}

/// `GET /api/v1/deployments/{flow}/{deployment}`: id, paused, status, schedules, schema.
pub async fn deployment(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let token = state.api_tokens.authenticate(req.headers())?;
        let target = target(&path)?;
        token.allow(&target, Scope::Read)?;
        let d = state
            .submitter
            .prefect
            .read_path(
                Call::ReadObject,
                &["deployments", "name", target.flow(), target.deployment()],
                deadline(&state),
            )
            .await
            .map_err(upstream)?;
        Ok(HttpResponse::Ok().json(json!({
            "deployment": target.to_string(),
            "id": d["id"],
            "paused": d["paused"],
            "status": d["status"],
            "schedules": d["schedules"],
            "tags": d["tags"],
            "description": d["description"],
            "work_pool_name": d["work_pool_name"],
            "enforce_parameter_schema": d["enforce_parameter_schema"],
            "parameter_openapi_schema": d["parameter_openapi_schema"],
        })))
    };
    reply(result.await, &request_id)
}

fn target((flow, deployment): &(String, String)) -> Result<DeploymentRef, GatewayError> {
    DeploymentRef::parse(&format!("{flow}/{deployment}"))
        .map_err(|e| GatewayError::InvalidQuery(format!("deployment: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Comma-separated state types.
    state: Option<String>,
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /api/v1/deployments/{flow}/{deployment}/runs`: newest first (by expected start time).
pub async fn history(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<HistoryQuery>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let token = state.api_tokens.authenticate(req.headers())?;
        let target = target(&path)?;
        token.allow(&target, Scope::Read)?;
        let states: Vec<String> = query
            .state
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = states.iter().find(|s| !STATE_TYPES.contains(&s.as_str())) {
            return Err(GatewayError::InvalidQuery(format!(
                "state: {bad} is not one of {}",
                STATE_TYPES.join(", ")
            )));
        }
        let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
        if let Some(c) = cursor {
            if humantime::parse_rfc3339_weak(c.trim_end_matches('Z').split('+').next().unwrap_or(c))
                .is_err()
            {
                return Err(GatewayError::InvalidQuery(
                    "cursor: not a cursor this API gave".into(),
                ));
            }
        }
        let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        // The id through the deployment cache the webhooks use: no read of Prefect per page.
        let id = state
            .resolver
            .resolve(&target, deadline(&state), Patience::UntilDeadline)
            .await
            .map_err(upstream)?
            .id;
        let runs = state
            .submitter
            .prefect
            .filter_flow_runs(id, &states, cursor, limit, deadline(&state))
            .await
            .map_err(upstream)?;
        let next = (runs.len() == limit)
            .then(|| {
                runs.last()
                    .and_then(|r| r["expected_start_time"].as_str())
                    .map(str::to_owned)
            })
            .flatten();
        Ok(HttpResponse::Ok().json(json!({
            "deployment": target.to_string(),
            "items": runs.iter().map(|r| shape(r, Some(&target))).collect::<Vec<_>>(),
            "next_cursor": next,
        })))
    };
    reply(result.await, &request_id)
}
