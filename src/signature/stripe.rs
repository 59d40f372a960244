//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"{t}." + body`; the key is the
//! whole `whsec_…` text. Any `v1` may match (rolled secrets send several); `v0` and other
//! schemes are ignored, so a v0-only header is refused. Dedup on the event `id` in the body.

use actix_web::http::header::HeaderName;
use serde::Deserialize;

use super::{
    any_matches, check_timestamp, hmac, Algorithm, SignedRequest, SigningKey, Verified, VerifyError,
};

const SIGNATURE: HeaderName = HeaderName::from_static("stripe-signature");

pub fn verify(
    req: &SignedRequest<'_>,
    keys: &[&SigningKey],
    now: i64,
    tolerance: u64,
) -> Result<Verified, VerifyError> {
    let raw = req.header(&SIGNATURE)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in raw.split(',') {
        match item.trim().split_once('=') {
            Some(("t", v)) if timestamp.is_none() => timestamp = Some(v.trim()),
            Some(("t", _)) => return Err(VerifyError::Malformed(SIGNATURE.as_str().into())),
            Some(("v1", v)) => candidates.extend(hex::decode(v.trim()).ok()),
            _ => {}
        }
    }
    let ts = timestamp.ok_or_else(|| VerifyError::Malformed(SIGNATURE.as_str().into()))?;
    if candidates.is_empty()
        || !any_matches(
            Algorithm::Sha256,
            keys,
            &[ts.as_bytes(), b".", req.body],
            &candidates,
        )
    {
        return Err(VerifyError::Mismatch);
    }
    check_timestamp(ts, SIGNATURE.as_str(), now, tolerance)?;
    Ok(Verified {
        delivery_id: event_id(req.body),
    })
}

#[derive(Deserialize)]
struct Event {
    id: String,
}

fn event_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Event>(body).ok().map(|e| e.id)
}

pub fn sign(key: &SigningKey, body: &[u8], now: i64) -> Vec<(String, String)> {
    let ts = now.to_string();
    let sig = hex::encode(hmac(
        Algorithm::Sha256,
        key.bytes(),
        &[ts.as_bytes(), b".", body],
    ));
    vec![("Stripe-Signature".into(), format!("t={ts},v1={sig}"))]
}
