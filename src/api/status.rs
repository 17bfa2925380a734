//! `/api/v1/status`, `/api/v1/pool` and `/api/v1/audit`: pool and worker figures
//! (`getStatus`, `getPoolStats`) and the audit log of mutating calls.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::Query;
use super::{Read, Shared};
use crate::pool::PoolStatus;
use crate::store::AuditRecord;

/// Pool and worker figures (`getStatus`).
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = PoolStatus)))]
pub async fn status(State(s): Shared) -> axum::Json<PoolStatus> {
    axum::Json(s.docker.status())
}

/// Pool figures (`getPoolStats`; the same figures as `/status`).
#[utoipa::path(get, path = "/api/v1/pool", tag = "status",
    responses((status = 200, body = PoolStatus)))]
pub async fn pool_stats(State(s): Shared) -> axum::Json<PoolStatus> {
    axum::Json(s.docker.pool_stats())
}

/// Paging of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries per page, 1–1000. Default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only entries with an id below this (the previous page's `nextBefore`).
    pub before: Option<i64>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Entries.
    pub entries: Vec<AuditRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// The audit log of mutating calls, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "status",
    params(AuditQuery),
    responses((status = 200, body = AuditPage)))]
pub async fn audit(State(s): Shared, Query(q): Query<AuditQuery>) -> Read<AuditPage> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let entries = s.docker.audit_log(limit, q.before).await?;
    let next_before = if entries.len() == limit as usize {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        entries,
        next_before,
    }))
}
