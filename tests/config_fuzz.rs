//! Configuration parsing and validation under generated input: mutations of the example
//! configuration and of the test suite's own configurations (extreme values in every key,
//! byte flips, truncations, deep nesting, alias bombs, unknown keys). Nothing may panic or
//! take more than 5 s, in process (`Config::parse_bytes`) or through `check-config`, whose
//! exit code must be 0 (valid) or 2 (invalid) and nothing else.
//!
//! The cases are drawn from a fixed seed, so a failure reproduces; `DOCKSTAT_FUZZ_SEED` and
//! `DOCKSTAT_FUZZ_CASES` explore further (`DOCKSTAT_FUZZ_CASES=100000 cargo test --test
//! config_fuzz`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dockstat_exporter::config::Config;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that have broken parsers and validators elsewhere.
const NASTY: &[&str] = &[
    "0",
    "-1",
    "1ns",
    "0s",
    "9223372036854775807",
    "18446744073709551616",
    "-9223372036854775808",
    "1e309",
    ".nan",
    "-.inf",
    "0x7fffffff",
    "\"\"",
    "\"\\0\"",
    "\"a\\0b\"",
    "~",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
    "!!binary aGVsbG8=",
    "*undefined",
    "&a [*a, *a]",
    "\"${NOPE_NOT_SET}\"",
    "\"$${literal}\"",
    "\"${}\"",
    "unix://",
    "tcp://:0",
    "tcp://[::1]:99999",
    "/dev/zero",
    "/proc/self/mem",
    "/",
    "999999999999h",
    "1y",
    "\"\u{202e}evil\"",
    "'''",
    "\"\\uD800\"",
    "? complex\n  : key",
    "|\n  block",
];

const KEYS: &[&str] = &[
    "interval",
    "request_timeout",
    "retry_delay",
    "retry_max_delay",
    "relist_interval",
    "max_retries",
    "max_workers",
    "stats_concurrency",
    "queue",
    "ring",
    "max_subscribers",
    "max_body_bytes",
    "max_log_follows",
    "path",
    "address",
    "name",
    "metrics",
    "admin",
    "label_allowlist",
    "max_points_per_request",
    "timeout",
    "endpoint",
    "enabled",
    "stats_source",
    "cgroup_root",
];

/// A billion-laughs document: aliases that expand exponentially.
fn alias_bomb() -> String {
    let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    s.push_str("monitoring:\n  interval: *a11\n");
    s
}

fn seeds() -> Vec<String> {
    let e = env();
    let example = std::fs::read_to_string(repo().join("config.example.yaml")).expect("example");
    vec![
        example,
        format!(
            "monitoring:\n  interval: 1s\n  request_timeout: 2s\nclients:\n  - name: lab\n    hosts:\n      - name: a\n        address: unix://{}\n      - name: b\n        address: tcp://{}\n",
            e.a_socket, e.b_tcp
        ),
        format!(
            "clients:\n  - name: tls\n    hosts:\n      - name: c\n        address: tcp://{}\n        tls:\n          ca: {}/ca.pem\n          cert: {}/client-cert.pem\n          key: {}/client-key.pem\n",
            e.c_tls,
            e.certs.display(),
            e.certs.display(),
            e.certs.display()
        ),
        "otlp:\n  enabled: true\n  endpoint: https://collector:4317\n  headers:\n    authorization: x\n  resource:\n    a.b: c\nstreams:\n  queue: 8\n  ring: 4\napi:\n  tokens:\n    - { name: a, role: admin, token: \"0123456789abcdef0\" }\n".to_string(),
        String::new(),
    ]
}

