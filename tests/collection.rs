//! Figures at /metrics against the real daemon A: CPU, memory, network, block IO, container
//! appearance and removal, and a promtool check of a real scrape.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn config_a(interval: &str) -> String {
    format!(
        "monitoring:\n  interval: {interval}\n  relist_interval: 60s\nclients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
        env().a_socket
    )
}

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn cpu_usage_growth_matches_the_cgroup_counter() {
    let d = Docker::a();
    let c = d.start("cpu", &["--cpus", "0.2"], "while true; do :; done");
    let exp = Exporter::start("cpu", &config_a("1s"));
    let pid = c.pid();
    let read = |s: &Scrape| {
        let f = [("name", c.name.as_str())];
        Some((
            s.value("container_cpu_usage_seconds_total", &f)?,
            s.value("container_last_seen", &f)?,
        ))
    };
    let s = exp.wait_for(Duration::from_secs(20), "a first CPU sample", |s| {
        read(s).is_some()
    });
    let (v1, t1) = read(&s).expect("sample");
    let (c1, w1) = (cgroup_cpu_seconds(pid), now());

    std::thread::sleep(Duration::from_secs(12));
    let s = exp.wait_for(Duration::from_secs(5), "a sample 12 s later", |s| {
        read(s).is_some_and(|(_, t)| t > t1 + 11.0)
    });
    let (v2, t2) = read(&s).expect("sample");
    let (c2, w2) = (cgroup_cpu_seconds(pid), now());

    let exported = (v2 - v1) / (t2 - t1);
    let cgroup = (c2 - c1) / (w2 - w1);
    let diff = (exported - cgroup).abs() / cgroup;
    eprintln!(
        "cpu rate: exported {exported:.4} cores over {:.1} s, cgroup {cgroup:.4} cores, diff {:.2} %",
        t2 - t1,
        diff * 100.0
    );
    assert!(
        (0.15..0.25).contains(&cgroup),
        "--cpus 0.2 should use ~0.2 cores, cgroup says {cgroup}"
    );
    assert!(
        diff < 0.05,
        "exported rate {exported} vs cgroup rate {cgroup}: {:.2} % apart",
        diff * 100.0
    );

    // The docker CLI percentage of the same container.
    let pct = s
        .value("dockstat_container_cpu_percent", &[("name", &c.name)])
        .expect("cpu percent");
    assert!((15.0..25.0).contains(&pct), "cpu percent {pct}");
    assert_eq!(
        s.value("container_spec_cpu_quota", &[("name", &c.name)]),
        Some(20_000.0)
    );
    assert_eq!(
        s.value("container_spec_cpu_period", &[("name", &c.name)]),
        Some(100_000.0)
    );
    let throttled = s
        .value(
            "container_cpu_cfs_throttled_periods_total",
            &[("name", &c.name)],
        )
        .expect("throttled");
    assert!(throttled > 0.0, "a busy loop under --cpus 0.2 is throttled");
}

/// Docker's own working-set figure from its stats API: usage − inactive file pages.
fn docker_working_set(id: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", "--unix-socket", &env().a_socket])
        .arg(format!(
            "http://docker/containers/{id}/stats?stream=false&one-shot=true"
        ))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl stats failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    let m = &v["memory_stats"];
    let usage = m["usage"].as_f64().expect("usage");
    let inactive = m["stats"]["total_inactive_file"]
        .as_f64()
        .or(m["stats"]["inactive_file"].as_f64())
        .unwrap_or(0.0);
    (usage - inactive).max(0.0)
}

