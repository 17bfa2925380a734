use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Validated, ConfigError> {
    Config::parse(text, Path::new("/tmp/dockstat-test.yaml"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(ConfigError::Invalid(v)) => v.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn empty_file_gives_defaults() {
    let v = parse("").expect("defaults");
    assert_eq!(v.config.monitoring.interval, Duration::from_secs(5));
    assert_eq!(v.config.monitoring.max_workers.get(), 200);
    assert_eq!(v.config.monitoring.max_retries, 3);
    assert_eq!(v.config.monitoring.retry_delay, Duration::from_secs(1));
    assert_eq!(v.config.listen.metrics.to_string(), "0.0.0.0:9487");
    assert_eq!(v.database_path, Path::new("/tmp/./dockstat.db"));
}

#[test]
fn unknown_key_wrong_type_and_bad_duration_have_positions() {
    let e = errors("monitoring:\n  interval: 5s\n  intervall: 3s\n");
    assert!(e[0].starts_with("/tmp/dockstat-test.yaml:3:3: "), "{e:?}");
    assert!(e[0].contains("unknown field `intervall`"), "{e:?}");

    let e = errors("monitoring:\n  max_workers: many\n");
    assert!(e[0].starts_with("/tmp/dockstat-test.yaml:2:16: "), "{e:?}");

    let e = errors("monitoring:\n  interval: 0s\n");
    assert!(e[0].starts_with("/tmp/dockstat-test.yaml:2:13: "), "{e:?}");
    assert!(e[0].contains("greater than zero"), "{e:?}");
}

#[test]
fn addresses_parse() {
    assert_eq!(
        Address::parse("unix:///var/run/docker.sock"),
        Ok(Address::Unix("/var/run/docker.sock".into()))
    );
    assert_eq!(
        Address::parse("/run/x.sock"),
        Ok(Address::Unix("/run/x.sock".into()))
    );
    assert_eq!(
        Address::parse("tcp://10.0.0.1:2375"),
        Ok(Address::Tcp {
            host: "10.0.0.1".into(),
            port: 2375
        })
    );
    assert_eq!(
        Address::parse("[::1]:2376"),
        Ok(Address::Tcp {
            host: "::1".into(),
            port: 2376
        })
    );
    assert!(Address::parse("tcp://host").is_err());
    assert!(Address::parse("http://host:1").is_err());
    assert!(Address::parse("unix://relative.sock").is_err());
    assert!(Address::parse("host:99999").is_err());
}

#[test]
fn semantic_errors_point_at_the_key() {
    let text = "\
clients:
  - name: prod
    hosts:
      - name: a
        address: tcp://h:2375
      - name: a
        address: tcp://h2:2375
      - name: c
        address: tcp://h:2375
      - name: d
        address: unix:///x.sock
        tls: {ca: /nonexistent/ca.pem, cert: /nonexistent/c.pem, key: /nonexistent/k.pem}
";
    let e = errors(text);
    assert!(
        e.iter().any(|m| m.starts_with(
            "/tmp/dockstat-test.yaml:6:15: clients[0].hosts[1].name: duplicate host `a`"
        )),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with(
            "/tmp/dockstat-test.yaml:9:18: clients[0].hosts[2].address: duplicate host"
        )),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|m| m
                .contains("clients[0].hosts[3].tls.ca: file `/nonexistent/ca.pem` does not exist")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("/tmp/dockstat-test.yaml:12:19: clients[0].hosts[3].tls.ca")),
        "{e:#?}"
    );
}

#[test]
fn env_expansion() {
    // SAFETY of set_var: this test owns a variable name no other test reads.
    unsafe { std::env::set_var("DOCKSTAT_TEST_EXPAND_HOST", "example.org") };
    assert_eq!(
        expand_env("tcp://${DOCKSTAT_TEST_EXPAND_HOST}:2376").as_deref(),
        Ok("tcp://example.org:2376")
    );
    assert_eq!(expand_env("a$${b}c$d").as_deref(), Ok("a${b}c$d"));
    assert!(expand_env("${DOCKSTAT_TEST_SURELY_UNSET_VAR}").is_err());
    assert!(expand_env("${oops").is_err());
    let e = errors(
        "clients:\n  - name: x\n    hosts:\n      - name: y\n        address: ${DOCKSTAT_TEST_SURELY_UNSET_VAR}\n",
    );
    assert!(
        e[0].starts_with(
            "/tmp/dockstat-test.yaml:5:18: clients[0].hosts[0].address: environment variable"
        ),
        "{e:?}"
    );
}

#[test]
fn label_allowlist_collisions() {
    let e = errors("metrics:\n  label_allowlist: [a.b, a_b]\n");
    assert!(
        e[0].contains("both become the label `container_label_a_b`"),
        "{e:?}"
    );
    let v = parse("metrics:\n  label_allowlist: [com.docker.compose.project]\n").expect("ok");
    assert_eq!(
        v.labels,
        vec![(
            "com.docker.compose.project".to_string(),
            "container_label_com_docker_compose_project".to_string()
        )]
    );
}

#[test]
fn example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join("config.example.yaml")).expect("example exists");
    let v = Config::parse(&text, &dir.join("config.example.yaml")).expect("example is valid");
    assert!(!v.clients.is_empty());
}

