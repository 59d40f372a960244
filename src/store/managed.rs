//! Managed deployments' desired state as the store keeps it: the spec (JSON), a generation
//! bumped by every change, and how far the reconciler got with it.

/// One managed deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRow {
    /// `flow/deployment`.
    pub name: String,
    /// The desired state as JSON (`manage::DesiredDeployment`).
    pub spec: String,
    /// Asked to be removed from Prefect; the row goes once that is done.
    pub deleted: bool,
    /// Bumped by every change of `spec` or `deleted`.
    pub generation: i64,
    /// The generation last applied to Prefect (0: never).
    pub synced_generation: i64,
    /// The last attempt's failure, if it failed.
    pub error: Option<String>,
    /// Prefect's id of the deployment, once created.
    pub prefect_id: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

impl ManagedRow {
    /// `in_sync`, `pending` or `error`.
    pub fn sync(&self) -> &'static str {
        if self.error.is_some() {
            "error"
        } else if self.synced_generation >= self.generation {
            "in_sync"
        } else {
            "pending"
        }
    }
}

/// A change to the managed deployments.
#[derive(Debug, Clone)]
pub enum ManagedWrite {
    /// Sets the desired state; the generation moves only if it differs (or was deleted).
    Put {
        name: String,
        spec: String,
        now: i64,
    },
    /// Marks the deployment for removal from Prefect.
    Delete { name: String, now: i64 },
    /// The reconciler applied `generation` (or failed to).
    Synced {
        name: String,
        generation: i64,
        outcome: SyncOutcome,
    },
}

#[derive(Debug, Clone)]
pub enum SyncOutcome {
    /// Prefect holds the desired state (its deployment id).
    Applied(String),
    /// Removed from Prefect: the row is dropped.
    Removed,
    Failed(String),
}
