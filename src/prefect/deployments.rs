//! Deployments as the lifecycle API manages them: the flow made if missing, the deployment
//! upserted by (flow, name), its runs scheduled, paused, resumed or deleted. Every call goes
//! through the concurrency limit; each is idempotent in Prefect, so each is retried within the
//! deadline.

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{read_json, Patience, PrefectClient};
use super::http::Outgoing;
use super::metrics::Call;
use super::retry::{retry, Deadline};
use super::PrefectError;

impl PrefectClient {
    /// `POST /flows/ {"name"}`: the flow's id (made, or the one already there).
    pub async fn ensure_flow(
        &self,
        name: &str,
        deadline: Deadline,
    ) -> Result<String, PrefectError> {
        let request = Outgoing::post_json(self.url(&["flows", ""])?, &json!({ "name": name }))?;
        let flow = self.manage(deadline, &request).await?;
        id_of(&flow)
    }

    /// `POST /deployments/`: creates, or replaces the deployment of that flow and name (its
    /// auto-scheduled runs are dropped by Prefect); the deployment as Prefect now holds it,
    /// with its id.
    pub async fn upsert_deployment(
        &self,
        body: &Value,
        deadline: Deadline,
    ) -> Result<(String, Value), PrefectError> {
        let request = Outgoing::post_json(self.url(&["deployments", ""])?, body)?;
        let d = self.manage(deadline, &request).await?;
        Ok((id_of(&d)?, d))
    }

    /// `POST /deployments/{id}/schedule`: Prefect's scheduler makes the runs its active
    /// schedules call for now, rather than at its next loop.
    pub async fn schedule_runs(&self, id: &str, deadline: Deadline) -> Result<(), PrefectError> {
        let request = Outgoing::post_json(self.url(&["deployments", id, "schedule"])?, &json!({}))?;
        self.manage(deadline, &request).await.map(drop)
    }

    /// `POST /deployments/{id}/pause_deployment` or `resume_deployment` (a pause drops the
    /// scheduled runs).
    pub async fn set_paused(
        &self,
        id: &str,
        paused: bool,
        deadline: Deadline,
    ) -> Result<(), PrefectError> {
        let action = if paused {
            "pause_deployment"
        } else {
            "resume_deployment"
        };
        let request = Outgoing::new(Method::POST, self.url(&["deployments", id, action])?);
        self.manage(deadline, &request).await.map(drop)
    }

    /// `DELETE /deployments/{id}` (with its scheduled runs); a deployment already gone is done.
    pub async fn delete_deployment(
        &self,
        id: &str,
        deadline: Deadline,
    ) -> Result<(), PrefectError> {
        let request = Outgoing::new(Method::DELETE, self.url(&["deployments", id])?);
        match self.manage(deadline, &request).await {
            Ok(_) | Err(PrefectError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /flow_runs/filter`: the deployment's runs that Prefect's scheduler made (tagged
    /// `auto-scheduled`) and that wait in state `Scheduled`, latest first, at most `limit`,
    /// expected to start at or before a time except some runs (the page before's last ones).
    pub async fn auto_scheduled_runs(
        &self,
        deployment_id: &str,
        before: Option<(&str, &[String])>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<Value>, PrefectError> {
        let flow_runs = json!({
            "deployment_id": { "any_": [deployment_id] },
            "state": { "type": { "any_": ["SCHEDULED"] }, "name": { "any_": ["Scheduled"] } },
            "tags": { "all_": ["auto-scheduled"] },
        });
        self.runs_page(flow_runs, before, limit, deadline).await
    }

    /// `DELETE /flow_runs/{id}`; a run already gone is done.
    pub async fn delete_flow_run(&self, id: &str, deadline: Deadline) -> Result<(), PrefectError> {
        let request = Outgoing::new(Method::DELETE, self.url(&["flow_runs", id])?);
        match self.manage(deadline, &request).await {
            Ok(_) | Err(PrefectError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One idempotent call, retried within the deadline; its JSON body (`null` when empty).
    async fn manage(&self, deadline: Deadline, request: &Outgoing) -> Result<Value, PrefectError> {
        let patience = Patience::UntilDeadline;
        let retried = retry(
            self.policy_for(patience),
            deadline,
            self.call_timeout,
            |timeout| async move {
                let answer = self
                    .send(Call::ManageDeployment, request, timeout, deadline, patience)
                    .await?;
                if answer.body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Value::Null);
                }
                read_json::<Value>(&answer)
            },
        )
        .await?;
        Ok(retried.value)
    }
}

fn id_of(v: &Value) -> Result<String, PrefectError> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PrefectError::Unexpected("Prefect's answer carries no id".into()))
}
