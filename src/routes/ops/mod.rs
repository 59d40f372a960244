//! The ops page at `/admin/` on the admin listener: server-rendered HTML (no script), behind a
//! sign-in with the admin token. It shows the rejection counts of the last hour, the rejection
//! log (filters, pages, one record in full, replay), the outbox (retry, discard) and the route
//! table. Every form that changes something carries the session's CSRF token.

mod page;
mod session;
mod views;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use secrecy::ExposeSecret;

pub use session::Sessions;

use page::{gate, html, message, request_id, security_headers, see_other, Refused};
use session::{clear_cookie, token_matches, Session};
use views::{
    Chrome, CountRow, Dashboard, Filters, OutboxRow, RejectionDetail, RejectionPage, RejectionRow,
    ReplayResult, RouteRow, SignIn,
};

use crate::pipeline::verify::{unix_now, unix_now_ms};
use crate::request_log::RequestNote;
use crate::routes::admin::noted;
use crate::routes::admin::rejections::replay_and_note;
use crate::routes::fallback;
use crate::state::AppState;
use crate::store::{EntryState, Rejection};

/// Outbox entries shown per state.
const OUTBOX_SHOWN: usize = 50;
/// The period of the counts.
const COUNTS_PERIOD_MS: i64 = 60 * 60 * 1000;

/// Registers the ops page (its routes and its sessions).
pub fn configure(sessions: web::Data<Sessions>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(sessions);
        let pages: [(&str, actix_web::Route); 7] = [
            ("/admin/", web::get().to(dashboard)),
            ("/admin/session", web::post().to(sign_in)),
            ("/admin/session/delete", web::post().to(sign_out)),
            ("/admin/r/{id}", web::get().to(show_rejection)),
            ("/admin/r/{id}/replay", web::post().to(replay)),
            ("/admin/o/{id}/retry", web::post().to(retry)),
            ("/admin/o/{id}/discard", web::post().to(discard)),
        ];
        for (path, route) in pages {
            let paths = if path == "/admin/" {
                vec!["/admin", "/admin/"]
            } else {
                vec![path]
            };
            cfg.service(
                web::resource(paths)
                    .wrap(security_headers())
                    .route(route)
                    .default_service(web::to(fallback::not_found)),
            );
        }
    }
}

/// `GET /admin/`: the dashboard, or the sign-in form.
async fn dashboard(
    req: HttpRequest,
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    if let Err(refused) = gate(&req) {
        return refused.answer();
    }
    let Some(session) = sessions.find(&req) else {
        return sign_in_form(StatusCode::OK, None);
    };
    let filters: Filters = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let mut errors = Vec::new();
    let mut status = StatusCode::OK;

    let counts = match state
        .store
        .rejection_counts(unix_now_ms() - COUNTS_PERIOD_MS)
        .await
    {
        Ok(mut counts) => {
            counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.route.cmp(&b.route)));
            counts.into_iter().map(CountRow::from).collect()
        }
        Err(_) => {
            errors.push("The store cannot be read: counts not shown.".to_owned());
            status = StatusCode::SERVICE_UNAVAILABLE;
            Vec::new()
        }
    };

    let (rejections, next) = match filters.params().query() {
        Err(e) => {
            errors.push(format!("Filters: {e}"));
            status = StatusCode::BAD_REQUEST;
            (Vec::new(), None)
        }
        Ok(query) => {
            let limit = query.limit;
            match state.store.list_rejections(query).await {
                Ok(page) => {
                    let next = (page.len() == limit)
                        .then(|| page.last().and_then(|r| filters.next_page(r.id)))
                        .flatten();
                    (page.iter().map(RejectionRow::from).collect(), next)
                }
                Err(_) => {
                    errors.push("The store cannot be read: rejections not shown.".to_owned());
                    status = StatusCode::SERVICE_UNAVAILABLE;
                    (Vec::new(), None)
                }
            }
        }
    };

    let outbox = |which: EntryState| {
        let store = state.store.clone();
        async move {
            store
                .list(which, OUTBOX_SHOWN)
                .await
                .map(|entries| entries.iter().map(OutboxRow::from).collect::<Vec<_>>())
        }
    };
    let (queued, dead) = (
        outbox(EntryState::Queued).await,
        outbox(EntryState::Dead).await,
    );
    let (queued, dead) = match (queued, dead) {
        (Ok(q), Ok(d)) => (q, d),
        _ => {
            errors.push("The store cannot be read: outbox not shown.".to_owned());
            status = StatusCode::SERVICE_UNAVAILABLE;
            (Vec::new(), Vec::new())
        }
    };

    let mut routes = Vec::new();
    for route in state.routes().iter() {
        routes.push(RouteRow {
            name: route.name().to_string(),
            deployment: route.deployment().to_string(),
            deployment_id: state
                .resolver
                .cached(route.deployment())
                .await
                .map(|id| id.to_string()),
            auth: route.auth().kind().to_owned(),
            queued: state.store.queued(route.name().as_ref()),
        });
    }

    html(
        status,
        &Dashboard {
            chrome: chrome("Ops", &session),
            csrf: session.csrf.clone(),
            flash: sessions.take_flash(&session),
            error: (!errors.is_empty()).then(|| errors.join(" ")),
            counts,
            filters,
            rejections,
            next,
            queued,
            dead,
            routes,
            config: config_row(&state),
        },
    )
}

