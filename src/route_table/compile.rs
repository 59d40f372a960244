//! Turns `RouteSettings` into checked `Route`s, collecting every problem with its config path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use ipnet::IpNet;

use super::auth::{compile_auth, EnvLookup};
use super::cors::compile_cors;
use super::field::{FieldKind, FieldRule, Presence};
use super::template::{RunNameTemplate, BUILTIN_PLACEHOLDERS};
use super::{ContentKind, Route, RouteTable, UnknownFields};
use crate::configuration::{FieldSettings, RouteSettings};
use crate::domain::{DeploymentRef, RouteName};
use crate::ratelimit::KeyedLimiter;

/// Largest body a route may accept.
const MAX_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Largest delivery share of a route (shares are relative weights).
const MAX_SHARE: u32 = 1000;

/// One configuration problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects issues while compiling.
#[derive(Default)]
pub(super) struct Issues(Vec<ConfigIssue>);

impl Issues {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Compiles every route; returns all issues found, not only the first.
pub fn compile_routes(
    routes: &BTreeMap<String, RouteSettings>,
    default_max_body: usize,
    env: EnvLookup<'_>,
) -> Result<RouteTable, Vec<ConfigIssue>> {
    let mut issues = Issues::default();
    let mut table = BTreeMap::new();
    for (name, settings) in routes {
        let path = format!("routes.{name}");
        if let Some(route) =
            compile_route(name, settings, default_max_body, &path, env, &mut issues)
        {
            table.insert(name.clone(), Arc::new(route));
        }
    }
    if issues.0.is_empty() {
        Ok(RouteTable { routes: table })
    } else {
        Err(issues.0)
    }
}

fn compile_route(
    name: &str,
    s: &RouteSettings,
    default_max_body: usize,
    path: &str,
    env: EnvLookup<'_>,
    issues: &mut Issues,
) -> Option<Route> {
    let before = issues.0.len();
    let route_name = RouteName::parse(name)
        .map_err(|e| issues.push(path, format!("route name {e}")))
        .ok();
    let deployment = DeploymentRef::parse(&s.deployment)
        .map_err(|e| issues.push(format!("{path}.deployment"), e.to_string()))
        .ok();
    let auth = compile_auth(&s.auth, path, env, issues);
    let allow_ips: Vec<IpNet> = s
        .allow_ips
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            parse_network(raw)
                .map_err(|e| issues.push(format!("{path}.allow_ips[{i}]"), e))
                .ok()
        })
        .collect();
    let content_types = content_types(&s.content_types, path, issues);
    let unknown_fields = match s.unknown_fields.as_str() {
        "reject" => UnknownFields::Reject,
        "drop" => UnknownFields::Drop,
        other => {
            issues.push(
                format!("{path}.unknown_fields"),
                format!("must be \"reject\" or \"drop\", not \"{other}\""),
            );
            UnknownFields::Reject
        }
    };
    let max_body_bytes = s.max_body_bytes.unwrap_or(default_max_body);
    if max_body_bytes == 0 || max_body_bytes > MAX_BODY_LIMIT {
        issues.push(
            format!("{path}.max_body_bytes"),
            format!("must be between 1 and {MAX_BODY_LIMIT}"),
        );
    }
    for (i, tag) in s.tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.len() > 200 {
            issues.push(
                format!("{path}.tags[{i}]"),
                "must be 1 to 200 characters, not blank",
            );
        }
    }
    if !(1..=MAX_SHARE).contains(&s.share) {
        issues.push(
            format!("{path}.share"),
            format!("must be between 1 and {MAX_SHARE}"),
        );
    }
    let limiter = s.limit.as_ref().and_then(|l| match l.quota() {
        Some(quota) => Some(KeyedLimiter::new(quota)),
        None => {
            issues.push(
                format!("{path}.limit"),
                "per_minute and burst must be at least 1",
            );
            None
        }
    });
    let cors = s
        .cors
        .as_ref()
        .and_then(|c| compile_cors(c, &format!("{path}.cors"), issues));
    if let Some(field) = &s.honeypot {
        if field.is_empty() || s.fields.contains_key(field) {
            issues.push(
                format!("{path}.honeypot"),
                "must name a field that is not one of the route's fields",
            );
        }
    }
    let fields: Vec<FieldRule> = s
        .fields
        .iter()
        .filter_map(|(fname, f)| compile_field(fname, f, &format!("{path}.fields.{fname}"), issues))
        .collect();
    check_parameter_names(&fields, &s.constants, path, issues);
    let run_name = s.run_name.as_ref().and_then(|raw| {
        let mut known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        known.extend(BUILTIN_PLACEHOLDERS);
        RunNameTemplate::parse(raw, &known)
            .map_err(|e| issues.push(format!("{path}.run_name"), e))
            .ok()
    });
    if issues.0.len() > before {
        return None;
    }
    Some(Route {
        name: route_name?,
        deployment: deployment?,
        auth: auth?,
        allow_ips,
        limiter,
        cors,
        honeypot: s.honeypot.clone(),
        queue: s.queue,
        share: s.share,
        content_types,
        unknown_fields,
        max_body_bytes,
        tags: s.tags.clone(),
        run_name,
        constants: s.constants.clone(),
        fields,
        secret_headers: s
            .secret_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        queue_missing: true,
    })
}

