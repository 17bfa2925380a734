//! Choosing what is collected (issue 15 part 3), against the real daemons: containers left
//! out by name glob, label or their own opt-out label cost no stats call (every request the
//! exporter makes goes through a recording proxy in front of daemon B) and have no series;
//! families turned off with `metrics.disable` are absent from `/metrics` and from OTLP; an
//! unknown name there is a configuration error with its position.

mod common;
#[path = "common/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "common/proxy.rs"]
mod proxy;

use std::time::Duration;

use common::*;
use otlp_receiver::{Protocol, Receiver};
use proxy::Proxy;

#[test]
fn left_out_containers_cost_no_stats_call_and_have_no_series() {
    let d = Docker::b();
    let keep = unique("keep");
    let label = format!("dockstat.keep={keep}");
    let c_in = d.start("sel-in", &["--label", &label], "sleep 100000");
    let by_glob = d.start("sel-skipname", &["--label", &label], "sleep 100000");
    let opted_out = d.start(
        "sel-optout",
        &["--label", &label, "--label", "dockstat.monitor=false"],
        "sleep 100000",
    );
    let no_label = d.start("sel-nolabel", &[], "sleep 100000");
    let proxy = Proxy::start(&env().b_tcp);
    let exp = Exporter::start(
        "selection",
        &format!(
            "monitoring:\n  interval: 1s\n  relist_interval: 2s\n  stats_source: api\n\
             clients:\n  - name: lab\n    containers:\n      exclude:\n        names: ['*skipname*']\n\
             \x20   hosts:\n      - name: b\n        address: tcp://127.0.0.1:{}\n\
             \x20       containers:\n          include:\n            labels: ['{label}']\n",
            proxy.port
        ),
    );
    let f = [("name", c_in.name.as_str())];
    let first = exp
        .wait_for(Duration::from_secs(20), "the included container", |s| {
            s.value("container_last_seen", &f).is_some()
        })
        .value("container_last_seen", &f)
        .expect("last seen");
    // Started while the exporter runs: known from events first.
    let late_out = d.start("sel-late-skipname", &["--label", &label], "sleep 100000");
    let late_in = d.start("sel-late-in", &["--label", &label], "sleep 100000");
    // Several cycles and re-lists later.
    let s = exp.wait_for(Duration::from_secs(20), "five more samples", |s| {
        s.value("container_last_seen", &f)
            .is_some_and(|t| t >= first + 5.0)
            && s.value("container_last_seen", &[("name", late_in.name.as_str())])
                .is_some()
    });
    for c in [&by_glob, &opted_out, &no_label, &late_out] {
        assert!(
            !s.has_container(&c.name),
            "{} has series:\n{}",
            c.name,
            s.text
        );
    }
    let requests = proxy.requests();
    let stats_of = |c: &Container| {
        requests
            .iter()
            .filter(|r| r.contains(&format!("/containers/{}/stats", c.id)))
            .count()
    };
    assert!(
        stats_of(&c_in) >= 5,
        "the included container is sampled: {requests:#?}"
    );
    for c in [&by_glob, &opted_out, &no_label, &late_out] {
        assert_eq!(stats_of(c), 0, "{}: stats calls", c.name);
        // Nor inspected: the list, or the event's attributes, already say it is left out.
        assert!(
            !requests
                .iter()
                .any(|r| r.contains(&format!("/containers/{}/json", c.id))),
            "{}: inspected",
            c.name
        );
    }
    // The host's container count is of the followed containers only.
    assert_eq!(
        s.value(
            "dockstat_host_containers",
            &[("host", "b"), ("state", "running")]
        ),
        Some(2.0)
    );
}

