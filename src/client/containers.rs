//! Container operations of [`DockerClient`]: list a client's containers with their
//! latest stats, find one by id, id prefix or name, inspect it, start, stop, restart, remove
//! it, read its logs. The admin API calls these.
//!
//! A container is looked up live on the client's enabled hosts (through each host's
//! collector connection when it has one), so a container created a moment ago is found
//! even before the next snapshot; what is then done with it goes through the connection
//! that found it.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::LogsOptions;
use futures_util::future::join_all;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::invalid;
use super::logs::{LogLine, LogQuery, lines};
use super::{
    ClientError, ContainerListing, ContainerQuery, ContainerView, DockerClient, HostFailure,
};
use crate::docker::{Connection, DockerError};
use crate::stats::ContainerStats;
use crate::store::HostRecord;

/// Docker label that makes the API refuse start, stop, restart and remove.
pub const DENY_LABEL: &str = "dockstat.actions";

/// A container found by [`DockerClient::find_container`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRef {
    /// Host id.
    pub host_id: i64,
    /// Host name.
    pub host: String,
    /// Full container id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// Docker state (`running`, `exited`, …).
    pub state: String,
    /// Whether it carries `dockstat.actions=deny`.
    #[serde(skip)]
    pub actions_denied: bool,
}

/// A container action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start it.
    Start,
    /// Stop it, SIGKILL after `t` seconds (Docker's default when None).
    Stop {
        /// Grace period, seconds.
        t: Option<u32>,
    },
    /// Restart it.
    Restart {
        /// Grace period, seconds.
        t: Option<u32>,
    },
    /// Remove it.
    Remove {
        /// Kill it first if running.
        force: bool,
        /// Remove its anonymous volumes too.
        volumes: bool,
    },
}

impl Action {
    /// Seconds it lets the daemon wait before SIGKILL (a stop's or restart's `t`).
    pub fn waits(self) -> Option<u32> {
        match self {
            Action::Stop { t } | Action::Restart { t } => t,
            Action::Start | Action::Remove { .. } => None,
        }
    }

    /// `start`, `stop`, `restart` or `remove`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop { .. } => "stop",
            Action::Restart { .. } => "restart",
            Action::Remove { .. } => "remove",
        }
    }
}

/// What an action did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutcome {
    /// The container acted on; its `state` is the one after the action, as inspect tells
    /// it right after the daemon answered (`removed` after a remove).
    pub container: ContainerRef,
    /// Its state before the action.
    pub previous_state: String,
    /// `start`, `stop`, `restart` or `remove`.
    pub action: &'static str,
    /// False when the container already was in the state asked for (Docker's 304).
    pub changed: bool,
}

impl DockerClient {
    /// Every container (running or not) on the client's enabled hosts, with stats.
    /// `getAllContainers`.
    pub async fn all_containers(&self, client_id: i64) -> Result<ContainerListing, ClientError> {
        self.containers(client_id, ContainerQuery::default()).await
    }

    /// Running containers with stats. `getRunningContainers`.
    pub async fn running_containers(
        &self,
        client_id: i64,
    ) -> Result<ContainerListing, ClientError> {
        let q = ContainerQuery {
            running: true,
            ..ContainerQuery::default()
        };
        self.containers(client_id, q).await
    }

    /// Containers carrying label `key` (with `value`, when given), with stats.
    /// `getContainersByLabel`.
    pub async fn containers_by_label(
        &self,
        client_id: i64,
        key: &str,
        value: Option<&str>,
    ) -> Result<ContainerListing, ClientError> {
        let q = ContainerQuery {
            label: Some((key, value)),
            ..ContainerQuery::default()
        };
        self.containers(client_id, q).await
    }

