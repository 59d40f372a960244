//! Queued-mode acknowledgements per second, fsync on: Prefect is down, so every signup is
//! written to the SQLite outbox (group commit) before its 202. The ceiling is the same server
//! answering `GET /healthz` in the same run, with the same client and concurrency.
//!
//!   cargo bench --bench queued [-- REQUESTS CONCURRENCY]

use std::time::{Duration, Instant};

use flowgate::configuration::{read_settings, Configuration, PrefectAuth};
use flowgate::startup::Application;
use futures_util::StreamExt;

struct Run {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    ok: usize,
}

async fn load(
    client: &reqwest::Client,
    n: usize,
    concurrency: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Run {
    let started = Instant::now();
    let mut latencies: Vec<(Duration, bool)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let req = request(i);
            async move {
                let t = Instant::now();
                let ok = req.send().await.is_ok_and(|r| r.status().is_success());
                (t.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let _ = client;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].0;
    Run {
        per_sec: n as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        ok: latencies.iter().filter(|(_, ok)| *ok).count(),
    }
}

fn signup(i: usize) -> serde_json::Value {
    serde_json::json!({
        "email": format!("bench-{i}@example.com"), "first_name": "Jo", "business_name": "Jo Co",
        "assessment_score": 65, "red_systems": 1, "orange_systems": 1, "yellow_systems": 1,
        "green_systems": 0, "gps_score": 50, "money_score": 70, "marketing_score": 75,
        "weakest_system_1": "GPS", "weakest_system_2": "Money", "revenue_leak_total": 624
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(64);
    let dir = tempfile::tempdir()?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();

    let mut settings = read_settings(std::path::Path::new("config/default.toml"))?;
    settings.server.port = 0;
    settings.admin.port = 0;
    settings.prefect.api_url = format!("http://127.0.0.1:{closed}/api");
    settings.limits.per_ip = None;
    if let Some(route) = settings.routes.get_mut("christmas-signup") {
        route.limit = None;
    }
    settings.store.path = dir.path().join("bench.db").display().to_string();
    settings.telemetry.level = "error".into();
    flowgate::telemetry::init(&settings.telemetry);
    let app = Application::build(Configuration::from_settings(settings, PrefectAuth::None)?)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    // Warm up: opens connections and trips the breaker (Prefect is down), as in a real outage.
    load(&client, 500, concurrency, |i| {
        client
            .post(format!("{base}/hooks/christmas-signup"))
            .json(&signup(1_000_000 + i))
    })
    .await;

    let ceiling = load(&client, n, concurrency, |_| {
        client.get(format!("{base}/healthz"))
    })
    .await;
    let queued = load(&client, n, concurrency, |i| {
        client
            .post(format!("{base}/hooks/christmas-signup"))
            .json(&signup(i))
    })
    .await;

    println!("flowgate bench: {n} requests, {concurrency} concurrent, keep-alive, same process");
    println!("| scenario | ok | req/s | p50 ms | p99 ms | ratio to ceiling |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, r) in [
        ("ceiling: GET /healthz", &ceiling),
        ("queued signup, fsync'd (Prefect down)", &queued),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.1} | {:.2} |",
            r.ok,
            r.per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.per_sec / ceiling.per_sec
        );
    }
    if queued.ok != n {
        return Err(format!(
            "{} of {n} queued signups were not acknowledged",
            n - queued.ok
        )
        .into());
    }
    Ok(())
}
