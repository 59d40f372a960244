//! Plain-HTTP calls to Prefect on hyper's own HTTP/1 connections, pooled per thread.
//!
//! reqwest wraps each call in layers flowgate does not use against a plain `http://` API
//! (redirect and retry services, proxy matching, the URL parsed again twice, a task per call
//! that returns the connection to the pool). Measured against the benchmark's stand-in, a call
//! cost 20–25 µs of CPU through reqwest and 10–14 µs here, the largest item left in a
//! signup's profile. reqwest stays the transport for `https://`, for a base with credentials
//! in it, and whenever a proxy is set in the environment (see `Transport::for_base`).
//!
//! A connection is used by one call at a time and goes back to its thread's idle list once
//! the answer's body is read; it is dropped after `IDLE_FOR` idle (under Prefect's own 5 s
//! keep-alive) or when the call fails or times out (hyper closes a connection whose call is
//! dropped). A pooled connection found closed before the request went out is replaced, and
//! the request sent on a new one: nothing reached Prefect.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use reqwest::Url;

use super::http::{Answer, Outgoing, APPLICATION_JSON, IDLE_FOR};
use super::PrefectError;

/// Idle connections kept per thread; more than the calls a thread has in flight is waste.
const IDLE_MAX: usize = 256;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

thread_local! {
    /// This thread's idle connections, by `Direct::id`, newest at the back.
    static IDLE: RefCell<Vec<(u64, VecDeque<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// Where Prefect listens.
#[derive(Clone)]
enum Peer {
    Addr(SocketAddr),
    Name(String, u16),
}

#[derive(Clone)]
pub(super) struct Direct {
    id: u64,
    peer: Peer,
    host: HeaderValue,
    connect_timeout: Duration,
}

impl Direct {
    /// A direct transport to the `http` API at `base`; `None` when `base` is not one.
    pub(super) fn new(base: &Url, connect_timeout: Duration) -> Option<Self> {
        if base.scheme() != "http" || !base.username().is_empty() || base.password().is_some() {
            return None;
        }
        let port = base.port_or_known_default()?;
        let host = base.host_str()?;
        // An IPv6 host comes in brackets.
        let peer = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => Peer::Addr(SocketAddr::new(ip, port)),
            Err(_) => Peer::Name(host.to_owned(), port),
        };
        let authority = match base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Some(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            host: HeaderValue::from_str(&authority).ok()?,
            connect_timeout,
        })
    }

    /// One request and its whole answer. The caller bounds the time it takes.
    pub(super) async fn exchange(
        &self,
        outgoing: &Outgoing,
        auth: Option<&HeaderValue>,
    ) -> Result<Answer, PrefectError> {
        let mut request = self.request(outgoing, auth)?;
        loop {
            let (mut sender, pooled) = match self.checkout().await {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            let response = match sender.try_send_request(request).await {
                Ok(response) => response,
                Err(mut e) => match e.take_message() {
                    // Not sent: the pooled connection had closed. Another one, or a new one.
                    Some(unsent) if pooled => {
                        request = unsent;
                        continue;
                    }
                    _ => return Err(PrefectError::Transport(e.into_error().into())),
                },
            };
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| PrefectError::Transport(e.into()))?
                .to_bytes();
            self.checkin(sender);
            return Ok(Answer::new(parts.status, &parts.headers, body));
        }
    }

    fn request(
        &self,
        outgoing: &Outgoing,
        auth: Option<&HeaderValue>,
    ) -> Result<Request<Full<Bytes>>, PrefectError> {
        let url = &outgoing.url;
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let mut builder = Request::builder()
            .method(outgoing.method.clone())
            .uri(target)
            .header(HOST, self.host.clone());
        if outgoing.body.is_some() {
            builder = builder.header(CONTENT_TYPE, APPLICATION_JSON);
        }
        if let Some(auth) = auth {
            builder = builder.header(hyper::header::AUTHORIZATION, auth.clone());
        }
        builder
            .body(Full::new(outgoing.body.clone().unwrap_or_default()))
            .map_err(|e| PrefectError::Unexpected(format!("the request does not build: {e}")))
    }

    /// The newest idle connection of this thread that is still open, ready for a request.
    async fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let idle = IDLE.with(|pools| {
                let mut pools = pools.borrow_mut();
                let (_, pool) = pools.iter_mut().find(|(id, _)| *id == self.id)?;
                while pool
                    .front()
                    .is_some_and(|idle| idle.since.elapsed() >= IDLE_FOR)
                {
                    pool.pop_front();
                }
                pool.pop_back()
            })?;
            let mut sender = idle.sender;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        IDLE.with(|pools| {
            let mut pools = pools.borrow_mut();
            let at = match pools.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    pools.push((self.id, VecDeque::new()));
                    pools.len() - 1
                }
            };
            let pool = &mut pools[at].1;
            if pool.len() >= IDLE_MAX {
                pool.pop_front();
            }
            pool.push_back(Idle {
                sender,
                since: Instant::now(),
            });
        });
    }

    /// A new connection, driven by a task on this thread's runtime.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PrefectError> {
        let connecting = async {
            match &self.peer {
                Peer::Addr(addr) => tokio::net::TcpStream::connect(addr).await,
                Peer::Name(name, port) => {
                    tokio::net::TcpStream::connect((name.as_str(), *port)).await
                }
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| PrefectError::Timeout)?
            .map_err(|e| PrefectError::Connect(e.into()))?;
        // As reqwest does: a request goes out in one segment, not after a delayed ACK.
        stream
            .set_nodelay(true)
            .map_err(|e| PrefectError::Connect(e.into()))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PrefectError::Connect(e.into()))?;
        tokio::spawn(async move {
            // Its failures reach the call that was on it.
            let _ = connection.await;
        });
        Ok(sender)
    }
}
