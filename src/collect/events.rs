//! The events stream: where it stands ([`EventCursor`], saved with the counts so that a
//! restart resumes exactly where they stop), what each event counts and publishes, and what
//! it changes in the inventory.

use std::collections::BTreeMap;
use std::sync::Arc;

use bollard::models::{EventMessage, EventMessageTypeEnum};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{Collector, Job};
use crate::clock::unix_now;
use crate::docker::{Connection, base_action};
use crate::snapshot::Lifecycle;
use crate::streams::{Channel, Payload};

/// How late (in event time) an event may arrive after a newer one and still count. Docker
/// stamps an event's time before publishing it, so events logged concurrently can arrive a
/// little out of time order; a resume asks for this much before the newest event seen.
const EVENT_REORDER_NANOS: i64 = 2_000_000_000;

/// Position in the events stream, so a reconnect resumes where it stopped and an event
/// delivered twice is applied once.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct EventCursor {
    /// Newest event time seen (or the first contact's time).
    pub(super) nanos: i64,
    /// First contact: nothing before it counts.
    #[serde(default)]
    pub(super) start: i64,
    /// Events seen within [`EVENT_REORDER_NANOS`] of `nanos`: (time, actor id, action).
    #[serde(default)]
    pub(super) recent: Vec<(i64, String, String)>,
}

/// What a host's collector keeps in SQLite: the event cursor and the counts built from the
/// events before it, saved together so that a restart resumes exactly where they stop.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct EventState {
    pub(super) cursor: EventCursor,
    /// (type, action, count).
    pub(super) events: Vec<(String, String, u64)>,
    /// Per container id.
    pub(super) containers: BTreeMap<String, Arc<Lifecycle>>,
}

impl EventCursor {
    /// First contact at `nanos` (the daemon's clock): events from then on count.
    pub(super) fn begin(&mut self, nanos: i64) {
        self.nanos = nanos;
        self.start = nanos;
        self.recent.clear();
    }

    /// Oldest event time still accepted (and asked for again on resume).
    pub(super) fn floor(&self) -> i64 {
        self.start
            .max(self.nanos.saturating_sub(EVENT_REORDER_NANOS))
            .max(0)
    }

    pub(super) fn accept(&mut self, ev: &EventMessage) -> bool {
        let nanos = ev
            .time_nano
            .or(ev.time.map(|t| t.saturating_mul(1_000_000_000)))
            .unwrap_or(0);
        let id = ev
            .actor
            .as_ref()
            .and_then(|a| a.id.clone())
            .unwrap_or_default();
        let action = ev.action.clone().unwrap_or_default();
        if nanos < self.floor()
            || self
                .recent
                .iter()
                .any(|(n, i, a)| *n == nanos && *i == id && *a == action)
        {
            return false;
        }
        self.recent.push((nanos, id, action));
        if nanos > self.nanos {
            self.nanos = nanos;
            let floor = self.floor();
            self.recent.retain(|(n, _, _)| *n >= floor);
        }
        true
    }

    /// `since` for `/events`: seconds.nanoseconds of [`EventCursor::floor`].
    pub(super) fn since(&self) -> Option<String> {
        (self.nanos > 0).then(|| {
            let at = self.floor();
            format!("{}.{:09}", at / 1_000_000_000, at % 1_000_000_000)
        })
    }
}

impl Collector {
    /// Loads the saved cursor and counts and starts the task that saves them.
    pub(super) async fn restore(&mut self) {
        let Some(store) = self.settings.store.clone() else {
            return;
        };
        match store.event_state(self.spec.id).await {
            Ok(Some(text)) => match serde_json::from_str::<EventState>(&text) {
                Ok(state) => {
                    self.cursor = state.cursor;
                    self.events = Arc::new(
                        state
                            .events
                            .into_iter()
                            .map(|(t, a, n)| ((t, a), n))
                            .collect(),
                    );
                    self.lifecycle = state.containers;
                    tracing::info!(since = ?self.cursor.since(),
                        "resuming Docker events from the saved cursor");
                }
                Err(e) => tracing::warn!(error = %e,
                    "saved event state unreadable; starting afresh"),
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the saved event state")
            }
        }
        let (tx, mut rx) = tokio::sync::watch::channel(String::new());
        let host_id = self.spec.id;
        let saver = async move {
            // Ends when the collector (and so the sender) is dropped.
            while rx.changed().await.is_ok() {
                let state = rx.borrow_and_update().clone();
                if let Err(e) = store.save_event_state(host_id, state).await {
                    tracing::warn!(error = %e, "cannot save the event state");
                }
            }
        };
        // In the collector's span, which names the host.
        tokio::spawn(saver.instrument(tracing::Span::current()));
        self.saver = Some(tx);
    }

