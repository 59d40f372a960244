//! What `/readyz` answers, kept in memory and refreshed in the background: a flood of readiness
//! checks costs no store read and no call to Prefect. One probe of Prefect's `/health` and one
//! index seek for the oldest entry per interval, whatever the traffic.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::error_chain;
use crate::pipeline::verify::unix_now;
use crate::prefect::PrefectClient;
use crate::store::Store;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefectState {
    /// Not probed yet.
    Unknown,
    Reachable,
    Unreachable,
}

impl PrefectState {
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Reachable,
            2 => Self::Unreachable,
            _ => Self::Unknown,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Reachable => 1,
            Self::Unreachable => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Reachable => "reachable",
            Self::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Default)]
pub struct Readiness {
    prefect: AtomicU8,
    oldest_age_secs: AtomicU64,
}

impl Readiness {
    pub fn prefect(&self) -> PrefectState {
        PrefectState::from_code(self.prefect.load(Ordering::Relaxed))
    }

    /// Age of the oldest queued entry at the last refresh.
    pub fn oldest_age_secs(&self) -> u64 {
        self.oldest_age_secs.load(Ordering::Relaxed)
    }

    fn set_prefect(&self, state: PrefectState) -> PrefectState {
        PrefectState::from_code(self.prefect.swap(state.code(), Ordering::Relaxed))
    }

    /// Probes Prefect and reads the oldest entry's age once; logs a change of Prefect's state.
    pub async fn refresh(&self, prefect: &PrefectClient, store: &dyn Store) {
        let now = match prefect.health(PROBE_TIMEOUT).await {
            Ok(()) => PrefectState::Reachable,
            Err(e) => {
                tracing::debug!(error = %error_chain(&e), "Prefect health probe failed");
                PrefectState::Unreachable
            }
        };
        let before = self.set_prefect(now);
        if before != now && now == PrefectState::Unreachable {
            tracing::warn!("Prefect unreachable; requests will be queued");
        } else if before == PrefectState::Unreachable && now == PrefectState::Reachable {
            tracing::info!("Prefect reachable again");
        }
        if let Ok(stats) = store.stats(unix_now()).await {
            self.oldest_age_secs
                .store(stats.oldest_queued_age_secs, Ordering::Relaxed);
        }
    }
}

/// Refreshes `readiness` every `every` while it is in use.
pub fn spawn_refresh(
    readiness: Arc<Readiness>,
    prefect: PrefectClient,
    store: Arc<dyn Store>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if Arc::strong_count(&readiness) == 1 {
                return;
            }
            readiness.refresh(&prefect, store.as_ref()).await;
        }
    });
}
