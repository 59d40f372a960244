//! Prefect failures map to their codes; retries reuse the idempotency key; only declared
//! parameters are sent; Prefect's refusal is passed on without echoing values.

use std::time::Duration;

use flowgate::configuration::PrefectAuth;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

const DEP_ID: &str = "21e9741f-0000-4000-8000-000000000001";

/// A mock Prefect that resolves the deployment (declaring `params`) and answers creates with `create`.
async fn prefect_with(params: &[&str], create: ResponseTemplate, creates: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment_body(DEP_ID, params)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(create)
        .expect(creates)
        .mount(&server)
        .await;
    server
}

async fn create_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r: &Request| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn prefect_503_is_retried_with_the_same_key_then_reported_as_unavailable() {
    let prefect = prefect_with(&SIGNUP_FIELDS, ResponseTemplate::new(503), 3).await;
    let mut settings = without_queue(default_settings(&format!("{}/api", prefect.uri())));
    settings.prefect.retry_attempts = 3;
    let app = spawn_app(settings).await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.headers()["retry-after"], "5");
    problem(response, 503, "upstream_unavailable").await;
    let keys: Vec<Value> = create_bodies(&prefect)
        .await
        .into_iter()
        .map(|b| b["idempotency_key"].clone())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
}

/// Prefect answers 503 twice, then 201.
async fn prefect_busy_twice() -> MockServer {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(DEP_ID, &SIGNUP_FIELDS)),
        )
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-000000000099")),
        )
        .with_priority(2)
        .expect(1)
        .mount(&prefect)
        .await;
    prefect
}

#[tokio::test]
async fn a_route_without_a_queue_retries_a_503_within_the_budget() {
    let prefect = prefect_busy_twice().await;
    let app = spawn_app(without_queue(default_settings(&format!(
        "{}/api",
        prefect.uri()
    ))))
    .await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "created");
    assert_eq!(body["flow_run_id"], "e72bf8dd-0000-4000-8000-000000000099");
}

#[tokio::test]
async fn a_queueing_route_answers_queued_after_one_503_and_the_deliverer_retries() {
    let prefect = prefect_busy_twice().await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    // Had the sender's attempt been retried, its third call would have got the 201.
    assert_eq!(body["status"], "queued", "one attempt, then queued: {body}");
    wait_for_gauge(&app, "outbox_queued", 0).await;
    let keys: Vec<Value> = create_bodies(&prefect)
        .await
        .into_iter()
        .map(|b| b["idempotency_key"].clone())
        .collect();
    assert_eq!(
        keys.len(),
        3,
        "one synchronous attempt, then 503 and 201 from the outbox"
    );
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
}

#[tokio::test]
async fn connection_refused_is_upstream_unavailable() {
    let refusing = refusing_port();
    let app = spawn_app(without_queue(default_settings(&refusing.api_url()))).await;
    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.headers()["retry-after"], "5");
    problem(response, 503, "upstream_unavailable").await;
}

#[tokio::test]
async fn a_slow_prefect_is_upstream_timeout() {
    let slow = ResponseTemplate::new(201)
        .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-000000000002"))
        .set_delay(Duration::from_secs(5));
    let prefect = prefect_with(&SIGNUP_FIELDS, slow, 1).await;
    let mut settings = without_queue(default_settings(&format!("{}/api", prefect.uri())));
    settings.prefect.timeout_ms = 200;
    settings.prefect.retry_attempts = 1;
    let app = spawn_app(settings).await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    problem(response, 504, "upstream_timeout").await;
}

#[tokio::test]
async fn a_run_created_by_a_timed_out_attempt_is_reported_as_created_once() {
    // Prefect commits the run but answers after the client timeout; the retry carries the same
    // key, Prefect answers 200 with that run, and the sender learns it was created (not a duplicate).
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(DEP_ID, &SIGNUP_FIELDS)),
        )
        .mount(&prefect)
        .await;
    let run = flow_run_body("e72bf8dd-0000-4000-8000-000000000007");
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(run.clone())
                .set_delay(Duration::from_secs(3)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(run))
        .with_priority(2)
        .expect(1)
        .mount(&prefect)
        .await;
    let mut settings = without_queue(default_settings(&format!("{}/api", prefect.uri())));
    settings.prefect.timeout_ms = 300;
    let app = spawn_app(settings).await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "created");
    assert_eq!(body["flow_run_id"], "e72bf8dd-0000-4000-8000-000000000007");
    let keys: Vec<Value> = create_bodies(&prefect)
        .await
        .into_iter()
        .map(|b| b["idempotency_key"].clone())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test]
async fn prefects_schema_refusal_is_parameters_rejected_without_echoing_values() {
    let refusal = ResponseTemplate::new(409).set_body_json(json!({
        "detail": "Error creating flow run: Validation failed for field 'assessment_score'. Failure reason: 'jo@example.com' is not of type 'integer'"
    }));
    let prefect = prefect_with(&SIGNUP_FIELDS, refusal, 1).await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    let body = problem(
        app.post_json(ROUTE, &signup("jo@example.com")).await,
        422,
        "parameters_rejected",
    )
    .await;
    assert_eq!(
        body["errors"],
        json!([{"field": "assessment_score", "message": "value is not of type 'integer'"}])
    );
    assert!(!body.to_string().contains("jo@example.com"), "{body}");
}

