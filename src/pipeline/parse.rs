//! Parse stage: JSON object or urlencoded form → raw input fields (no rules applied yet).

use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::route_table::ContentKind;

/// Input fields as sent: JSON values, or strings for a form.
pub type InputFields = Map<String, Value>;

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
) -> Result<InputFields, GatewayError> {
    match kind {
        ContentKind::Json => {
            check_json_shape(body, limits)?;
            parse_json(body)
        }
        ContentKind::Form => {
            let fields = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
            if fields > limits.max_fields {
                return Err(GatewayError::BodyTooComplex(format!(
                    "more than {} fields",
                    limits.max_fields
                )));
            }
            parse_form(body)
        }
    }
}

/// Scans the raw JSON (outside strings) for nesting depth and member count before any parser
/// allocates for it. Strings, most of a body, are skipped by a vectorised search for their end.
fn check_json_shape(body: &[u8], limits: BodyLimits) -> Result<(), GatewayError> {
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
    Ok(())
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

fn parse_json(body: &[u8]) -> Result<InputFields, GatewayError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GatewayError::MalformedBody(
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

fn parse_form(body: &[u8]) -> Result<InputFields, GatewayError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        GatewayError::MalformedBody(format!("the form is not UTF-8 (byte {})", e.valid_up_to()))
    })?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
        .map_err(|_| GatewayError::MalformedBody("the form is not valid urlencoded data".into()))?;
    let mut map = Map::new();
    for (key, value) in pairs {
        if map.contains_key(&key) {
            return Err(GatewayError::MalformedBody(format!(
                "form field \"{}\" appears more than once",
                key.chars().take(64).collect::<String>()
            )));
        }
        map.insert(key, Value::String(value));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_depth: 4,
        max_fields: 5,
    };

    fn parse_body(kind: ContentKind, body: &[u8]) -> Result<InputFields, GatewayError> {
        super::parse_body(kind, body, LIMITS)
    }

    fn too_complex(r: Result<InputFields, GatewayError>) -> String {
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

    fn malformed(r: Result<InputFields, GatewayError>) -> String {
        match r {
            Err(GatewayError::MalformedBody(m)) => m,
            other => panic!("expected malformed_body, got {other:?}"),
        }
    }

    #[test]
    fn json_objects_parse_and_errors_have_positions() {
        let m = parse_body(ContentKind::Json, br#"{"a":1,"b":"x"}"#).unwrap();
        assert_eq!(m["a"], 1);
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
        assert_eq!(m["email"], "jo@example.com");
        assert_eq!(m["first_name"], "Jo Ann");
        assert_eq!(m["n"], "62");
    }

    #[test]
    fn forms_refuse_repeats_and_bad_bytes() {
        assert!(malformed(parse_body(ContentKind::Form, b"a=1&a=2")).contains("more than once"));
        assert!(malformed(parse_body(ContentKind::Form, b"a=\xff")).contains("not UTF-8"));
    }
}
