//! A configurable HMAC scheme: header name, SHA-256 or SHA-512, hex or base64, optional prefix,
//! signed content = the body or a template such as `{timestamp}.{body}` with a timestamp header.
//! Covers GitHub-, Shopify- and Convoy-style ("simple") partners without code.

use actix_web::http::header::HeaderName;
use base64::Engine;

use super::{
    any_matches, check_timestamp, hmac, Algorithm, SignedRequest, SigningKey, Verified, VerifyError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// What is signed: the raw body, or text pieces around `{body}`, `{timestamp}` and `{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedContent {
    Body,
    Template(Vec<ContentPiece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentPiece {
    Text(String),
    Body,
    Timestamp,
    Id,
}

#[derive(Debug, Clone)]
pub struct GenericScheme {
    header: HeaderName,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: String,
    content: SignedContent,
    timestamp_header: Option<HeaderName>,
    id_header: Option<HeaderName>,
}

/// A configured header name, checked once (a `&str` would be built anew per lookup); any case
/// (`from_bytes` lowers it).
fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("\"{name}\" is not a valid header name"))
}

impl GenericScheme {
    /// Builds the scheme; the template must contain `{body}`, and `{timestamp}`/`{id}` need
    /// their headers. Errors are messages for the config path.
    pub fn new(
        header: &str,
        algorithm: Algorithm,
        encoding: Encoding,
        prefix: Option<&str>,
        template: Option<&str>,
        timestamp_header: Option<&str>,
        id_header: Option<&str>,
    ) -> Result<Self, String> {
        let content = match template {
            None => SignedContent::Body,
            Some(t) => SignedContent::Template(parse_template(t)?),
        };
        if let SignedContent::Template(pieces) = &content {
            if pieces.contains(&ContentPiece::Timestamp) && timestamp_header.is_none() {
                return Err("the signed content uses {timestamp}: set timestamp_header".into());
            }
            if pieces.contains(&ContentPiece::Id) && id_header.is_none() {
                return Err("the signed content uses {id}: set id_header".into());
            }
        }
        Ok(Self {
            header: header_name(header)?,
            algorithm,
            encoding,
            prefix: prefix.unwrap_or_default().to_owned(),
            content,
            timestamp_header: timestamp_header.map(header_name).transpose()?,
            id_header: id_header.map(header_name).transpose()?,
        })
    }

    pub fn timestamp_header(&self) -> Option<&str> {
        self.timestamp_header.as_ref().map(HeaderName::as_str)
    }

    pub fn verify(
        &self,
        req: &SignedRequest<'_>,
        keys: &[&SigningKey],
        now: i64,
        tolerance: u64,
    ) -> Result<Verified, VerifyError> {
        let raw = req.header(&self.header)?;
        let ts = match &self.timestamp_header {
            Some(name) => Some(req.header(name)?.trim()),
            None => None,
        };
        let id = match &self.id_header {
            Some(name) => req.optional_header(name).map(str::trim),
            None => None,
        };
        let candidates: Vec<Vec<u8>> = raw
            .split([',', ' '])
            .filter_map(|s| s.trim().strip_prefix(self.prefix.as_str()))
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.decode(s))
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::Malformed(self.header.as_str().to_owned()));
        }
        let parts = self.parts(req.body, ts.unwrap_or_default(), id.unwrap_or_default());
        if !any_matches(self.algorithm, keys, &parts, &candidates) {
            return Err(VerifyError::Mismatch);
        }
        if let (Some(ts), Some(name)) = (ts, &self.timestamp_header) {
            check_timestamp(ts, name.as_str(), now, tolerance)?;
        }
        Ok(Verified {
            delivery_id: id.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    pub fn sign(&self, key: &SigningKey, body: &[u8], now: i64) -> Vec<(String, String)> {
        let ts = now.to_string();
        let id = format!("msg_{now}");
        let mac = hmac(self.algorithm, key.bytes(), &self.parts(body, &ts, &id));
        let encoded = match self.encoding {
            Encoding::Hex => hex::encode(mac),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(mac),
        };
        let mut headers = vec![(self.header.to_string(), format!("{}{encoded}", self.prefix))];
        if let Some(name) = &self.timestamp_header {
            headers.push((name.to_string(), ts));
        }
        if let Some(name) = &self.id_header {
            headers.push((name.to_string(), id));
        }
        headers
    }

    fn decode(&self, s: &str) -> Option<Vec<u8>> {
        match self.encoding {
            Encoding::Hex => hex::decode(s).ok(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(s).ok(),
        }
    }

    fn parts<'a>(&'a self, body: &'a [u8], ts: &'a str, id: &'a str) -> Vec<&'a [u8]> {
        match &self.content {
            SignedContent::Body => vec![body],
            SignedContent::Template(pieces) => pieces
                .iter()
                .map(|p| match p {
                    ContentPiece::Text(t) => t.as_bytes(),
                    ContentPiece::Body => body,
                    ContentPiece::Timestamp => ts.as_bytes(),
                    ContentPiece::Id => id.as_bytes(),
                })
                .collect(),
        }
    }
}

fn parse_template(raw: &str) -> Result<Vec<ContentPiece>, String> {
    let mut pieces = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            pieces.push(ContentPiece::Text(rest[..start].to_owned()));
        }
        let end = rest[start..].find('}').ok_or("has an unclosed '{'")? + start;
        pieces.push(match &rest[start + 1..end] {
            "body" => ContentPiece::Body,
            "timestamp" => ContentPiece::Timestamp,
            "id" => ContentPiece::Id,
            other => {
                return Err(format!(
                    "unknown placeholder {{{other}}}; known: {{body}}, {{timestamp}}, {{id}}"
                ))
            }
        });
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(ContentPiece::Text(rest.to_owned()));
    }
    if pieces.iter().filter(|p| **p == ContentPiece::Body).count() != 1 {
        return Err("must contain {body} exactly once".into());
    }
    Ok(pieces)
}
