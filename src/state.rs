//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::pipeline::dedup::DeliveryMemory;
use crate::pipeline::resolve::DeploymentResolver;
use crate::prefect::PrefectClient;
use crate::route_table::RouteTable;

pub struct AppState {
    pub routes: Arc<RouteTable>,
    pub resolver: DeploymentResolver,
    pub prefect: PrefectClient,
    pub deliveries: DeliveryMemory,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a sender may wait for dispatch, retries included.
    pub request_budget: Duration,
}
