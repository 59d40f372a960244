//! Paths into a parsed body, such as `repository.full_name` or `line_items[0].sku`: parsed once
//! when the configuration loads, then each lookup costs one step per segment.

use std::fmt;

use serde_json::{Map, Value};

/// Longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 256;
/// Most steps (keys and indexes) in one path.
pub const MAX_PATH_STEPS: usize = 32;

/// A JSON object's top-level members, found by key: a parsed body or a `serde_json` map.
pub trait Members {
    fn member(&self, key: &str) -> Option<&Value>;
}

impl Members for Map<String, Value> {
    fn member(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

/// A checked path: object keys separated by `.`, each optionally followed by `[index]`s.
/// Keys may hold any character but `.`, `[` and `]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPath {
    steps: Vec<Step>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Why a path does not parse; shown in `check-config` next to the field's config path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("has more than {MAX_PATH_STEPS} steps")]
    TooManySteps,
    #[error("has an empty key at byte {0} (write a.b, not a..b, .a or a.)")]
    EmptyKey(usize),
    #[error("has an unclosed or empty index at byte {0} (write items[0])")]
    BadIndex(usize),
    #[error("has an unexpected character at byte {0} (after an index comes . or [)")]
    Unexpected(usize),
    #[error("must start with a key, not an index")]
    LeadingIndex,
}

impl BodyPath {
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        let bytes = raw.as_bytes();
        let mut steps = Vec::new();
        let mut at = 0;
        loop {
            // A key: up to the next '.', '[' or ']'.
            let start = at;
            while at < bytes.len() && !matches!(bytes[at], b'.' | b'[' | b']') {
                at += 1;
            }
            if at == start {
                return Err(
                    if at < bytes.len() && bytes[at] == b'[' && steps.is_empty() {
                        PathError::LeadingIndex
                    } else {
                        PathError::EmptyKey(at)
                    },
                );
            }
            steps.push(Step::Key(raw[start..at].to_owned()));
            // Indexes after the key.
            while at < bytes.len() && bytes[at] == b'[' {
                let digits = at + 1;
                let mut end = digits;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                if end == digits || end >= bytes.len() || bytes[end] != b']' {
                    return Err(PathError::BadIndex(at));
                }
                let index = raw[digits..end]
                    .parse::<usize>()
                    .map_err(|_| PathError::BadIndex(at))?;
                steps.push(Step::Index(index));
                at = end + 1;
            }
            if steps.len() > MAX_PATH_STEPS {
                return Err(PathError::TooManySteps);
            }
            match bytes.get(at) {
                None => break,
                Some(b'.') => at += 1,
                Some(_) => return Err(PathError::Unexpected(at)),
            }
        }
        Ok(Self {
            steps,
            text: raw.to_owned(),
        })
    }

    /// The top-level key the path starts with.
    pub fn first_key(&self) -> &str {
        match self.steps.first() {
            Some(Step::Key(k)) => k,
            _ => "",
        }
    }

