//! Typed, layered configuration: one TOML file, then `FLOWGATE__SECTION__KEY` environment
//! variables, then secrets from the environment. Checked once, at startup, with every problem named.

mod route_settings;
mod secrets;
mod settings;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Url;

pub use route_settings::{
    AuthSettings, ConditionSettings, CorsSettings, FieldSettings, RouteSettings, SecretRef,
    TargetSettings,
};
pub(crate) use secrets::read_secret_file;
pub use secrets::{
    admin_token_from_env, store_password_from_env, PrefectAuth, SecretError, ADMIN_TOKEN_ENV,
    PREFECT_API_KEY_ENV, PREFECT_AUTH_STRING_ENV, STORE_PASSWORD_ENV,
};
pub use settings::{
    AdminSettings, ApiSettings, ApiTokenSettings, DeliverySettings, LimitsSettings, LogFormat,
    PrefectSettings, RejectionSettings, ServerSettings, Settings, StoreSettings, TelemetrySettings,
};

use crate::route_table::{compile_routes, parse_network, ConfigIssue, EnvLookup, RouteTable};

/// The file read when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";
/// Prefix of environment variables that override config keys (`FLOWGATE__SERVER__PORT=9000`).
pub const ENV_PREFIX: &str = "FLOWGATE";

/// A loaded, checked configuration: what the application runs on.
#[derive(Debug, Clone)]
pub struct Configuration {
    pub settings: Settings,
    pub routes: Arc<RouteTable>,
    pub prefect_url: Url,
    pub prefect_auth: PrefectAuth,
    /// CA certificates trusted for an `https://` Prefect besides the system's (`prefect.ca_file`).
    pub prefect_roots: Vec<reqwest::Certificate>,
    /// Bearer token for `/admin/…` on the admin listener; `None` disables those endpoints.
    pub admin_token: Option<secrecy::SecretString>,
    /// Tokens of the internal API (`/api/v1`); empty turns it off.
    pub api_tokens: Arc<crate::api::tokens::ApiTokens>,
    /// The file it was read from (what a reload reads again); `None` when built in code.
    pub source: Option<PathBuf>,
    /// The PostgreSQL store's password (`FLOWGATE_STORE_PASSWORD`), when `store.url` is set.
    pub store_password: Option<secrecy::SecretString>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration from {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: config::ConfigError,
    },
    #[error("{}", Issues(.0))]
    Invalid(Vec<ConfigIssue>),
    #[error("invalid secret: {0}")]
    Secret(#[from] SecretError),
}

impl ConfigError {
    /// Every problem, one per line, each starting with its config path where known.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid(issues) => issues.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

struct Issues<'a>(&'a [ConfigIssue]);

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl Configuration {
    /// The PostgreSQL store to open, when `store.url` is set (else the SQLite file).
    pub fn postgres(&self) -> Option<crate::store::PgConnect> {
        let store = &self.settings.store;
        store.url.as_ref().map(|url| crate::store::PgConnect {
            url: url.clone(),
            password: self.store_password.clone(),
            ca_file: store.ca_file.clone(),
            pool_size: store.pool_size,
            lease: std::time::Duration::from_secs(store.lease_secs),
        })
    }

    /// Reads `path` (or `config/default.toml`), applies environment overrides and secrets.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = path.unwrap_or(Path::new(DEFAULT_CONFIG_PATH)).to_path_buf();
        let settings = read_settings(&path)?;
        let mut config = Self::from_settings(settings, PrefectAuth::from_env()?)?;
        config.admin_token = admin_token_from_env()?;
        config.store_password = store_password_from_env()?;
        config.source = Some(path);
        Ok(config)
    }

    /// Checks already-read settings; route secrets come from the process environment.
    pub fn from_settings(
        settings: Settings,
        prefect_auth: PrefectAuth,
    ) -> Result<Self, ConfigError> {
        Self::from_settings_with_env(settings, prefect_auth, &|name| std::env::var(name).ok())
    }

    /// Checks already-read settings, reading route secrets through `env` (tests inject it).
    pub fn from_settings_with_env(
        settings: Settings,
        prefect_auth: PrefectAuth,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let mut issues = check_settings(&settings);
        for (i, raw) in settings.server.trusted_proxies.iter().enumerate() {
            if let Err(message) = parse_network(raw) {
                issues.push(ConfigIssue {
                    path: format!("server.trusted_proxies[{i}]"),
                    message,
                });
            }
        }
        let routes = match compile_routes(&settings.routes, settings.server.max_body_bytes, env) {
            Ok(routes) => Some(routes),
            Err(route_issues) => {
                issues.extend(route_issues);
                None
            }
        };
        let api_tokens = match crate::api::tokens::ApiTokens::compile(&settings.api.tokens, env) {
            Ok(tokens) => Some(tokens),
            Err(token_issues) => {
                issues.extend(token_issues);
                None
            }
        };
        check_deployments(&settings, &mut issues);
        let prefect_url = parse_api_url(&settings.prefect.api_url, &mut issues);
        let prefect_roots = read_roots(settings.prefect.ca_file.as_deref(), &mut issues);
        match (routes, prefect_url, api_tokens) {
            (Some(routes), Some(prefect_url), Some(api_tokens)) if issues.is_empty() => Ok(Self {
                settings,
                routes: Arc::new(routes),
                prefect_url,
                prefect_auth,
                prefect_roots,
                admin_token: None,
                api_tokens: Arc::new(api_tokens),
                source: None,
                store_password: None,
            }),
            _ => Err(ConfigError::Invalid(issues)),
        }
    }
}

