//! The metric families, defined once. Rendering at `/metrics`, the README's metric list
//! (checked by a test) and, later, the OTLP output all read this table, so they cannot drift.

use crate::snapshot::{ContainerMeta, HostInfo};
use crate::stats::{BlkioCounters, NetCounters, Sample};

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic; exposed with `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// Unit suffix of a family name (OpenMetrics `# UNIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `_seconds`
    Seconds,
    /// `_bytes`
    Bytes,
}

impl Unit {
    /// The suffix without underscore.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
        }
    }
}

/// Where the series of a family come from and which labels they carry beyond the base set
/// (`host`, `client`, and for container families `id`, `name`, `image`, allowlisted labels).
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// One series per sampled (running) container.
    Stat(fn(&Sample) -> Option<f64>),
    /// One series per container, running or not.
    Meta(fn(&ContainerMeta) -> Option<f64>),
    /// One series per container and `interface`.
    Network(fn(&NetCounters) -> u64),
    /// One series per container and `device` (`major:minor`).
    Blkio(fn(&BlkioCounters) -> u64),
    /// `dockstat_container_info`: 1, identity in labels.
    ContainerInfo,
    /// `dockstat_container_state`: 1 with the current `state`.
    ContainerState,
    /// `dockstat_container_health_status`: 1 with the current `status`.
    ContainerHealth,
    /// `dockstat_container_exits_total` per `exit_code`, from `die` events.
    ContainerExits,
    /// `container_oom_events_total`, from `oom` events.
    ContainerOom,
    /// `dockstat_container_last_exit_code`: inspect's ExitCode of a stopped container,
    /// else the last `die` event's.
    ContainerLastExit,
    /// `dockstat_events_total` per `type` and `action`.
    HostEvents,
    /// One series per reachable host with daemon facts.
    Machine(fn(&HostInfo) -> Option<u64>),
    /// `dockstat_host_up`.
    HostUp,
    /// `dockstat_host_info`: 1, daemon facts in labels.
    HostInfo,
    /// `dockstat_host_containers` per `state`.
    HostContainers,
    /// `dockstat_collection_duration_seconds`.
    CollectionDuration,
    /// `dockstat_collection_success`.
    CollectionSuccess,
    /// `dockstat_snapshot_age_seconds`.
    SnapshotAge,
    /// `dockstat_docker_request_duration_seconds` per `endpoint`.
    RequestDuration,
    /// `dockstat_docker_errors_total` per `kind` (and `status` for API errors).
    DockerErrors,
    /// Process-wide pool figure.
    Pool(fn(&PoolFigures) -> f64),
    /// `dockstat_build_info`.
    BuildInfo,
    /// Process figure from `/proc/self`.
    Process(fn(&crate::process::ProcessStats) -> f64),
}

/// Pool figures for the self-metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolFigures {
    /// Workers alive.
    pub workers: usize,
    /// Hosts collected.
    pub hosts: usize,
    /// Open event streams.
    pub active_streams: usize,
    /// Docker calls in flight.
    pub inflight: i64,
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Name without unit suffix and without `_total`.
    pub base: &'static str,
    /// Unit suffix.
    pub unit: Option<Unit>,
    /// Type.
    pub kind: Kind,
    /// HELP text.
    pub help: &'static str,
    /// Labels beyond the base set, for the documentation.
    pub labels: &'static str,
    /// Where the values come from.
    pub source: Source,
}

impl Family {
    /// The name as exposed in the Prometheus text format (counters with `_total`).
    pub fn exposed_name(&self) -> String {
        let mut n = self.base.to_string();
        if let Some(u) = self.unit {
            n.push('_');
            n.push_str(u.as_str());
        }
        if self.kind == Kind::Counter {
            n.push_str("_total");
        }
        n
    }

    /// Scope for the documentation: what one series describes.
    pub fn scope(&self) -> &'static str {
        match self.source {
            Source::Stat(_) | Source::Network(_) | Source::Blkio(_) => "running container",
            Source::Meta(_)
            | Source::ContainerInfo
            | Source::ContainerState
            | Source::ContainerHealth
            | Source::ContainerExits
            | Source::ContainerOom
            | Source::ContainerLastExit => "container",
            Source::Machine(_)
            | Source::HostUp
            | Source::HostInfo
            | Source::HostContainers
            | Source::CollectionDuration
            | Source::CollectionSuccess
            | Source::SnapshotAge
            | Source::RequestDuration
            | Source::DockerErrors
            | Source::HostEvents => "host",
            Source::Pool(_) | Source::BuildInfo | Source::Process(_) => "exporter",
        }
    }
}

