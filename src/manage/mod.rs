//! Deployment lifecycle: deployments with cron schedules kept in Prefect as desired state.
//! The desired state is stored first (`store::ManagedRow`); the reconciler applies it with
//! backoff while Prefect is down, and puts back what is changed or deleted by hand.

pub mod apply;
pub mod reconciler;
pub mod spec;
pub mod stale_runs;

pub use reconciler::{Manager, SyncEvent};
pub use spec::{DesiredDeployment, ScheduleSpec};
