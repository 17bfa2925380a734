//! The exporter's own process figures from `/proc/self` (Linux): resident memory, CPU time,
//! threads, open files. Used by pool status and the `process_*` self-metrics.

use serde::Serialize;

/// Makes glibc's allocator use one arena (unless `MALLOC_ARENA_MAX` says otherwise), before
/// any thread starts.
///
/// Why: glibc gives each thread that allocates an arena of its own, and memory freed into
/// one is not reused by the others; the collectors' many short-lived answers, decoded on
/// whichever worker thread runs them, kept each worker's arena at the high-water mark of
/// its share. With one arena, 10,000 simulated containers take ~56 MiB resident instead of
/// ~65 MiB (BENCHMARKS.md, "One replica at 10,000 containers"), at no CPU cost we could
/// measure: the exporter's threads spend their time waiting on Docker, not allocating in
/// parallel. Elsewhere than glibc this does nothing.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first in main, before any other thread exists; mallopt only sets
        // an allocator parameter. Its 0 (refused) is harmless: the default stays.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Kernel clock ticks per second for `/proc` times. USER_HZ is 100 on every Linux ABI.
const USER_HZ: f64 = 100.0;

/// Process figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessStats {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Start time, unix seconds.
    pub start_time_seconds: f64,
}

/// Reads `/proc/self`; None where it is not available.
pub fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let (utime, stime) = (field(11)?, field(12)?);
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    Some(ProcessStats {
        rss_bytes: kb("VmRSS:").unwrap_or(0),
        virtual_bytes: field(20).unwrap_or(0),
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        threads: field(17).unwrap_or(0),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0),
        start_time_seconds: match (boot_time, field(19)) {
            (Some(b), Some(ticks)) => b as f64 + ticks as f64 / USER_HZ,
            _ => 0.0,
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let p = super::read().expect("linux /proc");
        assert!(p.rss_bytes > 1024 * 1024, "{p:?}");
        assert!(p.threads >= 1);
        assert!(p.open_fds >= 3);
        let now = crate::clock::unix_now();
        assert!(
            p.start_time_seconds > now - 3600.0 && p.start_time_seconds <= now + 1.0,
            "{p:?}"
        );
    }
}
