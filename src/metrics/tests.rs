use std::sync::Arc;

use super::*;
use crate::families::PoolFigures;
use crate::fixtures::publish_fleet;
use crate::instruments::ExportOutcome;
use crate::snapshot::ContainerState;
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
            tasks: 7,
            shard: Default::default(),
        }
    }
}

fn sample() -> Sample {
    crate::fixtures::recorded_sample().expect("recorded stats fixture")
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

/// A fleet reaching every rendering path: label values, family labels and help-free
/// values needing escaping, stopped containers, exits and OOM kills, non-finite, negative,
/// tiny and huge values, a down host with events, request histograms and errors, OTLP
/// outcomes.
fn awkward_fleet() -> (Arc<SnapshotStore>, Arc<Instruments>) {
    use std::sync::atomic::AtomicI64;
    use std::time::Duration;

    use crate::instruments::{ApiCall, HostInstruments};
    use crate::snapshot::{Health, Lifecycle};

    let store = Arc::new(SnapshotStore::default());
    publish_fleet(&store, 3, 4, &sample());
    let mut host = (*store.load().hosts[0]).clone();
    let c = &mut host.containers;

    let mut m = (*c[0].meta).clone();
    m.name = "we\"ird\\name\nline".into();
    m.image = "img\\".into();
    m.image_id = "sha256:\"quoted\"".into();
    m.compose_project = Some("shop\\eu\n".into());
    m.compose_service = None;
    m.labels = vec![
        (Arc::from("container_label_team"), "a\"b".into()),
        (Arc::from("container_label_tier"), "back\nend\\".into()),
    ];
    c[0].meta = Arc::new(m);
    c[0].lifecycle = Some(Arc::new(Lifecycle {
        exits: [(0, 2), (137, 1), (-1, 4)].into(),
        oom_events: 1,
        last_exit_code: Some(137),
    }));
    let mut s = (**c[0].stats.as_ref().expect("sampled")).clone();
    let eth0 = s.networks.values().next().copied().expect("one interface");
    s.networks.insert("we\"th\\1\n".into(), eth0);
    s.networks.get_mut("eth0").expect("eth0").rx_bytes = u64::MAX;
    s.blkio.insert("8:\"16\\".into(), BlkioCounters::default());
    c[0].stats = Some(Arc::new(s));

    let mut m = (*c[1].meta).clone();
    m.state = ContainerState::Exited;
    m.health = crate::snapshot::Health::None;
    m.exit_code = Some(143);
    m.started_at = Some(1_700_000_000.25);
    m.spec.cpu_quota = None;
    m.labels = vec![(Arc::from("container_label_team"), String::new())];
    c[1].meta = Arc::new(m);
    c[1].stats = None;
    c[1].lifecycle = Some(Arc::new(Lifecycle {
        exits: [(143, 3)].into(),
        oom_events: 0,
        last_exit_code: Some(143),
    }));

    let mut s = (**c[2].stats.as_ref().expect("sampled")).clone();
    s.cpu_percent = Some(f64::NAN);
    s.memory_percent = Some(f64::INFINITY);
    s.cpu_user_seconds = Some(-3.0);
    s.cpu_system_seconds = Some(-0.0);
    s.seen_at = 1e-7;
    s.cpu_total_seconds = Some(f64::NEG_INFINITY);
    c[2].stats = Some(Arc::new(s));
    let mut m = (*c[2].meta).clone();
    m.health = Health::Unhealthy;
    m.started_at = Some(1e21);
    c[2].meta = Arc::new(m);

    let mut s = (**c[3].stats.as_ref().expect("sampled")).clone();
    s.memory_percent = Some(f64::NEG_INFINITY);
    s.cpu_percent = Some(-2.5);
    s.networks.clear();
    s.blkio.clear();
    c[3].stats = Some(Arc::new(s));
    c[3].lifecycle = Some(Arc::new(Lifecycle {
        exits: Default::default(),
        oom_events: 7,
        last_exit_code: Some(1),
    }));
    host.events = Arc::new(
        [
            (("container".into(), "die".into()), 5),
            (("network".into(), "con\"nect\\".into()), 2),
        ]
        .into(),
    );
    store.publish(host);

    let mut down = (*store.load().hosts[1]).clone();
    down.up = false;
    down.info = None;
    down.containers.clear();
    down.collection_success = false;
    store.publish(down);

    let instruments = Arc::new(Instruments::default());
    for (id, name) in [(1, "host-000"), (3, "host-002")] {
        let inst = Arc::new(HostInstruments::new(
            Arc::from(name),
            Arc::from("bench"),
            Arc::new(AtomicI64::new(0)),
        ));
        for ms in [0, 3, 40, 700, 12_000] {
            inst.observe(ApiCall::ContainerList, Duration::from_millis(ms));
        }
        inst.observe(ApiCall::Ping, Duration::from_micros(1_234));
        inst.count_error("api", Some(404));
        inst.count_error("api", Some(500));
        inst.count_error("timeout", None);
        instruments.insert(id, inst);
    }
    instruments.otlp.delivered(ExportOutcome::Partial);
    instruments
        .otlp
        .failed("http", "503 from the receiver".to_string());
    (store, instruments)
}

/// The direct text path must write byte for byte what prometheus-client writes for every
/// family, in both formats.
#[test]
fn fast_path_renders_like_prometheus_client() {
    let (awkward, instruments) = awkward_fleet();
    let empty = Arc::new(SnapshotStore::default());
    for (store, instruments) in [
        (awkward, instruments),
        (empty, Arc::new(Instruments::default())),
    ] {
        let reading = Arc::new(Reading::take(&store, &instruments, &NoPool));
        for format in [Format::Text, Format::OpenMetrics] {
            let mut want = String::new();
            render_with_client(&reading, format, &mut want).expect("reference renders");
            // prometheus-client cannot write a counter without `_total`: it writes the
            // cAdvisor exceptions as untyped, the direct path as cAdvisor's counters.
            if format == Format::Text {
                for f in FAMILIES.iter().filter(|f| f.no_total) {
                    let name = f.exposed_name();
                    want = want.replace(
                        &format!("# TYPE {name} untyped\n"),
                        &format!("# TYPE {name} counter\n"),
                    );
                }
            }
            let mut got = String::new();
            super::render(&reading, format, &mut got).expect("renders");
            if let Some((i, (w, g))) = want
                .lines()
                .zip(got.lines())
                .enumerate()
                .find(|(_, (w, g))| w != g)
            {
                panic!("{format:?}, line {}:\nwant {w:?}\ngot  {g:?}", i + 1);
            }
            assert_eq!(want.len(), got.len(), "{format:?}: lengths differ");
            assert_eq!(want, got, "{format:?}");
        }
    }
}

/// The awkward fleet does reach the cases the comparison above is meant to cover.
#[test]
fn awkward_fleet_reaches_every_case() {
    let (store, instruments) = awkward_fleet();
    let reading = Arc::new(Reading::take(&store, &instruments, &NoPool));
    let mut text = String::new();
    super::render(&reading, Format::Text, &mut text).expect("renders");
    let mut om = String::new();
    super::render(&reading, Format::OpenMetrics, &mut om).expect("renders");
    for needle in [
        r#"name="we\"ird\\name\nline",image="img\\",container_label_team="a\"b",container_label_tier="back\nend\\"}"#,
        r#",image_id="sha256:\"quoted\"",compose_project="shop\\eu\n",compose_service=""} 1"#,
        r#"interface="we\"th\\1\n"}"#,
        r#"device="8:\"16\\"}"#,
        r#",exit_code="-1"} 4"#,
        r#",exit_code="143"} 3"#,
        r#"dockstat_container_last_exit_code{"#,
        r#",state="exited"} 1"#,
        r#"container_oom_events_total{"#,
        r#",interface="eth0"} 18446744073709553000.0"#,
        r#"} NaN"#,
        r#"} +Inf"#,
        r#"} -Inf"#,
        r#"} -3.0"#,
        r#"} 1e21"#,
        r#"} 1e-7"#,
        r#"} -2.5"#,
        r#"dockstat_events_total{host="host-000",client="bench",type="network",action="con\"nect\\"} 2"#,
        r#"dockstat_docker_request_duration_seconds_bucket{host="host-002""#,
        r#"dockstat_docker_errors_total{host="host-000",client="bench",kind="api",status="404"} 1"#,
        r#"dockstat_host_up{host="host-001",client="bench"} 0"#,
        r#"dockstat_otlp_last_error{kind="http"} 1"#,
    ] {
        assert!(text.contains(needle), "text lacks {needle}");
    }
    for needle in [
        "} inf\n",
        "} -inf\n",
        "# UNIT container_cpu_usage_seconds seconds\n",
    ] {
        assert!(om.contains(needle), "OpenMetrics lacks {needle:?}");
    }
}
