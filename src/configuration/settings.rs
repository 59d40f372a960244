//! Typed settings as read from TOML and `FLOWGATE__…` environment variables.
//! Every field is documented in `config/default.toml`; defaults here match that file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::route_settings::RouteSettings;
use crate::prefect::LimitMode;
use crate::ratelimit::LimitSettings;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub prefect: PrefectSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub limits: LimitsSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub delivery: DeliverySettings,
    #[serde(default)]
    pub rejections: RejectionSettings,
    #[serde(default)]
    pub api: ApiSettings,
    /// Routes by name; each is served at `POST /hooks/{name}`.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteSettings>,
    /// Managed deployments by `flow/deployment` name: desired state kept in Prefect.
    #[serde(default)]
    pub deployments: BTreeMap<String, crate::manage::DesiredDeployment>,
}

/// The public listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Body size cap for routes that set none, in bytes.
    pub max_body_bytes: usize,
    /// Seconds to let in-flight requests finish on SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Proxies (CIDRs) whose X-Forwarded-For / Forwarded headers are believed.
    pub trusted_proxies: Vec<String>,
    /// Seconds a verified delivery id is remembered, so a redelivery gets the first outcome.
    pub delivery_memory_secs: u64,
    /// Most delivery ids remembered.
    pub delivery_memory_capacity: u64,
    /// Milliseconds a client has to send the request head (408 after).
    pub client_request_timeout_ms: u64,
    /// Milliseconds a client has to send the whole body (408 request_timeout after).
    pub body_timeout_ms: u64,
    /// Most concurrent connections per worker thread.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            delivery_memory_secs: 7 * 24 * 3600,
            delivery_memory_capacity: 20_000,
            client_request_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            max_connections: 10_000,
        }
    }
}

/// How flowgate talks to Prefect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrefectSettings {
    /// Prefect API base URL, ending in `/api`.
    pub api_url: String,
    /// Timeout of one call to Prefect, in milliseconds.
    pub timeout_ms: u64,
    /// Time a sender may wait for the whole dispatch (queueing, retries), in milliseconds.
    pub request_budget_ms: u64,
    /// `adaptive`: the cap on calls in flight grows while Prefect keeps up and shrinks on
    /// 503/429/timeouts, within `min_in_flight..=max_in_flight`. `fixed`: always `max_in_flight`.
    pub concurrency: LimitMode,
    /// Lowest adaptive cap (and where it starts).
    pub min_in_flight: usize,
    /// Highest cap. A SQLite-backed Prefect takes one write at a time.
    pub max_in_flight: usize,
    /// Attempts per call on 503, 429 and connection errors (1 = no retry).
    pub retry_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt, with jitter.
    pub retry_base_delay_ms: u64,
    /// Largest retry delay in milliseconds.
    pub retry_max_delay_ms: u64,
    /// Seconds a resolved deployment id stays cached.
    pub deployment_cache_ttl_secs: u64,
    /// Most deployments held in the cache.
    pub deployment_cache_capacity: u64,
    /// PEM file of CA certificates trusted for an `https://` `api_url`, besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PrefectSettings {
    fn default() -> Self {
        Self {
            api_url: "http://127.0.0.1:4200/api".into(),
            timeout_ms: 10_000,
            request_budget_ms: 5_000,
            concurrency: LimitMode::Adaptive,
            min_in_flight: 1,
            max_in_flight: 64,
            retry_attempts: 6,
            retry_base_delay_ms: 50,
            retry_max_delay_ms: 2_000,
            deployment_cache_ttl_secs: 300,
            deployment_cache_capacity: 1_000,
            ca_file: None,
        }
    }
}

impl PrefectSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn request_budget(&self) -> Duration {
        Duration::from_millis(self.request_budget_ms)
    }

    pub fn deployment_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.deployment_cache_ttl_secs)
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `pretty` (human) or `json` (one object per line).
    pub format: LogFormat,
    /// A tracing filter such as `info` or `flowgate=debug,actix_web=info`; `RUST_LOG` wins.
    pub level: String,
    /// Rejection lines written per (client, route, code) per minute; the rest are counted.
    pub rejection_lines_per_minute: u32,
    /// Rejection lines written per second in all; the rest are counted.
    pub max_rejection_lines_per_sec: u32,
    /// Request lines written per second in all; the rest are counted.
    pub max_request_lines_per_sec: u32,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
            rejection_lines_per_minute: 5,
            max_rejection_lines_per_sec: 100,
            max_request_lines_per_sec: 2000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Abuse protection shared by all routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// Per client address, before authentication; absent disables it.
    pub per_ip: Option<LimitSettings>,
    /// Seconds between evictions of idle rate-limit keys.
    pub evict_every_secs: u64,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Most fields (JSON object members anywhere, or form pairs) in one body.
    pub max_fields: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            per_ip: Some(LimitSettings {
                per_minute: 120,
                burst: 30,
            }),
            evict_every_secs: 30,
            max_json_depth: 16,
            max_fields: 200,
        }
    }
}

