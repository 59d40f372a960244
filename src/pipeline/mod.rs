//! The stages of one request, cheapest first. Each takes the previous stage's type and returns
//! the next one's, or a `GatewayError` with one stable code.
//!
//! route → body → parse → fields → map → resolve → dispatch

pub mod body;
pub mod dispatch;
pub mod fields;
pub mod map;
pub mod parse;
pub mod resolve;
pub mod route;
