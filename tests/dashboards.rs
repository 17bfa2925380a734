//! The Grafana dashboards in `dashboards/`: importable (a `DS_PROMETHEUS` input and no other
//! data source anywhere), well formed (unique panel ids, laid-out panels, the `client`,
//! `host` and `container` variables), using only metrics the exporter exports; and every
//! query of every panel returns data from a real Prometheus scraping the real exporter,
//! with test containers that make each panel non-empty (CPU-bound, writing to disk, exiting
//! with 3, restarting, OOM-killed, health-checked) and a host whose socket is missing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const DASHBOARDS: [&str; 3] = ["overview", "container", "exporter"];

fn ds() -> Value {
    serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"})
}

fn load(name: &str) -> Value {
    let path = repo().join(format!("dashboards/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not JSON: {e}"))
}

/// Every panel, those nested in collapsed rows included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter());
        }
    }
    out
}

/// One query of one panel.
struct Query {
    dashboard: &'static str,
    panel: String,
    ref_id: String,
    expr: String,
    instant: bool,
}

impl Query {
    fn label(&self) -> String {
        format!("{} / {} / {}", self.dashboard, self.panel, self.ref_id)
    }
}

fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for name in DASHBOARDS {
        let dash = load(name);
        for p in panels(&dash) {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(Query {
                    dashboard: name,
                    panel: p["title"].as_str().unwrap_or("").to_string(),
                    ref_id: t["refId"].as_str().unwrap_or("").to_string(),
                    expr: t["expr"].as_str().unwrap_or("").to_string(),
                    instant: t["instant"] == true,
                });
            }
        }
    }
    out
}

/// The query variables of a dashboard: name → `label_values(...)` query.
fn variable_queries(dash: &Value) -> BTreeMap<String, String> {
    dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .expect("variable query");
            (v["name"].as_str().expect("name").to_string(), q.to_string())
        })
        .collect()
}

/// Identifiers in a PromQL expression that name exporter metrics.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| {
            ["container_", "dockstat_", "machine_", "process_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

/// `(families the exporter exports, those of them that are histograms)`.
fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    let run = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().expect("run");
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let names = run(&["metrics"]).lines().map(str::to_string).collect();
    let histograms = run(&["metrics", "--markdown"])
        .lines()
        .filter(|l| l.contains("| histogram |"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect();
    (names, histograms)
}

/// Every `"datasource"` value anywhere in the JSON must be the `${DS_PROMETHEUS}` reference.
fn check_datasources(v: &Value, path: &str, bad: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{path}.{k}");
                if k == "datasource" && *child != ds() {
                    bad.push(format!("{here} = {child}"));
                }
                check_datasources(child, &here, bad);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                check_datasources(child, &format!("{path}[{i}]"), bad);
            }
        }
        _ => {}
    }
}

