//! Parse stage: JSON object or urlencoded form → raw input fields (no rules applied yet).

use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::route_table::ContentKind;

/// Input fields as sent: JSON values, or strings for a form.
pub type InputFields = Map<String, Value>;

#[tracing::instrument(name = "stage.parse", skip_all, fields(kind = ?kind))]
pub fn parse_body(kind: ContentKind, body: &[u8]) -> Result<InputFields, GatewayError> {
    match kind {
        ContentKind::Json => parse_json(body),
        ContentKind::Form => parse_form(body),
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
