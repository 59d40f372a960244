//! Prometheus metrics, served on the admin listener at `/metrics`. Gauges read live values at
//! scrape time, so what they show is what the gateway holds right now.

use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::ratelimit::KeyedLimiter;
use crate::route_table::RouteTable;

pub struct Metrics {
    registry: Registry,
    ratelimit_keys: Gauge,
    routes: Gauge,
    client_limiter: Option<Arc<KeyedLimiter<IpAddr>>>,
    route_table: Arc<RouteTable>,
}

impl Metrics {
    pub fn new(
        client_limiter: Option<Arc<KeyedLimiter<IpAddr>>>,
        route_table: Arc<RouteTable>,
    ) -> Self {
        let mut registry = Registry::with_prefix("flowgate");
        let ratelimit_keys = Gauge::default();
        registry.register(
            "ratelimit_keys",
            "Client addresses held by the per-address rate limiter (bounded by idle eviction)",
            ratelimit_keys.clone(),
        );
        let routes = Gauge::default();
        registry.register("routes", "Configured routes", routes.clone());
        Self {
            registry,
            ratelimit_keys,
            routes,
            client_limiter,
            route_table,
        }
    }

    /// The text exposition, with gauges refreshed.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let keys = self.client_limiter.as_ref().map_or(0, |l| l.len());
        self.ratelimit_keys
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
        self.routes
            .set(i64::try_from(self.route_table.len()).unwrap_or(i64::MAX));
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
