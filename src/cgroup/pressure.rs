//! cgroup v2 pressure stall information (PSI): `cpu.pressure`, `memory.pressure`,
//! `io.pressure`.

/// One resource's PSI totals, microseconds: `some` and `full` (None when the file has no
/// `full` line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PsiTotals {
    /// `some … total=`.
    pub some_us: u64,
    /// `full … total=`.
    pub full_us: Option<u64>,
}

/// `some avg10=… total=N` / `full …` lines of a PSI file; None when there is no `some` line.
pub fn parse_pressure(text: &str) -> Option<PsiTotals> {
    let total = |line: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix("total="))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        if line.starts_with("some ") {
            some = total(line);
        } else if line.starts_with("full ") {
            full = total(line);
        }
    }
    Some(PsiTotals {
        some_us: some?,
        full_us: full,
    })
}
