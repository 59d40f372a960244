use std::fmt;
use std::sync::Arc;

/// The name of a configured route: the `{route}` in `/hooks/{route}`.
///
/// Lowercase ASCII letters, digits, `-` and `_`, starting with a letter or digit, at most 64 bytes.
/// Shared: a request's log line and metric labels take the name without copying it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteNameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 64 characters")]
    TooLong,
    #[error(
        "may only contain lowercase letters, digits, '-' and '_', starting with a letter or digit"
    )]
    InvalidCharacter,
}

impl RouteName {
    pub fn parse(raw: &str) -> Result<Self, RouteNameError> {
        if raw.is_empty() {
            return Err(RouteNameError::Empty);
        }
        if raw.len() > 64 {
            return Err(RouteNameError::TooLong);
        }
        let first_ok = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !(first_ok && rest_ok) {
            return Err(RouteNameError::InvalidCharacter);
        }
        Ok(Self(Arc::from(raw)))
    }

    /// The name as the shared text (a metric label, a log note).
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl AsRef<str> for RouteName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kebab_and_snake_names() {
        assert!(RouteName::parse("christmas-signup").is_ok());
        assert!(RouteName::parse("partner_2").is_ok());
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(RouteName::parse(""), Err(RouteNameError::Empty));
        assert_eq!(
            RouteName::parse("Christmas"),
            Err(RouteNameError::InvalidCharacter)
        );
        assert_eq!(
            RouteName::parse("-lead"),
            Err(RouteNameError::InvalidCharacter)
        );
        assert_eq!(
            RouteName::parse("a/b"),
            Err(RouteNameError::InvalidCharacter)
        );
        assert_eq!(
            RouteName::parse(&"a".repeat(65)),
            Err(RouteNameError::TooLong)
        );
    }
}
