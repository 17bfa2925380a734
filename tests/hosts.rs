//! Host failures against real daemons: daemon B killed and restarted, TLS with the wrong CA,
//! a missing socket, a host that accepts connections and never answers, a host that stops
//! answering in the middle of a run. A failing host is reported as such and never holds up
//! the others or a scrape.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use proxy::Proxy;

/// Held by the tests that use daemon B: one of them stops it.
static DAEMON_B: Mutex<()> = Mutex::new(());

fn daemon_b() -> MutexGuard<'static, ()> {
    DAEMON_B
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn killing_daemon_b_marks_it_down_while_a_keeps_advancing_and_b_recovers() {
    let _b_is_ours = daemon_b();
    let a = Docker::a();
    let _b = Docker::b();
    let busy = a.start("failover", &["--cpus", "0.1"], "while true; do :; done");
    let cfg = format!(
        "monitoring:\n  interval: 1s\n  max_retries: 2\n  retry_delay: 500ms\n  retry_max_delay: 3s\n  request_timeout: 2s\n\
         clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n      - name: b\n        address: tcp://{}\n",
        env().a_socket,
        env().b_tcp
    );
    let exp = Exporter::start("failover", &cfg);
    exp.wait_for(Duration::from_secs(15), "both hosts up", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
            && s.value("dockstat_host_up", &[("host", "b")]) == Some(1.0)
    });

    let _restart = RestartB;
    test_env("stop-b");
    // The first failure may be the open connections breaking (`connection`); the
    // reconnect attempts after it are refused: wait for both.
    let s = exp.wait_for(
        Duration::from_secs(15),
        "host b down, its reconnects counted as connection_refused",
        |s| {
            s.value("dockstat_host_up", &[("host", "b")]) == Some(0.0)
                && s.value(
                    "dockstat_docker_errors_total",
                    &[("host", "b"), ("kind", "connection_refused")],
                )
                .is_some_and(|n| n >= 1.0)
        },
    );
    assert_eq!(s.value("dockstat_host_up", &[("host", "a")]), Some(1.0));
    assert_eq!(
        s.value("dockstat_collection_success", &[("host", "b")]),
        Some(0.0)
    );
    // And logged as such.
    exp.wait_for_log(Duration::from_secs(5), "kind=connection_refused");

    // A's samples keep advancing while B is down.
    let last_seen = |s: &Scrape| {
        s.value("container_last_seen", &[("name", &busy.name)])
            .expect("a's container sampled")
    };
    let before = last_seen(&s);
    let s = exp.wait_for(Duration::from_secs(10), "a's samples advancing", |s| {
        last_seen(s) >= before + 2.0
    });
    assert_eq!(s.value("dockstat_host_up", &[("host", "b")]), Some(0.0));

    test_env("start-b");
    let back = Instant::now();
    exp.wait_for(Duration::from_secs(10), "host b up again", |s| {
        s.value("dockstat_host_up", &[("host", "b")]) == Some(1.0)
    });
    let took = back.elapsed();
    eprintln!("b recovered {took:?} after its daemon answered again");
    // The retry delay is capped at 3 s; one attempt then takes well under a second.
    assert!(
        took <= Duration::from_secs(5),
        "recovered after {took:?}, beyond the 3 s backoff cap"
    );
}

