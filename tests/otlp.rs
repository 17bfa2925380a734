//! OTLP push against a real receiver (tests/common/otlp_receiver.rs) and the real daemon A:
//! the exported figures against /metrics, gRPC and HTTP/protobuf, gzip, headers, TLS and
//! mutual TLS, an unreachable receiver, container restarts, the final flush on SIGTERM,
//! how the receiver's answers (partial success, HTTP and gRPC errors, Retry-After) are
//! counted, classified and retried, and exports split into bounded requests.

mod common;
#[path = "common/otlp_receiver.rs"]
mod otlp_receiver;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use dockstat_exporter::families::FAMILIES;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric};
use otlp_receiver::{Answer, Point, Protocol, Received, Receiver, Tls};

const MIB: f64 = 1024.0 * 1024.0;
const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;

/// The exporter configuration after listen/database: daemon A as host `a` of client `lab`,
/// collection every second, and the given `otlp:` body (indented by two spaces).
fn config(otlp: &str) -> String {
    format!(
        "monitoring:\n  interval: 1s\n  relist_interval: 60s\notlp:\n  enabled: true\n{otlp}clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
        env().a_socket
    )
}

/// The `otlp:` body for `endpoint` over `protocol` pushing every `interval`; `extra` is
/// appended as is (two-space indented lines).
fn otlp(endpoint: &str, protocol: &str, interval: &str, extra: &str) -> String {
    format!(
        "  endpoint: {endpoint}\n  protocol: {protocol}\n  interval: {interval}\n  timeout: 2s\n{extra}"
    )
}

/// Same value, allowing for the text rendering of floats at /metrics.
fn close(a: f64, b: f64) -> bool {
    let d = (a - b).abs();
    d <= 1e-6 || d <= 1e-9 * a.abs().max(b.abs())
}

fn assert_close(what: &str, otlp: f64, prom: f64) {
    assert!(
        close(otlp, prom),
        "{what}: OTLP {otlp} vs /metrics {prom} (diff {})",
        otlp - prom
    );
}

/// Whether a nanosecond timestamp is `secs` (unix seconds) within 1 ms.
fn same_ns(ns: u64, secs: f64) -> bool {
    (ns as f64 - secs * 1e9).abs() <= 1e6
}

