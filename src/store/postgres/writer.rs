//! The writer task: takes every command waiting, runs them in one transaction (their statements
//! pipelined on one connection) and commits once, so a burst of queued requests costs one WAL
//! flush. The same transaction moves the per-route counts (`outbox_counts`), one row per route
//! touched, in route order (replicas never wait on each other in a cycle). The in-memory counts
//! change only after the commit that made them true.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::super::command::{reply, take_waiting, Command, Output, Shared, LINGER};
use super::super::counts::Change;
use super::super::StoreError;
use super::commands::run;

/// Runs the commands as they come; every `refresh_every`, reads back the counts as every
/// replica left them (here, in the writer's own order, so a commit's change is never lost to a
/// read that started before it).
pub async fn writer(
    pool: Pool,
    mut receiver: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    refresh_every: Duration,
) {
    let mut conn: Option<Object> = None;
    let mut refresh =
        tokio::time::interval_at(tokio::time::Instant::now() + refresh_every, refresh_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            first = receiver.recv() => match first {
                Some(first) => first,
                None => break,
            },
            _ = refresh.tick() => {
                refresh_counts(&pool, &mut conn, &shared).await;
                continue;
            }
        };
        let mut group = vec![first];
        take_waiting(&mut receiver, &mut group);
        if group.iter().all(Command::can_wait) {
            tokio::time::sleep(LINGER).await;
            take_waiting(&mut receiver, &mut group);
        }
        run_group(&pool, &mut conn, group, &shared).await;
    }
    shared.healthy.store(false, Ordering::Relaxed);
}

async fn refresh_counts(pool: &Pool, slot: &mut Option<Object>, shared: &Shared) {
    let result = async {
        let conn = connection(pool, slot)
            .await
            .map_err(|e| e.error.to_string())?;
        super::load_counts(conn)
            .await
            .map_err(|e| super::error_text(&e))
    }
    .await;
    match result {
        Ok(counts) => {
            *shared.counts() = counts;
            shared.healthy.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            *slot = None;
            if shared.healthy.swap(false, Ordering::Relaxed) {
                tracing::error!(error = %e, "cannot reach PostgreSQL");
            }
        }
    }
}

/// Runs the group in one transaction; if a statement fails, each command runs again alone, so
/// one bad command cannot fail the others.
async fn run_group(pool: &Pool, conn: &mut Option<Object>, group: Vec<Command>, shared: &Shared) {
    let outcome = commit(pool, conn, &group).await;
    let results: Vec<Result<Output, StoreError>> = match outcome {
        Ok(done) => settle(shared, done).into_iter().map(Ok).collect(),
        Err(e) if group.len() > 1 && !e.closed => {
            let mut results = Vec::with_capacity(group.len());
            for cmd in &group {
                let alone = commit(pool, conn, std::slice::from_ref(cmd)).await;
                results.push(match alone {
                    Ok(done) => Ok(settle(shared, done).remove(0)),
                    Err(e) => Err(e.error),
                });
            }
            results
        }
        Err(e) => {
            if e.closed {
                *conn = None;
                shared.healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %e.error, "the store cannot commit");
            }
            group.iter().map(|_| Err(failed(&e.error))).collect()
        }
    };
    for (cmd, result) in group.into_iter().zip(results) {
        reply(cmd, result);
    }
}

struct GroupError {
    error: StoreError,
    /// The connection is gone (every command fails alike).
    closed: bool,
}

fn failed(e: &StoreError) -> StoreError {
    StoreError::Failed(e.to_string())
}

async fn commit(
    pool: &Pool,
    slot: &mut Option<Object>,
    group: &[Command],
) -> Result<Vec<(Output, Option<Change>)>, GroupError> {
    let conn = connection(pool, slot).await?;
    let fail = |e: tokio_postgres::Error| GroupError {
        closed: e.is_closed(),
        error: StoreError::Failed(super::error_text(&e)),
    };
    let tx = conn.transaction().await.map_err(fail)?;
    let results = join_all(group.iter().map(|cmd| run(&tx, cmd)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let mut deltas: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for change in results.iter().filter_map(|(_, c)| c.as_ref()) {
        let (route, queued, dead) = delta(change);
        let d = deltas.entry(route).or_default();
        d.0 += queued;
        d.1 += dead;
    }
    for (route, (queued, dead)) in deltas.into_iter().filter(|(_, d)| *d != (0, 0)) {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO outbox_counts AS c (route, queued, dead) VALUES ($1, $2, $3)
                 ON CONFLICT (route) DO UPDATE SET queued = c.queued + EXCLUDED.queued, dead = c.dead + EXCLUDED.dead",
            )
            .await
            .map_err(fail)?;
        tx.execute(&stmt, &[&route, &queued, &dead])
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(results)
}

/// The writer's connection, taken again from the pool when it was lost.
async fn connection<'a>(
    pool: &Pool,
    slot: &'a mut Option<Object>,
) -> Result<&'a mut Object, GroupError> {
    if slot.as_ref().is_none_or(|c| c.is_closed()) {
        *slot = None;
        let conn = pool.get().await.map_err(|e| GroupError {
            error: StoreError::Failed(format!(
                "no connection to PostgreSQL: {}",
                super::pool_error_text(&e)
            )),
            closed: true,
        })?;
        return Ok(slot.insert(conn));
    }
    slot.as_mut().ok_or(GroupError {
        error: StoreError::Stopped,
        closed: true,
    })
}

/// How a change moves a route's (queued, dead) counts.
fn delta(change: &Change) -> (&str, i64, i64) {
    match change {
        Change::Queued(r) => (r, 1, 0),
        Change::Settled(r) => (r, -1, 0),
        Change::Died(r) => (r, -1, 1),
        Change::Revived(r) => (r, 1, -1),
        Change::Discarded { route, was_dead } => {
            if *was_dead {
                (route, 0, -1)
            } else {
                (route, -1, 0)
            }
        }
    }
}

/// Applies committed changes to the in-memory counts; answers the outputs.
fn settle(shared: &Shared, done: Vec<(Output, Option<Change>)>) -> Vec<Output> {
    shared.healthy.store(true, Ordering::Relaxed);
    let mut counts = shared.counts();
    done.into_iter()
        .map(|(output, change)| {
            if let Some(change) = change {
                counts.apply(&change);
            }
            output
        })
        .collect()
}
