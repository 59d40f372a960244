//! `flowgate sign`: the headers (and a ready curl command) a partner would send to a route,
//! for onboarding and for ops to test. Secrets are read as the gateway reads them; bearer
//! tokens are referenced by variable, never printed.

use std::collections::BTreeMap;

use crate::configuration::Settings;
use crate::route_table::{compile_routes, RouteAuth};

/// What to sign and with which secret.
pub struct SignRequest<'a> {
    pub route: &'a str,
    pub body: &'a [u8],
    /// Where the body came from, for the curl command (`None`: inline).
    pub body_file: Option<&'a str>,
    /// Read the secret from this variable instead of the route's own source.
    pub secret_env: Option<&'a str>,
    pub now: i64,
}

/// The headers to send, and a curl command that sends them.
pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub curl: String,
}

pub fn sign(settings: &Settings, req: &SignRequest<'_>) -> Result<Signed, Vec<String>> {
    let route_settings = settings
        .routes
        .get(req.route)
        .ok_or_else(|| vec![format!("no route named \"{}\"", req.route)])?;
    let only = BTreeMap::from([(req.route.to_owned(), route_settings.clone())]);
    let lookup = |name: &str| std::env::var(req.secret_env.unwrap_or(name)).ok();
    let table = compile_routes(&only, settings.server.max_body_bytes, &lookup)
        .map_err(|issues| issues.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let route = table
        .get(req.route)
        .ok_or_else(|| vec![format!("route \"{}\" did not compile", req.route)])?;
    let mut headers = vec![(
        "Content-Type".to_owned(),
        route
            .content_types()
            .first()
            .map_or("application/json", |k| k.media_type())
            .to_owned(),
    )];
    match route.auth() {
        RouteAuth::None => {}
        RouteAuth::Bearer { .. } => {
            let var = req.secret_env.unwrap_or("TOKEN");
            headers.push(("Authorization".into(), format!("Bearer ${var}")));
        }
        RouteAuth::Hmac { scheme, .. } => {
            let active = route.auth().active_keys(req.now);
            let key = active
                .first()
                .ok_or_else(|| vec![format!("route \"{}\" has no active secret", req.route)])?;
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            headers.extend(scheme.sign(key, req.body, req.now, &id));
        }
    }
    let url = format!(
        "http://{}:{}{}",
        settings.server.host,
        settings.server.port,
        route.path()
    );
    let mut curl = format!("curl -sS -X POST '{url}'");
    for (name, value) in &headers {
        let quote = if value.contains('$') { '"' } else { '\'' };
        curl.push_str(&format!(" \\\n  -H {quote}{name}: {value}{quote}"));
    }
    match req.body_file {
        Some(file) => curl.push_str(&format!(" \\\n  --data-binary @{file}")),
        None => curl.push_str(&format!(
            " \\\n  --data-binary '{}'",
            String::from_utf8_lossy(req.body).replace('\'', "'\\''")
        )),
    }
    Ok(Signed { headers, curl })
}