    pub(super) fn save(&self) {
        let Some(tx) = &self.saver else { return };
        let state = EventState {
            cursor: self.cursor.clone(),
            events: self
                .events
                .iter()
                .map(|((t, a), n)| (t.clone(), a.clone(), *n))
                .collect(),
            containers: self.lifecycle.clone(),
        };
        match serde_json::to_string(&state) {
            Ok(text) => {
                let _ = tx.send(text);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the event state")
            }
        }
    }

    /// Counts an accepted event, keeps per-container exits and OOM kills, and publishes it.
    pub(super) fn record_event(&mut self, ev: &EventMessage) {
        let typ = ev.typ.map(|t| t.to_string()).unwrap_or_default();
        let raw_action = ev.action.clone().unwrap_or_default();
        let action = base_action(&raw_action).to_string();
        let actor_id = ev
            .actor
            .as_ref()
            .and_then(|a| a.id.clone())
            .unwrap_or_default();
        let attributes: BTreeMap<String, String> = ev
            .actor
            .as_ref()
            .and_then(|a| a.attributes.clone())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        *Arc::make_mut(&mut self.events)
            .entry((typ.clone(), action.clone()))
            .or_insert(0) += 1;
        if typ == "container" {
            match action.as_str() {
                "die" => {
                    let code = attributes
                        .get("exitCode")
                        .and_then(|c| c.parse::<i64>().ok())
                        .unwrap_or(-1);
                    let l = Arc::make_mut(self.lifecycle.entry(actor_id.clone()).or_default());
                    *l.exits.entry(code).or_insert(0) += 1;
                    l.last_exit_code = Some(code);
                }
                "oom" => {
                    Arc::make_mut(self.lifecycle.entry(actor_id.clone()).or_default()).oom_events +=
                        1
                }
                "destroy" => {
                    self.lifecycle.remove(&actor_id);
                }
                _ => {}
            }
        }
        let time = ev
            .time_nano
            .map(|n| n as f64 / 1e9)
            .or(ev.time.map(|t| t as f64))
            .unwrap_or_else(unix_now);
        let payload = Payload::Event {
            typ: typ.clone(),
            action: raw_action,
            actor_id,
            attributes,
        };
        let streams = &self.settings.streams;
        if let Some(channel) = Channel::for_event_type(&typ) {
            streams.publish(
                channel,
                &self.spec.name,
                &self.spec.client,
                time,
                payload.clone(),
            );
        }
        streams.publish(
            Channel::DockerEvents,
            &self.spec.name,
            &self.spec.client,
            time,
            payload,
        );
        self.save();
    }

    /// Keeps the inventory current from one event, without waiting: a destroyed container
    /// leaves at once, others are inspected in the background. True when it changed now.
    pub(super) fn on_event(
        &mut self,
        conn: &Arc<Connection>,
        jobs: &mut JoinSet<Job>,
        ev: &EventMessage,
    ) -> bool {
        if ev.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return false;
        }
        let (Some(action), Some(id)) = (
            ev.action.as_deref(),
            ev.actor.as_ref().and_then(|a| a.id.as_deref()),
        ) else {
            return false;
        };
        let action = base_action(action);
        tracing::debug!(container = %id, action, "container event");
        // A container event's attributes are its labels plus `name` and `image`: enough to
        // tell a left-out container (`containers` sections, opt-out label) without an inspect.
        let attributes = ev.actor.as_ref().and_then(|a| a.attributes.as_ref());
        if let Some(name) = attributes.and_then(|a| a.get("name"))
            && !self.filter.admits(name, &|k| {
                attributes.and_then(|a| a.get(k)).map(String::as_str)
            })
        {
            return self.inventory.remove(id).is_some();
        }
        match action {
            "destroy" => {
                // An inspect still running for it answers from before: drop that answer.
                if let Some(p) = self.inspecting.get_mut(id) {
                    p.gone = true;
                }
                self.inventory.remove(id).is_some()
            }
            "create" | "start" | "restart" | "die" | "pause" | "unpause" | "oom" | "update"
            | "rename" | "health_status" => {
                // Visible as running at once after a start, with a first sample right away
                // rather than at the next tick.
                let first = matches!(action, "start" | "restart" | "unpause");
                self.request_inspect(conn, jobs, id.to_string(), first);
                false
            }
            _ => false,
        }
    }
}
