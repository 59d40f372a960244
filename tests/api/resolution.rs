//! Deployment resolution: one lookup for many concurrent misses, stale ids re-resolved once.

use futures_util::future::join_all;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const OLD_ID: &str = "00000000-0000-4000-8000-00000000000a";
const NEW_ID: &str = "00000000-0000-4000-8000-00000000000b";

#[tokio::test]
async fn fifty_concurrent_requests_with_a_cold_cache_make_one_lookup() {
    let prefect = happy_prefect(1).await;
    // Senders wait for a call slot (no queue), so every one of them reaches Prefect.
    let mut settings = without_queue(default_settings(&format!("{}/api", prefect.uri())));
    settings.prefect.max_in_flight = 8;
    settings.limits.per_ip = None;
    let app = spawn_app(settings).await;

    let responses = join_all((0..50).map(|i| {
        let app = &app;
        async move {
            app.post_json(ROUTE, &signup(&format!("jo{i}@example.com")))
                .await
        }
    }))
    .await;
    for response in responses {
        assert_eq!(response.status().as_u16(), 202);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "created");
    }
    let creates = prefect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(creates, 50);
    // `expect(1)` on the lookup mock is verified when `prefect` drops.
}

#[tokio::test]
async fn a_stale_deployment_id_is_resolved_again_once_and_succeeds() {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(OLD_ID, &SIGNUP_FIELDS)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&prefect)
        .await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(NEW_ID, &SIGNUP_FIELDS)),
        )
        .with_priority(2)
        .expect(1)
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/deployments/{OLD_ID}/create_flow_run")))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"detail": "Deployment not found"})),
        )
        .expect(1)
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/deployments/{NEW_ID}/create_flow_run")))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-0000000000c1")),
        )
        .expect(2)
        .mount(&prefect)
        .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["flow_run_id"], "e72bf8dd-0000-4000-8000-0000000000c1");

    // The fresh id is cached: a second request makes no further lookup (expect(1) above).
    let again = app.post_json(ROUTE, &signup("ann@example.com")).await;
    assert_eq!(again.status().as_u16(), 202);
}

#[tokio::test]
async fn a_deployment_that_stays_missing_is_re_resolved_only_once() {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(OLD_ID, &SIGNUP_FIELDS)),
        )
        .expect(2)
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/deployments/{OLD_ID}/create_flow_run")))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"detail": "Deployment not found"})),
        )
        .expect(2)
        .mount(&prefect)
        .await;
    let app = spawn_app(without_queue(default_settings(&format!(
        "{}/api",
        prefect.uri()
    ))))
    .await;

    let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
    assert_eq!(response.headers()["retry-after"], "30");
    problem(response, 503, "deployment_not_found").await;
}

#[tokio::test]
async fn an_unknown_deployment_name_is_503_with_retry_after_and_is_not_cached() {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"detail": "Deployment not found"})),
        )
        .expect(2)
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .expect(0)
        .mount(&prefect)
        .await;
    let app = spawn_app(without_queue(default_settings(&format!(
        "{}/api",
        prefect.uri()
    ))))
    .await;
    for _ in 0..2 {
        let response = app.post_json(ROUTE, &signup("jo@example.com")).await;
        assert_eq!(response.headers()["retry-after"], "30");
        let body = problem(response, 503, "deployment_not_found").await;
        assert!(body["detail"]
            .as_str()
            .unwrap()
            .contains("christmas-signup-handler/website"));
    }
}
