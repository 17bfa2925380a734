//! The embedded SQLite database: clients and hosts, whether declared in the configuration
//! file (source `config`) or added at run time (source `api`).
//!
//! SQLite calls block, so every call runs on tokio's blocking pool behind one connection
//! mutex; the async runtime never waits on disk. The schema is migrated forward by
//! `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::config::{Address, Endpoint, TlsFiles, ValidClient};
use crate::lock::MutexExt;

/// Rust run after a step's SQL, in the same transaction.
type MigrationFn = fn(&rusqlite::Transaction) -> Result<(), StoreError>;

/// One schema step: SQL, then (optionally) Rust for what SQL alone cannot do.
struct Migration {
    sql: &'static str,
    then: Option<MigrationFn>,
}

/// Schema steps; step N brings `user_version` from N-1 to N. Append only.
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: "
    CREATE TABLE clients (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
        monitoring  INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE hosts (
        id          INTEGER PRIMARY KEY,
        client_id   INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        address     TEXT NOT NULL,
        tls_ca      TEXT,
        tls_cert    TEXT,
        tls_key     TEXT,
        enabled     INTEGER NOT NULL DEFAULT 1,
        source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        UNIQUE (client_id, name)
    );
",
        then: None,
    },
    Migration {
        sql: "
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,
        token       TEXT NOT NULL,
        role        TEXT NOT NULL,
        method      TEXT NOT NULL,
        route       TEXT NOT NULL,
        path        TEXT NOT NULL,
        target      TEXT,
        status      INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        error       TEXT
    );
",
        then: None,
    },
    Migration {
        sql: "
    CREATE TABLE event_state (
        host_id     INTEGER PRIMARY KEY REFERENCES hosts(id) ON DELETE CASCADE,
        state       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    );
",
        then: None,
    },
    // Ids are never reused (a plain INTEGER PRIMARY KEY hands out max(id)+1, so deleting
    // the newest host gave its id to the next one, and a stale PATCH or DELETE, or an
    // audit row, then named another host): AUTOINCREMENT, by SQLite's table rebuild.
    Migration {
        sql: "
    CREATE TABLE clients_v4 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL UNIQUE,
        source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
        monitoring  INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL
    );
    INSERT INTO clients_v4 (id, name, source, monitoring, created_at)
        SELECT id, name, source, monitoring, created_at FROM clients;
    DROP TABLE clients;
    ALTER TABLE clients_v4 RENAME TO clients;
    CREATE TABLE hosts_v4 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id   INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        address     TEXT NOT NULL,
        tls_ca      TEXT,
        tls_cert    TEXT,
        tls_key     TEXT,
        enabled     INTEGER NOT NULL DEFAULT 1,
        source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        UNIQUE (client_id, name)
    );
    INSERT INTO hosts_v4 SELECT id, client_id, name, address, tls_ca, tls_cert, tls_key, enabled,
        source, created_at, updated_at FROM hosts;
    DROP TABLE hosts;
    ALTER TABLE hosts_v4 RENAME TO hosts;
    CREATE TABLE meta (
        key         TEXT PRIMARY KEY,
        value       INTEGER NOT NULL
    );
",
        then: Some(seed_sequences_from_audit),
    },
];

/// Ids deleted before AUTOINCREMENT was on are known only from the audit log (`client N`,
/// `host N …` targets): the sequences start above them too, so none is handed out again.
fn seed_sequences_from_audit(tx: &rusqlite::Transaction) -> Result<(), StoreError> {
    let mut highest = [("clients", 0i64), ("hosts", 0i64)];
    {
        let mut st = tx.prepare("SELECT target FROM audit WHERE target IS NOT NULL")?;
        let targets = st.query_map([], |r| r.get::<_, String>(0))?;
        for target in targets {
            let target = target?;
            for (table, max) in highest.iter_mut() {
                let word = if *table == "clients" {
                    "client "
                } else {
                    "host "
                };
                if let Some(id) = target
                    .strip_prefix(word)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<i64>().ok())
                {
                    *max = (*max).max(id);
                }
            }
        }
    }
    for (table, audited) in highest {
        let current: i64 = tx.query_row(
            &format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [table])?;
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
            params![table, current.max(audited)],
        )?;
    }
    Ok(())
}

