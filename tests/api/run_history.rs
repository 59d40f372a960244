//! A deployment's run history, page by page, against the real Prefect: every run once, newest
//! first, even when several runs are expected to start at the same instant (Prefect's
//! `before_` filter is inclusive, so a cursor of a time alone would show them again).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::api_v1::{app_config, BACKEND, DEPLOYMENT};
use crate::e2e::prefect_api;
use crate::helpers::*;

#[tokio::test]
async fn pages_show_each_run_once_across_runs_that_share_a_start_time() {
    let api = prefect_api().await;
    let app = start_config(app_config(api)).await;
    let http = reqwest::Client::new();
    let deployment: Value = http
        .get(format!("{api}/deployments/name/{DEPLOYMENT}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let deployment_id = deployment["id"].as_str().unwrap();
    // Three runs at one instant of this test's own, far ahead (never started by the worker),
    // and one a minute later; other tests' runs may sit around them.
    let base = 4_102_444_800 + u64::from(uuid::Uuid::new_v4().as_fields().0 % 1_000_000) * 60;
    let at = |secs: u64| {
        humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .to_string()
    };
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let mut made: BTreeMap<String, String> = BTreeMap::new();
    for when in [base, base, base, base + 60] {
        let run: Value = crate::e2e::prefect_write(
            reqwest::Method::POST,
            &format!("{api}/deployments/{deployment_id}/create_flow_run"),
            Some(&json!({
                "parameters": signup("history@example.com"),
                "tags": [tag],
                "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": at(when)}},
            })),
        )
        .await
        .json()
        .await
        .unwrap();
        made.insert(run["id"].as_str().unwrap().to_owned(), at(when));
    }

    // Walk SCHEDULED runs two per page until past this test's instant.
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let mut url = format!(
            "{}/api/v1/deployments/{DEPLOYMENT}/runs?state=SCHEDULED&limit=2",
            app.address
        );
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = app
            .client
            .get(url)
            .bearer_auth(BACKEND)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let page: Value = r.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push((
                item["flow_run_id"].as_str().unwrap().to_owned(),
                item["expected_start_time"].as_str().unwrap().to_owned(),
            ));
        }
        let past = seen.last().is_some_and(|(_, t)| {
            humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
                .is_ok_and(|t| t < std::time::UNIX_EPOCH + std::time::Duration::from_secs(base))
        });
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if past || cursor.is_none() {
            break;
        }
    }
    let head: Vec<_> = seen.iter().take(12).collect();
    let mut once = std::collections::BTreeSet::new();
    for (id, _) in &seen {
        assert!(
            once.insert(id.clone()),
            "{id} shown twice in {} items: {head:?}…",
            seen.len()
        );
    }
    for id in made.keys() {
        assert!(once.contains(id), "{id} never shown: {head:?}…");
    }
    let times: Vec<std::time::SystemTime> = seen
        .iter()
        .map(|(_, t)| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {head:?}…"
    );

    // Leave nothing scheduled behind: cancel them through the API.
    for id in made.keys() {
        let r = app
            .client
            .post(format!("{}/api/v1/runs/{id}/cancel", app.address))
            .bearer_auth(BACKEND)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}
