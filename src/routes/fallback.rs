//! Answers for paths and methods nothing else serves, in the same problem+json shape.

use actix_web::HttpResponse;

use crate::error::{ApiError, GatewayError};
use crate::request_id::RequestId;

pub async fn not_found(request_id: RequestId) -> Result<HttpResponse, ApiError> {
    Err(GatewayError::NotFound.with_request_id(&request_id))
}
