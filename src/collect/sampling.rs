//! One sampling cycle: the running and paused containers, read from their cgroup files
//! where they can be, else by Docker's one-shot stats at most `stats_concurrency` at a time
//! ([`call_each`]), each answer reduced to a [`Sample`] as it arrives, then applied to the
//! inventory.

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::task::JoinSet;

use super::{Collector, Job};
use crate::cgroup::{CgroupPaths, CgroupReader, Extra};
use crate::docker::{Connection, DockerError};
use crate::stats::{self, ContainerStats, CpuPoint, Sample};
use crate::streams::{Channel, Payload};

/// A container to sample: its id, its cgroup files when they can be read here, and the CPU
/// point of its current run that the new answer is reduced against.
pub(super) struct Target {
    pub(super) id: String,
    pub(super) cgroup: Option<Arc<CgroupPaths>>,
    pub(super) prev: Option<CpuPoint>,
}

/// One container's stats answer, already reduced to a [`Sample`] where it arrived: the
/// decoded answer (~5 KB) is dropped at once instead of waiting for the host's whole cycle.
pub(super) enum Answer {
    /// A sample, and the point the run's next sample is reduced against.
    Sample(Arc<Sample>, Option<CpuPoint>),
    /// An answer without figures: it stopped between list and stats.
    Empty,
    /// No answer (the stream ended) or 404: it is gone or going.
    Gone,
    /// The call failed.
    Failed(DockerError),
}

impl Answer {
    pub(super) fn reduce(
        r: Result<Option<stats::StatsAnswer>, DockerError>,
        extra: Option<&Extra>,
        prev: Option<&CpuPoint>,
        seen_at: SystemTime,
    ) -> Answer {
        match r {
            Ok(Some(raw)) => {
                let (mut s, point) = stats::sample(raw, prev, seen_at);
                if let Some(e) = extra {
                    stats::add_extra(&mut s, e);
                }
                if s.is_empty() {
                    Answer::Empty
                } else {
                    Answer::Sample(Arc::new(s), point)
                }
            }
            Ok(None) => Answer::Gone,
            Err(e) if e.status == Some(404) => Answer::Gone,
            Err(e) => Answer::Failed(e),
        }
    }

    pub(super) fn host_down(&self) -> bool {
        matches!(self, Answer::Failed(e) if e.kind.is_host_down())
    }
}

/// One container's answer and the point it was reduced against.
pub(super) struct Sampled {
    pub(super) id: String,
    pub(super) prev: Option<CpuPoint>,
    pub(super) answer: Answer,
}

/// What one sampling task brings back.
#[derive(Default)]
pub(super) struct Cycle {
    pub(super) sampled: Vec<Sampled>,
    /// Set when calls kept failing and the ping that followed failed too: the host is down.
    pub(super) down: Option<DockerError>,
}

impl Collector {
    /// Running and paused containers with their cgroup files where readable.
    pub(super) fn running_targets(&self) -> Vec<Target> {
        self.inventory
            .iter()
            .filter(|(_, e)| e.meta.state.is_live())
            .map(|(id, e)| Target {
                id: id.clone(),
                cgroup: e.cgroup.clone(),
                prev: e.prev,
            })
            .collect()
    }

    /// Applies one cycle's samples; containers whose answer says they stopped or went are
    /// inspected again (in the background). Ok(false) when some call failed; Err when the
    /// host turned out to be gone.
    pub(super) fn apply_samples(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        cycle: Cycle,
    ) -> Result<bool, DockerError> {
        let mut ok = true;
        let mut recheck = Vec::new();
        let mut last_err = None;
        for Sampled { id, prev, answer } in cycle.sampled {
            let Some(entry) = self.inventory.get_mut(&id) else {
                continue;
            };
            if entry.prev != prev {
                // Reduced against a point this run no longer has (it restarted, or a first
                // sample landed meanwhile): its rate would span the wrong interval.
                continue;
            }
            match answer {
                Answer::Gone => recheck.push(id),
                Answer::Empty => {
                    // Stopped between list and stats: find out what it is now.
                    entry.prev = None;
                    entry.stats = None;
                    recheck.push(id);
                }
                Answer::Sample(s, point) => {
                    entry.prev = point;
                    let streams = &self.settings.streams;
                    if streams.wants(Channel::ContainerStats) {
                        streams.publish(
                            Channel::ContainerStats,
                            &self.spec.name,
                            &self.spec.client,
                            s.seen_at,
                            Payload::Stats {
                                container_id: entry.meta.id.clone(),
                                container_name: entry.meta.name.clone(),
                                stats: ContainerStats::of(&s),
                            },
                        );
                    }
                    entry.stats = Some(s);
                }
                Answer::Failed(e) => {
                    tracing::debug!(container = %id, error = %e, "stats failed");
                    ok = false;
                    last_err = Some(e);
                }
            }
        }
        if let Some(e) = cycle.down {
            return Err(e);
        }
        if let Some(e) = last_err {
            self.status.set_error(Some(e));
        }
        for id in recheck {
            self.request_inspect(conn, jobs, id, false);
        }
        Ok(ok)
    }
}

