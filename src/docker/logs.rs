//! `GET /containers/{id}/logs`: a container's log answer cut into frames, multiplexed or
//! raw, bounded per frame and (unless followed) in total.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::Stream;
use http::{Method, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::error::timed_out;
use super::read::{self, Framing, LogDemux};
use super::transport::Transport;
use super::{Connection, DockerError, ErrorKind, encode, failed, limits, request};
use crate::instruments::{ApiCall, HostInstruments};

/// Docker's log answers are multiplexed when the container has no TTY; from API 1.42 the
/// Content-Type says so.
const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

impl Connection {
    /// A container's log frames. The first frame (or the end) must come within the
    /// request deadline unless `follow`; after that a followed stream runs until dropped,
    /// and a finite one has the deadline for each frame. Frames are bounded by
    /// [`limits::LOG_FRAME`], and a finite read as a whole by [`limits::LOG_TOTAL`].
    pub fn logs(
        &self,
        id: &str,
        opts: LogsOptions,
    ) -> impl Stream<Item = Result<LogOutput, DockerError>> + use<> {
        let mut path = format!(
            "/containers/{}/logs?follow={}&stdout={}&stderr={}&timestamps={}&tail={}",
            encode(id),
            opts.follow,
            opts.stdout,
            opts.stderr,
            opts.timestamps,
            encode(&opts.tail)
        );
        // 0 means "no bound" to us; Docker would read an explicit 0 as the epoch.
        if opts.since > 0 {
            let _ = write!(path, "&since={}", opts.since);
        }
        if opts.until > 0 {
            let _ = write!(path, "&until={}", opts.until);
        }
        let state = LogsState {
            transport: self.transport.clone(),
            path: self.versioned(&path),
            follow: opts.follow,
            timeout: self.timeout,
            typed: self.typed_logs,
            instruments: self.instruments.clone(),
            opened: false,
            body: None,
            demux: LogDemux::new(Framing::Sniff, limits::LOG_FRAME),
            total: 0,
        };
        let started = Instant::now();
        futures_util::stream::unfold(
            (state, true, false),
            move |(mut st, first, done)| async move {
                if done {
                    return None;
                }
                // A followed stream may be quiet for hours: no deadline on it.
                let next = if st.follow {
                    Ok(st.next().await)
                } else {
                    tokio::time::timeout(st.timeout, st.next()).await
                };
                if first {
                    st.instruments
                        .observe(ApiCall::ContainerLogs, started.elapsed());
                }
                let item = match next {
                    Ok(None) => return None,
                    Ok(Some(item)) => item,
                    Err(_) => Err(DockerError::new(
                        ErrorKind::Timeout,
                        format!("no log data within {:?}", st.timeout),
                    )),
                };
                let failed_now = item.is_err();
                if let Err(e) = &item {
                    failed(&st.instruments, ApiCall::ContainerLogs, e);
                }
                Some((item, (st, false, failed_now)))
            },
        )
    }
}

/// One log read: opened at the first poll, then cut into frames.
struct LogsState {
    transport: Transport,
    path: String,
    follow: bool,
    timeout: Duration,
    /// The answer's Content-Type tells multiplexed from raw (API >= 1.42).
    typed: bool,
    instruments: Arc<HostInstruments>,
    opened: bool,
    /// None before opening and after the end.
    body: Option<Incoming>,
    demux: LogDemux,
    /// Payload bytes so far, bounded by [`limits::LOG_TOTAL`] unless following.
    total: usize,
}

impl LogsState {
    async fn next(&mut self) -> Option<Result<LogOutput, DockerError>> {
        if !self.opened {
            self.opened = true;
            // The head comes at once, also when following: under the deadline.
            let head = tokio::time::timeout(
                self.timeout,
                request(&self.transport, Method::GET, &self.path),
            )
            .await;
            let answer = match head {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => return Some(Err(e)),
                Err(_) => return Some(Err(timed_out(self.timeout))),
            };
            let multiplexed = answer
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with(MULTIPLEXED));
            let framing = match (multiplexed, self.typed) {
                (true, _) => Framing::Multiplexed,
                (false, true) => Framing::Raw,
                // Older daemons label both kinds `raw-stream`.
                (false, false) => Framing::Sniff,
            };
            self.demux = LogDemux::new(framing, limits::LOG_FRAME);
            self.body = Some(answer.into_body());
        }
        loop {
            let frame = if self.body.is_some() {
                self.demux.next_frame()
            } else {
                self.demux.finish()
            };
            match frame {
                Err(e) => return Some(Err(e)),
                Ok(Some(frame)) => {
                    self.total = self.total.saturating_add(frame.as_ref().len());
                    if !self.follow && self.total > limits::LOG_TOTAL {
                        return Some(Err(read::too_large(
                            "log read without follow",
                            limits::LOG_TOTAL,
                        )));
                    }
                    return Some(Ok(frame));
                }
                Ok(None) => {}
            }
            let body = self.body.as_mut()?;
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.demux.push(&data);
                    }
                }
                Some(Err(e)) => return Some(Err(DockerError::classify(&e))),
                None => self.body = None,
            }
        }
    }
}
