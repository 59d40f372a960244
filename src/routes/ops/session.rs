//! Sessions of the ops page: a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie, kept
//! in memory (a bounded map with expiry: a restart signs everyone out), each with its own CSRF
//! token for the page's forms.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::header::COOKIE;
use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "flowgate_session";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most; beyond, the one expiring first goes.
pub const MAX_SESSIONS: usize = 64;

/// A session as a request sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie's value.
    pub id: String,
    /// The token every state-changing form carries.
    pub csrf: String,
}

struct Entry {
    csrf: String,
    expires: Instant,
    /// A line for the next page (what the last action did).
    flash: Option<String>,
}

/// Open sessions, keyed by the SHA-256 of their id (the ids themselves are not kept).
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Sessions {
    fn map(&self) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // Plain data: a panicking holder leaves at worst a session too many.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session: a fresh id and CSRF token.
    pub fn open(&self) -> Result<Session, getrandom::Error> {
        let session = Session {
            id: random_hex()?,
            csrf: random_hex()?,
        };
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, e| e.expires > now);
        while map.len() >= MAX_SESSIONS {
            let Some(first) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&first);
        }
        map.insert(
            key(&session.id),
            Entry {
                csrf: session.csrf.clone(),
                expires: now + SESSION_TTL,
                flash: None,
            },
        );
        Ok(session)
    }

    /// The request's session, if its cookie names one still open.
    pub fn find(&self, req: &HttpRequest) -> Option<Session> {
        let id = cookie(req)?;
        let mut map = self.map();
        let k = key(&id);
        let entry = map.get(&k)?;
        if entry.expires <= Instant::now() {
            map.remove(&k);
            return None;
        }
        Some(Session {
            csrf: entry.csrf.clone(),
            id,
        })
    }

    /// Ends a session.
    pub fn close(&self, session: &Session) {
        self.map().remove(&key(&session.id));
    }

    /// Leaves a line for the session's next page.
    pub fn flash(&self, session: &Session, line: String) {
        if let Some(entry) = self.map().get_mut(&key(&session.id)) {
            entry.flash = Some(line);
        }
    }

    /// Takes the line left for this page, if any.
    pub fn take_flash(&self, session: &Session) -> Option<String> {
        self.map()
            .get_mut(&key(&session.id))
            .and_then(|e| e.flash.take())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }

    /// The `Set-Cookie` value that gives the browser this session. No `Secure`: the admin
    /// listener is plain HTTP on loopback, reached through an SSH tunnel; nginx never
    /// exposes /admin.
    pub fn set_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age={}",
            self.id,
            SESSION_TTL.as_secs()
        )
    }
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=0")
}

/// Whether `presented` is the admin token: both hashed, compared in constant time.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let presented = Sha256::digest(presented.trim().as_bytes());
    bool::from(Sha256::digest(expected.as_bytes()).ct_eq(&presented))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 256 random bits from the OS, as hex.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The session cookie's value, from any `Cookie` header.
fn cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request_with(session: &Session) -> HttpRequest {
        TestRequest::default()
            .insert_header((COOKIE, format!("other=1; {COOKIE_NAME}={}", session.id)))
            .to_http_request()
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_gone_once_closed() {
        let sessions = Sessions::default();
        let s = sessions.open().unwrap();
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let found = sessions.find(&request_with(&s)).unwrap();
        assert_eq!(found.csrf, s.csrf);
        sessions.close(&s);
        assert!(sessions.find(&request_with(&s)).is_none());
    }

    #[test]
    fn the_count_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.open().unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.open().unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.find(&request_with(&first)).is_none());
    }

    #[test]
    fn csrf_and_token_comparisons() {
        let s = Sessions::default().open().unwrap();
        assert!(s.csrf_matches(Some(&s.csrf)));
        assert!(!s.csrf_matches(Some("x")));
        assert!(!s.csrf_matches(None));
        assert!(token_matches(" secret ", "secret"));
        assert!(!token_matches("secreT", "secret"));
    }

    #[test]
    fn a_flash_line_is_shown_once() {
        let sessions = Sessions::default();
        let s = sessions.open().unwrap();
        sessions.flash(&s, "done".into());
        assert_eq!(sessions.take_flash(&s).as_deref(), Some("done"));
        assert_eq!(sessions.take_flash(&s), None);
    }
}
