//! Turns one Docker stats answer into the figures we export, for cgroup v1 and v2 alike.
//!
//! One-shot stats carry no `precpu_stats`, so the CPU percentage is computed against the
//! previous sample of the same container, which the collector keeps ([`CpuPoint`]).
//! Formulas follow the docker CLI (`docker stats`) and cAdvisor so figures match what
//! operators already see.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

mod answer;
mod named;

pub use answer::{
    BlkioEntry, BlkioOp, BlkioStats, Count, CpuStats, CpuUsage, MEMORY_STAT_KEYS, MemoryStat,
    MemoryStats, PidsStats, StatsAnswer, ThrottlingData,
};
pub use named::Named;

/// CPU counters kept between two samples of one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPoint {
    /// Container CPU time, ns.
    pub total_ns: u64,
    /// Host CPU time, ns (all CPUs), as the daemon reports it.
    pub system_ns: u64,
    /// CPUs the container may use.
    pub online_cpus: u32,
}

/// Network counters of one interface (as Docker's answer names them; a missing one is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetCounters {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
}

/// Block IO of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlkioCounters {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations (v1 `blkio.io_serviced_recursive` Read, v2 `io.stat` rios); None
    /// when the source does not count them (Docker's API on cgroup v2).
    pub reads: Option<u64>,
    /// Write operations (v1 Write, v2 wios).
    pub writes: Option<u64>,
}

/// CFS throttling counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Total time throttled, seconds.
    pub throttled_seconds: f64,
}

/// Memory figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Memory {
    /// Current usage (page cache included), bytes.
    pub usage: u64,
    /// usage − inactive file pages, floored at 0: what the kernel cannot reclaim easily.
    pub working_set: u64,
    /// Page cache (v1 `total_cache`, v2 `file`).
    pub cache: Option<u64>,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub rss: Option<u64>,
    /// Limit the daemon reports (host memory when unlimited).
    pub limit: u64,
    /// Highest usage recorded (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    pub max_usage: Option<u64>,
    /// Times usage hit the limit (v1 `memory.failcnt`, v2 `memory.events` max).
    pub failcnt: Option<u64>,
    /// Swap in use (v1 `total_swap`, v2 `memory.swap.current`).
    pub swap: Option<u64>,
    /// Memory-mapped files (v1 `total_mapped_file`, v2 `file_mapped`).
    pub mapped_file: Option<u64>,
    /// Page faults.
    pub faults: Option<Faults>,
}

/// Page fault counters of `memory.stat`, as cAdvisor's `container_memory_failures_total`
/// reads them: `container` scope the cgroup's own, `hierarchy` scope with its children (v1
/// `total_pg*`; v2's figures are hierarchical already, so both scopes carry them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// `pgfault`.
    pub pgfault: u64,
    /// `pgmajfault`.
    pub pgmajfault: u64,
    /// v1 `total_pgfault`, else `pgfault`.
    pub hierarchy_pgfault: u64,
    /// v1 `total_pgmajfault`, else `pgmajfault`.
    pub hierarchy_pgmajfault: u64,
}

/// One resource's pressure stall totals (cgroup v2 PSI), seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Psi {
    /// `some` total: time at least one task waited for the resource.
    pub waiting: f64,
    /// `full` total: time every non-idle task stalled at once; None when the kernel has no
    /// `full` line (cpu before 5.13).
    pub stalled: Option<f64>,
}

/// cgroup v2 pressure of the container, from `cpu.pressure`, `memory.pressure` and
/// `io.pressure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pressure {
    /// CPU.
    pub cpu: Option<Psi>,
    /// Memory.
    pub memory: Option<Psi>,
    /// Block IO.
    pub io: Option<Psi>,
}

/// cAdvisor's `process` figures of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Processes {
    /// Processes (`cgroup.procs`); cgroup stats source only.
    pub processes: Option<u64>,
    /// Threads allowed (`pids.max`, 0 when unlimited).
    pub threads_max: Option<u64>,
    /// Open file descriptors of its processes (`/proc/<pid>/fd`); cgroup stats source only.
    pub file_descriptors: Option<u64>,
    /// Of those, sockets; cgroup stats source only.
    pub sockets: Option<u64>,
}

