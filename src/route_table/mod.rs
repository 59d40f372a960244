//! The checked route table: what `POST /hooks/{route}` does for each route.

mod auth;
mod compile;
mod compile_field;
mod cors;
mod email;
mod field;
#[cfg(test)]
mod field_props;
mod filter;
mod target;
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::domain::{DeploymentRef, RouteName};

pub use auth::{EnvLookup, RouteAuth, DEFAULT_TOLERANCE_SECS};
pub use compile::{compile_routes, parse_network, ConfigIssue};
pub use cors::CorsPolicy;
pub use field::{FieldKind, FieldRule, FieldSource, Presence};
pub use filter::{parse_condition, Condition, Filter};
pub use target::{IgnoredCounts, IgnoredReason, Target};
pub use template::{write_value, RunNameTemplate, BUILTIN_PLACEHOLDERS, MAX_RUN_NAME_CHARS};

/// A body encoding a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Json,
    Form,
}

impl ContentKind {
    /// The kind of a media type, in any letter case.
    pub fn parse(media_type: &str) -> Option<Self> {
        [Self::Json, Self::Form]
            .into_iter()
            .find(|kind| kind.media_type().eq_ignore_ascii_case(media_type))
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// What happens to input fields a route does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFields {
    /// Each one is a validation error (422).
    Reject,
    /// They are ignored.
    Drop,
}

/// One checked route.
#[derive(Debug)]
pub struct Route {
    pub(crate) name: RouteName,
    pub(crate) deployment: DeploymentRef,
    pub(crate) auth: Arc<RouteAuth>,
    pub(crate) allow_ips: Vec<ipnet::IpNet>,
    /// Shared with the route of the same name and rate in the next configuration (reload).
    pub(crate) limiter: Option<Arc<crate::ratelimit::KeyedLimiter<()>>>,
    /// The rate `limiter` enforces.
    pub(crate) limit: Option<crate::ratelimit::LimitSettings>,
    pub(crate) cors: Option<CorsPolicy>,
    pub(crate) honeypot: Option<String>,
    pub(crate) queue: bool,
    pub(crate) share: u32,
    pub(crate) content_types: Vec<ContentKind>,
    pub(crate) unknown_fields: UnknownFields,
    pub(crate) max_body_bytes: usize,
    pub(crate) tags: Vec<String>,
    pub(crate) run_name: Option<RunNameTemplate>,
    pub(crate) constants: BTreeMap<String, Value>,
    pub(crate) fields: Vec<FieldRule>,
    /// Conditions that must hold for any run to start.
    pub(crate) filter: Filter,
    /// Destinations by event; empty: the route's own deployment and mapping.
    pub(crate) targets: Vec<Target>,
    /// Requests answered `ignored`, by reason.
    pub(crate) ignored: IgnoredCounts,
    /// Lower-case header names never stored in the rejection log.
    pub(crate) secret_headers: Vec<String>,
    /// A deployment Prefect says does not exist: queued until it appears (a configured route),
    /// or refused with 404 at once (the API, whose caller named it).
    pub(crate) queue_missing: bool,
}

impl Route {
    /// The route of the internal API's triggers: no fields of its own (the parameters are the
    /// caller's, checked against the deployment's published schema at dispatch), JSON, queued
    /// when Prefect cannot take a run now. `name` keys its share of the outbox and its
    /// idempotency namespace.
    pub fn for_api(
        name: RouteName,
        deployment: DeploymentRef,
        max_body_bytes: usize,
        tags: Vec<String>,
    ) -> Self {
        Self {
            name,
            deployment,
            auth: Arc::new(RouteAuth::None),
            allow_ips: Vec::new(),
            limiter: None,
            limit: None,
            cors: None,
            honeypot: None,
            queue: true,
            share: 1,
            content_types: vec![ContentKind::Json],
            unknown_fields: UnknownFields::Drop,
            max_body_bytes,
            tags,
            run_name: None,
            constants: BTreeMap::new(),
            fields: Vec::new(),
            filter: Filter::default(),
            targets: Vec::new(),
            ignored: IgnoredCounts::default(),
            secret_headers: Vec::new(),
            queue_missing: false,
        }
    }

