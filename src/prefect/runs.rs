//! Flow runs as the internal API reads and cancels them: Prefect's JSON passed through as
//! values (flowgate shapes the answer), each call through the concurrency limit, reads retried
//! within the deadline.

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{read_json, Patience, PrefectClient};
use super::http::Outgoing;
use super::metrics::Call;
use super::retry::{retry, Deadline};
use super::PrefectError;

impl PrefectClient {
    /// `GET /flow_runs/{id}`.
    pub async fn read_flow_run(
        &self,
        id: uuid::Uuid,
        deadline: Deadline,
    ) -> Result<Value, PrefectError> {
        self.read_path(Call::ReadFlowRun, &["flow_runs", &id.to_string()], deadline)
            .await
    }

    /// `GET` of any read-only object under the API (`deployments/{id}`, `flows/{id}`,
    /// `deployments/name/{flow}/{deployment}`), as JSON.
    pub async fn read_path(
        &self,
        call: Call,
        segments: &[&str],
        deadline: Deadline,
    ) -> Result<Value, PrefectError> {
        let request = Outgoing::new(Method::GET, self.url(segments)?);
        self.read_value(call, deadline, &request).await
    }

    /// `POST /flow_runs/filter`: runs of one deployment, newest first (by expected start time),
    /// at most `limit`, optionally in some state types, and expected to start at or before a
    /// time except some runs (the cursor: the runs already shown at that time).
    pub async fn filter_flow_runs(
        &self,
        deployment_id: uuid::Uuid,
        state_types: &[String],
        before: Option<(&str, &[uuid::Uuid])>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<Value>, PrefectError> {
        let mut flow_runs = json!({ "deployment_id": { "any_": [deployment_id] } });
        if !state_types.is_empty() {
            flow_runs["state"] = json!({ "type": { "any_": state_types } });
        }
        self.runs_page(flow_runs, before, limit, deadline).await
    }

    /// `POST /flow_runs/filter` with the `flow_runs` filter given, latest first (by expected
    /// start time), at most `limit`, and expected to start at or before a time except some runs
    /// (the cursor: the runs already read at that time).
    pub(super) async fn runs_page<I: serde::Serialize>(
        &self,
        mut flow_runs: Value,
        before: Option<(&str, &[I])>,
        limit: usize,
        deadline: Deadline,
    ) -> Result<Vec<Value>, PrefectError> {
        let url = self.url(&["flow_runs", "filter"])?;
        if let Some((time, shown)) = before {
            flow_runs["expected_start_time"] = json!({ "before_": time });
            if !shown.is_empty() {
                flow_runs["id"] = json!({ "not_any_": shown });
            }
        }
        let body =
            json!({ "flow_runs": flow_runs, "sort": "EXPECTED_START_TIME_DESC", "limit": limit });
        let request = Outgoing::post_json(url, &body)?;
        let value = self
            .read_value(Call::FilterFlowRuns, deadline, &request)
            .await?;
        match value {
            Value::Array(runs) => Ok(runs),
            _ => Err(PrefectError::Unexpected(
                "the run filter did not answer a list".into(),
            )),
        }
    }

    /// `POST /flow_runs/{id}/set_state` with a state of `state_type` (`CANCELLED`,
    /// `CANCELLING`); Prefect's orchestration answer (`status`: `ACCEPT`, `REJECT`, `ABORT`, `WAIT`).
    pub async fn set_flow_run_state(
        &self,
        id: uuid::Uuid,
        state_type: &str,
        state_name: &str,
        deadline: Deadline,
    ) -> Result<Value, PrefectError> {
        let url = self.url(&["flow_runs", &id.to_string(), "set_state"])?;
        let body = json!({ "state": { "type": state_type, "name": state_name, "message": "cancelled through flowgate" } });
        // A state change is not blindly repeated: one attempt.
        let timeout = self.call_timeout.min(deadline.remaining());
        let request = Outgoing::post_json(url, &body)?;
        let answer = self
            .send(
                Call::SetFlowRunState,
                &request,
                timeout,
                deadline,
                Patience::UntilDeadline,
            )
            .await?;
        read_json::<Value>(&answer)
    }

    async fn read_value(
        &self,
        call: Call,
        deadline: Deadline,
        request: &Outgoing,
    ) -> Result<Value, PrefectError> {
        let patience = Patience::UntilDeadline;
        let retried = retry(
            self.policy_for(patience),
            deadline,
            self.call_timeout,
            |timeout| async move {
                let answer = self
                    .send(call, request, timeout, deadline, patience)
                    .await?;
                read_json::<Value>(&answer)
            },
        )
        .await?;
        Ok(retried.value)
    }
}
