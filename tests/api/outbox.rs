//! Durable delivery against a mock Prefect (fault injection): what is acknowledged is stored,
//! and delivered exactly once when Prefect comes back.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;

const DEP_ID: &str = "21e9741f-0000-4000-8000-000000000001";

/// Prefect as it behaves when up: a run per idempotency key, 201 the first time, 200 after.
/// Counts the creates it answers per key.
#[derive(Clone, Default)]
struct RunPerKey(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u32>>>);

impl Respond for RunPerKey {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let key = body["idempotency_key"].as_str().unwrap().to_owned();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes());
        let id = uuid::Builder::from_random_bytes(digest[..16].try_into().unwrap()).into_uuid();
        let mut seen = self.0.lock().unwrap();
        let count = seen.entry(key).or_insert(0);
        *count += 1;
        ResponseTemplate::new(if *count == 1 { 201 } else { 200 })
            .set_body_json(flow_run_body(&id.to_string()))
    }
}

impl RunPerKey {
    fn counts(&self) -> Vec<u32> {
        self.0.lock().unwrap().values().copied().collect()
    }
}

async fn mount_deployment(prefect: &MockServer) {
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(DEP_ID, &SIGNUP_FIELDS)),
        )
        .mount(prefect)
        .await;
}

/// A Prefect that knows the deployment and answers every create with 503.
async fn prefect_down() -> MockServer {
    let prefect = MockServer::start().await;
    mount_deployment(&prefect).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&prefect)
        .await;
    prefect
}

/// Prefect is back: one run per idempotency key from now on.
async fn bring_back(prefect: &MockServer) -> RunPerKey {
    let up = RunPerKey::default();
    prefect.reset().await;
    mount_deployment(prefect).await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(up.clone())
        .mount(prefect)
        .await;
    up
}

fn fast_delivery(
    mut settings: flowgate::configuration::Settings,
) -> flowgate::configuration::Settings {
    settings.delivery.retry_base_delay_ms = 50;
    settings.delivery.retry_max_delay_ms = 200;
    settings.delivery.probe_every_secs = 1;
    settings.limits.per_ip = None;
    settings
}

