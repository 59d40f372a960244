//! `POST /admin/reload`: reads the configuration file and its secrets again and switches to it
//! if it is valid (as `SIGHUP` does); a refusal names each problem and leaves the running
//! configuration serving.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{noted, Authorized};
use crate::domain::FieldError;
use crate::error::{ApiError, GatewayError};
use crate::state::AppState;
use crate::timefmt::rfc3339_secs;

pub async fn reload(
    auth: Authorized,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = crate::startup::reload(&state.live, &state.manager).await;
    if !report.ok {
        let errors = report
            .errors
            .iter()
            .map(|line| match line.split_once(": ") {
                Some((path, message)) if !path.contains(' ') => {
                    FieldError::new(path, message.to_owned())
                }
                _ => FieldError::new("configuration", line.clone()),
            })
            .collect();
        return Err(auth.fail(GatewayError::ReloadFailed(errors)));
    }
    let current = state.live.current();
    let answer = HttpResponse::Ok().json(json!({
        "status": "reloaded",
        "generation": current.generation,
        "loaded_at": rfc3339_secs(current.loaded_at),
        "routes": current.routes.len(),
        "needs_restart": report.needs_restart,
    }));
    Ok(noted(
        answer,
        "reloaded",
        &format!("generation {}", current.generation),
    ))
}
