//! Own Prefect servers for tests that stop, restart or load them (so the shared e2e server is
//! never disturbed). No runner: runs stay SCHEDULED, and Prefect's CPU goes to creating them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use std::time::Duration;

use tokio::time::Instant;

use crate::e2e::count_runs;
use crate::helpers::repo_path;

/// Starts (or finds running) the server on `port`, with the deployment registered.
pub async fn start(port: u16) -> String {
    let status = tokio::process::Command::new(repo_path("scripts/local-prefect"))
        .args(["start", &port.to_string()])
        .env("FLOWGATE_PREFECT_RUNNER", "0")
        .status()
        .await
        .expect("scripts/local-prefect runs");
    assert!(
        status.success(),
        "scripts/local-prefect start {port} failed"
    );
    format!("http://127.0.0.1:{port}/api")
}

pub async fn stop(port: u16) {
    let status = tokio::process::Command::new(repo_path("scripts/local-prefect"))
        .args(["stop", &port.to_string()])
        .status()
        .await
        .expect("scripts/local-prefect runs");
    assert!(status.success(), "scripts/local-prefect stop {port} failed");
}

/// Every run that carries `tag`.
pub async fn runs_with_tag(api: &str, tag: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut runs = Vec::new();
    loop {
        let page: Vec<Value> = client
            .post(format!("{api}/flow_runs/filter"))
            .json(&json!({"flow_runs": {"tags": {"all_": [tag]}}, "sort": "ID_DESC", "limit": 200, "offset": runs.len()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let last = page.len() < 200;
        runs.extend(page);
        if last {
            return runs;
        }
    }
}

/// How many runs carry `tag`, by email parameter.
pub async fn runs_per_email(api: &str, tag: &str) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for run in runs_with_tag(api, tag).await {
        let email = run["parameters"]["email"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *counts.entry(email).or_insert(0) += 1;
    }
    counts
}

/// Polls Prefect until `want` runs carry `tag`; more than `want` fails at once.
pub async fn wait_for_runs(api: &str, tag: &str, want: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let have = count_runs(api, tag).await;
        if have >= want {
            assert_eq!(have, want, "more runs than requests");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {have} of {want} runs after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn assert_one_run_per_signup(api: &str, tag: &str, emails: &[String]) {
    let runs = runs_per_email(api, tag).await;
    assert_eq!(runs.len(), emails.len(), "every signup has a run");
    for email in emails {
        assert_eq!(runs.get(email), Some(&1), "{email} has exactly one run");
    }
}
