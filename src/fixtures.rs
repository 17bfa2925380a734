//! Synthetic fleets for benchmarks and unit tests: many hosts and containers built from one
//! recorded stats answer, published into a [`SnapshotStore`]. Not part of the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::snapshot::{
    ContainerMeta, ContainerSnapshot, ContainerState, Health, HostInfo, HostSnapshot,
    SnapshotStore, Spec,
};
use crate::stats::Sample;

/// The recorded cgroup v1 one-shot stats answer of `tests/fixtures`, as a sample with a CPU
/// percentage and one block device (`8:0`, 4096 bytes read, 8192 written) set.
pub fn recorded_sample() -> Result<Sample, String> {
    let path = format!(
        "{}/tests/fixtures/stats-cgroup-v1-oneshot.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let raw = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let (mut s, _) = crate::stats::sample(&raw, None, SystemTime::now());
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
/// `sample` (with one network interface and one block device, as a typical container).
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
            built_at: SystemTime::now(),
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
