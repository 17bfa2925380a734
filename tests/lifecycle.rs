//! Container lifecycle counters against real daemons: exits by code, restarts by policy,
//! HEALTHCHECK transitions, cgroup OOM kills, and Docker events counted exactly once across
//! a cut connection and across an exporter restart.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use proxy::Proxy;

fn config(host: &str, address: &str) -> String {
    format!(
        "monitoring:\n  interval: 1s\n  retry_delay: 500ms\n  retry_max_delay: 2s\n\
         clients:\n  - name: lab\n    hosts:\n      - name: {host}\n        address: {address}\n"
    )
}

fn config_a() -> String {
    config("a", &format!("unix://{}", env().a_socket))
}

/// Starts an exporter on daemon A and waits until it is connected: events from then on count.
fn exporter_a(tag: &str) -> Exporter {
    let exp = Exporter::start(tag, &config_a());
    exp.wait_for(Duration::from_secs(15), "host a up", |s| {
        s.value("dockstat_host_up", &[("host", "a")]) == Some(1.0)
    });
    exp
}

/// Runs the docker CLI against `socket`, whatever its exit status: (status, stdout, stderr).
fn docker_status(socket: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("/usr/bin/docker")
        .arg("-H")
        .arg(format!("unix://{socket}"))
        .args(args)
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run docker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// `docker run` in the foreground of a container that exits with `code`; returns it, to be
/// removed when dropped.
fn run_exiting(docker: &Docker, socket: &str, tag: &str, code: i32) -> Container {
    let name = unique(tag);
    let image = env().image;
    let script = format!("exit {code}");
    let (status, _, err) = docker_status(
        socket,
        &[
            "run",
            "--name",
            &name,
            "--label",
            "dockstat.test=1",
            &image,
            "sh",
            "-c",
            &script,
        ],
    );
    assert_eq!(status, code, "docker run exit status ({err})");
    let id = docker.inspect(&name, "{{.Id}}");
    Container {
        docker: docker.clone(),
        name,
        id,
    }
}

/// `docker start -a`: runs the container once more and returns its exit status.
fn start_attached(socket: &str, c: &Container) -> i32 {
    docker_status(socket, &["start", "-a", &c.id]).0
}

fn exits(s: &Scrape, name: &str, code: &str) -> Option<f64> {
    s.value(
        "dockstat_container_exits_total",
        &[("name", name), ("exit_code", code)],
    )
}

fn exit_series(s: &Scrape, name: &str) -> Vec<(String, f64)> {
    s.find("dockstat_container_exits_total", &[("name", name)])
        .map(|x| (x.labels["exit_code"].clone(), x.value))
        .collect()
}

#[test]
fn exits_are_counted_by_code_over_two_runs() {
    let exp = exporter_a("exit3");
    let a = Docker::a();
    let sock = env().a_socket;
    let c = run_exiting(&a, &sock, "exit3", 3);
    assert_eq!(start_attached(&sock, &c), 3);
    let s = exp.wait_for(Duration::from_secs(15), "two exits with code 3", |s| {
        exits(s, &c.name, "3") == Some(2.0)
    });
    assert_eq!(
        exit_series(&s, &c.name),
        vec![("3".to_string(), 2.0)],
        "only exit code 3, twice"
    );
    assert_eq!(
        s.value("dockstat_container_last_exit_code", &[("name", &c.name)]),
        Some(3.0)
    );
    assert_eq!(
        s.value(
            "dockstat_container_state",
            &[("name", &c.name), ("state", "exited")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value("container_oom_events_total", &[("name", &c.name)]),
        Some(0.0)
    );
    let id = s
        .find("dockstat_container_exits_total", &[("name", &c.name)])
        .next()
        .map(|x| x.labels["id"].clone())
        .expect("id label");
    assert_eq!(id, c.id, "the id label is the full container id");
    let die = s
        .value(
            "dockstat_events_total",
            &[("host", "a"), ("type", "container"), ("action", "die")],
        )
        .expect("die events counted");
    assert!(die >= 2.0, "die events {die}");

    // Removing the container removes its series.
    c.remove();
    exp.wait_for(
        Duration::from_secs(10),
        "series of the removed container gone",
        |s| !s.has_container(&c.name),
    );
}

#[test]
fn restart_policy_restarts_are_counted_with_every_exit() {
    let exp = exporter_a("onfail");
    let a = Docker::a();
    let c = a.start("onfail", &["--restart", "on-failure:2"], "exit 1");
    let s = exp.wait_for(Duration::from_secs(30), "2 restarts and 3 exits", |s| {
        s.value("dockstat_container_restarts_total", &[("name", &c.name)]) == Some(2.0)
            && exits(s, &c.name, "1") == Some(3.0)
    });
    assert_eq!(c.inspect("{{.RestartCount}} {{.State.Status}}"), "2 exited");
    assert_eq!(exit_series(&s, &c.name), vec![("1".to_string(), 3.0)]);
    assert_eq!(
        s.value("dockstat_container_last_exit_code", &[("name", &c.name)]),
        Some(1.0)
    );
    // Nothing more happens: the policy gave up.
    std::thread::sleep(Duration::from_secs(2));
    let s = exp.scrape();
    assert_eq!(
        s.value("dockstat_container_restarts_total", &[("name", &c.name)]),
        Some(2.0)
    );
    assert_eq!(exits(&s, &c.name, "1"), Some(3.0));
}

#[test]
fn health_goes_starting_healthy_unhealthy() {
    let exp = exporter_a("health");
    let a = Docker::a();
    // Probes fail until the test creates /ok; within the start period failures do not count,
    // so the status stays `starting` until then (deterministic on a loaded machine).
    let c = a.start(
        "health",
        &[
            "--health-cmd",
            "test -f /ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-start-period",
            "60s",
        ],
        "sleep 600",
    );
    let status = |s: &Scrape| -> Option<String> {
        let filter = [("name", c.name.as_str())];
        let found: Vec<&Sample> = s
            .find("dockstat_container_health_status", &filter)
            .collect();
        assert!(found.len() <= 1, "one status series at a time: {found:?}");
        found.first().map(|x| {
            assert_eq!(x.value, 1.0);
            x.labels["status"].clone()
        })
    };
    // Statuses of the running container (while merely created it has none yet).
    let mut seen: Vec<String> = Vec::new();
    let mut track = |s: &Scrape| {
        let running = s.value(
            "dockstat_container_state",
            &[("name", &c.name), ("state", "running")],
        ) == Some(1.0);
        if let Some(st) = status(s).filter(|_| running)
            && seen.last() != Some(&st)
        {
            seen.push(st);
        }
        seen.last().cloned()
    };
    exp.wait_for(Duration::from_secs(15), "starting", |s| {
        track(s).as_deref() == Some("starting")
    });
    // A few failing probes later it is still starting.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(track(&exp.scrape()).as_deref(), Some("starting"));
    assert_eq!(c.inspect("{{.State.Health.Status}}"), "starting");

    a.run(&["exec", &c.id, "touch", "/ok"]);
    let t = Instant::now();
    exp.wait_for(Duration::from_secs(10), "healthy", |s| {
        track(s).as_deref() == Some("healthy")
    });
    eprintln!("healthy {:?} after touch /ok", t.elapsed());

    a.run(&["exec", &c.id, "rm", "/ok"]);
    let t = Instant::now();
    exp.wait_for(Duration::from_secs(10), "unhealthy", |s| {
        track(s).as_deref() == Some("unhealthy")
    });
    eprintln!("unhealthy {:?} after rm /ok", t.elapsed());
    assert_eq!(seen, vec!["starting", "healthy", "unhealthy"]);
    assert_eq!(c.inspect("{{.State.Health.Status}}"), "unhealthy");
    // Both changes were Docker events, counted (the inspect that follows an event can
    // already show the next status, so the count may trail the status briefly).
    let s = exp.wait_for(Duration::from_secs(5), "2 health_status events", |s| {
        s.value(
            "dockstat_events_total",
            &[
                ("host", "a"),
                ("type", "container"),
                ("action", "health_status"),
            ],
        )
        .is_some_and(|n| n >= 2.0)
    });
    assert_eq!(
        s.value(
            "dockstat_container_state",
            &[("name", &c.name), ("state", "running")]
        ),
        Some(1.0)
    );
}

/// `docker events` followed live for the containers carrying `label`, from a second before
/// it is started (so the probe below cannot be missed):
/// the ground truth for counts. A `--since` query after the fact is not: Docker keeps only
/// its last 256 events for replay, and one cgroup v1 OOM kill can emit thousands of `oom`
/// events (CI saw 2,406, of which such a query returned 254).
struct LiveEvents {
    child: std::process::Child,
    actions: Arc<Mutex<Vec<String>>>,
}

impl LiveEvents {
    fn follow(docker: &Docker, label: &str) -> LiveEvents {
        let mut child = docker.spawn(&[
            "events",
            "--since",
            &format!("{:.3}", now() - 1.0),
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Action}}",
        ]);
        let actions = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&actions);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let live = LiveEvents { child, actions };
        // A probe container with the label: once its `create` arrives, the CLI is
        // subscribed and nothing later can fall out of Docker's replay buffer.
        let probe = docker.run(&["create", "--label", label, &env().image, "true"]);
        poll(
            "docker events to be followed",
            Duration::from_secs(30),
            || (live.count("create") >= 1).then_some(()),
        );
        docker.run(&["rm", &probe]);
        live
    }

    /// How many events of `action` arrived so far.
    fn count(&self, action: &str) -> usize {
        let actions = self.actions.lock().unwrap_or_else(|p| p.into_inner());
        actions.iter().filter(|a| a.as_str() == action).count()
    }
}

