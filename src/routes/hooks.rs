//! `POST /hooks/{route}`: one line per pipeline stage. `OPTIONS`: the CORS preflight.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::domain::IdempotencyKeyError;
use crate::error::GatewayError;
use crate::outbox::Outcome;
use crate::pipeline::body::{discard_body, read_body};
use crate::pipeline::client::{check_allowed, client_ip};
use crate::pipeline::cors;
use crate::pipeline::dedup::delivery_key;
use crate::pipeline::fields::validate_fields;
use crate::pipeline::honeypot::take_honeypot;
use crate::pipeline::map::plan_flow_run;
use crate::pipeline::parse::{parse_body, InputFields};
use crate::pipeline::ratelimit::{check_client, check_route};
use crate::pipeline::route::content_kind;
use crate::pipeline::select::{select_target, Selection};
use crate::pipeline::verify::{unix_now, verify};
use crate::rejections::Incoming;
use crate::request_id::{note_request, RequestId};
use crate::request_log::RequestNote;
use crate::route_table::{ContentKind, IgnoredReason, Route};
use crate::state::AppState;

/// Built once: a `&str` name is built (and allocated) anew for every lookup.
pub const IDEMPOTENCY_KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The path pattern webhook requests are logged under.
const PATTERN: &str = "/hooks/{route}";

/// Everything under `/hooks`: the route named by the one segment after it, by method. Matched
/// by the path's prefix and split here: a `{route}` pattern costs the router a regex match per
/// request (2 % of the CPU of a rejected request).
///
/// The state is borrowed from the app, not extracted: an extracted `Data` is a clone of one
/// `Arc` that every worker shares, so its count's cache line moved between cores twice per
/// request.
pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    request_id: RequestId,
) -> HttpResponse {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        tracing::error!("the webhook handler runs without the gateway's state");
        return actix_web::error::ErrorInternalServerError("the gateway's state is not configured")
            .error_response();
    };
    let (response, mut note) = match route_segment(req.match_info().unprocessed()) {
        None => GatewayError::NotFound.with_request_id(&request_id).answer(),
        Some(route) => match *req.method() {
            Method::POST => receive(&req, route, payload, state, &request_id).await,
            Method::OPTIONS => preflight(&req, route, state, &request_id),
            _ => GatewayError::MethodNotAllowed { allowed: "POST" }
                .with_request_id(&request_id)
                .answer(),
        },
    };
    note.pattern = Some(PATTERN);
    note_request(&req, note);
    response
}