/// One container's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// When we received it (`container_last_seen`), unix seconds.
    pub seen_at: f64,
    /// Total CPU time, seconds.
    pub cpu_total_seconds: Option<f64>,
    /// User-mode CPU time, seconds.
    pub cpu_user_seconds: Option<f64>,
    /// Kernel-mode CPU time, seconds.
    pub cpu_system_seconds: Option<f64>,
    /// CFS throttling.
    pub throttling: Option<Throttling>,
    /// Memory.
    pub memory: Option<Memory>,
    /// Processes and threads (`pids.current`).
    pub pids: Option<u64>,
    /// Processes, threads allowed, file descriptors, sockets.
    pub processes: Processes,
    /// cgroup v2 pressure; None elsewhere.
    pub pressure: Option<Pressure>,
    /// Per interface, by name.
    pub networks: Named<NetCounters>,
    /// Per block device, by `major:minor`.
    pub blkio: Named<BlkioCounters>,
    /// docker CLI CPU %: 100 = one full core.
    pub cpu_percent: Option<f64>,
    /// docker CLI memory %: working set / limit.
    pub memory_percent: Option<f64>,
}

impl Sample {
    /// A stopped container's stats answer is all zeros; such a sample carries nothing.
    pub fn is_empty(&self) -> bool {
        self.cpu_total_seconds.is_none() && self.memory.is_none()
    }

    /// Total bytes received and sent over all interfaces.
    pub fn network_totals(&self) -> (u64, u64) {
        self.networks
            .values()
            .fold((0, 0), |(rx, tx), n| (rx + n.rx_bytes, tx + n.tx_bytes))
    }

    /// Total bytes read and written over all devices.
    pub fn blkio_totals(&self) -> (u64, u64) {
        self.blkio
            .values()
            .fold((0, 0), |(r, w), b| (r + b.read_bytes, w + b.write_bytes))
    }
}

const NS: f64 = 1e9;

// A sample as the API shows it (listed containers, the `container_stats` stream). Why a
// type of its own: the API's names and totals (camelCase, all interfaces and devices
// summed) are a contract, while `Sample` follows the exporter's needs. The doc comment
// below is the API's schema description.
/// Stats attached to a listed container (the seed's `ContainerStats`), from the snapshot.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// docker CLI CPU %.
    pub cpu_percent: Option<f64>,
    /// Bytes in use, page cache included.
    pub memory_usage: Option<u64>,
    /// Working set, bytes.
    pub memory_working_set: Option<u64>,
    /// Limit reported by the daemon, bytes.
    pub memory_limit: Option<u64>,
    /// Working set / limit, %.
    pub memory_percent: Option<f64>,
    /// Bytes received, all interfaces.
    pub network_rx: u64,
    /// Bytes sent, all interfaces.
    pub network_tx: u64,
    /// Bytes read from block devices.
    pub block_read: u64,
    /// Bytes written to block devices.
    pub block_write: u64,
    /// When sampled, unix seconds.
    pub sampled_at: f64,
}

impl ContainerStats {
    /// The API's view of `s`.
    pub fn of(s: &Sample) -> ContainerStats {
        let (network_rx, network_tx) = s.network_totals();
        let (block_read, block_write) = s.blkio_totals();
        ContainerStats {
            cpu_percent: s.cpu_percent,
            memory_usage: s.memory.map(|m| m.usage),
            memory_working_set: s.memory.map(|m| m.working_set),
            memory_limit: s.memory.map(|m| m.limit),
            memory_percent: s.memory_percent,
            network_rx,
            network_tx,
            block_read,
            block_write,
            sampled_at: s.seen_at,
        }
    }
}

