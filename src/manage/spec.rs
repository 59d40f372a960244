//! A managed deployment's desired state, as `PUT /api/v1/deployments/{flow}/{deployment}` and
//! `[deployments."flow/name"]` give it: checked completely (cron, time zone, sizes) before
//! anything is stored or sent to Prefect, and compared with what Prefect holds.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::domain::{DeploymentRef, FieldError};

const MAX_SCHEDULES: usize = 20;
const MAX_TAGS: usize = 50;
const MAX_TEXT: usize = 200;
const MAX_DESCRIPTION: usize = 5_000;

/// One cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five fields (minute hour day-of-month month day-of-week), e.g. `0 */4 * * *`.
    pub cron: String,
    /// An IANA time zone (`Europe/Berlin`); `UTC` when absent.
    #[serde(default = "utc")]
    pub timezone: String,
    /// An inactive schedule makes no runs.
    #[serde(default = "yes")]
    pub active: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn yes() -> bool {
    true
}

/// What a managed deployment should be in Prefect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DesiredDeployment {
    /// The flow's entrypoint (`flows/etl.py:sync`), for workers that pull code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The work pool whose workers run it (none: a `serve()` process or no runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_queue: Option<String>,
    /// Default parameters of its runs.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
    /// A paused deployment keeps its schedules but makes no scheduled runs.
    #[serde(default)]
    pub paused: bool,
}

