//! The snapshot: everything known about every host at one moment, immutable once built.
//!
//! Each host's collector builds a new [`HostSnapshot`] after every cycle and publishes it;
//! publishing swaps the whole [`Snapshot`] atomically. Scrapes, OTLP exports and streams
//! only ever load the current snapshot: they never wait for a collector and never call
//! Docker, so a slow or hung host cannot delay them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::docker::DockerError;
use crate::lock::MutexExt;
use crate::stats::Sample;

/// Docker's container states (the `state` label of `dockstat_container_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused (frozen).
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Stopped.
    Exited,
    /// Failed to be removed or stopped.
    Dead,
    /// Being removed.
    Removing,
    /// A state this build does not know.
    Unknown,
}

impl ContainerState {
    /// Every state, in label order.
    pub const ALL: [ContainerState; 8] = [
        ContainerState::Created,
        ContainerState::Running,
        ContainerState::Paused,
        ContainerState::Restarting,
        ContainerState::Exited,
        ContainerState::Dead,
        ContainerState::Removing,
        ContainerState::Unknown,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Removing => "removing",
            ContainerState::Unknown => "unknown",
        }
    }

    /// Whether the container has processes, so figures to read: running or paused. A paused
    /// container keeps its memory and counters (its CPU counter just stops), and `docker
    /// stats` and cAdvisor keep reporting it.
    pub fn is_live(self) -> bool {
        matches!(self, ContainerState::Running | ContainerState::Paused)
    }

    /// From Docker's spelling (list `State` or inspect `State.Status`).
    pub fn parse(s: &str) -> ContainerState {
        match s {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            "removing" => ContainerState::Removing,
            _ => ContainerState::Unknown,
        }
    }
}

/// HEALTHCHECK status (the `status` label of `dockstat_container_health_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The container has no healthcheck.
    None,
    /// Within the start period.
    Starting,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

impl Health {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::None => "none",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }

    /// From Docker's spelling; anything unknown counts as no healthcheck.
    pub fn parse(s: &str) -> Health {
        match s {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }
}

/// Resource limits from the container's HostConfig, in cAdvisor's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spec {
    /// Memory limit, bytes; 0 when unlimited (as cAdvisor).
    pub memory_limit: u64,
    /// CFS quota in µs per period; None when unlimited.
    pub cpu_quota: Option<u64>,
    /// CFS period in µs; None when unlimited.
    pub cpu_period: Option<u64>,
    /// CPU shares (1024 = default weight).
    pub cpu_shares: u64,
    /// Memory plus swap limit, bytes (Docker's `MemorySwap`, the kernel's
    /// `memory.memsw.limit_in_bytes`); 0 when unlimited.
    pub memory_swap_limit: u64,
    /// Memory soft limit (`MemoryReservation`), bytes; 0 when none.
    pub memory_reservation: u64,
}

/// One Docker label of a container on its `dockstat_container_labels` series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoLabel {
    /// `container_label_<key>`, the key sanitized.
    pub name: String,
    /// The Docker label key (the OTLP attribute is `container.label.<key>`).
    pub key: String,
    /// Its value.
    pub value: String,
}

/// What a container is, from list and inspect. Changes only on events and re-lists, so the
/// collector shares it between snapshots behind an `Arc`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerMeta {
    /// Full id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// Image as the container was created with (`Config.Image`).
    pub image: String,
    /// Image id (`sha256:…`).
    pub image_id: String,
    /// `com.docker.compose.project` label.
    pub compose_project: Option<String>,
    /// `com.docker.compose.service` label.
    pub compose_service: Option<String>,
    /// Allowlisted Docker labels present on the container: (Prometheus label name, value).
    pub labels: Vec<(Arc<str>, String)>,
    /// Docker labels `metrics.info_labels` allows, for `dockstat_container_labels` only,
    /// by Prometheus label name.
    pub info_labels: Vec<InfoLabel>,
    /// Current state.
    pub state: ContainerState,
    /// HEALTHCHECK status.
    pub health: Health,
    /// Restarts done by the restart policy (`RestartCount`).
    pub restart_count: u64,
    /// Exit code of the last run, when it has finished.
    pub exit_code: Option<i64>,
    /// `State.StartedAt`, unix seconds; None when never started.
    pub started_at: Option<f64>,
    /// Limits.
    pub spec: Spec,
}

