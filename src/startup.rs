//! `Application::build` binds the listener (port 0 allowed) and wires the state; tests start
//! the very same application.

use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::breaker::Breaker;
use crate::configuration::Configuration;
use crate::deliverer::{Deliverer, DelivererSettings, DrainMeter};
use crate::metrics::{Metrics, Sources};
use crate::outbox::{Outbox, Submitter};
use crate::pipeline::dedup::DeliveryMemory;
use crate::pipeline::parse::BodyLimits;
use crate::pipeline::resolve::DeploymentResolver;
use crate::pipeline::verify::{unix_now, unix_now_ms};
use crate::prefect::PrefectClient;
use crate::prefect::RetryPolicy;
use crate::ratelimit::KeyedLimiter;
use crate::readiness::{spawn_refresh, Readiness};
use crate::request_id::request_id_middleware;
use crate::request_log::{LogBudget, RequestLog};
use crate::route_table::parse_network;
use crate::routes::{admin, fallback, health, hooks};
use crate::state::AppState;
use crate::store::{PgStore, SqliteStore, Store};
use tokio::sync::{watch, Notify};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client for Prefect")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot open the store")]
    Store(#[source] crate::store::StoreError),
}

/// The store the configuration names: PostgreSQL when `store.url` is set, else the SQLite file.
pub async fn open_store(
    config: &Configuration,
) -> Result<Arc<dyn Store>, crate::store::StoreError> {
    let s = &config.settings.store;
    Ok(match config.postgres() {
        Some(connect) => Arc::new(PgStore::open(&connect).await?),
        None => Arc::new(SqliteStore::open(
            std::path::Path::new(&s.path),
            s.max_size_mb,
        )?),
    })
}

pub struct Application {
    port: u16,
    admin_port: Option<u16>,
    server: Server,
    stop_delivery: watch::Sender<bool>,
    delivery_task: tokio::task::JoinHandle<()>,
    store: Arc<dyn Store>,
}

