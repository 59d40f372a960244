use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_without_prefect() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app(default_settings(&format!(
        "http://127.0.0.1:{closed_port}/api"
    )))
    .await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn readyz_reports_prefect_and_stays_ready_while_the_outbox_works() {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(true))
        .expect(1)
        .mount(&prefect)
        .await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = spawn_app(default_settings(&format!(
        "http://127.0.0.1:{closed_port}/api"
    )))
    .await;
    // Prefect down: still ready (requests are queued on disk), and it says so.
    let still_ready = down
        .client
        .get(format!("{}/readyz", down.address))
        .send()
        .await
        .unwrap();
    assert_eq!(still_ready.status().as_u16(), 200);
    let body = still_ready.json::<Value>().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["prefect"], "unreachable");
}
