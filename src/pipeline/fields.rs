//! Fields stage: apply the route's rules to every field and report every failure at once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::parse::InputFields;
use crate::domain::FieldError;
use crate::error::GatewayError;
use crate::route_table::{Presence, Route, UnknownFields};

/// Typed field values by field name; only fields the route declares.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedFields(BTreeMap<String, Value>);

impl ValidatedFields {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

#[tracing::instrument(level = "debug", name = "stage.fields", skip_all, fields(route = %route.name()))]
pub fn validate_fields(
    route: &Route,
    mut input: InputFields,
) -> Result<ValidatedFields, GatewayError> {
    let mut errors = Vec::new();
    let mut typed = BTreeMap::new();
    for rule in route.fields() {
        let raw = input.remove(rule.name());
        let absent = match &raw {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        match (absent, rule.presence()) {
            (true, Presence::Required) => errors.push(FieldError::new(rule.name(), "is required")),
            (true, Presence::Optional(Some(default))) => {
                typed.insert(rule.name().to_owned(), default.clone());
            }
            (true, Presence::Optional(None)) => {}
            (false, _) => match raw.as_ref().map(|v| rule.check(v)) {
                Some(Ok(value)) => {
                    typed.insert(rule.name().to_owned(), value);
                }
                Some(Err(message)) => errors.push(FieldError::new(rule.name(), message)),
                None => {}
            },
        }
    }
    if route.unknown_fields() == UnknownFields::Reject {
        errors.extend(input.keys().map(|k| {
            FieldError::new(
                k.chars().take(128).collect::<String>(),
                "is not a field of this route",
            )
        }));
    }
    if errors.is_empty() {
        Ok(ValidatedFields(typed))
    } else {
        Err(GatewayError::ValidationFailed(errors))
    }
}