/// One container in a snapshot: what it is and its latest sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSnapshot {
    /// Identity, state, limits.
    pub meta: Arc<ContainerMeta>,
    /// Latest stats; None when not running or not sampled yet.
    pub stats: Option<Arc<Sample>>,
    /// Exits and OOM kills counted from Docker events; None when none happened.
    pub lifecycle: Option<Arc<Lifecycle>>,
}

/// What Docker events say happened to one container, counted since the exporter first saw
/// the host (kept in SQLite with the event cursor, so restarts neither lose nor repeat).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Lifecycle {
    /// `die` events by exit code.
    pub exits: BTreeMap<i64, u64>,
    /// `oom` events.
    pub oom_events: u64,
    /// Exit code of the last `die` event.
    pub last_exit_code: Option<i64>,
}

/// Docker events seen from one host, by (type, action).
pub type EventCounts = BTreeMap<(String, String), u64>;

/// Facts about the daemon from `/version` and `/info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostInfo {
    /// The daemon's own host name (`/info` `Name`): `host.name` in OTLP.
    pub name: String,
    /// Engine version.
    pub server_version: String,
    /// `docker` or `podman` (from `/version`'s components).
    pub runtime: String,
    /// Negotiated API version.
    pub api_version: String,
    /// `OperatingSystem`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub operating_system: String,
    /// `OSType`, e.g. `linux`.
    pub os_type: String,
    /// `Architecture`, e.g. `x86_64`.
    pub architecture: String,
    /// `KernelVersion`.
    pub kernel_version: String,
    /// `1` or `2`.
    pub cgroup_version: String,
    /// `cgroupfs` or `systemd`.
    pub cgroup_driver: String,
    /// CPUs.
    pub ncpu: Option<u64>,
    /// Memory, bytes.
    pub mem_total: Option<u64>,
    /// Physical CPU cores; known for a host on this machine only.
    pub cpu_physical_cores: Option<u64>,
    /// CPU sockets; known for a host on this machine only.
    pub cpu_sockets: Option<u64>,
}

/// One container's disk usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerDisk {
    /// Writable layer, bytes.
    pub rw: Option<u64>,
    /// Root filesystem (image layers and writable layer), bytes.
    pub root_fs: Option<u64>,
    /// `major:minor` of the file system holding the writable layer, when it was measured
    /// here from its upper directory; None when the figure is Docker's (`SizeRw`).
    pub device: Option<String>,
}

/// One volume's disk usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VolumeDisk {
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Bytes; None where Docker cannot tell (drivers other than `local`).
    pub size: Option<u64>,
    /// Containers referencing it; None where Docker cannot tell.
    pub references: Option<u64>,
}

/// What a host's last disk usage pass found (`GET /system/df`, and on the daemon's own
/// machine the writable layers' upper directories), kept until the next one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskUsage {
    /// When the last successful pass ended; None before the first.
    pub at: Option<SystemTime>,
    /// Whether the last pass succeeded (a failed one keeps the figures before it).
    pub success: bool,
    /// How long the last pass took.
    pub duration: Duration,
    /// Per container id.
    pub containers: BTreeMap<String, ContainerDisk>,
    /// Volumes, by name.
    pub volumes: Vec<VolumeDisk>,
    /// Image layers, bytes.
    pub images: Option<u64>,
    /// Build cache, bytes.
    pub build_cache: Option<u64>,
    /// Containers' log files (json-file and local drivers), bytes: measured here, on the
    /// daemon's own machine only (Docker's API does not tell).
    pub logs: Option<u64>,
}

/// One host at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct HostSnapshot {
    /// Database id.
    pub id: i64,
    /// `host` label.
    pub name: Arc<str>,
    /// `client` label.
    pub client: Arc<str>,
    /// Reachable at the last attempt.
    pub up: bool,
    /// Daemon facts; kept from the last connection while the host is down.
    pub info: Option<Arc<HostInfo>>,
    /// Why the last cycle failed, if it did.
    pub error: Option<DockerError>,
    /// Containers by name; empty while the host is down.
    pub containers: Vec<ContainerSnapshot>,
    /// Containers per state.
    pub container_counts: BTreeMap<ContainerState, u64>,
    /// When this snapshot was built.
    pub built_at: SystemTime,
    /// Duration of the last collection cycle.
    pub collection_duration: Duration,
    /// Whether every call of the last cycle succeeded.
    pub collection_success: bool,
    /// Docker events seen, by (type, action); kept while the host is down.
    #[serde(skip)]
    pub events: Arc<EventCounts>,
    /// Running containers sampled from cgroup files and through the API.
    pub stats_sources: StatsSources,
    /// The last disk usage pass; None before the first or when disk usage is off.
    pub disk: Option<Arc<DiskUsage>>,
    /// A collector runs for the host. False for a host whose client's monitoring is
    /// stopped: it stays in the snapshot (`dockstat_host_monitoring 0`) so it can be alerted
    /// on, with nothing else known.
    pub monitored: bool,
    /// The collector has finished at least one attempt (up or down). Until then the host
    /// shows `dockstat_host_up 0` and `/readyz` waits for it.
    pub attempted: bool,
}

