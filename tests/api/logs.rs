//! The real binary's log: with debug-level JSON logs, signed and bearer requests leave request
//! ids and reason codes, never a secret, a token or a body; at the default level, one bounded
//! line per request, rejections sampled, the rest counted.

use hmac::KeyInit;

use crate::gateway::Gateway;
use crate::helpers::*;

const SECRET: &str = "gh-secret-5d1c9e";
const OLD_SECRET: &str = "gh-old-secret-77aa01";
const TOKEN: &str = "tok-91ab77f0";
const BODY_MARKER: &str = "body-marker-3f9a";

#[tokio::test]
async fn logs_of_signed_traffic_hold_no_secret_and_no_body() {
    let prefect = partner_prefect(2).await;
    let gateway = Gateway::start(
        |port, store| {
            format!(
                r#"
[server]
port = {port}
[admin]
port = 0
[store]
path = "{store}"
[prefect]
api_url = "{prefect}/api"
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
                prefect = prefect.uri()
            )
        },
        &[
            ("GH_SECRET", SECRET),
            ("GH_SECRET_OLD", OLD_SECRET),
            ("TRIGGER_TOKEN", TOKEN),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let base = gateway.base.clone();
    let client = crate::helpers::client();

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
    let mut request_ids = Vec::new();
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
    request_ids.push(request_id(&ok));
    let bad = send(
        "gh",
        vec![("x-hub-signature-256", signature)],
        body.replace("marker", "markes"),
    )
    .await
    .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    request_ids.push(request_id(&bad));
    let bearer = send(
        "trigger",
        vec![("authorization", format!("Bearer {TOKEN}"))],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(bearer.status().as_u16(), 202);
    request_ids.push(request_id(&bearer));
    let wrong = send(
        "trigger",
        vec![("authorization", format!("Bearer {TOKEN}x"))],
        body,
    )
    .await
    .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    request_ids.push(request_id(&wrong));

    let logs = gateway.stop_and_read_log();

    let lines = request_lines(&logs);
    let codes: Vec<(String, String)> = request_ids
        .iter()
        .map(|id| {
            let line = lines
                .iter()
                .find(|l| l["request_id"] == id.as_str())
                .unwrap_or_else(|| panic!("no line carries request id {id}:\n{logs}"));
            (
                line["route"].as_str().unwrap().to_owned(),
                line["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("gh", "created"),
            ("gh", "invalid_signature"),
            ("trigger", "created"),
            ("trigger", "invalid_token")
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
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

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The request lines of a JSON log.
fn request_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect()
}

#[tokio::test]
async fn at_info_each_request_writes_one_short_line_and_a_flood_is_sampled() {
    let prefect = partner_prefect(1).await;
    let gateway = Gateway::start(
        |port, store| {
            format!(
                r#"
[server]
port = {port}
trusted_proxies = ["127.0.0.1"]
[admin]
port = 0
[store]
path = "{store}"
[prefect]
api_url = "{prefect}/api"
[telemetry]
format = "json"
level = "info"
rejection_lines_per_minute = 3
[limits]
per_ip = {{ per_minute = 100000, burst = 1000 }}
[routes.site]
deployment = "christmas-signup-handler/website"
content_types = ["application/json"]
auth = "none"
[routes.site.fields]
event = {{ type = "string", max_length = 20 }}
"#,
                prefect = prefect.uri()
            )
        },
        &[],
    )
    .await;
    let base = gateway.base.clone();
    let client = crate::helpers::client();
    let post = |from: &str, body: String| {
        client
            .post(format!("{base}/hooks/site"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", from)
            .body(body)
            .send()
    };
    let accepted = post("203.0.113.1", r#"{"event":"jo@example.com"}"#.into())
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 202);
    let accepted_id = request_id(&accepted);
    // 50 rejections from one client, each naming 150 long unknown fields.
    let noisy: serde_json::Map<String, serde_json::Value> = (0..150)
        .map(|i| {
            (
                format!("unknown-field-{i}-{}", "x".repeat(100)),
                serde_json::json!(1),
            )
        })
        .collect();
    let noisy = serde_json::Value::Object(noisy).to_string();
    for _ in 0..50 {
        let r = post("203.0.113.9", noisy.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), 422);
    }
    // A path a sender chose is not echoed.
    let unknown = client
        .post(format!("{base}/hooks/{}", "p".repeat(200)))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    let logs = gateway.stop_and_read_log();
    let lines = request_lines(&logs);
    let raw: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(r#""message":"request""#))
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["request_id"] == accepted_id.as_str())
            .count(),
        1,
        "one line for the accepted request:\n{logs}"
    );
    let rejected = lines
        .iter()
        .filter(|l| l["code"] == "validation_failed")
        .count();
    assert_eq!(
        rejected, 3,
        "the flood is sampled per client, route and code"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["code"] == "unknown_route" && l["route"] == "-"),
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["method"] == "POST")
            .all(|l| l["path"] == "/hooks/{route}"),
        "webhook lines name the pattern, never the path sent:\n{logs}"
    );
    for line in &raw {
        assert!(line.len() <= 300, "{} bytes: {line}", line.len());
        assert!(
            !line.contains("unknown-field") && !line.contains("ppppp"),
            "{line}"
        );
    }
    assert!(
        !logs.contains("unknown-field") && !logs.contains("jo@example.com"),
        "no input is echoed anywhere:\n{logs}"
    );
}
