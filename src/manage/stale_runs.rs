//! Scheduled runs that no active schedule of their deployment calls for any more. Prefect drops
//! a deployment's auto-scheduled runs when its schedules are replaced or it is paused, but its
//! scheduler services read a deployment and insert the runs it calls for in two transactions: a
//! pass that read the old schedules before the change inserts their runs after it. flowgate
//! removes such runs after each apply and at every resync.

use serde_json::Value;

use crate::prefect::{Deadline, PrefectClient, PrefectError};

/// Runs read per call (Prefect's largest page).
const PAGE: usize = 200;
/// Pages read per look: Prefect makes at most 100 runs per schedule, and a managed deployment
/// has at most 20 schedules.
const MAX_PAGES: usize = 11;

/// The ids of `runs` of `deployment` that its scheduler made for a schedule it no longer has
/// (or has inactive), or that wait while it is paused, and that have not started.
pub fn stale(deployment: &Value, runs: &[Value]) -> Vec<String> {
    let paused = deployment["paused"].as_bool().unwrap_or(false);
    let active: Vec<&str> = deployment["schedules"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|s| s["active"].as_bool().unwrap_or(true))
                .filter_map(|s| s["id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    runs.iter()
        .filter(|r| {
            r["auto_scheduled"].as_bool() == Some(true)
                && r["state_type"] == "SCHEDULED"
                && r["state_name"] == "Scheduled"
                && r["run_count"].as_u64().unwrap_or(0) == 0
                && r["created_by"]["type"] == "SCHEDULE"
                && (paused
                    || !r["created_by"]["id"]
                        .as_str()
                        .is_some_and(|id| active.contains(&id)))
        })
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

/// Deletes `deployment`'s stale scheduled runs in Prefect; how many there were.
pub async fn remove_stale(
    prefect: &PrefectClient,
    deployment: &Value,
    deadline: Deadline,
) -> Result<usize, PrefectError> {
    let Some(id) = deployment["id"].as_str() else {
        return Err(PrefectError::Unexpected(
            "Prefect's deployment carries no id".into(),
        ));
    };
    let mut removed = 0;
    let mut before: Option<(String, Vec<String>)> = None;
    for _ in 0..MAX_PAGES {
        let cursor = before.as_ref().map(|(t, ids)| (t.as_str(), ids.as_slice()));
        let runs = prefect
            .auto_scheduled_runs(id, cursor, PAGE, deadline)
            .await?;
        for run in stale(deployment, &runs) {
            prefect.delete_flow_run(&run, deadline).await?;
            removed += 1;
        }
        if runs.len() < PAGE {
            break;
        }
        before = next_page(&runs, before);
    }
    Ok(removed)
}

/// The cursor after a full page (latest first): its earliest start time, and the runs at that
/// time already read (with those read at the same time on earlier pages).
fn next_page(
    runs: &[Value],
    before: Option<(String, Vec<String>)>,
) -> Option<(String, Vec<String>)> {
    let last = runs.last()?["expected_start_time"].as_str()?.to_owned();
    let mut seen = match before {
        Some((t, ids)) if t == last => ids,
        _ => Vec::new(),
    };
    seen.extend(
        runs.iter()
            .filter(|r| r["expected_start_time"].as_str() == Some(last.as_str()))
            .filter_map(|r| r["id"].as_str().map(str::to_owned)),
    );
    Some((last, seen))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(id: &str, schedule: &str, time: &str) -> Value {
        json!({
            "id": id, "auto_scheduled": true, "state_type": "SCHEDULED", "state_name": "Scheduled",
            "run_count": 0, "expected_start_time": time,
            "created_by": {"id": schedule, "type": "SCHEDULE", "display_value": "CronSchedule"},
        })
    }

    fn deployment(paused: bool) -> Value {
        json!({
            "id": "d", "paused": paused,
            "schedules": [{"id": "new", "active": true}, {"id": "off", "active": false}],
        })
    }

    #[test]
    fn runs_of_a_replaced_or_inactive_schedule_are_stale_and_the_current_ones_are_not() {
        let runs = [
            run("a", "new", "2026-12-03T00:30:00Z"),
            run("b", "old", "2026-12-03T00:00:00Z"),
            run("c", "off", "2026-12-03T01:00:00Z"),
        ];
        assert_eq!(stale(&deployment(false), &runs), ["b", "c"]);
    }

    #[test]
    fn while_paused_every_waiting_auto_scheduled_run_is_stale() {
        let runs = [run("a", "new", "t"), run("b", "old", "t")];
        assert_eq!(stale(&deployment(true), &runs), ["a", "b"]);
    }

    #[test]
    fn started_late_made_by_hand_or_waiting_for_a_slot_runs_are_kept() {
        let mut started = run("started", "old", "t");
        started["run_count"] = json!(1);
        let mut late = run("late", "old", "t");
        late["state_name"] = json!("Late");
        let mut slot = run("slot", "old", "t");
        slot["state_name"] = json!("AwaitingConcurrencySlot");
        let mut by_hand = run("hand", "old", "t");
        by_hand["auto_scheduled"] = json!(false);
        by_hand["created_by"] = Value::Null;
        assert!(stale(&deployment(true), &[started, late, slot, by_hand]).is_empty());
    }

    #[test]
    fn the_next_page_starts_at_the_last_time_and_skips_the_runs_read_there() {
        let page = [
            run("a", "x", "t3"),
            run("b", "x", "t2"),
            run("c", "x", "t2"),
        ];
        let first = next_page(&page, None);
        assert_eq!(first, Some(("t2".into(), vec!["b".into(), "c".into()])));
        let same_time = [run("d", "x", "t2")];
        assert_eq!(
            next_page(&same_time, first),
            Some(("t2".into(), vec!["b".into(), "c".into(), "d".into()]))
        );
    }
}
