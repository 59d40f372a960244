//! `PrefectClient`: resolve a deployment by name, create a flow run, check health.
//! Every call goes through the concurrency limit (fixed or adaptive, fed by each call's outcome)
//! and a per-call timeout; calls made idempotent (reads, and creates carrying an idempotency
//! key) retry within the deadline when the caller is patient. Each call sent is counted and
//! timed (`PrefectMetrics`).

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;

use super::dto::{DeploymentBody, DetailBody, FlowRunBody};
use super::http::{Answer, Outgoing, Transport};
use super::limit::{ConcurrencyLimit, Signal};
use super::metrics::{Call, PrefectMetrics};
use super::retry::{retry, Deadline, RetryPolicy};
use super::{Deployment, FlowRunCreate, PrefectError};
use crate::configuration::{PrefectAuth, PrefectSettings};
use crate::domain::DeploymentRef;

/// A flow run Prefect holds after `create_flow_run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedRun {
    pub id: uuid::Uuid,
    /// False when Prefect returned an existing run for the idempotency key (200, not 201)
    /// and no earlier attempt of this call could have created it.
    pub created: bool,
}

/// How a caller treats a full concurrency limit and a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// A slot now, leaving `leave` slots free for others (the outbox), or `Busy`; and one
    /// attempt: a sender that can be answered "queued" instead.
    Now { leave: usize },
    /// Wait for a slot and retry until the deadline.
    UntilDeadline,
}

#[derive(Clone)]
pub struct PrefectClient {
    http: Transport,
    base: Url,
    auth: Option<HeaderValue>,
    limit: ConcurrencyLimit,
    policy: RetryPolicy,
    pub(super) call_timeout: Duration,
    metrics: PrefectMetrics,
}

impl std::fmt::Debug for PrefectClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefectClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

