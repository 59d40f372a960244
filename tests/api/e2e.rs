//! End to end against a real Prefect server with the example flow served: runs are created,
//! executed to COMPLETED, and carry exactly the posted values.
//!
//! The server is the one named by `FLOWGATE_TEST_PREFECT_URL`, or one started here with
//! `scripts/local-prefect start 4310` (idempotent; left running for the next test).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::helpers::*;

const TEST_PREFECT_PORT: &str = "4310";
static PREFECT_API: OnceCell<String> = OnceCell::const_new();

pub async fn prefect_api() -> &'static str {
    PREFECT_API
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("FLOWGATE_TEST_PREFECT_URL") {
                return url;
            }
            let status = tokio::process::Command::new(repo_path("scripts/local-prefect"))
                .args(["start", TEST_PREFECT_PORT])
                .status()
                .await
                .expect("scripts/local-prefect runs");
            assert!(status.success(), "scripts/local-prefect start failed");
            format!("http://127.0.0.1:{TEST_PREFECT_PORT}/api")
        })
        .await
}

/// The default config, against the real Prefect, with a tag unique to this test.
async fn app_with_tag() -> (TestApp, String, &'static str) {
    let api = prefect_api().await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let mut settings = shipped_settings(api);
    settings
        .routes
        .get_mut(ROUTE)
        .unwrap()
        .tags
        .push(tag.clone());
    (spawn_app(settings).await, tag, api)
}

