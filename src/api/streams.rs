//! Live channels over HTTP: Server-Sent Events per channel and one WebSocket for several
//! channels. Both are thin wrappers over [`crate::streams::StreamManager`]; a subscriber
//! that is slow only ever delays itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_stream::StreamMap;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query};
use crate::streams::{Channel, Filter, MAX_MESSAGE_ID, Message, Payload, StreamError};

/// Filters of a subscription; absent fields match everything.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Host name.
    pub host: Option<String>,
    /// Client name.
    pub client: Option<String>,
    /// Container id, id prefix or name.
    pub container: Option<String>,
    /// Event action (`start`, `die`, …; host events: `connected`, `disconnected`, `error`,
    /// `health_changed`).
    pub action: Option<String>,
    /// Resume after this message id (same as the `Last-Event-ID` header).
    #[param(maximum = 9_007_199_254_740_991_u64)]
    pub last_event_id: Option<u64>,
}

impl From<&FilterParams> for Filter {
    fn from(p: &FilterParams) -> Filter {
        Filter {
            host: p.host.clone(),
            client: p.client.clone(),
            container: p.container.clone(),
            action: p.action.clone(),
        }
    }
}

fn channel(name: &str) -> Result<Channel, ApiError> {
    Channel::parse(name).ok_or_else(|| {
        ApiError::invalid(
            "channel",
            format!(
                "unknown channel `{name}`; one of {}",
                Channel::ALL.map(Channel::as_str).join(", ")
            ),
        )
    })
}

fn busy(e: StreamError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_subscribers",
        e.to_string(),
    )
}

fn kind(m: &Message) -> &'static str {
    match m.payload {
        Payload::Lagged { .. } => "lagged",
        Payload::Gap { .. } => "gap",
        _ => "message",
    }
}

/// Subscribe to a channel as Server-Sent Events. Each message's `id` can be given back as
/// `Last-Event-ID` (or `last_event_id`) to resume; `event` is `message`, `lagged` (you fell
/// behind and missed `missed` messages) or `gap` (the ring no longer holds what you asked
/// for). Channels: container_stats, container_events, docker_events, image_events,
/// network_events, volume_events, host_events.
#[utoipa::path(get, path = "/api/v1/streams/{channel}", tag = "streams",
    params(("channel" = Channel, Path, description = "Channel name"), FilterParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this id", maximum = 9_007_199_254_740_991_u64)),
    responses((status = 200, content_type = "text/event-stream", body = Message,
        description = "A stream of messages")))]
pub async fn sse(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<FilterParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let channel = channel(&name)?;
    let not_an_id = || ApiError::invalid("Last-Event-ID", "must be a message id");
    let header_id = match headers.get("last-event-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.trim().parse::<u64>().map_err(|_| not_an_id())?),
        Some(Err(_)) => return Err(not_an_id()),
    };
    if header_id
        .or(q.last_event_id)
        .is_some_and(|id| id > MAX_MESSAGE_ID)
    {
        return Err(ApiError::invalid(
            "Last-Event-ID",
            format!("message ids are at most {MAX_MESSAGE_ID}"),
        ));
    }
    let sub = s
        .docker
        .streams()
        .subscribe(channel, Filter::from(&q), header_id.or(q.last_event_id))
        .map_err(busy)?;
    let events = sub.map(|m| {
        let mut e = Event::default().event(kind(&m));
        if m.id > 0 {
            e = e.id(m.id.to_string());
        }
        Ok::<_, Infallible>(
            e.json_data(m.as_ref())
                .unwrap_or_else(|_| Event::default().comment("unencodable")),
        )
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// What a WebSocket client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientOp {
    Subscribe {
        channel: String,
        #[serde(default)]
        filter: WsFilter,
        #[serde(default, rename = "lastEventId")]
        last_event_id: Option<u64>,
    },
    Unsubscribe {
        channel: String,
    },
    Ping,
}

/// The filter of one subscription in a WebSocket `subscribe` message (the JSON twin of
/// [`FilterParams`], which SSE takes from the query).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsFilter {
    host: Option<String>,
    client: Option<String>,
    container: Option<String>,
    action: Option<String>,
}

/// One WebSocket for several channels. Send `{"op":"subscribe","channel":"…",
/// "filter":{"host","client","container","action"},"lastEventId":N}`,
/// `{"op":"unsubscribe","channel":"…"}` or `{"op":"ping"}`; receive
/// `{"op":"subscribed"|"unsubscribed"|"pong"|"error"|"message", …}` where a `message`
/// carries the channel message (`lagged` and `gap` notices included). At most
/// `streams.max_subscribers` sessions are open at once; one more gets 503 before the
/// upgrade.
#[utoipa::path(get, path = "/api/v1/ws", tag = "streams",
    params(
        ("Connection" = String, Header, description = "The WebSocket handshake", pattern = r"^[Uu]pgrade$"),
        ("Upgrade" = String, Header, description = "The WebSocket handshake", pattern = r"^websocket$"),
        ("Sec-WebSocket-Version" = String, Header, description = "The WebSocket handshake", pattern = r"^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "The WebSocket handshake: 16 random bytes in base64",
            pattern = r"^[A-Za-z0-9+/]{21}[AQgw]==$")),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 503, description = "`too_many_subscribers`: streams.max_subscribers \
            WebSocket sessions are open", body = ErrorBody)))]
