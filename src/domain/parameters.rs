use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A flow run's parameters: a JSON object, held as a `Value` so that the deployment's schema
/// reads it in place (a `Map` would have to be copied into a `Value` for every check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Map<String, Value>")]
pub struct Parameters(Value);

impl Parameters {
    /// The parameters by name, sorted (serde_json without `preserve_order`).
    pub fn map(&self) -> &Map<String, Value> {
        match &self.0 {
            Value::Object(map) => map,
            // Unreachable: built only from a `Map`.
            _ => empty(),
        }
    }

    /// The same object, as the schema validator reads it.
    pub fn value(&self) -> &Value {
        &self.0
    }
}

impl Default for Parameters {
    fn default() -> Self {
        Self(Value::Object(Map::new()))
    }
}

impl From<Map<String, Value>> for Parameters {
    fn from(map: Map<String, Value>) -> Self {
        Self(Value::Object(map))
    }
}

impl FromIterator<(String, Value)> for Parameters {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self(Value::Object(iter.into_iter().collect()))
    }
}

fn empty() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn serializes_as_the_object_and_reads_only_objects() {
        let p: Parameters = serde_json::from_value(json!({"b": 1, "a": "x"})).unwrap();
        assert_eq!(p.map().keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.value(), &json!({"a": "x", "b": 1}));
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"a":"x","b":1}"#);
        assert!(serde_json::from_value::<Parameters>(json!([1])).is_err());
        assert_eq!(Parameters::default().value(), &json!({}));
    }
}
