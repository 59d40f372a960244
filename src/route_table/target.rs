//! What a route (or one of its targets) does with an accepted request: the deployment, the
//! field mapping, tags, run name and constants; and the targets of a route with several.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::compile::Issues;
use super::compile_field::{check_parameter_names, compile_field};
use super::field::FieldRule;
use super::filter::{compile_filter, Filter};
use super::template::{RunNameTemplate, BUILTIN_PLACEHOLDERS};
use super::Route;
use crate::configuration::{FieldSettings, RouteSettings};
use crate::domain::DeploymentRef;

/// One destination of a route with several: the first whose filter holds takes the request.
#[derive(Debug)]
pub struct Target {
    pub(crate) filter: Filter,
    /// The route as this target maps it: its deployment, fields, tags, run name, constants.
    pub(crate) route: Arc<Route>,
}

impl Target {
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    pub fn route(&self) -> &Arc<Route> {
        &self.route
    }
}

/// Why an authentic, well-formed request started nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredReason {
    /// A condition of the route's `filters` did not hold.
    Filtered,
    /// No target's filters held.
    NoMatchingTarget,
}

impl IgnoredReason {
    pub const ALL: [Self; 2] = [Self::Filtered, Self::NoMatchingTarget];

    /// The stable word in answers and metric labels.
    pub fn code(self) -> &'static str {
        match self {
            Self::Filtered => "filtered",
            Self::NoMatchingTarget => "no_matching_target",
        }
    }
}

/// Requests a route ignored since start, by reason (read by `/metrics`).
#[derive(Debug, Default)]
pub struct IgnoredCounts {
    filtered: AtomicU64,
    no_matching_target: AtomicU64,
}

impl IgnoredCounts {
    /// Continues `before`'s counts (the same route in the previous configuration).
    pub(crate) fn continue_from(&self, before: &IgnoredCounts) {
        for reason in IgnoredReason::ALL {
            self.counter(reason)
                .fetch_add(before.get(reason), std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn counter(&self, reason: IgnoredReason) -> &AtomicU64 {
        match reason {
            IgnoredReason::Filtered => &self.filtered,
            IgnoredReason::NoMatchingTarget => &self.no_matching_target,
        }
    }

    pub fn count(&self, reason: IgnoredReason) {
        self.counter(reason).fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, reason: IgnoredReason) -> u64 {
        self.counter(reason).load(Ordering::Relaxed)
    }
}

/// A compiled mapping: where runs go and how fields become parameters.
pub(super) struct Mapping {
    pub(super) deployment: Option<DeploymentRef>,
    pub(super) fields: Vec<FieldRule>,
    pub(super) run_name: Option<RunNameTemplate>,
    pub(super) constants: BTreeMap<String, Value>,
    pub(super) tags: Vec<String>,
}

/// The parts of a route or target that make up its mapping, as configured.
pub(super) struct MappingSettings<'s> {
    /// `None` only for a route with targets (which then has no deployment of its own).
    pub(super) deployment: Option<&'s str>,
    pub(super) fields: &'s BTreeMap<String, FieldSettings>,
    pub(super) run_name: Option<&'s String>,
    pub(super) constants: &'s BTreeMap<String, Value>,
    pub(super) tags: &'s [String],
}

pub(super) fn compile_mapping(m: MappingSettings<'_>, path: &str, issues: &mut Issues) -> Mapping {
    let deployment = m.deployment.and_then(|raw| {
        DeploymentRef::parse(raw)
            .map_err(|e| issues.push(format!("{path}.deployment"), e.to_string()))
            .ok()
    });
    for (i, tag) in m.tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.len() > 200 {
            issues.push(
                format!("{path}.tags[{i}]"),
                "must be 1 to 200 characters, not blank",
            );
        }
    }
    let fields: Vec<FieldRule> = m
        .fields
        .iter()
        .filter_map(|(fname, f)| compile_field(fname, f, &format!("{path}.fields.{fname}"), issues))
        .collect();
    check_parameter_names(&fields, m.constants, path, issues);
    let run_name = m.run_name.and_then(|raw| {
        let mut known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        known.extend(BUILTIN_PLACEHOLDERS);
        RunNameTemplate::parse(raw, &known)
            .map_err(|e| issues.push(format!("{path}.run_name"), e))
            .ok()
    });
    Mapping {
        deployment,
        fields,
        run_name,
        constants: m.constants.clone(),
        tags: m.tags.to_vec(),
    }
}

/// A route's targets, each with its filter and mapping. A route with targets keeps its
/// deployment and mapping in them, so setting those on the route too is an issue.
pub(super) fn compile_targets(
    s: &RouteSettings,
    path: &str,
    issues: &mut Issues,
) -> Vec<(Filter, Mapping)> {
    if s.targets.is_empty() {
        return Vec::new();
    }
    let set_on_route = [
        ("deployment", s.deployment.is_some()),
        ("fields", !s.fields.is_empty()),
        ("constants", !s.constants.is_empty()),
        ("run_name", s.run_name.is_some()),
    ];
    for (key, set) in set_on_route {
        if set {
            issues.push(
                format!("{path}.{key}"),
                "a route with targets sets this in each target",
            );
        }
    }
    s.targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("{path}.targets[{i}]");
            let filter = compile_filter(&t.filters, &format!("{at}.filters"), issues);
            let mapping = compile_mapping(
                MappingSettings {
                    deployment: Some(&t.deployment),
                    fields: &t.fields,
                    run_name: t.run_name.as_ref(),
                    constants: &t.constants,
                    tags: &t.tags,
                },
                &at,
                issues,
            );
            (filter, mapping)
        })
        .collect()
}
