//! Map stage: validated fields → flow parameters, tags, run name and idempotency key.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::fields::ValidatedFields;
use crate::domain::IdempotencyKey;
use crate::error::GatewayError;
use crate::request_id::RequestId;
use crate::route_table::Route;

/// Everything needed to create one flow run.
#[derive(Debug, Clone)]
pub struct FlowRunPlan {
    pub route: Arc<Route>,
    /// Parameters by flow parameter name (renamed fields plus constants), sorted.
    pub parameters: Map<String, Value>,
    pub tags: Vec<String>,
    pub name: Option<String>,
    pub idempotency_key: IdempotencyKey,
}

impl FlowRunPlan {
    /// The key as sent to Prefect.
    pub fn namespaced_key(&self) -> String {
        self.idempotency_key
            .namespaced(self.route.deployment(), self.route.name())
    }
}

/// The idempotency key is the sender's `Idempotency-Key` if given, else the verified delivery
/// id, else a hash of the route and the parameters.
#[tracing::instrument(level = "debug", name = "stage.map", skip_all, fields(route = %route.name()))]
pub fn plan_flow_run(
    route: &Arc<Route>,
    fields: &ValidatedFields,
    idempotency_header: Option<&str>,
    delivery_id: Option<&str>,
    request_id: &RequestId,
) -> Result<FlowRunPlan, GatewayError> {
    let mut parameters = Map::new();
    for (rule, value) in fields.of(route) {
        parameters.insert(rule.param().to_owned(), value.clone());
    }
    for (name, value) in route.constants() {
        parameters.insert(name.clone(), value.clone());
    }
    let idempotency_key = match (idempotency_header, delivery_id) {
        (Some(raw), _) => IdempotencyKey::from_header(raw)?,
        (None, Some(id)) => IdempotencyKey::from_delivery(id),
        (None, None) => IdempotencyKey::from_content(route.name(), &canonical_json(&parameters)),
    };
    let name = route.run_name().map(|template| {
        let route_name = Value::String(route.name().to_string());
        let request_id = Value::String(request_id.to_string());
        let mut values: BTreeMap<&str, &Value> = fields
            .of(route)
            .map(|(rule, value)| (rule.name(), value))
            .collect();
        values.insert("route", &route_name);
        values.insert("request_id", &request_id);
        template.render(&values)
    });
    Ok(FlowRunPlan {
        route: Arc::clone(route),
        parameters,
        tags: route.tags().to_vec(),
        name,
        idempotency_key,
    })
}

/// serde_json's `Map` keeps keys sorted (no `preserve_order`), so this is canonical.
fn canonical_json(parameters: &Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(parameters).unwrap_or_default()
}
