//! Compiles a route's `auth` into a `RouteAuth`, reading secrets from the environment or files.

use std::time::UNIX_EPOCH;

use actix_web::http::header::HeaderName;
use secrecy::SecretString;
use serde_json::Value;

use super::compile::Issues;
use crate::configuration::{read_secret_file, AuthSettings, SecretRef};
use crate::signature::{Algorithm, Encoding, GenericScheme, Scheme, SigningKey};

/// Default replay window of timestamped schemes, seconds.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// How a route authenticates its senders.
#[derive(Debug)]
pub enum RouteAuth {
    /// Said explicitly: anyone may call.
    None,
    /// `Authorization: Bearer <token>`, any of the tokens.
    Bearer { tokens: Vec<SigningKey> },
    /// An HMAC signature over the raw body.
    Hmac {
        scheme: Scheme,
        keys: Vec<SigningKey>,
        tolerance: u64,
    },
}

impl RouteAuth {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer { .. } => "bearer",
            Self::Hmac { .. } => "hmac",
        }
    }

    /// Secrets or tokens that verify at `now`.
    pub fn active_keys(&self, now: i64) -> Vec<&SigningKey> {
        match self {
            Self::None => vec![],
            Self::Bearer { tokens: keys } | Self::Hmac { keys, .. } => {
                keys.iter().filter(|k| k.is_active(now)).collect()
            }
        }
    }
}

/// Reads an environment variable (injected so tests need not touch the process environment).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(super) fn compile_auth(
    raw: &Value,
    path: &str,
    env: EnvLookup<'_>,
    issues: &mut Issues,
) -> Option<RouteAuth> {
    let path = format!("{path}.auth");
    if raw.as_str() == Some("none") {
        return Some(RouteAuth::None);
    }
    if !raw.is_object() {
        issues.push(
            &path,
            "must be \"none\" or a table with type = \"bearer\" or \"hmac\"",
        );
        return None;
    }
    let settings: AuthSettings = match serde_path_to_error::deserialize(raw.clone()) {
        Ok(s) => s,
        Err(e) => {
            let at = e.path().to_string();
            let at = if at == "." {
                path.clone()
            } else {
                format!("{path}.{at}")
            };
            issues.push(at, e.into_inner().to_string());
            return None;
        }
    };
    let before = issues.len();
    let auth = match settings.kind.as_str() {
        "none" => RouteAuth::None,
        "bearer" => {
            if settings.tokens.is_empty() {
                issues.push(
                    format!("{path}.tokens"),
                    "a bearer route needs at least one token",
                );
            }
            RouteAuth::Bearer {
                tokens: read_keys(
                    &settings.tokens,
                    &format!("{path}.tokens"),
                    false,
                    env,
                    issues,
                ),
            }
        }
        "hmac" => {
            let scheme = compile_scheme(&settings, &path, issues)?;
            if settings.secrets.is_empty() {
                issues.push(
                    format!("{path}.secrets"),
                    "an hmac route needs at least one secret",
                );
            }
            let keys = read_keys(
                &settings.secrets,
                &format!("{path}.secrets"),
                scheme.decodes_base64_key(),
                env,
                issues,
            );
            RouteAuth::Hmac {
                scheme,
                keys,
                tolerance: settings.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS),
            }
        }
        other => {
            issues.push(
                format!("{path}.type"),
                format!("unknown auth type \"{other}\"; expected none, bearer or hmac"),
            );
            return None;
        }
    };
    (issues.len() == before).then_some(auth)
}

fn compile_scheme(s: &AuthSettings, path: &str, issues: &mut Issues) -> Option<Scheme> {
    let scheme = match s.scheme.as_deref() {
        Some("github") => Scheme::Github,
        Some("stripe") => Scheme::Stripe,
        Some("standard-webhooks" | "svix") => Scheme::StandardWebhooks,
        Some("shopify") => Scheme::Shopify,
        Some("slack") => Scheme::Slack,
        Some("generic") => return compile_generic(s, path, issues).map(Scheme::Generic),
        Some(other) => {
            issues.push(
                format!("{path}.scheme"),
                format!("unknown scheme \"{other}\"; expected github, stripe, standard-webhooks, shopify, slack or generic"),
            );
            return None;
        }
        None => {
            issues.push(format!("{path}.scheme"), "an hmac route needs a scheme");
            return None;
        }
    };
    for (key, set) in [
        ("header", s.header.is_some()),
        ("algorithm", s.algorithm.is_some()),
        ("encoding", s.encoding.is_some()),
        ("prefix", s.prefix.is_some()),
        ("signed_content", s.signed_content.is_some()),
        ("timestamp_header", s.timestamp_header.is_some()),
        ("id_header", s.id_header.is_some()),
    ] {
        if set {
            issues.push(
                format!("{path}.{key}"),
                "applies to scheme = \"generic\" only",
            );
        }
    }
    Some(scheme)
}

