//! The log's budget: one line per request, written by the request middleware from what the
//! handler noted, with nothing a sender controls beyond a bounded, validated value. Rejections
//! are sampled per (client, route, code) each minute, and every request line counts against a
//! global rate; what is left out is counted (a metric, and one summary line a minute).
//! Counts per route and outcome, and the latency per route, go to metrics, not to the log.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;

use crate::sharded_metrics::{ShardedCounter, ShardedHistogram};

/// Series handles each worker thread keeps (per log, route and code); the list starts over when
/// it is full, so route reloads cannot grow it.
const CACHED_SERIES: usize = 64;

/// Rejection keys tracked per minute; beyond this, new keys share one budget.
const MAX_KEYS: usize = 10_000;
/// Longest error detail written on a line.
const MAX_DETAIL: usize = 96;

/// What a handler tells the request's one log line, set as a response extension.
#[derive(Debug, Clone, Default)]
pub struct RequestNote {
    /// A configured route's name (never the raw path segment).
    pub route: Option<Arc<str>>,
    pub client: Option<IpAddr>,
    /// The outcome (`created`, `queued`, `duplicate`, `ignored`…) or the error code.
    pub code: &'static str,
    /// For server errors and admin actions: what happened, bounded.
    pub detail: Option<String>,
    /// The path pattern for the line, when the router's match does not name it (a webhook's
    /// route is found by the handler, not by a pattern).
    pub pattern: Option<&'static str>,
}

impl RequestNote {
    pub fn code(code: &'static str) -> Self {
        Self {
            code,
            ..Self::default()
        }
    }

    pub fn with_detail(mut self, detail: &str) -> Self {
        self.detail = Some(truncate(detail, MAX_DETAIL));
        self
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// A request's labels: the configured route (`-` for none) and the outcome or error code.
/// Both are shared or static, so counting a request allocates nothing once its series exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Arc<str>,
    pub code: &'static str,
}

/// The configured route (`-` for none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Arc<str>,
}

/// How many lines may be written.
#[derive(Debug, Clone, Copy)]
pub struct LogBudget {
    /// Rejection lines per (client, route, code) per minute.
    pub rejections_per_key: u32,
    /// Rejection lines per second in all.
    pub rejections_per_sec: u32,
    /// Request lines per second in all.
    pub lines_per_sec: u32,
}

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    keys: HashMap<u64, u32>,
    second: i64,
    lines: u32,
    rejections: u32,
    suppressed: u64,
}

/// The series one (route, code) counts into, taken from the families once per worker thread:
/// a family lookup hashes the labels and takes the family's lock, shared by every worker.
struct Series {
    requests: ShardedCounter,
    /// Created at the first rejection with this code: other codes have no rejection series.
    rejections: Option<ShardedCounter>,
    duration: ShardedHistogram,
}

/// A cached [`Series`] and what it was looked up for. The key holds the route's name, so the
/// address it is compared by cannot be reused by another name while the entry lives.
struct CachedSeries {
    log: u64,
    route: Option<Arc<str>>,
    code: &'static str,
    series: Series,
}

