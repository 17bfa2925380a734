//! The audit log: one row per mutating admin API call, written once its answer is known.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

// One record is written and read back (the API serves it): `id` is the database's, given
// when the record is written (0 until then). The doc comment below is the API's schema
// description.
/// A stored audit entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    // Ignored when writing.
    /// Increasing id; page with `before`.
    pub id: i64,
    /// Unix seconds.
    pub at: f64,
    /// Token name.
    pub token: String,
    /// Token role.
    pub role: String,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Path as called.
    pub path: String,
    /// What was acted on.
    pub target: Option<String>,
    /// HTTP status answered.
    pub status: u16,
    /// `ok`, `failed` or `denied`.
    pub outcome: String,
    /// The error, when it failed.
    pub error: Option<String>,
}

impl Store {
    /// Appends an audit record (its `id` is the database's); returns the id given.
    pub async fn insert_audit(&self, e: AuditRecord) -> Result<i64, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO audit (at, token, role, method, route, path, target, status, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.at, e.token, e.role, e.method, e.route, e.path, e.target, e.status,
                    e.outcome, e.error
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    /// Audit entries, newest first: at most `limit`, with id below `before` when given.
    pub async fn audit(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |conn| {
            let mut st = conn.prepare(
                "SELECT id, at, token, role, method, route, path, target, status, outcome, error
                 FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st
                .query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
                    Ok(AuditRecord {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        token: r.get(2)?,
                        role: r.get(3)?,
                        method: r.get(4)?,
                        route: r.get(5)?,
                        path: r.get(6)?,
                        target: r.get(7)?,
                        status: r.get(8)?,
                        outcome: r.get(9)?,
                        error: r.get(10)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
