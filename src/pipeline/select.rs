//! Select stage: the route's filters, then its targets (the first whose filters hold wins).
//! An authentic, well-formed request that no condition lets through is ignored, not refused:
//! partners retry errors, and an event nobody wants is no error.

use std::sync::Arc;

use actix_web::http::header::HeaderMap;

use super::parse::InputFields;
use crate::route_table::{IgnoredReason, Route};

/// Where an accepted request goes.
#[derive(Debug)]
pub enum Selection {
    /// Run it with this mapping (the route itself, or the target that matched).
    Run(Arc<Route>),
    /// Start nothing; `detail` names the condition, in the config's words.
    Ignored {
        reason: IgnoredReason,
        detail: String,
    },
}

#[tracing::instrument(level = "debug", name = "stage.select", skip_all, fields(route = %route.name()))]
pub fn select_target(route: &Arc<Route>, input: &InputFields, headers: &HeaderMap) -> Selection {
    let selection = choose(route, input, headers);
    if let Selection::Ignored { reason, .. } = &selection {
        route.ignored().count(*reason);
    }
    selection
}

fn choose(route: &Arc<Route>, input: &InputFields, headers: &HeaderMap) -> Selection {
    if let Some(failed) = route.filter().first_failure(input, headers) {
        return Selection::Ignored {
            reason: IgnoredReason::Filtered,
            detail: failed.describe(),
        };
    }
    if route.targets().is_empty() {
        return Selection::Run(Arc::clone(route));
    }
    route
        .targets()
        .iter()
        .find(|t| t.filter().first_failure(input, headers).is_none())
        .map_or_else(
            || Selection::Ignored {
                reason: IgnoredReason::NoMatchingTarget,
                detail: "no target's filters hold for this request".into(),
            },
            |t| Selection::Run(Arc::clone(t.route())),
        )
}
