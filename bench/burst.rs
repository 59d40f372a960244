//! Load leveling against a real Prefect on SQLite (started by `scripts/local-prefect`, no
//! runner). In one run, the same Prefect gets:
//!   1. a sequential client creating runs one at a time: Prefect's own pace;
//!   2. the burst sent to flowgate by 64 senders: their acknowledgement rate, and the rate at
//!      which flowgate drains it into Prefect;
//!   3. the sequential client again, right after the drain. The ceiling is the mean of 1 and 3:
//!      Prefect's own pace moves from minute to minute (16.0 runs/s before one drain, 19.2
//!      after it), so the drain is compared with the pace around it, as `scripts/bench` does
//!      with its stand-in;
//!   4. last, a burst sent straight at Prefect by 64 concurrent clients that retry 503s and
//!      timeouts (it leaves Prefect busy with abandoned requests for a while).
//!
//!   cargo bench --bench burst [-- SIGNUPS CONCURRENCY DIRECT]    (Prefect on port 4360)
//!
//! DIRECT (default 300) is the size of the burst sent straight at Prefect: 64 retrying clients
//! against SQLite take minutes per few hundred runs. The drain is sampled every second; the
//! slowest 10 s window while entries waited is reported (it must never be 0).

use std::time::{Duration, Instant};

use flowgate::configuration::{read_settings, Configuration, PrefectAuth};
use flowgate::startup::Application;
use futures_util::StreamExt;
use serde_json::{json, Value};

const PORT: u16 = 4360;
const SEQUENTIAL: usize = 300;

type Error = Box<dyn std::error::Error>;

struct Load {
    created: usize,
    failed: usize,
    elapsed: Duration,
    p99: Duration,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.created as f64 / self.elapsed.as_secs_f64()
    }
}

fn signup(i: usize, run: &str) -> Value {
    json!({
        "email": format!("burst-{i}-{run}@example.com"), "first_name": "Jo", "business_name": "Jo Co",
        "assessment_score": 65, "red_systems": 1, "orange_systems": 1, "yellow_systems": 1,
        "green_systems": 0, "gps_score": 50, "money_score": 70, "marketing_score": 75,
        "weakest_system_1": "GPS", "weakest_system_2": "Money", "revenue_leak_total": 624
    })
}

/// One create_flow_run, retried on 503/429/timeouts/connection errors with exponential backoff
/// (100 ms doubling to 2 s, jittered), up to 8 attempts, with one idempotency key: what a
/// careful client does.
async fn create_with_retries(
    client: &reqwest::Client,
    url: &str,
    parameters: &Value,
    tag: &str,
) -> bool {
    let key = uuid::Uuid::new_v4().to_string();
    for attempt in 0..8u32 {
        let sent = client
            .post(url)
            .timeout(Duration::from_secs(10))
            .json(&json!({"parameters": parameters, "tags": [tag], "idempotency_key": key}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if ![429, 502, 503, 504].contains(&r.status().as_u16()) => return false,
            _ => {
                let wait =
                    Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_secs(2));
                tokio::time::sleep(wait / 2 + wait.mul_f64(fastrand::f64() / 2.0)).await;
            }
        }
    }
    false
}

