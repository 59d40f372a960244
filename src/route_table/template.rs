//! Flow run name templates such as `signup-{first_name}-{request_id}`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Names always available to a template besides the route's fields.
pub const BUILTIN_PLACEHOLDERS: [&str; 2] = ["route", "request_id"];

/// Longest rendered run name; longer names are cut.
pub const MAX_RUN_NAME_CHARS: usize = 200;

/// A parsed template: literal text and `{placeholder}`s. `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunNameTemplate(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Placeholder(String),
}

impl RunNameTemplate {
    /// Parses `raw`; every placeholder must be in `known`.
    pub fn parse(raw: &str, known: &[&str]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    if name.is_empty() || name.contains('{') {
                        return Err("has an empty or unclosed placeholder".into());
                    }
                    if !known.contains(&name.as_str()) {
                        return Err(format!(
                            "uses unknown placeholder {{{name}}}; known: {}",
                            known.join(", ")
                        ));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Placeholder(name));
                }
                '}' => return Err("has a '}' without '{' (write '}}' for a literal one)".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if pieces.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Self(pieces))
    }

    /// Renders with the given values; a missing value renders as empty text.
    pub fn render(&self, values: &BTreeMap<&str, &Value>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Placeholder(name) => match values.get(name.as_str()) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                },
            }
        }
        out.chars().take(MAX_RUN_NAME_CHARS).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields_and_literal_braces() {
        let t =
            RunNameTemplate::parse("signup-{first_name}-{n}{{x}}", &["first_name", "n"]).unwrap();
        let name = json!("Jo");
        let n = json!(7);
        let values = BTreeMap::from([("first_name", &name), ("n", &n)]);
        assert_eq!(t.render(&values), "signup-Jo-7{x}");
    }

    #[test]
    fn rejects_unknown_and_unbalanced_placeholders() {
        assert!(RunNameTemplate::parse("{nope}", &["a"])
            .unwrap_err()
            .contains("unknown placeholder {nope}"));
        assert!(RunNameTemplate::parse("a{", &["a"]).is_err());
        assert!(RunNameTemplate::parse("a}", &["a"]).is_err());
        assert!(RunNameTemplate::parse("", &["a"]).is_err());
    }

    #[test]
    fn cuts_long_names() {
        let t = RunNameTemplate::parse("{a}", &["a"]).unwrap();
        let long = json!("x".repeat(500));
        assert_eq!(
            t.render(&BTreeMap::from([("a", &long)])).chars().count(),
            MAX_RUN_NAME_CHARS
        );
    }
}
