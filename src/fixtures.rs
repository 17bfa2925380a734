//! Fixed fleets for the golden files, the unit tests and the benchmarks: hosts and
//! containers built from one recorded stats answer, published into a [`SnapshotStore`], and
//! a whole [`Reading`] of them in which every moment is fixed; and the log frames the log
//! readers' tests feed in.
//!
//! Why it exists: the golden files (`tests/fixtures/metrics.prom`, `metrics.om`, `otlp.txt`)
//! must come out byte for byte the same on every machine and every day, so nothing here
//! reads a clock, `/proc` or the build's version. Compiled for the crate's own tests and
//! with the `test-support` feature (which the integration tests and benchmarks turn on): it
//! is not part of the library.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, SystemTime};

use crate::families::{PoolFigures, Reading};
use crate::instruments::{ApiCall, ExportOutcome, HostInstruments, Instruments};
use crate::metrics::Format;
use crate::otlp::RequestBuilder;
use crate::process::ProcessStats;
use crate::snapshot::{
    ContainerMeta, ContainerSnapshot, ContainerState, Health, HostInfo, HostSnapshot, Lifecycle,
    SnapshotStore, Spec,
};
use crate::stats::Sample;

/// The moment every fixture is read at: 2025-06-15T15:06:40Z.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// The version the fixtures' build info and OTLP scope carry, instead of this build's.
pub const VERSION: &str = "0.0.0-fixture";

/// The allowlisted Docker label of the golden fleet: (Docker key, Prometheus label name).
pub const LABEL: (&str, &str) = ("com.example.team", "container_label_com_example_team");

