//! Real partner payloads (shaped like GitHub's, Stripe's and Shopify's published examples),
//! signed as the partners sign them: nested values and headers become parameters, filters
//! ignore unwanted events with 202 and no Prefect call, and targets send each event type to its
//! own deployment. Prefect is a wiremock here (one served deployment cannot be several
//! targets); `e2e.rs` maps nested values onto the real served deployment, `config.rs` checks
//! that bad paths and filters are named in `check-config`.

mod config;
mod e2e;
mod replay;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An independent HMAC-SHA256 (not flowgate's code), as GitHub and Shopify sign.
pub fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Signs with Stripe's own Python library (tests/signers/provider_sign.py).
fn stripe_sign(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    let python = std::process::Command::new(repo_path("scripts/local-prefect"))
        .arg("venv")
        .output()
        .unwrap();
    assert!(python.status.success());
    let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let out = std::process::Command::new(python)
        .arg(repo_path("tests/signers/provider_sign.py"))
        .args(["stripe", secret, "-", &now().to_string()])
        .arg(&body_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let headers: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

pub fn github_headers(event: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("x-github-event".into(), event.into()),
        (
            "x-hub-signature-256".into(),
            format!("sha256={}", hex::encode(hmac256(b"gh-secret", body))),
        ),
        ("x-github-delivery".into(), uuid::Uuid::new_v4().to_string()),
    ]
}

/// A push event as GitHub documents it (trimmed to the parts a flow reads, same shape).
fn github_push(head_commit: Value) -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "repository": {
            "id": 1296269,
            "name": "Hello-World",
            "full_name": "octocat/Hello-World",
            "owner": {"login": "octocat", "id": 1},
            "default_branch": "main"
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 1},
        "created": false,
        "deleted": false,
        "forced": false,
        "commits": [head_commit.clone()],
        "head_commit": head_commit
    })
}

fn commit() -> Value {
    json!({
        "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "message": "Update README.md",
        "timestamp": "2026-11-30T12:00:00Z",
        "author": {"name": "Mona Octocat", "email": "octocat@github.com", "username": "octocat"},
        "added": [], "removed": [], "modified": ["README.md"]
    })
}

/// A Stripe event as its API reference shows one, around `object`.
fn stripe_event(id: &str, kind: &str, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": now(),
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind
    })
}

fn invoice() -> Value {
    json!({
        "id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
        "object": "invoice",
        "customer": "cus_NeZwdNtLEOXuvB",
        "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
        "amount_due": 999,
        "amount_paid": 999,
        "currency": "usd",
        "status": "paid",
        "lines": {"object": "list", "data": [{"id": "il_1", "amount": 999}]}
    })
}

fn subscription() -> Value {
    json!({
        "id": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
        "object": "subscription",
        "customer": "cus_NeZwdNtLEOXuvB",
        "status": "canceled",
        "canceled_at": 1679676640,
        "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_1"}}]}
    })
}

const STRIPE_ROUTE: &str = r#"
[routes.stripe]
auth = { type = "hmac", scheme = "stripe", secrets = [{ env = "STRIPE_SECRET" }] }
content_types = ["application/json"]
unknown_fields = "drop"
tags = ["source:stripe"]
[[routes.stripe.targets]]
deployment = "billing/invoice-paid"
filters = [{ path = "type", equals = "invoice.paid" }]
tags = ["stripe:invoice.paid"]
run_name = "invoice-{invoice_id}"
[routes.stripe.targets.fields]
invoice_id = { type = "string", path = "data.object.id" }
customer = { type = "string", path = "data.object.customer" }
amount_paid = { type = "integer", path = "data.object.amount_paid", min = 0 }
[[routes.stripe.targets]]
deployment = "billing/subscription-ended"
filters = [{ path = "type", equals = "customer.subscription.deleted" }]
[routes.stripe.targets.fields]
subscription_id = { type = "string", path = "data.object.id" }
customer = { type = "string", path = "data.object.customer" }
event = { type = "object" }
"#;

/// A Prefect deployment `flow/name` with id `id` declaring `params`, and its create call
/// expected `creates` times with a body containing `expected`.
async fn deployment(
    server: &MockServer,
    name: &str,
    id: &str,
    params: &[&str],
    creates: u64,
    expected: Value,
) {
    let properties: serde_json::Map<String, Value> = params
        .iter()
        .map(|p| (p.to_string(), json!({"title": p})))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("/api/deployments/name/{name}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": id,
            "name": name.split('/').nth(1).unwrap(),
            "flow_id": "a5b59a30-0000-4000-8000-000000000000",
            "paused": false,
            "status": "READY",
            "parameter_openapi_schema": {"type": "object", "properties": properties},
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/deployments/{id}/create_flow_run")))
        .and(body_partial_json(expected))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-0000000000ee")),
        )
        .expect(creates)
        .named(name.to_owned())
        .mount(server)
        .await;
}

