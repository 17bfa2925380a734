//! OTLP push: every `interval`, the current snapshot as one `ExportMetricsServiceRequest`
//! to an OpenTelemetry receiver over gRPC or HTTP.
//!
//! Why the request is built here rather than by the OpenTelemetry SDK's observable
//! instruments: the SDK gives all series of an instrument one start time and keeps its
//! metric data sealed, so a container restart (its cgroup counters start again from 0)
//! would make a cumulative, monotonic sum go backwards under the same start time. Built
//! from the snapshot with the official protobuf types (`opentelemetry-proto`), each
//! container's counters start at the container's start, and the data point time is when
//! the sample was taken.
//!
//! An export bigger than `max_points_per_request` goes out as several requests, one after
//! the other, since receivers cap message sizes.
//!
//! Failure handling: one request at a time (memory stays flat whatever the receiver does);
//! a retryable failure is retried with a fresh request after 1 s, 2 s, 4 s … capped at the
//! interval; every attempt is counted in `dockstat_otlp_exports_total{outcome}`. Exports run
//! on their own task and only read the snapshot, so they never hold up collection or a
//! scrape. On shutdown one final export gets at most `timeout` (and never more than 5 s).

mod build;
mod transport;

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use build::RequestBuilder;
pub use transport::{Delivered, ExportError, Transport};

use crate::config::ValidOtlp;
use crate::families::Inputs;
use crate::instruments::ExportOutcome;

/// First retry delay after a retryable failure; doubles up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest the final export on shutdown may take.
const FINAL_EXPORT_MAX: Duration = Duration::from_secs(5);

/// Starts the export loop; it ends after a final export once `stop` is cancelled.
pub fn spawn(
    cfg: ValidOtlp,
    labels: &[(String, String)],
    inputs: Inputs,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let builder = RequestBuilder::new(&cfg.resource, labels);
    tokio::spawn(run(cfg, builder, inputs, stop))
}

async fn run(cfg: ValidOtlp, builder: RequestBuilder, inputs: Inputs, stop: CancellationToken) {
    let mut transport = match Transport::new(&cfg) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, endpoint = %cfg.endpoint, "OTLP export cannot start");
            return;
        }
    };
    tracing::info!(endpoint = %cfg.endpoint, protocol = ?cfg.protocol, interval = ?cfg.interval,
        gzip = cfg.gzip, "OTLP export on");
    let stats = &inputs.instruments.otlp;
    let mut next_tick = Instant::now() + cfg.interval;
    let mut wake = next_tick;
    let mut failures: u32 = 0;
    let mut last_kind: Option<&'static str> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let request = builder.request(&inputs.read());
        let result = tokio::select! {
            r = export(&mut transport, request, &cfg) => r,
            // Shutting down: the final export below replaces this one.
            _ = stop.cancelled() => break,
        };
        let now = Instant::now();
        while next_tick <= now {
            next_tick += cfg.interval;
        }
        match result {
            Ok(d) => {
                record_delivery(stats, &d);
                if let Some(kind) = last_kind.take() {
                    tracing::info!(
                        after_failures = failures,
                        last_error = kind,
                        "OTLP export recovered"
                    );
                }
                failures = 0;
                wake = next_tick;
            }
            Err(e) => {
                stats.failed(e.kind, e.message.clone());
                if last_kind != Some(e.kind) {
                    tracing::warn!(error = %e, endpoint = %cfg.endpoint, "OTLP export failed");
                } else {
                    tracing::debug!(error = %e, "OTLP export failed again");
                }
                last_kind = Some(e.kind);
                // Backoff grows over consecutive retryable failures only.
                failures = if e.retryable {
                    failures.saturating_add(1)
                } else {
                    0
                };
                wake = if e.retryable {
                    let backoff = FIRST_RETRY
                        .saturating_mul(1 << (failures - 1).min(16))
                        .max(e.retry_after.unwrap_or_default())
                        .min(cfg.interval);
                    now + backoff
                } else {
                    next_tick
                };
            }
        }
    }
    // Final export: what was collected since the last one.
    let limit = cfg.timeout.min(FINAL_EXPORT_MAX);
    let request = builder.request(&inputs.read());
    let result = match tokio::time::timeout(limit, export(&mut transport, request, &cfg)).await {
        Ok(r) => r,
        Err(_) => Err(ExportError::timeout(limit)),
    };
    match result {
        Ok(d) => {
            record_delivery(stats, &d);
            tracing::info!("OTLP final export delivered");
        }
        Err(e) => {
            stats.failed(e.kind, e.message.clone());
            tracing::warn!(error = %e, "OTLP final export failed");
        }
    }
}

/// Sends one export as requests of at most `max_points` points, one after the other; the
/// first failure ends it (the next export carries the same cumulative values anyway).
async fn export(
    transport: &mut Transport,
    request: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    cfg: &ValidOtlp,
) -> Result<Delivered, ExportError> {
    let mut total = Delivered::default();
    for part in build::split(request, cfg.max_points) {
        let d = transport.send(part, cfg.timeout).await?;
        total.rejected += d.rejected;
        if !d.message.is_empty() {
            total.message = d.message;
        }
    }
    Ok(total)
}

fn record_delivery(stats: &crate::instruments::OtlpStats, d: &Delivered) {
    if d.rejected > 0 {
        tracing::warn!(rejected = d.rejected, message = %d.message,
            "OTLP receiver rejected some data points");
        stats.delivered(ExportOutcome::Partial);
    } else {
        stats.delivered(ExportOutcome::Success);
    }
}
