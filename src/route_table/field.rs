//! One input field's rule, and the check that turns a raw value into a typed one.
//! Website forms send every value as a string, so numbers and booleans are read from strings too.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use actix_web::http::header::HeaderName;
use regex::Regex;
use serde_json::{Number, Value};

use super::email::is_valid_email;
use crate::domain::ShortText;
use crate::pipeline::path::BodyPath;
use validator::{ValidateLength, ValidateRange, ValidateUrl};

/// The type of an input field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Integer,
    Number,
    Boolean,
    Email,
    Url,
    Enum,
    Uuid,
    /// A JSON object passed whole: the body itself, or the object at a path.
    Object,
}

impl FieldKind {
    pub const NAMES: [&'static str; 9] = [
        "string", "integer", "number", "boolean", "email", "url", "enum", "uuid", "object",
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "email" => Self::Email,
            "url" => Self::Url,
            "enum" => Self::Enum,
            "uuid" => Self::Uuid,
            "object" => Self::Object,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Email => "email",
            Self::Url => "url",
            Self::Enum => "enum",
            Self::Uuid => "uuid",
            Self::Object => "object",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Number)
    }

    pub fn is_textual(self) -> bool {
        matches!(self, Self::String | Self::Email | Self::Url | Self::Enum)
    }
}

/// Whether a field must be sent, and what an absent optional field becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Presence {
    Required,
    /// Optional; the value (if any) is used when the field is absent, null or an empty string.
    Optional(Option<Value>),
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    /// The top-level key named like the field (a JSON key or a form field), as sent. Shared:
    /// it names the field in every 422 without an allocation.
    Key(Arc<str>),
    /// A path into the body, e.g. `repository.full_name` or `line_items[0].sku`.
    Path(BodyPath),
    /// A request header (name kept as configured, looked up case-insensitively).
    Header(HeaderName),
    /// The whole parsed body (an `object` field without a path).
    Body,
}

impl FieldSource {
    /// How errors name the field: its key, its path, or `header <Name>`.
    pub fn label(&self) -> ShortText {
        match self {
            Self::Key(k) => ShortText::from(&**k),
            Self::Path(p) => p.to_string().into(),
            Self::Header(h) => format!("header {h}").into(),
            Self::Body => ShortText::fixed("body"),
        }
    }
}

/// Largest serialized size of an `object` field's value unless `max_bytes` says otherwise.
pub const DEFAULT_OBJECT_MAX_BYTES: usize = 64 * 1024;

/// What a sender is told about a bad value: fixed text borrowed, bounds formatted once.
pub type Message = ShortText;

/// A checked field rule, built only by `route_table::compile`.
#[derive(Debug, Clone)]
pub struct FieldRule {
    pub(crate) name: String,
    pub(crate) param: String,
    pub(crate) source: FieldSource,
    /// Cap on the serialized size of an `object` value.
    pub(crate) max_bytes: usize,
    pub(crate) kind: FieldKind,
    pub(crate) presence: Presence,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
    pub(crate) min_length: Option<u64>,
    pub(crate) max_length: Option<u64>,
    pub(crate) pattern: Option<Regex>,
    pub(crate) values: Vec<String>,
    /// The messages made from the rule's bounds and values, written on first use.
    pub(crate) messages: RuleMessages,
}

/// A rule's messages that name its bounds or values: formatted once (a float's formatting on
/// every failure was a tenth of a rejected form's validation), then copied.
#[derive(Debug, Clone, Default)]
pub struct RuleMessages {
    range: OnceLock<Box<str>>,
    length: OnceLock<Box<str>>,
    values: OnceLock<Box<str>>,
}

/// The message kept in `cell`, made by `make` the first time.
fn kept(cell: &OnceLock<Box<str>>, make: impl FnOnce() -> String) -> Message {
    ShortText::from(&**cell.get_or_init(|| make().into()))
}

impl FieldRule {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The flow parameter this field becomes.
    pub fn param(&self) -> &str {
        &self.param
    }

    pub fn kind(&self) -> FieldKind {
        self.kind
    }

    pub fn source(&self) -> &FieldSource {
        &self.source
    }

    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Checks one present, non-empty value and returns it typed. The error is the message shown
    /// to the sender; it never repeats the value.
    pub fn check(&self, raw: &Value) -> Result<Value, Message> {
        self.check_borrowed(raw).map(Cow::into_owned)
    }

