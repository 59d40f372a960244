//! The service units of `config/systemd/`, checked offline by `systemd-analyze` where it exists
//! (skipped with a message where it does not).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::repo_path;

const ANALYZE: &str = "/usr/bin/systemd-analyze";

/// `config/systemd/NAME` with each executable that `ExecStart` names replaced by the one on this
/// machine (the only paths `systemd-analyze verify` checks): the built flowgate, the pinned
/// Prefect venv of `scripts/local-prefect`. `None` without systemd-analyze.
fn rendered_unit(dir: &Path, name: &str) -> Option<PathBuf> {
    if !Path::new(ANALYZE).exists() {
        println!("skipped: no {ANALYZE} here, so {name} cannot be checked");
        return None;
    }
    let shipped = std::fs::read_to_string(repo_path(&format!("config/systemd/{name}"))).unwrap();
    let rendered = if shipped.contains("/usr/local/bin/flowgate") {
        shipped.replace("/usr/local/bin/flowgate", env!("CARGO_BIN_EXE_flowgate"))
    } else {
        assert!(
            shipped.contains("/opt/prefect-venv/"),
            "{name}: which binary?"
        );
        shipped.replace(
            "/opt/prefect-venv/",
            &format!("{}/", prefect_venv().display()),
        )
    };
    let unit = dir.join(name);
    std::fs::write(&unit, rendered).unwrap();
    Some(unit)
}

/// The pinned Prefect venv (made once by `scripts/local-prefect`, shared with the e2e tests).
fn prefect_venv() -> PathBuf {
    let out = Command::new(repo_path("scripts/local-prefect"))
        .arg("venv")
        .output()
        .expect("scripts/local-prefect runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    python
        .parent()
        .and_then(Path::parent)
        .expect("the venv's bin/python")
        .to_path_buf()
}

fn analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = Command::new(ANALYZE).args(args).arg(unit).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn systemd_analyze_verify_accepts_every_unit_without_a_remark() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "flowgate.service",
        "prefect-server.service",
        "prefect-flows.service",
    ] {
        let Some(unit) = rendered_unit(dir.path(), name) else {
            return;
        };
        let (ok, text) = analyze(&["verify"], &unit);
        assert!(ok, "{name}: {text}");
        // Unknown keys and bad values are warnings with exit status 0.
        assert_eq!(text, "", "{name}: systemd-analyze verify has remarks");
    }
}

#[test]
fn flowgates_unit_is_sandboxed_to_an_exposure_of_at_most_2() {
    let dir = tempfile::tempdir().unwrap();
    let Some(unit) = rendered_unit(dir.path(), "flowgate.service") else {
        return;
    };
    // --threshold is in tenths: 20 fails above an overall exposure of 2.0.
    let (ok, text) = analyze(&["security", "--offline=true", "--threshold=20"], &unit);
    assert!(ok, "{text}");
}
