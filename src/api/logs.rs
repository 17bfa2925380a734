//! `/api/v1/clients/{client}/containers/{container}/logs`: a container's log lines
//! (`getContainerLogs`), whole as JSON or followed as NDJSON.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::containers::ContainerPath;
use super::error::ApiError;
use super::extract::{Path, Query};
use super::{ApiResult, Shared};
use crate::client::{ClientError, ContainerRef, LogLine, LogQuery};

/// Which log lines to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Last N lines (N ≥ 0) or `all` (default).
    #[param(pattern = r"^(all|[0-9]{1,18})$")]
    pub tail: Option<String>,
    /// Lines at or after this time: unix seconds or RFC 3339 (the pattern admits days up
    /// to the 28th, which every month has, and years from 1970, so no impossible date).
    #[param(
        pattern = r"^([0-9]{1,12}(\.[0-9]{1,9})?|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
    )]
    pub since: Option<String>,
    /// Lines before this time: unix seconds or RFC 3339.
    #[param(
        pattern = r"^([0-9]{1,12}(\.[0-9]{1,9})?|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
    )]
    pub until: Option<String>,
    /// Return Docker's timestamp of each line. Default false.
    #[serde(default)]
    pub timestamps: bool,
    /// Include stdout. Default: both streams when neither is set.
    pub stdout: Option<bool>,
    /// Include stderr.
    pub stderr: Option<bool>,
    /// Stream new lines as NDJSON until the caller goes away. Default false.
    #[serde(default)]
    pub follow: bool,
    /// Host name or id.
    pub host: Option<String>,
}

/// A container's log lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsResponse {
    /// Which container.
    pub container: ContainerRef,
    /// Lines in order, each with its stream.
    pub lines: Vec<LogLine>,
}

fn parse_when(field: &str, v: &str) -> ApiResult<i64> {
    let v = v.trim();
    if let Ok(n) = v.parse::<f64>() {
        if n.is_finite() && n >= 0.0 {
            return Ok(n as i64);
        }
        return Err(ApiError::invalid(field, "must be a non-negative unix time"));
    }
    rfc3339(v).map(|t| t as i64).ok_or_else(|| {
        ApiError::invalid(field, format!("`{v}` is neither unix seconds nor RFC 3339"))
    })
}

/// RFC 3339 with `Z` or a numeric offset (`+01:00`), as unix seconds.
fn rfc3339(v: &str) -> Option<f64> {
    let b = v.as_bytes();
    if b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':' {
        let (base, off) = v.split_at(v.len() - 6);
        let hours: f64 = off[1..3].parse().ok()?;
        let minutes: f64 = off[4..6].parse().ok()?;
        let sign = if off.starts_with('-') { -1.0 } else { 1.0 };
        let utc = crate::clock::parse_rfc3339(&format!("{base}Z"))?;
        return Some(utc - sign * (hours * 3600.0 + minutes * 60.0));
    }
    crate::clock::parse_rfc3339(v)
}

/// A container's logs, demultiplexed into lines with their stream (`getContainerLogs`).
/// Without `follow`: one JSON object. With `follow=true`: `application/x-ndjson`, one
/// line object per line, until the caller disconnects (at most `api.max_log_follows` at
/// once; beyond, 429).
#[utoipa::path(get, path = "/api/v1/clients/{client}/containers/{container}/logs", tag = "containers",
    params(ContainerPath, LogsParams),
    responses((status = 200, body = LogsResponse,
        description = "JSON, or NDJSON of LogLine objects with follow=true")))]
pub async fn container_logs(
    State(s): Shared,
    Path(at): Path<ContainerPath>,
    Query(q): Query<LogsParams>,
) -> ApiResult<Response> {
    let tail = match q.tail.as_deref().map(str::trim) {
        None | Some("all") => None,
        Some(t) => match t.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return Err(ApiError::invalid("tail", "must be a number ≥ 0 or `all`")),
        },
    };
    let since = q
        .since
        .as_deref()
        .map(|v| parse_when("since", v))
        .transpose()?;
    let until = q
        .until
        .as_deref()
        .map(|v| parse_when("until", v))
        .transpose()?;
    let query = LogQuery {
        tail,
        since,
        until,
        timestamps: q.timestamps,
        // Naming one stream false means the other one; naming neither means both.
        stdout: q.stdout.unwrap_or(q.stderr != Some(true)),
        stderr: q.stderr.unwrap_or(q.stdout != Some(true)),
        follow: q.follow,
    };
    if q.stdout == Some(false) && q.stderr == Some(false) {
        return Err(ApiError::invalid(
            "stdout",
            "at least one of stdout and stderr",
        ));
    }
    let permit = if q.follow {
        match s.follows.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "too many followed log streams open; close one or raise api.max_log_follows",
                ));
            }
        }
    } else {
        None
    };
    let (c, lines) = s
        .docker
        .container_logs(at.client, &at.container, q.host.as_deref(), query)
        .await?;
    if let Some(permit) = permit {
        let body = lines.map(move |l| {
            // The permit lives as long as the stream: dropping the body frees the slot.
            let _held = &permit;
            let mut out = match l {
                Ok(line) => serde_json::to_vec(&line),
                Err(e) => serde_json::to_vec(&serde_json::json!({
                    "error": {"code": "docker_error", "kind": e.kind.as_str(), "message": e.to_string()}
                })),
            }
            .unwrap_or_default();
            out.push(b'\n');
            Ok::<_, std::convert::Infallible>(out)
        });
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(Body::from_stream(body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()));
    }
    let mut out = Vec::new();
    let mut lines = Box::pin(lines);
    while let Some(l) = lines.next().await {
        match l {
            Ok(line) => out.push(line),
            Err(error) => {
                return Err(ApiError::from(ClientError::Docker {
                    host: c.host.clone(),
                    error,
                }));
            }
        }
    }
    Ok(axum::Json(LogsResponse {
        container: c,
        lines: out,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_with_offsets() {
        let z = rfc3339("2026-11-29T04:00:00Z").expect("Z");
        assert_eq!(rfc3339("2026-11-29T05:00:00+01:00"), Some(z));
        assert_eq!(rfc3339("2026-11-29T02:30:00-01:30"), Some(z));
        assert_eq!(rfc3339("2026-11-29T04:00:00.5Z"), Some(z + 0.5));
        assert_eq!(rfc3339("yesterday"), None);
    }
}
