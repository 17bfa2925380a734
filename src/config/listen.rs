//! Ranges of the listener limits: `listen.max_connections`, `listen.header_timeout` and
//! `listen.idle_timeout` (their defaults are in `ListenConfig`'s `Default`).

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{ListenConfig, PathSeg, Problem};

/// `listen.max_connections`: one connection at least; 65536 is beyond any open-file
/// limit a service is given.
pub const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=65536;

/// `listen.header_timeout`: a head takes one round trip; five minutes is already a
/// slowloris client's dream.
pub const HEADER_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(5 * 60);

/// `listen.idle_timeout`: up to an hour, past any scrape interval.
pub const IDLE_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60 * 60);

/// Adds a problem for each listener limit out of its range.
pub(super) fn validate(listen: &ListenConfig, problems: &mut Vec<Problem>) {
    let at = |key: &str| vec![PathSeg::from("listen"), PathSeg::from(key)];
    if !MAX_CONNECTIONS.contains(&listen.max_connections) {
        problems.push(Problem::new(
            at("max_connections"),
            format!(
                "must be between {} and {}",
                MAX_CONNECTIONS.start(),
                MAX_CONNECTIONS.end()
            ),
        ));
    }
    for (key, value, range) in [
        ("header_timeout", listen.header_timeout, HEADER_TIMEOUT),
        ("idle_timeout", listen.idle_timeout, IDLE_TIMEOUT),
    ] {
        if !range.contains(&value) {
            problems.push(Problem::new(
                at(key),
                format!(
                    "must be between {} and {}",
                    humantime::format_duration(*range.start()),
                    humantime::format_duration(*range.end())
                ),
            ));
        }
    }
}
