//! Fakes of Prefect behaviour the shared helpers do not model.

use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;

/// `create_flow_run` answered with a new flow run, under a fresh id, on every call (as Prefect
/// does for creates it does not deduplicate). A gateway answer that repeats an earlier run id
/// therefore did not come from a second create.
pub struct FreshFlowRun;

impl Respond for FreshFlowRun {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        ResponseTemplate::new(201).set_body_json(flow_run_body(&uuid::Uuid::new_v4().to_string()))
    }
}

/// [`partner_prefect`] whose creates (expected `creates` times) each get a fresh flow run id.
pub async fn partner_prefect_fresh_runs(creates: u64) -> MockServer {
    // The helper's own create mock (one fixed id) is shadowed by this one; its `expect(0)`
    // confirms on drop that no create was answered with the fixed id.
    let server = partner_prefect(0).await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(FreshFlowRun)
        .with_priority(1)
        .expect(creates)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_fresh_run_fake_answers_each_create_with_a_new_id() {
    let prefect = partner_prefect_fresh_runs(2).await;
    let url = format!(
        "{}/api/deployments/21e9741f-0000-4000-8000-0000000000aa/create_flow_run",
        prefect.uri()
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = reqwest::Client::new()
            .post(&url)
            .json(&serde_json::json!({"idempotency_key": "same"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        ids.push(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).unwrap());
    }
    assert_ne!(ids[0], ids[1]);
}
