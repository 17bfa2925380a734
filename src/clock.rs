//! Unix time as the exporter reports it: seconds since the epoch as `f64` (metric values,
//! API fields, stream messages), and Docker's RFC 3339 timestamps read into the same.
//!
//! Why it exists: the conversion was typed out wherever a time left the process; one helper
//! keeps them equal (a clock before 1970 reads as 0, never as an error).

use std::time::SystemTime;

/// Seconds from the epoch to `t`; 0 for a time before it.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Now, in unix seconds.
pub fn unix_now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// Unix seconds of an RFC 3339 timestamp as Docker writes them (`…Z`); None for anything
/// else and for Docker's "never" (`0001-01-01T00:00:00Z`, before the epoch).
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}
