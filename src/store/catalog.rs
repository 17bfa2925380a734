//! Clients and hosts: the configuration file's synced in at start, the run-time ones added,
//! changed and removed through the library.

use rusqlite::{OptionalExtension, params};

use super::records::{HOST_SELECT, client_row, endpoint_columns, get_client, get_host, host_row};
use super::{ClientRecord, HostPatch, HostRecord, NotFound, Store, StoreError, SyncReport, now};
use crate::config::{Endpoint, ValidClient};

impl Store {
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
                    if host.name_from_daemon {
                        // A daemon renamed since the last start: the same host under its new
                        // name, keeping its id.
                        tx.execute(
                            "UPDATE hosts SET name = ?3, updated_at = ?4
                             WHERE client_id = ?1 AND address = ?2 AND source = 'config' AND name <> ?3
                               AND NOT EXISTS (SELECT 1 FROM hosts WHERE client_id = ?1 AND name = ?3)",
                            params![client_id, address, host.name, t],
                        )?;
                    }
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
                0 => Err(NotFound::client(id).into()),
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

    /// Records whether a client's hosts are collected.
    pub async fn set_monitoring(&self, id: i64, on: bool) -> Result<(), StoreError> {
        self.run(move |conn| {
            match conn.execute(
                "UPDATE clients SET monitoring = ?2 WHERE id = ?1",
                params![id, on],
            )? {
                0 => Err(NotFound::client(id).into()),
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
                0 => Err(NotFound::host(id).into()),
                _ => Ok(()),
            },
        )
        .await
    }
}