async fn creates(prefect: &MockServer) -> Vec<Value> {
    prefect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn an_outage_is_absorbed_and_each_request_delivered_once_when_prefect_returns() {
    let prefect = prefect_down().await;
    let app = spawn_app(fast_delivery(default_settings(&format!(
        "{}/api",
        prefect.uri()
    ))))
    .await;

    let mut delivery_ids = BTreeSet::new();
    for i in 0..20 {
        let response = app
            .post_json(ROUTE, &signup(&format!("o{i}@example.com")))
            .await;
        assert_eq!(response.status().as_u16(), 202);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "queued", "{body}");
        delivery_ids.insert(body["delivery_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(delivery_ids.len(), 20);
    assert_eq!(gauge(&app, "outbox_queued").await, 20);
    assert_eq!(
        gauge(&app, "outbox_queued_route{route=\"christmas-signup\"}").await,
        20
    );
    assert_eq!(
        gauge(&app, "prefect_concurrency_limit").await,
        1,
        "503s hold the adaptive limit at its minimum"
    );

    // Prefect comes back.
    let prefect_up = bring_back(&prefect).await;
    wait_for_gauge(&app, "outbox_queued", 0).await;

    assert_eq!(
        prefect_up.counts(),
        vec![1; 20],
        "each queued request created once, none twice"
    );
    let sent = creates(&prefect).await;
    let emails: BTreeSet<&str> = sent
        .iter()
        .filter_map(|b| b["parameters"]["email"].as_str())
        .collect();
    assert_eq!(emails.len(), 20, "each with its own parameters");
    assert_eq!(gauge(&app, "outbox_dead").await, 0);
}

#[tokio::test]
async fn while_prefect_is_unreachable_new_requests_cost_the_deliverer_no_attempts() {
    let refusing = refusing_port();
    let app = spawn_app(fast_delivery(default_settings(&refusing.api_url()))).await;
    for i in 0..200 {
        let response = app
            .post_json(ROUTE, &signup(&format!("u{i}@example.com")))
            .await;
        assert_eq!(response.status().as_u16(), 202);
    }
    assert_eq!(gauge(&app, "outbox_queued").await, 200);
    // The first failed attempts pause delivery (at most the deliverer's 2 × limit + 1 at
    // once); the 200 requests after wake nothing until a health probe answers.
    let attempts = gauge(&app, "outbox_attempts_total").await;
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} delivery attempts for 200 requests while Prefect was unreachable"
    );
}

#[tokio::test]
async fn a_run_created_before_a_timeout_is_not_created_again_by_the_deliverer() {
    let prefect = MockServer::start().await;
    mount_deployment(&prefect).await;
    let run = flow_run_body("e72bf8dd-0000-4000-8000-0000000000d1");
    // Prefect commits the run but answers too late for the sender's budget…
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(run.clone())
                .set_delay(Duration::from_secs(2)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&prefect)
        .await;
    // …and afterwards knows the key: 200 with the same run.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(run))
        .with_priority(2)
        .mount(&prefect)
        .await;
    let mut settings = fast_delivery(default_settings(&format!("{}/api", prefect.uri())));
    settings.prefect.request_budget_ms = 300;
    let app = spawn_app(settings).await;

    let response = app.post_json(ROUTE, &signup("late@example.com")).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "queued");
    wait_for_gauge(&app, "outbox_queued", 0).await;
    assert_eq!(gauge(&app, "outbox_dead").await, 0);
    let keys: BTreeSet<String> = creates(&prefect)
        .await
        .iter()
        .map(|b| b["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "every attempt carried the same key, so Prefect made one run"
    );
}

#[tokio::test]
async fn a_full_store_refuses_with_503_and_the_retry_succeeds_once_it_drains() {
    let prefect = prefect_down().await;
    let mut settings = fast_delivery(default_settings(&format!("{}/api", prefect.uri())));
    settings.store.max_size_mb = 1;
    settings.limits.max_fields = 1000;
    settings.routes.get_mut(ROUTE).unwrap().max_body_bytes = Some(64 * 1024);
    settings.routes.get_mut(ROUTE).unwrap().unknown_fields = "drop".into();
    settings.routes.get_mut(ROUTE).unwrap().limit = None;
    let app = spawn_app(settings).await;
    let big = |i: usize| {
        let mut s = signup(&format!("f{i}@example.com"));
        s["business_name"] = json!(format!("{i}-{}", "x".repeat(190)));
        s
    };

    let mut accepted = 0;
    let refused = loop {
        let response = app.post_json(ROUTE, &big(accepted)).await;
        match response.status().as_u16() {
            202 => accepted += 1,
            _ => break response,
        }
        assert!(accepted < 20_000, "a 1 MB store never filled");
    };
    assert_eq!(refused.headers()["retry-after"], "5");
    problem(refused, 503, "store_unavailable").await;

    // Prefect returns; the outbox drains and frees its space; the sender's retry gets through.
    let prefect_up = bring_back(&prefect).await;
    wait_for_gauge(&app, "outbox_queued", 0).await;
    let retry = app.post_json(ROUTE, &big(accepted)).await;
    assert_eq!(
        retry.status().as_u16(),
        202,
        "{}",
        retry.text().await.unwrap()
    );
    assert_eq!(
        prefect_up.counts(),
        vec![1; accepted + 1],
        "every accepted request, and the retried one, once"
    );
}

#[tokio::test]
async fn dead_entries_are_visible_to_ops_with_their_reason_and_can_be_retried() {
    let prefect = prefect_down().await;
    let app = spawn_app_with_admin_token(
        fast_delivery(default_settings(&format!("{}/api", prefect.uri()))),
        "ops-token",
    )
    .await;
    let queued: Value = app
        .post_json(ROUTE, &signup("dead@example.com"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queued["status"], "queued");

    // Prefect returns, but refuses these parameters: retrying cannot help, the entry is dead.
    prefect.reset().await;
    mount_deployment(&prefect).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "detail": "Error creating flow run: Validation failed for field 'email'. Failure reason: 'x' is not of type 'integer'"
        })))
        .mount(&prefect)
        .await;
    wait_for_gauge(&app, "outbox_dead", 1).await;

    let list = format!("{}/admin/outbox?state=dead", app.admin_address);
    problem(reqwest::get(&list).await.unwrap(), 401, "invalid_token").await;
    let public = format!("{}/admin/outbox?state=dead", app.address);
    let hidden = app
        .client
        .get(&public)
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap();
    problem(hidden, 404, "not_found").await;
    let dead: Value = app
        .client
        .get(&list)
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &dead["entries"][0];
    assert_eq!(entry["delivery_id"], queued["delivery_id"]);
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .starts_with("parameters_rejected"),
        "{entry}"
    );
    assert!(entry.get("parameters").is_none(), "no PII in the listing");

    // Ops fix the deployment and retry the entry.
    let prefect_up = RunPerKey::default();
    prefect.reset().await;
    mount_deployment(&prefect).await;
    Mock::given(method("POST"))
        .respond_with(prefect_up.clone())
        .mount(&prefect)
        .await;
    let retry = format!(
        "{}/admin/outbox/{}/retry",
        app.admin_address,
        queued["delivery_id"].as_str().unwrap()
    );
    let requeued = app
        .client
        .post(&retry)
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap();
    assert_eq!(requeued.status().as_u16(), 202);
    wait_for_gauge(&app, "outbox_dead", 0).await;
    wait_for_gauge(&app, "outbox_queued", 0).await;
    assert_eq!(prefect_up.counts(), vec![1]);
    let again = app
        .client
        .post(&retry)
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap();
    problem(again, 404, "not_found").await;
}