fn cpu_point(cpu: &CpuStats) -> Option<CpuPoint> {
    let usage = cpu.cpu_usage.as_ref()?;
    let total_ns = usage.total_usage?;
    let system_ns = cpu.system_cpu_usage?;
    if total_ns == 0 && system_ns == 0 {
        return None;
    }
    let online_cpus = match cpu.online_cpus {
        Some(n) if n > 0 => n,
        _ => usage.percpu_count.0.max(1),
    };
    Some(CpuPoint {
        total_ns,
        system_ns,
        online_cpus,
    })
}

/// docker CLI `calculateCPUPercentUnix`: container CPU delta over host CPU delta, scaled by
/// the CPUs, in percent. None when there is no usable previous point (first sample, counter
/// reset after a restart).
pub fn cpu_percent(prev: &CpuPoint, cur: &CpuPoint) -> Option<f64> {
    let cpu_delta = cur.total_ns.checked_sub(prev.total_ns)?;
    let system_delta = cur.system_ns.checked_sub(prev.system_ns)?;
    if system_delta == 0 {
        return None;
    }
    Some(cpu_delta as f64 / system_delta as f64 * f64::from(cur.online_cpus) * 100.0)
}

/// Builds a [`Sample`] from a stats answer received at `seen_at`. `prev` is the previous
/// point of the same container run; the returned point is the next call's `prev`.
pub fn sample(
    stats: StatsAnswer,
    prev: Option<&CpuPoint>,
    seen_at: SystemTime,
) -> (Sample, Option<CpuPoint>) {
    let mut s = Sample {
        seen_at: crate::clock::unix_seconds(seen_at),
        ..Sample::default()
    };

    let point = stats.cpu_stats.as_ref().and_then(cpu_point);
    if let Some(cpu) = &stats.cpu_stats {
        if let (Some(usage), Some(_)) = (&cpu.cpu_usage, point) {
            s.cpu_total_seconds = usage.total_usage.map(|v| v as f64 / NS);
            s.cpu_user_seconds = usage.usage_in_usermode.map(|v| v as f64 / NS);
            s.cpu_system_seconds = usage.usage_in_kernelmode.map(|v| v as f64 / NS);
        }
        if let (Some(t), Some(_)) = (&cpu.throttling_data, point) {
            s.throttling = Some(Throttling {
                periods: t.periods.unwrap_or(0),
                throttled_periods: t.throttled_periods.unwrap_or(0),
                throttled_seconds: t.throttled_time.unwrap_or(0) as f64 / NS,
            });
        }
    }
    // Without our own previous point (first sample; `stream=false` on old daemons fills
    // precpu_stats) the daemon's precpu is the next best thing.
    let pre = prev
        .copied()
        .or_else(|| stats.precpu_stats.as_ref().and_then(cpu_point));
    if let (Some(pre), Some(cur)) = (pre, point) {
        s.cpu_percent = cpu_percent(&pre, &cur);
    }

    if let Some(mem) = &stats.memory_stats
        && let Some(usage) = mem.usage
    {
        let get = |k: &str| mem.stats.as_ref().and_then(|m| m.get(k));
        // cgroup v1 names the hierarchical figures total_*; v2 has only the flat ones.
        let v1 = get("total_inactive_file").is_some() || get("total_cache").is_some();
        let inactive = if v1 {
            get("total_inactive_file")
        } else {
            get("inactive_file")
        };
        let working_set = match inactive {
            Some(i) if i < usage => usage - i,
            Some(_) => 0,
            None => usage,
        };
        let (cache, rss) = if v1 {
            (
                get("total_cache").or(get("cache")),
                get("total_rss").or(get("rss")),
            )
        } else {
            (get("file"), get("anon"))
        };
        let limit = mem.limit.unwrap_or(0);
        let pick = |v1_key: &str, v2_key: &str| if v1 { get(v1_key) } else { get(v2_key) };
        let faults = match (get("pgfault"), get("pgmajfault")) {
            (Some(pgfault), Some(pgmajfault)) => Some(Faults {
                pgfault,
                pgmajfault,
                hierarchy_pgfault: if v1 { get("total_pgfault") } else { None }.unwrap_or(pgfault),
                hierarchy_pgmajfault: if v1 { get("total_pgmajfault") } else { None }
                    .unwrap_or(pgmajfault),
            }),
            _ => None,
        };
        s.memory = Some(Memory {
            usage,
            working_set,
            cache,
            rss,
            limit,
            max_usage: mem.max_usage,
            // Docker leaves a zero v1 failcnt out of its answer (omitempty).
            failcnt: mem.failcnt.or(v1.then_some(0)),
            // memory.stat's v1 total_swap (swap accounting on); Docker's answers leave it
            // out, so in practice the cgroup stats source's (v2: memory.swap.current).
            swap: if v1 {
                get("total_swap").or(get("swap"))
            } else {
                None
            },
            mapped_file: pick("total_mapped_file", "file_mapped").or(get("mapped_file")),
            faults,
        });
        if limit > 0 {
            s.memory_percent = Some(working_set as f64 / limit as f64 * 100.0);
        }
    }

    s.pids = stats.pids_stats.as_ref().and_then(|p| p.current);
    // runc reports an unlimited pids.max as 0, as cAdvisor's container_threads_max does.
    s.processes.threads_max = stats
        .pids_stats
        .as_ref()
        .filter(|p| p.current.is_some())
        .map(|p| p.limit.unwrap_or(0));

    s.networks = stats.networks.unwrap_or_default();

    let blkio = stats.blkio_stats.as_ref();
    // `major:minor`, written into one reused buffer: a dozen entries per answer.
    let mut key = String::new();
    let bytes = blkio.and_then(|b| b.io_service_bytes_recursive.as_ref());
    for e in bytes.into_iter().flatten() {
        let (Some(major), Some(minor), Some(op), Some(value)) = (e.major, e.minor, e.op, e.value)
        else {
            continue;
        };
        let dev = s.blkio.entry_or_default(device_key(&mut key, major, minor));
        match op {
            BlkioOp::Read => dev.read_bytes += value,
            BlkioOp::Write => dev.write_bytes += value,
            BlkioOp::Other => {}
        }
    }
    // Operation counts: v1's io_serviced_recursive (the cgroup stats source fills it from
    // v2's io.stat too); Docker's API on v2 leaves it empty.
    let ops = blkio.and_then(|b| b.io_serviced_recursive.as_ref());
    for e in ops.into_iter().flatten() {
        let (Some(major), Some(minor), Some(op), Some(value)) = (e.major, e.minor, e.op, e.value)
        else {
            continue;
        };
        let dev = s.blkio.entry_or_default(device_key(&mut key, major, minor));
        match op {
            BlkioOp::Read => *dev.reads.get_or_insert(0) += value,
            BlkioOp::Write => *dev.writes.get_or_insert(0) += value,
            BlkioOp::Other => {}
        }
    }

    s.blkio.shrink_to_fit();

    (s, point)
}