/// `field: message` for each error of a 422, sorted.
pub fn field_errors(body: &Value) -> Vec<String> {
    let mut errors: Vec<String> = body["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["field"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect();
    errors.sort();
    errors
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn one_stripe_endpoint_sends_each_event_type_to_its_own_deployment() {
    let prefect = MockServer::start().await;
    deployment(
        &prefect,
        "billing/invoice-paid",
        "11111111-0000-4000-8000-000000000001",
        &["invoice_id", "customer", "amount_paid"],
        1,
        json!({
            "parameters": {"invoice_id": "in_1MtHbELkdIwHu7ixl4OzzPMv", "customer": "cus_NeZwdNtLEOXuvB", "amount_paid": 999},
            "tags": ["source:stripe", "stripe:invoice.paid"],
            "name": "invoice-in_1MtHbELkdIwHu7ixl4OzzPMv"
        }),
    )
    .await;
    let deleted = stripe_event("evt_2", "customer.subscription.deleted", subscription());
    deployment(
        &prefect,
        "billing/subscription-ended",
        "22222222-0000-4000-8000-000000000002",
        &["subscription_id", "customer", "event"],
        1,
        json!({
            "parameters": {"subscription_id": "sub_1MowQVLkdIwHu7ixeRlqHVzs", "customer": "cus_NeZwdNtLEOXuvB", "event": deleted},
            "tags": ["source:stripe"]
        }),
    )
    .await;
    let secret = "whsec_test_secret";
    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), STRIPE_ROUTE),
        &[("STRIPE_SECRET", secret)],
    )
    .await;

    for event in [
        stripe_event("evt_1", "invoice.paid", invoice()),
        deleted.clone(),
    ] {
        let body = serde_json::to_vec(&event).unwrap();
        let (status, answer) =
            answer(post_signed(&app, "stripe", &stripe_sign(secret, &body), &body).await).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (202, Some("created")),
            "{answer}"
        );
    }

    let refunded = serde_json::to_vec(&stripe_event(
        "evt_3",
        "charge.refunded",
        json!({"id": "ch_1", "object": "charge"}),
    ))
    .unwrap();
    let (status, body) =
        answer(post_signed(&app, "stripe", &stripe_sign(secret, &refunded), &refunded).await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "ignored");
    assert_eq!(body["reason"], "no_matching_target");
    assert_eq!(
        gauge(
            &app,
            "ignored_total{route=\"stripe\",reason=\"no_matching_target\"}"
        )
        .await,
        1
    );

    let mut missing = stripe_event("evt_4", "invoice.paid", invoice());
    missing["data"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("customer");
    let missing = serde_json::to_vec(&missing).unwrap();
    let refused = problem(
        post_signed(&app, "stripe", &stripe_sign(secret, &missing), &missing).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&refused),
        vec!["data.object.customer: is required".to_owned()]
    );
    // The mocks' expect(1) each: one run per wanted event, none for the others.
}

const GITHUB_ROUTE: &str = r#"
[routes.gh]
deployment = "repo/push"
auth = { type = "hmac", scheme = "github", secrets = [{ env = "GH" }] }
content_types = ["application/json"]
unknown_fields = "drop"
run_name = "push-{repository}"
filters = [
  { header = "X-GitHub-Event", equals = "push" },
  { path = "ref", matches = "refs/heads/.+" },
  { path = "deleted", equals = false },
]
[routes.gh.fields]
event = { type = "string", header = "X-GitHub-Event" }
repository = { type = "string", path = "repository.full_name" }
commit_sha = { type = "string", path = "head_commit.id", pattern = "[0-9a-f]{40}" }
author = { type = "email", path = "head_commit.author.email" }
first_modified = { type = "string", path = "commits[0].modified[0]", required = false }
"#;

#[tokio::test]
async fn a_github_push_maps_nested_values_and_other_events_are_ignored() {
    let prefect = MockServer::start().await;
    deployment(
        &prefect,
        "repo/push",
        "33333333-0000-4000-8000-000000000003",
        &[
            "event",
            "repository",
            "commit_sha",
            "author",
            "first_modified",
        ],
        1,
        json!({
            "parameters": {
                "event": "push",
                "repository": "octocat/Hello-World",
                "commit_sha": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
                "author": "octocat@github.com",
                "first_modified": "README.md"
            },
            "name": "push-octocat/Hello-World"
        }),
    )
    .await;
    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), GITHUB_ROUTE),
        &[("GH", "gh-secret")],
    )
    .await;

    let push = serde_json::to_vec(&github_push(commit())).unwrap();
    let (status, body) =
        answer(post_signed(&app, "gh", &github_headers("push", &push), &push).await).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("created")),
        "{body}"
    );

    let ping =
        serde_json::to_vec(&json!({"zen": "Keep it logically awesome.", "hook_id": 1})).unwrap();
    let (status, body) =
        answer(post_signed(&app, "gh", &github_headers("ping", &ping), &ping).await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "ignored");
    assert_eq!(body["reason"], "filtered");
    assert_eq!(body["detail"], "header x-github-event must equal \"push\"");

    let mut tag_push = github_push(commit());
    tag_push["ref"] = json!("refs/tags/v1.0");
    let tag_push = serde_json::to_vec(&tag_push).unwrap();
    let (_, body) =
        answer(post_signed(&app, "gh", &github_headers("push", &tag_push), &tag_push).await).await;
    assert_eq!(body["detail"], "ref must match the pattern refs/heads/.+");
    assert_eq!(
        gauge(&app, "ignored_total{route=\"gh\",reason=\"filtered\"}").await,
        2
    );

    let mut no_sha = commit();
    no_sha.as_object_mut().unwrap().remove("id");
    no_sha["author"]["email"] = json!("not-an-email");
    let no_sha = serde_json::to_vec(&github_push(no_sha)).unwrap();
    let refused = problem(
        post_signed(&app, "gh", &github_headers("push", &no_sha), &no_sha).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&refused),
        vec![
            "head_commit.author.email: must be a valid email address".to_owned(),
            "head_commit.id: is required".to_owned(),
        ]
    );
}
