//! A request id on every request: taken from a well-formed incoming `X-Request-Id` (set by
//! nginx) or made fresh, carried in a tracing span, and echoed on every response.

use std::cell::Cell;
use std::fmt;
use std::future::{ready, Ready};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use arrayvec::ArrayString;
use tracing::Instrument;
use uuid::timestamp::context::{ContextV7, ThreadLocalContext};
use uuid::Timestamp;

use crate::pipeline::verify::unix_now_ms;
use crate::request_log::{write_line, RequestLog, RequestNote};

thread_local! {
    static V7_CONTEXT: ContextV7 = const { ContextV7::new() };
}

/// A UUIDv7 from this thread's own counter: `Uuid::now_v7` shares one lock between all threads
/// (every worker took it for every request). Ids stay time-ordered to the millisecond and
/// unique by their random bits; the order within a millisecond holds per thread.
pub fn uuid_v7() -> uuid::Uuid {
    uuid::Uuid::new_v7(Timestamp::now(ThreadLocalContext::new(&V7_CONTEXT)))
}

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept (`from_incoming`).
const MAX_ID: usize = 64;

/// Held inline: a fresh id allocates nothing, and the middleware, the handler and an error
/// answer each keep a copy of a few bytes; read as text without checking it again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId(ArrayString<MAX_ID>);

impl RequestId {
    /// A fresh id (a UUIDv7), for work no request started (an admin replay).
    pub fn fresh() -> Self {
        Self::new()
    }

    fn new() -> Self {
        let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid_v7().hyphenated().encode_lower(&mut buffer);
        // 36 characters always fit in 64.
        Self(ArrayString::from(text).unwrap_or_default())
    }

    /// Accepts 1 to 64 characters of `[A-Za-z0-9._-]`, so a sender cannot inject into logs.
    fn from_incoming(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let ok = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        // Longer than 64 is refused by the inline string.
        ok.then(|| ArrayString::from(text).ok().map(Self)).flatten()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(RequestId::of(req)))
    }
}

impl RequestId {
    /// The id the middleware gave `req` (a fresh one outside it).
    pub fn of(req: &HttpRequest) -> Self {
        let id = req.extensions().get::<RequestScope>().map(|scope| scope.id);
        id.unwrap_or_else(RequestId::new)
    }
}

/// What the middleware and the handler share per request, as one entry of the request's
/// extensions: each entry is a box of its own, and the request's table is new per request.
struct RequestScope {
    id: RequestId,
    /// The handler's note for the request's line (see [`note_request`]).
    note: Cell<Option<RequestNote>>,
}

/// Hands a handler's note to the request's one log line, beside the request's id. A note left
/// on the response (an answer built away from its request) is read too.
pub fn note_request(req: &HttpRequest, note: RequestNote) {
    if let Some(scope) = req.extensions().get::<RequestScope>() {
        scope.note.set(Some(note));
    }
}

/// Middleware: assigns the id, wraps the request in a span (for the inner stages' debug
/// lines), sets the header, times the request by route, and writes the request's one line
/// within the log budget.
pub async fn request_id_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(RequestId::from_incoming)
        .unwrap_or_else(RequestId::new);
    req.extensions_mut().insert(RequestScope {
        id,
        note: Cell::new(None),
    });
    let method = req.method().clone();
    let span = tracing::debug_span!("request", request_id = %id);
    let started = Instant::now();
    let mut response = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    // Taken, not copied: this middleware is the note's last reader.
    let noted = response
        .request()
        .extensions()
        .get::<RequestScope>()
        .and_then(|scope| scope.note.take());
    let note = noted
        .or_else(|| {
            response
                .response_mut()
                .extensions_mut()
                .remove::<RequestNote>()
        })
        .unwrap_or_else(|| RequestNote::code("-"));
    let elapsed = started.elapsed();
    let log = response.request().app_data::<web::Data<RequestLog>>();
    let write = log.is_none_or(|log| {
        log.observe(&note, elapsed.as_secs_f64());
        log.admit(status, &note, unix_now_ms())
    });
    if write {
        // The route pattern, not the path (a path is whatever the sender typed); found again
        // only for a line that is written (a walk of the routes).
        let path = match note.pattern {
            Some(pattern) => pattern.into(),
            None => response
                .request()
                .match_pattern()
                .unwrap_or_else(|| "-".into()),
        };
        write_line(
            id.as_str(),
            method.as_str(),
            &path,
            status,
            &note,
            elapsed.as_millis() as u64,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(text: &str) -> Option<String> {
        let value = HeaderValue::from_str(text).ok()?;
        RequestId::from_incoming(&value).map(|id| id.as_str().to_owned())
    }

    #[test]
    fn a_fresh_id_is_a_hyphenated_uuid_v7() {
        let id = RequestId::fresh();
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(id.as_str(), parsed.hyphenated().to_string());
        assert_ne!(RequestId::fresh(), id);
    }

    #[test]
    fn an_incoming_id_is_kept_only_if_short_and_plain() {
        let longest = "a".repeat(MAX_ID);
        assert_eq!(incoming(&longest).as_deref(), Some(longest.as_str()));
        assert_eq!(incoming("nginx-1.2_3").as_deref(), Some("nginx-1.2_3"));
        assert_eq!(incoming(&"a".repeat(MAX_ID + 1)), None);
        assert_eq!(incoming(""), None);
        assert_eq!(incoming("a b"), None);
        assert_eq!(incoming("id\"}"), None);
    }
}