fn compile_generic(s: &AuthSettings, path: &str, issues: &mut Issues) -> Option<GenericScheme> {
    let Some(header) = s.header.as_deref() else {
        issues.push(
            format!("{path}.header"),
            "a generic scheme needs the signature header name",
        );
        return None;
    };
    let algorithm = match s.algorithm.as_deref().unwrap_or("sha256") {
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        other => {
            issues.push(
                format!("{path}.algorithm"),
                format!("must be sha256 or sha512, not \"{other}\""),
            );
            return None;
        }
    };
    let encoding = match s.encoding.as_deref().unwrap_or("hex") {
        "hex" => Encoding::Hex,
        "base64" => Encoding::Base64,
        other => {
            issues.push(
                format!("{path}.encoding"),
                format!("must be hex or base64, not \"{other}\""),
            );
            return None;
        }
    };
    let names = [
        ("header", Some(header)),
        ("timestamp_header", s.timestamp_header.as_deref()),
        ("id_header", s.id_header.as_deref()),
    ];
    let mut valid = true;
    for (key, name) in names {
        if name.is_some_and(|n| HeaderName::from_bytes(n.as_bytes()).is_err()) {
            issues.push(format!("{path}.{key}"), "is not a valid header name");
            valid = false;
        }
    }
    if !valid {
        return None;
    }
    GenericScheme::new(
        header,
        algorithm,
        encoding,
        s.prefix.as_deref(),
        s.signed_content.as_deref(),
        s.timestamp_header.as_deref(),
        s.id_header.as_deref(),
    )
    .map_err(|e| issues.push(format!("{path}.signed_content"), e))
    .ok()
}

fn read_keys(
    refs: &[SecretRef],
    path: &str,
    whsec: bool,
    env: EnvLookup<'_>,
    issues: &mut Issues,
) -> Vec<SigningKey> {
    let mut keys = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let expires = match r.expires.as_deref().map(parse_expiry) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                issues.push(format!("{at}.expires"), e);
                continue;
            }
            None => None,
        };
        let (label, secret) = match (&r.env, &r.file) {
            (Some(var), None) => match env(var) {
                Some(v) if !v.is_empty() => (format!("env:{var}"), v),
                _ => {
                    issues.push(
                        format!("{at}.env"),
                        format!("environment variable {var} is not set"),
                    );
                    continue;
                }
            },
            (None, Some(file)) => match read_secret_file(std::path::Path::new(file)) {
                Ok(v) if !v.is_empty() => (format!("file:{file}"), v),
                Ok(_) => {
                    issues.push(format!("{at}.file"), format!("{file} is empty"));
                    continue;
                }
                Err(e) => {
                    issues.push(format!("{at}.file"), format!("cannot read {file}: {e}"));
                    continue;
                }
            },
            _ => {
                issues.push(&at, "set exactly one of env or file");
                continue;
            }
        };
        let secret = SecretString::from(secret);
        if whsec {
            match SigningKey::from_whsec(label, &secret, expires) {
                Ok(k) => keys.push(k),
                Err(e) => issues.push(&at, format!("the secret {e}")),
            }
        } else {
            keys.push(SigningKey::from_text(label, &secret, expires));
        }
    }
    keys
}

fn parse_expiry(raw: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339(raw)
        .map_err(|_| format!("\"{raw}\" is not an RFC 3339 UTC time like 2026-12-31T00:00:00Z"))?;
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "must be after 1970".to_owned())?;
    i64::try_from(secs.as_secs()).map_err(|_| "is too far in the future".to_owned())
}
