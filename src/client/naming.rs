//! Names for the hosts the configuration leaves unnamed: the daemon's own name (`/info`
//! `Name`, `docker info`'s "Name", the machine's host name), asked once at start.
//!
//! - The daemon answers: its name. Two unnamed hosts of one client with the same name (or
//!   one a named host already has) get `-2`, `-3`, … in file order.
//! - It does not answer (down at start): the name stored for the same endpoint by an
//!   earlier start, so a restart during an outage keeps the series; else the provisional
//!   name from the address (`local`, or the TCP host), with a warning.
//! - The name is kept for the life of the process: series never change their `host`
//!   label under a running Prometheus. A later start picks up a renamed daemon; the
//!   store keeps the host's id across the rename (see `Store::sync_config`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ValidClient;
use crate::docker::Connection;
use crate::instruments::HostInstruments;
use crate::store::{HostRecord, Origin};

/// Longest wait for a daemon's name at start; a daemon slower than this is named as if it
/// were down.
const ASK_AT_MOST: Duration = Duration::from_secs(5);

/// Names the unnamed hosts of `clients` in place; `stored` are the hosts of the database
/// before this start.
pub(super) async fn name_hosts(
    clients: &mut [ValidClient],
    stored: &[HostRecord],
    timeout: Duration,
) {
    let timeout = timeout.min(ASK_AT_MOST);
    let mut asks = Vec::new();
    for (ci, c) in clients.iter().enumerate() {
        for (hi, h) in c.hosts.iter().enumerate() {
            if h.name_from_daemon {
                let endpoint = h.endpoint.clone();
                let instruments = Arc::new(HostInstruments::new(
                    Arc::from(h.name.as_str()),
                    Arc::from(c.name.as_str()),
                    Arc::default(),
                ));
                asks.push(async move {
                    let answer = Connection::open(&endpoint, timeout, instruments).await;
                    let name = answer.map(|conn| {
                        conn.daemon
                            .info
                            .and_then(|i| i.name)
                            .map(|n| n.trim().to_string())
                            .filter(|n| !n.is_empty())
                    });
                    (ci, hi, name)
                });
            }
        }
    }
    let answers = futures_util::future::join_all(asks).await;
    for (ci, hi, answer) in answers {
        let client = &clients[ci];
        let host = &client.hosts[hi];
        let remembered = || {
            stored
                .iter()
                .find(|r| {
                    r.source == Origin::Config
                        && r.client_name == client.name
                        && r.endpoint == host.endpoint
                })
                .map(|r| r.name.clone())
        };
        let name = match answer {
            Ok(Some(name)) => name,
            Ok(None) => {
                let name = remembered().unwrap_or_else(|| host.name.clone());
                tracing::warn!(client = %client.name, address = %host.endpoint.address, host = %name,
                    "the daemon's /info has no Name; the host is named from its address or the database");
                name
            }
            Err(e) => {
                let name = remembered();
                let known = name.is_some();
                let name = name.unwrap_or_else(|| host.name.clone());
                if known {
                    tracing::info!(client = %client.name, address = %host.endpoint.address, host = %name,
                        error = %e, "daemon not answering at start: named as at the last start");
                } else {
                    tracing::warn!(client = %client.name, address = %host.endpoint.address, host = %name,
                        error = %e, "daemon not answering at start and never named before: the host \
                        is named from its address until a restart finds the daemon up (set `name` to fix it)");
                }
                name
            }
        };
        clients[ci].hosts[hi].name = name;
    }
    for c in clients.iter_mut() {
        let mut taken: BTreeSet<String> = c
            .hosts
            .iter()
            .filter(|h| !h.name_from_daemon)
            .map(|h| h.name.clone())
            .collect();
        for h in c.hosts.iter_mut().filter(|h| h.name_from_daemon) {
            let mut name = h.name.clone();
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{}-{n}", h.name);
                n += 1;
            }
            if name != h.name {
                tracing::warn!(client = %c.name, address = %h.endpoint.address, host = %name,
                    "another host of the client has the daemon's name: numbered");
            }
            taken.insert(name.clone());
            tracing::info!(client = %c.name, address = %h.endpoint.address, host = %name,
                "host named after its daemon");
            h.name = name;
        }
    }
}
