//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::outbox::{Outbox, Submitter};
use crate::pipeline::parse::BodyLimits;
use crate::ratelimit::KeyedLimiter;
use crate::readiness::Readiness;

use crate::pipeline::dedup::DeliveryMemory;
use crate::route_table::{Route, RouteTable};

pub struct AppState {
    /// The configuration now: routes and API tokens, replaced whole by a reload.
    pub live: Arc<crate::live::Live>,
    pub outbox: Outbox,
    /// Prefect now or the outbox: the one submit policy.
    pub submitter: Submitter,
    /// What `/readyz` answers, refreshed in the background.
    pub readiness: Arc<Readiness>,
    pub deliveries: DeliveryMemory,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Per client address, before authentication.
    pub client_limiter: Option<Arc<KeyedLimiter<IpAddr>>>,
    pub body_limits: BodyLimits,
    /// How long a sender may take to send the body.
    pub body_timeout: Duration,
    /// Refused requests, for ops to read and replay.
    pub rejections: Arc<crate::rejections::RejectionLog>,
    /// The store itself, for the admin API.
    pub store: Arc<dyn crate::store::Store>,
    /// Resolved deployments, for the admin route table.
    pub resolver: crate::pipeline::resolve::DeploymentResolver,
    /// Managed deployments' reconciler (the lifecycle API).
    pub manager: Arc<crate::manage::Manager>,
}

impl AppState {
    /// The routes of the configuration now (take once per request).
    pub fn routes(&self) -> Arc<RouteTable> {
        self.live.current().routes.clone()
    }

    /// The webhook route of that name now (a request takes it once), without the lock and the
    /// shared counts `routes()` takes: see [`crate::live::Live::route`].
    pub fn route(&self, name: &str) -> Result<Arc<Route>, crate::error::GatewayError> {
        self.live
            .route(name)
            .ok_or_else(|| crate::pipeline::route::unknown_route(name))
    }

    /// The internal API's tokens of the configuration now.
    pub fn api_tokens(&self) -> Arc<crate::api::tokens::ApiTokens> {
        self.live.current().api_tokens.clone()
    }
}
