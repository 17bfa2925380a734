//! The embedded SQLite database: clients and hosts, whether declared in the configuration
//! file (origin `config`) or added at run time (origin `api`), the audit log, and what
//! collectors and streams keep across restarts.
//!
//! SQLite calls block, so every call runs on tokio's blocking pool behind one connection
//! mutex; the async runtime never waits on disk. The schema is migrated forward by
//! `PRAGMA user_version` (`schema`).
//!
//! - [`records`]: what is stored, as the library and the API see it.
//! - [`catalog`]: clients and hosts, and syncing the configuration file's into them.
//! - [`audit`]: the audit log of the admin API.
//! - [`state`]: event cursors and the stream id base, kept across restarts.

pub mod audit;
pub mod catalog;
pub mod records;
mod schema;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::lock::MutexExt;
pub use audit::AuditRecord;
pub use records::{
    ClientRecord, EndpointView, HostPatch, HostRecord, Origin, SyncReport, TlsFilesView,
};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Unknown client or host.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// Name already taken, or similar.
    #[error("{0}")]
    Conflict(String),
    /// A row that cannot be read back (edited by hand?).
    #[error("database holds an invalid row: {0}")]
    Corrupt(String),
    /// The blocking task died; the store stays usable.
    #[error("database task failed: {0}")]
    Task(String),
}

/// An id that names no client or host. Why a type: the library's and the store's errors
/// both carry it, and the API answers it with 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {id} not found")]
pub struct NotFound {
    /// `client` or `host`.
    pub kind: &'static str,
    /// The id asked for.
    pub id: i64,
}

impl NotFound {
    /// No client `id`.
    pub fn client(id: i64) -> NotFound {
        NotFound { kind: "client", id }
    }

    /// No host `id`.
    pub fn host(id: i64) -> NotFound {
        NotFound { kind: "host", id }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Now in whole unix seconds, as the tables keep it.
pub(crate) fn now() -> i64 {
    crate::clock::unix_now() as i64
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Store::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Blocking form of [`Store::open`], for tools and tests.
    pub fn open_blocking(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // journal_mode returns a row, so it is read rather than executed.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the blocking pool with the connection.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection itself is still
            // consistent (SQLite rolls back unfinished transactions), so keep using it.
            let mut guard = conn.locked();
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests;