impl Application {
    pub async fn build(config: Configuration) -> Result<Self, StartupError> {
        let s = &config.settings;
        let address = format!("{}:{}", s.server.host, s.server.port);
        let bind_error = |source| StartupError::Bind {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let admin_listener = if s.admin.enabled {
            let admin_address = format!("{}:{}", s.admin.host, s.admin.port);
            let admin_error = |source| StartupError::Bind {
                address: admin_address.clone(),
                source,
            };
            Some(TcpListener::bind(&admin_address).map_err(admin_error)?)
        } else {
            None
        };
        let prefect = PrefectClient::new(
            config.prefect_url.clone(),
            &config.prefect_auth,
            &s.prefect,
            &config.prefect_roots,
        )
        .map_err(StartupError::HttpClient)?;
        let limit = prefect.limit().clone();
        let resolver = DeploymentResolver::new(
            prefect.clone(),
            s.prefect.deployment_cache_ttl(),
            s.prefect.deployment_cache_capacity,
        );
        let store = open_store(&config).await.map_err(StartupError::Store)?;
        let breaker = Arc::new(Breaker::new(
            s.delivery.breaker_threshold,
            Duration::from_secs(s.delivery.breaker_cooldown_secs),
        ));
        let wake = Arc::new(Notify::new());
        let meter = Arc::new(DrainMeter::default());
        let (stop_delivery, stop_rx) = watch::channel(false);
        let deliverer = Deliverer {
            store: store.clone(),
            resolver: resolver.clone(),
            prefect: prefect.clone(),
            breaker: breaker.clone(),
            wake: wake.clone(),
            meter: meter.clone(),
            settings: DelivererSettings {
                max_age: Duration::from_secs(s.delivery.max_age_secs),
                backoff: RetryPolicy {
                    attempts: u32::MAX,
                    base_delay: Duration::from_millis(s.delivery.retry_base_delay_ms),
                    max_delay: Duration::from_millis(s.delivery.retry_max_delay_ms),
                },
                batch_size: s.delivery.batch_size,
                attempt_budget: s.prefect.timeout() + s.prefect.request_budget(),
                probe_every: Duration::from_secs(s.delivery.probe_every_secs),
                shares: config
                    .routes
                    .iter()
                    .map(|r| (r.name().to_string(), r.share()))
                    .collect(),
            },
        };
        let delivery_task = tokio::spawn(deliverer.run(stop_rx));
        spawn_limit_sharing(&store, limit.clone());
        let manager = crate::manage::Manager::new(
            store.clone(),
            prefect.clone(),
            Duration::from_secs(s.api.deployments_resync_secs),
        );
        spawn_reconciler(&manager, &s.deployments);
        let client_limiter = s
            .limits
            .per_ip
            .and_then(|l| l.quota())
            .map(|quota| Arc::new(KeyedLimiter::new(quota)));
        let trusted_proxies = s
            .server
            .trusted_proxies
            .iter()
            .filter_map(|raw| parse_network(raw).ok())
            .collect();
        let deliveries = DeliveryMemory::new(
            Duration::from_secs(s.server.delivery_memory_secs),
            s.server.delivery_memory_capacity,
            store.clone(),
        );
        deliveries.spawn_pruning(PRUNE_EVERY);
        let readiness = Arc::new(Readiness::default());
        spawn_refresh(
            readiness.clone(),
            prefect.clone(),
            store.clone(),
            Duration::from_secs(s.delivery.probe_every_secs.max(1)),
        );
        let outbox = Outbox::new(store.clone(), wake);
        let submitter = Submitter {
            outbox: outbox.clone(),
            breaker: breaker.clone(),
            resolver: resolver.clone(),
            prefect: prefect.clone(),
            budget: s.prefect.request_budget(),
        };
        let request_log = web::Data::new(RequestLog::new(LogBudget {
            rejections_per_key: s.telemetry.rejection_lines_per_minute,
            rejections_per_sec: s.telemetry.max_rejection_lines_per_sec,
            lines_per_sec: s.telemetry.max_request_lines_per_sec,
        }));
        spawn_log_ticks(request_log.clone().into_inner());
        let rejections = Arc::new(crate::rejections::RejectionLog::new(
            store.clone(),
            s.rejections.clone(),
        ));
        rejections.spawn_upkeep();
        let live = Arc::new(crate::live::Live::new(&config, unix_now()));
        spawn_sighup(live.clone(), manager.clone());
        let state = web::Data::new(AppState {
            live: live.clone(),
            manager,
            rejections,
            store: store.clone(),
            resolver: resolver.clone(),
            deliveries,
            outbox,
            submitter,
            readiness,
            trusted_proxies,
            client_limiter: client_limiter.clone(),
            body_limits: BodyLimits {
                max_depth: s.limits.max_json_depth,
                max_fields: s.limits.max_fields,
            },
            body_timeout: Duration::from_millis(s.server.body_timeout_ms),
        });
        spawn_eviction(
            &client_limiter,
            &live,
            Duration::from_secs(s.limits.evict_every_secs),
        );
        warn_about_rotations(&config);
        let admin_port = match &admin_listener {
            Some(l) => Some(l.local_addr().map_err(bind_error)?.port()),
            None => None,
        };
        let metrics = web::Data::new(Metrics::new(Sources {
            client_limiter,
            live: live.clone(),
            store: store.clone(),
            breaker,
            limit: limit.clone(),
            meter,
            requests: request_log.requests.clone(),
            log_suppressed: request_log.suppressed.clone(),
            request_duration: request_log.duration.clone(),
            rejections: request_log.rejections.clone(),
            prefect_calls: prefect.metrics().clone(),
            deployment_cache: resolver.cache_metrics().clone(),
        }));
        let admin_only = web::Data::new(AdminPort(admin_port));
        let admin_token = web::Data::new(admin::AdminToken(config.admin_token.clone()));
        let ops_sessions = web::Data::new(crate::routes::ops::Sessions::default());
        // One server for both listeners: one signal handler, one graceful drain. `/metrics`
        // answers only on the admin listener's port.
        let mut http = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(request_id_middleware))
                .app_data(state.clone())
                .app_data(request_log.clone())
                .app_data(metrics.clone())
                .app_data(admin_only.clone())
                .app_data(admin_token.clone())
                // First: the router tries services in order, and nearly every request is a
                // webhook. A prefix, not a `{route}` pattern: no regex per request.
                .service(web::scope("/hooks").default_service(web::to(hooks::dispatch)))
                .route("/admin/outbox", web::get().to(admin::list_outbox))
                .route(
                    "/admin/outbox/{delivery_id}/retry",
                    web::post().to(admin::retry_dead),
                )
                .route(
                    "/admin/outbox/{delivery_id}/discard",
                    web::post().to(admin::discard),
                )
                .route("/admin/rejections", web::get().to(admin::list_rejections))
                .route(
                    "/admin/rejections/{id}",
                    web::get().to(admin::get_rejection),
                )
                .route(
                    "/admin/rejections/{id}/replay",
                    web::post().to(admin::replay_rejection),
                )
                .route("/admin/routes", web::get().to(admin::list_routes))
                .route("/admin/reload", web::post().to(admin::reload))
                .configure(crate::routes::ops::configure(ops_sessions.clone()))
                .configure(crate::api::configure)
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(admin::metrics))
                .default_service(web::to(fallback::not_found))
        })
        .shutdown_timeout(s.server.shutdown_timeout_secs)
        .client_request_timeout(Duration::from_millis(s.server.client_request_timeout_ms))
        .keep_alive(KEEP_ALIVE)
        .max_connections(s.server.max_connections)
        .listen(listener)
        .map_err(bind_error)?;
        if let Some(admin) = admin_listener {
            http = http.listen(admin).map_err(bind_error)?;
            tracing::info!(port = admin_port, "admin listener (metrics) open");
        }
        let server = http.run();
        tracing::info!(%address, port, routes = config.routes.len(), "flowgate listening");
        Ok(Self {
            port,
            admin_port,
            server,
            stop_delivery,
            delivery_task,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port, when it is enabled.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// Stops the server (both listeners): `graceful` lets in-flight requests finish.
    pub fn handle(&self) -> AppHandle {
        AppHandle(vec![self.server.handle()])
    }

    /// Runs until SIGTERM/SIGINT (graceful) or `handle().stop()`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Graceful stop (SIGTERM/SIGINT or `handle().stop(true)`): stop accepting, finish
        // in-flight requests; then let the deliverer finish its attempt. Queued entries stay on disk.
        let served = self.server.await;
        let _ = self.stop_delivery.send(true);
        if let Err(e) = self.delivery_task.await {
            tracing::error!(error = %e, "the deliverer ended abnormally");
        }
        // Entries this replica claimed but did not finish go back to the others at once.
        match self.store.release_claims().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "claims on queued entries released"),
            Err(e) => {
                tracing::warn!(error = %crate::error::error_chain(&e), "claims not released; they lapse with their lease")
            }
        }
        // Writes nobody waited for (remembered delivery ids) reach the disk before exit.
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %crate::error::error_chain(&e), "cannot flush the store");
        }
        tracing::info!("flowgate stopped");
        served
    }
}

