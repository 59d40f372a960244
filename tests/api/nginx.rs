//! The production edge as shipped: `nginx/flowgate.conf` and its includes, rendered only for
//! test ports, a temp prefix and a test certificate, run by Debian's nginx in front of flowgate
//! (configured as the README's *Deploying* section configures it) and the real Prefect of the
//! end-to-end tests. The client is curl: a sender over HTTPS that trusts the test CA.
//!
//! flowgate puts `X-Request-Id` on every answer and nginx's own answers carry none: that header
//! tells which of the two answered.

pub(crate) mod edge;
mod systemd;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flowgate::ratelimit::LimitSettings;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::e2e::{count_runs, prefect_api};
use crate::helpers::*;
use crate::nginx_support::{check_config, free_port, make_certs};
use edge::{
    largest_hook_cap, render_edge, render_edge_upstream, replica_servers, Edge, Ports, ADMIN_TOKEN,
    API_MAX_BODY, SERVER_NAME,
};

#[tokio::test]
async fn nginx_t_accepts_the_shipped_config_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    for api_public in [true, false] {
        let ports = Ports {
            http: free_port(),
            https: free_port(),
            flowgate: 8080,
        };
        let single = render_edge(dir.path(), &certs, &ports, api_public);
        // The upstream of several replicas, as the comment in flowgate.conf shows it.
        let servers = replica_servers(&[free_port(), free_port(), free_port()]);
        let replicated = render_edge_upstream(
            dir.path(),
            &certs,
            ports.http,
            ports.https,
            &servers,
            api_public,
        );
        for conf in [single, replicated] {
            let out = check_config(dir.path(), &conf);
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "nginx -t: {text}");
            assert!(text.contains("test is successful"), "{text}");
            assert!(!text.contains("[warn]"), "nginx -t warns: {text}");
        }
    }
}

/// A replica that takes a request and closes the connection without answering (one killed while
/// the request was in flight); answers how many requests it took.
async fn replica_dying_with_the_request() -> (u16, Arc<AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match connection.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                // Dropped: closed with no answer.
            });
        }
    });
    (port, taken)
}

#[tokio::test]
async fn a_replica_that_refuses_is_skipped_and_a_post_that_reached_one_is_never_sent_again() {
    let prefect = untouchable_prefect().await;
    // The upstream of flowgate.conf's replicated example: a replica that is down (nothing
    // listens on its port), one that dies with each request it takes, and flowgate.
    let down = refusing_port();
    let (dying, taken) = replica_dying_with_the_request().await;
    let edge = Edge::start_in_front_of(&format!("{}/api", prefect.uri()), |flowgate| {
        replica_servers(&[down.port, dying, flowgate])
    })
    .await;

    // A malformed signup: flowgate answers 400 itself, Prefect is never asked.
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(
            edge.post_json(&format!("/hooks/{ROUTE}"), b"{\"email\":")
                .await,
        );
    }
    let log = edge.error_log();
    let statuses: Vec<(u16, bool)> = answers
        .iter()
        .map(|a| (a.status, a.by_flowgate()))
        .collect();
    assert_eq!(
        taken.load(Ordering::SeqCst),
        1,
        "the dying replica got one POST, then none for fail_timeout: {statuses:?}\n{log}"
    );
    assert_eq!(
        statuses.iter().filter(|a| **a == (502, false)).count(),
        1,
        "its POST was answered 502 by nginx, not sent to flowgate: {statuses:?}\n{log}"
    );
    assert_eq!(
        statuses.iter().filter(|a| **a == (400, true)).count(),
        5,
        "every other POST reached flowgate, none the replica that is down: {statuses:?}\n{log}"
    );
    assert!(
        log.contains("Connection refused) while connecting to upstream"),
        "the replica that is down was tried: {log}"
    );
    assert!(
        log.contains("upstream prematurely closed connection"),
        "{log}"
    );
}