/// Where a client or host was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The configuration file; re-synced at every start.
    Config,
    /// Added at run time (library or HTTP API); kept until removed.
    Api,
}

impl Source {
    fn parse(s: &str) -> Result<Source, StoreError> {
        match s {
            "config" => Ok(Source::Config),
            "api" => Ok(Source::Api),
            other => Err(StoreError::Corrupt(format!("unknown source `{other}`"))),
        }
    }
}

/// A stored client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientRecord {
    /// Database id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Who declared it.
    pub source: Source,
    /// Whether its hosts are being collected.
    pub monitoring: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A stored host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostRecord {
    /// Database id.
    pub id: i64,
    /// Owning client's id.
    pub client_id: i64,
    /// Owning client's name (the `client` label).
    pub client_name: String,
    /// Name unique within the client (the `host` label).
    pub name: String,
    /// Where and how to connect.
    #[serde(serialize_with = "ser_endpoint")]
    #[schema(value_type = EndpointView)]
    pub endpoint: Endpoint,
    /// Collected when its client is monitored.
    pub enabled: bool,
    /// Who declared it.
    pub source: Source,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// How a host's endpoint is shown: address and TLS file paths (never their contents).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// `unix:///path` or `tcp://host:port`.
    pub address: String,
    /// CA, certificate and key paths, when the host uses mutual TLS.
    pub tls: Option<TlsFilesView>,
}

/// TLS file paths of a host.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TlsFilesView {
    /// CA path.
    pub ca: String,
    /// Client certificate path.
    pub cert: String,
    /// Client key path.
    pub key: String,
}

fn ser_endpoint<S: serde::Serializer>(e: &Endpoint, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Endpoint", 2)?;
    st.serialize_field("address", &e.address.to_string())?;
    st.serialize_field("tls", &e.tls)?;
    st.end()
}

/// One audited call, as written.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: f64,
    /// Token name (`anonymous` without tokens).
    pub token: String,
    /// Token role.
    pub role: String,
    /// HTTP method.
    pub method: String,
    /// Route template, e.g. `/api/v1/clients/{client}/containers/{container}/stop`.
    pub route: String,
    /// Path as called.
    pub path: String,
    /// What was acted on (`host/container`, `client 3`, …), when known.
    pub target: Option<String>,
    /// HTTP status answered.
    pub status: u16,
    /// `ok`, `failed` or `denied`.
    pub outcome: String,
    /// The error, Docker's included, when it failed.
    pub error: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Increasing id; page with `before`.
    pub id: i64,
    /// Unix seconds.
    pub at: f64,
    /// Token name.
    pub token: String,
    /// Token role.
    pub role: String,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Path as called.
    pub path: String,
    /// What was acted on.
    pub target: Option<String>,
    /// HTTP status answered.
    pub status: u16,
    /// `ok`, `failed` or `denied`.
    pub outcome: String,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// Changes to a host; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct HostPatch {
    /// New name.
    pub name: Option<String>,
    /// New endpoint.
    pub endpoint: Option<Endpoint>,
    /// Enable or disable collection.
    pub enabled: Option<bool>,
}

