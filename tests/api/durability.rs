//! Durable delivery with a real Prefect: an outage absorbed without loss, and a gateway killed
//! with SIGKILL three times under load, with every acknowledged signup run exactly once.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use crate::helpers::*;
use crate::real_prefect::{self, assert_one_run_per_signup, wait_for_runs};

#[tokio::test]
async fn five_hundred_signups_during_an_outage_all_reach_prefect_exactly_once() {
    const PORT: u16 = 4320;
    let api = real_prefect::start(PORT).await;
    real_prefect::stop(PORT).await;

    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let mut settings = shipped_settings(&api);
    settings
        .routes
        .get_mut(ROUTE)
        .unwrap()
        .tags
        .push(tag.clone());
    settings.routes.get_mut(ROUTE).unwrap().limit = None;
    settings.limits.per_ip = None;
    settings.delivery.retry_base_delay_ms = 200;
    settings.delivery.retry_max_delay_ms = 2_000;
    settings.delivery.probe_every_secs = 1;
    let app = spawn_app_with_env(settings, &[("FLOWGATE_API_TOKEN", API_TOKEN)]).await;

    // A backend's trigger through the internal API during the outage: queued, then followed
    // to its run once Prefect is back.
    let api_tag = format!("test:{}", uuid::Uuid::new_v4());
    let trigger = app
        .client
        .post(format!(
            "{}/api/v1/deployments/christmas-signup-handler/website/runs",
            app.address
        ))
        .bearer_auth(API_TOKEN)
        .json(
            &serde_json::json!({"parameters": signup("api-outage@example.com"), "tags": [api_tag]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(trigger.status().as_u16(), 202);
    let trigger: Value = trigger.json().await.unwrap();
    assert_eq!(trigger["status"], "queued", "{trigger}");
    let delivery_id = trigger["delivery_id"].as_str().unwrap().to_owned();
    assert_eq!(api_delivery(&app, &delivery_id).await["status"], "queued");

    let run = uuid::Uuid::new_v4().simple().to_string();
    let emails: Vec<String> = (0..500)
        .map(|i| format!("outage-{i}-{run}@example.com"))
        .collect();
    let answers: Vec<Value> = futures_util::stream::iter(emails.iter())
        .map(|email| {
            let app = &app;
            async move {
                let response = app.post_json(ROUTE, &signup(email)).await;
                assert_eq!(response.status().as_u16(), 202);
                response.json::<Value>().await.unwrap()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        answers.iter().all(|a| a["status"] == "queued"),
        "Prefect is down: every signup is queued"
    );

    real_prefect::start(PORT).await;
    wait_for_runs(&api, &tag, 500, Duration::from_secs(180)).await;
    assert_one_run_per_signup(&api, &tag, &emails).await;
    wait_for_runs(&api, &api_tag, 1, Duration::from_secs(60)).await;
    let runs = real_prefect::runs_with_tag(&api, &api_tag).await;
    assert_eq!(runs.len(), 1, "the API's request made one run");
    let delivered = api_delivery(&app, &delivery_id).await;
    assert_eq!(delivered["status"], "delivered", "{delivered}");
    assert_eq!(delivered["flow_run_id"], runs[0]["id"], "{delivered}");
    real_prefect::stop(PORT).await;
}

const API_TOKEN: &str = "durability-api-token-0123";

async fn api_delivery(app: &TestApp, id: &str) -> Value {
    let r = app
        .client
        .get(format!("{}/api/v1/deliveries/{id}", app.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// The gateway binary with its own config and store, on a fixed port so a restart keeps it.
struct Gateway {
    config: std::path::PathBuf,
    api: String,
    port: u16,
    child: Option<Child>,
}

impl Gateway {
    fn new(dir: &std::path::Path, api: &str, tag: &str) -> Self {
        let port = crate::nginx_support::free_port();
        let text = std::fs::read_to_string(repo_path("config/default.toml"))
            .unwrap()
            .replace("port = 8080", &format!("port = {port}"))
            .replace("port = 9090", "port = 0")
            .replace("per_ip = { per_minute = 120, burst = 30 }", "")
            .replace("limit = { per_minute = 3000, burst = 500 }", "")
            .replace(
                r#"tags = ["webhook", "source:website", "campaign:christmas"]"#,
                &format!(r#"tags = ["webhook", "source:website", "{tag}"]"#),
            )
            .replace(
                r#"path = "data/flowgate.db""#,
                &format!("path = \"{}\"", dir.join("flowgate.db").display()),
            )
            .replace("retry_base_delay_ms = 1000", "retry_base_delay_ms = 200")
            .replace("retry_max_delay_ms = 300000", "retry_max_delay_ms = 2000")
            .replace("probe_every_secs = 2", "probe_every_secs = 1");
        assert!(
            text.contains("flowgate.db\"") && text.contains("probe_every_secs = 1"),
            "config rewritten"
        );
        let config = dir.join("flowgate.toml");
        std::fs::write(&config, text).unwrap();
        Self {
            config,
            api: api.to_owned(),
            port,
            child: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/{ROUTE}", self.port)
    }

    async fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("FLOWGATE__PREFECT__API_URL", &self.api)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = format!("http://127.0.0.1:{}/healthz", self.port);
        while reqwest::get(&health).await.is_err() {
            assert!(Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test]
async fn signups_sent_through_three_sigkills_each_run_exactly_once() {
    const PORT: u16 = 4330;
    const N: usize = 300;
    let api = real_prefect::start(PORT).await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::new(dir.path(), &api, &tag);
    gateway.start().await;

    let run = uuid::Uuid::new_v4().simple().to_string();
    let emails: Arc<Vec<String>> = Arc::new(
        (0..N)
            .map(|i| format!("crash-{i}-{run}@example.com"))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let url = gateway.url();
    // Like a real partner: retry on any non-2xx or connection error until acknowledged.
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (emails, next, acked, url) =
                (emails.clone(), next.clone(), acked.clone(), url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= emails.len() {
                        return;
                    }
                    loop {
                        match client.post(&url).json(&signup(&emails[i])).send().await {
                            Ok(r) if r.status().is_success() => break,
                            _ => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    for k in 1..=3 {
        while acked.load(Ordering::SeqCst) < k * N / 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gateway.kill9();
        gateway.start().await;
    }
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(acked.load(Ordering::SeqCst), N);

    wait_for_runs(&api, &tag, N as u64, Duration::from_secs(180)).await;
    assert_one_run_per_signup(&api, &tag, &emails).await;
    real_prefect::stop(PORT).await;
}

/// A TCP proxy to Prefect that swallows the first `201 Created` answer and closes the
/// connection: Prefect has created the run, but the gateway never hears of it.
async fn proxy_losing_first_created(upstream: u16) -> u16 {
    use std::sync::atomic::AtomicBool;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let armed = Arc::new(AtomicBool::new(true));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let armed = armed.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let forward = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if buf[..n].starts_with(b"HTTP/1.1 201") && armed.swap(false, Ordering::SeqCst)
                    {
                        break; // the run exists; its answer is lost
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                forward.abort();
            });
        }
    });
    port
}

#[tokio::test]
async fn an_answer_lost_after_prefect_created_the_run_does_not_make_a_second_run() {
    const PORT: u16 = 4340;
    let api = real_prefect::start(PORT).await;
    let proxy = proxy_losing_first_created(PORT).await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let mut settings = shipped_settings(&format!("http://127.0.0.1:{proxy}/api"));
    settings
        .routes
        .get_mut(ROUTE)
        .unwrap()
        .tags
        .push(tag.clone());
    // No synchronous retry: the lost answer sends the request to the outbox, and the
    // deliverer's attempt is the retry under test.
    settings.prefect.retry_attempts = 1;
    settings.delivery.retry_base_delay_ms = 100;
    settings.delivery.retry_max_delay_ms = 500;
    let app = spawn_app(settings).await;

    let email = format!("lost-{}@example.com", uuid::Uuid::new_v4().simple());
    let response = app.post_json(ROUTE, &signup(&email)).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "queued");

    wait_for_runs(&api, &tag, 1, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!("{}/metrics", app.admin_address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == "flowgate_outbox_queued 0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the entry was not delivered:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_one_run_per_signup(&api, &tag, &[email]).await;
    real_prefect::stop(PORT).await;
}