impl PrefectClient {
    /// A client of the API at `base`; an `https` base is verified against the system's CA
    /// certificates and `roots`.
    pub fn new(
        base: Url,
        auth: &PrefectAuth,
        s: &PrefectSettings,
        roots: &[reqwest::Certificate],
    ) -> Result<Self, reqwest::Error> {
        let http = Transport::new(&base, s.timeout().min(Duration::from_secs(5)), roots)?;
        let auth = match auth {
            PrefectAuth::None => None,
            PrefectAuth::Basic(secret) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(secret.expose_secret())
            )),
            PrefectAuth::Bearer(secret) => Some(format!("Bearer {}", secret.expose_secret())),
        }
        .and_then(|v| HeaderValue::from_str(&v).ok())
        .map(|mut v| {
            v.set_sensitive(true);
            v
        });
        Ok(Self {
            http,
            base,
            auth,
            limit: ConcurrencyLimit::new(s.concurrency, s.min_in_flight, s.max_in_flight),
            policy: RetryPolicy {
                attempts: s.retry_attempts,
                base_delay: Duration::from_millis(s.retry_base_delay_ms),
                max_delay: Duration::from_millis(s.retry_max_delay_ms),
            },
            call_timeout: s.timeout(),
            metrics: PrefectMetrics::default(),
        })
    }

    /// `GET /deployments/name/{flow}/{deployment}`. A caller that can be answered "queued"
    /// (`Patience::Now`) gets one attempt with a free slot or `Busy`: it never waits out
    /// retries on a Prefect that is down.
    #[tracing::instrument(level = "debug", name = "prefect.read_deployment", skip_all, fields(deployment = %name))]
    pub async fn read_deployment(
        &self,
        name: &DeploymentRef,
        deadline: Deadline,
        patience: Patience,
    ) -> Result<Deployment, PrefectError> {
        let request = Outgoing::new(
            Method::GET,
            self.url(&["deployments", "name", name.flow(), name.deployment()])?,
        );
        let retried = retry(
            self.policy_for(patience),
            deadline,
            self.call_timeout,
            |timeout| {
                let request = &request;
                async move {
                    let answer = self
                        .send(Call::ReadDeployment, request, timeout, deadline, patience)
                        .await?;
                    read_json::<DeploymentBody>(&answer)
                }
            },
        )
        .await?;
        Ok(retried.value.into())
    }

    /// `POST /deployments/{id}/create_flow_run`; safe to retry because the body has a key.
    #[tracing::instrument(level = "debug", name = "prefect.create_flow_run", skip_all, fields(deployment_id = %id))]
    pub async fn create_flow_run(
        &self,
        id: uuid::Uuid,
        body: &FlowRunCreate<'_>,
        deadline: Deadline,
        patience: Patience,
    ) -> Result<CreatedRun, PrefectError> {
        let request = Outgoing::post_json(
            self.url(&["deployments", &id.to_string(), "create_flow_run"])?,
            body,
        )?;
        let retried = retry(
            self.policy_for(patience),
            deadline,
            self.call_timeout,
            |timeout| {
                let request = &request;
                async move {
                    let answer = self
                        .send(Call::CreateFlowRun, request, timeout, deadline, patience)
                        .await?;
                    let run = read_json::<FlowRunBody>(&answer)?;
                    Ok((run.id, answer.status == StatusCode::CREATED))
                }
            },
        )
        .await?;
        let (id, created) = retried.value;
        Ok(CreatedRun {
            id,
            created: created || retried.after_uncertain_attempt,
        })
    }

    /// One attempt for a caller that can be answered "queued"; retries within the deadline
    /// for one that waits.
    pub(super) fn policy_for(&self, patience: Patience) -> RetryPolicy {
        match patience {
            Patience::Now { .. } => RetryPolicy {
                attempts: 1,
                ..self.policy
            },
            Patience::UntilDeadline => self.policy,
        }
    }

    /// The concurrency limit shared by every clone of this client.
    pub fn limit(&self) -> &ConcurrencyLimit {
        &self.limit
    }

    /// The call counters and latency histograms shared by every clone of this client.
    pub fn metrics(&self) -> &PrefectMetrics {
        &self.metrics
    }

    /// `GET /health`, bypassing the call cap: readiness must not queue behind traffic.
    pub async fn health(&self, timeout: Duration) -> Result<(), PrefectError> {
        let request = Outgoing::new(Method::GET, self.url(&["health"])?);
        let started = Instant::now();
        let result = self
            .http
            .exchange(&request, self.auth.as_ref(), timeout)
            .await
            .and_then(check_status)
            .map(drop);
        self.metrics
            .record(Call::Health, started.elapsed(), result.as_ref().copied());
        result
    }

    pub(super) fn url(&self, segments: &[&str]) -> Result<Url, PrefectError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                PrefectError::Unexpected("the Prefect API URL cannot take a path".into())
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Takes a call slot (now, or waiting until the deadline), sends and reads the answer within
    /// the attempt's timeout, tells the limit whether Prefect kept up, and counts and times the
    /// call (from sending to the whole answer: the wait for a slot is not Prefect's time).
    pub(super) async fn send(
        &self,
        call: Call,
        request: &Outgoing,
        timeout: Duration,
        deadline: Deadline,
        patience: Patience,
    ) -> Result<Answer, PrefectError> {
        let slot = match patience {
            Patience::Now { leave } => self.limit.try_acquire_for_request(leave),
            Patience::UntilDeadline => self.limit.acquire(deadline.instant()).await,
        }
        .ok_or(PrefectError::Busy)?;
        let timeout = timeout.min(deadline.remaining());
        let started = Instant::now();
        let result = self
            .http
            .exchange(request, self.auth.as_ref(), timeout)
            .await
            .and_then(check_status);
        self.metrics
            .record(call, started.elapsed(), result.as_ref().map(drop));
        slot.record(match &result {
            Err(e) if e.is_overload() => Signal::Overloaded,
            _ => Signal::Served,
        });
        result
    }
}

fn check_status(answer: Answer) -> Result<Answer, PrefectError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(answer);
    }
    Err(match status.as_u16() {
        404 => PrefectError::NotFound,
        401 | 403 => PrefectError::Unauthorized {
            status: status.as_u16(),
        },
        409 => {
            let detail = serde_json::from_slice::<DetailBody>(&answer.body)
                .ok()
                .and_then(|b| b.detail)
                .map(|d| {
                    d.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| d.to_string())
                })
                .unwrap_or_default();
            PrefectError::Rejected {
                status: 409,
                detail,
            }
        }
        429 => PrefectError::RateLimited {
            retry_after: answer.retry_after,
        },
        s @ 500..=599 => PrefectError::ServerError { status: s },
        s => PrefectError::Unexpected(format!("status {s}")),
    })
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    answer: &Answer,
) -> Result<T, PrefectError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        PrefectError::Unexpected(format!("unreadable response body ({:?})", e.classify()))
    })
}
