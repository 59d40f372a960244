//! The `managed_deployments` table: one row per managed deployment (a handful to thousands;
//! every write is a primary-key seek).

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::super::managed::{ManagedRow, ManagedWrite, SyncOutcome};

pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS managed_deployments (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    synced_generation INTEGER NOT NULL,
    error TEXT,
    prefect_id TEXT,
    updated_at INTEGER NOT NULL
);";

const COLUMNS: &str =
    "name, spec, deleted, generation, synced_generation, error, prefect_id, updated_at";

/// Applies a write; answers the row's generation afterwards (0 when there is no row).
pub fn write(tx: &Transaction<'_>, w: &ManagedWrite) -> rusqlite::Result<i64> {
    match w {
        ManagedWrite::Put { name, spec, now } => {
            tx.prepare_cached(
                "INSERT INTO managed_deployments (name, spec, deleted, generation, synced_generation, error, prefect_id, updated_at)
                 VALUES (?1, ?2, 0, 1, 0, NULL, NULL, ?3)
                 ON CONFLICT(name) DO UPDATE SET spec = ?2, deleted = 0, generation = generation + 1, error = NULL, updated_at = ?3
                 WHERE spec != ?2 OR deleted = 1",
            )?
            .execute(params![name, spec, now])?;
            generation(tx, name)
        }
        ManagedWrite::Delete { name, now } => {
            tx.prepare_cached(
                "UPDATE managed_deployments SET deleted = 1, generation = generation + 1, error = NULL, updated_at = ?2 WHERE name = ?1 AND deleted = 0",
            )?
            .execute(params![name, now])?;
            generation(tx, name)
        }
        ManagedWrite::Synced {
            name,
            generation: done,
            outcome,
        } => {
            match outcome {
                SyncOutcome::Applied(id) => tx
                    .prepare_cached(
                        "UPDATE managed_deployments SET synced_generation = ?2, error = NULL, prefect_id = ?3 WHERE name = ?1 AND generation = ?2",
                    )?
                    .execute(params![name, done, id])?,
                SyncOutcome::Removed => tx
                    .prepare_cached(
                        "DELETE FROM managed_deployments WHERE name = ?1 AND generation = ?2 AND deleted = 1",
                    )?
                    .execute(params![name, done])?,
                SyncOutcome::Failed(error) => tx
                    .prepare_cached(
                        "UPDATE managed_deployments SET error = ?3 WHERE name = ?1 AND generation = ?2",
                    )?
                    .execute(params![name, done, error])?,
            };
            generation(tx, name)
        }
    }
}

fn generation(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<i64> {
    Ok(tx
        .prepare_cached("SELECT generation FROM managed_deployments WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManagedRow> {
    Ok(ManagedRow {
        name: r.get(0)?,
        spec: r.get(1)?,
        deleted: r.get::<_, i64>(2)? != 0,
        generation: r.get(3)?,
        synced_generation: r.get(4)?,
        error: r.get(5)?,
        prefect_id: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

pub fn get(conn: &Connection, name: &str) -> rusqlite::Result<Option<ManagedRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM managed_deployments WHERE name = ?1"
    ))?
    .query_row(params![name], row)
    .optional()
}

/// Every managed deployment, by name (an admin and reconciler read, not a request path).
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<ManagedRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM managed_deployments ORDER BY name"
    ))?
    .query_map([], row)?
    .collect()
}