    /// [`check`](Self::check), borrowing the value when it is already as typed (a text kept
    /// as sent, an object): a request that fails on another field copies nothing.
    pub fn check_borrowed<'v>(&self, raw: &'v Value) -> Result<Cow<'v, Value>, Message> {
        let value = match self.kind {
            FieldKind::String => {
                self.text(raw)?;
                Cow::Borrowed(raw)
            }
            FieldKind::Integer => Cow::Owned(Value::Number(Number::from(integer(raw)?))),
            FieldKind::Number => Cow::Owned(Value::Number(number(raw)?)),
            FieldKind::Boolean => Cow::Owned(Value::Bool(boolean(raw)?)),
            FieldKind::Email => {
                let s = self.text(raw)?.trim();
                if !is_valid_email(s) {
                    return Err(ShortText::fixed("must be a valid email address"));
                }
                trimmed(raw, s)
            }
            FieldKind::Url => {
                let s = self.text(raw)?.trim();
                if !s.validate_url() {
                    return Err(ShortText::fixed("must be a valid URL"));
                }
                trimmed(raw, s)
            }
            FieldKind::Enum => {
                let s = self.text(raw)?;
                if !self.values.iter().any(|v| v == s) {
                    return Err(kept(&self.messages.values, || {
                        format!("must be one of: {}", self.values.join(", "))
                    }));
                }
                Cow::Borrowed(raw)
            }
            FieldKind::Uuid => {
                let s = self.text(raw)?.trim();
                let id =
                    uuid::Uuid::parse_str(s).map_err(|_| ShortText::fixed("must be a UUID"))?;
                Cow::Owned(Value::String(id.hyphenated().to_string()))
            }
            FieldKind::Object => {
                if !raw.is_object() {
                    return Err(ShortText::fixed("must be an object"));
                }
                if serialized_len(raw) > self.max_bytes {
                    return Err(format!("must be at most {} bytes as JSON", self.max_bytes).into());
                }
                Cow::Borrowed(raw)
            }
        };
        self.check_bounds(&value)?;
        Ok(value)
    }

    fn text<'v>(&self, raw: &'v Value) -> Result<&'v str, Message> {
        raw.as_str().ok_or(ShortText::fixed("must be a string"))
    }

    fn check_bounds(&self, value: &Value) -> Result<(), Message> {
        if let Some(n) = value.as_f64() {
            if !n.validate_range(self.min, self.max, None, None) {
                return Err(kept(&self.messages.range, || {
                    range_message(self.min, self.max)
                }));
            }
        }
        if let Some(s) = value.as_str() {
            if !s.validate_length(self.min_length, self.max_length, None) {
                return Err(kept(&self.messages.length, || {
                    length_message(self.min_length, self.max_length)
                }));
            }
            if let Some(pattern) = &self.pattern {
                if !pattern.is_match(s) {
                    return Err(ShortText::fixed("does not match the required pattern"));
                }
            }
        }
        Ok(())
    }
}

/// `raw` (a string) as its trimmed text `s`: borrowed when trimming removed nothing.
fn trimmed<'v>(raw: &'v Value, s: &str) -> Cow<'v, Value> {
    match raw.as_str() {
        Some(text) if text.len() == s.len() => Cow::Borrowed(raw),
        _ => Cow::Owned(Value::String(s.to_owned())),
    }
}

/// Bytes `value` takes as compact JSON, counted without building the text.
fn serialized_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

fn integer(raw: &Value) -> Result<i64, Message> {
    const MSG: &str = "must be an integer";
    match raw {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or(ShortText::fixed(MSG)),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| ShortText::fixed(MSG)),
        _ => Err(ShortText::fixed(MSG)),
    }
}

fn number(raw: &Value) -> Result<Number, Message> {
    const MSG: &str = "must be a number";
    match raw {
        Value::Number(n) => Ok(n.clone()),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                return Ok(Number::from(i));
            }
            s.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or(ShortText::fixed(MSG))
        }
        _ => Err(ShortText::fixed(MSG)),
    }
}

fn boolean(raw: &Value) -> Result<bool, Message> {
    const MSG: &str = "must be true or false";
    match raw {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(ShortText::fixed(MSG)),
        },
        _ => Err(ShortText::fixed(MSG)),
    }
}

fn range_message(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("must be between {lo} and {hi}"),
        (Some(lo), None) => format!("must be at least {lo}"),
        (None, Some(hi)) => format!("must be at most {hi}"),
        (None, None) => "is out of range".into(),
    }
}

