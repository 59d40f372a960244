//! Flow run name templates such as `signup-{first_name}-{request_id}`.

use std::fmt::Write as _;

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

    /// Renders, with `write` putting each placeholder's value into the name (nothing for a
    /// missing one), and cuts the name to `MAX_RUN_NAME_CHARS`.
    pub fn render(&self, mut write: impl FnMut(&str, &mut String)) -> String {
        let mut out = String::with_capacity(64);
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Placeholder(name) => write(name, &mut out),
            }
        }
        if let Some((cut, _)) = out.char_indices().nth(MAX_RUN_NAME_CHARS) {
            out.truncate(cut);
        }
        out
    }
}

/// A field's value as run name text: a string as it is, null as nothing, anything else as JSON.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Null => {}
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Writes the value given for each placeholder.
    fn values<'a>(given: &'a [(&str, &Value)]) -> impl FnMut(&str, &mut String) + 'a {
        |name, out| {
            if let Some((_, v)) = given.iter().find(|(n, _)| *n == name) {
                write_value(out, v);
            }
        }
    }

    #[test]
    fn renders_fields_and_literal_braces() {
        let t =
            RunNameTemplate::parse("signup-{first_name}-{n}{{x}}", &["first_name", "n"]).unwrap();
        let name = json!("Jo");
        let n = json!(7);
        assert_eq!(
            t.render(values(&[("first_name", &name), ("n", &n)])),
            "signup-Jo-7{x}"
        );
        let null = json!(null);
        assert_eq!(t.render(values(&[("n", &null)])), "signup--{x}");
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
        let long = json!("é".repeat(500));
        let name = t.render(values(&[("a", &long)]));
        assert_eq!(name.chars().count(), MAX_RUN_NAME_CHARS);
        assert!(name.chars().all(|c| c == 'é'));
    }
}
