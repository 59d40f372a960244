//! Body paths: parsing never panics; a path that parses prints back as written, parses to
//! itself again, and looks up any body without panicking.
#![no_main]

use flowgate::pipeline::path::BodyPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = BodyPath::parse(text) else {
        return;
    };
    assert_eq!(path.to_string(), text);
    assert_eq!(BodyPath::parse(text).as_ref(), Ok(&path));
    let body = serde_json::json!({
        "a": {"b": [1, {"c": "x"}]},
        "line_items": [{"sku": "A-1"}],
        "": null
    });
    if let serde_json::Value::Object(map) = body {
        let _ = path.lookup(&map);
    }
});
