//! [`DockerClient`]: the library API, carrying over the operations of the TypeScript
//! `@dockstat/docker-client` (registerClient, addHost, startMonitoring, getAllContainers,
//! getStatus, …) in Rust naming. The HTTP layer is a thin wrapper over it.
//!
//! Changes go to the store first, then to the worker pool, so a host added or removed here
//! takes effect at once and survives a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::models::ContainerSummary;
use futures_util::future::join_all;
use serde::Serialize;

mod containers;

pub use containers::{Action, ActionOutcome, ContainerRef, DENY_LABEL, LogLine, LogQuery};

use crate::collect::{HostSpec, Settings};
use crate::config::{Endpoint, TlsConfig, Validated};
use crate::docker::{Connection, DockerError};
use crate::families::Inputs;
use crate::instruments::{HostInstruments, Instruments};
use crate::metrics::Exposition;
use crate::pool::{Pool, PoolStatus};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::stats::ContainerStats;
use crate::store::{ClientRecord, HostPatch, HostRecord, Source, Store, StoreError};
use crate::streams::StreamManager;

/// Why a library call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Unknown client or host.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `client` or `host`.
        kind: &'static str,
        /// The id asked for.
        id: i64,
    },
    /// Name taken, or the same endpoint declared twice.
    #[error("{0}")]
    Conflict(String),
    /// Declared in the configuration file, so read-only at run time.
    #[error("{0}")]
    ReadOnly(String),
    /// Bad input; one entry per offending field.
    #[error("invalid input: {}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// No container matches the id, prefix or name.
    #[error("no container `{0}`")]
    ContainerNotFound(String),
    /// No host of the client has this name or id.
    #[error("no host `{0}` in this client")]
    HostNotFound(String),
    /// A name or prefix matches several containers.
    #[error("`{reference}` matches {} containers; give the full id or `host`", candidates.len())]
    Ambiguous {
        /// What was asked for.
        reference: String,
        /// Every match.
        candidates: Vec<ContainerRef>,
    },
    /// The container refuses actions (`dockstat.actions=deny`).
    #[error("{0}")]
    Denied(String),
    /// The Docker host failed.
    #[error("host `{host}`: {error}")]
    Docker {
        /// Host name.
        host: String,
        /// What Docker (or the connection) said.
        error: DockerError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
}

/// One bad input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Field path, e.g. `tls.ca`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => ClientError::NotFound { kind, id },
            StoreError::Conflict(m) => ClientError::Conflict(m),
            other => ClientError::Store(other),
        }
    }
}

/// A host to add at run time.
#[derive(Debug, Clone)]
pub struct NewHost {
    /// Unique within the client.
    pub name: String,
    /// `unix:///path`, `tcp://host:port` or `host:port`.
    pub address: String,
    /// Mutual TLS files for a TCP address.
    pub tls: Option<TlsConfig>,
    /// Collected when the client is monitored (default true).
    pub enabled: bool,
}

/// Changes to a run-time host; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct HostUpdate {
    /// New name.
    pub name: Option<String>,
    /// New address.
    pub address: Option<String>,
    /// `Some(None)` removes TLS, `Some(Some(_))` sets it.
    pub tls: Option<Option<TlsConfig>>,
    /// Enable or disable collection.
    pub enabled: Option<bool>,
}

/// A container as Docker lists it, with its host and latest stats.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    /// Host name.
    pub host: String,
    /// Host id.
    pub host_id: i64,
    /// Docker's list entry (`Id`, `Names`, `Image`, `State`, `Status`, `Labels`, …).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub summary: ContainerSummary,
    /// Latest sample; None when not running or not collected.
    pub stats: Option<ContainerStats>,
}

/// A host with what its collector knows (`getHostsWithHealth`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostHealth {
    /// The stored host.
    #[serde(flatten)]
    pub host: HostRecord,
    /// A collector runs for it (enabled and its client monitored).
    pub collecting: bool,
    /// The last collection reached the daemon.
    pub up: bool,
    /// The events stream is open.
    pub events_stream_open: bool,
    /// Containers in the last snapshot.
    pub containers: Option<usize>,
    /// When the last snapshot was built, unix seconds.
    pub last_collected_at: Option<f64>,
    /// Engine version.
    pub server_version: Option<String>,
    /// Negotiated API version.
    pub api_version: Option<String>,
    /// The last failure, if any.
    #[schema(value_type = Option<DockerErrorView>)]
    pub last_error: Option<DockerError>,
}