pub async fn count_runs(api: &str, tag: &str) -> u64 {
    reqwest::Client::new()
        .post(format!("{api}/flow_runs/count"))
        .json(&json!({"flow_runs": {"tags": {"all_": [tag]}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the run until it is COMPLETED; fails at once if it ends any other way.
pub async fn wait_completed(api: &str, flow_run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    let client = reqwest::Client::new();
    loop {
        let run: Value = client
            .get(format!("{api}/flow_runs/{flow_run_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match run["state_type"].as_str() {
            Some("COMPLETED") => return run,
            Some("FAILED" | "CRASHED" | "CANCELLED") => panic!("run ended badly: {run}"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "run not COMPLETED within 120 s: {run}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The run a signup made: from a `created` answer, or, when Prefect was busy and the signup was
/// `queued`, the run the deliverer made for that email.
pub async fn run_id(response: reqwest::Response, api: &str, tag: &str, email: &str) -> String {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    match body["status"].as_str() {
        Some("created") => body["flow_run_id"].as_str().unwrap().to_owned(),
        Some("queued") => run_for_email(api, tag, email).await,
        _ => panic!("neither created nor queued: {body}"),
    }
}

async fn run_for_email(api: &str, tag: &str, email: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = crate::real_prefect::runs_with_tag(api, tag).await;
        if let Some(run) = runs.iter().find(|r| r["parameters"]["email"] == email) {
            return run["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no run for the queued {email}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn signups_as_json_and_as_form_complete_in_prefect_with_the_posted_values() {
    let (app, tag, api) = app_with_tag().await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let json_email = format!("json-{unique}@example.com");
    let json_signup = signup(&json_email);
    let form_email = format!("form-{unique}@example.com");

    let json_run = run_id(
        app.post_json(ROUTE, &json_signup).await,
        api,
        &tag,
        &json_email,
    )
    .await;
    let form_run = run_id(
        app.post_form(ROUTE, &signup_form(&form_email)).await,
        api,
        &tag,
        &form_email,
    )
    .await;

    let run = wait_completed(api, &json_run).await;
    assert_eq!(run["parameters"], json_signup, "exactly the posted values");
    assert!(run["tags"].as_array().unwrap().contains(&json!(tag)));
    assert!(run["name"].as_str().unwrap().starts_with("signup-Jo-"));

    let run = wait_completed(api, &form_run).await;
    assert_eq!(
        run["parameters"],
        signup(&form_email),
        "form strings arrive as typed values"
    );
    assert_eq!(
        run["parameters"]["assessment_score"], 65,
        "a number, not \"65\""
    );

    assert_eq!(count_runs(api, &tag).await, 2);
}

#[tokio::test]
async fn invalid_signups_get_422_per_field_and_create_no_run() {
    let (app, tag, api) = app_with_tag().await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let valid = signup(&format!("{unique}@example.com"));

    let mut bad_email = valid.clone();
    bad_email["email"] = json!("not-an-email");
    let mut out_of_range = valid.clone();
    out_of_range["assessment_score"] = json!(140);
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("business_name");
    let mut unknown = valid.clone();
    unknown["utm_source"] = json!("newsletter");

    for (body, field) in [
        (bad_email, "email"),
        (out_of_range, "assessment_score"),
        (missing, "business_name"),
        (unknown, "utm_source"),
    ] {
        let problem_body =
            problem(app.post_json(ROUTE, &body).await, 422, "validation_failed").await;
        assert_eq!(error_fields(&problem_body), [field]);
    }
    assert_eq!(
        count_runs(api, &tag).await,
        0,
        "no flow run for any invalid signup"
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_run_as_duplicate() {
    let (app, tag, api) = app_with_tag().await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let send = || {
        app.client
            .post(format!("{}/hooks/{ROUTE}", app.address))
            .header("idempotency-key", format!("evt-{unique}"))
            .json(&signup(&format!("{unique}@example.com")))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["status"], "duplicate");
    // The first answer's id: the run's if it was created, the delivery's if Prefect was busy.
    let id = if first["status"] == "created" {
        "flow_run_id"
    } else {
        "delivery_id"
    };
    assert_eq!(body[id], first[id], "{first} then {body}");
    run_for_email(api, &tag, &format!("{unique}@example.com")).await;
    assert_eq!(count_runs(api, &tag).await, 1);
}

#[tokio::test]
async fn the_deployment_really_publishes_the_parameter_schema_the_route_expects() {
    let api = prefect_api().await;
    let deployment: Value = reqwest::get(format!(
        "{api}/deployments/name/christmas-signup-handler/website"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let schema = &deployment["parameter_openapi_schema"];
    let mut declared: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    declared.sort();
    let mut expected = SIGNUP_FIELDS.to_vec();
    expected.sort();
    assert_eq!(declared, expected);
    assert_eq!(schema["properties"]["assessment_score"]["type"], "integer");
}

#[tokio::test]
async fn the_served_flows_published_schema_refuses_a_string_score_at_the_edge() {
    // A route whose rule lets any text through for assessment_score; the flow declares an int.
    let api = prefect_api().await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let mut settings = shipped_settings(api);
    let route = settings.routes.get_mut(ROUTE).unwrap();
    route.tags.push(tag.clone());
    route.fields.insert(
        "assessment_score".into(),
        flowgate::configuration::FieldSettings {
            kind: "string".into(),
            required: None,
            default: None,
            min: None,
            max: None,
            min_length: None,
            max_length: None,
            pattern: None,
            values: None,
            param: None,
            path: None,
            header: None,
            max_bytes: None,
        },
    );
    let app = spawn_app(settings).await;
    let mut body = signup(&format!("{}@example.com", uuid::Uuid::new_v4().simple()));
    body["assessment_score"] = json!("very high");

    let refused = problem(
        app.post_json(ROUTE, &body).await,
        422,
        "parameters_rejected",
    )
    .await;
    assert_eq!(
        refused["errors"],
        json!([{"field": "assessment_score", "message": "must be of type integer"}])
    );
    assert_eq!(count_runs(api, &tag).await, 0, "Prefect was never asked");
}

#[tokio::test]
async fn check_config_finds_the_default_routes_match_the_served_flow() {
    let api = prefect_api().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(repo_path("config/default.toml"))
        .env("FLOWGATE__PREFECT__API_URL", api)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every route matches its deployment's parameter schema"),
        "{stdout}"
    );
}

/// A write straight to Prefect for a test's setup (a scheduled run, a hand deletion). Prefect on
/// SQLite answers 503 "database is locked" to a write that meets another (other tests write at
/// the same time); like any Prefect client, this waits and sends it again. What is under test
/// is never this call.
pub async fn prefect_write(
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut wait = std::time::Duration::from_millis(50);
    loop {
        let mut request = reqwest::Client::new().request(method.clone(), url);
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.unwrap();
        if response.status().as_u16() != 503 || tokio::time::Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(1));
    }
}
