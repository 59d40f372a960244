//! Dedup stage: a delivery id already accepted on a route answers with the first outcome and
//! creates nothing. Concurrent redeliveries share one dispatch.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use sha2::{Digest, Sha256};

use super::dispatch::{Dispatched, RunStatus};
use crate::domain::RouteName;
use crate::error::GatewayError;
use crate::route_table::{Route, RouteAuth};
use crate::signature::Verified;

/// The id redeliveries of this request share: the provider's delivery id, or a hash of the
/// body for schemes without one. Only signed routes have deliveries.
pub fn delivery_key(route: &Route, verified: &Verified, body: &[u8]) -> Option<String> {
    match route.auth() {
        RouteAuth::Hmac { .. } => Some(match &verified.delivery_id {
            Some(id) => id.chars().take(200).collect(),
            None => format!("body-sha256:{}", hex::encode(Sha256::digest(body))),
        }),
        RouteAuth::None | RouteAuth::Bearer { .. } => None,
    }
}

#[derive(Clone)]
pub struct DeliveryMemory {
    accepted: Cache<(RouteName, String), Dispatched>,
}

impl DeliveryMemory {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            accepted: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Runs `dispatch` unless `delivery_id` was accepted before on `route`; failures are not
    /// remembered, so a redelivery after a failure is processed again.
    pub async fn once(
        &self,
        route: &RouteName,
        delivery_id: &str,
        dispatch: impl Future<Output = Result<Dispatched, GatewayError>>,
    ) -> Result<Dispatched, GatewayError> {
        let entry = self
            .accepted
            .entry((route.clone(), delivery_id.to_owned()))
            .or_try_insert_with(dispatch)
            .await
            .map_err(Arc::unwrap_or_clone)?;
        if entry.is_fresh() {
            Ok(entry.into_value())
        } else {
            tracing::info!(delivery_id, "redelivery answered with the first outcome");
            Ok(Dispatched {
                status: RunStatus::Duplicate,
                ..entry.into_value()
            })
        }
    }
}
