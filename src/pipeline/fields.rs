//! Fields stage: apply the route's rules to every field and report every failure at once.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::parse::InputFields;
use crate::domain::FieldError;
use crate::error::GatewayError;
use crate::route_table::{FieldRule, FieldSource, Presence, Route, UnknownFields};

/// Typed field values by field name; only fields the route declares.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedFields(BTreeMap<String, Value>);

impl ValidatedFields {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// A field's raw value, found where its source says. `None`: not sent.
fn raw_value(
    rule: &FieldRule,
    input: &InputFields,
    headers: &HeaderMap,
) -> Result<Option<Value>, String> {
    Ok(match rule.source() {
        FieldSource::Key(key) => input.get(key).cloned(),
        FieldSource::Path(path) => path.lookup(input).cloned(),
        FieldSource::Body => Some(Value::Object(input.clone())),
        FieldSource::Header(name) => match headers.get(name) {
            None => None,
            Some(v) => Some(Value::String(
                v.to_str()
                    .map_err(|_| "must be visible ASCII text".to_owned())?
                    .to_owned(),
            )),
        },
    })
}

#[tracing::instrument(level = "debug", name = "stage.fields", skip_all, fields(route = %route.name()))]
pub fn validate_fields(
    route: &Route,
    input: &InputFields,
    headers: &HeaderMap,
) -> Result<ValidatedFields, GatewayError> {
    let mut errors = Vec::new();
    let mut typed = BTreeMap::new();
    for rule in route.fields() {
        let label = || rule.source().label();
        let raw = match raw_value(rule, input, headers) {
            Ok(raw) => raw,
            Err(message) => {
                errors.push(FieldError::new(label(), message));
                continue;
            }
        };
        let absent = match &raw {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        match (absent, rule.presence()) {
            (true, Presence::Required) => errors.push(FieldError::new(label(), "is required")),
            (true, Presence::Optional(Some(default))) => {
                typed.insert(rule.name().to_owned(), default.clone());
            }
            (true, Presence::Optional(None)) => {}
            (false, _) => match raw.as_ref().map(|v| rule.check(v)) {
                Some(Ok(value)) => {
                    typed.insert(rule.name().to_owned(), value);
                }
                Some(Err(message)) => errors.push(FieldError::new(label(), message)),
                None => {}
            },
        }
    }
    if route.unknown_fields() == UnknownFields::Reject {
        errors.extend(unknown_keys(route, input).into_iter().map(|k| {
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

/// Top-level keys no field reads: a path claims its first key, the whole body claims all.
fn unknown_keys<'i>(route: &Route, input: &'i InputFields) -> Vec<&'i String> {
    let mut claimed = BTreeSet::new();
    let mut all = false;
    for rule in route.fields() {
        match rule.source() {
            FieldSource::Key(k) => {
                claimed.insert(k.as_str());
            }
            FieldSource::Path(p) => {
                claimed.insert(p.first_key());
            }
            FieldSource::Body => all = true,
            FieldSource::Header(_) => {}
        }
    }
    if all {
        return Vec::new();
    }
    input
        .keys()
        .filter(|k| !claimed.contains(k.as_str()))
        .collect()
}
