//! Live self-instrumentation the collectors update as they work: Docker request latency and
//! errors per host and endpoint, and calls in flight. Unlike container figures these are not
//! rebuilt each cycle, so they live in atomics and are rendered beside the snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::lock::MutexExt;

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
    /// `GET /system/df` (disk usage, off the scrape path).
    SystemDf,
}

impl ApiCall {
    /// Every call, in label order.
    pub const ALL: [ApiCall; 10] = [
        ApiCall::Ping,
        ApiCall::Version,
        ApiCall::Info,
        ApiCall::ContainerList,
        ApiCall::ContainerInspect,
        ApiCall::ContainerStats,
        ApiCall::Events,
        ApiCall::ContainerAction,
        ApiCall::ContainerLogs,
        ApiCall::SystemDf,
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
            ApiCall::SystemDf => "system_df",
        }
    }
}

/// Upper bounds of the Docker API latency buckets: one-shot stats answer in ~20 ms, a hung
/// host in seconds. A last bucket holds everything above.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram in atomics, readable bucket by bucket.
///
/// Why not prometheus-client's `Histogram`: it does not hand out its bucket counts, and the
/// OTLP export needs them as much as `/metrics` does.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative); the last one is the overflow (`+Inf`) bucket.
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of observations, f64 bits.
    sum: AtomicU64,
}

/// A histogram's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramFigures {
    /// Count per bucket, not cumulative; `BUCKETS.len() + 1` entries, the last is `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of observations.
    pub sum: f64,
}

impl HistogramFigures {
    /// Observations in all buckets.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
}

impl LatencyHistogram {
    /// Records one observation in seconds.
    pub fn observe(&self, v: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(BUCKETS.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Current figures.
    pub fn figures(&self) -> HistogramFigures {
        HistogramFigures {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// Request figures of one host. Shared by its collector and the scrape.
#[derive(Debug)]
pub struct HostInstruments {
    /// `host` label.
    pub host: Arc<str>,
    /// `client` label.
    pub client: Arc<str>,
    durations: Vec<LatencyHistogram>,
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
                .map(|_| LatencyHistogram::default())
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
        let mut errors = self.errors.locked();
        *errors.entry((kind, status)).or_insert(0) += 1;
    }

    /// Marks a call as started; the guard ends it, also when the call is cancelled.
    pub fn start(&self) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self.inflight.clone())
    }

    /// Latency histograms with their endpoint label, for rendering.
    pub fn durations(&self) -> impl Iterator<Item = (ApiCall, &LatencyHistogram)> {
        ApiCall::ALL.iter().copied().zip(self.durations.iter())
    }

    /// Error counts by (kind, status), for rendering.
    pub fn errors(&self) -> Vec<((&'static str, Option<u16>), u64)> {
        let errors = self.errors.locked();
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

/// How OTLP exports went, for `dockstat_otlp_*`.
#[derive(Debug, Default)]
pub struct OtlpStats {
    /// Exports by outcome, in [`ExportOutcome::ALL`] order.
    outcomes: [AtomicU64; 3],
    last: Mutex<OtlpLast>,
}

/// The last success and failure, kept together behind one lock.
#[derive(Debug, Default, Clone)]
struct OtlpLast {
    success: Option<SystemTime>,
    error: Option<(&'static str, String, SystemTime)>,
}

/// How one export attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportOutcome {
    /// The receiver took everything.
    Success,
    /// The receiver answered but rejected some data points.
    Partial,
    /// Nothing was delivered.
    Failed,
}

impl ExportOutcome {
    /// Every outcome, in label order.
    pub const ALL: [ExportOutcome; 3] = [
        ExportOutcome::Success,
        ExportOutcome::Partial,
        ExportOutcome::Failed,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportOutcome::Success => "success",
            ExportOutcome::Partial => "partial",
            ExportOutcome::Failed => "failed",
        }
    }
}

impl OtlpStats {
    /// Counts an attempt that delivered (all or part of) the payload.
    pub fn delivered(&self, outcome: ExportOutcome) {
        self.count(outcome);
        self.lock().success = Some(SystemTime::now());
    }

    /// Counts a failed attempt and remembers why.
    pub fn failed(&self, kind: &'static str, message: String) {
        self.count(ExportOutcome::Failed);
        self.lock().error = Some((kind, message, SystemTime::now()));
    }

    fn count(&self, outcome: ExportOutcome) {
        if let Some(c) = self.outcomes.get(outcome as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Attempts so far by outcome.
    pub fn outcomes(&self) -> [(ExportOutcome, u64); 3] {
        ExportOutcome::ALL.map(|o| {
            let n = self
                .outcomes
                .get(o as usize)
                .map_or(0, |c| c.load(Ordering::Relaxed));
            (o, n)
        })
    }

    /// Kind, message and time of the most recent failure.
    pub fn last_error(&self) -> Option<(&'static str, String, SystemTime)> {
        self.lock().error.clone()
    }

    /// Time of the most recent delivery.
    pub fn last_success(&self) -> Option<SystemTime> {
        self.lock().success
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OtlpLast> {
        self.last.locked()
    }
}

/// All hosts' instruments, keyed by host id; a removed host's series leave with it. Also
/// the process-wide OTLP figures.
#[derive(Debug, Default)]
pub struct Instruments {
    hosts: Mutex<BTreeMap<i64, Arc<HostInstruments>>>,
    /// OTLP export outcomes (all zero while OTLP is off).
    pub otlp: OtlpStats,
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
        self.hosts.locked()
    }
}
