//! The part of a Docker stats answer that a [`Sample`](super::Sample) keeps, decoded
//! narrowly.
//!
//! Why not bollard's `ContainerStatsResponse`: it decodes every field, and its
//! `memory_stats.stats` is a `HashMap<String, u64>` of 30–40 keys, so one answer cost ~26
//! allocations that were dropped as soon as the sample was taken (at 10,000 containers,
//! a quarter of the exporter's CPU went to the allocator). Here unknown fields are skipped
//! without allocating, `memory.stat` keeps only the keys [`MEMORY_STAT_KEYS`] names, in a
//! fixed array, and block IO operations are an enum. The field names are Docker's, so the
//! recorded answers of `tests/fixtures` decode as they are; the cgroup stats source builds
//! the same types from the kernel's files.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Named, NetCounters};

/// One stats answer (`GET /containers/{id}/stats?stream=false`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatsAnswer {
    /// CPU counters now.
    pub cpu_stats: Option<CpuStats>,
    /// CPU counters a moment before (filled by `stream=false` without `one-shot`).
    pub precpu_stats: Option<CpuStats>,
    /// Memory.
    pub memory_stats: Option<MemoryStats>,
    /// Processes and threads.
    pub pids_stats: Option<PidsStats>,
    /// Block IO.
    pub blkio_stats: Option<BlkioStats>,
    /// Per network interface, by name.
    pub networks: Option<Named<NetCounters>>,
}

/// `cpu_stats` and `precpu_stats`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CpuStats {
    /// Container CPU time.
    pub cpu_usage: Option<CpuUsage>,
    /// Host CPU time, ns.
    pub system_cpu_usage: Option<u64>,
    /// CPUs online.
    pub online_cpus: Option<u32>,
    /// CFS throttling.
    pub throttling_data: Option<ThrottlingData>,
}

/// `cpu_stats.cpu_usage`, ns.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CpuUsage {
    /// All CPU time.
    pub total_usage: Option<u64>,
    /// How many per-CPU figures the answer lists (cgroup v1): the CPU count when
    /// `online_cpus` is missing (old daemons).
    #[serde(rename = "percpu_usage", default)]
    pub percpu_count: Count,
    /// Kernel mode.
    pub usage_in_kernelmode: Option<u64>,
    /// User mode.
    pub usage_in_usermode: Option<u64>,
}

/// `cpu_stats.throttling_data`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ThrottlingData {
    /// Enforcement periods elapsed.
    pub periods: Option<u64>,
    /// Periods throttled.
    pub throttled_periods: Option<u64>,
    /// Time throttled, ns.
    pub throttled_time: Option<u64>,
}

/// `memory_stats`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MemoryStats {
    /// Usage, bytes.
    pub usage: Option<u64>,
    /// Highest usage (cgroup v1).
    pub max_usage: Option<u64>,
    /// `memory.stat`, the keys a sample reads.
    pub stats: Option<MemoryStat>,
    /// Times the limit was hit (cgroup v1; Docker leaves a zero out).
    pub failcnt: Option<u64>,
    /// Limit, bytes.
    pub limit: Option<u64>,
}

/// `pids_stats`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PidsStats {
    /// Processes and threads now.
    pub current: Option<u64>,
    /// `pids.max`, 0 when unlimited.
    pub limit: Option<u64>,
}

/// `blkio_stats`: the lists a sample reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BlkioStats {
    /// Bytes per device and operation.
    pub io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
    /// Operations per device and operation.
    pub io_serviced_recursive: Option<Vec<BlkioEntry>>,
}

/// One device's figure for one operation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BlkioEntry {
    /// Device major number.
    pub major: Option<u64>,
    /// Device minor number.
    pub minor: Option<u64>,
    /// The operation.
    pub op: Option<BlkioOp>,
    /// Bytes or operations.
    pub value: Option<u64>,
}

/// What a block IO entry counts: cgroup v1 says `Read`/`Write` (and `Sync`, `Async`,
/// `Discard`, `Total`, which a sample does not use), v2 `read`/`write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkioOp {
    /// Reads.
    Read,
    /// Writes.
    Write,
    /// Anything else.
    Other,
}

impl BlkioOp {
    /// The operation a blkio file or answer names, in either case.
    pub fn named(op: &str) -> BlkioOp {
        if op.eq_ignore_ascii_case("read") {
            BlkioOp::Read
        } else if op.eq_ignore_ascii_case("write") {
            BlkioOp::Write
        } else {
            BlkioOp::Other
        }
    }
}

impl<'de> Deserialize<'de> for BlkioOp {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OpVisitor;
        impl Visitor<'_> for OpVisitor {
            type Value = BlkioOp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a block IO operation name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BlkioOp, E> {
                Ok(BlkioOp::named(v))
            }
        }
        d.deserialize_str(OpVisitor)
    }
}

/// How many elements a JSON list has, without keeping them (null or missing: 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_none<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
                d.deserialize_seq(CountVisitor)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0u32;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n = n.saturating_add(1);
                }
                Ok(Count(n))
            }
        }
        d.deserialize_option(CountVisitor)
    }
}

/// The `memory.stat` keys a sample reads: v1's hierarchical `total_*` and flat figures,
/// v2's names.
pub const MEMORY_STAT_KEYS: [&str; 17] = [
    "total_inactive_file",
    "inactive_file",
    "total_cache",
    "cache",
    "total_rss",
    "rss",
    "file",
    "anon",
    "pgfault",
    "pgmajfault",
    "total_pgfault",
    "total_pgmajfault",
    "total_swap",
    "swap",
    "total_mapped_file",
    "file_mapped",
    "mapped_file",
];

/// `memory_stats.stats`: the values of [`MEMORY_STAT_KEYS`] present, the other keys dropped
/// as they are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStat([Option<u64>; MEMORY_STAT_KEYS.len()]);

impl MemoryStat {
    fn slot(key: &str) -> Option<usize> {
        MEMORY_STAT_KEYS.iter().position(|k| *k == key)
    }

    /// The value of `key`, if the answer had it and it is one of [`MEMORY_STAT_KEYS`].
    pub fn get(&self, key: &str) -> Option<u64> {
        Self::slot(key).and_then(|i| self.0[i])
    }

    /// Keeps `value` when `key` is one a sample reads.
    pub fn insert(&mut self, key: &str, value: u64) {
        if let Some(i) = Self::slot(key) {
            self.0[i] = Some(value);
        }
    }
}

impl<'a> FromIterator<(&'a str, u64)> for MemoryStat {
    fn from_iter<T: IntoIterator<Item = (&'a str, u64)>>(iter: T) -> Self {
        let mut m = MemoryStat::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

/// A `memory.stat` key, resolved to its slot without allocating.
struct Slot(Option<usize>);

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SlotVisitor;
        impl Visitor<'_> for SlotVisitor {
            type Value = Slot;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a memory.stat key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Slot, E> {
                Ok(Slot(MemoryStat::slot(v)))
            }
        }
        d.deserialize_str(SlotVisitor)
    }
}

impl<'de> Deserialize<'de> for MemoryStat {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = MemoryStat;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of memory.stat figures")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MemoryStat, A::Error> {
                let mut m = MemoryStat::default();
                while let Some(Slot(slot)) = map.next_key()? {
                    match slot {
                        Some(i) => m.0[i] = map.next_value()?,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_map(MapVisitor)
    }
}