/// One cycle's samples: cgroup files read in one blocking batch, then Docker's one-shot
/// stats, `concurrency` at a time, for the others and for any whose files vanished (it
/// stopped meanwhile: the API answer says so the usual way). Each answer is reduced to a
/// [`Sample`] as it arrives.
pub(super) async fn sample_task(
    conn: Arc<Connection>,
    targets: Vec<Target>,
    concurrency: usize,
    reader: Option<Arc<CgroupReader>>,
) -> Cycle {
    let mut cycle = Cycle {
        sampled: Vec::with_capacity(targets.len()),
        down: None,
    };
    let (mut files, mut api) = (Vec::new(), Vec::new());
    for t in targets {
        match (&reader, t.cgroup.clone()) {
            (Some(_), Some(paths)) => files.push((paths, t)),
            _ => api.push(t),
        }
    }
    if let (Some(reader), false) = (reader, files.is_empty()) {
        let read = tokio::task::spawn_blocking(move || {
            let seen_at = SystemTime::now();
            reader.read_many(
                files,
                |(paths, _)| paths,
                |(_, t), r| match r {
                    Ok((raw, extra)) => Ok(Sampled {
                        answer: Answer::reduce(
                            Ok(Some(raw)),
                            Some(&extra),
                            t.prev.as_ref(),
                            seen_at,
                        ),
                        id: t.id,
                        prev: t.prev,
                    }),
                    Err(_) => Err(t),
                },
            )
        })
        .await;
        match read {
            Ok(read) => {
                for r in read {
                    match r {
                        Ok(s) => cycle.sampled.push(s),
                        Err(t) => api.push(t),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cgroup read task failed"),
        }
    }
    // Every container read from files: no call has shown the daemon is still answering.
    let ping = api.is_empty();
    let down = call_each(
        &conn,
        api,
        concurrency,
        |t| {
            let conn = conn.clone();
            async move {
                let r = conn.stats(&t.id).await;
                Sampled {
                    answer: Answer::reduce(r, None, t.prev.as_ref(), SystemTime::now()),
                    id: t.id,
                    prev: t.prev,
                }
            }
        },
        |s| s.answer.host_down(),
        |s| cycle.sampled.push(s),
    )
    .await;
    cycle.down = match down {
        Ok(()) if ping => conn.ping().await.err(),
        r => r.err(),
    };
    cycle
}

/// Runs `call` on every item, at most `concurrency` at a time, and hands each result to
/// `each` as it arrives. After a call fails as if the host were down (timeout, refused
/// connection), no new call starts until one in flight succeeds; when none does, one ping
/// decides. A daemon that hangs mid-cycle is so found within one timeout plus a ping,
/// instead of a timeout per `concurrency` containers (minutes for a few hundred); a daemon
/// that answers the ping was only slow for those calls, and the rest go ahead. Err is the
/// failed ping: the host is down.
pub(super) async fn call_each<I, O, Fut>(
    conn: &Connection,
    items: impl IntoIterator<Item = I>,
    concurrency: usize,
    call: impl Fn(I) -> Fut,
    host_down: impl Fn(&O) -> bool,
    mut each: impl FnMut(O),
) -> Result<(), DockerError>
where
    Fut: Future<Output = O>,
{
    let limit = concurrency.max(1);
    let mut items = items.into_iter();
    let mut running = FuturesUnordered::new();
    // Host-down failures since the last success.
    let mut failing = 0usize;
    loop {
        while failing == 0 && running.len() < limit {
            let Some(item) = items.next() else { break };
            running.push(call(item));
        }
        let Some(out) = running.next().await else {
            break;
        };
        if host_down(&out) {
            failing += 1;
        } else {
            failing = 0;
        }
        each(out);
        if failing > 0 && running.is_empty() {
            conn.ping().await?;
            failing = 0;
        }
    }
    Ok(())
}
