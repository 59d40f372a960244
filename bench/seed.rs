//! Fills a flowgate outbox with queued website signups through the store's own API, so the
//! schema cannot drift from src/store/sqlite.rs. Used by scripts/bench for the "queued with
//! 1,000,000 entries waiting" scenario.
//!
//!   seed DB_PATH ENTRIES [MAX_SIZE_MB]
//!
//! Entries look like the ones `Outbox::queue` writes for the christmas-signup route (14 typed
//! parameters, the route's tags and run name, a content-hash idempotency key), each distinct.
//! Enqueues run 2,048 at a time so the store's writer always finds a full group (512) to commit.

use std::path::PathBuf;
use std::time::Instant;

use flowgate::store::{OutboxEntry, SqliteStore, Store};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

const IN_FLIGHT: usize = 2048;

fn entry(i: usize, now: i64) -> OutboxEntry {
    let parameters: Map<String, Value> = match json!({
        "email": format!("seed-{i}@example.com"), "first_name": "Jo", "business_name": "Jo Co",
        "assessment_score": (i % 101) as i64, "red_systems": 1, "orange_systems": 1,
        "yellow_systems": 1, "green_systems": 0, "gps_score": 50, "money_score": 70,
        "marketing_score": 75, "weakest_system_1": "GPS", "weakest_system_2": "Money",
        "revenue_leak_total": 624
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    OutboxEntry {
        id: uuid::Uuid::now_v7(),
        route: "christmas-signup".into(),
        deployment: "christmas-signup-handler/website".into(),
        parameters: parameters.into(),
        tags: vec![
            "webhook".into(),
            "source:website".into(),
            "campaign:christmas".into(),
        ],
        name: Some(format!("signup-Jo-{}", uuid::Uuid::new_v4())),
        idempotency_key: format!(
            "flowgate:christmas-signup-handler/website:christmas-signup:sha256:{i:064x}"
        ),
        attempts: 0,
        created_at: now,
        next_attempt_at: now,
        last_error: "Prefect unreachable (seeded by bench/seed.rs)".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` adds `--bench`; only positional arguments count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(path), Some(n)) = (args.first(), args.get(1)) else {
        return Err("usage: seed DB_PATH ENTRIES [MAX_SIZE_MB]".into());
    };
    let n: usize = n.parse()?;
    let max_size_mb: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(8192);
    let store = SqliteStore::open(&PathBuf::from(path), max_size_mb)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;

    let started = Instant::now();
    let failed = futures_util::stream::iter(0..n)
        .map(|i| store.enqueue(entry(i, now)))
        .buffer_unordered(IN_FLIGHT)
        .fold(0usize, |failed, r| async move {
            failed + usize::from(r.is_err())
        })
        .await;
    let secs = started.elapsed().as_secs_f64();
    let stats = store.stats(now).await?;
    println!(
        "seeded {} of {n} entries in {secs:.1} s ({:.0}/s); outbox holds {} queued",
        n - failed,
        (n - failed) as f64 / secs,
        stats.queued
    );
    if failed > 0 {
        return Err(format!("{failed} enqueues failed (store full? raise MAX_SIZE_MB)").into());
    }
    Ok(())
}
