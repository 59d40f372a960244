//! A typed client for the parts of Prefect's REST API flowgate uses.

mod client;
mod deployments;
mod direct;
mod dto;
mod error;
mod http;
mod limit;
mod metrics;
mod rejection;
mod retry;
mod runs;

pub use client::{CreatedRun, Patience, PrefectClient};
#[cfg(test)]
pub(crate) use dto::DeploymentBody as DeploymentBodyForTests;
pub use dto::{Deployment, FlowRunCreate};
pub use error::PrefectError;
pub use limit::{ConcurrencyLimit, LimitMode, LimitSnapshot, Permit, Signal};
pub use metrics::{Call, CallLabels, CallOutcomeLabels, PrefectMetrics};
pub use rejection::rejection_reasons;
pub use retry::{Deadline, RetryPolicy};
