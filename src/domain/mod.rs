//! Parse-don't-validate newtypes: raw input becomes one of these exactly once.

mod deployment_ref;
mod field_error;
mod idempotency_key;
mod parameters;
mod route_name;
mod short_text;

pub use deployment_ref::{DeploymentRef, DeploymentRefError};
pub use field_error::FieldError;
pub use idempotency_key::{IdempotencyKey, IdempotencyKeyError};
pub use parameters::Parameters;
pub use route_name::{RouteName, RouteNameError};
pub use short_text::ShortText;