pub async fn ws(
    State(s): State<Arc<AppState>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        // Not a WebSocket handshake: the same JSON error shape as the rest of the API.
        Err(r) => return ApiError::new(r.status(), "invalid", r.body_text()).into_response(),
    };
    // Refused before the upgrade, while the answer can still be an HTTP error.
    let Ok(slot) = s.ws_sessions.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers",
            "all WebSocket sessions are taken (streams.max_subscribers); try again later",
        )
        .into_response();
    };
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            session(s, socket).await;
            drop(slot);
        })
}

async fn session(state: Arc<AppState>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut subs: StreamMap<&'static str, crate::streams::Subscription> = StreamMap::new();
    loop {
        let out = tokio::select! {
            incoming = rx.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => reply(&state, &mut subs, text.as_str()),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue, // binary, ping, pong: nothing to say
            },
            Some((_, m)) = subs.next(), if !subs.is_empty() => {
                // `kind` tells messages from `lagged`/`gap` notices; a host message keeps its
                // own `event` (`connected`, …).
                let mut v = serde_json::to_value(m.as_ref()).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("op".into(), "message".into());
                }
                v
            }
        };
        if tx
            .send(WsMessage::Text(out.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
}

fn reply(
    state: &AppState,
    subs: &mut StreamMap<&'static str, crate::streams::Subscription>,
    text: &str,
) -> serde_json::Value {
    use serde_json::json;
    let op: ClientOp = match serde_json::from_str(text) {
        Ok(op) => op,
        Err(e) => return json!({"op": "error", "code": "invalid", "message": e.to_string()}),
    };
    match op {
        ClientOp::Ping => json!({"op": "pong"}),
        ClientOp::Unsubscribe { channel } => match Channel::parse(&channel) {
            Some(c) => {
                let was = subs.remove(c.as_str()).is_some();
                json!({"op": "unsubscribed", "channel": c.as_str(), "was_subscribed": was})
            }
            None => {
                json!({"op": "error", "code": "invalid", "message": format!("unknown channel `{channel}`")})
            }
        },
        ClientOp::Subscribe {
            last_event_id: Some(id),
            ..
        } if id > MAX_MESSAGE_ID => {
            json!({"op": "error", "code": "invalid", "message": format!("message ids are at most {MAX_MESSAGE_ID}")})
        }
        ClientOp::Subscribe {
            channel,
            filter,
            last_event_id,
        } => {
            let Some(c) = Channel::parse(&channel) else {
                return json!({"op": "error", "code": "invalid", "message": format!("unknown channel `{channel}`")});
            };
            // Resubscribing replaces: its slot is freed first.
            subs.remove(c.as_str());
            let f = Filter {
                host: filter.host,
                client: filter.client,
                container: filter.container,
                action: filter.action,
            };
            match state.docker.streams().subscribe(c, f, last_event_id) {
                Ok(sub) => {
                    subs.insert(c.as_str(), sub);
                    json!({"op": "subscribed", "channel": c.as_str()})
                }
                Err(e) => {
                    json!({"op": "error", "code": "too_many_subscribers", "message": e.to_string()})
                }
            }
        }
    }
}
