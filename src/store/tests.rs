use std::path::PathBuf;

use super::schema::MIGRATIONS;
use super::*;
use crate::config::{Address, Endpoint, ValidClient, ValidHost};

fn host(name: &str, addr: &str) -> ValidHost {
    ValidHost {
        name: name.into(),
        name_from_daemon: false,
        endpoint: Endpoint {
            address: Address::parse(addr).expect("address"),
            tls: None,
        },
        enabled: true,
    }
}

fn client(name: &str, hosts: Vec<ValidHost>) -> ValidClient {
    ValidClient {
        name: name.into(),
        monitoring: true,
        hosts,
    }
}

fn temp_db(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("dockstat-store-{tag}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
    p
}

#[tokio::test]
async fn config_sync_keeps_api_hosts_and_survives_reopen() {
    let path = temp_db("sync");
    let store = Store::open(&path).await.expect("open");
    let r = store
        .sync_config(vec![client(
            "prod",
            vec![host("a", "/a.sock"), host("b", "tcp://b:2375")],
        )])
        .await
        .expect("sync");
    assert_eq!(
        r,
        SyncReport {
            upserted: 2,
            removed: 0
        }
    );
    let prod = store.clients().await.expect("clients")[0].clone();
    let added = store
        .insert_host(
            prod.id,
            "c".into(),
            host("c", "tcp://c:2375").endpoint,
            true,
        )
        .await
        .expect("insert");
    assert_eq!(added.source, Origin::Api);
    assert!(matches!(
        store
            .insert_host(prod.id, "c".into(), host("c", "/x").endpoint, true)
            .await,
        Err(StoreError::Conflict(_))
    ));
    drop(store);

    // Restart with a file that dropped host b.
    let store = Store::open(&path).await.expect("reopen");
    let r = store
        .sync_config(vec![client("prod", vec![host("a", "/a.sock")])])
        .await
        .expect("sync");
    assert_eq!(
        r,
        SyncReport {
            upserted: 1,
            removed: 1
        }
    );
    let hosts = store.hosts(Some(prod.id)).await.expect("hosts");
    let names: Vec<(&str, Origin)> = hosts.iter().map(|h| (h.name.as_str(), h.source)).collect();
    assert_eq!(names, vec![("a", Origin::Config), ("c", Origin::Api)]);
    assert_eq!(hosts[1].endpoint.address.to_string(), "tcp://c:2375");

    // The client leaves the file but keeps its run-time host: it becomes an api client.
    store.sync_config(vec![]).await.expect("sync");
    let clients = store.clients().await.expect("clients");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].source, Origin::Api);
    store.delete_client(prod.id).await.expect("delete");
    assert!(
        store.hosts(None).await.expect("hosts").is_empty(),
        "hosts cascade"
    );
}

