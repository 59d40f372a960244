//! Fields stage: apply the route's rules to every field and report every failure at once.

use std::borrow::Cow;

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::parse::InputFields;
use crate::domain::FieldError;
use crate::error::GatewayError;
use crate::route_table::{FieldRule, FieldSource, Presence, Route, UnknownFields};

/// Typed field values, one slot per field of the route that validated them, in the route's
/// order (`None`: absent, no default). A value already as typed is borrowed from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedFields<'i>(Vec<Option<Cow<'i, Value>>>);

impl ValidatedFields<'_> {
    /// Each field of `route` (the route these were validated for) with its value.
    pub fn of<'a>(&'a self, route: &'a Route) -> impl Iterator<Item = (&'a FieldRule, &'a Value)> {
        route
            .fields()
            .iter()
            .zip(&self.0)
            .filter_map(|(rule, value)| value.as_deref().map(|v| (rule, v)))
    }
}

/// Adds `error`, making room for `room` of them at the first.
fn push_error(errors: &mut Vec<FieldError>, room: usize, error: FieldError) {
    if errors.capacity() == 0 {
        errors.reserve_exact(room);
    }
    errors.push(error);
}

/// A field's raw value, found where its source says (borrowed from the body when it is
/// there). `None`: not sent.
fn raw_value<'i>(
    rule: &FieldRule,
    input: &'i InputFields<'_>,
    headers: &HeaderMap,
) -> Result<Option<Cow<'i, Value>>, String> {
    Ok(match rule.source() {
        FieldSource::Key(key) => input.get(key).map(Cow::Borrowed),
        FieldSource::Path(path) => path.lookup(input).map(Cow::Borrowed),
        FieldSource::Body => Some(Cow::Owned(Value::Object(input.to_object()))),
        FieldSource::Header(name) => match headers.get(name) {
            None => None,
            Some(v) => Some(Cow::Owned(Value::String(
                v.to_str()
                    .map_err(|_| "must be visible ASCII text".to_owned())?
                    .to_owned(),
            ))),
        },
    })
}

#[tracing::instrument(level = "debug", name = "stage.fields", skip_all, fields(route = %route.name()))]
pub fn validate_fields<'i>(
    route: &Route,
    input: &'i InputFields<'_>,
    headers: &HeaderMap,
) -> Result<ValidatedFields<'i>, GatewayError> {
    // Room for every field's error at the first one: a form missing most fields fails on a
    // dozen, and a growing list would be copied three times on the way.
    let room = route.fields().len();
    let mut errors = Vec::new();
    let mut typed = Vec::with_capacity(route.fields().len());
    // Top-level keys read by a field of their own name (fields are named uniquely).
    let mut keys_read = 0;
    for rule in route.fields() {
        let label = || rule.source().label();
        let raw = match raw_value(rule, input, headers) {
            Ok(raw) => {
                if raw.is_some() && matches!(rule.source(), FieldSource::Key(_)) {
                    keys_read += 1;
                }
                raw
            }
            Err(message) => {
                push_error(&mut errors, room, FieldError::new(label(), message));
                typed.push(None);
                continue;
            }
        };
        let absent = match raw.as_deref() {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        let value = match (absent, rule.presence()) {
            (true, Presence::Required) => {
                push_error(&mut errors, room, FieldError::new(label(), "is required"));
                None
            }
            (true, Presence::Optional(default)) => default.clone().map(Cow::Owned),
            (false, _) => {
                let checked = match raw {
                    Some(Cow::Borrowed(v)) => Some(rule.check_borrowed(v)),
                    Some(Cow::Owned(v)) => Some(rule.check(&v).map(Cow::Owned)),
                    None => None,
                };
                match checked {
                    Some(Ok(value)) => Some(value),
                    Some(Err(message)) => {
                        push_error(&mut errors, room, FieldError::new(label(), message));
                        None
                    }
                    None => None,
                }
            }
        };
        typed.push(value);
    }
    // When every key sent was read by its field, none is unknown: no scan.
    if route.unknown_fields() == UnknownFields::Reject && keys_read < input.len() {
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
/// A scan of the route's few fields per key: no set built per request.
fn unknown_keys<'i>(route: &Route, input: &'i InputFields<'_>) -> Vec<&'i str> {
    let claims = |rule: &FieldRule, key: &str| match rule.source() {
        FieldSource::Key(k) => **k == *key,
        FieldSource::Path(p) => p.first_key() == key,
        FieldSource::Body => true,
        FieldSource::Header(_) => false,
    };
    input
        .keys()
        .filter(|key| !route.fields().iter().any(|rule| claims(rule, key)))
        .collect()
}