    /// Lists live from each host (through the host's own connection when it is collected)
    /// and attaches the snapshot's latest stats; hosts that fail are reported, not fatal.
    pub async fn containers(
        &self,
        client_id: i64,
        q: ContainerQuery<'_>,
    ) -> Result<ContainerListing, ClientError> {
        let hosts = self.client_hosts(client_id, q.host).await?;
        let snap = self.snapshot();
        let answers = join_all(hosts.iter().map(|h| async move {
            let conn = self.connection(h).await?;
            conn.list_containers::<ContainerSummary>(!q.running).await
        }))
        .await;
        let mut listing = ContainerListing {
            containers: Vec::new(),
            errors: Vec::new(),
        };
        for (h, answer) in hosts.iter().zip(answers) {
            let summaries = match answer {
                Ok(s) => s,
                Err(error) => {
                    listing.errors.push(HostFailure {
                        host: h.name.clone(),
                        host_id: h.id,
                        error,
                    });
                    continue;
                }
            };
            let host_snap = snap.host(h.id);
            for summary in summaries {
                if let Some((key, value)) = q.label {
                    let v = summary.labels.as_ref().and_then(|l| l.get(key));
                    if v.is_none() || value.is_some_and(|want| v.map(String::as_str) != Some(want))
                    {
                        continue;
                    }
                }
                let stats = summary.id.as_deref().and_then(|id| {
                    host_snap?
                        .containers
                        .iter()
                        .find(|c| c.meta.id == id)
                        .and_then(|c| c.stats.as_deref())
                        .map(ContainerStats::of)
                });
                listing.containers.push(ContainerView {
                    host: h.name.clone(),
                    host_id: h.id,
                    summary,
                    stats,
                });
            }
        }
        Ok(listing)
    }

