//! The containers a collector knows: the full list (a re-list is the safety net under the
//! events stream), one inspect per container with at most one in flight, what is kept of
//! each ([`Entry`]), and the daemon's `/info`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bollard::models::ContainerInspectResponse;
use serde::Deserialize;
use tokio::task::JoinSet;

use super::sampling::{Cycle, Target, call_each, sample_task};
use super::{Collector, Job};
use crate::cgroup::CgroupPaths;
use crate::clock::parse_rfc3339;
use crate::config::filter::glob;
use crate::config::sanitize_label;
use crate::docker::{Connection, DockerError};
use crate::snapshot::{ContainerMeta, ContainerState, Health, HostInfo, InfoLabel, Spec};
use crate::stats::{CpuPoint, Named, Sample};

/// One entry of the container list as the collector reads it: what decides whether it is
/// followed ([`Collector::admits`]) and whether it must be inspected again ([`ListKey`]).
/// Why not bollard's `ContainerSummary`: that decodes ports, mounts, networks and more of
/// every container at every re-list, to drop them unread (at 10,000 containers, the largest
/// single source of heap at the moment the hosts re-list).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Listed {
    pub(super) id: Option<String>,
    pub(super) names: Option<Vec<String>>,
    #[serde(rename = "ImageID")]
    pub(super) image_id: Option<String>,
    pub(super) labels: Option<Named<String>>,
    pub(super) state: Option<String>,
    /// "Up 3 minutes (healthy)".
    pub(super) status: Option<String>,
}

/// What decides whether a re-list must inspect a container again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListKey {
    pub(super) state: ContainerState,
    pub(super) health: Health,
    pub(super) name: String,
    pub(super) image_id: String,
}

impl ListKey {
    pub(super) fn from_listed(s: &Listed) -> ListKey {
        let state = s
            .state
            .as_deref()
            .map_or(ContainerState::Unknown, ContainerState::parse);
        // `Status` reads "Up 3 minutes (healthy)"; the marker is all the list says of health.
        let status = s.status.as_deref().unwrap_or("");
        let health = if state != ContainerState::Running {
            Health::None
        } else if status.contains("(healthy)") {
            Health::Healthy
        } else if status.contains("(unhealthy)") {
            Health::Unhealthy
        } else if status.contains("(health: starting)") {
            Health::Starting
        } else {
            Health::None
        };
        ListKey {
            state,
            health,
            name: s
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            image_id: s.image_id.clone().unwrap_or_default(),
        }
    }

    pub(super) fn from_meta(m: &ContainerMeta) -> ListKey {
        ListKey {
            state: m.state,
            health: if m.state == ContainerState::Running {
                m.health
            } else {
                Health::None
            },
            name: m.name.clone(),
            image_id: m.image_id.clone(),
        }
    }
}

/// One container in the inventory.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) meta: Arc<ContainerMeta>,
    pub(super) key: ListKey,
    /// `State.StartedAt` as Docker wrote it: a change means a new run.
    pub(super) started_raw: String,
    pub(super) prev: Option<CpuPoint>,
    pub(super) stats: Option<Arc<Sample>>,
    /// Its cgroup files, when they can be read here (see [`crate::cgroup`]).
    pub(super) cgroup: Option<Arc<CgroupPaths>>,
    /// The init pid `cgroup` was looked up for; a new run has a new pid.
    pub(super) located_pid: i64,
    /// When an inspect answer last updated it: a re-list asked before keeps it.
    pub(super) updated: Instant,
    /// Its writable layer's directory (`GraphDriver.Data.UpperDir`, overlay2).
    pub(super) upper_dir: Option<Arc<str>>,
    /// Its log file (`LogPath`).
    pub(super) log_path: Option<Arc<str>>,
}

/// A container with an inspect in flight, and what happened since it was asked.
#[derive(Debug, Default)]
pub(super) struct Inspecting {
    /// More events came: inspect once more when the answer is in.
    pub(super) again: bool,
    /// Destroyed meanwhile: the answer is stale.
    pub(super) gone: bool,
    /// Sample it as soon as it is running (it was just started).
    pub(super) first_sample: bool,
}

pub(super) async fn relist_job(conn: Arc<Connection>) -> Job {
    let asked = Instant::now();
    let list = conn.list_containers(true).await;
    let info = match &list {
        Ok(_) => conn.info().await.ok().map(Box::new),
        Err(_) => None,
    };
    Job::Relist { asked, list, info }
}

pub(super) async fn inspect_job(
    conn: Arc<Connection>,
    permits: Arc<tokio::sync::Semaphore>,
    id: String,
) -> Job {
    // The semaphore is never closed; without a permit the call just goes ahead.
    let _permit = permits.acquire_owned().await.ok();
    let result = conn.inspect(&id).await.map(Box::new);
    let down = match &result {
        Err(e) if e.kind.is_host_down() => conn.ping().await.err(),
        _ => None,
    };
    Job::Inspect { id, result, down }
}