impl CachedSeries {
    fn is_for(&self, log: u64, note: &RequestNote) -> bool {
        self.log == log
            && std::ptr::eq(self.code, note.code)
            && match (&self.route, &note.route) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

thread_local! {
    static SERIES: RefCell<Vec<CachedSeries>> = const { RefCell::new(Vec::new()) };
}

/// Tells request logs apart in the worker threads' caches.
static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(0);

/// Decides which request lines are written; counts requests, rejections and suppressed lines,
/// and times requests.
#[derive(Debug)]
pub struct RequestLog {
    id: u64,
    budget: LogBudget,
    window: Mutex<Window>,
    /// The route label of requests no configured route answered.
    no_route: Arc<str>,
    /// Every answered request, by route and outcome or error code.
    pub requests: Family<RequestLabels, ShardedCounter>,
    /// Answered 4xx requests, by route and error code.
    pub rejections: Family<RequestLabels, ShardedCounter>,
    /// Seconds from the request's arrival to its response, by route.
    pub duration: Family<RouteLabels, ShardedHistogram>,
    pub suppressed: ShardedCounter,
}

impl RequestLog {
    pub fn new(budget: LogBudget) -> Self {
        Self {
            id: NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed),
            budget,
            window: Mutex::default(),
            no_route: Arc::from("-"),
            requests: Family::default(),
            rejections: Family::default(),
            duration: Family::default(),
            suppressed: ShardedCounter::default(),
        }
    }

    fn route_of(&self, note: &RequestNote) -> Arc<str> {
        note.route.clone().unwrap_or_else(|| self.no_route.clone())
    }

    /// Runs `f` on the series of the note's route and code, looked up in the families only the
    /// first time this thread sees them (`rejection`: the rejection counter is needed).
    fn with_series<T>(
        &self,
        note: &RequestNote,
        rejection: bool,
        f: impl FnOnce(&Series) -> T,
    ) -> T {
        SERIES.with_borrow_mut(|cache| {
            let at = match cache.iter().position(|c| c.is_for(self.id, note)) {
                Some(at) => at,
                None => {
                    if cache.len() >= CACHED_SERIES {
                        cache.clear();
                    }
                    cache.push(CachedSeries {
                        log: self.id,
                        route: note.route.clone(),
                        code: note.code,
                        series: self.series(note),
                    });
                    cache.len() - 1
                }
            };
            let series = &mut cache[at].series;
            if rejection && series.rejections.is_none() {
                series.rejections = Some(self.rejections.get_or_create(&self.labels(note)).clone());
            }
            f(series)
        })
    }

    fn labels(&self, note: &RequestNote) -> RequestLabels {
        RequestLabels {
            route: self.route_of(note),
            code: note.code,
        }
    }

    /// The note's request and duration series, from the families (created when new).
    fn series(&self, note: &RequestNote) -> Series {
        let labels = self.labels(note);
        Series {
            requests: self.requests.get_or_create(&labels).clone(),
            rejections: None,
            duration: self
                .duration
                .get_or_create(&RouteLabels {
                    route: labels.route,
                })
                .clone(),
        }
    }

    /// Times the request under its route.
    pub fn observe(&self, note: &RequestNote, seconds: f64) {
        self.with_series(note, false, |s| s.duration.observe(seconds));
    }

    /// Counts the request and says whether its line is written. `now_ms`: unix milliseconds.
    pub fn admit(&self, status: u16, note: &RequestNote, now_ms: i64) -> bool {
        let rejection = (400..500).contains(&status);
        self.with_series(note, rejection, |s| {
            s.requests.inc();
            if rejection {
                if let Some(rejections) = &s.rejections {
                    rejections.inc();
                }
            }
        });
        let (admitted, summary) = {
            let mut w = self.window();
            let summary = roll(&mut w, now_ms.div_euclid(60_000));
            let admitted = self.rate_allows(&mut w, now_ms.div_euclid(1000), rejection, note);
            if !admitted {
                w.suppressed += 1;
            }
            (admitted, summary)
        };
        if !admitted {
            self.suppressed.inc();
        }
        summarize(summary);
        admitted
    }

    /// Ends the minute if it is over (a background tick, so a quiet minute is summarized too).
    pub fn tick(&self, now_ms: i64) {
        let summary = roll(&mut self.window(), now_ms.div_euclid(60_000));
        summarize(summary);
    }

    fn key_allows(&self, w: &mut Window, note: &RequestNote) -> bool {
        let mut h = DefaultHasher::new();
        (note.client, note.route.as_deref(), note.code).hash(&mut h);
        let key = h.finish();
        let full = w.keys.len() >= MAX_KEYS;
        let seen = match w.keys.get_mut(&key) {
            Some(n) => n,
            None if full => w.keys.entry(0).or_insert(0),
            None => w.keys.entry(key).or_insert(0),
        };
        *seen = seen.saturating_add(1);
        *seen <= self.budget.rejections_per_key
    }

    /// The second's budgets first, then (for a rejection) its key's: once a flood has spent
    /// the second's rejection lines, a request costs no key lookup.
    fn rate_allows(
        &self,
        w: &mut Window,
        second: i64,
        rejection: bool,
        note: &RequestNote,
    ) -> bool {
        if w.second != second {
            w.second = second;
            w.lines = 0;
            w.rejections = 0;
        }
        if rejection {
            if w.rejections >= self.budget.rejections_per_sec || !self.key_allows(w, note) {
                return false;
            }
            w.rejections += 1;
        }
        w.lines = w.lines.saturating_add(1);
        w.lines <= self.budget.lines_per_sec
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // Plain counters: a panicking holder cannot leave them half-updated.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts a new minute if `minute` is a later one; returns the lines suppressed in the last.
fn roll(w: &mut Window, minute: i64) -> u64 {
    if w.minute == minute {
        return 0;
    }
    w.minute = minute;
    w.keys.clear();
    std::mem::take(&mut w.suppressed)
}

fn summarize(suppressed: u64) {
    if suppressed > 0 {
        tracing::info!(
            target: "flowgate::request",
            suppressed,
            "request lines left out in the last minute (log budget); counts are in /metrics"
        );
    }
}

/// Writes the one line of a request.
pub fn write_line(
    request_id: &str,
    method: &str,
    path: &str,
    status: u16,
    note: &RequestNote,
    latency_ms: u64,
) {
    let route = note.route.as_deref().unwrap_or("-");
    let client = note.client.map(|c| c.to_string());
    let client = client.as_deref().unwrap_or("-");
    let detail = note.detail.as_deref().unwrap_or("");
    if status >= 500 {
        tracing::error!(target: "flowgate::request", request_id, method, path, route, client, status, code = note.code, ms = latency_ms, detail, "request");
    } else {
        tracing::info!(target: "flowgate::request", request_id, method, path, route, client, status, code = note.code, ms = latency_ms, "request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(client: u8, code: &'static str) -> RequestNote {
        RequestNote {
            route: Some("site".into()),
            client: Some(IpAddr::from([10, 0, 0, client])),
            code,
            detail: None,
            pattern: None,
        }
    }

    #[test]
    fn rejections_are_sampled_per_client_route_and_code_each_minute() {
        let log = RequestLog::new(LogBudget {
            rejections_per_key: 3,
            rejections_per_sec: 1_000_000,
            lines_per_sec: 1_000_000,
        });
        let written = (0..100)
            .filter(|_| log.admit(422, &note(1, "validation_failed"), 0))
            .count();
        assert_eq!(written, 3);
        assert!(
            log.admit(422, &note(2, "validation_failed"), 0),
            "another client"
        );
        assert!(
            log.admit(401, &note(1, "invalid_signature"), 0),
            "another code"
        );
        assert!(
            log.admit(202, &note(1, "created"), 0),
            "accepted lines are not sampled"
        );
        assert!(
            log.admit(422, &note(1, "validation_failed"), 60_000),
            "a new minute"
        );
        assert_eq!(log.suppressed.get(), 97);
        let counted = log
            .requests
            .get_or_create(&RequestLabels {
                route: "site".into(),
                code: "validation_failed",
            })
            .get();
        assert_eq!(counted, 102, "every request is counted, written or not");
    }

    #[test]
    fn a_flood_past_the_seconds_rejection_lines_takes_no_key() {
        let log = RequestLog::new(LogBudget {
            rejections_per_key: 3,
            rejections_per_sec: 2,
            lines_per_sec: 1_000_000,
        });
        let written = (0..1_000u16)
            .filter(|i| log.admit(422, &note((i % 250) as u8, "validation_failed"), 0))
            .count();
        assert_eq!(written, 2);
        assert_eq!(
            log.window().keys.len(),
            2,
            "only the written lines' keys are tracked"
        );
        assert_eq!(log.suppressed.get(), 998);
        // The next second: a key's budget counts only its lines let through.
        assert!(log.admit(422, &note(0, "validation_failed"), 1_000));
        assert!(log.admit(422, &note(0, "validation_failed"), 2_000));
        assert!(
            !log.admit(422, &note(0, "validation_failed"), 3_000),
            "its fourth line this minute"
        );
    }

    #[test]
    fn each_log_counts_its_own_requests_through_the_threads_series_cache() {
        let budget = LogBudget {
            rejections_per_key: 1,
            rejections_per_sec: 1,
            lines_per_sec: 1,
        };
        let (a, b) = (RequestLog::new(budget), RequestLog::new(budget));
        let shared = note(1, "validation_failed");
        for _ in 0..5 {
            a.admit(422, &shared, 0);
        }
        b.admit(422, &shared, 0);
        // More (route, code) pairs than the cache keeps: it starts over and still counts right.
        for i in 0..(2 * CACHED_SERIES) {
            let mut other = note(1, "validation_failed");
            other.route = Some(format!("r{i}").into());
            a.admit(422, &other, 0);
        }
        a.admit(422, &shared, 0);
        a.admit(202, &note(1, "created"), 0);
        let count = |log: &RequestLog, code: &'static str| {
            let labels = RequestLabels {
                route: "site".into(),
                code,
            };
            (
                log.requests.get(&labels).map(|c| c.get()),
                log.rejections.get(&labels).map(|c| c.get()),
            )
        };
        assert_eq!(count(&a, "validation_failed"), (Some(6), Some(6)));
        assert_eq!(
            count(&b, "validation_failed"),
            (Some(1), Some(1)),
            "not a's"
        );
        assert_eq!(
            count(&a, "created"),
            (Some(1), None),
            "the same name in another Arc is the same series; no rejection series for a 202"
        );
        assert_eq!(
            a.requests
                .get(&RequestLabels {
                    route: "r3".into(),
                    code: "validation_failed"
                })
                .map(|c| c.get()),
            Some(1)
        );
    }

    #[test]
    fn rejections_are_counted_by_route_and_code_and_requests_timed_by_route() {
        let log = RequestLog::new(LogBudget {
            rejections_per_key: 1,
            rejections_per_sec: 1,
            lines_per_sec: 1,
        });
        for _ in 0..3 {
            log.admit(422, &note(1, "validation_failed"), 0);
        }
        log.admit(404, &RequestNote::code("unknown_route"), 0);
        log.admit(202, &note(1, "created"), 0);
        log.admit(503, &note(1, "upstream_unavailable"), 0);
        let rejected = |route: &str, code: &'static str| {
            log.rejections
                .get(&RequestLabels {
                    route: route.into(),
                    code,
                })
                .map(|c| c.get())
        };
        assert_eq!(
            rejected("site", "validation_failed"),
            Some(3),
            "sampled lines, all counted"
        );
        assert_eq!(
            rejected("-", "unknown_route"),
            Some(1),
            "no configured route"
        );
        assert_eq!(rejected("site", "created"), None, "accepted");
        assert_eq!(
            rejected("site", "upstream_unavailable"),
            None,
            "a 5xx is no rejection"
        );

        log.observe(&note(1, "created"), 0.004);
        log.observe(&note(1, "created"), 0.2);
        log.observe(&RequestNote::code("-"), 0.001);
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("d_seconds", "", log.duration.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("d_seconds_count{route=\"site\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_count{route=\"-\"} 1\n"), "{text}");
        assert!(
            text.contains("d_seconds_bucket{le=\"0.005\",route=\"site\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn no_traffic_writes_more_than_the_rate_allows() {
        let log = RequestLog::new(LogBudget {
            rejections_per_key: 5,
            rejections_per_sec: 4,
            lines_per_sec: 10,
        });
        // 100,000 distinct clients in one second: at most the rejection rate's worth of lines,
        // and accepted requests still get the rest of the second's lines.
        let written = (0..100_000u32)
            .filter(|i| {
                let n = RequestNote {
                    client: Some(IpAddr::from(i.to_be_bytes())),
                    ..note(0, "validation_failed")
                };
                log.admit(422, &n, 5_000)
            })
            .count();
        assert_eq!(written, 4);
        let accepted = (0..100)
            .filter(|_| log.admit(202, &note(1, "created"), 5_000))
            .count();
        assert_eq!(accepted, 6, "the rest of the second's 10");
        assert!(
            log.admit(202, &note(1, "created"), 6_000),
            "the next second"
        );
    }

    #[test]
    fn details_are_bounded() {
        let n = RequestNote::code("upstream_error").with_detail(&"x".repeat(10_000));
        assert!(n.detail.unwrap().chars().count() <= MAX_DETAIL + 1);
    }
}
