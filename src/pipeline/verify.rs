//! Verify stage: a raw request becomes a verified one only here. HMAC over the raw bytes,
//! before any parsing; bearer tokens compared in constant time.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::GatewayError;
use crate::route_table::{Route, RouteAuth};
use crate::signature::{SignedRequest, Verified, VerifyError};

#[tracing::instrument(level = "debug", name = "stage.verify", skip_all, fields(route = %route.name(), auth = route.auth().kind()))]
pub fn verify(
    route: &Route,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, GatewayError> {
    match route.auth() {
        RouteAuth::None => Ok(Verified::default()),
        RouteAuth::Bearer { .. } => {
            let active = route.auth().active_keys(now);
            check_bearer(headers, active.iter().map(|k| k.bytes()))?;
            Ok(Verified::default())
        }
        RouteAuth::Hmac {
            scheme, tolerance, ..
        } => {
            let keys = route.auth().active_keys(now);
            let request = SignedRequest { headers, body };
            scheme
                .verify(&request, &keys, now, *tolerance)
                .map_err(|e| match e {
                    VerifyError::Missing(header) => GatewayError::MissingSignature(header),
                    VerifyError::Malformed(_) | VerifyError::Mismatch => {
                        GatewayError::InvalidSignature
                    }
                    VerifyError::TooOld(window) => GatewayError::TimestampOutOfWindow {
                        too_new: false,
                        window,
                    },
                    VerifyError::TooNew(window) => GatewayError::TimestampOutOfWindow {
                        too_new: true,
                        window,
                    },
                })
        }
    }
}

/// Checks `Authorization: Bearer <token>` against any of `accepted`, in constant time:
/// equal-length SHA-256 digests are compared, so neither content nor length leaks.
pub fn check_bearer<'a>(
    headers: &HeaderMap,
    accepted: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(), GatewayError> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(GatewayError::InvalidToken)?;
    let presented = Sha256::digest(presented.trim().as_bytes());
    let mut ok = false;
    for token in accepted {
        ok |= bool::from(Sha256::digest(token).ct_eq(&presented));
    }
    ok.then_some(()).ok_or(GatewayError::InvalidToken)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, for verification.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
