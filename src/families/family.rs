//! What one row of the family table says, and the constructors the table is written with.

use crate::process::ProcessStats;
use crate::snapshot::{ContainerDisk, ContainerMeta, DiskUsage, HostInfo, VolumeDisk};
use crate::stats::{BlkioCounters, NetCounters, Sample};

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
    /// This replica's shard.
    pub shard: crate::shard::Shard,
}

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

impl Kind {
    /// The name in `# TYPE` lines and in the README.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
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

/// What one series of a family describes. Container series carry the base labels `host`,
/// `client`, `id`, `name`, `image` and the allowlisted Docker labels; host series `host` and
/// `client`; the exporter's own series none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A running or paused container, from its latest sample. Its counters restart with the
    /// container's run, which is where the OTLP export starts their points.
    LiveContainer,
    /// Any container the host has, running or not.
    Container,
    /// A Docker host.
    Host,
    /// The exporter itself.
    Exporter,
}

impl Scope {
    /// As the README's metric list says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::LiveContainer => "running or paused container",
            Scope::Container => "container",
            Scope::Host => "host",
            Scope::Exporter => "exporter",
        }
    }

    /// Whether the series are per container (and carry the container's base labels).
    pub fn is_container(self) -> bool {
        matches!(self, Scope::LiveContainer | Scope::Container)
    }
}

/// Where the series of a family come from; each variant's documentation names the family
/// labels its series carry, in the order of the row's [`Family::labels`].
#[derive(Debug, Clone, Copy)]
pub enum Series {
    /// One series per sampled (running) container.
    Stat(fn(&Sample) -> Option<f64>),
    /// One series per container, running or not.
    Meta(fn(&ContainerMeta) -> Option<f64>),
    /// One series per container and `interface`.
    Network(fn(&NetCounters) -> u64),
    /// One series per container and `device` (`major:minor`), where the figure is known.
    Blkio(fn(&BlkioCounters) -> Option<u64>),
    /// `container_memory_failures_total`: one series per container, `failure_type`
    /// (pgfault, pgmajfault) and `scope` (container, hierarchy).
    MemoryFailures,
    /// `dockstat_container_info`: 1, identity in `image_id`, `compose_project`,
    /// `compose_service`.
    ContainerInfo,
    /// `dockstat_container_labels`: 1, with the container's `metrics.info_labels` as
    /// `container_label_<key>` (names vary per container: handed over as pairs).
    ContainerLabels,
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
    /// One series per container the host's last disk usage pass sized; `device` where the
    /// writable layer was measured here (a family that declares it).
    ContainerDisk(fn(&ContainerDisk) -> Option<u64>),
    /// One series per volume of the host's last disk usage pass, by `volume` and `driver`.
    Volume(fn(&VolumeDisk) -> Option<u64>),
    /// One series per host with a disk usage figure.
    HostDisk(fn(&DiskUsage) -> Option<u64>),
    /// `dockstat_disk_usage_age_seconds`: since the last successful pass.
    DiskUsageAge,
    /// `dockstat_disk_usage_success`.
    DiskUsageSuccess,
    /// `dockstat_disk_usage_duration_seconds`.
    DiskUsageDuration,
    /// `dockstat_shard_hosts`: the hosts of the snapshot, every one in this replica's shard.
    ShardHosts,
    /// `dockstat_build_info` with the `version`.
    BuildInfo,
    /// Process figure from `/proc/self`.
    Process(fn(&ProcessStats) -> f64),
    /// `dockstat_otlp_exports_total` per `outcome`.
    OtlpExports,
    /// `dockstat_otlp_last_error`: 1 with the `kind` of the most recent failed export.
    OtlpLastError,
    /// `dockstat_otlp_last_success_timestamp_seconds`.
    OtlpLastSuccess,
}

impl Series {
    /// What one series describes: the one place that sorts the sources by scope.
    pub fn scope(self) -> Scope {
        use Series::*;
        match self {
            Stat(_) | Network(_) | Blkio(_) | MemoryFailures => Scope::LiveContainer,
            Meta(_) | ContainerInfo | ContainerLabels | ContainerState | ContainerHealth
            | ContainerExits | ContainerOom | ContainerLastExit | ContainerDisk(_) => {
                Scope::Container
            }
            Machine(_) | HostUp | HostMonitoring | HostInfo | HostContainers | StatsSources
            | CollectionDuration | CollectionSuccess | SnapshotAge | RequestDuration
            | DockerErrors | HostEvents | Volume(_) | HostDisk(_) | DiskUsageAge
            | DiskUsageSuccess | DiskUsageDuration => Scope::Host,
            Pool(_) | ShardHosts | BuildInfo | Process(_) | OtlpExports | OtlpLastError
            | OtlpLastSuccess => Scope::Exporter,
        }
    }
}