#[test]
fn memory_working_set_matches_dockers_figure() {
    let d = Docker::a();
    let c = d.start(
        "mem",
        &["--memory", "256m"],
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; \
         dd if=/dev/zero of=/cache bs=1M count=30 2>/dev/null; sleep 600",
    );
    let exp = Exporter::start("mem", &config_a("1s"));
    let f = [("name", c.name.as_str())];
    let s = exp.wait_for(Duration::from_secs(20), "working set above 40 MiB", |s| {
        s.value("container_memory_working_set_bytes", &f)
            .is_some_and(|v| v > 40.0 * MIB)
    });
    // Wait for a fresh sample, then compare with the daemon's figure taken right after it.
    let seen = s.value("container_last_seen", &f).expect("last seen");
    let s = exp.wait_for(Duration::from_secs(10), "a fresh sample", |s| {
        s.value("container_last_seen", &f).is_some_and(|t| t > seen)
    });
    let ours = s
        .value("container_memory_working_set_bytes", &f)
        .expect("working set");
    let theirs = docker_working_set(&c.id);
    let diff = (ours - theirs).abs() / theirs;
    eprintln!(
        "working set: exported {ours} docker {theirs} ({:.3} % apart)",
        diff * 100.0
    );
    assert!(diff < 0.02, "exported {ours} vs docker {theirs}");
    assert_eq!(
        s.value("container_spec_memory_limit_bytes", &f),
        Some(256.0 * MIB)
    );
    let usage = s.value("container_memory_usage_bytes", &f).expect("usage");
    assert!(usage >= ours, "usage {usage} < working set {ours}");
    let pct = s
        .value("dockstat_container_memory_percent", &f)
        .expect("percent");
    assert!(
        (15.0..40.0).contains(&pct),
        "~40-70 MiB of 256 MiB, got {pct} %"
    );
}

#[test]
fn bytes_sent_between_two_containers_show_on_both_sides() {
    let d = Docker::a();
    // nc quits when its stdin ends; a sleeping writer keeps the listener's stdin open.
    let server = d.start(
        "netsrv",
        &[],
        "sleep 600 | nc -l -p 5000 > /dev/null; sleep 600",
    );
    let exp = Exporter::start("net", &config_a("1s"));
    let ip = server.ip();
    let client = d.start(
        "netcli",
        &[],
        &format!("sleep 1; dd if=/dev/zero bs=1M count=8 2>/dev/null | nc {ip} 5000; sleep 600"),
    );
    let rx = |s: &Scrape| {
        s.value(
            "container_network_receive_bytes_total",
            &[("name", &server.name), ("interface", "eth0")],
        )
    };
    let tx = |s: &Scrape| {
        s.value(
            "container_network_transmit_bytes_total",
            &[("name", &client.name), ("interface", "eth0")],
        )
    };
    let s = exp.wait_for(Duration::from_secs(30), "8 MiB received and sent", |s| {
        rx(s).is_some_and(|v| v >= 8.0 * MIB) && tx(s).is_some_and(|v| v >= 8.0 * MIB)
    });
    // Neither side counts the payload in the other direction (only ACKs go back).
    let back = s
        .value(
            "container_network_transmit_bytes_total",
            &[("name", &server.name), ("interface", "eth0")],
        )
        .expect("server tx");
    assert!(back < 2.0 * MIB, "server sent {back} bytes");
    let packets = s
        .value(
            "container_network_receive_packets_total",
            &[("name", &server.name), ("interface", "eth0")],
        )
        .expect("rx packets");
    assert!(packets > 100.0, "{packets}");
}

