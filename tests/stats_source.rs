//! The two stats sources give the same figures for the same containers: two exporters on
//! the real daemon A, one reading Docker's stats API, one reading the cgroup files; and
//! `auto` chooses the files only where they really are this machine's.

mod common;

use std::time::Duration;

use common::*;

const MIB: f64 = 1024.0 * 1024.0;

fn config(source: &str, extra: &str) -> String {
    format!(
        "monitoring:\n  interval: 1s\n  relist_interval: 60s\n  stats_source: {source}\n{extra}clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
        env().a_socket
    )
}

/// (value, container_last_seen) of one container's series.
fn read(s: &Scrape, family: &str, filter: &[(&str, &str)]) -> Option<(f64, f64)> {
    let name = filter.iter().find(|(k, _)| *k == "name")?.1;
    Some((
        s.value(family, filter)?,
        s.value("container_last_seen", &[("name", name)])?,
    ))
}

fn sources(s: &Scrape) -> (f64, f64) {
    let n = |source: &str| {
        s.value(
            "dockstat_stats_source_containers",
            &[("host", "a"), ("source", source)],
        )
        .unwrap_or(-1.0)
    };
    (n("cgroup"), n("api"))
}

#[test]
fn cgroup_and_api_sources_agree() {
    let d = Docker::a();
    let root = d.run(&["info", "--format", "{{.DockerRootDir}}"]);
    let (majmin, devpath) = block_device_of(std::path::Path::new(&root));
    let limit = format!("{devpath}:10gb");
    // Busy at a steady half core; holding ~30 MiB; having written 16 MiB to disk (see
    // tests/collection.rs for the throttle rule); a pair that moved 4 MiB over the network.
    let busy = d.start("src-busy", &["--cpus", "0.5"], "while true; do :; done");
    let mem = d.start(
        "src-mem",
        &["--memory", "256m"],
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=30 2>/dev/null; sleep 600",
    );
    let disk = d.start(
        "src-disk",
        &["--device-write-bps", &limit],
        "dd if=/dev/zero of=/blk.out bs=1M count=16 oflag=direct 2>/dev/null; sleep 600",
    );
    let server = d.start(
        "src-srv",
        &[],
        "sleep 600 | nc -l -p 5000 > /dev/null; sleep 600",
    );
    let ip = server.ip();
    let client = d.start(
        "src-cli",
        &[],
        &format!("sleep 1; dd if=/dev/zero bs=1M count=4 2>/dev/null | nc {ip} 5000; sleep 600"),
    );

    let files = Exporter::start("src-cgroup", &config("cgroup", ""));
    let api = Exporter::start("src-api", &config("api", ""));
    let ready = |s: &Scrape| {
        s.value(
            "container_network_receive_bytes_total",
            &[("name", &server.name), ("interface", "eth0")],
        )
        .is_some_and(|v| v >= 4.0 * MIB)
            && s.value(
                "container_fs_writes_bytes_total",
                &[("name", &disk.name), ("device", &majmin)],
            )
            .is_some_and(|v| v >= 16.0 * MIB)
            && s.value("dockstat_container_cpu_percent", &[("name", &busy.name)])
                .is_some_and(|v| v > 0.0)
    };
    files.wait_for(Duration::from_secs(30), "all figures (cgroup)", ready);
    api.wait_for(Duration::from_secs(30), "all figures (api)", ready);

    // Which source each exporter used: every running container from files, or none.
    let (f_cg, f_api) = sources(&files.scrape());
    let (a_cg, a_api) = sources(&api.scrape());
    eprintln!("sources: cgroup exporter {f_cg}/{f_api}, api exporter {a_cg}/{a_api}");
    assert!(
        f_cg >= 5.0 && f_api == 0.0,
        "cgroup exporter: {f_cg} cgroup, {f_api} api"
    );
    assert!(
        a_cg == 0.0 && a_api >= 5.0,
        "api exporter: {a_cg} cgroup, {a_api} api"
    );

    // CPU while it runs: each source sees the --cpus 0.5 loop near half a core. Two
    // exporters sample at their own instants, and a loaded machine gives the loop less in
    // some seconds than in others, so their rates are compared loosely here and their
    // counters exactly below, once the container is paused and they no longer move.
    let cpu = [("name", busy.name.as_str())];
    let f1 = read(&files.scrape(), "container_cpu_usage_seconds_total", &cpu).expect("cpu");
    let a1 = read(&api.scrape(), "container_cpu_usage_seconds_total", &cpu).expect("cpu");
    let newer = |e: &Exporter, than: f64| {
        e.wait_for(Duration::from_secs(30), "a sample 10 s newer", |s| {
            read(s, "container_cpu_usage_seconds_total", &cpu)
                .is_some_and(|(_, t)| t >= than + 10.0)
        })
    };
    let f2 = read(
        &newer(&files, f1.1),
        "container_cpu_usage_seconds_total",
        &cpu,
    )
    .expect("cpu");
    let a2 = read(
        &newer(&api, a1.1),
        "container_cpu_usage_seconds_total",
        &cpu,
    )
    .expect("cpu");
    let rate = |(v1, t1): (f64, f64), (v2, t2): (f64, f64)| (v2 - v1) / (t2 - t1);
    let (rf, ra) = (rate(f1, f2), rate(a1, a2));
    eprintln!("cpu rate: cgroup {rf:.4} api {ra:.4} cores");
    for (source, r) in [("cgroup", rf), ("api", ra)] {
        assert!(
            (0.3..0.6).contains(&r),
            "{source} source: --cpus 0.5 busy loop at {r} cores"
        );
    }
    let pf = files
        .scrape()
        .value("dockstat_container_cpu_percent", &cpu)
        .expect("percent");
    let pa = api
        .scrape()
        .value("dockstat_container_cpu_percent", &cpu)
        .expect("percent");
    eprintln!("cpu percent: cgroup {pf:.2} api {pa:.2}");
    for (source, p) in [("cgroup", pf), ("api", pa)] {
        assert!(
            (20.0..65.0).contains(&p),
            "{source} source: cpu percent {p}"
        );
    }
    // Paused, the counter stops: both sources must then tell the same number of seconds.
    d.pause(&busy.name);
    let frozen = |e: &Exporter| {
        let mut last: Option<(f64, f64)> = None;
        let s = e.wait_for(
            Duration::from_secs(30),
            "the paused container's cpu counter unchanged in a newer sample",
            |s| {
                let Some((v, t)) = read(s, "container_cpu_usage_seconds_total", &cpu) else {
                    return false;
                };
                let frozen = last.is_some_and(|(lv, lt)| lv == v && t > lt);
                last = Some((v, t));
                frozen
            },
        );
        read(&s, "container_cpu_usage_seconds_total", &cpu)
            .expect("cpu")
            .0
    };
    let (cf, ca) = (frozen(&files), frozen(&api));
    let diff = (cf - ca).abs() / ca;
    eprintln!(
        "paused cpu counter: cgroup {cf:.6} api {ca:.6} s ({:.4} %)",
        diff * 100.0
    );
    assert!(diff < 0.001, "paused cpu counters: cgroup {cf} vs api {ca}");
    d.run(&["unpause", &busy.name]);

    let (sf, sa) = (files.scrape(), api.scrape());
    // Memory working set and usage of the container holding 30 MiB: within 2 %.
    for family in [
        "container_memory_working_set_bytes",
        "container_memory_usage_bytes",
    ] {
        let f = [("name", mem.name.as_str())];
        let (vf, va) = (
            sf.value(family, &f).expect(family),
            sa.value(family, &f).expect(family),
        );
        let diff = (vf - va).abs() / va;
        eprintln!("{family}: cgroup {vf} api {va} ({:.3} %)", diff * 100.0);
        assert!(vf > 30.0 * MIB && diff < 0.02, "{family}: {vf} vs {va}");
    }
    // Equal, for everything that no longer moves: limits, network, block IO, pids.
    let equal: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "container_spec_memory_limit_bytes",
            vec![("name", &mem.name)],
        ),
        (
            "dockstat_container_memory_percent",
            vec![("name", &mem.name)],
        ),
        ("dockstat_container_pids", vec![("name", &mem.name)]),
        (
            "container_fs_writes_bytes_total",
            vec![("name", &disk.name), ("device", &majmin)],
        ),
        (
            "container_fs_reads_bytes_total",
            vec![("name", &disk.name), ("device", &majmin)],
        ),
    ];
    let mut checked = 0;
    for (family, filter) in &equal {
        let (vf, va) = (sf.value(family, filter), sa.value(family, filter));
        eprintln!("{family} {filter:?}: cgroup {vf:?} api {va:?}");
        assert!(
            vf.is_some(),
            "{family} {filter:?} missing with the cgroup source"
        );
        if family.ends_with("_percent") {
            let (vf, va) = (vf.unwrap_or(0.0), va.unwrap_or(0.0));
            assert!((vf - va).abs() <= 0.02 * va, "{family}: {vf} vs {va}");
        } else {
            assert_eq!(vf, va, "{family} {filter:?}");
        }
        checked += 1;
    }
    // Network counters: equal once both exporters sampled after the last packet (the
    // bridge still carries the odd ARP or neighbour packet, so poll for a quiet moment).
    let families: Vec<String> = ["receive", "transmit"]
        .iter()
        .flat_map(|dir| {
            ["bytes", "packets", "errors", "packets_dropped"]
                .iter()
                .map(move |what| format!("container_network_{dir}_{what}_total"))
        })
        .collect();
    let mut last = String::new();
    let equal_net = poll("network counters equal", Duration::from_secs(30), || {
        let (sf, sa) = (files.scrape(), api.scrape());
        let mut n = 0;
        for c in [&server, &client] {
            for family in &families {
                let f = [("name", c.name.as_str()), ("interface", "eth0")];
                let (vf, va) = (sf.value(family, &f), sa.value(family, &f));
                if vf.is_none() || vf != va {
                    last = format!("{family} of {}: cgroup {vf:?} api {va:?}", c.name);
                    return None;
                }
                n += 1;
            }
            // Only eth0, as Docker reports: no loopback series.
            assert!(
                sf.value(
                    "container_network_receive_bytes_total",
                    &[("name", c.name.as_str()), ("interface", "lo")]
                )
                .is_none(),
                "lo exported for {}",
                c.name
            );
        }
        Some(n)
    });
    eprintln!("network: {equal_net} series equal (last difference seen: {last})");
    checked += equal_net;
    eprintln!("{checked} series equal");
}