impl Collector {
    /// Whether a listed container is followed (`containers` sections, opt-out label): the
    /// others are never inspected after a list, sampled or shown.
    fn admits(&self, s: &Listed) -> bool {
        let name = s
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map_or("", |n| n.trim_start_matches('/'));
        let labels = s.labels.as_ref();
        self.filter
            .admits(name, &|k| labels.and_then(|l| l.get(k)).map(String::as_str))
    }

    /// Full list: drops containers gone, inspects new and changed ones, refreshes /info.
    /// Ok(false) when some inspect failed.
    pub(super) async fn relist(&mut self, conn: &Arc<Connection>) -> Result<bool, DockerError> {
        let list = conn.list_containers(true).await?;
        let mut seen = HashSet::with_capacity(list.len());
        let mut changed = Vec::new();
        for s in list.iter().filter(|s| self.admits(s)) {
            let Some(id) = &s.id else { continue };
            seen.insert(id.as_str());
            let key = ListKey::from_listed(s);
            if self.inventory.get(id).is_none_or(|e| e.key != key) {
                changed.push(id.clone());
            }
        }
        self.inventory.retain(|id, _| seen.contains(id.as_str()));
        let ok = self.inspect_many(conn, changed).await?;
        match conn.info().await {
            Ok(info) => self.info = Some(Arc::new(host_info(conn, Some(&info)))),
            Err(e) if e.kind.is_host_down() => return Err(e),
            Err(_) => {}
        }
        Ok(ok)
    }

    /// Inspects containers with bounded concurrency and updates the inventory as each answer
    /// arrives. Ok(false) when some inspect failed; Err when the host is down.
    pub(super) async fn inspect_many(
        &mut self,
        conn: &Arc<Connection>,
        ids: Vec<String>,
    ) -> Result<bool, DockerError> {
        let mut ok = true;
        call_each(
            conn,
            ids,
            self.settings.concurrency,
            |id| {
                let conn = conn.clone();
                async move {
                    let r = conn.inspect(&id).await;
                    (id, r)
                }
            },
            |(_, r)| matches!(r, Err(e) if e.kind.is_host_down()),
            |(id, r)| match r {
                Ok(i) => self.upsert(&i),
                Err(e) if e.status == Some(404) => {
                    self.inventory.remove(&id);
                }
                Err(e) => {
                    tracing::debug!(container = %id, error = %e, "inspect failed");
                    ok = false;
                }
            },
        )
        .await?;
        Ok(ok)
    }

