//! The request path's side of durable delivery: what a sender is told, and writing a request
//! to the outbox when Prefect cannot take it now. Nothing is acknowledged that is not stored.
//! `submit` decides between a synchronous attempt and the outbox; `failure` says what each
//! failure means for the request, the deliverer and the breaker.

mod failure;
mod submit;

pub use failure::{classify, describe, Failure};
pub use submit::Submitter;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::error::GatewayError;
use crate::pipeline::dispatch::{Dispatched, RunStatus};
use crate::pipeline::map::FlowRunPlan;
use crate::pipeline::verify::unix_now;
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
    /// 202 as if created, to a request that filled the honeypot: nothing was started.
    Decoy {
        flow_run_id: uuid::Uuid,
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
    /// The answer's `status` word: created, queued or duplicate.
    pub fn word(self) -> &'static str {
        match self {
            Self::Created { .. } | Self::Decoy { .. } => "created",
            Self::Queued { .. } => "queued",
            Self::DuplicateRun { .. } | Self::DuplicateQueued { .. } => "duplicate",
        }
    }

    pub fn as_duplicate(self) -> Self {
        match self {
            Self::Created { flow_run_id }
            | Self::DuplicateRun { flow_run_id }
            | Self::Decoy { flow_run_id } => Self::DuplicateRun { flow_run_id },
            Self::Queued { delivery_id } | Self::DuplicateQueued { delivery_id } => {
                Self::DuplicateQueued { delivery_id }
            }
        }
    }

    pub fn remembered(self) -> RememberedOutcome {
        match self {
            Self::Created { flow_run_id }
            | Self::DuplicateRun { flow_run_id }
            | Self::Decoy { flow_run_id } => RememberedOutcome::Run(flow_run_id),
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

/// The outbox as the request path sees it.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>, wake: Arc<Notify>) -> Self {
        Self { store, wake }
    }

    /// Entries the route has waiting (from memory). While a route has any, its new requests
    /// leave the outbox its share of Prefect's call slots (see `Submitter::submit`).
    pub fn waiting(&self, route: &str) -> u64 {
        self.store.queued(route)
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
    #[tracing::instrument(level = "debug", name = "stage.queue", skip_all, fields(route = %plan.route.name()))]
    pub async fn queue(&self, plan: &FlowRunPlan, reason: &str) -> Result<Outcome, GatewayError> {
        let now = unix_now();
        let entry = OutboxEntry {
            id: uuid::Uuid::now_v7(),
            route: plan.route.name().to_string(),
            deployment: plan.route.deployment().to_string(),
            parameters: plan.parameters.clone(),
            tags: plan.tags().to_vec(),
            name: plan.name.clone(),
            idempotency_key: plan.namespaced_key(),
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: reason.to_owned(),
        };
        let delivery_id = entry.id;
        self.store.enqueue(entry).await.map_err(|e| {
            tracing::error!(error = %crate::error::error_chain(&e), "cannot store the request; refusing it");
            GatewayError::StoreUnavailable
        })?;
        tracing::debug!(%delivery_id, reason, "queued for delivery");
        // Coalesced: one stored permit however many requests arrive before the deliverer looks.
        self.wake.notify_one();
        Ok(Outcome::Queued { delivery_id })
    }
}