#[test]
fn disabled_families_are_absent_from_metrics_and_otlp() {
    let d = Docker::a();
    let c = d.start("disabled", &[], "sleep 100000");
    let rx = Receiver::start(Protocol::Grpc, free_port(), None);
    let exp = Exporter::start(
        "disabled",
        &format!(
            "monitoring:\n  interval: 1s\n  relist_interval: 60s\n\
             metrics:\n  disable: [process, pressure, container_memory_failcnt, container_fs_reads_total]\n\
             otlp:\n  enabled: true\n  endpoint: http://127.0.0.1:{}\n  protocol: grpc\n  interval: 1s\n  timeout: 2s\n\
             clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
            rx.port,
            env().a_socket
        ),
    );
    let f = [("name", c.name.as_str())];
    let s = exp.wait_for(Duration::from_secs(20), "the container's figures", |s| {
        s.value("container_memory_usage_bytes", &f).is_some()
            && s.value("container_memory_max_usage_bytes", &f).is_some()
    });
    for gone in [
        "container_processes",
        "container_threads",
        "container_threads_max",
        "container_file_descriptors",
        "container_sockets",
        "container_memory_failcnt",
        "container_fs_reads_total",
    ] {
        assert!(
            !s.text.contains(&format!("\n{gone}{{")) && !s.text.contains(&format!(" {gone} ")),
            "{gone} is in /metrics"
        );
    }
    assert!(
        s.text
            .contains("# TYPE container_fs_reads_bytes_total counter")
    );
    let id = [("container.id", c.id.as_str())];
    let got = rx.wait_until(Duration::from_secs(20), "the container in an export", |e| {
        e.iter()
            .any(|r| !r.points("container.memory.usage", &id).is_empty())
    });
    let last = got.last().expect("an export");
    for gone in [
        "dockstat.container.processes",
        "dockstat.container.threads",
        "dockstat.container.file_descriptors",
        "dockstat.container.sockets",
        "dockstat.container.memory.failcnt",
        "dockstat.container.pressure.waiting",
    ] {
        assert!(
            got.iter().all(|r| r.metric(gone).is_none()),
            "{gone} is exported over OTLP"
        );
    }
    // container_fs_writes_total still feeds the metric; its read half is gone.
    assert!(got.iter().all(|r| {
        r.points(
            "dockstat.container.disk.operations",
            &[("disk.io.direction", "read")],
        )
        .is_empty()
    }));
    assert!(last.metric("dockstat.container.memory.max_usage").is_some());
}

#[test]
fn an_unknown_name_in_metrics_disable_is_a_config_error_with_its_position() {
    let dir = temp_dir("disable-unknown");
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        "metrics:\n  disable:\n    - process\n    - container_nope\nclients: []\n",
    )
    .expect("write");
    let out = std::process::Command::new(bin())
        .args(["--config"])
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:4:7: metrics.disable[1]: `container_nope`",
            path.display()
        )),
        "{err}"
    );
}

/// `dockstat_container_labels` carries the labels `metrics.info_labels` allows, and the
/// README's join puts one of them on another family's series in a real Prometheus.
#[test]
fn the_labels_info_family_joins_onto_other_series_in_prometheus() {
    let d = Docker::a();
    let team = unique("team");
    let c = d.start(
        "labels-info",
        &[
            "--label",
            &format!("com.example.team={team}"),
            "--label",
            "com.example.tier=back end \"quoted\"",
            "--label",
            "other.key=x",
        ],
        "sleep 100000",
    );
    let exp = Exporter::start(
        "labels-info",
        &format!(
            "monitoring:\n  interval: 1s\n  relist_interval: 60s\n\
             metrics:\n  info_labels: ['com.example.*']\n\
             clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
            env().a_socket
        ),
    );
    let f = [
        ("name", c.name.as_str()),
        ("container_label_com_example_team", team.as_str()),
        ("container_label_com_example_tier", "back end \"quoted\""),
    ];
    let s = exp.wait_for(Duration::from_secs(20), "the labels info series", |s| {
        s.value("dockstat_container_labels", &f) == Some(1.0)
    });
    let series = s
        .find("dockstat_container_labels", &f)
        .next()
        .expect("series");
    assert!(
        !series.labels.contains_key("container_label_other_key"),
        "only allowed keys: {series:?}"
    );
    // Not on the other families.
    assert!(
        s.find("container_memory_usage_bytes", &[("name", c.name.as_str())])
            .all(|m| !m.labels.contains_key("container_label_com_example_team"))
    );
    let prom = Prometheus::start(&exp.dir, exp.port, None);
    let q = format!(
        "container_memory_usage_bytes * on(host, id) group_left(container_label_com_example_team) dockstat_container_labels{{container_label_com_example_team=\"{team}\"}}"
    );
    let r = poll("the join", Duration::from_secs(30), || {
        prom.query(&q).ok().filter(|r| !r.is_empty())
    });
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0]["metric"]["container_label_com_example_team"],
        team.as_str()
    );
    assert_eq!(r[0]["metric"]["name"], c.name.as_str());
}