impl DesiredDeployment {
    /// Every problem, each naming its field; empty when Prefect may be asked.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut text = |field: &str, value: &Option<String>, max: usize| {
            if value
                .as_ref()
                .is_some_and(|v| v.trim().is_empty() || v.chars().count() > max)
            {
                errors.push(FieldError::new(field, format!("1 to {max} characters")));
            }
        };
        text("entrypoint", &self.entrypoint, MAX_TEXT);
        text("work_pool", &self.work_pool, MAX_TEXT);
        text("work_queue", &self.work_queue, MAX_TEXT);
        text("description", &self.description, MAX_DESCRIPTION);
        if self.work_queue.is_some() && self.work_pool.is_none() {
            errors.push(FieldError::new("work_queue", "needs work_pool"));
        }
        if self.tags.len() > MAX_TAGS
            || self
                .tags
                .iter()
                .any(|t| t.is_empty() || t.chars().count() > MAX_TEXT)
        {
            errors.push(FieldError::new(
                "tags",
                format!("at most {MAX_TAGS} tags of 1 to {MAX_TEXT} characters"),
            ));
        }
        if self.schedules.len() > MAX_SCHEDULES {
            errors.push(FieldError::new(
                "schedules",
                format!("at most {MAX_SCHEDULES} schedules"),
            ));
        }
        for (i, s) in self.schedules.iter().enumerate() {
            if let Err(reason) = check_cron(&s.cron) {
                errors.push(FieldError::new(format!("schedules[{i}].cron"), reason));
            }
            if chrono_tz::Tz::from_str(&s.timezone).is_err() {
                errors.push(FieldError::new(
                    format!("schedules[{i}].timezone"),
                    format!(
                        "{:?} is not an IANA time zone (e.g. Europe/Berlin, UTC)",
                        s.timezone
                    ),
                ));
            }
        }
        errors
    }

    /// The body of Prefect's `POST /deployments/` (an upsert by flow and name).
    pub fn prefect_body(&self, name: &DeploymentRef, flow_id: &str) -> Value {
        let mut body = json!({
            "name": name.deployment(),
            "flow_id": flow_id,
            "parameters": self.parameters,
            "tags": self.tags,
            "description": self.description,
            "paused": self.paused,
            "enforce_parameter_schema": false,
            "schedules": self.schedules.iter().map(|s| json!({
                "schedule": {"cron": s.cron, "timezone": s.timezone},
                "active": s.active,
            })).collect::<Vec<_>>(),
        });
        if let Some(e) = &self.entrypoint {
            body["entrypoint"] = json!(e);
        }
        if let Some(p) = &self.work_pool {
            body["work_pool_name"] = json!(p);
        }
        if let Some(q) = &self.work_queue {
            body["work_queue_name"] = json!(q);
        }
        body
    }

    /// What differs between this and Prefect's deployment, by field (empty: in sync).
    pub fn differences(&self, actual: &Value) -> Vec<&'static str> {
        let mut out = Vec::new();
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        if self.entrypoint.is_some() && text(&actual["entrypoint"]) != self.entrypoint {
            out.push("entrypoint");
        }
        if self.work_pool.is_some() && text(&actual["work_pool_name"]) != self.work_pool {
            out.push("work_pool");
        }
        if self.work_queue.is_some() && text(&actual["work_queue_name"]) != self.work_queue {
            out.push("work_queue");
        }
        if actual["parameters"].as_object() != Some(&self.parameters)
            && !(self.parameters.is_empty() && actual["parameters"].is_null())
        {
            out.push("parameters");
        }
        let mut want_tags = self.tags.clone();
        want_tags.sort();
        let mut have_tags: Vec<String> = actual["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        have_tags.sort();
        if want_tags != have_tags {
            out.push("tags");
        }
        if text(&actual["description"]) != self.description {
            out.push("description");
        }
        if actual["paused"].as_bool().unwrap_or(false) != self.paused {
            out.push("paused");
        }
        let have: Vec<ScheduleSpec> = actual["schedules"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| ScheduleSpec {
                        cron: s["schedule"]["cron"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        timezone: s["schedule"]["timezone"]
                            .as_str()
                            .unwrap_or("UTC")
                            .to_owned(),
                        active: s["active"].as_bool().unwrap_or(true),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !same_schedules(&self.schedules, &have) {
            out.push("schedules");
        }
        out
    }
}

fn same_schedules(want: &[ScheduleSpec], have: &[ScheduleSpec]) -> bool {
    let key = |s: &ScheduleSpec| (s.cron.clone(), s.timezone.clone(), s.active);
    let mut a: Vec<_> = want.iter().map(key).collect();
    let mut b: Vec<_> = have.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

/// A five-field cron Prefect's parser also takes, with at least one future time.
fn check_cron(raw: &str) -> Result<(), String> {
    let fields = raw.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "{raw:?} has {fields} fields; use five: minute hour day-of-month month day-of-week"
        ));
    }
    let cron = croner::Cron::from_str(raw).map_err(|e| format!("{raw:?}: {e}"))?;
    cron.find_next_occurrence(&chrono::Utc::now(), false)
        .map(|_| ())
        .map_err(|e| format!("{raw:?} never matches: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_schedule(cron: &str, timezone: &str) -> DesiredDeployment {
        DesiredDeployment {
            schedules: vec![ScheduleSpec {
                cron: cron.into(),
                timezone: timezone.into(),
                active: true,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn crons_and_time_zones_are_checked_with_the_field_named() {
        assert!(with_schedule("0 */4 * * *", "Europe/Berlin")
            .check()
            .is_empty());
        assert!(with_schedule("15 10 * * MON-FRI", "UTC").check().is_empty());
        for bad in [
            "not a cron",
            "61 9 * * *",
            "0 9 * *",
            "0 0 9 * * *",
            "0 0 30 2 *",
        ] {
            let errors = with_schedule(bad, "UTC").check();
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(&*errors[0].field, "schedules[0].cron", "{bad}");
        }
        let errors = with_schedule("0 9 * * *", "Mars/Base").check();
        assert_eq!(&*errors[0].field, "schedules[0].timezone");
    }

    #[test]
    fn a_deployment_as_prefect_answers_it_is_compared_field_by_field() {
        let want = DesiredDeployment {
            tags: vec!["b".into(), "a".into()],
            ..with_schedule("0 */4 * * *", "UTC")
        };
        let actual = json!({
            "parameters": {}, "tags": ["a", "b"], "description": null, "paused": false,
            "schedules": [{"active": true, "schedule": {"cron": "0 */4 * * *", "timezone": "UTC", "day_or": true}}],
        });
        assert!(want.differences(&actual).is_empty());
        let mut moved = actual.clone();
        moved["schedules"][0]["schedule"]["cron"] = json!("0 */6 * * *");
        moved["paused"] = json!(true);
        assert_eq!(want.differences(&moved), vec!["paused", "schedules"]);
    }
}
