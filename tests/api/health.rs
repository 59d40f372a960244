use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_without_prefect() {
    let refusing = refusing_port();
    let app = spawn_app(default_settings(&refusing.api_url())).await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("x-request-id"));
}

/// `/readyz` until the background probe has told it about Prefect.
async fn ready_once_probed(app: &TestApp) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let ready = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status().as_u16(), 200);
        let body = ready.json::<Value>().await.unwrap();
        if body["prefect"] != "unknown" {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "never probed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
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
    let mut settings = default_settings(&format!("{}/api", prefect.uri()));
    // One probe at start, none during the test.
    settings.delivery.probe_every_secs = 3600;
    let app = spawn_app(settings).await;
    let body = ready_once_probed(&app).await;
    assert_eq!(
        (&body["status"], &body["prefect"]),
        (&"ready".into(), &"reachable".into())
    );
    // A flood of readiness checks reaches neither Prefect (expect(1) above) nor the store.
    for _ in 0..300 {
        let r = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    let refusing = refusing_port();
    let down = spawn_app(default_settings(&refusing.api_url())).await;
    // Prefect down: still ready (requests are queued on disk), and it says so.
    let body = ready_once_probed(&down).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["prefect"], "unreachable");
}