    /// The value at this path in an object body, if every step exists.
    pub fn lookup<'v>(&self, body: &'v (impl Members + ?Sized)) -> Option<&'v Value> {
        let mut steps = self.steps.iter();
        let mut current = match steps.next()? {
            Step::Key(k) => body.member(k)?,
            Step::Index(_) => return None,
        };
        for step in steps {
            current = match (step, current) {
                (Step::Key(k), Value::Object(map)) => map.get(k)?,
                (Step::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

impl fmt::Display for BodyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for BodyPath {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn finds_nested_keys_and_array_items() {
        let body = obj(json!({
            "repository": {"full_name": "octo/hello"},
            "line_items": [{"sku": "A-1"}, {"sku": "B-2"}],
            "grid": [[1, 2], [3, 4]],
            "a b:c": 1
        }));
        let at = |p: &str| BodyPath::parse(p).unwrap().lookup(&body).cloned();
        assert_eq!(at("repository.full_name"), Some(json!("octo/hello")));
        assert_eq!(at("line_items[1].sku"), Some(json!("B-2")));
        assert_eq!(at("grid[1][0]"), Some(json!(3)));
        assert_eq!(at("a b:c"), Some(json!(1)));
        assert_eq!(at("line_items[2].sku"), None);
        assert_eq!(at("repository.full_name.x"), None);
        assert_eq!(at("repository[0]"), None);
        assert_eq!(at("missing"), None);
    }

    #[test]
    fn refuses_malformed_paths_with_their_position() {
        assert_eq!(BodyPath::parse(""), Err(PathError::Empty));
        assert_eq!(BodyPath::parse("a..b"), Err(PathError::EmptyKey(2)));
        assert_eq!(BodyPath::parse(".a"), Err(PathError::EmptyKey(0)));
        assert_eq!(BodyPath::parse("a."), Err(PathError::EmptyKey(2)));
        assert_eq!(BodyPath::parse("a[x]"), Err(PathError::BadIndex(1)));
        assert_eq!(BodyPath::parse("a[1"), Err(PathError::BadIndex(1)));
        assert_eq!(BodyPath::parse("a[]"), Err(PathError::BadIndex(1)));
        assert_eq!(BodyPath::parse("a[0]b"), Err(PathError::Unexpected(4)));
        assert_eq!(BodyPath::parse("a]"), Err(PathError::Unexpected(1)));
        assert_eq!(BodyPath::parse("[0].a"), Err(PathError::LeadingIndex));
        assert_eq!(
            BodyPath::parse(&"a".repeat(MAX_PATH_BYTES + 1)),
            Err(PathError::TooLong)
        );
        assert_eq!(
            BodyPath::parse(&vec!["a"; MAX_PATH_STEPS + 1].join(".")),
            Err(PathError::TooManySteps)
        );
        assert!(BodyPath::parse(&vec!["a"; MAX_PATH_STEPS].join(".")).is_ok());
    }

    fn key() -> impl Strategy<Value = String> {
        "[^.\\[\\]]{1,8}"
    }

    fn steps() -> impl Strategy<Value = Vec<(String, Vec<usize>)>> {
        prop::collection::vec((key(), prop::collection::vec(0usize..4, 0..3)), 1..6)
    }

    fn render(steps: &[(String, Vec<usize>)]) -> String {
        steps
            .iter()
            .map(|(k, idx)| {
                let mut s = k.clone();
                for i in idx {
                    s.push_str(&format!("[{i}]"));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Builds the body that holds `leaf` at exactly these steps.
    fn nest(steps: &[(String, Vec<usize>)], leaf: Value) -> Value {
        steps.iter().rev().fold(leaf, |inner, (k, idx)| {
            let inner = idx.iter().rev().fold(inner, |inner, &i| {
                let mut items = vec![Value::Null; i];
                items.push(inner);
                Value::Array(items)
            });
            json!({ k.clone(): inner })
        })
    }

    proptest! {
        #[test]
        fn a_rendered_path_parses_back_and_finds_its_value(s in steps(), leaf in any::<i64>()) {
            let text = render(&s);
            let path = BodyPath::parse(&text).unwrap();
            prop_assert_eq!(path.to_string(), text);
            prop_assert_eq!(path.first_key(), s[0].0.as_str());
            let body = obj(nest(&s, json!(leaf)));
            prop_assert_eq!(path.lookup(&body), Some(&json!(leaf)));
        }

        #[test]
        fn a_longer_path_finds_nothing_past_a_leaf(s in steps(), extra in key()) {
            let body = obj(nest(&s, json!("leaf")));
            let longer = BodyPath::parse(&format!("{}.{extra}", render(&s))).unwrap();
            prop_assert_eq!(longer.lookup(&body), None);
        }

        #[test]
        fn any_text_parses_or_fails_without_panicking(raw in "\\PC{0,64}") {
            if let Ok(path) = BodyPath::parse(&raw) {
                prop_assert_eq!(path.to_string(), raw.clone());
                prop_assert_eq!(BodyPath::parse(&raw), Ok(path));
            }
        }
    }
}
