//! The submit policy: whether a request goes to Prefect now or to the outbox. Used by every
//! entry point that starts a run, so they all keep the same promise: the sender never waits on
//! Prefect's pace when it can be answered `queued`, and never jumps ahead of earlier senders.

use std::sync::Arc;
use std::time::Duration;

use super::{classify, Outbox, Outcome};
use crate::breaker::Breaker;
use crate::error::GatewayError;
use crate::pipeline::dispatch::dispatch;
use crate::pipeline::map::FlowRunPlan;
use crate::pipeline::resolve::DeploymentResolver;
use crate::prefect::{Deadline, Patience, PrefectClient};

#[derive(Clone)]
pub struct Submitter {
    pub outbox: Outbox,
    pub breaker: Arc<Breaker>,
    pub resolver: DeploymentResolver,
    pub prefect: PrefectClient,
    /// How long a sender that cannot be answered `queued` may wait, retries included.
    pub budget: Duration,
}

impl Submitter {
    /// `queues`: the caller accepts `202 queued`. Then the request takes a free call slot or
    /// none and makes one attempt, and is queued when its route has entries waiting, when the
    /// breaker is open, or when the attempt fails in a way a later attempt may not. Otherwise
    /// it waits for a slot and retries within the budget, and the error is the answer.
    pub async fn submit(&self, plan: &FlowRunPlan, queues: bool) -> Result<Outcome, GatewayError> {
        if queues {
            let waiting = self.outbox.waiting(plan.route.name().as_ref());
            if waiting > 0 {
                return self
                    .outbox
                    .queue(plan, "behind queued requests of this route")
                    .await;
            }
            if !self.breaker.admit() {
                return self
                    .outbox
                    .queue(plan, "Prefect is failing (circuit open)")
                    .await;
            }
        }
        let patience = if queues {
            Patience::Now
        } else {
            Patience::UntilDeadline
        };
        let deadline = Deadline::after(self.budget);
        match dispatch(plan, &self.resolver, &self.prefect, deadline, patience).await {
            Ok(run) => {
                self.breaker.success();
                Ok(Outcome::from_dispatch(run))
            }
            Err(e) => {
                let failure = classify(&e);
                if failure.counts_against_prefect() {
                    self.breaker.failure();
                }
                if queues && failure.is_deferrable() {
                    self.outbox.queue(plan, &format!("{}: {e}", e.code())).await
                } else {
                    Err(e)
                }
            }
        }
    }
}
