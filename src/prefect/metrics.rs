//! What the Prefect client counts: every call sent, by call and outcome, and how long Prefect
//! took to answer it. The handles are shared by every clone of the client and registered by
//! `crate::metrics`. A call that found no free slot (`Busy`) was not sent and is not counted
//! here (the concurrency limit's gauges show it).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::PrefectError;
use crate::metrics::{histogram_family, HistogramFamily};

/// The calls flowgate makes to Prefect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    ReadDeployment,
    CreateFlowRun,
    Health,
    /// The internal API's reads and state changes.
    ReadFlowRun,
    ReadObject,
    FilterFlowRuns,
    SetFlowRunState,
    /// The lifecycle API's flow and deployment writes.
    ManageDeployment,
}

impl Call {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadDeployment => "read_deployment",
            Self::CreateFlowRun => "create_flow_run",
            Self::Health => "health",
            Self::ReadFlowRun => "read_flow_run",
            Self::ReadObject => "read_object",
            Self::FilterFlowRuns => "filter_flow_runs",
            Self::SetFlowRunState => "set_flow_run_state",
            Self::ManageDeployment => "manage_deployment",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabels {
    pub call: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallOutcomeLabels {
    pub call: &'static str,
    pub outcome: &'static str,
}

/// Calls to Prefect by call and outcome, and their latency by call.
#[derive(Debug, Clone)]
pub struct PrefectMetrics {
    pub requests: Family<CallOutcomeLabels, Counter>,
    pub duration: HistogramFamily<CallLabels>,
}

impl Default for PrefectMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: histogram_family(),
        }
    }
}

impl PrefectMetrics {
    /// Counts one sent call and its time to an answer (or to the failure).
    pub(super) fn record(&self, call: Call, elapsed: Duration, result: Result<(), &PrefectError>) {
        let call = call.as_str();
        self.requests
            .get_or_create(&CallOutcomeLabels {
                call,
                outcome: outcome(result),
            })
            .inc();
        self.duration
            .get_or_create(&CallLabels { call })
            .observe(elapsed.as_secs_f64());
    }
}

/// The outcome label of a call: what Prefect's answer (or its absence) meant.
pub fn outcome(result: Result<(), &PrefectError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(PrefectError::NotFound) => "not_found",
        Err(PrefectError::Rejected { .. }) => "rejected",
        Err(PrefectError::Unauthorized { .. }) => "unauthorized",
        // Before `is_overload`, which also holds for a connection that could not be made.
        Err(PrefectError::Connect(_)) => "unreachable",
        Err(PrefectError::Busy) => "busy",
        Err(e) if e.is_overload() => "overloaded",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_tell_overload_from_refusal_and_errors() {
        let of = |e: PrefectError| outcome(Err(&e));
        assert_eq!(outcome(Ok(())), "ok");
        assert_eq!(of(PrefectError::NotFound), "not_found");
        assert_eq!(
            of(PrefectError::Rejected {
                status: 409,
                detail: String::new()
            }),
            "rejected"
        );
        assert_eq!(
            of(PrefectError::Unauthorized { status: 401 }),
            "unauthorized"
        );
        assert_eq!(of(PrefectError::ServerError { status: 503 }), "overloaded");
        assert_eq!(
            of(PrefectError::RateLimited { retry_after: None }),
            "overloaded"
        );
        assert_eq!(of(PrefectError::Timeout), "overloaded");
        assert_eq!(of(PrefectError::ServerError { status: 500 }), "error");
        assert_eq!(of(PrefectError::Unexpected("x".into())), "error");
    }

    #[test]
    fn a_recorded_call_is_counted_and_timed() {
        let m = PrefectMetrics::default();
        m.record(Call::CreateFlowRun, Duration::from_millis(30), Ok(()));
        m.record(
            Call::CreateFlowRun,
            Duration::from_millis(3),
            Err(&PrefectError::ServerError { status: 503 }),
        );
        let count = |outcome| {
            m.requests
                .get(&CallOutcomeLabels {
                    call: "create_flow_run",
                    outcome,
                })
                .map(|c| c.get())
        };
        assert_eq!(count("ok"), Some(1));
        assert_eq!(count("overloaded"), Some(1));
        assert!(m
            .duration
            .get(&CallLabels {
                call: "read_deployment"
            })
            .is_none());
        assert!(m
            .duration
            .get(&CallLabels {
                call: "create_flow_run"
            })
            .is_some());
    }
}