#[test]
fn tls_wrong_ca_missing_socket_and_hung_host_are_classified_and_isolated() {
    let e = env();
    let c = Docker::c();
    let on_c = c.start("tls", &[], "sleep 600");
    // Accepts connections and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_addr = hung.local_addr().expect("addr");
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hung.incoming().flatten() {
            held.push(conn);
        }
    });
    let certs = e.certs.display();
    let cfg = format!(
        "monitoring:\n  interval: 1s\n  request_timeout: 2s\n  retry_delay: 1s\n  retry_max_delay: 2s\n\
         clients:\n  - name: lab\n    hosts:\n\
         \x20     - name: a\n        address: unix://{a}\n\
         \x20     - name: c\n        address: tcp://{c}\n        tls: {{ca: {certs}/ca.pem, cert: {certs}/cert.pem, key: {certs}/key.pem}}\n\
         \x20     - name: c-wrong-ca\n        address: tcp://localhost:{cport}\n        tls: {{ca: {certs}/wrong-ca.pem, cert: {certs}/cert.pem, key: {certs}/key.pem}}\n\
         \x20     - name: missing\n        address: unix:///run/dockstat-test/no-such-daemon.sock\n\
         \x20     - name: hung\n        address: tcp://{hung_addr}\n",
        a = e.a_socket,
        c = e.c_tls,
        cport = e.c_tls.rsplit_once(':').expect("port").1,
    );
    let exp = Exporter::start("tls", &cfg);
    let s = exp.wait_for(Duration::from_secs(20), "every failure classified", |s| {
        let errors = |host: &str, kind: &str| {
            s.value(
                "dockstat_docker_errors_total",
                &[("host", host), ("kind", kind)],
            )
            .unwrap_or(0.0)
        };
        s.value(
            "container_cpu_usage_seconds_total",
            &[("host", "c"), ("name", &on_c.name)],
        )
        .is_some()
            && errors("c-wrong-ca", "tls") >= 1.0
            && errors("missing", "socket_not_found") >= 1.0
            && errors("hung", "timeout") >= 1.0
    });
    for (host, up) in [
        ("a", 1.0),
        ("c", 1.0),
        ("c-wrong-ca", 0.0),
        ("missing", 0.0),
        ("hung", 0.0),
    ] {
        assert_eq!(
            s.value("dockstat_host_up", &[("host", host)]),
            Some(up),
            "dockstat_host_up{{host={host}}}"
        );
    }
    // Each failure is logged once classified, on a line of the host's collector span.
    let t = Duration::from_secs(5);
    let unreachable = |host: &str, kind: &str| {
        let span = format!("collector{{host={host} client=lab}}");
        let what = format!("host unreachable kind={kind}");
        exp.wait_for_log_line(t, &[&span, &what])
    };
    unreachable("c-wrong-ca", "tls");
    // The TLS cause is in the log.
    exp.wait_for_log(t, "invalid peer certificate");
    unreachable("missing", "socket_not_found");
    unreachable("hung", "timeout");

    // Every host has either been collected or has a recorded error: ready.
    let (status, body) = exp.get("/readyz");
    assert_eq!(status, 200, "{body}");

    // While the hung host keeps timing out, scrapes stay fast and C keeps being sampled.
    let seen = |s: &Scrape| {
        s.value("container_last_seen", &[("name", &on_c.name)])
            .expect("c sampled")
    };
    let before = seen(&s);
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let t = Instant::now();
        exp.scrape();
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = exp.scrape();
    eprintln!("slowest scrape with a hung host: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a scrape took {slowest:?}"
    );
    assert!(
        seen(&s) >= before + 2.5,
        "c kept advancing: {before} -> {}",
        seen(&s)
    );
}

