//! The container image (`Dockerfile`) on real daemon A, and the files around it.
//!
//! Nothing can be pulled on the test machines, so the image is built from its `prebuilt`
//! stage on a local Debian bookworm base instead of `debian:bookworm-slim`: debootstrap
//! (minbase) imported as `dockstat-test/debian-base:bookworm` the first time, then reused
//! (delete that image to rebuild it; DOCKSTAT_DEBIAN_MIRROR overrides the mirror,
//! http://deb.debian.org/debian). The classic builder (DOCKER_BUILDKIT=0) builds it: it
//! leaves no build cache behind once the image is removed. The binary packaged is the one
//! cargo built for the tests (`CARGO_BIN_EXE_dockstat-exporter`, a debug build, stripped
//! into the build context): the image behaves the same, and CI is spared a second,
//! release build.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The cached runtime base (a stand-in for `debian:bookworm-slim`).
const BASE: &str = "dockstat-test/debian-base:bookworm";
const EXPORTER_UID: &str = "10001";

fn docker_bin() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// The docker CLI on daemon A, for what [`Docker`] does not cover (stdin, exit codes,
/// environment).
fn docker_a() -> Command {
    let mut c = Command::new(docker_bin());
    c.arg("-H").arg(format!("unix://{}", env().a_socket));
    c.env_remove("DOCKER_HOST");
    c
}

