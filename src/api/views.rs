//! What `/api/v1` answers, as types: the handlers serialize these and the OpenAPI document
//! (`openapi`) is derived from them, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::DeploymentRef;

/// Prefect's state types that end a run.
const FINAL: [&str; 4] = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"];

/// Where a queued request stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub delivery_id: uuid::Uuid,
    /// `queued`, `delivered`, `dead` (gave up: `reason`) or `discarded` (by an operator).
    #[schema(pattern = "^(queued|delivered|dead|discarded)$")]
    pub status: String,
    /// The webhook route, or `api` for a trigger through this API.
    pub route: String,
    /// `flow/deployment`.
    pub deployment: String,
    /// Delivery attempts made (for a delivered request, including the one that made the run).
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Queued: when the next attempt is due.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// Queued: why the last attempt failed.
    pub last_error: Option<String>,
    /// Dead or discarded: why.
    pub reason: Option<String>,
    /// Delivered: the flow run it became.
    pub flow_run_id: Option<uuid::Uuid>,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
}

/// A flow run as Prefect's `/flow_runs/…` answers it (the fields this API shows).
#[derive(Debug, Deserialize)]
pub struct PrefectRun {
    pub id: uuid::Uuid,
    pub name: String,
    pub deployment_id: Option<uuid::Uuid>,
    pub state_type: Option<String>,
    pub state_name: Option<String>,
    pub created: Option<String>,
    pub expected_start_time: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    #[serde(default)]
    pub total_run_time: f64,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A flow run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub flow_run_id: uuid::Uuid,
    pub name: String,
    /// `flow/deployment`, when the run belongs to a deployment.
    pub deployment: Option<String>,
    pub deployment_id: Option<uuid::Uuid>,
    /// Prefect's state type: `SCHEDULED`, `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`,
    /// `CANCELLED`, `CRASHED`, `PAUSED` or `CANCELLING`.
    pub state: Option<String>,
    /// The state's name (`Late`, `Completed`, …).
    pub state_name: Option<String>,
    /// Whether the state is final (completed, failed, cancelled or crashed).
    #[serde(rename = "final")]
    pub is_final: bool,
    #[schema(format = DateTime)]
    pub created: Option<String>,
    #[schema(format = DateTime)]
    pub expected_start_time: Option<String>,
    #[schema(format = DateTime)]
    pub start_time: Option<String>,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    /// Seconds spent running.
    pub total_run_time: f64,
    /// The flow's parameters, by name.
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    pub tags: Vec<String>,
}

impl RunView {
    pub fn new(run: PrefectRun, deployment: Option<&DeploymentRef>) -> Self {
        Self {
            flow_run_id: run.id,
            name: run.name,
            deployment: deployment.map(ToString::to_string),
            deployment_id: run.deployment_id,
            is_final: run
                .state_type
                .as_deref()
                .is_some_and(|s| FINAL.contains(&s)),
            state: run.state_type,
            state_name: run.state_name,
            created: run.created,
            expected_start_time: run.expected_start_time,
            start_time: run.start_time,
            end_time: run.end_time,
            total_run_time: run.total_run_time,
            parameters: run.parameters,
            tags: run.tags,
        }
    }
}

/// A page of a deployment's runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub deployment: String,
    pub items: Vec<RunView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What a cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAnswer {
    pub flow_run_id: uuid::Uuid,
    /// `cancelled` (the run had not started) or `cancelling` (a running run was asked to stop).
    #[schema(pattern = "^(cancelled|cancelling)$")]
    pub status: String,
    /// The state type before the cancel.
    pub previous_state: String,
}

/// A deployment as Prefect describes it, and flowgate's desired state if it manages it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    /// `flow/deployment`.
    pub deployment: String,
    /// Whether Prefect has it (a managed deployment may wait to be created).
    pub in_prefect: bool,
    pub id: Option<uuid::Uuid>,
    pub paused: bool,
    /// Prefect's deployment status (`READY`: a worker or `serve` process polls it).
    pub status: Option<String>,
    /// Prefect's schedules (`schedule.cron`, `timezone`, `active`, …).
    #[schema(value_type = Vec<Object>)]
    pub schedules: Vec<Value>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub work_pool_name: Option<String>,
    pub enforce_parameter_schema: bool,
    /// The flow's parameters as a JSON schema (what triggers are checked against).
    #[schema(value_type = Option<Object>)]
    pub parameter_openapi_schema: Option<Value>,
    /// flowgate's desired state and sync, when it manages this deployment.
    pub managed: Option<super::manage::ManagedState>,
}

/// A deployment as Prefect's `/deployments/name/…` answers it (the fields shown).
#[derive(Debug, Deserialize)]
pub struct PrefectDeployment {
    pub id: uuid::Uuid,
    #[serde(default)]
    pub paused: bool,
    pub status: Option<String>,
    #[serde(default)]
    pub schedules: Vec<Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub work_pool_name: Option<String>,
    #[serde(default)]
    pub enforce_parameter_schema: bool,
    pub parameter_openapi_schema: Option<Value>,
}

impl DeploymentView {
    pub fn new(
        name: &DeploymentRef,
        actual: Option<PrefectDeployment>,
        managed: Option<super::manage::ManagedState>,
    ) -> Self {
        let d = actual.as_ref();
        Self {
            deployment: name.to_string(),
            in_prefect: d.is_some(),
            id: d.map(|d| d.id),
            paused: d.is_some_and(|d| d.paused),
            status: d.and_then(|d| d.status.clone()),
            schedules: d.map(|d| d.schedules.clone()).unwrap_or_default(),
            tags: d.map(|d| d.tags.clone()).unwrap_or_default(),
            description: d.and_then(|d| d.description.clone()),
            work_pool_name: d.and_then(|d| d.work_pool_name.clone()),
            enforce_parameter_schema: d.is_some_and(|d| d.enforce_parameter_schema),
            parameter_openapi_schema: d.and_then(|d| d.parameter_openapi_schema.clone()),
            managed,
        }
    }
}
