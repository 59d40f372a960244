//! Body stage: read at most the route's limit, refusing early on a declared or actual excess.

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;
use std::future::Future;
use std::task::Poll;

use crate::error::GatewayError;

/// Reads the body within `timeout`, else 408 `request_timeout` (a slow sender holds no slot forever).
/// A body that arrived with its headers (nearly every one) is read without arming a timer: the
/// handler is first polled before the connection hands over the bytes already received, so it
/// yields once (the connection feeds them meanwhile) and arms the timer only if the body is
/// still incomplete after that.
#[tracing::instrument(level = "debug", name = "stage.body", skip_all, fields(limit))]
pub async fn read_body(
    headers: &HeaderMap,
    payload: Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, GatewayError> {
    let mut reading = std::pin::pin!(read_limited(headers, payload, limit));
    let mut yielded = false;
    let early = std::future::poll_fn(|cx| match reading.as_mut().poll(cx) {
        Poll::Ready(read) => Poll::Ready(Some(read)),
        Poll::Pending if !yielded => {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Poll::Pending => Poll::Ready(None),
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
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| GatewayError::MalformedBody(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