    /// Finds a container of a client by full id, unique id prefix or name, on one host
    /// (`host` = host name or id) or all of the client's enabled hosts. Exact id or name
    /// matches win over prefixes; more than one match is [`ClientError::Ambiguous`].
    pub async fn find_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
    ) -> Result<ContainerRef, ClientError> {
        Ok(self.locate(client_id, reference, host).await?.0)
    }

    /// [`DockerClient::find_container`], with the connection of the host that listed it: an
    /// action or a read then goes through the same connection, the host resolved once.
    async fn locate(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
    ) -> Result<(ContainerRef, Arc<Connection>), ClientError> {
        let reference = reference.trim().trim_start_matches('/');
        if reference.is_empty()
            || reference.len() > 256
            || !reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(invalid(
                "container",
                "must be a container id, id prefix or name ([a-zA-Z0-9_.-])",
            ));
        }
        let hosts = self.client_hosts(client_id, host).await?;
        let answers = join_all(hosts.iter().map(|h| async move {
            let conn = self.connection(h).await?;
            let list = conn.list_containers::<ContainerSummary>(true).await?;
            Ok::<_, DockerError>((conn, list))
        }))
        .await;
        let mut exact = Vec::new();
        let mut prefix = Vec::new();
        let mut failures = Vec::new();
        for (h, answer) in hosts.iter().zip(answers) {
            let (conn, list) = match answer {
                Ok(found) => found,
                Err(e) => {
                    failures.push((h.name.clone(), e));
                    continue;
                }
            };
            for c in list {
                let Some(r) = container_ref(h, &c) else {
                    continue;
                };
                if r.id == reference || r.name == reference {
                    exact.push((r, conn.clone()));
                } else if r.id.starts_with(reference) {
                    prefix.push((r, conn.clone()));
                }
            }
        }
        let mut found = if exact.is_empty() { prefix } else { exact };
        if found.len() > 1 {
            return Err(ClientError::Ambiguous {
                reference: reference.to_string(),
                candidates: found.into_iter().map(|(r, _)| r).collect(),
            });
        }
        match (found.pop(), failures.into_iter().next()) {
            (Some(one), _) => Ok(one),
            // Not seen, and a host could not be asked: the host's failure is the answer.
            (None, Some((host, error))) => Err(ClientError::Docker { host, error }),
            (None, None) => Err(ClientError::ContainerNotFound(reference.to_string())),
        }
    }

    /// The client's enabled hosts, or the one named by `host` (name or id).
    async fn client_hosts(
        &self,
        client_id: i64,
        host: Option<&str>,
    ) -> Result<Vec<HostRecord>, ClientError> {
        let hosts = self.hosts(client_id).await?;
        match host {
            None => Ok(hosts.into_iter().filter(|h| h.enabled).collect()),
            Some(want) => {
                let want = want.trim();
                let found: Vec<HostRecord> = hosts
                    .into_iter()
                    .filter(|h| h.name == want || h.id.to_string() == want)
                    .collect();
                if found.is_empty() {
                    Err(ClientError::HostNotFound(want.to_string()))
                } else {
                    Ok(found)
                }
            }
        }
    }

    /// Docker's inspect answer for a container. `inspectContainer`.
    pub async fn inspect_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
    ) -> Result<(ContainerRef, ContainerInspectResponse), ClientError> {
        let (c, conn) = self.locate(client_id, reference, host).await?;
        let answer = conn.inspect(&c.id).await.map_err(|e| docker_err(&c, e))?;
        Ok((c, answer))
    }

    /// Finds the container, refuses if it is labelled `dockstat.actions=deny`, and asks its
    /// host to do `action`: the seed's `startContainer`, `stopContainer`,
    /// `restartContainer` and `removeContainer`, one [`Action`] each.
    pub async fn act(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
        action: Action,
    ) -> Result<ActionOutcome, ClientError> {
        let name = action.name();
        let (c, conn) = self.locate(client_id, reference, host).await?;
        if c.actions_denied {
            return Err(ClientError::Denied(format!(
                "container `{}` on host `{}` is labelled {DENY_LABEL}=deny: {name} refused",
                c.name, c.host
            )));
        }
        let done = match action {
            // Docker 20.10 answers 204, not 304, for a container already in the state asked
            // for, so the state found decides `changed` too.
            Action::Start => conn
                .start_container(&c.id)
                .await
                .map(|changed| changed && c.state != "running"),
            Action::Stop { t } => conn.stop_container(&c.id, t).await.map(|changed| {
                changed && matches!(c.state.as_str(), "running" | "paused" | "restarting")
            }),
            Action::Restart { t } => conn.restart_container(&c.id, t).await.map(|()| true),
            Action::Remove { force, volumes } => conn
                .remove_container(&c.id, force, volumes)
                .await
                .map(|()| true),
        };
        let changed = done.map_err(|e| docker_err(&c, e))?;
        let previous_state = c.state.clone();
        let mut container = c;
        container.state = if matches!(action, Action::Remove { .. }) {
            "removed".to_string()
        } else {
            match conn.inspect(&container.id).await {
                Ok(i) => i
                    .state
                    .and_then(|s| s.status)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".to_string()),
                Err(e) => {
                    // The action is done; only the state after it is unknown.
                    tracing::warn!(container = %container.name, host = %container.host, error = %e,
                        "cannot inspect the container after {name}");
                    "unknown".to_string()
                }
            }
        };
        Ok(ActionOutcome {
            container,
            previous_state,
            action: name,
            changed,
        })
    }

    /// A container's log lines, demultiplexed. The stream ends when the logs do, or never
    /// with `follow` until dropped. `getContainerLogs`.
    pub async fn container_logs(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
        q: LogQuery,
    ) -> Result<
        (
            ContainerRef,
            impl Stream<Item = Result<LogLine, DockerError>> + Send + 'static + use<>,
        ),
        ClientError,
    > {
        let (c, conn) = self.locate(client_id, reference, host).await?;
        let (stdout, stderr) = if q.stdout || q.stderr {
            (q.stdout, q.stderr)
        } else {
            (true, true)
        };
        let opts = LogsOptions {
            follow: q.follow,
            stdout,
            stderr,
            since: clamp_secs(q.since.unwrap_or(0)),
            until: clamp_secs(q.until.unwrap_or(0)),
            timestamps: q.timestamps,
            tail: q.tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
        };
        // Fused: the first frame is read here and the stream is polled again afterwards.
        let mut frames = Box::pin(conn.logs(&c.id, opts).fuse());
        // Read the first frame here so that "no such container" or a dead host is an
        // error of this call rather than of the stream. A followed quiet container may say
        // nothing for long: then only wait briefly for such an early error.
        let first = if q.follow {
            tokio::time::timeout(Duration::from_secs(1), frames.next())
                .await
                .unwrap_or_default()
        } else {
            frames.next().await
        };
        let first = match first {
            Some(Err(e)) => return Err(docker_err(&c, e)),
            other => other,
        };
        let frames = futures_util::stream::iter(first).chain(frames);
        Ok((c, lines(frames, q.timestamps)))
    }
}

fn container_ref(h: &HostRecord, c: &ContainerSummary) -> Option<ContainerRef> {
    let id = c.id.clone()?;
    let name = c
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default();
    let actions_denied = c
        .labels
        .as_ref()
        .and_then(|l| l.get(DENY_LABEL))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("deny"));
    Some(ContainerRef {
        host_id: h.id,
        host: h.name.clone(),
        id,
        name,
        state: c.state.as_ref().map(|s| s.to_string()).unwrap_or_default(),
        actions_denied,
    })
}

fn docker_err(c: &ContainerRef, error: DockerError) -> ClientError {
    if error.status == Some(404) {
        // Gone between lookup and action.
        return ClientError::ContainerNotFound(c.id.clone());
    }
    ClientError::Docker {
        host: c.host.clone(),
        error,
    }
}

fn clamp_secs(s: i64) -> i32 {
    i32::try_from(s.max(0)).unwrap_or(i32::MAX)
}
