//! The cAdvisor families added for parity (issue 15), against the real daemon A: each new
//! container figure is compared with the kernel's cgroup and /proc files read at the same
//! instant (the container paused, so its counters are frozen), from both stats sources; the
//! cgroup v2 pressure files through the cgroup stats source on a real cgroup2 hierarchy
//! mounted for the test; the machine's cores and sockets against `lscpu`; and a
//! dockprom-style set of queries over the new families on a real Prometheus, which
//! negotiates OpenMetrics, with `container_memory_failcnt` queried under cAdvisor's name.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn config_a(source: &str) -> String {
    format!(
        "monitoring:\n  interval: 1s\n  relist_interval: 60s\n  stats_source: {source}\nclients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
        env().a_socket
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_u64(p: &Path) -> u64 {
    read(p)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `MAJ:MIN Op value` lines of the first non-empty blkio file, as runc picks them.
fn blkio_ops(dir: &Path) -> BTreeMap<(String, String), u64> {
    for f in [
        "blkio.bfq.io_serviced_recursive",
        "blkio.io_serviced_recursive",
        "blkio.throttle.io_serviced_recursive",
        "blkio.throttle.io_serviced",
    ] {
        let Ok(text) = std::fs::read_to_string(dir.join(f)) else {
            continue;
        };
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [dev, op, v] = f.as_slice() {
                *out.entry((dev.to_string(), op.to_lowercase())).or_insert(0) +=
                    v.parse::<u64>().unwrap_or(0);
            }
        }
        if !out.is_empty() {
            return out;
        }
    }
    BTreeMap::new()
}

/// Processes of the cgroup, their file descriptors and sockets, as /proc shows them now.
fn process_figures(pids_dir: &Path) -> (u64, u64, u64) {
    let procs = read(&pids_dir.join("cgroup.procs"));
    let (mut n, mut fds, mut sockets) = (0, 0, 0);
    for pid in procs.lines() {
        n += 1;
        for fd in std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
            .expect("fd dir")
            .flatten()
        {
            fds += 1;
            if std::fs::read_link(fd.path())
                .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            {
                sockets += 1;
            }
        }
    }
    (n, fds, sockets)
}

/// Every new container family, from both stats sources, equals the kernel's file while the
/// container is paused; the families only the cgroup source can fill are absent through
/// the API (documented in the README).
#[test]
fn new_container_figures_match_the_kernel_files_of_a_paused_container() {
    let d = Docker::a();
    let root = d.run(&["info", "--format", "{{.DockerRootDir}}"]);
    let (dev, devpath) = block_device_of(Path::new(&root));
    // A throttle rule far above what is written turns blkio accounting on (see
    // tests/collection.rs a_direct_write_shows_in_fs_writes).
    let limit = format!("{devpath}:10gb");
    for source in ["cgroup", "api"] {
        let c = d.start(
            &format!("parity-{source}"),
            &[
                "--memory",
                "48m",
                "--memory-swap",
                "96m",
                "--memory-reservation",
                "32m",
                "--pids-limit",
                "100",
                "--device-write-bps",
                &limit,
            ],
            // Page cache beyond the limit makes the kernel reclaim (failcnt), direct writes
            // count operations, nc holds a listening socket, sleep is a second process.
            "dd if=/dev/zero of=/big bs=1M count=80 2>/dev/null; rm -f /big; \
             dd if=/dev/zero of=/blk.out bs=1M count=4 oflag=direct 2>/dev/null; \
             nc -l -p 8080 & sleep 100000 & touch /ready; wait",
        );
        let exp = Exporter::start(&format!("parity-{source}"), &config_a(source));
        let f = [("name", c.name.as_str())];
        poll("the container's set-up", Duration::from_secs(60), || {
            d.try_run(&["exec", &c.id, "test", "-e", "/ready"]).ok()
        });
        exp.wait_for(Duration::from_secs(20), "figures of the container", |s| {
            s.value("container_threads", &f).is_some_and(|t| t >= 3.0)
                && s.find("container_fs_writes_total", &f).next().is_some()
        });
        d.pause(&c.id);
        let paused = exp.wait_for(Duration::from_secs(10), "state paused", |s| {
            s.value(
                "dockstat_container_state",
                &[("name", c.name.as_str()), ("state", "paused")],
            ) == Some(1.0)
        });
        let seen = paused.value("container_last_seen", &f).expect("last seen");
        let s = exp.wait_for(
            Duration::from_secs(10),
            "a sample taken while paused",
            |s| {
                s.value("container_last_seen", &f)
                    .is_some_and(|t| t >= seen + 2.0)
            },
        );

        let pid = c.pid();
        let mem = cgroup_dir(pid, "memory");
        let pids = cgroup_dir(pid, "pids");
        let blkio = cgroup_dir(pid, "blkio");
        let stat = key_values(&read(&mem.join("memory.stat")));
        let get = |name: &str| {
            s.value(name, &f)
                .unwrap_or_else(|| panic!("{source}: no {name} for {}", c.name))
        };
        let want = |key: &str| {
            stat.get(key)
                .copied()
                .unwrap_or_else(|| panic!("memory.stat {key}")) as f64
        };
        let failcnt = read_u64(&mem.join("memory.failcnt")) as f64;
        assert!(
            failcnt > 0.0,
            "the container never hit its limit: the test proves nothing"
        );
        assert_eq!(
            get("container_memory_failcnt"),
            failcnt,
            "{source}: failcnt"
        );
        assert_eq!(
            get("container_memory_max_usage_bytes"),
            read_u64(&mem.join("memory.max_usage_in_bytes")) as f64,
            "{source}: max usage"
        );
        assert_eq!(
            get("container_memory_mapped_file"),
            want("total_mapped_file"),
            "{source}"
        );
        // Docker's answer leaves swap out: the cgroup stats source's figure only.
        match source {
            "cgroup" => assert_eq!(get("container_memory_swap"), want("total_swap"), "swap"),
            _ => assert_eq!(s.value("container_memory_swap", &f), None, "api: swap"),
        }
        for (ty, scope, key) in [
            ("pgfault", "container", "pgfault"),
            ("pgfault", "hierarchy", "total_pgfault"),
            ("pgmajfault", "container", "pgmajfault"),
            ("pgmajfault", "hierarchy", "total_pgmajfault"),
        ] {
            let v = s
                .value(
                    "container_memory_failures_total",
                    &[
                        ("name", c.name.as_str()),
                        ("failure_type", ty),
                        ("scope", scope),
                    ],
                )
                .unwrap_or_else(|| panic!("{source}: no failures {ty}/{scope}"));
            assert_eq!(v, want(key), "{source}: {ty}/{scope}");
        }
        assert_eq!(
            get("container_spec_memory_swap_limit_bytes"),
            read_u64(&mem.join("memory.memsw.limit_in_bytes")) as f64,
            "{source}: the kernel's memory+swap limit"
        );
        assert_eq!(
            get("container_spec_memory_reservation_limit_bytes"),
            read_u64(&mem.join("memory.soft_limit_in_bytes")) as f64,
            "{source}: the kernel's soft limit"
        );

        let ops = blkio_ops(&blkio);
        for (family, op) in [
            ("container_fs_reads_total", "read"),
            ("container_fs_writes_total", "write"),
        ] {
            let want = ops.get(&(dev.clone(), op.to_string())).copied();
            let got = s.value(family, &[("name", c.name.as_str()), ("device", &dev)]);
            assert_eq!(got, want.map(|v| v as f64), "{source}: {family} on {dev}");
        }
        assert!(
            ops.get(&(dev.clone(), "write".into()))
                .is_some_and(|w| *w >= 4),
            "{source}: the direct writes are counted: {ops:?}"
        );

        assert_eq!(
            get("container_threads"),
            read_u64(&pids.join("pids.current")) as f64,
            "{source}: threads"
        );
        assert_eq!(get("container_threads_max"), 100.0, "{source}: pids.max");
        assert_eq!(read(&pids.join("pids.max")).trim(), "100");
        let (n, fds, sockets) = process_figures(&pids);
        if source == "cgroup" {
            assert_eq!(get("container_processes"), n as f64, "processes");
            assert_eq!(get("container_file_descriptors"), fds as f64, "fds");
            assert_eq!(get("container_sockets"), sockets as f64, "sockets");
            assert!(n >= 3 && sockets >= 1, "sh, nc, sleep; nc's socket");
        } else {
            for family in [
                "container_processes",
                "container_file_descriptors",
                "container_sockets",
            ] {
                assert_eq!(
                    s.value(family, &f),
                    None,
                    "api: {family} is the cgroup source's"
                );
            }
        }
        // cgroup v1: no pressure files, no pressure series.
        assert_eq!(
            s.find("container_pressure_cpu_waiting_seconds_total", &f)
                .count(),
            0
        );
        d.run(&["unpause", &c.id]);
    }
}

/// A cgroup2 hierarchy mounted for the test, with one child cgroup; the processes moved in
/// go back to the root and the child goes, then it is unmounted, when dropped.
struct Cgroup2 {
    mount: PathBuf,
    child: PathBuf,
}

impl Cgroup2 {
    fn mount(child: &str) -> Cgroup2 {
        let mount = temp_dir("cgroup2");
        let out = std::process::Command::new("mount")
            .args(["-t", "cgroup2", "none"])
            .arg(&mount)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mount -t cgroup2 (needs root and a kernel with cgroup2): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = mount.join(child);
        std::fs::create_dir(&child).expect("mkdir the child cgroup");
        Cgroup2 { mount, child }
    }
}

impl Drop for Cgroup2 {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.child.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write(self.mount.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.child);
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .status();
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// The cgroup stats source finds a container in a real cgroup v2 hierarchy from its
/// process's `/proc/<pid>/cgroup` and reads its PSI files as the kernel writes them. The
/// machine runs cgroup v1, where the memory, io and pids controllers are bound to the v1
/// hierarchies, so the v2 hierarchy mounted here has none of them: only the pressure files
/// (and cpu.stat) exist there, so this covers locating and pressure, not a whole v2 read
/// (which the unit test `stats::tests::cgroup_v2_files_to_sample` covers on recorded files).
#[test]
fn pressure_is_read_from_a_real_cgroup2_hierarchy() {
    let d = Docker::a();
    let c = d.start("psi", &["--cpus", "0.1"], "while true; do :; done");
    let pid = c.pid();
    let v2 = Cgroup2::mount(&format!("dockstat-test-{}", c.id));
    std::fs::write(v2.child.join("cgroup.procs"), pid.to_string()).expect("move the pid in");
    let reader = dockstat_exporter::cgroup::CgroupReader::new(&v2.mount, Path::new("/proc"));
    let paths = reader
        .locate(&c.id, i64::from(pid), "none")
        .expect("the v2 cgroup found from /proc/<pid>/cgroup");
    // The throttled spinner makes CPU pressure; wait until some is recorded.
    poll("CPU pressure recorded", Duration::from_secs(20), || {
        let mut e = dockstat_exporter::cgroup::Extra::default();
        reader.read_pressure(&paths, &mut e);
        e.cpu_pressure.filter(|p| p.some_us > 0).map(|_| ())
    });
    // Frozen, the totals stop: the reader and the files agree.
    d.pause(&c.id);
    let files = |f: &str| dockstat_exporter::cgroup::parse_pressure(&read(&v2.child.join(f)));
    poll(
        "the reader and the kernel's files agree",
        Duration::from_secs(10),
        || {
            let before = (
                files("cpu.pressure"),
                files("memory.pressure"),
                files("io.pressure"),
            );
            let mut e = dockstat_exporter::cgroup::Extra::default();
            reader.read_pressure(&paths, &mut e);
            let after = (
                files("cpu.pressure"),
                files("memory.pressure"),
                files("io.pressure"),
            );
            (before == after && (e.cpu_pressure, e.memory_pressure, e.io_pressure) == after)
                .then_some(())
        },
    );
    let cpu = files("cpu.pressure").expect("cpu.pressure");
    assert!(cpu.some_us > 0 && cpu.full_us.is_some(), "{cpu:?}");
    d.run(&["unpause", &c.id]);
}

/// `lscpu -p=CORE,SOCKET`: distinct cores (per socket) and sockets.
fn lscpu() -> (f64, f64) {
    let out = std::process::Command::new("lscpu")
        .arg("-p=CORE,SOCKET")
        .output()
        .expect("lscpu (util-linux) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut cores = std::collections::BTreeSet::new();
    let mut sockets = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((core, socket)) = line.split_once(',') {
            cores.insert((socket.to_string(), core.to_string()));
            sockets.insert(socket.to_string());
        }
    }
    (cores.len() as f64, sockets.len() as f64)
}

/// Daemon A runs on this machine: its cores and sockets are this machine's, as lscpu says.
#[test]
fn machine_cores_and_sockets_of_the_local_host() {
    let d = Docker::a();
    let _c = d.start("topology", &[], "sleep 100000");
    let exp = Exporter::start("topology", &config_a("auto"));
    let h = [("host", "a")];
    let s = exp.wait_for(Duration::from_secs(20), "machine figures", |s| {
        s.value("machine_cpu_sockets", &h).is_some()
    });
    let (cores, sockets) = lscpu();
    assert_eq!(s.value("machine_cpu_physical_cores", &h), Some(cores));
    assert_eq!(s.value("machine_cpu_sockets", &h), Some(sockets));
}

/// Prometheus (which asks for OpenMetrics first) stores the new families under cAdvisor's
/// names, `container_memory_failcnt` included, and dockprom-style queries over them return
/// data.
#[test]
fn cadvisor_queries_over_the_new_families_return_data_on_prometheus() {
    let d = Docker::a();
    let root = d.run(&["info", "--format", "{{.DockerRootDir}}"]);
    let (_, devpath) = block_device_of(Path::new(&root));
    let limit = format!("{devpath}:10gb");
    let c = d.start(
        "parity-prom",
        &["--memory", "48m", "--device-write-bps", &limit],
        "while true; do dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null; \
         dd if=/dev/zero of=/blk.out bs=1M count=2 oflag=direct 2>/dev/null; sleep 1; done",
    );
    let exp = Exporter::start("parity-prom", &config_a("auto"));
    let f = [("name", c.name.as_str())];
    exp.wait_for(Duration::from_secs(20), "the container's figures", |s| {
        s.value("container_memory_failcnt", &f).is_some()
    });
    let (status, head, _) = http_get(
        exp.port,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(
        head.to_lowercase().contains("application/openmetrics-text"),
        "{head}"
    );
    let prom = Prometheus::start(&exp.dir, exp.port, None);
    let name = &c.name;
    let queries = [
        format!("container_memory_failcnt{{name=\"{name}\"}}"),
        format!("rate(container_memory_failcnt{{name=\"{name}\"}}[10s])"),
        format!(
            "sum by (failure_type, scope) (rate(container_memory_failures_total{{name=\"{name}\"}}[10s]))"
        ),
        format!("container_memory_max_usage_bytes{{name=\"{name}\"}}"),
        format!("container_memory_swap{{name=\"{name}\"}}"),
        format!("container_memory_mapped_file{{name=\"{name}\"}}"),
        format!("container_spec_memory_swap_limit_bytes{{name=\"{name}\"}}"),
        format!("container_spec_memory_reservation_limit_bytes{{name=\"{name}\"}}"),
        format!("sum by (name) (rate(container_fs_writes_total{{name=\"{name}\"}}[10s]))"),
        format!("sum by (name) (container_fs_reads_total{{name=\"{name}\"}})"),
        format!("container_processes{{name=\"{name}\"}}"),
        format!(
            "container_threads{{name=\"{name}\"}} / container_threads_max{{name=\"{name}\"}} >= 0"
        ),
        format!("container_file_descriptors{{name=\"{name}\"}}"),
        format!("container_sockets{{name=\"{name}\"}}"),
        "machine_cpu_physical_cores{host=\"a\"}".to_string(),
        "machine_cpu_sockets{host=\"a\"}".to_string(),
    ];
    for q in &queries {
        poll(&format!("data for {q}"), Duration::from_secs(40), || {
            prom.query(q).ok().filter(|r| !r.is_empty()).map(|_| ())
        });
    }
    // The name Prometheus stored is cAdvisor's: no `_total` added on the way.
    let stored = prom.api("label/__name__/values");
    let names: Vec<&str> = stored
        .as_array()
        .map(|v| v.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&"container_memory_failcnt"), "{names:?}");
    assert!(
        !names.contains(&"container_memory_failcnt_total"),
        "{names:?}"
    );
}
