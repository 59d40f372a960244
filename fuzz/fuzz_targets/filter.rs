//! Filter conditions: any path text, header name and pattern (split from the input at NUL
//! bytes) either compile or come back as config issues; a compiled condition evaluates any
//! body and headers without panicking.
#![no_main]

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use flowgate::configuration::ConditionSettings;
use flowgate::route_table::parse_condition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let source = parts.next().unwrap_or_default().to_owned();
    let pattern = parts.next().map(str::to_owned);
    let value = parts.next().unwrap_or_default();
    let by_header = source.starts_with('@');
    let settings = ConditionSettings {
        path: (!by_header).then(|| source.clone()),
        header: by_header.then(|| source[1..].to_owned()),
        equals: None,
        one_of: None,
        exists: pattern.is_none().then_some(true),
        matches: pattern,
    };
    let Ok(condition) = parse_condition(&settings) else {
        return;
    };
    let _ = condition.describe();
    let mut headers = HeaderMap::new();
    if let (Ok(name), Ok(v)) = (
        HeaderName::from_bytes(source.trim_start_matches('@').as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, v);
    }
    let body = serde_json::json!({"a": {"b": [value, 1]}, "type": value});
    if let serde_json::Value::Object(map) = body {
        let _ = condition.holds(&map, &headers);
    }
});