    /// This route as one of its targets maps it: the target's deployment, fields, run name
    /// and constants, the route's tags then the target's. The route's own rate limit is
    /// checked before a target is chosen, so a target has none of its own.
    fn for_target(&self, m: target::Mapping) -> Option<Self> {
        Some(Self {
            name: self.name.clone(),
            deployment: m.deployment?,
            auth: Arc::clone(&self.auth),
            allow_ips: self.allow_ips.clone(),
            limiter: None,
            limit: None,
            cors: self.cors.clone(),
            honeypot: self.honeypot.clone(),
            queue: self.queue,
            share: self.share,
            content_types: self.content_types.clone(),
            unknown_fields: self.unknown_fields,
            max_body_bytes: self.max_body_bytes,
            tags: self.tags.iter().chain(&m.tags).cloned().collect(),
            run_name: m.run_name,
            constants: m.constants,
            fields: m.fields,
            filter: Filter::default(),
            targets: Vec::new(),
            ignored: IgnoredCounts::default(),
            secret_headers: self.secret_headers.clone(),
            queue_missing: self.queue_missing,
        })
    }

    /// Conditions that must hold for any run to start.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The route's targets, in order; empty when it has one destination.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Requests this route answered `ignored`, by reason.
    pub fn ignored(&self) -> &IgnoredCounts {
        &self.ignored
    }

    /// Headers of this route that carry secrets (lower case).
    pub fn secret_headers(&self) -> &[String] {
        &self.secret_headers
    }

    pub fn name(&self) -> &RouteName {
        &self.name
    }

    pub fn deployment(&self) -> &DeploymentRef {
        &self.deployment
    }

    pub fn auth(&self) -> &RouteAuth {
        &self.auth
    }

    /// Client networks allowed to call; empty allows all.
    pub fn allow_ips(&self) -> &[ipnet::IpNet] {
        &self.allow_ips
    }

    /// The route's own rate, after authentication.
    pub fn limiter(&self) -> Option<&crate::ratelimit::KeyedLimiter<()>> {
        self.limiter.as_deref()
    }

    pub fn cors(&self) -> Option<&CorsPolicy> {
        self.cors.as_ref()
    }

    /// Whether requests Prefect cannot take now are queued (else the upstream error is answered).
    pub fn queues(&self) -> bool {
        self.queue
    }

    /// Whether a request for a deployment Prefect does not know is queued (else 404).
    pub fn queues_missing(&self) -> bool {
        self.queue_missing
    }

    /// Weight of this route when several routes have requests waiting in the outbox.
    pub fn share(&self) -> u32 {
        self.share
    }

    /// The field real users never fill.
    pub fn honeypot(&self) -> Option<&str> {
        self.honeypot.as_deref()
    }

    pub fn content_types(&self) -> &[ContentKind] {
        &self.content_types
    }

    pub fn unknown_fields(&self) -> UnknownFields {
        self.unknown_fields
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    pub fn run_name(&self) -> Option<&RunNameTemplate> {
        self.run_name.as_ref()
    }

    pub fn constants(&self) -> &BTreeMap<String, Value> {
        &self.constants
    }

    pub fn fields(&self) -> &[FieldRule] {
        &self.fields
    }

    pub fn path(&self) -> String {
        format!("/hooks/{}", self.name)
    }
}

/// All routes by name; immutable once built.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: BTreeMap<String, Arc<Route>>,
}

impl RouteTable {
    /// A freshly compiled table that keeps `old`'s rate-limit state for every route whose name
    /// and rate did not change (a reload must not hand senders a fresh burst), and continues
    /// its routes' counts.
    pub fn carry_limits_from(mut self, old: &RouteTable) -> Self {
        for (name, route) in &mut self.routes {
            let Some(before) = old.routes.get(name) else {
                continue;
            };
            if let Some(route) = Arc::get_mut(route) {
                if route.limit.is_some() && route.limit == before.limit {
                    route.limiter.clone_from(&before.limiter);
                }
                route.ignored.continue_from(&before.ignored);
            }
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<Route>> {
        self.routes.get(name).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
