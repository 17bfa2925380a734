//! What others may read of a host's collector while it runs ([`HostStatus`]): the library
//! uses its connection for container actions, the API and `/status` show its events stream
//! and last error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::docker::{Connection, DockerError};
use crate::lock::MutexExt;

/// Live state of a host's collector that others may read: its connection (for the
/// library's container operations) and whether its events stream is open.
#[derive(Debug, Default)]
pub struct HostStatus {
    conn: Mutex<Option<Arc<Connection>>>,
    events_open: AtomicBool,
    last_error: Mutex<Option<DockerError>>,
}

impl HostStatus {
    /// The current connection, when the host is up.
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.conn.locked().clone()
    }

    /// Whether the events stream is open.
    pub fn events_open(&self) -> bool {
        self.events_open.load(Ordering::Relaxed)
    }

    /// The last failure, if the host is down or the last cycle failed.
    pub fn last_error(&self) -> Option<DockerError> {
        self.last_error.locked().clone()
    }

    pub(super) fn set_connection(&self, c: Option<Arc<Connection>>) {
        *self.conn.locked() = c;
    }

    pub(super) fn set_error(&self, e: Option<DockerError>) {
        *self.last_error.locked() = e;
    }
}

/// Marks the events stream open for as long as it lives.
pub(super) struct EventsOpen(Arc<HostStatus>);

impl EventsOpen {
    pub(super) fn new(s: &Arc<HostStatus>) -> Self {
        s.events_open.store(true, Ordering::Relaxed);
        EventsOpen(s.clone())
    }
}

impl Drop for EventsOpen {
    fn drop(&mut self) {
        self.0.events_open.store(false, Ordering::Relaxed);
    }
}
