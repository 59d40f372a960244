//! One managed deployment brought to its desired state in Prefect, or removed: what the
//! reconciler and `flowgate apply` both do.

use serde_json::Value;

use super::spec::DesiredDeployment;
use super::stale_runs::remove_stale;
use crate::domain::DeploymentRef;
use crate::prefect::{Call, Deadline, PrefectClient, PrefectError};

/// The change named when runs of a replaced schedule were removed.
pub const SCHEDULED_RUNS: &str = "scheduled_runs";

/// What applying found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Prefect already held the desired state.
    Unchanged { id: String },
    /// Created (`changed` empty) or updated (the fields that differed).
    Written {
        id: String,
        created: bool,
        changed: Vec<&'static str>,
    },
    /// Removed from Prefect (or already gone).
    Removed,
}

/// The deployment as Prefect holds it, or `None`.
pub async fn actual(
    prefect: &PrefectClient,
    name: &DeploymentRef,
    deadline: Deadline,
) -> Result<Option<Value>, PrefectError> {
    match prefect
        .read_path(
            Call::ReadObject,
            &["deployments", "name", name.flow(), name.deployment()],
            deadline,
        )
        .await
    {
        Ok(d) => Ok(Some(d)),
        Err(PrefectError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `apply` would change, without changing it: `None` when in sync.
pub fn plan(desired: &DesiredDeployment, actual: Option<&Value>) -> Option<Vec<&'static str>> {
    match actual {
        None => Some(Vec::new()),
        Some(a) => {
            let changed = desired.differences(a);
            (!changed.is_empty()).then_some(changed)
        }
    }
}

/// Makes Prefect hold `desired` for `name`: the flow made if missing, the deployment upserted
/// only if it differs, its scheduled runs made now (or dropped, when paused), and runs left
/// from a replaced schedule removed (`scheduled_runs` among the changes when there were some).
pub async fn apply(
    prefect: &PrefectClient,
    name: &DeploymentRef,
    desired: &DesiredDeployment,
    deadline: Deadline,
) -> Result<Applied, PrefectError> {
    let current = actual(prefect, name, deadline).await?;
    let Some(mut changed) = plan(desired, current.as_ref()) else {
        let Some(held) = current else {
            return Err(PrefectError::Unexpected("no deployment to compare".into()));
        };
        let id = held["id"].as_str().unwrap_or_default().to_owned();
        if remove_stale(prefect, &held, deadline).await? == 0 {
            return Ok(Applied::Unchanged { id });
        }
        return Ok(Applied::Written {
            id,
            created: false,
            changed: vec![SCHEDULED_RUNS],
        });
    };
    let flow_id = prefect.ensure_flow(name.flow(), deadline).await?;
    let (id, mut written) = prefect
        .upsert_deployment(&desired.prefect_body(name, &flow_id), deadline)
        .await?;
    if desired.paused {
        prefect.set_paused(&id, true, deadline).await?;
        written["paused"] = Value::Bool(true);
    } else if desired.schedules.iter().any(|s| s.active) {
        prefect.schedule_runs(&id, deadline).await?;
    }
    // A deployment just made has no runs of an older schedule.
    if current.is_some() && remove_stale(prefect, &written, deadline).await? > 0 {
        changed.push(SCHEDULED_RUNS);
    }
    Ok(Applied::Written {
        id,
        created: current.is_none(),
        changed,
    })
}

/// Removes `name` from Prefect (with its scheduled runs); done if it is not there.
pub async fn remove(
    prefect: &PrefectClient,
    name: &DeploymentRef,
    deadline: Deadline,
) -> Result<Applied, PrefectError> {
    if let Some(d) = actual(prefect, name, deadline).await? {
        let id = d["id"].as_str().unwrap_or_default();
        prefect.delete_deployment(id, deadline).await?;
    }
    Ok(Applied::Removed)
}
