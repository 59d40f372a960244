//! Dedup stage: a delivery id already accepted on a route answers with the first outcome and
//! creates nothing. Concurrent redeliveries share one dispatch.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::recent::{Found, Recent};
use crate::domain::RouteName;
use crate::error::GatewayError;
use crate::outbox::Outcome;
use crate::route_table::{Route, RouteAuth};
use crate::signature::Verified;
use crate::store::Store;

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

/// Delivery ids forgotten per store command while pruning.
const PRUNE_BATCH: usize = 5_000;

/// Accepted delivery ids: in memory for speed, in the store so they survive a restart; both
/// forget them after `ttl` (the store in the background, in batches).
#[derive(Clone)]
pub struct DeliveryMemory {
    accepted: Arc<Recent<(RouteName, String), Outcome, GatewayError>>,
    store: Arc<dyn Store>,
    ttl: Duration,
}

impl DeliveryMemory {
    pub fn new(ttl: Duration, capacity: u64, store: Arc<dyn Store>) -> Self {
        Self {
            accepted: Arc::new(Recent::new(
                ttl,
                usize::try_from(capacity).unwrap_or(usize::MAX),
            )),
            store,
            ttl,
        }
    }

    fn ttl_secs(&self) -> i64 {
        i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2)
    }

    /// Forgets every stored delivery id older than the memory, a batch at a time; returns how
    /// many went.
    pub async fn prune(&self, now: i64) -> Result<usize, crate::store::StoreError> {
        let before = now.saturating_sub(self.ttl_secs());
        let mut pruned = 0;
        loop {
            let n = self.store.prune_deliveries(before, PRUNE_BATCH).await?;
            pruned += n;
            if n < PRUNE_BATCH {
                return Ok(pruned);
            }
        }
    }

    /// Prunes the stored ids every `every`, off the request path.
    pub fn spawn_pruning(&self, every: Duration) {
        let memory = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match memory.prune(crate::pipeline::verify::unix_now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(pruned = n, "forgot old delivery ids"),
                    Err(e) => {
                        tracing::warn!(error = %crate::error::error_chain(&e), "cannot prune delivery ids")
                    }
                }
            }
        });
    }

    /// Runs `process` unless `delivery_id` was accepted before on `route`; failures are not
    /// remembered, so a redelivery after a failure is processed again. Concurrent copies share
    /// one run of `process`.
    pub async fn once(
        &self,
        route: &RouteName,
        delivery_id: &str,
        process: impl Future<Output = Result<Outcome, GatewayError>>,
    ) -> Result<Outcome, GatewayError> {
        let key = (route.clone(), delivery_id.to_owned());
        let first = async {
            let recalled = self
                .store
                .recall_delivery(
                    route.to_string(),
                    delivery_id.to_owned(),
                    crate::pipeline::verify::unix_now().saturating_sub(self.ttl_secs()),
                )
                .await;
            if let Ok(Some(outcome)) = recalled {
                return Ok::<_, GatewayError>(Outcome::from_remembered(outcome));
            }
            let outcome = process.await?;
            // Handed to the store now, committed with the next group (within milliseconds);
            // the answer does not wait for that fsync. Until then the in-memory entry answers
            // a redelivery, and after a crash Prefect's idempotency key (the delivery id) does.
            drop(self.store.remember_delivery(
                route.to_string(),
                delivery_id.to_owned(),
                outcome.remembered(),
            ));
            Ok(outcome)
        };
        match self.accepted.get_or_run(key, || first).await? {
            Found::Fresh(outcome) => Ok(outcome),
            Found::Earlier(outcome) => {
                tracing::debug!(delivery_id, "redelivery answered with the first outcome");
                Ok(outcome.as_duplicate())
            }
        }
    }
}