/// The admin listener: `/metrics` for Prometheus. Keep it on loopback or a private network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Whether to open the admin listener at all.
    pub enabled: bool,
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 9090,
        }
    }
}

/// Where the outbox and the delivery-id memory live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// SQLite file (created with its directory). WAL and fsync on every commit.
    pub path: String,
    /// Largest the SQLite file may grow; beyond it new requests that need queueing get 503.
    pub max_size_mb: u64,
    /// `postgres://user@host:port/database[?sslmode=require]`: PostgreSQL instead of the
    /// SQLite file, shared by several replicas. The password comes from
    /// `FLOWGATE_STORE_PASSWORD` (or the file named by `FLOWGATE_STORE_PASSWORD_FILE`), never
    /// from the URL.
    pub url: Option<String>,
    /// CA certificates (PEM) trusted for PostgreSQL's TLS certificate besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// PostgreSQL connections per replica for reads and claims (the writer holds one more).
    pub pool_size: usize,
    /// Seconds a replica's claim on an outbox entry lasts: a killed replica's entries are
    /// delivered by the others after this.
    pub lease_secs: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            path: "data/flowgate.db".into(),
            max_size_mb: 1024,
            url: None,
            ca_file: None,
            pool_size: 8,
            lease_secs: 60,
        }
    }
}

/// The internal API under `/api/v1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Bearer tokens; none with a secret set turns the API off (404).
    pub tokens: Vec<ApiTokenSettings>,
    /// Seconds between the reconciler's looks at every managed deployment (drift repair).
    pub deployments_resync_secs: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            deployments_resync_secs: 60,
        }
    }
}

/// One API token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenSettings {
    /// Shown in logs and errors (never the secret).
    pub name: String,
    /// Environment variable holding the secret; `{env}_FILE` may name a file instead.
    pub env: Option<String>,
    /// File holding the secret (trailing newline ignored).
    pub file: Option<String>,
    /// `flow/deployment`, `flow/*` or `*`.
    pub deployments: Vec<String>,
    /// trigger, read, cancel, manage.
    pub scopes: Vec<String>,
}

/// The rejection log: refused requests kept for ops, with their reason, to replay after a fix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RejectionSettings {
    /// Whether refused requests are kept at all (counts stay in metrics either way).
    pub enabled: bool,
    /// Records kept at most (the oldest go first).
    pub max_rows: u64,
    /// Records older than this go.
    pub retention_hours: u64,
    /// Bytes of a body kept; a longer body is cut (shown, not replayable).
    pub max_body_bytes: usize,
    /// Identical rejections (same client, route and code) within this many seconds of the
    /// first are counted into its record rather than stored again.
    pub aggregate_secs: u64,
    /// New records per second at most; beyond, rejections are counted into one record per
    /// route and code (client shown as many).
    pub records_per_sec: u32,
    /// Body fields shown masked (`j***@example.com`); the stored body stays whole for replay.
    pub mask_fields: Vec<String>,
    /// Headers never stored, beyond the built-in ones (Authorization, cookies, signatures,
    /// tokens, keys) and each route's `secret_headers`.
    pub secret_headers: Vec<String>,
}

impl Default for RejectionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_rows: 10_000,
            retention_hours: 168,
            max_body_bytes: 65_536,
            aggregate_secs: 60,
            records_per_sec: 100,
            mask_fields: [
                "email",
                "phone",
                "first_name",
                "last_name",
                "name",
                "address",
            ]
            .map(String::from)
            .to_vec(),
            secret_headers: Vec::new(),
        }
    }
}

/// The outbox deliverer and the circuit breaker in front of Prefect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// An entry undelivered for this long goes dead (ops can see and replay it).
    pub max_age_secs: u64,
    /// First wait between delivery attempts, ms; doubles with jitter up to retry_max_delay_ms.
    pub retry_base_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    /// Entries read from the outbox at a time.
    pub batch_size: usize,
    /// Seconds between Prefect health probes while entries wait.
    pub probe_every_secs: u64,
    /// Failures in a row after which requests skip Prefect and are queued at once.
    pub breaker_threshold: u32,
    /// Seconds the breaker stays open before one request probes Prefect again.
    pub breaker_cooldown_secs: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_age_secs: 3 * 24 * 3600,
            retry_base_delay_ms: 1_000,
            retry_max_delay_ms: 300_000,
            batch_size: 32,
            probe_every_secs: 2,
            breaker_threshold: 5,
            breaker_cooldown_secs: 10,
        }
    }
}
