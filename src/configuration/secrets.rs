//! Secrets come from the environment (or a file it names), never from the config file.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

/// Environment variable holding Prefect's basic-auth string `user:password`.
pub const PREFECT_AUTH_STRING_ENV: &str = "FLOWGATE_PREFECT_AUTH_STRING";
/// Environment variable holding the token for the admin endpoints (`/admin/…`).
pub const ADMIN_TOKEN_ENV: &str = "FLOWGATE_ADMIN_TOKEN";

/// Reads the admin token (`FLOWGATE_ADMIN_TOKEN` or the file named by `…_FILE`); `None` disables
/// the admin endpoints other than `/metrics`.
pub fn admin_token_from_env() -> Result<Option<SecretString>, SecretError> {
    read_secret(ADMIN_TOKEN_ENV, &|name: &str| std::env::var(name).ok())
}

/// Environment variable holding the PostgreSQL store's password.
pub const STORE_PASSWORD_ENV: &str = "FLOWGATE_STORE_PASSWORD";

/// Reads the PostgreSQL password (`FLOWGATE_STORE_PASSWORD` or the file named by `…_FILE`).
pub fn store_password_from_env() -> Result<Option<SecretString>, SecretError> {
    read_secret(STORE_PASSWORD_ENV, &|name: &str| std::env::var(name).ok())
}

/// Environment variable holding a Prefect API key, sent as a bearer token.
pub const PREFECT_API_KEY_ENV: &str = "FLOWGATE_PREFECT_API_KEY";

/// How flowgate authenticates to Prefect. Debug output never shows the secret.
#[derive(Debug, Clone)]
pub enum PrefectAuth {
    None,
    Basic(SecretString),
    Bearer(SecretString),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{var} and {other} are both set; choose one")]
    Conflict {
        var: &'static str,
        other: &'static str,
    },
    #[error("{var}_FILE names {path}, which cannot be read")]
    File {
        var: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{var} is set but empty")]
    Empty { var: &'static str },
    #[error("{PREFECT_AUTH_STRING_ENV} must look like user:password")]
    AuthStringShape,
}

impl PrefectAuth {
    /// Reads `FLOWGATE_PREFECT_AUTH_STRING` / `FLOWGATE_PREFECT_API_KEY`, or their `_FILE` forms.
    pub fn from_env() -> Result<Self, SecretError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        let basic = read_secret(PREFECT_AUTH_STRING_ENV, &lookup)?;
        let bearer = read_secret(PREFECT_API_KEY_ENV, &lookup)?;
        match (basic, bearer) {
            (Some(_), Some(_)) => Err(SecretError::Conflict {
                var: PREFECT_AUTH_STRING_ENV,
                other: PREFECT_API_KEY_ENV,
            }),
            (Some(basic), None) => {
                if !basic.expose_secret().contains(':') {
                    return Err(SecretError::AuthStringShape);
                }
                Ok(Self::Basic(basic))
            }
            (None, Some(key)) => Ok(Self::Bearer(key)),
            (None, None) => Ok(Self::None),
        }
    }
}

/// A secret file's content without its trailing newline (as `echo` and editors leave it).
pub(crate) fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads `VAR`, or the file named by `VAR_FILE` (trailing newline trimmed).
fn read_secret(
    var: &'static str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>, SecretError> {
    let value = match lookup(var) {
        Some(v) => v,
        None => match lookup(&format!("{var}_FILE")) {
            Some(path) => read_secret_file(Path::new(&path))
                .map_err(|source| SecretError::File { var, path, source })?,
            None => return Ok(None),
        },
    };
    if value.is_empty() {
        return Err(SecretError::Empty { var });
    }
    Ok(Some(SecretString::from(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_variables_means_no_auth() {
        assert!(matches!(
            PrefectAuth::from_lookup(lookup(&[])),
            Ok(PrefectAuth::None)
        ));
    }

    #[test]
    fn basic_auth_is_read_and_never_printed() {
        let auth = PrefectAuth::from_lookup(lookup(&[(PREFECT_AUTH_STRING_ENV, "admin:hunter2")]))
            .unwrap();
        assert!(matches!(auth, PrefectAuth::Basic(_)));
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "pnu_abc\n").unwrap();
        let var = format!("{PREFECT_API_KEY_ENV}_FILE");
        let auth =
            PrefectAuth::from_lookup(lookup(&[(var.as_str(), path.to_str().unwrap())])).unwrap();
        match auth {
            PrefectAuth::Bearer(k) => assert_eq!(k.expose_secret(), "pnu_abc"),
            other => panic!("expected bearer, got {other:?}"),
        }
    }

    #[test]
    fn conflicting_or_malformed_secrets_are_errors() {
        assert!(matches!(
            PrefectAuth::from_lookup(lookup(&[
                (PREFECT_AUTH_STRING_ENV, "a:b"),
                (PREFECT_API_KEY_ENV, "k")
            ])),
            Err(SecretError::Conflict { .. })
        ));
        assert!(matches!(
            PrefectAuth::from_lookup(lookup(&[(PREFECT_AUTH_STRING_ENV, "nocolon")])),
            Err(SecretError::AuthStringShape)
        ));
        assert!(matches!(
            PrefectAuth::from_lookup(lookup(&[(PREFECT_API_KEY_ENV, "")])),
            Err(SecretError::Empty { .. })
        ));
    }
}
