//! Disk usage against the real daemon A: a container's writable layer and root filesystem,
//! a volume's size and references, and the host's images, compared with what `docker
//! system df -v` says at the same time. The exporter measures the writable layer from its
//! overlay2 upper directory (daemon A is local), Docker walks the same directory: the two
//! must agree within 5 %.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn config_a() -> String {
    config_with("disk_usage_interval: 2s\n  disk_usage_timeout: 60s")
}

fn config_with(disk: &str) -> String {
    format!(
        "monitoring:\n  interval: 1s\n  {disk}\nclients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n",
        env().a_socket
    )
}

/// `/system/df` calls the exporter made to host a.
fn df_calls(s: &Scrape) -> f64 {
    s.value(
        "dockstat_docker_request_duration_seconds_count",
        &[("host", "a"), ("endpoint", "system_df")],
    )
    .unwrap_or(0.0)
}

/// `52.43MB`, `1.5kB`, `0B`: the docker CLI's decimal human sizes, in bytes.
fn human_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.trim().parse().ok()?;
    let k = match unit {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some(n * k)
}

/// A volume with the test label; removed when dropped.
struct Volume {
    docker: Docker,
    name: String,
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = self.docker.try_run(&["volume", "rm", "-f", &self.name]);
    }
}

/// What `docker system df -v` says of one container and one volume, and of the images.
struct Df {
    container_rw: f64,
    volume_size: f64,
    volume_links: f64,
    images: f64,
}

