//! The PostgreSQL store's cost does not grow with what waits: the claim of due entries, an
//! enqueue and a delivery touch about the same number of buffers (PostgreSQL's own count, from
//! `EXPLAIN (ANALYZE, BUFFERS)`: repeatable, unlike time) with 1,000 and 200,000 entries queued,
//! 50,000 of them deferred and some claimed by another replica: at most one more index level
//! per row (log n). A read of every queued row is measured the same way, to show the measure
//! sees a scan grow with the table.

use tokio_postgres::types::ToSql;

use super::Fixture;
use crate::store::postgres::commands::{DELIVERED_SQL, INSERT_SQL};
use crate::store::postgres::reads::claim_sql;

async fn client(fx: &Fixture) -> tokio_postgres::Client {
    let Fixture::Postgres(connect) = fx else {
        panic!("a PostgreSQL fixture")
    };
    let mut config: tokio_postgres::Config = connect.url.parse().unwrap();
    if let Some(p) = &connect.password {
        config.password(secrecy::ExposeSecret::expose_secret(p));
    }
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Adds `n` queued entries numbered from `from`, alternately of route `r` and `other`,
/// `deferred` of them due far ahead, every 50th claimed by another replica.
async fn fill(c: &tokio_postgres::Client, from: i64, n: i64, deferred: i64) {
    c.execute(
        "INSERT INTO outbox (id, route, deployment, parameters, tags, name, idempotency_key, state, attempts, created_at, next_attempt_at, last_error, claimed_by, claimed_until)
         SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
                CASE WHEN i % 2 = 0 THEN 'r' ELSE 'other' END, 'f/d',
                '{\"email\":\"jo@example.com\",\"score\":65}', '[\"webhook\"]', NULL, 'key-' || i,
                'queued', 0, 1000 + i / 1000,
                CASE WHEN i < $1::bigint + $3::bigint THEN 9000000000 ELSE 1000 + i / 1000 END, '',
                CASE WHEN i % 50 = 0 THEN gen_random_uuid() END,
                CASE WHEN i % 50 = 0 THEN 9000000000 ELSE 0 END
         FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i",
        &[&from, &n, &deferred],
    )
    .await
    .unwrap();
    c.batch_execute(
        "DELETE FROM outbox_counts;
         INSERT INTO outbox_counts SELECT route, count(*), 0 FROM outbox WHERE state = 'queued' GROUP BY route",
    )
    .await
    .unwrap();
    c.batch_execute("VACUUM ANALYZE outbox").await.unwrap();
}

/// Shared buffers (hit + read) the statement touches, run and rolled back.
async fn buffers(c: &mut tokio_postgres::Client, sql: &str, args: &[&(dyn ToSql + Sync)]) -> u64 {
    let tx = c.transaction().await.unwrap();
    let rows = tx
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"),
            args,
        )
        .await
        .unwrap();
    let plan: serde_json::Value = rows[0].get(0);
    tx.rollback().await.unwrap();
    let top = &plan[0]["Plan"];
    [
        "Shared Hit Blocks",
        "Shared Read Blocks",
        "Shared Dirtied Blocks",
    ]
    .iter()
    .map(|k| top[k].as_u64().unwrap_or(0))
    .sum::<u64>()
}

/// Buffers for: a claim of each route's 32 due entries, one enqueue, one delivery.
async fn operations(c: &mut tokio_postgres::Client, round: i64) -> u64 {
    let me = uuid::Uuid::new_v4();
    let (now, limit, until) = (2_000_i64, 32_i64, 2_060_i64);
    let claim = claim_sql();
    let mut total = 0;
    for route in ["r", "other"] {
        total += buffers(c, &claim, &[&route, &now, &limit, &me, &until]).await;
    }
    let id = uuid::Uuid::new_v4();
    let (route, dep, params, tags) = ("r", "f/d", "{}", "[]");
    let (name, key, attempts, err) = (None::<String>, format!("new-{round}"), 0_i32, "");
    total += buffers(
        c,
        INSERT_SQL,
        &[
            &id, &route, &dep, &params, &tags, &name, &key, &attempts, &now, &now, &err,
        ],
    )
    .await;
    let delivered: uuid::Uuid = format!("00000000-0000-4000-8000-{:012}", 60_001 + round * 2)
        .parse()
        .unwrap();
    total += buffers(c, DELIVERED_SQL, &[&delivered]).await;
    total
}

async fn scan(c: &mut tokio_postgres::Client) -> u64 {
    buffers(
        c,
        "SELECT sum(length(parameters)) FROM outbox WHERE state = 'queued'",
        &[],
    )
    .await
}

#[tokio::test]
async fn claims_enqueues_and_deliveries_grow_by_an_index_level_not_with_200000_entries_waiting() {
    let fx = Fixture::postgres().await;
    drop(fx.open().await); // the schema
    let mut c = client(&fx).await;
    fill(&c, 60_000, 1_000, 0).await;
    // The first round at each size: a rolled-back round leaves dead rows the next one visits.
    let small = operations(&mut c, 0).await;
    let scan_small = scan(&mut c).await;
    fill(&c, 100_000, 199_000, 50_000).await;
    let large = operations(&mut c, 0).await;
    let scan_large = scan(&mut c).await;
    // 200 times the entries: a scan touches about 200 times the buffers; the operations at
    // most one more index level per row (log n), well under twice.
    assert!(
        scan_large > 50 * scan_small,
        "the measure sees a scan grow: {scan_small} -> {scan_large} buffers"
    );
    assert!(
        large * 10 < small * 20,
        "operations: {small} buffers with 1,000 entries, {large} with 200,000"
    );
}
