//! `flowgate sign` prints what a partner sends; the running app accepts exactly that.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

const ROUTE: &str = r#"
[routes.orders]
deployment = "christmas-signup-handler/website"
content_types = ["application/json"]
unknown_fields = "drop"
auth = { type = "hmac", scheme = "standard-webhooks", secrets = [{ env = "ORDERS_SECRET" }] }
[routes.orders.fields]
event = { type = "string" }
"#;
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[tokio::test]
async fn signed_output_is_accepted_by_the_gateway() {
    let prefect = partner_prefect(1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("orders.toml");
    std::fs::write(&config, ROUTE).unwrap();
    let body_file = dir.path().join("body.json");
    let body = br#"{"event":"order.created"}"#;
    std::fs::write(&body_file, body).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args([
            "sign",
            "--route",
            "orders",
            "--secret-env",
            "MY_SECRET",
            "--config",
        ])
        .arg(&config)
        .arg("--body")
        .arg(&body_file)
        .env("MY_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("curl -sS -X POST 'http://127.0.0.1:8080/hooks/orders'"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET), "the secret is never printed");
    let headers: Vec<(String, String)> = stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "webhook-signature" && v.starts_with("v1,")),
        "{headers:?}"
    );

    let app = spawn_app_with_env(
        settings_with(&format!("{}/api", prefect.uri()), ROUTE),
        &[("ORDERS_SECRET", SECRET)],
    )
    .await;
    let response = post_signed(&app, "orders", &headers, body).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "created");
}

#[test]
fn an_unknown_route_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["sign", "--route", "nope", "--config"])
        .arg(repo_path("config/default.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no route named \"nope\""));
}
