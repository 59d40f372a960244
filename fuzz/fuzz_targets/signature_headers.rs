//! Signature headers of every scheme: parsing and verifying arbitrary header values and bodies
//! never panics and never accepts (the key is not in the input).
#![no_main]

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use flowgate::signature::{Algorithm, Encoding, GenericScheme, Scheme, SignedRequest, SigningKey};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

const NAMES: [&str; 12] = [
    "x-hub-signature-256",
    "x-github-delivery",
    "stripe-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-signature",
    "x-shopify-hmac-sha256",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-sig",
    "x-ts",
];

fuzz_target!(|data: &[u8]| {
    // Input: header values separated by 0x00, then the body after the last separator.
    let mut parts = data.split(|b| *b == 0);
    let mut headers = HeaderMap::new();
    for name in NAMES {
        if let Some(value) = parts.next().and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let body = parts.next().unwrap_or_default();
    let key = SigningKey::from_text(
        "fuzz",
        &SecretString::from("fuzz-secret-not-in-input"),
        None,
    );
    let generic = GenericScheme::new(
        "X-Sig",
        Algorithm::Sha256,
        Encoding::Base64,
        Some("v1="),
        Some("{timestamp}.{body}"),
        Some("X-Ts"),
        None,
    )
    .map(Scheme::Generic);
    let request = SignedRequest {
        headers: &headers,
        body,
    };
    for scheme in [
        Scheme::Github,
        Scheme::Stripe,
        Scheme::StandardWebhooks,
        Scheme::Shopify,
        Scheme::Slack,
    ]
    .into_iter()
    .chain(generic)
    {
        assert!(scheme
            .verify(&request, &[&key], 1_700_000_000, 300)
            .is_err());
    }
});