    /// Applies an inspect answer; a new run (StartedAt changed) or a stop drops the previous
    /// sample so rates never span two runs.
    pub(super) fn upsert(&mut self, i: &ContainerInspectResponse) {
        let Some((mut meta, started_raw)) = meta_from_inspect(i, &self.settings.labels) else {
            return;
        };
        let labels = i.config.as_ref().and_then(|c| c.labels.as_ref());
        if !self.settings.info_labels.is_empty()
            && let Some(all) = labels
        {
            meta.info_labels = info_labels(all, &self.settings.info_labels, &meta.labels);
        }
        if !self.filter.admits(&meta.name, &|k| {
            labels.and_then(|l| l.get(k)).map(String::as_str)
        }) {
            // Left out by the `containers` sections or its opt-out label (which can change
            // only with a new container: labels are fixed at creation).
            self.inventory.remove(&meta.id);
            return;
        }
        let key = ListKey::from_meta(&meta);
        let id = meta.id.clone();
        let upper_dir: Option<Arc<str>> = i
            .graph_driver
            .as_ref()
            .and_then(|g| g.data.get("UpperDir"))
            .filter(|d| !d.is_empty())
            .map(|d| Arc::from(d.as_str()));
        let log_path: Option<Arc<str>> = i
            .log_path
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(Arc::from);
        let pid = if meta.state.is_live() {
            i.state.as_ref().and_then(|s| s.pid).unwrap_or(0)
        } else {
            0
        };
        let locate = |entry_pid: i64, current: &Option<Arc<CgroupPaths>>| {
            if pid == entry_pid {
                return current.clone();
            }
            let reader = self.settings.cgroup.as_ref()?;
            if pid <= 0 {
                return None;
            }
            let mode = i
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.as_deref())
                .unwrap_or("default");
            let found = reader.locate(&id, pid, mode).map(Arc::new);
            if found.is_none() && self.settings.warn_api_fallback {
                tracing::warn!(container = %meta.name, pid,
                    "stats_source cgroup: cannot read this container's cgroup files here; using the API");
            }
            found
        };
        match self.inventory.get_mut(&id) {
            Some(e) => {
                if e.started_raw != started_raw || !meta.state.is_live() {
                    e.prev = None;
                    e.stats = None;
                }
                e.cgroup = locate(e.located_pid, &e.cgroup);
                e.located_pid = pid;
                e.updated = Instant::now();
                e.started_raw = started_raw;
                e.key = key;
                e.upper_dir = upper_dir;
                e.log_path = log_path;
                if *e.meta != meta {
                    e.meta = Arc::new(meta);
                }
            }
            None => {
                let cgroup = locate(0, &None);
                self.inventory.insert(
                    id,
                    Entry {
                        meta: Arc::new(meta),
                        key,
                        started_raw,
                        prev: None,
                        stats: None,
                        cgroup,
                        located_pid: pid,
                        updated: Instant::now(),
                        upper_dir,
                        log_path,
                    },
                );
            }
        }
    }

    /// Inspects a container in the background. While one inspect of it runs, more requests
    /// only mark it to be inspected once more when that one answers: each container has at
    /// most one call in flight, and the answer applied last always comes from a call made
    /// after the last event. `first_sample` asks for a sample as soon as it is running.
    pub(super) fn request_inspect(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        id: String,
        first_sample: bool,
    ) {
        match self.inspecting.get_mut(&id) {
            Some(p) => {
                p.again = true;
                p.first_sample |= first_sample;
            }
            None => {
                self.inspecting.insert(
                    id.clone(),
                    Inspecting {
                        first_sample,
                        ..Inspecting::default()
                    },
                );
                jobs.spawn(inspect_job(conn.clone(), self.permits.clone(), id));
            }
        }
    }

    /// Applies a background inspect; returns a first-sample task to run when the container
    /// was just started and is running.
    pub(super) fn inspected(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        id: String,
        result: Result<Box<ContainerInspectResponse>, DockerError>,
    ) -> Option<impl Future<Output = Cycle> + use<>> {
        let pending = self.inspecting.remove(&id).unwrap_or_default();
        if pending.gone {
            return None;
        }
        match result {
            Ok(i) => self.upsert(&i),
            Err(e) if e.status == Some(404) => {
                self.inventory.remove(&id);
            }
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "inspect failed");
                self.cycle_ok = false;
            }
        }
        if pending.again {
            self.request_inspect(conn, jobs, id.clone(), pending.first_sample);
            return None;
        }
        let entry = self.inventory.get(&id)?;
        (pending.first_sample && entry.meta.state == ContainerState::Running).then(|| {
            sample_task(
                conn.clone(),
                vec![Target {
                    id,
                    cgroup: entry.cgroup.clone(),
                    prev: entry.prev,
                }],
                1,
                self.settings.cgroup.clone(),
            )
        })
    }

    /// Applies a background re-list asked at `asked`: containers not listed leave (unless
    /// an answer newer than the list brought them), new and changed ones are inspected in
    /// the background. Ok(true) when the inventory changed now.
    pub(super) fn relisted(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        asked: Instant,
        list: Result<Vec<Listed>, DockerError>,
        info: Option<Box<bollard::models::SystemInfo>>,
    ) -> Result<bool, DockerError> {
        let list = match list {
            Ok(l) => l,
            Err(e) if e.kind.is_host_down() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "re-list failed");
                self.cycle_ok = false;
                return Ok(false);
            }
        };
        if let Some(info) = info {
            self.info = Some(Arc::new(host_info(conn, Some(&info))));
        }
        let mut seen = HashSet::with_capacity(list.len());
        let admitted: Vec<&Listed> = list.iter().filter(|s| self.admits(s)).collect();
        for s in admitted {
            let Some(id) = &s.id else { continue };
            seen.insert(id.as_str());
            let key = ListKey::from_listed(s);
            if self.inventory.get(id).is_none_or(|e| e.key != key) {
                self.request_inspect(conn, jobs, id.clone(), false);
            }
        }
        let before = self.inventory.len();
        self.inventory
            .retain(|id, e| seen.contains(id.as_str()) || e.updated >= asked);
        Ok(self.inventory.len() != before)
    }
}

pub(super) fn host_info(conn: &Connection, info: Option<&bollard::models::SystemInfo>) -> HostInfo {
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    HostInfo {
        name: text(info.and_then(|i| i.name.as_ref())),
        server_version: conn.daemon.server_version.clone(),
        runtime: conn.daemon.runtime.to_string(),
        api_version: conn.daemon.api_version.clone(),
        operating_system: text(info.and_then(|i| i.operating_system.as_ref())),
        os_type: text(info.and_then(|i| i.os_type.as_ref())),
        architecture: text(info.and_then(|i| i.architecture.as_ref())),
        kernel_version: text(info.and_then(|i| i.kernel_version.as_ref())),
        cgroup_version: info
            .and_then(|i| i.cgroup_version)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        cgroup_driver: info
            .and_then(|i| i.cgroup_driver)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        ncpu: info
            .and_then(|i| i.ncpu)
            .and_then(|n| u64::try_from(n).ok()),
        mem_total: info
            .and_then(|i| i.mem_total)
            .and_then(|n| u64::try_from(n).ok()),
        cpu_physical_cores: None,
        cpu_sockets: None,
    }
}

