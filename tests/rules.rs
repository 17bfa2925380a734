//! The alert rules in `alerts/`: promtool checks and unit-tests them, every metric they use
//! is one the exporter exports, and a real Prometheus server scraping the exporter runs
//! every rule expression and fires `DockerHostDown` when daemon B is stopped.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;

fn rules_file() -> std::path::PathBuf {
    repo().join("alerts/dockstat.rules.yml")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool (Debian's prometheus package) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Every `expr:` of the rules file, as one string each (multi-line ones joined).
fn expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(rules_file()).expect("rules file");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("rules YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name").to_string();
            let expr = rule["expr"].as_str().expect("expr").trim().to_string();
            out.push((name, expr));
        }
    }
    out
}

/// Metric names in a PromQL expression: identifiers with the exporter's prefixes.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| {
            w.starts_with("container_") || w.starts_with("dockstat_") || w.starts_with("machine_")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let checked = promtool(&["check", "rules", "alerts/dockstat.rules.yml"]);
    let want = format!("SUCCESS: {} rules found", expressions().len());
    assert!(checked.contains(&want), "{checked}");
    let tested = promtool(&["test", "rules", "alerts/tests.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every rule has at least one unit test that expects it to fire.
    let tests = std::fs::read_to_string(repo().join("alerts/tests.yml")).expect("tests");
    for (name, _) in expressions() {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "alerts/tests.yml has no test for {name}"
        );
    }
}

#[test]
fn every_metric_the_rules_use_is_exported() {
    let out = Command::new(bin())
        .arg("metrics")
        .output()
        .expect("run the exporter");
    assert!(out.status.success());
    let exported: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let mut used = BTreeSet::new();
    for (name, expr) in expressions() {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{name} uses no exporter metric: {expr}");
        for n in names {
            assert!(
                exported.contains(&n),
                "{name} uses `{n}`, which the exporter does not export"
            );
            used.insert(n);
        }
    }
    eprintln!("rules use: {used:?}");
}

/// A real Prometheus scraping the exporter evaluates every rule expression without error,
/// and `DockerHostDown` (its `for` shortened to 0s for the test) fires for daemon B while
/// B is stopped, and only for B.
#[test]
fn real_prometheus_runs_the_rules_and_fires_host_down() {
    let e = env();
    let a = Docker::a();
    let _b = Docker::b();
    let busy = a.start(
        "rules-busy",
        &["--cpus", "0.1", "--memory", "64m"],
        "while true; do :; done",
    );
    let exp = Exporter::start(
        "rules",
        &format!(
            "monitoring:\n  interval: 1s\n  max_retries: 1\n  retry_delay: 500ms\n  retry_max_delay: 2s\n  request_timeout: 2s\n\
             clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n      - name: b\n        address: tcp://{}\n",
            e.a_socket, e.b_tcp
        ),
    );
    exp.wait_for(Duration::from_secs(15), "both hosts up", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
            && s.value("dockstat_host_up", &[("host", "b")]) == Some(1.0)
    });

    let rules = std::fs::read_to_string(rules_file())
        .expect("rules")
        .replace("for: 2m", "for: 0s");
    let rules_path = exp.dir.join("rules.yml");
    std::fs::write(&rules_path, rules).expect("write rules");
    let prom = Prometheus::start(&exp.dir, exp.port, Some(&rules_path));
    poll(
        "Prometheus to scrape the exporter",
        Duration::from_secs(30),
        || {
            let v = prom.api("query?query=dockstat_host_up");
            (v["result"].as_array().map_or(0, Vec::len) == 2).then_some(())
        },
    );

    // Every expression parses and runs against real data.
    for (name, expr) in expressions() {
        let v = prom.api(&format!("query?query={}", url_encode(&expr)));
        eprintln!(
            "{name}: {} series now",
            v["result"].as_array().map_or(0, Vec::len)
        );
    }
    // The ratios the container rules compare match real series one to one and keep the
    // container's labels (the alert text names the container).
    for ratio in [
        "container_memory_working_set_bytes/container_spec_memory_limit_bytes",
        "rate(container_cpu_cfs_throttled_periods_total[1m])/rate(container_cpu_cfs_periods_total[1m])",
    ] {
        let q = url_encode(ratio);
        let name = poll(ratio, Duration::from_secs(30), || {
            prom.api(&format!("query?query={q}"))["result"]
                .as_array()
                .and_then(|r| {
                    r.iter()
                        .find(|s| s["metric"]["name"] == busy.name.as_str())
                        .cloned()
                })
        });
        let v: f64 = name["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("a value");
        assert!((0.0..=1.0).contains(&v), "{ratio} = {v}");
        assert_eq!(name["metric"]["host"], "a");
    }

    let rule_groups = prom.api("rules");
    let loaded: usize = rule_groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(loaded, expressions().len(), "{rule_groups}");

    let firing_host_down = |prom: &Prometheus| -> Vec<String> {
        prom.api("alerts")["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter(|a| a["labels"]["alertname"] == "DockerHostDown" && a["state"] == "firing")
            .map(|a| a["labels"]["host"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(firing_host_down(&prom).is_empty(), "nothing down yet");

    let _restart = RestartB;
    test_env("stop-b");
    let firing = poll(
        "DockerHostDown to fire for b",
        Duration::from_secs(30),
        || {
            let f = firing_host_down(&prom);
            (!f.is_empty()).then_some(f)
        },
    );
    assert_eq!(firing, vec!["b".to_string()], "only b is down");
}
