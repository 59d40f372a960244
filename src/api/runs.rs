//! Run status, history and cancel, and a deployment's description, read from Prefect for
//! callers holding an API token: `GET /api/v1/runs/{id}`, `POST /api/v1/runs/{id}/cancel`,
//! `GET /api/v1/deployments/{flow}/{deployment}` and `…/runs?state=&limit=&cursor=`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::IntoParams;

use super::tokens::{ApiToken, Scope};
use super::views::{CancelAnswer, DeploymentView, PrefectDeployment, PrefectRun, RunPage, RunView};
use crate::domain::DeploymentRef;
use crate::error::{GatewayError, Problem};
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
/// Runs scheduled for the same instant that one cursor can step over.
const MAX_TIES: usize = 200;
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 200;

/// A handler's result as its answer (an error as problem+json with the request id).
pub(super) fn reply(
    result: Result<HttpResponse, GatewayError>,
    request_id: &RequestId,
) -> HttpResponse {
    result.unwrap_or_else(|e| e.with_request_id(request_id).error_response())
}

pub(super) fn deadline(state: &AppState) -> Deadline {
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
) -> Result<(PrefectRun, Option<DeploymentRef>), GatewayError> {
    token.has(scope)?;
    let run = state
        .submitter
        .prefect
        .read_flow_run(id, deadline(state))
        .await
        .map_err(upstream)?;
    let run: PrefectRun = typed(run, "flow run")?;
    let name = match run.deployment_id {
        Some(d) => Some(deployment_name(state, &d.to_string()).await?),
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

/// Prefect's JSON as the type this API reads from it; a shape it does not know is a 502.
fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, GatewayError> {
    serde_json::from_value(value).map_err(|e| {
        upstream(PrefectError::Unexpected(format!(
            "Prefect's {what} has an unexpected shape: {e}"
        )))
    })
}

/// `GET /api/v1/runs/{flow_run_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{flow_run_id}",
    tag = "runs",
    params(("flow_run_id" = uuid::Uuid, Path, description = "The flow run's id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 400, description = "`invalid_query`: not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the token lacks the `read` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such run, or not of a deployment the token may use", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`upstream_error`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`upstream_unavailable`: Prefect cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn show(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
        let (run, name) = run_for(&state, token, run_id(&id)?, Scope::Read).await?;
        Ok(HttpResponse::Ok().json(RunView::new(run, name.as_ref())))
    };
    reply(result.await, &request_id)
}

/// `POST /api/v1/runs/{flow_run_id}/cancel`: a run not started yet is cancelled, a running one
/// asked to cancel (Prefect's `CANCELLING`); a finished one is 409 `run_finished`.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{flow_run_id}/cancel",
    tag = "runs",
    params(("flow_run_id" = uuid::Uuid, Path, description = "The flow run's id")),
    responses(
        (status = 200, description = "Cancelled, or asked to cancel", body = CancelAnswer),
        (status = 400, description = "`invalid_query`: not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the token lacks the `cancel` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`run_finished`: already final or cancelling, or Prefect refused", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`upstream_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
        let run_id = run_id(&id)?;
        let (run, _) = run_for(&state, token, run_id, Scope::Cancel).await?;
        let current = run.state_type.unwrap_or_default();
        if FINAL.contains(&current.as_str()) || current == "CANCELLING" {
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
        Ok(HttpResponse::Ok().json(CancelAnswer {
            flow_run_id: run_id,
            status: to.to_ascii_lowercase(),
            previous_state: current,
        }))
    };
    reply(result.await, &request_id)
}

/// `GET /api/v1/deployments/{flow}/{deployment}`: id, paused, status, schedules, schema, and
/// the desired state and sync of a managed deployment.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{flow}/{deployment}",
    tag = "deployments",
    params(
        ("flow" = String, Path, description = "The flow's name"),
        ("deployment" = String, Path, description = "The deployment's name"),
    ),
    responses(
        (status = 200, description = "The deployment as Prefect describes it, with flowgate's desired state if managed", body = DeploymentView),
        (status = 400, description = "`invalid_query`: not a valid name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not a deployment or scope of this token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_deployment`: neither in Prefect nor managed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`upstream_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn deployment(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
        let target = target(&path)?;
        token.allow(&target, Scope::Read)?;
        let managed = super::manage::state_of(&state, &target).await?;
        let read = state
            .submitter
            .prefect
            .read_path(
                Call::ReadObject,
                &["deployments", "name", target.flow(), target.deployment()],
                deadline(&state),
            )
            .await;
        let actual = match read {
            Ok(d) => Some(typed::<PrefectDeployment>(d, "deployment")?),
            // Managed but not (yet, or no longer) in Prefect: the desired state still shows.
            Err(PrefectError::NotFound) if managed.is_some() => None,
            Err(e) => return Err(missing_as(upstream(e), &target)),
        };
        Ok(HttpResponse::Ok().json(DeploymentView::new(&target, actual, managed)))
    };
    reply(result.await, &request_id)
}

/// A 404 from a read of the named deployment says that deployment does not exist.
fn missing_as(e: GatewayError, target: &DeploymentRef) -> GatewayError {
    match e {
        GatewayError::NotFound => GatewayError::UnknownDeployment(target.clone()),
        other => other,
    }
}

/// The `{flow}/{deployment}` path segments as a deployment name.
pub(super) fn target((flow, deployment): &(String, String)) -> Result<DeploymentRef, GatewayError> {
    DeploymentRef::parse(&format!("{flow}/{deployment}"))
        .map_err(|e| GatewayError::InvalidQuery(format!("deployment: {e}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Comma-separated state types (`COMPLETED,FAILED`); all when absent.
    state: Option<String>,
    /// Runs per page, 1 to 200 (default 20).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Where the next page starts: runs expected to start at or before `t`, except the ones
/// already shown at exactly `t` (Prefect's `before_` is inclusive, and runs can share a time).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    t: String,
    skip: Vec<uuid::Uuid>,
}

impl Cursor {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(raw: &str) -> Result<Self, GatewayError> {
        let bad = || GatewayError::InvalidQuery("cursor: not a cursor this API gave".into());
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| bad())?;
        let time_ok = humantime::parse_rfc3339_weak(
            cursor
                .t
                .trim_end_matches('Z')
                .split('+')
                .next()
                .unwrap_or(""),
        )
        .is_ok();
        if !time_ok || cursor.skip.len() > MAX_TIES {
            return Err(bad());
        }
        Ok(cursor)
    }

    /// The cursor after `page` (full, newest first), given the one that led to it.
    fn after(page: &[RunView], previous: Option<&Cursor>) -> Option<Cursor> {
        let t = page.last()?.expected_start_time.clone()?;
        let mut skip: Vec<uuid::Uuid> = previous
            .filter(|p| p.t == t)
            .map(|p| p.skip.clone())
            .unwrap_or_default();
        skip.extend(
            page.iter()
                .filter(|r| r.expected_start_time.as_deref() == Some(t.as_str()))
                .map(|r| r.flow_run_id),
        );
        // More ties than a cursor holds: the rest of that instant is given up, not looped on.
        skip.truncate(MAX_TIES);
        Some(Cursor { t, skip })
    }
}

/// `GET /api/v1/deployments/{flow}/{deployment}/runs`: newest first (by expected start time).
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{flow}/{deployment}/runs",
    tag = "runs",
    params(
        ("flow" = String, Path, description = "The flow's name"),
        ("deployment" = String, Path, description = "The deployment's name"),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "A page of runs, newest first", body = RunPage),
        (status = 400, description = "`invalid_query`: unknown state, bad cursor or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_deployment`: Prefect has no such deployment", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`upstream_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn history(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<HistoryQuery>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
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
        let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(raw) => Some(Cursor::decode(raw)?),
            None => None,
        };
        let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        // The id through the deployment cache the webhooks use: no read of Prefect per page.
        let id = state
            .resolver
            .resolve(&target, deadline(&state), Patience::UntilDeadline)
            .await
            .map_err(|e| missing_as(upstream(e), &target))?
            .id;
        let after = cursor.as_ref().map(|c| (c.t.as_str(), c.skip.as_slice()));
        let runs = state
            .submitter
            .prefect
            .filter_flow_runs(id, &states, after, limit, deadline(&state))
            .await
            .map_err(upstream)?;
        let items = runs
            .into_iter()
            .map(|r| typed::<PrefectRun>(r, "flow run").map(|r| RunView::new(r, Some(&target))))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() == limit {
            Cursor::after(&items, cursor.as_ref()).map(|c| c.encode())
        } else {
            None
        };
        Ok(HttpResponse::Ok().json(RunPage {
            deployment: target.to_string(),
            items,
            next_cursor: next,
        }))
    };
    reply(result.await, &request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        let c = Cursor {
            t: "2026-11-30T15:00:00.123456Z".into(),
            skip: vec![uuid::Uuid::nil()],
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("2026-11-30T15:00:00Z").is_err());
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"t":"yesterday","skip":[]}"#);
        assert!(Cursor::decode(&forged).is_err());
    }
}
