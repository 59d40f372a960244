//! Client address derivation from X-Forwarded-For / Forwarded never panics, and the result is
//! always the peer or an address that appeared in the headers.
#![no_main]

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use flowgate::pipeline::client::client_ip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let (xff, forwarded) = data.split_at(data.len() / 2);
    for (name, raw) in [("x-forwarded-for", xff), ("forwarded", forwarded)] {
        if let Ok(value) = HeaderValue::from_bytes(raw) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let peer: IpAddr = [127, 0, 0, 1].into();
    let trusted = [
        "127.0.0.1/32".parse().unwrap(),
        "10.0.0.0/8".parse().unwrap(),
    ];
    if let Some(ip) = client_ip(Some(peer), &headers, &trusted) {
        assert!(
            ip == peer || String::from_utf8_lossy(data).contains(&ip.to_string()) || ip.is_ipv6()
        );
    }
});
