//! A Podman host (Debian's podman 4.3, `podman system service` on a socket of its own):
//! collected through its Docker-compatible API like a Docker host, named after its
//! /info Name, its container's figures exported, and a container action answered with the
//! state after it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// Our own `podman system service`, killed on drop with the container it made (the test
/// image stays in Podman's store for the next run).
struct Podman {
    service: Child,
    socket: PathBuf,
    conf: PathBuf,
    container: Option<String>,
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Some(c) = &self.container {
            let _ = self.cli(&["rm", "-f", c]).output();
        }
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

impl Podman {
    fn start(dir: &Path) -> Podman {
        assert!(
            Command::new("podman")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "podman is not installed: apt-get install -y podman (scripts/test-env.sh up installs it)"
        );
        // Podman sets the containers' nofile/nproc limits by default, which the test
        // machines' runtime refuses (`error setting rlimit type 7: operation not
        // permitted`); Docker sets none, and neither do we here.
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").expect("write conf");
        let socket = dir.join("podman.sock");
        let service = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_CONF", &conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("podman.log")).expect("log"))
            .spawn()
            .expect("spawn podman system service");
        let p = Podman {
            service,
            socket,
            conf,
            container: None,
        };
        poll("the podman socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&p.socket).ok()
        });
        p
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.args(args).env("CONTAINERS_CONF", &self.conf);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cli(args).output().expect("podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn a_podman_host_is_collected_and_acted_on() {
    let env = env();
    let dir = temp_dir("podman");
    let mut podman = Podman::start(&dir);
    // The test image, from daemon A into Podman's store.
    let image = format!("localhost/{}", env.image);
    if !podman
        .cli(&["image", "exists", &image])
        .status()
        .is_ok_and(|s| s.success())
    {
        let mut save = Command::new("docker")
            .args([
                "-H",
                &format!("unix://{}", env.a_socket),
                "save",
                &env.image,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let status = podman
            .cli(&["load"])
            .stdin(save.stdout.take().expect("stdout"))
            .stdout(Stdio::null())
            .status()
            .expect("podman load");
        assert!(status.success(), "podman load");
        assert!(save.wait().is_ok_and(|s| s.success()), "docker save");
    }
    let name = unique("podman");
    podman.run(&["run", "-d", "--name", &name, &image, "sleep", "3600"]);
    podman.container = Some(name.clone());
    let want_host = podman.run(&["info", "--format", "{{.Host.Hostname}}"]);

    let e = Exporter::start(
        "podman-exp",
        &format!(
            "monitoring:\n  interval: 1s\nclients:\n  - name: pod\n    hosts:\n      - address: unix://{}\n",
            podman.socket.display()
        ),
    );
    let s = e.wait_for(
        Duration::from_secs(60),
        "the Podman container's figures",
        |s| {
            s.value("dockstat_host_up", &[("client", "pod")]) == Some(1.0)
                && s.value(
                    "dockstat_container_state",
                    &[("name", &name), ("state", "running")],
                ) == Some(1.0)
                && s.value("container_cpu_usage_seconds_total", &[("name", &name)])
                    .is_some()
                && s.value("container_memory_usage_bytes", &[("name", &name)])
                    .is_some()
        },
    );
    let host = s
        .find("dockstat_host_up", &[("client", "pod")])
        .next()
        .and_then(|x| x.labels.get("host").cloned())
        .unwrap_or_default();
    assert_eq!(host, want_host, "named after Podman's /info Name");
    // Told apart from Docker: /version lists a "Podman Engine" component.
    let runtime = s
        .find("dockstat_host_info", &[("client", "pod")])
        .next()
        .and_then(|x| x.labels.get("runtime").cloned());
    assert_eq!(
        runtime.as_deref(),
        Some("podman"),
        "dockstat_host_info runtime"
    );

    // The same figures from Podman's stats API (the other stats source).
    let via_api = Exporter::start(
        "podman-api",
        &format!(
            "monitoring:\n  interval: 1s\n  stats_source: api\nclients:\n  - name: pod\n    hosts:\n      - address: unix://{}\n",
            podman.socket.display()
        ),
    );
    via_api.wait_for(
        Duration::from_secs(60),
        "figures from Podman's stats API",
        |s| {
            s.value("container_cpu_usage_seconds_total", &[("name", &name)])
                .is_some()
                && s.value("container_memory_usage_bytes", &[("name", &name)])
                    .is_some()
                && s.value(
                    "dockstat_stats_source_containers",
                    &[("client", "pod"), ("source", "api")],
                ) == Some(1.0)
        },
    );
    drop(via_api);

    // A container action through the admin API, answered with the state after it.
    let (status, v) = api(
        e.admin_port,
        "POST",
        &format!("/api/v1/clients/pod/containers/{name}/stop?t=1"),
        None,
        Some(""),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["container"]["state"], "exited", "{v}");
    assert_eq!(v["previousState"], "running", "{v}");
    assert_eq!(
        podman.run(&["inspect", "--format", "{{.State.Status}}", &name]),
        "exited"
    );
    // The stop reaches the metrics (events or the re-list).
    e.wait_for(
        Duration::from_secs(60),
        "the stopped container's state",
        |s| {
            s.value(
                "dockstat_container_state",
                &[("name", &name), ("state", "exited")],
            ) == Some(1.0)
        },
    );
}