fn content_types(raw: &[String], path: &str, issues: &mut Issues) -> Vec<ContentKind> {
    if raw.is_empty() {
        issues.push(
            format!("{path}.content_types"),
            "must list at least one media type",
        );
    }
    let mut kinds = Vec::new();
    for (i, media) in raw.iter().enumerate() {
        match ContentKind::parse(media) {
            Some(kind) if kinds.contains(&kind) => {
                issues.push(format!("{path}.content_types[{i}]"), "is listed twice")
            }
            Some(kind) => kinds.push(kind),
            None => issues.push(
                format!("{path}.content_types[{i}]"),
                format!(
                    "unsupported media type \"{media}\"; supported: application/json, application/x-www-form-urlencoded"
                ),
            ),
        }
    }
    kinds
}

/// Two fields (or a field and a constant) must not become the same flow parameter.
fn check_parameter_names(
    fields: &[FieldRule],
    constants: &BTreeMap<String, serde_json::Value>,
    path: &str,
    issues: &mut Issues,
) {
    let mut seen = BTreeSet::new();
    for f in fields {
        if !seen.insert(f.param.as_str()) {
            issues.push(
                format!("{path}.fields.{}.param", f.name),
                format!("parameter \"{}\" is already set by another field", f.param),
            );
        }
    }
    for key in constants.keys() {
        if !is_parameter_name(key) {
            issues.push(
                format!("{path}.constants.{key}"),
                "is not a valid parameter name",
            );
        } else if seen.contains(key.as_str()) {
            issues.push(
                format!("{path}.constants.{key}"),
                "is also set by a field; a parameter has one source",
            );
        }
    }
}

/// Flow parameters are Python identifiers.
fn is_parameter_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn compile_field(
    name: &str,
    f: &FieldSettings,
    path: &str,
    issues: &mut Issues,
) -> Option<FieldRule> {
    let before = issues.0.len();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        issues.push(path, "field names must be 1 to 128 printable characters");
    }
    let Some(kind) = FieldKind::parse(&f.kind) else {
        issues.push(
            format!("{path}.type"),
            format!(
                "unknown type \"{}\"; expected one of: {}",
                f.kind,
                FieldKind::NAMES.join(", ")
            ),
        );
        return None;
    };
    let param = f.param.clone().unwrap_or_else(|| name.to_owned());
    if !is_parameter_name(&param) {
        let at = if f.param.is_some() {
            format!("{path}.param")
        } else {
            path.to_owned()
        };
        issues.push(
            at,
            format!("\"{param}\" is not a valid flow parameter name; set `param`"),
        );
    }
    check_bounds(kind, f, path, issues);
    let pattern = f.pattern.as_ref().and_then(|p| {
        if kind != FieldKind::String {
            issues.push(format!("{path}.pattern"), "applies to string fields only");
            return None;
        }
        Regex::new(&format!("^(?:{p})$"))
            .map_err(|e| {
                issues.push(
                    format!("{path}.pattern"),
                    format!("invalid regular expression: {e}"),
                )
            })
            .ok()
    });
    let values = match (&f.values, kind) {
        (Some(v), FieldKind::Enum) if v.is_empty() => {
            issues.push(format!("{path}.values"), "must list at least one value");
            vec![]
        }
        (Some(v), FieldKind::Enum) => v.clone(),
        (None, FieldKind::Enum) => {
            issues.push(
                format!("{path}.values"),
                "an enum field needs its list of values",
            );
            vec![]
        }
        (Some(_), _) => {
            issues.push(format!("{path}.values"), "applies to enum fields only");
            vec![]
        }
        (None, _) => vec![],
    };
    let mut rule = FieldRule {
        name: name.to_owned(),
        param,
        kind,
        presence: Presence::Required,
        min: f.min,
        max: f.max,
        min_length: f.min_length,
        max_length: f.max_length,
        pattern,
        values,
    };
    rule.presence = match (f.required, &f.default) {
        (Some(true), Some(_)) => {
            issues.push(
                format!("{path}.default"),
                "a required field cannot have a default",
            );
            Presence::Required
        }
        (_, Some(default)) => match rule.check(default) {
            Ok(typed) => Presence::Optional(Some(typed)),
            Err(msg) => {
                issues.push(format!("{path}.default"), format!("the default {msg}"));
                Presence::Required
            }
        },
        (Some(false), None) => Presence::Optional(None),
        (Some(true) | None, None) => Presence::Required,
    };
    (issues.0.len() == before).then_some(rule)
}

fn check_bounds(kind: FieldKind, f: &FieldSettings, path: &str, issues: &mut Issues) {
    for (key, value) in [("min", f.min), ("max", f.max)] {
        let Some(v) = value else { continue };
        if !kind.is_numeric() {
            issues.push(
                format!("{path}.{key}"),
                "applies to integer and number fields only",
            );
        } else if !v.is_finite() || (kind == FieldKind::Integer && v.fract() != 0.0) {
            issues.push(
                format!("{path}.{key}"),
                format!("must be a finite {}", kind.name()),
            );
        }
    }
    if let (Some(lo), Some(hi)) = (f.min, f.max) {
        if lo > hi {
            issues.push(format!("{path}.min"), "is greater than max");
        }
    }
    for (key, value) in [("min_length", f.min_length), ("max_length", f.max_length)] {
        if value.is_some() && !kind.is_textual() {
            issues.push(
                format!("{path}.{key}"),
                "applies to string, email, url and enum fields only",
            );
        }
    }
    if let (Some(lo), Some(hi)) = (f.min_length, f.max_length) {
        if lo > hi {
            issues.push(format!("{path}.min_length"), "is greater than max_length");
        }
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (`192.0.2.7`).
pub fn parse_network(raw: &str) -> Result<IpNet, String> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("\"{raw}\" is not an IP address or CIDR network"))
}
