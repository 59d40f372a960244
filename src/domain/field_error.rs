use std::borrow::Cow;

use serde::Serialize;

/// One failing input field, as reported in a 422 body: `{"field": "...", "message": "..."}`.
/// The name is the error's own copy: a count on the route's shared name would be a cache line
/// every worker writes for every error of a 422 flood. A fixed message is borrowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(value_type = String)]
    pub field: Box<str>,
    #[schema(value_type = String)]
    pub message: Cow<'static, str>,
}

impl FieldError {
    pub fn new(field: impl Into<Box<str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
