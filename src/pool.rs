//! The pool: which hosts are collected, each by a collector of its own, and the workers
//! they are counted under.
//!
//! Each host's collector runs in a tokio task of its own (`supervise`, which restarts it
//! after a panic and stops it when told), so a slow, hung or dead host never delays another
//! one. A *worker* is what the seed's `getStatus` reports: a group of hosts with an id, an
//! uptime and a count of Docker calls in flight. It runs nothing itself. Hosts get a worker
//! of their own until `max_workers` exist; after that a new host joins the least-loaded
//! worker.
//!
//! With shards (several replicas sharing one host set), the pool collects only the hosts
//! of its own shard: `ensure` of any other host stops it instead.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::collect::{Collector, HostSpec, HostStatus, Settings};
use crate::docker::Connection;
use crate::families::{PoolFigures, PoolSource};
use crate::instruments::{HostInstruments, Instruments};
use crate::lock::MutexExt;
use crate::process::{self, ProcessStats};
use crate::shard::Shard;
use crate::snapshot::SnapshotStore;

/// The runtime collectors are spawned on once [`dedicate_thread`] has run; before that (and
/// in library use and tests), the caller's.
static COLLECTION: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Runs every collector started from now on on one thread of its own instead of the
/// shared workers: `collection`, a current-thread tokio runtime (its blocking threads are
/// named so too).
///
/// Why: at 10,000 containers the collectors make 2,000 short calls a second, whose tasks
/// (the callers, and the pooled client's connection tasks before `docker::exchange`) wake
/// one another. Spread over the
/// worker threads, a good part of the CPU went to waking threads and to the two threads
/// contending on the allocator's lock (futex wake-ups and context switches, ~20 % of the
/// exporter's profile; BENCHMARKS.md). Collection needs a few percent of one core, so
/// one thread is enough; the scrapes, the API and OTLP keep the multi-threaded runtime,
/// and a long render never waits behind collection nor collection behind it. Blocking
/// work (cgroup files) still goes to the blocking pool. The runtime lives as long as the
/// process; collectors on it are stopped the usual way (cancelled, then awaited).
pub fn dedicate_thread() -> std::io::Result<()> {
    if COLLECTION.get().is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("collection")
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("collection".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    // A second caller racing this one keeps the first runtime; this thread then idles.
    let _ = COLLECTION.set(handle);
    Ok(())
}

/// Tasks alive on the caller's runtime and, once collection has a thread of its own, on
/// that one too: the collectors, their calls and connections live there. Read from the
/// serving side (scrapes, OTLP, the API), which never runs on the collection thread.
fn alive_tasks() -> usize {
    let here = tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_alive_tasks())
        .unwrap_or(0);
    here + COLLECTION
        .get()
        .map_or(0, |c| c.metrics().num_alive_tasks())
}

/// How long a stopping collector may take to finish before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The pool; one per [`DockerClient`](crate::DockerClient).
#[derive(Debug)]
pub struct Pool {
    settings: Settings,
    shard: Shard,
    max_workers: usize,
    snapshots: Arc<SnapshotStore>,
    instruments: Arc<Instruments>,
    state: Mutex<PoolState>,
    // Serializes start/stop so two callers never race on the same host.
    ops: tokio::sync::Mutex<()>,
    started: Instant,
}

/// The workers and their hosts; behind the pool's lock.
#[derive(Debug, Default)]
struct PoolState {
    workers: Vec<Worker>,
    next_worker_id: u64,
}

/// A group of hosts counted together in the status figures (see the module documentation:
/// it has no task of its own). Its in-flight counter is shared by its hosts' instruments.
#[derive(Debug)]
struct Worker {
    id: u64,
    started: Instant,
    inflight: Arc<AtomicI64>,
    hosts: BTreeMap<i64, HostTask>,
}

/// A collected host: what it was started with, what others may read of its collector, and
/// the task to stop.
#[derive(Debug)]
struct HostTask {
    spec: HostSpec,
    status: Arc<HostStatus>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// Pool figures, the seed's `getStatus` / `getPoolStats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Workers alive.
    pub total_workers: usize,
    /// Workers collecting at least one host.
    pub active_workers: usize,
    /// Hosts being collected.
    pub total_hosts: usize,
    /// total_hosts / total_workers (0 without workers).
    pub average_hosts_per_worker: f64,
    /// Docker calls in flight over all workers.
    pub inflight_requests: i64,
    /// Open Docker event streams over all workers.
    pub active_streams: usize,
    /// Seconds since the pool started.
    pub uptime: f64,
    /// Process memory (workers share one address space).
    pub memory_usage: MemoryUsage,
    /// Per worker.
    pub workers: Vec<WorkerStatus>,
}

/// One worker's figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// Worker id, stable for its life.
    pub worker_id: u64,
    /// Clients of its hosts, comma separated.
    pub client_name: String,
    /// Hosts it collects.
    pub hosts_managed: usize,
    /// `client/host` of each.
    pub hosts: Vec<String>,
    /// Its open Docker event streams.
    pub active_streams: usize,
    /// Its Docker calls in flight.
    pub inflight_requests: i64,
    /// Whether any of its hosts is connected and collected.
    pub is_monitoring: bool,
    /// Seconds since it started.
    pub uptime: f64,
    /// Process memory (shared by all workers).
    pub memory_usage: MemoryUsage,
}

