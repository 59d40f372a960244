//! Plain-HTTP calls to Prefect on hyper's own HTTP/1 connections, pooled per thread.
//!
//! reqwest wraps each call in layers flowgate does not use against a plain `http://` API
//! (redirect and retry services, proxy matching, the URL parsed again twice, a task per call
//! that returns the connection to the pool). Measured against the benchmark's stand-in, a call
//! cost 20–25 µs of CPU through reqwest and 10–14 µs here, the largest item left in a
//! signup's profile. reqwest stays the transport for `https://`, for a base with credentials
//! in it, and whenever a proxy is set in the environment (see `Transport::new`).
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

use super::http::{retry_after, Answer, Outgoing, APPLICATION_JSON, IDLE_FOR};
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
                Err(mut e) => {
                    let unsent = e.take_message();
                    let error = e.into_error().into();
                    match unsent {
                        // Not sent: the pooled connection had closed. Another one, or a new one.
                        Some(unsent) if pooled => {
                            request = unsent;
                            continue;
                        }
                        // Not sent on a new connection either: nothing reached Prefect.
                        Some(_) => return Err(PrefectError::Connect(error)),
                        None => return Err(PrefectError::Transport(error)),
                    }
                }
            };
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| PrefectError::Transport(e.into()))?
                .to_bytes();
            self.checkin(sender);
            return Ok(Answer {
                status: parts.status,
                retry_after: retry_after(&parts.headers),
                body,
            });
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{mpsc, Notify};

    use super::*;

    /// A server that answers each request `{}` and keeps the connection until told to close
    /// it; it reports each request's head and each connection it closed.
    struct Server {
        base: Url,
        heads: mpsc::UnboundedReceiver<String>,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        close: Arc<Notify>,
        closed: mpsc::UnboundedReceiver<()>,
    }

    async fn server() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Url::parse(&format!("http://{}/api", listener.local_addr().unwrap())).unwrap();
        let (heads_tx, heads) = mpsc::unbounded_channel();
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        let (count, close_on) = (connections.clone(), close.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let (heads_tx, closed_tx, close_on) =
                    (heads_tx.clone(), closed_tx.clone(), close_on.clone());
                tokio::spawn(async move {
                    answer_until_closed(stream, heads_tx, close_on).await;
                    closed_tx.send(()).unwrap();
                });
            }
        });
        Server {
            base,
            heads,
            connections,
            close,
            closed,
        }
    }

    async fn answer_until_closed(
        mut stream: TcpStream,
        heads: mpsc::UnboundedSender<String>,
        close: Arc<Notify>,
    ) {
        let mut buf = Vec::new();
        loop {
            tokio::select! {
                read = read_head(&mut stream, &mut buf) => {
                    let Some(head) = read else { return };
                    heads.send(head).unwrap();
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                        .await
                        .unwrap();
                }
                () = close.notified() => return,
            }
        }
    }

    /// The next request's head (its body, if any, is read and dropped).
    async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                while buf.len() < end + 4 + length {
                    let mut more = [0; 4096];
                    let n = stream.read(&mut more).await.ok()?;
                    buf.extend_from_slice(&more[..n]);
                }
                buf.drain(..end + 4 + length);
                return Some(head);
            }
            let mut more = [0; 4096];
            match stream.read(&mut more).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&more[..n]),
            }
        }
    }

    fn get(base: &Url) -> Outgoing {
        let mut url = base.clone();
        url.path_segments_mut().unwrap().push("health");
        Outgoing::new(reqwest::Method::GET, url)
    }

    #[tokio::test]
    async fn a_call_carries_its_target_host_body_and_credentials() {
        let mut server = server().await;
        let direct = Direct::new(&server.base, Duration::from_secs(1)).unwrap();
        let mut url = server.base.clone();
        url.path_segments_mut()
            .unwrap()
            .extend(["deployments", "a b", "create_flow_run"]);
        let outgoing = Outgoing::post_json(url, &serde_json::json!({"name": "x"})).unwrap();
        let auth = HeaderValue::from_static("Bearer t0ken");
        let answer = direct.exchange(&outgoing, Some(&auth)).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], b"{}");
        let head = server.heads.recv().await.unwrap();
        let host = server.base.host_str().unwrap();
        let port = server.base.port().unwrap();
        assert!(
            head.starts_with("post /api/deployments/a%20b/create_flow_run http/1.1\r\n"),
            "{head}"
        );
        for line in [
            format!("host: {host}:{port}"),
            "content-type: application/json".into(),
            "content-length: 12".into(),
            "authorization: bearer t0ken".into(),
        ] {
            assert!(head.lines().any(|l| l == line), "{line} in {head}");
        }
        let plain = direct.exchange(&get(&server.base), None).await.unwrap();
        assert_eq!(plain.status, 200);
        let head = server.heads.recv().await.unwrap();
        assert!(head.starts_with("get /api/health http/1.1\r\n"), "{head}");
        assert!(!head.contains("authorization"), "{head}");
        assert!(!head.contains("content-type"), "{head}");
        assert_eq!(
            server.connections.load(Ordering::SeqCst),
            1,
            "the second call reuses the first one's connection"
        );
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_closed_is_replaced_and_the_call_made() {
        let mut server = server().await;
        let direct = Direct::new(&server.base, Duration::from_secs(1)).unwrap();
        direct.exchange(&get(&server.base), None).await.unwrap();
        server.close.notify_waiters();
        server.closed.recv().await.unwrap();
        let again = direct.exchange(&get(&server.base), None).await.unwrap();
        assert_eq!(again.status, 200);
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_idle_too_long_is_not_used_again() {
        let server = server().await;
        let direct = Direct::new(&server.base, Duration::from_secs(1)).unwrap();
        direct.exchange(&get(&server.base), None).await.unwrap();
        IDLE.with(|pools| {
            let mut pools = pools.borrow_mut();
            let (_, pool) = pools.iter_mut().find(|(id, _)| *id == direct.id).unwrap();
            assert_eq!(pool.len(), 1);
            pool[0].since = Instant::now() - IDLE_FOR;
        });
        direct.exchange(&get(&server.base), None).await.unwrap();
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = Url::parse(&format!("http://{}/api", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let direct = Direct::new(&base, Duration::from_secs(1)).unwrap();
        let e = direct.exchange(&get(&base), None).await.unwrap_err();
        assert!(matches!(e, PrefectError::Connect(_)), "{e:?}");
    }

    #[test]
    fn only_a_plain_http_base_without_credentials_goes_direct() {
        let direct = |url: &str| Direct::new(&Url::parse(url).unwrap(), Duration::from_secs(1));
        assert!(direct("https://prefect.example/api").is_none());
        assert!(direct("http://user:pass@prefect.example/api").is_none());
        let named = direct("http://prefect.example/api").unwrap();
        assert!(matches!(&named.peer, Peer::Name(name, 80) if name == "prefect.example"));
        assert_eq!(named.host, "prefect.example");
        let v6 = direct("http://[::1]:4200/api").unwrap();
        assert!(matches!(v6.peer, Peer::Addr(addr) if addr == "[::1]:4200".parse().unwrap()));
        assert_eq!(v6.host, "[::1]:4200");
    }
}