/// The container's Docker labels whose key matches a glob of `metrics.info_labels`, as
/// `container_label_<key>` sorted by name: one per name (the first key in order when two
/// sanitize alike), none that the allowlist already puts on every series.
fn info_labels(
    all: &std::collections::HashMap<String, String>,
    globs: &[String],
    on_every_series: &[(Arc<str>, String)],
) -> Vec<InfoLabel> {
    let mut keys: Vec<&String> = all
        .keys()
        .filter(|k| globs.iter().any(|g| glob(g, k)))
        .collect();
    keys.sort();
    let mut out: Vec<InfoLabel> = Vec::with_capacity(keys.len());
    for key in keys {
        let name = format!("container_label_{}", sanitize_label(key));
        if out.iter().any(|l| l.name == name) || on_every_series.iter().any(|(n, _)| **n == *name) {
            continue;
        }
        out.push(InfoLabel {
            name,
            key: key.clone(),
            value: all.get(key).cloned().unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Memory plus swap limit as Docker sets `memory.memsw.limit_in_bytes`: `MemorySwap` when
/// given, twice the memory limit when only that is (Docker's default), else unlimited (0).
fn swap_limit(memory: Option<i64>, swap: Option<i64>) -> u64 {
    let memory = memory
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0);
    match (memory, swap) {
        (_, Some(s)) if s > 0 => s.unsigned_abs(),
        (_, Some(-1)) | (None, _) => 0,
        (Some(m), _) => m.saturating_mul(2),
    }
}

/// CFS period Docker uses when only `--cpus` is given.
const DEFAULT_CFS_PERIOD_US: u64 = 100_000;

/// Builds what we keep of a container from its inspect answer, with its raw StartedAt.
pub(super) fn meta_from_inspect(
    i: &ContainerInspectResponse,
    allow: &[(String, Arc<str>)],
) -> Option<(ContainerMeta, String)> {
    let id = i.id.clone()?;
    let config = i.config.as_ref();
    let labels = config.and_then(|c| c.labels.as_ref());
    let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
    let state = i.state.as_ref();
    let status = state
        .and_then(|s| s.status)
        .map(|s| ContainerState::parse(s.as_ref()))
        .unwrap_or(ContainerState::Unknown);
    let started_raw = state.and_then(|s| s.started_at.clone()).unwrap_or_default();
    let hc = i.host_config.as_ref();
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    let nano_cpus = positive(hc.and_then(|h| h.nano_cpus));
    let (cpu_quota, cpu_period) = match (nano_cpus, positive(hc.and_then(|h| h.cpu_quota))) {
        (Some(n), _) => (
            Some(n * DEFAULT_CFS_PERIOD_US / 1_000_000_000),
            Some(DEFAULT_CFS_PERIOD_US),
        ),
        (None, Some(q)) => (
            Some(q),
            Some(positive(hc.and_then(|h| h.cpu_period)).unwrap_or(DEFAULT_CFS_PERIOD_US)),
        ),
        (None, None) => (None, None),
    };
    let meta = ContainerMeta {
        name: i
            .name
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string(),
        image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
        image_id: i.image.clone().unwrap_or_default(),
        compose_project: label("com.docker.compose.project"),
        compose_service: label("com.docker.compose.service"),
        info_labels: Vec::new(),
        labels: allow
            .iter()
            .filter_map(|(key, name)| label(key).map(|v| (name.clone(), v)))
            .collect(),
        state: status,
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .map(|h| Health::parse(h.as_ref()))
            .unwrap_or(Health::None),
        restart_count: i
            .restart_count
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        exit_code: match status {
            ContainerState::Exited | ContainerState::Dead => state.and_then(|s| s.exit_code),
            _ => None,
        },
        started_at: parse_rfc3339(&started_raw),
        spec: Spec {
            memory_limit: positive(hc.and_then(|h| h.memory)).unwrap_or(0),
            cpu_quota,
            cpu_period,
            cpu_shares: positive(hc.and_then(|h| h.cpu_shares)).unwrap_or(1024),
            memory_swap_limit: swap_limit(
                hc.and_then(|h| h.memory),
                hc.and_then(|h| h.memory_swap),
            ),
            memory_reservation: positive(hc.and_then(|h| h.memory_reservation)).unwrap_or(0),
        },
        id,
    };
    Some((meta, started_raw))
}