fn length_message(min: Option<u64>, max: Option<u64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("must be between {lo} and {hi} characters long"),
        (Some(lo), None) => format!("must be at least {lo} characters long"),
        (None, Some(hi)) => format!("must be at most {hi} characters long"),
        (None, None) => "has an invalid length".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(kind: FieldKind) -> FieldRule {
        FieldRule {
            name: "f".into(),
            param: "f".into(),
            source: FieldSource::Key("f".into()),
            max_bytes: DEFAULT_OBJECT_MAX_BYTES,
            kind,
            presence: Presence::Required,
            min: None,
            max: None,
            min_length: None,
            max_length: None,
            pattern: None,
            values: vec![],
            messages: RuleMessages::default(),
        }
    }

    #[test]
    fn integers_accept_json_numbers_and_form_strings() {
        let r = FieldRule {
            min: Some(0.0),
            max: Some(100.0),
            ..rule(FieldKind::Integer)
        };
        assert_eq!(r.check(&json!(62)), Ok(json!(62)));
        assert_eq!(r.check(&json!("62")), Ok(json!(62)));
        assert_eq!(r.check(&json!(" 7 ")), Ok(json!(7)));
        assert_eq!(r.check(&json!(62.0)), Ok(json!(62)));
        assert_eq!(r.check(&json!(62.5)), Err("must be an integer".into()));
        assert_eq!(r.check(&json!("abc")), Err("must be an integer".into()));
        assert_eq!(r.check(&json!(true)), Err("must be an integer".into()));
        assert_eq!(
            r.check(&json!(101)),
            Err("must be between 0 and 100".into())
        );
        assert_eq!(
            r.check(&json!("-1")),
            Err("must be between 0 and 100".into())
        );
    }

    #[test]
    fn numbers_keep_integers_integral() {
        let r = rule(FieldKind::Number);
        assert_eq!(r.check(&json!("12")), Ok(json!(12)));
        assert_eq!(r.check(&json!("12.5")), Ok(json!(12.5)));
        assert_eq!(r.check(&json!("NaN")), Err("must be a number".into()));
    }

    #[test]
    fn booleans_read_form_words() {
        let r = rule(FieldKind::Boolean);
        assert_eq!(r.check(&json!("on")), Ok(json!(true)));
        assert_eq!(r.check(&json!("FALSE")), Ok(json!(false)));
        assert_eq!(r.check(&json!(false)), Ok(json!(false)));
        assert!(r.check(&json!("maybe")).is_err());
    }

    #[test]
    fn emails_urls_and_uuids_use_their_validators() {
        assert_eq!(
            rule(FieldKind::Email).check(&json!("jo@example.com")),
            Ok(json!("jo@example.com"))
        );
        assert!(rule(FieldKind::Email)
            .check(&json!("not-an-email"))
            .is_err());
        assert!(rule(FieldKind::Url)
            .check(&json!("https://example.com/x"))
            .is_ok());
        assert!(rule(FieldKind::Url).check(&json!("example")).is_err());
        assert_eq!(
            rule(FieldKind::Uuid).check(&json!("67E55044-10B1-426F-9247-BB680E5FE0C8")),
            Ok(json!("67e55044-10b1-426f-9247-bb680e5fe0c8"))
        );
        assert!(rule(FieldKind::Uuid).check(&json!("nope")).is_err());
    }

    #[test]
    fn strings_check_length_and_pattern() {
        let r = FieldRule {
            min_length: Some(2),
            max_length: Some(4),
            pattern: Some(Regex::new("^(?:[a-z]+)$").unwrap()),
            ..rule(FieldKind::String)
        };
        assert_eq!(r.check(&json!("abc")), Ok(json!("abc")));
        assert_eq!(
            r.check(&json!("a")),
            Err("must be between 2 and 4 characters long".into())
        );
        assert_eq!(
            r.check(&json!("ABC")),
            Err("does not match the required pattern".into())
        );
        assert_eq!(r.check(&json!(12)), Err("must be a string".into()));
    }

    #[test]
    fn objects_pass_whole_up_to_their_size_cap() {
        let r = FieldRule {
            max_bytes: 20,
            ..rule(FieldKind::Object)
        };
        assert_eq!(r.check(&json!({"a": [1, 2]})), Ok(json!({"a": [1, 2]})));
        assert_eq!(r.check(&json!([1])), Err("must be an object".into()));
        assert_eq!(
            r.check(&json!({"a": "x".repeat(20)})),
            Err("must be at most 20 bytes as JSON".into())
        );
    }

    #[test]
    fn enums_list_their_values() {
        let r = FieldRule {
            values: vec!["GPS".into(), "Money".into()],
            messages: RuleMessages::default(),
            ..rule(FieldKind::Enum)
        };
        assert_eq!(r.check(&json!("GPS")), Ok(json!("GPS")));
        assert_eq!(
            r.check(&json!("gps")),
            Err("must be one of: GPS, Money".into())
        );
    }
}