#[test]
fn a_direct_write_shows_in_fs_writes() {
    let d = Docker::a();
    let root = d.run(&["info", "--format", "{{.DockerRootDir}}"]);
    let (majmin, devpath) = block_device_of(std::path::Path::new(&root));
    // On kernels >= 6.9 the cgroup v1 blk-throttle layer (whose counters Docker reports)
    // only accounts IO once a throttle rule exists on the device; a limit far above what
    // the test writes turns accounting on without slowing it. cgroup v2 needs no rule.
    let limit = format!("{devpath}:10gb");
    let c = d.start(
        "blk",
        &["--device-write-bps", &limit],
        "sleep 1; dd if=/dev/zero of=/blk.out bs=1M count=24 oflag=direct 2>/dev/null; sleep 600",
    );
    let exp = Exporter::start("blk", &config_a("1s"));
    let f = [("name", c.name.as_str()), ("device", majmin.as_str())];
    let s = exp.wait_for(Duration::from_secs(30), "24 MiB written", |s| {
        s.value("container_fs_writes_bytes_total", &f)
            .is_some_and(|v| v >= 24.0 * MIB)
    });
    let written = s
        .value("container_fs_writes_bytes_total", &f)
        .expect("writes");
    assert!(written < 40.0 * MIB, "{written}");
}