/// How many running containers each stats source samples on a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSources {
    /// Read from the kernel's cgroup and /proc files.
    pub cgroup: u64,
    /// Docker's one-shot stats API.
    pub api: u64,
}

impl HostSnapshot {
    /// A host whose collector has just started: down until its first answer, so an alert on
    /// `dockstat_host_up == 0` also fires for a host that never comes up.
    pub fn pending(id: i64, name: Arc<str>, client: Arc<str>) -> HostSnapshot {
        HostSnapshot {
            attempted: false,
            error: None,
            ..HostSnapshot::down(
                id,
                name,
                client,
                None,
                DockerError::pending(),
                Duration::ZERO,
                Arc::default(),
            )
        }
    }

    /// A host that is not collected: its client's monitoring is stopped.
    pub fn idle(id: i64, name: Arc<str>, client: Arc<str>) -> HostSnapshot {
        HostSnapshot {
            monitored: false,
            ..HostSnapshot::pending(id, name, client)
        }
    }

    /// A snapshot with no containers, for a host not reached.
    pub fn down(
        id: i64,
        name: Arc<str>,
        client: Arc<str>,
        info: Option<Arc<HostInfo>>,
        error: DockerError,
        took: Duration,
        events: Arc<EventCounts>,
    ) -> HostSnapshot {
        HostSnapshot {
            id,
            name,
            client,
            up: false,
            info,
            error: Some(error),
            containers: Vec::new(),
            container_counts: BTreeMap::new(),
            built_at: SystemTime::now(),
            collection_duration: took,
            collection_success: false,
            events,
            stats_sources: StatsSources::default(),
            disk: None,
            monitored: true,
            attempted: true,
        }
    }
}

/// All hosts at one moment, sorted by client then host name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per host.
    pub hosts: Vec<Arc<HostSnapshot>>,
}

impl Snapshot {
    /// A host by database id.
    pub fn host(&self, id: i64) -> Option<&Arc<HostSnapshot>> {
        self.hosts.iter().find(|h| h.id == id)
    }

    /// Number of containers over all hosts.
    pub fn container_count(&self) -> usize {
        self.hosts.iter().map(|h| h.containers.len()).sum()
    }
}

/// Holds the current snapshot; collectors publish into it, readers load from it.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
    // Publishing is read-modify-write of the host list; one writer at a time.
    writer: Mutex<()>,
}

impl SnapshotStore {
    /// The current snapshot; never blocks.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces one host's part.
    pub fn publish(&self, host: HostSnapshot) {
        let host = Arc::new(host);
        self.update(|hosts| match hosts.iter_mut().find(|h| h.id == host.id) {
            Some(slot) => *slot = host,
            None => hosts.push(host),
        });
    }

    /// Drops a host (removed, or its monitoring stopped): its series leave the next scrape.
    pub fn remove(&self, host_id: i64) {
        self.update(|hosts| hosts.retain(|h| h.id != host_id));
    }

    /// Makes the hosts that are not collected exactly `idle`: publishes each one that is not
    /// in the snapshot (or that a collector left), drops idle entries not in the list.
    /// Collected hosts are left alone.
    pub fn set_idle(&self, idle: Vec<HostSnapshot>) {
        self.update(|hosts| {
            hosts.retain(|h| h.monitored || idle.iter().any(|i| i.id == h.id));
            for i in idle {
                match hosts.iter_mut().find(|h| h.id == i.id) {
                    Some(slot) if slot.monitored => {}
                    Some(slot) => *slot = Arc::new(i),
                    None => hosts.push(Arc::new(i)),
                }
            }
        });
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Arc<HostSnapshot>>)) {
        let _guard = self.writer.locked();
        let mut hosts = self.current.load().hosts.clone();
        f(&mut hosts);
        hosts.sort_by(|a, b| (&a.client, &a.name, a.id).cmp(&(&b.client, &b.name, b.id)));
        self.current.store(Arc::new(Snapshot { hosts }));
    }
}
