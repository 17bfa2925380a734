use super::*;

fn fixture(name: &str) -> StatsAnswer {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("decodes")
}

#[test]
fn cgroup_v1_recorded_from_docker_20_10() {
    let stats = fixture("stats-cgroup-v1-oneshot.json");
    let (s, point) = sample(stats.clone(), None, SystemTime::UNIX_EPOCH);
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
    assert!((s.memory_percent.expect("percent") - 491_520.0 / 67_108_864.0 * 100.0).abs() < 1e-9);
}

#[test]
fn stream_false_uses_the_daemons_precpu() {
    let stats = fixture("stats-cgroup-v1-stream-false.json");
    let (s, _) = sample(stats.clone(), None, SystemTime::UNIX_EPOCH);
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
    let (s, _) = sample(stats.clone(), Some(&prev), SystemTime::UNIX_EPOCH);
    // 0.5 s of container CPU over 4 s of host CPU time on 4 CPUs = 50 %
    assert!((s.cpu_percent.expect("percent") - 50.0).abs() < 1e-9);
    let m = s.memory.expect("memory");
    assert_eq!(m.working_set, 104_857_600 - 33_554_432);
    assert_eq!((m.cache, m.rss), (Some(41_943_040), Some(62_914_560)));
    assert_eq!(
        (s.blkio["8:0"].read_bytes, s.blkio["8:0"].write_bytes),
        (1_048_576, 20_971_520)
    );
    assert_eq!(s.blkio["8:16"].read_bytes, 4096);
    assert_eq!(s.pids, Some(7));
    assert_eq!(s.networks["eth0"].rx_dropped, 1);
    assert_eq!(s.blkio_totals(), (1_052_672, 20_971_520));
}

#[test]
fn stopped_container_answer_is_empty_and_counter_reset_gives_no_percent() {
    let stopped: StatsAnswer = serde_json::from_str(
        r#"{"read":"0001-01-01T00:00:00Z","cpu_stats":{"cpu_usage":{"total_usage":0},"throttling_data":{}},"memory_stats":{},"pids_stats":{}}"#,
    )
    .expect("decodes");
    let (s, point) = sample(stopped.clone(), None, SystemTime::UNIX_EPOCH);
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
    let stats: StatsAnswer = serde_json::from_str(
        r#"{"memory_stats":{"usage":100,"limit":1000,"stats":{"total_inactive_file":150,"total_cache":150,"total_rss":0}}}"#,
    )
    .expect("decodes");
    let (s, _) = sample(stats.clone(), None, SystemTime::UNIX_EPOCH);
    assert_eq!(s.memory.expect("memory").working_set, 0);
}

