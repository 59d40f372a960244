//! The internal API under `/api/v1` on the public listener, for backends: trigger any
//! deployment by name through the same durable path as webhooks, and follow a request to its
//! flow run. Bearer tokens with deployments and scopes (`tokens`); problem+json errors.

pub mod deliveries;
pub mod runs;
pub mod tokens;
pub mod trigger;
