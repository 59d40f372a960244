//! Route stage: which route, and does it accept this Content-Type.

use std::sync::Arc;

use actix_web::http::header::{HeaderMap, CONTENT_TYPE};

use crate::error::GatewayError;
use crate::route_table::{ContentKind, Route, RouteTable};

/// `/hooks/{name}` → the route, or 404 `unknown_route`.
pub fn find_route(table: &RouteTable, name: &str) -> Result<Arc<Route>, GatewayError> {
    table.get(name).ok_or_else(|| unknown_route(name))
}

/// Most characters of an unknown route's name kept (the sender typed it).
const MAX_SHOWN_ROUTE: usize = 64;

/// 404 `unknown_route`, naming what the sender asked for as [`shown_route`] keeps it.
pub fn unknown_route(name: &str) -> GatewayError {
    GatewayError::UnknownRoute(shown_route(name).to_owned())
}

/// The first 64 characters of a route name from the path (borrowed): what an answer, the log
/// and the rejection log keep of it.
pub fn shown_route(name: &str) -> &str {
    name.char_indices()
        .nth(MAX_SHOWN_ROUTE)
        .map_or(name, |(at, _)| &name[..at])
}

/// The body's encoding, if the route accepts it; else 415. A charset other than UTF-8 is refused.
#[tracing::instrument(level = "debug", name = "stage.content_type", skip_all)]
pub fn content_kind(route: &Route, headers: &HeaderMap) -> Result<ContentKind, GatewayError> {
    let unsupported = || GatewayError::UnsupportedMediaType {
        accepted: route
            .content_types()
            .iter()
            .map(|k| k.media_type())
            .collect::<Vec<_>>()
            .join(" or "),
    };
    let raw = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    match ContentKind::parse(essence) {
        Some(kind) if charset_ok && route.content_types().contains(&kind) => Ok(kind),
        _ => Err(unsupported()),
    }
}
