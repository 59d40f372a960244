//! How a call reaches Prefect: `Transport` sends an `Outgoing` request and reads its whole
//! `Answer`, on hyper's connections directly for a plain `http://` API (`direct.rs`), through
//! reqwest otherwise (`https://`, credentials in the URL, a proxy in the environment).
//!
//! reqwest's clients are one connection pool per thread. A pooled connection is driven by a
//! task on the runtime that opened it. With one pool shared by every thread, a call from one
//! actix worker often went out on a connection that the main thread (the deliverer, readiness)
//! or the other worker had opened, so each call woke a second thread twice; profiled under
//! load, the main thread drove more Prefect connections than either worker. A pool per thread
//! keeps each call on the thread that makes it (the direct transport's pool does the same).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};

use super::direct::Direct;
use super::PrefectError;

pub(super) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// How long an idle connection to Prefect is kept, by either transport: under Prefect's own
/// keep-alive (`server.api.keepalive_timeout`, 5 s). A call sent on a connection Prefect is
/// closing fails without an answer, and costs an attempt.
pub(super) const IDLE_FOR: Duration = Duration::from_secs(4);

/// A call to Prefect as either transport sends it: a method, a URL under the API and a JSON
/// body or none. Cheap to clone for another attempt.
#[derive(Clone)]
pub(super) struct Outgoing {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) body: Option<Bytes>,
}

impl Outgoing {
    /// A request without a body.
    pub(super) fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            body: None,
        }
    }

    /// A `POST` of `body` as JSON, serialized once for every attempt.
    pub(super) fn post_json(url: Url, body: &impl serde::Serialize) -> Result<Self, PrefectError> {
        // Sized for a typical flow run.
        let mut json = Vec::with_capacity(1024);
        serde_json::to_writer(&mut json, body).map_err(|e| {
            PrefectError::Unexpected(format!("the request body does not serialize: {e}"))
        })?;
        Ok(Self {
            method: Method::POST,
            url,
            body: Some(Bytes::from(json)),
        })
    }
}

/// Prefect's answer, its body read whole.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    /// `Retry-After` (`retry_after`).
    pub(super) retry_after: Option<Duration>,
    pub(super) body: Bytes,
}

/// `Retry-After` in seconds, when present and readable.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Sends calls to one Prefect API.
#[derive(Clone)]
pub(super) struct Transport {
    /// For a plain `http://` API with no proxy set.
    direct: Option<Direct>,
    reqwest: PerThreadHttp,
}

impl Transport {
    pub(super) fn new(
        base: &Url,
        connect_timeout: Duration,
        roots: &[reqwest::Certificate],
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            direct: if proxy_in_environment() {
                None
            } else {
                Direct::new(base, connect_timeout)
            },
            reqwest: PerThreadHttp::new(connect_timeout, roots)?,
        })
    }

    /// Sends `outgoing` and reads the whole answer within `timeout`.
    pub(super) async fn exchange(
        &self,
        outgoing: &Outgoing,
        auth: Option<&HeaderValue>,
        timeout: Duration,
    ) -> Result<Answer, PrefectError> {
        let call = async {
            match &self.direct {
                Some(direct) => direct.exchange(outgoing, auth).await,
                None => self.through_reqwest(outgoing, auth).await,
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(PrefectError::Timeout))
    }

    async fn through_reqwest(
        &self,
        outgoing: &Outgoing,
        auth: Option<&HeaderValue>,
    ) -> Result<Answer, PrefectError> {
        let mut request = self
            .reqwest
            .client()
            .request(outgoing.method.clone(), outgoing.url.clone());
        if let Some(body) = &outgoing.body {
            request = request
                .header(CONTENT_TYPE, APPLICATION_JSON)
                .body(body.clone());
        }
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(PrefectError::from_reqwest)?;
        let (status, retry_after) = (response.status(), retry_after(response.headers()));
        let body = response.bytes().await.map_err(PrefectError::from_reqwest)?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// reqwest honours the proxy variables for `http://` URLs; with one set, every call goes
/// through reqwest (and its `NO_PROXY` rules).
fn proxy_in_environment() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's clients, by `PerThreadHttp::id`: one per `PerThreadHttp` that called here.
    static CLIENTS: RefCell<Vec<(u64, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

/// Hands out this thread's `reqwest::Client`, built with the same settings on every thread.
#[derive(Clone)]
struct PerThreadHttp {
    id: u64,
    connect_timeout: Duration,
    /// CA certificates trusted besides the system's.
    roots: Arc<[reqwest::Certificate]>,
    /// Built at construction (so a bad setting fails there); used where a thread's own client
    /// cannot be built.
    fallback: reqwest::Client,
}

impl PerThreadHttp {
    fn new(
        connect_timeout: Duration,
        roots: &[reqwest::Certificate],
    ) -> Result<Self, reqwest::Error> {
        let roots: Arc<[reqwest::Certificate]> = roots.into();
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connect_timeout,
            fallback: build(connect_timeout, &roots)?,
            roots,
        })
    }

    /// This thread's client (a cheap handle on its pool).
    fn client(&self) -> reqwest::Client {
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return client.clone();
            }
            let client =
                build(self.connect_timeout, &self.roots).unwrap_or_else(|_| self.fallback.clone());
            clients.push((self.id, client.clone()));
            client
        })
    }
}

fn build(
    connect_timeout: Duration,
    roots: &[reqwest::Certificate],
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(IDLE_FOR)
        .redirect(reqwest::redirect::Policy::none())
        // `PrefectClient` retries itself; reqwest's own retry would copy every request first.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .tls_certs_merge(roots.iter().cloned())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_whole_seconds_or_not_at_all() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
            retry_after(&headers)
        };
        assert_eq!(with(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(with("Wed, 21 Oct 2026 07:28:00 GMT"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn each_thread_gets_its_own_client_and_keeps_it() {
        let http = PerThreadHttp::new(Duration::from_secs(1), &[]).unwrap();
        let here = http.client();
        let again = http.client();
        // Same pool on the same thread: reqwest clients compare by nothing, so count instead.
        let count = || CLIENTS.with(|c| c.borrow().iter().filter(|(id, _)| *id == http.id).count());
        assert_eq!(count(), 1);
        let other = http.clone();
        let there = std::thread::spawn(move || {
            other.client();
            CLIENTS.with(|c| c.borrow().iter().filter(|(id, _)| *id == other.id).count())
        })
        .join()
        .unwrap();
        assert_eq!(there, 1);
        assert_eq!(count(), 1, "the other thread's client is not this thread's");
        drop((here, again));
    }
}
