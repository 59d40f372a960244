//! `flowgate check-config`: the route table on success, every error with its path on failure.

use std::process::Command;

use crate::helpers::repo_path;

fn check_config(file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(file)
        .env_remove("FLOWGATE_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn the_default_config_prints_its_route_table() {
    let out = check_config(&repo_path("config/default.toml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("/hooks/christmas-signup"), "{stdout}");
    assert!(
        stdout.contains("christmas-signup-handler/website"),
        "{stdout}"
    );
}

#[test]
fn a_broken_config_names_every_bad_field_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        r#"
[prefect]
max_in_flight = 0
[routes.signup]
deployment = "no-slash"
auth = "none"
[routes.signup.fields]
score = { type = "integr" }
age = { type = "integer", min = 10, max = 1 }
"#,
    )
    .unwrap();
    let out = check_config(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "prefect.max_in_flight: must be at least 1",
        "routes.signup.deployment: expected \"flow-name/deployment-name\"",
        "routes.signup.fields.score.type: unknown type \"integr\"",
        "routes.signup.fields.age.min: is greater than max",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn a_misspelt_key_is_named_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[server]\nprot = 8080\n").unwrap();
    let out = check_config(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("unknown field `prot`") && stderr.contains("server"),
        "{stderr}"
    );
}

#[test]
fn environment_variables_override_file_keys() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(repo_path("config/default.toml"))
        .env(
            "FLOWGATE__PREFECT__API_URL",
            "http://prefect.internal:4200/api",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("Prefect at http://prefect.internal:4200/api"),
        "{stdout}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(repo_path("config/default.toml"))
        .env("FLOWGATE__SERVER__PORT", "eighty")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("server.port"), "{stderr}");
}