/// The answer of a health check made now (`checkHostHealth`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostCheck {
    /// Host id.
    pub host_id: i64,
    /// Host name.
    pub name: String,
    /// Ping and version answered.
    pub reachable: bool,
    /// Ping round trip (or time to fail), milliseconds.
    pub latency_ms: Option<f64>,
    /// Engine version.
    pub server_version: Option<String>,
    /// API version the daemon offers.
    pub api_version: Option<String>,
    /// Why the check failed.
    #[schema(value_type = Option<DockerErrorView>)]
    pub error: Option<DockerError>,
    /// The collector's last failure, if any.
    #[schema(value_type = Option<DockerErrorView>)]
    pub last_error: Option<DockerError>,
}

/// A classified Docker failure as shown by the API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DockerErrorView {
    /// `socket_not_found`, `permission_denied`, `connection_refused`, `timeout`, `tls`,
    /// `api_error`, `decode`, `too_large` (an answer over its bound), `connection` or
    /// `other`.
    pub kind: String,
    /// HTTP status of an `api_error`.
    pub status: Option<u16>,
    /// Details.
    pub message: String,
}

/// A host that could not be listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostFailure {
    /// Host name.
    pub host: String,
    /// Host id.
    pub host_id: i64,
    /// Why.
    #[schema(value_type = DockerErrorView)]
    pub error: DockerError,
}

/// Containers of a client: what every reachable host answered, and which hosts failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerListing {
    /// Containers, by host then name.
    pub containers: Vec<ContainerView>,
    /// Hosts that did not answer.
    pub errors: Vec<HostFailure>,
}

/// Which containers [`DockerClient::containers`] lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerQuery<'a> {
    /// Running ones only (else all).
    pub running: bool,
    /// Only those carrying label `key` (with `value`, when given).
    pub label: Option<(&'a str, Option<&'a str>)>,
    /// Only this host of the client (name or id); else every enabled host.
    pub host: Option<&'a str>,
}

/// How long checking a host's TLS files at run time may take.
const FILE_CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The library entry point. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    pool: Arc<Pool>,
    snapshots: Arc<SnapshotStore>,
    instruments: Arc<Instruments>,
    settings: Settings,
    base_dir: PathBuf,
}

impl DockerClient {
    /// Opens the database, syncs the configuration's clients and hosts into it, and starts
    /// collecting every enabled host of every monitored client.
    pub async fn start(cfg: &Validated) -> Result<DockerClient, ClientError> {
        let store = Store::open(&cfg.database_path).await?;
        let report = store.sync_config(cfg.clients.clone()).await?;
        tracing::info!(db = %cfg.database_path.display(), hosts = report.upserted, removed = report.removed,
            "configuration synced into the database");
        let sc = &cfg.config.streams;
        let streams = Arc::new(StreamManager::with_first_id(
            sc.ring,
            sc.queue.get(),
            sc.max_subscribers,
            store.claim_stream_id_base().await?,
        ));
        let settings = Settings::from_config(cfg, streams, Some(store.clone()));
        let snapshots = Arc::new(SnapshotStore::default());
        let instruments = Arc::new(Instruments::default());
        let pool = Arc::new(Pool::new(
            settings.clone(),
            cfg.config.monitoring.max_workers.get(),
            snapshots.clone(),
            instruments.clone(),
        ));
        let client = DockerClient {
            inner: Arc::new(Inner {
                store,
                pool,
                snapshots,
                instruments,
                settings,
                base_dir: cfg
                    .source
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            }),
        };
        client.reconcile().await?;
        Ok(client)
    }

    /// The live channels.
    pub fn streams(&self) -> &Arc<StreamManager> {
        &self.inner.settings.streams
    }

    /// The database (the admin API writes its audit log there).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Stops all collection.
    pub async fn shutdown(&self) {
        self.inner.pool.shutdown().await;
    }

    /// What `/metrics` renders.
    pub fn exposition(&self) -> Exposition {
        Exposition::of(self.export_inputs())
    }

