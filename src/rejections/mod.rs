//! The rejection log: every refused request (4xx and 5xx answers of `/hooks`), with its reason,
//! kept in the store for ops to read and replay.
//!
//! Cost and size stay bounded under any flood. Identical rejections (same client, route and
//! code) within `aggregate_secs` of the first are counted into its record (in memory; the
//! count is written once a second), so a flood from one client is one record. New records are
//! capped per second; beyond the cap, rejections are counted into one record per route and code
//! with the client shown as many. Rate-limited requests are counted per client without headers
//! or body. The store keeps `max_rows` records and `retention_hours`, pruned in the background.

pub mod mask;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use actix_web::web::Bytes;
use hashbrown::{Equivalent, HashMap};

use crate::configuration::RejectionSettings;
use crate::error::GatewayError;
use crate::pipeline::route::shown_route;
use crate::pipeline::verify::unix_now_ms;
use crate::request_id::uuid_v7;
use crate::store::{Rejection, RejectionWrite, Store};

/// How often counts are written and old records pruned.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const PRUNE_EVERY_TICKS: u32 = 60;

/// A refused request, as the handler saw it.
pub struct Incoming<'a> {
    /// The configured route's name, or the path segment of an unknown one.
    pub route: &'a str,
    pub client: Option<IpAddr>,
    pub error: &'a GatewayError,
    pub request_id: &'a str,
    pub headers: &'a HeaderMap,
    /// The body, when it was read.
    pub body: Option<&'a Bytes>,
    /// The request passed authentication (a replay may not launder one that did not).
    pub authenticated: bool,
    /// The route's own secret headers.
    pub secret_headers: &'a [String],
    /// The delivery id of a signed request, once verified.
    pub delivery_id: Option<&'a str>,
}

/// (client, route, code): `None` for the client is the overflow record of a route and code.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key(Option<IpAddr>, Arc<str>, &'static str);

/// A [`Key`] borrowed from the request: a rejection counted into an open record allocates
/// nothing. Hashes as the key does (the same fields, in order).
#[derive(Hash)]
struct Lookup<'a>(Option<IpAddr>, &'a str, &'static str);

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.2 == key.2 && self.1 == &*key.1
    }
}

struct Open {
    id: uuid::Uuid,
    pending: u64,
    last_ms: i64,
}

#[derive(Default)]
struct Aggregates {
    open: HashMap<Key, Open>,
    /// Open records, oldest first: (key, first seen).
    order: VecDeque<(Key, i64)>,
    second: i64,
    records_this_second: u32,
}

pub struct RejectionLog {
    store: Arc<dyn Store>,
    settings: RejectionSettings,
    state: Mutex<Aggregates>,
}

impl RejectionLog {
    pub fn new(store: Arc<dyn Store>, settings: RejectionSettings) -> Self {
        Self {
            store,
            settings,
            state: Mutex::default(),
        }
    }

    pub fn settings(&self) -> &RejectionSettings {
        &self.settings
    }

    fn state(&self) -> MutexGuard<'_, Aggregates> {
        // Counters and ids: a panicking holder leaves at worst a count unwritten.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a refused request: a new record, or one more on an open one. Never waits for
    /// the store.
    pub fn record(&self, r: Incoming<'_>) {
        if !self.settings.enabled {
            return;
        }
        let now = unix_now_ms();
        let code = r.error.code();
        let mut lookup = Lookup(r.client, shown_route(r.route), code);
        let (id, key) = {
            let mut state = self.state();
            let expired = self.expire(&mut state, now);
            self.write_counts(expired);
            if let Some(open) = state.open.get_mut(&lookup) {
                open.pending += 1;
                open.last_ms = now;
                return;
            }
            if state.second != now.div_euclid(1000) {
                state.second = now.div_euclid(1000);
                state.records_this_second = 0;
            }
            if state.records_this_second >= self.settings.records_per_sec {
                lookup.0 = None;
                if let Some(open) = state.open.get_mut(&lookup) {
                    open.pending += 1;
                    open.last_ms = now;
                    return;
                }
            } else {
                state.records_this_second += 1;
            }
            let key = Key(lookup.0, Arc::from(lookup.1), code);
            let id = uuid_v7();
            state.open.insert(
                key.clone(),
                Open {
                    id,
                    pending: 0,
                    last_ms: now,
                },
            );
            state.order.push_back((key.clone(), now));
            (id, key)
        };
        let rejection = self.new_record(id, now, &key, &r);
        drop(
            self.store
                .write_rejection(RejectionWrite::Insert(Box::new(rejection))),
        );
    }

