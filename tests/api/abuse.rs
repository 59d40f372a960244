//! Abuse protection through the running app: per-address limits that hold (and cannot be
//! spoofed), wire limits that stop bad bodies before Prefect, CORS, honeypot.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;
use flowgate::ratelimit::LimitSettings;

/// A client whose connections come from `local` (any 127.0.0.0/8 address works on Linux).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn post_from(
    client: &reqwest::Client,
    app: &TestApp,
    headers: &[(&str, &str)],
    email: &str,
) -> reqwest::Response {
    let mut r = client
        .post(format!("{}/hooks/{ROUTE}", app.address))
        .json(&signup(email));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn a_burst_from_one_address_gets_exactly_burst_then_429_and_others_are_unaffected() {
    const PER_MINUTE: u32 = 6;
    let prefect = happy_prefect(1).await;
    let mut settings = default_settings(&format!("{}/api", prefect.uri()));
    settings.limits.per_ip = Some(LimitSettings {
        per_minute: PER_MINUTE,
        burst: 5,
    });
    let app = spawn_app(settings).await;
    let first = client_from("127.0.0.2");

    for i in 0..5 {
        assert_eq!(
            post_from(&first, &app, &[], &format!("a{i}@example.com"))
                .await
                .status()
                .as_u16(),
            202,
            "request {i}"
        );
    }
    let limited = post_from(&first, &app, &[], "a9@example.com").await;
    // 6/min is one token every 10 s: the wait, rounded up to whole seconds, is 1..=10 (less than
    // 10 when the burst took a while to send).
    let retry_after = limited
        .headers()
        .get("retry-after")
        .expect("Retry-After on a 429")
        .to_str()
        .unwrap();
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After {retry_after:?} is not whole seconds: {e}"));
    assert!(
        (1..=60 / u64::from(PER_MINUTE)).contains(&seconds),
        "Retry-After {seconds} s for {PER_MINUTE}/min"
    );
    problem(limited, 429, "rate_limited").await;

    // A spoofed X-Forwarded-For from an untrusted peer is ignored: still the same bucket.
    let spoofed = post_from(
        &first,
        &app,
        &[("x-forwarded-for", "203.0.113.77")],
        "a10@example.com",
    )
    .await;
    problem(spoofed, 429, "rate_limited").await;

    let other = client_from("127.0.0.3");
    assert_eq!(
        post_from(&other, &app, &[], "b@example.com")
            .await
            .status()
            .as_u16(),
        202
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_key() {
    let prefect = happy_prefect(1).await;
    let mut settings = default_settings(&format!("{}/api", prefect.uri()));
    settings.limits.per_ip = Some(LimitSettings {
        per_minute: 6,
        burst: 2,
    });
    settings.server.trusted_proxies = vec!["127.0.0.4".into()];
    let app = spawn_app(settings).await;
    let proxy = client_from("127.0.0.4");

    let one = [("x-forwarded-for", "198.51.100.1")];
    assert_eq!(
        post_from(&proxy, &app, &one, "p1@example.com")
            .await
            .status()
            .as_u16(),
        202
    );
    assert_eq!(
        post_from(&proxy, &app, &one, "p2@example.com")
            .await
            .status()
            .as_u16(),
        202
    );
    problem(
        post_from(&proxy, &app, &one, "p3@example.com").await,
        429,
        "rate_limited",
    )
    .await;
    let two = [("x-forwarded-for", "198.51.100.2")];
    assert_eq!(
        post_from(&proxy, &app, &two, "p4@example.com")
            .await
            .status()
            .as_u16(),
        202
    );
}

#[tokio::test]
async fn deep_wide_slow_and_malformed_bodies_get_their_codes_and_never_reach_prefect() {
    let prefect = untouchable_prefect().await;
    let mut settings = default_settings(&format!("{}/api", prefect.uri()));
    settings.server.body_timeout_ms = 300;
    let app = spawn_app(settings).await;
    let post = |body: String| {
        app.client
            .post(format!("{}/hooks/{ROUTE}", app.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let deep = format!("{{\"email\":{}1{}}}", "[".repeat(40), "]".repeat(40));
    let body = problem(post(deep).await.unwrap(), 400, "body_too_complex").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("nesting deeper than 16"));
    let wide: serde_json::Map<String, Value> =
        (0..201).map(|i| (format!("f{i}"), json!(1))).collect();
    problem(
        post(Value::Object(wide).to_string()).await.unwrap(),
        400,
        "body_too_complex",
    )
    .await;
    problem(
        post("{\"email\": nope}".into()).await.unwrap(),
        400,
        "malformed_body",
    )
    .await;
    problem(
        post(" ".repeat(20_000)).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;

    // A sender that announces 100 bytes and sends one: 408 once the body timeout passes.
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(format!("POST /hooks/{ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // The same stall behind a pipelined request: its handler starts only once the first is
    // answered, after all its bytes were handed over, and must still time out.
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let first = "{\"email\": nope}";
    stream
        .write_all(format!("POST /hooks/{ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}POST /hooks/{ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{", first.len()).as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    // A hang guard only: the answer comes after the body timeout and one watchdog sweep.
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
        .await
        .expect("the stalled pipelined body is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let second = answer
        .find("HTTP/1.1 408")
        .expect("the second request times out");
    assert!(
        answer[second..].contains("\"code\":\"request_timeout\""),
        "{answer}"
    );
}

#[tokio::test]
async fn cors_preflight_and_responses_follow_the_routes_origins() {
    let prefect = happy_prefect(1).await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let url = format!("{}/hooks/{ROUTE}", app.address);
    let preflight = |origin: &'static str, headers: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", headers)
            .send()
    };
    let ok = preflight("https://www.example.com", "content-type")
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://www.example.com"
    );
    assert_eq!(ok.headers()["access-control-allow-methods"], "POST");
    assert!(ok
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    problem(
        preflight("https://evil.example", "content-type")
            .await
            .unwrap(),
        403,
        "origin_not_allowed",
    )
    .await;
    problem(
        preflight("https://www.example.com", "x-secret-header")
            .await
            .unwrap(),
        403,
        "origin_not_allowed",
    )
    .await;

    let posted = app
        .client
        .post(&url)
        .header("origin", "https://www.example.com")
        .json(&signup("c@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 202);
    assert_eq!(
        posted.headers()["access-control-allow-origin"],
        "https://www.example.com"
    );
    let invalid = app
        .client
        .post(&url)
        .header("origin", "https://www.example.com")
        .json(&json!({"email": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        invalid.headers()["access-control-allow-origin"],
        "https://www.example.com",
        "errors are readable too"
    );
    let foreign = app
        .client
        .post(&url)
        .header("origin", "https://evil.example")
        .json(&signup("d@example.com"))
        .send()
        .await
        .unwrap();
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn a_filled_honeypot_gets_the_usual_202_and_starts_nothing() {
    let prefect = untouchable_prefect().await;
    let app = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let mut bot = signup("bot@example.com");
    bot["website"] = json!("http://spam.example");
    let response = app.post_json(ROUTE, &bot).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "created");
    assert!(uuid::Uuid::parse_str(body["flow_run_id"].as_str().unwrap()).is_ok());
}

/// Writes `request` on `stream` and reads one answer's head: its status line and headers,
/// lowercased. Empty when the server has closed the connection.
async fn exchange(stream: &mut tokio::net::TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    // The body: its declared length, read whole so the next answer starts clean.
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.unwrap();
    }
    head
}

#[tokio::test]
async fn a_request_refused_before_its_body_is_read_keeps_the_connection() {
    let prefect = happy_prefect(0).await;
    let mut settings = default_settings(&format!("{}/api", prefect.uri()));
    settings.limits.per_ip = Some(LimitSettings {
        per_minute: 1,
        burst: 1,
    });
    let app = spawn_app(settings).await;
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let post = |route: &str, body: &str| {
        format!(
            "POST /hooks/{route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // The one token goes to a request that fails its field rules (422, body read).
    let first = exchange(&mut stream, &post(ROUTE, "{}")).await;
    assert!(first.starts_with("http/1.1 422"), "{first}");
    // Refused by the address's limit, before the body was needed: each answered on the same
    // connection, left open (the limit comes first, whatever the route).
    for request in [
        post(ROUTE, r#"{"email":"a@example.com"}"#),
        post("no-such-route", r#"{"a":1}"#),
        post(ROUTE, "{}"),
    ] {
        let head = exchange(&mut stream, &request).await;
        assert!(
            head.starts_with("http/1.1 429"),
            "expected 429 on the open connection, got {head:?}"
        );
        assert!(!head.contains("connection: close"), "{head}");
    }
    // A body too large to drain is left unread: that answer closes the connection.
    let huge = "x".repeat(flowgate::pipeline::body::DISCARDED_BODY_BYTES + 1);
    let head = exchange(&mut stream, &post(ROUTE, &huge)).await;
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(exchange(&mut stream, &post(ROUTE, "{}")).await, "");
}
