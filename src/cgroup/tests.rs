use super::*;

#[test]
fn parses_the_kernel_formats() {
    let dev = "Inter-|   Receive |  Transmit\n face |bytes packets\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n  eth0: 290 3 1 2 0 0 0 0 70 4 5 6 0 0 0 0\n";
    let n = net_dev(dev);
    assert_eq!(n.len(), 1, "lo is left out");
    let e = &n["eth0"];
    assert_eq!(
        (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
        (290, 3, 1, 2)
    );
    assert_eq!(
        (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
        (70, 4, 5, 6)
    );

    assert!(
        blkio_entries("Total 0\n").is_none(),
        "only a Total line: next file"
    );
    let b = blkio_entries("254:0 Read 495616\n254:0 Write 7\nTotal 495623\n").expect("entries");
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[0].major, b[0].minor, b[0].value),
        (Some(254), Some(0), Some(495616))
    );

    let kv = key_values("user 1\nsystem 3\n");
    assert_eq!((kv["user"], kv["system"]), (1, 3));
    assert_eq!(
        cap_limit(
            Some(u64::MAX / 2),
            HostCpu {
                mem_total: Some(1000),
                ..Default::default()
            }
        ),
        Some(1000)
    );
    assert_eq!(
        cap_limit(
            Some(500),
            HostCpu {
                mem_total: Some(1000),
                ..Default::default()
            }
        ),
        Some(500)
    );
}

#[test]
fn locate_needs_the_container_id_in_the_process_cgroup() {
    let dir = std::env::temp_dir().join(format!("dockstat-cg-{}", std::process::id()));
    let id = "86e3e3f93958b7d0c548a5a2069a96b3a003fe8e7cf007b55383dc49468b18b9";
    let proc = dir.join("proc");
    let cg = dir.join("cg");
    std::fs::create_dir_all(proc.join("42")).expect("mkdir");
    for c in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        std::fs::create_dir_all(cg.join(c).join("docker").join(id)).expect("mkdir");
    }
    std::fs::write(
        cg.join("cpuacct/docker").join(id).join("cpuacct.usage"),
        "5\n",
    )
    .expect("write");
    let lines: String = ["cpu", "cpuacct", "memory", "blkio", "pids"]
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}:{c}:/docker/{id}\n", i + 1))
        .collect();
    std::fs::write(proc.join("42/cgroup"), &lines).expect("write");
    let r = CgroupReader::new(&cg, &proc);
    let p = r.locate(id, 42, "bridge").expect("located");
    assert_eq!(p.memory, cg.join("memory/docker").join(id));
    assert_eq!(p.net_dev, Some(proc.join("42/net/dev")));
    assert_eq!(r.locate(id, 42, "host").and_then(|p| p.net_dev), None);
    let other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_eq!(
        r.locate(other, 42, "bridge"),
        None,
        "pid of another container"
    );
    assert_eq!(r.locate(id, 43, "bridge"), None, "no such process");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cpu_topology_from_sysfs_then_cpuinfo() {
    let dir = std::env::temp_dir().join(format!("dockstat-topo-{}", std::process::id()));
    let sys = dir.join("sys");
    // Two sockets, two cores each, two threads per core.
    for cpu in 0..8 {
        let t = sys.join(format!("devices/system/cpu/cpu{cpu}/topology"));
        std::fs::create_dir_all(&t).expect("mkdir");
        std::fs::write(t.join("physical_package_id"), format!("{}\n", cpu / 4)).expect("write");
        std::fs::write(t.join("core_id"), format!("{}\n", (cpu / 2) % 2)).expect("write");
    }
    std::fs::create_dir_all(sys.join("devices/system/cpu/cpufreq")).expect("mkdir");
    let t = cpu_topology(&sys, &dir.join("proc")).expect("topology");
    assert_eq!((t.physical_cores, t.sockets), (4, 2));

    let proc = dir.join("proc");
    std::fs::create_dir_all(&proc).expect("mkdir");
    std::fs::write(
        proc.join("cpuinfo"),
        "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t\t: 1\n\nprocessor\t: 2\nphysical id\t: 0\ncore id\t\t: 1\n",
    )
    .expect("write");
    let t = cpu_topology(&dir.join("nosys"), &proc).expect("from cpuinfo");
    assert_eq!((t.physical_cores, t.sockets), (2, 1));
    assert_eq!(cpu_topology(&dir.join("nosys"), &dir.join("noproc")), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn io_stat_gives_bytes_and_operations() {
    let b = io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
    let bytes = b.io_service_bytes_recursive.unwrap_or_default();
    let ops = b.io_serviced_recursive.unwrap_or_default();
    assert_eq!(bytes.len(), 2);
    assert_eq!(
        ops.iter().map(|e| (e.op, e.value)).collect::<Vec<_>>(),
        [
            (Some(BlkioOp::Read), Some(1)),
            (Some(BlkioOp::Write), Some(2))
        ]
    );
}