/// Reads one TOML file plus `FLOWGATE__…` overrides, without checking the result.
pub fn read_settings(path: &Path) -> Result<Settings, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    config::Config::builder()
        .add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        )
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .map_err(read_error)?
        .try_deserialize::<Settings>()
        .map_err(read_error)
}

fn check_settings(s: &Settings) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let mut need = |ok: bool, path: &str, message: &str| {
        if !ok {
            issues.push(ConfigIssue {
                path: path.into(),
                message: message.into(),
            });
        }
    };
    if let Some(url) = &s.store.url {
        match url.parse::<tokio_postgres::Config>() {
            Ok(c) if c.get_password().is_some() => need(
                false,
                "store.url",
                "carries a password; give it in FLOWGATE_STORE_PASSWORD (or _FILE) instead",
            ),
            Ok(_) => {}
            Err(_) => need(
                false,
                "store.url",
                "is not a PostgreSQL URL (postgres://user@host:port/database)",
            ),
        }
    }
    need(
        s.store.pool_size > 0,
        "store.pool_size",
        "must be at least 1",
    );
    need(
        s.store.lease_secs > 0,
        "store.lease_secs",
        "must be at least 1",
    );
    need(
        s.store.url.is_none()
            || s.store.lease_secs.saturating_mul(1000)
                > s.prefect
                    .timeout_ms
                    .saturating_add(s.prefect.request_budget_ms),
        "store.lease_secs",
        "must exceed one delivery attempt (prefect.timeout_ms + prefect.request_budget_ms)",
    );
    let p = &s.prefect;
    need(
        s.server.max_body_bytes > 0,
        "server.max_body_bytes",
        "must be at least 1",
    );
    need(p.timeout_ms > 0, "prefect.timeout_ms", "must be at least 1");
    need(
        p.request_budget_ms > 0,
        "prefect.request_budget_ms",
        "must be at least 1",
    );
    need(
        p.max_in_flight > 0,
        "prefect.max_in_flight",
        "must be at least 1",
    );
    need(
        (1..=p.max_in_flight.max(1)).contains(&p.min_in_flight),
        "prefect.min_in_flight",
        "must be at least 1 and at most prefect.max_in_flight",
    );
    need(
        p.retry_attempts > 0,
        "prefect.retry_attempts",
        "must be at least 1 (1 = no retry)",
    );
    need(
        p.retry_base_delay_ms <= p.retry_max_delay_ms,
        "prefect.retry_base_delay_ms",
        "must not exceed prefect.retry_max_delay_ms",
    );
    need(
        p.deployment_cache_ttl_secs > 0,
        "prefect.deployment_cache_ttl_secs",
        "must be at least 1",
    );
    need(
        p.deployment_cache_capacity > 0,
        "prefect.deployment_cache_capacity",
        "must be at least 1",
    );
    issues
}

fn parse_api_url(raw: &str, issues: &mut Vec<ConfigIssue>) -> Option<Url> {
    let mut push = |message: String| {
        issues.push(ConfigIssue {
            path: "prefect.api_url".into(),
            message,
        })
    };
    match Url::parse(raw) {
        Ok(url) if url.scheme() != "http" && url.scheme() != "https" => {
            push("must be an http or https URL".into());
            None
        }
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            push(format!(
                "must not carry credentials; use {PREFECT_AUTH_STRING_ENV}"
            ));
            None
        }
        Ok(url) => Some(url),
        Err(e) => {
            push(format!("is not a URL: {e}"));
            None
        }
    }
}

/// The certificates of `prefect.ca_file` (PEM, one or more), checked at load.
fn read_roots(path: Option<&Path>, issues: &mut Vec<ConfigIssue>) -> Vec<reqwest::Certificate> {
    let Some(path) = path else {
        return Vec::new();
    };
    let mut push = |message: String| {
        issues.push(ConfigIssue {
            path: "prefect.ca_file".into(),
            message,
        })
    };
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(e) => {
            push(format!("cannot read {}: {e}", path.display()));
            return Vec::new();
        }
    };
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(roots) if !roots.is_empty() => roots,
        Ok(_) => {
            push(format!("{} holds no PEM certificate", path.display()));
            Vec::new()
        }
        Err(e) => {
            push(format!(
                "{} is not a PEM certificate bundle: {e}",
                path.display()
            ));
            Vec::new()
        }
    }
}

/// `[deployments."flow/name"]`: each name a deployment name, each desired state checked as a
/// PUT of the lifecycle API checks it.
fn check_deployments(settings: &Settings, issues: &mut Vec<ConfigIssue>) {
    if settings.api.deployments_resync_secs == 0 {
        issues.push(ConfigIssue {
            path: "api.deployments_resync_secs".into(),
            message: "must be at least 1".into(),
        });
    }
    for (name, desired) in &settings.deployments {
        let at = format!("deployments.\"{name}\"");
        if let Err(e) = crate::domain::DeploymentRef::parse(name) {
            issues.push(ConfigIssue {
                path: at.clone(),
                message: format!("not a flow/deployment name: {e}"),
            });
        }
        for e in desired.check() {
            issues.push(ConfigIssue {
                path: format!("{at}.{}", e.field),
                message: e.message.to_string(),
            });
        }
    }
}
