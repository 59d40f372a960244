//! Resolve stage: `flow/deployment` → deployment id and parameter schema, cached with a TTL.
//! Concurrent misses for one name make one Prefect call (with the first caller's patience);
//! errors are not cached. Lookups are counted as cache hits and misses.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;

use crate::domain::DeploymentRef;
use crate::prefect::{Deadline, Deployment, Patience, PrefectClient, PrefectError};

/// Lookups answered from the cache (hits) and those that were not (misses: read from Prefect,
/// or waiting on a read another lookup started). Shared by every clone of the resolver.
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
}

#[derive(Clone)]
pub struct DeploymentResolver {
    cache: Cache<DeploymentRef, Arc<Deployment>>,
    prefect: PrefectClient,
    metrics: CacheMetrics,
}

impl DeploymentResolver {
    pub fn new(prefect: PrefectClient, ttl: Duration, capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            prefect,
            metrics: CacheMetrics::default(),
        }
    }

    /// The hit and miss counters.
    pub fn cache_metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    #[tracing::instrument(level = "debug", name = "stage.resolve", skip_all, fields(deployment = %name))]
    pub async fn resolve(
        &self,
        name: &DeploymentRef,
        deadline: Deadline,
        patience: Patience,
    ) -> Result<Arc<Deployment>, Arc<PrefectError>> {
        if let Some(found) = self.cache.get(name).await {
            self.metrics.hits.inc();
            return Ok(found);
        }
        self.metrics.misses.inc();
        // Boxed: the miss is rare, and inline its future would make every request's larger.
        Box::pin(self.cache.try_get_with_by_ref(name, async {
            self.prefect
                .read_deployment(name, deadline, patience)
                .await
                .map(Arc::new)
        }))
        .await
    }

    /// Forgets a cached id, e.g. after Prefect answered 404 for it.
    pub async fn invalidate(&self, name: &DeploymentRef) {
        self.cache.invalidate(name).await;
    }
}

impl DeploymentResolver {
    /// The cached id of a deployment, if it is cached (for the admin route table; not counted
    /// as a lookup).
    pub async fn cached(&self, name: &DeploymentRef) -> Option<uuid::Uuid> {
        if !self.cache.contains_key(name) {
            return None;
        }
        self.cache.get(name).await.map(|d| d.id)
    }
}
