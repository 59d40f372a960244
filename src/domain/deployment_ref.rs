use std::fmt;

/// A Prefect deployment named as `flow-name/deployment-name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentRef {
    flow: String,
    deployment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentRefError {
    #[error("expected \"flow-name/deployment-name\"")]
    Shape,
    #[error("names must not contain whitespace or control characters")]
    InvalidCharacter,
}

impl DeploymentRef {
    pub fn parse(raw: &str) -> Result<Self, DeploymentRefError> {
        let (flow, deployment) = raw.split_once('/').ok_or(DeploymentRefError::Shape)?;
        if flow.is_empty() || deployment.is_empty() || deployment.contains('/') {
            return Err(DeploymentRefError::Shape);
        }
        let bad = |s: &str| s.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad(flow) || bad(deployment) {
            return Err(DeploymentRefError::InvalidCharacter);
        }
        Ok(Self {
            flow: flow.to_owned(),
            deployment: deployment.to_owned(),
        })
    }

    pub fn flow(&self) -> &str {
        &self.flow
    }

    pub fn deployment(&self) -> &str {
        &self.deployment
    }
}

impl fmt::Display for DeploymentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.flow, self.deployment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flow_and_deployment() {
        let r = DeploymentRef::parse("christmas-signup-handler/website")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.flow(), "christmas-signup-handler");
        assert_eq!(r.deployment(), "website");
        assert_eq!(r.to_string(), "christmas-signup-handler/website");
    }

    #[test]
    fn rejects_malformed_refs() {
        for raw in ["", "flow", "/dep", "flow/", "a/b/c"] {
            assert_eq!(
                DeploymentRef::parse(raw),
                Err(DeploymentRefError::Shape),
                "{raw}"
            );
        }
        assert_eq!(
            DeploymentRef::parse("my flow/dep"),
            Err(DeploymentRefError::InvalidCharacter)
        );
    }
}
