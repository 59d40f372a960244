//! A route as written in the configuration file. `route_table::compile` turns it into a
//! checked `Route`, collecting every problem with its path.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ratelimit::LimitSettings;

/// One route: `POST /hooks/{name}` → a Prefect deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// Target deployment, `flow-name/deployment-name` (unless the route lists `targets`).
    pub deployment: Option<String>,
    /// Authentication: `"none"` (said explicitly) or a table, see `AuthSettings`.
    pub auth: serde_json::Value,
    /// Client networks allowed to call this route (CIDRs); empty allows all.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// Rate of this route as a whole, after authentication.
    pub limit: Option<LimitSettings>,
    /// Cross-origin access for browsers (website forms).
    pub cors: Option<CorsSettings>,
    /// A field real users never fill; a request that fills it gets 202 and starts nothing.
    pub honeypot: Option<String>,
    /// When Prefect cannot take a request now: true (default) stores it and answers 202
    /// `queued`; false answers the upstream error (for callers that need the run id at once).
    #[serde(default = "default_queue")]
    pub queue: bool,
    /// This route's share of deliveries from the outbox, against other routes' shares: while
    /// several routes have requests waiting, each gets Prefect in proportion to its share.
    #[serde(default = "default_share")]
    pub share: u32,
    /// Accepted media types: `application/json`, `application/x-www-form-urlencoded`.
    #[serde(default = "default_content_types")]
    pub content_types: Vec<String>,
    /// What to do with fields the route does not declare: `reject` (422) or `drop`.
    #[serde(default = "default_unknown_fields")]
    pub unknown_fields: String,
    /// Body size cap in bytes; defaults to `server.max_body_bytes`.
    pub max_body_bytes: Option<usize>,
    /// Tags put on every flow run of this route.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Flow run name template: `{field}`, `{route}`, `{request_id}` are replaced.
    pub run_name: Option<String>,
    /// Parameters sent with every run, whatever the request says.
    #[serde(default)]
    pub constants: BTreeMap<String, serde_json::Value>,
    /// Accepted input fields and their rules.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSettings>,
    /// Request headers that carry secrets on this route, never stored in the rejection log
    /// (beyond the built-in ones: credentials, cookies, signatures).
    #[serde(default)]
    pub secret_headers: Vec<String>,
    /// Conditions that must all hold for a run to start; otherwise 202 `ignored`.
    #[serde(default)]
    pub filters: Vec<ConditionSettings>,
    /// Several destinations for one endpoint: the first target whose filters all hold gets
    /// the run. A route with targets sets no `deployment`, `fields`, `constants` or `run_name`.
    #[serde(default)]
    pub targets: Vec<TargetSettings>,
}

/// One destination of a route with several: its own filters, deployment and mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// Target deployment, `flow-name/deployment-name`.
    pub deployment: String,
    /// Conditions that must all hold for this target to take the request.
    #[serde(default)]
    pub filters: Vec<ConditionSettings>,
    /// Tags put on this target's runs (besides the route's own `tags`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Flow run name template, as on a route.
    pub run_name: Option<String>,
    /// Parameters sent with every run of this target.
    #[serde(default)]
    pub constants: BTreeMap<String, serde_json::Value>,
    /// Accepted input fields and their rules, as on a route.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSettings>,
}

/// One filter condition: where to look (`path` or `header`) and one test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSettings {
    /// A path into the body, e.g. `data.object.status`.
    pub path: Option<String>,
    /// A request header, e.g. `X-GitHub-Event`.
    pub header: Option<String>,
    /// The value must equal this (a string also matches a form's or header's text of a
    /// number or boolean).
    pub equals: Option<serde_json::Value>,
    /// The value must equal one of these.
    pub one_of: Option<Vec<serde_json::Value>>,
    /// true: the value must be present (and not null); false: it must be absent.
    pub exists: Option<bool>,
    /// A regular expression the whole text value must match.
    pub matches: Option<String>,
}

/// The rule for one input field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSettings {
    /// string, integer, number, boolean, email, url, enum, uuid, object (a JSON object passed
    /// whole: the object at `path`, or the whole body without one).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where in the body the value is: `repository.full_name`, `line_items[0].sku`. Without
    /// `path` or `header`, the top-level key named like the field.
    pub path: Option<String>,
    /// The request header holding the value, e.g. `X-GitHub-Event`.
    pub header: Option<String>,
    /// Largest size of an object value, as compact JSON (default 65536).
    pub max_bytes: Option<usize>,
    /// Whether the field must be present; defaults to true unless `default` is set.
    pub required: Option<bool>,
    /// Value used when an optional field is absent or empty.
    pub default: Option<serde_json::Value>,
    /// Smallest allowed value (integer, number).
    pub min: Option<f64>,
    /// Largest allowed value (integer, number).
    pub max: Option<f64>,
    /// Shortest allowed length in characters (string, email, url, enum).
    pub min_length: Option<u64>,
    /// Longest allowed length in characters (string, email, url, enum).
    pub max_length: Option<u64>,
    /// Regular expression the whole value must match (string).
    pub pattern: Option<String>,
    /// Allowed values (enum).
    pub values: Option<Vec<String>>,
    /// Flow parameter name, when it differs from the field name.
    pub param: Option<String>,
}

fn default_content_types() -> Vec<String> {
    vec![
        "application/json".into(),
        "application/x-www-form-urlencoded".into(),
    ]
}

fn default_queue() -> bool {
    true
}

fn default_share() -> u32 {
    1
}

fn default_unknown_fields() -> String {
    "reject".into()
}

/// `auth = { type = "bearer" | "hmac", … }` on a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// `none`, `bearer` or `hmac`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For hmac: github, stripe, standard-webhooks, shopify, slack or generic.
    pub scheme: Option<String>,
    /// For hmac: the signing secrets (several during rotation).
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    /// For bearer: the accepted tokens.
    #[serde(default)]
    pub tokens: Vec<SecretRef>,
    /// Replay window for timestamped schemes, both ways, in seconds (default 300).
    pub tolerance_secs: Option<u64>,
    /// generic: the signature header.
    pub header: Option<String>,
    /// generic: sha256 (default) or sha512.
    pub algorithm: Option<String>,
    /// generic: hex (default) or base64.
    pub encoding: Option<String>,
    /// generic: text before the signature, e.g. "sha256=".
    pub prefix: Option<String>,
    /// generic: what is signed, e.g. "{timestamp}.{body}" (default: the body).
    pub signed_content: Option<String>,
    /// generic: header carrying the signed timestamp (Unix seconds).
    pub timestamp_header: Option<String>,
    /// generic: header carrying the delivery id.
    pub id_header: Option<String>,
}

/// Where a secret comes from: an environment variable or a file, never the config itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Name of the environment variable holding the secret.
    pub env: Option<String>,
    /// Path of a file holding the secret (trailing newline ignored).
    pub file: Option<String>,
    /// RFC 3339 UTC time after which the secret no longer verifies, e.g. "2026-12-31T00:00:00Z".
    pub expires: Option<String>,
}

/// CORS for a route called from browsers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed, e.g. "https://www.example.com"; "*" allows any (not with credentials).
    pub allowed_origins: Vec<String>,
    /// Extra request headers a browser may send (Content-Type and Idempotency-Key always may).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Whether browsers may send cookies / credentials.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a browser may cache the preflight answer.
    #[serde(default = "default_cors_max_age")]
    pub max_age_secs: u64,
}

fn default_cors_max_age() -> u64 {
    600
}
