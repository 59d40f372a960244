use std::fmt::{self, Write as _};

use sha2::{Digest, Sha256};

use super::{DeploymentRef, RouteName};

/// The key that makes a flow-run creation idempotent in Prefect.
///
/// Either the sender's `Idempotency-Key` header or a SHA-256 of the route and the canonical
/// (sorted-key) flow parameters, so the same signup sent twice (as JSON or as a form) is one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(KeySource);

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeySource {
    Client(String),
    Delivery(String),
    Content(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    #[error("Idempotency-Key must not be empty")]
    Empty,
    #[error("Idempotency-Key must be at most 255 characters")]
    TooLong,
    #[error("Idempotency-Key may only contain visible ASCII characters")]
    InvalidCharacter,
}

impl IdempotencyKey {
    /// Parses the sender's `Idempotency-Key` header value.
    pub fn from_header(raw: &str) -> Result<Self, IdempotencyKeyError> {
        if raw.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if raw.len() > 255 {
            return Err(IdempotencyKeyError::TooLong);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdempotencyKeyError::InvalidCharacter);
        }
        Ok(Self(KeySource::Client(raw.to_owned())))
    }

    /// The verified delivery id of a partner's webhook (its redeliveries carry the same id).
    pub fn from_delivery(delivery_id: &str) -> Self {
        Self(KeySource::Delivery(delivery_id.to_owned()))
    }

    /// Derives a key from the route and the canonical JSON of the flow parameters, given whole
    /// (the map stage streams it into `content_hasher` instead).
    #[cfg(test)]
    pub fn from_content(route: &RouteName, canonical_payload: &[u8]) -> Self {
        let mut hasher = Self::content_hasher(route);
        hasher.update(canonical_payload);
        Self::from_content_hash(hasher)
    }

    /// A hasher that has read the route; the canonical payload is written into it next.
    pub fn content_hasher(route: &RouteName) -> Sha256 {
        let mut hasher = Sha256::new();
        hasher.update(route.as_ref().as_bytes());
        hasher.update([0u8]);
        hasher
    }

    /// The key from a `content_hasher` that has read the whole payload.
    pub fn from_content_hash(hasher: Sha256) -> Self {
        Self(KeySource::Content(hex::encode(hasher.finalize())))
    }

    /// The key sent to Prefect. Prefect scopes idempotency keys per flow, so the key carries the
    /// deployment and the route to keep two deployments of one flow apart.
    pub fn namespaced(&self, deployment: &DeploymentRef, route: &RouteName) -> String {
        let (kind, value) = match &self.0 {
            KeySource::Client(k) => ("key", k),
            KeySource::Delivery(d) => ("delivery", d),
            KeySource::Content(h) => ("sha256", h),
        };
        let parts: [&str; 5] = [
            deployment.flow(),
            deployment.deployment(),
            route.as_ref(),
            kind,
            value,
        ];
        // "flowgate:" and the four separators (the deployment's '/' and three ':').
        let mut key = String::with_capacity(13 + parts.iter().map(|p| p.len()).sum::<usize>());
        let _ = write!(key, "flowgate:{deployment}:{route}:{kind}:{value}");
        key
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeySource::Client(k) => write!(f, "key:{k}"),
            KeySource::Delivery(d) => write!(f, "delivery:{d}"),
            KeySource::Content(h) => write!(f, "sha256:{h}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> RouteName {
        RouteName::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn header_keys_are_checked() {
        assert!(IdempotencyKey::from_header("evt-0001").is_ok());
        assert_eq!(
            IdempotencyKey::from_header(""),
            Err(IdempotencyKeyError::Empty)
        );
        assert_eq!(
            IdempotencyKey::from_header(&"k".repeat(256)),
            Err(IdempotencyKeyError::TooLong)
        );
        assert_eq!(
            IdempotencyKey::from_header("has space"),
            Err(IdempotencyKeyError::InvalidCharacter)
        );
    }

    #[test]
    fn content_keys_depend_on_route_and_payload() {
        let a = IdempotencyKey::from_content(&route("a"), b"{\"x\":1}");
        assert_eq!(a, IdempotencyKey::from_content(&route("a"), b"{\"x\":1}"));
        assert_ne!(a, IdempotencyKey::from_content(&route("b"), b"{\"x\":1}"));
        assert_ne!(a, IdempotencyKey::from_content(&route("a"), b"{\"x\":2}"));
    }

    #[test]
    fn namespaced_key_names_deployment_and_route() {
        let dep = DeploymentRef::parse("flow/dep").unwrap_or_else(|e| panic!("{e}"));
        let key = IdempotencyKey::from_header("evt-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            key.namespaced(&dep, &route("r")),
            "flowgate:flow/dep:r:key:evt-1"
        );
    }
}