    fn new_record(&self, id: uuid::Uuid, now: i64, key: &Key, r: &Incoming<'_>) -> Rejection {
        // Rate-limited requests and overflow records are counts: no headers, no body.
        let counts_only = matches!(r.error, GatewayError::RateLimited { .. }) || key.0.is_none();
        let headers = if counts_only {
            Vec::new()
        } else {
            mask::keep_headers(
                r.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
                &self.settings.secret_headers,
                r.secret_headers,
            )
        };
        let body = r.body.filter(|_| !counts_only);
        Rejection {
            id,
            first_ms: now,
            last_ms: now,
            count: 1,
            route: key.1.to_string(),
            client: key.0.map(|c| c.to_string()),
            status: r.error.status().as_u16(),
            code: key.2.to_owned(),
            detail: r.error.to_string().chars().take(1000).collect(),
            field_errors: r
                .error
                .field_errors()
                .and_then(|e| serde_json::to_value(e).ok()),
            request_id: r.request_id.to_owned(),
            headers,
            body: body.map(|b| b[..b.len().min(self.settings.max_body_bytes)].to_vec()),
            body_size: body.map_or(0, |b| b.len() as u64),
            body_kept: body.is_some_and(|b| b.len() <= self.settings.max_body_bytes),
            authenticated: r.authenticated,
            replayed: None,
            delivery_id: r.delivery_id.map(str::to_owned),
        }
    }

    /// Closes records older than the aggregation window; returns their unwritten counts.
    fn expire(&self, state: &mut Aggregates, now: i64) -> Vec<(uuid::Uuid, u64, i64)> {
        let window =
            i64::try_from(self.settings.aggregate_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut counts = Vec::new();
        while let Some((_, first)) = state.order.front() {
            if now.saturating_sub(*first) < window {
                break;
            }
            if let Some((key, _)) = state.order.pop_front() {
                if let Some(open) = state.open.remove(&key) {
                    if open.pending > 0 {
                        counts.push((open.id, open.pending, open.last_ms));
                    }
                }
            }
        }
        counts
    }

    fn write_counts(&self, counts: Vec<(uuid::Uuid, u64, i64)>) {
        for (id, n, last_ms) in counts {
            drop(
                self.store
                    .write_rejection(RejectionWrite::AddCount { id, n, last_ms }),
            );
        }
    }

    /// Writes the counts gathered since the last flush (and closes expired records).
    pub fn flush(&self) {
        let now = unix_now_ms();
        let counts = {
            let mut state = self.state();
            let mut counts = self.expire(&mut state, now);
            for open in state.open.values_mut() {
                if open.pending > 0 {
                    counts.push((open.id, open.pending, open.last_ms));
                    open.pending = 0;
                }
            }
            counts
        };
        self.write_counts(counts);
    }

    /// Forgets records beyond the retention (age and count).
    pub async fn prune(&self) -> Result<usize, crate::store::StoreError> {
        let retention = self.settings.retention_hours.saturating_mul(3_600_000);
        let before_ms = unix_now_ms().saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX));
        self.store
            .write_rejection(RejectionWrite::Prune {
                before_ms,
                keep: self.settings.max_rows,
            })
            .await
    }

    /// Writes counts every second and prunes every minute, in the background.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let log = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            let mut ticks = 0u32;
            loop {
                tick.tick().await;
                let Some(log) = log.upgrade() else { return };
                log.flush();
                ticks = ticks.wrapping_add(1);
                if ticks % PRUNE_EVERY_TICKS == 1 {
                    match log.prune().await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(pruned = n, "rejection log pruned"),
                        Err(e) => tracing::warn!(
                            error = %crate::error::error_chain(&e),
                            "cannot prune the rejection log"
                        ),
                    }
                }
            }
        });
    }
}

/// The content type a record was sent with.
pub fn content_type(r: &Rejection) -> Option<&str> {
    r.headers
        .iter()
        .find(|(n, _)| n.as_str() == CONTENT_TYPE.as_str())
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests;
