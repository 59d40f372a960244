//! The tracing subscriber: human or JSON lines, filtered by `RUST_LOG` or the configured level.
//! Request bodies and secrets are never logged; stages log reason codes and field paths.

use tracing_subscriber::EnvFilter;

use crate::configuration::{LogFormat, TelemetrySettings};

/// Installs the global subscriber; a second call (as in tests) leaves the first in place.
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
