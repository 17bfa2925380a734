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
    ContainerDisk, ContainerMeta, ContainerSnapshot, ContainerState, DiskUsage, Health, HostInfo,
    HostSnapshot, Lifecycle, SnapshotStore, Spec, VolumeDisk,
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
/// seconds before [`now`], with a CPU percentage, one block device (`8:0`, 4096 bytes in 2
/// reads, 8192 in 3 writes), a memory failcnt and swap, and what only the cgroup stats
/// source reads (processes, file descriptors, sockets, v2 pressure) set.
pub fn recorded_sample() -> Result<Sample, String> {
    let path = format!(
        "{}/tests/fixtures/stats-cgroup-v1-oneshot.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let raw = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let (mut s, _) = crate::stats::sample(raw, None, now() - Duration::from_secs(2));
    s.cpu_percent = Some(12.5);
    s.blkio.insert(
        "8:0".into(),
        crate::stats::BlkioCounters {
            read_bytes: 4096,
            write_bytes: 8192,
            reads: Some(2),
            writes: Some(3),
        },
    );
    if let Some(m) = s.memory.as_mut() {
        m.failcnt = Some(3);
        m.swap = Some(4096);
    }
    let psi = |waiting: f64, stalled: f64| crate::stats::Psi {
        waiting,
        stalled: Some(stalled),
    };
    crate::stats::add_extra(
        &mut s,
        &crate::cgroup::Extra {
            processes: Some(2),
            file_descriptors: Some(9),
            sockets: Some(1),
            ..Default::default()
        },
    );
    s.pressure = Some(crate::stats::Pressure {
        cpu: Some(psi(1.5, 0.25)),
        memory: Some(psi(0.125, 0.0625)),
        io: Some(psi(2.0, 1.0)),
    });
    Ok(s)
}

/// Publishes `hosts` hosts of `per_host` running containers each, every container carrying
/// `sample` (with one network interface and one block device, as a typical container). Each
/// host snapshot was built three seconds before [`now`].
pub fn publish_fleet(store: &SnapshotStore, hosts: usize, per_host: usize, sample: &Sample) {
    let info = Arc::new(HostInfo {
        name: "docker-host".into(),
        server_version: "20.10.24".into(),
        runtime: "docker".into(),
        api_version: "1.41".into(),
        operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
        os_type: "linux".into(),
        architecture: "x86_64".into(),
        kernel_version: "6.1.0".into(),
        cgroup_version: "2".into(),
        cgroup_driver: "systemd".into(),
        ncpu: Some(16),
        mem_total: Some(64 << 30),
        cpu_physical_cores: Some(8),
        cpu_sockets: Some(1),
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
                    info_labels: vec![crate::snapshot::InfoLabel {
                        name: "container_label_com_example_tier".into(),
                        key: "com.example.tier".into(),
                        value: format!("tier-{}", c % 2),
                    }],
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
                        memory_swap_limit: 1 << 30,
                        memory_reservation: 256 << 20,
                    },
                }),
                stats: Some(sample.clone()),
                lifecycle: None,
            })
            .collect();
        let mut counts = BTreeMap::new();
        counts.insert(ContainerState::Running, per_host as u64);
        // The last disk usage pass, a minute old: writable layers measured here.
        let disk = DiskUsage {
            at: Some(now() - Duration::from_secs(60)),
            success: true,
            duration: Duration::from_millis(1500),
            containers: containers
                .iter()
                .enumerate()
                .map(|(c, x)| {
                    (
                        x.meta.id.clone(),
                        ContainerDisk {
                            rw: Some(4096 * (c as u64 + 1)),
                            root_fs: Some((5 << 20) + 4096 * (c as u64 + 1)),
                            device: Some("253:1".into()),
                        },
                    )
                })
                .collect(),
            volumes: vec![VolumeDisk {
                name: "data".into(),
                driver: "local".into(),
                size: Some(20 << 20),
                references: Some(1),
            }],
            images: Some(300 << 20),
            build_cache: Some(0),
            logs: Some(12_345),
        };
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
            disk: Some(Arc::new(disk)),
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
    // Docker's figure for the stopped container (no device), and a volume whose driver
    // Docker cannot size.
    if let Some(disk) = &h.disk {
        let mut d = (**disk).clone();
        if let Some(c) = h.containers.get(1)
            && let Some(x) = d.containers.get_mut(&c.meta.id)
        {
            x.device = None;
        }
        d.volumes.push(VolumeDisk {
            name: "shared".into(),
            driver: "nfs".into(),
            size: None,
            references: Some(2),
        });
        h.disk = Some(Arc::new(d));
    }
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
        selection: Arc::default(),
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