#[test]
fn a_new_container_appears_within_a_second_and_a_removed_one_vanishes() {
    let d = Docker::a();
    // Long interval and re-list: only the events stream can make it appear in time.
    let exp = Exporter::start("appear", &config_a("5s"));
    exp.wait_for(Duration::from_secs(10), "first collection", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    let c = d.start("appear", &[], "sleep 600");
    let started = docker_time(&c.inspect("{{.State.StartedAt}}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let s = exp.scrape();
        if s.value(
            "dockstat_container_state",
            &[("name", &c.name), ("state", "running")],
        ) == Some(1.0)
        {
            break now();
        }
        assert!(
            Instant::now() < deadline,
            "container never appeared: {}",
            exp.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("appeared {:.3} s after its start", seen - started);
    assert!(
        seen - started <= 1.0,
        "appeared {:.3} s after its start event",
        seen - started
    );

    // Its first sample is taken on the start event too, not at the next 5 s tick.
    let s = exp.wait_for(Duration::from_secs(4), "first CPU sample", |s| {
        s.value("container_cpu_usage_seconds_total", &[("name", &c.name)])
            .is_some()
    });
    eprintln!("first sample {:.3} s after its start", now() - started);
    // Publishing between ticks keeps the last full cycle's duration (it once read 0 under
    // churn).
    let took = s
        .value("dockstat_collection_duration_seconds", &[("host", "a")])
        .expect("collection duration");
    assert!(took > 0.0, "collection duration after an event: {took}");

    c.remove();
    let removed = now();
    let s = exp.wait_for(
        Duration::from_secs(2),
        "series of the removed container to vanish",
        |s| !s.has_container(&c.name),
    );
    eprintln!("vanished {:.3} s after removal", now() - removed);
    assert!(!s.text.contains(&c.id));
}

#[test]
fn promtool_accepts_a_real_scrape_and_openmetrics_is_served() {
    let d = Docker::a();
    let _busy = d.start(
        "lint-busy",
        &["--cpus", "0.1", "--label", "com.example.team=core"],
        "while true; do :; done",
    );
    let exited = d.start("lint-exit", &[], "exit 3");
    let _healthy = d.start(
        "lint-health",
        &["--health-cmd", "true", "--health-interval", "1s"],
        "sleep 600",
    );
    let cfg = format!(
        "{}metrics:\n  label_allowlist: [com.example.team]\n",
        config_a("1s")
    );
    let exp = Exporter::start("lint", &cfg);
    let s = exp.wait_for(Duration::from_secs(20), "exit code and health", |s| {
        s.value(
            "dockstat_container_last_exit_code",
            &[("name", &exited.name)],
        ) == Some(3.0)
            && s.value(
                "dockstat_container_health_status",
                &[("name", &_healthy.name), ("status", "healthy")],
            ) == Some(1.0)
            && s.value(
                "container_cpu_usage_seconds_total",
                &[("name", &_busy.name)],
            )
            .is_some()
    });
    assert_eq!(
        s.value(
            "dockstat_container_state",
            &[("name", &exited.name), ("state", "exited")]
        ),
        Some(1.0)
    );
    let filter = [
        ("name", _busy.name.as_str()),
        ("container_label_com_example_team", "core"),
    ];
    assert_eq!(
        s.find("container_cpu_usage_seconds_total", &filter).count(),
        1,
        "allowlisted label on the series"
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) must be installed");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.text.as_bytes())
        .expect("write");
    let out = promtool.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing but the documented cAdvisor-name exceptions (README).
    assert!(
        dockstat_exporter::families::promtool_unexpected(&report).is_empty(),
        "promtool check metrics: {report}"
    );

    let (status, head, body) = http_get(
        exp.port,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .expect("GET");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(
        body.contains("# TYPE container_cpu_usage_seconds counter\n"),
        "counter family without _total"
    );
    assert!(body.contains("# UNIT container_cpu_usage_seconds seconds\n"));
    assert!(body.contains(&format!(
        "container_cpu_usage_seconds_total{{host=\"a\",client=\"lab\",id=\"{}\"",
        _busy.id
    )));
    let (_, head, _) = http_get(exp.port, "/metrics", None).expect("GET");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
}

/// `curl` against a running exporter: (headers, body as `curl` saved it).
fn curl_metrics(exp: &Exporter, extra: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "-o", "-"])
        .args(extra)
        .arg(format!("http://127.0.0.1:{}/metrics", exp.port))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    (
        String::from_utf8_lossy(&out.stdout[..at]).to_lowercase(),
        out.stdout[at + 4..].to_vec(),
    )
}

#[test]
fn metrics_are_gzipped_for_scrapers_that_accept_it_unless_switched_off() {
    let d = Docker::a();
    let c = d.start("gzip", &[], "sleep 600");
    let sampled = |s: &Scrape| {
        s.value("container_cpu_usage_seconds_total", &[("name", &c.name)])
            .is_some()
    };
    let on = Exporter::start("gzip-on", &config_a("1s"));
    on.wait_for(Duration::from_secs(15), "the container sampled", sampled);

    // Asked for gzip: gzip comes back, and it decodes to the same exposition.
    let (head, body) = curl_metrics(&on, &["-H", "Accept-Encoding: gzip"]);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
        .expect("a valid gzip stream");
    let s = Scrape::parse(&text);
    assert!(sampled(&s), "decoded scrape has the container");
    assert!(text.contains("# TYPE container_cpu_usage_seconds_total counter"));
    let plain = on.scrape().text.len();
    eprintln!(
        "gzip: {} bytes for {} ({plain} plain)",
        body.len(),
        text.len()
    );
    assert!(
        body.len() * 3 < text.len(),
        "gzip {} bytes for {} of text",
        body.len(),
        text.len()
    );
    // Not asked: plain text.
    let (head, body) = curl_metrics(&on, &[]);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(sampled(&Scrape::parse(
        &String::from_utf8(body).expect("utf-8")
    )));

    // Switched off: plain text even when asked.
    let off = Exporter::start(
        "gzip-off",
        &format!("{}metrics:\n  gzip: false\n", config_a("1s")),
    );
    off.wait_for(Duration::from_secs(15), "the container sampled", sampled);
    let (head, body) = curl_metrics(&off, &["-H", "Accept-Encoding: gzip"]);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(sampled(&Scrape::parse(
        &String::from_utf8(body).expect("utf-8")
    )));
}

/// A paused container keeps every figure, from both stats sources: its memory stays, its
/// network and block I/O counters stay, and its CPU counter stops where the frozen cgroup's
/// stops. Unpaused, the counter moves again.
#[test]
fn a_paused_container_keeps_its_figures_and_its_cpu_counter_stops() {
    let d = Docker::a();
    let root = d.run(&["info", "--format", "{{.DockerRootDir}}"]);
    let (_, devpath) = block_device_of(std::path::Path::new(&root));
    // A throttle rule far above what is written turns blkio accounting on (see
    // a_direct_write_shows_in_fs_writes).
    let limit = format!("{devpath}:10gb");
    for source in ["cgroup", "api"] {
        let c = d.start(
            &format!("paused-{source}"),
            &["--cpus", "0.2", "--device-write-bps", &limit],
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; \
             dd if=/dev/zero of=/blk.out bs=1M count=4 oflag=direct 2>/dev/null; \
             while true; do :; done",
        );
        let exp = Exporter::start(
            &format!("paused-{source}"),
            &config_a("1s").replace(
                "  relist_interval: 60s\n",
                &format!("  relist_interval: 60s\n  stats_source: {source}\n"),
            ),
        );
        let f = [("name", c.name.as_str())];
        let figures = [
            "container_cpu_usage_seconds_total",
            "container_memory_usage_bytes",
            "container_memory_working_set_bytes",
            "container_network_receive_bytes_total",
            "container_fs_writes_bytes_total",
            "dockstat_container_pids",
            "container_last_seen",
        ];
        exp.wait_for(
            Duration::from_secs(20),
            "figures of the running container",
            |s| {
                s.value("container_memory_usage_bytes", &f)
                    .is_some_and(|m| m > 20.0 * MIB)
                    && s.find("container_fs_writes_bytes_total", &f)
                        .next()
                        .is_some()
            },
        );
        d.pause(&c.id);
        let frozen = cgroup_cpu_seconds(c.pid());
        let paused = exp.wait_for(Duration::from_secs(10), "state paused", |s| {
            s.value(
                "dockstat_container_state",
                &[("name", c.name.as_str()), ("state", "paused")],
            ) == Some(1.0)
        });
        let seen = paused
            .value("container_last_seen", &f)
            .expect("last seen while paused");
        // Two samples taken while paused, seconds apart.
        let later = exp.wait_for(Duration::from_secs(10), "samples while paused", |s| {
            s.value("container_last_seen", &f)
                .is_some_and(|t| t >= seen + 2.0)
        });
        for family in figures {
            assert!(
                later.find(family, &f).next().is_some(),
                "{source}: {family} of the paused container is gone"
            );
        }
        let cpu = later
            .value("container_cpu_usage_seconds_total", &f)
            .expect("cpu");
        assert!(
            (cpu - frozen).abs() < 1e-3,
            "{source}: CPU counter {cpu} while the frozen cgroup says {frozen}"
        );
        assert!(
            later
                .value("container_memory_usage_bytes", &f)
                .is_some_and(|m| m > 20.0 * MIB),
            "{source}: memory kept"
        );
        d.run(&["unpause", &c.id]);
        exp.wait_for(
            Duration::from_secs(10),
            "the CPU counter moving again",
            |s| {
                s.value("container_cpu_usage_seconds_total", &f)
                    .is_some_and(|v| v > frozen + 0.05)
            },
        );
    }
}

#[test]
fn collectors_run_on_a_thread_of_their_own_and_their_tasks_are_counted() {
    // The serving side alone, without a host: its tasks are the baseline.
    let empty = Exporter::start("tasks-none", "");
    let s = empty.wait_for(Duration::from_secs(20), "the runtime's task count", |s| {
        s.value("dockstat_runtime_tasks", &[]).is_some()
    });
    let base = s.value("dockstat_runtime_tasks", &[]).expect("tasks");

    let exp = Exporter::start("tasks-one", &config_a("1s"));
    let s = exp.wait_for(Duration::from_secs(30), "host a collected", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    let pid = exp.pid().expect("running");
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect();
    assert!(
        threads.iter().any(|t| t == "collection"),
        "no collection thread among {threads:?}"
    );
    // The host's collector and the connections of its event stream and calls run on that
    // thread's runtime, and dockstat_runtime_tasks counts them with the serving side's.
    let tasks = s.value("dockstat_runtime_tasks", &[]).expect("tasks");
    assert!(
        tasks >= base + 2.0,
        "{tasks} tasks with one host against {base} without"
    );
}
