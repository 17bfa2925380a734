//! The family table: one row per family, in exposition order. Columns: name (without unit
//! and `_total`), unit, type, where the series come from, the family's own labels (with
//! the OTLP attribute each becomes), the OTLP metric(s) it feeds, help.
//!
//! Adding a family is adding a row here (and a series for it in `fixtures`, which a test
//! demands), then regenerating the golden files and the README's metric list: see
//! CONTRIBUTING.md.

use super::family::Kind::{Counter, Gauge, Histogram};
use super::family::Series::*;
use super::family::{Family, Label, Unit, fam, l, o};

const S: Option<Unit> = Some(Unit::Seconds);
const B: Option<Unit> = Some(Unit::Bytes);
const N: Option<Unit> = None;

// Labels beyond the base set, each with the OTLP attribute it becomes.
const NO: &[Label] = &[];
const IFACE: &[Label] = &[l("interface", "network.interface.name")];
const DEVICE: &[Label] = &[l("device", "system.device")];
const FAILURE: &[Label] = &[
    l("failure_type", "dockstat.memory.failure_type"),
    l("scope", "dockstat.memory.scope"),
];
const STATE: &[Label] = &[l("state", "dockstat.state")];
const HEALTH: &[Label] = &[l("status", "dockstat.health.status")];
const EXIT_CODE: &[Label] = &[l("exit_code", "process.exit.code")];
const IDENTITY: &[Label] = &[
    l("image_id", "container.image.id"),
    l("compose_project", "dockstat.compose.project"),
    l("compose_service", "dockstat.compose.service"),
];
const HOST_FACTS: &[Label] = &[
    l("runtime", "container.runtime.name"),
    l("server_version", "container.runtime.version"),
    l("api_version", "dockstat.docker.api_version"),
    l("os", "os.description"),
    l("os_type", "os.type"),
    l("arch", "host.arch"),
    l("kernel", "os.version"),
    l("cgroup_version", "dockstat.cgroup.version"),
    l("cgroup_driver", "dockstat.cgroup.driver"),
];
const EVENT: &[Label] = &[
    l("type", "dockstat.event.type"),
    l("action", "dockstat.event.action"),
];
const FS_DEVICE: &[Label] =
    &[l("device", "system.device").note("measured here, from the upper directory")];
const VOLUME: &[Label] = &[
    l("volume", "dockstat.volume.name"),
    l("driver", "dockstat.volume.driver"),
];
const STATS_SOURCE: &[Label] = &[l("source", "dockstat.stats_source")];
const ENDPOINT: &[Label] = &[l("endpoint", "dockstat.docker.endpoint")];
const ERROR: &[Label] = &[
    l("kind", "error.type"),
    l("status", "http.response.status_code").note("api_error only"),
];
const VERSION: &[Label] = &[l("version", "dockstat.version")];
const OUTCOME: &[Label] = &[l("outcome", "dockstat.outcome")];
const ERROR_KIND: &[Label] = &[l("kind", "error.type")];

// Attributes fixed on an OTLP metric's points, telling apart the families that feed it.
const USER: &[(&str, &str)] = &[("cpu.mode", "user")];
const SYSTEM: &[(&str, &str)] = &[("cpu.mode", "system")];
const RX: &[(&str, &str)] = &[("network.io.direction", "receive")];
const TX: &[(&str, &str)] = &[("network.io.direction", "transmit")];
const READ: &[(&str, &str)] = &[("disk.io.direction", "read")];
const WRITE: &[(&str, &str)] = &[("disk.io.direction", "write")];
const PSI_CPU: &[(&str, &str)] = &[("dockstat.pressure.resource", "cpu")];
const PSI_MEMORY: &[(&str, &str)] = &[("dockstat.pressure.resource", "memory")];
const PSI_IO: &[(&str, &str)] = &[("dockstat.pressure.resource", "io")];

fn opt(v: Option<u64>) -> Option<f64> {
    v.map(|v| v as f64)
}

