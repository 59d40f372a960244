//! The store's cost does not grow with what waits: the same operations, counted in SQLite VM
//! instructions (repeatable, unlike time), cost the same with 1,000 and 200,000 entries queued,
//! 50,000 of them deferred. A count over the table is measured the same way, to show the
//! measure sees a scan.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::entry;
use crate::store::sqlite::{configure, run_command, StoreCommand, StoreContext};

fn reply<T>() -> oneshot::Sender<Result<T, crate::store::StoreError>> {
    oneshot::channel().0
}

/// Adds `n` queued entries of route `r` (and of `other`), `deferred` of them due far ahead.
fn fill(conn: &Connection, from: i64, n: i64, deferred: i64) {
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1 + ?2 - 1)
         INSERT INTO outbox (id, route, deployment, parameters, tags, name, idempotency_key, state, attempts, created_at, next_attempt_at, last_error)
         SELECT printf('00000000-0000-4000-8000-%012d', i), CASE WHEN i % 2 = 0 THEN 'r' ELSE 'other' END,
                'f/d', '{\"email\":\"jo@example.com\",\"score\":65}', '[\"webhook\"]', NULL, 'key-' || i,
                'queued', 0, 1000 + i / 1000, CASE WHEN i < ?1 + ?3 THEN 9000000000 ELSE 1000 + i / 1000 END, ''
         FROM k",
        rusqlite::params![from, n, deferred],
    )
    .unwrap();
}

/// SQLite VM instructions `work` runs on `conn`.
fn vm_instructions(conn: &mut Connection, work: impl FnOnce(&mut Connection)) -> u64 {
    let ops = Arc::new(AtomicU64::new(0));
    let counter = ops.clone();
    conn.progress_handler(
        1,
        Some(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            false
        }),
    )
    .unwrap();
    work(conn);
    conn.progress_handler(0, None::<fn() -> bool>).unwrap();
    ops.load(Ordering::Relaxed)
}

/// VM instructions for: 20 enqueues, one read of each route's 32 due entries, 10 deliveries.
fn operations(conn: &mut Connection, round: u32) -> u64 {
    vm_instructions(conn, |conn| store_work(conn, round))
}

fn store_work(conn: &mut Connection, round: u32) {
    let routes = vec!["r".to_string(), "other".to_string()];
    let cx = StoreContext {
        full: false,
        routes: &routes,
    };
    let tx = conn.transaction().unwrap();
    let mut ids = Vec::new();
    for n in 0..20 {
        let e = entry(round * 100 + n, 5_000);
        ids.push(e.id);
        run_command(&tx, &StoreCommand::Enqueue(Box::new(e), reply()), &cx).unwrap();
    }
    run_command(&tx, &StoreCommand::Due(4_000, 32, reply()), &cx).unwrap();
    for id in &ids[..10] {
        let delivered = StoreCommand::Delivered(*id, uuid::Uuid::new_v4(), reply());
        run_command(&tx, &delivered, &cx).unwrap();
    }
    run_command(&tx, &StoreCommand::Oldest(reply()), &cx).unwrap();
    tx.commit().unwrap();
}

/// VM instructions for a count over the table: a scan.
fn count_ops(conn: &mut Connection) -> u64 {
    vm_instructions(conn, |conn| {
        let _: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE last_error = ''",
                [],
                |r| r.get(0),
            )
            .unwrap();
    })
}

#[test]
fn due_enqueue_and_delivery_cost_the_same_with_200000_entries_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("cost.db")).unwrap();
    configure(&conn, 4096).unwrap();
    fill(&conn, 0, 1_000, 0);
    let small = operations(&mut conn, 1);
    let small_scan = count_ops(&mut conn);
    fill(&conn, 1_000, 199_000, 50_000);
    let large = operations(&mut conn, 2);
    let large_scan = count_ops(&mut conn);
    assert!(
        large_scan > 100 * small_scan,
        "the measure sees a scan: {small_scan} → {large_scan}"
    );
    assert!(
        large <= small + small / 10,
        "store operations grew with the backlog: {small} VM instructions with 1,000 waiting, {large} with 200,000"
    );
}

#[test]
fn the_due_read_walks_its_index_in_order_without_sorting() {
    let conn = Connection::open_in_memory().unwrap();
    configure(&conn, 64).unwrap();
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT id FROM outbox INDEXED BY outbox_route_next WHERE state = 'queued' AND route = ?1 AND next_attempt_at <= ?2 ORDER BY next_attempt_at, created_at, rowid LIMIT ?3")
        .unwrap()
        .query_map(rusqlite::params!["r", 1, 1], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("; ");
    assert!(plan.contains("outbox_route_next"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "sorts: {plan}");
}
