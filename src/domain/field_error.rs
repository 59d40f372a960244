use serde::Serialize;

use super::ShortText;

/// One failing input field, as reported in a 422 body: `{"field": "...", "message": "..."}`.
/// The name is the error's own copy, inline when short: a count on the route's shared name
/// would be a cache line every worker writes for every error of a 422 flood, and a `String`
/// an allocation. A fixed message is borrowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(value_type = String)]
    pub field: ShortText,
    #[schema(value_type = String)]
    pub message: ShortText,
}

impl FieldError {
    pub fn new(field: impl Into<ShortText>, message: impl Into<ShortText>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
