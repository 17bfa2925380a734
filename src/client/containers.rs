//! Container operations of [`DockerClient`]: find a container by id, id prefix or name,
//! inspect it, start, stop, restart, remove it, read its logs. The admin API calls these.
//!
//! A container is looked up live on the client's enabled hosts (through each host's
//! collector connection when it has one), so a container created a moment ago is found
//! even before the next snapshot.

use std::collections::VecDeque;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::LogsOptions;
use futures_util::future::join_all;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::{ClientError, DockerClient, invalid};
use crate::docker::DockerError;
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
    /// The container acted on.
    pub container: ContainerRef,
    /// `start`, `stop`, `restart` or `remove`.
    pub action: &'static str,
    /// False when the container already was in the state asked for (Docker's 304).
    pub changed: bool,
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Last N lines only; None for all.
    pub tail: Option<u64>,
    /// Lines at or after this unix second.
    pub since: Option<i64>,
    /// Lines before this unix second.
    pub until: Option<i64>,
    /// Prefix each line with Docker's RFC 3339 timestamp (returned in `timestamp`).
    pub timestamps: bool,
    /// Include stdout (default true when neither is chosen).
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming new lines until the reader goes away.
    pub follow: bool,
}

/// One log line with the stream it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `stdout` or `stderr` (a TTY container's output is `stdout`).
    pub stream: &'static str,
    /// Docker's timestamp, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The line, without its newline; invalid UTF-8 is replaced.
    pub line: String,
}

/// Splits Docker's log frames into lines per stream. A frame may hold part of a line or
/// several lines, so each stream keeps its unfinished tail until the newline comes; a tail
/// that outgrows `max_line` is passed on in pieces of that size rather than kept growing
/// (a TTY container's output is not framed, so nothing else bounds a line).
#[derive(Debug)]
struct LineSplitter {
    timestamps: bool,
    max_line: usize,
    stdout: Partial,
    stderr: Partial,
}

/// The unfinished tail of one stream.
#[derive(Debug, Default)]
struct Partial {
    buf: Vec<u8>,
    /// The line's start was already passed on (it outgrew the bound): no timestamp here.
    continued: bool,
}

impl Default for LineSplitter {
    fn default() -> LineSplitter {
        LineSplitter {
            timestamps: false,
            max_line: crate::docker::limits::LOG_FRAME,
            stdout: Partial::default(),
            stderr: Partial::default(),
        }
    }
}

impl LineSplitter {
    fn push(&mut self, frame: LogOutput, out: &mut VecDeque<LogLine>) {
        let (stream, bytes) = match frame {
            LogOutput::StdErr { message } => ("stderr", message),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => ("stdout", message),
        };
        let p = if stream == "stderr" {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        p.buf.extend_from_slice(&bytes);
        while let Some(i) = p.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = p.buf.drain(..=i).collect();
            let ts = self.timestamps && !p.continued;
            out.push_back(make_line(stream, &line[..i], ts));
            p.continued = false;
        }
        while p.buf.len() >= self.max_line.max(1) {
            let piece: Vec<u8> = p.buf.drain(..self.max_line.max(1)).collect();
            let ts = self.timestamps && !p.continued;
            out.push_back(make_line(stream, &piece, ts));
            p.continued = true;
        }
    }

    fn finish(&mut self, out: &mut VecDeque<LogLine>) {
        for (stream, p) in [("stdout", &mut self.stdout), ("stderr", &mut self.stderr)] {
            if !p.buf.is_empty() {
                out.push_back(make_line(stream, &p.buf, self.timestamps && !p.continued));
                p.buf.clear();
            }
            p.continued = false;
        }
    }
}

fn make_line(stream: &'static str, raw: &[u8], timestamps: bool) -> LogLine {
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let (timestamp, line) = match text.split_once(' ') {
        Some((ts, rest)) if timestamps => (Some(ts.to_string()), rest.to_string()),
        _ => (None, text.to_string()),
    };
    LogLine {
        stream,
        timestamp,
        line,
    }
}

/// Turns a stream of frames into a stream of lines.
fn lines(
    frames: impl Stream<Item = Result<LogOutput, DockerError>> + Send + 'static,
    timestamps: bool,
) -> impl Stream<Item = Result<LogLine, DockerError>> + Send + 'static {
    let splitter = LineSplitter {
        timestamps,
        ..Default::default()
    };
    // State: frames, splitter, lines ready, an error to report after them, finished.
    futures_util::stream::unfold(
        (Box::pin(frames), splitter, VecDeque::new(), None, false),
        |(mut frames, mut splitter, mut ready, mut failed, mut done)| async move {
            loop {
                if let Some(line) = ready.pop_front() {
                    return Some((Ok(line), (frames, splitter, ready, failed, done)));
                }
                if let Some(e) = failed.take() {
                    return Some((Err(e), (frames, splitter, ready, None, true)));
                }
                if done {
                    return None;
                }
                match frames.next().await {
                    Some(Ok(frame)) => splitter.push(frame, &mut ready),
                    Some(Err(e)) => {
                        splitter.finish(&mut ready);
                        failed = Some(e);
                        done = true;
                    }
                    None => {
                        splitter.finish(&mut ready);
                        done = true;
                    }
                }
            }
        },
    )
}

