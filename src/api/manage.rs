//! The lifecycle API (scope `manage`): `PUT`/`DELETE /api/v1/deployments/{flow}/{deployment}`,
//! `POST …/pause` and `…/resume`, `GET /api/v1/deployments?managed=true`. The desired state is
//! stored first, then the reconciler applies it; an answer waits for that up to the request
//! budget: `200` once Prefect holds it, `202` with `sync: pending` while Prefect cannot take it.

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

use super::runs::{deadline, reply, target};
use super::tokens::Scope;
use crate::domain::{DeploymentRef, FieldError};
use crate::error::{GatewayError, Problem};
use crate::manage::apply::{actual, remove};
use crate::manage::DesiredDeployment;
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::store::{ManagedRow, ManagedWrite};
use crate::timefmt::rfc3339_secs;

/// A managed deployment: what flowgate keeps in Prefect and how far it got.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagedState {
    /// `flow/deployment`.
    pub deployment: String,
    /// `in_sync` (Prefect holds the desired state), `pending` (to be applied: Prefect cannot
    /// take it now, or the reconciler has not got to it), `error` (Prefect refused it: see
    /// `error`), `removed` (deleted from Prefect and from flowgate).
    #[schema(pattern = "^(in_sync|pending|error|removed)$")]
    pub sync: String,
    /// Bumped by every change of the desired state.
    pub generation: i64,
    /// Prefect's refusal (`error`), or why the last attempt could not reach it (`pending`).
    pub error: Option<String>,
    /// Prefect's deployment id, once created.
    pub prefect_id: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    /// Being removed from Prefect.
    pub deleting: bool,
    /// The desired state (absent once removed).
    pub desired: Option<DesiredDeployment>,
}

impl ManagedState {
    pub fn from_row(row: &ManagedRow, waiting: Option<String>) -> Self {
        let sync = row.sync();
        Self {
            deployment: row.name.clone(),
            sync: sync.to_owned(),
            generation: row.generation,
            error: row
                .error
                .clone()
                .or_else(|| waiting.filter(|_| sync == "pending")),
            prefect_id: row.prefect_id.clone(),
            updated_at: Some(rfc3339_secs(row.updated_at)),
            deleting: row.deleted,
            desired: serde_json::from_str(&row.spec).ok(),
        }
    }

    fn removed(name: &DeploymentRef) -> Self {
        Self {
            deployment: name.to_string(),
            sync: "removed".into(),
            generation: 0,
            error: None,
            prefect_id: None,
            updated_at: None,
            deleting: false,
            desired: None,
        }
    }
}

/// Managed deployments.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagedList {
    pub items: Vec<ManagedState>,
}

fn store_error(e: crate::store::StoreError) -> GatewayError {
    tracing::warn!(error = %e, "managed deployments: the store failed");
    GatewayError::StoreUnavailable
}

/// The managed row now, as the API shows it.
pub async fn state_of(
    state: &AppState,
    name: &DeploymentRef,
) -> Result<Option<ManagedState>, GatewayError> {
    let key = name.to_string();
    let row = state
        .store
        .managed(key.clone())
        .await
        .map_err(store_error)?;
    Ok(row.map(|r| ManagedState::from_row(&r, state.manager.waiting_reason(&key))))
}

/// How often a waiting request reads its deployment's row again.
const REREAD_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Writes, wakes the reconciler, and waits (up to the request budget) for it to apply this
/// generation; answers 200 once applied or removed, 202 otherwise.
async fn settle(
    state: &AppState,
    name: &DeploymentRef,
    write: ManagedWrite,
) -> Result<HttpResponse, GatewayError> {
    let key = name.to_string();
    let mut events = state.manager.subscribe();
    let generation = state
        .store
        .write_managed(write)
        .await
        .map_err(store_error)?;
    let current = state
        .store
        .managed(key.clone())
        .await
        .map_err(store_error)?;
    let done = current
        .as_ref()
        .is_some_and(|r| r.sync() == "in_sync" && r.generation == generation);
    if !done {
        state.manager.wake();
        // This replica's reconciler tells when it is done; another replica's (the lease
        // holder's) shows only in the store, so the row is read again meanwhile.
        let wait = async {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok((n, g, _)) if n == key && g >= generation => return,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = tokio::time::sleep(REREAD_EVERY) => {
                        let row = state.store.managed(key.clone()).await;
                        if let Ok(row) = row {
                            if row.is_none_or(|r| r.generation >= generation && r.sync() != "pending") {
                                return;
                            }
                        }
                    }
                }
            }
        };
        let _ = tokio::time::timeout(state.submitter.budget, wait).await;
    }
    let shown = match state_of(state, name).await? {
        Some(s) => s,
        None => ManagedState::removed(name),
    };
    let status = if matches!(shown.sync.as_str(), "in_sync" | "removed") {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::ACCEPTED
    };
    Ok(HttpResponse::build(status).json(shown))
}

