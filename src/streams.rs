//! Live channels (the seed's `StreamManager`): collectors publish Docker events, host
//! lifecycle and container stats; subscribers get them as a `Stream`, filtered, with
//! resume from a bounded ring.
//!
//! Publishing never waits: each channel is a `tokio::sync::broadcast` whose ring is every
//! subscriber's bounded queue. A subscriber that falls behind loses the oldest messages and
//! is told so with a [`Payload::Lagged`] message carrying the count; the collector, the
//! other subscribers and scrapes never notice it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::docker::base_action;
use crate::lock::MutexExt;

/// The channels one can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A stats record per running container per interval.
    ContainerStats,
    /// Docker events of type `container`.
    ContainerEvents,
    /// Every Docker event.
    DockerEvents,
    /// Docker events of type `image`.
    ImageEvents,
    /// Docker events of type `network`.
    NetworkEvents,
    /// Docker events of type `volume`.
    VolumeEvents,
    /// Host connected, disconnected, error, health changed.
    HostEvents,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 7] = [
        Channel::ContainerStats,
        Channel::ContainerEvents,
        Channel::DockerEvents,
        Channel::ImageEvents,
        Channel::NetworkEvents,
        Channel::VolumeEvents,
        Channel::HostEvents,
    ];

    /// Name in URLs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::ContainerStats => "container_stats",
            Channel::ContainerEvents => "container_events",
            Channel::DockerEvents => "docker_events",
            Channel::ImageEvents => "image_events",
            Channel::NetworkEvents => "network_events",
            Channel::VolumeEvents => "volume_events",
            Channel::HostEvents => "host_events",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The type-specific channel of a Docker event type, if any.
    pub fn for_event_type(t: &str) -> Option<Channel> {
        match t {
            "container" => Some(Channel::ContainerEvents),
            "image" => Some(Channel::ImageEvents),
            "network" => Some(Channel::NetworkEvents),
            "volume" => Some(Channel::VolumeEvents),
            _ => None,
        }
    }
}

/// The largest message id there can be: ids stay below 2^53 so that JavaScript reads them
/// exactly (see [`crate::store::Store::claim_stream_id_base`]); a resume asking for more is
/// refused.
pub const MAX_MESSAGE_ID: u64 = (1 << 53) - 1;

/// One message of a channel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    /// Increasing per channel; `Last-Event-ID` resumes after it. 0 for `lagged`/`gap`.
    pub id: u64,
    /// Channel it was published on.
    pub channel: Channel,
    /// Host name.
    pub host: String,
    /// Client name.
    pub client: String,
    /// Unix seconds (the event's own time for Docker events).
    pub time: f64,
    /// What happened.
    #[serde(flatten)]
    pub payload: Payload,
}

/// The body of a message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// A Docker event.
    Event {
        /// `container`, `image`, `network`, `volume`, …
        #[serde(rename = "type")]
        typ: String,
        /// `start`, `die`, `create`, …
        action: String,
        /// Id of the object (container id, image id, …).
        actor_id: String,
        /// The actor's attributes (`name`, `image`, `exitCode`, labels, …).
        #[schema(value_type = Object)]
        attributes: std::collections::BTreeMap<String, String>,
    },
    /// A container's latest stats.
    Stats {
        /// Container id.
        container_id: String,
        /// Container name.
        container_name: String,
        /// Figures, as the API's container stats.
        stats: crate::stats::ContainerStats,
    },
    /// A host's connection changed.
    Host {
        /// `connected`, `disconnected`, `error` or `health_changed`.
        event: String,
        /// Details (the error, or the new health).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// This subscriber fell behind and missed `missed` messages.
    Lagged {
        /// Messages dropped for this subscriber.
        missed: u64,
    },
    /// `Last-Event-ID` is older than the ring, or not an id of this process (it was
    /// restarted since): messages after it up to `resumed_from` (exclusive) are gone.
    Gap {
        /// The id asked to resume after.
        requested: u64,
        /// First id delivered.
        resumed_from: u64,
    },
}

impl Message {
    /// Container id, Docker event action: what filters look at.
    fn container(&self) -> Option<(&str, Option<&str>)> {
        match &self.payload {
            Payload::Event {
                actor_id,
                attributes,
                typ,
                ..
            } if typ == "container" => Some((
                actor_id.as_str(),
                attributes.get("name").map(String::as_str),
            )),
            Payload::Stats {
                container_id,
                container_name,
                ..
            } => Some((container_id.as_str(), Some(container_name.as_str()))),
            _ => None,
        }
    }

