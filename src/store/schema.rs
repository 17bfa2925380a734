//! The schema and its migrations: step N brings `PRAGMA user_version` from N-1 to N, and a
//! database newer than this build is refused rather than touched.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// Rust run after a step's SQL, in the same transaction.
type MigrationFn = fn(&rusqlite::Transaction) -> Result<(), StoreError>;

/// One schema step: SQL, then (optionally) Rust for what SQL alone cannot do.
pub(super) struct Migration {
    pub(super) sql: &'static str,
    then: Option<MigrationFn>,
}

/// Schema steps; step N brings `user_version` from N-1 to N. Append only.
pub(super) const MIGRATIONS: &[Migration] = &[
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

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
