//! Signing keys: bytes that never print, with an optional expiry.

use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// One secret as HMAC key bytes. `Debug` shows only its label.
pub struct SigningKey {
    label: String,
    bytes: SecretBox<[u8]>,
    /// Unix seconds after which the key no longer verifies.
    expires_at: Option<i64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("label", &self.label)
            .field("bytes", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl SigningKey {
    /// The secret's UTF-8 bytes are the key (GitHub, Stripe — the whole `whsec_…` —, Shopify, Slack).
    pub fn from_text(
        label: impl Into<String>,
        secret: &SecretString,
        expires_at: Option<i64>,
    ) -> Self {
        Self::from_bytes(
            label,
            secret.expose_secret().as_bytes().to_vec(),
            expires_at,
        )
    }

    /// Standard Webhooks: the key is base64 after an optional `whsec_` prefix.
    pub fn from_whsec(
        label: impl Into<String>,
        secret: &SecretString,
        expires_at: Option<i64>,
    ) -> Result<Self, String> {
        let text = secret.expose_secret();
        let b64 = text.strip_prefix("whsec_").unwrap_or(text);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "is not a whsec_ base64 key".to_owned())?;
        Ok(Self::from_bytes(label, bytes, expires_at))
    }

    pub fn from_bytes(label: impl Into<String>, bytes: Vec<u8>, expires_at: Option<i64>) -> Self {
        Self {
            label: label.into(),
            bytes: SecretBox::new(bytes.into_boxed_slice()),
            expires_at,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    pub fn is_active(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.expose_secret()
    }
}