/// What [`Store::sync_config`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Hosts inserted or updated from the file.
    pub upserted: usize,
    /// Config hosts no longer in the file, deleted.
    pub removed: usize,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Unknown client or host.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `client` or `host`.
        kind: &'static str,
        /// The id asked for.
        id: i64,
    },
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

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Now in whole unix seconds, as the tables keep it.
fn now() -> i64 {
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
        migrate(&mut conn)?;
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
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
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

    /// Makes the stored `config` clients and hosts match the file: inserts and updates what
    /// the file declares, deletes config hosts it no longer declares. Hosts added at run time
    /// are kept; one that has the name of a host now in the file becomes a config host.
    pub async fn sync_config(&self, clients: Vec<ValidClient>) -> Result<SyncReport, StoreError> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let t = now();
            let mut report = SyncReport::default();
            let mut keep: Vec<i64> = Vec::new();
            for client in &clients {
                tx.execute(
                    "INSERT INTO clients (name, source, monitoring, created_at) VALUES (?1, 'config', ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET source = 'config', monitoring = excluded.monitoring",
                    params![client.name, client.monitoring, t],
                )?;
                let client_id: i64 = tx.query_row(
                    "SELECT id FROM clients WHERE name = ?1",
                    [&client.name],
                    |r| r.get(0),
                )?;
                for host in &client.hosts {
                    let (address, ca, cert, key) = endpoint_columns(&host.endpoint);
                    tx.execute(
                        "INSERT INTO hosts (client_id, name, address, tls_ca, tls_cert, tls_key, enabled, source, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'config', ?8, ?8)
                         ON CONFLICT (client_id, name) DO UPDATE SET address = excluded.address,
                            tls_ca = excluded.tls_ca, tls_cert = excluded.tls_cert, tls_key = excluded.tls_key,
                            enabled = excluded.enabled, source = 'config', updated_at = excluded.updated_at",
                        params![client_id, host.name, address, ca, cert, key, host.enabled, t],
                    )?;
                    keep.push(tx.query_row(
                        "SELECT id FROM hosts WHERE client_id = ?1 AND name = ?2",
                        params![client_id, host.name],
                        |r| r.get(0),
                    )?);
                    report.upserted += 1;
                }
            }
            let stale: Vec<i64> = {
                let mut st = tx.prepare("SELECT id FROM hosts WHERE source = 'config'")?;
                let ids = st.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
                ids.into_iter().filter(|id| !keep.contains(id)).collect()
            };
            for id in &stale {
                tx.execute("DELETE FROM hosts WHERE id = ?1", [id])?;
            }
            report.removed = stale.len();
            // Config clients gone from the file: dropped when empty, otherwise they live on
            // as run-time clients holding their run-time hosts.
            let names: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
            let gone: Vec<(i64, String)> = {
                let mut st = tx.prepare("SELECT id, name FROM clients WHERE source = 'config'")?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<(i64, String)>, _>>()?;
                rows.into_iter().filter(|(_, n)| !names.contains(&n.as_str())).collect()
            };
            for (id, _) in gone {
                let hosts: i64 =
                    tx.query_row("SELECT COUNT(*) FROM hosts WHERE client_id = ?1", [id], |r| r.get(0))?;
                if hosts == 0 {
                    tx.execute("DELETE FROM clients WHERE id = ?1", [id])?;
                } else {
                    tx.execute("UPDATE clients SET source = 'api' WHERE id = ?1", [id])?;
                }
            }
            tx.commit()?;
            Ok(report)
        })
        .await
    }

    /// All clients by name.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.run(|conn| {
            let mut st = conn.prepare(
                "SELECT id, name, source, monitoring, created_at FROM clients ORDER BY name",
            )?;
            let rows = st
                .query_map([], client_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().collect()
        })
        .await
    }

    /// One client.
    pub async fn client(&self, id: i64) -> Result<ClientRecord, StoreError> {
        self.run(move |conn| get_client(conn, id)).await
    }

    /// Claims the first stream message id of this process: above every id an earlier
    /// process can have handed out, so a subscriber resuming with an id from before a
    /// restart is told of the gap instead of waiting for the new ids to pass its old one.
    /// The clock (unix microseconds) is the usual answer; the stored claim plus 2^32 when
    /// the clock went backwards. Stays below 2^53, so JavaScript reads ids exactly.
    pub async fn claim_stream_id_base(&self) -> Result<u64, StoreError> {
        self.run(|conn| {
            let tx = conn.transaction()?;
            let last: Option<i64> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'stream_id_base'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let clock = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let base = match last {
                Some(last) => clock.max(last.saturating_add(1 << 32)),
                None => clock.max(1),
            };
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('stream_id_base', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [base],
            )?;
            tx.commit()?;
            Ok(u64::try_from(base).unwrap_or(1))
        })
        .await
    }

    /// Adds a run-time client.
    pub async fn insert_client(&self, name: String) -> Result<ClientRecord, StoreError> {
        self.run(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO clients (name, source, monitoring, created_at) VALUES (?1, 'api', 1, ?2)
                 ON CONFLICT (name) DO NOTHING",
                params![name, now()],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("client `{name}` already exists")));
            }
            get_client(conn, conn.last_insert_rowid())
        })
        .await
    }

    /// Deletes a client and its hosts.
    pub async fn delete_client(&self, id: i64) -> Result<(), StoreError> {
        self.run(
            move |conn| match conn.execute("DELETE FROM clients WHERE id = ?1", [id])? {
                0 => Err(StoreError::NotFound { kind: "client", id }),
                _ => Ok(()),
            },
        )
        .await
    }

    /// Renames a client.
    pub async fn rename_client(&self, id: i64, name: String) -> Result<ClientRecord, StoreError> {
        self.run(move |conn| {
            get_client(conn, id)?;
            let taken: Option<i64> = conn
                .query_row(
                    "SELECT id FROM clients WHERE name = ?1 AND id != ?2",
                    params![name, id],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "client `{name}` already exists"
                )));
            }
            conn.execute(
                "UPDATE clients SET name = ?2 WHERE id = ?1",
                params![id, name],
            )?;
            get_client(conn, id)
        })
        .await
    }

    /// A host's saved event cursor and lifecycle counts (JSON), if any.
    pub async fn event_state(&self, host_id: i64) -> Result<Option<String>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT state FROM event_state WHERE host_id = ?1",
                    [host_id],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    /// Saves a host's event cursor and lifecycle counts. A host removed meanwhile is ignored.
    pub async fn save_event_state(&self, host_id: i64, state: String) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO event_state (host_id, state, updated_at)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM hosts WHERE id = ?1)
                 ON CONFLICT (host_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                params![host_id, state, now()],
            )?;
            Ok(())
        })
        .await
    }

    /// Appends an audit entry.
    pub async fn insert_audit(&self, e: AuditEntry) -> Result<i64, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO audit (at, token, role, method, route, path, target, status, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.at, e.token, e.role, e.method, e.route, e.path, e.target, e.status,
                    e.outcome, e.error
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    /// Audit entries, newest first: at most `limit`, with id below `before` when given.
    pub async fn audit(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |conn| {
            let mut st = conn.prepare(
                "SELECT id, at, token, role, method, route, path, target, status, outcome, error
                 FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st
                .query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
                    Ok(AuditRecord {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        token: r.get(2)?,
                        role: r.get(3)?,
                        method: r.get(4)?,
                        route: r.get(5)?,
                        path: r.get(6)?,
                        target: r.get(7)?,
                        status: r.get(8)?,
                        outcome: r.get(9)?,
                        error: r.get(10)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Records whether a client's hosts are collected.
    pub async fn set_monitoring(&self, id: i64, on: bool) -> Result<(), StoreError> {
        self.run(move |conn| {
            match conn.execute(
                "UPDATE clients SET monitoring = ?2 WHERE id = ?1",
                params![id, on],
            )? {
                0 => Err(StoreError::NotFound { kind: "client", id }),
                _ => Ok(()),
            }
        })
        .await
    }

    /// Hosts of one client, or of all clients.
    pub async fn hosts(&self, client_id: Option<i64>) -> Result<Vec<HostRecord>, StoreError> {
        self.run(move |conn| {
            let mut st = conn.prepare(&format!(
                "{HOST_SELECT} WHERE (?1 IS NULL OR h.client_id = ?1) ORDER BY c.name, h.name"
            ))?;
            let rows = st
                .query_map([client_id], host_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().collect()
        })
        .await
    }

    /// One host.
    pub async fn host(&self, id: i64) -> Result<HostRecord, StoreError> {
        self.run(move |conn| get_host(conn, id)).await
    }

    /// Adds a run-time host to a client.
    pub async fn insert_host(
        &self,
        client_id: i64,
        name: String,
        endpoint: Endpoint,
        enabled: bool,
    ) -> Result<HostRecord, StoreError> {
        self.run(move |conn| {
            get_client(conn, client_id)?;
            let (address, ca, cert, key) = endpoint_columns(&endpoint);
            let t = now();
            let inserted = conn.execute(
                "INSERT INTO hosts (client_id, name, address, tls_ca, tls_cert, tls_key, enabled, source, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'api', ?8, ?8) ON CONFLICT (client_id, name) DO NOTHING",
                params![client_id, name, address, ca, cert, key, enabled, t],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("host `{name}` already exists in this client")));
            }
            get_host(conn, conn.last_insert_rowid())
        })
        .await
    }

    /// Changes a host.
    pub async fn update_host(&self, id: i64, patch: HostPatch) -> Result<HostRecord, StoreError> {
        self.run(move |conn| {
            let current = get_host(conn, id)?;
            let name = patch.name.unwrap_or(current.name);
            let endpoint = patch.endpoint.unwrap_or(current.endpoint);
            let enabled = patch.enabled.unwrap_or(current.enabled);
            let (address, ca, cert, key) = endpoint_columns(&endpoint);
            let clash: Option<i64> = conn
                .query_row(
                    "SELECT id FROM hosts WHERE client_id = ?1 AND name = ?2 AND id != ?3",
                    params![current.client_id, name, id],
                    |r| r.get(0),
                )
                .optional()?;
            if clash.is_some() {
                return Err(StoreError::Conflict(format!(
                    "host `{name}` already exists in this client"
                )));
            }
            conn.execute(
                "UPDATE hosts SET name = ?2, address = ?3, tls_ca = ?4, tls_cert = ?5, tls_key = ?6,
                    enabled = ?7, updated_at = ?8 WHERE id = ?1",
                params![id, name, address, ca, cert, key, enabled, now()],
            )?;
            get_host(conn, id)
        })
        .await
    }

    /// Deletes a host.
    pub async fn delete_host(&self, id: i64) -> Result<(), StoreError> {
        self.run(
            move |conn| match conn.execute("DELETE FROM hosts WHERE id = ?1", [id])? {
                0 => Err(StoreError::NotFound { kind: "host", id }),
                _ => Ok(()),
            },
        )
        .await
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "schema version {version} is newer than this build knows ({}); refusing to touch it",
            MIGRATIONS.len()
        )));
    }
    if version == MIGRATIONS.len() {
        return Ok(());
    }
    // A step may rebuild a table: with foreign keys on, dropping the old `clients` would
    // cascade into `hosts`. The pragma is a no-op inside a transaction, so it is switched
    // around them, and each step checks the keys itself before committing.
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = (|| {
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(step.sql)?;
            if let Some(then) = step.then {
                then(&tx)?;
            }
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()?;
            if let Some(table) = broken {
                return Err(StoreError::Corrupt(format!(
                    "schema step {} leaves a dangling reference in `{table}`",
                    i + 1
                )));
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    })();
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    result
}

type Columns = (String, Option<String>, Option<String>, Option<String>);

fn endpoint_columns(e: &Endpoint) -> Columns {
    let path = |p: &PathBuf| Some(p.display().to_string());
    match &e.tls {
        Some(t) => (
            e.address.to_string(),
            path(&t.ca),
            path(&t.cert),
            path(&t.key),
        ),
        None => (e.address.to_string(), None, None, None),
    }
}

const HOST_SELECT: &str = "SELECT h.id, h.client_id, c.name, h.name, h.address, h.tls_ca, h.tls_cert,
    h.tls_key, h.enabled, h.source, h.created_at, h.updated_at FROM hosts h JOIN clients c ON c.id = h.client_id";

fn get_host(conn: &Connection, id: i64) -> Result<HostRecord, StoreError> {
    conn.query_row(&format!("{HOST_SELECT} WHERE h.id = ?1"), [id], host_row)
        .optional()?
        .ok_or(StoreError::NotFound { kind: "host", id })?
}

fn get_client(conn: &Connection, id: i64) -> Result<ClientRecord, StoreError> {
    conn.query_row(
        "SELECT id, name, source, monitoring, created_at FROM clients WHERE id = ?1",
        [id],
        client_row,
    )
    .optional()?
    .ok_or(StoreError::NotFound { kind: "client", id })?
}

/// Reads a row; the inner Result reports values SQLite accepted but we cannot use.
fn client_row(r: &rusqlite::Row) -> rusqlite::Result<Result<ClientRecord, StoreError>> {
    let source: String = r.get(2)?;
    let (id, name, monitoring, created_at) = (r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?);
    Ok(Source::parse(&source).map(|source| ClientRecord {
        id,
        name,
        source,
        monitoring,
        created_at,
    }))
}

fn host_row(r: &rusqlite::Row) -> rusqlite::Result<Result<HostRecord, StoreError>> {
    let address: String = r.get(4)?;
    let tls: [Option<String>; 3] = [r.get(5)?, r.get(6)?, r.get(7)?];
    let source: String = r.get(9)?;
    let (id, client_id, client_name, name, enabled, created_at, updated_at) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(8)?,
        r.get(10)?,
        r.get(11)?,
    );
    Ok((|| {
        let address = Address::parse(&address).map_err(StoreError::Corrupt)?;
        let tls = match tls {
            [Some(ca), Some(cert), Some(key)] => Some(TlsFiles {
                ca: ca.into(),
                cert: cert.into(),
                key: key.into(),
            }),
            [None, None, None] => None,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "host {id} has partial TLS settings"
                )));
            }
        };
        Ok(HostRecord {
            id,
            client_id,
            client_name,
            name,
            endpoint: Endpoint { address, tls },
            enabled,
            source: Source::parse(&source)?,
            created_at,
            updated_at,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ValidHost;

    fn host(name: &str, addr: &str) -> ValidHost {
        ValidHost {
            name: name.into(),
            endpoint: Endpoint {
                address: Address::parse(addr).expect("address"),
                tls: None,
            },
            enabled: true,
        }
    }

    fn client(name: &str, hosts: Vec<ValidHost>) -> ValidClient {
        ValidClient {
            name: name.into(),
            monitoring: true,
            hosts,
        }
    }

    fn temp_db(tag: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("dockstat-store-{tag}-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
        p
    }

    #[tokio::test]
    async fn config_sync_keeps_api_hosts_and_survives_reopen() {
        let path = temp_db("sync");
        let store = Store::open(&path).await.expect("open");
        let r = store
            .sync_config(vec![client(
                "prod",
                vec![host("a", "/a.sock"), host("b", "tcp://b:2375")],
            )])
            .await
            .expect("sync");
        assert_eq!(
            r,
            SyncReport {
                upserted: 2,
                removed: 0
            }
        );
        let prod = store.clients().await.expect("clients")[0].clone();
        let added = store
            .insert_host(
                prod.id,
                "c".into(),
                host("c", "tcp://c:2375").endpoint,
                true,
            )
            .await
            .expect("insert");
        assert_eq!(added.source, Source::Api);
        assert!(matches!(
            store
                .insert_host(prod.id, "c".into(), host("c", "/x").endpoint, true)
                .await,
            Err(StoreError::Conflict(_))
        ));
        drop(store);

        // Restart with a file that dropped host b.
        let store = Store::open(&path).await.expect("reopen");
        let r = store
            .sync_config(vec![client("prod", vec![host("a", "/a.sock")])])
            .await
            .expect("sync");
        assert_eq!(
            r,
            SyncReport {
                upserted: 1,
                removed: 1
            }
        );
        let hosts = store.hosts(Some(prod.id)).await.expect("hosts");
        let names: Vec<(&str, Source)> =
            hosts.iter().map(|h| (h.name.as_str(), h.source)).collect();
        assert_eq!(names, vec![("a", Source::Config), ("c", Source::Api)]);
        assert_eq!(hosts[1].endpoint.address.to_string(), "tcp://c:2375");

        // The client leaves the file but keeps its run-time host: it becomes an api client.
        store.sync_config(vec![]).await.expect("sync");
        let clients = store.clients().await.expect("clients");
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].source, Source::Api);
        store.delete_client(prod.id).await.expect("delete");
        assert!(
            store.hosts(None).await.expect("hosts").is_empty(),
            "hosts cascade"
        );
    }

    #[tokio::test]
    async fn update_and_errors() {
        let store = Store::open(&temp_db("update")).await.expect("open");
        let c = store.insert_client("x".into()).await.expect("client");
        assert!(matches!(
            store.insert_client("x".into()).await,
            Err(StoreError::Conflict(_))
        ));
        let h = store
            .insert_host(c.id, "h".into(), host("h", "/h.sock").endpoint, true)
            .await
            .expect("host");
        let h2 = store
            .update_host(
                h.id,
                HostPatch {
                    enabled: Some(false),
                    name: Some("h2".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("update");
        assert!(!h2.enabled);
        assert_eq!(h2.name, "h2");
        assert!(matches!(
            store.host(999).await,
            Err(StoreError::NotFound {
                kind: "host",
                id: 999
            })
        ));
        assert!(matches!(
            store.delete_host(999).await,
            Err(StoreError::NotFound { .. })
        ));
        store.set_monitoring(c.id, false).await.expect("monitoring");
        assert!(!store.client(c.id).await.expect("client").monitoring);
    }

    #[tokio::test]
    async fn ids_are_never_reused() {
        let store = Store::open(&temp_db("reuse")).await.expect("open");
        let a = store.insert_client("reuse-a".into()).await.expect("a");
        store.delete_client(a.id).await.expect("delete");
        let b = store.insert_client("reuse-b".into()).await.expect("b");
        assert!(b.id > a.id, "client id {} handed out again", a.id);
        let h = store
            .insert_host(b.id, "h".into(), host("h", "/h.sock").endpoint, true)
            .await
            .expect("host");
        store.delete_host(h.id).await.expect("delete");
        let h2 = store
            .insert_host(b.id, "h2".into(), host("h2", "/h2.sock").endpoint, true)
            .await
            .expect("host");
        assert!(h2.id > h.id, "host id {} handed out again", h.id);
    }

    /// A database made before AUTOINCREMENT: its newest host was deleted (so its id is free
    /// again under the old schema); the migration keeps it taken, from the audit log too.
    #[test]
    fn migration_keeps_deleted_ids_taken() {
        let path = temp_db("migrate-ids");
        {
            let mut conn = Connection::open(&path).expect("open");
            for (i, step) in MIGRATIONS[..3].iter().enumerate() {
                let tx = conn.transaction().expect("tx");
                tx.execute_batch(step.sql).expect("old schema");
                tx.pragma_update(None, "user_version", i as i64 + 1)
                    .expect("version");
                tx.commit().expect("commit");
            }
            conn.execute_batch(
                "PRAGMA foreign_keys = ON;
                 INSERT INTO clients VALUES (1, 'c', 'api', 1, 0), (2, 'gone', 'api', 1, 0);
                 INSERT INTO hosts VALUES (1, 1, 'h1', '/a', NULL, NULL, NULL, 1, 'api', 0, 0),
                                          (2, 1, 'h2', '/b', NULL, NULL, NULL, 1, 'api', 0, 0);
                 INSERT INTO event_state VALUES (1, '{}', 0);
                 DELETE FROM hosts WHERE id = 2;
                 DELETE FROM clients WHERE id = 2;
                 INSERT INTO audit (at, token, role, method, route, path, target, status, outcome)
                     VALUES (0, 't', 'admin', 'DELETE', '/h', '/h', 'host 7 (h7)', 204, 'ok');",
            )
            .expect("old rows");
        }
        let store = Store::open_blocking(&path).expect("migrated");
        let conn = store.conn.lock().expect("lock");
        let hosts: i64 = conn
            .query_row("SELECT COUNT(*) FROM hosts", [], |r| r.get(0))
            .expect("count");
        let states: i64 = conn
            .query_row("SELECT COUNT(*) FROM event_state", [], |r| r.get(0))
            .expect("count");
        assert_eq!((hosts, states), (1, 1), "rows survive the rebuild");
        conn.execute(
            "INSERT INTO clients (name, source, created_at) VALUES ('new', 'api', 0)",
            [],
        )
        .expect("insert");
        assert_eq!(conn.last_insert_rowid(), 2, "clients: max(1) + 1");
        conn.execute(
            "INSERT INTO hosts (client_id, name, address, source, created_at, updated_at)
             VALUES (1, 'h8', '/c', 'api', 0, 0)",
            [],
        )
        .expect("insert");
        assert_eq!(conn.last_insert_rowid(), 8, "above the audited host 7");
        // Foreign keys are back on, and still cascade.
        conn.execute("DELETE FROM clients WHERE id = 1", [])
            .expect("delete");
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM hosts", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn stream_id_bases_grow_across_restarts() {
        let path = temp_db("stream-ids");
        let first = Store::open(&path)
            .await
            .expect("open")
            .claim_stream_id_base()
            .await
            .expect("claim");
        let second = Store::open(&path)
            .await
            .expect("reopen")
            .claim_stream_id_base()
            .await
            .expect("claim");
        assert!(second >= first + (1 << 32), "{first} then {second}");
        assert!(second < 1 << 53, "exact as a JavaScript number");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let path = temp_db("newer");
        {
            let conn = Connection::open(&path).expect("open");
            conn.pragma_update(None, "user_version", 99)
                .expect("pragma");
        }
        assert!(matches!(
            Store::open_blocking(&path),
            Err(StoreError::Corrupt(_))
        ));
    }
}
