//! Honeypot: a field real users never fill (hidden in the form). A request that fills it is
//! answered like a real one and starts nothing.

use super::parse::InputFields;
use crate::route_table::Route;

/// Removes the honeypot field from the input; true when it was filled in.
pub fn take_honeypot(route: &Route, input: &mut InputFields<'_>) -> bool {
    let Some(name) = route.honeypot() else {
        return false;
    };
    match input.remove(name) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}
