//! `flowgate apply [--dry-run]`: the configuration file's `[deployments."flow/name"]` made
//! true in Prefect (or only shown), for teams that keep schedules in git.

use std::io::Write;
use std::time::Duration;

use crate::configuration::Configuration;
use crate::domain::DeploymentRef;
use crate::manage::apply::{actual, apply, plan, Applied};
use crate::prefect::{Deadline, PrefectClient};

const BUDGET: Duration = Duration::from_secs(30);

/// Prints one line per desired deployment (`create`, `update … (fields)`, `unchanged`), and
/// unless `dry_run` applies it. Returns how many differed from Prefect.
pub async fn run(
    config: &Configuration,
    dry_run: bool,
    out: &mut impl Write,
) -> Result<usize, String> {
    let prefect = PrefectClient::new(
        config.prefect_url.clone(),
        &config.prefect_auth,
        &config.settings.prefect,
        &config.prefect_roots,
    )
    .map_err(|e| crate::error::error_chain(&e))?;
    let mut differing = 0;
    for (raw, desired) in &config.settings.deployments {
        let name = DeploymentRef::parse(raw).map_err(|e| format!("{raw}: {e}"))?;
        let current = actual(&prefect, &name, Deadline::after(BUDGET))
            .await
            .map_err(|e| format!("{name}: {}", crate::error::error_chain(&e)))?;
        let changes = plan(desired, current.as_ref());
        let line = match (&changes, &current) {
            (None, _) => format!("unchanged {name}"),
            (Some(_), None) => format!("create {name}"),
            (Some(changed), Some(_)) => format!("update {name} ({})", changed.join(", ")),
        };
        let _ = writeln!(out, "{}{line}", if dry_run { "would " } else { "" });
        if changes.is_some() {
            differing += 1;
        }
        if changes.is_some() && !dry_run {
            match apply(&prefect, &name, desired, Deadline::after(BUDGET)).await {
                Ok(Applied::Written { id, .. }) => {
                    let _ = writeln!(out, "  applied: deployment id {id}");
                }
                Ok(_) => {}
                Err(e) => return Err(format!("{name}: {}", crate::error::error_chain(&e))),
            }
        }
    }
    Ok(differing)
}