/// Connections to a TLS host are kept from call to call: a mutual-TLS handshake for every
/// stats call would cost the exporter ~2.6× its CPU and dockerd ~30 % more of its own
/// (BENCHMARKS.md, "Connection reuse on a TLS host"). Daemon C through a forwarder that
/// counts connections; the stats calls come from the exporter's own request counter.
#[test]
fn tls_connections_are_kept_from_call_to_call() {
    let e = env();
    let c = Docker::c();
    let on_c: Vec<Container> = (0..3)
        .map(|i| c.start(&format!("keep{i}"), &[], "sleep 600"))
        .collect();
    let proxy = Proxy::start(&e.c_tls);
    let certs = e.certs.display();
    // The API source (C is on this machine: `auto` would read its cgroup files), two calls
    // at a time: after the first cycles, new connections are only needed when more calls
    // than before overlap (stats and background inspects, as other tests' containers on C
    // come and go), a few at most; without keeping, one or more per call.
    let cfg = format!(
        "monitoring:\n  interval: 1s\n  stats_source: api\n  stats_concurrency: 2\n\
         clients:\n  - name: lab\n    hosts:\n\
         \x20     - name: c\n        address: tcp://127.0.0.1:{port}\n        tls: {{ca: {certs}/ca.pem, cert: {certs}/cert.pem, key: {certs}/key.pem}}\n",
        port = proxy.port,
    );
    let exp = Exporter::start("tls-keep", &cfg);
    let calls = |s: &Scrape| {
        s.value(
            "dockstat_docker_request_duration_seconds_count",
            &[("host", "c"), ("endpoint", "container_stats")],
        )
        .unwrap_or(0.0)
    };
    // Warmed up: every container sampled, the streams and the first calls' connections open.
    let s = exp.wait_for(
        Duration::from_secs(60),
        "every container on c sampled",
        |s| {
            calls(s) >= 10.0
                && on_c.iter().all(|k| {
                    s.value("container_cpu_usage_seconds_total", &[("name", &k.name)])
                        .is_some()
                })
        },
    );
    let (warm_calls, warm_accepted) = (calls(&s), proxy.accepted());
    let s = exp.wait_for(Duration::from_secs(60), "40 more stats calls on c", |s| {
        calls(s) >= warm_calls + 40.0
    });
    let accepted = proxy.accepted();
    assert!(
        accepted <= warm_accepted + 4,
        "{} new TLS connections for {} stats calls (and the other calls): not kept",
        accepted - warm_accepted,
        calls(&s) - warm_calls
    );
}

/// A daemon that stops answering in the middle of a run (connections stay open, nothing comes
/// back) is marked down within about one request deadline and a ping, whichever source the
/// stats come from: not after a deadline per running container (the API source sampling one
/// at a time would take 10 × 2 s here), nor only at the next re-list (the cgroup source makes
/// no stats calls at all). Thawed, it comes back.
#[test]
fn host_that_hangs_mid_run_is_marked_down_within_a_deadline_and_a_ping() {
    let _b_is_ours = daemon_b();
    let e = env();
    let b = Docker::b();
    let running: Vec<Container> = (0..10)
        .map(|i| b.start(&format!("hang{i}"), &[], "sleep 600"))
        .collect();
    let proxy = Proxy::start(&e.b_tcp);
    let cfg = |source: &str| {
        format!(
            "monitoring:\n  interval: 1s\n  request_timeout: 2s\n  stats_concurrency: 1\n\
             \x20 stats_source: {source}\n  retry_delay: 1s\n  retry_max_delay: 2s\n\
             clients:\n  - name: lab\n    hosts:\n      - name: b\n        address: tcp://127.0.0.1:{}\n",
            proxy.port
        )
    };
    let exporters = [
        ("api", Exporter::start("hang-api", &cfg("api"))),
        ("auto", Exporter::start("hang-auto", &cfg("auto"))),
    ];
    let up = |s: &Scrape| s.value("dockstat_host_up", &[("host", "b")]);
    let sampled = |s: &Scrape| {
        running.iter().all(|c| {
            s.value("container_cpu_usage_seconds_total", &[("name", &c.name)])
                .is_some()
        })
    };
    for (source, exp) in &exporters {
        let s = exp.wait_for(Duration::from_secs(30), "all ten sampled", |s| {
            up(s) == Some(1.0) && sampled(s)
        });
        let want = if *source == "api" { "api" } else { "cgroup" };
        assert_eq!(
            s.value("dockstat_stats_source_containers", &[("source", want)]),
            Some(10.0),
            "{source}: all ten from {want}"
        );
    }

    proxy.freeze();
    let frozen = Instant::now();
    let mut down_after = Vec::new();
    for (source, exp) in &exporters {
        exp.wait_for(Duration::from_secs(30), "host b down while frozen", |s| {
            up(s) == Some(0.0)
        });
        let took = frozen.elapsed();
        eprintln!("stats_source {source}: down {took:?} after the freeze");
        down_after.push((source, took));
    }
    for (source, took) in down_after {
        // At most: the next tick (1 s), one deadline (2 s), the ping's deadline (2 s).
        assert!(
            took <= Duration::from_secs(8),
            "stats_source {source}: marked down only {took:?} after the daemon hung"
        );
    }

    proxy.thaw();
    for (source, exp) in &exporters {
        exp.wait_for(Duration::from_secs(20), "host b back after the thaw", |s| {
            up(s) == Some(1.0) && sampled(s)
        });
        eprintln!("stats_source {source}: back up");
    }
}

