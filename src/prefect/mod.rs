//! A typed client for the parts of Prefect's REST API flowgate uses.

mod client;
mod dto;
mod error;
mod rejection;
mod retry;

pub use client::{CreatedRun, PrefectClient};
#[cfg(test)]
pub(crate) use dto::DeploymentBody as DeploymentBodyForTests;
pub use dto::{Deployment, FlowRunCreate};
pub use error::PrefectError;
pub use rejection::rejection_reasons;
pub use retry::{Deadline, RetryPolicy};
