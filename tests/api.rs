//! The admin API (`/api/v1`) against the real daemons: container actions and their effect
//! as `docker inspect` sees it, logs (tail, since/until, streams, timestamps, follow), hosts
//! added at run time (collected, persisted across a restart, removed), read-only hosts
//! from the file, health checks, the deny label, ambiguous names, the audit log, and
//! monitoring start/stop with the pool figures.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "admin-token-0123456789";

/// `- name: <client>` with its hosts, indented for the `clients:` list.
fn client_yaml(name: &str, hosts: &[(&str, String)]) -> String {
    let mut s = format!("  - name: {name}\n    hosts:\n");
    for (host, address) in hosts {
        s.push_str(&format!(
            "      - name: {host}\n        address: {address}\n"
        ));
    }
    s
}

/// The configuration after `listen`/`database`: fast collection, one admin token, and
/// extra `monitoring:` and `api:` keys (lines indented by two spaces).
fn config(monitoring: &str, api: &str, clients: &[String]) -> String {
    format!(
        "monitoring:\n  interval: 1s\n  retry_delay: 500ms\n  retry_max_delay: 2s\n{monitoring}\
         api:\n  tokens:\n    - name: adm\n      role: admin\n      token: {TOKEN}\n{api}\
         clients:\n{}",
        clients.concat()
    )
}

fn unix(path: &str) -> String {
    format!("unix://{path}")
}

/// The admin API of one exporter, called with the admin token.
struct Api {
    port: u16,
}

impl Api {
    fn of(e: &Exporter) -> Api {
        Api { port: e.admin_port }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        api(
            self.port,
            method,
            &format!("/api/v1{path}"),
            Some(TOKEN),
            body.as_deref(),
        )
    }

    /// A call that must answer `want`; returns the body.
    fn expect(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, v) = self.call(method, path, body);
        assert_eq!(status, want, "{method} {path} answered {status}: {v}");
        v
    }

    fn ok(&self, method: &str, path: &str) -> Value {
        self.expect(method, path, None, 200)
    }

    /// A call that must fail with `status` and error `code`; returns the error object.
    fn error(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
        code: &str,
    ) -> Value {
        let v = self.expect(method, path, body, status);
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: an error has a message: {v}"
        );
        v["error"].clone()
    }

    fn client_id(&self, name: &str) -> i64 {
        let v = self.ok("GET", "/clients");
        v.as_array()
            .expect("client list")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no client {name} in {v}"))["id"]
            .as_i64()
            .expect("client id")
    }

    fn host(&self, client: i64, name: &str) -> Value {
        let v = self.ok("GET", &format!("/clients/{client}/hosts"));
        v.as_array()
            .expect("host list")
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("no host {name} in {v}"))
            .clone()
    }

    fn status(&self) -> Value {
        self.ok("GET", "/status")
    }
}

/// `(stream, line)` of a logs answer.
fn lines(v: &Value) -> Vec<(String, String)> {
    v["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {v}"))
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().expect("stream").to_string(),
                l["line"].as_str().expect("line").to_string(),
            )
        })
        .collect()
}

fn texts(ls: &[(String, String)], stream: &str) -> Vec<String> {
    ls.iter()
        .filter(|(s, _)| s == stream)
        .map(|(_, l)| l.clone())
        .collect()
}

fn numbered(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

fn state(c: &Container) -> String {
    c.inspect("{{.State.Status}}")
}

/// `docker run -d --name <name>` (the same name may be used on several daemons).
fn run_named(d: &Docker, name: &str, cmd: &str) -> Container {
    let image = env().image;
    let id = d.run(&[
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "dockstat.test=1",
        &image,
        "sh",
        "-c",
        cmd,
    ]);
    Container {
        docker: d.clone(),
        name: name.to_string(),
        id,
    }
}

#[test]
fn stop_start_restart_remove_act_on_the_container() {
    let e = env();
    let a = Docker::a();
    let c = a.start("life", &[], "sleep 600");
    let exp = Exporter::start(
        "life",
        &config("", "", &[client_yaml("lab", &[("a", unix(&e.a_socket))])]),
    );
    let api = Api::of(&exp);
    let lab = api.client_id("lab");
    let path = format!("/clients/{lab}/containers/{}", c.name);

    // Inspect by name and by a unique id prefix.
    let v = api.ok("GET", &path);
    assert_eq!(v["container"]["id"], c.id.as_str());
    assert_eq!(v["container"]["name"], c.name.as_str());
    assert_eq!(v["container"]["host"], "a");
    assert_eq!(v["container"]["state"], "running");
    assert_eq!(v["inspect"]["Id"], c.id.as_str());
    assert_eq!(v["inspect"]["State"]["Running"], true);
    let v = api.ok("GET", &format!("/clients/{lab}/containers/{}", &c.id[..12]));
    assert_eq!(v["container"]["name"], c.name.as_str());

    // The client by name as well as by id.
    let by_name = format!("/clients/lab/containers/{}", c.name);
    let v = api.ok("GET", &by_name);
    assert_eq!(v["container"]["id"], c.id.as_str());
    let v = api.ok("GET", "/clients/lab");
    assert_eq!(v["id"], lab);
    let v = api.ok("GET", "/hosts/a");
    assert_eq!(v["name"], "a");
    let err = api.error(
        "GET",
        "/clients/no-such-client/containers",
        None,
        404,
        "not_found",
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no client named `no-such-client`"),
        "{err}"
    );

    // Stop, then stop again: nothing to change the second time. The answer gives the
    // state after the action, and the one before.
    let v = api.ok("POST", &format!("{by_name}/stop?t=1"));
    assert_eq!(v["action"], "stop");
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["container"]["id"], c.id.as_str());
    assert_eq!(v["container"]["state"], "exited", "{v}");
    assert_eq!(v["previousState"], "running", "{v}");
    assert_eq!(state(&c), "exited");
    let v = api.ok("POST", &format!("{path}/stop?t=1"));
    assert_eq!(v["changed"], false, "stopping a stopped container: {v}");
    assert_eq!(state(&c), "exited");

    // Start, then start again.
    let v = api.ok("POST", &format!("{path}/start"));
    assert_eq!(v["action"], "start");
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["container"]["state"], "running", "{v}");
    assert_eq!(v["previousState"], "exited", "{v}");
    assert_eq!(state(&c), "running");
    let v = api.ok("POST", &format!("{path}/start"));
    assert_eq!(v["changed"], false, "starting a running container: {v}");

    // Restart: running again, with a later StartedAt.
    let started = docker_time(&c.inspect("{{.State.StartedAt}}"));
    let v = api.ok("POST", &format!("{path}/restart?t=1"));
    assert_eq!(v["action"], "restart");
    assert_eq!(v["changed"], true);
    assert_eq!(state(&c), "running");
    let restarted = docker_time(&c.inspect("{{.State.StartedAt}}"));
    assert!(
        restarted > started,
        "StartedAt moved from {started} to {restarted}"
    );

    // Removing a running container needs force: Docker's 409 comes through.
    let err = api.error("DELETE", &path, None, 409, "conflict");
    assert_eq!(err["kind"], "api_error", "{err}");
    assert_eq!(err["dockerStatus"], 409, "{err}");
    assert_eq!(err["host"], "a", "{err}");
    assert_eq!(state(&c), "running", "still there after the refused remove");

    let v = api.ok("DELETE", &format!("{path}?force=true"));
    assert_eq!(v["action"], "remove");
    assert_eq!(v["container"]["id"], c.id.as_str());
    assert!(
        a.try_run(&["inspect", &c.id]).is_err(),
        "the container is gone"
    );
    api.error("GET", &path, None, 404, "not_found");
    api.error("POST", &format!("{path}/start"), None, 404, "not_found");
}

