//! Prefect's request and response bodies, as far as flowgate reads or writes them.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Parameters;

/// A deployment as resolved by name.
#[derive(Clone)]
pub struct Deployment {
    pub id: uuid::Uuid,
    /// Parameter names declared in `parameter_openapi_schema.properties`; `None` when the
    /// deployment publishes no schema at all.
    pub declared_parameters: Option<BTreeSet<String>>,
    /// The deployment's `parameter_openapi_schema`, as published.
    pub parameter_schema: Option<Value>,
    /// That schema compiled once, for edge validation; `None` without a usable schema.
    pub validator: Option<Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .field("declared_parameters", &self.declared_parameters)
            .field("validates", &self.validator.is_some())
            .finish()
    }
}

/// Prefect's deployment body, as far as flowgate reads it.
#[derive(Deserialize)]
pub struct DeploymentBody {
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
        // No remote $ref is ever fetched (jsonschema built without resolvers): a schema that
        // needs one does not compile, and Prefect stays the judge for that deployment.
        let validator = body
            .parameter_openapi_schema
            .as_ref()
            .filter(|s| s.is_object())
            .and_then(|schema| match jsonschema::validator_for(schema) {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    tracing::warn!(deployment_id = %body.id, error = %e, "parameter schema does not compile; not validated at the edge");
                    None
                }
            });
        Self {
            id: body.id,
            declared_parameters,
            parameter_schema: body.parameter_openapi_schema,
            validator,
        }
    }
}

/// Body of `POST /deployments/{id}/create_flow_run`.
#[derive(Debug, Serialize)]
pub struct FlowRunCreate<'a> {
    pub parameters: &'a Parameters,
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
