//! The deployment lifecycle API against the real Prefect: a deployment made with a cron
//! schedule whose scheduled runs follow the cron, rescheduled, paused, resumed, repaired after
//! a hand deletion, deleted; a bad cron refused before Prefect is asked; and desired state
//! stored while Prefect is down, applied once it is back.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::api_v1::BACKEND;
use crate::e2e::prefect_api;
use crate::helpers::*;
use crate::real_prefect;

fn config(api: &str) -> flowgate::configuration::Configuration {
    let mut settings = settings_with(api, "");
    real_prefect_retries(&mut settings);
    settings.limits.per_ip = None;
    settings.api.deployments_resync_secs = 1;
    flowgate::configuration::Configuration::from_settings_with_env(
        settings,
        flowgate::configuration::PrefectAuth::None,
        &|name: &str| (name == "FLOWGATE_API_TOKEN").then(|| BACKEND.to_owned()),
    )
    .unwrap()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(BACKEND);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The deployment in Prefect, or `None`.
async fn deployment(api: &str, name: &str) -> Option<Value> {
    let r = reqwest::get(format!("{api}/deployments/name/{name}"))
        .await
        .unwrap();
    if r.status().as_u16() == 404 {
        return None;
    }
    assert_eq!(r.status().as_u16(), 200);
    Some(r.json().await.unwrap())
}

/// The expected start times of the deployment's SCHEDULED runs.
async fn scheduled(api: &str, id: &str) -> Vec<String> {
    let runs: Vec<Value> = reqwest::Client::new()
        .post(format!("{api}/flow_runs/filter"))
        .json(&json!({
            "flow_runs": {"deployment_id": {"any_": [id]}, "state": {"type": {"any_": ["SCHEDULED"]}}},
            "limit": 200,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    runs.iter()
        .map(|r| r["expected_start_time"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (at most 30 s) until the deployment's scheduled runs pass `check`.
async fn settles(api: &str, id: &str, check: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = scheduled(api, id).await;
        if check(&runs) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled within 30 s: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Hour and minute (UTC) of an RFC 3339 time.
fn hour_minute(t: &str) -> (u32, u32) {
    let time = &t[11..16];
    (time[..2].parse().unwrap(), time[3..].parse().unwrap())
}

fn desired(cron: &str) -> Value {
    json!({
        "parameters": {"email": "managed@example.com"},
        "tags": ["connector:42"],
        "description": "connector 42",
        "schedules": [{"cron": cron, "timezone": "UTC"}],
    })
}

#[tokio::test]
async fn a_managed_deployment_follows_its_desired_state_through_its_lifecycle() {
    let api = prefect_api().await;
    let app = start_config(config(api)).await;
    let name = format!(
        "flowgate-managed/connector-{}",
        uuid::Uuid::new_v4().simple()
    );
    let path = format!("/api/v1/deployments/{name}");

    // Created with its schedule; Prefect's scheduler made runs at the cron's times.
    let (status, made) = call(
        &app,
        reqwest::Method::PUT,
        &path,
        Some(desired("0 */4 * * *")),
    )
    .await;
    assert_eq!(
        (status, made["sync"].as_str()),
        (200, Some("in_sync")),
        "{made}"
    );
    let d = deployment(api, &name).await.expect("created in Prefect");
    assert_eq!(d["schedules"][0]["schedule"]["cron"], "0 */4 * * *");
    assert_eq!(d["tags"], json!(["connector:42"]));
    let id = d["id"].as_str().unwrap().to_owned();
    let runs = scheduled(api, &id).await;
    assert!(!runs.is_empty(), "scheduled runs made");
    assert!(
        runs.iter()
            .map(|t| hour_minute(t))
            .all(|(h, m)| m == 0 && h % 4 == 0),
        "{runs:?}"
    );

    // The same PUT again changes nothing in Prefect.
    let (status, again) = call(
        &app,
        reqwest::Method::PUT,
        &path,
        Some(desired("0 */4 * * *")),
    )
    .await;
    assert_eq!(
        (status, again["generation"].clone()),
        (200, made["generation"].clone())
    );
    let unchanged = deployment(api, &name).await.unwrap();
    assert_eq!(unchanged["updated"], d["updated"], "no write to Prefect");

    // Rescheduled: the future runs follow the new cron.
    let (status, moved) = call(
        &app,
        reqwest::Method::PUT,
        &path,
        Some(desired("30 */6 * * *")),
    )
    .await;
    assert_eq!(
        (status, moved["sync"].as_str()),
        (200, Some("in_sync")),
        "{moved}"
    );
    // Prefect's scheduler may still insert runs of the replaced schedule after the apply (it
    // reads a deployment and inserts its runs in two transactions); flowgate removes them, at
    // the latest at the next resync (1 s here).
    settles(api, &id, |runs| {
        !runs.is_empty()
            && runs
                .iter()
                .map(|t| hour_minute(t))
                .all(|(h, m)| m == 30 && h % 6 == 0)
    })
    .await;

    // Paused: no scheduled runs; resumed: they are back.
    let (status, paused) = call(&app, reqwest::Method::POST, &format!("{path}/pause"), None).await;
    assert_eq!(
        (status, paused["sync"].as_str()),
        (200, Some("in_sync")),
        "{paused}"
    );
    assert_eq!(deployment(api, &name).await.unwrap()["paused"], true);
    settles(api, &id, <[String]>::is_empty).await;
    let (status, _) = call(&app, reqwest::Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!(status, 200);
    assert_eq!(deployment(api, &name).await.unwrap()["paused"], false);
    assert!(!scheduled(api, &id).await.is_empty());

    // Deleted by hand in Prefect: put back by the reconciler.
    let r = crate::e2e::prefect_write(
        reqwest::Method::DELETE,
        &format!("{api}/deployments/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status().as_u16(), 204);
    let deadline = Instant::now() + Duration::from_secs(30);
    let back = loop {
        if let Some(d) = deployment(api, &name).await {
            break d;
        }
        assert!(Instant::now() < deadline, "not recreated within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(back["schedules"][0]["schedule"]["cron"], "30 */6 * * *");

    // Listed, shown with desired and actual state, then deleted.
    let (status, list) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/deployments?managed=true",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["deployment"] == name.as_str()));
    let (status, shown) = call(&app, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["in_prefect"], true);
    assert_eq!(
        shown["managed"]["desired"]["schedules"][0]["cron"],
        "30 */6 * * *"
    );
    let (status, gone) = call(&app, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(
        (status, gone["sync"].as_str()),
        (200, Some("removed")),
        "{gone}"
    );
    assert!(deployment(api, &name).await.is_none());
    let (status, _) = call(&app, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_bad_cron_or_time_zone_is_refused_before_prefect_is_asked() {
    let api = prefect_api().await;
    let app = start_config(config(api)).await;
    let name = format!("flowgate-managed/bad-{}", uuid::Uuid::new_v4().simple());
    let path = format!("/api/v1/deployments/{name}");
    let body = json!({"schedules": [{"cron": "61 9 * * *"}, {"cron": "0 9 * * *", "timezone": "Mars/Base"}]});
    let (status, refused) = call(&app, reqwest::Method::PUT, &path, Some(body)).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("validation_failed")),
        "{refused}"
    );
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["schedules[0].cron", "schedules[1].timezone"]);
    assert!(deployment(api, &name).await.is_none());
    let (status, _) = call(&app, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 404, "nothing stored either");
}

#[tokio::test]
async fn desired_state_set_while_prefect_is_down_is_applied_once_it_is_back() {
    const PORT: u16 = 4390;
    let api = format!("http://127.0.0.1:{PORT}/api");
    real_prefect::stop(PORT).await;
    let app = start_config(config(&api)).await;
    let name = format!("flowgate-managed/pending-{}", uuid::Uuid::new_v4().simple());
    let path = format!("/api/v1/deployments/{name}");
    let (status, pending) = call(
        &app,
        reqwest::Method::PUT,
        &path,
        Some(desired("0 9 * * *")),
    )
    .await;
    assert_eq!(
        (status, pending["sync"].as_str()),
        (202, Some("pending")),
        "{pending}"
    );
    assert!(
        pending["error"]
            .as_str()
            .is_some_and(|e| e.contains("upstream_unavailable")),
        "{pending}"
    );

    real_prefect::start(PORT).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, shown) = call(&app, reqwest::Method::GET, &path, None).await;
        if shown["managed"]["sync"] == "in_sync" {
            assert_eq!(shown["in_prefect"], true, "{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not applied within 90 s: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        deployment(&api, &name).await.unwrap()["schedules"][0]["schedule"]["cron"],
        "0 9 * * *"
    );
    real_prefect::stop(PORT).await;
}

/// `flowgate apply [--dry-run]` with `config/default.toml` plus one managed deployment.
fn apply(api: &str, file: &std::path::Path, dry_run: bool) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"));
    cmd.args(["apply", "--config"]).arg(file);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = cmd
        .env_remove("FLOWGATE_CONFIG")
        .env("FLOWGATE__PREFECT__API_URL", api)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn apply_makes_the_files_deployments_and_a_dry_run_only_prints_the_change() {
    let api = prefect_api().await;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("flowgate-managed/file-{}", uuid::Uuid::new_v4().simple());
    let shipped = std::fs::read_to_string(repo_path("config/default.toml")).unwrap();
    let file = dir.path().join("flowgate.toml");
    let with_cron = |cron: &str| {
        format!(
            "{shipped}\n[deployments.\"{name}\"]\ntags = [\"from-git\"]\nschedules = [{{ cron = \"{cron}\", timezone = \"Europe/Berlin\" }}]\n"
        )
    };
    std::fs::write(&file, with_cron("0 7 * * *")).unwrap();
    let out = apply(api, &file, false);
    assert!(out.contains(&format!("create {name}")), "{out}");
    let cron = |d: Option<Value>| d.unwrap()["schedules"][0]["schedule"]["cron"].clone();
    assert_eq!(cron(deployment(api, &name).await), "0 7 * * *");

    std::fs::write(&file, with_cron("0 8 * * *")).unwrap();
    let out = apply(api, &file, true);
    assert!(
        out.contains(&format!("would update {name} (schedules)")),
        "{out}"
    );
    assert_eq!(
        cron(deployment(api, &name).await),
        "0 7 * * *",
        "a dry run touches nothing"
    );
    let out = apply(api, &file, false);
    assert!(out.contains(&format!("update {name} (schedules)")), "{out}");
    assert_eq!(cron(deployment(api, &name).await), "0 8 * * *");
    assert!(apply(api, &file, false).contains(&format!("unchanged {name}")));

    let id = deployment(api, &name).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::e2e::prefect_write(
        reqwest::Method::DELETE,
        &format!("{api}/deployments/{id}"),
        None,
    )
    .await;
}

#[tokio::test]
async fn the_example_client_walks_a_connectors_lifecycle() {
    let api = prefect_api().await;
    let app = start_config(config(api)).await;
    let connector = uuid::Uuid::new_v4().simple().to_string();
    let out = tokio::process::Command::new("python3")
        .arg(repo_path("examples/clients/connector_lifecycle.py"))
        .args([
            "--url",
            &app.address,
            "--flow",
            "flowgate-managed",
            "--connector",
            &connector,
        ])
        .env("FLOWGATE_API_TOKEN", BACKEND)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "create",
        "reschedule",
        "trigger",
        "status",
        "deactivate",
        "delete",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step}: {stdout}"
        );
    }
    let name = format!("flowgate-managed/connector-{connector}");
    assert!(deployment(api, &name).await.is_none(), "deleted");
}
