//! Live self-instrumentation the collectors update as they work: Docker request latency and
//! errors per host and endpoint, and calls in flight. Unlike container figures these are not
//! rebuilt each cycle, so they live in atomics and are rendered beside the snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

/// The Docker Engine API calls we make, the `endpoint` label of request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiCall {
    /// `GET /_ping`
    Ping,
    /// `GET /version`
    Version,
    /// `GET /info`
    Info,
    /// `GET /containers/json`
    ContainerList,
    /// `GET /containers/{id}/json`
    ContainerInspect,
    /// `GET /containers/{id}/stats`
    ContainerStats,
    /// `GET /events`
    Events,
    /// `POST /containers/{id}/start|stop|restart`, `DELETE /containers/{id}` (admin API).
    ContainerAction,
    /// `GET /containers/{id}/logs` until the head of the answer (admin API).
    ContainerLogs,
}

impl ApiCall {
    /// Every call, in label order.
    pub const ALL: [ApiCall; 9] = [
        ApiCall::Ping,
        ApiCall::Version,
        ApiCall::Info,
        ApiCall::ContainerList,
        ApiCall::ContainerInspect,
        ApiCall::ContainerStats,
        ApiCall::Events,
        ApiCall::ContainerAction,
        ApiCall::ContainerLogs,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiCall::Ping => "ping",
            ApiCall::Version => "version",
            ApiCall::Info => "info",
            ApiCall::ContainerList => "containers_list",
            ApiCall::ContainerInspect => "container_inspect",
            ApiCall::ContainerStats => "container_stats",
            ApiCall::Events => "events",
            ApiCall::ContainerAction => "container_action",
            ApiCall::ContainerLogs => "container_logs",
        }
    }
}

/// Buckets for Docker API latency: one-shot stats answer in ~20 ms, a hung host in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Request figures of one host. Shared by its collector and the scrape.
#[derive(Debug)]
pub struct HostInstruments {
    /// `host` label.
    pub host: Arc<str>,
    /// `client` label.
    pub client: Arc<str>,
    durations: Vec<Histogram>,
    errors: Mutex<BTreeMap<(&'static str, Option<u16>), u64>>,
    inflight: Arc<AtomicI64>,
}

impl HostInstruments {
    /// Instruments for one host; `inflight` is shared with its worker.
    pub fn new(host: Arc<str>, client: Arc<str>, inflight: Arc<AtomicI64>) -> HostInstruments {
        HostInstruments {
            host,
            client,
            durations: ApiCall::ALL
                .iter()
                .map(|_| Histogram::new(BUCKETS.iter().copied()))
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
            inflight,
        }
    }

    /// Records one finished call.
    pub fn observe(&self, call: ApiCall, took: Duration) {
        if let Some(h) = self.durations.get(call as usize) {
            h.observe(took.as_secs_f64());
        }
    }

    /// Counts one failure by kind (and HTTP status for API errors).
    pub fn count_error(&self, kind: &'static str, status: Option<u16>) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry((kind, status)).or_insert(0) += 1;
    }

    /// Marks a call as started; the guard ends it, also when the call is cancelled.
    pub fn start(&self) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self.inflight.clone())
    }

    /// Latency histograms with their endpoint label, for rendering.
    pub fn durations(&self) -> impl Iterator<Item = (ApiCall, &Histogram)> {
        ApiCall::ALL.iter().copied().zip(self.durations.iter())
    }

    /// Error counts by (kind, status), for rendering.
    pub fn errors(&self) -> Vec<((&'static str, Option<u16>), u64)> {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        errors.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// Ends an in-flight call when dropped.
#[derive(Debug)]
pub struct InflightGuard(Arc<AtomicI64>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// All hosts' instruments, keyed by host id; a removed host's series leave with it.
#[derive(Debug, Default)]
pub struct Instruments {
    hosts: Mutex<BTreeMap<i64, Arc<HostInstruments>>>,
}

impl Instruments {
    /// Registers (or replaces) a host's instruments.
    pub fn insert(&self, host_id: i64, inst: Arc<HostInstruments>) {
        self.lock().insert(host_id, inst);
    }

    /// Forgets a host.
    pub fn remove(&self, host_id: i64) {
        self.lock().remove(&host_id);
    }

    /// Every host's instruments, for rendering.
    pub fn all(&self) -> Vec<Arc<HostInstruments>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Arc<HostInstruments>>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }
}
