//! Filters: conditions on body paths and headers that decide whether a request starts a run
//! (and which target gets it). Paths are parsed and patterns compiled once, at config load.

use actix_web::http::header::{HeaderMap, HeaderName};
use regex::Regex;
use serde_json::Value;

use super::compile::Issues;
use crate::configuration::ConditionSettings;
use crate::pipeline::path::{BodyPath, Members};

/// Longest pattern a condition may use, in bytes.
const MAX_PATTERN_BYTES: usize = 1024;
/// Most values in one `one_of`.
const MAX_ONE_OF: usize = 256;

/// Conditions that must all hold. An empty filter lets every request through.
#[derive(Debug, Clone, Default)]
pub struct Filter(Vec<Condition>);

/// One checked condition.
#[derive(Debug, Clone)]
pub struct Condition {
    source: Source,
    test: Test,
}

#[derive(Debug, Clone)]
enum Source {
    Path(BodyPath),
    Header(HeaderName),
}

#[derive(Debug, Clone)]
enum Test {
    Equals(Value),
    OneOf(Vec<Value>),
    Exists(bool),
    Matches(Regex),
}

impl Filter {
    /// The first condition that does not hold for this request, if any.
    pub fn first_failure(
        &self,
        body: &(impl Members + ?Sized),
        headers: &HeaderMap,
    ) -> Option<&Condition> {
        self.0.iter().find(|c| !c.holds(body, headers))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Condition {
    pub fn holds(&self, body: &(impl Members + ?Sized), headers: &HeaderMap) -> bool {
        let found: Option<Value> = match &self.source {
            Source::Path(p) => p.lookup(body).filter(|v| !v.is_null()).cloned(),
            Source::Header(h) => headers
                .get(h)
                .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned())),
        };
        match (&self.test, found) {
            (Test::Exists(wanted), found) => found.is_some() == *wanted,
            (_, None) => false,
            (Test::Equals(expected), Some(v)) => same(expected, &v),
            (Test::OneOf(options), Some(v)) => options.iter().any(|o| same(o, &v)),
            (Test::Matches(re), Some(Value::String(s))) => re.is_match(&s),
            (Test::Matches(_), Some(_)) => false,
        }
    }

