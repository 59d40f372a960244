//! The internal API (`/api/v1`): tokens with deployments and scopes, triggering any deployment
//! by name (end to end against the real Prefect), and following a queued request to its run.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::e2e::{prefect_api, wait_completed};
use crate::fakes::FreshFlowRun;
use crate::helpers::*;

pub(crate) const BACKEND: &str = "backend-token-0123456789";
pub(crate) const CRM: &str = "crm-token-0123456789ab";
pub(crate) const DEPLOYMENT: &str = "christmas-signup-handler/website";

/// The shipped config plus a second, narrower token (`crm`: one other deployment, trigger only).
pub(crate) fn app_config(prefect_api: &str) -> flowgate::configuration::Configuration {
    let toml = r#"
[[api.tokens]]
name = "crm"
env = "CRM_TOKEN"
deployments = ["crm-sync/*"]
scopes = ["trigger"]
"#;
    let mut settings = settings_with(prefect_api, toml);
    real_prefect_retries(&mut settings);
    settings.limits.per_ip = None;
    flowgate::configuration::Configuration::from_settings_with_env(
        settings,
        flowgate::configuration::PrefectAuth::None,
        &|name: &str| match name {
            "FLOWGATE_API_TOKEN" => Some(BACKEND.to_owned()),
            "CRM_TOKEN" => Some(CRM.to_owned()),
            _ => None,
        },
    )
    .unwrap()
}

async fn trigger(
    app: &TestApp,
    token: Option<&str>,
    deployment: &str,
    body: &Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut r = app
        .client
        .post(format!(
            "{}/api/v1/deployments/{deployment}/runs",
            app.address
        ))
        .json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(k) = key {
        r = r.header("idempotency-key", k);
    }
    r.send().await.unwrap()
}

