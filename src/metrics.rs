//! Prometheus metrics, served on the admin listener at `/metrics`. Gauges read live values at
//! scrape time, so what they show is what the gateway holds right now.

use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::breaker::Breaker;
use crate::pipeline::verify::unix_now;
use crate::ratelimit::KeyedLimiter;
use crate::route_table::RouteTable;
use crate::store::Store;

/// What the gauges read from.
pub struct Sources {
    pub client_limiter: Option<Arc<KeyedLimiter<IpAddr>>>,
    pub routes: Arc<RouteTable>,
    pub store: Arc<dyn Store>,
    pub breaker: Arc<Breaker>,
}

pub struct Metrics {
    registry: Registry,
    ratelimit_keys: Gauge,
    routes: Gauge,
    outbox_queued: Gauge,
    outbox_dead: Gauge,
    outbox_oldest_age: Gauge,
    breaker_open: Gauge,
    sources: Sources,
}

impl Metrics {
    pub fn new(sources: Sources) -> Self {
        let mut registry = Registry::with_prefix("flowgate");
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let ratelimit_keys = gauge(
            "ratelimit_keys",
            "Client addresses held by the per-address rate limiter (bounded by idle eviction)",
        );
        let routes = gauge("routes", "Configured routes");
        let outbox_queued = gauge("outbox_queued", "Requests stored and waiting for Prefect");
        let outbox_dead = gauge("outbox_dead", "Requests given up after the configured age");
        let outbox_oldest_age = gauge(
            "outbox_oldest_age_seconds",
            "Age of the oldest waiting request",
        );
        let breaker_open = gauge(
            "breaker_open",
            "1 while requests skip Prefect and go straight to the outbox",
        );
        Self {
            registry,
            ratelimit_keys,
            routes,
            outbox_queued,
            outbox_dead,
            outbox_oldest_age,
            breaker_open,
            sources,
        }
    }

    /// The text exposition, with gauges refreshed. Fails when the store cannot be read.
    pub async fn render(&self) -> Result<String, String> {
        let s = &self.sources;
        let stats = s.store.stats(unix_now()).await.map_err(|e| e.to_string())?;
        let keys = s.client_limiter.as_ref().map_or(0, |l| l.len());
        self.ratelimit_keys.set(clamp(keys as u64));
        self.routes.set(clamp(s.routes.len() as u64));
        self.outbox_queued.set(clamp(stats.queued));
        self.outbox_dead.set(clamp(stats.dead));
        self.outbox_oldest_age
            .set(clamp(stats.oldest_queued_age_secs));
        self.breaker_open.set(i64::from(s.breaker.is_open()));
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
