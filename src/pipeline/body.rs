//! Body stage: read at most the route's limit, refusing early on a declared or actual excess.

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use crate::error::GatewayError;
use crate::pipeline::watchdog;

/// Reads the body within `timeout`, else 408 `request_timeout` (a slow sender holds no slot forever).
///
/// A body that arrived with its headers (nearly every one) is read without arming a timer and
/// in one turn of the connection. actix polls the handler once before it hands over the bytes
/// already received and again right after, in the same turn. So the first poll leaves no waker
/// with the body: the hand-over would wake it and give the connection a second turn for
/// nothing (another pass over its timers, reader and writer, and the keep-alive timer armed
/// again: about a tenth of the instructions of a rejected request). Its waker goes to the
/// [`watchdog`] instead, which wakes it within [`watchdog::SWEEP`] should that second poll not
/// come (a pipelined request whose body stalls). The timer is armed only if the body is still
/// incomplete at the second poll.
#[tracing::instrument(level = "debug", name = "stage.body", skip_all, fields(limit))]
pub async fn read_body(
    headers: &HeaderMap,
    payload: Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, GatewayError> {
    let mut reading = std::pin::pin!(read_limited(headers, payload, limit));
    let mut first = true;
    let mut kept = None;
    let early = std::future::poll_fn(|cx| {
        if std::mem::take(&mut first) {
            let mut quiet = Context::from_waker(Waker::noop());
            if let Poll::Ready(read) = reading.as_mut().poll(&mut quiet) {
                return Poll::Ready(Some(read));
            }
            kept = watchdog::keep(cx.waker());
            if kept.is_none() {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        if let Some(kept) = kept.take() {
            watchdog::release(kept);
        }
        match reading.as_mut().poll(cx) {
            Poll::Ready(read) => Poll::Ready(Some(read)),
            Poll::Pending => Poll::Ready(None),
        }
    })
    .await;
    if let Some(read) = early {
        return read;
    }
    tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| GatewayError::RequestTimeout(timeout.as_millis() as u64))?
}

/// The most of a refused request's body read and dropped to keep its connection.
pub const DISCARDED_BODY_BYTES: usize = 64 * 1024;

/// Reads and drops the body of a request refused before its body was needed (rate-limited,
/// unknown route, address or content type refused), so the connection stays open for the
/// sender's next request: a body left unread makes the server close it, and a sender over its
/// rate would then pay, and make the gateway pay, a new connection per refused request (about
/// four times the CPU of the refusal). A body over [`DISCARDED_BODY_BYTES`], or one that does
/// not arrive within `timeout`, is left unread and the connection closes as before.
pub async fn discard_body(headers: &HeaderMap, payload: Payload, timeout: std::time::Duration) {
    let _ = read_body(headers, payload, DISCARDED_BODY_BYTES, timeout).await;
}

async fn read_limited(
    headers: &HeaderMap,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let too_large = || GatewayError::PayloadTooLarge { limit };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // A body that came in one chunk (nearly every one) is that chunk, a view of the
    // connection's read buffer: no copy, no allocation. Only a second chunk starts a buffer.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut read = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| GatewayError::MalformedBody(format!("the body could not be read: {e}")))?;
        read += chunk.len();
        if read > limit {
            return Err(too_large());
        }
        match (joined.as_mut(), first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&chunk),
            (None, None) => first = Some(chunk),
            (None, Some(earlier)) => {
                let mut buf = BytesMut::with_capacity(declared.unwrap_or(read).clamp(read, limit));
                buf.extend_from_slice(&earlier);
                buf.extend_from_slice(&chunk);
                joined = Some(buf);
            }
        }
    }
    Ok(joined.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::time::Duration;

    use actix_web::dev::Payload as Incoming;
    use actix_web::error::PayloadError;
    use actix_web::test::TestRequest;
    use actix_web::FromRequest;
    use futures_util::Stream;

    use super::*;

    async fn read(chunks: &[Bytes], limit: usize) -> Result<Bytes, GatewayError> {
        let items: Vec<Result<Bytes, PayloadError>> = chunks.iter().cloned().map(Ok).collect();
        let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(futures_util::stream::iter(items));
        let req = TestRequest::default().to_http_request();
        let payload = Payload::from_request(&req, &mut Incoming::from(stream))
            .await
            .expect("a payload extracts");
        read_body(&HeaderMap::new(), payload, limit, Duration::from_secs(1)).await
    }

    #[actix_web::test]
    async fn a_body_in_one_chunk_is_that_chunk_not_a_copy() {
        let chunk = Bytes::from_static(b"{\"email\":\"jo@example.com\"}");
        let body = read(std::slice::from_ref(&chunk), 1024).await.unwrap();
        assert_eq!(body, chunk);
        assert_eq!(body.as_ptr(), chunk.as_ptr(), "the same bytes, not a copy");
    }

    #[actix_web::test]
    async fn a_body_in_pieces_is_joined_in_order_and_held_to_the_limit() {
        let pieces = [
            Bytes::from_static(b"{\"email\":"),
            Bytes::from_static(b"\"jo@example.com\""),
            Bytes::from_static(b"}"),
        ];
        let body = read(&pieces, 1024).await.unwrap();
        assert_eq!(&body[..], b"{\"email\":\"jo@example.com\"}");
        assert_eq!(read(&pieces[..2], 1024).await.unwrap().len(), 25);
        assert_eq!(read(&[], 1024).await.unwrap().len(), 0);
        // 26 bytes in all: over a limit of 25 only once the last piece comes.
        assert!(matches!(
            read(&pieces, 25).await,
            Err(GatewayError::PayloadTooLarge { limit: 25 })
        ));
        assert!(matches!(
            read(&pieces[..1], 8).await,
            Err(GatewayError::PayloadTooLarge { limit: 8 })
        ));
    }
}