/// The example documents every key: for each section, serde's own list of expected fields
/// (taken from the unknown-field error) must appear in the example as `key:`.
#[test]
fn example_config_documents_every_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(dir.join("config.example.yaml")).expect("example exists");
    let probes = [
        "zz_probe: 1",
        "listen: {zz_probe: 1}",
        "monitoring: {zz_probe: 1}",
        "database: {zz_probe: 1}",
        "metrics: {zz_probe: 1}",
        "api: {zz_probe: 1}",
        "streams: {zz_probe: 1}",
        "otlp: {zz_probe: 1}",
        "otlp: {tls: {zz_probe: 1}}",
        "api: {tokens: [{zz_probe: 1}]}",
        "listen: {tls: {zz_probe: 1}}",
        "clients: [{zz_probe: 1}]",
        "clients: [{name: a, hosts: [{zz_probe: 1}]}]",
        "clients: [{name: a, hosts: [{name: b, address: /x, tls: {zz_probe: 1}}]}]",
    ];
    for probe in probes {
        let e = errors(probe).join(" ");
        let expected = e
            .split("expected ")
            .nth(1)
            .unwrap_or_else(|| panic!("no field list in {e}"));
        let fields: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(!fields.is_empty(), "{e}");
        for f in fields {
            assert!(
                example.contains(&format!("{f}:")),
                "config.example.yaml does not document `{f}` ({probe})"
            );
        }
    }
}

#[test]
fn positions_are_cut_out_of_yaml_messages() {
    assert_eq!(
        strip_location(
            "found unexpected end of stream at line 3 column 1, while scanning a quoted scalar"
        ),
        "found unexpected end of stream, while scanning a quoted scalar"
    );
    assert_eq!(
        strip_location("unknown field `x` at line 2 column 3"),
        "unknown field `x`"
    );
    assert_eq!(strip_location("look at line items"), "look at line items");
}

/// config.example.yaml gives each ranged key's range in the comment line right above it,
/// exactly as `config::ranges` checks it.
#[test]
fn the_example_documents_every_range() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .expect("example");
    let lines: Vec<&str> = text.lines().collect();
    for (key, range) in super::ranges::documented() {
        let (section, name) = key.split_once('.').expect("section.key");
        let start = lines
            .iter()
            .position(|l| *l == format!("{section}:"))
            .unwrap_or_else(|| panic!("no section {section}"));
        let at = lines[start..]
            .iter()
            .position(|l| {
                l.starts_with(&format!("  {name}:")) || l.starts_with(&format!("  # {name}:"))
            })
            .map(|i| i + start)
            .unwrap_or_else(|| panic!("no key {key} in the example"));
        let comment = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .any(|l| l.contains(&format!("Range: {range}.")));
        assert!(
            comment,
            "{key}: the comment above it should say `Range: {range}.`"
        );
    }
}