#[test]
fn auto_reads_files_only_where_they_are_this_machines() {
    let d = Docker::a();
    let c = d.start("auto", &[], "sleep 600");
    // Default (auto) on the local daemon: files.
    let local = Exporter::start("auto-local", &config("auto", ""));
    let s = local.wait_for(Duration::from_secs(20), "a sample", |s| {
        s.value("container_last_seen", &[("name", &c.name)])
            .is_some()
    });
    let (cg, api) = sources(&s);
    assert!(
        cg >= 1.0 && api == 0.0,
        "local daemon: {cg} cgroup, {api} api"
    );

    // A proc root where the daemon's processes are not (as for a daemon on another
    // machine): the same containers come through the API, with the same figures.
    let empty = temp_dir("no-proc");
    let remote = Exporter::start(
        "auto-remote",
        &config("auto", &format!("  proc_root: {}\n", empty.display())),
    );
    let s = remote.wait_for(Duration::from_secs(20), "a sample", |s| {
        s.value("container_last_seen", &[("name", &c.name)])
            .is_some()
    });
    let (cg, api) = sources(&s);
    assert!(
        cg == 0.0 && api >= 1.0,
        "pids not visible: {cg} cgroup, {api} api"
    );
    assert!(
        s.value("container_memory_usage_bytes", &[("name", &c.name)])
            .is_some_and(|v| v > 0.0)
    );

    // `cgroup` forced where files cannot be read: falls back per container and says so.
    let forced = Exporter::start(
        "cgroup-forced",
        &config("cgroup", &format!("  proc_root: {}\n", empty.display())),
    );
    forced.wait_for(Duration::from_secs(20), "a sample", |s| {
        s.value("container_last_seen", &[("name", &c.name)])
            .is_some()
    });
    assert!(
        forced
            .log_text()
            .contains("cannot read this container's cgroup files here"),
        "{}",
        forced.log_text()
    );
}