#[test]
fn logs_are_complete_per_stream_and_filtered_by_tail_since_until_and_stream() {
    let e = env();
    let a = Docker::a();
    let c = a.start(
        "logs",
        &[],
        "for i in $(seq 1 50); do echo out-$i; echo err-$i >&2; done; sleep 3; \
         for i in $(seq 51 60); do echo out-$i; echo err-$i >&2; done; sleep 600",
    );
    let exp = Exporter::start(
        "logs",
        &config("", "", &[client_yaml("lab", &[("a", unix(&e.a_socket))])]),
    );
    let api = Api::of(&exp);
    let lab = api.client_id("lab");
    let logs = format!("/clients/{lab}/containers/{}/logs", c.name);

    // Both batches printed (the second one 3 s after the first).
    let full = poll("all 120 log lines", Duration::from_secs(15), || {
        let v = api.ok("GET", &logs);
        (lines(&v).len() >= 120).then_some(v)
    });
    assert_eq!(full["container"]["id"], c.id.as_str());
    let all = lines(&full);
    assert_eq!(all.len(), 120, "{all:?}");
    assert_eq!(texts(&all, "stdout"), numbered("out", 1..=60));
    assert_eq!(texts(&all, "stderr"), numbered("err", 1..=60));
    assert!(
        all.iter()
            .all(|(s, l)| (s == "stdout") == l.starts_with("out-")),
        "every line carries its own stream: {all:?}"
    );
    assert!(
        full["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .all(|l| l.get("timestamp").is_none()),
        "no timestamps unless asked"
    );

    // tail counts lines over both streams, as Docker does.
    let tail = lines(&api.ok("GET", &format!("{logs}?tail=5")));
    // (Docker reads the two pipes separately: which streams the last 5 are from varies.)
    assert_eq!(tail, all[115..].to_vec(), "the last 5 lines");
    assert_eq!(
        lines(&api.ok("GET", &format!("{logs}?tail=all"))).len(),
        120
    );

    // One stream only.
    let out = lines(&api.ok("GET", &format!("{logs}?stdout=true")));
    assert!(out.iter().all(|(s, _)| s == "stdout"), "{out:?}");
    assert_eq!(texts(&out, "stdout"), numbered("out", 1..=60));
    let err = lines(&api.ok("GET", &format!("{logs}?stderr=true")));
    assert!(err.iter().all(|(s, _)| s == "stderr"), "{err:?}");
    assert_eq!(texts(&err, "stderr"), numbered("err", 1..=60));

    // Timestamps: Docker's, one per line, within the container's life, in order per stream.
    let stamped = api.ok("GET", &format!("{logs}?timestamps=true"));
    let created = docker_time(&c.inspect("{{.Created}}"));
    let mut times: Vec<(String, String, f64)> = Vec::new();
    for l in stamped["lines"].as_array().expect("lines") {
        let ts = l["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("no timestamp in {l}"));
        let t = docker_time(ts);
        assert!(
            t >= created - 1.0 && t <= now() + 1.0,
            "timestamp {ts} outside the container's life"
        );
        let line = l["line"].as_str().expect("line");
        assert!(!line.contains(ts), "the timestamp is split off: {l}");
        times.push((l["stream"].as_str().expect("s").into(), line.into(), t));
    }
    assert_eq!(times.len(), 120);
    for stream in ["stdout", "stderr"] {
        let ts: Vec<f64> = times
            .iter()
            .filter(|x| x.0 == stream)
            .map(|x| x.2)
            .collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{stream} in order");
    }
    let batch = |l: &str| -> u32 { l.split('-').nth(1).and_then(|n| n.parse().ok()).expect("n") };
    let first_end = times
        .iter()
        .filter(|x| batch(&x.1) <= 50)
        .map(|x| x.2)
        .fold(f64::MIN, f64::max);
    let (second_start, second_stamp) = times
        .iter()
        .filter(|x| batch(&x.1) > 50)
        .map(|x| (x.2, x.1.clone()))
        .fold(
            (f64::MAX, String::new()),
            |a, b| if b.0 < a.0 { b } else { a },
        );
    assert!(
        second_start - first_end > 2.0,
        "the batches are 3 s apart: {first_end} .. {second_start} ({second_stamp})"
    );
    let cut = first_end.floor() as i64 + 1;
    assert!((cut as f64) < second_start);

    // since (unix seconds): the second batch only.
    let later = lines(&api.ok("GET", &format!("{logs}?since={cut}")));
    assert_eq!(texts(&later, "stdout"), numbered("out", 51..=60));
    assert_eq!(texts(&later, "stderr"), numbered("err", 51..=60));
    assert_eq!(later.len(), 20);
    // since (RFC 3339): the first line of the second batch and everything after it.
    let second_ts = stamped["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line"] == second_stamp.as_str())
        .and_then(|l| l["timestamp"].as_str())
        .expect("timestamp")
        .to_string();
    let later = lines(&api.ok("GET", &format!("{logs}?since={second_ts}")));
    assert_eq!(later.len(), 20, "since={second_ts}: {later:?}");
    // until: the first batch only.
    let earlier = lines(&api.ok("GET", &format!("{logs}?until={cut}")));
    assert_eq!(texts(&earlier, "stdout"), numbered("out", 1..=50));
    assert_eq!(texts(&earlier, "stderr"), numbered("err", 1..=50));
    // since + tail + one stream together.
    let v = lines(&api.ok("GET", &format!("{logs}?since={cut}&stderr=true&tail=30")));
    assert!(v.iter().all(|(s, _)| s == "stderr"), "{v:?}");
    assert_eq!(texts(&v, "stderr"), numbered("err", 51..=60));
    // An empty answer is an empty list (it once dropped the connection).
    let none = lines(&api.ok("GET", &format!("{logs}?tail=0")));
    assert!(none.is_empty(), "{none:?}");
    // Naming one stream false means the other one only.
    let only_err = lines(&api.ok("GET", &format!("{logs}?stdout=false")));
    assert_eq!(texts(&only_err, "stderr"), numbered("err", 1..=60));
    assert!(texts(&only_err, "stdout").is_empty(), "{only_err:?}");
    // RFC 3339 with a numeric offset: the same instant as `cut`, written in UTC+01:00.
    let plus_one = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(cut as u64 + 3600),
    )
    .to_string()
    .replace('Z', "%2B01:00");
    let later = lines(&api.ok("GET", &format!("{logs}?since={plus_one}")));
    assert_eq!(later.len(), 20, "since={plus_one}: {later:?}");

    // Bad parameters are 400s that name the field.
    let err = api.error("GET", &format!("{logs}?tail=-1"), None, 400, "invalid");
    assert_eq!(err["field"], "tail");
    let err = api.error(
        "GET",
        &format!("{logs}?since=yesterday"),
        None,
        400,
        "invalid",
    );
    assert_eq!(err["field"], "since");
    api.error(
        "GET",
        &format!("{logs}?stdout=false&stderr=false"),
        None,
        400,
        "invalid",
    );
}

