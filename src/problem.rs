//! The body of every error answer: RFC 9457 problem details with flowgate's extensions, written
//! by hand into one buffer. A flood of rejected requests is answered with these, so they are
//! written without serde's per-byte escaping; the `Serialize` form is the reference the
//! written bytes are tested against, and `ToSchema` documents them.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

use crate::domain::FieldError;
use crate::error::GatewayError;
use crate::json_text::{push_contents, push_str, Escaping};

/// RFC 9457 problem details with flowgate's extensions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// `urn:flowgate:problem:{code}`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: ProblemType,
    title: &'a str,
    status: u16,
    code: &'a str,
    #[schema(value_type = String)]
    detail: Shown<'a, GatewayError>,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldError>>)]
    errors: Option<&'a [FieldError]>,
    /// For `timestamp_out_of_window`: `too_old` or `too_new`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    reason: Option<&'static str>,
}

impl<'a> Problem<'a> {
    pub fn new(error: &'a GatewayError, request_id: &'a str) -> Self {
        let status = error.status();
        let code = error.code();
        Self {
            kind: ProblemType(code),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: Shown(error),
            request_id,
            errors: error.field_errors(),
            reason: match error {
                GatewayError::TimestampOutOfWindow { too_new: true, .. } => Some("too_new"),
                GatewayError::TimestampOutOfWindow { too_new: false, .. } => Some("too_old"),
                _ => None,
            },
        }
    }

    /// The compact JSON serde_json would write for `self`, appended to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"urn:flowgate:problem:");
        push_contents(out, self.kind.0);
        out.extend_from_slice(b"\",\"title\":");
        push_str(out, self.title);
        // Writing into a Vec cannot fail.
        let _ = write!(out, ",\"status\":{}", self.status);
        out.extend_from_slice(b",\"code\":");
        push_str(out, self.code);
        out.extend_from_slice(b",\"detail\":\"");
        let _ = write!(Escaping(out), "{}", self.detail.0);
        out.extend_from_slice(b"\",\"request_id\":");
        push_str(out, self.request_id);
        if let Some(errors) = self.errors {
            out.extend_from_slice(b",\"errors\":[");
            for (i, e) in errors.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"field\":");
                push_str(out, &e.field);
                out.extend_from_slice(b",\"message\":");
                push_str(out, &e.message);
                out.push(b'}');
            }
            out.push(b']');
        }
        if let Some(reason) = self.reason {
            out.extend_from_slice(b",\"reason\":");
            push_str(out, reason);
        }
        out.push(b'}');
    }
}

/// A value's `Display`, written straight into the answer (no string built first).
pub struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

/// `urn:flowgate:problem:{code}`, written without building the string.
pub struct ProblemType(&'static str);

impl Serialize for ProblemType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("urn:flowgate:problem:{}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldError;

    fn written(error: &GatewayError, request_id: &str) -> String {
        let mut out = Vec::new();
        Problem::new(error, request_id).write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn serialized(error: &GatewayError, request_id: &str) -> String {
        serde_json::to_string(&Problem::new(error, request_id)).unwrap()
    }

    #[test]
    fn the_written_body_is_what_serde_json_writes() {
        let errors = vec![
            FieldError::new("email", "must be a valid email address"),
            FieldError::new("we\"ird\\key\n", "must be between 0 and 100"),
            FieldError::new("header X-Tab", "contains\ta tab and \u{1} a control"),
        ];
        let cases = [
            GatewayError::ValidationFailed(errors.clone()),
            GatewayError::ValidationFailed(Vec::new()),
            GatewayError::ParametersRejected(errors),
            GatewayError::MalformedBody("invalid JSON at line 1 column 68: \"x\"\n".into()),
            GatewayError::UnknownRoute("a\"b".into()),
            GatewayError::TimestampOutOfWindow {
                too_new: true,
                window: 300,
            },
            GatewayError::TimestampOutOfWindow {
                too_new: false,
                window: 300,
            },
            GatewayError::RateLimited {
                retry_after_secs: 7,
            },
            GatewayError::NotFound,
            GatewayError::StoreUnavailable,
        ];
        for error in &cases {
            for id in ["01a23338-49d0-74ea-b714-0f2d657a592b", "abc.def_1"] {
                assert_eq!(written(error, id), serialized(error, id), "{error:?}");
            }
        }
    }
}
