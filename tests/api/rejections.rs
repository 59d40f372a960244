//! Every rejection has its status and stable code, and none of them reaches Prefect.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn invalid_signups_list_every_bad_field_and_reach_nothing() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;

    let mut bad = signup("not-an-email");
    bad["assessment_score"] = json!(101);
    bad["gps_score"] = json!("fifty");
    bad.as_object_mut().unwrap().remove("first_name");
    bad["utm_source"] = json!("newsletter");
    let body = problem(app.post_json(ROUTE, &bad).await, 422, "validation_failed").await;
    assert_eq!(
        error_fields(&body),
        [
            "assessment_score",
            "email",
            "first_name",
            "gps_score",
            "utm_source"
        ]
    );
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"must be between 0 and 100"),
        "{messages:?}"
    );
    assert!(messages.contains(&"is required"), "{messages:?}");
    assert!(
        messages.contains(&"is not a field of this route"),
        "{messages:?}"
    );
    assert!(
        !body.to_string().contains("not-an-email"),
        "values are not echoed: {body}"
    );
}

#[tokio::test]
async fn form_values_are_validated_like_json() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let mut form = signup_form("jo@example.com");
    form.retain(|(k, _)| *k != "revenue_leak_total");
    form.iter_mut()
        .filter(|(k, _)| *k == "red_systems")
        .for_each(|(_, v)| *v = "1.5".into());
    let body = problem(app.post_form(ROUTE, &form).await, 422, "validation_failed").await;
    assert_eq!(error_fields(&body), ["red_systems", "revenue_leak_total"]);
}

#[tokio::test]
async fn wire_level_rejections_have_their_codes() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let url = |route: &str| format!("{}/hooks/{route}", app.address);
    let c = &app.client;

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "unknown route",
            c.post(url("nope")).json(&signup("a@b.co")),
            404,
            "unknown_route",
        ),
        (
            "unknown path",
            c.get(format!("{}/elsewhere", app.address)),
            404,
            "not_found",
        ),
        (
            "GET on a hook",
            c.get(url(ROUTE)),
            405,
            "method_not_allowed",
        ),
        (
            "a path below a hook",
            c.post(format!("{}/extra", url(ROUTE)))
                .json(&signup("a@b.co")),
            404,
            "not_found",
        ),
        (
            "no route named",
            c.post(url("")).json(&signup("a@b.co")),
            404,
            "not_found",
        ),
        (
            "body over the route's 16 KiB",
            c.post(url(ROUTE))
                .header("content-type", "application/json")
                .body(vec![b' '; 16 * 1024 + 1]),
            413,
            "payload_too_large",
        ),
        (
            "text/plain",
            c.post(url(ROUTE))
                .header("content-type", "text/plain")
                .body("hi"),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            c.post(url(ROUTE)).body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "latin-1 charset",
            c.post(url(ROUTE))
                .header("content-type", "application/json; charset=latin1")
                .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "broken JSON",
            c.post(url(ROUTE))
                .header("content-type", "application/json")
                .body("{\"email\": "),
            400,
            "malformed_body",
        ),
        (
            "JSON array",
            c.post(url(ROUTE))
                .header("content-type", "application/json")
                .body("[1,2]"),
            400,
            "malformed_body",
        ),
        (
            "repeated form field",
            c.post(url(ROUTE))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("email=a&email=b"),
            400,
            "malformed_body",
        ),
        (
            "idempotency key with spaces",
            c.post(url(ROUTE))
                .header("idempotency-key", "a b")
                .json(&signup("a@b.co")),
            400,
            "invalid_idempotency_key",
        ),
    ];
    for (name, request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        let body = problem(response, status, code).await;
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn malformed_json_names_the_position() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let response = app
        .client
        .post(format!("{}/hooks/{ROUTE}", app.address))
        .header("content-type", "application/json")
        .body("{\"email\": \"a@b.co\",\n \"first_name\": }")
        .send()
        .await
        .unwrap();
    let body = problem(response, 400, "malformed_body").await;
    assert_eq!(
        body["detail"],
        "invalid JSON at line 2 column 16: syntax error"
    );
}

#[tokio::test]
async fn a_well_formed_incoming_request_id_is_kept_and_a_bad_one_replaced() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let kept = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "edge-42.a_b")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "edge-42.a_b");
    let replaced = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "bad id <script>")
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "fresh UUID, got {id}");
}
