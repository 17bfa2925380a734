//! What the exporter keeps across restarts beside the catalog: each host's event cursor
//! and lifecycle counts, and the first stream message id of each process.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now};

impl Store {
    /// Claims the first stream message id of this process: above every id an earlier
    /// process can have handed out, so a subscriber resuming with an id from before a
    /// restart is told of the gap instead of waiting for the new ids to pass its old one.
    /// The clock (unix microseconds) is the usual answer; the stored claim plus 2^32 when
    /// the clock went backwards. Stays below 2^53, so JavaScript reads ids exactly.
    pub async fn claim_stream_id_base(&self) -> Result<u64, StoreError> {
        self.run(|conn| {
            let tx = conn.transaction()?;
            let last: Option<i64> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'stream_id_base'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let clock = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let base = match last {
                Some(last) => clock.max(last.saturating_add(1 << 32)),
                None => clock.max(1),
            };
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('stream_id_base', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [base],
            )?;
            tx.commit()?;
            Ok(u64::try_from(base).unwrap_or(1))
        })
        .await
    }

    /// A host's saved event cursor and lifecycle counts (JSON), if any.
    pub async fn event_state(&self, host_id: i64) -> Result<Option<String>, StoreError> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT state FROM event_state WHERE host_id = ?1",
                    [host_id],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    /// Saves a host's event cursor and lifecycle counts. A host removed meanwhile is ignored.
    pub async fn save_event_state(&self, host_id: i64, state: String) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO event_state (host_id, state, updated_at)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM hosts WHERE id = ?1)
                 ON CONFLICT (host_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                params![host_id, state, now()],
            )?;
            Ok(())
        })
        .await
    }
}