/// Stops every listener of one application.
#[derive(Clone)]
pub struct AppHandle(Vec<ServerHandle>);

impl AppHandle {
    pub fn stop(&self, graceful: bool) -> impl std::future::Future<Output = ()> {
        let stops: Vec<_> = self.0.iter().map(|h| h.stop(graceful)).collect();
        async move {
            futures_util::future::join_all(stops).await;
        }
    }
}

/// Several active secrets on a route means a rotation is under way: say so, once, at startup.
fn warn_about_rotations(config: &Configuration) {
    let now = unix_now();
    for route in config.routes.iter() {
        let active = route.auth().active_keys(now);
        if active.len() > 1 {
            let labels: Vec<&str> = active.iter().map(|k| k.label()).collect();
            tracing::warn!(route = %route.name(), ?labels, "several secrets are active; finish the rotation by removing or expiring the old one");
        }
    }
}

/// How long an idle client connection stays open. A client's pool must close its idle
/// connections sooner (nginx/flowgate.conf keeps 4 s): a request sent on a connection that
/// flowgate is closing gets no answer, and a POST is not sent again.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How often delivery ids older than the delivery memory are pruned from the store.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often the replicas sharing the store are counted to divide Prefect's concurrency.
const SHARE_EVERY: Duration = Duration::from_secs(5);

