//! Standard Webhooks v1 (and Svix, same algorithm with `svix-*` names): signature over
//! `"{id}.{timestamp}.{body}"`, header `webhook-signature: v1,<base64> [v1,<base64>…]`,
//! key = base64 after `whsec_`. The message id is the delivery id.

use actix_web::http::header::HeaderName;
use base64::Engine;

use super::{
    any_matches, check_timestamp, hmac, Algorithm, SignedRequest, SigningKey, Verified, VerifyError,
};

struct Names {
    id: HeaderName,
    timestamp: HeaderName,
    signature: HeaderName,
}

const STANDARD: Names = Names {
    id: HeaderName::from_static("webhook-id"),
    timestamp: HeaderName::from_static("webhook-timestamp"),
    signature: HeaderName::from_static("webhook-signature"),
};
const SVIX: Names = Names {
    id: HeaderName::from_static("svix-id"),
    timestamp: HeaderName::from_static("svix-timestamp"),
    signature: HeaderName::from_static("svix-signature"),
};

pub fn verify(
    req: &SignedRequest<'_>,
    keys: &[&SigningKey],
    now: i64,
    tolerance: u64,
) -> Result<Verified, VerifyError> {
    let names = if !req.headers.contains_key(&STANDARD.signature)
        && req.headers.contains_key(&SVIX.signature)
    {
        &SVIX
    } else {
        &STANDARD
    };
    let raw = req.header(&names.signature)?;
    let id = req.header(&names.id)?.trim();
    let ts = req.header(&names.timestamp)?.trim();
    if id.is_empty() || id.contains('.') {
        return Err(VerifyError::Malformed(names.id.as_str().into()));
    }
    let candidates: Vec<Vec<u8>> = raw
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty()
        || !any_matches(
            Algorithm::Sha256,
            keys,
            &[id.as_bytes(), b".", ts.as_bytes(), b".", req.body],
            &candidates,
        )
    {
        return Err(VerifyError::Mismatch);
    }
    check_timestamp(ts, names.timestamp.as_str(), now, tolerance)?;
    Ok(Verified {
        delivery_id: Some(id.to_owned()),
    })
}

pub fn sign(key: &SigningKey, body: &[u8], now: i64, id: &str) -> Vec<(String, String)> {
    let ts = now.to_string();
    let sig = hmac(
        Algorithm::Sha256,
        key.bytes(),
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts),
        (
            "webhook-signature".into(),
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(sig)
            ),
        ),
    ]
}