/// `$name` references in an expression.
fn variables_used(expr: &str) -> BTreeSet<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| {
            rest.trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn dashboards_are_importable_well_formed_and_use_only_exported_metrics() {
    let (exported, histograms) = exported();
    let mut uids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for name in DASHBOARDS {
        let dash = load(name);
        let uid = dash["uid"].as_str().expect("uid").to_string();
        assert!(uids.insert(uid.clone()), "{name}: uid {uid} used twice");
        assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(
            dash["schemaVersion"].as_u64().is_some_and(|v| v >= 38),
            "{name}: schemaVersion {} < 38 (Grafana 10)",
            dash["schemaVersion"]
        );

        // Importable: one DS_PROMETHEUS data source input, and every data source reference
        // anywhere (panels, targets, variables) is that input.
        let inputs = dash["__inputs"].as_array().expect("__inputs");
        assert!(
            inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
                && i["type"] == "datasource"
                && i["pluginId"] == "prometheus"),
            "{name}: no DS_PROMETHEUS input: {inputs:?}"
        );
        let mut bad = Vec::new();
        check_datasources(&dash, name, &mut bad);
        assert!(bad.is_empty(), "{name}: other data sources: {bad:#?}");

        // Variables: the data source one first (provisioned copies resolve
        // ${DS_PROMETHEUS} through it), then chained label_values queries.
        let list = dash["templating"]["list"].as_array().expect("templating");
        assert_eq!(list[0]["name"], "DS_PROMETHEUS", "{name}");
        assert_eq!(list[0]["type"], "datasource", "{name}");
        assert_eq!(list[0]["query"], "prometheus", "{name}");
        let vars = variable_queries(&dash);
        // job and instance first: one exporter per machine (cAdvisor's way) is told apart
        // by the scrape's labels.
        assert_eq!(vars["job"], "label_values(dockstat_host_up, job)");
        assert_eq!(
            vars["instance"],
            "label_values(dockstat_host_up{job=~\"$job\"}, instance)"
        );
        assert_eq!(
            vars["client"],
            "label_values(dockstat_host_up{job=~\"$job\",instance=~\"$instance\"}, client)"
        );
        assert_eq!(
            vars["host"],
            "label_values(dockstat_host_up{job=~\"$job\",instance=~\"$instance\",client=~\"$client\"}, host)"
        );
        if name != "exporter" {
            // The exporter's own dashboard has nothing per container.
            assert_eq!(
                vars["container"],
                "label_values(dockstat_container_info{job=~\"$job\",instance=~\"$instance\",client=~\"$client\",host=~\"$host\"}, name)"
            );
        }
        let defined: BTreeSet<String> = list
            .iter()
            .map(|v| v["name"].as_str().expect("name").to_string())
            .chain(["__rate_interval", "__interval", "__range"].map(String::from))
            .collect();

        // Panels: unique ids, laid out on the 24-column grid without overlapping.
        let mut ids = BTreeSet::new();
        let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
        for p in panels(&dash) {
            let title = p["title"].as_str().unwrap_or("?");
            let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"));
            assert!(ids.insert(id), "{name}: panel id {id} used twice");
            let g = &p["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| {
                g[k].as_u64()
                    .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
            });
            assert!(h > 0 && w > 0 && x + w <= 24, "{title}: gridPos {g}");
            for cx in x..x + w {
                for cy in y..y + h {
                    if let Some(other) = cells.insert((cx, cy), title.to_string()) {
                        panic!("{name}: {title} overlaps {other}");
                    }
                }
            }
            if p["type"] == "row" {
                continue;
            }
            assert!(
                p["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{title}"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            let refs: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
            assert_eq!(refs.len(), targets.len(), "{title}: refIds not unique");
            for t in targets {
                assert_eq!(t["datasource"], ds(), "{title}");
                let expr = t["expr"].as_str().expect("expr");
                for v in variables_used(expr) {
                    assert!(defined.contains(&v), "{title}: ${v} is not defined: {expr}");
                }
            }
        }

        // Links to another dashboard name one of ours.
        let text = dash.to_string();
        for part in text.split("/d/").skip(1) {
            let target = part.split('/').next().unwrap_or("");
            assert!(
                DASHBOARDS.iter().any(|d| load(d)["uid"] == target),
                "{name}: link to unknown dashboard {target}"
            );
        }

        // Every metric a query or a variable uses is exported.
        let exprs = queries()
            .into_iter()
            .filter(|q| q.dashboard == name)
            .map(|q| (q.label(), q.expr))
            .chain(
                vars.iter()
                    .map(|(v, q)| (format!("{name} / ${v}"), q.clone())),
            );
        for (label, expr) in exprs {
            let names = metric_names(&expr);
            assert!(!names.is_empty(), "{label} uses no exporter metric: {expr}");
            for n in names {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        n.strip_suffix(s)
                            .filter(|f| histograms.contains(*f))
                            .map(str::to_string)
                    })
                    .unwrap_or(n);
                assert!(
                    exported.contains(&family),
                    "{label} uses `{family}`, which the exporter does not export"
                );
                used.insert(family);
            }
        }
    }
    eprintln!(
        "dashboards use {} of {} families; unused: {:?}",
        used.len(),
        exported.len(),
        exported.difference(&used).collect::<Vec<_>>()
    );
}

