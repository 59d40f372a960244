//! Prometheus metrics, served on the admin listener at `/metrics`. Gauges read live values at
//! scrape time, so what they show is what the gateway holds right now.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::breaker::Breaker;
use crate::deliverer::DrainMeter;
use crate::pipeline::resolve::CacheMetrics;
use crate::pipeline::verify::unix_now;
use crate::prefect::{ConcurrencyLimit, PrefectMetrics};
use crate::ratelimit::KeyedLimiter;
use crate::request_log::{RequestLabels, RouteLabels};
use crate::route_table::IgnoredReason;
use crate::sharded_metrics::{ShardedCounter, ShardedHistogram};
use crate::store::Store;

/// Upper bounds (seconds) of the latency histograms: 1 ms to 10 s, about 2.5x apart. A request
/// answered from memory lands in the first buckets; one that waits out Prefect's timeout, in
/// the last.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Latency histograms by a label set.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// An empty family of latency histograms.
pub fn histogram_family<L: Clone + Eq + Hash>() -> HistogramFamily<L> {
    Family::new_with_constructor(latency_histogram)
}

/// What the gauges read from.
pub struct Sources {
    pub client_limiter: Option<Arc<KeyedLimiter<IpAddr>>>,
    /// The configuration now (routes, reloads).
    pub live: Arc<crate::live::Live>,
    pub store: Arc<dyn Store>,
    pub breaker: Arc<Breaker>,
    pub limit: ConcurrencyLimit,
    pub meter: Arc<DrainMeter>,
    /// Requests by route and outcome code (from the request log).
    pub requests: Family<RequestLabels, ShardedCounter>,
    /// Request lines the log budget left out.
    pub log_suppressed: ShardedCounter,
    /// Request latency by route (from the request middleware).
    pub request_duration: Family<RouteLabels, ShardedHistogram>,
    /// Answered 4xx requests by route and error code (from the request log).
    pub rejections: Family<RequestLabels, ShardedCounter>,
    /// Calls to Prefect by call and outcome, and their latency (from the Prefect client).
    pub prefect_calls: PrefectMetrics,
    /// Deployment lookups answered from the cache, and those that were not.
    pub deployment_cache: CacheMetrics,
}