/// `major:minor` in `buf`, which is reused from one entry to the next.
fn device_key(buf: &mut String, major: u64, minor: u64) -> &str {
    buf.clear();
    buf.push_str(itoa::Buffer::new().format(major));
    buf.push(':');
    buf.push_str(itoa::Buffer::new().format(minor));
    buf
}

/// Adds what the kernel's files tell beyond Docker's answer (the cgroup stats source).
pub fn add_extra(s: &mut Sample, e: &crate::cgroup::Extra) {
    s.processes.processes = e.processes;
    s.processes.file_descriptors = e.file_descriptors;
    s.processes.sockets = e.sockets;
    let psi = |p: Option<crate::cgroup::PsiTotals>| {
        p.map(|p| Psi {
            waiting: p.some_us as f64 / 1e6,
            stalled: p.full_us.map(|v| v as f64 / 1e6),
        })
    };
    let pressure = Pressure {
        cpu: psi(e.cpu_pressure),
        memory: psi(e.memory_pressure),
        io: psi(e.io_pressure),
    };
    if pressure != Pressure::default() {
        s.pressure = Some(pressure);
    }
    if let (Some(m), Some(swap)) = (s.memory.as_mut(), e.swap) {
        m.swap = Some(swap);
    }
}

#[cfg(test)]
mod tests;