/// `/{route}` → `route`: one non-empty segment, nothing after it.
fn route_segment(rest: &str) -> Option<&str> {
    rest.strip_prefix('/')
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

async fn receive(
    req: &HttpRequest,
    route: &str,
    payload: web::Payload,
    state: &AppState,
    request_id: &RequestId,
) -> (HttpResponse, RequestNote) {
    // One lookup per request: the route is shared by every worker.
    let found = state.route(route);
    let client = client_ip(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        &state.trusted_proxies,
    );
    let mut progress = Progress::default();
    let handled = handle(
        req,
        found.as_ref(),
        client,
        payload,
        state,
        request_id,
        &mut progress,
    )
    .await;
    let (mut response, mut note) = match handled {
        Ok(answered) => answered,
        Err(e) => {
            state.rejections.record(Incoming {
                route: found.as_ref().map_or(route, |r| r.name().as_ref()),
                client,
                error: &e,
                request_id: request_id.as_str(),
                headers: req.headers(),
                body: progress.body.as_ref(),
                authenticated: progress.authenticated,
                secret_headers: found.as_ref().map_or(&[], |r| r.secret_headers()),
                delivery_id: progress.delivery_id.as_deref(),
            });
            e.with_request_id(request_id).answer()
        }
    };
    let found = found.ok();
    cors::decorate(found.as_deref(), req.headers(), &mut response);
    note.route = found.map(|r| r.name().shared());
    note.client = client;
    (response, note)
}

fn preflight(
    req: &HttpRequest,
    route: &str,
    state: &AppState,
    request_id: &RequestId,
) -> (HttpResponse, RequestNote) {
    match state
        .route(route)
        .and_then(|route| cors::preflight(&route, req.headers()))
    {
        Ok(response) => (response, RequestNote::code("-")),
        Err(e) => e.with_request_id(request_id).answer(),
    }
}

/// How far a request got, for the rejection log.
#[derive(Default)]
struct Progress {
    body: Option<Bytes>,
    authenticated: bool,
    delivery_id: Option<String>,
}

async fn handle(
    req: &HttpRequest,
    route: Result<&Arc<Route>, &GatewayError>,
    client: Option<IpAddr>,
    payload: web::Payload,
    state: &AppState,
    request_id: &RequestId,
    progress: &mut Progress,
) -> Result<(HttpResponse, RequestNote), GatewayError> {
    let (route, kind) = match checks_before_body(route, client, req.headers(), state) {
        Ok(checked) => checked,
        Err(e) => {
            discard_body(req.headers(), payload, state.body_timeout).await;
            return Err(e);
        }
    };
    // Kept where the rejection log finds it, and borrowed from there: a copy of the body's
    // handle would allocate a shared count.
    let body: &Bytes = progress.body.insert(
        read_body(
            req.headers(),
            payload,
            route.max_body_bytes(),
            state.body_timeout,
        )
        .await?,
    );
    let verified = verify(route, req.headers(), body, unix_now())?;
    progress.authenticated = true;
    check_route(route)?;
    let idempotency_key = idempotency_header(req)?;
    progress.delivery_id = delivery_key(route, &verified, body);
    let input = parse_body(kind, body, state.body_limits)?;
    let target = match select_target(route, &input, req.headers()) {
        Selection::Run(target) => target,
        Selection::Ignored { reason, detail } => return Ok(ignored(reason, &detail, request_id)),
    };
    let request = Accepted {
        route,
        target: &target,
        input,
        headers: req.headers(),
        idempotency_key,
        request_id,
    };
    let run = match progress.delivery_id.clone() {
        Some(id) => {
            // Boxed: `once` holds the work through several layers, each a copy of its size.
            let first = Box::pin(request.run(state, Some(&id)));
            state.deliveries.once(route.name(), &id, first).await?
        }
        // Boxed too: the handler's future stays small for the requests that never get here.
        None => Box::pin(request.run(state, None)).await?,
    };
    Ok(noted_answer(run, request_id))
}

/// The checks that need no body, cheapest first: the address's rate, the route, its address
/// allow-list, its content types. The route and the body's encoding when they pass.
fn checks_before_body<'r>(
    route: Result<&'r Arc<Route>, &GatewayError>,
    client: Option<IpAddr>,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<(&'r Arc<Route>, ContentKind), GatewayError> {
    check_client(state.client_limiter.as_deref(), client)?;
    let route = route.map_err(GatewayError::clone)?;
    check_allowed(route, client)?;
    Ok((route, content_kind(route, headers)?))
}

/// Runs a stored request again, from after authentication (an admin replay): parse, rules,
/// mapping and submit with the current configuration, sharing the original's delivery id.
pub(crate) async fn replay(
    state: &AppState,
    route: &Arc<Route>,
    stored_headers: &[(String, String)],
    body: Bytes,
    idempotency_key: Option<&str>,
    delivery_id: Option<&str>,
    request_id: &RequestId,
) -> Result<Outcome, GatewayError> {
    // The headers the rejection log kept (never a secret one): content type, and those a
    // route's fields or filters read (`X-GitHub-Event`, `X-Shopify-Topic`, …).
    let mut headers = HeaderMap::new();
    for (name, value) in stored_headers {
        if let (Ok(name), Ok(value)) = (
            actix_web::http::header::HeaderName::try_from(name.as_str()),
            actix_web::http::header::HeaderValue::try_from(value.as_str()),
        ) {
            headers.append(name, value);
        }
    }
    let input = parse_body(content_kind(route, &headers)?, &body, state.body_limits)?;
    let target = match select_target(route, &input, &headers) {
        Selection::Run(target) => target,
        Selection::Ignored { detail, .. } => {
            return Err(GatewayError::ReplayNotAllowed(format!(
                "the route's current filters ignore this request ({detail}); nothing was started"
            )))
        }
    };
    let request = Accepted {
        route,
        target: &target,
        input,
        headers: &headers,
        idempotency_key,
        request_id,
    };
    match delivery_id {
        Some(id) => {
            let first = request.run(state, Some(id));
            state.deliveries.once(route.name(), id, first).await
        }
        None => request.run(state, None).await,
    }
}

/// A request that passed the wire checks, authentication and the route's filters.
struct Accepted<'a> {
    route: &'a Arc<Route>,
    /// The route as the chosen target maps it (the route itself without targets).
    target: &'a Arc<Route>,
    input: InputFields<'a>,
    headers: &'a HeaderMap,
    idempotency_key: Option<&'a str>,
    request_id: &'a RequestId,
}