#[test]
fn listener_limits_have_defaults_and_ranges() {
    let v = parse("").expect("defaults");
    assert_eq!(v.config.listen.max_connections, 512);
    assert_eq!(v.config.listen.header_timeout, Duration::from_secs(10));
    assert_eq!(v.config.listen.idle_timeout, Duration::from_secs(60));
    let v = parse("listen:\n  max_connections: 65536\n  header_timeout: 5m\n  idle_timeout: 1h\n")
        .expect("the largest values");
    assert_eq!(v.config.listen.max_connections, 65536);

    let e = errors("listen:\n  max_connections: 0\n  header_timeout: 10m\n  idle_timeout: 500ms\n");
    assert_eq!(
        e,
        [
            "/tmp/dockstat-test.yaml:2:20: listen.max_connections: 0 is out of range: allowed 1 to 65536",
            "/tmp/dockstat-test.yaml:3:19: listen.header_timeout: 10m is out of range: allowed 1s to 5m",
            "/tmp/dockstat-test.yaml:4:17: listen.idle_timeout: 500ms is out of range: allowed 1s to 1h",
        ],
        "{e:?}"
    );
}

#[test]
fn shards_from_the_file_and_the_flags() {
    let v = parse("").expect("defaults");
    assert_eq!(v.shard, crate::shard::Shard { index: 0, total: 1 });
    assert_eq!(v.config.shard.refresh, Duration::from_secs(10));

    let mut v = parse("shard:\n  total: 3\n  index: 2\n").expect("a shard");
    assert_eq!(v.shard, crate::shard::Shard { index: 2, total: 3 });
    v.apply_flags(Some(1), None, None).expect("--shard 1");
    assert_eq!(v.shard.index, 1);
    assert!(v.apply_flags(None, Some(1), None).is_err(), "index 1 of 1");
    assert!(
        v.apply_flags(None, Some(1001), None).is_err(),
        "over the range"
    );
    v.apply_flags(Some(0), Some(2), Some("dockstat-0.dockstat:9487".into()))
        .expect("--shard 0 --total-shards 2");
    assert_eq!(v.shard, crate::shard::Shard { index: 0, total: 2 });
    assert_eq!(v.advertise, "dockstat-0.dockstat:9487");
    assert!(
        v.apply_flags(None, None, Some("http://x:1".into()))
            .is_err()
    );

    let e = errors("shard:\n  total: 2\n  index: 2\n");
    assert!(e[0].starts_with("/tmp/dockstat-test.yaml:3:10: "), "{e:?}");
    assert!(e[0].contains("not below"), "{e:?}");
    let e = errors("shard:\n  total: 0\n");
    assert!(e[0].contains("out of range"), "{e:?}");

    // Without an index, several shards take the host name's ordinal, else need --shard.
    let ordinal = crate::shard::hostname()
        .as_deref()
        .and_then(crate::shard::ordinal);
    let mut v = parse("shard:\n  total: 1000\n").expect("no index");
    match ordinal {
        Some(i) => assert_eq!(v.shard.index, i),
        None => {
            let e = v.apply_flags(None, None, None).expect_err("no index");
            assert!(e.contains("--shard"), "{e}");
            v.apply_flags(Some(7), None, None).expect("--shard 7");
        }
    }
}

#[test]
fn the_advertised_address() {
    let v = parse("listen:\n  metrics: 127.0.0.1:9500\n").expect("loopback");
    assert_eq!(v.advertise, "127.0.0.1:9500");
    let v = parse("").expect("defaults");
    match crate::shard::hostname() {
        Some(h) => assert_eq!(v.advertise, format!("{h}:9487")),
        None => assert_eq!(v.advertise, "0.0.0.0:9487"),
    }
    let v = parse("listen:\n  advertise: exporter.example.org:443\n").expect("given");
    assert_eq!(v.advertise, "exporter.example.org:443");
    for bad in ["no-port", ":9487", "host:0", "host:port", "http://host:1"] {
        let e = errors(&format!("listen:\n  advertise: \"{bad}\"\n"));
        assert!(
            e[0].starts_with("/tmp/dockstat-test.yaml:2:14: "),
            "{bad}: {e:?}"
        );
    }
}
