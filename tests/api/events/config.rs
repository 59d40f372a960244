//! Bad paths, filters and targets are configuration errors named by their config path, and the
//! shipped partner examples (nested fields, filters, Stripe targets) check.

use std::process::Command;

use crate::helpers::repo_path;

#[test]
fn bad_paths_filters_and_targets_are_named_by_their_config_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.toml");
    std::fs::write(
        &file,
        r#"
[routes.github]
deployment = "repo/push"
auth = "none"
filters = [
  { path = "ref", equals = "x", exists = true },
  { header = "X-GitHub-Event", matches = "(push" },
]
[routes.github.fields]
repo = { type = "string", path = "repository..full_name" }
sha = { type = "string", path = "head_commit.id", header = "X-Sha" }
whole = { type = "object", header = "X-Body" }
[routes.stripe]
deployment = "billing/all"
auth = "none"
[[routes.stripe.targets]]
deployment = "no-slash"
filters = [{ path = "[0].type", equals = "invoice.paid" }]
[routes.stripe.targets.fields]
customer = { type = "string", path = "data.object.customer[" }
[routes.orphan]
auth = "none"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .env_remove("FLOWGATE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "routes.github.filters[0]: set exactly one test",
        "routes.github.filters[1].matches: invalid regular expression",
        "routes.github.fields.repo.path: has an empty key at byte 11",
        "routes.github.fields.sha: set `path` or `header`, not both",
        "routes.github.fields.whole.header: an object field cannot come from a header",
        "routes.stripe.deployment: a route with targets sets this in each target",
        "routes.stripe.targets[0].deployment: expected \"flow-name/deployment-name\"",
        "routes.stripe.targets[0].filters[0].path: must start with a key, not an index",
        "routes.stripe.targets[0].fields.customer.path: has an unclosed or empty index at byte 20",
        "routes.orphan.deployment: is required (or list `targets`, each with its deployment)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn the_partner_examples_with_nested_fields_filters_and_targets_check() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("shopify_app_secret");
    std::fs::write(&secret_file, "shop-secret\n").unwrap();
    let text = std::fs::read_to_string(repo_path("config/examples/partners.toml"))
        .unwrap()
        .replace(
            "/run/secrets/shopify_app_secret",
            secret_file.to_str().unwrap(),
        )
        // Nothing listens there: the schema comparison is skipped with a note.
        .replace("http://127.0.0.1:4200/api", "http://127.0.0.1:9/api");
    let file = dir.path().join("partners.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .env_remove("FLOWGATE_CONFIG")
        .envs([
            ("GITHUB_WEBHOOK_SECRET", "gh"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_new"),
            ("STRIPE_WEBHOOK_SECRET_OLD", "whsec_old"),
            (
                "ORDERS_WEBHOOK_SECRET",
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            ),
            ("SLACK_SIGNING_SECRET", "slack"),
            ("PARTNER_WEBHOOK_SECRET", "partner"),
            ("BACKEND_TRIGGER_TOKEN", "token"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("billing-events/invoice-paid"), "{stdout}");
}

/// With the real Prefect reachable, each target's fields are compared with its own deployment:
/// a target that leaves a required parameter unset, or sends the wrong type, is named by its
/// index; one for a deployment Prefect does not have is named too.
#[tokio::test]
async fn check_config_compares_each_target_with_its_own_deployment_in_prefect() {
    let api = crate::e2e::prefect_api().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.toml");
    std::fs::write(
        &file,
        r#"
[routes.shop]
auth = "none"
unknown_fields = "drop"
[[routes.shop.targets]]
deployment = "christmas-signup-handler/website"
filters = [{ header = "X-Shopify-Topic", equals = "orders/create" }]
[routes.shop.targets.fields]
email = { type = "email", path = "customer.email" }
first_name = { type = "integer", path = "customer.first_name" }
[[routes.shop.targets]]
deployment = "christmas-signup-handler/nowhere"
[routes.shop.targets.fields]
email = { type = "email", path = "customer.email" }
"#,
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["check-config", "--config"])
        .arg(&file)
        .env_remove("FLOWGATE_CONFIG")
        .env("FLOWGATE__PREFECT__API_URL", api)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "routes.shop.targets[0]: deployment christmas-signup-handler/website requires parameter \"business_name\"",
        "routes.shop.targets[0].fields.first_name.type: \"integer\" sends an integer",
        "routes.shop.targets[1].deployment: christmas-signup-handler/nowhere does not exist in Prefect",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}