fn docker_df(d: &Docker, container: &str, volume: &str) -> Df {
    let text = d.run(&["system", "df", "-v", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("docker system df -v json");
    let c = v["Containers"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["Names"] == container))
        .unwrap_or_else(|| panic!("docker system df -v lists no {container}: {text}"));
    let vol = v["Volumes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["Name"] == volume))
        .unwrap_or_else(|| panic!("docker system df -v lists no volume {volume}: {text}"));
    // `Size` reads "52.4MB (virtual 54.4MB)" for a container.
    let size = |x: &serde_json::Value| {
        let s = x["Size"].as_str().unwrap_or("");
        human_bytes(s.split(" (").next().unwrap_or(s))
            .unwrap_or_else(|| panic!("docker system df size {s:?}"))
    };
    let summary = d.run(&["system", "df", "--format", "{{json .}}"]);
    let images = summary
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["Type"] == "Images")
        .map(|l| size(&l))
        .expect("docker system df: an Images row");
    Df {
        container_rw: size(c),
        volume_size: size(vol),
        volume_links: vol["Links"]
            .as_str()
            .and_then(|l| l.parse().ok())
            .expect("volume Links"),
        images,
    }
}

fn within(what: &str, ours: f64, docker: f64, tolerance: f64) {
    let diff = (ours - docker).abs() / docker.max(1.0);
    eprintln!(
        "{what}: exporter {ours:.0} B, docker system df {docker:.0} B ({:.2} % apart)",
        diff * 100.0
    );
    assert!(
        diff <= tolerance,
        "{what}: exporter {ours} vs docker system df {docker}: {:.2} % apart",
        diff * 100.0
    );
}

#[test]
fn disk_usage_matches_docker_system_df() {
    let d = Docker::a();
    let vol = Volume {
        docker: d.clone(),
        name: unique("dfvol"),
    };
    d.run(&["volume", "create", "--label", "dockstat.test=1", &vol.name]);
    let c = d.start(
        "dfwriter",
        &["-v", &format!("{}:/vol", vol.name)],
        "dd if=/dev/urandom of=/layer bs=1M count=50 2>/dev/null \
         && dd if=/dev/urandom of=/vol/data bs=1M count=20 2>/dev/null \
         && touch /done && sleep 600",
    );
    // The writes take a moment: wait for the container's own word that they are done.
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.try_run(&["exec", &c.id, "test", "-f", "/done"]).is_err() {
        assert!(
            Instant::now() < deadline,
            "the container did not write its 70 MB in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let exp = Exporter::start("disk", &config_a());
    let f = [("name", c.name.as_str())];
    let vf = [("volume", vol.name.as_str())];
    // Figures of a pass that began after the writes: the writable layer holds 50 MB.
    let s = exp.wait_for(
        Duration::from_secs(90),
        "a disk usage pass with the writes",
        |s| {
            s.value("container_fs_usage_bytes", &f)
                .is_some_and(|v| v > 50e6)
                && s.value("dockstat_volume_size_bytes", &vf)
                    .is_some_and(|v| v > 20e6)
        },
    );
    let df = docker_df(&d, &c.name, &vol.name);
    let rw = s.value("container_fs_usage_bytes", &f).expect("fs usage");
    within("writable layer", rw, df.container_rw, 0.05);
    let size = s
        .value("dockstat_volume_size_bytes", &vf)
        .expect("volume size");
    within("volume", size, df.volume_size, 0.05);
    within(
        "volume (20 MiB written)",
        size,
        20.0 * 1024.0 * 1024.0,
        0.05,
    );
    within(
        "writable layer (50 MiB written)",
        rw,
        50.0 * 1024.0 * 1024.0,
        0.05,
    );
    assert_eq!(
        s.value("dockstat_volume_references", &vf),
        Some(df.volume_links),
        "volume references vs docker system df Links"
    );
    let driver = s
        .find("dockstat_volume_size_bytes", &vf)
        .next()
        .map(|x| x.labels.get("driver").cloned().unwrap_or_default());
    assert_eq!(driver.as_deref(), Some("local"));
    // Measured here from the upper directory: the series says on which device.
    let device = s
        .find("container_fs_usage_bytes", &f)
        .next()
        .and_then(|x| x.labels.get("device").cloned())
        .expect("a device label: daemon A is local, the layer is measured here");
    let upper = c.inspect("{{.GraphDriver.Data.UpperDir}}");
    let dev = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&upper)
            .expect("stat the upper directory")
            .dev()
    };
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    assert_eq!(
        device,
        format!("{major}:{minor}"),
        "the upper directory's device"
    );
    let rootfs = s
        .value("dockstat_container_rootfs_size_bytes", &f)
        .expect("root fs size");
    assert!(
        rootfs >= rw,
        "root fs {rootfs} holds the writable layer {rw}"
    );
    let images = s
        .value("dockstat_host_images_size_bytes", &[("host", "a")])
        .expect("images size");
    within("images", images, df.images, 0.05);
    assert!(
        s.value("dockstat_host_build_cache_size_bytes", &[("host", "a")])
            .is_some(),
        "build cache size"
    );
    assert!(
        s.value("dockstat_host_container_logs_size_bytes", &[("host", "a")])
            .is_some(),
        "container logs size on the local host"
    );
    assert_eq!(
        s.value("dockstat_disk_usage_success", &[("host", "a")]),
        Some(1.0)
    );
    let age = s
        .value("dockstat_disk_usage_age_seconds", &[("host", "a")])
        .expect("age");
    assert!((0.0..30.0).contains(&age), "age {age}");
    // The figures are kept with their age between passes; the age is what moves.
    let took = s
        .value("dockstat_disk_usage_duration_seconds", &[("host", "a")])
        .expect("duration");
    eprintln!("last pass took {took:.3} s, {age:.1} s ago");
}

/// Scrapes read the last pass's figures: however many there are, the df calls follow the
/// interval (2 s) only.
#[test]
fn scrapes_never_ask_docker_for_disk_usage() {
    let d = Docker::a();
    let c = d.start("dfscrape", &[], "sleep 600");
    let exp = Exporter::start("disk-scrapes", &config_a());
    let f = [("name", c.name.as_str())];
    let s = exp.wait_for(Duration::from_secs(60), "a first disk usage pass", |s| {
        s.value("container_fs_usage_bytes", &f).is_some()
    });
    let (calls0, t0) = (df_calls(&s), Instant::now());
    let mut scrapes = 0;
    while t0.elapsed() < Duration::from_secs(6) {
        let s = exp.scrape();
        assert!(s.value("container_fs_usage_bytes", &f).is_some());
        scrapes += 1;
    }
    let calls1 = df_calls(&exp.scrape());
    let allowed = (t0.elapsed().as_secs_f64() / 2.0).ceil() + 1.0;
    eprintln!(
        "{scrapes} scrapes in {:?}: {} df calls",
        t0.elapsed(),
        calls1 - calls0
    );
    assert!(scrapes > 20, "only {scrapes} scrapes");
    assert!(
        calls1 - calls0 <= allowed,
        "{} df calls during {scrapes} scrapes in {:?} (interval 2 s)",
        calls1 - calls0,
        t0.elapsed()
    );
}

/// `disk_usage: false`: no pass, no disk series, no df call, while stats go on.
#[test]
fn disk_usage_off_makes_no_df_call() {
    let d = Docker::a();
    let c = d.start("dfoff", &[], "sleep 600");
    let exp = Exporter::start("disk-off", &config_with("disk_usage: false"));
    let f = [("name", c.name.as_str())];
    let first = exp.wait_for(Duration::from_secs(30), "a first sample", |s| {
        s.value("container_last_seen", &f).is_some()
    });
    let seen = first.value("container_last_seen", &f).unwrap_or(0.0);
    // Past the first pass's time (10 s after connecting) had it been on.
    let s = exp.wait_for(Duration::from_secs(40), "12 s of samples", |s| {
        s.value("container_last_seen", &f)
            .is_some_and(|t| t > seen + 12.0)
    });
    assert_eq!(df_calls(&s), 0.0, "no /system/df call");
    for family in [
        "container_fs_usage_bytes",
        "dockstat_volume_size_bytes",
        "dockstat_disk_usage_success",
    ] {
        assert!(
            s.find(family, &[]).next().is_none(),
            "{family} with disk usage off"
        );
    }
}

/// A host the exporter does not see the files of (daemon B over TCP, stats through the
/// API, so no cgroup files found here either): the writable layer is Docker's `SizeRw`,
/// without a `device` label, and still within 5 % of `docker system df -v`.
#[test]
fn a_remote_host_gets_dockers_figure() {
    let d = Docker::b();
    let c = d.start(
        "dfremote",
        &[],
        "dd if=/dev/urandom of=/layer bs=1M count=10 2>/dev/null && touch /done && sleep 600",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.try_run(&["exec", &c.id, "test", "-f", "/done"]).is_err() {
        assert!(
            Instant::now() < deadline,
            "the container did not write its 10 MB in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let exp = Exporter::start(
        "disk-remote",
        &format!(
            "monitoring:\n  interval: 1s\n  stats_source: api\n  disk_usage_interval: 2s\nclients:\n  - name: lab\n    hosts:\n      - name: b\n        address: tcp://{}\n",
            env().b_tcp
        ),
    );
    let f = [("name", c.name.as_str())];
    let s = exp.wait_for(Duration::from_secs(60), "a disk usage pass", |s| {
        s.value("container_fs_usage_bytes", &f)
            .is_some_and(|v| v > 10e6)
    });
    let series = s
        .find("container_fs_usage_bytes", &f)
        .next()
        .expect("fs usage")
        .clone();
    assert!(
        !series.labels.contains_key("device"),
        "Docker's figure carries no device: {:?}",
        series.labels
    );
    let text = d.run(&["system", "df", "-v", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("docker system df -v json");
    let size = v["Containers"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["Names"] == c.name.as_str()))
        .and_then(|x| x["Size"].as_str())
        .and_then(|s| human_bytes(s.split(" (").next().unwrap_or(s)))
        .expect("docker system df -v lists the container");
    within("writable layer (Docker's SizeRw)", series.value, size, 0.05);
    assert!(
        s.value("dockstat_host_container_logs_size_bytes", &[("host", "b")])
            .is_none(),
        "log files are measured only where the exporter sees them"
    );
}