/// Process memory, bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryUsage {
    /// Resident set size.
    pub rss_bytes: u64,
    /// Virtual size.
    pub virtual_bytes: u64,
}

impl From<Option<ProcessStats>> for MemoryUsage {
    fn from(p: Option<ProcessStats>) -> Self {
        p.map(|p| MemoryUsage {
            rss_bytes: p.rss_bytes,
            virtual_bytes: p.virtual_bytes,
        })
        .unwrap_or_default()
    }
}

/// What `/metrics` and OTLP read of the pool (they sit below it, so they ask through
/// [`PoolSource`]).
impl PoolSource for Pool {
    fn figures(&self) -> PoolFigures {
        let s = self.status();
        PoolFigures {
            workers: s.total_workers,
            hosts: s.total_hosts,
            active_streams: s.active_streams,
            inflight: s.inflight_requests,
            tasks: alive_tasks(),
            shard: self.shard,
        }
    }
}

impl Pool {
    /// An empty pool.
    pub fn new(
        settings: Settings,
        shard: Shard,
        max_workers: usize,
        snapshots: Arc<SnapshotStore>,
        instruments: Arc<Instruments>,
    ) -> Pool {
        Pool {
            settings,
            shard,
            max_workers: max_workers.max(1),
            snapshots,
            instruments,
            state: Mutex::new(PoolState::default()),
            ops: tokio::sync::Mutex::new(()),
            started: Instant::now(),
        }
    }

    /// This replica's shard.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Whether the host `host` of client `client` falls into this replica's shard; the
    /// pool collects no other (see [`crate::shard`]).
    pub fn owns(&self, client: &str, host: &str) -> bool {
        self.shard.owns(client, host)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.locked()
    }

    /// Makes the pool collect exactly `desired`: starts what is missing, stops what is no
    /// longer wanted, restarts hosts whose endpoint or labels changed.
    pub async fn reconcile(&self, desired: Vec<HostSpec>) {
        let _ops = self.ops.lock().await;
        let running: Vec<i64> = self.running_ids();
        for id in running {
            if !desired.iter().any(|d| d.id == id) {
                self.stop_locked(id).await;
            }
        }
        for spec in desired {
            self.ensure_locked(spec).await;
        }
    }

    /// Starts collecting a host, or restarts it if its spec changed.
    pub async fn ensure(&self, spec: HostSpec) {
        let _ops = self.ops.lock().await;
        self.ensure_locked(spec).await;
    }

    /// Stops collecting a host; its series leave the snapshot.
    pub async fn stop(&self, host_id: i64) {
        let _ops = self.ops.lock().await;
        self.stop_locked(host_id).await;
    }

    /// Stops everything.
    pub async fn shutdown(&self) {
        let _ops = self.ops.lock().await;
        for id in self.running_ids() {
            self.stop_locked(id).await;
        }
    }

    async fn ensure_locked(&self, spec: HostSpec) {
        if !self.owns(&spec.client, &spec.name) {
            // Another replica's host (renamed into another shard, say): not collected here.
            self.stop_locked(spec.id).await;
            return;
        }
        let same = self.find(spec.id, |t| t.spec == spec);
        match same {
            Some(true) => return,
            Some(false) => self.stop_locked(spec.id).await,
            None => {}
        }
        let mut st = self.state();
        let index = if st.workers.len() < self.max_workers {
            st.next_worker_id += 1;
            let id = st.next_worker_id;
            st.workers.push(Worker {
                id,
                started: Instant::now(),
                inflight: Arc::new(AtomicI64::new(0)),
                hosts: BTreeMap::new(),
            });
            st.workers.len() - 1
        } else {
            // Least loaded; ties go to the oldest worker.
            (0..st.workers.len())
                .min_by_key(|&i| (st.workers[i].hosts.len(), st.workers[i].id))
                .unwrap_or(0)
        };
        let Some(worker) = st.workers.get_mut(index) else {
            return;
        };
        // Visible as down from the first scrape on, until the collector's first answer.
        self.snapshots
            .publish(crate::snapshot::HostSnapshot::pending(
                spec.id,
                spec.name.clone(),
                spec.client.clone(),
            ));
        let task = self.spawn(spec.clone(), worker.inflight.clone());
        tracing::info!(host = %spec.name, client = %spec.client, worker = worker.id, "collecting host");
        worker.hosts.insert(spec.id, task);
    }

    async fn stop_locked(&self, host_id: i64) {
        let task = {
            let mut st = self.state();
            let mut found = None;
            for w in st.workers.iter_mut() {
                if let Some(t) = w.hosts.remove(&host_id) {
                    found = Some(t);
                    break;
                }
            }
            st.workers.retain(|w| !w.hosts.is_empty());
            found
        };
        let Some(task) = task else { return };
        task.cancel.cancel();
        let abort = task.handle.abort_handle();
        if tokio::time::timeout(STOP_GRACE, task.handle).await.is_err() {
            abort.abort();
        }
        // Only after the collector is gone, so it cannot publish again.
        self.snapshots.remove(host_id);
        self.instruments.remove(host_id);
        tracing::info!(host = %task.spec.name, client = %task.spec.client, "stopped collecting host");
    }