pub struct Metrics {
    registry: Registry,
    ratelimit_keys: Gauge,
    routes: Gauge,
    outbox_queued: Gauge,
    outbox_dead: Gauge,
    outbox_oldest_age: Gauge,
    breaker_open: Gauge,
    outbox_queued_route: Family<RouteLabel, Gauge>,
    drain_rate: Gauge<f64, AtomicU64>,
    prefect_limit: Gauge,
    prefect_in_flight: Gauge,
    prefect_overloads: Gauge,
    ignored: Family<IgnoredLabel, Counter>,
    config_generation: Gauge,
    store_replicas: Gauge,
    config_reloads: Family<OutcomeLabel, Counter>,
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
        let config_generation = gauge(
            "config_generation",
            "The configuration's generation: 1 at start, one more per successful reload",
        );
        let store_replicas = gauge(
            "store_replicas",
            "Replicas sharing the store (their heartbeats; 1 with SQLite)",
        );
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
        let prefect_limit = gauge(
            "prefect_concurrency_limit",
            "Calls to Prefect allowed in flight now (adaptive: moves between min and max)",
        );
        let prefect_in_flight = gauge("prefect_in_flight", "Calls to Prefect in flight now");
        let prefect_overloads = gauge(
            "prefect_overloads",
            "Calls Prefect answered 503/429, timed out or dropped, since start",
        );
        let config_reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP, POST /admin/reload) by outcome: ok or failed",
            config_reloads.clone(),
        );
        let outbox_queued_route = Family::<RouteLabel, Gauge>::default();
        registry.register(
            "outbox_queued_route",
            "Requests waiting for Prefect, by route",
            outbox_queued_route.clone(),
        );
        let drain_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "outbox_drain_rate",
            "Runs created from the outbox per second, over the last 10 s",
            drain_rate.clone(),
        );
        registry.register(
            "requests",
            "Requests answered, by configured route (- for none) and outcome or error code",
            sources.requests.clone(),
        );
        registry.register(
            "log_lines_suppressed",
            "Request log lines left out by the log budget (sampled rejections, rate cap)",
            sources.log_suppressed.clone(),
        );
        registry.register(
            "rejections",
            "Requests answered with a 4xx, by configured route (- for none) and error code",
            sources.rejections.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response, by configured route (- for none)",
            sources.request_duration.clone(),
        );
        registry.register(
            "prefect_requests",
            "Calls sent to Prefect, by call (read_deployment, create_flow_run, health) and \
             outcome (ok, not_found, rejected, unauthorized, overloaded, unreachable, error)",
            sources.prefect_calls.requests.clone(),
        );
        registry.register(
            "prefect_request_duration_seconds",
            "Time from sending a call to Prefect to its answer's status, by call",
            sources.prefect_calls.duration.clone(),
        );
        registry.register(
            "deployment_cache_hits",
            "Deployment lookups answered from the cache",
            sources.deployment_cache.hits.clone(),
        );
        registry.register(
            "deployment_cache_misses",
            "Deployment lookups not in the cache (read from Prefect)",
            sources.deployment_cache.misses.clone(),
        );
        registry.register(
            "outbox_attempts",
            "Delivery attempts made by the deliverer since start",
            sources.meter.attempts_counter(),
        );
        registry.register(
            "delivery_attempts",
            "Outbox entries the deliverer took up, by outcome (delivered, busy, overloaded, \
             unreachable, missing, failing, refused; dead: given up without an attempt)",
            sources.meter.outcomes(),
        );
        registry.register(
            "outbox_delivered",
            "Runs created from the outbox since start",
            sources.meter.delivered_counter(),
        );
        let ignored = Family::<IgnoredLabel, Counter>::default();
        registry.register(
            "ignored",
            "Authentic, well-formed requests that started nothing, by route and reason \
             (filtered: a route filter did not hold; no_matching_target: no target wanted it)",
            ignored.clone(),
        );
        Self {
            registry,
            ignored,
            config_generation,
            store_replicas,
            config_reloads,
            ratelimit_keys,
            routes,
            outbox_queued,
            outbox_dead,
            outbox_oldest_age,
            breaker_open,
            outbox_queued_route,
            drain_rate,
            prefect_limit,
            prefect_in_flight,
            prefect_overloads,
            sources,
        }
    }

    /// The text exposition, with gauges refreshed: counts from memory, the oldest entry by one
    /// index seek. Fails when the store cannot be read.
    pub async fn render(&self) -> Result<String, String> {
        let s = &self.sources;
        let stats = s.store.stats(unix_now()).await.map_err(|e| e.to_string())?;
        let keys = s.client_limiter.as_ref().map_or(0, |l| l.len());
        self.ratelimit_keys.set(clamp(keys as u64));
        let loaded = s.live.current();
        self.routes.set(clamp(loaded.routes.len() as u64));
        self.config_generation.set(clamp(loaded.generation));
        self.store_replicas.set(clamp(s.store.replicas()));
        for (outcome, n) in [("ok", &s.live.succeeded), ("failed", &s.live.failed)] {
            self.config_reloads
                .get_or_create(&OutcomeLabel { outcome })
                .inner()
                .store(
                    n.load(std::sync::atomic::Ordering::Relaxed),
                    std::sync::atomic::Ordering::Relaxed,
                );
        }
        self.outbox_queued.set(clamp(stats.queued));
        self.outbox_dead.set(clamp(stats.dead));
        self.outbox_oldest_age
            .set(clamp(stats.oldest_queued_age_secs));
        self.breaker_open.set(i64::from(s.breaker.is_open()));
        let limit = s.limit.snapshot();
        self.prefect_limit.set(clamp(limit.limit as u64));
        self.prefect_in_flight.set(clamp(limit.in_flight as u64));
        self.prefect_overloads.set(clamp(limit.overloads));
        self.drain_rate.set(s.meter.per_second(unix_now()));
        self.outbox_queued_route.clear();
        for (route, queued) in s.store.counts().by_route() {
            self.outbox_queued_route
                .get_or_create(&RouteLabel {
                    route: route.to_owned(),
                })
                .set(clamp(queued));
        }
        for route in loaded.routes.iter() {
            for reason in IgnoredReason::ALL {
                let count = route.ignored().get(reason);
                if count > 0 {
                    let label = IgnoredLabel {
                        route: route.name().to_string(),
                        reason: reason.code(),
                    };
                    self.ignored
                        .get_or_create(&label)
                        .inner()
                        .store(count, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct IgnoredLabel {
    route: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
