//! The store's commands, whatever the backend: what the request path and the deliverer ask a
//! store's writer to do, what each produces, and how the answer reaches the caller. Each backend
//! runs them in groups, one transaction and one commit per group.

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::counts::OutboxCounts;
use super::managed::ManagedWrite;
use super::rejections::RejectionWrite;
use super::{EntryState, OutboxEntry, RememberedOutcome, StoreError};

/// Most commands committed together.
pub const MAX_GROUP: usize = 512;
/// How long a group of commands nobody waits on (delivery ids remembered, pruning) waits for
/// company before it commits: one fsync for a few dozen remembered ids instead of one each.
/// Anything that arrives meanwhile (an enqueue) joins the same commit.
pub const LINGER: Duration = Duration::from_millis(2);

/// What the writer shares with the store's handle.
#[derive(Debug, Default)]
pub struct Shared {
    pub counts: Mutex<OutboxCounts>,
    pub healthy: AtomicBool,
}

impl Shared {
    pub fn counts(&self) -> MutexGuard<'_, OutboxCounts> {
        // Plain counters: a panicking holder cannot leave them half-updated.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub enum Command {
    Enqueue(Box<OutboxEntry>, Reply<()>),
    /// `now`, per route, the routes with entries queued.
    Due(i64, usize, Reply<Vec<OutboxEntry>>),
    Delivered(uuid::Uuid, uuid::Uuid, Reply<()>),
    Reschedule(uuid::Uuid, i64, String, Reply<()>),
    Dead(uuid::Uuid, String, Reply<()>),
    Oldest(Reply<Option<i64>>),
    List(EntryState, usize, Reply<Vec<OutboxEntry>>),
    Requeue(uuid::Uuid, i64, Reply<bool>),
    Remember(String, String, RememberedOutcome, Reply<()>),
    Prune(i64, usize, Reply<usize>),
    /// Nothing: answered once the commands before it are committed.
    Flush(Reply<()>),
    Rejection(RejectionWrite, Reply<usize>),
    /// Takes a queued or dead entry out of the outbox for good, with the reason.
    Discard(uuid::Uuid, String, Reply<bool>),
    /// A change to the managed deployments; answers the row's generation.
    Managed(ManagedWrite, Reply<i64>),
}

impl Command {
    /// Whether no request waits on it (it may linger for the next commit).
    pub fn can_wait(&self) -> bool {
        matches!(
            self,
            Command::Remember(..)
                | Command::Prune(..)
                | Command::Rejection(
                    RejectionWrite::Insert(_) | RejectionWrite::AddCount { .. },
                    _
                )
        )
    }
}

/// What a command produced.
pub enum Output {
    Unit,
    Entries(Vec<OutboxEntry>),
    Oldest(Option<i64>),
    Flag(bool),
    Count(usize),
    Generation(i64),
}

/// Sends a command's answer; a reply of the wrong shape cannot happen (each command makes one).
pub fn reply(cmd: Command, result: Result<Output, StoreError>) {
    fn send<T>(
        reply: Reply<T>,
        result: Result<Output, StoreError>,
        pick: impl FnOnce(Output) -> Option<T>,
    ) {
        let value = result.and_then(|o| {
            pick(o).ok_or_else(|| StoreError::Failed("unexpected command output".into()))
        });
        let _ = reply.send(value);
    }
    let unit = |o| matches!(o, Output::Unit).then_some(());
    let entries = |o| match o {
        Output::Entries(e) => Some(e),
        _ => None,
    };
    match cmd {
        Command::Enqueue(_, r)
        | Command::Delivered(_, _, r)
        | Command::Reschedule(_, _, _, r)
        | Command::Dead(_, _, r)
        | Command::Remember(_, _, _, r)
        | Command::Flush(r) => send(r, result, unit),
        Command::Due(_, _, r) | Command::List(_, _, r) => send(r, result, entries),
        Command::Oldest(r) => send(r, result, |o| match o {
            Output::Oldest(v) => Some(v),
            _ => None,
        }),
        Command::Requeue(_, _, r) => send(r, result, |o| match o {
            Output::Flag(f) => Some(f),
            _ => None,
        }),
        Command::Discard(_, _, r) => send(r, result, |o| match o {
            Output::Flag(f) => Some(f),
            _ => None,
        }),
        Command::Rejection(_, r) | Command::Prune(_, _, r) => send(r, result, |o| match o {
            Output::Count(n) => Some(n),
            _ => None,
        }),
        Command::Managed(_, r) => send(r, result, |o| match o {
            Output::Generation(g) => Some(g),
            _ => None,
        }),
    }
}

/// The sending end of a store's writer queue.
pub struct Writer {
    sender: mpsc::Sender<Command>,
}

impl Writer {
    pub fn new(sender: mpsc::Sender<Command>) -> Self {
        Self { sender }
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Like `ask`, but the command is handed to the writer when this is called (when there is
    /// room), so the caller may drop the future and the write still happens.
    pub fn hand_over<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let (reply, committed) = oneshot::channel();
        match self.sender.try_send(make(reply)) {
            Ok(()) => async move { committed.await.map_err(|_| StoreError::Stopped)? }.boxed(),
            Err(mpsc::error::TrySendError::Closed(_)) => async { Err(StoreError::Stopped) }.boxed(),
            Err(mpsc::error::TrySendError::Full(cmd)) => async move {
                self.sender
                    .send(cmd)
                    .await
                    .map_err(|_| StoreError::Stopped)?;
                committed.await.map_err(|_| StoreError::Stopped)?
            }
            .boxed(),
        }
    }

    pub fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        async move {
            let (tx, rx) = oneshot::channel();
            self.sender
                .send(make(tx))
                .await
                .map_err(|_| StoreError::Stopped)?;
            rx.await.map_err(|_| StoreError::Stopped)?
        }
        .boxed()
    }
}

/// Adds the commands already waiting to the group, up to `MAX_GROUP`.
pub fn take_waiting(receiver: &mut mpsc::Receiver<Command>, group: &mut Vec<Command>) {
    while group.len() < MAX_GROUP {
        match receiver.try_recv() {
            Ok(cmd) => group.push(cmd),
            Err(_) => break,
        }
    }
}
