//! The request path's side of durable delivery: what a sender is told, and writing a request
//! to the outbox when Prefect cannot take it now. Nothing is acknowledged that is not stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::error::GatewayError;
use crate::pipeline::dispatch::{Dispatched, RunStatus};
use crate::pipeline::map::FlowRunPlan;
use crate::pipeline::verify::unix_now;
use crate::prefect::PrefectError;
use crate::store::{OutboxEntry, RememberedOutcome, Store};

/// What the sender is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 202: Prefect created the run.
    Created {
        flow_run_id: uuid::Uuid,
    },
    /// 202: durably queued; the deliverer will create the run.
    Queued {
        delivery_id: uuid::Uuid,
    },
    /// 200: the same request was answered before; nothing new was done.
    DuplicateRun {
        flow_run_id: uuid::Uuid,
    },
    DuplicateQueued {
        delivery_id: uuid::Uuid,
    },
}

impl Outcome {
    pub fn from_dispatch(d: Dispatched) -> Self {
        match d.status {
            RunStatus::Created => Self::Created {
                flow_run_id: d.flow_run_id,
            },
            RunStatus::Duplicate => Self::DuplicateRun {
                flow_run_id: d.flow_run_id,
            },
        }
    }

    /// The same outcome, as seen by a repeat of the request.
    pub fn as_duplicate(self) -> Self {
        match self {
            Self::Created { flow_run_id } | Self::DuplicateRun { flow_run_id } => {
                Self::DuplicateRun { flow_run_id }
            }
            Self::Queued { delivery_id } | Self::DuplicateQueued { delivery_id } => {
                Self::DuplicateQueued { delivery_id }
            }
        }
    }

    pub fn remembered(self) -> RememberedOutcome {
        match self {
            Self::Created { flow_run_id } | Self::DuplicateRun { flow_run_id } => {
                RememberedOutcome::Run(flow_run_id)
            }
            Self::Queued { delivery_id } | Self::DuplicateQueued { delivery_id } => {
                RememberedOutcome::Queued(delivery_id)
            }
        }
    }

    pub fn from_remembered(r: RememberedOutcome) -> Self {
        match r {
            RememberedOutcome::Run(flow_run_id) => Self::DuplicateRun { flow_run_id },
            RememberedOutcome::Queued(delivery_id) => Self::DuplicateQueued { delivery_id },
        }
    }
}

/// Errors after which the request is kept for later rather than refused: Prefect down, slow,
/// overloaded, misconfigured or missing the deployment. The sender's input was fine.
pub fn is_deferrable(e: &GatewayError) -> bool {
    matches!(
        e,
        GatewayError::UpstreamUnavailable(_)
            | GatewayError::UpstreamTimeout(_)
            | GatewayError::UpstreamError(_)
            | GatewayError::DeploymentNotFound(_)
    )
}

/// Whether a Prefect error only says every call slot was taken: not a failure of Prefect.
pub fn is_busy(e: &GatewayError) -> bool {
    matches!(e, GatewayError::UpstreamUnavailable(p) if matches!(**p, PrefectError::Busy))
}

/// Entries each route has waiting in the outbox. While a route has any, its new requests queue
/// behind them: the deliverer drains each route oldest first, and a new request never jumps
/// ahead of an earlier sender's. Kept in memory, counted from the store at startup and whenever
/// the deliverer is idle.
#[derive(Debug, Default)]
pub struct Backlog(Mutex<HashMap<String, u64>>);

impl Backlog {
    pub fn waiting(&self, route: &str) -> u64 {
        self.counts().get(route).copied().unwrap_or(0)
    }

    pub fn added(&self, route: &str) {
        *self.counts().entry(route.to_owned()).or_insert(0) += 1;
    }

    pub fn settled(&self, route: &str) {
        let mut counts = self.counts();
        if let Some(n) = counts.get_mut(route) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(route);
            }
        }
    }

    /// Replaces the counts with the store's.
    pub fn reset(&self, counted: Vec<(String, u64)>) {
        *self.counts() = counted.into_iter().filter(|(_, n)| *n > 0).collect();
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // Plain counters: a panicking holder cannot leave them half-updated.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The outbox as the request path sees it.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    backlog: Arc<Backlog>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>, wake: Arc<Notify>, backlog: Arc<Backlog>) -> Self {
        Self {
            store,
            wake,
            backlog,
        }
    }

    /// Entries the route has waiting.
    pub fn waiting(&self, route: &str) -> u64 {
        self.backlog.waiting(route)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Tells the deliverer there is work now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stores the plan durably, then wakes the deliverer. Fails with 503 `store_unavailable`
    /// when it cannot be stored: the sender must not be told it was accepted.
    #[tracing::instrument(name = "stage.queue", skip_all, fields(route = %plan.route.name()))]
    pub async fn queue(&self, plan: &FlowRunPlan, reason: &str) -> Result<Outcome, GatewayError> {
        let now = unix_now();
        let entry = OutboxEntry {
            id: uuid::Uuid::now_v7(),
            route: plan.route.name().to_string(),
            deployment: plan.route.deployment().to_string(),
            parameters: plan.parameters.clone(),
            tags: plan.tags.clone(),
            name: plan.name.clone(),
            idempotency_key: plan.namespaced_key(),
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: reason.to_owned(),
        };
        let delivery_id = entry.id;
        let route = entry.route.clone();
        self.store.enqueue(entry).await.map_err(|e| {
            tracing::error!(error = %crate::error::error_chain(&e), "cannot store the request; refusing it");
            GatewayError::StoreUnavailable
        })?;
        self.backlog.added(&route);
        tracing::info!(%delivery_id, reason, "queued for delivery");
        self.wake.notify_one();
        Ok(Outcome::Queued { delivery_id })
    }
}
