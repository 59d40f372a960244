//! Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:" + ts + ":" + body)>` with
//! `X-Slack-Request-Timestamp`; the timestamp must be within the window both ways.

use actix_web::http::header::HeaderName;

use super::{
    any_matches, check_timestamp, hmac, Algorithm, SignedRequest, SigningKey, Verified, VerifyError,
};

const SIGNATURE: HeaderName = HeaderName::from_static("x-slack-signature");
const TIMESTAMP: HeaderName = HeaderName::from_static("x-slack-request-timestamp");

pub fn verify(
    req: &SignedRequest<'_>,
    keys: &[&SigningKey],
    now: i64,
    tolerance: u64,
) -> Result<Verified, VerifyError> {
    let raw = req.header(&SIGNATURE)?;
    let ts = req.header(&TIMESTAMP)?.trim();
    let hex_sig = raw
        .trim()
        .strip_prefix("v0=")
        .ok_or_else(|| VerifyError::Malformed(SIGNATURE.as_str().into()))?;
    let sig =
        hex::decode(hex_sig).map_err(|_| VerifyError::Malformed(SIGNATURE.as_str().into()))?;
    if !any_matches(
        Algorithm::Sha256,
        keys,
        &[b"v0:", ts.as_bytes(), b":", req.body],
        &[sig],
    ) {
        return Err(VerifyError::Mismatch);
    }
    check_timestamp(ts, TIMESTAMP.as_str(), now, tolerance)?;
    Ok(Verified::default())
}

pub fn sign(key: &SigningKey, body: &[u8], now: i64) -> Vec<(String, String)> {
    let ts = now.to_string();
    let sig = hex::encode(hmac(
        Algorithm::Sha256,
        key.bytes(),
        &[b"v0:", ts.as_bytes(), b":", body],
    ));
    vec![
        ("X-Slack-Request-Timestamp".into(), ts),
        ("X-Slack-Signature".into(), format!("v0={sig}")),
    ]
}
