//! Dispatch stage: create the flow run in Prefect, sending only parameters the deployment
//! declares. A 404 on create means the cached id is stale: forget it and resolve once more.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::map::FlowRunPlan;
use super::resolve::DeploymentResolver;
use super::schema::check_parameters;
use crate::domain::{DeploymentRef, Parameters};
use crate::error::GatewayError;
use crate::prefect::{
    rejection_reasons, Deadline, Deployment, FlowRunCreate, Patience, PrefectClient, PrefectError,
};

/// Whether this request made the run, or found one made earlier with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Created,
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    pub flow_run_id: uuid::Uuid,
    pub status: RunStatus,
}

#[tracing::instrument(level = "debug", name = "stage.dispatch", skip_all, fields(route = %plan.route.name(), deployment = %plan.route.deployment()))]
pub async fn dispatch(
    plan: &FlowRunPlan,
    resolver: &DeploymentResolver,
    prefect: &PrefectClient,
    deadline: Deadline,
    patience: Patience,
) -> Result<Dispatched, GatewayError> {
    let run = RunRequest {
        target: plan.route.deployment(),
        parameters: &plan.parameters,
        tags: plan.tags(),
        name: plan.name.as_deref(),
        idempotency_key: &plan.namespaced_key(),
    };
    create_run(&run, resolver, prefect, deadline, patience).await
}

/// One flow run to create, from a request or from the outbox.
pub struct RunRequest<'a> {
    pub target: &'a DeploymentRef,
    pub parameters: &'a Parameters,
    pub tags: &'a [String],
    pub name: Option<&'a str>,
    /// Namespaced; the same for every attempt, so Prefect makes the run once.
    pub idempotency_key: &'a str,
}

/// Resolves, checks the parameters against the deployment's schema and creates the run.
pub async fn create_run(
    run: &RunRequest<'_>,
    resolver: &DeploymentResolver,
    prefect: &PrefectClient,
    deadline: Deadline,
    patience: Patience,
) -> Result<Dispatched, GatewayError> {
    let mut may_re_resolve = true;
    loop {
        let deployment = resolver
            .resolve(run.target, deadline, patience)
            .await
            .map_err(|e| upstream_error(e, run.target))?;
        let parameters = declared_only(run.parameters, &deployment);
        check_parameters(&deployment, &parameters)?;
        let body = FlowRunCreate {
            parameters: &parameters,
            tags: run.tags,
            name: run.name,
            idempotency_key: run.idempotency_key,
        };
        match prefect
            .create_flow_run(deployment.id, &body, deadline, patience)
            .await
        {
            Ok(created) => {
                let status = if created.created {
                    RunStatus::Created
                } else {
                    RunStatus::Duplicate
                };
                tracing::debug!(flow_run_id = %created.id, ?status, "flow run dispatched");
                return Ok(Dispatched {
                    flow_run_id: created.id,
                    status,
                });
            }
            Err(PrefectError::NotFound) if may_re_resolve => {
                tracing::warn!(deployment_id = %deployment.id, "cached deployment id is stale; resolving again");
                may_re_resolve = false;
                resolver.invalidate(run.target).await;
            }
            Err(e) => return Err(upstream_error(Arc::new(e), run.target)),
        }
    }
}

/// Prefect accepts undeclared parameters and the run then crashes, so they are never sent.
/// Borrowed when every parameter is declared (the usual case): nothing is copied.
fn declared_only<'a>(parameters: &'a Parameters, deployment: &Deployment) -> Cow<'a, Parameters> {
    let Some(declared) = &deployment.declared_parameters else {
        return Cow::Borrowed(parameters);
    };
    if parameters.map().keys().all(|k| declared.contains(k)) {
        return Cow::Borrowed(parameters);
    }
    let (kept, dropped): (Map<String, Value>, Map<String, Value>) = parameters
        .map()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| declared.contains(k));
    let names: Vec<&String> = dropped.keys().collect();
    tracing::debug!(
        ?names,
        "parameters not declared by the deployment were not sent"
    );
    Cow::Owned(kept.into())
}

/// The one mapping from Prefect's errors to the sender's.
fn upstream_error(error: Arc<PrefectError>, target: &DeploymentRef) -> GatewayError {
    match error.as_ref() {
        PrefectError::NotFound => GatewayError::DeploymentNotFound(target.clone()),
        PrefectError::Rejected { detail, .. } => {
            GatewayError::ParametersRejected(rejection_reasons(detail))
        }
        PrefectError::Timeout => GatewayError::UpstreamTimeout(error),
        PrefectError::Unauthorized { .. } | PrefectError::Unexpected(_) => {
            GatewayError::UpstreamError(error)
        }
        PrefectError::ServerError { .. }
        | PrefectError::RateLimited { .. }
        | PrefectError::Connect(_)
        | PrefectError::Transport(_)
        | PrefectError::Busy => GatewayError::UpstreamUnavailable(error),
    }
}