    fn spawn(&self, spec: HostSpec, inflight: Arc<AtomicI64>) -> HostTask {
        let status = Arc::new(HostStatus::default());
        let instruments = Arc::new(HostInstruments::new(
            spec.name.clone(),
            spec.client.clone(),
            inflight,
        ));
        self.instruments.insert(spec.id, instruments.clone());
        let cancel = CancellationToken::new();
        let collector = supervise(
            spec.clone(),
            self.settings.clone(),
            status.clone(),
            self.snapshots.clone(),
            instruments,
            cancel.clone(),
        );
        let handle = match COLLECTION.get() {
            Some(runtime) => runtime.spawn(collector),
            None => tokio::spawn(collector),
        };
        HostTask {
            spec,
            status,
            cancel,
            handle,
        }
    }

    fn find<T>(&self, host_id: i64, f: impl FnOnce(&HostTask) -> T) -> Option<T> {
        let st = self.state();
        st.workers.iter().find_map(|w| w.hosts.get(&host_id)).map(f)
    }

    fn running_ids(&self) -> Vec<i64> {
        let st = self.state();
        st.workers
            .iter()
            .flat_map(|w| w.hosts.keys().copied())
            .collect()
    }

    /// Whether a host is being collected.
    pub fn is_collecting(&self, host_id: i64) -> bool {
        self.find(host_id, |_| ()).is_some()
    }

    /// Hosts being collected.
    pub fn collecting(&self) -> Vec<HostSpec> {
        let st = self.state();
        st.workers
            .iter()
            .flat_map(|w| w.hosts.values().map(|t| t.spec.clone()))
            .collect()
    }

    /// The live connection of a collected, reachable host.
    pub fn connection(&self, host_id: i64) -> Option<Arc<Connection>> {
        self.find(host_id, |t| t.status.connection()).flatten()
    }

    /// Live status of a collected host.
    pub fn host_status(&self, host_id: i64) -> Option<Arc<HostStatus>> {
        self.find(host_id, |t| t.status.clone())
    }

    /// Pool figures.
    pub fn status(&self) -> PoolStatus {
        let memory = MemoryUsage::from(process::read());
        let st = self.state();
        let workers: Vec<WorkerStatus> = st
            .workers
            .iter()
            .map(|w| {
                let mut clients: Vec<&str> = w.hosts.values().map(|t| &*t.spec.client).collect();
                clients.sort_unstable();
                clients.dedup();
                WorkerStatus {
                    worker_id: w.id,
                    client_name: clients.join(","),
                    hosts_managed: w.hosts.len(),
                    hosts: w
                        .hosts
                        .values()
                        .map(|t| format!("{}/{}", t.spec.client, t.spec.name))
                        .collect(),
                    active_streams: w.hosts.values().filter(|t| t.status.events_open()).count(),
                    inflight_requests: w.inflight.load(Ordering::Relaxed),
                    is_monitoring: w.hosts.values().any(|t| t.status.connection().is_some()),
                    uptime: w.started.elapsed().as_secs_f64(),
                    memory_usage: memory,
                }
            })
            .collect();
        let total_hosts: usize = workers.iter().map(|w| w.hosts_managed).sum();
        PoolStatus {
            total_workers: workers.len(),
            active_workers: workers.iter().filter(|w| w.is_monitoring).count(),
            total_hosts,
            average_hosts_per_worker: if workers.is_empty() {
                0.0
            } else {
                total_hosts as f64 / workers.len() as f64
            },
            inflight_requests: workers.iter().map(|w| w.inflight_requests).sum(),
            active_streams: workers.iter().map(|w| w.active_streams).sum(),
            uptime: self.started.elapsed().as_secs_f64(),
            memory_usage: memory,
            workers,
        }
    }
}

/// Runs a host's collector until cancelled; a panic is logged and the collector restarted
/// after `retry_delay`, so one bad answer from one host cannot end its collection for good.
async fn supervise(
    spec: HostSpec,
    settings: Settings,
    status: Arc<HostStatus>,
    snapshots: Arc<crate::snapshot::SnapshotStore>,
    instruments: Arc<HostInstruments>,
    cancel: CancellationToken,
) {
    // Every line a collector logs names its host and client.
    let span = tracing::info_span!("collector", host = %spec.name, client = %spec.client);
    loop {
        let collector = Collector::new(
            spec.clone(),
            settings.clone(),
            status.clone(),
            snapshots.clone(),
            instruments.clone(),
        );
        tokio::select! {
            _ = cancel.cancelled() => return,
            result = AssertUnwindSafe(collector.run().instrument(span.clone())).catch_unwind() => {
                if result.is_err() {
                    tracing::error!(host = %spec.name, client = %spec.client, "collector panicked; restarting it");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(settings.retry_delay) => {}
        }
    }
}
