//! The local machine's CPU topology (physical cores, sockets), which `/info` does not tell.

use std::path::Path;

use super::read;

/// CPU topology of the machine: physical cores and sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTopology {
    /// Distinct (package, core) pairs.
    pub physical_cores: u64,
    /// Distinct packages.
    pub sockets: u64,
}

/// Reads the local machine's CPU topology from `<sys>/devices/system/cpu/cpu*/topology`
/// (`physical_package_id`, `core_id`), else from `<proc>/cpuinfo` (`physical id`, `core
/// id`); None when neither tells.
pub fn cpu_topology(sys_root: &Path, proc_root: &Path) -> Option<CpuTopology> {
    use std::collections::BTreeSet;
    let mut cores = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir(sys_root.join("devices/system/cpu")) {
        for e in dir.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some(n) = name.strip_prefix("cpu") else {
                continue;
            };
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let t = e.path().join("topology");
            let (Ok(pkg), Ok(core)) = (
                read(&t.join("physical_package_id")),
                read(&t.join("core_id")),
            ) else {
                continue;
            };
            let (pkg, core) = (pkg.trim().to_string(), core.trim().to_string());
            sockets.insert(pkg.clone());
            cores.insert((pkg, core));
        }
    }
    if cores.is_empty()
        && let Ok(info) = read(&proc_root.join("cpuinfo"))
    {
        for block in info.split("\n\n") {
            let field = |k: &str| {
                block.lines().find_map(|l| {
                    let (key, v) = l.split_once(':')?;
                    (key.trim() == k).then(|| v.trim().to_string())
                })
            };
            if let (Some(pkg), Some(core)) = (field("physical id"), field("core id")) {
                sockets.insert(pkg.clone());
                cores.insert((pkg, core));
            }
        }
    }
    (!cores.is_empty()).then_some(CpuTopology {
        physical_cores: cores.len() as u64,
        sockets: sockets.len() as u64,
    })
}