#[test]
fn followed_logs_stream_new_lines_until_the_client_leaves() {
    let e = env();
    let a = Docker::a();
    let c = a.start(
        "follow",
        &[],
        "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done",
    );
    let exp = Exporter::start(
        "follow",
        &config(
            "",
            "  max_log_follows: 1\n",
            &[client_yaml("lab", &[("a", unix(&e.a_socket))])],
        ),
    );
    let api = Api::of(&exp);
    let lab = api.client_id("lab");
    let logs = format!("/api/v1/clients/{lab}/containers/{}/logs", c.name);
    let tick = |v: &Value| -> u64 {
        assert_eq!(v["stream"], "stdout", "{v}");
        v["line"]
            .as_str()
            .and_then(|l| l.strip_prefix("tick-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a tick: {v}"))
    };
    poll("a few ticks", Duration::from_secs(10), || {
        let (_, v) = api.call(
            "GET",
            &format!("/clients/{lab}/containers/{}/logs", c.name),
            None,
        );
        (v["lines"].as_array().map_or(0, Vec::len) >= 3).then_some(())
    });

    let mut s = api_stream(
        exp.admin_port,
        &format!("{logs}?follow=true&tail=1"),
        Some(TOKEN),
    );
    assert_eq!(s.status, 200, "{}", s.head);
    assert!(
        s.head.to_ascii_lowercase().contains("application/x-ndjson"),
        "{}",
        s.head
    );
    let opened = Instant::now();
    let first = tick(&s.next_json(Duration::from_secs(5)).expect("the tail line"));
    // New lines arrive one by one as the container prints them, not at the end.
    let mut arrivals = Vec::new();
    for k in 1..=6 {
        let v = s
            .next_json(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("tick {} did not arrive", first + k));
        assert_eq!(tick(&v), first + k, "lines in order, none missing");
        arrivals.push(opened.elapsed().as_secs_f64());
    }
    eprintln!(
        "follow: ticks {}..{} arrived at {arrivals:.2?} s",
        first + 1,
        first + 6
    );
    assert!(
        arrivals[5] - arrivals[0] >= 1.0,
        "six lines printed 0.3 s apart arrive over time: {arrivals:?}"
    );
    assert!(arrivals[5] < 6.0, "and promptly: {arrivals:?}");

    // One follow slot: a second stream is refused while the first one is open.
    let mut second = api_stream(
        exp.admin_port,
        &format!("{logs}?follow=true&tail=0"),
        Some(TOKEN),
    );
    assert_eq!(second.status, 429, "{}", second.head);
    let body: Value =
        serde_json::from_str(second.rest(Duration::from_secs(5)).trim()).expect("JSON");
    assert_eq!(body["error"]["code"], "too_many_requests");

    // The client leaves: the server notices at its next write and frees the slot.
    s.close();
    let mut again = poll(
        "the follow slot to be freed",
        Duration::from_secs(10),
        || {
            let s = api_stream(
                exp.admin_port,
                &format!("{logs}?follow=true&tail=1"),
                Some(TOKEN),
            );
            if s.status == 200 {
                Some(s)
            } else {
                assert_eq!(s.status, 429, "{}", s.head);
                None
            }
        },
    );
    let v = again.next_json(Duration::from_secs(5)).expect("a line");
    let n = tick(&v);
    assert!(
        n >= first + 6,
        "the new stream starts at the current tail: {v}"
    );
    let v = again.next_json(Duration::from_secs(3)).expect("a new line");
    assert_eq!(tick(&v), n + 1, "and follows from there");
    // The container stops: Docker ends the stream, and so does the API.
    a.run(&["stop", "-t", "1", &c.id]);
    again.rest(Duration::from_secs(10));
    assert!(again.ended, "the followed stream ends with the container");

    // A quiet container: following it answers at once (no deadline on silence) and
    // delivers the first line it prints.
    let quiet = a.start("follow-quiet", &[], "sleep 4; echo late; sleep 600");
    let asked = Instant::now();
    let mut q = api_stream(
        exp.admin_port,
        &format!(
            "/api/v1/clients/{lab}/containers/{}/logs?follow=true",
            quiet.name
        ),
        Some(TOKEN),
    );
    assert_eq!(q.status, 200, "{}", q.head);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "answered in {:?}",
        asked.elapsed()
    );
    let v = q.next_json(Duration::from_secs(10)).expect("the late line");
    assert_eq!(v["line"], "late", "{v}");
}

