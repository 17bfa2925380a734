//! `GET /events`: the daemon's live event stream, cut into lines and decoded one event at a
//! time, and the names of event actions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::EventMessage;
use futures_util::Stream;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::error::{decode_error, timed_out};
use super::read::LineSplitter;
use super::transport::Transport;
use super::{Connection, DockerError, encode, failed, limits, request};
use crate::instruments::{ApiCall, HostInstruments};

/// An event action without Docker's suffix: `exec_start: sh` → `exec_start`,
/// `health_status: healthy` → `health_status`.
pub fn base_action(action: &str) -> &str {
    action.split(':').next().unwrap_or(action).trim()
}

impl Connection {
    /// `GET /events?since=…`: the live stream of daemon events. The answer's head must come
    /// within the request deadline; the stream itself has none (it is quiet when nothing
    /// happens), the caller watches the host's health. Each event is bounded by
    /// [`limits::EVENT_LINE`]; the stream ends after its first error.
    pub fn events(
        &self,
        since: Option<String>,
    ) -> impl Stream<Item = Result<EventMessage, DockerError>> + use<> {
        let path = match since {
            Some(s) => format!("/events?since={}", encode(&s)),
            None => "/events".to_string(),
        };
        let state = EventsState {
            transport: self.transport.clone(),
            path: self.versioned(&path),
            timeout: self.timeout,
            instruments: self.instruments.clone(),
            opened: false,
            body: None,
            lines: LineSplitter::new(limits::EVENT_LINE, "events"),
        };
        futures_util::stream::unfold((state, false), |(mut st, done)| async move {
            if done {
                return None;
            }
            let item = st.next().await?;
            let failed_now = item.is_err();
            if let Err(e) = &item {
                failed(&st.instruments, ApiCall::Events, e);
            }
            Some((item, (st, failed_now)))
        })
    }
}

/// One `/events` stream: opened at the first poll, then cut into lines and decoded.
struct EventsState {
    transport: Transport,
    path: String,
    timeout: Duration,
    instruments: Arc<HostInstruments>,
    opened: bool,
    /// None before opening and after the end.
    body: Option<Incoming>,
    lines: LineSplitter,
}

impl EventsState {
    async fn next(&mut self) -> Option<Result<EventMessage, DockerError>> {
        if !self.opened {
            self.opened = true;
            let started = Instant::now();
            let head = tokio::time::timeout(
                self.timeout,
                request(&self.transport, Method::GET, &self.path),
            )
            .await;
            self.instruments.observe(ApiCall::Events, started.elapsed());
            match head {
                Ok(Ok(answer)) => self.body = Some(answer.into_body()),
                Ok(Err(e)) => return Some(Err(e)),
                Err(_) => return Some(Err(timed_out(self.timeout))),
            }
        }
        loop {
            match self.lines.next_line() {
                Err(e) => return Some(Err(e)),
                Ok(Some(line)) if line.trim_ascii().is_empty() => continue,
                Ok(Some(line)) => return Some(decode_event(&line)),
                Ok(None) => {}
            }
            let Some(body) = self.body.as_mut() else {
                // Ended: a last event without its newline, then nothing.
                let last = self.lines.finish()?;
                return (!last.trim_ascii().is_empty()).then(|| decode_event(&last));
            };
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.lines.push(&data);
                    }
                }
                Some(Err(e)) => return Some(Err(DockerError::classify(&e))),
                None => self.body = None,
            }
        }
    }
}

fn decode_event(line: &[u8]) -> Result<EventMessage, DockerError> {
    serde_json::from_slice(line).map_err(|e| decode_error("/events", &e))
}
