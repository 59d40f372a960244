//! The real binary, with debug-level JSON logs, handling signed and bearer requests: its logs
//! carry request ids and reason codes, and never a secret, a token or a body.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use hmac::KeyInit;
use tokio::time::Instant;

use crate::helpers::*;

const SECRET: &str = "gh-secret-5d1c9e";
const OLD_SECRET: &str = "gh-old-secret-77aa01";
const TOKEN: &str = "tok-91ab77f0";
const BODY_MARKER: &str = "body-marker-3f9a";

#[tokio::test]
async fn logs_of_signed_traffic_hold_no_secret_and_no_body() {
    let prefect = partner_prefect(2).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("flowgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
port = {port}
[admin]
port = 0
[store]
path = "{store}"
[prefect]
api_url = "{}/api"
[telemetry]
format = "json"
level = "debug"
[routes.gh]
deployment = "christmas-signup-handler/website"
content_types = ["application/json"]
unknown_fields = "drop"
auth = {{ type = "hmac", scheme = "github", secrets = [{{ env = "GH_SECRET" }}, {{ env = "GH_SECRET_OLD" }}] }}
[routes.gh.fields]
event = {{ type = "string" }}
[routes.trigger]
deployment = "christmas-signup-handler/website"
content_types = ["application/json"]
unknown_fields = "drop"
auth = {{ type = "bearer", tokens = [{{ env = "TRIGGER_TOKEN" }}] }}
[routes.trigger.fields]
event = {{ type = "string" }}
"#,
            prefect.uri(),
            store = dir.path().join("flowgate.db").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("GH_SECRET", SECRET)
        .env("GH_SECRET_OLD", OLD_SECRET)
        .env("TRIGGER_TOKEN", TOKEN)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "flowgate did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body = format!(r#"{{"event":"{BODY_MARKER}"}}"#);
    let mut signed = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    hmac::Mac::update(&mut signed, body.as_bytes());
    let signature = format!(
        "sha256={}",
        hex::encode(hmac::Mac::finalize(signed).into_bytes())
    );
    let send = |route: &str, headers: Vec<(&str, String)>, body: String| {
        let mut r = client
            .post(format!("{base}/hooks/{route}"))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let ok = send(
        "gh",
        vec![
            ("x-hub-signature-256", signature.clone()),
            ("x-github-delivery", "d-1".into()),
        ],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(ok.status().as_u16(), 202);
    let bad = send(
        "gh",
        vec![("x-hub-signature-256", signature)],
        body.replace("marker", "markes"),
    )
    .await
    .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    let bearer = send(
        "trigger",
        vec![("authorization", format!("Bearer {TOKEN}"))],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(bearer.status().as_u16(), 202);
    let wrong = send(
        "trigger",
        vec![("authorization", format!("Bearer {TOKEN}x"))],
        body,
    )
    .await
    .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();

    assert!(
        logs.contains("request finished"),
        "logs were captured:\n{logs}"
    );
    assert!(
        logs.contains("invalid_signature") && logs.contains("invalid_token"),
        "reason codes are logged"
    );
    assert!(
        logs.contains("several secrets are active") && logs.contains("env:GH_SECRET_OLD"),
        "startup warns about the rotation, naming the sources"
    );
    for forbidden in [SECRET, OLD_SECRET, TOKEN, BODY_MARKER, "markes"] {
        assert!(
            !logs.contains(forbidden),
            "{forbidden:?} leaked into the logs:\n{logs}"
        );
    }
}
