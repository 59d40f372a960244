//! Property tests for the field rules: typed values round-trip from JSON and from form text,
//! bounds hold exactly, and no input makes a rule panic or echo itself into a message.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::field::{FieldKind, FieldRule, FieldSource, Presence, DEFAULT_OBJECT_MAX_BYTES};
use super::template::{write_value, RunNameTemplate, MAX_RUN_NAME_CHARS};

fn rule(kind: FieldKind, min: Option<f64>, max: Option<f64>) -> FieldRule {
    FieldRule {
        name: "f".into(),
        param: "f".into(),
        source: FieldSource::Key("f".into()),
        max_bytes: DEFAULT_OBJECT_MAX_BYTES,
        kind,
        presence: Presence::Required,
        min,
        max,
        min_length: None,
        max_length: None,
        pattern: None,
        values: vec!["GPS".into(), "Money".into()],
        messages: Default::default(),
    }
}

const KINDS: [FieldKind; 8] = [
    FieldKind::String,
    FieldKind::Integer,
    FieldKind::Number,
    FieldKind::Boolean,
    FieldKind::Email,
    FieldKind::Url,
    FieldKind::Enum,
    FieldKind::Uuid,
];

proptest! {
    #[test]
    fn integers_in_bounds_round_trip_from_json_and_form_text(n in -1_000_000i64..1_000_000, lo in -1_000_000i64..0, hi in 0i64..1_000_000) {
        let r = rule(FieldKind::Integer, Some(lo as f64), Some(hi as f64));
        let from_json = r.check(&json!(n));
        let from_form = r.check(&Value::String(n.to_string()));
        prop_assert_eq!(&from_json, &from_form);
        if (lo..=hi).contains(&n) {
            prop_assert_eq!(from_json, Ok(json!(n)));
        } else {
            prop_assert!(from_json.is_err());
        }
    }

    #[test]
    fn numbers_keep_their_value(x in -1.0e9f64..1.0e9) {
        let r = rule(FieldKind::Number, None, None);
        let typed = r.check(&Value::String(x.to_string())).unwrap();
        prop_assert_eq!(typed.as_f64(), Some(x));
    }

    #[test]
    fn no_text_panics_any_rule_or_leaks_into_its_message(s in "\\PC{0,40}") {
        let marker = format!("{s}\u{1F50F}");
        for kind in KINDS {
            let r = rule(kind, Some(0.0), Some(10.0));
            match r.check(&Value::String(marker.clone())) {
                Ok(v) => prop_assert!(kind == FieldKind::String || v != Value::Null),
                Err(message) => prop_assert!(!message.contains('\u{1F50F}'), "{message}"),
            }
        }
    }

    #[test]
    fn rendered_run_names_stay_bounded(value in "\\PC{0,400}") {
        let t = RunNameTemplate::parse("signup-{a}-{a}", &["a"]).unwrap();
        let v = Value::String(value);
        let name = t.render(|_, out| write_value(out, &v));
        prop_assert!(name.chars().count() <= MAX_RUN_NAME_CHARS);
        prop_assert!(name.starts_with("signup-"));
    }
}