    /// What `/metrics` and the OTLP export read: the snapshot, the live instruments and the
    /// pool's figures.
    pub fn export_inputs(&self) -> Inputs {
        Inputs {
            snapshots: self.inner.snapshots.clone(),
            instruments: self.inner.instruments.clone(),
            pool: self.inner.pool.clone(),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshots.load()
    }

    /// Hosts being collected that have not been collected (or failed) even once yet, as
    /// `client/host`; empty when ready.
    pub fn pending_hosts(&self) -> Vec<String> {
        let snap = self.snapshot();
        self.inner
            .pool
            .collecting()
            .into_iter()
            .filter(|s| snap.host(s.id).is_none_or(|h| !h.attempted))
            .map(|s| format!("{}/{}", s.client, s.name))
            .collect()
    }

    async fn reconcile(&self) -> Result<(), ClientError> {
        let clients = self.inner.store.clients().await?;
        let hosts = self.inner.store.hosts(None).await?;
        let desired = hosts
            .iter()
            .filter(|h| h.enabled && clients.iter().any(|c| c.id == h.client_id && c.monitoring))
            .map(spec)
            .collect();
        self.inner.pool.reconcile(desired).await;
        self.publish_idle().await
    }

    /// Keeps the hosts that are not collected because their client's monitoring is stopped
    /// in the snapshot (`dockstat_host_monitoring 0`), so that stopping can be alerted on.
    /// Disabled hosts are left out: the file or the API declared them off on purpose.
    async fn publish_idle(&self) -> Result<(), ClientError> {
        let clients = self.inner.store.clients().await?;
        let hosts = self.inner.store.hosts(None).await?;
        let idle = hosts
            .iter()
            .filter(|h| h.enabled && clients.iter().any(|c| c.id == h.client_id && !c.monitoring))
            .map(|h| {
                crate::snapshot::HostSnapshot::idle(
                    h.id,
                    Arc::from(h.name.as_str()),
                    Arc::from(h.client_name.as_str()),
                )
            })
            .collect();
        self.inner.snapshots.set_idle(idle);
        Ok(())
    }

    // ---- clients ----

    /// Registers a client (a named group of hosts). `registerClient`.
    pub async fn register_client(&self, name: &str) -> Result<ClientRecord, ClientError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        Ok(self.inner.store.insert_client(name.to_string()).await?)
    }