/// Runs `what` to completion; panics with its output unless it succeeds.
fn check(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker <args>` on daemon A when dropped (removing what a test made, even on failure).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker_a()
            .args(&self.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn program(name: &str) -> String {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| name.to_string())
}

/// Removes a directory tree made by debootstrap, never descending into a file system
/// mounted below it (a failed debootstrap can leave /proc or /sys mounted in its target).
fn remove_rootfs(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut below: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    below.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in below {
        let _ = Command::new(program("umount")).args(["-l", m]).status();
    }
    let _ = Command::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(dir)
        .status();
}

/// Makes [`BASE`] on daemon A unless it is there already; returns its name.
fn runtime_base(docker: &Docker) -> &'static str {
    // The tests of this file run in parallel: one makes the base, the others wait for it.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if docker.try_run(&["image", "inspect", BASE]).is_ok() {
        eprintln!("runtime base {BASE}: cached");
        return BASE;
    }
    let t0 = Instant::now();
    let mirror = std::env::var("DOCKSTAT_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_string());
    let debootstrap = program("debootstrap");
    assert!(
        Path::new(&debootstrap).exists(),
        "debootstrap is missing: `scripts/test-env.sh up` (as root) installs it"
    );
    let root = temp_dir("image-rootfs");
    let out = Command::new(&debootstrap)
        .args(["--variant=minbase", "bookworm"])
        .arg(&root)
        .arg(&mirror)
        .output()
        .expect("run debootstrap");
    if !out.status.success() {
        remove_rootfs(&root);
        panic!(
            "debootstrap bookworm from {mirror} failed ({}); it needs root and the Debian mirror (DOCKSTAT_DEBIAN_MIRROR):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Like the slim images: no package cache, no package lists.
    for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = std::fs::read_dir(root.join(d)) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    let bootstrapped = t0.elapsed();
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run tar");
    let import = docker_a()
        .args(["import", "--change", r#"CMD ["bash"]"#, "-", BASE])
        .stdin(tar.stdout.take().expect("tar stdout"))
        .output()
        .expect("run docker import");
    let tarred = tar.wait().expect("wait for tar");
    remove_rootfs(&root);
    assert!(
        tarred.success() && import.status.success(),
        "importing the debootstrapped root as {BASE} failed (tar {tarred}): {}",
        String::from_utf8_lossy(&import.stderr)
    );
    eprintln!(
        "runtime base {BASE}: made in {:?} (debootstrap {bootstrapped:?})",
        t0.elapsed()
    );
    BASE
}

/// Builds the Dockerfile's `prebuilt` stage on the local base, with the test binary.
/// Returns the tag; the image is removed when the returned guard drops.
fn build_image(docker: &Docker) -> (String, Cleanup) {
    let base = runtime_base(docker);
    let ctx = temp_dir("image-ctx");
    std::fs::copy(repo().join("Dockerfile"), ctx.join("Dockerfile")).expect("copy Dockerfile");
    // The debug binary is mostly debug info (~190 MB); stripped it is ~30 MB of context.
    let binary = ctx.join("dockstat-exporter");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&binary)
        .arg(bin())
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(bin(), &binary).expect("copy the binary");
    }
    let tag = format!("dockstat-test/exporter:{}", unique("image"));
    let t0 = Instant::now();
    let built = docker_a()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--force-rm", "--target", "prebuilt", "--build-arg"])
        .arg(format!("RUNTIME_BASE={base}"))
        .args(["--build-arg", "BINARY=dockstat-exporter", "-t", &tag])
        .arg(&ctx)
        .output()
        .expect("run docker build");
    let _ = std::fs::remove_dir_all(&ctx);
    assert!(
        built.status.success(),
        "docker build --target prebuilt failed ({}):\n{}\n{}",
        built.status,
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!("built {tag} in {:?}", t0.elapsed());
    let guard = Cleanup(vec!["rmi".into(), "-f".into(), tag.clone()]);
    (tag, guard)
}

fn socket_gid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(env().a_socket)
        .expect("stat the Docker socket")
        .gid()
}

/// The YAML of docker-compose.example.yml.
fn compose() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo().join("docker-compose.example.yml"))
        .expect("read docker-compose.example.yml");
    serde_yaml::from_str(&text).expect("docker-compose.example.yml is YAML")
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The inline `content` of a top-level config of the compose file.
fn compose_config(name: &str) -> String {
    let content = compose()["configs"][name]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("configs.{name}.content in docker-compose.example.yml"))
        .to_string();
    // Compose would interpolate it: a lone `$` would not reach the container as written.
    assert!(
        !content.contains('$'),
        "configs.{name}: write $$ for a literal $"
    );
    content
}

#[test]
fn dockerfile_build_stage_uses_the_crates_toolchain() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let from = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("FROM rust:"))
        .expect("a `FROM rust:<version>-bookworm` build stage");
    let tag = from.split_whitespace().next().expect("tag");
    let image_version = tag.split('-').next().expect("version");
    assert!(
        tag.ends_with("-bookworm"),
        "the build stage is bookworm like the runtime: {tag}"
    );
    let rustc = check("rustc --version", Command::new("rustc").arg("--version"));
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = rustc.split_whitespace().nth(1).expect("rustc version");
    let major_minor: Vec<&str> = version.split('.').take(2).collect();
    let image_major_minor: Vec<&str> = image_version.split('.').take(2).collect();
    assert_eq!(
        image_major_minor, major_minor,
        "Dockerfile builds with rust:{tag} but the crate's toolchain is {rustc}: keep them in step"
    );
}

#[test]
fn compose_example_is_complete_and_its_prometheus_config_is_valid() {
    let c = compose();
    let services = &c["services"];
    for s in ["dockstat-exporter", "prometheus", "grafana"] {
        assert!(services[s].is_mapping(), "service {s}");
    }
    let exporter = &services["dockstat-exporter"];
    let volumes = strings(&exporter["volumes"]);
    assert!(
        volumes.contains(&"/var/run/docker.sock:/var/run/docker.sock:ro".to_string()),
        "the socket is mounted read-only: {volumes:?}"
    );
    assert!(
        volumes.iter().any(|v| v.ends_with(":/var/lib/dockstat")),
        "the database volume: {volumes:?}"
    );
    assert_eq!(
        strings(&exporter["group_add"]).len(),
        1,
        "group_add: the socket's group"
    );
    assert_eq!(
        exporter["configs"][0]["target"].as_str(),
        Some("/etc/dockstat/config.yaml")
    );
    assert_eq!(exporter["build"].as_str(), Some("."));

    // Every host path the services mount exists in the repository.
    let mut mounted = Vec::new();
    for (_, service) in services.as_mapping().expect("services") {
        for v in strings(&service["volumes"]) {
            if let Some(path) = v.strip_prefix("./") {
                let path = path.split(':').next().expect("source");
                assert!(repo().join(path).exists(), "{v}: ./{path} is missing");
                mounted.push(v);
            }
        }
    }
    let grafana = strings(&services["grafana"]["volumes"]);
    assert!(
        grafana.contains(&"./dashboards/provisioning:/etc/grafana/provisioning:ro".to_string()),
        "{grafana:?}"
    );
    // The dashboard provider reads the JSON where the compose file mounts it.
    let provider =
        std::fs::read_to_string(repo().join("dashboards/provisioning/dashboards/dockstat.yml"))
            .expect("dashboards/provisioning/dashboards/dockstat.yml");
    let provider: serde_yaml::Value = serde_yaml::from_str(&provider).expect("YAML");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("providers[0].options.path");
    assert!(
        grafana.contains(&format!("./dashboards:{path}:ro")),
        "dashboards mounted at {path}: {grafana:?}"
    );
    // Prometheus scrapes the exporter's service on its port.
    let prometheus = compose_config("prometheus");
    assert!(
        prometheus.contains("dockstat-exporter:9487"),
        "{prometheus}"
    );

    // promtool: the configuration with the rule file as mounted.
    let dir = temp_dir("image-compose");
    let rules = repo().join("alerts/dockstat.rules.yml");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        prometheus.replace(
            "/etc/prometheus/dockstat.rules.yml",
            &rules.display().to_string(),
        ),
    )
    .expect("write prometheus.yml");
    let out = check(
        "promtool check config",
        Command::new("promtool")
            .args(["check", "config"])
            .arg(&config),
    );
    eprintln!("{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A configuration file for a bind mount, in its own directory (removed on drop).
struct ConfigFile(PathBuf);

impl ConfigFile {
    /// Writes `text` into a fresh file the container user (uid 10001) can read.
    fn new(tag: &str, text: &str) -> ConfigFile {
        let dir = temp_dir(tag);
        std::fs::write(dir.join("config.yaml"), text).expect("write config");
        ConfigFile(dir)
    }

    /// `-v` value mounting it over the image's configuration.
    fn mount(&self) -> String {
        format!(
            "{}:/etc/dockstat/config.yaml:ro",
            self.0.join("config.yaml").display()
        )
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `docker run --rm` with the given options and arguments; returns (exit code, output).
fn run_once(image: &str, opts: &[&str], args: &[&str]) -> (i32, String) {
    let out = docker_a()
        .args(["run", "--rm", "--label", "dockstat.test=1"])
        .args(opts)
        .arg(image)
        .args(args)
        .output()
        .expect("docker run");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn image_serves_metrics_of_the_host_as_non_root_and_becomes_healthy() {
    let a = Docker::a();
    let (image, _image) = build_image(&a);

    // What the image declares.
    let config: serde_json::Value =
        serde_json::from_str(&a.run(&["image", "inspect", "-f", "{{json .Config}}", &image]))
            .expect("image config JSON");
    assert_eq!(config["User"].as_str(), Some("10001:10001"), "{config:#}");
    for port in ["9487/tcp", "9488/tcp"] {
        assert!(config["ExposedPorts"][port].is_object(), "EXPOSE {port}");
    }
    assert!(config["Volumes"]["/var/lib/dockstat"].is_object(), "VOLUME");
    assert!(
        config["Env"]
            .as_array()
            .expect("Env")
            .iter()
            .any(|e| e == "DOCKSTAT_CONFIG=/etc/dockstat/config.yaml"),
        "{config:#}"
    );
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "dockstat-exporter", "healthcheck"])
    );

    // The baked-in configuration, and the compose example's, are valid in the image.
    let (code, out) = run_once(&image, &[], &["check-config"]);
    assert_eq!(code, 0, "default config: {out}");
    let compose_cfg = ConfigFile::new("image-compose-cfg", &compose_config("dockstat"));
    let (code, out) = run_once(&image, &["-v", &compose_cfg.mount()], &["check-config"]);
    assert_eq!(code, 0, "docker-compose.example.yml's config: {out}");

    // A running container to be seen through the mounted socket.
    let target = a.start("image-target", &[], "sleep 600");

    let port = free_port();
    let name = unique("image-run");
    let gid = socket_gid().to_string();
    let socket = format!("{}:/var/run/docker.sock:ro", env().a_socket);
    let publish = format!("127.0.0.1:{port}:9487");
    let started = Instant::now();
    let _container = Cleanup(vec!["rm".into(), "-f".into(), name.clone()]);
    a.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "dockstat.test=1",
        "-v",
        &socket,
        "--group-add",
        &gid,
        // The fast stats path as the README documents it: the host's pids and cgroup
        // namespace, the cgroup tree read-only at the built-in cgroup_root.
        "--pid",
        "host",
        "--cgroupns",
        "host",
        "-v",
        "/sys/fs/cgroup:/host/sys/fs/cgroup:ro",
        "-p",
        &publish,
        "--health-interval",
        "1s",
        &image,
    ]);
    let logs = || {
        docker_a()
            .args(["logs", &name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    };

    // The built-in configuration names no host: it is named after its daemon.
    let host = check(
        "docker info",
        docker_a().args(["info", "--format", "{{.Name}}"]),
    )
    .trim()
    .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let scrape = loop {
        if let Ok((200, _, body)) = http_get(port, "/metrics", None) {
            let s = Scrape::parse(&body);
            if s.value("dockstat_host_up", &[("host", &host)]) == Some(1.0)
                && s.value(
                    "container_cpu_usage_seconds_total",
                    &[("name", &target.name)],
                )
                .is_some()
            {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no metrics of {} from the container on port {port}; state {}; logs:\n{}",
            target.name,
            a.inspect(&name, "{{json .State}}"),
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("metrics from the container after {:?}", started.elapsed());
    // Read from the cgroup files, as uid 10001, through the documented mounts.
    let from_files = |s: &Scrape, source: &str| {
        s.value(
            "dockstat_stats_source_containers",
            &[("host", &host), ("source", source)],
        )
    };
    assert!(
        from_files(&scrape, "cgroup").is_some_and(|n| n >= 1.0)
            && from_files(&scrape, "api") == Some(0.0),
        "stats sources in the image: cgroup {:?}, api {:?}; logs:\n{}",
        from_files(&scrape, "cgroup"),
        from_files(&scrape, "api"),
        logs()
    );
    assert!(
        scrape.text.contains(&format!(
            "container_cpu_usage_seconds_total{{host=\"{host}\",client=\"default\",id=\"{}\",name=\"{}\"",
            target.id, target.name
        )),
        "{}",
        scrape.text
    );

    let status = poll(
        "the container to be healthy",
        Duration::from_secs(30),
        || {
            let s = a.inspect(&name, "{{.State.Health.Status}}");
            (s == "healthy").then_some(s)
        },
    );
    eprintln!("{status} after {:?}", started.elapsed());

    // Not root, but in the socket's group; the database is in the volume.
    assert_eq!(a.run(&["exec", &name, "id", "-u"]), EXPORTER_UID);
    let groups = a.run(&["exec", &name, "id", "-G"]);
    assert!(
        groups.split_whitespace().any(|g| g == gid),
        "groups {groups} include the socket's gid {gid}"
    );
    a.run(&["exec", &name, "test", "-s", "/var/lib/dockstat/dockstat.db"]);
    let mounts = a.inspect(&name, "{{range .Mounts}}{{.Destination}}={{.RW}} {{end}}");
    assert!(
        mounts.contains("/var/run/docker.sock=false") && mounts.contains("/var/lib/dockstat=true"),
        "{mounts}"
    );

    // SIGTERM from `docker stop` is a clean stop.
    let t = Instant::now();
    a.run(&["stop", "-t", "10", &name]);
    assert_eq!(a.inspect(&name, "{{.State.ExitCode}}"), "0", "{}", logs());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        t.elapsed()
    );
}

#[test]
fn image_admin_api_is_published_only_with_tokens() {
    let a = Docker::a();
    let (image, _image) = build_image(&a);
    let listen = "listen:\n  metrics: 0.0.0.0:9487\n  admin: 0.0.0.0:9488\n\
                  database:\n  path: /var/lib/dockstat/dockstat.db\n\
                  clients:\n  - name: local\n    hosts:\n      - name: local\n        address: unix:///var/run/docker.sock\n";

    // Published without tokens: refused before starting, exit 2.
    let open = ConfigFile::new("image-admin-open", listen);
    let (code, out) = run_once(&image, &["-v", &open.mount()], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("needs api.tokens"), "{out}");

    // With a token (from the environment) it serves, and only to its bearer.
    let token = "0123456789abcdef-image-test-token";
    let cfg = format!(
        "{listen}api:\n  tokens:\n    - {{ name: test, role: viewer, token: \"${{DOCKSTAT_ADMIN_TOKEN}}\" }}\n"
    );
    let with_tokens = ConfigFile::new("image-admin-tokens", &cfg);
    let mount = with_tokens.mount();
    let admin_port = free_port();
    let publish = format!("127.0.0.1:{admin_port}:9488");
    let socket = format!("{}:/var/run/docker.sock:ro", env().a_socket);
    let gid = socket_gid().to_string();
    let name = unique("image-admin");
    let _container = Cleanup(vec!["rm".into(), "-f".into(), name.clone()]);
    a.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "dockstat.test=1",
        "-v",
        &socket,
        "--group-add",
        &gid,
        "-v",
        &mount,
        "-e",
        &format!("DOCKSTAT_ADMIN_TOKEN={token}"),
        "-p",
        &publish,
        "--health-interval",
        "1s",
        &image,
    ]);
    // Healthy: the listeners are up (both start together).
    poll(
        "the container to be healthy",
        Duration::from_secs(30),
        || (a.inspect(&name, "{{.State.Health.Status}}") == "healthy").then_some(()),
    );
    let (code, body) = api(admin_port, "GET", "/api/v1/status", Some(token), None);
    assert_eq!(code, 200, "{body}");
    let (code, body) = api(admin_port, "GET", "/api/v1/status", None, None);
    assert_eq!(code, 401, "{body}");
}
