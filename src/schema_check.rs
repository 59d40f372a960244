//! Compares a route's field rules with its deployment's published parameter schema, for
//! `flowgate check-config` when Prefect is reachable: a required parameter nothing provides,
//! an optional field for a required parameter, a type that cannot match.

use crate::prefect::Patience;
use serde_json::Value;

use crate::route_table::{ConfigIssue, FieldKind, Presence, Route};

/// What `check-config` reports for one route: problems (exit 1) and notes.
#[derive(Debug, Default)]
pub struct SchemaReport {
    pub issues: Vec<ConfigIssue>,
    pub notes: Vec<String>,
}

pub fn compare(route: &Route, schema: &Value) -> SchemaReport {
    compare_at(route, schema, &format!("routes.{}", route.name()))
}

/// `compare` for a route or one of its targets, whose issues start with `path`.
pub fn compare_at(route: &Route, schema: &Value, path: &str) -> SchemaReport {
    let mut report = SchemaReport::default();
    let path = path.to_owned();
    let properties = schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for name in &required {
        let field = route.fields().iter().find(|f| f.param() == *name);
        match field {
            None if !route.constants().contains_key(*name) => report.issues.push(ConfigIssue {
                path: path.clone(),
                message: format!(
                    "deployment {} requires parameter \"{name}\", which no field or constant provides",
                    route.deployment()
                ),
            }),
            Some(f) if *f.presence() == Presence::Optional(None) => report.issues.push(ConfigIssue {
                path: format!("{path}.fields.{}.required", f.name()),
                message: format!("optional here, but deployment {} requires \"{name}\"", route.deployment()),
            }),
            _ => {}
        }
    }
    for field in route.fields() {
        let Some(property) = properties.and_then(|p| p.get(field.param())) else {
            report.notes.push(format!(
                "{path}.fields.{}: \"{}\" is not a parameter of {}; it will not be sent",
                field.name(),
                field.param(),
                route.deployment()
            ));
            continue;
        };
        let declared = declared_types(property);
        let produced = produced_type(field.kind());
        let fits = declared.is_empty()
            || declared.contains(&produced)
            || (produced == "integer" && declared.contains(&"number"));
        if !fits {
            report.issues.push(ConfigIssue {
                path: format!("{path}.fields.{}.type", field.name()),
                message: format!(
                    "\"{}\" sends {} {produced}, but {} declares \"{}\" as {}",
                    field.kind().name(),
                    if produced == "integer" { "an" } else { "a" },
                    route.deployment(),
                    field.param(),
                    declared.join(" or ")
                ),
            });
        }
    }
    report
}

/// JSON types a property allows: `type` (one or several) or the types of `anyOf`/`oneOf` members.
/// Empty when the schema does not say (e.g. a `$ref`), so nothing is claimed.
fn declared_types(property: &Value) -> Vec<&str> {
    let direct = |p: &'_ Value| -> Vec<String> {
        match p.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            _ => vec![],
        }
    };
    let mut types = direct(property);
    for key in ["anyOf", "oneOf"] {
        if let Some(members) = property.get(key).and_then(Value::as_array) {
            if members.iter().any(|m| direct(m).is_empty()) {
                return vec![];
            }
            types.extend(members.iter().flat_map(direct));
        }
    }
    let known = [
        "string", "integer", "number", "boolean", "null", "array", "object",
    ];
    known
        .into_iter()
        .filter(|k| types.iter().any(|t| t == k))
        .collect()
}

fn produced_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Integer => "integer",
        FieldKind::Number => "number",
        FieldKind::Boolean => "boolean",
        FieldKind::String
        | FieldKind::Email
        | FieldKind::Url
        | FieldKind::Enum
        | FieldKind::Uuid => "string",
        FieldKind::Object => "object",
    }
}

/// Compares every route with its deployment in Prefect. `Err` when Prefect cannot be reached
/// at all (nothing compared); per-route lookup failures are reported as issues.
pub async fn check_against_prefect(
    config: &crate::configuration::Configuration,
) -> Result<Vec<SchemaReport>, crate::prefect::PrefectError> {
    use crate::prefect::{Deadline, PrefectClient, PrefectError};
    use std::time::Duration;

    let mut settings = config.settings.prefect.clone();
    settings.retry_attempts = 1;
    settings.timeout_ms = settings.timeout_ms.min(5_000);
    let client = PrefectClient::new(
        config.prefect_url.clone(),
        &config.prefect_auth,
        &settings,
        &config.prefect_roots,
    )
    .map_err(|e| PrefectError::Connect(e.into()))?;
    client.health(Duration::from_secs(3)).await?;
    let mut reports = Vec::new();
    let mut mappings = Vec::new();
    for route in config.routes.iter() {
        if route.targets().is_empty() {
            mappings.push((format!("routes.{}", route.name()), route.clone()));
        }
        for (i, target) in route.targets().iter().enumerate() {
            mappings.push((
                format!("routes.{}.targets[{i}]", route.name()),
                target.route().clone(),
            ));
        }
    }
    for (path, route) in &mappings {
        let deadline = Deadline::after(Duration::from_secs(5));
        let report = match client
            .read_deployment(route.deployment(), deadline, Patience::UntilDeadline)
            .await
        {
            Ok(deployment) => match &deployment.parameter_schema {
                Some(schema) if schema.is_object() => compare_at(route, schema, path),
                _ => SchemaReport {
                    notes: vec![format!(
                        "{path}: {} publishes no parameter schema",
                        route.deployment()
                    )],
                    ..SchemaReport::default()
                },
            },
            Err(e) => SchemaReport {
                issues: vec![ConfigIssue {
                    path: format!("{path}.deployment"),
                    message: match e {
                        PrefectError::NotFound => {
                            format!("{} does not exist in Prefect", route.deployment())
                        }
                        other => {
                            format!("cannot read {} from Prefect: {other}", route.deployment())
                        }
                    },
                }],
                ..SchemaReport::default()
            },
        };
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(fields_toml: &str) -> std::sync::Arc<Route> {
        let text = format!(
            "[routes.r]\ndeployment = \"f/d\"\nauth = \"none\"\n[routes.r.fields]\n{fields_toml}"
        );
        crate::pipeline::test_route(&text)
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "email": {"type": "string"},
                "score": {"type": "integer"},
                "ratio": {"anyOf": [{"type": "number"}, {"type": "null"}]}
            },
            "required": ["email", "score"]
        })
    }

    #[test]
    fn matching_rules_report_nothing() {
        let r = route("email = { type = \"email\" }\nscore = { type = \"integer\" }\nratio = { type = \"integer\", required = false }");
        let report = compare(&r, &schema());
        assert!(report.issues.is_empty(), "{:?}", report.issues);
    }

    #[test]
    fn missing_optional_and_mistyped_parameters_are_reported() {
        let r = route("email = { type = \"email\", required = false }\nscore2 = { type = \"integer\" }\nratio = { type = \"boolean\" }");
        let report = compare(&r, &schema());
        let text: Vec<String> = report.issues.iter().map(ToString::to_string).collect();
        assert!(text.contains(&"routes.r.fields.email.required: optional here, but deployment f/d requires \"email\"".to_owned()), "{text:?}");
        assert!(text.contains(&"routes.r: deployment f/d requires parameter \"score\", which no field or constant provides".to_owned()), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("routes.r.fields.ratio.type: \"boolean\" sends a boolean, but f/d declares \"ratio\" as number or null")), "{text:?}");
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("\"score2\" is not a parameter")),
            "{:?}",
            report.notes
        );
    }
}
