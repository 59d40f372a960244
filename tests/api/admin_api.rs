//! The admin API on the admin listener: the rejection log (secrets removed, fields masked,
//! pages, replay), the outbox discard, the route table. Prefect is wiremock.

use futures_util::StreamExt;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fakes::FreshFlowRun;
use crate::helpers::*;

const TOKEN: &str = "ops-token";
const DEP_ID: &str = "21e9741f-0000-4000-8000-000000000001";

async fn get(app: &TestApp, path_and_query: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path_and_query}", app.admin_address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}{path}", app.admin_address))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn list(app: &TestApp, query: &str) -> Value {
    json_of(get(app, &format!("/admin/rejections?{query}")).await, 200).await
}

/// A Prefect that knows the signup deployment and makes a fresh run per create.
async fn fresh_prefect() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(DEP_ID, &SIGNUP_FIELDS)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(FreshFlowRun)
        .mount(&server)
        .await;
    server
}

fn open_limits(
    mut settings: flowgate::configuration::Settings,
) -> flowgate::configuration::Settings {
    settings.limits.per_ip = None;
    for route in settings.routes.values_mut() {
        route.limit = None;
    }
    settings.server.trusted_proxies = vec!["127.0.0.1".into()];
    settings
}

#[tokio::test]
async fn every_admin_endpoint_needs_the_token_and_the_admin_listener() {
    let prefect = untouchable_prefect().await;
    let app =
        spawn_app_with_admin_token(default_settings(&format!("{}/api", prefect.uri())), TOKEN)
            .await;
    let id = uuid::Uuid::now_v7();
    let endpoints = [
        ("GET", "/admin/rejections".to_owned()),
        ("GET", format!("/admin/rejections/{id}")),
        ("POST", format!("/admin/rejections/{id}/replay")),
        ("GET", "/admin/routes".to_owned()),
        ("GET", "/admin/outbox?state=queued".to_owned()),
        ("POST", format!("/admin/outbox/{id}/discard")),
    ];
    for (verb, path) in &endpoints {
        let call = |base: &str, token: Option<&str>| {
            let mut r = app
                .client
                .request(verb.parse().unwrap(), format!("{base}{path}"));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        problem(
            call(&app.admin_address, None).await.unwrap(),
            401,
            "invalid_token",
        )
        .await;
        problem(
            call(&app.admin_address, Some("wrong")).await.unwrap(),
            401,
            "invalid_token",
        )
        .await;
        problem(
            call(&app.address, Some(TOKEN)).await.unwrap(),
            404,
            "not_found",
        )
        .await;
    }
    // No admin token configured: no admin API at all (fail closed).
    let closed = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let r = closed
        .client
        .get(format!("{}/admin/rejections", closed.admin_address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn a_rejection_is_kept_with_its_reason_secrets_removed_and_fields_masked() {
    let prefect = untouchable_prefect().await;
    let mut settings = open_limits(default_settings(&format!("{}/api", prefect.uri())));
    settings.routes.get_mut(ROUTE).unwrap().secret_headers = vec!["X-Partner-Key".into()];
    let app = spawn_app_with_admin_token(settings, TOKEN).await;
    let mut bad = signup("jo.secret@example.com");
    bad["assessment_score"] = json!(500);
    let refused = app
        .client
        .post(format!("{}/hooks/{ROUTE}", app.address))
        .header("authorization", "Bearer s3cr3t-bearer")
        .header("cookie", "session=s3cr3t-cookie")
        .header("x-partner-key", "s3cr3t-key")
        .header("x-forwarded-for", "203.0.113.5")
        .json(&bad)
        .send()
        .await
        .unwrap();
    problem(refused, 422, "validation_failed").await;

    let page = list(&app, "").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["code"], "validation_failed");
    assert_eq!(items[0]["route"], ROUTE);
    assert_eq!(items[0]["client"], "203.0.113.5");
    assert_eq!(items[0]["status"], 422);
    assert_eq!(items[0]["replayable"], true);
    let id = items[0]["id"].as_str().unwrap();

    let detail = json_of(get(&app, &format!("/admin/rejections/{id}")).await, 200).await;
    let text = detail.to_string();
    for secret in ["s3cr3t", "jo.secret@example.com"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let body = detail["body"].as_str().unwrap();
    assert!(body.contains("j***@example.com"), "{body}");
    assert!(body.contains("Jo's Bakery"), "other fields shown: {body}");
    let names: Vec<&str> = detail["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert!(names.contains(&"content-type"), "{names:?}");
    assert_eq!(
        detail["field_errors"][0]["field"], "assessment_score",
        "{detail}"
    );
    assert_eq!(detail["body_complete"], true);
    // Nothing of the sort on an unknown id.
    problem(
        get(&app, &format!("/admin/rejections/{}", uuid::Uuid::now_v7())).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats_and_filters_apply() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app_with_admin_token(
        open_limits(default_settings(&format!("{}/api", prefect.uri()))),
        TOKEN,
    )
    .await;
    for n in 0..7 {
        let r = app
            .client
            .post(format!("{}/hooks/{ROUTE}", app.address))
            .header("content-type", "application/json")
            .header("x-forwarded-for", format!("10.0.0.{n}"))
            .body("{not json")
            .send()
            .await
            .unwrap();
        problem(r, 400, "malformed_body").await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = list(&app, &format!("limit=3&cursor={cursor}")).await;
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
        assert!(pages < 10, "the cursor loops");
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "no repeats");
    sorted.reverse();
    assert_eq!(sorted, seen, "newest first");

    let one = list(&app, "client=10.0.0.3").await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let coded = list(&app, "code=malformed_body&limit=100").await;
    assert_eq!(coded["items"].as_array().unwrap().len(), 7);
    let other = list(&app, "route=github-push").await;
    assert!(other["items"].as_array().unwrap().is_empty());
    let future = list(&app, "from=2999-01-01T00:00:00Z").await;
    assert!(future["items"].as_array().unwrap().is_empty());
    let past = list(&app, "to=2000-01-01T00:00:00Z").await;
    assert!(past["items"].as_array().unwrap().is_empty());
    let window = list(
        &app,
        "from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z&limit=100",
    )
    .await;
    assert_eq!(window["items"].as_array().unwrap().len(), 7);
    problem(
        get(&app, "/admin/rejections?cursor=nope").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        get(&app, "/admin/rejections?from=yesterday").await,
        400,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn a_validation_failure_replays_as_a_new_run_once_the_route_is_fixed() {
    let prefect = fresh_prefect().await;
    let data = tempfile::tempdir().unwrap();
    let settings = |max: f64| {
        let mut s = open_limits(default_settings(&format!("{}/api", prefect.uri())));
        s.store.path = data.path().join("flowgate.db").display().to_string();
        s.routes
            .get_mut(ROUTE)
            .unwrap()
            .fields
            .get_mut("assessment_score")
            .unwrap()
            .max = Some(max);
        s
    };
    // The route is too strict: a real signup (score 65) is refused.
    let strict = spawn_app_with_admin_token(settings(50.0), TOKEN).await;
    problem(
        strict.post_json(ROUTE, &signup("fixed@example.com")).await,
        422,
        "validation_failed",
    )
    .await;
    let id = list(&strict, "code=validation_failed").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    strict.stop().await;

    // The fix is deployed; ops replay the refused signup.
    let fixed = spawn_app_with_admin_token(settings(100.0), TOKEN).await;
    let replayed = json_of(
        post(&fixed, &format!("/admin/rejections/{id}/replay"), None).await,
        202,
    )
    .await;
    assert_eq!(replayed["status"], "created", "{replayed}");
    let run = replayed["flow_run_id"].as_str().unwrap().to_owned();
    let again = json_of(
        post(&fixed, &format!("/admin/rejections/{id}/replay"), None).await,
        202,
    )
    .await;

    let creates: Vec<Value> = prefect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0]["parameters"]["email"], "fixed@example.com");
    assert_eq!(
        creates[0]["idempotency_key"], creates[1]["idempotency_key"],
        "a second replay carries the same key: Prefect makes one run"
    );
    assert_ne!(again["flow_run_id"].as_str(), None);
    let detail = json_of(get(&fixed, &format!("/admin/rejections/{id}")).await, 200).await;
    assert_eq!(detail["replayed"]["outcome"], "created", "{detail}");
    assert!(run.len() == 36);
}

#[tokio::test]
async fn a_signature_failure_is_kept_but_never_replayed() {
    let prefect = untouchable_prefect().await;
    let toml = r#"
[routes.gh]
deployment = "christmas-signup-handler/website"
content_types = ["application/json"]
auth = { type = "hmac", scheme = "github", secrets = [{ env = "GH" }] }
[routes.gh.fields]
event = { type = "string" }
"#;
    let mut config = flowgate::configuration::Configuration::from_settings_with_env(
        open_limits(settings_with(&format!("{}/api", prefect.uri()), toml)),
        flowgate::configuration::PrefectAuth::None,
        &|name: &str| (name == "GH").then(|| "gh-secret".to_owned()),
    )
    .unwrap();
    config.admin_token = Some(secrecy::SecretString::from(TOKEN));
    let app = start_config(config).await;
    let refused = app
        .client
        .post(format!("{}/hooks/gh", app.address))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .header("x-github-delivery", "d-forged")
        .body(r#"{"event":"push"}"#)
        .send()
        .await
        .unwrap();
    problem(refused, 401, "invalid_signature").await;
    let item = list(&app, "route=gh").await["items"][0].clone();
    assert_eq!(item["code"], "invalid_signature");
    assert_eq!(item["replayable"], false);
    let id = item["id"].as_str().unwrap();
    let detail = json_of(get(&app, &format!("/admin/rejections/{id}")).await, 200).await;
    assert!(
        !detail.to_string().contains("x-hub-signature-256"),
        "{detail}"
    );
    assert!(detail["replay_refused"]
        .as_str()
        .unwrap()
        .contains("authentication"));
    problem(
        post(&app, &format!("/admin/rejections/{id}/replay"), None).await,
        409,
        "replay_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn a_queued_entry_can_be_discarded_with_a_reason_and_never_runs() {
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
        .mount(&prefect)
        .await;
    let app = spawn_app_with_admin_token(
        open_limits(default_settings(&format!("{}/api", prefect.uri()))),
        TOKEN,
    )
    .await;
    let queued: Value = app
        .post_json(ROUTE, &signup("discard@example.com"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queued["status"], "queued", "{queued}");
    let id = queued["delivery_id"].as_str().unwrap();
    let listed = json_of(get(&app, "/admin/outbox?state=queued").await, 200).await;
    assert_eq!(listed["entries"][0]["delivery_id"], id);

    problem(
        post(&app, &format!("/admin/outbox/{id}/discard"), None).await,
        400,
        "invalid_query",
    )
    .await;
    let discarded = json_of(
        post(
            &app,
            &format!("/admin/outbox/{id}/discard"),
            Some(json!({"reason": "test signup"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(discarded["status"], "discarded");
    let listed = json_of(get(&app, "/admin/outbox?state=queued").await, 200).await;
    assert!(listed["entries"].as_array().unwrap().is_empty(), "{listed}");
    assert_eq!(gauge(&app, "outbox_queued").await, 0);
    problem(
        post(
            &app,
            &format!("/admin/outbox/{id}/discard"),
            Some(json!({"reason": "again"})),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_route_table_shows_each_route_and_its_resolved_deployment() {
    let prefect = happy_prefect(1).await;
    let app = spawn_app_with_admin_token(
        open_limits(default_settings(&format!("{}/api", prefect.uri()))),
        TOKEN,
    )
    .await;
    let route = |table: &Value| {
        table["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == ROUTE)
            .cloned()
            .unwrap()
    };
    let before = route(&json_of(get(&app, "/admin/routes").await, 200).await);
    assert_eq!(before["deployment"], "christmas-signup-handler/website");
    assert_eq!(before["cache"], "not_resolved");
    assert_eq!(before["path"], format!("/hooks/{ROUTE}"));
    let created: Value = app
        .post_json(ROUTE, &signup("routes@example.com"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["status"], "created", "{created}");
    let after = route(&json_of(get(&app, "/admin/routes").await, 200).await);
    assert_eq!(after["cache"], "resolved");
    assert_eq!(after["deployment_id"], DEP_ID);
    assert_eq!(after["queued"], 0);
}

#[tokio::test]
async fn a_flood_of_identical_bad_requests_is_one_record_with_the_right_count() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app_with_admin_token(
        open_limits(default_settings(&format!("{}/api", prefect.uri()))),
        TOKEN,
    )
    .await;
    const FLOOD: usize = 3_000;
    let url = format!("{}/hooks/{ROUTE}", app.address);
    let statuses: Vec<u16> = futures_util::stream::iter(0..FLOOD)
        .map(|_| {
            app.client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-forwarded-for", "198.51.100.77")
                .body("{\"email\":")
                .send()
        })
        .buffer_unordered(32)
        .map(|a| a.unwrap().status().as_u16())
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 400),
        "{:?}",
        statuses.iter().find(|s| **s != 400)
    );
    let page = list(&app, "limit=100").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["count"], FLOOD as u64);
    assert_eq!(items[0]["client"], "198.51.100.77");
}
