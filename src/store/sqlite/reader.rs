//! Reads on the caller's thread: one read-only connection per thread. A read in WAL mode never
//! waits for the writer, so a point lookup (a partner's delivery id) costs one index seek
//! (microseconds, hot pages in this connection's cache) instead of a trip through the
//! writer's queue, two thread wake-ups and a place in its next commit.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::super::StoreError;

/// Page cache of each reader, in KiB: the delivery ids' index heads.
const CACHE_KIB: i64 = 2 * 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's connections, by `Readers::id`.
    static CONNECTIONS: RefCell<Vec<(u64, Connection)>> = const { RefCell::new(Vec::new()) };
}

/// Opens, per thread and on first use, a read-only connection to the store's file.
pub struct Readers {
    id: u64,
    path: PathBuf,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path,
        }
    }

    /// Runs `read` on this thread's connection.
    pub fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        CONNECTIONS.with(|connections| {
            let mut connections = connections.borrow_mut();
            let index = match connections.iter().position(|(id, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    let conn = self.open().map_err(|e| StoreError::Failed(e.to_string()))?;
                    connections.push((self.id, conn));
                    connections.len() - 1
                }
            };
            read(&connections[index].1).map_err(|e| StoreError::Failed(e.to_string()))
        })
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.busy_timeout(Duration::from_millis(100))?;
        Ok(conn)
    }
}