impl Accepted<'_> {
    async fn run(
        mut self,
        state: &AppState,
        delivery_id: Option<&str>,
    ) -> Result<Outcome, GatewayError> {
        if take_honeypot(self.route, &mut self.input) {
            // Answered as accepted so a bot learns nothing; nothing is started.
            return Ok(Outcome::Decoy {
                flow_run_id: uuid::Uuid::new_v4(),
            });
        }
        let fields = validate_fields(self.target, &self.input, self.headers)?;
        let plan = plan_flow_run(
            self.target,
            &fields,
            self.idempotency_key,
            delivery_id,
            self.request_id,
        )?;
        state.submitter.submit(&plan, self.target.queues()).await
    }
}

fn idempotency_header(req: &HttpRequest) -> Result<Option<&str>, GatewayError> {
    req.headers()
        .get(&IDEMPOTENCY_KEY_HEADER)
        .map(|v| {
            v.to_str()
                .map_err(|_| IdempotencyKeyError::InvalidCharacter.into())
        })
        .transpose()
}

/// The answer to an accepted request (a webhook or an API trigger).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Answer<'a> {
    /// `created`: the run exists (`flow_run_id`); `queued`: stored on disk, to be delivered
    /// (`delivery_id`: follow it at `/api/v1/deliveries/{delivery_id}`); `duplicate`: this
    /// request was answered before (the first answer's id).
    #[schema(value_type = String, pattern = "^(created|queued|duplicate)$")]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_run_id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<uuid::Uuid>,
    request_id: &'a str,
}

/// 202 `created` (the run exists) or `queued` (on disk, to be delivered); 200 `duplicate`
/// when this request was answered before. The log line's note goes with it as a response
/// extension.
pub(crate) fn answer(outcome: Outcome, request_id: &RequestId) -> HttpResponse {
    let (mut response, note) = noted_answer(outcome, request_id);
    response.extensions_mut().insert(note);
    response
}

/// [`answer`], and the note for the log line beside it.
fn noted_answer(outcome: Outcome, request_id: &RequestId) -> (HttpResponse, RequestNote) {
    let (status, word, run, delivery) = match outcome {
        Outcome::Created { flow_run_id } | Outcome::Decoy { flow_run_id } => {
            (StatusCode::ACCEPTED, "created", Some(flow_run_id), None)
        }
        Outcome::Queued { delivery_id } => {
            (StatusCode::ACCEPTED, "queued", None, Some(delivery_id))
        }
        Outcome::DuplicateRun { flow_run_id } => {
            (StatusCode::OK, "duplicate", Some(flow_run_id), None)
        }
        Outcome::DuplicateQueued { delivery_id } => {
            (StatusCode::OK, "duplicate", None, Some(delivery_id))
        }
    };
    let response = HttpResponse::build(status).json(Answer {
        status: word,
        flow_run_id: run,
        delivery_id: delivery,
        request_id: request_id.as_str(),
    });
    let code = match outcome {
        Outcome::Decoy { .. } => "honeypot",
        _ => word,
    };
    (response, RequestNote::code(code))
}

/// The answer to an authentic, well-formed request that no filter or target wants: 202 (an
/// error would make the partner retry it), nothing started.
#[derive(Serialize)]
struct IgnoredAnswer<'a> {
    status: &'static str,
    /// `filtered` (a route filter did not hold) or `no_matching_target`.
    reason: &'static str,
    /// The condition that did not hold, in the configuration's words.
    detail: &'a str,
    request_id: &'a str,
}

fn ignored(
    reason: IgnoredReason,
    detail: &str,
    request_id: &RequestId,
) -> (HttpResponse, RequestNote) {
    let response = HttpResponse::Accepted().json(IgnoredAnswer {
        status: "ignored",
        reason: reason.code(),
        detail,
        request_id: request_id.as_str(),
    });
    (response, RequestNote::code("ignored"))
}

#[cfg(test)]
mod tests {
    /// The size of the future `handler` returns. actix moves a handler's future into a box
    /// for every request, so every byte of it is copied per request: an inline Prefect call
    /// behind the delivery memory's layers once made it 51 KB (7 % of the CPU profile).
    fn future_size<A, B, C, Fut>(_: impl Fn(A, B, C) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn the_webhook_future_stays_small() {
        let size = future_size(super::dispatch);
        assert!(
            size <= 2 * 1024,
            "the webhook handler's future is {size} bytes"
        );
    }
}
