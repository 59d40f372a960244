//! flowgate: a webhook ingress gateway for self-hosted Prefect.
//!
//! One request travels `routes::hooks` → `pipeline::*` stages → `prefect` client. See
//! `README.md` for the operator's view and `config/default.toml` for every setting.
#![forbid(unsafe_code)]

pub mod api;
pub mod apply_command;
pub mod breaker;
pub mod configuration;
pub mod deliverer;
pub mod domain;
pub mod error;
pub mod json_text;
pub mod live;
pub mod manage;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod prefect;
pub mod problem;
pub mod ratelimit;
pub mod readiness;
pub mod rejections;
pub mod request_id;
pub mod request_log;
pub mod route_table;
pub mod routes;
pub mod schema_check;
pub mod sharded_metrics;
pub mod sign_command;
pub mod signature;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod timefmt;
