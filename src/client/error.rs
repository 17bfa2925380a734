//! Why a library call failed ([`ClientError`]): the API maps each kind to its status.

use serde::Serialize;

use super::ContainerRef;
use crate::docker::DockerError;
use crate::store::{NotFound, StoreError};

/// Why a library call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Unknown client or host.
    #[error(transparent)]
    NotFound(NotFound),
    /// Name taken, or the same endpoint declared twice.
    #[error("{0}")]
    Conflict(String),
    /// Declared in the configuration file, so read-only at run time.
    #[error("{0}")]
    ReadOnly(String),
    /// Bad input; one entry per offending field.
    #[error("invalid input: {}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// No container matches the id, prefix or name.
    #[error("no container `{0}`")]
    ContainerNotFound(String),
    /// No host of the client has this name or id.
    #[error("no host `{0}` in this client")]
    HostNotFound(String),
    /// A name or prefix matches several containers.
    #[error("`{reference}` matches {} containers; give the full id or `host`", candidates.len())]
    Ambiguous {
        /// What was asked for.
        reference: String,
        /// Every match.
        candidates: Vec<ContainerRef>,
    },
    /// The container refuses actions (`dockstat.actions=deny`).
    #[error("{0}")]
    Denied(String),
    /// The Docker host failed.
    #[error("host `{host}`: {error}")]
    Docker {
        /// Host name.
        host: String,
        /// What Docker (or the connection) said.
        error: DockerError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
}

/// One bad input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Field path, e.g. `tls.ca`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(n) => ClientError::NotFound(n),
            StoreError::Conflict(m) => ClientError::Conflict(m),
            other => ClientError::Store(other),
        }
    }
}
