//! A route as written in the configuration file. `route_table::compile` turns it into a
//! checked `Route`, collecting every problem with its path.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One route: `POST /hooks/{name}` → a Prefect deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// Target deployment, `flow-name/deployment-name`.
    pub deployment: String,
    /// Authentication; only `none` so far, and it must be said explicitly.
    pub auth: String,
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
}

/// The rule for one input field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSettings {
    /// string, integer, number, boolean, email, url, enum, uuid.
    #[serde(rename = "type")]
    pub kind: String,
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

fn default_unknown_fields() -> String {
    "reject".into()
}
