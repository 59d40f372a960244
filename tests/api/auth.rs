//! Partner authentication through the running app: requests signed by the providers' own
//! libraries (Standard Webhooks, Stripe) or by a minimal signer written here, accepted; the
//! same with one byte changed, refused; rotation, replay window, redelivery, bearer, IP lists.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha512};

use crate::fakes::partner_prefect_fresh_runs;
use crate::helpers::*;

const NOW_SLACK_FORM: &[u8] = b"event=signup&user_name=jo";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An independent HMAC-SHA256 (not flowgate's code).
pub(crate) fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn hmac512(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn route_toml(name: &str, auth: &str, content_type: &str) -> String {
    format!(
        r#"
[routes.{name}]
deployment = "christmas-signup-handler/website"
content_types = ["{content_type}"]
unknown_fields = "drop"
auth = {auth}
[routes.{name}.fields]
event = {{ type = "string" }}
"#
    )
}

/// Signs with the provider's own Python library (PyPI standardwebhooks / stripe).
fn provider_sign(
    scheme: &str,
    secret: &str,
    msg_id: &str,
    ts: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let python = std::process::Command::new(repo_path("scripts/local-prefect"))
        .arg("venv")
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let out = std::process::Command::new(python)
        .arg(repo_path("tests/signers/provider_sign.py"))
        .args([scheme, secret, msg_id, &ts.to_string()])
        .arg(&body_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let headers: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    headers
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect()
}

/// Flips one byte of the body.
fn tampered(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let last = b.len() - 2;
    b[last] ^= 0x01;
    b
}

async fn accepted_then_tampered_refused(
    app: &TestApp,
    route: &str,
    headers: &[(String, String)],
    body: &[u8],
) {
    let ok = post_signed(app, route, headers, body).await;
    let status = ok.status().as_u16();
    assert_eq!(status, 202, "{route}: {}", ok.text().await.unwrap());
    let refused = post_signed(app, route, headers, &tampered(body)).await;
    problem(refused, 401, "invalid_signature").await;
}

#[tokio::test]
async fn standard_webhooks_signed_by_the_reference_library() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let prefect = partner_prefect(1).await;
    let toml = route_toml(
        "orders",
        r#"{ type = "hmac", scheme = "standard-webhooks", secrets = [{ env = "ORDERS_SECRET" }] }"#,
        "application/json",
    );
    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), &toml),
        &[("ORDERS_SECRET", secret)],
    )
    .await;
    let body = br#"{"event":"order.created","order_id":"o-1"}"#;
    let mut headers = provider_sign(
        "standard-webhooks",
        secret,
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        now(),
        body,
    );
    headers.push(("content-type".into(), "application/json".into()));
    accepted_then_tampered_refused(&app, "orders", &headers, body).await;
}

#[tokio::test]
async fn stripe_signed_by_the_stripe_library() {
    let secret = "whsec_test_secret";
    let prefect = partner_prefect(1).await;
    let toml = route_toml(
        "billing",
        r#"{ type = "hmac", scheme = "stripe", secrets = [{ env = "STRIPE_SECRET" }] }"#,
        "application/json",
    );
    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), &toml),
        &[("STRIPE_SECRET", secret)],
    )
    .await;
    let body = br#"{"id":"evt_1","object":"event","event":"invoice.paid"}"#;
    let mut headers = provider_sign("stripe", secret, "", now(), body);
    headers.push(("content-type".into(), "application/json".into()));
    accepted_then_tampered_refused(&app, "billing", &headers, body).await;
}

