use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

/// One failing input field, as reported in a 422 body: `{"field": "...", "message": "..."}`.
/// A route's field name is shared and a fixed message borrowed: a 422 naming a dozen missing
/// fields allocates nothing for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(value_type = String)]
    pub field: Arc<str>,
    #[schema(value_type = String)]
    pub message: Cow<'static, str>,
}

impl FieldError {
    pub fn new(field: impl Into<Arc<str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