/// Every enabled host has `dockstat_host_up` from the first scrape on, 0 until its first
/// answer (a hung host never gives one), so an alert on `== 0` fires for a host that never
/// came up; `/readyz` waits for it meanwhile. A host whose client's monitoring is stopped
/// stays visible as `dockstat_host_monitoring 0`, and comes back when it is started.
#[test]
fn every_host_is_visible_from_the_first_scrape_and_a_stopped_one_stays_visible() {
    let hung = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_addr = hung.local_addr().expect("addr");
    let cfg = format!(
        "monitoring:\n  interval: 1s\n  request_timeout: 5s\n\
         clients:\n  - name: lab\n    hosts:\n      - name: hung\n        address: tcp://{hung_addr}\n\
         \x20 - name: other\n    hosts:\n      - name: a\n        address: unix://{}\n",
        env().a_socket
    );
    let exp = Exporter::start("first-scrape", &cfg);
    // The very first scrape, while the hung host's first call has not timed out yet.
    let s = exp.scrape();
    assert_eq!(
        s.value("dockstat_host_up", &[("host", "hung")]),
        Some(0.0),
        "{}",
        s.text
    );
    assert_eq!(
        s.value("dockstat_host_monitoring", &[("host", "hung")]),
        Some(1.0)
    );
    assert_eq!(
        s.value("dockstat_collection_success", &[("host", "hung")]),
        Some(0.0)
    );
    let (status, body) = exp.get("/readyz");
    assert_eq!(status, 503, "the hung host has not been tried yet: {body}");
    assert!(body.contains("lab/hung"), "{body}");

    // Stop client `other` through the API: its host stays, as not monitored.
    let other = exp.wait_for(Duration::from_secs(15), "host a up", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    assert_eq!(
        other.value("dockstat_host_monitoring", &[("host", "a")]),
        Some(1.0)
    );
    let (status, clients) = api(exp.admin_port, "GET", "/api/v1/clients", None, None);
    assert_eq!(status, 200, "{clients}");
    let id = clients
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "other"))
        .and_then(|c| c["id"].as_i64())
        .expect("client other");
    let path = format!("/api/v1/clients/{id}/monitoring/stop");
    let (status, body) = api(exp.admin_port, "POST", &path, None, None);
    assert_eq!(status, 200, "{body}");
    let s = exp.wait_for(Duration::from_secs(10), "a not monitored", |s| {
        s.value("dockstat_host_monitoring", &[("host", "a")]) == Some(0.0)
    });
    assert_eq!(s.value("dockstat_host_up", &[("host", "a")]), None);
    assert!(
        s.find("container_cpu_usage_seconds_total", &[("host", "a")])
            .next()
            .is_none(),
        "no figures of a host not collected"
    );
    let path = format!("/api/v1/clients/{id}/monitoring/start");
    let (status, body) = api(exp.admin_port, "POST", &path, None, None);
    assert_eq!(status, 200, "{body}");
    exp.wait_for(Duration::from_secs(15), "a collected again", |s| {
        s.value("dockstat_host_monitoring", &[("host", "a")]) == Some(1.0)
            && s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    drop(hung);
}
