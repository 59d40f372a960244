//! What the rejection log keeps of headers, and how a stored body is shown: secrets never
//! stored, configured fields shown masked (`j***@example.com`) while the stored body stays
//! whole for a faithful replay.

use serde_json::Value;

/// Header names never stored, whatever the route: credentials and session cookies.
const SECRET_NAMES: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
];
/// Parts of a header name that mark a secret (signatures of every scheme, tokens, keys).
const SECRET_PARTS: [&str; 8] = [
    "signature",
    "hmac",
    "token",
    "secret",
    "password",
    "auth",
    "api-key",
    "apikey",
];
/// Longest header value kept.
const MAX_VALUE: usize = 512;
/// Headers kept at most.
const MAX_HEADERS: usize = 64;

/// Whether a (lower-case) header name carries a secret.
pub fn is_secret_header(name: &str, extra: &[String], route_extra: &[String]) -> bool {
    SECRET_NAMES.contains(&name)
        || SECRET_PARTS.iter().any(|part| name.contains(part))
        || extra.iter().any(|e| e.eq_ignore_ascii_case(name))
        || route_extra.iter().any(|e| e == name)
}

/// The headers worth keeping: secrets removed, values bounded.
pub fn keep_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    extra: &[String],
    route_extra: &[String],
) -> Vec<(String, String)> {
    headers
        .filter(|(name, _)| !is_secret_header(name, extra, route_extra))
        .take(MAX_HEADERS)
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value);
            (name.to_owned(), value.chars().take(MAX_VALUE).collect())
        })
        .collect()
}

/// A value shown masked: an email keeps its first letter and domain, anything else its first
/// character.
pub fn mask_value(value: &str) -> String {
    match value.split_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
        }
        _ => match value.chars().next() {
            Some(first) if value.chars().count() > 1 => format!("{first}***"),
            _ => "***".into(),
        },
    }
}

/// The body for display: a JSON or form body with the named fields masked (at any depth);
/// any other body as text with anything that looks like an email masked.
pub fn display_body(body: &[u8], content_type: Option<&str>, fields: &[String]) -> String {
    let is_form = content_type.is_some_and(|c| c.contains("x-www-form-urlencoded"));
    if is_form {
        return mask_form(body, fields);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            mask_json(&mut value, fields);
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        Err(_) => mask_emails(&String::from_utf8_lossy(body)),
    }
}

fn is_masked(key: &str, fields: &[String]) -> bool {
    fields.iter().any(|f| f.eq_ignore_ascii_case(key))
}

fn mask_json(value: &mut Value, fields: &[String]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_masked(key, fields) && !v.is_object() && !v.is_array() {
                    let masked = match &*v {
                        Value::String(s) => Some(mask_value(s)),
                        Value::Null => None,
                        other => Some(mask_value(&other.to_string())),
                    };
                    if let Some(masked) = masked {
                        *v = Value::String(masked);
                    }
                } else {
                    mask_json(v, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask_json(v, fields)),
        _ => {}
    }
}

fn mask_form(body: &[u8], fields: &[String]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_urlencoded::from_str::<Vec<(String, String)>>(&text) {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                let v = if is_masked(&k, fields) {
                    mask_value(&v)
                } else {
                    v
                };
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => mask_emails(&text),
    }
}

/// Masks every `local@domain` token in free text.
fn mask_emails(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || matches!(c, '"' | ',' | '&' | '=' | ':'))
        .map(|token| {
            let end = token
                .char_indices()
                .last()
                .filter(|(_, c)| c.is_whitespace() || matches!(c, '"' | ',' | '&' | '=' | ':'))
                .map_or(token.len(), |(i, _)| i);
            let (word, sep) = token.split_at(end);
            if word.contains('@') && word.len() > 2 {
                format!("{}{sep}", mask_value(word))
            } else {
                token.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<String> {
        vec!["email".into(), "phone".into()]
    }

    #[test]
    fn secrets_never_kept() {
        let headers = [
            ("content-type", b"application/json".as_slice()),
            ("authorization", b"Bearer abc"),
            ("x-hub-signature-256", b"sha256=00"),
            ("stripe-signature", b"t=1,v1=00"),
            ("x-shopify-hmac-sha256", b"AA=="),
            ("webhook-signature", b"v1,AA=="),
            ("cookie", b"session=1"),
            ("x-partner-key", b"k"),
            ("x-github-delivery", b"d-1"),
        ];
        let kept = keep_headers(
            headers.iter().map(|(n, v)| (*n, *v)),
            &[],
            &["x-partner-key".into()],
        );
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "x-github-delivery"]);
    }

    #[test]
    fn configured_fields_are_masked_at_any_depth_and_the_rest_shown() {
        let body = br#"{"email":"jo@example.com","first":"Jo","contact":{"phone":"5551234"},"list":[{"email":"ann@x.org"}]}"#;
        let shown = display_body(body, Some("application/json"), &fields());
        assert!(shown.contains("j***@example.com"), "{shown}");
        assert!(shown.contains("a***@x.org"), "{shown}");
        assert!(shown.contains("5***"), "{shown}");
        assert!(shown.contains("\"Jo\""), "{shown}");
        assert!(
            !shown.contains("jo@example.com") && !shown.contains("5551234"),
            "{shown}"
        );
    }

    #[test]
    fn form_and_broken_bodies_are_masked_too() {
        let form = display_body(
            b"email=jo%40example.com&name=Jo",
            Some("application/x-www-form-urlencoded"),
            &fields(),
        );
        assert_eq!(form, "email=j***@example.com\nname=Jo");
        let broken = display_body(br#"{"email":"jo@example.com","x":"#, None, &fields());
        assert!(!broken.contains("jo@example.com"), "{broken}");
        assert!(broken.contains("j***@example.com"), "{broken}");
    }
}
