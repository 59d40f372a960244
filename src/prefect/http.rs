//! The HTTP client behind `PrefectClient`: one connection pool per thread.
//!
//! A pooled connection is driven by a task on the runtime that opened it. With one pool shared
//! by every thread, a call from one actix worker often went out on a connection that the main
//! thread (the deliverer, readiness) or the other worker had opened, so each call woke a second
//! thread twice; profiled under load, the main thread drove more Prefect connections than
//! either worker. A pool per thread keeps each call on the thread that makes it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's clients, by `PerThreadHttp::id`: one per `PerThreadHttp` that called here.
    static CLIENTS: RefCell<Vec<(u64, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

/// Hands out this thread's `reqwest::Client`, built with the same settings on every thread.
#[derive(Clone)]
pub(super) struct PerThreadHttp {
    id: u64,
    connect_timeout: Duration,
    /// CA certificates trusted besides the system's.
    roots: Arc<[reqwest::Certificate]>,
    /// Built at construction (so a bad setting fails there); used where a thread's own client
    /// cannot be built.
    fallback: reqwest::Client,
}

impl PerThreadHttp {
    pub(super) fn new(
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
    pub(super) fn client(&self) -> reqwest::Client {
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
        // Under Prefect's own keep-alive (`server.api.keepalive_timeout`, 5 s): a call sent on a
        // connection Prefect is closing fails without an answer, and costs an attempt.
        .pool_idle_timeout(Duration::from_secs(4))
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
