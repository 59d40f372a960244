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
pub fn select_target(
    route: &Arc<Route>,
    input: &InputFields<'_>,
    headers: &HeaderMap,
) -> Selection {
    let selection = choose(route, input, headers);
    if let Selection::Ignored { reason, .. } = &selection {
        route.ignored().count(*reason);
    }
    selection
}

fn choose(route: &Arc<Route>, input: &InputFields<'_>, headers: &HeaderMap) -> Selection {
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::pipeline::test_route as route;

    fn body(v: Value) -> InputFields<'static> {
        match v {
            Value::Object(m) => m.into(),
            _ => unreachable!("test bodies are objects"),
        }
    }

    fn deployment_of(s: &Selection) -> String {
        match s {
            Selection::Run(r) => r.deployment().to_string(),
            Selection::Ignored { reason, .. } => reason.code().to_owned(),
        }
    }

    const TARGETS: &str = r#"
[routes.r]
auth = "none"
tags = ["all"]
filters = [{ path = "livemode", equals = true }]
[[routes.r.targets]]
deployment = "billing/paid"
filters = [{ path = "type", equals = "invoice.paid" }]
tags = ["paid"]
[[routes.r.targets]]
deployment = "billing/invoices"
filters = [{ path = "type", matches = "invoice\\..*" }]
[[routes.r.targets]]
deployment = "billing/other"
filters = [{ path = "type", exists = true }, { path = "type", one_of = ["charge.refunded", "customer.created"] }]
"#;

    #[test]
    fn the_first_target_whose_filters_hold_wins_and_the_rest_are_ignored() {
        let r = route(TARGETS);
        let headers = HeaderMap::new();
        let pick = |v: Value| deployment_of(&select_target(&r, &body(v), &headers));
        assert_eq!(
            pick(json!({"livemode": true, "type": "invoice.paid"})),
            "billing/paid",
            "both the first and second match: the first wins"
        );
        assert_eq!(
            pick(json!({"livemode": true, "type": "invoice.voided"})),
            "billing/invoices"
        );
        assert_eq!(
            pick(json!({"livemode": true, "type": "customer.created"})),
            "billing/other"
        );
        assert_eq!(
            pick(json!({"livemode": true, "type": "payout.paid"})),
            "no_matching_target"
        );
        assert_eq!(
            pick(json!({"livemode": false, "type": "invoice.paid"})),
            "filtered",
            "the route's filters come before any target"
        );
        assert_eq!(r.ignored().get(IgnoredReason::NoMatchingTarget), 1);
        assert_eq!(r.ignored().get(IgnoredReason::Filtered), 1);
    }

    #[test]
    fn a_target_keeps_the_routes_tags_before_its_own() {
        let r = route(TARGETS);
        let paid = r.targets()[0].route();
        assert_eq!(paid.tags(), ["all", "paid"]);
        assert_eq!(
            paid.name(),
            r.name(),
            "one route name: one dedup and share namespace"
        );
        assert_eq!(
            r.deployment().to_string(),
            "billing/paid",
            "listings show the first"
        );
    }

    #[test]
    fn a_route_without_targets_runs_itself() {
        let r = route("[routes.r]\ndeployment = \"f/d\"\nauth = \"none\"\n");
        match select_target(&r, &body(json!({})), &HeaderMap::new()) {
            Selection::Run(chosen) => assert!(Arc::ptr_eq(&chosen, &r)),
            other => panic!("expected a run, got {other:?}"),
        }
    }
}
