//! `Application::build` binds the listener (port 0 allowed) and wires the state; tests start
//! the very same application.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::configuration::Configuration;
use crate::pipeline::dedup::DeliveryMemory;
use crate::pipeline::resolve::DeploymentResolver;
use crate::pipeline::verify::unix_now;
use crate::prefect::PrefectClient;
use crate::request_id::request_id_middleware;
use crate::route_table::parse_network;
use crate::routes::{fallback, health, hooks};
use crate::state::AppState;

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
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(config: Configuration) -> Result<Self, StartupError> {
        let s = &config.settings;
        let address = format!("{}:{}", s.server.host, s.server.port);
        let bind_error = |source| StartupError::Bind {
            address: address.clone(),
            source,
        };
        let listener = TcpListener::bind(&address).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let prefect =
            PrefectClient::new(config.prefect_url.clone(), &config.prefect_auth, &s.prefect)
                .map_err(StartupError::HttpClient)?;
        let resolver = DeploymentResolver::new(
            prefect.clone(),
            s.prefect.deployment_cache_ttl(),
            s.prefect.deployment_cache_capacity,
        );
        let trusted_proxies = s
            .server
            .trusted_proxies
            .iter()
            .filter_map(|raw| parse_network(raw).ok())
            .collect();
        let state = web::Data::new(AppState {
            routes: config.routes.clone(),
            resolver,
            prefect,
            deliveries: DeliveryMemory::new(
                Duration::from_secs(s.server.delivery_memory_secs),
                s.server.delivery_memory_capacity,
            ),
            trusted_proxies,
            request_budget: s.prefect.request_budget(),
        });
        warn_about_rotations(&config);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(request_id_middleware))
                .app_data(state.clone())
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .service(
                    web::resource("/hooks/{route}")
                        .route(web::post().to(hooks::receive))
                        .default_service(web::to(fallback::hooks_method_not_allowed)),
                )
                .default_service(web::to(fallback::not_found))
        })
        .shutdown_timeout(s.server.shutdown_timeout_secs)
        .listen(listener)
        .map_err(bind_error)?
        .run();
        tracing::info!(%address, port, routes = config.routes.len(), "flowgate listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server: `graceful` lets in-flight requests finish.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until SIGTERM/SIGINT (graceful) or `handle().stop()`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
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
