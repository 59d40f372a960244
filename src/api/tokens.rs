//! API tokens for `/api/v1`: bearer secrets from the environment or files, each allowed some
//! deployments (exact `flow/deployment` names, `flow/*`, or `*`) and some scopes. Fail closed:
//! with no token configured the API answers 404, as if it did not exist.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::configuration::{read_secret_file, ApiTokenSettings};
use crate::domain::DeploymentRef;
use crate::error::GatewayError;
use crate::route_table::{ConfigIssue, EnvLookup};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Start runs.
    Trigger,
    /// Read deliveries, runs and deployments.
    Read,
    /// Cancel runs.
    Cancel,
    /// Manage deployments (desired state).
    Manage,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Read => "read",
            Self::Cancel => "cancel",
            Self::Manage => "manage",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Trigger, Self::Read, Self::Cancel, Self::Manage]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

pub struct ApiToken {
    pub name: String,
    secret: SecretString,
    deployments: Vec<String>,
    scopes: Vec<Scope>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("secret", &"[REDACTED]")
            .field("deployments", &self.deployments)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl ApiToken {
    /// Whether this token may use `deployment` for `scope`: 403 `forbidden` if not.
    pub fn allow(&self, deployment: &DeploymentRef, scope: Scope) -> Result<(), GatewayError> {
        if !self.scopes.contains(&scope) {
            return Err(GatewayError::Forbidden(format!(
                "token {} lacks the {} scope",
                self.name,
                scope.as_str()
            )));
        }
        if !self.may_use(deployment) {
            return Err(GatewayError::Forbidden(format!(
                "token {} may not use deployment {deployment}",
                self.name
            )));
        }
        Ok(())
    }

    /// Whether `deployment` is among this token's deployments.
    pub fn may_use(&self, deployment: &DeploymentRef) -> bool {
        self.deployments.iter().any(|pattern| {
            pattern == "*"
                || match pattern.strip_suffix("/*") {
                    Some(flow) => flow == deployment.flow(),
                    None => *pattern == deployment.to_string(),
                }
        })
    }

    /// Whether the token has `scope` (for calls not tied to one deployment).
    pub fn has(&self, scope: Scope) -> Result<(), GatewayError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(format!(
                "token {} lacks the {} scope",
                self.name,
                scope.as_str()
            )))
        }
    }
}

/// The configured tokens whose secret is set.
#[derive(Debug, Default)]
pub struct ApiTokens(Vec<ApiToken>);

impl ApiTokens {
    /// Compiles `[[api.tokens]]`: a token whose secret is not set (its variable and file
    /// unset) is off; an empty secret, an unknown scope or a malformed deployment pattern is
    /// a configuration error.
    pub fn compile(
        settings: &[ApiTokenSettings],
        env: EnvLookup<'_>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut tokens = Vec::new();
        for (i, t) in settings.iter().enumerate() {
            let path = format!("api.tokens[{i}]");
            let issue = |field: &str, message: String| ConfigIssue {
                path: format!("{path}.{field}"),
                message,
            };
            let mut scopes = Vec::new();
            for raw in &t.scopes {
                match Scope::parse(raw) {
                    Some(s) => scopes.push(s),
                    None => issues.push(issue(
                        "scopes",
                        format!("unknown scope {raw:?}; use trigger, read, cancel, manage"),
                    )),
                }
            }
            for raw in &t.deployments {
                let ok = raw == "*"
                    || raw.strip_suffix("/*").map_or_else(
                        || DeploymentRef::parse(raw).is_ok(),
                        |f| !f.is_empty() && !f.contains('/'),
                    );
                if !ok {
                    issues.push(issue(
                        "deployments",
                        format!("{raw:?} is not flow/deployment, flow/* or *"),
                    ));
                }
            }
            match secret(t, env) {
                Ok(Some(secret)) => tokens.push(ApiToken {
                    name: t.name.clone(),
                    secret,
                    deployments: t.deployments.clone(),
                    scopes,
                }),
                Ok(None) => {}
                Err(message) => issues.push(issue("secret", message)),
            }
        }
        if issues.is_empty() {
            Ok(Self(tokens))
        } else {
            Err(issues)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| t.name.as_str())
    }

    /// The token the request's `Authorization: Bearer` names: 404 when the API has no token
    /// at all, 401 `invalid_token` when it matches none (compared in constant time, each).
    pub fn authenticate(
        &self,
        headers: &actix_web::http::header::HeaderMap,
    ) -> Result<&ApiToken, GatewayError> {
        if self.0.is_empty() {
            return Err(GatewayError::NotFound);
        }
        let given = headers
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(GatewayError::InvalidToken)?;
        let mut found = None;
        for token in &self.0 {
            let same: bool = token
                .secret
                .expose_secret()
                .as_bytes()
                .ct_eq(given.as_bytes())
                .into();
            if same && found.is_none() {
                found = Some(token);
            }
        }
        found.ok_or(GatewayError::InvalidToken)
    }
}

/// The token's secret: `env` (or the file named by `{env}_FILE`), or `file`; `None` if unset.
fn secret(t: &ApiTokenSettings, env: EnvLookup<'_>) -> Result<Option<SecretString>, String> {
    let value = match (&t.env, &t.file) {
        (Some(var), _) => match env(var) {
            Some(v) => Some(v),
            None => match env(&format!("{var}_FILE")) {
                Some(path) => Some(
                    read_secret_file(Path::new(&path))
                        .map_err(|e| format!("cannot read {var}_FILE {path}: {e}"))?,
                ),
                None => None,
            },
        },
        (None, Some(path)) => Some(
            read_secret_file(Path::new(path)).map_err(|e| format!("cannot read {path}: {e}"))?,
        ),
        (None, None) => return Err("set env or file".into()),
    };
    match value {
        Some(v) if v.is_empty() => Err("the secret is empty".into()),
        Some(v) if v.len() < 16 => Err("the secret is shorter than 16 characters".into()),
        Some(v) => Ok(Some(SecretString::from(v))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests;
