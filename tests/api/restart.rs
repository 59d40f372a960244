//! What must survive a restart or a stop: accepted delivery ids, and in-flight requests on SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fakes::partner_prefect_fresh_runs;
use crate::gateway::Gateway;
use crate::helpers::*;

#[tokio::test]
async fn a_redelivery_after_a_restart_gets_the_first_answer_without_calling_prefect() {
    // Every create gets a new run id: an answer repeating the first id cannot come from Prefect.
    let prefect = partner_prefect_fresh_runs(1).await;
    let data = tempfile::tempdir().unwrap();
    let toml = r#"
[routes.gh]
deployment = "christmas-signup-handler/website"
content_types = ["application/json"]
unknown_fields = "drop"
auth = { type = "hmac", scheme = "github", secrets = [{ env = "GH" }] }
[routes.gh.fields]
event = { type = "string" }
"#;
    let settings = || {
        let mut s = settings_with(&format!("{}/api", prefect.uri()), toml);
        s.store.path = data.path().join("flowgate.db").display().to_string();
        s
    };
    let body = br#"{"event":"push"}"#;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(b"gh-secret").unwrap();
    hmac::Mac::update(&mut mac, body);
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "x-hub-signature-256".to_owned(),
            format!(
                "sha256={}",
                hex::encode(hmac::Mac::finalize(mac).into_bytes())
            ),
        ),
        ("x-github-delivery".to_owned(), "d-restart-1".to_owned()),
    ];

    let first = {
        let app = spawn_app_with_env(settings(), &[("GH", "gh-secret")]).await;
        let response = post_signed(&app, "gh", &headers, body).await;
        assert_eq!(response.status().as_u16(), 202);
        let first = response.json::<Value>().await.unwrap();
        // A graceful stop commits what the answer did not wait for (the delivery id).
        app.stop().await;
        first
    };
    assert_eq!(first["status"], "created", "{first}");
    assert!(first["flow_run_id"].is_string(), "{first}");
    let restarted = spawn_app_with_env(settings(), &[("GH", "gh-secret")]).await;
    let again = post_signed(&restarted, "gh", &headers, body).await;
    assert_eq!(again.status().as_u16(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["flow_run_id"], first["flow_run_id"]);
    // `expect(1)` on the create mock: the restarted gateway never called Prefect.
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
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
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-0000000000f1"))
                .set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&prefect)
        .await;
    let api = format!("{}/api", prefect.uri());
    let mut gateway = Gateway::start(
        |port, store| {
            std::fs::read_to_string(repo_path("config/default.toml"))
                .unwrap()
                .replace("port = 8080", &format!("port = {port}"))
                .replace("port = 9090", "port = 0")
                .replace(
                    r#"path = "data/flowgate.db""#,
                    &format!("path = \"{store}\""),
                )
        },
        &[("FLOWGATE__PREFECT__API_URL", api.as_str())],
    )
    .await;
    let base = gateway.base.clone();

    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{base}/hooks/{ROUTE}"))
            .json(&signup("term@example.com"))
            .send(),
    );
    // SIGTERM once Prefect has the create (the request is in flight inside the gateway).
    while prefect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .all(|r| r.method.as_str() != "POST")
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let term = Command::new("kill")
        .args(["-TERM", &gateway.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "created");
    let status = gateway.wait();
    assert!(status.success(), "exit status {status:?}");
}
