//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`; no timestamp,
//! so redeliveries are caught by `X-GitHub-Delivery`.

use actix_web::http::header::HeaderName;

use super::{any_matches, hmac, Algorithm, SignedRequest, SigningKey, Verified, VerifyError};

const SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
const DELIVERY: HeaderName = HeaderName::from_static("x-github-delivery");

pub fn verify(req: &SignedRequest<'_>, keys: &[&SigningKey]) -> Result<Verified, VerifyError> {
    let raw = req.header(&SIGNATURE)?;
    let hex_sig = raw
        .trim()
        .strip_prefix("sha256=")
        .ok_or_else(|| VerifyError::Malformed(SIGNATURE.as_str().into()))?;
    let sig =
        hex::decode(hex_sig).map_err(|_| VerifyError::Malformed(SIGNATURE.as_str().into()))?;
    if !any_matches(Algorithm::Sha256, keys, &[req.body], &[sig]) {
        return Err(VerifyError::Mismatch);
    }
    Ok(Verified {
        delivery_id: req.optional_header(&DELIVERY).map(str::to_owned),
    })
}

pub fn sign(key: &SigningKey, body: &[u8], id: &str) -> Vec<(String, String)> {
    let sig = hex::encode(hmac(Algorithm::Sha256, key.bytes(), &[body]));
    vec![
        ("X-Hub-Signature-256".into(), format!("sha256={sig}")),
        ("X-GitHub-Delivery".into(), id.into()),
        ("X-GitHub-Event".into(), "ping".into()),
    ]
}