/// The cgroup stats source over a recorded cgroup v2 directory (tests/fixtures/cgroup-v2):
/// every figure cAdvisor reads there, pressure included, down to the sample.
#[test]
fn cgroup_v2_files_to_sample() {
    let id = "4d2f0c1b9e8a7f6e5d4c3b2a190817263544536271809a8b7c6d5e4f3a2b1c0d";
    let dir = std::env::temp_dir().join(format!("dockstat-v2-{}", std::process::id()));
    let cg = dir.join("cg");
    let proc = dir.join("proc");
    let rel = format!("system.slice/docker-{id}.scope");
    let cdir = cg.join(&rel);
    std::fs::create_dir_all(&cdir).expect("mkdir");
    std::fs::write(cg.join("cgroup.controllers"), "cpu io memory pids\n").expect("write");
    let recorded = format!("{}/tests/fixtures/cgroup-v2", env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(&recorded).expect("fixtures").flatten() {
        std::fs::copy(e.path(), cdir.join(e.file_name())).expect("copy");
    }
    for (pid, links) in [
        (4242, &["/dev/null", "socket:[100]", "pipe:[7]"][..]),
        (4243, &["socket:[101]"][..]),
    ] {
        let fd = proc.join(pid.to_string()).join("fd");
        std::fs::create_dir_all(&fd).expect("mkdir");
        for (n, target) in links.iter().enumerate() {
            std::os::unix::fs::symlink(target, fd.join(n.to_string())).expect("symlink");
        }
        std::fs::write(
            proc.join(pid.to_string()).join("cgroup"),
            format!("0::/{rel}\n"),
        )
        .expect("write");
    }
    std::fs::write(
        proc.join("stat"),
        "cpu 100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n",
    )
    .expect("write");
    std::fs::write(proc.join("meminfo"), "MemTotal: 1048576 kB\n").expect("write");

    let reader = crate::cgroup::CgroupReader::new(&cg, &proc);
    let paths = reader.locate(id, 4242, "host").expect("located");
    let mut out = reader.read_many([paths], |p| p, |_, r| r.expect("read"));
    let (raw, extra) = out.pop().expect("one answer");
    let (mut s, _) = sample(raw.clone(), None, SystemTime::UNIX_EPOCH);
    add_extra(&mut s, &extra);

    let p = s.pressure.expect("pressure");
    let cpu = p.cpu.expect("cpu");
    assert!((cpu.waiting - 547.300380).abs() < 1e-9);
    assert!((cpu.stalled.expect("full") - 514.288265).abs() < 1e-9);
    assert!((p.memory.expect("memory").waiting - 0.149183).abs() < 1e-12);
    assert!((p.io.expect("io").stalled.expect("full") - 0.429920).abs() < 1e-12);
    let m = s.memory.expect("memory");
    assert_eq!(m.max_usage, Some(150_994_944), "memory.peak");
    assert_eq!(m.failcnt, Some(17), "memory.events max");
    assert_eq!(m.swap, Some(4_194_304), "memory.swap.current");
    assert_eq!(m.mapped_file, Some(1_048_576), "file_mapped");
    assert_eq!(
        m.faults,
        Some(Faults {
            pgfault: 12000,
            pgmajfault: 7,
            hierarchy_pgfault: 12000,
            hierarchy_pgmajfault: 7
        })
    );
    assert_eq!(
        (s.blkio["8:0"].reads, s.blkio["8:0"].writes),
        (Some(256), Some(5120))
    );
    assert_eq!(s.blkio["8:16"].reads, Some(1));
    assert_eq!(s.pids, Some(7));
    assert_eq!(
        s.processes,
        Processes {
            processes: Some(2),
            threads_max: Some(0),
            file_descriptors: Some(4),
            sockets: Some(2),
        }
    );
    // `metrics.disable: [process, pressure]`: no /proc walk, no PSI read.
    let lean = crate::cgroup::CgroupReader::new(&cg, &proc).reading(false, false);
    let paths = lean.locate(id, 4242, "host").expect("located");
    let mut out = lean.read_many([paths], |p| p, |_, r| r.expect("read"));
    let (_, extra) = out.pop().expect("one answer");
    assert_eq!(
        (extra.processes, extra.file_descriptors, extra.cpu_pressure),
        (None, None, None)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pressure_files_parse_and_v1_memory_figures_come_from_the_api_answer() {
    let some_only =
        crate::cgroup::parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n");
    assert_eq!(
        some_only,
        Some(crate::cgroup::PsiTotals {
            some_us: 5,
            full_us: None
        })
    );
    assert_eq!(crate::cgroup::parse_pressure("garbage\n"), None);

    let stats = fixture("stats-cgroup-v1-oneshot.json");
    let (s, _) = sample(stats.clone(), None, SystemTime::UNIX_EPOCH);
    let m = s.memory.expect("memory");
    assert_eq!(m.max_usage, Some(4_087_808));
    assert_eq!(m.mapped_file, Some(0));
    assert_eq!(m.swap, None, "no swap accounting in this answer");
    assert_eq!(
        m.faults.map(|f| (f.pgfault, f.hierarchy_pgfault)),
        Some((1198, 1198))
    );
    assert_eq!(
        s.processes.threads_max,
        Some(0),
        "no pids limit: 0 as cAdvisor"
    );
    assert_eq!(
        s.processes.processes, None,
        "the API does not count processes"
    );
    assert_eq!(s.pressure, None);
}