/// The recorded cgroup v1 one-shot stats answer of `tests/fixtures`, as a sample taken two
/// seconds before [`now`], with a CPU percentage and one block device (`8:0`, 4096 bytes
/// read, 8192 written) set.
pub fn recorded_sample() -> Result<Sample, String> {
    let path = format!(
        "{}/tests/fixtures/stats-cgroup-v1-oneshot.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let raw = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let (mut s, _) = crate::stats::sample(&raw, None, now() - Duration::from_secs(2));
    s.cpu_percent = Some(12.5);
    s.blkio.insert(
        "8:0".into(),
        crate::stats::BlkioCounters {
            read_bytes: 4096,
            write_bytes: 8192,
        },
    );
    Ok(s)
}

/// Publishes `hosts` hosts of `per_host` running containers each, every container carrying
/// `sample` (with one network interface and one block device, as a typical container). Each
/// host snapshot was built three seconds before [`now`].
pub fn publish_fleet(store: &SnapshotStore, hosts: usize, per_host: usize, sample: &Sample) {
    let info = Arc::new(HostInfo {
        server_version: "20.10.24".into(),
        api_version: "1.41".into(),
        operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
        os_type: "linux".into(),
        architecture: "x86_64".into(),
        kernel_version: "6.1.0".into(),
        cgroup_version: "2".into(),
        cgroup_driver: "systemd".into(),
        ncpu: Some(16),
        mem_total: Some(64 << 30),
    });
    let sample = Arc::new(sample.clone());
    for h in 0..hosts {
        let containers: Vec<ContainerSnapshot> = (0..per_host)
            .map(|c| ContainerSnapshot {
                meta: Arc::new(ContainerMeta {
                    id: format!("{h:08x}{c:056x}"),
                    name: format!("svc-{h}-{c}"),
                    image: "registry.example.org/team/service:1.2.3".into(),
                    image_id: format!("sha256:{c:064x}"),
                    compose_project: Some("shop".into()),
                    compose_service: Some(format!("svc-{}", c % 10)),
                    labels: Vec::new(),
                    state: ContainerState::Running,
                    health: Health::Healthy,
                    restart_count: 1,
                    exit_code: None,
                    started_at: Some(1.7e9),
                    spec: Spec {
                        memory_limit: 512 << 20,
                        cpu_quota: Some(50_000),
                        cpu_period: Some(100_000),
                        cpu_shares: 1024,
                    },
                }),
                stats: Some(sample.clone()),
                lifecycle: None,
            })
            .collect();
        let mut counts = BTreeMap::new();
        counts.insert(ContainerState::Running, per_host as u64);
        store.publish(HostSnapshot {
            id: h as i64 + 1,
            name: Arc::from(format!("host-{h:03}").as_str()),
            client: Arc::from("bench"),
            up: true,
            info: Some(info.clone()),
            error: None,
            containers,
            container_counts: counts,
            built_at: now() - Duration::from_secs(3),
            collection_duration: Duration::from_millis(20),
            collection_success: true,
            events: Arc::default(),
            stats_sources: crate::snapshot::StatsSources {
                cgroup: per_host as u64,
                api: 0,
            },
            monitored: true,
            attempted: true,
        });
    }
}

/// The golden fleet: two hosts of three containers (one of them stopped, with exits and an
/// OOM kill, one carrying the allowlisted label), Docker events, a third host that is down
/// and a fourth whose client's monitoring is stopped; request latencies and errors, OTLP
/// outcomes, pool and process figures. Every family of the table has a series in it.
pub fn reading() -> Result<Reading, String> {
    let store = SnapshotStore::default();
    publish_fleet(&store, 2, 3, &recorded_sample()?);
    let snap = store.load();
    let Some(first) = snap.hosts.first() else {
        return Err("the fleet has no host".into());
    };
    let mut h = (**first).clone();
    if let Some(c) = h.containers.get_mut(0) {
        let mut meta = (*c.meta).clone();
        meta.labels = vec![(Arc::from(LABEL.1), "core".to_string())];
        c.meta = Arc::new(meta);
        c.lifecycle = Some(Arc::new(Lifecycle {
            exits: BTreeMap::from([(3, 2), (137, 1)]),
            oom_events: 1,
            last_exit_code: Some(3),
        }));
    }
    if let Some(c) = h.containers.get_mut(1) {
        let mut meta = (*c.meta).clone();
        meta.state = ContainerState::Exited;
        meta.health = Health::None;
        meta.exit_code = Some(1);
        c.meta = Arc::new(meta);
        c.stats = None;
    }
    h.container_counts =
        BTreeMap::from([(ContainerState::Running, 2), (ContainerState::Exited, 1)]);
    h.events = Arc::new(BTreeMap::from([
        (("container".to_string(), "die".to_string()), 3),
        (("network".to_string(), "connect".to_string()), 1),
    ]));
    store.publish(h);
    let built_at = now() - Duration::from_secs(3);
    let down = HostSnapshot {
        built_at,
        collection_duration: Duration::from_millis(1500),
        ..HostSnapshot::down(
            3,
            Arc::from("host-down"),
            Arc::from("bench"),
            None,
            crate::docker::DockerError::pending(),
            Duration::ZERO,
            Arc::default(),
        )
    };
    store.publish(down);
    store.publish(HostSnapshot {
        built_at,
        ..HostSnapshot::idle(4, Arc::from("host-idle"), Arc::from("paused"))
    });

    let instruments = Instruments::default();
    let host = Arc::new(HostInstruments::new(
        Arc::from("host-000"),
        Arc::from("bench"),
        Arc::new(AtomicI64::new(0)),
    ));
    for ms in [3, 20, 20, 700] {
        host.observe(ApiCall::ContainerStats, Duration::from_millis(ms));
    }
    host.observe(ApiCall::Ping, Duration::from_micros(1_500));
    host.count_error("api_error", Some(500));
    host.count_error("timeout", None);
    instruments.insert(1, host);
    instruments.otlp.delivered(ExportOutcome::Success);
    instruments.otlp.delivered(ExportOutcome::Partial);
    instruments.otlp.failed("timeout", "no answer".into());

    Ok(Reading {
        snap: store.load(),
        now: now(),
        pool: PoolFigures {
            workers: 2,
            hosts: 3,
            active_streams: 2,
            inflight: 1,
            tasks: 42,
            shard: crate::shard::Shard { index: 1, total: 3 },
        },
        process: Some(ProcessStats {
            rss_bytes: 24 << 20,
            virtual_bytes: 512 << 20,
            cpu_seconds: 12.34,
            threads: 9,
            open_fds: 31,
            start_time_seconds: 1_749_990_000.0,
        }),
        instruments: instruments.all(),
        otlp: instruments.otlp.outcomes(),
        otlp_last_error: instruments.otlp.last_error().map(|(kind, _, _)| kind),
        otlp_last_success: Some(now() - Duration::from_secs(15)),
        version: VERSION,
    })
}

/// The golden fleet as `/metrics` renders it.
pub fn exposition(format: Format) -> Result<String, String> {
    let reading = Arc::new(reading()?);
    let mut out = String::new();
    crate::metrics::render(&reading, format, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The golden fleet as one OTLP request, from a builder whose start, version and instance
/// are fixed.
pub fn otlp_request()
-> Result<opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest, String> {
    let mut builder = RequestBuilder::new(
        &[
            ("service.instance.id".into(), "fixture".into()),
            ("service.version".into(), VERSION.into()),
        ],
        &[(LABEL.0.to_string(), LABEL.1.to_string())],
    );
    builder.start = now() - Duration::from_secs(3600);
    builder.version = VERSION;
    Ok(builder.request(&reading()?))
}

/// A log frame of stdout, as bollard hands it over.
pub fn stdout(s: &str) -> bollard::container::LogOutput {
    bollard::container::LogOutput::StdOut {
        message: bytes::Bytes::from(s.to_string()),
    }
}

/// A log frame of stderr, as bollard hands it over.
pub fn stderr(s: &str) -> bollard::container::LogOutput {
    bollard::container::LogOutput::StdErr {
        message: bytes::Bytes::from(s.to_string()),
    }
}
