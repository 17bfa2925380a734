use std::sync::Arc;
use std::time::SystemTime;

use super::*;
use crate::fixtures::publish_fleet;
use crate::stats::{BlkioCounters, Sample};

#[derive(Debug)]
struct NoPool;

impl PoolSource for NoPool {
    fn figures(&self) -> PoolFigures {
        PoolFigures {
            workers: 3,
            hosts: 4,
            active_streams: 2,
            inflight: 1,
        }
    }
}

fn sample() -> Sample {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/stats-cgroup-v1-oneshot.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let raw = serde_json::from_str(&text).expect("decodes");
    let (mut s, _) = crate::stats::sample(&raw, None, SystemTime::now());
    s.cpu_percent = Some(12.5);
    s.blkio.insert(
        "8:0".into(),
        BlkioCounters {
            read_bytes: 4096,
            write_bytes: 8192,
        },
    );
    s
}

fn render(store: Arc<SnapshotStore>, format: Format) -> String {
    let exp = Exposition::new(store, Arc::new(Instruments::default()), Arc::new(NoPool));
    let mut out = String::new();
    exp.render(format, &mut out).expect("render");
    out
}

#[test]
fn every_family_is_described_in_both_formats() {
    let store = Arc::new(SnapshotStore::default());
    publish_fleet(&store, 2, 3, &sample());
    let text = render(store.clone(), Format::Text);
    let om = render(store, Format::OpenMetrics);
    for f in FAMILIES {
        let exposed = f.exposed_name();
        assert!(
            text.contains(&format!("# TYPE {exposed} ")),
            "text format lacks {exposed}"
        );
        let om_name = exposed.strip_suffix("_total").unwrap_or(&exposed);
        assert!(
            om.contains(&format!("# TYPE {om_name} ")),
            "OpenMetrics lacks {om_name}"
        );
        if let Some(u) = f.unit {
            assert!(om.contains(&format!("# UNIT {om_name} {}\n", u.as_str())));
        }
    }
    assert!(om.ends_with("# EOF\n"));
    assert!(!text.contains("# EOF"));
}

#[test]
fn container_series_carry_identity_and_family_labels() {
    let store = Arc::new(SnapshotStore::default());
    publish_fleet(&store, 1, 1, &sample());
    let text = render(store, Format::Text);
    let id = format!("{:08x}{:056x}", 0, 0);
    let base = format!(
        "host=\"host-000\",client=\"bench\",id=\"{id}\",name=\"svc-0-0\",image=\"registry.example.org/team/service:1.2.3\""
    );
    for line in [
        format!("container_cpu_usage_seconds_total{{{base}}} 1.591706571"),
        format!("container_network_receive_bytes_total{{{base},interface=\"eth0\"}} 736"),
        format!("container_fs_writes_bytes_total{{{base},device=\"8:0\"}} 8192"),
        format!("dockstat_container_state{{{base},state=\"running\"}} 1"),
        format!("dockstat_container_health_status{{{base},status=\"healthy\"}} 1"),
        format!("dockstat_container_cpu_percent{{{base}}} 12.5"),
        format!("container_spec_memory_limit_bytes{{{base}}} 536870912"),
        "machine_cpu_cores{host=\"host-000\",client=\"bench\"} 16".to_string(),
        "dockstat_host_containers{host=\"host-000\",client=\"bench\",state=\"running\"} 1"
            .to_string(),
        "dockstat_pool_workers 3".to_string(),
        "dockstat_pool_inflight_requests 1".to_string(),
    ] {
        assert!(text.contains(&line), "missing: {line}");
    }
}

#[test]
fn label_values_are_escaped() {
    let store = Arc::new(SnapshotStore::default());
    publish_fleet(&store, 1, 1, &sample());
    let mut snap = (*store.load().hosts[0]).clone();
    let mut meta = (*snap.containers[0].meta).clone();
    meta.name = "we\"ird\\name\nx".into();
    meta.labels = vec![(Arc::from("container_label_team"), "a\"b".into())];
    snap.containers[0].meta = Arc::new(meta);
    store.publish(snap);
    let text = render(store, Format::Text);
    assert!(text.contains(r#"name="we\"ird\\name\nx""#), "{text}");
    assert!(text.contains(r#"container_label_team="a\"b""#));
}

#[test]
fn removed_hosts_and_containers_leave_no_series() {
    let store = Arc::new(SnapshotStore::default());
    publish_fleet(&store, 2, 2, &sample());
    store.remove(1);
    let text = render(store, Format::Text);
    assert!(!text.contains("host=\"host-000\""));
    assert!(text.contains("host=\"host-001\""));
}

#[test]
fn accept_header_picks_the_format() {
    assert_eq!(Format::from_accept(None), Format::Text);
    assert_eq!(
        Format::from_accept(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
        Format::Text
    );
    assert_eq!(
        Format::from_accept(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )),
        Format::OpenMetrics
    );
}

/// The pre-rendered label block must be byte-for-byte what prometheus-client writes when
/// the same labels are encoded pair by pair, escaping included, in both formats.
#[test]
fn label_block_renders_like_pairwise_labels() {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    let store = Arc::new(SnapshotStore::default());
    publish_fleet(&store, 1, 1, &sample());
    let mut host = (*store.load().hosts[0]).clone();
    let mut meta = (*host.containers[0].meta).clone();
    meta.name = "we\"ird\\name\nline".into();
    meta.image = "img\\".into();
    meta.labels = vec![
        (Arc::from("container_label_team"), "a\"b".into()),
        (Arc::from("container_label_tier"), "back\nend\\".into()),
    ];
    host.containers[0].meta = Arc::new(meta.clone());
    store.publish(host.clone());

    let pairs: Vec<(String, String)> = [
        ("host", &*host.name),
        ("client", &*host.client),
        ("id", meta.id.as_str()),
        ("name", meta.name.as_str()),
        ("image", meta.image.as_str()),
        ("container_label_team", "a\"b"),
        ("container_label_tier", "back\nend\\"),
        ("state", "running"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut reference = Registry::default();
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    family.get_or_create(&pairs).set(1);
    reference.register("dockstat_container_state", "state", family);

    for format in [Format::Text, Format::OpenMetrics] {
        let mut expected = String::new();
        match format {
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut expected, &reference)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut expected, &reference)
            }
        }
        .expect("reference renders");
        let want = expected
            .lines()
            .find(|l| l.starts_with("dockstat_container_state{"))
            .expect("reference series");
        let ours = render(store.clone(), format);
        assert!(
            ours.lines().any(|l| l == want),
            "{format:?}: no line equal to {want:?} in\n{ours}"
        );
    }
}