    /// Removes a run-time client and its hosts, stopping their collection. `removeClient`.
    pub async fn remove_client(&self, client_id: i64) -> Result<(), ClientError> {
        let client = self.inner.store.client(client_id).await?;
        if client.source == Source::Config {
            return Err(ClientError::ReadOnly(format!(
                "client `{}` is declared in the configuration file; remove it there",
                client.name
            )));
        }
        for h in self.inner.store.hosts(Some(client_id)).await? {
            self.inner.pool.stop(h.id).await;
        }
        self.inner.store.delete_client(client_id).await?;
        self.publish_idle().await
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
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let client = self.inner.store.client(client_id).await?;
        if client.source == Source::Config {
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

    // ---- hosts ----

    /// Adds a host to a client; collected at once when the client is monitored. `addHost`.
    pub async fn add_host(&self, client_id: i64, host: NewHost) -> Result<HostRecord, ClientError> {
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
        self.apply_host(&record).await?;
        Ok(record)
    }

    /// Changes a run-time host and restarts its collection if needed. `updateHost`.
    pub async fn update_host(
        &self,
        host_id: i64,
        update: HostUpdate,
    ) -> Result<HostRecord, ClientError> {
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
                    cert: t.cert.display().to_string(),
                    key: t.key.display().to_string(),
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

    /// Removes a run-time host and stops its collection. `removeHost`.
    pub async fn remove_host(&self, host_id: i64) -> Result<(), ClientError> {
        let current = self.inner.store.host(host_id).await?;
        read_only(&current)?;
        self.inner.pool.stop(host_id).await;
        self.inner.store.delete_host(host_id).await?;
        self.publish_idle().await
    }

    /// Hosts of a client. `getHosts`.
    pub async fn hosts(&self, client_id: i64) -> Result<Vec<HostRecord>, ClientError> {
        self.inner.store.client(client_id).await?;
        Ok(self.inner.store.hosts(Some(client_id)).await?)
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
                    last_collected_at: host_snap.map(|s| crate::clock::unix_seconds(s.built_at)),
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

    // ---- monitoring ----

    /// Starts collecting a client's enabled hosts. `startMonitoring`.
    pub async fn start_monitoring(&self, client_id: i64) -> Result<(), ClientError> {
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
        self.inner.store.set_monitoring(client_id, false).await?;
        for h in self.inner.store.hosts(Some(client_id)).await? {
            self.inner.pool.stop(h.id).await;
        }
        self.publish_idle().await
    }

    /// Stops collecting every client. `stopAllMonitoring`.
    pub async fn stop_all_monitoring(&self) -> Result<(), ClientError> {
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

    // ---- containers ----

    /// Every container (running or not) on the client's enabled hosts, with stats.
    /// `getAllContainers`.
    pub async fn all_containers(&self, client_id: i64) -> Result<ContainerListing, ClientError> {
        self.containers(client_id, ContainerQuery::default()).await
    }

    /// Running containers with stats. `getRunningContainers`.
    pub async fn running_containers(
        &self,
        client_id: i64,
    ) -> Result<ContainerListing, ClientError> {
        let q = ContainerQuery {
            running: true,
            ..ContainerQuery::default()
        };
        self.containers(client_id, q).await
    }

    /// Containers carrying label `key` (with `value`, when given), with stats.
    /// `getContainersByLabel`.
    pub async fn containers_by_label(
        &self,
        client_id: i64,
        key: &str,
        value: Option<&str>,
    ) -> Result<ContainerListing, ClientError> {
        let q = ContainerQuery {
            label: Some((key, value)),
            ..ContainerQuery::default()
        };
        self.containers(client_id, q).await
    }

    /// Lists live from each host (through the host's own connection when it is collected)
    /// and attaches the snapshot's latest stats; hosts that fail are reported, not fatal.
    pub async fn containers(
        &self,
        client_id: i64,
        q: ContainerQuery<'_>,
    ) -> Result<ContainerListing, ClientError> {
        let hosts = self.client_hosts(client_id, q.host).await?;
        let snap = self.snapshot();
        let answers = join_all(hosts.iter().map(|h| async move {
            let conn = self.connection(h).await?;
            conn.list_containers(!q.running).await
        }))
        .await;
        let mut listing = ContainerListing {
            containers: Vec::new(),
            errors: Vec::new(),
        };
        for (h, answer) in hosts.iter().zip(answers) {
            let summaries = match answer {
                Ok(s) => s,
                Err(error) => {
                    listing.errors.push(HostFailure {
                        host: h.name.clone(),
                        host_id: h.id,
                        error,
                    });
                    continue;
                }
            };
            let host_snap = snap.host(h.id);
            for summary in summaries {
                if let Some((key, value)) = q.label {
                    let v = summary.labels.as_ref().and_then(|l| l.get(key));
                    if v.is_none() || value.is_some_and(|want| v.map(String::as_str) != Some(want))
                    {
                        continue;
                    }
                }
                let stats = summary.id.as_deref().and_then(|id| {
                    host_snap?
                        .containers
                        .iter()
                        .find(|c| c.meta.id == id)
                        .and_then(|c| c.stats.as_deref())
                        .map(ContainerStats::of)
                });
                listing.containers.push(ContainerView {
                    host: h.name.clone(),
                    host_id: h.id,
                    summary,
                    stats,
                });
            }
        }
        Ok(listing)
    }

    /// The host's collector connection, or a fresh one for a host not collected.
    async fn connection(&self, h: &HostRecord) -> Result<Arc<Connection>, DockerError> {
        if let Some(c) = self.inner.pool.connection(h.id) {
            return Ok(c);
        }
        // Not registered with Instruments: a one-off connection is not a collected host.
        let instruments = Arc::new(HostInstruments::new(
            Arc::from(h.name.as_str()),
            Arc::from(h.client_name.as_str()),
            Arc::default(),
        ));
        Connection::open(
            &h.endpoint,
            self.inner.settings.request_timeout,
            instruments,
        )
        .await
        .map(Arc::new)
    }

    // ---- status ----

    /// Pool and worker figures. `getStatus`.
    pub fn status(&self) -> PoolStatus {
        self.inner.pool.status()
    }

    /// Same figures as [`DockerClient::status`]. `getPoolStats`.
    pub fn pool_stats(&self) -> PoolStatus {
        self.status()
    }
}

fn spec(h: &HostRecord) -> HostSpec {
    HostSpec {
        id: h.id,
        name: Arc::from(h.name.as_str()),
        client: Arc::from(h.client_name.as_str()),
        endpoint: h.endpoint.clone(),
    }
}

fn read_only(h: &HostRecord) -> Result<(), ClientError> {
    if h.source == Source::Config {
        return Err(ClientError::ReadOnly(format!(
            "host `{}` of client `{}` is declared in the configuration file; change it there",
            h.name, h.client_name
        )));
    }
    Ok(())
}

fn invalid(field: &str, message: &str) -> ClientError {
    ClientError::Invalid(vec![FieldError {
        field: field.to_string(),
        message: message.to_string(),
    }])
}
