//! Map stage: validated fields → flow parameters, run name and idempotency key.

use std::io;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::fields::ValidatedFields;
use crate::domain::{IdempotencyKey, Parameters};
use crate::error::GatewayError;
use crate::request_id::RequestId;
use crate::route_table::{write_value, Route};

/// Everything needed to create one flow run; its tags are its route's.
#[derive(Debug, Clone)]
pub struct FlowRunPlan {
    pub route: Arc<Route>,
    /// Parameters by flow parameter name (renamed fields plus constants), sorted.
    pub parameters: Parameters,
    pub name: Option<String>,
    pub idempotency_key: IdempotencyKey,
}

impl FlowRunPlan {
    /// The key as sent to Prefect.
    pub fn namespaced_key(&self) -> String {
        self.idempotency_key
            .namespaced(self.route.deployment(), self.route.name())
    }

    pub fn tags(&self) -> &[String] {
        self.route.tags()
    }
}

/// The idempotency key is the sender's `Idempotency-Key` if given, else the verified delivery
/// id, else a hash of the route and the parameters.
#[tracing::instrument(level = "debug", name = "stage.map", skip_all, fields(route = %route.name()))]
pub fn plan_flow_run(
    route: &Arc<Route>,
    fields: &ValidatedFields,
    idempotency_header: Option<&str>,
    delivery_id: Option<&str>,
    request_id: &RequestId,
) -> Result<FlowRunPlan, GatewayError> {
    // Collected, not inserted one by one: the map is built from the sorted list at once.
    let parameters: Parameters = fields
        .of(route)
        .map(|(rule, value)| (rule.param().to_owned(), value.clone()))
        .chain(
            route
                .constants()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        )
        .collect();
    let idempotency_key = match (idempotency_header, delivery_id) {
        (Some(raw), _) => IdempotencyKey::from_header(raw)?,
        (None, Some(id)) => IdempotencyKey::from_delivery(id),
        (None, None) => content_key(route, &parameters),
    };
    let name = route.run_name().map(|template| {
        template.render(|placeholder, out| match placeholder {
            "route" => out.push_str(route.name().as_ref()),
            "request_id" => out.push_str(request_id.as_str()),
            field => {
                if let Some((_, value)) = fields.of(route).find(|(rule, _)| rule.name() == field) {
                    write_value(out, value);
                }
            }
        })
    });
    Ok(FlowRunPlan {
        route: Arc::clone(route),
        parameters,
        name,
        idempotency_key,
    })
}

/// The hash of the parameters' canonical JSON (serde_json's `Map` keeps keys sorted without
/// `preserve_order`), written straight into the hasher.
fn content_key(route: &Route, parameters: &Parameters) -> IdempotencyKey {
    let mut hasher = IdempotencyKey::content_hasher(route.name());
    // Writing into a hasher cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), parameters.value());
    IdempotencyKey::from_content_hash(hasher)
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderMap;
    use serde_json::{json, Value};

    use super::*;
    use crate::pipeline::fields::validate_fields;
    use crate::pipeline::parse::InputFields;
    use crate::pipeline::test_route;

    const SIGNUP: &str = r#"
[routes.r]
deployment = "signup/website"
auth = "none"
tags = ["webhook", "campaign:christmas"]
run_name = "signup-{first_name}-{score}-{route}-{request_id}-{missing}"
constants = { source = "website" }
[routes.r.fields]
email = { type = "email" }
first_name = { type = "string", param = "name" }
score = { type = "integer" }
missing = { type = "string", required = false }
"#;

    fn plan(route: &Arc<Route>, body: Value, header: Option<&str>) -> FlowRunPlan {
        plan_with(route, body, header, &RequestId::fresh())
    }

    fn plan_with(
        route: &Arc<Route>,
        body: Value,
        header: Option<&str>,
        id: &RequestId,
    ) -> FlowRunPlan {
        let Value::Object(map) = body else {
            unreachable!("test bodies are objects")
        };
        let input: InputFields = map.into();
        let fields = validate_fields(route, &input, &HeaderMap::new()).unwrap();
        plan_flow_run(route, &fields, header, None, id).unwrap()
    }

    #[test]
    fn parameters_are_renamed_fields_and_constants_and_the_name_fills_its_placeholders() {
        let route = test_route(SIGNUP);
        let id = RequestId::fresh();
        let body = json!({"email": "jo@example.com", "first_name": "Jo", "score": 7});
        let p = plan_with(&route, body, None, &id);
        assert_eq!(
            p.parameters.value(),
            &json!({"email": "jo@example.com", "name": "Jo", "score": 7, "source": "website"})
        );
        let name = format!("signup-Jo-7-r-{}-", id.as_str());
        assert_eq!(p.name.as_deref(), Some(name.as_str()));
        assert_eq!(p.tags(), ["webhook", "campaign:christmas"]);
    }

    #[test]
    fn the_content_key_hashes_the_canonical_json_of_the_parameters() {
        let route = test_route(SIGNUP);
        let body = json!({"score": 7, "first_name": "Jo", "email": "jo@example.com"});
        let p = plan(&route, body, None);
        let canonical = serde_json::to_vec(p.parameters.map()).unwrap();
        assert_eq!(
            p.idempotency_key,
            IdempotencyKey::from_content(route.name(), &canonical)
        );
        let other = plan(
            &route,
            json!({"score": 8, "first_name": "Jo", "email": "jo@example.com"}),
            None,
        );
        assert_ne!(p.idempotency_key, other.idempotency_key);
        let keyed = plan(
            &route,
            json!({"score": 7, "first_name": "Jo", "email": "jo@example.com"}),
            Some("evt-1"),
        );
        assert_eq!(
            keyed.namespaced_key(),
            "flowgate:signup/website:r:key:evt-1"
        );
    }
}
