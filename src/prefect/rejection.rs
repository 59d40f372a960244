//! Prefect's schema refusal (409) names the field and a reason that starts with the offending
//! value (`'abc' is not of type 'integer'`). Senders get the field and the reason, never the value.

use crate::domain::FieldError;

/// Turns a 409 detail into field errors without echoing any submitted value.
pub fn rejection_reasons(detail: &str) -> Vec<FieldError> {
    const FIELD: &str = "Validation failed for field '";
    const REASON: &str = "Failure reason: ";
    let reason = detail
        .split_once(REASON)
        .map(|(_, r)| r.trim_end_matches('.'));
    let field = detail
        .split_once(FIELD)
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(name, _)| name.to_owned());
    match (field, reason) {
        (Some(field), Some(reason)) => vec![FieldError::new(field, without_value(reason))],
        (None, Some(reason)) => match reason.split_once("' is a required property") {
            Some((quoted, _)) => vec![FieldError::new(
                quoted.trim_start_matches('\''),
                "is a required parameter",
            )],
            None => vec![FieldError::new("parameters", without_value(reason))],
        },
        _ => vec![FieldError::new(
            "parameters",
            "the deployment refused the parameters",
        )],
    }
}

/// `'abc' is not of type 'integer'` → `value is not of type 'integer'`.
fn without_value(reason: &str) -> String {
    match reason.find(" is ") {
        Some(at) => format!("value{}", &reason[at..]),
        None => "the value was refused".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field_but_not_the_value() {
        let got = rejection_reasons(
            "Error creating flow run: Validation failed for field 'assessment_score'. Failure reason: 'secret@x.org' is not of type 'integer'",
        );
        assert_eq!(
            got,
            vec![FieldError::new(
                "assessment_score",
                "value is not of type 'integer'"
            )]
        );
        assert!(!format!("{got:?}").contains("secret@x.org"));
    }

    #[test]
    fn missing_parameters_are_named() {
        let got = rejection_reasons(
            "Error creating flow run: Validation failed. Failure reason: 'email' is a required property",
        );
        assert_eq!(
            got,
            vec![FieldError::new("email", "is a required parameter")]
        );
    }

    #[test]
    fn unknown_shapes_fall_back_to_a_generic_reason() {
        let got = rejection_reasons("Data integrity conflict: jo@example.com");
        assert_eq!(
            got,
            vec![FieldError::new(
                "parameters",
                "the deployment refused the parameters"
            )]
        );
    }
}