#[tokio::test]
async fn github_shopify_slack_and_generic_signed_independently() {
    let prefect = partner_prefect(4).await;
    let toml = [
        route_toml("gh", r#"{ type = "hmac", scheme = "github", secrets = [{ env = "GH" }] }"#, "application/json"),
        route_toml("shop", r#"{ type = "hmac", scheme = "shopify", secrets = [{ env = "SHOP" }] }"#, "application/json"),
        route_toml("slack", r#"{ type = "hmac", scheme = "slack", secrets = [{ env = "SLACK" }] }"#, "application/x-www-form-urlencoded"),
        route_toml(
            "generic",
            r#"{ type = "hmac", scheme = "generic", header = "X-Sig", algorithm = "sha512", encoding = "base64", prefix = "v1=", signed_content = "{timestamp}:{body}", timestamp_header = "X-Ts", secrets = [{ env = "GEN" }] }"#,
            "application/json",
        ),
    ]
    .concat();
    let env = [
        ("GH", "gh-secret"),
        ("SHOP", "shop-secret"),
        ("SLACK", "slack-secret"),
        ("GEN", "gen-secret"),
    ];
    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), &toml),
        &env,
    )
    .await;
    let json_body = br#"{"event":"push"}"#;
    let ts = now().to_string();

    let gh = vec![
        ("content-type".into(), "application/json".into()),
        (
            "x-hub-signature-256".into(),
            format!("sha256={}", hex::encode(hmac256(b"gh-secret", json_body))),
        ),
        ("x-github-delivery".into(), "d-1".into()),
    ];
    accepted_then_tampered_refused(&app, "gh", &gh, json_body).await;

    let shop = vec![
        ("content-type".into(), "application/json".into()),
        (
            "x-shopify-hmac-sha256".into(),
            b64(&hmac256(b"shop-secret", json_body)),
        ),
        ("x-shopify-webhook-id".into(), "w-1".into()),
    ];
    accepted_then_tampered_refused(&app, "shop", &shop, json_body).await;

    let slack_base = format!("v0:{ts}:{}", String::from_utf8_lossy(NOW_SLACK_FORM));
    let slack = vec![
        (
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ),
        ("x-slack-request-timestamp".into(), ts.clone()),
        (
            "x-slack-signature".into(),
            format!(
                "v0={}",
                hex::encode(hmac256(b"slack-secret", slack_base.as_bytes()))
            ),
        ),
    ];
    accepted_then_tampered_refused(&app, "slack", &slack, NOW_SLACK_FORM).await;

    let generic_base = format!("{ts}:{}", String::from_utf8_lossy(json_body));
    let generic = vec![
        ("content-type".into(), "application/json".into()),
        ("x-ts".into(), ts.clone()),
        (
            "x-sig".into(),
            format!(
                "v1={}",
                b64(&hmac512(b"gen-secret", generic_base.as_bytes()))
            ),
        ),
    ];
    accepted_then_tampered_refused(&app, "generic", &generic, json_body).await;
}

pub(crate) fn github_headers(secret: &[u8], body: &[u8], delivery: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        (
            "x-hub-signature-256".into(),
            format!("sha256={}", hex::encode(hmac256(secret, body))),
        ),
        ("x-github-delivery".into(), delivery.into()),
    ]
}

#[tokio::test]
async fn rotation_accepts_old_and_new_until_the_old_is_removed_or_expired() {
    let body = br#"{"event":"push"}"#;
    let prefect = partner_prefect(4).await;
    let api = format!("{}/api", prefect.uri());
    let both = route_toml(
        "gh",
        r#"{ type = "hmac", scheme = "github", secrets = [{ env = "NEW" }, { env = "OLD" }] }"#,
        "application/json",
    );
    let env = [("NEW", "new-secret"), ("OLD", "old-secret")];
    let app = spawn_app_with_env(settings_with(&api, &both), &env).await;
    assert_eq!(
        post_signed(
            &app,
            "gh",
            &github_headers(b"old-secret", body, "d-old"),
            body
        )
        .await
        .status()
        .as_u16(),
        202
    );
    assert_eq!(
        post_signed(
            &app,
            "gh",
            &github_headers(b"new-secret", body, "d-new"),
            body
        )
        .await
        .status()
        .as_u16(),
        202
    );

    let removed = route_toml(
        "gh",
        r#"{ type = "hmac", scheme = "github", secrets = [{ env = "NEW" }] }"#,
        "application/json",
    );
    let app = spawn_app_with_env(settings_with(&api, &removed), &env).await;
    problem(
        post_signed(
            &app,
            "gh",
            &github_headers(b"old-secret", body, "d-old-2"),
            body,
        )
        .await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(
        post_signed(
            &app,
            "gh",
            &github_headers(b"new-secret", body, "d-new-2"),
            body
        )
        .await
        .status()
        .as_u16(),
        202
    );

    let expired = route_toml(
        "gh",
        r#"{ type = "hmac", scheme = "github", secrets = [{ env = "NEW" }, { env = "OLD", expires = "2020-01-01T00:00:00Z" }] }"#,
        "application/json",
    );
    let app = spawn_app_with_env(settings_with(&api, &expired), &env).await;
    problem(
        post_signed(
            &app,
            "gh",
            &github_headers(b"old-secret", body, "d-old-3"),
            body,
        )
        .await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(
        post_signed(
            &app,
            "gh",
            &github_headers(b"new-secret", body, "d-new-3"),
            body
        )
        .await
        .status()
        .as_u16(),
        202
    );
}

#[tokio::test]
async fn a_redelivery_gets_the_first_flow_run_and_prefect_sees_one_create() {
    // Every create gets a new run id: an answer repeating the first id cannot come from Prefect.
    let prefect = partner_prefect_fresh_runs(1).await;
    let toml = route_toml(
        "gh",
        r#"{ type = "hmac", scheme = "github", secrets = [{ env = "GH" }] }"#,
        "application/json",
    );
    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), &toml),
        &[("GH", "gh-secret")],
    )
    .await;
    let body = br#"{"event":"push"}"#;
    let headers = github_headers(b"gh-secret", body, "72d3162e-cc78-11e3-81ab-4c9367dc0958");

    let first = post_signed(&app, "gh", &headers, body).await;
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "created", "{first}");
    assert!(first["flow_run_id"].is_string(), "{first}");
    let again = post_signed(&app, "gh", &headers, body).await;
    assert_eq!(again.status().as_u16(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["flow_run_id"], first["flow_run_id"]);
    let sent: Value = serde_json::from_slice(
        &prefect
            .received_requests()
            .await
            .unwrap()
            .iter()
            .find(|r| r.method.as_str() == "POST")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(
        sent["idempotency_key"],
        "flowgate:christmas-signup-handler/website:gh:delivery:72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    // `expect(1)` on the create mock is checked when `prefect` drops.
}

#[tokio::test]
async fn missing_expired_and_future_signatures_have_their_codes() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let prefect = partner_prefect(0).await;
    let toml = route_toml(
        "orders",
        r#"{ type = "hmac", scheme = "standard-webhooks", secrets = [{ env = "S" }] }"#,
        "application/json",
    );
    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), &toml),
        &[("S", secret)],
    )
    .await;
    let body = br#"{"event":"x"}"#;

    let none = vec![("content-type".to_owned(), "application/json".to_owned())];
    let missing = problem(
        post_signed(&app, "orders", &none, body).await,
        401,
        "missing_signature",
    )
    .await;
    assert!(missing["detail"]
        .as_str()
        .unwrap()
        .contains("webhook-signature"));

    // An hour off either way; the exact ±300 s boundaries are unit-tested with an injected clock.
    let mut old = provider_sign("standard-webhooks", secret, "msg_old", now() - 3600, body);
    old.push(("content-type".into(), "application/json".into()));
    let body_old = problem(
        post_signed(&app, "orders", &old, body).await,
        401,
        "timestamp_out_of_window",
    )
    .await;
    assert_eq!(body_old["reason"], "too_old");

    let mut future = provider_sign("standard-webhooks", secret, "msg_new", now() + 3600, body);
    future.push(("content-type".into(), "application/json".into()));
    let body_new = problem(
        post_signed(&app, "orders", &future, body).await,
        401,
        "timestamp_out_of_window",
    )
    .await;
    assert_eq!(body_new["reason"], "too_new");
}

