//! Turns `RouteSettings` into checked `Route`s, collecting every problem with its config path.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;

use super::auth::{compile_auth, EnvLookup};
use super::cors::compile_cors;
use super::filter::compile_filter;
use super::target::{compile_mapping, compile_targets, IgnoredCounts, MappingSettings, Target};
use super::{ContentKind, Route, RouteTable, UnknownFields};
use crate::configuration::RouteSettings;
use crate::domain::RouteName;
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

    pub(super) fn into_vec(self) -> Vec<ConfigIssue> {
        self.0
    }

    #[cfg(test)]
    pub(super) fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
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
    if !(1..=MAX_SHARE).contains(&s.share) {
        issues.push(
            format!("{path}.share"),
            format!("must be between 1 and {MAX_SHARE}"),
        );
    }
    let limiter = s.limit.as_ref().and_then(|l| match l.quota() {
        Some(quota) => Some(Arc::new(KeyedLimiter::new(quota))),
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
    let targets = compile_targets(s, path, issues);
    let mapping = compile_mapping(
        MappingSettings {
            deployment: s.deployment.as_deref(),
            fields: &s.fields,
            run_name: s.run_name.as_ref(),
            constants: &s.constants,
            tags: &s.tags,
        },
        path,
        issues,
    );
    if s.deployment.is_none() && s.targets.is_empty() {
        issues.push(
            format!("{path}.deployment"),
            "is required (or list `targets`, each with its deployment)",
        );
    }
    // A route with targets shows its first target's deployment in listings.
    let deployment = mapping.deployment.or_else(|| {
        targets
            .first()
            .and_then(|(_, first)| first.deployment.clone())
    });
    let filter = compile_filter(&s.filters, &format!("{path}.filters"), issues);
    if let Some(field) = &s.honeypot {
        let taken =
            s.fields.contains_key(field) || s.targets.iter().any(|t| t.fields.contains_key(field));
        if field.is_empty() || taken {
            issues.push(
                format!("{path}.honeypot"),
                "must name a field that is not one of the route's fields",
            );
        }
    }
    if issues.len() > before {
        return None;
    }
    let route = Route {
        name: route_name?,
        deployment: deployment?,
        auth: Arc::new(auth?),
        allow_ips,
        limiter,
        limit: s.limit,
        cors,
        honeypot: s.honeypot.clone(),
        queue: s.queue,
        share: s.share,
        content_types,
        unknown_fields,
        max_body_bytes,
        tags: mapping.tags,
        run_name: mapping.run_name,
        constants: mapping.constants,
        fields: mapping.fields,
        filter,
        targets: Vec::new(),
        ignored: IgnoredCounts::default(),
        secret_headers: s
            .secret_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        queue_missing: true,
    };
    let targets = targets
        .into_iter()
        .filter_map(|(filter, mapping)| {
            Some(Target {
                filter,
                route: Arc::new(route.for_target(mapping)?),
            })
        })
        .collect();
    Some(Route { targets, ..route })
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

/// A CIDR (`10.0.0.0/8`) or a single address (`192.0.2.7`).
pub fn parse_network(raw: &str) -> Result<IpNet, String> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("\"{raw}\" is not an IP address or CIDR network"))
}
