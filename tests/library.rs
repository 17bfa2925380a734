//! The library API (`DockerClient`) in-process against the real daemons: clients and hosts
//! added at run time are collected at once, survive a restart and leave when removed;
//! monitoring starts and stops; container listings carry stats; pool figures are real.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::*;
use dockstat_exporter::DockerClient;
use dockstat_exporter::client::{ClientError, HostUpdate, NewHost};
use dockstat_exporter::config::{Config, TlsConfig, Validated};
use dockstat_exporter::metrics::Format;
use dockstat_exporter::store::{NotFound, Origin};

fn config(dir: &std::path::Path, rest: &str) -> Validated {
    let text = format!(
        "listen:\n  metrics: 127.0.0.1:0\ndatabase:\n  path: {}/dockstat.db\nmonitoring:\n  interval: 1s\n  retry_delay: 500ms\n  retry_max_delay: 2s\n{rest}",
        dir.display()
    );
    Config::parse(&text, &dir.join("config.yaml")).expect("valid config")
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_time_hosts_are_collected_persisted_and_removed() {
    let e = env();
    let b = Docker::b();
    let running = b.start("lib-run", &["--label", "dockstat.lib=yes"], "sleep 600");
    let exited = b.start("lib-exit", &["--label", "dockstat.lib=yes"], "exit 0");
    let dir = temp_dir("lib");
    let cfg = config(
        &dir,
        &format!(
            "clients:\n  - name: static\n    hosts:\n      - name: a\n        address: unix://{}\n",
            e.a_socket
        ),
    );
    let client = DockerClient::start(&cfg).await.expect("start");

    // Hosts from the file are read-only at run time.
    let clients = client.clients().await.expect("clients");
    assert_eq!(clients.len(), 1);
    let static_id = clients[0].id;
    assert_eq!(clients[0].source, Origin::Config);
    assert!(matches!(
        client.remove_client(static_id).await,
        Err(ClientError::ReadOnly(_))
    ));
    let host_a = client.hosts(static_id).await.expect("hosts")[0].clone();
    assert!(matches!(
        client.remove_host(host_a.id).await,
        Err(ClientError::ReadOnly(_))
    ));

    // A client and a host added at run time.
    let rt = client.register_client("runtime").await.expect("register");
    assert!(matches!(
        client.register_client("runtime").await,
        Err(ClientError::Conflict(_))
    ));
    let bad = client
        .add_host(
            rt.id,
            NewHost {
                name: "x".into(),
                address: "tcp://nohost".into(),
                tls: None,
                enabled: true,
            },
        )
        .await;
    match bad {
        Err(ClientError::Invalid(fields)) => assert_eq!(fields[0].field, "address", "{fields:?}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let tls_on_unix = client
        .add_host(
            rt.id,
            NewHost {
                name: "x".into(),
                address: "/run/x.sock".into(),
                tls: Some(TlsConfig {
                    ca: "/nope/ca".into(),
                    cert: Some("/nope/c".into()),
                    key: Some("/nope/k".into()),
                }),
                enabled: true,
            },
        )
        .await;
    match tls_on_unix {
        Err(ClientError::Invalid(fields)) => {
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert!(
                names.contains(&"tls.ca") && names.contains(&"tls"),
                "{fields:?}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let hb = client
        .add_host(
            rt.id,
            NewHost {
                name: "b".into(),
                address: format!("tcp://{}", e.b_tcp),
                tls: None,
                enabled: true,
            },
        )
        .await
        .expect("add host");
    assert_eq!(hb.source, Origin::Api);
    let dup = client
        .add_host(
            rt.id,
            NewHost {
                name: "b-again".into(),
                address: e.b_tcp.clone(),
                tls: None,
                enabled: true,
            },
        )
        .await;
    assert!(matches!(dup, Err(ClientError::Conflict(_))), "{dup:?}");

    // Collected without a restart.
    eventually(
        "host b collected with stats",
        Duration::from_secs(15),
        || {
            let snap = client.snapshot();
            let ok = snap.host(hb.id).is_some_and(|h| {
                h.up && h
                    .containers
                    .iter()
                    .any(|c| c.meta.name == running.name && c.stats.is_some())
            });
            async move { ok }
        },
    )
    .await;
    let mut text = String::new();
    client
        .exposition()
        .render(Format::Text, &mut text)
        .expect("render");
    assert!(
        text.contains("dockstat_host_up{host=\"b\",client=\"runtime\"} 1"),
        "rendered"
    );
    assert!(text.contains(&format!("name=\"{}\"", running.name)));

    // Listings go to Docker and carry the snapshot's stats.
    let all = client.all_containers(rt.id).await.expect("all");
    assert!(all.errors.is_empty(), "{:?}", all.errors);
    let find = |l: &dockstat_exporter::client::ContainerListing, id: &str| {
        l.containers
            .iter()
            .find(|c| c.summary.id.as_deref() == Some(id))
            .cloned()
    };
    let r = find(&all, &running.id).expect("running container listed");
    assert_eq!(r.host, "b");
    let stats = r.stats.expect("stats attached");
    assert!(stats.memory_usage.is_some_and(|m| m > 0) && stats.sampled_at > 0.0);
    assert!(
        find(&all, &exited.id)
            .expect("exited container listed")
            .stats
            .is_none()
    );
    let run_only = client.running_containers(rt.id).await.expect("running");
    assert!(find(&run_only, &running.id).is_some() && find(&run_only, &exited.id).is_none());
    let labelled = client
        .containers_by_label(rt.id, "dockstat.lib", Some("yes"))
        .await
        .expect("by label");
    assert_eq!(labelled.containers.len(), 2);
    let none = client
        .containers_by_label(rt.id, "dockstat.lib", Some("no"))
        .await
        .expect("by label");
    assert!(none.containers.is_empty());

    // Pool figures are real.
    let st = client.status();
    assert_eq!((st.total_workers, st.total_hosts), (2, 2), "{st:?}");
    assert_eq!(st.average_hosts_per_worker, 1.0);
    assert_eq!(st.active_workers, 2);
    assert_eq!(st.active_streams, 2, "one events stream per host");
    assert!(st.memory_usage.rss_bytes > 0 && st.uptime > 0.0);
    assert!(
        st.workers
            .iter()
            .all(|w| w.hosts_managed == 1 && w.is_monitoring)
    );
    assert!(st.workers.iter().any(|w| w.client_name == "runtime"));

    // Renaming restarts collection under the new name.
    client
        .update_host(
            hb.id,
            HostUpdate {
                name: Some("b2".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    eventually("renamed host collected", Duration::from_secs(15), || {
        let ok = client
            .snapshot()
            .host(hb.id)
            .is_some_and(|h| &*h.name == "b2" && h.up);
        async move { ok }
    })
    .await;

    // Monitoring off: the client's series leave at once, the host stays known as not
    // monitored; on: they come back.
    client.stop_monitoring(rt.id).await.expect("stop");
    let idle = client.snapshot().host(hb.id).cloned().expect("still known");
    assert!(!idle.monitored && idle.containers.is_empty());
    assert!(!client.is_monitoring(rt.id).await.expect("is monitoring"));
    assert_eq!(client.status().total_hosts, 1);
    client.start_monitoring(rt.id).await.expect("start");
    assert!(client.is_monitoring(rt.id).await.expect("is monitoring"));
    eventually(
        "host back after start_monitoring",
        Duration::from_secs(15),
        || {
            let ok = client.snapshot().host(hb.id).is_some_and(|h| h.up);
            async move { ok }
        },
    )
    .await;
    client.shutdown().await;
    drop(client);

    // A restart keeps the run-time client and host, and collects it again.
    let client = DockerClient::start(&cfg).await.expect("restart");
    let hosts = client.hosts(rt.id).await.expect("hosts");
    assert_eq!(hosts.len(), 1);
    assert_eq!(
        (hosts[0].name.as_str(), hosts[0].source),
        ("b2", Origin::Api)
    );
    eventually(
        "persisted host collected after restart",
        Duration::from_secs(15),
        || {
            let ok = client.snapshot().host(hb.id).is_some_and(|h| h.up);
            async move { ok }
        },
    )
    .await;

    // Removal stops collection and drops the series.
    client.remove_host(hb.id).await.expect("remove host");
    assert!(client.snapshot().host(hb.id).is_none());
    let mut text = String::new();
    client
        .exposition()
        .render(Format::Text, &mut text)
        .expect("render");
    assert!(
        !text.contains("host=\"b2\""),
        "series of a removed host are gone"
    );
    client.remove_client(rt.id).await.expect("remove client");
    assert!(matches!(
        client.client(rt.id).await,
        Err(ClientError::NotFound(NotFound { kind: "client", .. }))
    ));
    assert_eq!(client.clients().await.expect("clients").len(), 1);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_workers_hosts_join_the_least_loaded_worker() {
    let e = env();
    let _ = (Docker::a(), Docker::b(), Docker::c());
    let dir = temp_dir("lib-workers");
    let cfg = config(
        &dir,
        &format!(
            "  max_workers: 2\nclients:\n  - name: many\n    hosts:\n      - name: a\n        address: unix://{}\n      - name: b\n        address: unix://{}\n      - name: c\n        address: unix://{}\n",
            e.a_socket, e.b_socket, e.c_socket
        ),
    );
    let client = DockerClient::start(&cfg).await.expect("start");
    let st = client.status();
    assert_eq!((st.total_workers, st.total_hosts), (2, 3), "{st:?}");
    assert_eq!(st.average_hosts_per_worker, 1.5);
    let mut loads: Vec<usize> = st.workers.iter().map(|w| w.hosts_managed).collect();
    loads.sort();
    assert_eq!(loads, vec![1, 2]);
    eventually("all three hosts collected", Duration::from_secs(15), || {
        let snap = client.snapshot();
        let ok = snap.hosts.len() == 3 && snap.hosts.iter().all(|h| h.up);
        async move { ok }
    })
    .await;
    assert!(client.pending_hosts().is_empty());
    client.shutdown().await;
    assert_eq!(client.status().total_workers, 0);
}