#[tokio::test]
async fn bearer_tokens_and_ip_allow_lists() {
    let prefect = partner_prefect(2).await;
    let toml = format!(
        "{}{}",
        route_toml(
            "trigger",
            r#"{ type = "bearer", tokens = [{ env = "TOKEN" }] }"#,
            "application/json"
        ),
        r#"
[routes.internal]
deployment = "christmas-signup-handler/website"
content_types = ["application/json"]
unknown_fields = "drop"
auth = "none"
allow_ips = ["10.0.0.0/8"]
[routes.internal.fields]
event = { type = "string" }
"#
    );
    let body = br#"{"event":"run"}"#;
    let json = ("content-type".to_owned(), "application/json".to_owned());
    let api = format!("{}/api", prefect.uri());
    let app = spawn_app_with_env(settings_with(&api, &toml), &[("TOKEN", "t0ken-abc")]).await;

    let good = vec![
        json.clone(),
        ("authorization".into(), "Bearer t0ken-abc".into()),
    ];
    assert_eq!(
        post_signed(&app, "trigger", &good, body)
            .await
            .status()
            .as_u16(),
        202
    );
    let bad = vec![
        json.clone(),
        ("authorization".into(), "Bearer t0ken-abd".into()),
    ];
    let refused = post_signed(&app, "trigger", &bad, body).await;
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    problem(refused, 401, "invalid_token").await;
    problem(
        post_signed(&app, "trigger", std::slice::from_ref(&json), body).await,
        401,
        "invalid_token",
    )
    .await;

    // From 127.0.0.1, not in 10.0.0.0/8; a spoofed X-Forwarded-For from an untrusted peer is ignored.
    let spoofed = vec![json.clone(), ("x-forwarded-for".into(), "10.1.2.3".into())];
    problem(
        post_signed(&app, "internal", &spoofed, body).await,
        403,
        "ip_not_allowed",
    )
    .await;

    // The same header from a trusted proxy is honoured.
    let mut trusting = settings_with(&api, &toml);
    trusting.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    let behind_proxy = spawn_app_with_env(trusting, &[("TOKEN", "t0ken-abc")]).await;
    assert_eq!(
        post_signed(&behind_proxy, "internal", &spoofed, body)
            .await
            .status()
            .as_u16(),
        202
    );
    let outsider = vec![json, ("x-forwarded-for".into(), "203.0.113.9".into())];
    problem(
        post_signed(&behind_proxy, "internal", &outsider, body).await,
        403,
        "ip_not_allowed",
    )
    .await;
}
