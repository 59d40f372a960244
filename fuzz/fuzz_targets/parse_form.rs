//! Form bodies: decoding never panics, whatever the bytes.
#![no_main]

use flowgate::pipeline::parse::{parse_body, BodyLimits};
use flowgate::route_table::ContentKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = BodyLimits {
        max_depth: 16,
        max_fields: 200,
    };
    let _ = parse_body(ContentKind::Form, data, limits);
});