const fn family(
    base: &'static str,
    unit: Option<Unit>,
    kind: Kind,
    help: &'static str,
    labels: &'static str,
    source: Source,
) -> Family {
    Family {
        base,
        unit,
        kind,
        help,
        labels,
        source,
    }
}

use Kind::{Counter, Gauge, Histogram};
const S: Option<Unit> = Some(Unit::Seconds);
const B: Option<Unit> = Some(Unit::Bytes);
const N: Option<Unit> = None;

fn opt(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

/// Every family, in exposition order.
pub static FAMILIES: &[Family] = &[
    // Container CPU (cAdvisor names).
    family(
        "container_cpu_usage",
        S,
        Counter,
        "Cumulative CPU time consumed by the container.",
        "",
        Source::Stat(|s| s.cpu_total_seconds),
    ),
    family(
        "container_cpu_user",
        S,
        Counter,
        "Cumulative user-mode CPU time consumed by the container.",
        "",
        Source::Stat(|s| s.cpu_user_seconds),
    ),
    family(
        "container_cpu_system",
        S,
        Counter,
        "Cumulative kernel-mode CPU time consumed by the container.",
        "",
        Source::Stat(|s| s.cpu_system_seconds),
    ),
    family(
        "container_cpu_cfs_periods",
        N,
        Counter,
        "Number of elapsed CFS enforcement periods.",
        "",
        Source::Stat(|s| s.throttling.map(|t| t.periods as f64)),
    ),
    family(
        "container_cpu_cfs_throttled_periods",
        N,
        Counter,
        "Number of CFS periods in which the container was throttled.",
        "",
        Source::Stat(|s| s.throttling.map(|t| t.throttled_periods as f64)),
    ),
    family(
        "container_cpu_cfs_throttled",
        S,
        Counter,
        "Total time the container was throttled by CFS.",
        "",
        Source::Stat(|s| s.throttling.map(|t| t.throttled_seconds)),
    ),
    // Container memory.
    family(
        "container_memory_usage",
        B,
        Gauge,
        "Current memory usage, page cache included.",
        "",
        Source::Stat(|s| s.memory.map(|m| m.usage as f64)),
    ),
    family(
        "container_memory_working_set",
        B,
        Gauge,
        "Memory usage minus inactive file pages (v1 total_inactive_file, v2 inactive_file), floored at 0.",
        "",
        Source::Stat(|s| s.memory.map(|m| m.working_set as f64)),
    ),
    family(
        "container_memory_cache",
        N,
        Gauge,
        "Page cache memory in bytes (v1 total_cache, v2 file).",
        "",
        Source::Stat(|s| opt(s.memory.and_then(|m| m.cache))),
    ),
    family(
        "container_memory_rss",
        N,
        Gauge,
        "Anonymous memory in bytes (v1 total_rss, v2 anon).",
        "",
        Source::Stat(|s| opt(s.memory.and_then(|m| m.rss))),
    ),
    family(
        "container_spec_memory_limit",
        B,
        Gauge,
        "Memory limit of the container; 0 when unlimited.",
        "",
        Source::Meta(|m| Some(m.spec.memory_limit as f64)),
    ),
    family(
        "container_spec_cpu_quota",
        N,
        Gauge,
        "CFS quota of the container in microseconds per period (absent when unlimited).",
        "",
        Source::Meta(|m| opt(m.spec.cpu_quota)),
    ),
    family(
        "container_spec_cpu_period",
        N,
        Gauge,
        "CFS period of the container in microseconds (absent when unlimited).",
        "",
        Source::Meta(|m| opt(m.spec.cpu_period)),
    ),
    family(
        "container_spec_cpu_shares",
        N,
        Gauge,
        "CPU shares of the container (1024 by default).",
        "",
        Source::Meta(|m| Some(m.spec.cpu_shares as f64)),
    ),
    // Container network, per interface.
    family(
        "container_network_receive",
        B,
        Counter,
        "Cumulative bytes received.",
        "interface",
        Source::Network(|n| n.rx_bytes),
    ),
    family(
        "container_network_receive_packets",
        N,
        Counter,
        "Cumulative packets received.",
        "interface",
        Source::Network(|n| n.rx_packets),
    ),
    family(
        "container_network_receive_errors",
        N,
        Counter,
        "Cumulative errors while receiving.",
        "interface",
        Source::Network(|n| n.rx_errors),
    ),
    family(
        "container_network_receive_packets_dropped",
        N,
        Counter,
        "Cumulative received packets dropped.",
        "interface",
        Source::Network(|n| n.rx_dropped),
    ),
    family(
        "container_network_transmit",
        B,
        Counter,
        "Cumulative bytes transmitted.",
        "interface",
        Source::Network(|n| n.tx_bytes),
    ),
    family(
        "container_network_transmit_packets",
        N,
        Counter,
        "Cumulative packets transmitted.",
        "interface",
        Source::Network(|n| n.tx_packets),
    ),
    family(
        "container_network_transmit_errors",
        N,
        Counter,
        "Cumulative errors while transmitting.",
        "interface",
        Source::Network(|n| n.tx_errors),
    ),
    family(
        "container_network_transmit_packets_dropped",
        N,
        Counter,
        "Cumulative transmitted packets dropped.",
        "interface",
        Source::Network(|n| n.tx_dropped),
    ),
    // Container block IO, per device.
    family(
        "container_fs_reads",
        B,
        Counter,
        "Cumulative bytes read from block devices.",
        "device",
        Source::Blkio(|b| b.read_bytes),
    ),
    family(
        "container_fs_writes",
        B,
        Counter,
        "Cumulative bytes written to block devices.",
        "device",
        Source::Blkio(|b| b.write_bytes),
    ),
    // Container lifecycle and identity.
    family(
        "container_start_time",
        S,
        Gauge,
        "Start time of the container's current or last run, unix seconds.",
        "",
        Source::Meta(|m| m.started_at),
    ),
    family(
        "container_last_seen",
        N,
        Gauge,
        "Last time the container was sampled, unix seconds.",
        "",
        Source::Stat(|s| Some(s.seen_at)),
    ),
    family(
        "dockstat_container_cpu_percent",
        N,
        Gauge,
        "CPU usage as docker stats shows it: 100 is one full core.",
        "",
        Source::Stat(|s| s.cpu_percent),
    ),
    family(
        "dockstat_container_memory_percent",
        N,
        Gauge,
        "Memory working set as a percentage of the limit, as docker stats shows it.",
        "",
        Source::Stat(|s| s.memory_percent),
    ),
    family(
        "dockstat_container_pids",
        N,
        Gauge,
        "Processes and threads in the container.",
        "",
        Source::Stat(|s| opt(s.pids)),
    ),
    family(
        "dockstat_container_info",
        N,
        Gauge,
        "Container identity; always 1.",
        "image_id, compose_project, compose_service",
        Source::ContainerInfo,
    ),
    family(
        "dockstat_container_state",
        N,
        Gauge,
        "Current container state; always 1.",
        "state",
        Source::ContainerState,
    ),
    family(
        "dockstat_container_health_status",
        N,
        Gauge,
        "Current HEALTHCHECK status (none without a healthcheck); always 1.",
        "status",
        Source::ContainerHealth,
    ),
    family(
        "dockstat_container_restarts",
        N,
        Counter,
        "Restarts done by the container's restart policy (Docker's RestartCount).",
        "",
        Source::Meta(|m| Some(m.restart_count as f64)),
    ),
    family(
        "dockstat_container_last_exit_code",
        N,
        Gauge,
        "Exit code of the container's last run (inspect's ExitCode when stopped, else the last die event's).",
        "",
        Source::ContainerLastExit,
    ),
    family(
        "dockstat_container_exits",
        N,
        Counter,
        "Times the container's process ended (Docker `die` events), by exit code.",
        "exit_code",
        Source::ContainerExits,
    ),
    family(
        "container_oom_events",
        N,
        Counter,
        "OOM events Docker reported for the container (one kill can raise several).",
        "",
        Source::ContainerOom,
    ),
    // Hosts.
    family(
        "machine_cpu_cores",
        N,
        Gauge,
        "CPUs of the Docker host.",
        "",
        Source::Machine(|i| i.ncpu),
    ),
    family(
        "machine_memory",
        B,
        Gauge,
        "Memory of the Docker host.",
        "",
        Source::Machine(|i| i.mem_total),
    ),
    family(
        "dockstat_host_up",
        N,
        Gauge,
        "1 when the Docker host answered at the last attempt, else 0.",
        "",
        Source::HostUp,
    ),
    family(
        "dockstat_host_info",
        N,
        Gauge,
        "Docker host facts; always 1.",
        "server_version, api_version, os, os_type, arch, kernel, cgroup_version, cgroup_driver",
        Source::HostInfo,
    ),
    family(
        "dockstat_events",
        N,
        Counter,
        "Docker events received from the host, by object type and action.",
        "type, action",
        Source::HostEvents,
    ),
    family(
        "dockstat_host_containers",
        N,
        Gauge,
        "Containers on the host per state.",
        "state",
        Source::HostContainers,
    ),
    // Self-metrics.
    family(
        "dockstat_collection_duration",
        S,
        Gauge,
        "Duration of the host's last collection cycle.",
        "",
        Source::CollectionDuration,
    ),
    family(
        "dockstat_collection_success",
        N,
        Gauge,
        "1 when every call of the host's last collection cycle succeeded, else 0.",
        "",
        Source::CollectionSuccess,
    ),
    family(
        "dockstat_snapshot_age",
        S,
        Gauge,
        "Age of the host's data in the snapshot.",
        "",
        Source::SnapshotAge,
    ),
    family(
        "dockstat_docker_request_duration",
        S,
        Histogram,
        "Docker Engine API call latency, reading the body included.",
        "endpoint",
        Source::RequestDuration,
    ),
    family(
        "dockstat_docker_errors",
        N,
        Counter,
        "Failed Docker Engine API calls by kind (socket_not_found, permission_denied, connection_refused, timeout, tls, api_error, decode, connection, other).",
        "kind, status (api_error only)",
        Source::DockerErrors,
    ),
    family(
        "dockstat_pool_workers",
        N,
        Gauge,
        "Collection workers alive.",
        "",
        Source::Pool(|p| p.workers as f64),
    ),
    family(
        "dockstat_pool_hosts",
        N,
        Gauge,
        "Hosts being collected.",
        "",
        Source::Pool(|p| p.hosts as f64),
    ),
    family(
        "dockstat_pool_active_streams",
        N,
        Gauge,
        "Open Docker event streams.",
        "",
        Source::Pool(|p| p.active_streams as f64),
    ),
    family(
        "dockstat_pool_inflight_requests",
        N,
        Gauge,
        "Docker Engine API calls in flight.",
        "",
        Source::Pool(|p| p.inflight as f64),
    ),
    family(
        "dockstat_build_info",
        N,
        Gauge,
        "Exporter build; always 1.",
        "version",
        Source::BuildInfo,
    ),
    family(
        "process_cpu",
        S,
        Counter,
        "CPU time of the exporter process.",
        "",
        Source::Process(|p| p.cpu_seconds),
    ),
    family(
        "process_resident_memory",
        B,
        Gauge,
        "Resident memory of the exporter process.",
        "",
        Source::Process(|p| p.rss_bytes as f64),
    ),
    family(
        "process_virtual_memory",
        B,
        Gauge,
        "Virtual memory of the exporter process.",
        "",
        Source::Process(|p| p.virtual_bytes as f64),
    ),
    family(
        "process_open_fds",
        N,
        Gauge,
        "Open file descriptors of the exporter process.",
        "",
        Source::Process(|p| p.open_fds as f64),
    ),
    family(
        "process_start_time",
        S,
        Gauge,
        "Start time of the exporter process, unix seconds.",
        "",
        Source::Process(|p| p.start_time_seconds),
    ),
];

/// The README's metric list, generated from the table.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| family | type | per | extra labels | help |\n|---|---|---|---|---|\n");
    for f in FAMILIES {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        out.push_str(&format!(
            "| `{}` | {kind} | {} | {} | {} |\n",
            f.exposed_name(),
            f.scope(),
            f.labels,
            f.help
        ));
    }
    out
}
