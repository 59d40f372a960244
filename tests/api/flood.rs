//! 200,000 requests from distinct addresses (through a trusted proxy) fill the per-address
//! limiter; the exported gauge shows a key for every address not yet idle, then falls back to
//! zero once they all idle.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::helpers::*;
use flowgate::ratelimit::LimitSettings;

const REQUESTS: u32 = 200_000;
/// Requests pipelined on one connection (kept short: the server times connections out).
const PER_CONNECTION: u32 = 1_000;
const PARALLEL: usize = 8;
/// How long a key certainly outlives its one request at 1/min: governor forgets it one emission
/// interval after its bucket is full again (60 s + 60 s); less a margin for the two clocks.
const KEPT_AT_LEAST: Duration = Duration::from_secs(110);
/// When every key can be forgotten after the last request: those 120 s, an eviction tick, and
/// slack for a starved machine. A hang guard, not a speed requirement.
const ALL_IDLE_WITHIN: Duration = Duration::from_secs(180);

/// Sends `count` pipelined requests on one connection, each from its own forwarded address,
/// and returns when it started sending and how many 404 answers came back.
async fn flood(address: String, first: u32, count: u32) -> (Instant, usize) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let send = async {
        let mut batch = Vec::with_capacity(1 << 20);
        for i in first..first + count {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            batch.extend_from_slice(format!("POST /hooks/nope HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {ip}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            if batch.len() > (1 << 20) - 200 {
                writer.write_all(&batch).await.unwrap();
                batch.clear();
            }
        }
        writer.write_all(&batch).await.unwrap();
    };
    let receive = async {
        let (mut seen, mut buf, mut tail) = (0usize, vec![0u8; 1 << 16], Vec::new());
        while seen < count as usize {
            let n = reader.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed after {seen} answers");
            tail.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&tail);
            let found = text.matches("HTTP/1.1 404").count();
            seen += found;
            let keep = text.rfind("HTTP/1.1 404").map_or(0, |i| i + 1);
            tail.drain(..keep.min(tail.len()));
        }
        seen
    };
    let ((), seen) = tokio::join!(send, receive);
    (started, seen)
}

#[tokio::test]
async fn a_flood_of_distinct_addresses_is_forgotten_after_the_idle_period() {
    let mut settings = default_settings("http://127.0.0.1:9/api");
    // One request per address. governor forgets a key one emission interval (60 s at 1/min)
    // after its bucket is full again: 120 s after its request (usually longer than the flood).
    settings.limits.per_ip = Some(LimitSettings {
        per_minute: 1,
        burst: 1,
    });
    settings.limits.evict_every_secs = 1;
    // A starved CI machine must not turn a slow parse into a 408; the flood is not about that.
    settings.server.client_request_timeout_ms = 60_000;
    settings.server.trusted_proxies = vec!["127.0.0.1".into()];
    let app = spawn_app(settings).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    let connections: Vec<(Instant, usize)> = futures_util::stream::iter(
        (0..REQUESTS / PER_CONNECTION)
            .map(|c| flood(address.clone(), c * PER_CONNECTION, PER_CONNECTION)),
    )
    .buffer_unordered(PARALLEL)
    .collect()
    .await;
    let flooded = Instant::now();
    assert_eq!(
        connections.iter().map(|(_, seen)| seen).sum::<usize>(),
        REQUESTS as usize,
        "every request answered 404"
    );
    let peak = gauge(&app, "ratelimit_keys").await;
    // However long the flood took, a connection that started sending less than KEPT_AT_LEAST
    // before the gauge was read has all its keys still held; older ones may have idled out.
    let read = Instant::now();
    let held = connections
        .iter()
        .filter(|(started, _)| read.duration_since(*started) < KEPT_AT_LEAST)
        .count();
    let must_hold = i64::from(PER_CONNECTION) * held as i64;
    assert!(
        (must_hold..=i64::from(REQUESTS)).contains(&peak),
        "{peak} keys: one per address, at least the {must_hold} of connections started in the \
         last {KEPT_AT_LEAST:?}, at most the {REQUESTS} addresses sent"
    );

    let deadline = flooded + ALL_IDLE_WITHIN;
    loop {
        let keys = gauge(&app, "ratelimit_keys").await;
        if keys == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {keys} keys {ALL_IDLE_WITHIN:?} after the flood"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