/// Every family, in exposition order.
#[rustfmt::skip]
pub static FAMILIES: &[Family] = &[
    // Container CPU (cAdvisor names).
    fam("container_cpu_usage", S, Counter, Stat(|s| s.cpu_total_seconds), NO, &[o("dockstat.container.cpu.time.total", "s")],
        "Cumulative CPU time consumed by the container."),
    fam("container_cpu_user", S, Counter, Stat(|s| s.cpu_user_seconds), NO, &[o("container.cpu.time", "s").fixed(USER)],
        "Cumulative user-mode CPU time consumed by the container."),
    fam("container_cpu_system", S, Counter, Stat(|s| s.cpu_system_seconds), NO, &[o("container.cpu.time", "s").fixed(SYSTEM)],
        "Cumulative kernel-mode CPU time consumed by the container."),
    fam("container_cpu_cfs_periods", N, Counter, Stat(|s| s.throttling.map(|t| t.periods as f64)), NO, &[o("dockstat.container.cpu.cfs.periods", "{period}")],
        "Number of elapsed CFS enforcement periods."),
    fam("container_cpu_cfs_throttled_periods", N, Counter, Stat(|s| s.throttling.map(|t| t.throttled_periods as f64)), NO, &[o("dockstat.container.cpu.cfs.throttled_periods", "{period}")],
        "Number of CFS periods in which the container was throttled."),
    fam("container_cpu_cfs_throttled", S, Counter, Stat(|s| s.throttling.map(|t| t.throttled_seconds)), NO, &[o("dockstat.container.cpu.cfs.throttled_time", "s")],
        "Total time the container was throttled by CFS."),
    // Container memory.
    fam("container_memory_usage", B, Gauge, Stat(|s| s.memory.map(|m| m.usage as f64)), NO, &[o("container.memory.usage", "By")],
        "Current memory usage, page cache included."),
    fam("container_memory_working_set", B, Gauge, Stat(|s| s.memory.map(|m| m.working_set as f64)), NO, &[o("dockstat.container.memory.working_set", "By")],
        "Memory usage minus inactive file pages (v1 total_inactive_file, v2 inactive_file), floored at 0."),
    fam("container_memory_cache", N, Gauge, Stat(|s| opt(s.memory.and_then(|m| m.cache))), NO, &[o("dockstat.container.memory.cache", "By")],
        "Page cache memory in bytes (v1 total_cache, v2 file)."),
    fam("container_memory_rss", N, Gauge, Stat(|s| opt(s.memory.and_then(|m| m.rss))), NO, &[o("dockstat.container.memory.rss", "By")],
        "Anonymous memory in bytes (v1 total_rss, v2 anon)."),
    fam("container_memory_swap", N, Gauge, Stat(|s| opt(s.memory.and_then(|m| m.swap))), NO, &[o("dockstat.container.memory.swap", "By")],
        "Swap in use in bytes (v1 total_swap, with swap accounting on; v2 memory.swap.current; cgroup stats source only: Docker's answer leaves it out)."),
    fam("container_memory_mapped_file", N, Gauge, Stat(|s| opt(s.memory.and_then(|m| m.mapped_file))), NO, &[o("dockstat.container.memory.mapped_file", "By")],
        "Memory-mapped files in bytes (v1 total_mapped_file, v2 file_mapped)."),
    fam("container_memory_max_usage", B, Gauge, Stat(|s| opt(s.memory.and_then(|m| m.max_usage))), NO, &[o("dockstat.container.memory.max_usage", "By")],
        "Highest memory usage recorded (v1 memory.max_usage_in_bytes; v2 memory.peak, kernel 5.19+, cgroup stats source)."),
    fam("container_memory_failcnt", N, Counter, Stat(|s| opt(s.memory.and_then(|m| m.failcnt))), NO, &[o("dockstat.container.memory.failcnt", "{event}")],
        "Times memory usage hit the limit (v1 memory.failcnt; v2 memory.events max, cgroup stats source).").no_total(),
    fam("container_memory_failures", N, Counter, MemoryFailures, FAILURE, &[o("dockstat.container.memory.failures", "{fault}")],
        "Page faults by type (pgfault, pgmajfault) and scope (container; hierarchy: with child cgroups)."),
    fam("container_spec_memory_limit", B, Gauge, Meta(|m| Some(m.spec.memory_limit as f64)), NO, &[o("dockstat.container.memory.limit", "By")],
        "Memory limit of the container; 0 when unlimited."),
    fam("container_spec_memory_swap_limit", B, Gauge, Meta(|m| Some(m.spec.memory_swap_limit as f64)), NO, &[o("dockstat.container.memory.swap_limit", "By")],
        "Memory plus swap limit of the container (Docker's MemorySwap; twice the memory limit when only that is set); 0 when unlimited."),
    fam("container_spec_memory_reservation_limit", B, Gauge, Meta(|m| Some(m.spec.memory_reservation as f64)), NO, &[o("dockstat.container.memory.reservation", "By")],
        "Memory soft limit of the container (MemoryReservation); 0 when none."),
    fam("container_spec_cpu_quota", N, Gauge, Meta(|m| opt(m.spec.cpu_quota)), NO, &[o("dockstat.container.cpu.cfs.quota", "us")],
        "CFS quota of the container in microseconds per period (absent when unlimited)."),
    fam("container_spec_cpu_period", N, Gauge, Meta(|m| opt(m.spec.cpu_period)), NO, &[o("dockstat.container.cpu.cfs.period", "us")],
        "CFS period of the container in microseconds (absent when unlimited)."),
    fam("container_spec_cpu_shares", N, Gauge, Meta(|m| Some(m.spec.cpu_shares as f64)), NO, &[o("dockstat.container.cpu.shares", "1")],
        "CPU shares of the container (1024 by default)."),
    // Container network, per interface.
    fam("container_network_receive", B, Counter, Network(|n| n.rx_bytes), IFACE, &[o("container.network.io", "By").fixed(RX)],
        "Cumulative bytes received."),
    fam("container_network_receive_packets", N, Counter, Network(|n| n.rx_packets), IFACE, &[o("dockstat.container.network.packets", "{packet}").fixed(RX)],
        "Cumulative packets received."),
    fam("container_network_receive_errors", N, Counter, Network(|n| n.rx_errors), IFACE, &[o("dockstat.container.network.errors", "{error}").fixed(RX)],
        "Cumulative errors while receiving."),
    fam("container_network_receive_packets_dropped", N, Counter, Network(|n| n.rx_dropped), IFACE, &[o("dockstat.container.network.dropped", "{packet}").fixed(RX)],
        "Cumulative received packets dropped."),
    fam("container_network_transmit", B, Counter, Network(|n| n.tx_bytes), IFACE, &[o("container.network.io", "By").fixed(TX)],
        "Cumulative bytes transmitted."),
    fam("container_network_transmit_packets", N, Counter, Network(|n| n.tx_packets), IFACE, &[o("dockstat.container.network.packets", "{packet}").fixed(TX)],
        "Cumulative packets transmitted."),
    fam("container_network_transmit_errors", N, Counter, Network(|n| n.tx_errors), IFACE, &[o("dockstat.container.network.errors", "{error}").fixed(TX)],
        "Cumulative errors while transmitting."),
    fam("container_network_transmit_packets_dropped", N, Counter, Network(|n| n.tx_dropped), IFACE, &[o("dockstat.container.network.dropped", "{packet}").fixed(TX)],
        "Cumulative transmitted packets dropped."),
    // Container block IO, per device.
    fam("container_fs_reads", B, Counter, Blkio(|b| Some(b.read_bytes)), DEVICE, &[o("container.disk.io", "By").fixed(READ)],
        "Cumulative bytes read from block devices."),
    fam("container_fs_writes", B, Counter, Blkio(|b| Some(b.write_bytes)), DEVICE, &[o("container.disk.io", "By").fixed(WRITE)],
        "Cumulative bytes written to block devices."),
    fam("container_fs_reads", N, Counter, Blkio(|b| b.reads), DEVICE, &[o("dockstat.container.disk.operations", "{operation}").fixed(READ)],
        "Cumulative reads completed from block devices (v1 blkio io_serviced, v2 io.stat rios: not in Docker's API answer on cgroup v2)."),
    fam("container_fs_writes", N, Counter, Blkio(|b| b.writes), DEVICE, &[o("dockstat.container.disk.operations", "{operation}").fixed(WRITE)],
        "Cumulative writes completed to block devices (v1 blkio io_serviced, v2 io.stat wios: not in Docker's API answer on cgroup v2)."),
    // Container processes (cAdvisor's `process` group).
    fam("container_processes", N, Gauge, Stat(|s| opt(s.processes.processes)), NO, &[o("dockstat.container.processes", "{process}")],
        "Processes in the container (cgroup.procs; cgroup stats source only)."),
    fam("container_threads", N, Gauge, Stat(|s| opt(s.pids)), NO, &[o("dockstat.container.threads", "{thread}")],
        "Threads in the container (pids.current; Docker's pids_stats through the API)."),
    fam("container_threads_max", N, Gauge, Stat(|s| opt(s.processes.threads_max)), NO, &[o("dockstat.container.threads.max", "{thread}")],
        "Threads allowed in the container (pids.max; Docker's pids_stats limit); 0 when unlimited."),
    fam("container_file_descriptors", N, Gauge, Stat(|s| opt(s.processes.file_descriptors)), NO, &[o("dockstat.container.file_descriptors", "{file_descriptor}")],
        "Open file descriptors of the container's processes (/proc/<pid>/fd; cgroup stats source only)."),
    fam("container_sockets", N, Gauge, Stat(|s| opt(s.processes.sockets)), NO, &[o("dockstat.container.sockets", "{socket}")],
        "Open sockets of the container's processes (/proc/<pid>/fd; cgroup stats source only)."),
    // Container pressure stall information (cgroup v2 PSI; cgroup stats source only).
    fam("container_pressure_cpu_waiting", S, Counter, Stat(|s| Some(s.pressure?.cpu?.waiting)), NO, &[o("dockstat.container.pressure.waiting", "s").fixed(PSI_CPU)],
        "Time at least one task waited for CPU (cpu.pressure some total)."),
    fam("container_pressure_cpu_stalled", S, Counter, Stat(|s| s.pressure?.cpu?.stalled), NO, &[o("dockstat.container.pressure.stalled", "s").fixed(PSI_CPU)],
        "Time every non-idle task stalled on CPU at once (cpu.pressure full total)."),
    fam("container_pressure_memory_waiting", S, Counter, Stat(|s| Some(s.pressure?.memory?.waiting)), NO, &[o("dockstat.container.pressure.waiting", "s").fixed(PSI_MEMORY)],
        "Time at least one task waited for memory (memory.pressure some total)."),
    fam("container_pressure_memory_stalled", S, Counter, Stat(|s| s.pressure?.memory?.stalled), NO, &[o("dockstat.container.pressure.stalled", "s").fixed(PSI_MEMORY)],
        "Time every non-idle task stalled on memory at once (memory.pressure full total)."),
    fam("container_pressure_io_waiting", S, Counter, Stat(|s| Some(s.pressure?.io?.waiting)), NO, &[o("dockstat.container.pressure.waiting", "s").fixed(PSI_IO)],
        "Time at least one task waited for block IO (io.pressure some total)."),
    fam("container_pressure_io_stalled", S, Counter, Stat(|s| s.pressure?.io?.stalled), NO, &[o("dockstat.container.pressure.stalled", "s").fixed(PSI_IO)],
        "Time every non-idle task stalled on block IO at once (io.pressure full total)."),
    // Container lifecycle and identity.
    fam("container_start_time", S, Gauge, Meta(|m| m.started_at), NO, &[o("dockstat.container.start_time", "s"), o("container.uptime", "s").uptime()],
        "Start time of the container's current or last run, unix seconds."),
    fam("container_last_seen", N, Gauge, Stat(|s| Some(s.seen_at)), NO, &[o("dockstat.container.last_seen", "s")],
        "Last time the container was sampled, unix seconds."),
    fam("dockstat_container_cpu_percent", N, Gauge, Stat(|s| s.cpu_percent), NO, &[o("container.cpu.usage", "{cpu}").scale(0.01)],
        "CPU usage as docker stats shows it: 100 is one full core."),
    fam("dockstat_container_memory_percent", N, Gauge, Stat(|s| s.memory_percent), NO, &[o("dockstat.container.memory.percent", "%")],
        "Memory working set as a percentage of the limit, as docker stats shows it."),
    fam("dockstat_container_pids", N, Gauge, Stat(|s| opt(s.pids)), NO, &[o("dockstat.container.pids", "{process}")],
        "Processes and threads in the container."),
    fam("dockstat_container_info", N, Gauge, ContainerInfo, IDENTITY, &[o("dockstat.container.info", "1")],
        "Container identity; always 1."),
    fam("dockstat_container_labels", N, Gauge, ContainerLabels, NO, &[o("dockstat.container.labels", "1")],
        "The container's Docker labels that metrics.info_labels allows, as container_label_<key>; always 1. Join it: `* on(host, id) group_left(container_label_<key>) dockstat_container_labels`."),
    fam("dockstat_container_state", N, Gauge, ContainerState, STATE, &[o("dockstat.container.state", "1")],
        "Current container state; always 1."),
    fam("dockstat_container_health_status", N, Gauge, ContainerHealth, HEALTH, &[o("dockstat.container.health.status", "1")],
        "Current HEALTHCHECK status (none without a healthcheck); always 1."),
    fam("dockstat_container_restarts", N, Counter, Meta(|m| Some(m.restart_count as f64)), NO, &[o("dockstat.container.restarts", "{restart}")],
        "Restarts done by the container's restart policy (Docker's RestartCount)."),
    fam("dockstat_container_last_exit_code", N, Gauge, ContainerLastExit, NO, &[o("dockstat.container.last_exit_code", "1")],
        "Exit code of the container's last run (inspect's ExitCode when stopped, else the last die event's)."),
    fam("dockstat_container_exits", N, Counter, ContainerExits, EXIT_CODE, &[o("dockstat.container.exits", "{exit}")],
        "Times the container's process ended (Docker `die` events), by exit code."),
    fam("container_oom_events", N, Counter, ContainerOom, NO, &[o("dockstat.container.oom_events", "{event}")],
        "OOM events Docker reported for the container (one kill can raise several)."),
    // Disk usage: from each host's last disk usage pass (`GET /system/df`, and the upper
    // directories on the daemon's own machine), never computed at scrape time.
    fam("container_fs_usage", B, Gauge, ContainerDisk(|d| d.rw), FS_DEVICE, &[o("container.filesystem.usage", "By")],
        "Bytes of the container's writable layer (measured from its overlay2 upper directory where the exporter sees it, with a device label; else Docker's SizeRw)."),
    fam("dockstat_container_rootfs_size", B, Gauge, ContainerDisk(|d| d.root_fs), NO, &[o("dockstat.container.rootfs.size", "By")],
        "Bytes of every file of the container's root filesystem, image layers and writable layer (Docker's SizeRootFs)."),
    fam("dockstat_volume_size", B, Gauge, Volume(|v| v.size), VOLUME, &[o("dockstat.volume.size", "By")],
        "Bytes of the volume (volumes of the local driver only: Docker cannot tell others)."),
    fam("dockstat_volume_references", N, Gauge, Volume(|v| v.references), VOLUME, &[o("dockstat.volume.references", "{container}")],
        "Containers using the volume."),
    fam("dockstat_host_images_size", B, Gauge, HostDisk(|d| d.images), NO, &[o("dockstat.host.images.size", "By")],
        "Bytes of the host's image layers (Docker's LayersSize, as docker system df shows Images)."),
    fam("dockstat_host_build_cache_size", B, Gauge, HostDisk(|d| d.build_cache), NO, &[o("dockstat.host.build_cache.size", "By")],
        "Bytes of the host's build cache (records not shared, as docker system df counts them)."),
    fam("dockstat_host_container_logs_size", B, Gauge, HostDisk(|d| d.logs), NO, &[o("dockstat.host.container_logs.size", "By")],
        "Bytes of the containers' log files and their rotations; only where the exporter sees the daemon's files (Docker's API does not tell)."),
    fam("dockstat_disk_usage_age", S, Gauge, DiskUsageAge, NO, &[o("dockstat.disk_usage.age", "s")],
        "Time since the host's last successful disk usage pass; absent before the first."),
    fam("dockstat_disk_usage_success", N, Gauge, DiskUsageSuccess, NO, &[o("dockstat.disk_usage.success", "1")],
        "1 when the host's last disk usage pass succeeded, else 0 (the figures are then the last pass's that did)."),
    fam("dockstat_disk_usage_duration", S, Gauge, DiskUsageDuration, NO, &[o("dockstat.disk_usage.duration", "s")],
        "Duration of the host's last disk usage pass."),
    // Hosts.
    fam("machine_cpu_cores", N, Gauge, Machine(|i| i.ncpu), NO, &[o("system.cpu.logical.count", "{cpu}")],
        "CPUs of the Docker host."),
    fam("machine_cpu_physical_cores", N, Gauge, Machine(|i| i.cpu_physical_cores), NO, &[o("system.cpu.physical.count", "{cpu}")],
        "Physical CPU cores of the Docker host; only for a host on the exporter's machine (its containers read from cgroup files)."),
    fam("machine_cpu_sockets", N, Gauge, Machine(|i| i.cpu_sockets), NO, &[o("dockstat.host.cpu.sockets", "{socket}")],
        "CPU sockets of the Docker host; only for a host on the exporter's machine."),
    fam("machine_memory", B, Gauge, Machine(|i| i.mem_total), NO, &[o("system.memory.limit", "By")],
        "Memory of the Docker host."),
    fam("dockstat_host_up", N, Gauge, HostUp, NO, &[o("dockstat.host.up", "1")],
        "1 when the Docker host answered at the last attempt, else 0 (also before the first answer)."),
    fam("dockstat_host_monitoring", N, Gauge, HostMonitoring, NO, &[o("dockstat.host.monitoring", "1")],
        "1 while the host is collected, 0 while its client's monitoring is stopped (nothing else is known of it then)."),
    fam("dockstat_host_info", N, Gauge, HostInfo, HOST_FACTS, &[o("dockstat.host.info", "1")],
        "Docker host facts; always 1."),
    fam("dockstat_events", N, Counter, HostEvents, EVENT, &[o("dockstat.host.events", "{event}")],
        "Docker events received from the host, by object type and action."),
    fam("dockstat_host_containers", N, Gauge, HostContainers, STATE, &[o("dockstat.host.containers", "{container}")],
        "Containers on the host per state."),
    // Self-metrics.
    fam("dockstat_stats_source_containers", N, Gauge, StatsSources, STATS_SOURCE, &[o("dockstat.stats_source.containers", "{container}")],
        "Running containers per stats source: cgroup (read from the kernel's files, no load on dockerd) or api (Docker's one-shot stats)."),
    fam("dockstat_collection_duration", S, Gauge, CollectionDuration, NO, &[o("dockstat.collection.duration", "s")],
        "Duration of the host's last collection cycle."),
    fam("dockstat_collection_success", N, Gauge, CollectionSuccess, NO, &[o("dockstat.collection.success", "1")],
        "1 when every call of the host's last collection cycle succeeded, else 0."),
    fam("dockstat_snapshot_age", S, Gauge, SnapshotAge, NO, &[o("dockstat.snapshot.age", "s")],
        "Age of the host's data in the snapshot."),
    fam("dockstat_docker_request_duration", S, Histogram, RequestDuration, ENDPOINT, &[o("dockstat.docker.request.duration", "s")],
        "Docker Engine API call latency, reading the body included."),
    fam("dockstat_docker_errors", N, Counter, DockerErrors, ERROR, &[o("dockstat.docker.errors", "{error}")],
        "Failed Docker Engine API calls by kind (socket_not_found, permission_denied, connection_refused, timeout, tls, api_error, decode, too_large, connection, other)."),
    fam("dockstat_pool_workers", N, Gauge, Pool(|p| p.workers as f64), NO, &[o("dockstat.pool.workers", "{worker}")],
        "Collection workers alive."),
    fam("dockstat_pool_hosts", N, Gauge, Pool(|p| p.hosts as f64), NO, &[o("dockstat.pool.hosts", "{host}")],
        "Hosts being collected."),
    fam("dockstat_pool_active_streams", N, Gauge, Pool(|p| p.active_streams as f64), NO, &[o("dockstat.pool.active_streams", "{stream}")],
        "Open Docker event streams."),
    fam("dockstat_pool_inflight_requests", N, Gauge, Pool(|p| p.inflight as f64), NO, &[o("dockstat.pool.inflight_requests", "{request}")],
        "Docker Engine API calls in flight."),
    fam("dockstat_runtime_tasks", N, Gauge, Pool(|p| p.tasks as f64), NO, &[o("dockstat.runtime.tasks", "{task}")],
        "Async tasks alive in the exporter (collectors and their calls, connections, subscriptions); one that keeps growing is a leak."),
    fam("dockstat_shard_hosts", N, Gauge, ShardHosts, NO, &[o("dockstat.shard.hosts", "{host}")],
        "Hosts in this replica's shard: those it collects and those whose client's monitoring is stopped."),
    fam("dockstat_shard_ordinal", N, Gauge, Pool(|p| p.shard.index as f64), NO, &[o("dockstat.shard.ordinal", "1")],
        "This replica's shard, 0-based (shard.index, --shard or the ordinal at the end of the host name)."),
    fam("dockstat_shards", N, Gauge, Pool(|p| p.shard.total as f64), NO, &[o("dockstat.shards", "{shard}")],
        "Replicas sharing the host set (shard.total, --total-shards); each collects the hosts a rendezvous hash of client and host name gives its shard."),
    fam("dockstat_build_info", N, Gauge, BuildInfo, VERSION, &[o("dockstat.build.info", "1")],
        "Exporter build; always 1."),
    fam("process_cpu", S, Counter, Process(|p| p.cpu_seconds), NO, &[o("process.cpu.time", "s")],
        "CPU time of the exporter process."),
    fam("process_resident_memory", B, Gauge, Process(|p| p.rss_bytes as f64), NO, &[o("process.memory.usage", "By")],
        "Resident memory of the exporter process."),
    fam("process_virtual_memory", B, Gauge, Process(|p| p.virtual_bytes as f64), NO, &[o("process.memory.virtual", "By")],
        "Virtual memory of the exporter process."),
    fam("process_open_fds", N, Gauge, Process(|p| p.open_fds as f64), NO, &[o("process.unix.file_descriptor.count", "{file_descriptor}")],
        "Open file descriptors of the exporter process."),
    fam("process_start_time", S, Gauge, Process(|p| p.start_time_seconds), NO, &[o("dockstat.process.start_time", "s")],
        "Start time of the exporter process, unix seconds."),
    fam("dockstat_otlp_exports", N, Counter, OtlpExports, OUTCOME, &[o("dockstat.otlp.exports", "{export}")],
        "OTLP export attempts by outcome (success, partial: the receiver rejected some points, failed)."),
    fam("dockstat_otlp_last_error", N, Gauge, OtlpLastError, ERROR_KIND, &[o("dockstat.otlp.last_error", "1")],
        "1, with the kind of the most recent failed OTLP export (connection_refused, connection, timeout, tls, unavailable, rejected, unauthenticated, other); absent before the first failure."),
    fam("dockstat_otlp_last_success_timestamp", S, Gauge, OtlpLastSuccess, NO, &[o("dockstat.otlp.last_success", "s")],
        "When an OTLP export last delivered, unix seconds; absent before the first."),
];