fn by_container(c: &Container) -> [(&'static str, &str); 1] {
    [("container.id", c.id.as_str())]
}

/// The container's `cpu.mode=user` CPU time point in an export.
fn user_cpu(r: &Received, c: &Container) -> Option<Point> {
    r.point(
        "container.cpu.time",
        &[("container.id", &c.id), ("cpu.mode", "user")],
    )
}

/// A scrape value that must be there.
fn must(s: &Scrape, name: &str, filter: &[(&str, &str)]) -> f64 {
    s.value(name, filter)
        .unwrap_or_else(|| panic!("/metrics has no {name} {filter:?}"))
}

fn otlp_outcome(s: &Scrape, outcome: &str) -> f64 {
    s.value("dockstat_otlp_exports_total", &[("outcome", outcome)])
        .unwrap_or(0.0)
}

/// The one `dockstat_otlp_last_error` series' kind, if there is one; panics on several.
fn last_error_kind(s: &Scrape) -> Option<String> {
    let all: Vec<&Sample> = s.find("dockstat_otlp_last_error", &[]).collect();
    assert!(
        all.len() <= 1,
        "dockstat_otlp_last_error must be one series: {all:?}"
    );
    all.first().map(|x| {
        assert_eq!(x.value, 1.0, "dockstat_otlp_last_error value: {x:?}");
        x.labels.get("kind").cloned().unwrap_or_default()
    })
}

/// Invariants every export must hold: the exporter's resource (when in this request)
/// named after it, one scope named after the exporter, each resource either the
/// exporter's, a Docker host's or a container's (with the attributes the semantic
/// conventions give them, none of them repeated on the points), metric names unique within
/// a resource and with units, Sums cumulative and monotonic with 0 < start <= time, every
/// point timestamped, histograms consistent.
fn check_export_shape(r: &Received) {
    assert!(r.decode_error.is_none(), "undecodable export: {r:?}");
    let has_service = r.request.resource_metrics.iter().any(|rm| {
        rm.resource
            .as_ref()
            .is_some_and(|res| otlp_receiver::attr_text(&res.attributes, "service.name").is_some())
    });
    if has_service {
        assert_eq!(
            r.resource_attr("service.name").as_deref(),
            Some("dockstat-exporter"),
            "service.name"
        );
        assert_eq!(
            r.resource_attr("service.version").as_deref(),
            Some(env!("CARGO_PKG_VERSION")),
            "service.version"
        );
        assert!(
            r.resource_attr("service.instance.id")
                .is_some_and(|v| !v.is_empty()),
            "service.instance.id missing or empty"
        );
    }
    for name in r.scope_names() {
        assert_eq!(name, "dockstat-exporter");
    }
    const IDENTITY: [&str; 5] = [
        "container.id",
        "container.name",
        "host.name",
        "dockstat.client",
        "dockstat.host",
    ];
    let mut names = std::collections::BTreeSet::new();
    for rm in &r.request.resource_metrics {
        assert_eq!(rm.scope_metrics.len(), 1, "one scope per resource");
        let res = otlp_receiver::attr_map(rm.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        if res.contains_key("service.name") {
            assert!(
                !res.keys()
                    .any(|k| k.starts_with("container.") || k.starts_with("dockstat.")),
                "the exporter's resource carries no host or container: {res:?}"
            );
        } else if res.contains_key("container.id") {
            for k in [
                "container.name",
                "container.image.name",
                "container.image.tags",
                "container.runtime.name",
                "host.name",
                "dockstat.client",
                "dockstat.host",
            ] {
                assert!(
                    res.get(k).is_some_and(|v| !v.is_empty()),
                    "container resource without {k}: {res:?}"
                );
            }
            assert!(
                !res["container.name"].starts_with('/'),
                "container.name with a slash: {res:?}"
            );
            assert!(
                !res["container.image.name"].contains(':')
                    || res["container.image.name"].starts_with("sha256:"),
                "container.image.name with its tag: {res:?}"
            );
        } else {
            for k in ["dockstat.client", "dockstat.host"] {
                assert!(
                    res.get(k).is_some_and(|v| !v.is_empty()),
                    "host resource without {k}: {res:?}"
                );
            }
        }
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            assert!(
                names.insert((format!("{res:?}"), m.name.clone())),
                "metric {} twice in one resource",
                m.name
            );
        }
    }
    for (_, m) in r.metrics_in_resources() {
        assert!(!m.unit.is_empty(), "{} has no unit", m.name);
        let points: Vec<Point> = match &m.data {
            Some(metric::Data::Sum(s)) => {
                assert_eq!(
                    s.aggregation_temporality, CUMULATIVE,
                    "{} must be cumulative",
                    m.name
                );
                assert!(s.is_monotonic, "{} must be monotonic", m.name);
                for p in &s.data_points {
                    assert!(
                        p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano,
                        "{}: start {} time {} ({:?})",
                        m.name,
                        p.start_time_unix_nano,
                        p.time_unix_nano,
                        p.attributes
                    );
                }
                s.data_points.iter().map(Point::of).collect()
            }
            Some(metric::Data::Gauge(g)) => g.data_points.iter().map(Point::of).collect(),
            Some(metric::Data::Histogram(h)) => {
                assert_eq!(h.aggregation_temporality, CUMULATIVE, "{}", m.name);
                for p in &h.data_points {
                    assert_eq!(
                        p.bucket_counts.len(),
                        p.explicit_bounds.len() + 1,
                        "{}: buckets vs bounds",
                        m.name
                    );
                    assert_eq!(
                        p.bucket_counts.iter().sum::<u64>(),
                        p.count,
                        "{}: bucket counts add up to count",
                        m.name
                    );
                    assert!(
                        p.explicit_bounds.windows(2).all(|w| w[0] < w[1]),
                        "{}: bounds increase",
                        m.name
                    );
                    assert!(p.time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
                    for k in IDENTITY {
                        assert!(
                            otlp_receiver::attr_text(&p.attributes, k).is_none(),
                            "{}: {k} on a point, not its resource",
                            m.name
                        );
                    }
                }
                Vec::new()
            }
            other => panic!("{}: unexpected data {other:?}", m.name),
        };
        for p in points {
            assert!(p.time_unix_nano > 0, "{}: no time: {p:?}", m.name);
            assert!(p.value.is_finite(), "{}: value {p:?}", m.name);
            for k in IDENTITY {
                assert!(
                    p.attr(k).is_none(),
                    "{}: {k} on a point, not its resource: {p:?}",
                    m.name
                );
            }
        }
    }
}

/// The metric's kind, temporality/monotonicity and unit.
fn assert_sum(r: &Received, name: &str, unit: &str) {
    let m = r
        .metric(name)
        .unwrap_or_else(|| panic!("export has no {name}"));
    assert_eq!(m.unit, unit, "{name} unit");
    match &m.data {
        Some(metric::Data::Sum(s)) => {
            assert_eq!(s.aggregation_temporality, CUMULATIVE, "{name} temporality");
            assert!(s.is_monotonic, "{name} monotonic");
        }
        other => panic!("{name} must be a Sum, is {other:?}"),
    }
}

fn assert_gauge(r: &Received, name: &str, unit: &str) {
    let m = r
        .metric(name)
        .unwrap_or_else(|| panic!("export has no {name}"));
    assert_eq!(m.unit, unit, "{name} unit");
    assert!(
        matches!(m.data, Some(metric::Data::Gauge(_))),
        "{name} must be a Gauge, is {:?}",
        m.data
    );
}

#[test]
fn grpc_export_matches_metrics() {
    let d = Docker::a();
    // A direct write first, for block IO (see tests/collection.rs on the throttle rule).
    let root = d.run(&["info", "--format", "{{.DockerRootDir}}"]);
    let (majmin, devpath) = block_device_of(std::path::Path::new(&root));
    let c = d.start(
        "otlpcpu",
        &["--cpus", "0.5", "--device-write-bps", &format!("{devpath}:10gb")],
        "dd if=/dev/zero of=/blk.out bs=1M count=4 oflag=direct 2>/dev/null; while true; do :; done",
    );
    let rx = Receiver::grpc(free_port());
    let exp = Exporter::start(
        "otlp-grpc",
        &config(&otlp(&rx.endpoint(), "grpc", "1s", "")),
    );

    let first = rx.wait_until(
        Duration::from_secs(30),
        "an export with the container's CPU time",
        |e| e.iter().any(|r| user_cpu(r, &c).is_some()),
    );
    eprintln!(
        "first export with the container after {} exports",
        first.len()
    );

    // Find an export carrying the very sample a scrape shows: its CPU time point is
    // stamped with the scrape's container_last_seen. (Not the first sample: CPU percent
    // needs two; and one with the write done.)
    let f = [("name", c.name.as_str())];
    let deadline = Instant::now() + Duration::from_secs(40);
    let (s, r) = loop {
        let s = exp.scrape();
        let seen = s.value("container_last_seen", &f);
        let ready = s.value("dockstat_container_cpu_percent", &f).is_some()
            && s.value(
                "container_fs_writes_bytes_total",
                &[("name", &c.name), ("device", &majmin)],
            )
            .is_some_and(|v| v >= 4.0 * MIB);
        if let Some(seen) = seen.filter(|_| ready) {
            let same =
                |r: &Received| user_cpu(r, &c).is_some_and(|p| same_ns(p.time_unix_nano, seen));
            if let Some(all) = rx.try_wait_until(Duration::from_secs(3), |e| e.iter().any(same)) {
                let r = all.into_iter().find(same).expect("found");
                break (s, r);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no export carried the sample of a scrape within 40 s; last scrape's last_seen {:?}, last export's point {:?}",
            s.value("container_last_seen", &f),
            rx.exports().last().and_then(|r| user_cpu(r, &c))
        );
    };
    let seen = must(&s, "container_last_seen", &f);
    eprintln!(
        "matched sample: last_seen {seen:.6}, export received {:.3} s after it",
        r.at.duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
            - seen
    );

    check_export_shape(&r);
    assert!(
        !r.gzip,
        "compression defaults to none, got grpc-encoding gzip"
    );

    // Kinds and units.
    assert_sum(&r, "container.cpu.time", "s");
    assert_sum(&r, "dockstat.container.cpu.time.total", "s");
    assert_sum(&r, "container.network.io", "By");
    assert_sum(&r, "dockstat.container.network.packets", "{packet}");
    assert_sum(&r, "process.cpu.time", "s");
    assert_gauge(&r, "container.memory.usage", "By");
    assert_gauge(&r, "dockstat.container.memory.working_set", "By");
    assert_gauge(&r, "container.cpu.usage", "{cpu}");
    assert_gauge(&r, "dockstat.container.start_time", "s");
    assert_gauge(&r, "container.uptime", "s");
    assert_gauge(&r, "dockstat.container.state", "1");
    assert_gauge(&r, "dockstat.host.up", "1");
    assert_gauge(&r, "system.cpu.logical.count", "{cpu}");
    assert_gauge(&r, "process.memory.usage", "By");
    let hist = r
        .metric("dockstat.docker.request.duration")
        .expect("dockstat.docker.request.duration");
    assert_eq!(hist.unit, "s");
    assert!(
        matches!(hist.data, Some(metric::Data::Histogram(_))),
        "dockstat.docker.request.duration must be a Histogram"
    );

    // The container's attributes, against its /metrics labels.
    let user = user_cpu(&r, &c).expect("user CPU point");
    let system = r
        .point(
            "container.cpu.time",
            &[("container.id", &c.id), ("cpu.mode", "system")],
        )
        .expect("system CPU point");
    let prom = s
        .find("container_cpu_user_seconds_total", &f)
        .next()
        .expect("container_cpu_user_seconds_total")
        .clone();
    let (image_name, image_tag) = prom.labels["image"]
        .rsplit_once(':')
        .expect("the test image has a tag");
    let daemon_name = d.run(&["info", "--format", "{{.Name}}"]).trim().to_string();
    assert!(
        !daemon_name.is_empty(),
        "docker info names the daemon's host"
    );
    // One resource per container, holding all its points and carrying its identity.
    let mine: Vec<_> = r
        .request
        .resource_metrics
        .iter()
        .filter(|rm| {
            rm.resource.as_ref().is_some_and(|res| {
                otlp_receiver::attr_text(&res.attributes, "container.id").as_deref()
                    == Some(c.id.as_str())
            })
        })
        .collect();
    assert_eq!(mine.len(), 1, "one resource for the container");
    let in_resource: usize = mine[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| otlp_receiver::number_points(m).len())
        .sum();
    assert!(
        in_resource >= 10,
        "the container's points are under its resource"
    );
    let expected: BTreeMap<&str, &str> = [
        ("container.id", c.id.as_str()),
        ("container.name", c.name.as_str()),
        ("container.image.name", image_name),
        ("container.image.tags", image_tag),
        ("container.runtime.name", "docker"),
        ("host.name", daemon_name.as_str()),
        ("dockstat.client", "lab"),
        ("dockstat.host", "a"),
    ]
    .into();
    for (k, v) in &expected {
        assert_eq!(user.attr(k), Some(*v), "user point attribute {k}: {user:?}");
        assert_eq!(system.attr(k), Some(*v), "system point attribute {k}");
    }
    assert_eq!(prom.labels["id"], c.id, "/metrics id label is the full id");

    // Same sample, same figures.
    assert_close(
        "user CPU",
        user.value,
        must(&s, "container_cpu_user_seconds_total", &f),
    );
    assert_close(
        "system CPU",
        system.value,
        must(&s, "container_cpu_system_seconds_total", &f),
    );
    assert!(system.time_unix_nano == user.time_unix_nano);
    let total = r
        .point("dockstat.container.cpu.time.total", &by_container(&c))
        .expect("total CPU point");
    assert_close(
        "total CPU",
        total.value,
        must(&s, "container_cpu_usage_seconds_total", &f),
    );
    assert!(
        user.value > 0.0 && total.value >= user.value,
        "a busy container has CPU time: {user:?} {total:?}"
    );
    let mem = r
        .point("container.memory.usage", &by_container(&c))
        .expect("memory point");
    assert_close(
        "memory usage",
        mem.value,
        must(&s, "container_memory_usage_bytes", &f),
    );
    let ws = r
        .point("dockstat.container.memory.working_set", &by_container(&c))
        .expect("working set point");
    assert_close(
        "working set",
        ws.value,
        must(&s, "container_memory_working_set_bytes", &f),
    );
    let usage = r
        .point("container.cpu.usage", &by_container(&c))
        .expect("cpu usage point");
    let pct = must(&s, "dockstat_container_cpu_percent", &f);
    assert_close("cpu usage x 100", usage.value * 100.0, pct);
    assert!(
        (0.3..0.7).contains(&usage.value),
        "--cpus 0.5 busy loop: container.cpu.usage {}",
        usage.value
    );

    // Network, per interface and direction.
    let mut interfaces = 0;
    for (family, otlp_name, direction) in [
        (
            "container_network_receive_bytes_total",
            "container.network.io",
            "receive",
        ),
        (
            "container_network_transmit_bytes_total",
            "container.network.io",
            "transmit",
        ),
        (
            "container_network_receive_packets_total",
            "dockstat.container.network.packets",
            "receive",
        ),
        (
            "container_network_transmit_packets_total",
            "dockstat.container.network.packets",
            "transmit",
        ),
    ] {
        let series: Vec<Sample> = s.find(family, &f).cloned().collect();
        assert!(
            !series.is_empty(),
            "/metrics has no {family} for the container"
        );
        for x in series {
            let iface = x.labels["interface"].as_str();
            let p = r
                .point(
                    otlp_name,
                    &[
                        ("container.id", &c.id),
                        ("network.io.direction", direction),
                        ("network.interface.name", iface),
                    ],
                )
                .unwrap_or_else(|| panic!("no {otlp_name} {direction} {iface} point"));
            assert_close(
                &format!("{otlp_name} {direction} {iface}"),
                p.value,
                x.value,
            );
            assert!(same_ns(p.time_unix_nano, seen), "{otlp_name}: sample time");
            interfaces += 1;
        }
    }
    eprintln!("network: {interfaces} series compared");

    // Block IO on the Docker root's disk.
    let written = r
        .point(
            "container.disk.io",
            &[
                ("container.id", &c.id),
                ("disk.io.direction", "write"),
                ("system.device", &majmin),
            ],
        )
        .expect("disk write point");
    assert_sum(&r, "container.disk.io", "By");
    assert_close(
        "disk writes",
        written.value,
        must(
            &s,
            "container_fs_writes_bytes_total",
            &[("name", &c.name), ("device", &majmin)],
        ),
    );
    assert!(same_ns(
        written.start_time_unix_nano,
        must(&s, "container_start_time_seconds", &f)
    ));
    eprintln!("disk writes on {majmin}: {:.1} MiB", written.value / MIB);

    // Start time: the counters start when the container started.
    let started = must(&s, "container_start_time_seconds", &f);
    let inspected = docker_time(&c.inspect("{{.State.StartedAt}}"));
    assert!(
        (started - inspected).abs() < 1e-3,
        "/metrics start {started} vs StartedAt {inspected}"
    );
    for p in [&user, &system, &total] {
        assert!(
            same_ns(p.start_time_unix_nano, started),
            "start_time_unix_nano {} vs container_start_time_seconds {started}",
            p.start_time_unix_nano
        );
        assert!(same_ns(p.time_unix_nano, seen), "time vs last_seen {seen}");
    }
    let start_gauge = r
        .point("dockstat.container.start_time", &by_container(&c))
        .expect("start time gauge");
    assert_close("start time", start_gauge.value, started);
    let uptime = r
        .point("container.uptime", &by_container(&c))
        .expect("uptime gauge");
    let expected_uptime = uptime.time_unix_nano as f64 / 1e9 - started;
    eprintln!(
        "uptime {:.3} s, time - start {expected_uptime:.3} s",
        uptime.value
    );
    assert!(
        uptime.value > 0.0 && (uptime.value - expected_uptime).abs() < 0.5,
        "container.uptime {} vs its time - start {expected_uptime}",
        uptime.value
    );
    let state = r
        .point(
            "dockstat.container.state",
            &[("container.id", &c.id), ("dockstat.state", "running")],
        )
        .expect("running state point");
    assert_eq!(state.value, 1.0);

    // Host and exporter figures.
    let host = [("dockstat.host", "a"), ("dockstat.client", "lab")];
    let up = r.point("dockstat.host.up", &host).expect("host up");
    assert_eq!(up.value, 1.0);
    let cores = r
        .point("system.cpu.logical.count", &host)
        .expect("logical count");
    assert_close(
        "cores",
        cores.value,
        must(&s, "machine_cpu_cores", &[("host", "a")]),
    );
    let hist_points = r.histogram_points("dockstat.docker.request.duration", &host);
    assert!(
        !hist_points.is_empty(),
        "no request duration points for host a"
    );
    for p in &hist_points {
        assert!(
            otlp_receiver::attr_text(&p.attributes, "dockstat.docker.endpoint")
                .is_some_and(|e| !e.is_empty()),
            "histogram point without dockstat.docker.endpoint"
        );
    }
    let requests: u64 = hist_points.iter().map(|p| p.count).sum();
    assert!(requests > 0, "Docker requests were made and timed");
    let rss = r
        .point("process.memory.usage", &[])
        .expect("process memory");
    assert!(rss.value > MIB, "process.memory.usage {}", rss.value);
    eprintln!(
        "export: {} metrics, {} requests timed, process memory {:.1} MiB",
        r.metrics().count(),
        requests,
        rss.value / MIB
    );

    // Every per-container family of the table, against the same scrape: name, unit, kind,
    // attributes (fixed ones and renamed labels) and value.
    let compared = compare_container_families(&s, &r, &c);
    eprintln!("family table: {compared} container series compared");
    assert!(compared >= 20, "only {compared} container series compared");

    // Every export so far holds the invariants, and the self-metrics count them.
    let all = rx.exports();
    for e in &all {
        check_export_shape(e);
    }
    let s = exp.wait_for(Duration::from_secs(5), "successful exports counted", |s| {
        otlp_outcome(s, "success") >= 1.0
    });
    let last = must(&s, "dockstat_otlp_last_success_timestamp_seconds", &[]);
    assert!(
        (now() - last).abs() < 10.0,
        "last success {last} vs now {}",
        now()
    );
    assert_eq!(otlp_outcome(&s, "failed"), 0.0, "no failed exports");
    eprintln!(
        "{} exports received, /metrics counts {} successful",
        all.len(),
        otlp_outcome(&s, "success")
    );
}

/// Compares every per-container series of `s` for container `c` with its OTLP points in
/// `r` (built from the same sample), following the family table's mapping; returns how
/// many series were compared.
fn compare_container_families(s: &Scrape, r: &Received, c: &Container) -> usize {
    use dockstat_exporter::families::{Kind, OtlpValue, Scope};
    let mut compared = 0;
    for fam in FAMILIES
        .iter()
        .filter(|f| matches!(f.scope(), Scope::LiveContainer | Scope::Container))
    {
        let exposed = fam.exposed_name();
        for x in s.find(&exposed, &[("name", c.name.as_str())]) {
            for o in fam.otlp {
                let factor = match o.value {
                    OtlpValue::Same => 1.0,
                    OtlpValue::Scale(k) => k,
                    OtlpValue::Uptime => continue, // checked on its own
                };
                let m = r
                    .metric(o.name)
                    .unwrap_or_else(|| panic!("{exposed}: export has no {}", o.name));
                assert_eq!(m.unit, o.unit, "{}: unit", o.name);
                match fam.kind {
                    Kind::Counter => assert!(
                        matches!(m.data, Some(metric::Data::Sum(_))),
                        "{exposed} is a counter, {} must be a Sum",
                        o.name
                    ),
                    Kind::Gauge => assert!(
                        matches!(m.data, Some(metric::Data::Gauge(_))),
                        "{exposed} is a gauge, {} must be a Gauge",
                        o.name
                    ),
                    Kind::Histogram => {}
                }
                let mut filter: Vec<(&str, &str)> = vec![("container.id", c.id.as_str())];
                filter.extend(o.fixed.iter().copied());
                let points: Vec<Point> = r
                    .points(o.name, &filter)
                    .into_iter()
                    .filter(|p| {
                        fam.labels.iter().all(|label| {
                            let want = x.labels.get(label.name).map(String::as_str).unwrap_or("");
                            // An empty label is no attribute.
                            p.attr(label.otlp).unwrap_or("") == want
                        })
                    })
                    .collect();
                assert_eq!(
                    points.len(),
                    1,
                    "{exposed} {:?} -> {} {filter:?}: {} matching points {points:?}",
                    x.labels,
                    o.name,
                    points.len()
                );
                assert_close(
                    &format!("{exposed} {:?} -> {}", x.labels, o.name),
                    points[0].value,
                    x.value * factor,
                );
                compared += 1;
            }
        }
    }
    compared
}

#[test]
fn http_export_with_gzip_and_headers() {
    let _d = Docker::a();
    let token = format!("tok-{}-{}", std::process::id(), now() as u64);
    let vars = [("DOCKSTAT_TEST_OTLP_TOKEN", token.as_str())];
    let extra = "  compression: gzip\n  headers:\n    x-tenant: \"acme\"\n    authorization: \"Bearer ${DOCKSTAT_TEST_OTLP_TOKEN}\"\n";
    let http_rx = Receiver::http(free_port());
    let grpc_rx = Receiver::grpc(free_port());
    let with_vars = Launch {
        env: &vars,
        ..Launch::default()
    };
    let http_exp = Exporter::start_with(
        "otlp-http",
        with_vars,
        &config(&otlp(&http_rx.endpoint(), "http/protobuf", "1s", extra)),
    );
    let grpc_exp = Exporter::start_with(
        "otlp-grpcz",
        with_vars,
        &config(&otlp(&grpc_rx.endpoint(), "grpc", "1s", extra)),
    );
    let bearer = format!("Bearer {token}");

    for (rx, exp) in [(&http_rx, &http_exp), (&grpc_rx, &grpc_exp)] {
        let got = rx
            .try_wait_until(Duration::from_secs(20), |e| e.len() >= 3)
            .unwrap_or_else(|| {
                panic!(
                    "{:?}: fewer than 3 exports in 20 s ({} received)\n--- log ---\n{}",
                    rx.protocol,
                    rx.count(),
                    exp.log_text()
                )
            });
        for r in &got {
            assert!(
                r.decode_error.is_none(),
                "{:?}: {:?}",
                rx.protocol,
                r.decode_error
            );
            assert!(
                r.gzip,
                "{:?}: export not gzip-compressed; headers {:?}",
                rx.protocol, r.headers
            );
            assert_eq!(r.header("x-tenant"), Some("acme"), "{:?}", rx.protocol);
            assert_eq!(
                r.header("authorization"),
                Some(bearer.as_str()),
                "{:?}: ${{DOCKSTAT_TEST_OTLP_TOKEN}} expanded",
                rx.protocol
            );
            check_export_shape(r);
            assert!(
                r.point("dockstat.host.up", &[("dockstat.host", "a")])
                    .is_some_and(|p| p.value == 1.0),
                "{:?}: payload has host a up",
                rx.protocol
            );
            match r.protocol {
                Protocol::Http => {
                    assert_eq!(r.method, "POST");
                    assert_eq!(
                        r.path, "/v1/metrics",
                        "/v1/metrics appended to the base URL"
                    );
                    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
                    assert_eq!(r.header("content-encoding"), Some("gzip"));
                }
                Protocol::Grpc => {
                    assert_eq!(r.header("grpc-encoding"), Some("gzip"));
                    assert!(
                        r.header("content-type")
                            .is_some_and(|t| t.starts_with("application/grpc")),
                        "gRPC content type: {:?}",
                        r.header("content-type")
                    );
                }
            }
        }
        let raw: usize = got.iter().map(|r| r.wire_bytes).sum();
        let decoded: usize = got
            .iter()
            .map(|r| prost::Message::encoded_len(&r.request))
            .sum();
        eprintln!(
            "{:?}: {} gzip exports, {} bytes decoded{}",
            rx.protocol,
            got.len(),
            decoded,
            if raw > 0 {
                format!(
                    " from {raw} bytes on the wire ({:.1}x)",
                    decoded as f64 / raw as f64
                )
            } else {
                String::new()
            }
        );
        if rx.protocol == Protocol::Http {
            assert!(
                raw < decoded,
                "gzip should shrink the payload: {raw} >= {decoded}"
            );
        }
        let s = Scrape::parse(&http_get(exp.port, "/metrics", None).expect("scrape").2);
        assert!(
            otlp_outcome(&s, "success") >= 1.0,
            "{:?}: successes counted",
            rx.protocol
        );
    }
}

#[test]
fn tls_with_generated_ca() {
    let _d = Docker::a();
    let certs = env().certs;
    let mutual = Tls::test_certs(&certs, true);
    let grpc_rx = Receiver::start(Protocol::Grpc, free_port(), Some(mutual.clone()));
    let bad_rx = Receiver::start(Protocol::Grpc, free_port(), Some(mutual.clone()));
    let http_rx = Receiver::start(Protocol::Http, free_port(), Some(mutual));
    let tls = |ca: &str| {
        format!(
            "  tls:\n    ca: {}\n    cert: {}\n    key: {}\n",
            certs.join(ca).display(),
            certs.join("cert.pem").display(),
            certs.join("key.pem").display()
        )
    };
    let good = Exporter::start(
        "otlp-tls",
        &config(&otlp(&grpc_rx.endpoint(), "grpc", "1s", &tls("ca.pem"))),
    );
    // The only defect: the server certificate is not signed by the configured CA.
    let bad = Exporter::start(
        "otlp-badca",
        &config(&otlp(
            &bad_rx.endpoint(),
            "grpc",
            "1s",
            &tls("wrong-ca.pem"),
        )),
    );
    // HTTP over TLS, by name (the server certificate is also for localhost).
    let https = Exporter::start(
        "otlp-https",
        &config(&otlp(
            &format!("https://localhost:{}/", http_rx.port),
            "http/protobuf",
            "1s",
            &tls("ca.pem"),
        )),
    );

    let got = grpc_rx
        .try_wait_until(Duration::from_secs(20), |e| e.len() >= 2)
        .unwrap_or_else(|| {
            panic!(
                "no gRPC exports over mutual TLS\n--- log ---\n{}",
                good.log_text()
            )
        });
    for r in &got {
        check_export_shape(r);
        assert_eq!(
            r.client_cert,
            Some(true),
            "the exporter presented its client certificate"
        );
    }
    let got_http = http_rx
        .try_wait_until(Duration::from_secs(20), |e| !e.is_empty())
        .unwrap_or_else(|| panic!("no HTTPS exports\n--- log ---\n{}", https.log_text()));
    for r in &got_http {
        check_export_shape(r);
        assert_eq!(r.path, "/v1/metrics", "path \"/\" gets /v1/metrics");
    }
    eprintln!(
        "mutual TLS: {} gRPC exports, {} HTTPS exports",
        got.len(),
        got_http.len()
    );

    let s = bad.wait_for(
        Duration::from_secs(20),
        "failed exports with last_error kind tls",
        |s| {
            otlp_outcome(s, "failed") >= 2.0
                && s.value("dockstat_otlp_last_error", &[("kind", "tls")]) == Some(1.0)
        },
    );
    assert_eq!(last_error_kind(&s).as_deref(), Some("tls"));
    assert_eq!(otlp_outcome(&s, "success"), 0.0, "nothing delivered");
    assert_eq!(
        bad_rx.count(),
        0,
        "nothing may arrive over an untrusted server"
    );
    let failed = otlp_outcome(&s, "failed");
    // And it keeps failing (retries, next intervals) without delivering anything.
    let s = bad.wait_for(Duration::from_secs(10), "failed exports growing", |s| {
        otlp_outcome(s, "failed") > failed
    });
    assert_eq!(bad_rx.count(), 0);
    eprintln!(
        "wrong CA: {} failed exports, 0 received",
        otlp_outcome(&s, "failed")
    );
    let ok = good.scrape();
    assert_eq!(
        otlp_outcome(&ok, "failed"),
        0.0,
        "mutual TLS exporter: no failures"
    );
    assert_eq!(last_error_kind(&ok), None, "no error on the good exporter");
}

#[test]
fn receiver_down_then_up() {
    let d = Docker::a();
    let c = d.start("otlpdown", &[], "sleep 600");
    let mut rx = Receiver::grpc(free_port());
    let exp = Exporter::start(
        "otlp-down",
        &config(&otlp(&rx.endpoint(), "grpc", "1s", "")),
    );
    let f = [("name", c.name.as_str())];
    let has_container = |r: &Received| {
        r.point("container.memory.usage", &by_container(&c))
            .is_some()
    };
    rx.wait_until(
        Duration::from_secs(30),
        "2 exports with the container",
        |e| e.iter().filter(|r| has_container(r)).count() >= 2,
    );
    // The baseline RSS is taken after the host's first disk usage pass, whose `/system/df`
    // answer (large on the shared test daemon) would otherwise count as growth.
    let s0 = exp.wait_for(
        Duration::from_secs(120),
        "a success counted, the first disk usage pass done",
        |s| {
            otlp_outcome(s, "success") >= 1.0
                && s.value("container_last_seen", &f).is_some()
                && s.find("dockstat_disk_usage_success", &[]).next().is_some()
        },
    );
    let (success0, failed0) = (otlp_outcome(&s0, "success"), otlp_outcome(&s0, "failed"));
    let rss0 = must(&s0, "process_resident_memory_bytes", &[]);

    rx.stop();
    let received_at_stop = rx.count();
    let outage = Duration::from_secs(60);
    let start = Instant::now();
    let mut last_seen = must(&s0, "container_last_seen", &f);
    let mut advanced_at = Instant::now();
    let (mut max_gap, mut max_scrape, mut scrapes) = (Duration::ZERO, Duration::ZERO, 0);
    let mut s = s0;
    while start.elapsed() < outage {
        let t = Instant::now();
        s = exp.scrape();
        let took = t.elapsed();
        scrapes += 1;
        max_scrape = max_scrape.max(took);
        assert!(
            took < Duration::from_secs(1),
            "scrape {scrapes} took {took:?} with the receiver down"
        );
        let seen = must(&s, "container_last_seen", &f);
        if seen > last_seen {
            last_seen = seen;
            advanced_at = Instant::now();
        }
        max_gap = max_gap.max(advanced_at.elapsed());
        assert!(
            advanced_at.elapsed() < Duration::from_secs(5),
            "collection stalled: container_last_seen stuck at {last_seen} for {:?} with the receiver down\n--- log ---\n{}",
            advanced_at.elapsed(),
            exp.log_text()
        );
        std::thread::sleep(Duration::from_millis(250).saturating_sub(took));
    }
    let rss1 = must(&s, "process_resident_memory_bytes", &[]);
    let (success1, failed1) = (otlp_outcome(&s, "success"), otlp_outcome(&s, "failed"));
    eprintln!(
        "outage {outage:?}: {scrapes} scrapes, slowest {max_scrape:?}, longest collection gap {max_gap:?}; \
         exports failed {failed0} -> {failed1}, succeeded {success0} -> {success1}; \
         RSS {:.1} MiB -> {:.1} MiB ({:+.2} MiB); last error {:?}",
        rss0 / MIB,
        rss1 / MIB,
        (rss1 - rss0) / MIB,
        last_error_kind(&s)
    );
    assert!(
        failed1 >= failed0 + 10.0,
        "it keeps retrying (backoff capped at the 1 s interval): failed {failed0} -> {failed1}"
    );
    assert!(
        success1 <= success0 + 1.0,
        "no successes without a receiver (one in flight at most): {success0} -> {success1}"
    );
    assert_eq!(
        last_error_kind(&s).as_deref(),
        Some("connection_refused"),
        "nothing listens on the port"
    );
    assert!(
        rss1 - rss0 < 8.0 * MIB,
        "memory grew by {:.1} MiB during the outage",
        (rss1 - rss0) / MIB
    );
    assert_eq!(rx.count(), received_at_stop);

    // Back on the same port: exports resume within interval + backoff cap + a few seconds.
    let up = Instant::now();
    rx.start_again();
    let resumed = rx
        .try_wait_until(Duration::from_secs(1 + 1 + 5), |e| {
            e.len() > received_at_stop
        })
        .unwrap_or_else(|| {
            panic!(
                "no export within 7 s of the receiver coming back\n--- log ---\n{}",
                exp.log_text()
            )
        });
    let latency = resumed[received_at_stop].instant.duration_since(up);
    // Fresh data follows (a retried older payload may come first).
    let fresh_after = now() - 2.0;
    rx.wait_until(
        Duration::from_secs(10),
        "an export with a fresh sample",
        |e| {
            e[received_at_stop..].iter().any(|r| {
                r.point("container.memory.usage", &by_container(&c))
                    .is_some_and(|p| p.time_unix_nano as f64 / 1e9 > fresh_after)
            })
        },
    );
    let s = exp.wait_for(Duration::from_secs(5), "successes counted again", |s| {
        otlp_outcome(s, "success") > success1
    });
    eprintln!(
        "receiver back: first export after {latency:?}; successes {success1} -> {}",
        otlp_outcome(&s, "success")
    );
    for r in &rx.exports() {
        check_export_shape(r);
    }
}

#[test]
fn restart_gives_new_start_time() {
    let d = Docker::a();
    let c = d.start("otlprestart", &["--cpus", "0.2"], "while true; do :; done");
    let rx = Receiver::grpc(free_port());
    let exp = Exporter::start(
        "otlp-restart",
        &config(&otlp(&rx.endpoint(), "grpc", "1s", "")),
    );
    let old_start = docker_time(&c.inspect("{{.State.StartedAt}}"));
    let on_start = |r: &Received, start: f64| {
        user_cpu(r, &c).is_some_and(|p| same_ns(p.start_time_unix_nano, start))
    };
    let before = rx.wait_until(
        Duration::from_secs(30),
        "3 exports with the container's CPU time from its StartedAt",
        |e| e.iter().filter(|r| on_start(r, old_start)).count() >= 3,
    );
    assert!(
        !before
            .iter()
            .any(|r| user_cpu(r, &c).is_some() && !on_start(r, old_start)),
        "CPU time with another start than StartedAt {old_start}"
    );

    // sh as PID 1 ignores SIGTERM: killed after 1 s.
    d.run(&["restart", "-t", "1", &c.id]);
    let new_start = docker_time(&c.inspect("{{.State.StartedAt}}"));
    assert!(
        new_start > old_start + 0.5,
        "restarted: {old_start} -> {new_start}"
    );
    let after = rx.wait_until(
        Duration::from_secs(30),
        "3 exports with the new start time",
        |e| e.iter().filter(|r| on_start(r, new_start)).count() >= 3,
    );
    let first_new = after
        .iter()
        .position(|r| on_start(r, new_start))
        .expect("new start");
    for r in &after[first_new..] {
        if let Some(p) = user_cpu(r, &c) {
            assert!(
                same_ns(p.start_time_unix_nano, new_start),
                "after the new start time appeared, CPU time came with start {} (old {old_start}, new {new_start})",
                p.start_time_unix_nano
            );
            assert!(p.time_unix_nano as f64 / 1e9 >= new_start);
        }
    }
    let old_last = after[..first_new]
        .iter()
        .rev()
        .find_map(|r| user_cpu(r, &c))
        .expect("old point");
    let new_first = user_cpu(&after[first_new], &c).expect("new point");
    eprintln!(
        "restart: start {old_start:.3} -> {new_start:.3}; user CPU {:.3} s (old run) -> {:.3} s (new run)",
        old_last.value, new_first.value
    );

    // No cumulative series (metric, attributes, start time) ever goes back, on any metric.
    let mut series: BTreeMap<(String, String, u64), (u64, f64)> = BTreeMap::new();
    let mut points = 0;
    for r in &after {
        check_export_shape(r);
        for m in r.metrics() {
            let Some(metric::Data::Sum(sum)) = &m.data else {
                continue;
            };
            for p in sum.data_points.iter().map(Point::of) {
                points += 1;
                let key = (
                    m.name.clone(),
                    format!("{:?}", p.attributes),
                    p.start_time_unix_nano,
                );
                if let Some((t, v)) = series.get(&key) {
                    assert!(
                        p.value >= *v,
                        "{} {:?} (start {}) went back: {v} at {t} -> {} at {}",
                        m.name,
                        p.attributes,
                        p.start_time_unix_nano,
                        p.value,
                        p.time_unix_nano
                    );
                    assert!(p.time_unix_nano >= *t, "{}: time went back", m.name);
                }
                series.insert(key, (p.time_unix_nano, p.value));
            }
        }
    }
    eprintln!(
        "{} exports, {points} cumulative points in {} series: none went back",
        after.len(),
        series.len()
    );

    // The kill (sh as PID 1 ignores SIGTERM) shows as an exit with code 137, an int
    // attribute in OTLP.
    let f = [("name", c.name.as_str()), ("exit_code", "137")];
    let s = exp.wait_for(Duration::from_secs(10), "the exit counted", |s| {
        s.value("dockstat_container_exits_total", &f).is_some()
    });
    let exits = must(&s, "dockstat_container_exits_total", &f);
    let n = rx.count();
    let latest = rx.wait_for(n + 1, Duration::from_secs(5));
    let latest = latest.last().expect("export");
    assert_sum(latest, "dockstat.container.exits", "{exit}");
    let found = latest.raw_points(
        "dockstat.container.exits",
        &[("container.id", &c.id), ("process.exit.code", "137")],
    );
    let (_, p) = found.first().expect("exit point for the container");
    assert!(
        matches!(
            otlp_receiver::attr_value(&p.attributes, "process.exit.code"),
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(137))
        ),
        "process.exit.code must be the int 137: {:?}",
        p.attributes
    );
    assert_close("exits", Point::of(p).value, exits);
    eprintln!("exits with code 137: {exits}");
}

/// A TCP listener that accepts and never reads or answers; stops on drop.
struct BlackHole {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> BlackHole {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, st) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        held.push(s);
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        BlackHole {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A removed container leaves the export: its series are not repeated from memory.
#[test]
fn removed_container_stops_being_exported() {
    let d = Docker::a();
    let c = d.start("otlpgone", &[], "sleep 600");
    let stays = d.start("otlpstays", &[], "sleep 600");
    let rx = Receiver::grpc(free_port());
    let _exp = Exporter::start(
        "otlp-gone",
        &config(&otlp(&rx.endpoint(), "grpc", "1s", "")),
    );
    let carries = |r: &Received, c: &Container| {
        r.metrics_in_resources().any(|(res, m)| {
            otlp_receiver::attr_text(res, "container.id").as_deref() == Some(c.id.as_str())
                && !otlp_receiver::number_points(m).is_empty()
        })
    };
    let has = |r: &Received| carries(r, &c);
    rx.wait_until(
        Duration::from_secs(30),
        "an export with the container",
        |e| e.iter().any(has),
    );
    c.remove();
    let removed = std::time::SystemTime::now();
    let exports = rx.wait_until(
        Duration::from_secs(30),
        "two exports after the removal",
        |e| e.iter().filter(|r| r.at > removed).count() >= 2,
    );
    let after: Vec<&Received> = exports.iter().filter(|r| r.at > removed).collect();
    // The first export after the removal may have been built just before it.
    let last = after.last().expect("export after removal");
    assert!(!has(last), "the removed container is still exported");
    assert!(
        carries(last, &stays),
        "the export still carries the other container"
    );
}

#[test]
fn shutdown_flushes() {
    let d = Docker::a();
    let c = d.start("otlpflush", &[], "sleep 600");
    let rx = Receiver::grpc(free_port());
    let mut exp = Exporter::start(
        "otlp-flush",
        &config(&otlp(&rx.endpoint(), "grpc", "1h", "")),
    );
    exp.wait_for(Duration::from_secs(20), "the container collected", |s| {
        s.value("container_last_seen", &[("name", &c.name)])
            .is_some()
    });
    std::thread::sleep(Duration::from_secs(2));
    let n0 = rx.count();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        rx.count(),
        n0,
        "nothing is pushed between the 1 h intervals"
    );
    let t = Instant::now();
    let status = exp.terminate(Duration::from_secs(5));
    let took = t.elapsed();
    let exports = rx.exports();
    eprintln!(
        "SIGTERM: exited {status} after {took:?}; exports before {n0}, after {}",
        exports.len()
    );
    assert!(status.success(), "exit status {status}: {}", exp.log_text());
    assert_eq!(
        exports.len(),
        n0 + 1,
        "exactly one final export before exit\n--- log ---\n{}",
        exp.log_text()
    );
    let last = exports.last().expect("final export");
    check_export_shape(last);
    assert!(
        last.point("container.memory.usage", &by_container(&c))
            .is_some(),
        "the final export carries the snapshot (the container)"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rx.count(), n0 + 1, "nothing after exit");

    // A receiver that accepts and never answers: the final export gives up after the 1 s
    // timeout and the process still stops promptly.
    let hole = BlackHole::start();
    let mut exp = Exporter::start(
        "otlp-hole",
        &config(&format!(
            "  endpoint: http://127.0.0.1:{}\n  protocol: grpc\n  interval: 1s\n  timeout: 1s\n",
            hole.port
        )),
    );
    let s = exp.wait_for(
        Duration::from_secs(20),
        "an export timing out against the silent receiver",
        |s| {
            otlp_outcome(s, "failed") >= 1.0
                && s.value("dockstat_otlp_last_error", &[("kind", "timeout")]) == Some(1.0)
        },
    );
    assert!(
        hole.accepted() >= 1,
        "the exporter connected to the silent receiver"
    );
    assert_eq!(otlp_outcome(&s, "success"), 0.0);
    let t = Instant::now();
    let status = exp.terminate(Duration::from_secs(1 + 3));
    eprintln!(
        "SIGTERM with a silent receiver: exited {status} after {:?} ({} connections accepted, {} failed exports)",
        t.elapsed(),
        hole.accepted(),
        otlp_outcome(&s, "failed")
    );
}

/// The exporter's outcome counters against what the receiver answered, one request per
/// export (the default `max_points_per_request` holds a whole export here): success =
/// `Accept` answers, partial = `Partial` answers, failed = every other answer.
fn answer_counts(rx: &Receiver) -> [f64; 3] {
    let mut n = [0.0; 3];
    for r in rx.exports() {
        let i = match r.answered {
            Answer::Accept => 0,
            Answer::Partial { .. } => 1,
            _ => 2,
        };
        n[i] += 1.0;
    }
    n
}

fn outcomes(s: &Scrape) -> [f64; 3] {
    ["success", "partial", "failed"].map(|o| otlp_outcome(s, o))
}

/// Waits until the exporter's outcome counters equal the receiver's answers (the counter
/// lags the answer by the response's way back); panics with both after `timeout`.
fn counts_agree(what: &str, rx: &Receiver, exp: &Exporter) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = exp.scrape();
        let (got, answered) = (outcomes(&s), answer_counts(rx));
        if got == answered {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /metrics counts [success, partial, failed] = {got:?}, but the receiver answered {answered:?}\n--- log ---\n{}",
            exp.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Arrival times of the requests answered with `answer`, from `from` on.
fn answered_at(rx: &Receiver, answer: &Answer, from: usize) -> Vec<Instant> {
    rx.exports()
        .iter()
        .skip(from)
        .filter(|r| &r.answered == answer)
        .map(|r| r.instant)
        .collect()
}

/// Waits for `n` requests answered with `answer` from index `from` on; their arrival times.
fn wait_answered(rx: &Receiver, answer: &Answer, from: usize, n: usize, secs: u64) -> Vec<Instant> {
    rx.wait_until(
        Duration::from_secs(secs),
        &format!("{n} requests answered {answer:?}"),
        |e| {
            e.iter()
                .skip(from)
                .filter(|r| &r.answered == answer)
                .count()
                >= n
        },
    );
    answered_at(rx, answer, from)
}

fn gaps(at: &[Instant]) -> Vec<f64> {
    at.windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect()
}

/// HTTP receiver, 3 s interval: partial success, 400, 401, then accept again.
fn http_answers(rx: &Receiver, exp: &Exporter) {
    let interval = 3.0;
    exp.wait_for(Duration::from_secs(15), "a first success", |s| {
        otlp_outcome(s, "success") >= 1.0
    });
    let s0 = counts_agree("HTTP accept", rx, exp);
    assert_eq!(last_error_kind(&s0), None, "no error while accepting");

    // Partial success: counted as partial, not as success, and not as a failure.
    let partial = Answer::Partial {
        rejected: 7,
        message: "7 points refused by the test".into(),
    };
    let n = rx.count();
    rx.answer(partial.clone());
    wait_answered(rx, &partial, n, 2, 10);
    let s1 = counts_agree("HTTP partial", rx, exp);
    eprintln!(
        "HTTP partial: outcomes {:?} -> {:?}",
        outcomes(&s0),
        outcomes(&s1)
    );
    assert!(
        otlp_outcome(&s1, "partial") >= otlp_outcome(&s0, "partial") + 2.0,
        "partial answers counted as partial: {:?} -> {:?}",
        outcomes(&s0),
        outcomes(&s1)
    );
    assert_eq!(
        otlp_outcome(&s1, "success"),
        otlp_outcome(&s0, "success"),
        "a partial success is no success"
    );
    assert_eq!(otlp_outcome(&s1, "failed"), 0.0, "nor a failure");
    // The receiver's partial-success message is logged.
    exp.wait_for_log(Duration::from_secs(5), "7 points refused by the test");

    // 400: rejected, not retried before the next interval.
    let bad = Answer::HttpStatus {
        status: 400,
        retry_after: None,
    };
    let n = rx.count();
    rx.answer(bad.clone());
    let first = wait_answered(rx, &bad, n, 1, 10)[0];
    let window = Duration::from_secs(9);
    std::thread::sleep(
        (first + window + Duration::from_millis(300)).saturating_duration_since(Instant::now()),
    );
    let at: Vec<Instant> = answered_at(rx, &bad, n)
        .into_iter()
        .filter(|t| t.duration_since(first) <= window)
        .collect();
    let g = gaps(&at);
    eprintln!(
        "HTTP 400 (interval {interval} s): {} attempts in {window:?}, gaps {g:.2?} s",
        at.len()
    );
    // Once per interval: at 0, 3, 6 (and 9) s. A retry would come 1 s after a failure.
    assert!(
        g.iter().all(|&d| d >= interval - 0.5),
        "HTTP 400 must not be retried before the next interval ({interval} s): gaps {g:.2?} s"
    );
    assert!(
        (3..=4).contains(&at.len()),
        "HTTP 400: one attempt per {interval} s interval, 3 or 4 in {window:?}; got {} (gaps {g:.2?} s)",
        at.len()
    );
    let s2 = counts_agree("HTTP 400", rx, exp);
    assert_eq!(
        last_error_kind(&s2).as_deref(),
        Some("rejected"),
        "HTTP 400"
    );
    assert!(otlp_outcome(&s2, "failed") >= 3.0);

    // 401: unauthenticated, not retried either.
    let denied = Answer::HttpStatus {
        status: 401,
        retry_after: None,
    };
    let n = rx.count();
    rx.answer(denied.clone());
    let at = wait_answered(rx, &denied, n, 2, 10);
    let g = gaps(&at);
    eprintln!("HTTP 401: gaps {g:.2?} s");
    assert!(
        g.iter().all(|&d| d >= interval - 0.5),
        "HTTP 401 must not be retried before the next interval: gaps {g:.2?} s"
    );
    let s3 = counts_agree("HTTP 401", rx, exp);
    assert_eq!(
        last_error_kind(&s3).as_deref(),
        Some("unauthenticated"),
        "HTTP 401"
    );

    // Accept again: success resumes.
    let n = rx.count();
    rx.answer(Answer::Accept);
    wait_answered(rx, &Answer::Accept, n, 1, 10);
    let s4 = counts_agree("HTTP accept again", rx, exp);
    assert!(otlp_outcome(&s4, "success") > otlp_outcome(&s3, "success"));
    eprintln!(
        "HTTP back to accept: outcomes {:?}, last error {:?}",
        outcomes(&s4),
        last_error_kind(&s4)
    );
}

/// HTTP receiver answering 503 with `Retry-After: 2` from the start, 6 s interval: retried
/// after max(1 s * 2^(n-1), 2 s) capped at 6 s, i.e. 2, 2, 4, 6 s; then accept.
fn retry_after_answers(rx: &Receiver, exp: &Exporter) {
    let busy = Answer::HttpStatus {
        status: 503,
        retry_after: Some(2),
    };
    let expected = [2.0, 2.0, 4.0, 6.0];
    let at = wait_answered(rx, &busy, 0, expected.len() + 1, 6 + 14 + 10);
    let g = gaps(&at[..expected.len() + 1]);
    eprintln!("HTTP 503 Retry-After 2 (interval 6 s): gaps {g:.2?} s, expected {expected:?} s");
    for (i, (&got, &want)) in g.iter().zip(&expected).enumerate() {
        assert!(
            got >= want - 0.25 && got <= want + 0.75,
            "HTTP 503 with Retry-After 2: retry {} came after {got:.2} s, expected {want} s (max(1 s * 2^n, Retry-After) capped at the interval); gaps {g:.2?}",
            i + 1
        );
    }
    let in_8s = at
        .iter()
        .filter(|t| t.duration_since(at[0]) <= Duration::from_secs(8))
        .count();
    assert!(in_8s >= 3, "retry cadence: {in_8s} attempts in 8 s");
    let s = counts_agree("HTTP 503", rx, exp);
    assert_eq!(
        last_error_kind(&s).as_deref(),
        Some("unavailable"),
        "HTTP 503"
    );
    assert_eq!(otlp_outcome(&s, "success"), 0.0);

    let n = rx.count();
    rx.answer(Answer::Accept);
    wait_answered(rx, &Answer::Accept, n, 1, 10);
    let s = counts_agree("HTTP 503 then accept", rx, exp);
    assert!(otlp_outcome(&s, "success") >= 1.0);
}

/// gRPC receiver, 3 s interval: partial, UNAVAILABLE (retried after 1 s, 2 s), INVALID_ARGUMENT,
/// then accept.
fn grpc_answers(rx: &Receiver, exp: &Exporter) {
    exp.wait_for(Duration::from_secs(15), "a first gRPC success", |s| {
        otlp_outcome(s, "success") >= 1.0
    });
    let partial = Answer::Partial {
        rejected: 3,
        message: "gRPC partial".into(),
    };
    let n = rx.count();
    rx.answer(partial.clone());
    wait_answered(rx, &partial, n, 1, 10);
    let s = counts_agree("gRPC partial", rx, exp);
    assert!(otlp_outcome(&s, "partial") >= 1.0);

    let unavailable = Answer::GrpcStatus(tonic::Code::Unavailable);
    let n = rx.count();
    rx.answer(unavailable.clone());
    let at = wait_answered(rx, &unavailable, n, 3, 10);
    let g = gaps(&at[..3]);
    eprintln!("gRPC UNAVAILABLE (interval 3 s): gaps {g:.2?} s, expected [1, 2] s");
    for (&got, want) in g.iter().zip([1.0, 2.0]) {
        assert!(
            got >= want - 0.25 && got <= want + 0.75,
            "gRPC UNAVAILABLE is retried after 1 s, then 2 s: gaps {g:.2?} s"
        );
    }
    let s = counts_agree("gRPC UNAVAILABLE", rx, exp);
    assert_eq!(
        last_error_kind(&s).as_deref(),
        Some("unavailable"),
        "gRPC UNAVAILABLE"
    );

    let invalid = Answer::GrpcStatus(tonic::Code::InvalidArgument);
    let n = rx.count();
    rx.answer(invalid.clone());
    wait_answered(rx, &invalid, n, 2, 10);
    let s = counts_agree("gRPC INVALID_ARGUMENT", rx, exp);
    assert_eq!(
        last_error_kind(&s).as_deref(),
        Some("rejected"),
        "gRPC INVALID_ARGUMENT"
    );

    let n = rx.count();
    rx.answer(Answer::Accept);
    wait_answered(rx, &Answer::Accept, n, 1, 10);
    let s2 = counts_agree("gRPC accept again", rx, exp);
    assert!(otlp_outcome(&s2, "success") > otlp_outcome(&s, "success"));
    eprintln!("gRPC outcomes at the end {:?}", outcomes(&s2));
}

#[test]
fn receiver_answers_are_counted_and_classified() {
    let _d = Docker::a();
    let busy_rx = Receiver::http(free_port());
    busy_rx.answer(Answer::HttpStatus {
        status: 503,
        retry_after: Some(2),
    });
    let busy = Exporter::start(
        "otlp-503",
        &config(&otlp(&busy_rx.endpoint(), "http/protobuf", "6s", "")),
    );
    let http_rx = Receiver::http(free_port());
    let http = Exporter::start(
        "otlp-answers",
        &config(&otlp(&http_rx.endpoint(), "http/protobuf", "3s", "")),
    );
    let grpc_rx = Receiver::grpc(free_port());
    let grpc = Exporter::start(
        "otlp-grpc-answers",
        &config(&otlp(&grpc_rx.endpoint(), "grpc", "3s", "")),
    );
    std::thread::scope(|s| {
        s.spawn(|| retry_after_answers(&busy_rx, &busy));
        s.spawn(|| grpc_answers(&grpc_rx, &grpc));
        http_answers(&http_rx, &http);
    });
    for rx in [&busy_rx, &http_rx, &grpc_rx] {
        for r in rx.exports() {
            check_export_shape(&r);
        }
    }
}

/// A series: metric name and its point's attributes (as text).
type SeriesKey = (String, BTreeMap<String, String>);

/// Every data point of `metrics` (number and histogram) as its series.
fn series_of<'a>(
    metrics: impl Iterator<
        Item = (
            &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
            &'a opentelemetry_proto::tonic::metrics::v1::Metric,
        ),
    >,
) -> Vec<SeriesKey> {
    let mut out = Vec::new();
    for (res, m) in metrics {
        let attrs: Vec<&[opentelemetry_proto::tonic::common::v1::KeyValue]> = match &m.data {
            Some(metric::Data::Sum(s)) => s.data_points.iter().map(|p| &p.attributes[..]).collect(),
            Some(metric::Data::Gauge(g)) => {
                g.data_points.iter().map(|p| &p.attributes[..]).collect()
            }
            Some(metric::Data::Histogram(h)) => {
                h.data_points.iter().map(|p| &p.attributes[..]).collect()
            }
            other => panic!("{}: unexpected data {other:?}", m.name),
        };
        out.extend(attrs.into_iter().map(|a| {
            let mut map = otlp_receiver::attr_map(res);
            map.extend(otlp_receiver::attr_map(a));
            (m.name.clone(), map)
        }));
    }
    out
}

/// Data points (number and histogram) in one request.
fn points_in(r: &Received) -> usize {
    r.metrics()
        .map(|m| match &m.data {
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            _ => 0,
        })
        .sum()
}

/// The time of the reading an export was built from: every point not about a container
/// carries it. Panics unless the requests agree on one.
fn reading_time(rs: &[&Received]) -> u64 {
    let mut times = std::collections::BTreeSet::new();
    for r in rs {
        for (res, m) in r.metrics_in_resources() {
            if otlp_receiver::attr_text(res, "container.id").is_some() {
                continue;
            }
            let pts: Vec<(u64, BTreeMap<String, String>)> = match &m.data {
                Some(metric::Data::Sum(s)) => s
                    .data_points
                    .iter()
                    .map(|p| (p.time_unix_nano, otlp_receiver::attr_map(&p.attributes)))
                    .collect(),
                Some(metric::Data::Gauge(g)) => g
                    .data_points
                    .iter()
                    .map(|p| (p.time_unix_nano, otlp_receiver::attr_map(&p.attributes)))
                    .collect(),
                Some(metric::Data::Histogram(h)) => h
                    .data_points
                    .iter()
                    .map(|p| (p.time_unix_nano, otlp_receiver::attr_map(&p.attributes)))
                    .collect(),
                _ => Vec::new(),
            };
            times.extend(
                pts.into_iter()
                    .filter(|(_, a)| !a.contains_key("container.id"))
                    .map(|(t, _)| t),
            );
        }
    }
    assert_eq!(
        times.len(),
        1,
        "the requests of one export carry one reading time: {times:?}"
    );
    times.into_iter().next().unwrap_or_default()
}

/// Requests grouped by arrival: a new export starts after a pause of more than `pause`.
fn bursts(rs: &[Received], pause: Duration) -> Vec<Vec<&Received>> {
    let mut out: Vec<Vec<&Received>> = Vec::new();
    for r in rs {
        match out.last_mut() {
            Some(b)
                if r.instant
                    .duration_since(b.last().expect("non-empty").instant)
                    <= pause =>
            {
                b.push(r)
            }
            _ => out.push(vec![r]),
        }
    }
    out
}

/// Metrics whose series depend on what one exporter saw since it started (Docker events,
/// the Docker endpoints it called, the errors it met): two exporters may differ on them
/// when other tests act on daemon A while they start.
const HISTORY_METRICS: [&str; 3] = [
    "dockstat.host.events",
    "dockstat.docker.request.duration",
    "dockstat.docker.errors",
];

#[test]
fn large_exports_are_split_into_bounded_requests() {
    use std::collections::BTreeSet;
    let max = 50;
    let d = Docker::a();
    let mine: Vec<Container> = (0..3)
        .map(|i| d.start(&format!("otlpsplit{i}"), &[], "sleep 600"))
        .collect();
    let ids: BTreeSet<String> = mine.iter().map(|c| c.id.clone()).collect();
    let split_rx = Receiver::grpc(free_port());
    let whole_rx = Receiver::grpc(free_port());
    let split = Exporter::start(
        "otlp-split",
        &config(&otlp(
            &split_rx.endpoint(),
            "grpc",
            "2s",
            &format!("  max_points_per_request: {max}\n"),
        )),
    );
    let whole = Exporter::start(
        "otlp-whole",
        &config(&otlp(&whole_rx.endpoint(), "grpc", "2s", "")),
    );
    // The requests of one export go out back to back (a few ms apart); exports are 2 s
    // apart. Each group found so is checked below to hold one reading time.
    let pause = Duration::from_millis(500);
    // An export with every container's second sample (CPU usage needs two).
    let complete = |rs: &[&Received]| {
        mine.iter().all(|c| {
            rs.iter()
                .any(|r| r.point("container.cpu.usage", &by_container(c)).is_some())
        })
    };
    split_rx.wait_until(
        Duration::from_secs(30),
        "3 complete split exports followed by another",
        |e| {
            let b = bursts(e, pause);
            b.len() >= 2 && b[..b.len() - 1].iter().filter(|b| complete(b)).count() >= 3
        },
    );
    let wholes = whole_rx.wait_until(Duration::from_secs(10), "3 complete exports", |e| {
        e.iter().filter(|r| complete(&[*r])).count() >= 3
    });
    let all = split_rx.exports();

    // The unsplit exporter: one request per export, far above the limit.
    assert!(
        bursts(&wholes, pause).iter().all(|b| b.len() == 1),
        "default limit: one request per export"
    );
    let wholes: Vec<&Received> = wholes.iter().filter(|r| complete(&[*r])).collect();
    let reference = wholes[0];
    check_export_shape(reference);
    let whole_points = points_in(reference);
    assert!(
        whole_points > 2 * max,
        "an unsplit export has {whole_points} points: too few to need splitting at {max}"
    );
    let service = reference
        .request
        .resource_metrics
        .iter()
        .find(|rm| {
            rm.resource.as_ref().is_some_and(|res| {
                otlp_receiver::attr_text(&res.attributes, "service.name").is_some()
            })
        })
        .expect("the exporter's resource");
    let scope = &service.scope_metrics[0].scope;

    // Every request: at most `max` points; each resource with the one scope, the
    // exporter's resource the same as unsplit.
    for (i, r) in all.iter().enumerate() {
        check_export_shape(r);
        let n = points_in(r);
        assert!(
            (1..=max).contains(&n),
            "request {i} has {n} data points, limit {max}"
        );
        for rm in &r.request.resource_metrics {
            assert_eq!(rm.scope_metrics.len(), 1, "request {i}: one scope");
            assert_eq!(&rm.scope_metrics[0].scope, scope, "request {i}: scope");
            let is_service = rm.resource.as_ref().is_some_and(|res| {
                otlp_receiver::attr_text(&res.attributes, "service.name").is_some()
            });
            if is_service {
                assert_eq!(rm.resource, service.resource, "request {i}: resource");
            }
        }
    }
    // Table order of the OTLP metrics: each resource lists its metrics in it.
    let mut table_order: Vec<&str> = Vec::new();
    for f in FAMILIES {
        for o in f.otlp {
            if !table_order.contains(&o.name) {
                table_order.push(o.name);
            }
        }
    }
    let rank = |name: &str| table_order.iter().position(|n| *n == name);

    let groups = bursts(&all, pause);
    let checked: Vec<&Vec<&Received>> = groups[..groups.len() - 1]
        .iter()
        .filter(|g| complete(g))
        .collect();
    let mine_only = |k: &SeriesKey| k.1.get("container.id").is_none_or(|id| ids.contains(id));
    let split_by_history =
        |set: &BTreeSet<SeriesKey>| -> (BTreeSet<SeriesKey>, BTreeSet<SeriesKey>) {
            set.iter()
                .cloned()
                .partition(|k| !HISTORY_METRICS.contains(&k.0.as_str()))
        };
    let mut times = Vec::new();
    let mut history_equal = 0;
    let mut history_diffs = Vec::new();
    for g in &checked {
        let sizes: Vec<usize> = g.iter().map(|r| points_in(r)).collect();
        let span = g[g.len() - 1].instant.duration_since(g[0].instant);
        let t = reading_time(g);
        times.push(t);
        assert!(
            g.len() >= 2,
            "an export of {} points in one request of <= {max}",
            sizes.iter().sum::<usize>()
        );

        // Metrics in order: each (resource, metric) in one run of consecutive requests,
        // each resource's metrics in table order, with the same description, unit and
        // kind in every part.
        let mut runs: Vec<(String, &str)> = Vec::new();
        let mut first_part: BTreeMap<&str, (&str, &str, String)> = BTreeMap::new();
        for (res, m) in g.iter().flat_map(|r| r.metrics_in_resources()) {
            let key = (
                format!("{:?}", otlp_receiver::attr_map(res)),
                m.name.as_str(),
            );
            if runs.last() != Some(&key) {
                assert!(
                    !runs.contains(&key),
                    "{} comes back after other metrics in one export: {runs:?}",
                    m.name
                );
                if let Some((last_res, last)) = runs.last()
                    && *last_res == key.0
                {
                    assert!(
                        rank(last) < rank(&m.name),
                        "{} after {last} in one resource",
                        m.name
                    );
                }
                runs.push(key);
            }
            let kind = match &m.data {
                Some(metric::Data::Sum(s)) => {
                    format!("sum {} {}", s.aggregation_temporality, s.is_monotonic)
                }
                Some(metric::Data::Gauge(_)) => "gauge".into(),
                Some(metric::Data::Histogram(h)) => {
                    format!("histogram {}", h.aggregation_temporality)
                }
                other => format!("{other:?}"),
            };
            let this = (m.description.as_str(), m.unit.as_str(), kind);
            let first = first_part.entry(&m.name).or_insert_with(|| this.clone());
            assert_eq!(*first, this, "{}: parts of a split metric differ", m.name);
        }

        // Each series once, and the same series as the unsplit export nearest in time.
        let listed = series_of(g.iter().flat_map(|r| r.metrics_in_resources()));
        let ours: BTreeSet<SeriesKey> = listed.iter().cloned().collect();
        assert_eq!(
            listed.len(),
            ours.len(),
            "a series twice in one split export"
        );
        let w = wholes
            .iter()
            .min_by_key(|r| reading_time(&[**r]).abs_diff(t))
            .expect("an unsplit export");
        let ours: BTreeSet<SeriesKey> = ours.into_iter().filter(mine_only).collect();
        let theirs: BTreeSet<SeriesKey> = series_of(w.metrics_in_resources())
            .into_iter()
            .filter(mine_only)
            .collect();
        let (ours_fixed, ours_hist) = split_by_history(&ours);
        let (theirs_fixed, theirs_hist) = split_by_history(&theirs);
        eprintln!(
            "split export: {} requests of {sizes:?} points within {span:?}; {} series (these containers and the host), {} in the unsplit export read {} ms apart",
            g.len(),
            ours.len(),
            theirs.len(),
            reading_time(&[*w]).abs_diff(t) / 1_000_000
        );
        assert!(
            ours_fixed == theirs_fixed,
            "split export vs unsplit export: only split {:?}; only unsplit {:?}",
            ours_fixed.difference(&theirs_fixed).collect::<Vec<_>>(),
            theirs_fixed.difference(&ours_fixed).collect::<Vec<_>>()
        );
        if ours_hist == theirs_hist {
            history_equal += 1;
        } else {
            let diff = format!(
                "only split {:?}; only unsplit {:?}",
                ours_hist.difference(&theirs_hist).collect::<Vec<_>>(),
                theirs_hist.difference(&ours_hist).collect::<Vec<_>>()
            );
            eprintln!("  history series differ: {diff}");
            history_diffs.push(diff);
        }
        for c in &mine {
            assert!(
                ours.iter()
                    .any(|k| k.0 == "container.memory.usage" && k.1["container.id"] == c.id),
                "{}: no memory point in the split export",
                c.name
            );
        }
    }
    let export_gaps: Vec<f64> = times
        .windows(2)
        .map(|w| w[1].abs_diff(w[0]) as f64 / 1e9)
        .collect();
    eprintln!(
        "{} split exports compared, reading times {export_gaps:.2?} s apart; history metrics equal in {history_equal}",
        checked.len()
    );
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "each burst is another export (reading times {times:?})"
    );
    // Two exporters may each have seen an event or call the other did not (other tests on
    // daemon A); the series must still match in at least one export.
    assert!(
        history_equal >= 1,
        "{HISTORY_METRICS:?} series never matched the unsplit export: {history_diffs:#?}"
    );
    assert_eq!(
        otlp_outcome(&split.scrape(), "failed"),
        0.0,
        "no failed split exports"
    );
    assert_eq!(otlp_outcome(&whole.scrape(), "failed"), 0.0);
}
