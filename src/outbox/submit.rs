//! The submit policy: whether a request goes to Prefect now or to the outbox. Used by every
//! entry point that starts a run, so they all keep the same promise: the sender never waits on
//! Prefect's pace when it can be answered `queued`, and never takes the call slots the outbox
//! needs to drain what waited before it.

use std::sync::Arc;
use std::time::Duration;

use super::{classify, describe, Failure, Outbox, Outcome};
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
    /// none and makes one attempt, and is queued when the breaker is open, when no slot is
    /// free, or when the attempt fails in a way a later attempt may not. While its route has
    /// entries waiting, it may only take a slot that leaves the outbox its reserve (half the
    /// limit, rounded up) — unless the deliverer already keeps to that half because requests
    /// found no slot lately: on a Prefect that takes one call at a time it queues behind them,
    /// and on a fast one fresh requests go through while the outbox drains beside them.
    /// A caller that does not queue waits for a slot and retries within the budget, and the
    /// error is the answer.
    pub async fn submit(&self, plan: &FlowRunPlan, queues: bool) -> Result<Outcome, GatewayError> {
        let patience = if queues {
            let waiting = self.outbox.waiting(plan.route.name().as_ref());
            let limit = self.prefect.limit();
            let slots = limit.snapshot().limit;
            let mut leave = outbox_reserve(waiting, slots);
            if leave >= slots {
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
            if limit.requests_refused_recently() {
                // The deliverer already keeps to its half of the limit.
                leave = 0;
            }
            Patience::Now { leave }
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
                let deferrable = failure.is_deferrable()
                    && (failure != Failure::Missing || plan.route.queues_missing());
                if queues && deferrable {
                    self.outbox.queue(plan, &describe(&e)).await
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// Call slots a request leaves to the outbox while `waiting` entries of its route wait: half the
/// limit, rounded up, and no more than there are entries.
pub fn outbox_reserve(waiting: u64, limit: usize) -> usize {
    let half = limit.div_ceil(2);
    usize::try_from(waiting).map_or(half, |w| w.min(half))
}

#[cfg(test)]
mod tests {
    use super::outbox_reserve;

    #[test]
    fn the_outbox_keeps_half_the_slots_while_entries_wait() {
        assert_eq!(
            outbox_reserve(0, 64),
            0,
            "nothing waits: every slot may serve requests"
        );
        assert_eq!(
            outbox_reserve(1_000, 1),
            1,
            "one writer: requests queue behind the backlog"
        );
        assert_eq!(outbox_reserve(1_000, 64), 32);
        assert_eq!(outbox_reserve(5, 64), 5);
        assert_eq!(outbox_reserve(1_000, 3), 2);
    }
}
