//! Clients (named groups of hosts), their hosts and their monitoring: each change goes to
//! the store first, then to the pool, so it takes effect at once and survives a restart.

use std::time::Duration;

use super::{ClientError, DockerClient, FieldError, HostCheck, HostHealth, HostUpdate, NewHost};
use super::{invalid, read_only, spec};
use crate::clock::unix_seconds;
use crate::config::{Endpoint, TlsConfig};
use crate::store::{ClientRecord, HostPatch, HostRecord, Origin};

/// How long checking a host's TLS files at run time may take.
const FILE_CHECK_DEADLINE: Duration = Duration::from_secs(5);

impl DockerClient {
    /// Registers a client (a named group of hosts). `registerClient`.
    pub async fn register_client(&self, name: &str) -> Result<ClientRecord, ClientError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        Ok(self.inner.store.insert_client(name.to_string()).await?)
    }

    /// Removes a run-time client and its hosts, stopping their collection; returns the
    /// client removed. `removeClient`.
    pub async fn remove_client(&self, client_id: i64) -> Result<ClientRecord, ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        let client = self.inner.store.client(client_id).await?;
        if client.source == Origin::Config {
            return Err(ClientError::ReadOnly(format!(
                "client `{}` is declared in the configuration file; remove it there",
                client.name
            )));
        }
        for h in self.inner.store.hosts(Some(client_id)).await? {
            self.inner.pool.stop(h.id).await;
        }
        self.inner.store.delete_client(client_id).await?;
        self.publish_idle().await?;
        Ok(client)
    }

    /// All clients. `getClients`.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, ClientError> {
        Ok(self.inner.store.clients().await?)
    }

    /// Renames a run-time client (its series change their `client` label). `updateClient`.
    pub async fn rename_client(
        &self,
        client_id: i64,
        name: &str,
    ) -> Result<ClientRecord, ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let client = self.inner.store.client(client_id).await?;
        if client.source == Origin::Config {
            return Err(ClientError::ReadOnly(format!(
                "client `{}` is declared in the configuration file; rename it there",
                client.name
            )));
        }
        let record = self
            .inner
            .store
            .rename_client(client_id, name.to_string())
            .await?;
        // Collectors carry the client name into their series: restart them under the new one.
        if record.monitoring {
            for h in self.inner.store.hosts(Some(client_id)).await? {
                self.inner.pool.stop(h.id).await;
                if h.enabled {
                    self.inner.pool.ensure(spec(&h)).await;
                }
            }
        }
        self.publish_idle().await?;
        Ok(record)
    }

    /// One client. `getClient`.
    pub async fn client(&self, client_id: i64) -> Result<ClientRecord, ClientError> {
        Ok(self.inner.store.client(client_id).await?)
    }

    /// Adds a host to a client; collected at once when the client is monitored. `addHost`.
    pub async fn add_host(&self, client_id: i64, host: NewHost) -> Result<HostRecord, ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        let name = host.name.trim().to_string();
        if name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let endpoint = self.endpoint(host.address, host.tls).await?;
        self.check_unique(&endpoint, None).await?;
        let record = self
            .inner
            .store
            .insert_host(client_id, name, endpoint, host.enabled)
            .await?;
        if !self.inner.pool.owns(&record.client_name, &record.name) {
            let shard = self.inner.pool.shard();
            tracing::info!(host = %record.name, client = %record.client_name,
                shard = shard.index, total = shard.total,
                "host stored; another shard collects it (the replicas must share the database)");
        }
        self.apply_host(&record).await?;
        Ok(record)
    }

    /// Changes a run-time host and restarts its collection if needed. `updateHost`.
    pub async fn update_host(
        &self,
        host_id: i64,
        update: HostUpdate,
    ) -> Result<HostRecord, ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        let current = self.inner.store.host(host_id).await?;
        read_only(&current)?;
        let endpoint = if update.address.is_some() || update.tls.is_some() {
            let address = update
                .address
                .unwrap_or_else(|| current.endpoint.address.to_string());
            let tls = match update.tls {
                Some(t) => t,
                None => current.endpoint.tls.as_ref().map(|t| TlsConfig {
                    ca: t.ca.display().to_string(),
                    cert: t.cert.as_ref().map(|p| p.display().to_string()),
                    key: t.key.as_ref().map(|p| p.display().to_string()),
                }),
            };
            let e = self.endpoint(address, tls).await?;
            self.check_unique(&e, Some(host_id)).await?;
            Some(e)
        } else {
            None
        };
        if let Some(n) = &update.name
            && n.trim().is_empty()
        {
            return Err(invalid("name", "must not be empty"));
        }
        let patch = HostPatch {
            name: update.name.map(|n| n.trim().to_string()),
            endpoint,
            enabled: update.enabled,
        };
        let record = self.inner.store.update_host(host_id, patch).await?;
        self.apply_host(&record).await?;
        Ok(record)
    }

    /// Removes a run-time host and stops its collection; returns the host removed.
    /// `removeHost`.
    pub async fn remove_host(&self, host_id: i64) -> Result<HostRecord, ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        let current = self.inner.store.host(host_id).await?;
        read_only(&current)?;
        self.inner.pool.stop(host_id).await;
        self.inner.store.delete_host(host_id).await?;
        self.publish_idle().await?;
        Ok(current)
    }

    /// Hosts of a client. `getHosts`.
    pub async fn hosts(&self, client_id: i64) -> Result<Vec<HostRecord>, ClientError> {
        self.inner.store.client(client_id).await?;
        Ok(self.inner.store.hosts(Some(client_id)).await?)
    }

    /// The id of the client named `name`, if there is one.
    pub async fn client_id_by_name(&self, name: &str) -> Option<i64> {
        let clients = self.inner.store.clients().await.ok()?;
        clients.into_iter().find(|c| c.name == name).map(|c| c.id)
    }

    /// The id of the host named `name`, when exactly one client has a host of that name.
    pub async fn host_id_by_name(&self, name: &str) -> Option<i64> {
        let hosts = self.inner.store.hosts(None).await.ok()?;
        let mut found = hosts.into_iter().filter(|h| h.name == name);
        match (found.next(), found.next()) {
            (Some(h), None) => Some(h.id),
            _ => None,
        }
    }

    /// One host.
    pub async fn host(&self, host_id: i64) -> Result<HostRecord, ClientError> {
        Ok(self.inner.store.host(host_id).await?)
    }

    /// Hosts of a client with what their collectors know, without calling Docker.
    /// `getHostsWithHealth`.
    pub async fn hosts_with_health(&self, client_id: i64) -> Result<Vec<HostHealth>, ClientError> {
        let hosts = self.hosts(client_id).await?;
        let snap = self.snapshot();
        Ok(hosts
            .into_iter()
            .map(|h| {
                let status = self.inner.pool.host_status(h.id);
                // Only what a collector found: not a pending or idle placeholder.
                let host_snap = snap.host(h.id).filter(|s| s.monitored && s.attempted);
                let info = host_snap.and_then(|s| s.info.as_deref());
                HostHealth {
                    collecting: status.is_some(),
                    up: host_snap.is_some_and(|s| s.up),
                    events_stream_open: status.as_ref().is_some_and(|s| s.events_open()),
                    containers: host_snap.map(|s| s.containers.len()),
                    last_collected_at: host_snap.map(|s| unix_seconds(s.built_at)),
                    server_version: info.map(|i| i.server_version.clone()),
                    api_version: info.map(|i| i.api_version.clone()),
                    last_error: status
                        .and_then(|s| s.last_error())
                        .or_else(|| host_snap.and_then(|s| s.error.clone())),
                    host: h,
                }
            })
            .collect())
    }

    /// Checks one host now: ping (with its latency) and version. `checkHostHealth`.
    pub async fn check_host_health(&self, host_id: i64) -> Result<HostCheck, ClientError> {
        let h = self.inner.store.host(host_id).await?;
        let started = std::time::Instant::now();
        let answer = match self.connection(&h).await {
            Ok(conn) => conn.health().await,
            Err(e) => Err(e),
        };
        let last_error = self
            .inner
            .pool
            .host_status(h.id)
            .and_then(|s| s.last_error());
        Ok(match answer {
            Ok((latency, server_version, api_version)) => HostCheck {
                host_id: h.id,
                name: h.name,
                reachable: true,
                latency_ms: Some(latency.as_secs_f64() * 1e3),
                server_version: Some(server_version),
                api_version: Some(api_version),
                error: None,
                last_error,
            },
            Err(error) => HostCheck {
                host_id: h.id,
                name: h.name,
                reachable: false,
                latency_ms: Some(started.elapsed().as_secs_f64() * 1e3),
                server_version: None,
                api_version: None,
                error: Some(error),
                last_error,
            },
        })
    }

    /// Validates an address and TLS files given at run time. Checking the files touches
    /// the file system, which may hang (a slow network mount): it runs on the blocking pool
    /// under [`FILE_CHECK_DEADLINE`], so the runtime, scrapes and other calls never wait on it.
    async fn endpoint(
        &self,
        address: String,
        tls: Option<TlsConfig>,
    ) -> Result<Endpoint, ClientError> {
        let base = self.inner.base_dir.clone();
        let check =
            tokio::task::spawn_blocking(move || Endpoint::from_user(&address, tls.as_ref(), &base));
        let problems = match tokio::time::timeout(FILE_CHECK_DEADLINE, check).await {
            Ok(Ok(Ok(endpoint))) => return Ok(endpoint),
            Ok(Ok(Err(problems))) => problems,
            Ok(Err(e)) => return Err(invalid("tls", &format!("cannot check the files: {e}"))),
            Err(_) => {
                return Err(invalid(
                    "tls",
                    &format!(
                        "the files could not be checked within {FILE_CHECK_DEADLINE:?} \
                         (a hung or very slow file system?)"
                    ),
                ));
            }
        };
        Err(ClientError::Invalid(
            problems
                .into_iter()
                .map(|p| FieldError {
                    field: crate::config::locate_display(&p.path),
                    message: p.message,
                })
                .collect(),
        ))
    }

    async fn check_unique(
        &self,
        endpoint: &Endpoint,
        except: Option<i64>,
    ) -> Result<(), ClientError> {
        let hosts = self.inner.store.hosts(None).await?;
        match hosts
            .iter()
            .find(|h| &h.endpoint == endpoint && Some(h.id) != except)
        {
            Some(h) => Err(ClientError::Conflict(format!(
                "{} is already host `{}` of client `{}`",
                endpoint.address, h.name, h.client_name
            ))),
            None => Ok(()),
        }
    }

    /// Starts, restarts or stops a host's collection to match its record.
    async fn apply_host(&self, record: &HostRecord) -> Result<(), ClientError> {
        let client = self.inner.store.client(record.client_id).await?;
        if record.enabled && client.monitoring {
            self.inner.pool.ensure(spec(record)).await;
        } else {
            self.inner.pool.stop(record.id).await;
        }
        self.publish_idle().await
    }

    /// Starts collecting a client's enabled hosts. `startMonitoring`.
    pub async fn start_monitoring(&self, client_id: i64) -> Result<(), ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        self.inner.store.set_monitoring(client_id, true).await?;
        for h in self.inner.store.hosts(Some(client_id)).await? {
            if h.enabled {
                self.inner.pool.ensure(spec(&h)).await;
            }
        }
        self.publish_idle().await
    }

    /// Stops collecting a client's hosts; their series leave `/metrics`. `stopMonitoring`.
    pub async fn stop_monitoring(&self, client_id: i64) -> Result<(), ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        self.inner.store.set_monitoring(client_id, false).await?;
        for h in self.inner.store.hosts(Some(client_id)).await? {
            self.inner.pool.stop(h.id).await;
        }
        self.publish_idle().await
    }

    /// Stops collecting every client. `stopAllMonitoring`.
    pub async fn stop_all_monitoring(&self) -> Result<(), ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        for c in self.inner.store.clients().await? {
            self.inner.store.set_monitoring(c.id, false).await?;
        }
        self.inner.pool.reconcile(Vec::new()).await;
        self.publish_idle().await
    }

    /// Whether a client is monitored. `isMonitoring`.
    pub async fn is_monitoring(&self, client_id: i64) -> Result<bool, ClientError> {
        Ok(self.inner.store.client(client_id).await?.monitoring)
    }
}
