//! [`DockerClient`]: the library API, carrying over the operations of the TypeScript
//! `@dockstat/docker-client` (registerClient, addHost, startMonitoring, getAllContainers,
//! getStatus, …) in Rust naming. The admin API is a thin wrapper over it.
//!
//! - this module: starting (store, pool, streams), what `/metrics` and OTLP read, status,
//!   the audit log.
//! - `catalog`: clients, hosts and their monitoring (store first, then the pool, so a
//!   change takes effect at once and survives a restart).
//! - `containers`: finding a container by id, prefix or name; listing, inspecting,
//!   acting on it.
//! - `logs`: a container's log frames as lines.
//! - `views`, `error`: what calls take and give back, and why they fail.

mod catalog;
mod containers;
mod error;
mod logs;
mod naming;
mod views;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use containers::{Action, ActionOutcome, ContainerRef, DENY_LABEL};
pub use error::{ClientError, FieldError};
pub use logs::{LogLine, LogQuery};
pub use views::{
    ContainerListing, ContainerQuery, ContainerView, DockerErrorView, HostCheck, HostFailure,
    HostHealth, HostUpdate, NewHost,
};

use crate::collect::{HostSpec, Settings};
use crate::config::Validated;
use crate::docker::{Connection, DockerError};
use crate::families::{Inputs, Selection};
use crate::instruments::{HostInstruments, Instruments};
use crate::metrics::Exposition;
use crate::pool::{Pool, PoolStatus};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::store::{AuditRecord, HostRecord, Origin, Store};
use crate::streams::StreamManager;

/// The library entry point. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerClient {
    inner: Arc<Inner>,
}

/// What every clone of a [`DockerClient`] shares.
#[derive(Debug)]
struct Inner {
    store: Store,
    pool: Arc<Pool>,
    snapshots: Arc<SnapshotStore>,
    instruments: Arc<Instruments>,
    settings: Settings,
    base_dir: PathBuf,
    /// The families exported (`metrics.disable`).
    selection: Arc<Selection>,
    /// Held by each change of clients, hosts or monitoring and by the periodic re-read of
    /// the hosts (with shards), so a re-read never undoes a change made while it ran.
    catalog: tokio::sync::Mutex<()>,
    /// Ends the periodic re-read.
    stop: tokio_util::sync::CancellationToken,
}

impl DockerClient {
    /// Opens the database, syncs the configuration's clients and hosts into it, and starts
    /// collecting every enabled host of every monitored client.
    pub async fn start(cfg: &Validated) -> Result<DockerClient, ClientError> {
        let store = Store::open(&cfg.database_path).await?;
        let mut clients = cfg.clients.clone();
        let mut renames = Vec::new();
        if clients
            .iter()
            .any(|c| c.hosts.iter().any(|h| h.name_from_daemon))
        {
            let stored = store.hosts(None).await?;
            naming::name_hosts(&mut clients, &stored, cfg.config.monitoring.request_timeout).await;
            for (before, after) in cfg.clients.iter().zip(&clients) {
                for (b, a) in before.hosts.iter().zip(&after.hosts) {
                    if b.name != a.name {
                        renames.push((after.name.clone(), b.name.clone(), a.name.clone()));
                    }
                }
            }
        }
        let report = store.sync_config(clients).await?;
        tracing::info!(db = %cfg.database_path.display(), hosts = report.upserted, removed = report.removed,
            "configuration synced into the database");
        let sc = &cfg.config.streams;
        let streams = Arc::new(StreamManager::with_first_id(
            sc.ring,
            sc.queue.get(),
            sc.max_subscribers,
            store.claim_stream_id_base().await?,
        ));
        let mut settings = Settings::from_config(cfg, streams, Some(store.clone()));
        if !renames.is_empty() {
            settings.containers = Arc::new(cfg.containers.renamed(&renames));
        }
        let snapshots = Arc::new(SnapshotStore::default());
        let instruments = Arc::new(Instruments::default());
        let pool = Arc::new(Pool::new(
            settings.clone(),
            cfg.shard,
            cfg.config.monitoring.max_workers.get(),
            snapshots.clone(),
            instruments.clone(),
        ));
        let docker = DockerClient {
            inner: Arc::new(Inner {
                store,
                pool,
                snapshots,
                instruments,
                settings,
                selection: Arc::new(selection(cfg)),
                base_dir: cfg
                    .source
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
                catalog: tokio::sync::Mutex::new(()),
                stop: tokio_util::sync::CancellationToken::new(),
            }),
        };
        docker.reconcile().await?;
        if cfg.shard.total > 1 {
            tracing::info!(
                shard = cfg.shard.index,
                total = cfg.shard.total,
                hosts = docker.inner.pool.collecting().len(),
                "collecting this shard's hosts"
            );
            tokio::spawn(refresh(
                Arc::downgrade(&docker.inner),
                cfg.config.shard.refresh,
            ));
        }
        Ok(docker)
    }

    /// This replica's shard.
    pub fn shard(&self) -> crate::shard::Shard {
        self.inner.pool.shard()
    }

    /// Reads the clients and hosts again from the database and collects what this
    /// replica's shard should: what other replicas sharing the database added, changed or
    /// removed through their API takes effect here.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        let _catalog = self.inner.catalog.lock().await;
        self.reconcile().await
    }

    /// The live channels.
    pub fn streams(&self) -> &Arc<StreamManager> {
        &self.inner.settings.streams
    }

    /// Stops all collection.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
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
            selection: self.inner.selection.clone(),
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
            .filter(|h| self.inner.pool.owns(&h.client_name, &h.name))
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

    /// Pool and worker figures. `getStatus`.
    pub fn status(&self) -> PoolStatus {
        self.inner.pool.status()
    }

    /// Same figures as [`DockerClient::status`]. `getPoolStats`.
    pub fn pool_stats(&self) -> PoolStatus {
        self.status()
    }

    /// Writes one audit record (the admin API's log of mutating calls).
    pub async fn record_audit(&self, record: AuditRecord) -> Result<i64, ClientError> {
        Ok(self.inner.store.insert_audit(record).await?)
    }

    /// Audit records, newest first: at most `limit`, with id below `before` when given.
    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>, ClientError> {
        Ok(self.inner.store.audit(limit, before).await?)
    }
}

/// The families `metrics.disable` leaves exported; a name that is neither a group nor a
/// family (the command line refuses those before) is only warned about.
fn selection(cfg: &Validated) -> Selection {
    let (selection, unknown) = Selection::of(&cfg.config.metrics.disable);
    for (_, name) in unknown {
        tracing::warn!(name = %name, "metrics.disable: no such family or group");
    }
    selection
}

/// Re-reads the hosts every `every` until the client is shut down or dropped.
async fn refresh(inner: std::sync::Weak<Inner>, every: std::time::Duration) {
    loop {
        let stop = match inner.upgrade() {
            Some(i) => i.stop.clone(),
            None => return,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let docker = DockerClient { inner };
        if let Err(e) = docker.refresh().await {
            tracing::warn!(error = %e, "cannot re-read the hosts from the database");
        }
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
    if h.source == Origin::Config {
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
