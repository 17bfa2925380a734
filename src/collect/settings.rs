//! What a collector is told: which host ([`HostSpec`]) and how ([`Settings`]), built
//! whole from the validated configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::cgroup::CgroupReader;
use crate::config::filter::Filters;
use crate::config::{Endpoint, StatsSource, Validated};
use crate::store::Store;
use crate::streams::StreamManager;

/// Which host to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Database id.
    pub id: i64,
    /// `host` label.
    pub name: Arc<str>,
    /// `client` label.
    pub client: Arc<str>,
    /// Where and how to connect.
    pub endpoint: Endpoint,
}

/// Collection settings shared by all hosts, taken from the `monitoring` and `metrics`
/// sections of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time between samples.
    pub interval: Duration,
    /// Time between full re-lists.
    pub relist_interval: Duration,
    /// Deadline of one Docker call.
    pub request_timeout: Duration,
    /// Stats (and inspect) calls in flight per host.
    pub concurrency: usize,
    /// Quick reconnect attempts.
    pub max_retries: u32,
    /// Delay between quick attempts.
    pub retry_delay: Duration,
    /// Cap of the slower retry.
    pub retry_max_delay: Duration,
    /// Label allowlist: (Docker key, Prometheus label name).
    pub labels: Arc<[(String, Arc<str>)]>,
    /// Where collectors publish events, host changes and stats for subscribers.
    pub streams: Arc<StreamManager>,
    /// Where each host's event cursor and lifecycle counts are kept across restarts.
    pub store: Option<Store>,
    /// Reads containers' cgroup files (`stats_source` auto or cgroup); None for api.
    pub cgroup: Option<Arc<CgroupReader>>,
    /// Warn about containers read through the API (`stats_source: cgroup`).
    pub warn_api_fallback: bool,
    /// Disk usage passes; None when off.
    pub disk: Option<DiskSettings>,
    /// Which containers each host's collector follows (`containers` sections).
    pub containers: Arc<Filters>,
    /// Globs of the Docker label keys `dockstat_container_labels` carries.
    pub info_labels: Arc<[String]>,
}

/// When disk usage passes run (`monitoring.disk_usage_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSettings {
    /// Time between the starts of two passes (a pass still running delays the next).
    pub interval: Duration,
    /// Deadline of one pass.
    pub timeout: Duration,
}

impl Settings {
    /// From a validated configuration, with the channels collectors publish on and the
    /// database that keeps their event cursors (None: nothing is kept).
    pub fn from_config(
        cfg: &Validated,
        streams: Arc<StreamManager>,
        store: Option<Store>,
    ) -> Settings {
        let m = &cfg.config.monitoring;
        let metrics = &cfg.config.metrics;
        Settings {
            interval: m.interval,
            relist_interval: m.relist_interval,
            request_timeout: m.request_timeout,
            concurrency: m.stats_concurrency.get(),
            max_retries: m.max_retries,
            retry_delay: m.retry_delay,
            retry_max_delay: m.retry_max_delay,
            labels: cfg
                .labels
                .iter()
                .map(|(k, n)| (k.clone(), Arc::from(n.as_str())))
                .collect(),
            streams,
            store,
            cgroup: (m.stats_source != StatsSource::Api).then(|| {
                Arc::new(
                    CgroupReader::new(&m.cgroup_root, &m.proc_root)
                        .reading(!metrics.disables("process"), !metrics.disables("pressure")),
                )
            }),
            warn_api_fallback: m.stats_source == StatsSource::Cgroup,
            disk: m.disk_usage.then_some(DiskSettings {
                interval: m.disk_usage_interval,
                timeout: m.disk_usage_timeout,
            }),
            containers: Arc::new(cfg.containers.clone()),
            info_labels: metrics.info_labels.clone().into(),
        }
    }

    /// Delay before reconnect attempt number `failures` (1 = after the first failure):
    /// `retry_delay` for the first `max_retries`, then doubling up to `retry_max_delay`.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures <= self.max_retries {
            return self.retry_delay;
        }
        let doublings = (failures - self.max_retries).min(20);
        self.retry_delay
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max_delay)
    }
}
