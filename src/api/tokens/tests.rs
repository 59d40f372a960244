use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use super::*;

fn settings(name: &str, env: &str, deployments: &[&str], scopes: &[&str]) -> ApiTokenSettings {
    ApiTokenSettings {
        name: name.into(),
        env: Some(env.into()),
        file: None,
        deployments: deployments.iter().map(|s| s.to_string()).collect(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn dep(raw: &str) -> DeploymentRef {
    DeploymentRef::parse(raw).unwrap()
}

#[test]
fn a_token_is_allowed_its_deployments_and_scopes_only() {
    let tokens = ApiTokens::compile(
        &[
            settings(
                "backend",
                "A",
                &["*"],
                &["trigger", "read", "cancel", "manage"],
            ),
            settings("crm", "B", &["crm-sync/*", "report/daily"], &["trigger"]),
        ],
        &|v: &str| match v {
            "A" => Some("a-secret-of-some-length".into()),
            "B" => Some("b-secret-of-some-length".into()),
            _ => None,
        },
    )
    .unwrap();
    let crm = tokens
        .authenticate(&bearer("b-secret-of-some-length"))
        .unwrap();
    assert_eq!(crm.name, "crm");
    assert!(crm.allow(&dep("crm-sync/nightly"), Scope::Trigger).is_ok());
    assert!(crm.allow(&dep("report/daily"), Scope::Trigger).is_ok());
    assert!(matches!(
        crm.allow(&dep("report/weekly"), Scope::Trigger),
        Err(GatewayError::Forbidden(_))
    ));
    assert!(matches!(
        crm.allow(&dep("crm-sync/nightly"), Scope::Read),
        Err(GatewayError::Forbidden(_))
    ));
    let backend = tokens
        .authenticate(&bearer("a-secret-of-some-length"))
        .unwrap();
    assert!(backend
        .allow(&dep("anything/at-all"), Scope::Cancel)
        .is_ok());
    assert!(matches!(
        tokens.authenticate(&bearer("wrong-secret-of-length")),
        Err(GatewayError::InvalidToken)
    ));
    assert!(matches!(
        tokens.authenticate(&HeaderMap::new()),
        Err(GatewayError::InvalidToken)
    ));
}

#[test]
fn no_secret_set_means_no_token_and_no_api() {
    let tokens = ApiTokens::compile(&[settings("backend", "UNSET", &["*"], &["read"])], &|_| {
        None
    })
    .unwrap();
    assert!(tokens.is_empty());
    assert!(matches!(
        tokens.authenticate(&bearer("whatever-secret-here")),
        Err(GatewayError::NotFound)
    ));
}

#[test]
fn bad_scopes_patterns_and_secrets_are_configuration_errors() {
    let issues = ApiTokens::compile(
        &[
            settings("a", "A", &["no-slash"], &["write"]),
            settings("b", "B", &["*"], &["read"]),
        ],
        &|v: &str| match v {
            "A" => Some("long-enough-secret-value".into()),
            "B" => Some("short".into()),
            _ => None,
        },
    )
    .unwrap_err();
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "api.tokens[0].scopes",
            "api.tokens[0].deployments",
            "api.tokens[1].secret"
        ]
    );
}

#[test]
fn debug_never_shows_the_secret() {
    let tokens = ApiTokens::compile(&[settings("backend", "A", &["*"], &["read"])], &|_| {
        Some("super-secret-value-123".into())
    })
    .unwrap();
    assert!(!format!("{tokens:?}").contains("super-secret-value-123"));
}