impl Drop for LiveEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cgroup_oom_kill_is_counted() {
    let exp = exporter_a("oom");
    let a = Docker::a();
    let label = format!("dockstat.test.oom={}", unique("oom"));
    // Followed before the container exists.
    let docker_events = LiveEvents::follow(&a, &label);
    let c = a.start(
        "oom",
        &["--label", &label, "--memory", "32m", "--memory-swap", "32m"],
        "head -c 200m /dev/zero | tail",
    );
    let s = exp.wait_for(Duration::from_secs(30), "the OOM kill", |s| {
        s.value("container_oom_events_total", &[("name", &c.name)])
            .is_some_and(|n| n >= 1.0)
            && exits(s, &c.name, "137") == Some(1.0)
    });
    assert_eq!(
        c.inspect("{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137",
        "the cgroup OOM killer ended it"
    );
    assert_eq!(
        s.value("dockstat_container_last_exit_code", &[("name", &c.name)]),
        Some(137.0)
    );
    // Exactly as many as Docker emitted: with cgroup v1 Docker reports one `oom` per memcg
    // OOM notification, which can be many for one kill. Every subscriber gets Docker's events
    // in one order, so once the CLI has seen `die` every `oom` before it was published; the
    // exporter may still be reading them, hence the wait for the two counts to meet.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (died, docker_ooms, exported) = loop {
        let died = docker_events.count("die") >= 1;
        let docker_ooms = docker_events.count("oom") as f64;
        let exported = exp
            .scrape()
            .value("container_oom_events_total", &[("name", &c.name)]);
        if (died && exported == Some(docker_ooms)) || Instant::now() >= deadline {
            break (died, docker_ooms, exported);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("oom events: docker {docker_ooms}, exported {exported:?}");
    assert!(died, "docker events never showed the container's die");
    assert!(docker_ooms >= 1.0, "docker emitted no oom event");
    assert_eq!(
        exported,
        Some(docker_ooms),
        "one count per Docker oom event"
    );
}

#[test]
fn events_while_disconnected_or_stopped_are_counted_exactly_once() {
    let e = env();
    let b = Docker::b();
    let proxy = Proxy::start(&e.b_tcp);
    let cfg = config("b", &format!("tcp://127.0.0.1:{}", proxy.port));
    let mut exp = Exporter::start("reconnect", &cfg);
    let up = |s: &Scrape| s.value("dockstat_host_up", &[("host", "b")]);
    exp.wait_for(
        Duration::from_secs(15),
        "host b up through the proxy",
        |s| up(s) == Some(1.0),
    );

    proxy.cut();
    exp.wait_for(Duration::from_secs(10), "host b down while cut", |s| {
        up(s) == Some(0.0)
    });
    let c = run_exiting(&b, &e.b_socket, "cut", 5);
    assert_eq!(start_attached(&e.b_socket, &c), 5);
    let s = exp.scrape();
    assert_eq!(up(&s), Some(0.0), "still cut while the container ran");
    assert!(!s.has_container(&c.name));

    proxy.restore();
    let t = Instant::now();
    exp.wait_for(
        Duration::from_secs(15),
        "both exits counted after reconnect",
        |s| up(s) == Some(1.0) && exits(s, &c.name, "5").is_some(),
    );
    eprintln!("reconnected and caught up {:?} after restore", t.elapsed());
    // Give a double count every chance to show.
    std::thread::sleep(Duration::from_secs(3));
    let s = exp.scrape();
    assert_eq!(exit_series(&s, &c.name), vec![("5".to_string(), 2.0)]);
    assert_eq!(
        s.value("dockstat_container_last_exit_code", &[("name", &c.name)]),
        Some(5.0)
    );
    // The reconnection is logged.
    exp.wait_for_log(Duration::from_secs(5), "connected");

    // Stopped exporter: the third exit happens while nothing watches.
    let status = exp.terminate(Duration::from_secs(10));
    assert!(status.success(), "exporter exit status {status}");
    assert_eq!(start_attached(&e.b_socket, &c), 5);
    let exp = Exporter::start_in(exp.dir.clone(), &cfg);
    exp.wait_for(
        Duration::from_secs(15),
        "the third exit after restart",
        |s| exits(s, &c.name, "5").is_some_and(|n| n >= 3.0),
    );
    std::thread::sleep(Duration::from_secs(3));
    let s = exp.scrape();
    assert_eq!(
        exit_series(&s, &c.name),
        vec![("5".to_string(), 3.0)],
        "not lost, not counted twice\n{}",
        exp.log_text()
    );
    assert_eq!(up(&s), Some(1.0));
}
