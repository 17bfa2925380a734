//! Every YAML block of the README is a configuration `check-config` accepts, with whole
//! values (no `sha256: c49bf9…`), the files it names present and its `${ENV}` set; or,
//! when it holds `scrape_configs:`, a Prometheus configuration `promtool check config`
//! accepts.

mod common;

use std::process::Command;

use common::*;

/// The ```yaml blocks of the README: (line of the fence, text).
fn yaml_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((n + 1, String::new()));
            }
            Some((_, text)) if line.trim_start().starts_with("```") => {
                let _ = text;
                if let Some(b) = current.take() {
                    blocks.push(b);
                }
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_readme_yaml_block_passes_check_config() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let blocks = yaml_blocks(&readme);
    assert!(blocks.len() >= 4, "found only {} yaml blocks", blocks.len());
    let certs = env().certs;
    let dir = temp_dir("readme-yaml");
    // The files the examples name, relative to the configuration's directory.
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
    for (from, to) in [
        ("ca.pem", "certs/ca.pem"),
        ("cert.pem", "certs/cert.pem"),
        ("key.pem", "certs/key.pem"),
        ("ca.pem", "otlp-ca.pem"),
        ("cert.pem", "client.pem"),
        ("key.pem", "client-key.pem"),
    ] {
        std::fs::copy(certs.join(from), dir.join(to)).expect("copy cert");
    }
    let cert_dir = dir.join("certs").display().to_string();
    let mut failures = Vec::new();
    for (line, text) in &blocks {
        let file = dir.join(format!("readme-line-{line}.yaml"));
        std::fs::write(&file, text).expect("write");
        if text.lines().any(|l| l.starts_with("scrape_configs:")) {
            let out = Command::new("promtool")
                .args(["check", "config"])
                .arg(&file)
                .output()
                .expect("run promtool (Debian package prometheus)");
            if !out.status.success() {
                failures.push(format!(
                    "README.md line {line} (Prometheus):\n{text}{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            continue;
        }
        // --data-dir: the examples' /var/lib/dockstat does not exist on a test machine.
        // The shard examples take the index from a StatefulSet pod's name, which this
        // machine's is not: the flag stands in for it.
        let shard: &[&str] = if text.contains("${POD_NAME}") {
            &["--shard", "1"]
        } else {
            &[]
        };
        let out = Command::new(bin())
            .args(shard)
            .args(["check-config", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&dir)
            .env("POD_NAME", "dockstat-1")
            .env_remove("DOCKSTAT_CONFIG")
            .env("CERT_DIR", &cert_dir)
            .env("DOCKSTAT_CI_TOKEN", "ci-token-0123456789abcdef")
            .env("DEPLOY_TOKEN", "deploy-token-0123456789abcdef")
            .env("OTLP_TOKEN", "otlp-token")
            .output()
            .expect("run check-config");
        if !out.status.success() {
            failures.push(format!(
                "README.md line {line}:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The README's library example, run twice on the same database (with daemon B's TCP
/// address for `build-01`): the second run finds the client and host of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_example_runs_twice() {
    use dockstat_exporter::DockerClient;
    use dockstat_exporter::client::NewHost;
    use dockstat_exporter::config::Config;
    let dir = temp_dir("readme-lib");
    let text = format!("database:\n  path: {}/dockstat.db\n", dir.display());
    let address = format!("tcp://{}", env().b_tcp);
    for run in 0..2 {
        let cfg = Config::parse(&text, &dir.join("config.yaml")).expect("config");
        let docker = DockerClient::start(&cfg).await.expect("start");
        // As in the README, from here on.
        let prod = match docker.client_id_by_name("prod").await {
            Some(id) => id,
            None => docker.register_client("prod").await.expect("register").id,
        };
        if !docker
            .hosts(prod)
            .await
            .expect("hosts")
            .iter()
            .any(|h| h.name == "build-01")
        {
            assert_eq!(run, 0, "the second run found no host");
            docker
                .add_host(
                    prod,
                    NewHost {
                        name: "build-01".into(),
                        address: address.clone(),
                        tls: None,
                        enabled: true,
                    },
                )
                .await
                .expect("add host");
        }
        docker.start_monitoring(prod).await.expect("monitor");
        docker.running_containers(prod).await.expect("containers");
        docker.shutdown().await;
    }
}

/// The ```sh blocks of the README: (line of the fence, text).
fn sh_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match current.take() {
            None if fence && ["```sh", "```bash", "```shell"].contains(&line.trim()) => {
                current = Some((n + 1, String::new()));
            }
            None => {}
            Some(b) if fence => blocks.push(b),
            Some((at, mut text)) => {
                text.push_str(line);
                text.push('\n');
                current = Some((at, text));
            }
        }
    }
    blocks
}

/// Every shell block of the README is valid shell (`bash -n`), and every
/// `dockstat-exporter` command in it names a subcommand and flags the binary has.
#[test]
fn every_readme_shell_block_parses_and_uses_real_flags() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let blocks = sh_blocks(&readme);
    assert!(
        blocks.len() >= 8,
        "found only {} shell blocks",
        blocks.len()
    );
    let help = |sub: Option<&str>| -> String {
        let out = Command::new(bin())
            .args(sub)
            .arg("--help")
            .output()
            .expect("--help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(None);
    let mut failures = Vec::new();
    for (line, text) in &blocks {
        let out = Command::new("bash")
            .arg("-n")
            .arg("-c")
            .arg(text)
            .output()
            .expect("bash -n");
        if !out.status.success() {
            failures.push(format!(
                "README.md line {line}: bash -n: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for l in text.lines() {
            let code = l.split(" #").next().unwrap_or(l);
            let Some(i) = code.find("dockstat-exporter ") else {
                continue;
            };
            // `docker run … dockstat-exporter token`: the image's entrypoint, same words.
            let words: Vec<&str> = code[i + "dockstat-exporter ".len()..]
                .split_whitespace()
                .collect();
            let sub = words
                .iter()
                .find(|w| !w.starts_with('-') && top.contains(&format!("  {w} ")))
                .copied();
            let sub_help = sub.map(|s| help(Some(s))).unwrap_or_else(|| top.clone());
            for w in words.iter().filter(|w| w.starts_with("--")) {
                let flag = w.split('=').next().unwrap_or(w);
                let known = sub_help.match_indices(flag).any(|(i, _)| {
                    sub_help[i + flag.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                });
                if !known {
                    failures.push(format!(
                        "README.md line {line}: `{flag}` is not a flag of dockstat-exporter {}",
                        sub.unwrap_or("")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
