//! Parse stage: JSON object or urlencoded form → raw input fields (no rules applied yet).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::path::Members;
use crate::error::GatewayError;
use crate::route_table::ContentKind;

/// A body's top-level members as sent: JSON values, or strings for a form. Keys are borrowed
/// from the body (copied only when they hold escapes), so a request costs no allocation per
/// key; sorted, so a field finds its member by a binary search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputFields<'b> {
    members: Vec<(Cow<'b, str>, Value)>,
}

impl<'b> InputFields<'b> {
    /// Sorted by key; of repeated keys the last one sent stays (as a JSON object's).
    fn from_members(mut members: Vec<(Cow<'b, str>, Value)>) -> Self {
        members.sort_by(|a, b| a.0.cmp(&b.0));
        // Stable: equal keys stay in order, and the last of each run is the one kept.
        members.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Self { members }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.members.binary_search_by(|(k, _)| (**k).cmp(key)).ok()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|at| &self.members[at].1)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.position(key).map(|at| self.members.remove(at).1)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(k, _)| &**k)
    }

    /// The whole body as one JSON object (a field that takes the body).
    pub fn to_object(&self) -> Map<String, Value> {
        self.members
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl Members for InputFields<'_> {
    fn member(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl From<Map<String, Value>> for InputFields<'static> {
    fn from(map: Map<String, Value>) -> Self {
        Self::from_members(map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
    }
}

/// How complex a body may be, whatever its size.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_depth: usize,
    pub max_fields: usize,
}

#[tracing::instrument(level = "debug", name = "stage.parse", skip_all, fields(kind = ?kind))]
pub fn parse_body(
    kind: ContentKind,
    body: &[u8],
    limits: BodyLimits,
) -> Result<InputFields<'_>, GatewayError> {
    match kind {
        ContentKind::Json => {
            let members = check_json_shape(body, limits)?;
            parse_json(body, members)
        }
        ContentKind::Form => {
            let fields = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
            if fields > limits.max_fields {
                return Err(GatewayError::BodyTooComplex(format!(
                    "more than {} fields",
                    limits.max_fields
                )));
            }
            parse_form(body, fields)
        }
    }
}

/// Scans the raw JSON (outside strings) for nesting depth and member count before any parser
/// allocates for it. Strings, most of a body, are skipped by a vectorised search for their end.
/// Returns the members counted (at every depth).
fn check_json_shape(body: &[u8], limits: BodyLimits) -> Result<usize, GatewayError> {
    let (mut depth, mut members, mut at) = (0usize, 0usize, 0usize);
    while let Some(&b) = body.get(at) {
        match b {
            b'"' => at = string_end(body, at + 1),
            b'{' | b'[' => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(GatewayError::BodyTooComplex(format!(
                        "nesting deeper than {} levels at byte {at}",
                        limits.max_depth
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' => {
                members += 1;
                if members > limits.max_fields {
                    return Err(GatewayError::BodyTooComplex(format!(
                        "more than {} fields",
                        limits.max_fields
                    )));
                }
            }
            _ => {}
        }
        at += 1;
    }
    Ok(members)
}

/// The index of the quote closing the string whose contents start at `from` (past the end if
/// it is unterminated: the parser reports that).
fn string_end(body: &[u8], mut from: usize) -> usize {
    loop {
        match body
            .get(from..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        {
            None => return body.len(),
            Some(i) if body[from + i] == b'"' => return from + i,
            // An escape: the next byte is part of it, whatever it is.
            Some(i) => from += i + 2,
        }
    }
}

/// `members`: room for the top-level members (the shape check's count bounds them).
fn parse_json(body: &[u8], members: usize) -> Result<InputFields<'_>, GatewayError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de::DeserializeSeed::deserialize(TopLevel { members }, &mut de)
        .and_then(|top| de.end().map(|()| top));
    match parsed {
        Ok(Some(members)) => Ok(InputFields::from_members(members)),
        Ok(None) => Err(GatewayError::MalformedBody(
            "the JSON body must be an object".into(),
        )),
        Err(e) => Err(GatewayError::MalformedBody(format!(
            "invalid JSON at line {} column {}: {}",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Eof => "unexpected end of input",
                _ => "syntax error",
            }
        ))),
    }
}

type MemberList<'b> = Vec<(Cow<'b, str>, Value)>;

/// The body's top level: its members when it is an object, `None` for any other JSON value.
struct TopLevel {
    members: usize,
}

impl<'de> de::DeserializeSeed<'de> for TopLevel {
    type Value = Option<MemberList<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Option<MemberList<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(self.members);
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value::<Value>()?));
        }
        Ok(Some(members))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A member's key: borrowed from the body unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// `fields`: the pairs counted by the caller (room for them).
