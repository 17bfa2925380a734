//! The process's open-file limit (RLIMIT_NOFILE) and the connection caps derived from it.
//!
//! systemd and many container runtimes start services with a soft limit of 1024 while the
//! hard limit is far higher. As the Go runtime does for node_exporter and friends, the soft
//! limit is raised to the hard one at start. Whatever it ends at, each listener's cap is
//! kept low enough that both listeners full still leave room for everything else, so a
//! flood of idle connections meets the cap (and eviction) before `accept` meets EMFILE.

use std::io;

use super::ServeError;

/// Open files always kept for what is not a listener's connection: the runtime, SQLite,
/// logs, OTLP, and Docker connections (a few per host, pooled).
pub const RESERVE_MIN: u64 = 128;

/// No listener is capped below this, however low the limit.
pub const CAP_MIN: usize = 16;

/// The open-file limit after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now in force (`u64::MAX` when unlimited).
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
}

fn limit(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        v
    }
}

/// Raises the soft open-file limit to the hard limit; returns the limit in force. A
/// refused raise keeps the old soft limit (and says so in `raised_from: None`).
pub fn raise_open_file_limit() -> Result<OpenFiles, ServeError> {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) } != 0 {
        return Err(ServeError::OpenFileLimit(io::Error::last_os_error()));
    }
    let (soft, hard) = (limit(now.rlim_cur), limit(now.rlim_max));
    // An unlimited hard limit cannot be the soft one for open files (Linux caps it at
    // fs.nr_open): nothing to raise to then.
    if soft >= hard || now.rlim_max == libc::RLIM_INFINITY {
        return Ok(OpenFiles {
            soft,
            hard,
            raised_from: None,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: now.rlim_max,
        rlim_max: now.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        tracing::warn!(soft, hard, error = %io::Error::last_os_error(),
            "cannot raise the open-file limit to the hard limit");
        return Ok(OpenFiles {
            soft,
            hard,
            raised_from: None,
        });
    }
    Ok(OpenFiles {
        soft: hard,
        hard,
        raised_from: Some(soft),
    })
}

/// A listener's connection cap under `open_files`: the configured one, lowered so that
/// both listeners full leave a quarter of the limit (at least [`RESERVE_MIN`]) for
/// everything else; never below [`CAP_MIN`].
pub fn connection_cap(configured: usize, open_files: u64) -> usize {
    let reserve = (open_files / 4).max(RESERVE_MIN);
    let share = open_files.saturating_sub(reserve) / 2;
    let share = usize::try_from(share).unwrap_or(usize::MAX).max(CAP_MIN);
    configured.min(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_room_for_everything_else() {
        // systemd's default: both listeners full use 768 of 1024.
        assert_eq!(connection_cap(512, 1024), 384);
        assert_eq!(connection_cap(100, 1024), 100);
        assert_eq!(connection_cap(512, 4096), 512);
        assert_eq!(connection_cap(65536, 1 << 20), 65536);
        assert_eq!(connection_cap(512, u64::MAX), 512);
        assert_eq!(connection_cap(512, 64), CAP_MIN);
        assert_eq!(connection_cap(4, 64), 4);
        for n in [160u64, 256, 1024, 4096, 65536] {
            let cap = connection_cap(usize::MAX, n) as u64;
            assert!(2 * cap + n / 4 <= n, "{n}: {cap}");
        }
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let l = raise_open_file_limit().expect("getrlimit");
        assert!(l.soft == l.hard || l.hard == u64::MAX, "{l:?}");
        // Idempotent: a second call finds nothing to raise.
        let again = raise_open_file_limit().expect("getrlimit");
        assert_eq!((again.soft, again.raised_from), (l.soft, None));
    }
}