#[tokio::test]
async fn a_signup_over_https_creates_its_flow_run_in_prefect() {
    let api = prefect_api().await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let edge = Edge::start(|s| s.routes.get_mut(ROUTE).unwrap().tags.push(tag.clone())).await;
    let email = format!("edge-{}@example.com", uuid::Uuid::new_v4().simple());

    let answer = edge
        .post_json(
            &format!("/hooks/{ROUTE}"),
            signup(&email).to_string().as_bytes(),
        )
        .await;

    assert_eq!(answer.status, 202, "{}", answer.body);
    assert!(answer.by_flowgate());
    assert_eq!(
        answer.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(answer.header("server"), Some("nginx"), "no version shown");
    let body = answer.json();
    let run_id = match body["status"].as_str() {
        Some("created") => body["flow_run_id"].as_str().unwrap().to_owned(),
        Some("queued") => run_of(api, &tag, &email).await,
        _ => panic!("neither created nor queued: {body}"),
    };
    let run: Value = reqwest::get(format!("{api}/flow_runs/{run_id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["parameters"], signup(&email), "{run}");
    assert!(
        run["tags"].as_array().unwrap().contains(&json!(tag)),
        "{run}"
    );
    assert_eq!(count_runs(api, &tag).await, 1);
}

/// The id of the run the deliverer made for a queued signup.
async fn run_of(api: &str, tag: &str, email: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = crate::real_prefect::runs_with_tag(api, tag).await;
        if let Some(run) = runs.iter().find(|r| r["parameters"]["email"] == email) {
            return run["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no run for the queued {email}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn plain_http_redirects_to_https_and_proxies_nothing() {
    let edge = Edge::start(|_| {}).await;
    let path = format!("/hooks/{ROUTE}?source=ad");

    let get = edge.curl(&[&edge.http(&path)], None).await;
    assert_eq!(get.status, 301, "{}", get.body);
    assert_eq!(
        get.header("location"),
        Some(format!("https://{SERVER_NAME}{path}").as_str())
    );
    assert!(!get.by_flowgate());

    let post = edge
        .curl(
            &["-H", "content-type: application/json", &edge.http(&path)],
            Some(signup("plain@example.com").to_string().as_bytes()),
        )
        .await;
    assert_eq!(post.status, 301, "{}", post.body);
    assert!(
        !post.by_flowgate(),
        "a plain-HTTP body never reaches flowgate"
    );

    let health = edge.get("/healthz").await;
    assert_eq!(health.status, 200, "the same path over HTTPS is proxied");
    assert!(health.by_flowgate());
}

#[tokio::test]
async fn the_admin_listener_and_metrics_are_not_reachable_through_nginx() {
    let edge = Edge::start(|_| {}).await;
    let auth = format!("authorization: Bearer {ADMIN_TOKEN}");
    // They exist, on the admin listener.
    let direct = edge
        .app
        .client
        .get(format!("{}/metrics", edge.app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status().as_u16(), 200);
    // The public paths are proxied.
    for path in ["/healthz", "/readyz"] {
        let answer = edge.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(answer.by_flowgate(), "{path}");
    }
    let unknown = edge.post_json("/hooks/no-such-route", b"{}").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.by_flowgate());
    assert_eq!(unknown.json()["code"], "unknown_route");

    for path in [
        "/admin/",
        "/admin",
        "/admin/rejections",
        "/admin/outbox?state=dead",
        "/metrics",
        "//metrics",
        "/hooks/../metrics",
        "/hooks/%2e%2e/admin/",
        "/healthz/../admin/rejections",
        "/api/v1/../../metrics",
    ] {
        let answer = edge.curl(&["-H", &auth, &edge.https(path)], None).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(!answer.by_flowgate(), "{path} reached flowgate");
    }
}

#[tokio::test]
async fn a_client_sent_forwarded_address_does_not_change_the_address_flowgate_sees() {
    // Three requests per address before flowgate's per-address limit answers 429.
    let edge = Edge::start(|s| {
        s.limits.per_ip = Some(LimitSettings {
            per_minute: 1,
            burst: 3,
        })
    })
    .await;
    let url = edge.https(&format!("/hooks/{ROUTE}"));
    // A malformed body passes the per-address limit, then fails to parse: Prefect is never asked.
    let post = |from: &'static str, forged: String| {
        let url = url.clone();
        let edge = &edge;
        async move {
            let headers = [
                format!("x-forwarded-for: {forged}"),
                format!("x-real-ip: {forged}"),
                format!("forwarded: for={forged}"),
            ];
            edge.curl_from(
                from,
                &[
                    "-H",
                    "content-type: application/json",
                    "-H",
                    &headers[0],
                    "-H",
                    &headers[1],
                    "-H",
                    &headers[2],
                    &url,
                ],
                Some(b"{\"email\":"),
            )
            .await
        }
    };

    for i in 1..=3 {
        let answer = post("127.0.0.21", format!("198.51.100.{i}")).await;
        assert_eq!(answer.status, 400, "request {i}: {}", answer.body);
        assert!(answer.by_flowgate());
    }
    let limited = post("127.0.0.21", "198.51.100.4".into()).await;
    assert_eq!(limited.status, 429, "a new forged address is no new bucket");
    assert!(limited.by_flowgate(), "flowgate's limit, not nginx's");
    assert_eq!(limited.json()["code"], "rate_limited");
    // Another client is its own bucket: flowgate believes nginx's header.
    let other = post("127.0.0.22", "198.51.100.1".into()).await;
    assert_eq!(other.status, 400, "{}", other.body);

    let page = admin_get(&edge, "/admin/rejections?limit=100").await;
    let items = page["items"].as_array().unwrap();
    let mut clients: Vec<&str> = items
        .iter()
        .map(|item| item["client"].as_str().unwrap())
        .collect();
    clients.sort_unstable();
    clients.dedup();
    assert_eq!(clients, ["127.0.0.21", "127.0.0.22"], "{page}");

    // What flowgate received: nginx's headers, set rather than appended to; no Forwarded.
    let record = items
        .iter()
        .find(|item| item["client"] == "127.0.0.22")
        .unwrap();
    let detail = admin_get(
        &edge,
        &format!("/admin/rejections/{}", record["id"].as_str().unwrap()),
    )
    .await;
    let headers: Vec<(&str, &str)> = detail["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap(), h[1].as_str().unwrap()))
        .collect();
    let received = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(received("x-forwarded-for"), ["127.0.0.22"], "{detail}");
    assert_eq!(received("x-real-ip"), ["127.0.0.22"], "{detail}");
    assert!(received("forwarded").is_empty(), "{detail}");
}

async fn admin_get(edge: &Edge, path: &str) -> Value {
    let response = edge
        .app
        .client
        .get(format!("{}{path}", edge.app.admin_address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn bodies_over_flowgates_largest_cap_get_413_from_nginx() {
    let edge = Edge::start(|_| {}).await;
    let cap = largest_hook_cap();
    let hooks = format!("/hooks/{ROUTE}");
    let api = "/api/v1/deployments/christmas-signup-handler/website/runs";

    for (path, cap) in [(hooks.as_str(), cap), (api, API_MAX_BODY)] {
        let at_cap = edge.post_json(path, &vec![b' '; cap]).await;
        assert!(
            at_cap.by_flowgate(),
            "{cap} bytes to {path} reach flowgate: {} {}",
            at_cap.status,
            at_cap.body
        );
        let over = edge.post_json(path, &vec![b' '; cap + 1]).await;
        assert_eq!(over.status, 413, "{path}: {}", over.body);
        assert!(
            !over.by_flowgate(),
            "{} bytes to {path} stop at nginx",
            cap + 1
        );
    }
}

#[tokio::test]
async fn without_its_include_line_api_v1_is_not_served_publicly() {
    let path = format!("/api/v1/deliveries/{}", uuid::Uuid::new_v4());
    let public = Edge::start(|_| {}).await;
    assert!(public.get(&path).await.by_flowgate(), "served as shipped");

    let private = Edge::start_with(false, |_| {}).await;
    let answer = private.get(&path).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(!answer.by_flowgate());
    let hooks = private.post_json("/hooks/no-such-route", b"{}").await;
    assert!(hooks.by_flowgate(), "/hooks/ is still proxied");
}

#[tokio::test]
async fn the_access_log_has_path_status_and_request_id_but_no_query_string_or_body() {
    let edge = Edge::start(|_| {}).await;
    let redirect = edge
        .curl(&[&edge.http("/healthz?plain=query-marker")], None)
        .await;
    assert_eq!(redirect.status, 301);
    let mut bad = signup("body-marker@example.com");
    bad["assessment_score"] = json!(500);
    let answer = edge
        .post_json(
            &format!("/hooks/{ROUTE}?utm_source=query-marker"),
            bad.to_string().as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    let id = answer.header("x-request-id").unwrap().to_owned();

    let line = edge.access_log_line(&id).await;
    assert!(line.starts_with("127.0.0.1 "), "{line}");
    assert!(
        line.contains(&format!("\"POST /hooks/{ROUTE} HTTP/1.1\" 422 ")),
        "{line}"
    );
    let log = edge.access_log();
    assert!(log.contains("\"GET /healthz HTTP/1.1\" 301 "), "{log}");
    for secret in ["query-marker", "body-marker", "utm_source"] {
        assert!(!log.contains(secret), "{secret} logged: {log}");
    }
    let fallthrough = std::fs::read_to_string(edge.dir.path().join("debian-access.log")).unwrap();
    assert_eq!(fallthrough, "", "nothing reaches Debian's own access log");
}

#[tokio::test]
async fn a_flood_from_one_address_is_cut_by_nginx_and_kept_out_of_the_log() {
    const REQUESTS: usize = 150;
    // flowgate.conf: `limit_req ... burst=50 nodelay`.
    const BURST: usize = 50;
    let edge = Edge::start(|_| {}).await;
    let url = edge.https("/healthz");
    let mut args = vec![
        "-sS".to_owned(),
        "--interface".into(),
        "127.0.0.31".into(),
        "--cacert".into(),
        edge.ca.display().to_string(),
        "-w".into(),
        "%{http_code} %header{x-request-id}\\n".into(),
    ];
    for _ in 0..REQUESTS {
        args.extend(["-o".into(), "/dev/null".into(), url.clone()]);
    }
    let out = tokio::process::Command::new("curl")
        .args(&args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<(u16, bool)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (status, id) = l.split_once(' ').unwrap_or((l, ""));
            (status.parse().unwrap(), !id.trim().is_empty())
        })
        .collect();
    assert_eq!(answers.len(), REQUESTS);
    assert!(
        answers[..BURST].iter().all(|&a| a == (200, true)),
        "the burst passes: {answers:?}"
    );
    let refused: Vec<&(u16, bool)> = answers.iter().filter(|a| a.0 == 429).collect();
    assert!(!refused.is_empty(), "{answers:?}");
    assert!(
        refused.iter().all(|a| !a.1),
        "nginx refused them, not flowgate"
    );
    assert!(
        answers.iter().all(|a| a.0 == 200 || a.0 == 429),
        "{answers:?}"
    );

    let other = edge.curl_from("127.0.0.32", &[&url], None).await;
    assert_eq!(other.status, 200, "another address is not limited");
    // One worker logs in order: once this line is there, every earlier one is.
    edge.access_log_line(other.header("x-request-id").unwrap())
        .await;
    let log = edge.access_log();
    assert!(log.contains("127.0.0.31 "), "{log}");
    assert!(!log.contains("\" 429 "), "refusals are not logged: {log}");
}
