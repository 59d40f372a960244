//! Prefect's request and response bodies, as far as flowgate reads or writes them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A deployment as resolved by name.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: uuid::Uuid,
    /// Parameter names declared in `parameter_openapi_schema.properties`; `None` when the
    /// deployment publishes no schema at all.
    pub declared_parameters: Option<BTreeSet<String>>,
    /// The deployment's `parameter_openapi_schema`, kept for edge validation.
    pub parameter_schema: Option<Value>,
}

#[derive(Deserialize)]
pub(crate) struct DeploymentBody {
    id: uuid::Uuid,
    #[serde(default)]
    parameter_openapi_schema: Option<Value>,
}

impl From<DeploymentBody> for Deployment {
    fn from(body: DeploymentBody) -> Self {
        let declared_parameters = body
            .parameter_openapi_schema
            .as_ref()
            .filter(|s| !s.is_null())
            .map(|schema| {
                schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|props| props.keys().cloned().collect())
                    .unwrap_or_default()
            });
        Self {
            id: body.id,
            declared_parameters,
            parameter_schema: body.parameter_openapi_schema,
        }
    }
}

/// Body of `POST /deployments/{id}/create_flow_run`.
#[derive(Debug, Serialize)]
pub struct FlowRunCreate<'a> {
    pub parameters: &'a Map<String, Value>,
    pub tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub idempotency_key: &'a str,
}

#[derive(Deserialize)]
pub(crate) struct FlowRunBody {
    pub(crate) id: uuid::Uuid,
}

/// Prefect's `{"detail": "..."}` error body.
#[derive(Deserialize)]
pub(crate) struct DetailBody {
    #[serde(default)]
    pub(crate) detail: Option<Value>,
}