fn parse(body: &[u8]) -> Result<DesiredDeployment, GatewayError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let desired: DesiredDeployment = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() && path != "." {
            GatewayError::ValidationFailed(vec![FieldError::new(path, inner.to_string())])
        } else {
            GatewayError::MalformedBody(format!(
                "expected the desired state as a JSON object: {inner}"
            ))
        }
    })?;
    let errors = desired.check();
    if errors.is_empty() {
        Ok(desired)
    } else {
        Err(GatewayError::ValidationFailed(errors))
    }
}

/// `PUT /api/v1/deployments/{flow}/{deployment}`.
#[utoipa::path(
    put,
    path = "/api/v1/deployments/{flow}/{deployment}",
    tag = "deployments",
    params(
        ("flow" = String, Path, description = "The flow's name (made in Prefect if missing)"),
        ("deployment" = String, Path, description = "The deployment's name"),
    ),
    request_body(content = DesiredDeployment, content_type = "application/json"),
    responses(
        (status = 200, description = "Prefect holds the desired state", body = ManagedState),
        (status = 202, description = "Stored; Prefect gets it once it can (`sync: pending`), or refused it (`sync: error`)", body = ManagedState),
        (status = 400, description = "`malformed_body` or `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not a deployment or the `manage` scope of this token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad cron, time zone or field, named in `errors`; nothing stored, no call to Prefect", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn put(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Bytes,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
        let name = target(&path)?;
        token.allow(&name, Scope::Manage)?;
        let desired = parse(&body)?;
        let spec = serde_json::to_string(&desired)
            .map_err(|e| GatewayError::MalformedBody(e.to_string()))?;
        tracing::info!(target: "flowgate::api", token = %token.name, deployment = %name, "desired deployment set");
        let write = ManagedWrite::Put {
            name: name.to_string(),
            spec,
            now: crate::manage::reconciler::now(),
        };
        settle(&state, &name, write).await
    };
    reply(result.await, &request_id)
}

/// `DELETE /api/v1/deployments/{flow}/{deployment}`.
#[utoipa::path(
    delete,
    path = "/api/v1/deployments/{flow}/{deployment}",
    tag = "deployments",
    params(
        ("flow" = String, Path, description = "The flow's name"),
        ("deployment" = String, Path, description = "The deployment's name"),
    ),
    responses(
        (status = 200, description = "Removed from Prefect (with its scheduled runs) and from flowgate (`sync: removed`)", body = ManagedState),
        (status = 202, description = "Marked for removal; done once Prefect can take it", body = ManagedState),
        (status = 401, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_deployment`: neither managed nor in Prefect", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`upstream_unavailable` (an unmanaged deployment, Prefect down) or `store_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
        let name = target(&path)?;
        token.allow(&name, Scope::Manage)?;
        tracing::info!(target: "flowgate::api", token = %token.name, deployment = %name, "deployment deletion asked");
        if state_of(&state, &name).await?.is_some() {
            let write = ManagedWrite::Delete {
                name: name.to_string(),
                now: crate::manage::reconciler::now(),
            };
            return settle(&state, &name, write).await;
        }
        // Not managed: removed from Prefect directly, if it is there.
        let deadline = deadline(&state);
        let prefect = &state.submitter.prefect;
        if actual(prefect, &name, deadline)
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Err(GatewayError::UnknownDeployment(name));
        }
        remove(prefect, &name, deadline)
            .await
            .map_err(unavailable)?;
        Ok(HttpResponse::Ok().json(ManagedState::removed(&name)))
    };
    reply(result.await, &request_id)
}

