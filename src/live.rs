//! The configuration a running gateway serves with, replaced whole by a reload (`SIGHUP` or
//! `POST /admin/reload`): the file and the secrets it points to are read again and checked
//! completely first; an invalid one leaves the running configuration in place. Each request
//! takes the current configuration once and finishes on it, so it sees one whole configuration.
//!
//! Live: routes (and their secrets, fields, limits), API tokens, managed deployments from the
//! file. Read once at start ("needs a restart"): listeners, Prefect, the store, delivery,
//! abuse limits per address, rejection log and telemetry settings.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::api::tokens::ApiTokens;
use crate::configuration::{Configuration, Settings};
use crate::route_table::{Route, RouteTable};

/// One loaded configuration.
#[derive(Debug)]
pub struct Loaded {
    /// 1 at start, then one more per successful reload.
    pub generation: u64,
    /// Unix seconds.
    pub loaded_at: i64,
    pub routes: Arc<RouteTable>,
    pub api_tokens: Arc<ApiTokens>,
    settings: Settings,
}

/// A worker thread's handle on one `Live`'s route table.
struct ThreadRoutes {
    live: u64,
    generation: u64,
    table: Arc<RouteTable>,
}

thread_local! {
    static ROUTES: RefCell<Option<ThreadRoutes>> = const { RefCell::new(None) };
}

static NEXT_LIVE_ID: AtomicU64 = AtomicU64::new(0);

/// How the last reload went.
#[derive(Debug, Clone, Default)]
pub struct ReloadReport {
    /// Unix seconds; 0: none since start.
    pub at: i64,
    pub ok: bool,
    /// Why it failed: one line per problem, each with its field path.
    pub errors: Vec<String>,
    /// Changed settings that take effect only after a restart.
    pub needs_restart: Vec<String>,
}

pub struct Live {
    current: RwLock<Arc<Loaded>>,
    /// Tells `Live`s apart in the worker threads' route tables.
    id: u64,
    /// `current`'s generation, written after it: a worker compares its own table's to this.
    generation: AtomicU64,
    source: Option<PathBuf>,
    last: Mutex<ReloadReport>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("generation", &self.current().generation)
            .finish_non_exhaustive()
    }
}

impl Live {
    pub fn new(config: &Configuration, now: i64) -> Self {
        Self {
            current: RwLock::new(Arc::new(Loaded {
                generation: 1,
                loaded_at: now,
                routes: config.routes.clone(),
                api_tokens: config.api_tokens.clone(),
                settings: config.settings.clone(),
            })),
            id: NEXT_LIVE_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(1),
            source: config.source.clone(),
            last: Mutex::new(ReloadReport::default()),
            reloading: tokio::sync::Mutex::new(()),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// The configuration now (a request takes it once).
    pub fn current(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The route of that name in the configuration now, from this thread's own handle on the
    /// route table: no lock, and no count shared with the other workers changes, until a reload
    /// (seen by its generation) makes the thread take the new table.
    pub fn route(&self, name: &str) -> Option<Arc<Route>> {
        let generation = self.generation.load(Ordering::Acquire);
        ROUTES.with_borrow_mut(|mine| {
            let stale = mine
                .as_ref()
                .is_none_or(|m| m.live != self.id || m.generation < generation);
            if stale {
                let now = self.current();
                *mine = Some(ThreadRoutes {
                    live: self.id,
                    generation: now.generation,
                    table: now.routes.clone(),
                });
            }
            mine.as_ref().and_then(|m| m.table.get(name))
        })
    }

    pub fn last_reload(&self) -> ReloadReport {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Reads the file again and, if it is valid, switches to it; returns the report (also kept
    /// for `/readyz` and the admin API). `apply` gets the new configuration before the switch
    /// (to store its managed deployments).
    pub async fn reload(&self, now: i64) -> (ReloadReport, Option<Configuration>) {
        let _one = self.reloading.lock().await;
        let read = match self.source.clone() {
            None => Err(vec![
                "this gateway was not started from a configuration file".to_owned(),
            ]),
            Some(path) => tokio::task::spawn_blocking(move || {
                Configuration::load(Some(&path)).map_err(|e| e.lines())
            })
            .await
            .unwrap_or_else(|e| Err(vec![format!("the reload stopped: {e}")])),
        };
        let old = self.current();
        let (report, config) = match read {
            Err(errors) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                for e in &errors {
                    tracing::error!(target: "flowgate::reload", error = %e, "reload refused; the running configuration stays");
                }
                (
                    ReloadReport {
                        at: now,
                        ok: false,
                        errors,
                        needs_restart: Vec::new(),
                    },
                    None,
                )
            }
            Ok(mut config) => {
                let needs_restart = restart_only_changes(&old.settings, &config.settings);
                let fresh = std::mem::take(&mut config.routes);
                let routes = match Arc::try_unwrap(fresh) {
                    Ok(table) => Arc::new(table.carry_limits_from(&old.routes)),
                    Err(shared) => shared,
                };
                config.routes = routes.clone();
                let next = Arc::new(Loaded {
                    generation: old.generation + 1,
                    loaded_at: now,
                    routes,
                    api_tokens: config.api_tokens.clone(),
                    settings: config.settings.clone(),
                });
                let generation = next.generation;
                match self.current.write() {
                    Ok(mut c) => *c = next,
                    Err(poisoned) => *poisoned.into_inner() = next,
                }
                self.generation.store(generation, Ordering::Release);
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "flowgate::reload", generation, routes = config.routes.len(), ?needs_restart, "configuration reloaded");
                (
                    ReloadReport {
                        at: now,
                        ok: true,
                        errors: Vec::new(),
                        needs_restart,
                    },
                    Some(config),
                )
            }
        };
        if let Ok(mut last) = self.last.lock() {
            *last = report.clone();
        }
        (report, config)
    }
}

/// The sections read once at start that differ between `old` and `new`.
fn restart_only_changes(old: &Settings, new: &Settings) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |name: &str, a: String, b: String| {
        if a != b {
            changed.push(format!("{name}: needs a restart"));
        }
    };
    check(
        "server",
        format!("{:?}", old.server),
        format!("{:?}", new.server),
    );
    check(
        "prefect",
        format!("{:?}", old.prefect),
        format!("{:?}", new.prefect),
    );
    check(
        "admin",
        format!("{:?}", old.admin),
        format!("{:?}", new.admin),
    );
    check(
        "store",
        format!("{:?}", old.store),
        format!("{:?}", new.store),
    );
    check(
        "delivery",
        format!("{:?}", old.delivery),
        format!("{:?}", new.delivery),
    );
    check(
        "limits",
        format!("{:?}", old.limits),
        format!("{:?}", new.limits),
    );
    check(
        "rejections",
        format!("{:?}", old.rejections),
        format!("{:?}", new.rejections),
    );
    check(
        "telemetry",
        format!("{:?}", old.telemetry),
        format!("{:?}", new.telemetry),
    );
    check(
        "api.deployments_resync_secs",
        old.api.deployments_resync_secs.to_string(),
        new.api.deployments_resync_secs.to_string(),
    );
    changed
}