/// `POST /admin/session` with `token`: a session cookie and 303 to the dashboard, or the form
/// again (401).
async fn sign_in(req: HttpRequest, body: Bytes, sessions: web::Data<Sessions>) -> HttpResponse {
    let expected = match gate(&req) {
        Ok(token) => token,
        Err(refused) => return refused.answer(),
    };
    let presented = fields(&body).remove("token").unwrap_or_default();
    if presented.trim().is_empty() || !token_matches(&presented, expected.expose_secret()) {
        tracing::warn!(target: "flowgate::admin", "ops page: sign-in with a wrong token");
        let mut response = sign_in_form(
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token.".into()),
        );
        response
            .extensions_mut()
            .insert(RequestNote::code("invalid_token"));
        return response;
    }
    match sessions.open() {
        Ok(session) => noted(
            see_other("/admin/", Some(session.set_cookie())),
            "signed_in",
            "ops page: session opened",
        ),
        Err(e) => {
            tracing::error!(error = %e, "ops page: no randomness for a session id");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// `POST /admin/session/delete`: signs out.
async fn sign_out(req: HttpRequest, body: Bytes, sessions: web::Data<Sessions>) -> HttpResponse {
    let (session, _) = match checked_form(&req, &body, &sessions) {
        Ok(ok) => ok,
        Err(refused) => return refused.answer(),
    };
    sessions.close(&session);
    noted(
        see_other("/admin/", Some(clear_cookie())),
        "signed_out",
        "ops page: session closed",
    )
}

/// `GET /admin/r/{id}`: one rejection in full.
async fn show_rejection(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    if let Err(refused) = gate(&req) {
        return refused.answer();
    }
    let Some(session) = sessions.find(&req) else {
        return sign_in_form(StatusCode::OK, None);
    };
    match find_rejection(&state, &id, &session).await {
        Ok(record) => rejection_page(&state, &session, &record, None),
        Err(answer) => answer,
    }
}

/// `POST /admin/r/{id}/replay`: the record through the pipeline with the current configuration;
/// the page again with the pipeline's answer.
async fn replay(
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    let (session, _) = match checked_form(&req, &body, &sessions) {
        Ok(ok) => ok,
        Err(refused) => return refused.answer(),
    };
    let record = match find_rejection(&state, &id, &session).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let (answer, what) = replay_and_note(&state, &record, &request_id(&req)).await;
    let result = match answer {
        Ok((response, word)) => {
            let http_status = response.status().as_u16();
            let body = actix_web::body::to_bytes(response.into_body())
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .unwrap_or_default();
            let id = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            ReplayResult {
                http_status,
                outcome: word.to_owned(),
                accepted: true,
                flow_run_id: id("flow_run_id"),
                delivery_id: id("delivery_id"),
                detail: None,
                field_errors: Vec::new(),
            }
        }
        Err(e) => ReplayResult {
            http_status: e.status().as_u16(),
            outcome: e.code().to_owned(),
            accepted: false,
            flow_run_id: None,
            delivery_id: None,
            detail: Some(e.to_string()),
            field_errors: e
                .field_errors()
                .unwrap_or_default()
                .iter()
                .map(|f| (f.field.to_string(), f.message.to_string()))
                .collect(),
        },
    };
    // The record again, with the replay noted on it.
    let record = state
        .store
        .get_rejection(record.id)
        .await
        .ok()
        .flatten()
        .unwrap_or(record);
    noted(
        rejection_page(&state, &session, &record, Some(result)),
        "replayed",
        &what,
    )
}

/// `POST /admin/o/{id}/retry`: a dead entry back in the queue.
async fn retry(
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    let (session, _) = match checked_form(&req, &body, &sessions) {
        Ok(ok) => ok,
        Err(refused) => return refused.answer(),
    };
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return not_found(&session);
    };
    match state.store.requeue_dead(id, unix_now()).await {
        Ok(true) => {
            state.outbox.wake();
            sessions.flash(&session, format!("Dead entry {id} requeued."));
            noted(
                see_other("/admin/#outbox", None),
                "requeued",
                &format!("dead entry {id} requeued"),
            )
        }
        Ok(false) => not_found(&session),
        Err(_) => store_unavailable(&session),
    }
}

/// `POST /admin/o/{id}/discard` with a `reason`: a queued or dead entry out for good.
async fn discard(
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
) -> HttpResponse {
    let (session, mut form) = match checked_form(&req, &body, &sessions) {
        Ok(ok) => ok,
        Err(refused) => return refused.answer(),
    };
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return not_found(&session);
    };
    let reason = form.remove("reason").unwrap_or_default();
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return message(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "A discard needs a reason (up to 500 characters).",
            Some(session.csrf),
        );
    }
    match state
        .store
        .discard(id, format!("discarded by ops: {reason}"))
        .await
    {
        Ok(true) => {
            sessions.flash(&session, format!("Entry {id} discarded: {reason}"));
            noted(
                see_other("/admin/#outbox", None),
                "discarded",
                &format!("outbox entry {id} discarded: {reason}"),
            )
        }
        Ok(false) => not_found(&session),
        Err(_) => store_unavailable(&session),
    }
}

