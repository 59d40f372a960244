//! The rejection log's records: what ops see of a request flowgate refused or could not take,
//! and what a replay needs. Identical rejections (same client, route and code) arriving close
//! together share one record with a count.

/// One refused request, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// A UUIDv7: ordered by time, so the newest-first list and the time filters are index seeks.
    pub id: uuid::Uuid,
    /// Unix milliseconds of the first and the latest of the identical requests counted here.
    pub first_ms: i64,
    pub last_ms: i64,
    pub count: u64,
    /// The configured route's name, or the path segment (bounded) of an unknown route.
    pub route: String,
    pub client: Option<String>,
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// The field errors of a 422, as the answer carried them (JSON).
    pub field_errors: Option<serde_json::Value>,
    pub request_id: String,
    /// Headers with secrets removed (signatures, credentials, cookies, configured names).
    pub headers: Vec<(String, String)>,
    /// The body as received, up to the configured size (masking applies on display only).
    pub body: Option<Vec<u8>>,
    /// The size of the body as received (larger than `body` when it was cut).
    pub body_size: u64,
    /// The whole body is stored (also known in lists, which carry no bodies).
    pub body_kept: bool,
    /// The request passed authentication: it may be replayed.
    pub authenticated: bool,
    /// The partner's delivery id (or body digest) of a signed request: a replay shares the
    /// original's idempotency, so it and a later redelivery make one run.
    pub delivery_id: Option<String>,
    /// The last replay: when (unix ms) and what the pipeline answered (code).
    pub replayed: Option<(i64, String)>,
}

impl Rejection {
    /// The body was kept whole.
    pub fn body_complete(&self) -> bool {
        self.body_kept
    }
}

/// Filters and page of `GET /admin/rejections`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectionQuery {
    pub route: Option<String>,
    pub code: Option<String>,
    pub client: Option<String>,
    /// Unix milliseconds, inclusive lower and exclusive upper bound on the first request.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only records older than this id (the previous page's last).
    pub before: Option<uuid::Uuid>,
    pub limit: usize,
}

/// Rejections per route and code, summed over a period (the ops page's counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionCount {
    pub route: String,
    pub code: String,
    pub count: u64,
}

/// The writes of the rejection log.
#[derive(Debug, Clone)]
pub enum RejectionWrite {
    Insert(Box<Rejection>),
    /// `n` more identical requests, the latest at `last_ms`.
    AddCount {
        id: uuid::Uuid,
        n: u64,
        last_ms: i64,
    },
    Replayed {
        id: uuid::Uuid,
        at_ms: i64,
        outcome: String,
    },
    /// Forget records first seen before `before_ms`, and all but the newest `keep`.
    Prune {
        before_ms: i64,
        keep: u64,
    },
}

/// The lowest UUIDv7 of a millisecond: ids at or after it were made at or after `ms`.
pub fn v7_floor(ms: i64) -> uuid::Uuid {
    let ms = u64::try_from(ms.max(0)).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    uuid::Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_of_a_millisecond_orders_before_its_ids_and_after_earlier_ones() {
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_700_000_000, 123_000_000);
        let id = uuid::Uuid::new_v7(ts);
        let ms = 1_700_000_000_123;
        assert!(v7_floor(ms) <= id);
        assert!(v7_floor(ms + 1) > id);
        assert!(
            v7_floor(ms).to_string() <= id.to_string(),
            "text sorts the same"
        );
        assert_eq!(v7_floor(ms).get_version_num(), 7);
    }
}
