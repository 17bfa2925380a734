//! Shards: N replicas share one host set and each collects only the hosts that fall into
//! its shard, as kube-state-metrics' `--shard`/`--total-shards` do.
//!
//! A host belongs to the shard with the highest rendezvous score of its (client, host)
//! names: a stable 64-bit hash of the names and the shard index. Every replica computes the
//! same owner without talking to the others, and when the total changes from N to N+1 only
//! the hosts the new shard wins move (about 1/(N+1) of them); from N to N-1 only the hosts
//! of the shard that went away move. The hash is written out here (FNV-1a, then
//! splitmix64's finalizer), not taken from `std`, whose hashers may change between Rust
//! releases: replicas built by different compilers must agree.

/// This replica's shard: `index` of `total` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index, below `total`.
    pub index: usize,
    /// Number of shards, at least 1.
    pub total: usize,
}

impl Default for Shard {
    /// One shard that owns every host: no sharding.
    fn default() -> Self {
        Shard { index: 0, total: 1 }
    }
}

impl Shard {
    /// Whether this shard collects the host `host` of client `client`.
    pub fn owns(&self, client: &str, host: &str) -> bool {
        self.total <= 1 || owner(client, host, self.total) == self.index
    }
}

/// The shard (below `total`) that owns a host: the highest score, ties to the lower index.
pub fn owner(client: &str, host: &str, total: usize) -> usize {
    let key = key_hash(client, host);
    let mut best = (0, 0u64);
    for i in 0..total.max(1) {
        let s = score(key, i);
        if i == 0 || s > best.1 {
            best = (i, s);
        }
    }
    best.0
}

/// FNV-1a of the names, with a separator that cannot occur in UTF-8 so that `a`+`bc` and
/// `ab`+`c` differ.
fn key_hash(client: &str, host: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in client
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(host.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The rendezvous score of a key on shard `i`: splitmix64's finalizer over the key mixed
/// with the index, so that every bit of both reaches every bit of the score.
fn score(key: u64, i: usize) -> u64 {
    let mut z = key
        ^ (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The ordinal at the end of a host name, as a StatefulSet names its pods: `dockstat-2`
/// is 2. None without a `-` followed by digits only at the end.
pub fn ordinal(hostname: &str) -> Option<usize> {
    let (_, digits) = hostname.trim().rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// This machine's host name: the kernel's, else `$HOSTNAME`.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("client{}", i % 7), format!("host-{i}")))
            .collect()
    }

    #[test]
    fn every_host_has_exactly_one_owner() {
        for total in 1..=5 {
            for (c, h) in hosts(200) {
                let owners = (0..total)
                    .filter(|&index| Shard { index, total }.owns(&c, &h))
                    .count();
                assert_eq!(owners, 1, "{c}/{h} of {total}");
            }
        }
    }

    #[test]
    fn shards_are_balanced() {
        let all = hosts(3000);
        for total in [2, 3, 5] {
            let mut counts = vec![0usize; total];
            for (c, h) in &all {
                counts[owner(c, h, total)] += 1;
            }
            let fair = all.len() / total;
            for n in &counts {
                assert!(
                    n.abs_diff(fair) * 10 < fair,
                    "{total} shards: {counts:?} (fair {fair})"
                );
            }
        }
    }

    #[test]
    fn changing_the_total_moves_about_one_shard_worth() {
        let all = hosts(3000);
        for (from, to) in [(3, 2), (2, 3), (3, 4), (4, 3)] {
            let moved = all
                .iter()
                .filter(|(c, h)| owner(c, h, from) != owner(c, h, to))
                .count();
            let expected = all.len() / from.max(to);
            assert!(
                moved.abs_diff(expected) * 5 < expected,
                "{from} -> {to}: {moved} moved, expected about {expected}"
            );
            // Rendezvous: a host moves only to the new shard, or away from the one gone.
            for (c, h) in &all {
                let (a, b) = (owner(c, h, from), owner(c, h, to));
                assert!(a == b || a >= to || b >= from, "{c}/{h}: {a} -> {b}");
            }
        }
    }

    #[test]
    fn the_owner_is_stable_across_builds() {
        // Pinned: replicas built at different times must agree on every host's owner.
        let owners: Vec<usize> = (0..12).map(|i| owner("sim", &format!("h{i}"), 3)).collect();
        assert_eq!(owners, PINNED);
    }

    const PINNED: [usize; 12] = [1, 1, 1, 2, 0, 2, 1, 2, 0, 2, 0, 2];

    #[test]
    fn names_are_kept_apart() {
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
    }

    #[test]
    fn ordinals_of_statefulset_pods() {
        assert_eq!(ordinal("dockstat-2"), Some(2));
        assert_eq!(ordinal("dockstat-exporter-10\n"), Some(10));
        assert_eq!(ordinal("dockstat"), None);
        assert_eq!(ordinal("dockstat-"), None);
        assert_eq!(ordinal("dockstat-2a"), None);
        assert_eq!(ordinal("web-01"), Some(1));
    }
}
