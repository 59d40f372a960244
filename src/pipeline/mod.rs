//! The stages of one request, cheapest first. Each takes the previous stage's type and returns
//! the next one's, or a `GatewayError` with one stable code.
//!
//! client → limit → route → content type → body → verify → limit → parse → select (filters,
//! targets) → dedup → honeypot → fields → map → resolve → dispatch

pub mod body;
pub mod client;
pub mod cors;
pub mod dedup;
pub mod dispatch;
pub mod fields;
pub mod honeypot;
pub mod map;
pub mod parse;
pub mod path;
pub mod ratelimit;
pub mod recent;
pub mod resolve;
pub mod route;
pub mod schema;
pub mod select;
pub mod verify;
pub mod watchdog;

/// Route `r` of a configuration given as TOML (its `[routes.r]` header included).
#[cfg(test)]
pub(crate) fn test_route(toml_text: &str) -> std::sync::Arc<crate::route_table::Route> {
    use crate::configuration::{read_settings, Configuration, PrefectAuth};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, toml_text).unwrap();
    let settings = read_settings(&file).unwrap();
    let config = Configuration::from_settings(settings, PrefectAuth::None).unwrap();
    config.routes.get("r").unwrap()
}