impl DockerClient {
    /// Finds a container of a client by full id, unique id prefix or name, on one host
    /// (`host` = host name or id) or all of the client's enabled hosts. Exact id or name
    /// matches win over prefixes; more than one match is [`ClientError::Ambiguous`].
    pub async fn find_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
    ) -> Result<ContainerRef, ClientError> {
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
            conn.list_containers(true).await
        }))
        .await;
        let mut exact = Vec::new();
        let mut prefix = Vec::new();
        let mut failures = Vec::new();
        for (h, answer) in hosts.iter().zip(answers) {
            let list = match answer {
                Ok(l) => l,
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
                    exact.push(r);
                } else if r.id.starts_with(reference) {
                    prefix.push(r);
                }
            }
        }
        let mut found = if exact.is_empty() { prefix } else { exact };
        if found.len() > 1 {
            return Err(ClientError::Ambiguous {
                reference: reference.to_string(),
                candidates: found,
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
    pub(super) async fn client_hosts(
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

    async fn host_connection(
        &self,
        c: &ContainerRef,
    ) -> Result<std::sync::Arc<crate::docker::Connection>, ClientError> {
        let h = self.inner.store.host(c.host_id).await?;
        self.connection(&h)
            .await
            .map_err(|error| ClientError::Docker {
                host: c.host.clone(),
                error,
            })
    }

    /// Docker's inspect answer for a container. `inspectContainer`.
    pub async fn inspect_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
    ) -> Result<(ContainerRef, ContainerInspectResponse), ClientError> {
        let c = self.find_container(client_id, reference, host).await?;
        let conn = self.host_connection(&c).await?;
        let answer = conn.inspect(&c.id).await.map_err(|e| docker_err(&c, e))?;
        Ok((c, answer))
    }

    /// Starts a container. `startContainer`.
    pub async fn start_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
    ) -> Result<ActionOutcome, ClientError> {
        self.act(client_id, reference, host, Action::Start).await
    }

    /// Stops a container, SIGKILL after `t` seconds. `stopContainer`.
    pub async fn stop_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
        t: Option<u32>,
    ) -> Result<ActionOutcome, ClientError> {
        self.act(client_id, reference, host, Action::Stop { t })
            .await
    }

    /// Restarts a container. `restartContainer`.
    pub async fn restart_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
        t: Option<u32>,
    ) -> Result<ActionOutcome, ClientError> {
        self.act(client_id, reference, host, Action::Restart { t })
            .await
    }

    /// Removes a container. `removeContainer`.
    pub async fn remove_container(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
        force: bool,
        volumes: bool,
    ) -> Result<ActionOutcome, ClientError> {
        self.act(
            client_id,
            reference,
            host,
            Action::Remove { force, volumes },
        )
        .await
    }

    /// Finds the container, refuses if it is labelled `dockstat.actions=deny`, and asks its
    /// host to do `action`.
    pub async fn act(
        &self,
        client_id: i64,
        reference: &str,
        host: Option<&str>,
        action: Action,
    ) -> Result<ActionOutcome, ClientError> {
        let name = action.name();
        let c = self.find_container(client_id, reference, host).await?;
        if c.actions_denied {
            return Err(ClientError::Denied(format!(
                "container `{}` on host `{}` is labelled {DENY_LABEL}=deny: {name} refused",
                c.name, c.host
            )));
        }
        let conn = self.host_connection(&c).await?;
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
        Ok(ActionOutcome {
            container: c,
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
        let c = self.find_container(client_id, reference, host).await?;
        let conn = self.host_connection(&c).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn out(s: &str) -> LogOutput {
        LogOutput::StdOut {
            message: Bytes::from(s.to_string()),
        }
    }
    fn err(s: &str) -> LogOutput {
        LogOutput::StdErr {
            message: Bytes::from(s.to_string()),
        }
    }

    #[test]
    fn frames_become_lines_per_stream() {
        let mut sp = LineSplitter::default();
        let mut q = VecDeque::new();
        sp.push(out("one\ntw"), &mut q);
        sp.push(err("e1\n"), &mut q);
        sp.push(out("o\nthree"), &mut q);
        sp.finish(&mut q);
        let got: Vec<(&str, String)> = q.into_iter().map(|l| (l.stream, l.line)).collect();
        assert_eq!(
            got,
            vec![
                ("stdout", "one".to_string()),
                ("stderr", "e1".to_string()),
                ("stdout", "two".to_string()),
                ("stdout", "three".to_string()),
            ]
        );
    }

    #[test]
    fn a_line_without_end_is_passed_on_in_bounded_pieces() {
        let lines = |timestamps: bool, frames: &[&str]| {
            let mut sp = LineSplitter {
                timestamps,
                max_line: 8,
                ..Default::default()
            };
            let mut q = VecDeque::new();
            for f in frames {
                sp.push(out(f), &mut q);
            }
            sp.finish(&mut q);
            q.into_iter()
                .map(|l| (l.timestamp, l.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lines(false, &["abcdefghijkl", "m\n"]),
            vec![(None, "abcdefgh".to_string()), (None, "ijklm".to_string())]
        );
        // Only the start of a line carries its timestamp.
        assert_eq!(
            lines(true, &["2026 abcdefgh", "\n2027 x\n"]),
            vec![
                (Some("2026".to_string()), "abc".to_string()),
                (None, "defgh".to_string()),
                (Some("2027".to_string()), "x".to_string()),
            ]
        );
    }

    #[test]
    fn timestamps_are_split_off() {
        let mut sp = LineSplitter {
            timestamps: true,
            ..Default::default()
        };
        let mut q = VecDeque::new();
        sp.push(
            out("2026-11-29T04:00:00.123456789Z hello world\r\n"),
            &mut q,
        );
        let l = q.pop_front().expect("a line");
        assert_eq!(
            l.timestamp.as_deref(),
            Some("2026-11-29T04:00:00.123456789Z")
        );
        assert_eq!(l.line, "hello world");
    }
}