/// One mutation of `text`.
fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut bytes;
    match rng.below(9) {
        // A key's value replaced by a nasty one.
        0..=2 => {
            let candidates: Vec<usize> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains(": ") || l.trim_end().ends_with(':'))
                .map(|(i, _)| i)
                .collect();
            if let Some(&i) = candidates.get(rng.below(candidates.len())) {
                let (head, _) = lines[i].split_once(':').unwrap_or((&lines[i], ""));
                lines[i] = format!("{head}: {}", rng.pick(NASTY));
            }
        }
        // A known key added at a random place with a nasty value.
        3 => {
            let at = rng.below(lines.len() + 1);
            let indent = " ".repeat(rng.below(4) * 2);
            lines.insert(
                at,
                format!("{indent}{}: {}", rng.pick(KEYS), rng.pick(NASTY)),
            );
        }
        // Lines dropped, duplicated or re-indented.
        4 => {
            for _ in 0..=rng.below(4) {
                if lines.is_empty() {
                    break;
                }
                let i = rng.below(lines.len());
                match rng.below(3) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        lines.insert(i, l);
                    }
                    _ => lines[i] = format!("{}{}", " ".repeat(rng.below(9)), lines[i].trim()),
                }
            }
        }
        // Deep nesting or an alias bomb.
        5 => {
            let depth = 50 + rng.below(200);
            lines.push(format!("x: {}{}", "[".repeat(depth), "]".repeat(depth)));
            if rng.below(2) == 0 {
                lines = alias_bomb().lines().map(str::to_string).collect();
            }
        }
        _ => {}
    }
    bytes = lines.join("\n").into_bytes();
    // Byte-level damage: flips, truncation, invalid UTF-8, NULs.
    if rng.below(3) == 0 && !bytes.is_empty() {
        for _ in 0..=rng.below(6) {
            let i = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[i] ^= 1 << rng.below(8),
                1 => bytes[i] = 0,
                2 => bytes[i] = 0xff,
                _ => bytes.truncate(i),
            }
            if bytes.is_empty() {
                break;
            }
        }
    }
    bytes
}

fn cases() -> (u64, usize) {
    let seed = std::env::var("DOCKSTAT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0D0C_57A7_u64);
    let n = std::env::var("DOCKSTAT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    (seed, n)
}

/// In process: every case parses or is refused, without a panic, within 5 s.
#[test]
fn generated_configurations_never_panic_or_hang_in_process() {
    let (seed, n) = cases();
    let mut rng = Rng(seed | 1);
    let seeds = seeds();
    let dir = temp_dir("fuzz-in-process");
    let path = dir.join("config.yaml");
    let (mut valid, mut invalid) = (0, 0);
    let mut slowest = Duration::ZERO;
    for case in 0..n {
        let base = rng.pick(&seeds).clone();
        let bytes = mutate(&mut rng, &base);
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| Config::parse_bytes(&bytes, &path));
        let took = started.elapsed();
        slowest = slowest.max(took);
        let text = String::from_utf8_lossy(&bytes);
        match result {
            Ok(Ok(_)) => valid += 1,
            Ok(Err(_)) => invalid += 1,
            Err(_) => panic!("case {case} (seed {seed}) panicked on:\n{text}"),
        }
        assert!(
            took < Duration::from_secs(5),
            "case {case} (seed {seed}) took {took:?} on:\n{text}"
        );
    }
    eprintln!("{n} cases: {valid} valid, {invalid} refused, slowest {slowest:?}");
    assert!(valid > 0 && invalid > 0, "the cases cover both outcomes");
}

/// Through the binary: `check-config` exits 0 or 2, within 5 s, whatever the file.
#[test]
fn check_config_exits_0_or_2_on_generated_files() {
    let (seed, n) = cases();
    let n = (n / 10).max(50);
    let mut rng = Rng(seed.rotate_left(17) | 1);
    let seeds = seeds();
    let dir = temp_dir("fuzz-binary");
    let (mut zero, mut two) = (0, 0);
    for case in 0..n {
        let base = rng.pick(&seeds).clone();
        let bytes = mutate(&mut rng, &base);
        let path = dir.join(format!("case-{case}.yaml"));
        std::fs::write(&path, &bytes).expect("write");
        let code = check_config(&path, Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "case {case} (seed {seed}): check-config hung on {}",
                path.display()
            )
        });
        match code {
            Some(0) => zero += 1,
            Some(2) => two += 1,
            other => panic!(
                "case {case} (seed {seed}): check-config exited {other:?} on {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            ),
        }
        let _ = std::fs::remove_file(&path);
    }
    eprintln!("{n} files: {zero} valid (exit 0), {two} refused (exit 2)");
    assert!(zero > 0 && two > 0, "the cases cover both outcomes");
}

/// Runs `check-config`; None when it did not finish within `within` (it is killed).
fn check_config(path: &Path, within: Duration) -> Option<Option<i32>> {
    let mut child = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("DOCKSTAT_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status.code());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
