//! The allowed range of every numeric and duration key, in one table.
//!
//! Types alone let through values that crash or cripple a run: a stream ring of 2^63
//! messages panics on allocation, an interval of 1ns burns a core, a request timeout of 1ns
//! keeps every host down. Each key is checked here against bounds no sane setting reaches,
//! by `check-config` and by the run alike (both go through `Config::validate`), and
//! a value outside is reported with the key's file, line and column. The README and
//! `config.example.yaml` quote these bounds.

use std::fmt::Display;
use std::time::Duration;

use super::{Config, PathSeg, Problem};

/// A closed range of a key, shown as the user writes values.
struct Bounds<T> {
    min: T,
    max: T,
}

impl<T: PartialOrd + Copy> Bounds<T> {
    const fn new(min: T, max: T) -> Bounds<T> {
        Bounds { min, max }
    }

    fn check(
        &self,
        problems: &mut Vec<Problem>,
        path: Vec<PathSeg>,
        value: T,
        show: impl Fn(T) -> String,
    ) {
        if value < self.min || value > self.max {
            problems.push(Problem::new(
                path,
                format!(
                    "{} is out of range: allowed {} to {}",
                    show(value),
                    show(self.min),
                    show(self.max)
                ),
            ));
        }
    }
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// `listen.max_connections`: one at least; 65536 is beyond any open-file limit a service
/// is given.
pub const MAX_CONNECTIONS: (usize, usize) = (1, 65_536);
/// `listen.header_timeout`: a request head takes one round trip; five minutes is already a
/// slowloris client's dream.
pub const HEADER_TIMEOUT: (Duration, Duration) = (secs(1), secs(300));
/// `listen.idle_timeout`: up to an hour, past any scrape interval.
pub const IDLE_TIMEOUT: (Duration, Duration) = (secs(1), secs(3600));
/// `monitoring.interval`: below half a second the exporter (and dockerd, with the API
/// source) spends its time sampling; above an hour rates mean little.
pub const INTERVAL: (Duration, Duration) = (millis(500), secs(3600));
/// `monitoring.request_timeout`: a unix socket call takes ~20 ms, a TLS connect to a far
/// host a few hundred; below 250 ms healthy hosts look down.
pub const REQUEST_TIMEOUT: (Duration, Duration) = (millis(250), secs(600));
/// `monitoring.retry_delay`.
pub const RETRY_DELAY: (Duration, Duration) = (millis(10), secs(3600));
/// `monitoring.retry_max_delay` (and at least `retry_delay`).
pub const RETRY_MAX_DELAY: (Duration, Duration) = (millis(10), secs(86_400));
/// `monitoring.relist_interval`.
pub const RELIST_INTERVAL: (Duration, Duration) = (secs(1), secs(86_400));
/// `monitoring.disk_usage_interval`: a pass walks every writable layer and volume; more
/// often than every second it never rests.
pub const DISK_USAGE_INTERVAL: (Duration, Duration) = (secs(1), secs(86_400));
/// `monitoring.disk_usage_timeout`: Docker's `/system/df` takes tens of seconds on big
/// hosts (moby#31158); beyond an hour the figures are stale anyway.
pub const DISK_USAGE_TIMEOUT: (Duration, Duration) = (secs(1), secs(3600));
/// `monitoring.max_retries`.
pub const MAX_RETRIES: (u32, u32) = (0, 1000);
/// `monitoring.max_workers`.
pub const MAX_WORKERS: (usize, usize) = (1, 10_000);
/// `monitoring.stats_concurrency`: calls in flight per host.
pub const STATS_CONCURRENCY: (usize, usize) = (1, 256);
/// `metrics.label_allowlist`: each label is a series dimension on every container family.
pub const LABEL_ALLOWLIST_LEN: (usize, usize) = (0, 64);
/// `metrics.info_labels`: keys or globs.
pub const INFO_LABELS_LEN: (usize, usize) = (0, 256);
/// `metrics.disable`: names of families or groups.
pub const DISABLE_LEN: (usize, usize) = (0, 256);
/// Each list of a `containers` section (`include.names`, `exclude.labels`, …).
pub const SELECTOR_LEN: (usize, usize) = (0, 256);
/// `api.max_body_bytes`: the largest body the API takes is a host (a few hundred bytes).
pub const MAX_BODY_BYTES: (usize, usize) = (1024, 16 * 1024 * 1024);
/// `api.request_timeout`.
pub const API_REQUEST_TIMEOUT: (Duration, Duration) = (secs(1), secs(3600));
/// `api.max_log_follows`: each followed log holds a Docker connection.
pub const MAX_LOG_FOLLOWS: (usize, usize) = (1, 1024);
/// `streams.max_subscribers` (0 turns the live channels off).
pub const MAX_SUBSCRIBERS: (usize, usize) = (0, 10_000);
/// `streams.queue`: a broadcast queue of this many slots per channel is allocated at start.
pub const STREAM_QUEUE: (usize, usize) = (1, 65_536);
/// `streams.ring`: up to this many messages (a few hundred bytes to a few KB each) kept per
/// channel, seven channels.
pub const STREAM_RING: (usize, usize) = (0, 100_000);
/// `shard.total`: a thousand replicas is past any fleet one Prometheus scrapes.
pub const SHARD_TOTAL: (usize, usize) = (1, 1000);
/// `shard.refresh`: two SQLite reads each time.
pub const SHARD_REFRESH: (Duration, Duration) = (secs(1), secs(3600));
/// `otlp.interval` (or `OTEL_METRIC_EXPORT_INTERVAL`).
pub const OTLP_INTERVAL: (Duration, Duration) = (secs(1), secs(86_400));
/// `otlp.timeout` (or `OTEL_EXPORTER_OTLP_*TIMEOUT`).
pub const OTLP_TIMEOUT: (Duration, Duration) = (millis(100), secs(600));
/// `otlp.max_points_per_request`: at ~300 bytes a point, 3 KB to ~30 MB per request.
pub const OTLP_MAX_POINTS: (usize, usize) = (10, 100_000);

/// Every range as `(key path, "min to max")`, as the README and `config.example.yaml`
/// write them (a test keeps the example in step).
pub fn documented() -> Vec<(&'static str, String)> {
    let d = |(min, max): (Duration, Duration)| {
        format!("{} to {}", show_duration(min), show_duration(max))
    };
    let n = |(min, max): (usize, usize)| format!("{min} to {max}");
    vec![
        ("listen.max_connections", n(MAX_CONNECTIONS)),
        ("listen.header_timeout", d(HEADER_TIMEOUT)),
        ("listen.idle_timeout", d(IDLE_TIMEOUT)),
        ("monitoring.interval", d(INTERVAL)),
        ("monitoring.request_timeout", d(REQUEST_TIMEOUT)),
        ("monitoring.retry_delay", d(RETRY_DELAY)),
        ("monitoring.retry_max_delay", d(RETRY_MAX_DELAY)),
        ("monitoring.relist_interval", d(RELIST_INTERVAL)),
        ("monitoring.disk_usage_interval", d(DISK_USAGE_INTERVAL)),
        ("monitoring.disk_usage_timeout", d(DISK_USAGE_TIMEOUT)),
        (
            "monitoring.max_retries",
            format!("{} to {}", MAX_RETRIES.0, MAX_RETRIES.1),
        ),
        ("monitoring.max_workers", n(MAX_WORKERS)),
        ("monitoring.stats_concurrency", n(STATS_CONCURRENCY)),
        (
            "metrics.label_allowlist",
            format!(
                "{} to {} keys",
                LABEL_ALLOWLIST_LEN.0, LABEL_ALLOWLIST_LEN.1
            ),
        ),
        (
            "metrics.info_labels",
            format!("{} to {} keys", INFO_LABELS_LEN.0, INFO_LABELS_LEN.1),
        ),
        (
            "metrics.disable",
            format!("{} to {} names", DISABLE_LEN.0, DISABLE_LEN.1),
        ),
        ("api.max_body_bytes", n(MAX_BODY_BYTES)),
        ("api.request_timeout", d(API_REQUEST_TIMEOUT)),
        ("api.max_log_follows", n(MAX_LOG_FOLLOWS)),
        (
            "streams.max_subscribers",
            format!("{} (0: no live channels)", n(MAX_SUBSCRIBERS)),
        ),
        ("streams.queue", n(STREAM_QUEUE)),
        ("streams.ring", n(STREAM_RING)),
        ("shard.total", n(SHARD_TOTAL)),
        ("shard.refresh", d(SHARD_REFRESH)),
        ("otlp.interval", d(OTLP_INTERVAL)),
        ("otlp.timeout", d(OTLP_TIMEOUT)),
        ("otlp.max_points_per_request", n(OTLP_MAX_POINTS)),
    ]
}

fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn show_number<T: Display>(n: T) -> String {
    n.to_string()
}

fn path(keys: &[&str]) -> Vec<PathSeg> {
    keys.iter().map(|k| PathSeg::from(*k)).collect()
}

fn duration(
    problems: &mut Vec<Problem>,
    keys: &[&str],
    value: Duration,
    (min, max): (Duration, Duration),
) {
    Bounds::new(min, max).check(problems, path(keys), value, show_duration);
}

fn number<T: PartialOrd + Copy + Display>(
    problems: &mut Vec<Problem>,
    keys: &[&str],
    value: T,
    (min, max): (T, T),
) {
    Bounds::new(min, max).check(problems, path(keys), value, show_number);
}

/// Checks every key of the file that has a range (the OTLP keys that may also come from
/// the environment are checked where they are merged, [`check_otlp`]).
pub(super) fn check(cfg: &Config, problems: &mut Vec<Problem>) {
    let l = &cfg.listen;
    number(
        problems,
        &["listen", "max_connections"],
        l.max_connections,
        MAX_CONNECTIONS,
    );
    duration(
        problems,
        &["listen", "header_timeout"],
        l.header_timeout,
        HEADER_TIMEOUT,
    );
    duration(
        problems,
        &["listen", "idle_timeout"],
        l.idle_timeout,
        IDLE_TIMEOUT,
    );
    let m = &cfg.monitoring;
    duration(problems, &["monitoring", "interval"], m.interval, INTERVAL);
    duration(
        problems,
        &["monitoring", "request_timeout"],
        m.request_timeout,
        REQUEST_TIMEOUT,
    );
    duration(
        problems,
        &["monitoring", "retry_delay"],
        m.retry_delay,
        RETRY_DELAY,
    );
    duration(
        problems,
        &["monitoring", "retry_max_delay"],
        m.retry_max_delay,
        RETRY_MAX_DELAY,
    );
    duration(
        problems,
        &["monitoring", "relist_interval"],
        m.relist_interval,
        RELIST_INTERVAL,
    );
    duration(
        problems,
        &["monitoring", "disk_usage_interval"],
        m.disk_usage_interval,
        DISK_USAGE_INTERVAL,
    );
    duration(
        problems,
        &["monitoring", "disk_usage_timeout"],
        m.disk_usage_timeout,
        DISK_USAGE_TIMEOUT,
    );
    number(
        problems,
        &["monitoring", "max_retries"],
        m.max_retries,
        MAX_RETRIES,
    );
    number(
        problems,
        &["monitoring", "max_workers"],
        m.max_workers.get(),
        MAX_WORKERS,
    );
    number(
        problems,
        &["monitoring", "stats_concurrency"],
        m.stats_concurrency.get(),
        STATS_CONCURRENCY,
    );
    number(
        problems,
        &["metrics", "label_allowlist"],
        cfg.metrics.label_allowlist.len(),
        LABEL_ALLOWLIST_LEN,
    );
    number(
        problems,
        &["metrics", "info_labels"],
        cfg.metrics.info_labels.len(),
        INFO_LABELS_LEN,
    );
    number(
        problems,
        &["metrics", "disable"],
        cfg.metrics.disable.len(),
        DISABLE_LEN,
    );
    for (ci, c) in cfg.clients.iter().enumerate() {
        let sections = std::iter::once((None, &c.containers)).chain(
            c.hosts
                .iter()
                .enumerate()
                .map(|(hi, h)| (Some(hi), &h.containers)),
        );
        for (hi, section) in sections {
            for (half, sel) in [("include", &section.include), ("exclude", &section.exclude)] {
                for (key, len) in [("names", sel.names.len()), ("labels", sel.labels.len())] {
                    let mut at: Vec<PathSeg> = vec!["clients".into(), ci.into()];
                    if let Some(hi) = hi {
                        at.extend(["hosts".into(), hi.into()]);
                    }
                    at.extend(["containers".into(), half.into(), key.into()]);
                    Bounds::new(SELECTOR_LEN.0, SELECTOR_LEN.1)
                        .check(problems, at, len, |v| v.to_string());
                }
            }
        }
    }
    let a = &cfg.api;
    number(
        problems,
        &["api", "max_body_bytes"],
        a.max_body_bytes,
        MAX_BODY_BYTES,
    );
    duration(
        problems,
        &["api", "request_timeout"],
        a.request_timeout,
        API_REQUEST_TIMEOUT,
    );
    number(
        problems,
        &["api", "max_log_follows"],
        a.max_log_follows.get(),
        MAX_LOG_FOLLOWS,
    );
    let s = &cfg.streams;
    number(
        problems,
        &["streams", "max_subscribers"],
        s.max_subscribers,
        MAX_SUBSCRIBERS,
    );
    number(problems, &["streams", "queue"], s.queue.get(), STREAM_QUEUE);
    number(problems, &["streams", "ring"], s.ring, STREAM_RING);
    number(problems, &["shard", "total"], cfg.shard.total, SHARD_TOTAL);
    duration(
        problems,
        &["shard", "refresh"],
        cfg.shard.refresh,
        SHARD_REFRESH,
    );
}

/// The OTLP keys after merging with the environment: reported at the key when the file set
/// it, else at the `otlp` section with the variable's name in the message.
pub(super) fn check_otlp(
    problems: &mut Vec<Problem>,
    interval: (Duration, Option<&str>),
    timeout: (Duration, Option<&str>),
    max_points: usize,
) {
    for ((value, from_env), key, bounds) in [
        (interval, "interval", OTLP_INTERVAL),
        (timeout, "timeout", OTLP_TIMEOUT),
    ] {
        match from_env {
            None => duration(problems, &["otlp", key], value, bounds),
            Some(var) => {
                let mut found = Vec::new();
                duration(&mut found, &["otlp"], value, bounds);
                problems.extend(found.into_iter().map(|p| Problem {
                    message: format!("{var}: {}", p.message),
                    ..p
                }));
            }
        }
    }
    number(
        problems,
        &["otlp", "max_points_per_request"],
        max_points,
        OTLP_MAX_POINTS,
    );
}