/// Keeps this replica's part of the concurrency limit toward Prefect at ⌈max / replicas⌉ (one
/// replica, as with SQLite: all of it), for as long as the store exists.
fn spawn_limit_sharing(store: &Arc<dyn Store>, limit: crate::prefect::ConcurrencyLimit) {
    let store = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SHARE_EVERY);
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { return };
            limit.share_among(usize::try_from(store.replicas()).unwrap_or(1));
        }
    });
}

/// Ends the log budget's minutes on time, so a quiet minute's summary is written too.
fn spawn_log_ticks(log: Arc<RequestLog>) {
    let log = Arc::downgrade(&log);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let Some(log) = log.upgrade() else { return };
            log.tick(unix_now_ms());
        }
    });
}

/// Evicts idle rate-limit keys every `every`, for as long as the limiters exist.
fn spawn_eviction(
    client: &Option<Arc<KeyedLimiter<IpAddr>>>,
    live: &Arc<crate::live::Live>,
    every: Duration,
) {
    let client: Option<Weak<KeyedLimiter<IpAddr>>> = client.as_ref().map(Arc::downgrade);
    let live = Arc::downgrade(live);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (Some(live), client) = (live.upgrade(), client.as_ref().and_then(Weak::upgrade))
            else {
                return;
            };
            let routes = live.current().routes.clone();
            let keys = client.map_or(0, |l| l.evict_idle());
            routes.iter().filter_map(|r| r.limiter()).for_each(|l| {
                l.evict_idle();
            });
            tracing::debug!(client_keys = keys, "evicted idle rate-limit keys");
        }
    });
}

/// The admin listener's port, so admin-only handlers can refuse the public one.
pub struct AdminPort(pub Option<u16>);

/// Stores the configuration file's desired deployments, then runs the reconciler.
fn spawn_reconciler(
    manager: &Arc<crate::manage::Manager>,
    from_file: &std::collections::BTreeMap<String, crate::manage::DesiredDeployment>,
) {
    let manager = manager.clone();
    let from_file = from_file.clone();
    tokio::spawn(async move {
        manager.adopt(&from_file).await;
        manager.run().await;
    });
}

/// Reloads the configuration (SIGHUP, `POST /admin/reload`); on success the file's desired
/// deployments are stored and applied.
pub async fn reload(
    live: &crate::live::Live,
    manager: &crate::manage::Manager,
) -> crate::live::ReloadReport {
    let (report, config) = live.reload(unix_now()).await;
    if let Some(config) = config {
        manager.adopt(&config.settings.deployments).await;
    }
    report
}

/// `SIGHUP` reloads the configuration, for as long as the process runs.
fn spawn_sighup(live: Arc<crate::live::Live>, manager: Arc<crate::manage::Manager>) {
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("SIGHUP cannot be watched; reload with POST /admin/reload");
            return;
        };
        while hangups.recv().await.is_some() {
            reload(&live, &manager).await;
        }
    });
}