#[test]
fn provisioning_files_and_readme_match_the_dashboards() {
    let yaml = |p: &str| -> serde_yaml::Value {
        let text = std::fs::read_to_string(repo().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let ds = yaml("dashboards/provisioning/datasources/prometheus.yml");
    let source = &ds["datasources"][0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    assert_eq!(source["uid"].as_str(), Some("prometheus"));
    assert_eq!(source["url"].as_str(), Some("http://prometheus:9090"));
    assert_eq!(source["isDefault"].as_bool(), Some(true));
    let dash = yaml("dashboards/provisioning/dashboards/dockstat.yml");
    let provider = &dash["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert_eq!(
        provider["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );

    // The README describes every dashboard and each of its rows.
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let section = readme
        .split("\n## Dashboards and alerts\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a ## Dashboards and alerts section");
    for name in DASHBOARDS {
        assert!(
            section.contains(&format!("dashboards/{name}.json")),
            "README does not describe {name}.json"
        );
        for p in panels(&load(name)) {
            if p["type"] == "row" {
                let row = p["title"].as_str().expect("row title");
                assert!(
                    section.contains(&format!("**{row}**")),
                    "README's {name} description lacks row **{row}**"
                );
            }
        }
    }
}

/// Grafana's variables for one test run, as Grafana would expand them.
fn expand(expr: &str, containers: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$job", "dockstat")
        .replace("$instance", ".*")
        .replace("$client", "lab")
        .replace("$host", "(a|gone)")
        .replace("$container", containers);
    assert!(!out.contains('$'), "unexpanded variable in {out}");
    out
}

/// A short description of a result: series count and the labels that tell them apart.
fn describe(result: &[Value], roles: &BTreeMap<String, &str>) -> String {
    let mut parts = BTreeSet::new();
    for s in result {
        let m = &s["metric"];
        let mut d = Vec::new();
        if let Some(n) = m["name"].as_str() {
            d.push(roles.get(n).copied().unwrap_or(n).to_string());
        } else if let Some(h) = m["host"].as_str() {
            d.push(format!("host {h}"));
        }
        for k in [
            "state",
            "status",
            "exit_code",
            "kind",
            "endpoint",
            "device",
            "type",
            "action",
            "version",
        ] {
            if let Some(v) = m[k].as_str() {
                d.push(format!("{k}={v}"));
            }
        }
        if d.is_empty() {
            d.push("(one series)".into());
        }
        parts.insert(d.join(" "));
    }
    let all: Vec<String> = parts.into_iter().collect();
    let shown = if all.len() > 6 {
        format!("{}, …", all[..6].join(", "))
    } else {
        all.join(", ")
    };
    format!("{} series: {shown}", result.len())
}

fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every query of every panel, run by a real Prometheus scraping the exporter, returns at
/// least one series; the panels about an event show the test container that caused it.
#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() {
    let started = Instant::now();
    let e = env();
    let a = Docker::a();
    let root = a.run(&["info", "--format", "{{.DockerRootDir}}"]);
    let (majmin, devpath) = block_device_of(Path::new(&root));
    let exp = Exporter::start(
        "dash",
        &format!(
            "monitoring:\n  interval: 1s\n  max_retries: 1\n  retry_delay: 500ms\n  retry_max_delay: 2s\n  request_timeout: 2s\n\
             clients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n      - name: gone\n        address: unix://{}\n",
            e.a_socket,
            missing_socket().display()
        ),
    );
    exp.wait_for(Duration::from_secs(15), "host a up", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    let prom = Prometheus::start(&exp.dir, exp.port, None);
    poll("Prometheus's first scrape", Duration::from_secs(30), || {
        prom.query("dockstat_host_up")
            .ok()
            .filter(|r| r.len() == 2)
            .map(|_| ())
    });

    // Started once Prometheus scrapes, so that the counters of the event ones are seen at 0
    // before the event (an increase needs two samples).
    let limit = format!("{devpath}:10gb");
    let containers = [
        (
            "cpu-busy",
            a.start(
                "dash-busy",
                &["--cpus", "0.2", "--memory", "64m"],
                "while true; do :; done",
            ),
        ),
        (
            "disk-writer",
            // A throttle rule far above what it writes turns blkio accounting on (see
            // tests/collection.rs a_direct_write_shows_in_fs_writes).
            a.start(
                "dash-write",
                &["--device-write-bps", &limit],
                "while true; do dd if=/dev/zero of=/blk.out bs=1M count=4 oflag=direct 2>/dev/null; sleep 1; done",
            ),
        ),
        (
            "health-checked",
            a.start(
                "dash-health",
                &["--health-cmd", "true", "--health-interval", "1s"],
                "sleep 600",
            ),
        ),
        ("exit-3", a.start("dash-exit3", &[], "sleep 2; exit 3")),
        (
            "restarting",
            a.start(
                "dash-restart",
                &["--restart", "on-failure:2"],
                "sleep 2; exit 1",
            ),
        ),
        (
            "oom",
            a.start(
                "dash-oom",
                &["--memory", "32m", "--memory-swap", "32m"],
                "sleep 3; head -c 200m /dev/zero | tail",
            ),
        ),
    ];
    let roles: BTreeMap<String, &str> = containers
        .iter()
        .map(|(role, c)| (c.name.clone(), *role))
        .collect();
    let name_of = |role: &str| {
        containers
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, c)| c.name.clone())
            .expect("role")
    };
    let regex = format!(
        "({})",
        containers
            .iter()
            .map(|(_, c)| c.name.as_str())
            .collect::<Vec<_>>()
            .join("|")
    );

    // Panels about an event must show the container that caused it.
    type Check = Box<dyn Fn(&[Value]) -> bool>;
    let expect: Vec<(&str, &str, &str, &str, Check)> = vec![
        ("overview", "Restarts", "A", "restarting", {
            let n = name_of("restarting");
            Box::new(move |r| r.iter().any(|s| s["metric"]["name"] == n.as_str()))
        }),
        ("overview", "OOM events", "A", "oom", {
            let n = name_of("oom");
            Box::new(move |r| r.iter().any(|s| s["metric"]["name"] == n.as_str()))
        }),
        (
            "overview",
            "Exits by code (totals)",
            "A",
            "exit-3 and restarting",
            Box::new(|r| {
                ["1", "3"]
                    .iter()
                    .all(|c| r.iter().any(|s| s["metric"]["exit_code"] == *c))
            }),
        ),
        (
            "overview",
            "Exits by code",
            "A",
            "restarting (3 exits with 1)",
            Box::new(|r| {
                r.iter()
                    .any(|s| s["metric"]["exit_code"] == "1" && value(s) > 0.0)
            }),
        ),
        ("container", "CPU throttling", "A", "cpu-busy", {
            let n = name_of("cpu-busy");
            Box::new(move |r| {
                r.iter()
                    .any(|s| s["metric"]["name"] == n.as_str() && value(s) > 0.0)
            })
        }),
        ("container", "Block I/O bytes", "B", "disk-writer", {
            let n = name_of("disk-writer");
            let dev = majmin.clone();
            Box::new(move |r| {
                r.iter().any(|s| {
                    s["metric"]["name"] == n.as_str()
                        && s["metric"]["device"] == dev.as_str()
                        && value(s) > 0.0
                })
            })
        }),
        (
            "exporter",
            "API errors by kind",
            "A",
            "host gone",
            Box::new(|r| {
                r.iter().any(|s| {
                    s["metric"]["host"] == "gone" && s["metric"]["kind"] == "socket_not_found"
                })
            }),
        ),
    ];

    let all = queries();
    let deadline = Instant::now() + Duration::from_secs(45);
    let results = loop {
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for q in &all {
            let expr = expand(&q.expr, &regex);
            match prom.query(&expr) {
                Ok(r) => {
                    if r.is_empty() {
                        missing.push(format!("{}: no series for {expr}", q.label()));
                    }
                    results.push(r);
                }
                Err(err) => panic!("{}: Prometheus rejects {expr}: {err}", q.label()),
            }
        }
        for (dash, panel, ref_id, cause, ok) in &expect {
            let (_, r) = all
                .iter()
                .zip(&results)
                .find(|(q, _)| q.dashboard == *dash && q.panel == *panel && q.ref_id == *ref_id)
                .unwrap_or_else(|| panic!("no query {dash} / {panel} / {ref_id}"));
            if !ok(r) {
                missing.push(format!(
                    "{dash} / {panel} / {ref_id}: nothing from {cause} yet"
                ));
            }
        }
        if missing.is_empty() {
            break results;
        }
        assert!(
            Instant::now() < deadline,
            "after {:?}:\n{}\n--- exporter log tail ---\n{}",
            started.elapsed(),
            missing.join("\n"),
            exp.log_text()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    // Grafana runs the time series targets as range queries: those work too.
    let end = now();
    for q in all.iter().filter(|q| !q.instant) {
        let expr = expand(&q.expr, &regex);
        let data = prom
            .try_api(&format!(
                "query_range?query={}&start={:.3}&end={end:.3}&step=1",
                url_encode(&expr),
                end - 30.0
            ))
            .unwrap_or_else(|err| panic!("{}: {err}", q.label()));
        assert!(
            data["result"].as_array().is_some_and(|r| !r.is_empty()),
            "{}: empty range query {expr}",
            q.label()
        );
    }

    // The variables' label_values queries, as Grafana sends them (/api/v1/label/…/values).
    for name in DASHBOARDS {
        for (var, q) in variable_queries(&load(name)) {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (series, label) = inner.rsplit_once(',').expect("two arguments");
            let series = expand(series.trim(), &regex);
            let data = prom.api(&format!(
                "label/{}/values?match[]={}",
                label.trim(),
                url_encode(&series)
            ));
            let values: BTreeSet<&str> = data
                .as_array()
                .expect("values")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let want: Vec<String> = match var.as_str() {
                "job" => vec!["dockstat".into()],
                "instance" => vec![],
                "client" => vec!["lab".into()],
                "host" => vec!["a".into(), "gone".into()],
                _ => roles.keys().cloned().collect(),
            };
            for w in &want {
                assert!(
                    values.contains(w.as_str()),
                    "{name} ${var}: {w} missing from {values:?}"
                );
            }
        }
    }

    eprintln!("panel queries (containers by test role):");
    for (q, r) in all.iter().zip(&results) {
        eprintln!("  {:<60} {}", q.label(), describe(r, &roles));
    }
    eprintln!(
        "{} queries of {} dashboards returned data after {:?}",
        all.len(),
        DASHBOARDS.len(),
        started.elapsed()
    );
}

/// A unix socket path where nothing listens (the `gone` host: Docker API errors).
fn missing_socket() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-missing.sock", unique("dash")))
}
