//! Edge validation: the mapped parameters against the deployment's own published parameter
//! schema, so what Prefect would refuse is refused here, before Prefect pays for it.
//! Messages name the rule, never the value.

use jsonschema::error::{TypeKind, ValidationErrorKind};

use crate::domain::{FieldError, Parameters};
use crate::error::GatewayError;
use crate::prefect::Deployment;

#[tracing::instrument(level = "debug", name = "stage.schema", skip_all)]
pub fn check_parameters(
    deployment: &Deployment,
    parameters: &Parameters,
) -> Result<(), GatewayError> {
    let Some(validator) = &deployment.validator else {
        return Ok(());
    };
    let errors: Vec<FieldError> = validator
        .iter_errors(parameters.value())
        .map(|e| {
            let path = e.instance_path().to_string();
            let (path, message) = match e.kind() {
                ValidationErrorKind::Required { property } => {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_owned);
                    (
                        format!("{path}/{name}"),
                        "is required by the deployment".to_owned(),
                    )
                }
                kind => (path, describe(kind)),
            };
            FieldError::new(path.trim_start_matches('/').replace('/', "."), message)
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(GatewayError::ParametersRejected(errors))
    }
}

fn describe(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::Type { kind } => match kind {
            TypeKind::Single(t) => format!("must be of type {t}"),
            TypeKind::Multiple(set) => format!("must be of type {set:?}").to_lowercase(),
        },
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} characters long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} characters long")
        }
        ValidationErrorKind::Pattern { .. } => "does not match the deployment's pattern".into(),
        ValidationErrorKind::Enum { .. } => "is not one of the deployment's allowed values".into(),
        ValidationErrorKind::Format { format } => format!("must be a valid {format}"),
        _ => "does not match the deployment's parameter schema".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn deployment(schema: Value) -> Deployment {
        let body = json!({"id": "21e9741f-0000-4000-8000-000000000001", "parameter_openapi_schema": schema});
        serde_json::from_value::<crate::prefect::DeploymentBodyForTests>(body)
            .unwrap()
            .into()
    }

    fn params(v: Value) -> Parameters {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn type_range_and_required_errors_name_the_parameter_not_the_value() {
        let d = deployment(json!({
            "type": "object",
            "properties": {"score": {"type": "integer", "maximum": 50}, "email": {"type": "string"}},
            "required": ["score", "email"]
        }));
        let Err(GatewayError::ParametersRejected(errors)) =
            check_parameters(&d, &params(json!({"score": 65})))
        else {
            panic!("expected a refusal")
        };
        assert!(
            errors.contains(&FieldError::new("score", "must be at most 50")),
            "{errors:?}"
        );
        assert!(
            errors.contains(&FieldError::new("email", "is required by the deployment")),
            "{errors:?}"
        );
        let Err(GatewayError::ParametersRejected(errors)) =
            check_parameters(&d, &params(json!({"score": "secret@x.org", "email": "a"})))
        else {
            panic!("expected a refusal")
        };
        assert_eq!(
            errors,
            vec![FieldError::new("score", "must be of type integer")]
        );
        assert!(check_parameters(&d, &params(json!({"score": 5, "email": "a"}))).is_ok());
    }

    #[test]
    fn prefects_definitions_refs_resolve_locally() {
        let d = deployment(json!({
            "type": "object",
            "definitions": {"Size": {"enum": ["S", "M"], "type": "string"}},
            "properties": {"size": {"$ref": "#/definitions/Size"}},
            "required": ["size"]
        }));
        assert!(check_parameters(&d, &params(json!({"size": "M"}))).is_ok());
        assert!(check_parameters(&d, &params(json!({"size": "XL"}))).is_err());
    }

    #[test]
    fn no_schema_means_no_edge_check() {
        let d = deployment(Value::Null);
        assert!(check_parameters(&d, &params(json!({"anything": 1}))).is_ok());
    }
}