#[test]
fn hosts_added_through_the_api_are_collected_persisted_and_removed() {
    let e = env();
    let a = Docker::a();
    let b = Docker::b();
    let on_a = a.start("hosts-a", &[], "sleep 600");
    let on_b = b.start("hosts-b", &[], "sleep 600");
    let cfg = config(
        "",
        "",
        &[client_yaml("static", &[("a", unix(&e.a_socket))])],
    );
    let mut exp = Exporter::start("hosts", &cfg);
    let api = Api::of(&exp);

    // The file's client and host are read-only.
    let st = api.client_id("static");
    let host_a = api.host(st, "a");
    assert_eq!(host_a["source"], "config");
    let a_id = host_a["id"].as_i64().expect("id");
    api.error(
        "PATCH",
        &format!("/hosts/{a_id}"),
        Some(json!({"name": "renamed"})),
        409,
        "read_only",
    );
    api.error("DELETE", &format!("/hosts/{a_id}"), None, 409, "read_only");
    api.error("DELETE", &format!("/clients/{st}"), None, 409, "read_only");
    assert_eq!(api.host(st, "a")["name"], "a", "unchanged");

    // A client and host B added at run time.
    let client = api.expect("POST", "/clients", Some(json!({"name": "dyn"})), 201);
    assert_eq!(client["name"], "dyn");
    assert_eq!(client["source"], "api");
    let dyn_id = client["id"].as_i64().expect("id");
    api.error(
        "POST",
        "/clients",
        Some(json!({"name": "dyn"})),
        409,
        "conflict",
    );
    let address = format!("tcp://{}", e.b_tcp);
    let host = api.expect(
        "POST",
        &format!("/clients/{dyn_id}/hosts"),
        Some(json!({"name": "b", "address": address})),
        201,
    );
    let b_id = host["id"].as_i64().expect("id");
    assert_eq!(host["clientId"], dyn_id);
    assert_eq!(host["endpoint"]["address"], address.as_str());
    assert_eq!(host["source"], "api");
    assert_eq!(host["enabled"], true);
    // The same endpoint cannot be added twice.
    api.error(
        "POST",
        &format!("/clients/{dyn_id}/hosts"),
        Some(json!({"name": "b2", "address": address})),
        409,
        "conflict",
    );

    let b_series = [
        ("name", on_b.name.as_str()),
        ("host", "b"),
        ("client", "dyn"),
    ];
    let a_series = [
        ("name", on_a.name.as_str()),
        ("host", "a"),
        ("client", "static"),
    ];
    let added = Instant::now();
    exp.wait_for(Duration::from_secs(15), "B's container collected", |s| {
        s.value("container_cpu_usage_seconds_total", &b_series)
            .is_some()
    });
    eprintln!("host b collected {:?} after it was added", added.elapsed());

    // Health now: B answers; nothing listens at port 1.
    let b_version = b.run(&["version", "--format", "{{.Server.Version}}"]);
    let health = api.ok("GET", &format!("/hosts/{b_id}/health"));
    assert_eq!(health["reachable"], true, "{health}");
    assert_eq!(health["hostId"], b_id);
    assert_eq!(health["serverVersion"], b_version.as_str());
    assert!(
        health["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{health}"
    );
    let latency = health["latencyMs"].as_f64().expect("latency");
    assert!(latency > 0.0 && latency < 5000.0, "latency {latency} ms");
    assert!(health["error"].is_null(), "{health}");

    let dead = api.expect(
        "POST",
        &format!("/clients/{dyn_id}/hosts"),
        Some(json!({"name": "dead", "address": "tcp://127.0.0.1:1"})),
        201,
    );
    let dead_id = dead["id"].as_i64().expect("id");
    let health = api.ok("GET", &format!("/hosts/{dead_id}/health"));
    assert_eq!(health["reachable"], false, "{health}");
    assert_eq!(health["error"]["kind"], "connection_refused", "{health}");
    assert!(health["latencyMs"].as_f64().is_some(), "{health}");
    assert!(health["serverVersion"].is_null());

    let listed = api.ok("GET", &format!("/clients/{dyn_id}/hosts/health"));
    let by_name = |n: &str| {
        listed
            .as_array()
            .expect("list")
            .iter()
            .find(|h| h["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {listed}"))
            .clone()
    };
    assert_eq!(by_name("b")["up"], true, "{listed}");
    assert_eq!(by_name("b")["collecting"], true, "{listed}");
    assert!(by_name("b")["containers"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(by_name("dead")["up"], false, "{listed}");

    // Restart on the same database: the run-time hosts are still there and collected.
    let dir = exp.dir.clone();
    let status = exp.terminate(Duration::from_secs(10));
    assert!(status.success(), "exporter exit: {status}");
    drop(exp);
    let exp = Exporter::start_in(dir, &cfg);
    let api = Api::of(&exp);
    assert_eq!(api.client_id("dyn"), dyn_id);
    let host = api.host(dyn_id, "b");
    assert_eq!(host["id"], b_id);
    assert_eq!(host["source"], "api");
    assert_eq!(host["endpoint"]["address"], address.as_str());
    let restarted = Instant::now();
    exp.wait_for(
        Duration::from_secs(15),
        "B collected after the restart",
        |s| {
            s.value("container_cpu_usage_seconds_total", &b_series)
                .is_some()
                && s.value("container_cpu_usage_seconds_total", &a_series)
                    .is_some()
        },
    );
    eprintln!(
        "host b collected {:?} after the restart",
        restarted.elapsed()
    );

    // Removed: its series leave /metrics, A's stay.
    api.expect("DELETE", &format!("/hosts/{b_id}"), None, 204);
    let s = exp.wait_for(Duration::from_secs(5), "B's series gone", |s| {
        !s.has_container(&on_b.name)
    });
    assert!(
        s.value("container_cpu_usage_seconds_total", &a_series)
            .is_some()
    );
    api.error("GET", &format!("/hosts/{b_id}"), None, 404, "not_found");
    let left: Vec<Value> = api
        .ok("GET", &format!("/clients/{dyn_id}/hosts"))
        .as_array()
        .expect("list")
        .iter()
        .map(|h| h["name"].clone())
        .collect();
    assert_eq!(left, vec![json!("dead")]);
}

#[test]
fn deny_label_refuses_actions_and_a_name_on_two_hosts_is_ambiguous() {
    let e = env();
    let a = Docker::a();
    let b = Docker::b();
    let denied = a.start(
        "deny",
        &["--label", "dockstat.actions=deny"],
        "echo hello-deny; sleep 600",
    );
    let name = unique("amb");
    let amb_a = run_named(&a, &name, "echo on-a; sleep 600");
    let amb_b = run_named(&b, &name, "echo on-b; sleep 600");
    let exp = Exporter::start(
        "deny",
        &config(
            "",
            "",
            &[client_yaml(
                "both",
                &[("a", unix(&e.a_socket)), ("b", unix(&e.b_socket))],
            )],
        ),
    );
    let api = Api::of(&exp);
    let both = api.client_id("both");

    // The deny label: every action is refused and the container keeps running.
    let started = denied.inspect("{{.State.StartedAt}}");
    let path = format!("/clients/{both}/containers/{}", denied.name);
    for (method, p) in [
        ("POST", format!("{path}/stop?t=1")),
        ("POST", format!("{path}/restart?t=1")),
        ("POST", format!("{path}/start")),
        ("DELETE", format!("{path}?force=true")),
    ] {
        api.error(method, &p, None, 403, "actions_denied");
    }
    assert_eq!(state(&denied), "running");
    assert_eq!(
        denied.inspect("{{.State.StartedAt}}"),
        started,
        "never restarted"
    );
    // Reading is still allowed.
    let v = api.ok("GET", &path);
    assert_eq!(v["container"]["id"], denied.id.as_str());
    assert_eq!(v["inspect"]["Config"]["Labels"]["dockstat.actions"], "deny");
    let logs = api.ok("GET", &format!("{path}/logs"));
    assert_eq!(
        lines(&logs),
        vec![("stdout".to_string(), "hello-deny".to_string())]
    );
    let listed = api.ok(
        "GET",
        &format!("/clients/{both}/containers?label=dockstat.actions=deny&host=a"),
    );
    assert!(
        listed["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .any(|c| c["Id"] == denied.id.as_str() && c["host"] == "a"),
        "{listed}"
    );

    // One name on both daemons: ambiguous without `host`.
    let path = format!("/clients/{both}/containers/{name}");
    let expected: BTreeSet<(String, String)> = [
        ("a".to_string(), amb_a.id.clone()),
        ("b".to_string(), amb_b.id.clone()),
    ]
    .into();
    for (method, p) in [
        ("GET", path.clone()),
        ("GET", format!("{path}/logs")),
        ("POST", format!("{path}/stop?t=1")),
        ("DELETE", format!("{path}?force=true")),
    ] {
        let err = api.error(method, &p, None, 409, "ambiguous");
        let candidates: BTreeSet<(String, String)> = err["candidates"]
            .as_array()
            .unwrap_or_else(|| panic!("candidates in {err}"))
            .iter()
            .map(|c| {
                assert_eq!(c["name"], name.as_str());
                (
                    c["host"].as_str().expect("host").to_string(),
                    c["id"].as_str().expect("id").to_string(),
                )
            })
            .collect();
        assert_eq!(candidates, expected, "{method} {p}");
    }
    assert_eq!(state(&amb_a), "running");
    assert_eq!(state(&amb_b), "running");

    // With `host` (name or id) it is one container.
    let v = api.ok("GET", &format!("{path}?host=b"));
    assert_eq!(v["container"]["id"], amb_b.id.as_str());
    let a_id = api.host(both, "a")["id"].as_i64().expect("id");
    let v = api.ok("GET", &format!("{path}?host={a_id}"));
    assert_eq!(v["container"]["id"], amb_a.id.as_str());
    let logs = api.ok("GET", &format!("{path}/logs?host=b"));
    assert_eq!(
        lines(&logs),
        vec![("stdout".to_string(), "on-b".to_string())]
    );
    let v = api.ok("POST", &format!("{path}/stop?host=b&t=1"));
    assert_eq!(v["container"]["id"], amb_b.id.as_str());
    assert_eq!(v["changed"], true);
    assert_eq!(state(&amb_b), "exited");
    assert_eq!(state(&amb_a), "running", "only B's container stopped");
    api.error("GET", &format!("{path}?host=nope"), None, 404, "not_found");
}

#[test]
fn audit_log_records_calls_newest_first_and_pages() {
    let e = env();
    let a = Docker::a();
    let stopped = a.start("audit-stop", &[], "sleep 600");
    let running = a.start("audit-rm", &[], "sleep 600");
    let exp = Exporter::start(
        "audit",
        &config("", "", &[client_yaml("lab", &[("a", unix(&e.a_socket))])]),
    );
    let api = Api::of(&exp);
    let lab = api.client_id("lab");

    // Without a valid token nothing is answered.
    let (status, v) = common::api(exp.admin_port, "GET", "/api/v1/audit", None, None);
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );

    let stop_path = format!("/api/v1/clients/{lab}/containers/{}/stop?t=1", stopped.name);
    api.ok(
        "POST",
        &format!("/clients/{lab}/containers/{}/stop?t=1", stopped.name),
    );
    assert_eq!(state(&stopped), "exited");
    let rm_path = format!("/api/v1/clients/{lab}/containers/{}", running.name);
    api.error(
        "DELETE",
        &format!("/clients/{lab}/containers/{}", running.name),
        None,
        409,
        "conflict",
    );
    assert_eq!(state(&running), "running");
    let (status, _) = common::api(
        exp.admin_port,
        "POST",
        &stop_path,
        Some("wrong-token-0123456789"),
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(state(&stopped), "exited");

    let page = api.ok("GET", "/audit");
    let entries = page["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len(), 3, "GETs are not audited: {page}");
    assert!(page["nextBefore"].is_null(), "{page}");
    let (denied, failed, ok) = (&entries[0], &entries[1], &entries[2]);

    assert_eq!(ok["token"], "adm");
    assert_eq!(ok["role"], "admin");
    assert_eq!(ok["method"], "POST");
    assert_eq!(
        ok["route"],
        "/api/v1/clients/{client}/containers/{container}/stop"
    );
    assert_eq!(
        ok["path"],
        format!("/api/v1/clients/{lab}/containers/{}/stop", stopped.name)
    );
    assert_eq!(
        ok["target"],
        format!("client {lab}: a/{} ({})", stopped.name, stopped.id)
    );
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["outcome"], "ok");
    assert!(ok["error"].is_null(), "{ok}");

    assert_eq!(failed["token"], "adm");
    assert_eq!(failed["method"], "DELETE");
    assert_eq!(
        failed["route"],
        "/api/v1/clients/{client}/containers/{container}"
    );
    assert_eq!(failed["path"], rm_path);
    assert_eq!(failed["target"], format!("client {lab}: {}", running.name));
    assert_eq!(failed["status"], 409);
    assert_eq!(failed["outcome"], "failed");
    let msg = failed["error"].as_str().expect("error message");
    assert!(
        msg.contains("host `a`") && msg.contains("running container"),
        "Docker's refusal is kept: {msg}"
    );

    assert_eq!(denied["token"], "-");
    assert_eq!(denied["status"], 401);
    assert_eq!(denied["outcome"], "denied");

    let ids: Vec<i64> = entries
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let ats: Vec<f64> = entries
        .iter()
        .map(|e| e["at"].as_f64().expect("at"))
        .collect();
    assert!(ats.windows(2).all(|w| w[0] >= w[1]), "{ats:?}");

    // Paging one entry at a time walks the same entries.
    let mut before: Option<i64> = None;
    let mut walked = Vec::new();
    loop {
        let q = match before {
            None => "/audit?limit=1".to_string(),
            Some(b) => format!("/audit?limit=1&before={b}"),
        };
        let page = api.ok("GET", &q);
        let got = page["entries"].as_array().expect("entries");
        assert!(got.len() <= 1);
        walked.extend(got.iter().map(|e| e["id"].as_i64().expect("id")));
        match page["nextBefore"].as_i64() {
            Some(n) => {
                assert_eq!(Some(n), got.last().and_then(|e| e["id"].as_i64()));
                before = Some(n);
            }
            None => break,
        }
        assert!(walked.len() <= 3, "paging does not end: {walked:?}");
    }
    assert_eq!(walked, ids);
    api.error("GET", "/audit?limit=0", None, 400, "invalid");
}

/// `client/host` of every host the pool collects, checking the figures agree.
fn pool_hosts(status: &Value, max_workers: u64) -> BTreeSet<String> {
    let workers = status["workers"].as_array().expect("workers");
    let total = status["totalHosts"].as_u64().expect("totalHosts");
    let mut hosts = BTreeSet::new();
    let mut managed = 0;
    for w in workers {
        let list = w["hosts"].as_array().expect("hosts");
        assert_eq!(w["hostsManaged"].as_u64(), Some(list.len() as u64), "{w}");
        assert!(!list.is_empty(), "no idle worker is kept: {status}");
        managed += list.len() as u64;
        let mut clients: Vec<&str> = list
            .iter()
            .map(|h| h.as_str().expect("host").split('/').next().expect("client"))
            .collect();
        clients.sort_unstable();
        clients.dedup();
        assert_eq!(w["clientName"], clients.join(","), "{w}");
        assert!(w["uptime"].as_f64().is_some_and(|u| u >= 0.0), "{w}");
        assert!(
            w["memoryUsage"]["rssBytes"].as_u64().is_some_and(|m| m > 0),
            "{w}"
        );
        hosts.extend(list.iter().map(|h| h.as_str().expect("host").to_string()));
    }
    assert_eq!(managed, total, "{status}");
    assert_eq!(hosts.len() as u64, total, "each host once: {status}");
    assert_eq!(
        status["totalWorkers"].as_u64(),
        Some(total.min(max_workers)),
        "one worker per host up to max_workers: {status}"
    );
    assert_eq!(status["totalWorkers"].as_u64(), Some(workers.len() as u64));
    let avg = status["averageHostsPerWorker"].as_f64().expect("average");
    let want = if workers.is_empty() {
        0.0
    } else {
        total as f64 / workers.len() as f64
    };
    assert!((avg - want).abs() < 1e-9, "average {avg} vs {want}");
    hosts
}

#[test]
fn monitoring_stop_and_start_move_series_and_pool_figures() {
    let e = env();
    let a = Docker::a();
    let b = Docker::b();
    let on_a = a.start("mon-a", &[], "sleep 600");
    let on_b = b.start("mon-b", &[], "sleep 600");
    // Three hosts in two clients (B twice, over its socket and its TCP port); two workers.
    let clients = [
        client_yaml("mon", &[("a", unix(&e.a_socket)), ("b", unix(&e.b_socket))]),
        client_yaml("keep", &[("bt", format!("tcp://{}", e.b_tcp))]),
    ];
    let max_workers = 2;
    let exp = Exporter::start(
        "mon",
        &config(&format!("  max_workers: {max_workers}\n"), "", &clients),
    );
    let api = Api::of(&exp);
    let mon = api.client_id("mon");
    let keep = api.client_id("keep");
    let configured: BTreeSet<String> = ["mon/a", "mon/b", "keep/bt"]
        .iter()
        .map(|s| s.to_string())
        .collect();

    let cpu = "container_cpu_usage_seconds_total";
    let series = |s: &Scrape, c: &Container, client: &str| {
        s.value(cpu, &[("name", c.name.as_str()), ("client", client)])
            .is_some()
    };
    exp.wait_for(Duration::from_secs(15), "every host collected", |s| {
        series(s, &on_a, "mon") && series(s, &on_b, "mon") && series(s, &on_b, "keep")
    });
    let status = poll("every worker connected", Duration::from_secs(10), || {
        let s = api.status();
        (s["activeWorkers"] == s["totalWorkers"]).then_some(s)
    });
    assert_eq!(pool_hosts(&status, max_workers), configured, "{status}");
    assert_eq!(status["totalHosts"].as_u64(), Some(configured.len() as u64));
    assert!(
        status["activeStreams"].as_u64().is_some_and(|n| n <= 3),
        "{status}"
    );
    let pool = api.ok("GET", "/pool");
    assert_eq!(pool["totalHosts"], status["totalHosts"]);
    assert_eq!(pool["totalWorkers"], status["totalWorkers"]);
    assert_eq!(
        api.ok("GET", &format!("/clients/{mon}/monitoring"))["monitoring"],
        true
    );

    // Stop one client: its series leave, the other client's stay.
    let v = api.ok("POST", &format!("/clients/{mon}/monitoring/stop"));
    assert_eq!(v["monitoring"], false);
    assert_eq!(
        api.ok("GET", &format!("/clients/{mon}/monitoring"))["monitoring"],
        false
    );
    assert_eq!(
        api.ok("GET", &format!("/clients/{mon}"))["monitoring"],
        false
    );
    // Only `dockstat_host_monitoring 0` is left of its hosts, to alert on.
    let s = exp.wait_for(Duration::from_secs(5), "mon's series gone", |s| {
        !s.samples.iter().any(|x| {
            x.labels.get("client").map(String::as_str) == Some("mon")
                && x.name != "dockstat_host_monitoring"
        })
    });
    let idle: Vec<f64> = s
        .find("dockstat_host_monitoring", &[("client", "mon")])
        .map(|x| x.value)
        .collect();
    assert_eq!(idle, vec![0.0, 0.0], "both hosts of mon, not monitored");
    assert!(!s.has_container(&on_a.name), "A is only collected for mon");
    assert!(series(&s, &on_b, "keep"), "keep is still collected");
    let status = api.status();
    let left: BTreeSet<String> = ["keep/bt".to_string()].into();
    assert_eq!(pool_hosts(&status, max_workers), left, "{status}");

    // Start it again: the series come back.
    let v = api.ok("POST", &format!("/clients/{mon}/monitoring/start"));
    assert_eq!(v["monitoring"], true);
    assert_eq!(
        api.ok("GET", &format!("/clients/{mon}/monitoring"))["monitoring"],
        true
    );
    exp.wait_for(Duration::from_secs(15), "mon's series back", |s| {
        series(s, &on_a, "mon") && series(s, &on_b, "mon") && series(s, &on_b, "keep")
    });
    assert_eq!(pool_hosts(&api.status(), max_workers), configured);

    // Stop everything.
    api.ok("POST", "/monitoring/stop-all");
    let s = exp.wait_for(Duration::from_secs(5), "every container series gone", |s| {
        s.find(cpu, &[]).next().is_none()
    });
    assert!(!s.has_container(&on_b.name));
    for c in [mon, keep] {
        assert_eq!(
            api.ok("GET", &format!("/clients/{c}/monitoring"))["monitoring"],
            false
        );
    }
    let status = api.status();
    assert_eq!(pool_hosts(&status, max_workers), BTreeSet::new());
    assert_eq!(status["totalWorkers"], 0);
}

/// A deleted host's or client's id is never handed out again, so a stale `PATCH` or
/// `DELETE` cannot hit another host, and the audit row of a delete names what it deleted.
#[test]
fn ids_are_never_reused_and_deletes_are_audited_by_name() {
    let e = env();
    let exp = Exporter::start("reuse", &config("", "", &[]));
    let api = Api::of(&exp);
    let mut seen_hosts = Vec::new();
    let mut seen_clients = Vec::new();
    for round in 0..2 {
        let name = format!("reuse-{round}");
        let c = api.expect("POST", "/clients", Some(json!({"name": name})), 201);
        let client = c["id"].as_i64().expect("client id");
        let h = api.expect(
            "POST",
            &format!("/clients/{client}/hosts"),
            Some(json!({"name": format!("h-{round}"), "address": unix(&e.b_socket), "enabled": false})),
            201,
        );
        let host = h["id"].as_i64().expect("host id");
        assert!(!seen_hosts.contains(&host), "host id {host} reused");
        assert!(!seen_clients.contains(&client), "client id {client} reused");
        seen_hosts.push(host);
        seen_clients.push(client);
        api.expect("DELETE", &format!("/hosts/{host}"), None, 204);
        api.expect("DELETE", &format!("/clients/{client}"), None, 204);
        // The stale id now answers 404, whatever was added since.
        api.error("DELETE", &format!("/hosts/{host}"), None, 404, "not_found");
    }
    let page = api.ok("GET", "/audit?limit=100");
    let targets: Vec<String> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["method"] == "DELETE" && e["status"] == 204)
        .map(|e| e["target"].as_str().unwrap_or_default().to_string())
        .collect();
    for (round, (host, client)) in seen_hosts.iter().zip(&seen_clients).enumerate() {
        let host_row = format!("host {host} (reuse-{round}/h-{round})");
        let client_row = format!("client {client} (reuse-{round})");
        assert!(targets.contains(&host_row), "{host_row} in {targets:?}");
        assert!(targets.contains(&client_row), "{client_row} in {targets:?}");
    }
}

/// TLS files that are FIFOs: the host is refused at once (400, naming the file), without
/// opening them, and nothing else waits meanwhile. It used to block a runtime thread in
/// open() until something wrote to the FIFO.
#[test]
fn fifo_tls_files_are_refused_without_blocking_anything() {
    let exp = Exporter::start("fifo-tls", &config("", "", &[]));
    let api = Api::of(&exp);
    let c = api.expect("POST", "/clients", Some(json!({"name": "fifo"})), 201);
    let client = c["id"].as_i64().expect("id");
    let dir = temp_dir("fifo-files");
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join(f))
            .status()
            .expect("mkfifo");
        assert!(made.success());
    }
    let file = |f: &str| dir.join(f).display().to_string();
    let body = json!({"name": "w", "address": "tcp://127.0.0.1:1",
        "tls": {"ca": file("ca.pem"), "cert": file("cert.pem"), "key": file("key.pem")}});
    // Scrapes and status go on while (and after) the host is checked, from other threads.
    let port = exp.port;
    let scraper = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let (status, _, _) = http_get(port, "/metrics", None).expect("scrape");
            assert_eq!(status, 200);
            worst = worst.max(started.elapsed());
        }
        worst
    });
    let started = std::time::Instant::now();
    let err = api.error(
        "POST",
        &format!("/clients/{client}/hosts"),
        Some(body),
        400,
        "invalid",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("not a regular file") && text.contains("ca.pem"),
        "{text}"
    );
    api.ok("GET", "/status");
    let worst = scraper.join().expect("scraper");
    assert!(worst < Duration::from_secs(3), "a scrape took {worst:?}");
}
