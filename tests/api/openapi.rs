//! The OpenAPI document of `/api/v1`: it parses as OpenAPI 3.1, lists every endpoint, and
//! every answer the handlers really give (against the real Prefect, and a queued one from a
//! Prefect that refuses writes) matches the schema the document gives for its status.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::api_v1::{app_config, delivered_run, BACKEND, CRM, DEPLOYMENT};
use crate::e2e::{prefect_api, wait_completed};
use crate::helpers::*;

/// Every route of `/api/v1`, as (method, path template).
const ENDPOINTS: [(&str, &str); 12] = [
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/deployments/{flow}/{deployment}/runs"),
    ("get", "/api/v1/deployments/{flow}/{deployment}/runs"),
    ("get", "/api/v1/deployments/{flow}/{deployment}"),
    ("get", "/api/v1/deliveries/{delivery_id}"),
    ("get", "/api/v1/runs/{flow_run_id}"),
    ("post", "/api/v1/runs/{flow_run_id}/cancel"),
    ("put", "/api/v1/deployments/{flow}/{deployment}"),
    ("delete", "/api/v1/deployments/{flow}/{deployment}"),
    ("post", "/api/v1/deployments/{flow}/{deployment}/pause"),
    ("post", "/api/v1/deployments/{flow}/{deployment}/resume"),
    ("get", "/api/v1/deployments"),
];

/// Checks one real answer against the document: its status is documented for the operation,
/// its content type is the documented one, and its body validates against the schema.
struct Checker {
    doc: Value,
    seen: BTreeSet<(String, String, u16)>,
}

impl Checker {
    async fn check(&mut self, op: (&str, &str), response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        let documented = &self.doc["paths"][op.1][op.0]["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{} {} answered {status}, which the document does not list: {body}",
            op.0,
            op.1
        );
        let content = documented["content"].as_object().unwrap();
        let (media, entry) = content.iter().next().unwrap();
        assert!(
            content_type.starts_with(media.as_str()),
            "{} {} {status}: content type {content_type}, documented {media}",
            op.0,
            op.1
        );
        let mut schema = entry["schema"].clone();
        schema["components"] = self.doc["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} {} {status} does not match its schema: {errors:?}\n{body}",
            op.0,
            op.1
        );
        self.seen.insert((op.0.into(), op.1.into(), status));
        (status, body)
    }
}