/// One label a family's series carry beyond the base set, and the OTLP attribute it
/// becomes: declared once, in the family's row; the walk hands values in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// Prometheus label name.
    pub name: &'static str,
    /// OTLP attribute name.
    pub otlp: &'static str,
    /// When the label is there, if not always (for the README), else empty.
    pub note: &'static str,
}

/// A [`Label`]: Prometheus name, OTLP attribute.
pub const fn l(name: &'static str, otlp: &'static str) -> Label {
    Label {
        name,
        otlp,
        note: "",
    }
}

impl Label {
    /// The label is only on some series; `note` says which.
    pub const fn note(self, note: &'static str) -> Label {
        Label { note, ..self }
    }
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
/// (the start time is also `container.uptime`). The family's labels become the attributes
/// their [`Label`]s name.
#[derive(Debug, Clone, Copy)]
pub struct Otlp {
    /// Metric name, after the OpenTelemetry semantic conventions where they have one, else
    /// under `dockstat.`.
    pub name: &'static str,
    /// UCUM unit.
    pub unit: &'static str,
    /// Attributes every point carries (`cpu.mode`, `network.io.direction`, …).
    pub fixed: &'static [(&'static str, &'static str)],
    /// Value transformation.
    pub value: OtlpValue,
}

/// An [`Otlp`] metric: name and UCUM unit, the value unchanged.
pub const fn o(name: &'static str, unit: &'static str) -> Otlp {
    Otlp {
        name,
        unit,
        fixed: &[],
        value: OtlpValue::Same,
    }
}

impl Otlp {
    /// Every point also carries these attributes.
    pub const fn fixed(self, fixed: &'static [(&'static str, &'static str)]) -> Otlp {
        Otlp { fixed, ..self }
    }

    /// The value multiplied by `k`.
    pub const fn scale(self, k: f64) -> Otlp {
        Otlp {
            value: OtlpValue::Scale(k),
            ..self
        }
    }

    /// The value (a start time) as the time since, running containers only.
    pub const fn uptime(self) -> Otlp {
        Otlp {
            value: OtlpValue::Uptime,
            ..self
        }
    }
}

/// One metric family: one row of [`FAMILIES`](super::FAMILIES).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Name without unit suffix and without `_total`.
    pub base: &'static str,
    /// Unit suffix.
    pub unit: Option<Unit>,
    /// Type.
    pub kind: Kind,
    /// Where the values come from.
    pub series: Series,
    /// Labels beyond the base set, in the order the walk gives their values.
    pub labels: &'static [Label],
    /// What the OTLP export makes of it.
    pub otlp: &'static [Otlp],
    /// HELP text.
    pub help: &'static str,
    /// A counter named as cAdvisor names it, without `_total` (`container_memory_failcnt`):
    /// the text format says `counter` without the suffix; OpenMetrics, whose counters must
    /// end in `_total`, says `unknown`, so the name Prometheus stores is the same in both.
    pub no_total: bool,
}

/// A [`Family`], as the table writes one: a row of positional columns.
pub const fn fam(
    base: &'static str,
    unit: Option<Unit>,
    kind: Kind,
    series: Series,
    labels: &'static [Label],
    otlp: &'static [Otlp],
    help: &'static str,
) -> Family {
    Family {
        base,
        unit,
        kind,
        series,
        labels,
        otlp,
        help,
        no_total: false,
    }
}

impl Family {
    /// The name as exposed in the Prometheus text format (counters with `_total`).
    pub fn exposed_name(&self) -> String {
        let mut n = self.base.to_string();
        if let Some(u) = self.unit {
            n.push('_');
            n.push_str(u.as_str());
        }
        if self.kind == Kind::Counter && !self.no_total {
            n.push_str("_total");
        }
        n
    }

    /// A counter exposed without `_total`; see [`Family::no_total`].
    pub const fn no_total(self) -> Family {
        Family {
            no_total: true,
            ..self
        }
    }

    /// What one series describes.
    pub fn scope(&self) -> Scope {
        self.series.scope()
    }
}
