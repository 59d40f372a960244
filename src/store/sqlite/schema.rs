//! Opening the SQLite file: durability and cache settings, the schema, and its indexes. Every
//! query the store runs on the request path or per deliverer wake is a seek on one of them.

use std::time::Duration;

use rusqlite::Connection;

/// Page cache of the writer's connection, in KiB (SQLite's negative `cache_size`): the hot
/// heads of the indexes stay in memory; the rest of a large backlog stays on disk.
const CACHE_KIB: i64 = 16 * 1024;

/// Sets the connection up and makes the schema; returns the size cap in pages (the soft limit
/// enforced on enqueue).
pub fn configure(conn: &Connection, max_size_mb: u64) -> rusqlite::Result<i64> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (fsync) before it returns; an acknowledged entry survives kill -9.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoints run on their own connection and thread, never inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // The size cap is enforced on enqueue (soft); the hard cap leaves headroom so entries can
    // always be marked delivered or dead, which is how a full store drains.
    let soft = soft_limit_pages(conn, max_size_mb)?;
    conn.pragma_update(None, "max_page_count", soft + (soft / 10).max(256))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS outbox (
            id TEXT PRIMARY KEY,
            route TEXT NOT NULL,
            deployment TEXT NOT NULL,
            parameters TEXT NOT NULL,
            tags TEXT NOT NULL,
            name TEXT,
            idempotency_key TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            flow_run_id TEXT
         );
         DROP INDEX IF EXISTS outbox_due;
         DROP INDEX IF EXISTS outbox_route;
         -- A route's due entries: seek to (queued, route), read while next_attempt_at <= now.
         CREATE INDEX IF NOT EXISTS outbox_route_next
            ON outbox(state, route, next_attempt_at, created_at);
         -- The oldest queued entry, and ops' lists by state.
         CREATE INDEX IF NOT EXISTS outbox_age ON outbox(state, created_at);
         CREATE TABLE IF NOT EXISTS deliveries (
            route TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (route, delivery_id)
         );
         CREATE INDEX IF NOT EXISTS deliveries_age ON deliveries(created_at);",
    )?;
    conn.execute_batch(super::rejections::SCHEMA)?;
    conn.execute_batch(super::managed::SCHEMA)?;
    conn.execute_batch(
        "-- Delivered outbox entries: delivery id → flow run, for the delivery status API.
         CREATE TABLE IF NOT EXISTS delivered (
            id TEXT PRIMARY KEY,
            route TEXT NOT NULL,
            deployment TEXT NOT NULL,
            flow_run_id TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            delivered_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS delivered_age ON delivered(delivered_at);",
    )?;
    Ok(soft)
}

fn soft_limit_pages(conn: &Connection, max_size_mb: u64) -> rusqlite::Result<i64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages = max_size_mb.saturating_mul(1024 * 1024) / page_size.max(512) as u64;
    Ok(i64::try_from(pages).unwrap_or(i64::MAX / 2).max(16))
}

/// Pages in use: the file's pages less the free ones. Read from the header, not by scanning.
pub fn used_pages(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())",
        [],
        |r| r.get(0),
    )
}
