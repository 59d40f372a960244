//! What the ops page's templates show (every value escaped by askama), made from the store's
//! records.

use askama::Template;

use crate::rejections::{content_type, mask};
use crate::routes::admin::rejections::{replay_refusal, rfc3339};
use crate::store::{OutboxEntry, Rejection, RejectionCount};

/// What every page has: its title, and the CSRF token of the sign-out form when signed in.
pub struct Chrome {
    pub title: String,
    pub csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "ops/sign_in.html")]
pub struct SignIn {
    pub chrome: Chrome,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "ops/message.html")]
pub struct Message {
    pub chrome: Chrome,
    pub code: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "ops/dashboard.html")]
pub struct Dashboard {
    pub chrome: Chrome,
    pub csrf: String,
    pub flash: Option<String>,
    pub error: Option<String>,
    pub counts: Vec<CountRow>,
    pub filters: Filters,
    pub rejections: Vec<RejectionRow>,
    /// The next page's query string.
    pub next: Option<String>,
    pub queued: Vec<OutboxRow>,
    pub dead: Vec<OutboxRow>,
    pub routes: Vec<RouteRow>,
    pub config: ConfigRow,
}

/// The configuration being served: its generation and when it was loaded.
pub struct ConfigRow {
    pub generation: u64,
    pub loaded_at: String,
    /// `ok at …` or `failed at …: …`.
    pub last_reload: Option<String>,
}

#[derive(Template)]
#[template(path = "ops/rejection.html")]
pub struct RejectionPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub r: RejectionDetail,
    pub replay: Option<ReplayResult>,
}

pub struct CountRow {
    pub route: String,
    pub code: String,
    pub count: u64,
}

impl From<RejectionCount> for CountRow {
    fn from(c: RejectionCount) -> Self {
        Self {
            route: c.route,
            code: c.code,
            count: c.count,
        }
    }
}

/// The rejection filters as typed in the form (empty: no filter).
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub struct Filters {
    #[serde(default)]
    pub route: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
}

impl Filters {
    /// The admin API's filters (blank fields left out).
    pub fn params(&self) -> crate::routes::admin::rejections::ListParams {
        let set = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        crate::routes::admin::rejections::ListParams {
            route: set(&self.route),
            code: set(&self.code),
            client: set(&self.client),
            from: set(&self.from),
            to: set(&self.to),
            limit: None,
            cursor: set(&self.cursor),
        }
    }

    /// The query string of the page after the one ending at `last`.
    pub fn next_page(&self, last: uuid::Uuid) -> Option<String> {
        let next = Self {
            cursor: last.to_string(),
            ..self.clone()
        };
        serde_urlencoded::to_string(&next).ok()
    }
}

pub struct RejectionRow {
    pub id: String,
    pub first_at: String,
    pub last_at: String,
    pub count: u64,
    pub route: String,
    pub client: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    pub replayable: bool,
    pub replayed: Option<String>,
}

impl From<&Rejection> for RejectionRow {
    fn from(r: &Rejection) -> Self {
        Self {
            id: r.id.to_string(),
            first_at: rfc3339(r.first_ms),
            last_at: rfc3339(r.last_ms),
            count: r.count,
            route: r.route.clone(),
            client: r.client.clone().unwrap_or_default(),
            status: r.status,
            code: r.code.clone(),
            detail: r.detail.clone(),
            replayable: replay_refusal(r).is_none(),
            replayed: replayed(r),
        }
    }
}

fn replayed(r: &Rejection) -> Option<String> {
    r.replayed
        .as_ref()
        .map(|(at, outcome)| format!("{outcome} at {}", rfc3339(*at)))
}

pub struct RejectionDetail {
    pub row: RejectionRow,
    pub request_id: String,
    /// `(field, message)` of a 422.
    pub field_errors: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// Masked for display.
    pub body: Option<String>,
    pub body_size: u64,
    pub body_complete: bool,
    /// Why it cannot be replayed, when it cannot.
    pub refusal: Option<String>,
}

impl RejectionDetail {
    pub fn new(r: &Rejection, mask_fields: &[String]) -> Self {
        Self {
            row: r.into(),
            request_id: r.request_id.clone(),
            field_errors: field_errors(r.field_errors.as_ref()),
            headers: r.headers.clone(),
            body: r
                .body
                .as_deref()
                .map(|b| mask::display_body(b, content_type(r), mask_fields)),
            body_size: r.body_size,
            body_complete: r.body_complete(),
            refusal: replay_refusal(r).map(|e| e.to_string()),
        }
    }
}

fn field_errors(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let Some(v) = v else { return Vec::new() };
    match v.as_array() {
        Some(items) => items
            .iter()
            .map(|e| {
                let text = |k: &str| e.get(k).and_then(|s| s.as_str()).unwrap_or_default();
                (text("field").to_owned(), text("message").to_owned())
            })
            .collect(),
        None => vec![(String::new(), v.to_string())],
    }
}

/// What the pipeline answered a replay.
pub struct ReplayResult {
    pub http_status: u16,
    /// `created`, `queued`, `duplicate`, or the error's code.
    pub outcome: String,
    pub accepted: bool,
    pub flow_run_id: Option<String>,
    pub delivery_id: Option<String>,
    pub detail: Option<String>,
    pub field_errors: Vec<(String, String)>,
}

pub struct OutboxRow {
    pub id: String,
    pub route: String,
    pub deployment: String,
    pub attempts: u32,
    pub last_error: String,
    pub created_at: String,
}

impl From<&OutboxEntry> for OutboxRow {
    fn from(e: &OutboxEntry) -> Self {
        Self {
            id: e.id.to_string(),
            route: e.route.clone(),
            deployment: e.deployment.clone(),
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            created_at: rfc3339(e.created_at.saturating_mul(1000)),
        }
    }
}

pub struct RouteRow {
    pub name: String,
    pub deployment: String,
    pub deployment_id: Option<String>,
    pub auth: String,
    pub queued: u64,
}
