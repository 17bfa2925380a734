//! The metric families, defined once. Rendering at `/metrics`, the OTLP export and the
//! README's metric list (checked by a test) all read this table, so they cannot drift.

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
    /// `dockstat_host_monitoring`.
    HostMonitoring,
    /// `dockstat_host_info`: 1, daemon facts in labels.
    HostInfo,
    /// `dockstat_host_containers` per `state`.
    HostContainers,
    /// `dockstat_stats_source_containers` per `source`.
    StatsSources,
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
    /// `dockstat_otlp_exports_total` per `outcome`.
    OtlpExports,
    /// `dockstat_otlp_last_error`: 1 with the `kind` of the most recent failed export.
    OtlpLastError,
    /// `dockstat_otlp_last_success_timestamp_seconds`.
    OtlpLastSuccess,
}

/// How a family's value becomes the OTLP value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OtlpValue {
    /// Unchanged.
    Same,
    /// Multiplied (percent of a core to cores).
    Scale(f64),
    /// A start time (unix seconds) turned into the time since, for running containers only.
    Uptime,
}

/// One OTLP metric a family feeds. Several families may feed one metric (user and system
/// CPU time are `container.cpu.time` told apart by `cpu.mode`), and one family may feed two
/// (the start time is also `container.uptime`).
#[derive(Debug, Clone, Copy)]
pub struct Otlp {
    /// Metric name, after the OpenTelemetry semantic conventions where they have one, else
    /// under `dockstat.`.
    pub name: &'static str,
    /// UCUM unit.
    pub unit: &'static str,
    /// Attributes every point carries (`cpu.mode`, `network.io.direction`, …).
    pub fixed: &'static [(&'static str, &'static str)],
    /// The family's own labels and the attribute each becomes.
    pub rename: &'static [(&'static str, &'static str)],
    /// Value transformation.
    pub value: OtlpValue,
}

const fn otlp(
    name: &'static str,
    unit: &'static str,
    fixed: &'static [(&'static str, &'static str)],
    rename: &'static [(&'static str, &'static str)],
    value: OtlpValue,
) -> Otlp {
    Otlp {
        name,
        unit,
        fixed,
        rename,
        value,
    }
}