async fn delivery(app: &TestApp, id: &str) -> Value {
    let r = app
        .client
        .get(format!("{}/api/v1/deliveries/{id}", app.address))
        .bearer_auth(BACKEND)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls the delivery until it is `delivered`; returns its flow run id.
pub(crate) async fn delivered_run(app: &TestApp, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = delivery(app, id).await;
        if d["status"] == "delivered" {
            return d["flow_run_id"].as_str().unwrap().to_owned();
        }
        assert_eq!(d["status"], "queued", "{d}");
        assert!(Instant::now() < deadline, "not delivered within 60 s: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn tokens_are_checked_for_deployment_and_scope_and_no_token_means_no_api() {
    let prefect = untouchable_prefect().await;
    let app = start_config(app_config(&format!("{}/api", prefect.uri()))).await;
    let body = json!({"parameters": {}});
    problem(
        trigger(&app, None, DEPLOYMENT, &body, None).await,
        401,
        "invalid_token",
    )
    .await;
    problem(
        trigger(&app, Some("not-a-token-at-all"), DEPLOYMENT, &body, None).await,
        401,
        "invalid_token",
    )
    .await;
    let other = problem(
        trigger(&app, Some(CRM), DEPLOYMENT, &body, None).await,
        403,
        "forbidden",
    )
    .await;
    assert!(
        other["detail"].as_str().unwrap().contains("may not use"),
        "{other}"
    );
    let scope = app
        .client
        .get(format!(
            "{}/api/v1/deliveries/{}",
            app.address,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(CRM)
        .send()
        .await
        .unwrap();
    let scope = problem(scope, 403, "forbidden").await;
    assert!(
        scope["detail"].as_str().unwrap().contains("read"),
        "{scope}"
    );
    problem(
        trigger(
            &app,
            Some(BACKEND),
            DEPLOYMENT,
            &json!({"parameters": [1]}),
            None,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let unknown = problem(
        trigger(
            &app,
            Some(BACKEND),
            DEPLOYMENT,
            &json!({"params": {}}),
            None,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(unknown.to_string().contains("params"), "{unknown}");
    let broken = app
        .client
        .post(format!(
            "{}/api/v1/deployments/{DEPLOYMENT}/runs",
            app.address
        ))
        .bearer_auth(BACKEND)
        .body("{\"parameters\":")
        .send()
        .await
        .unwrap();
    problem(broken, 400, "malformed_body").await;

    // The shipped config without FLOWGATE_API_TOKEN: no API at all.
    let closed = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    problem(
        trigger(&closed, Some(BACKEND), DEPLOYMENT, &body, None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_queued_trigger_is_followed_to_its_run_once_prefect_is_back() {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment_body(
            "21e9741f-0000-4000-8000-000000000001",
            &SIGNUP_FIELDS,
        )))
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&prefect)
        .await;
    let mut config = app_config(&format!("{}/api", prefect.uri()));
    config.settings.delivery.retry_base_delay_ms = 50;
    config.settings.delivery.retry_max_delay_ms = 200;
    config.settings.delivery.probe_every_secs = 1;
    let app = start_config(config).await;
    let answer: Value = trigger(
        &app,
        Some(BACKEND),
        DEPLOYMENT,
        &json!({"parameters": signup("api-queued@example.com")}),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["status"], "queued", "{answer}");
    let id = answer["delivery_id"].as_str().unwrap().to_owned();
    let waiting = delivery(&app, &id).await;
    assert_eq!(waiting["status"], "queued");
    assert_eq!(waiting["deployment"], DEPLOYMENT);
    problem(
        app.client
            .get(format!(
                "{}/api/v1/deliveries/{}",
                app.address,
                uuid::Uuid::new_v4()
            ))
            .bearer_auth(BACKEND)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;

    // Prefect is back: the entry is delivered and the delivery names its run.
    prefect.reset().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment_body(
            "21e9741f-0000-4000-8000-000000000001",
            &SIGNUP_FIELDS,
        )))
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(FreshFlowRun)
        .expect(1)
        .mount(&prefect)
        .await;
    Mock::given(path("/api/health"))
        .respond_with(ResponseTemplate::new(200).set_body_string("true"))
        .mount(&prefect)
        .await;
    let run = delivered_run(&app, &id).await;
    assert_eq!(run.len(), 36);
    let done = delivery(&app, &id).await;
    assert_eq!(
        done["attempts"].as_u64().map(|a| a >= 1),
        Some(true),
        "{done}"
    );
}

#[tokio::test]
async fn a_trigger_runs_to_completion_in_prefect_and_a_repeated_key_is_the_same_run() {
    let api = prefect_api().await;
    let app = start_config(app_config(api)).await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let email = format!("api-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({
        "parameters": signup(&email),
        "tags": [tag, "connector:42"],
        "name": "manual-run-42",
    });
    let key = format!("connector-42-{}", uuid::Uuid::new_v4().simple());
    let first = trigger(&app, Some(BACKEND), DEPLOYMENT, &body, Some(&key)).await;
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.unwrap();
    let run_id = match first["status"].as_str() {
        Some("created") => first["flow_run_id"].as_str().unwrap().to_owned(),
        // Prefect on SQLite sometimes answers 503 to a lone write: followed to its run.
        Some("queued") => delivered_run(&app, first["delivery_id"].as_str().unwrap()).await,
        _ => panic!("{first}"),
    };
    let run = wait_completed(api, &run_id).await;
    assert_eq!(
        run["parameters"],
        signup(&email),
        "exactly the parameters sent"
    );
    assert_eq!(run["name"], "manual-run-42");
    assert!(run["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("connector:42")));

    let again = trigger(&app, Some(BACKEND), DEPLOYMENT, &body, Some(&key)).await;
    let status = again.status().as_u16();
    let again: Value = again.json().await.unwrap();
    if again["status"] == "queued" {
        let repeated = delivered_run(&app, again["delivery_id"].as_str().unwrap()).await;
        assert_eq!(repeated, run_id, "the same key, the same run");
    } else {
        assert_eq!(
            (status, again["status"].as_str()),
            (200, Some("duplicate")),
            "{again}"
        );
        assert_eq!(again["flow_run_id"].as_str(), Some(run_id.as_str()));
    }
    assert_eq!(
        crate::e2e::count_runs(api, &tag).await,
        1,
        "one run in Prefect"
    );
}

async fn api_get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(BACKEND)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn run_status_history_deployment_and_cancel_read_the_real_prefect() {
    let api = prefect_api().await;
    let app = start_config(app_config(api)).await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let email = format!("runs-{}@example.com", uuid::Uuid::new_v4().simple());
    let answer: Value = trigger(
        &app,
        Some(BACKEND),
        DEPLOYMENT,
        &json!({"parameters": signup(&email), "tags": [tag]}),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let run_id = match answer["status"].as_str() {
        Some("created") => answer["flow_run_id"].as_str().unwrap().to_owned(),
        Some("queued") => delivered_run(&app, answer["delivery_id"].as_str().unwrap()).await,
        _ => panic!("{answer}"),
    };
    wait_completed(api, &run_id).await;

    let (status, run) = api_get(&app, &format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "COMPLETED");
    assert_eq!(run["final"], true);
    assert_eq!(run["deployment"], DEPLOYMENT);
    assert_eq!(run["parameters"]["email"], email.as_str());

    let (status, history) = api_get(
        &app,
        &format!("/api/v1/deployments/{DEPLOYMENT}/runs?state=completed&limit=200"),
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let items = history["items"].as_array().unwrap();
    assert!(
        items.iter().any(|r| r["flow_run_id"] == run_id.as_str()),
        "{history}"
    );
    assert!(items.iter().all(|r| r["state"] == "COMPLETED"));
    let (status, _) = api_get(
        &app,
        &format!("/api/v1/deployments/{DEPLOYMENT}/runs?state=done"),
    )
    .await;
    assert_eq!(status, 400);

    let (status, deployment) = api_get(&app, &format!("/api/v1/deployments/{DEPLOYMENT}")).await;
    assert_eq!(status, 200, "{deployment}");
    assert!(deployment["id"].is_string());
    assert!(deployment["parameter_openapi_schema"]["properties"]["email"].is_object());

    let cancel = |id: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(format!("{}/api/v1/runs/{id}/cancel", app.address))
                .bearer_auth(BACKEND)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, finished) = cancel(run_id.clone()).await;
    assert_eq!(
        (status, finished["code"].as_str()),
        (409, Some("run_finished")),
        "{finished}"
    );

    // A run scheduled far ahead (made directly in Prefect) is cancelled.
    let deployment_id = deployment["id"].as_str().unwrap();
    let scheduled: Value = crate::e2e::prefect_write(
        reqwest::Method::POST,
        &format!("{api}/deployments/{deployment_id}/create_flow_run"),
        Some(&json!({
            "parameters": signup(&email),
            "tags": [tag],
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T00:00:00Z"}},
        })),
    )
    .await
    .json()
        .await
        .unwrap();
    let scheduled_id = scheduled["id"].as_str().unwrap().to_owned();
    let (status, cancelled) = cancel(scheduled_id.clone()).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (_, after) = api_get(&app, &format!("/api/v1/runs/{scheduled_id}")).await;
    assert_eq!(after["state"], "CANCELLED", "{after}");

    // The narrow token cannot read it: the run looks absent.
    let hidden = app
        .client
        .get(format!("{}/api/v1/runs/{scheduled_id}", app.address))
        .bearer_auth(CRM)
        .send()
        .await
        .unwrap();
    problem(hidden, 403, "forbidden").await;
}

#[tokio::test]
async fn the_example_client_triggers_and_waits_for_a_completed_run() {
    let api = prefect_api().await;
    let app = start_config(app_config(api)).await;
    let email = format!("client-{}@example.com", uuid::Uuid::new_v4().simple());
    let connector = uuid::Uuid::new_v4().simple().to_string();
    let out = tokio::process::Command::new("python3")
        .arg(repo_path("examples/clients/trigger_and_wait.py"))
        .args([
            "--url",
            &app.address,
            "--deployment",
            DEPLOYMENT,
            "--connector",
            &connector,
        ])
        .args([
            "--parameters",
            &signup(&email).to_string(),
            "--timeout",
            "120",
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
    assert!(stdout.contains("COMPLETED"), "{stdout}");
    let tag = format!("connector:{connector}");
    assert_eq!(crate::e2e::count_runs(api, &tag).await, 1);
}