fn unavailable(e: crate::prefect::PrefectError) -> GatewayError {
    GatewayError::UpstreamUnavailable(std::sync::Arc::new(e))
}

/// `POST …/pause` and `…/resume`: a managed deployment's desired `paused` changes (and is
/// applied); an unmanaged one is paused or resumed in Prefect directly.
async fn set_paused(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    request_id: RequestId,
    paused: bool,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
        let name = target(&path)?;
        token.allow(&name, Scope::Manage)?;
        tracing::info!(target: "flowgate::api", token = %token.name, deployment = %name, paused, "deployment pause changed");
        let key = name.to_string();
        if let Some(row) = state
            .store
            .managed(key.clone())
            .await
            .map_err(store_error)?
        {
            if row.deleted {
                return Err(GatewayError::UnknownDeployment(name));
            }
            let mut desired: DesiredDeployment = serde_json::from_str(&row.spec)
                .map_err(|e| GatewayError::MalformedBody(e.to_string()))?;
            desired.paused = paused;
            let spec = serde_json::to_string(&desired)
                .map_err(|e| GatewayError::MalformedBody(e.to_string()))?;
            let write = ManagedWrite::Put {
                name: key,
                spec,
                now: crate::manage::reconciler::now(),
            };
            return settle(&state, &name, write).await;
        }
        let deadline = deadline(&state);
        let prefect = &state.submitter.prefect;
        let d = actual(prefect, &name, deadline)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| GatewayError::UnknownDeployment(name.clone()))?;
        let id = d["id"].as_str().unwrap_or_default();
        prefect
            .set_paused(id, paused, deadline)
            .await
            .map_err(unavailable)?;
        Ok(HttpResponse::Ok().json(serde_json::json!({
            "deployment": name.to_string(),
            "sync": "unmanaged",
            "paused": paused,
        })))
    };
    reply(result.await, &request_id)
}

/// `POST /api/v1/deployments/{flow}/{deployment}/pause`.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{flow}/{deployment}/pause",
    tag = "deployments",
    params(("flow" = String, Path), ("deployment" = String, Path)),
    responses(
        (status = 200, description = "Paused: no new scheduled runs (the scheduled ones dropped)", body = ManagedState),
        (status = 202, description = "Stored; applied once Prefect can take it", body = ManagedState),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_deployment`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn pause(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    set_paused(req, path, state, request_id, true).await
}

/// `POST /api/v1/deployments/{flow}/{deployment}/resume`.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{flow}/{deployment}/resume",
    tag = "deployments",
    params(("flow" = String, Path), ("deployment" = String, Path)),
    responses(
        (status = 200, description = "Resumed: its schedules make runs again", body = ManagedState),
        (status = 202, description = "Stored; applied once Prefect can take it", body = ManagedState),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_deployment`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resume(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    set_paused(req, path, state, request_id, false).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Must be `true`: the deployments flowgate manages.
    managed: Option<bool>,
}

/// `GET /api/v1/deployments?managed=true`.
#[utoipa::path(
    get,
    path = "/api/v1/deployments",
    tag = "deployments",
    params(ListQuery),
    responses(
        (status = 200, description = "The managed deployments this token may use, by name", body = ManagedList),
        (status = 400, description = "`invalid_query`: `managed=true` missing", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let result = async {
        let tokens = state.api_tokens();
        let token = tokens.authenticate(req.headers())?;
        token.has(Scope::Read)?;
        if query.managed != Some(true) {
            return Err(GatewayError::InvalidQuery(
                "managed: only managed=true is listed (Prefect's own list is not proxied)".into(),
            ));
        }
        let rows = state.store.all_managed().await.map_err(store_error)?;
        let items = rows
            .iter()
            .filter(|r| DeploymentRef::parse(&r.name).is_ok_and(|n| token.may_use(&n)))
            .map(|r| ManagedState::from_row(r, state.manager.waiting_reason(&r.name)))
            .collect();
        Ok(HttpResponse::Ok().json(ManagedList { items }))
    };
    reply(result.await, &request_id)
}
