//! Load leveling with a real Prefect on SQLite: a campaign burst is acknowledged at once and
//! drained at Prefect's pace, with exactly one run per signup; the adaptive limit settles and
//! the drain resumes after Prefect is restarted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use crate::helpers::*;
use crate::real_prefect::{self, assert_one_run_per_signup, wait_for_runs};

const PORT: u16 = 4350;
const SENDERS: usize = 64;

/// Posts each signup from `SENDERS` concurrent senders; returns each answer's status and body.
async fn burst(app: &TestApp, emails: &[String]) -> Vec<(u16, Value)> {
    futures_util::stream::iter(emails)
        .map(|email| async move {
            let response = app.post_json(ROUTE, &signup(email)).await;
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
        .buffer_unordered(SENDERS)
        .collect()
        .await
}

/// Reads `flowgate_prefect_concurrency_limit` every 100 ms until `done`.
fn sample_limit(app: &TestApp, done: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<i64>> {
    let admin = app.admin_address.clone();
    tokio::spawn(async move {
        let mut samples = Vec::new();
        while !done.load(Ordering::Relaxed) {
            samples.push(gauge_at(&admin, "prefect_concurrency_limit").await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        samples
    })
}

#[tokio::test]
async fn a_burst_of_2000_signups_is_acknowledged_and_each_runs_once_even_across_a_prefect_restart()
{
    let api = real_prefect::start(PORT).await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let mut settings = shipped_settings(&api);
    let route = settings.routes.get_mut(ROUTE).unwrap();
    route.tags.push(tag.clone());
    route.limit = None;
    settings.limits.per_ip = None;
    settings.delivery.probe_every_secs = 1;
    settings.delivery.retry_base_delay_ms = 200;
    settings.delivery.retry_max_delay_ms = 2_000;
    let max = settings.prefect.max_in_flight as i64;
    let app = spawn_app(settings).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let emails: Vec<String> = (0..2_100)
        .map(|i| format!("burst-{i}-{run}@example.com"))
        .collect();
    let (first, second) = emails.split_at(2_000);

    // 2,000 signups from 64 senders at once.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample_limit(&app, done.clone());
    let started = Instant::now();
    let answers = burst(&app, first).await;
    let acked = started.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
        assert!(
            ["created", "queued"].contains(&body["status"].as_str().unwrap_or_default()),
            "{body}"
        );
    }
    let queued = answers
        .iter()
        .filter(|(_, b)| b["status"] == "queued")
        .count();
    wait_for_runs(&api, &tag, 2_000, Duration::from_secs(600)).await;
    let drained = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    eprintln!(
        "burst: 2000 acknowledged in {:.1} s ({:.0}/s, {queued} queued); all runs in Prefect after {:.1} s ({:.1} runs/s)",
        acked.as_secs_f64(),
        2_000.0 / acked.as_secs_f64(),
        drained.as_secs_f64(),
        2_000.0 / drained.as_secs_f64()
    );
    assert_one_run_per_signup(&api, &tag, first).await;
    assert!(
        queued > 1_000,
        "most of the burst waited in the outbox: {queued}"
    );

    // The limit settles where a one-writer Prefect keeps up: one call at a time, with rare
    // probes at two that its 503s turn back.
    assert!(samples.len() >= 10, "{samples:?}");
    assert!(
        samples.iter().all(|&l| (1..=max).contains(&l)),
        "{samples:?}"
    );
    let settled = samples.iter().filter(|&&l| l <= 2).count();
    assert!(
        settled * 10 >= samples.len() * 9,
        "limit above 2 in more than a tenth of samples: {samples:?}"
    );

    // Prefect restarts while signups arrive: all queued, then drained once it is back.
    real_prefect::stop(PORT).await;
    let overloads_before = gauge(&app, "prefect_overloads").await;
    let answers = burst(&app, second).await;
    assert!(
        answers
            .iter()
            .all(|(s, b)| *s == 202 && b["status"] == "queued"),
        "{answers:?}"
    );
    wait_for_gauge(&app, "prefect_concurrency_limit", 1).await;
    assert!(gauge(&app, "prefect_overloads").await > overloads_before);
    real_prefect::start(PORT).await;
    wait_for_runs(&api, &tag, 2_100, Duration::from_secs(300)).await;
    assert_one_run_per_signup(&api, &tag, &emails).await;
    wait_for_gauge(&app, "outbox_queued", 0).await;
    let limit = gauge(&app, "prefect_concurrency_limit").await;
    assert!((1..=max).contains(&limit), "{limit}");
    assert_eq!(
        gauge(&app, "outbox_delivered_total").await,
        queued as i64 + 100,
        "every queued signup delivered once"
    );
    real_prefect::stop(PORT).await;
}
