//! The PostgreSQL schema, as numbered migrations applied at start (and by `flowgate migrate`).
//! Replicas starting together take turns: the migrations run under a transaction-level
//! advisory lock, and each is recorded in `flowgate_migrations` in the same transaction.

use tokio_postgres::Client;

/// The advisory lock key of the migrations (any constant shared by every replica).
const MIGRATION_LOCK: i64 = 0x666c_6f77_6761_7465;

/// Every migration, in order; a released one never changes (add a new one instead).
const MIGRATIONS: &[(i32, &str)] = &[(1, INITIAL)];

const INITIAL: &str = "
CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL,
    route text NOT NULL,
    deployment text NOT NULL,
    parameters text NOT NULL,
    tags text NOT NULL,
    name text,
    idempotency_key text NOT NULL,
    state text NOT NULL,
    attempts integer NOT NULL,
    created_at bigint NOT NULL,
    next_attempt_at bigint NOT NULL,
    last_error text NOT NULL,
    -- The replica delivering the entry, until when (unix seconds): a dead replica's claims
    -- return to the queue when the lease runs out.
    claimed_by uuid,
    claimed_until bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
-- Room left in each page: a claim (claimed_by, claimed_until: no index) is a heap-only update
-- that touches no index.
-- A route's due entries: seek to the route, read while next_attempt_at <= now.
CREATE INDEX outbox_route_next ON outbox (route, next_attempt_at, created_at, seq)
    WHERE state = 'queued';
-- The oldest queued entry, and ops' lists by state.
CREATE INDEX outbox_age ON outbox (state, created_at, seq);
-- What the outbox holds per route, kept by every commit that changes it (never counted).
CREATE TABLE outbox_counts (
    route text PRIMARY KEY,
    queued bigint NOT NULL,
    dead bigint NOT NULL
);
CREATE TABLE delivered (
    id uuid PRIMARY KEY,
    route text NOT NULL,
    deployment text NOT NULL,
    flow_run_id uuid NOT NULL,
    attempts integer NOT NULL,
    created_at bigint NOT NULL,
    delivered_at bigint NOT NULL
);
CREATE INDEX delivered_age ON delivered (delivered_at);
CREATE TABLE deliveries (
    route text NOT NULL,
    delivery_id text NOT NULL,
    kind text NOT NULL,
    id uuid NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (route, delivery_id)
);
CREATE INDEX deliveries_age ON deliveries (created_at);
CREATE TABLE rejections (
    id uuid PRIMARY KEY,
    first_ms bigint NOT NULL,
    last_ms bigint NOT NULL,
    count bigint NOT NULL,
    route text NOT NULL,
    client text,
    status integer NOT NULL,
    code text NOT NULL,
    detail text NOT NULL,
    field_errors text,
    request_id text NOT NULL,
    headers text NOT NULL,
    body bytea,
    body_size bigint NOT NULL,
    authenticated boolean NOT NULL,
    replayed_ms bigint,
    replay_outcome text,
    delivery_id text
);
CREATE INDEX rejections_route ON rejections (route, id);
CREATE INDEX rejections_code ON rejections (code, id);
CREATE INDEX rejections_client ON rejections (client, id);
CREATE TABLE managed_deployments (
    name text PRIMARY KEY,
    spec text NOT NULL,
    deleted boolean NOT NULL,
    generation bigint NOT NULL,
    synced_generation bigint NOT NULL,
    error text,
    prefect_id text,
    updated_at bigint NOT NULL
);
-- Named leases (one reconciler at a time) and the replicas' heartbeats.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder uuid NOT NULL,
    until_ms bigint NOT NULL
);
";

/// Applies the migrations this database lacks; answers how many ran.
pub async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS flowgate_migrations (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM flowgate_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ran = 0;
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO flowgate_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}