#[tokio::test]
async fn update_and_errors() {
    let store = Store::open(&temp_db("update")).await.expect("open");
    let c = store.insert_client("x".into()).await.expect("client");
    assert!(matches!(
        store.insert_client("x".into()).await,
        Err(StoreError::Conflict(_))
    ));
    let h = store
        .insert_host(c.id, "h".into(), host("h", "/h.sock").endpoint, true)
        .await
        .expect("host");
    let h2 = store
        .update_host(
            h.id,
            HostPatch {
                enabled: Some(false),
                name: Some("h2".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert!(!h2.enabled);
    assert_eq!(h2.name, "h2");
    assert!(matches!(
        store.host(999).await,
        Err(StoreError::NotFound(NotFound {
            kind: "host",
            id: 999
        }))
    ));
    assert!(matches!(
        store.delete_host(999).await,
        Err(StoreError::NotFound(_))
    ));
    store.set_monitoring(c.id, false).await.expect("monitoring");
    assert!(!store.client(c.id).await.expect("client").monitoring);
}

#[tokio::test]
async fn ids_are_never_reused() {
    let store = Store::open(&temp_db("reuse")).await.expect("open");
    let a = store.insert_client("reuse-a".into()).await.expect("a");
    store.delete_client(a.id).await.expect("delete");
    let b = store.insert_client("reuse-b".into()).await.expect("b");
    assert!(b.id > a.id, "client id {} handed out again", a.id);
    let h = store
        .insert_host(b.id, "h".into(), host("h", "/h.sock").endpoint, true)
        .await
        .expect("host");
    store.delete_host(h.id).await.expect("delete");
    let h2 = store
        .insert_host(b.id, "h2".into(), host("h2", "/h2.sock").endpoint, true)
        .await
        .expect("host");
    assert!(h2.id > h.id, "host id {} handed out again", h.id);
}

/// A database made before AUTOINCREMENT: its newest host was deleted (so its id is free
/// again under the old schema); the migration keeps it taken, from the audit log too.
#[test]
fn migration_keeps_deleted_ids_taken() {
    let path = temp_db("migrate-ids");
    {
        let mut conn = Connection::open(&path).expect("open");
        for (i, step) in MIGRATIONS[..3].iter().enumerate() {
            let tx = conn.transaction().expect("tx");
            tx.execute_batch(step.sql).expect("old schema");
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .expect("version");
            tx.commit().expect("commit");
        }
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             INSERT INTO clients VALUES (1, 'c', 'api', 1, 0), (2, 'gone', 'api', 1, 0);
             INSERT INTO hosts VALUES (1, 1, 'h1', '/a', NULL, NULL, NULL, 1, 'api', 0, 0),
                                      (2, 1, 'h2', '/b', NULL, NULL, NULL, 1, 'api', 0, 0);
             INSERT INTO event_state VALUES (1, '{}', 0);
             DELETE FROM hosts WHERE id = 2;
             DELETE FROM clients WHERE id = 2;
             INSERT INTO audit (at, token, role, method, route, path, target, status, outcome)
                 VALUES (0, 't', 'admin', 'DELETE', '/h', '/h', 'host 7 (h7)', 204, 'ok');",
        )
        .expect("old rows");
    }
    let store = Store::open_blocking(&path).expect("migrated");
    let conn = store.conn.lock().expect("lock");
    let hosts: i64 = conn
        .query_row("SELECT COUNT(*) FROM hosts", [], |r| r.get(0))
        .expect("count");
    let states: i64 = conn
        .query_row("SELECT COUNT(*) FROM event_state", [], |r| r.get(0))
        .expect("count");
    assert_eq!((hosts, states), (1, 1), "rows survive the rebuild");
    conn.execute(
        "INSERT INTO clients (name, source, created_at) VALUES ('new', 'api', 0)",
        [],
    )
    .expect("insert");
    assert_eq!(conn.last_insert_rowid(), 2, "clients: max(1) + 1");
    conn.execute(
        "INSERT INTO hosts (client_id, name, address, source, created_at, updated_at)
         VALUES (1, 'h8', '/c', 'api', 0, 0)",
        [],
    )
    .expect("insert");
    assert_eq!(conn.last_insert_rowid(), 8, "above the audited host 7");
    // Foreign keys are back on, and still cascade.
    conn.execute("DELETE FROM clients WHERE id = 1", [])
        .expect("delete");
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM hosts", [], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn stream_id_bases_grow_across_restarts() {
    let path = temp_db("stream-ids");
    let first = Store::open(&path)
        .await
        .expect("open")
        .claim_stream_id_base()
        .await
        .expect("claim");
    let second = Store::open(&path)
        .await
        .expect("reopen")
        .claim_stream_id_base()
        .await
        .expect("claim");
    assert!(second >= first + (1 << 32), "{first} then {second}");
    assert!(second < 1 << 53, "exact as a JavaScript number");
}

#[test]
fn refuses_a_newer_schema() {
    let path = temp_db("newer");
    {
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("pragma");
    }
    assert!(matches!(
        Store::open_blocking(&path),
        Err(StoreError::Corrupt(_))
    ));
}
