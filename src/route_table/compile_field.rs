//! One field's settings → a checked `FieldRule`: its type, bounds, source (key, body path,
//! header or the whole body) and default, with every problem at its config path.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::header::HeaderName;
use regex::Regex;

use super::compile::Issues;
use super::field::{FieldKind, FieldRule, FieldSource, Presence, DEFAULT_OBJECT_MAX_BYTES};
use crate::configuration::FieldSettings;
use crate::pipeline::path::BodyPath;

/// Largest `max_bytes` an object field may set.
const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// Two fields (or a field and a constant) must not become the same flow parameter.
pub(super) fn check_parameter_names(
    fields: &[FieldRule],
    constants: &BTreeMap<String, serde_json::Value>,
    path: &str,
    issues: &mut Issues,
) {
    let mut seen = BTreeSet::new();
    for f in fields {
        if !seen.insert(f.param.as_str()) {
            issues.push(
                format!("{path}.fields.{}.param", f.name),
                format!("parameter \"{}\" is already set by another field", f.param),
            );
        }
    }
    for key in constants.keys() {
        if !is_parameter_name(key) {
            issues.push(
                format!("{path}.constants.{key}"),
                "is not a valid parameter name",
            );
        } else if seen.contains(key.as_str()) {
            issues.push(
                format!("{path}.constants.{key}"),
                "is also set by a field; a parameter has one source",
            );
        }
    }
}

/// Flow parameters are Python identifiers.
pub(super) fn is_parameter_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn compile_field(
    name: &str,
    f: &FieldSettings,
    path: &str,
    issues: &mut Issues,
) -> Option<FieldRule> {
    let before = issues.len();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        issues.push(path, "field names must be 1 to 128 printable characters");
    }
    let Some(kind) = FieldKind::parse(&f.kind) else {
        issues.push(
            format!("{path}.type"),
            format!(
                "unknown type \"{}\"; expected one of: {}",
                f.kind,
                FieldKind::NAMES.join(", ")
            ),
        );
        return None;
    };
    let param = f.param.clone().unwrap_or_else(|| name.to_owned());
    if !is_parameter_name(&param) {
        let at = if f.param.is_some() {
            format!("{path}.param")
        } else {
            path.to_owned()
        };
        issues.push(
            at,
            format!("\"{param}\" is not a valid flow parameter name; set `param`"),
        );
    }
    check_bounds(kind, f, path, issues);
    let source = field_source(name, kind, f, path, issues);
    let max_bytes = match (f.max_bytes, kind) {
        (Some(n), FieldKind::Object) if n == 0 || n > MAX_OBJECT_BYTES => {
            issues.push(
                format!("{path}.max_bytes"),
                format!("must be between 1 and {MAX_OBJECT_BYTES}"),
            );
            DEFAULT_OBJECT_MAX_BYTES
        }
        (Some(n), FieldKind::Object) => n,
        (Some(_), _) => {
            issues.push(format!("{path}.max_bytes"), "applies to object fields only");
            DEFAULT_OBJECT_MAX_BYTES
        }
        (None, _) => DEFAULT_OBJECT_MAX_BYTES,
    };
    let pattern = f.pattern.as_ref().and_then(|p| {
        if kind != FieldKind::String {
            issues.push(format!("{path}.pattern"), "applies to string fields only");
            return None;
        }
        Regex::new(&format!("^(?:{p})$"))
            .map_err(|e| {
                issues.push(
                    format!("{path}.pattern"),
                    format!("invalid regular expression: {e}"),
                )
            })
            .ok()
    });
    let values = match (&f.values, kind) {
        (Some(v), FieldKind::Enum) if v.is_empty() => {
            issues.push(format!("{path}.values"), "must list at least one value");
            vec![]
        }
        (Some(v), FieldKind::Enum) => v.clone(),
        (None, FieldKind::Enum) => {
            issues.push(
                format!("{path}.values"),
                "an enum field needs its list of values",
            );
            vec![]
        }
        (Some(_), _) => {
            issues.push(format!("{path}.values"), "applies to enum fields only");
            vec![]
        }
        (None, _) => vec![],
    };
    let mut rule = FieldRule {
        name: name.to_owned(),
        param,
        source: source?,
        max_bytes,
        kind,
        presence: Presence::Required,
        min: f.min,
        max: f.max,
        min_length: f.min_length,
        max_length: f.max_length,
        pattern,
        values,
        messages: Default::default(),
    };
    rule.presence = match (f.required, &f.default) {
        (Some(true), Some(_)) => {
            issues.push(
                format!("{path}.default"),
                "a required field cannot have a default",
            );
            Presence::Required
        }
        (_, Some(default)) => match rule.check(default) {
            Ok(typed) => Presence::Optional(Some(typed)),
            Err(msg) => {
                issues.push(format!("{path}.default"), format!("the default {msg}"));
                Presence::Required
            }
        },
        (Some(false), None) => Presence::Optional(None),
        (Some(true) | None, None) => Presence::Required,
    };
    (issues.len() == before).then_some(rule)
}

/// `path`, `header`, or neither (the key named like the field; the whole body for an object).
fn field_source(
    name: &str,
    kind: FieldKind,
    f: &FieldSettings,
    path: &str,
    issues: &mut Issues,
) -> Option<FieldSource> {
    match (&f.path, &f.header) {
        (Some(_), Some(_)) => {
            issues.push(path, "set `path` or `header`, not both");
            None
        }
        (Some(raw), None) => BodyPath::parse(raw)
            .map(FieldSource::Path)
            .map_err(|e| issues.push(format!("{path}.path"), e.to_string()))
            .ok(),
        (None, Some(raw)) => {
            if kind == FieldKind::Object {
                issues.push(
                    format!("{path}.header"),
                    "an object field cannot come from a header",
                );
                return None;
            }
            HeaderName::from_bytes(raw.as_bytes())
                .map(FieldSource::Header)
                .map_err(|_| issues.push(format!("{path}.header"), "is not a valid header name"))
                .ok()
        }
        (None, None) if kind == FieldKind::Object => Some(FieldSource::Body),
        (None, None) => Some(FieldSource::Key(name.into())),
    }
}

fn check_bounds(kind: FieldKind, f: &FieldSettings, path: &str, issues: &mut Issues) {
    for (key, value) in [("min", f.min), ("max", f.max)] {
        let Some(v) = value else { continue };
        if !kind.is_numeric() {
            issues.push(
                format!("{path}.{key}"),
                "applies to integer and number fields only",
            );
        } else if !v.is_finite() || (kind == FieldKind::Integer && v.fract() != 0.0) {
            issues.push(
                format!("{path}.{key}"),
                format!("must be a finite {}", kind.name()),
            );
        }
    }
    if let (Some(lo), Some(hi)) = (f.min, f.max) {
        if lo > hi {
            issues.push(format!("{path}.min"), "is greater than max");
        }
    }
    for (key, value) in [("min_length", f.min_length), ("max_length", f.max_length)] {
        if value.is_some() && !kind.is_textual() {
            issues.push(
                format!("{path}.{key}"),
                "applies to string, email, url and enum fields only",
            );
        }
    }
    if let (Some(lo), Some(hi)) = (f.min_length, f.max_length) {
        if lo > hi {
            issues.push(format!("{path}.min_length"), "is greater than max_length");
        }
    }
}
