//! Shopify: `X-Shopify-Hmac-SHA256: <base64 HMAC-SHA256(secret, body)>` (Events: `Shopify-Hmac-Sha256`);
//! redeliveries carry the same `X-Shopify-Webhook-Id`.

use actix_web::http::header::HeaderName;
use base64::Engine;

use super::{any_matches, hmac, Algorithm, SignedRequest, SigningKey, Verified, VerifyError};

const SIGNATURE: HeaderName = HeaderName::from_static("x-shopify-hmac-sha256");
const EVENTS_SIGNATURE: HeaderName = HeaderName::from_static("shopify-hmac-sha256");
const DELIVERY: HeaderName = HeaderName::from_static("x-shopify-webhook-id");

pub fn verify(req: &SignedRequest<'_>, keys: &[&SigningKey]) -> Result<Verified, VerifyError> {
    let name = if req.headers.contains_key(&SIGNATURE) {
        &SIGNATURE
    } else {
        &EVENTS_SIGNATURE
    };
    let raw = req
        .header(name)
        .map_err(|_| VerifyError::Missing(SIGNATURE.as_str().into()))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|_| VerifyError::Malformed(name.as_str().into()))?;
    if !any_matches(Algorithm::Sha256, keys, &[req.body], &[sig]) {
        return Err(VerifyError::Mismatch);
    }
    Ok(Verified {
        delivery_id: req.optional_header(&DELIVERY).map(str::to_owned),
    })
}

pub fn sign(key: &SigningKey, body: &[u8], id: &str) -> Vec<(String, String)> {
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac(
        Algorithm::Sha256,
        key.bytes(),
        &[body],
    ));
    vec![
        ("X-Shopify-Hmac-SHA256".into(), sig),
        ("X-Shopify-Webhook-Id".into(), id.into()),
    ]
}
