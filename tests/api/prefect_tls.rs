//! An `https://` Prefect: the real Prefect behind nginx terminating TLS with a certificate from
//! a CA made in the test. Trusted through `prefect.ca_file`, triggers reach it and the run
//! completes; without that CA the certificate is refused and requests wait in the outbox.

use std::path::Path;

use serde_json::{json, Value};

use crate::api_v1::{delivered_run, BACKEND, DEPLOYMENT};
use crate::e2e::{count_runs, prefect_api, wait_completed};
use crate::helpers::*;
use crate::nginx_support::{free_port, make_certs, write_main_config, Nginx};

fn config(
    api: &str,
    ca_file: Option<&Path>,
) -> Result<flowgate::configuration::Configuration, String> {
    let mut settings = settings_with(api, "");
    real_prefect_retries(&mut settings);
    settings.limits.per_ip = None;
    settings.prefect.ca_file = ca_file.map(Path::to_path_buf);
    flowgate::configuration::Configuration::from_settings_with_env(
        settings,
        flowgate::configuration::PrefectAuth::None,
        &|name: &str| (name == "FLOWGATE_API_TOKEN").then(|| BACKEND.to_owned()),
    )
    .map_err(|e| e.to_string())
}

async fn trigger(app: &TestApp, tag: &str) -> Value {
    let email = format!("tls-{}@example.com", uuid::Uuid::new_v4().simple());
    let r = app
        .client
        .post(format!(
            "{}/api/v1/deployments/{DEPLOYMENT}/runs",
            app.address
        ))
        .bearer_auth(BACKEND)
        .json(&json!({"parameters": signup(&email), "tags": [tag]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    r.json().await.unwrap()
}

#[tokio::test]
async fn an_https_prefect_with_a_private_ca_gets_runs_and_an_untrusted_one_does_not() {
    let api = prefect_api().await;
    let upstream = api.trim_end_matches("/api").trim_start_matches("http://");
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let port = free_port();
    let site = dir.path().join("prefect-tls.conf");
    std::fs::write(
        &site,
        format!(
            "server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {};\n  ssl_certificate_key {};\n  ssl_protocols TLSv1.2 TLSv1.3;\n  location / {{ proxy_pass http://{upstream}; }}\n}}\n",
            certs.cert.display(),
            certs.key.display()
        ),
    )
    .unwrap();
    let conf = write_main_config(dir.path(), &site);
    let _nginx = Nginx::start(dir.path(), &conf).await;
    let https_api = format!("https://127.0.0.1:{port}/api");

    // Trusted through ca_file: the run is made through TLS and completes.
    let app = start_config(config(&https_api, Some(&certs.ca)).unwrap()).await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let answer = trigger(&app, &tag).await;
    let run_id = match answer["status"].as_str() {
        Some("created") => answer["flow_run_id"].as_str().unwrap().to_owned(),
        Some("queued") => delivered_run(&app, answer["delivery_id"].as_str().unwrap()).await,
        _ => panic!("{answer}"),
    };
    wait_completed(api, &run_id).await;
    let (status, run) = {
        let r = app
            .client
            .get(format!("{}/api/v1/runs/{run_id}", app.address))
            .bearer_auth(BACKEND)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (status, run["state"].as_str()),
        (200, Some("COMPLETED")),
        "{run}"
    );

    // The system's roots alone do not know the test CA: nothing reaches Prefect, the request
    // is kept, and the delivery says why.
    let untrusting = start_config(config(&https_api, None).unwrap()).await;
    let refused_tag = format!("test:{}", uuid::Uuid::new_v4());
    let answer = trigger(&untrusting, &refused_tag).await;
    assert_eq!(answer["status"], "queued", "{answer}");
    let delivery: Value = untrusting
        .client
        .get(format!(
            "{}/api/v1/deliveries/{}",
            untrusting.address,
            answer["delivery_id"].as_str().unwrap()
        ))
        .bearer_auth(BACKEND)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(delivery["status"], "queued", "{delivery}");
    let why = delivery["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("certificate"), "{delivery}");
    assert_eq!(count_runs(api, &refused_tag).await, 0);
}

#[test]
fn a_ca_file_that_cannot_be_read_or_holds_no_certificate_is_named_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let error = config("https://prefect.example/api", Some(&missing)).unwrap_err();
    assert!(
        error.contains("prefect.ca_file") && error.contains("cannot read"),
        "{error}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let error = config("https://prefect.example/api", Some(&empty)).unwrap_err();
    assert!(error.contains("prefect.ca_file"), "{error}");
    assert!(config("https://prefect.example/api", None).is_ok());
    assert!(config("ftp://prefect.example/api", None).is_err());
}