async fn direct(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    concurrency: usize,
    tag: &str,
    run: &str,
) -> Load {
    let started = Instant::now();
    let mut results: Vec<(Duration, bool)> = futures_util::stream::iter(0..n)
        .map(|i| async move {
            let t = Instant::now();
            let ok = create_with_retries(client, url, &signup(i, run), tag).await;
            (t.elapsed(), ok)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    results.sort();
    let created = results.iter().filter(|(_, ok)| *ok).count();
    Load {
        created,
        failed: n - created,
        elapsed,
        p99: results[(results.len() * 99 / 100).min(results.len() - 1)].0,
    }
}

async fn count_runs(client: &reqwest::Client, api: &str, tag: &str) -> Result<usize, Error> {
    Ok(client
        .post(format!("{api}/flow_runs/count"))
        .json(&json!({"flow_runs": {"tags": {"all_": [tag]}}}))
        .send()
        .await?
        .json()
        .await?)
}

fn local_prefect(action: &str) -> Result<(), Error> {
    let status = std::process::Command::new("scripts/local-prefect")
        .args([action, &PORT.to_string()])
        .env("FLOWGATE_PREFECT_RUNNER", "0")
        .status()?;
    if !status.success() {
        return Err(format!("scripts/local-prefect {action} {PORT} failed").into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(2_000);
    let concurrency = args.get(1).copied().unwrap_or(64);
    let direct_n = args.get(2).copied().unwrap_or(300);
    local_prefect("start")?;
    let api = format!("http://127.0.0.1:{PORT}/api");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    let mut settings = read_settings(std::path::Path::new("config/default.toml"))?;
    let deployment = settings
        .routes
        .get("christmas-signup")
        .and_then(|r| r.deployment.clone())
        .ok_or("config/default.toml has no christmas-signup route with a deployment")?;
    let found: Value = client
        .get(format!("{api}/deployments/name/{deployment}"))
        .send()
        .await?
        .json()
        .await?;
    let id = found["id"].as_str().ok_or("deployment not found")?;
    let create = format!("{api}/deployments/{id}/create_flow_run");

    let sequential = direct(
        &client,
        &create,
        SEQUENTIAL,
        1,
        &format!("bench:seq:{run}"),
        &run,
    )
    .await;
    let dir = tempfile::tempdir()?;
    let tag = format!("bench:flowgate:{run}");
    settings.server.port = 0;
    settings.admin.port = 0;
    settings.prefect.api_url = api.clone();
    settings.store.path = dir.path().join("bench.db").display().to_string();
    settings.telemetry.level = "error".into();
    settings.limits.per_ip = None;
    if let Some(route) = settings.routes.get_mut("christmas-signup") {
        route.limit = None;
        route.tags.push(tag.clone());
    }
    flowgate::telemetry::init(&settings.telemetry);
    let app =
        Application::build(Configuration::from_settings(settings, PrefectAuth::None)?).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let admin = app.admin_port().map(|p| format!("http://127.0.0.1:{p}"));
    tokio::spawn(app.run_until_stopped());

    let started = Instant::now();
    let mut acks: Vec<(Duration, bool)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let request = client
                .post(format!("{base}/hooks/christmas-signup"))
                .json(&signup(i, &format!("fg-{run}")));
            async move {
                let t = Instant::now();
                let ok = request.send().await.is_ok_and(|r| r.status().is_success());
                (t.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let acked = started.elapsed();
    acks.sort();
    let acked_ok = acks.iter().filter(|(_, ok)| *ok).count();
    // (seconds since the burst, runs) once a second: the drain's progress.
    let mut samples: Vec<(f64, usize)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let have = count_runs(&client, &api, &tag).await?;
        samples.push((started.elapsed().as_secs_f64(), have));
        if have >= acked_ok {
            break;
        }
        if started.elapsed() > Duration::from_secs(1_800) {
            return Err(format!("only {have} of {acked_ok} runs after 30 min").into());
        }
    }
    let slowest_window = samples
        .iter()
        .filter_map(|&(t, runs)| {
            let later = samples.iter().find(|&&(u, _)| u >= t + 10.0)?;
            Some(later.1 - runs)
        })
        .min();
    let drained = started.elapsed();
    let runs = count_runs(&client, &api, &tag).await?;
    let metrics = match admin {
        Some(admin) => {
            client
                .get(format!("{admin}/metrics"))
                .send()
                .await?
                .text()
                .await?
        }
        None => String::new(),
    };
    let metric = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("flowgate_{name} ")))
            .unwrap_or("-")
            .to_owned()
    };
    let limit = metric("prefect_concurrency_limit");
    let sequential_after = direct(
        &client,
        &create,
        SEQUENTIAL,
        1,
        &format!("bench:seq-after:{run}"),
        &run,
    )
    .await;
    // Last: the flood straight at Prefect leaves it busy with abandoned requests for a while,
    // which would slow whatever is measured after it.
    let flood = direct(
        &client,
        &create,
        direct_n,
        concurrency,
        &format!("bench:direct:{run}"),
        &run,
    )
    .await;
    local_prefect("stop")?;

    let ceiling = (sequential.per_sec() + sequential_after.per_sec()) / 2.0;
    println!("flowgate burst bench: {n} signups, {concurrency} concurrent, Prefect 3 on SQLite (port {PORT})");
    println!("| scenario | runs created | failed | rate /s | p99 s | ratio to sequential (mean of before and after) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, l: &Load| {
        println!(
            "| {name} | {} | {} | {:.1} | {:.2} | {:.2} |",
            l.created,
            l.failed,
            l.per_sec(),
            l.p99.as_secs_f64(),
            l.per_sec() / ceiling
        );
    };
    row(
        "sequential client, one at a time, before the burst",
        &sequential,
    );
    row(
        "sequential client, one at a time, after the drain",
        &sequential_after,
    );
    row(
        &format!("{concurrency} clients straight at Prefect, with retries"),
        &flood,
    );
    let ack_rate = acked_ok as f64 / acked.as_secs_f64();
    println!(
        "| flowgate: senders acknowledged (2xx) | {acked_ok} | {} | {ack_rate:.0} | {:.2} | {:.1} |",
        n - acked_ok,
        acks[(acks.len() * 99 / 100).min(acks.len() - 1)].0.as_secs_f64(),
        ack_rate / ceiling
    );
    let drain_rate = runs as f64 / drained.as_secs_f64();
    println!(
        "| flowgate: drained into Prefect | {runs} | {} | {drain_rate:.1} | - | {:.2} |",
        n - runs,
        drain_rate / ceiling
    );
    println!(
        "flowgate's adaptive concurrency limit at the end: {limit}; Prefect overloads (503/429/timeouts): {}; delivery attempts: {}",
        metric("prefect_overloads"),
        metric("outbox_attempts_total")
    );
    match slowest_window {
        Some(runs) => println!("slowest 10 s window of the drain: {runs} runs"),
        None => println!("the drain took under 10 s"),
    }
    if runs != acked_ok || acked_ok != n {
        return Err(format!("{acked_ok} of {n} acknowledged, {runs} runs").into());
    }
    Ok(())
}
