//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use crate::pipeline::resolve::DeploymentResolver;
use crate::prefect::PrefectClient;
use crate::route_table::RouteTable;

pub struct AppState {
    pub routes: Arc<RouteTable>,
    pub resolver: DeploymentResolver,
    pub prefect: PrefectClient,
    /// How long a sender may wait for dispatch, retries included.
    pub request_budget: Duration,
}
