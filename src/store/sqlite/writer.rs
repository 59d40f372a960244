//! The writer thread: owns the connection, takes every command waiting, runs them in one
//! transaction and commits once (group commit), so a burst of queued requests costs one fsync,
//! not one each. The counts change only after the commit that made them true.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::super::command::{reply, take_waiting, Command, Output, Shared, LINGER};
use super::super::counts::{Change, OutboxCounts};
use super::super::StoreError;
use super::commands::{is_full, run, to_store_error, Context};
use super::schema::used_pages;

pub fn writer(
    mut conn: Connection,
    mut receiver: mpsc::Receiver<Command>,
    soft_limit: i64,
    shared: Arc<Shared>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut group = vec![first];
        take_waiting(&mut receiver, &mut group);
        if group.iter().all(Command::can_wait) {
            std::thread::sleep(LINGER);
            take_waiting(&mut receiver, &mut group);
        }
        run_group(&mut conn, group, soft_limit, &shared);
    }
    shared.healthy.store(false, Ordering::Relaxed);
}

/// Runs every command in one transaction; each reply is sent only after the commit. If the
/// store is full, the group is rolled back, the enqueues are refused, and the other commands
/// run again one by one.
fn run_group(conn: &mut Connection, group: Vec<Command>, soft_limit: i64, shared: &Shared) {
    let needs_routes = group.iter().any(|c| matches!(c, Command::Due(..)));
    let routes: Vec<String> = if needs_routes {
        shared
            .counts()
            .by_route()
            .map(|(r, _)| r.to_owned())
            .collect()
    } else {
        Vec::new()
    };
    let enqueues = group.iter().any(|c| matches!(c, Command::Enqueue(..)));
    let full = enqueues && used_pages(conn).is_ok_and(|used| used >= soft_limit);
    let cx = Context {
        full,
        routes: &routes,
    };
    let outcome = conn.transaction().and_then(|tx| {
        let results: Vec<_> = group.iter().map(|cmd| run(&tx, cmd, &cx)).collect();
        if results.iter().any(is_full) {
            drop(tx);
            return Ok(Err(results));
        }
        tx.commit().map(|()| Ok(results))
    });
    match outcome {
        Ok(Ok(results)) => {
            shared.healthy.store(true, Ordering::Relaxed);
            let mut counts = shared.counts();
            let outputs: Vec<_> = results
                .into_iter()
                .map(|r| settle(&mut counts, r))
                .collect();
            drop(counts);
            for (cmd, output) in group.into_iter().zip(outputs) {
                reply(cmd, output);
            }
        }
        Ok(Err(results)) => {
            for (cmd, result) in group.into_iter().zip(results) {
                if is_full(&result) {
                    reply(cmd, Err(StoreError::Full));
                    continue;
                }
                let alone = conn.transaction().and_then(|tx| {
                    let r = run(&tx, &cmd, &cx);
                    tx.commit().map(|()| r)
                });
                let output = settle(&mut shared.counts(), alone.and_then(|r| r));
                reply(cmd, output);
            }
        }
        Err(e) => {
            shared.healthy.store(false, Ordering::Relaxed);
            let message = e.to_string();
            tracing::error!(error = %message, "the store cannot commit");
            for cmd in group {
                reply(cmd, Err(StoreError::Failed(message.clone())));
            }
        }
    }
}

/// Applies a committed command's change to the counts and gives its output.
fn settle(
    counts: &mut OutboxCounts,
    result: rusqlite::Result<(Output, Option<Change>)>,
) -> Result<Output, StoreError> {
    let (output, change) = result.map_err(|e| to_store_error(&e))?;
    if let Some(change) = change {
        counts.apply(&change);
    }
    Ok(output)
}

/// The counts as the file holds them: one pass over the table, at open only.
pub fn count_all(conn: &Connection) -> rusqlite::Result<OutboxCounts> {
    let mut counts = OutboxCounts::default();
    let mut stmt =
        conn.prepare("SELECT route, state, COUNT(*) FROM outbox GROUP BY route, state")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?.max(0) as u64,
        ))
    })?;
    for row in rows {
        let (route, state, n) = row?;
        match state.as_str() {
            "queued" => counts.set_queued(route, n),
            "dead" => counts.dead += n,
            _ => {}
        }
    }
    Ok(counts)
}
