//! Turns one Docker stats answer into the figures we export, for cgroup v1 and v2 alike.
//!
//! One-shot stats carry no `precpu_stats`, so the CPU percentage is computed against the
//! previous sample of the same container, which the collector keeps ([`CpuPoint`]).
//! Formulas follow the docker CLI (`docker stats`) and cAdvisor so figures match what
//! operators already see.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use serde::Serialize;

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

/// Network counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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

/// Block IO bytes of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlkioCounters {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
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
    /// Processes and threads.
    pub pids: Option<u64>,
    /// Per interface, by name.
    pub networks: BTreeMap<String, NetCounters>,
    /// Per block device, by `major:minor`.
    pub blkio: BTreeMap<String, BlkioCounters>,
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

fn cpu_point(cpu: &ContainerCpuStats) -> Option<CpuPoint> {
    let usage = cpu.cpu_usage.as_ref()?;
    let total_ns = usage.total_usage?;
    let system_ns = cpu.system_cpu_usage?;
    if total_ns == 0 && system_ns == 0 {
        return None;
    }
    let online_cpus = match cpu.online_cpus {
        Some(n) if n > 0 => n,
        _ => usage
            .percpu_usage
            .as_ref()
            .map(|v| v.len() as u32)
            .filter(|n| *n > 0)
            .unwrap_or(1),
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
    stats: &ContainerStatsResponse,
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
        let get = |k: &str| mem.stats.as_ref().and_then(|m| m.get(k)).copied();
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
        s.memory = Some(Memory {
            usage,
            working_set,
            cache,
            rss,
            limit,
        });
        if limit > 0 {
            s.memory_percent = Some(working_set as f64 / limit as f64 * 100.0);
        }
    }

    s.pids = stats.pids_stats.as_ref().and_then(|p| p.current);

    if let Some(nets) = &stats.networks {
        for (name, n) in nets {
            s.networks.insert(
                name.clone(),
                NetCounters {
                    rx_bytes: n.rx_bytes.unwrap_or(0),
                    rx_packets: n.rx_packets.unwrap_or(0),
                    rx_errors: n.rx_errors.unwrap_or(0),
                    rx_dropped: n.rx_dropped.unwrap_or(0),
                    tx_bytes: n.tx_bytes.unwrap_or(0),
                    tx_packets: n.tx_packets.unwrap_or(0),
                    tx_errors: n.tx_errors.unwrap_or(0),
                    tx_dropped: n.tx_dropped.unwrap_or(0),
                },
            );
        }
    }

    let entries = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref());
    for e in entries.into_iter().flatten() {
        let (Some(major), Some(minor), Some(op), Some(value)) = (e.major, e.minor, &e.op, e.value)
        else {
            continue;
        };
        // v1 says Read/Write, v2 read/write.
        let dev = s.blkio.entry(format!("{major}:{minor}")).or_default();
        if op.eq_ignore_ascii_case("read") {
            dev.read_bytes += value;
        } else if op.eq_ignore_ascii_case("write") {
            dev.write_bytes += value;
        }
    }

    (s, point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> ContainerStatsResponse {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        serde_json::from_str(&text).expect("decodes")
    }

    #[test]
    fn cgroup_v1_recorded_from_docker_20_10() {
        let stats = fixture("stats-cgroup-v1-oneshot.json");
        let (s, point) = sample(&stats, None, SystemTime::UNIX_EPOCH);
        let point = point.expect("cpu point");
        assert_eq!(point.total_ns, 1_591_706_571);
        assert_eq!(point.online_cpus, 2);
        assert_eq!(s.cpu_total_seconds, Some(1.591706571));
        assert_eq!(s.cpu_user_seconds, Some(1.57));
        assert_eq!(s.cpu_system_seconds, Some(0.01));
        let t = s.throttling.expect("throttling");
        assert_eq!((t.periods, t.throttled_periods), (33, 28));
        assert!((t.throttled_seconds - 0.808553051).abs() < 1e-12);
        let m = s.memory.expect("memory");
        assert_eq!(m.usage, 491_520);
        assert_eq!(m.working_set, 491_520, "total_inactive_file is 0");
        assert_eq!(
            (m.cache, m.rss, m.limit),
            (Some(0), Some(65_536), 67_108_864)
        );
        assert_eq!(s.pids, Some(1));
        assert!(s.networks.contains_key("eth0"));
        // one-shot: no precpu, no previous point, so no percentage yet
        assert_eq!(s.cpu_percent, None);
        assert!(
            (s.memory_percent.expect("percent") - 491_520.0 / 67_108_864.0 * 100.0).abs() < 1e-9
        );
    }

    #[test]
    fn stream_false_uses_the_daemons_precpu() {
        let stats = fixture("stats-cgroup-v1-stream-false.json");
        let (s, _) = sample(&stats, None, SystemTime::UNIX_EPOCH);
        let pct = s.cpu_percent.expect("percent from precpu");
        // the container spins under --cpus 0.5
        assert!((40.0..=60.0).contains(&pct), "{pct}");
    }

    #[test]
    fn cgroup_v2_layout() {
        let stats = fixture("stats-cgroup-v2-oneshot.json");
        let prev = CpuPoint {
            total_ns: 2_000_000_000,
            system_ns: 900_000_000_000_000 - 4_000_000_000,
            online_cpus: 4,
        };
        let (s, _) = sample(&stats, Some(&prev), SystemTime::UNIX_EPOCH);
        // 0.5 s of container CPU over 4 s of host CPU time on 4 CPUs = 50 %
        assert!((s.cpu_percent.expect("percent") - 50.0).abs() < 1e-9);
        let m = s.memory.expect("memory");
        assert_eq!(m.working_set, 104_857_600 - 33_554_432);
        assert_eq!((m.cache, m.rss), (Some(41_943_040), Some(62_914_560)));
        assert_eq!(
            s.blkio["8:0"],
            BlkioCounters {
                read_bytes: 1_048_576,
                write_bytes: 20_971_520
            }
        );
        assert_eq!(s.blkio["8:16"].read_bytes, 4096);
        assert_eq!(s.pids, Some(7));
        assert_eq!(s.networks["eth0"].rx_dropped, 1);
        assert_eq!(s.blkio_totals(), (1_052_672, 20_971_520));
    }

    #[test]
    fn stopped_container_answer_is_empty_and_counter_reset_gives_no_percent() {
        let stopped: ContainerStatsResponse = serde_json::from_str(
            r#"{"read":"0001-01-01T00:00:00Z","cpu_stats":{"cpu_usage":{"total_usage":0},"throttling_data":{}},"memory_stats":{},"pids_stats":{}}"#,
        )
        .expect("decodes");
        let (s, point) = sample(&stopped, None, SystemTime::UNIX_EPOCH);
        assert!(s.is_empty());
        assert!(point.is_none());

        let prev = CpuPoint {
            total_ns: 10,
            system_ns: 10,
            online_cpus: 1,
        };
        let cur = CpuPoint {
            total_ns: 5,
            system_ns: 20,
            online_cpus: 1,
        };
        assert_eq!(cpu_percent(&prev, &cur), None);
    }

    #[test]
    fn working_set_floors_at_zero() {
        let stats: ContainerStatsResponse = serde_json::from_str(
            r#"{"memory_stats":{"usage":100,"limit":1000,"stats":{"total_inactive_file":150,"total_cache":150,"total_rss":0}}}"#,
        )
        .expect("decodes");
        let (s, _) = sample(&stats, None, SystemTime::UNIX_EPOCH);
        assert_eq!(s.memory.expect("memory").working_set, 0);
    }
}