fn parse_form(body: &[u8], fields: usize) -> Result<InputFields<'_>, GatewayError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        GatewayError::MalformedBody(format!("the form is not UTF-8 (byte {})", e.valid_up_to()))
    })?;
    let mut members = Vec::with_capacity(fields);
    for (key, value) in form_urlencoded::parse(text.as_bytes()) {
        members.push((key, Value::String(value.into_owned())));
    }
    members.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(GatewayError::MalformedBody(format!(
            "form field \"{}\" appears more than once",
            pair[0].0.chars().take(64).collect::<String>()
        )));
    }
    Ok(InputFields { members })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_depth: 4,
        max_fields: 5,
    };

    fn parse_body(kind: ContentKind, body: &[u8]) -> Result<InputFields<'_>, GatewayError> {
        super::parse_body(kind, body, LIMITS)
    }

    fn too_complex(r: Result<InputFields<'_>, GatewayError>) -> String {
        match r {
            Err(GatewayError::BodyTooComplex(m)) => m,
            other => panic!("expected body_too_complex, got {other:?}"),
        }
    }

    #[test]
    fn depth_and_field_count_are_capped_before_parsing() {
        assert!(parse_body(ContentKind::Json, br#"{"a":{"b":{"c":[1]}}}"#).is_ok());
        assert_eq!(
            too_complex(parse_body(ContentKind::Json, br#"{"a":{"b":{"c":[[1]]}}}"#)),
            "nesting deeper than 4 levels at byte 16"
        );
        assert!(
            parse_body(ContentKind::Json, br#"{"a":"{{{{{{{{:::::::\"{{{{"}"#).is_ok(),
            "brackets in strings do not count"
        );
        assert!(
            parse_body(ContentKind::Json, br#"{"a\\":"\\","b":"\\\"{{{{{{"}"#).is_ok(),
            "an escaped backslash ends no string early, an escaped quote ends none"
        );
        assert_eq!(
            too_complex(parse_body(
                ContentKind::Json,
                br#"{"a\\":"x\\","b":[[[[1]]]]}"#
            )),
            "nesting deeper than 4 levels at byte 20",
            "after an escaped backslash, brackets count again"
        );
        assert!(
            matches!(
                parse_body(ContentKind::Json, br#"{"a":"unterminated\"#),
                Err(GatewayError::MalformedBody(_))
            ),
            "an unterminated string is the parser's to report"
        );
        assert_eq!(
            too_complex(parse_body(
                ContentKind::Json,
                br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}"#
            )),
            "more than 5 fields"
        );
        assert_eq!(
            too_complex(parse_body(ContentKind::Form, b"a=1&b=2&c=3&d=4&e=5&f=6")),
            "more than 5 fields"
        );
    }

    fn malformed(r: Result<InputFields<'_>, GatewayError>) -> String {
        match r {
            Err(GatewayError::MalformedBody(m)) => m,
            other => panic!("expected malformed_body, got {other:?}"),
        }
    }

    #[test]
    fn json_objects_parse_and_errors_have_positions() {
        let m = parse_body(ContentKind::Json, br#"{"a":1,"b":"x"}"#).unwrap();
        assert_eq!(m.get("a"), Some(&Value::from(1)));
        assert_eq!(
            malformed(parse_body(ContentKind::Json, b"{\"a\":\n 1,}")),
            "invalid JSON at line 2 column 4: syntax error"
        );
        assert_eq!(
            malformed(parse_body(ContentKind::Json, b"{\"a\":")),
            "invalid JSON at line 1 column 5: unexpected end of input"
        );
        assert_eq!(
            malformed(parse_body(ContentKind::Json, b"[1]")),
            "the JSON body must be an object"
        );
    }

    #[test]
    fn forms_decode_to_strings() {
        let m = parse_body(
            ContentKind::Form,
            b"email=jo%40example.com&first_name=Jo+Ann&n=62",
        )
        .unwrap();
        assert_eq!(m.get("email"), Some(&Value::from("jo@example.com")));
        assert_eq!(m.get("first_name"), Some(&Value::from("Jo Ann")));
        assert_eq!(m.get("n"), Some(&Value::from("62")));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["email", "first_name", "n"]);
    }

    #[test]
    fn keys_are_borrowed_unless_escaped_and_the_last_repeat_wins() {
        let body = br#"{"b":1,"a\u0041":2,"c":{"x":[1,"y"]},"b":3}"#;
        let m = parse_body(ContentKind::Json, body).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["aA", "b", "c"]);
        assert_eq!(
            m.get("b"),
            Some(&Value::from(3)),
            "as a JSON object: the last one"
        );
        assert_eq!(m.get("aA"), Some(&Value::from(2)));
        assert_eq!(m.get("c"), Some(&serde_json::json!({"x": [1, "y"]})));
        assert!(
            matches!(m.members[1].0, Cow::Borrowed(_)),
            "a plain key is the body's"
        );
        assert!(
            matches!(m.members[0].0, Cow::Owned(_)),
            "an escaped key is a copy"
        );
        assert_eq!(
            m.to_object(),
            serde_json::from_slice::<Map<String, Value>>(body).unwrap(),
            "the same object serde_json reads"
        );
    }

    #[test]
    fn members_are_found_and_removed_by_key() {
        let mut m = parse_body(ContentKind::Json, br#"{"z":1,"m":2,"a":3}"#).unwrap();
        assert_eq!(
            (m.len(), m.get("m"), m.get("q")),
            (3, Some(&Value::from(2)), None)
        );
        assert_eq!(m.remove("m"), Some(Value::from(2)));
        assert_eq!(m.remove("m"), None);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "z"]);
        assert!(parse_body(ContentKind::Json, b" {} ").unwrap().is_empty());
    }

    #[test]
    fn any_other_json_value_is_not_an_object() {
        for body in [
            &b"[1, {\"a\": 2}]"[..],
            b"\"text\"",
            b"12",
            b"true",
            b"null",
            b"1.5",
        ] {
            assert_eq!(
                malformed(parse_body(ContentKind::Json, body)),
                "the JSON body must be an object",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(
            malformed(parse_body(ContentKind::Json, b"{} x")).starts_with("invalid JSON at line 1"),
            "trailing characters"
        );
    }

    #[test]
    fn forms_refuse_repeats_and_bad_bytes() {
        assert!(malformed(parse_body(ContentKind::Form, b"a=1&a=2")).contains("more than once"));
        assert!(malformed(parse_body(ContentKind::Form, b"a=\xff")).contains("not UTF-8"));
    }
}
