//! A refused partner event replayed from the rejection log keeps the headers its route reads
//! (here `X-GitHub-Event`, a filter and a field): the replay makes the run the original would
//! have made.

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{commit, deployment, github_headers, github_push, GITHUB_ROUTE};
use crate::helpers::*;

const ADMIN: &str = "replay-admin-token-0123456789";

#[tokio::test]
async fn a_replayed_github_push_keeps_the_event_header_its_filter_and_field_read() {
    let prefect = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "33333333-0000-4000-8000-000000000009",
            "name": "push",
            "flow_id": "a5b59a30-0000-4000-8000-000000000000",
            "paused": false,
            "status": "READY",
        })))
        .mount(&prefect)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&prefect)
        .await;
    // Not queued: the sender hears of the outage, and the refusal is kept for replay.
    let route = GITHUB_ROUTE.replace("[routes.gh]\n", "[routes.gh]\nqueue = false\n");
    let mut config = flowgate::configuration::Configuration::from_settings_with_env(
        settings_with(&format!("{}/api", prefect.uri()), &route),
        flowgate::configuration::PrefectAuth::None,
        &|name: &str| (name == "GH").then(|| "gh-secret".to_owned()),
    )
    .unwrap();
    config.admin_token = Some(secrecy::SecretString::from(ADMIN));
    let app = start_config(config).await;
    let push = serde_json::to_vec(&github_push(commit())).unwrap();
    problem(
        post_signed(&app, "gh", &github_headers("push", &push), &push).await,
        503,
        "upstream_unavailable",
    )
    .await;

    // Prefect is back: the replay passes the route's header filter and maps the header field.
    prefect.reset().await;
    deployment(
        &prefect,
        "repo/push",
        "33333333-0000-4000-8000-000000000009",
        &[
            "event",
            "repository",
            "commit_sha",
            "author",
            "first_modified",
        ],
        1,
        json!({"parameters": {"event": "push", "repository": "octocat/Hello-World"}}),
    )
    .await;
    let admin = |p: String| {
        app.client
            .request(
                if p.ends_with("/replay") {
                    reqwest::Method::POST
                } else {
                    reqwest::Method::GET
                },
                format!("{}{p}", app.admin_address),
            )
            .bearer_auth(ADMIN)
            .send()
    };
    let list: Value = admin("/admin/rejections?route=gh".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["items"][0]["id"]
        .as_str()
        .expect("a rejection")
        .to_owned();
    let replayed = admin(format!("/admin/rejections/{id}/replay"))
        .await
        .unwrap();
    let status = replayed.status().as_u16();
    let body: Value = replayed.json().await.unwrap();
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("created")),
        "{body}"
    );
}