    fn action(&self) -> Option<&str> {
        match &self.payload {
            Payload::Event { action, .. } => Some(action),
            Payload::Host { event, .. } => Some(event),
            _ => None,
        }
    }
}

/// Which messages a subscriber wants; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Host name.
    pub host: Option<String>,
    /// Client name.
    pub client: Option<String>,
    /// Container id, id prefix or name.
    pub container: Option<String>,
    /// Event action (`start`, `die`, …; for host events `connected`, …).
    pub action: Option<String>,
}

impl Filter {
    /// Whether `m` passes. Notices (`lagged`, `gap`) always pass.
    pub fn matches(&self, m: &Message) -> bool {
        if matches!(m.payload, Payload::Lagged { .. } | Payload::Gap { .. }) {
            return true;
        }
        if self.host.as_ref().is_some_and(|h| *h != m.host)
            || self.client.as_ref().is_some_and(|c| *c != m.client)
        {
            return false;
        }
        if let Some(want) = &self.container {
            match m.container() {
                Some((id, name)) if id.starts_with(want.as_str()) || name == Some(want) => {}
                _ => return false,
            }
        }
        if let Some(want) = &self.action {
            let base = m.action().map(base_action);
            if base != Some(want.as_str()) && m.action() != Some(want.as_str()) {
                return false;
            }
        }
        true
    }
}

/// One channel: its broadcast, its ring of recent messages for resumes, its next id.
struct ChannelState {
    sender: broadcast::Sender<Arc<Message>>,
    ring: Mutex<VecDeque<Arc<Message>>>,
    next_id: AtomicU64,
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Too many subscribers.
    #[error("{0} subscribers already; try later or raise streams.max_subscribers")]
    TooManySubscribers(usize),
}

/// The channels, their rings and the subscriber count.
pub struct StreamManager {
    channels: Vec<ChannelState>,
    /// This process's first message id.
    first_id: u64,
    ring_size: usize,
    subscribers: Arc<AtomicUsize>,
    max_subscribers: usize,
}