#[tokio::test]
async fn the_document_parses_lists_every_endpoint_and_matches_the_real_answers() {
    let api = prefect_api().await;
    let app = start_config(app_config(api)).await;
    let raw = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 200);
    let text = raw.text().await.unwrap();
    let parsed = oas3::from_json(&text).unwrap();
    assert!(parsed.openapi.starts_with("3.1"), "{}", parsed.openapi);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let listed: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.clone(), p.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut c = Checker {
        doc,
        seen: BTreeSet::new(),
    };
    let url = |p: &str| format!("{}{p}", app.address);
    let trigger_op = ENDPOINTS[1];
    let history_op = ENDPOINTS[2];
    let deployment_op = ENDPOINTS[3];
    let delivery_op = ENDPOINTS[4];
    let run_op = ENDPOINTS[5];
    let cancel_op = ENDPOINTS[6];
    let runs_url = url(&format!("/api/v1/deployments/{DEPLOYMENT}/runs"));

    // An unknown deployment, first: while API triggers wait in the outbox (the one below may
    // be queued when the shared Prefect is busy), a new one queues behind them unchecked.
    let (status, missing) = c
        .check(
            trigger_op,
            app.client
                .post(url("/api/v1/deployments/no-such-flow/nowhere/runs"))
                .bearer_auth(BACKEND)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (404, Some("unknown_deployment")),
        "{missing}"
    );

    // Trigger: created (or queued), duplicate, and each refusal.
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let email = format!("openapi-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"parameters": signup(&email), "tags": [tag], "name": "openapi-check"});
    let key = format!("openapi-{}", uuid::Uuid::new_v4().simple());
    let post = |token: Option<&str>, body: &Value| {
        let mut r = app.client.post(&runs_url).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    let (status, first) = c
        .check(
            trigger_op,
            post(Some(BACKEND), &body)
                .header("idempotency-key", &key)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 202, "{first}");
    let run_id = match first["status"].as_str() {
        Some("created") => first["flow_run_id"].as_str().unwrap().to_owned(),
        _ => delivered_run(&app, first["delivery_id"].as_str().unwrap()).await,
    };
    wait_completed(api, &run_id).await;
    c.check(
        trigger_op,
        post(Some(BACKEND), &body)
            .header("idempotency-key", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    for (token, body, want) in [
        (None, json!({}), 401),
        (Some(CRM), json!({}), 403),
        (Some(BACKEND), json!({"parameters": [1]}), 422),
    ] {
        let (status, _) = c
            .check(trigger_op, post(token, &body).send().await.unwrap())
            .await;
        assert_eq!(status, want);
    }
    let (status, _) = c
        .check(
            trigger_op,
            app.client
                .post(&runs_url)
                .bearer_auth(BACKEND)
                .body("{\"parameters\":")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 400);

    // Reads: a run, a page of history, the deployment, and their refusals.
    let get = |p: String| app.client.get(url(&p)).bearer_auth(BACKEND).send();
    let (status, run) = c
        .check(run_op, get(format!("/api/v1/runs/{run_id}")).await.unwrap())
        .await;
    assert_eq!((status, run["state"].as_str()), (200, Some("COMPLETED")));
    for (p, want) in [
        (format!("/api/v1/runs/{}", uuid::Uuid::new_v4()), 404),
        ("/api/v1/runs/not-a-uuid".to_owned(), 400),
    ] {
        assert_eq!(c.check(run_op, get(p).await.unwrap()).await.0, want);
    }
    let (status, page) = c
        .check(
            history_op,
            get(format!("/api/v1/deployments/{DEPLOYMENT}/runs?limit=1"))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(page["next_cursor"].is_string(), "{page}");
    let (status, _) = c
        .check(
            history_op,
            get(format!("/api/v1/deployments/{DEPLOYMENT}/runs?state=done"))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 400);
    let (status, deployment) = c
        .check(
            deployment_op,
            get(format!("/api/v1/deployments/{DEPLOYMENT}"))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .check(
            deployment_op,
            get("/api/v1/deployments/no-such-flow/nowhere".to_owned())
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, 404);

    // Cancel: a finished run is refused, a scheduled one cancelled.
    let cancel = |id: &str| {
        app.client
            .post(url(&format!("/api/v1/runs/{id}/cancel")))
            .bearer_auth(BACKEND)
            .send()
    };
    assert_eq!(
        c.check(cancel_op, cancel(&run_id).await.unwrap()).await.0,
        409
    );
    let scheduled: Value = crate::e2e::prefect_write(
        reqwest::Method::POST,
        &format!(
            "{api}/deployments/{}/create_flow_run",
            deployment["id"].as_str().unwrap()
        ),
        Some(&json!({
            "parameters": signup(&email),
            "tags": [tag],
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T00:00:00Z"}},
        })),
    )
    .await
    .json()
        .await
        .unwrap();
    let (status, _) = c
        .check(
            cancel_op,
            cancel(scheduled["id"].as_str().unwrap()).await.unwrap(),
        )
        .await;
    assert_eq!(status, 200);

    // Deliveries: refusals here, a queued one from a Prefect that refuses every write.
    for (p, want) in [
        (format!("/api/v1/deliveries/{}", uuid::Uuid::new_v4()), 404),
        ("/api/v1/deliveries/42".to_owned(), 400),
    ] {
        assert_eq!(c.check(delivery_op, get(p).await.unwrap()).await.0, want);
    }
    let refusing = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment_body(
            "21e9741f-0000-4000-8000-000000000002",
            &SIGNUP_FIELDS,
        )))
        .mount(&refusing)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&refusing)
        .await;
    let queued_app = start_config(app_config(&format!("{}/api", refusing.uri()))).await;
    let answer: Value = queued_app
        .client
        .post(format!(
            "{}/api/v1/deployments/{DEPLOYMENT}/runs",
            queued_app.address
        ))
        .bearer_auth(BACKEND)
        .json(&json!({"parameters": signup("queued-openapi@example.com")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "queued", "{answer}");
    let (status, queued) = c
        .check(
            delivery_op,
            queued_app
                .client
                .get(format!(
                    "{}/api/v1/deliveries/{}",
                    queued_app.address,
                    answer["delivery_id"].as_str().unwrap()
                ))
                .bearer_auth(BACKEND)
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!((status, queued["status"].as_str()), (200, Some("queued")));

    // The lifecycle: a managed deployment set, shown, listed, paused, resumed and deleted.
    let managed = format!(
        "/api/v1/deployments/flowgate-managed/openapi-{}",
        uuid::Uuid::new_v4().simple()
    );
    let send = |m: reqwest::Method, p: &str, body: Option<Value>| {
        let mut r = app.client.request(m, url(p)).bearer_auth(BACKEND);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let desired = json!({"tags": ["openapi"], "schedules": [{"cron": "0 3 * * *", "timezone": "Europe/Berlin"}]});
    let (status, set) = c
        .check(
            ENDPOINTS[7],
            send(reqwest::Method::PUT, &managed, Some(desired))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(
        (status, set["sync"].as_str()),
        (200, Some("in_sync")),
        "{set}"
    );
    let (status, _) = c
        .check(
            ENDPOINTS[7],
            send(
                reqwest::Method::PUT,
                &managed,
                Some(json!({"schedules": [{"cron": "every day"}]})),
            )
            .await
            .unwrap(),
        )
        .await;
    assert_eq!(status, 422);
    let (status, shown) = c
        .check(
            deployment_op,
            send(reqwest::Method::GET, &managed, None).await.unwrap(),
        )
        .await;
    assert_eq!(
        (status, shown["managed"]["sync"].as_str()),
        (200, Some("in_sync"))
    );
    let (status, _) = c
        .check(
            ENDPOINTS[11],
            send(
                reqwest::Method::GET,
                "/api/v1/deployments?managed=true",
                None,
            )
            .await
            .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    for (op, action) in [(ENDPOINTS[9], "pause"), (ENDPOINTS[10], "resume")] {
        let (status, _) = c
            .check(
                op,
                send(reqwest::Method::POST, &format!("{managed}/{action}"), None)
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{action}");
    }
    let (status, gone) = c
        .check(
            ENDPOINTS[8],
            send(reqwest::Method::DELETE, &managed, None).await.unwrap(),
        )
        .await;
    assert_eq!((status, gone["sync"].as_str()), (200, Some("removed")));
    let (status, _) = c
        .check(
            ENDPOINTS[8],
            send(reqwest::Method::DELETE, &managed, None).await.unwrap(),
        )
        .await;
    assert_eq!(status, 404);

    // Every operation was seen answering success at least once.
    for (m, p) in ENDPOINTS.iter().skip(1) {
        assert!(
            c.seen
                .iter()
                .any(|(sm, sp, s)| sm == m && sp == p && (200..300).contains(s)),
            "{m} {p} never answered a success here"
        );
    }
}
