//! How much of each Docker answer we read, in one table.
//!
//! A daemon (or anything listening where a daemon should be) could answer with a body that
//! never ends; read without limit, one such answer takes the whole process, and with it the
//! monitoring of every other host. Each answer is therefore read up to the bound of its
//! endpoint, and an answer beyond it fails that one call as [`ErrorKind::TooLarge`]
//! (`too_large`). The bounds are far above what a real daemon sends, so only a broken or
//! hostile one reaches them; a `Content-Length` above the bound fails before reading.
//!
//! [`ErrorKind::TooLarge`]: super::ErrorKind::TooLarge

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// `GET /_ping`: the two bytes `OK`.
pub const PING: usize = 64 * KIB;

/// `GET /version`: ~1 KB (engine, containerd, runc and init versions).
pub const VERSION: usize = 64 * KIB;

/// `GET /info`: 5-20 KB; grows with registry mirrors, plugins, warnings, swarm state and
/// generic resources, still far below 1 MiB.
pub const INFO: usize = 4 * MIB;

/// `GET /containers/{id}/json`: 5-20 KB; grows with environment, labels, mounts and
/// networks. 4 MiB holds even a container with thousands of environment entries.
pub const INSPECT: usize = 4 * MIB;

/// `GET /containers/json?all=true`: 1-3 KB per container (labels, mounts, ports,
/// networks). 64 MiB holds ~20,000 containers, several times what one daemon runs. The
/// list is decoded one container at a time as it arrives, so its text is never held whole.
pub const CONTAINER_LIST: usize = 64 * MIB;

/// One container of that list: 1-3 KB; its labels are what can grow.
pub const CONTAINER_LIST_ENTRY: usize = 4 * MIB;

/// One `GET /containers/{id}/stats?stream=false`: 2-5 KB; grows with networks and block
/// devices, a few per container.
pub const STATS: usize = MIB;

/// `GET /system/df`: every container (~1-2 KB with its names, labels, mounts and sizes),
/// image (~0.5-1 KB), volume (~0.5 KB) and build cache record (~0.3 KB) of the host. 64 MiB
/// holds a host of 20,000 containers, 10,000 images, 10,000 volumes and 20,000 build cache
/// records. The answer is read whole before it is decoded, so this bound is also what a
/// daemon answering without end can make the process hold: 256 MiB took an exporter past
/// the 150 MB that `tests/faults.rs` allows it under an endless answer.
pub const SYSTEM_DF: usize = 64 * MIB;

/// The body of an action's answer (start, stop, restart, remove): normally empty (204).
pub const ACTION: usize = 64 * KIB;

/// The body of an error answer: Docker's `{"message": "…"}` is one sentence.
pub const ERROR_BODY: usize = 64 * KIB;

/// One line of `GET /events`: one event, ~0.5-2 KB with its actor's labels.
pub const EVENT_LINE: usize = MIB;

/// One frame of `GET /containers/{id}/logs`: log drivers cut messages at 16 KiB, and the
/// frame header counts 32 bits. The same bound caps a log line kept while waiting for its
/// newline (a TTY container's output is not framed).
pub const LOG_FRAME: usize = MIB;

/// All frames of one log read without `follow`: the admin API answers such a read as one
/// JSON document held in memory, so it is bounded as a whole. Larger logs are read with
/// `tail`, `since`/`until`, or `follow` (streamed, bounded per frame only).
pub const LOG_TOTAL: usize = 64 * MIB;

/// `1 MiB`, `64 KiB`: a bound as written in messages.
pub fn display(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}