    /// What the condition asks, in the words of the config (never the request's values).
    pub fn describe(&self) -> String {
        let at = match &self.source {
            Source::Path(p) => p.to_string(),
            Source::Header(h) => format!("header {h}"),
        };
        match &self.test {
            Test::Equals(v) => format!("{at} must equal {v}"),
            Test::OneOf(vs) => format!(
                "{at} must be one of {}",
                vs.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Test::Exists(true) => format!("{at} must be present"),
            Test::Exists(false) => format!("{at} must be absent"),
            Test::Matches(re) => format!("{at} must match the pattern {}", pattern_text(re)),
        }
    }

    /// The body path this condition reads, if any (for `check-config`).
    pub fn path(&self) -> Option<&BodyPath> {
        match &self.source {
            Source::Path(p) => Some(p),
            Source::Header(_) => None,
        }
    }
}

/// JSON equality, and a text value (form fields and headers are text) equal to a number's
/// or boolean's text.
fn same(expected: &Value, found: &Value) -> bool {
    match (expected, found) {
        (Value::Number(_) | Value::Bool(_), Value::String(s)) => {
            serde_json::from_str::<Value>(s.trim()).is_ok_and(|v| v == *expected)
        }
        _ => expected == found,
    }
}

/// The pattern as configured, without the anchors added at compile time.
fn pattern_text(re: &Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

/// Compiles `filters` (at `path`, e.g. `routes.stripe.targets[0].filters`), collecting issues.
pub(super) fn compile_filter(raw: &[ConditionSettings], path: &str, issues: &mut Issues) -> Filter {
    Filter(
        raw.iter()
            .enumerate()
            .filter_map(|(i, c)| compile_condition(c, &format!("{path}[{i}]"), issues))
            .collect(),
    )
}

/// One condition on its own (for fuzzing and tools): the condition, or every problem with it.
pub fn parse_condition(c: &ConditionSettings) -> Result<Condition, Vec<super::ConfigIssue>> {
    let mut issues = Issues::default();
    compile_condition(c, "filter", &mut issues).ok_or_else(|| issues.into_vec())
}

/// One condition; `None` (with issues) when it is wrong.
pub(super) fn compile_condition(
    c: &ConditionSettings,
    path: &str,
    issues: &mut Issues,
) -> Option<Condition> {
    let source = match (&c.path, &c.header) {
        (Some(p), None) => BodyPath::parse(p)
            .map(Source::Path)
            .map_err(|e| issues.push(format!("{path}.path"), e.to_string()))
            .ok(),
        (None, Some(h)) => HeaderName::from_bytes(h.as_bytes())
            .map(Source::Header)
            .map_err(|_| issues.push(format!("{path}.header"), "is not a valid header name"))
            .ok(),
        _ => {
            issues.push(path, "set exactly one of `path` or `header`");
            None
        }
    };
    let tests = [
        c.equals.is_some(),
        c.one_of.is_some(),
        c.exists.is_some(),
        c.matches.is_some(),
    ];
    if tests.iter().filter(|t| **t).count() != 1 {
        issues.push(
            path,
            "set exactly one test: `equals`, `one_of`, `exists` or `matches`",
        );
        return None;
    }
    let test = if let Some(v) = &c.equals {
        Test::Equals(v.clone())
    } else if let Some(vs) = &c.one_of {
        if vs.is_empty() || vs.len() > MAX_ONE_OF {
            issues.push(
                format!("{path}.one_of"),
                format!("must list 1 to {MAX_ONE_OF} values"),
            );
            return None;
        }
        Test::OneOf(vs.clone())
    } else if let Some(wanted) = c.exists {
        Test::Exists(wanted)
    } else {
        let raw = c.matches.as_deref().unwrap_or_default();
        if raw.len() > MAX_PATTERN_BYTES {
            issues.push(
                format!("{path}.matches"),
                format!("is longer than {MAX_PATTERN_BYTES} bytes"),
            );
            return None;
        }
        match Regex::new(&format!("^(?:{raw})$")) {
            Ok(re) => Test::Matches(re),
            Err(e) => {
                issues.push(
                    format!("{path}.matches"),
                    format!("invalid regular expression: {e}"),
                );
                return None;
            }
        }
    };
    Some(Condition {
        source: source?,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(settings: Value) -> Result<Condition, Vec<String>> {
        let settings: ConditionSettings = serde_json::from_value(settings).unwrap();
        let mut issues = Issues::default();
        compile_condition(&settings, "f[0]", &mut issues).ok_or_else(|| issues.messages())
    }

    fn body() -> serde_json::Map<String, Value> {
        match json!({"type": "invoice.paid", "data": {"object": {"paid": true, "total": 0, "note": null}}})
        {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    fn holds(settings: Value) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-github-event"),
            actix_web::http::header::HeaderValue::from_static("push"),
        );
        condition(settings).unwrap().holds(&body(), &headers)
    }

    #[test]
    fn each_test_reads_paths_and_headers() {
        assert!(holds(json!({"path": "type", "equals": "invoice.paid"})));
        assert!(!holds(json!({"path": "type", "equals": "invoice"})));
        assert!(holds(json!({"path": "data.object.paid", "equals": true})));
        assert!(holds(
            json!({"header": "X-GitHub-Event", "one_of": ["push", "ping"]})
        ));
        assert!(!holds(
            json!({"header": "X-GitHub-Event", "one_of": ["ping"]})
        ));
        assert!(holds(json!({"path": "data.object.total", "exists": true})));
        assert!(
            holds(json!({"path": "data.object.note", "exists": false})),
            "null is absent"
        );
        assert!(holds(
            json!({"path": "data.object.missing", "exists": false})
        ));
        assert!(!holds(json!({"header": "X-Missing", "exists": true})));
        assert!(holds(json!({"path": "type", "matches": "invoice\\..*"})));
        assert!(
            !holds(json!({"path": "type", "matches": "paid"})),
            "the whole value must match"
        );
        assert!(
            !holds(json!({"path": "data.object.total", "matches": "0"})),
            "only text matches"
        );
        assert!(!holds(json!({"path": "nope", "equals": "x"})));
    }

    #[test]
    fn text_equals_the_text_of_numbers_and_booleans() {
        assert!(same(&json!(3), &json!("3")));
        assert!(same(&json!(true), &json!("true")));
        assert!(!same(&json!("3"), &json!(3)));
    }

    #[test]
    fn bad_conditions_name_their_config_path() {
        assert_eq!(
            condition(json!({"path": "a..b", "equals": 1})).unwrap_err(),
            vec!["f[0].path: has an empty key at byte 2 (write a.b, not a..b, .a or a.)"]
        );
        assert_eq!(
            condition(json!({"path": "a", "equals": 1, "exists": true})).unwrap_err(),
            vec!["f[0]: set exactly one test: `equals`, `one_of`, `exists` or `matches`"]
        );
        assert_eq!(
            condition(json!({"equals": 1})).unwrap_err(),
            vec!["f[0]: set exactly one of `path` or `header`"]
        );
        assert!(
            condition(json!({"path": "a", "matches": "("})).unwrap_err()[0]
                .starts_with("f[0].matches: invalid regular expression")
        );
        assert_eq!(
            condition(json!({"header": "bad header", "exists": true})).unwrap_err(),
            vec!["f[0].header: is not a valid header name"]
        );
        assert_eq!(
            condition(json!({"path": "a", "one_of": []})).unwrap_err(),
            vec!["f[0].one_of: must list 1 to 256 values"]
        );
    }

    #[test]
    fn descriptions_use_the_config_words() {
        let c = condition(json!({"header": "X-GitHub-Event", "one_of": ["push"]})).unwrap();
        assert_eq!(
            c.describe(),
            "header x-github-event must be one of \"push\""
        );
        let c = condition(json!({"path": "ref", "matches": "refs/heads/.*"})).unwrap();
        assert_eq!(c.describe(), "ref must match the pattern refs/heads/.*");
    }
}