impl std::fmt::Debug for StreamManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamManager")
            .field("ring_size", &self.ring_size)
            .field("subscribers", &self.subscribers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for StreamManager {
    fn default() -> Self {
        StreamManager::new(1024, 256, 100)
    }
}

impl StreamManager {
    /// `ring_size` messages kept per channel for `Last-Event-ID`; `queue` messages a
    /// subscriber may fall behind before it lags; at most `max_subscribers` at once.
    /// Message ids start at 1; see [`StreamManager::with_first_id`].
    pub fn new(ring_size: usize, queue: usize, max_subscribers: usize) -> StreamManager {
        StreamManager::with_first_id(ring_size, queue, max_subscribers, 1)
    }

    /// Like [`StreamManager::new`], with message ids starting at `first_id`: a process
    /// starts above every id an earlier one handed out
    /// ([`crate::store::Store::claim_stream_id_base`]), so a subscriber resuming across a
    /// restart is told of a gap rather than waiting for the ids to catch up.
    pub fn with_first_id(
        ring_size: usize,
        queue: usize,
        max_subscribers: usize,
        first_id: u64,
    ) -> StreamManager {
        let first_id = first_id.max(1);
        StreamManager {
            channels: Channel::ALL
                .iter()
                .map(|_| ChannelState {
                    sender: broadcast::channel(queue.max(1)).0,
                    // Grows as messages come: a large ring costs nothing until it fills.
                    ring: Mutex::new(VecDeque::new()),
                    next_id: AtomicU64::new(first_id),
                })
                .collect(),
            first_id,
            ring_size,
            subscribers: Arc::new(AtomicUsize::new(0)),
            max_subscribers,
        }
    }

    /// Subscribers right now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Whether anyone listens on `channel` (stats are only built for listeners).
    pub fn wants(&self, channel: Channel) -> bool {
        self.channels[channel.index()].sender.receiver_count() > 0
    }

    /// Publishes on `channel`; never waits.
    pub fn publish(&self, channel: Channel, host: &str, client: &str, time: f64, payload: Payload) {
        let ch = &self.channels[channel.index()];
        // Id, ring and send under the ring lock so ids reach subscribers in order.
        let mut ring = ch.ring.locked();
        let id = ch.next_id.fetch_add(1, Ordering::Relaxed);
        let msg = Arc::new(Message {
            id,
            channel,
            host: host.to_string(),
            client: client.to_string(),
            time,
            payload,
        });
        if ring.len() == self.ring_size {
            ring.pop_front();
        }
        if self.ring_size > 0 {
            ring.push_back(msg.clone());
        }
        // No receivers is fine: nobody listens.
        let _ = ch.sender.send(msg);
    }

    /// Subscribes to `channel`. With `last_event_id`, first replays what the ring holds
    /// after it (a [`Payload::Gap`] first when some of it is gone). An id this process never
    /// handed out (from an earlier process, or made up) is a gap too: the whole ring is
    /// replayed after the notice and live messages follow.
    pub fn subscribe(
        &self,
        channel: Channel,
        filter: Filter,
        last_event_id: Option<u64>,
    ) -> Result<Subscription, StreamError> {
        let slot = SubscriberSlot::take(&self.subscribers, self.max_subscribers)?;
        let ch = &self.channels[channel.index()];
        let ring = ch.ring.locked();
        // Subscribing under the lock: nothing published between replay and live.
        let receiver = ch.sender.subscribe();
        let mut backlog = VecDeque::new();
        let next = ch.next_id.load(Ordering::Relaxed);
        let mut resume_after = 0;
        if let Some(asked) = last_event_id {
            let oldest = ring.front().map_or(next, |m| m.id);
            // Ids this process never handed out count as unknown: replay all there is.
            let last = if asked >= next { 0 } else { asked };
            // 0 asks for everything this process published: a gap only once the ring lost
            // its first messages. Any other id is one of ours, or an earlier process's.
            let lost = if asked == 0 {
                oldest > self.first_id
            } else {
                last.saturating_add(1) < oldest
            };
            if asked >= next || lost {
                backlog.push_back(Arc::new(notice(
                    channel,
                    Payload::Gap {
                        requested: asked,
                        resumed_from: oldest,
                    },
                )));
            }
            backlog.extend(ring.iter().filter(|m| m.id > last).cloned());
            resume_after = last;
        }
        drop(ring);
        Ok(Subscription {
            channel,
            filter,
            backlog,
            receiver: tokio_stream::wrappers::BroadcastStream::new(receiver),
            last_id: resume_after,
            _slot: slot,
        })
    }
}

fn notice(channel: Channel, payload: Payload) -> Message {
    Message {
        id: 0,
        channel,
        host: String::new(),
        client: String::new(),
        time: crate::clock::unix_now(),
        payload,
    }
}

/// Counts a subscriber for as long as it lives.
#[derive(Debug)]
struct SubscriberSlot(Arc<AtomicUsize>);

impl SubscriberSlot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Result<SubscriberSlot, StreamError> {
        let mut cur = count.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return Err(StreamError::TooManySubscribers(cur));
            }
            match count.compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(SubscriberSlot(count.clone())),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A live subscription: a `Stream` of messages. Dropping it unsubscribes.
pub struct Subscription {
    channel: Channel,
    filter: Filter,
    backlog: VecDeque<Arc<Message>>,
    receiver: tokio_stream::wrappers::BroadcastStream<Arc<Message>>,
    last_id: u64,
    _slot: SubscriberSlot,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The channel subscribed to.
    pub fn channel(&self) -> Channel {
        self.channel
    }
}

impl Stream for Subscription {
    type Item = Arc<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
        let this = &mut *self;
        loop {
            if let Some(m) = this.backlog.pop_front() {
                if m.id > 0 {
                    this.last_id = m.id;
                }
                if this.filter.matches(&m) {
                    return Poll::Ready(Some(m));
                }
                continue;
            }
            match Pin::new(&mut this.receiver).poll_next(cx) {
                Poll::Ready(Some(Ok(m))) => {
                    // Already delivered from the ring replay.
                    if m.id <= this.last_id {
                        continue;
                    }
                    this.last_id = m.id;
                    if this.filter.matches(&m) {
                        return Poll::Ready(Some(m));
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                    return Poll::Ready(Some(Arc::new(notice(
                        this.channel,
                        Payload::Lagged { missed: n },
                    ))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;