#[tokio::test]
async fn parameters_the_deployment_schema_refuses_are_stopped_at_the_edge() {
    // The route allows assessment_score up to 100; the deployment's published schema says 50.
    let prefect = MockServer::start().await;
    let mut deployment = deployment_body(DEP_ID, &SIGNUP_FIELDS);
    deployment["parameter_openapi_schema"]["properties"]["assessment_score"]["maximum"] = json!(50);
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment))
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&prefect)
        .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    let body = problem(
        app.post_json(ROUTE, &signup("jo@example.com")).await,
        422,
        "parameters_rejected",
    )
    .await;
    assert_eq!(
        body["errors"],
        json!([{"field": "assessment_score", "message": "must be at most 50"}])
    );
}

#[tokio::test]
async fn refused_credentials_are_a_bad_gateway_not_a_client_error() {
    let prefect = prefect_with(
        &SIGNUP_FIELDS,
        ResponseTemplate::new(401).set_body_json(json!({"exception_message": "Unauthorized"})),
        1,
    )
    .await;
    let app = spawn_app(without_queue(default_settings(&format!(
        "{}/api",
        prefect.uri()
    ))))
    .await;
    problem(
        app.post_json(ROUTE, &signup("jo@example.com")).await,
        502,
        "upstream_error",
    )
    .await;
}

#[tokio::test]
async fn only_parameters_the_deployment_declares_are_sent() {
    let declared: Vec<&str> = SIGNUP_FIELDS
        .iter()
        .copied()
        .filter(|f| *f != "revenue_leak_total")
        .collect();
    let prefect = prefect_with(
        &declared,
        ResponseTemplate::new(201)
            .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-000000000003")),
        1,
    )
    .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    assert_eq!(
        app.post_json(ROUTE, &signup("jo@example.com"))
            .await
            .status()
            .as_u16(),
        202
    );
    let sent = &create_bodies(&prefect).await[0];
    let mut names: Vec<&str> = sent["parameters"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    let mut expected = declared.clone();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(
        sent["parameters"]["assessment_score"], 65,
        "numbers stay numbers"
    );
    assert_eq!(
        sent["tags"],
        json!(["webhook", "source:website", "campaign:christmas"])
    );
    assert!(sent["name"].as_str().unwrap().starts_with("signup-Jo-"));
}

#[tokio::test]
async fn the_senders_idempotency_key_is_namespaced_and_a_repeat_is_a_duplicate() {
    let prefect = prefect_with(
        &SIGNUP_FIELDS,
        ResponseTemplate::new(200)
            .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-000000000004")),
        1,
    )
    .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let response = app
        .client
        .post(format!("{}/hooks/{ROUTE}", app.address))
        .header("idempotency-key", "evt-0001")
        .json(&signup("jo@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "duplicate");
    assert_eq!(body["flow_run_id"], "e72bf8dd-0000-4000-8000-000000000004");
    assert_eq!(
        create_bodies(&prefect).await[0]["idempotency_key"],
        "flowgate:christmas-signup-handler/website:christmas-signup:key:evt-0001"
    );
}

#[tokio::test]
async fn the_same_signup_as_json_and_as_form_gets_the_same_derived_key() {
    let prefect = prefect_with(
        &SIGNUP_FIELDS,
        ResponseTemplate::new(201)
            .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-000000000005")),
        2,
    )
    .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    assert_eq!(
        app.post_json(ROUTE, &signup("jo@example.com"))
            .await
            .status()
            .as_u16(),
        202
    );
    assert_eq!(
        app.post_form(ROUTE, &signup_form("jo@example.com"))
            .await
            .status()
            .as_u16(),
        202
    );
    let bodies = create_bodies(&prefect).await;
    assert_eq!(bodies[0]["idempotency_key"], bodies[1]["idempotency_key"]);
    assert_eq!(bodies[0]["parameters"], bodies[1]["parameters"]);
    assert!(bodies[0]["idempotency_key"]
        .as_str()
        .unwrap()
        .contains(":sha256:"));
}

#[tokio::test]
async fn basic_auth_from_the_environment_is_sent_to_prefect() {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .and(header("authorization", "Basic YWRtaW46cGFzcw=="))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(DEP_ID, &SIGNUP_FIELDS)),
        )
        .expect(1)
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .and(header("authorization", "Basic YWRtaW46cGFzcw=="))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-000000000006")),
        )
        .expect(1)
        .mount(&prefect)
        .await;
    let auth = PrefectAuth::Basic(SecretString::from("admin:pass"));
    let app = spawn_app_with_auth(default_settings(&format!("{}/api", prefect.uri())), auth).await;
    assert_eq!(
        app.post_json(ROUTE, &signup("jo@example.com"))
            .await
            .status()
            .as_u16(),
        202
    );
}
