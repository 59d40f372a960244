use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;

use super::{Incoming, RejectionLog};
use crate::configuration::RejectionSettings;
use crate::domain::FieldError;
use crate::error::GatewayError;
use crate::store::{RejectionQuery, SqliteStore, Store};

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("content-type", "application/json"),
        ("x-hub-signature-256", "sha256=abcd"),
        ("user-agent", "partner/1.0"),
    ] {
        h.insert(HeaderName::from_static(n), HeaderValue::from_static(v));
    }
    h
}

/// A refused request: `route` from `client`, unauthenticated, without a delivery id.
fn incoming<'a>(
    route: &'a str,
    client: IpAddr,
    error: &'a GatewayError,
    headers: &'a HeaderMap,
    body: Option<&'a Bytes>,
) -> Incoming<'a> {
    Incoming {
        route,
        client: Some(client),
        error,
        request_id: "r",
        headers,
        body,
        authenticated: false,
        secret_headers: &[],
        delivery_id: None,
    }
}

fn setup(settings: RejectionSettings) -> (tempfile::TempDir, Arc<dyn Store>, RejectionLog) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("flowgate.db"), 64).unwrap());
    let log = RejectionLog::new(store.clone(), settings);
    (dir, store, log)
}

async fn all(store: &Arc<dyn Store>) -> Vec<crate::store::Rejection> {
    store.flush().await.unwrap();
    store
        .list_rejections(RejectionQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flood_of_identical_rejections_is_one_record_with_the_right_count() {
    let (_dir, store, log) = setup(RejectionSettings::default());
    let error = GatewayError::ValidationFailed(vec![FieldError::new("email", "is not an email")]);
    let h = headers();
    let body = Bytes::from_static(br#"{"email":"nope"}"#);
    for _ in 0..100_000 {
        log.record(Incoming {
            authenticated: true,
            ..incoming(
                "christmas-signup",
                IpAddr::from([203, 0, 113, 7]),
                &error,
                &h,
                Some(&body),
            )
        });
    }
    log.flush();
    let rows = all(&store).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].count, 100_000);
    assert_eq!(rows[0].code, "validation_failed");
    let full = store.get_rejection(rows[0].id).await.unwrap().unwrap();
    assert_eq!(full.body.as_deref(), Some(body.as_ref()));
    assert!(full.authenticated, "the request passed authentication");
    assert_eq!(full.request_id, "r");
    let mut names: Vec<&str> = full.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["content-type", "user-agent"],
        "the signature is not kept"
    );
    assert_eq!(
        full.field_errors,
        Some(serde_json::json!([{"field": "email", "message": "is not an email"}]))
    );
}

#[tokio::test]
async fn many_clients_beyond_the_cap_are_counted_into_one_record_per_route_and_code() {
    let (_dir, store, log) = setup(RejectionSettings {
        records_per_sec: 10,
        ..RejectionSettings::default()
    });
    let error = GatewayError::MalformedBody("not JSON".into());
    let h = headers();
    for n in 0..5_000u32 {
        log.record(incoming(
            "christmas-signup",
            IpAddr::from((0x0a00_0000 + n).to_be_bytes()),
            &error,
            &h,
            None,
        ));
    }
    log.flush();
    let rows = all(&store).await;
    // 10 a second at most (the loop may cross a second boundary once), plus the overflow.
    assert!(rows.len() <= 21, "{} rows", rows.len());
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 5_000);
    assert!(rows.iter().any(|r| r.client.is_none() && r.count > 1000));
}

#[tokio::test]
async fn rate_limited_requests_are_counted_without_headers_or_body() {
    let (_dir, store, log) = setup(RejectionSettings::default());
    let error = GatewayError::RateLimited {
        retry_after_secs: 1,
    };
    let h = headers();
    let body = Bytes::from_static(b"{}");
    for _ in 0..3 {
        log.record(incoming(
            "christmas-signup",
            IpAddr::from([203, 0, 113, 9]),
            &error,
            &h,
            Some(&body),
        ));
    }
    log.flush();
    let rows = all(&store).await;
    assert_eq!(rows.len(), 1);
    let full = store.get_rejection(rows[0].id).await.unwrap().unwrap();
    assert_eq!(full.count, 3);
    assert!(full.headers.is_empty() && full.body.is_none());
}

#[tokio::test]
async fn a_long_unknown_route_is_kept_to_its_first_64_characters_and_counted_as_one() {
    let (_dir, store, log) = setup(RejectionSettings::default());
    let error = GatewayError::UnknownRoute("x".into());
    let h = headers();
    // Two-byte characters: the cut falls on a character, not a byte.
    let base = "é".repeat(64);
    for tail in ["a", "b", "ccc"] {
        log.record(incoming(
            &format!("{base}{tail}"),
            IpAddr::from([203, 0, 113, 9]),
            &error,
            &h,
            None,
        ));
    }
    log.flush();
    let rows = all(&store).await;
    assert_eq!(rows.len(), 1, "the same first 64 characters: one record");
    assert_eq!(rows[0].route, base);
    assert_eq!(rows[0].count, 3);
}
