//! How long an admin API request may take until its answer starts: `api.request_timeout`,
//! grown by what the handler will wait on the daemon (a stop's or restart's `t`). The
//! handler knows that wait once it has read its query; it says so through the request's
//! [`Deadline`], so the query is read once, by the handler.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The deadline of one request, put in its extensions by the guard. Why shared and
/// growing: the guard starts the clock before the handler has parsed what it will wait.
#[derive(Debug, Clone)]
pub struct Deadline {
    base: Duration,
    /// Seconds the handler said it waits on the daemon.
    waits: Arc<AtomicU64>,
}

impl Deadline {
    /// A deadline of `base`.
    pub fn new(base: Duration) -> Deadline {
        Deadline {
            base,
            waits: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The handler waits up to `secs` more on the daemon (Docker's grace period before it
    /// kills a container): the answer may take that much longer.
    pub fn waits(&self, secs: u32) {
        self.waits.fetch_max(u64::from(secs), Ordering::Relaxed);
    }

    fn limit(&self) -> Duration {
        self.base + Duration::from_secs(self.waits.load(Ordering::Relaxed))
    }

    /// Runs `answer` until its answer's head, or answers 503 once the deadline passed. A
    /// followed log stream then runs on: only the head is under the deadline.
    pub async fn run(&self, answer: impl Future<Output = Response>) -> Response {
        let started = tokio::time::Instant::now();
        let answer = std::pin::pin!(answer);
        let mut answer = answer;
        loop {
            let limit = self.limit();
            match tokio::time::timeout_at(started + limit, answer.as_mut()).await {
                Ok(r) => return r,
                // Grown meanwhile: wait for the rest.
                Err(_) if self.limit() > limit => continue,
                Err(_) => {
                    return ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "request_timeout",
                        format!("no answer within {limit:?}"),
                    )
                    .into_response();
                }
            }
        }
    }
}