const RX: &[(&str, &str)] = &[("network.io.direction", "receive")];
const TX: &[(&str, &str)] = &[("network.io.direction", "transmit")];
const IFACE: &[(&str, &str)] = &[("interface", "network.interface.name")];
const DEVICE: &[(&str, &str)] = &[("device", "system.device")];
const STATE: &[(&str, &str)] = &[("state", "dockstat.state")];

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
    /// Tokio tasks alive in the process.
    pub tasks: usize,
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
    /// What the OTLP export makes of it.
    pub otlp: &'static [Otlp],
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
            Source::Stat(_) | Source::Network(_) | Source::Blkio(_) => {
                "running or paused container"
            }
            Source::Meta(_)
            | Source::ContainerInfo
            | Source::ContainerState
            | Source::ContainerHealth
            | Source::ContainerExits
            | Source::ContainerOom
            | Source::ContainerLastExit => "container",
            Source::Machine(_)
            | Source::HostUp
            | Source::HostMonitoring
            | Source::HostInfo
            | Source::HostContainers
            | Source::StatsSources
            | Source::CollectionDuration
            | Source::CollectionSuccess
            | Source::SnapshotAge
            | Source::RequestDuration
            | Source::DockerErrors
            | Source::HostEvents => "host",
            Source::Pool(_)
            | Source::BuildInfo
            | Source::Process(_)
            | Source::OtlpExports
            | Source::OtlpLastError
            | Source::OtlpLastSuccess => "exporter",
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
    otlp: &'static [Otlp],
) -> Family {
    Family {
        base,
        unit,
        kind,
        help,
        labels,
        source,
        otlp,
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
        &[otlp(
            "dockstat.container.cpu.time.total",
            "s",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_cpu_user",
        S,
        Counter,
        "Cumulative user-mode CPU time consumed by the container.",
        "",
        Source::Stat(|s| s.cpu_user_seconds),
        &[otlp(
            "container.cpu.time",
            "s",
            &[("cpu.mode", "user")],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_cpu_system",
        S,
        Counter,
        "Cumulative kernel-mode CPU time consumed by the container.",
        "",
        Source::Stat(|s| s.cpu_system_seconds),
        &[otlp(
            "container.cpu.time",
            "s",
            &[("cpu.mode", "system")],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_cpu_cfs_periods",
        N,
        Counter,
        "Number of elapsed CFS enforcement periods.",
        "",
        Source::Stat(|s| s.throttling.map(|t| t.periods as f64)),
        &[otlp(
            "dockstat.container.cpu.cfs.periods",
            "{period}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_cpu_cfs_throttled_periods",
        N,
        Counter,
        "Number of CFS periods in which the container was throttled.",
        "",
        Source::Stat(|s| s.throttling.map(|t| t.throttled_periods as f64)),
        &[otlp(
            "dockstat.container.cpu.cfs.throttled_periods",
            "{period}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_cpu_cfs_throttled",
        S,
        Counter,
        "Total time the container was throttled by CFS.",
        "",
        Source::Stat(|s| s.throttling.map(|t| t.throttled_seconds)),
        &[otlp(
            "dockstat.container.cpu.cfs.throttled_time",
            "s",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    // Container memory.
    family(
        "container_memory_usage",
        B,
        Gauge,
        "Current memory usage, page cache included.",
        "",
        Source::Stat(|s| s.memory.map(|m| m.usage as f64)),
        &[otlp(
            "container.memory.usage",
            "By",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_memory_working_set",
        B,
        Gauge,
        "Memory usage minus inactive file pages (v1 total_inactive_file, v2 inactive_file), floored at 0.",
        "",
        Source::Stat(|s| s.memory.map(|m| m.working_set as f64)),
        &[otlp(
            "dockstat.container.memory.working_set",
            "By",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_memory_cache",
        N,
        Gauge,
        "Page cache memory in bytes (v1 total_cache, v2 file).",
        "",
        Source::Stat(|s| opt(s.memory.and_then(|m| m.cache))),
        &[otlp(
            "dockstat.container.memory.cache",
            "By",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_memory_rss",
        N,
        Gauge,
        "Anonymous memory in bytes (v1 total_rss, v2 anon).",
        "",
        Source::Stat(|s| opt(s.memory.and_then(|m| m.rss))),
        &[otlp(
            "dockstat.container.memory.rss",
            "By",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_spec_memory_limit",
        B,
        Gauge,
        "Memory limit of the container; 0 when unlimited.",
        "",
        Source::Meta(|m| Some(m.spec.memory_limit as f64)),
        &[otlp(
            "dockstat.container.memory.limit",
            "By",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_spec_cpu_quota",
        N,
        Gauge,
        "CFS quota of the container in microseconds per period (absent when unlimited).",
        "",
        Source::Meta(|m| opt(m.spec.cpu_quota)),
        &[otlp(
            "dockstat.container.cpu.cfs.quota",
            "us",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_spec_cpu_period",
        N,
        Gauge,
        "CFS period of the container in microseconds (absent when unlimited).",
        "",
        Source::Meta(|m| opt(m.spec.cpu_period)),
        &[otlp(
            "dockstat.container.cpu.cfs.period",
            "us",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_spec_cpu_shares",
        N,
        Gauge,
        "CPU shares of the container (1024 by default).",
        "",
        Source::Meta(|m| Some(m.spec.cpu_shares as f64)),
        &[otlp(
            "dockstat.container.cpu.shares",
            "1",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    // Container network, per interface.
    family(
        "container_network_receive",
        B,
        Counter,
        "Cumulative bytes received.",
        "interface",
        Source::Network(|n| n.rx_bytes),
        &[otlp(
            "container.network.io",
            "By",
            RX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_network_receive_packets",
        N,
        Counter,
        "Cumulative packets received.",
        "interface",
        Source::Network(|n| n.rx_packets),
        &[otlp(
            "dockstat.container.network.packets",
            "{packet}",
            RX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_network_receive_errors",
        N,
        Counter,
        "Cumulative errors while receiving.",
        "interface",
        Source::Network(|n| n.rx_errors),
        &[otlp(
            "dockstat.container.network.errors",
            "{error}",
            RX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_network_receive_packets_dropped",
        N,
        Counter,
        "Cumulative received packets dropped.",
        "interface",
        Source::Network(|n| n.rx_dropped),
        &[otlp(
            "dockstat.container.network.dropped",
            "{packet}",
            RX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_network_transmit",
        B,
        Counter,
        "Cumulative bytes transmitted.",
        "interface",
        Source::Network(|n| n.tx_bytes),
        &[otlp(
            "container.network.io",
            "By",
            TX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_network_transmit_packets",
        N,
        Counter,
        "Cumulative packets transmitted.",
        "interface",
        Source::Network(|n| n.tx_packets),
        &[otlp(
            "dockstat.container.network.packets",
            "{packet}",
            TX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_network_transmit_errors",
        N,
        Counter,
        "Cumulative errors while transmitting.",
        "interface",
        Source::Network(|n| n.tx_errors),
        &[otlp(
            "dockstat.container.network.errors",
            "{error}",
            TX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_network_transmit_packets_dropped",
        N,
        Counter,
        "Cumulative transmitted packets dropped.",
        "interface",
        Source::Network(|n| n.tx_dropped),
        &[otlp(
            "dockstat.container.network.dropped",
            "{packet}",
            TX,
            IFACE,
            OtlpValue::Same,
        )],
    ),
    // Container block IO, per device.
    family(
        "container_fs_reads",
        B,
        Counter,
        "Cumulative bytes read from block devices.",
        "device",
        Source::Blkio(|b| b.read_bytes),
        &[otlp(
            "container.disk.io",
            "By",
            &[("disk.io.direction", "read")],
            DEVICE,
            OtlpValue::Same,
        )],
    ),
    family(
        "container_fs_writes",
        B,
        Counter,
        "Cumulative bytes written to block devices.",
        "device",
        Source::Blkio(|b| b.write_bytes),
        &[otlp(
            "container.disk.io",
            "By",
            &[("disk.io.direction", "write")],
            DEVICE,
            OtlpValue::Same,
        )],
    ),
    // Container lifecycle and identity.
    family(
        "container_start_time",
        S,
        Gauge,
        "Start time of the container's current or last run, unix seconds.",
        "",
        Source::Meta(|m| m.started_at),
        &[
            otlp(
                "dockstat.container.start_time",
                "s",
                &[],
                &[],
                OtlpValue::Same,
            ),
            otlp("container.uptime", "s", &[], &[], OtlpValue::Uptime),
        ],
    ),
    family(
        "container_last_seen",
        N,
        Gauge,
        "Last time the container was sampled, unix seconds.",
        "",
        Source::Stat(|s| Some(s.seen_at)),
        &[otlp(
            "dockstat.container.last_seen",
            "s",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_cpu_percent",
        N,
        Gauge,
        "CPU usage as docker stats shows it: 100 is one full core.",
        "",
        Source::Stat(|s| s.cpu_percent),
        &[otlp(
            "container.cpu.usage",
            "{cpu}",
            &[],
            &[],
            OtlpValue::Scale(0.01),
        )],
    ),
    family(
        "dockstat_container_memory_percent",
        N,
        Gauge,
        "Memory working set as a percentage of the limit, as docker stats shows it.",
        "",
        Source::Stat(|s| s.memory_percent),
        &[otlp(
            "dockstat.container.memory.percent",
            "%",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_pids",
        N,
        Gauge,
        "Processes and threads in the container.",
        "",
        Source::Stat(|s| opt(s.pids)),
        &[otlp(
            "dockstat.container.pids",
            "{process}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_info",
        N,
        Gauge,
        "Container identity; always 1.",
        "image_id, compose_project, compose_service",
        Source::ContainerInfo,
        &[otlp(
            "dockstat.container.info",
            "1",
            &[],
            &[
                ("image_id", "container.image.id"),
                ("compose_project", "dockstat.compose.project"),
                ("compose_service", "dockstat.compose.service"),
            ],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_state",
        N,
        Gauge,
        "Current container state; always 1.",
        "state",
        Source::ContainerState,
        &[otlp(
            "dockstat.container.state",
            "1",
            &[],
            STATE,
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_health_status",
        N,
        Gauge,
        "Current HEALTHCHECK status (none without a healthcheck); always 1.",
        "status",
        Source::ContainerHealth,
        &[otlp(
            "dockstat.container.health.status",
            "1",
            &[],
            &[("status", "dockstat.health.status")],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_restarts",
        N,
        Counter,
        "Restarts done by the container's restart policy (Docker's RestartCount).",
        "",
        Source::Meta(|m| Some(m.restart_count as f64)),
        &[otlp(
            "dockstat.container.restarts",
            "{restart}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_last_exit_code",
        N,
        Gauge,
        "Exit code of the container's last run (inspect's ExitCode when stopped, else the last die event's).",
        "",
        Source::ContainerLastExit,
        &[otlp(
            "dockstat.container.last_exit_code",
            "1",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_container_exits",
        N,
        Counter,
        "Times the container's process ended (Docker `die` events), by exit code.",
        "exit_code",
        Source::ContainerExits,
        &[otlp(
            "dockstat.container.exits",
            "{exit}",
            &[],
            &[("exit_code", "process.exit.code")],
            OtlpValue::Same,
        )],
    ),
    family(
        "container_oom_events",
        N,
        Counter,
        "OOM events Docker reported for the container (one kill can raise several).",
        "",
        Source::ContainerOom,
        &[otlp(
            "dockstat.container.oom_events",
            "{event}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    // Hosts.
    family(
        "machine_cpu_cores",
        N,
        Gauge,
        "CPUs of the Docker host.",
        "",
        Source::Machine(|i| i.ncpu),
        &[otlp(
            "system.cpu.logical.count",
            "{cpu}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "machine_memory",
        B,
        Gauge,
        "Memory of the Docker host.",
        "",
        Source::Machine(|i| i.mem_total),
        &[otlp("system.memory.limit", "By", &[], &[], OtlpValue::Same)],
    ),
    family(
        "dockstat_host_up",
        N,
        Gauge,
        "1 when the Docker host answered at the last attempt, else 0 (also before the first answer).",
        "",
        Source::HostUp,
        &[otlp("dockstat.host.up", "1", &[], &[], OtlpValue::Same)],
    ),
    family(
        "dockstat_host_monitoring",
        N,
        Gauge,
        "1 while the host is collected, 0 while its client's monitoring is stopped (nothing else is known of it then).",
        "",
        Source::HostMonitoring,
        &[otlp(
            "dockstat.host.monitoring",
            "1",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_host_info",
        N,
        Gauge,
        "Docker host facts; always 1.",
        "server_version, api_version, os, os_type, arch, kernel, cgroup_version, cgroup_driver",
        Source::HostInfo,
        &[otlp(
            "dockstat.host.info",
            "1",
            &[],
            &[
                ("server_version", "container.runtime.version"),
                ("api_version", "dockstat.docker.api_version"),
                ("os", "os.description"),
                ("os_type", "os.type"),
                ("arch", "host.arch"),
                ("kernel", "os.version"),
                ("cgroup_version", "dockstat.cgroup.version"),
                ("cgroup_driver", "dockstat.cgroup.driver"),
            ],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_events",
        N,
        Counter,
        "Docker events received from the host, by object type and action.",
        "type, action",
        Source::HostEvents,
        &[otlp(
            "dockstat.host.events",
            "{event}",
            &[],
            &[
                ("type", "dockstat.event.type"),
                ("action", "dockstat.event.action"),
            ],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_host_containers",
        N,
        Gauge,
        "Containers on the host per state.",
        "state",
        Source::HostContainers,
        &[otlp(
            "dockstat.host.containers",
            "{container}",
            &[],
            STATE,
            OtlpValue::Same,
        )],
    ),
    // Self-metrics.
    family(
        "dockstat_stats_source_containers",
        N,
        Gauge,
        "Running containers per stats source: cgroup (read from the kernel's files, no load on dockerd) or api (Docker's one-shot stats).",
        "source",
        Source::StatsSources,
        &[otlp(
            "dockstat.stats_source.containers",
            "{container}",
            &[],
            &[("source", "dockstat.stats_source")],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_collection_duration",
        S,
        Gauge,
        "Duration of the host's last collection cycle.",
        "",
        Source::CollectionDuration,
        &[otlp(
            "dockstat.collection.duration",
            "s",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_collection_success",
        N,
        Gauge,
        "1 when every call of the host's last collection cycle succeeded, else 0.",
        "",
        Source::CollectionSuccess,
        &[otlp(
            "dockstat.collection.success",
            "1",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_snapshot_age",
        S,
        Gauge,
        "Age of the host's data in the snapshot.",
        "",
        Source::SnapshotAge,
        &[otlp(
            "dockstat.snapshot.age",
            "s",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_docker_request_duration",
        S,
        Histogram,
        "Docker Engine API call latency, reading the body included.",
        "endpoint",
        Source::RequestDuration,
        &[otlp(
            "dockstat.docker.request.duration",
            "s",
            &[],
            &[("endpoint", "dockstat.docker.endpoint")],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_docker_errors",
        N,
        Counter,
        "Failed Docker Engine API calls by kind (socket_not_found, permission_denied, connection_refused, timeout, tls, api_error, decode, too_large, connection, other).",
        "kind, status (api_error only)",
        Source::DockerErrors,
        &[otlp(
            "dockstat.docker.errors",
            "{error}",
            &[],
            &[
                ("kind", "error.type"),
                ("status", "http.response.status_code"),
            ],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_pool_workers",
        N,
        Gauge,
        "Collection workers alive.",
        "",
        Source::Pool(|p| p.workers as f64),
        &[otlp(
            "dockstat.pool.workers",
            "{worker}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_pool_hosts",
        N,
        Gauge,
        "Hosts being collected.",
        "",
        Source::Pool(|p| p.hosts as f64),
        &[otlp(
            "dockstat.pool.hosts",
            "{host}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_pool_active_streams",
        N,
        Gauge,
        "Open Docker event streams.",
        "",
        Source::Pool(|p| p.active_streams as f64),
        &[otlp(
            "dockstat.pool.active_streams",
            "{stream}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_pool_inflight_requests",
        N,
        Gauge,
        "Docker Engine API calls in flight.",
        "",
        Source::Pool(|p| p.inflight as f64),
        &[otlp(
            "dockstat.pool.inflight_requests",
            "{request}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_runtime_tasks",
        N,
        Gauge,
        "Async tasks alive in the exporter (collectors and their calls, connections, subscriptions); one that keeps growing is a leak.",
        "",
        Source::Pool(|p| p.tasks as f64),
        &[otlp(
            "dockstat.runtime.tasks",
            "{task}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_build_info",
        N,
        Gauge,
        "Exporter build; always 1.",
        "version",
        Source::BuildInfo,
        &[otlp(
            "dockstat.build.info",
            "1",
            &[],
            &[("version", "dockstat.version")],
            OtlpValue::Same,
        )],
    ),
    family(
        "process_cpu",
        S,
        Counter,
        "CPU time of the exporter process.",
        "",
        Source::Process(|p| p.cpu_seconds),
        &[otlp("process.cpu.time", "s", &[], &[], OtlpValue::Same)],
    ),
    family(
        "process_resident_memory",
        B,
        Gauge,
        "Resident memory of the exporter process.",
        "",
        Source::Process(|p| p.rss_bytes as f64),
        &[otlp(
            "process.memory.usage",
            "By",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "process_virtual_memory",
        B,
        Gauge,
        "Virtual memory of the exporter process.",
        "",
        Source::Process(|p| p.virtual_bytes as f64),
        &[otlp(
            "process.memory.virtual",
            "By",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "process_open_fds",
        N,
        Gauge,
        "Open file descriptors of the exporter process.",
        "",
        Source::Process(|p| p.open_fds as f64),
        &[otlp(
            "process.unix.file_descriptor.count",
            "{file_descriptor}",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "process_start_time",
        S,
        Gauge,
        "Start time of the exporter process, unix seconds.",
        "",
        Source::Process(|p| p.start_time_seconds),
        &[otlp(
            "dockstat.process.start_time",
            "s",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_otlp_exports",
        N,
        Counter,
        "OTLP export attempts by outcome (success, partial: the receiver rejected some points, failed).",
        "outcome",
        Source::OtlpExports,
        &[otlp(
            "dockstat.otlp.exports",
            "{export}",
            &[],
            &[("outcome", "dockstat.outcome")],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_otlp_last_error",
        N,
        Gauge,
        "1, with the kind of the most recent failed OTLP export (connection_refused, connection, timeout, tls, unavailable, rejected, unauthenticated, other); absent before the first failure.",
        "kind",
        Source::OtlpLastError,
        &[otlp(
            "dockstat.otlp.last_error",
            "1",
            &[],
            &[("kind", "error.type")],
            OtlpValue::Same,
        )],
    ),
    family(
        "dockstat_otlp_last_success_timestamp",
        S,
        Gauge,
        "When an OTLP export last delivered, unix seconds; absent before the first.",
        "",
        Source::OtlpLastSuccess,
        &[otlp(
            "dockstat.otlp.last_success",
            "s",
            &[],
            &[],
            OtlpValue::Same,
        )],
    ),
];

/// The README's metric list, generated from the table.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| family | type | per | extra labels | OTLP metric (unit) | help |\n|---|---|---|---|---|---|\n",
    );
    for f in FAMILIES {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let otlp: Vec<String> = f
            .otlp
            .iter()
            .map(|o| {
                let attrs: Vec<String> = o
                    .fixed
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(o.rename.iter().map(|(_, k)| k.to_string()))
                    .collect();
                let attrs = if attrs.is_empty() {
                    String::new()
                } else {
                    format!(" {{{}}}", attrs.join(", "))
                };
                let value = match o.value {
                    OtlpValue::Same => String::new(),
                    OtlpValue::Scale(k) => format!(" ×{k}"),
                    OtlpValue::Uptime => " now − value, running only".to_string(),
                };
                format!("`{}` ({}){attrs}{value}", o.name, o.unit)
            })
            .collect();
        out.push_str(&format!(
            "| `{}` | {kind} | {} | {} | {} | {} |\n",
            f.exposed_name(),
            f.scope(),
            f.labels,
            otlp.join("<br>"),
            f.help
        ));
    }
    out
}
