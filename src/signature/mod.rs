//! Webhook signature schemes. Each verifies over the raw body bytes, before any parsing, in
//! constant time, against every active key; timestamped schemes enforce a window both ways.
//! Each can also sign, for `flowgate sign` and for tests.

mod generic;
mod github;
mod keys;
mod shopify;
mod slack;
mod standard_webhooks;
mod stripe;

use actix_web::http::header::{HeaderMap, HeaderName};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

pub use generic::{Encoding, GenericScheme, SignedContent};
pub use keys::SigningKey;

/// The HMAC schemes a route can use.
#[derive(Debug, Clone)]
pub enum Scheme {
    Github,
    Stripe,
    StandardWebhooks,
    Shopify,
    Slack,
    Generic(GenericScheme),
}

/// Hash functions for HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    Missing(String),
    #[error("the {0} header is malformed")]
    Malformed(String),
    #[error("no signature matches any active secret")]
    Mismatch,
    #[error("the signed timestamp is older than the {0} s window")]
    TooOld(u64),
    #[error("the signed timestamp is more than {0} s in the future")]
    TooNew(u64),
}

/// What a verified request tells about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// The provider's delivery id, for deduplication of redeliveries.
    pub delivery_id: Option<String>,
}

/// The request parts a verifier reads.
pub struct SignedRequest<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    /// By a built name: a `&str` one would be built (and allocated) per lookup.
    fn header(&self, name: &HeaderName) -> Result<&str, VerifyError> {
        match self.headers.get(name) {
            None => Err(VerifyError::Missing(name.as_str().to_owned())),
            Some(v) => v
                .to_str()
                .map_err(|_| VerifyError::Malformed(name.as_str().to_owned())),
        }
    }

    fn optional_header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Scheme {
    /// Verifies `request` against `keys` at time `now` (Unix seconds).
    pub fn verify(
        &self,
        request: &SignedRequest<'_>,
        keys: &[&SigningKey],
        now: i64,
        tolerance: u64,
    ) -> Result<Verified, VerifyError> {
        match self {
            Self::Github => github::verify(request, keys),
            Self::Stripe => stripe::verify(request, keys, now, tolerance),
            Self::StandardWebhooks => standard_webhooks::verify(request, keys, now, tolerance),
            Self::Shopify => shopify::verify(request, keys),
            Self::Slack => slack::verify(request, keys, now, tolerance),
            Self::Generic(g) => g.verify(request, keys, now, tolerance),
        }
    }

    /// The headers a sender of this scheme would attach to `body`.
    pub fn sign(&self, key: &SigningKey, body: &[u8], now: i64, id: &str) -> Vec<(String, String)> {
        match self {
            Self::Github => github::sign(key, body, id),
            Self::Stripe => stripe::sign(key, body, now),
            Self::StandardWebhooks => standard_webhooks::sign(key, body, now, id),
            Self::Shopify => shopify::sign(key, body, id),
            Self::Slack => slack::sign(key, body, now),
            Self::Generic(g) => g.sign(key, body, now),
        }
    }

    /// Whether the scheme signs a timestamp (and so has a replay window).
    pub fn is_timestamped(&self) -> bool {
        match self {
            Self::Stripe | Self::StandardWebhooks | Self::Slack => true,
            Self::Github | Self::Shopify => false,
            Self::Generic(g) => g.timestamp_header().is_some(),
        }
    }

    /// How keys are read from their secret text: Standard Webhooks base64-decodes `whsec_…`.
    pub fn decodes_base64_key(&self) -> bool {
        matches!(self, Self::StandardWebhooks)
    }
}

/// HMAC of the concatenated `parts`.
fn hmac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha256 => mac::<Hmac<Sha256>>(key, parts)
            .finalize()
            .into_bytes()
            .to_vec(),
        Algorithm::Sha512 => mac::<Hmac<Sha512>>(key, parts)
            .finalize()
            .into_bytes()
            .to_vec(),
    }
}

/// True when `candidate` is the HMAC of `parts` under `key`; compared in constant time.
fn hmac_matches(algorithm: Algorithm, key: &[u8], parts: &[&[u8]], candidate: &[u8]) -> bool {
    match algorithm {
        Algorithm::Sha256 => mac::<Hmac<Sha256>>(key, parts)
            .verify_slice(candidate)
            .is_ok(),
        Algorithm::Sha512 => mac::<Hmac<Sha512>>(key, parts)
            .verify_slice(candidate)
            .is_ok(),
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> M {
    // HMAC takes keys of any length, so this cannot fail; an empty MAC would never verify.
    let mut m = <M as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <M as KeyInit>::new(&Default::default()));
    for part in parts {
        m.update(part);
    }
    m
}

/// True if any candidate signature matches under any key.
fn any_matches(
    algorithm: Algorithm,
    keys: &[&SigningKey],
    parts: &[&[u8]],
    candidates: &[Vec<u8>],
) -> bool {
    let mut ok = false;
    for key in keys {
        for candidate in candidates {
            // No early exit: every pair is checked, so timing does not reveal which matched.
            ok |= hmac_matches(algorithm, key.bytes(), parts, candidate);
        }
    }
    ok
}

/// Reads a Unix-seconds timestamp and checks it lies within `tolerance` of `now`, both ways.
fn check_timestamp(raw: &str, header: &str, now: i64, tolerance: u64) -> Result<i64, VerifyError> {
    let ts: i64 = raw
        .trim()
        .parse()
        .map_err(|_| VerifyError::Malformed(header.to_owned()))?;
    let tol = i64::try_from(tolerance).unwrap_or(i64::MAX);
    if now.saturating_sub(ts) > tol {
        return Err(VerifyError::TooOld(tolerance));
    }
    if ts.saturating_sub(now) > tol {
        return Err(VerifyError::TooNew(tolerance));
    }
    Ok(ts)
}

#[cfg(test)]
mod tests;