fn chrome(title: &str, session: &Session) -> Chrome {
    Chrome {
        title: title.to_owned(),
        csrf: Some(session.csrf.clone()),
    }
}

fn sign_in_form(status: StatusCode, error: Option<String>) -> HttpResponse {
    html(
        status,
        &SignIn {
            chrome: Chrome {
                title: "Sign in".into(),
                csrf: None,
            },
            error,
        },
    )
}

fn rejection_page(
    state: &AppState,
    session: &Session,
    record: &Rejection,
    replay: Option<ReplayResult>,
) -> HttpResponse {
    html(
        StatusCode::OK,
        &RejectionPage {
            chrome: chrome(&format!("Rejection {}", record.code), session),
            csrf: session.csrf.clone(),
            r: RejectionDetail::new(record, &state.rejections.settings().mask_fields),
            replay,
        },
    )
}

async fn find_rejection(
    state: &AppState,
    id: &str,
    session: &Session,
) -> Result<Rejection, HttpResponse> {
    let id = uuid::Uuid::parse_str(id).map_err(|_| not_found(session))?;
    match state.store.get_rejection(id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(not_found(session)),
        Err(_) => Err(store_unavailable(session)),
    }
}

fn not_found(session: &Session) -> HttpResponse {
    message(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such record (it may have been pruned, or already handled).",
        Some(session.csrf.clone()),
    )
}

fn store_unavailable(session: &Session) -> HttpResponse {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "The store cannot be read or written right now; try again shortly.",
        Some(session.csrf.clone()),
    )
}

/// A state-changing form: the admin listener, a session, and that session's CSRF token
/// (403 `csrf_failed` otherwise).
fn checked_form(
    req: &HttpRequest,
    body: &Bytes,
    sessions: &Sessions,
) -> Result<(Session, HashMap<String, String>), Refused> {
    gate(req)?;
    let mut form = fields(body);
    let session = sessions.find(req);
    let presented = form.remove("csrf");
    match session {
        Some(session) if session.csrf_matches(presented.as_deref()) => Ok((session, form)),
        _ => {
            tracing::warn!(target: "flowgate::admin", path = req.path(), "ops page: form without a valid CSRF token refused");
            Err(Refused::CsrfFailed)
        }
    }
}

/// The fields of a form-urlencoded body (the first of each name).
fn fields(body: &[u8]) -> HashMap<String, String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let mut map = HashMap::new();
    for (k, v) in pairs {
        map.entry(k).or_insert(v);
    }
    map
}

fn config_row(state: &AppState) -> views::ConfigRow {
    let current = state.live.current();
    let last = state.live.last_reload();
    views::ConfigRow {
        generation: current.generation,
        loaded_at: crate::timefmt::rfc3339_secs(current.loaded_at),
        last_reload: (last.at > 0).then(|| {
            let at = crate::timefmt::rfc3339_secs(last.at);
            if last.ok {
                format!("ok at {at}")
            } else {
                format!("failed at {at}: {}", last.errors.join("; "))
            }
        }),
    }
}
