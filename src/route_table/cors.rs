//! A route's checked CORS policy.

use crate::configuration::CorsSettings;

use super::compile::Issues;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// `None` allows any origin (`*`).
    origins: Option<Vec<String>>,
    /// Request headers a browser may send, lowercase.
    headers: Vec<String>,
    credentials: bool,
    max_age_secs: u64,
}

impl CorsPolicy {
    /// The value for `Access-Control-Allow-Origin`, if `origin` may call.
    pub fn allow_origin(&self, origin: &str) -> Option<String> {
        match &self.origins {
            None => Some("*".to_owned()),
            Some(list) => list.iter().any(|o| o == origin).then(|| origin.to_owned()),
        }
    }

    /// Whether every header in a preflight's `Access-Control-Request-Headers` is allowed.
    pub fn allows_headers(&self, requested: &str) -> bool {
        requested
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .all(|h| self.headers.contains(&h))
    }

    pub fn allowed_headers(&self) -> String {
        self.headers.join(", ")
    }

    pub fn credentials(&self) -> bool {
        self.credentials
    }

    pub fn max_age_secs(&self) -> u64 {
        self.max_age_secs
    }
}

pub(super) fn compile_cors(
    s: &CorsSettings,
    path: &str,
    issues: &mut Issues,
) -> Option<CorsPolicy> {
    let before = issues.len();
    let any = s.allowed_origins.iter().any(|o| o == "*");
    if s.allowed_origins.is_empty() {
        issues.push(
            format!("{path}.allowed_origins"),
            "must list at least one origin",
        );
    }
    if any && s.allowed_origins.len() > 1 {
        issues.push(
            format!("{path}.allowed_origins"),
            "\"*\" cannot be combined with other origins",
        );
    }
    if any && s.allow_credentials {
        issues.push(
            format!("{path}.allow_credentials"),
            "cannot be true when any origin (\"*\") is allowed",
        );
    }
    for (i, origin) in s.allowed_origins.iter().enumerate() {
        let ok = origin == "*"
            || ((origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && reqwest::Url::parse(origin)
                    .is_ok_and(|u| u.path() == "/" && u.query().is_none()));
        if !ok {
            issues.push(
                format!("{path}.allowed_origins[{i}]"),
                format!("\"{origin}\" is not an origin like https://www.example.com"),
            );
        }
    }
    let mut headers: Vec<String> = vec!["content-type".into(), "idempotency-key".into()];
    for h in &s.allowed_headers {
        let h = h.trim().to_ascii_lowercase();
        if !headers.contains(&h) {
            headers.push(h);
        }
    }
    (issues.len() == before).then(|| CorsPolicy {
        origins: (!any).then(|| s.allowed_origins.clone()),
        headers,
        credentials: s.allow_credentials,
        max_age_secs: s.max_age_secs,
    })
}
