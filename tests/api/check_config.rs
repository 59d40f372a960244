//! `flowgate check-config`: the route table on success, every error with its path on failure.

use std::process::Command;

use crate::helpers::{refusing_port, repo_path};

fn check_config(file: &std::path::Path) -> std::process::Output {
    check_config_with(file, &[])
}

/// `check-config` with these environment variables set (the secrets a file names).
fn check_config_with(file: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(file)
        .env_remove("FLOWGATE_CONFIG")
        .envs(env.iter().copied())
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
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // `flowgate check-config | head -1`, once head has gone: every write meets a closed pipe.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(repo_path("config/default.toml"))
        .env_remove("FLOWGATE_CONFIG")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert_eq!(stderr, "", "no panic, no message");
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
min_in_flight = 2
[routes.signup]
deployment = "no-slash"
auth = "none"
share = 0
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
        "prefect.min_in_flight: must be at least 1 and at most prefect.max_in_flight",
        "routes.signup.share: must be between 1 and 1000",
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

/// Secrets for every route of config/examples/partners.toml, and a copy of it whose Shopify
/// secret file exists.
fn partner_example(
    dir: &std::path::Path,
) -> (std::path::PathBuf, Vec<(&'static str, &'static str)>) {
    let secret_file = dir.join("shopify_app_secret");
    std::fs::write(&secret_file, "shop-secret\n").unwrap();
    let text = std::fs::read_to_string(repo_path("config/examples/partners.toml"))
        .unwrap()
        .replace(
            "/run/secrets/shopify_app_secret",
            secret_file.to_str().unwrap(),
        );
    let file = dir.join("partners.toml");
    std::fs::write(&file, text).unwrap();
    let env = vec![
        ("GITHUB_WEBHOOK_SECRET", "gh-secret"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_new"),
        ("STRIPE_WEBHOOK_SECRET_OLD", "whsec_old"),
        (
            "ORDERS_WEBHOOK_SECRET",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ),
        ("SLACK_SIGNING_SECRET", "slack-secret"),
        ("PARTNER_WEBHOOK_SECRET", "partner-secret"),
        ("BACKEND_TRIGGER_TOKEN", "token"),
    ];
    (file, env)
}

#[test]
fn the_partner_examples_check_with_their_secrets_and_name_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (file, env) = partner_example(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for route in [
        "github-push",
        "stripe-events",
        "orders-svix",
        "shopify-orders",
        "slack-command",
        "partner-generic",
        "connector-trigger",
    ] {
        assert!(stdout.contains(route), "{route} missing from:\n{stdout}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .envs(
            env.iter()
                .copied()
                .filter(|(k, _)| *k != "SLACK_SIGNING_SECRET"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("routes.slack-command.auth.secrets[0].env: environment variable SLACK_SIGNING_SECRET is not set"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("gh-secret"),
        "no secret in errors: {stderr}"
    );
}

#[test]
fn a_misspelt_auth_key_is_named_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.toml");
    std::fs::write(
        &file,
        "[routes.gh]\ndeployment = \"f/d\"\nauth = { type = \"hmac\", scheme = \"github\", secret = [{ env = \"X\" }] }\n",
    )
    .unwrap();
    let out = check_config(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("routes.gh.auth.secret: unknown field `secret`"),
        "{stderr}"
    );
}

#[test]
fn a_generic_schemes_header_names_are_checked_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("generic.toml");
    std::fs::write(
        &file,
        "[routes.p]\ndeployment = \"f/d\"\n[routes.p.auth]\ntype = \"hmac\"\nscheme = \"generic\"\n\
         secrets = [{ env = \"P_SECRET\" }]\nheader = \"X Signature\"\n\
         signed_content = \"{timestamp}.{body}\"\ntimestamp_header = \"X-Time:\"\n",
    )
    .unwrap();
    let out = check_config_with(&file, &[("P_SECRET", "a-partner-secret-of-some-length")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "routes.p.auth.header: is not a valid header name",
        "routes.p.auth.timestamp_header: is not a valid header name",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

async fn check_config_against(api: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(repo_path("config/default.toml"))
        .env("FLOWGATE__PREFECT__API_URL", api)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn with_prefect_reachable_rules_that_disagree_with_the_schema_are_reported() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let prefect = MockServer::start().await;
    let mut deployment = crate::helpers::deployment_body(
        "21e9741f-0000-4000-8000-000000000001",
        &crate::helpers::SIGNUP_FIELDS,
    );
    let schema = &mut deployment["parameter_openapi_schema"];
    schema["properties"]["gps_score"]["type"] = serde_json::json!("string");
    schema["properties"]["consent"] = serde_json::json!({"type": "boolean"});
    schema["required"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!("consent"));
    Mock::given(method("GET"))
        .and(path("/api/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(true))
        .mount(&prefect)
        .await;
    Mock::given(method("GET"))
        .and(path(crate::helpers::DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment))
        .expect(1)
        .mount(&prefect)
        .await;

    let out = check_config_against(&format!("{}/api", prefect.uri())).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("routes.christmas-signup: deployment christmas-signup-handler/website requires parameter \"consent\", which no field or constant provides"), "{stderr}");
    assert!(stderr.contains("routes.christmas-signup.fields.gps_score.type: \"integer\" sends an integer, but christmas-signup-handler/website declares \"gps_score\" as string"), "{stderr}");
}

#[tokio::test]
async fn with_prefect_unreachable_the_comparison_is_skipped_with_a_note() {
    let refusing = refusing_port();
    let out = check_config_against(&refusing.api_url()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("is not reachable"), "{stdout}");
}

#[test]
fn a_store_url_with_a_password_or_a_lease_shorter_than_an_attempt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.toml");
    let secret = "hunter2-never-printed";
    std::fs::write(
        &file,
        format!(
            "[store]\nurl = \"postgres://flowgate:{secret}@db:5432/flowgate\"\nlease_secs = 5\n\
             [prefect]\ntimeout_ms = 4000\nrequest_budget_ms = 2000\n"
        ),
    )
    .unwrap();
    let out = check_config(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("store.url: carries a password"), "{stderr}");
    assert!(stderr.contains("store.lease_secs: must exceed"), "{stderr}");
    assert!(
        !stderr.contains(secret),
        "the password is not echoed: {stderr}"
    );
}
