use bollard::models::EventMessage;

use super::inventory::meta_from_inspect;
use super::*;
use crate::snapshot::ContainerState;

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(5),
        relist_interval: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
        concurrency: 4,
        max_retries: 3,
        retry_delay: Duration::from_secs(1),
        retry_max_delay: Duration::from_secs(30),
        labels: Arc::from(vec![(
            "com.example.team".to_string(),
            Arc::from("container_label_com_example_team"),
        )]),
        streams: Arc::default(),
        store: None,
        cgroup: None,
        warn_api_fallback: false,
        disk: None,
        containers: Default::default(),
        info_labels: Arc::from(Vec::new()),
    }
}

#[test]
fn backoff_is_quick_then_doubles_to_the_cap() {
    let s = settings();
    let delays: Vec<u64> = (1..=9).map(|n| s.backoff(n).as_secs()).collect();
    assert_eq!(delays, vec![1, 1, 1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(s.backoff(u32::MAX), Duration::from_secs(30));
}

#[test]
fn event_cursor_dedupes_and_resumes() {
    let ev = |nanos: i64, id: &str, action: &str| EventMessage {
        time_nano: Some(nanos),
        action: Some(action.into()),
        actor: Some(bollard::models::EventActor {
            id: Some(id.into()),
            attributes: None,
        }),
        ..Default::default()
    };
    let mut c = EventCursor::default();
    assert_eq!(c.since(), None);
    c.begin(4_500_000_000);
    assert!(
        !c.accept(&ev(4_000_000_000, "z", "start")),
        "before first contact"
    );
    assert!(c.accept(&ev(5_000_000_001, "a", "start")));
    assert!(
        c.accept(&ev(5_000_000_001, "b", "start")),
        "same instant, other container"
    );
    assert!(!c.accept(&ev(5_000_000_001, "a", "start")), "replayed");
    assert!(c.accept(&ev(6_000_000_000, "a", "die")));
    // Docker stamps events before publishing them: a slightly older one arriving after
    // a newer one still counts, once.
    assert!(c.accept(&ev(5_999_999_000, "c", "create")), "out of order");
    assert!(!c.accept(&ev(5_999_999_000, "c", "create")), "replayed");
    assert!(c.accept(&ev(9_000_000_000, "a", "start")));
    assert!(
        !c.accept(&ev(6_000_000_000, "a", "die")),
        "older than the reorder window"
    );
    assert_eq!(c.recent.len(), 1, "only the window is kept: {:?}", c.recent);
    // A resume asks again for the window before the newest event; what it replays is
    // known and skipped.
    assert_eq!(c.since().as_deref(), Some("7.000000000"));
    assert!(!c.accept(&ev(9_000_000_000, "a", "start")));
}

#[test]
fn meta_from_a_real_inspect_answer() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/inspect-running.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let i: ContainerInspectResponse = serde_json::from_str(&text).expect("decodes");
    let (m, raw) = meta_from_inspect(&i, &settings().labels).expect("meta");
    assert_eq!(m.state, ContainerState::Running);
    assert_eq!(m.name, "dockstat-fixture");
    assert_eq!(m.image, "dockstat-test/busybox:latest");
    assert!(m.image_id.starts_with("sha256:"));
    assert_eq!(m.spec.memory_limit, 64 * 1024 * 1024);
    assert_eq!(
        (m.spec.cpu_quota, m.spec.cpu_period),
        (Some(50_000), Some(100_000)),
        "--cpus 0.5"
    );
    assert_eq!(m.spec.cpu_shares, 1024);
    assert_eq!(
        m.labels,
        vec![(
            Arc::from("container_label_com_example_team"),
            "core".to_string()
        )]
    );
    assert_eq!(m.compose_project.as_deref(), Some("shop"));
    assert_eq!(m.exit_code, None);
    assert!(m.started_at.expect("started") > 1.7e9);
    assert!(raw.ends_with('Z'));
    assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
}
