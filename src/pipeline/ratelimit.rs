//! Limit stages: per client address before authentication, per route after it.

use std::net::IpAddr;

use crate::error::GatewayError;
use crate::ratelimit::{retry_after_secs, KeyedLimiter};
use crate::route_table::Route;

/// Per client address; requests whose address is unknown share one bucket.
pub fn check_client(
    limiter: Option<&KeyedLimiter<IpAddr>>,
    client: Option<IpAddr>,
) -> Result<(), GatewayError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    let key = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    limiter.check(&key).map_err(|wait| {
        tracing::debug!(client = %key, "per-address rate limit reached");
        GatewayError::RateLimited {
            retry_after_secs: retry_after_secs(wait),
        }
    })
}

/// The route's own rate, counted only for authenticated requests.
pub fn check_route(route: &Route) -> Result<(), GatewayError> {
    let Some(limiter) = route.limiter() else {
        return Ok(());
    };
    limiter
        .check(&())
        .map_err(|wait| GatewayError::RateLimited {
            retry_after_secs: retry_after_secs(wait),
        })
}
