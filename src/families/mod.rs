//! The metric families, defined once, and the walk that finds their series in a reading.
//! `/metrics` ([`crate::metrics`]), the OTLP export ([`crate::otlp`]) and the README's
//! metric list (checked by a test) all read this table, so they cannot drift apart.
//!
//! - [`family`]: what a row says: name, unit, type, where its series come from
//!   ([`Series`]) and so what one series describes ([`Scope`]), its own labels with the
//!   OTLP attribute each becomes ([`Label`]), the OTLP metric(s) it feeds ([`Otlp`]), help.
//! - `table`: the rows, one per family, in exposition order ([`FAMILIES`]).
//! - [`walk`]: one [`Reading`] of the snapshot and the live figures, and the walk over it,
//!   which hands each series of a family to a sink: the Prometheus renderer and the OTLP
//!   request builder are the two sinks.

pub mod family;
mod table;
pub mod walk;

pub use family::{Family, Kind, Label, Otlp, OtlpValue, PoolFigures, Scope, Series, Unit};
pub use table::FAMILIES;
pub use walk::{ContainerRow, Inputs, PoolSource, Reading};
pub(crate) use walk::{Sink, Subject, walk};

/// The groups `metrics.disable` takes, as cAdvisor's `-disable_metrics` names them.
pub const GROUPS: &[&str] = &[
    "cpu", "memory", "network", "diskIO", "disk", "process", "pressure",
];

/// The group a family belongs to, if any (cAdvisor's grouping; lower case).
pub fn group(f: &Family) -> Option<&'static str> {
    let b = f.base;
    let starts = |p: &str| b.starts_with(p);
    Some(match () {
        _ if starts("container_cpu_") || b == "dockstat_container_cpu_percent" => "cpu",
        _ if starts("container_memory_") || b == "dockstat_container_memory_percent" => "memory",
        _ if starts("container_network_") => "network",
        _ if b == "container_fs_reads" || b == "container_fs_writes" => "diskio",
        _ if starts("container_fs_") => "disk",
        _ if matches!(
            b,
            "container_processes"
                | "container_threads"
                | "container_threads_max"
                | "container_file_descriptors"
                | "container_sockets"
        ) =>
        {
            "process"
        }
        _ if starts("container_pressure_") => "pressure",
        _ => return None,
    })
}

/// Which families are exported: all but those `metrics.disable` names (a group or a
/// family, as exposed or without unit and `_total`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// By index in [`FAMILIES`]; empty when none is disabled.
    disabled: Vec<bool>,
}

impl Selection {
    /// From `metrics.disable`; the second part lists the names (with their index) that are
    /// neither a group nor a family.
    pub fn of(names: &[String]) -> (Selection, Vec<(usize, String)>) {
        let mut disabled = vec![false; FAMILIES.len()];
        let mut unknown = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let n = name.trim();
            let mut found = false;
            for (fi, f) in FAMILIES.iter().enumerate() {
                let hit = group(f).is_some_and(|g| g.eq_ignore_ascii_case(n))
                    || f.base == n
                    || f.exposed_name() == n;
                if hit {
                    disabled[fi] = true;
                    found = true;
                }
            }
            // A group whose families are not built in this version is still a group.
            if !found && !GROUPS.iter().any(|g| g.eq_ignore_ascii_case(n)) {
                unknown.push((i, name.clone()));
            }
        }
        let disabled = if disabled.iter().any(|d| *d) {
            disabled
        } else {
            Vec::new()
        };
        (Selection { disabled }, unknown)
    }

    /// Whether `f` (a row of [`FAMILIES`]) is exported.
    pub fn enabled(&self, f: &Family) -> bool {
        if self.disabled.is_empty() {
            return true;
        }
        FAMILIES
            .iter()
            .position(|x| std::ptr::eq(x, f))
            .is_none_or(|i| !self.disabled[i])
    }
}

/// What `promtool check metrics` says, and may say, of the families named as cAdvisor names
/// them against its lint rules (listed in the README's exceptions): one line each.
pub fn promtool_exceptions() -> Vec<String> {
    FAMILIES
        .iter()
        .filter(|f| f.no_total)
        .map(|f| {
            format!(
                "{} counter metrics should have \"_total\" suffix",
                f.exposed_name()
            )
        })
        .collect()
}

/// `promtool check metrics` output without the documented exceptions: what is left must
/// be empty.
pub fn promtool_unexpected(report: &str) -> String {
    let allowed = promtool_exceptions();
    report
        .lines()
        .filter(|l| !l.trim().is_empty() && !allowed.iter().any(|a| a == l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The README's metric list, generated from the table.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| family | type | per | extra labels | OTLP metric (unit) | help |\n|---|---|---|---|---|---|\n",
    );
    for f in FAMILIES {
        let otlp: Vec<String> = f
            .otlp
            .iter()
            .map(|o| {
                let attrs: Vec<String> = o
                    .fixed
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(f.labels.iter().map(|l| l.otlp.to_string()))
                    .collect();
                let attrs = if attrs.is_empty() {
                    String::new()
                } else {
                    format!(" {{{}}}", attrs.join(", "))
                };
                let value = match o.value {
                    OtlpValue::Same => String::new(),
                    OtlpValue::Scale(k) => format!(" ×{k}"),
                    OtlpValue::Uptime => " now − value, running only".to_string(),
                };
                format!("`{}` ({}){attrs}{value}", o.name, o.unit)
            })
            .collect();
        let labels: Vec<String> = f
            .labels
            .iter()
            .map(|l| match l.note {
                "" => l.name.to_string(),
                note => format!("{} ({note})", l.name),
            })
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            f.exposed_name(),
            f.kind.as_str(),
            f.scope().as_str(),
            labels.join(", "),
            otlp.join("<br>"),
            f.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;
    use crate::instruments::HistogramFigures;

    /// Checks what the walk hands over against the family's row.
    struct Check<'a> {
        family: &'a Family,
        seen: usize,
    }

    impl Check<'_> {
        fn values(&mut self, values: &[&str]) {
            let f = self.family;
            // A label with a note is on some series only; the others are on every one.
            let always = f.labels.iter().filter(|l| l.note.is_empty()).count();
            assert!(
                (always..=f.labels.len()).contains(&values.len()),
                "{}: {} values for the labels {:?}",
                f.base,
                values.len(),
                f.labels
            );
            self.seen += 1;
        }
    }

    impl Sink for Check<'_> {
        fn point(&mut self, _: Subject<'_>, values: &[&str], _: f64) -> fmt::Result {
            self.values(values);
            Ok(())
        }
        fn histogram(
            &mut self,
            _: Subject<'_>,
            values: &[&str],
            _: &HistogramFigures,
        ) -> fmt::Result {
            self.values(values);
            Ok(())
        }
    }

    /// The row is the one place a family's label names are declared: every series the walk
    /// finds carries a value for each of them, in that order.
    #[test]
    fn series_carry_the_labels_their_row_declares() {
        let reading = crate::fixtures::reading().expect("the golden fleet");
        let rows = reading.containers();
        for f in FAMILIES {
            let mut check = Check { family: f, seen: 0 };
            walk(f, &reading, &rows, &mut check).expect("walks");
            assert!(check.seen > 0, "{}: no series in the golden fleet", f.base);
        }
    }

    #[test]
    fn disable_takes_groups_and_family_names() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (sel, unknown) = Selection::of(&names(&[
            "process",
            "DiskIO",
            "container_memory_failcnt",
            "container_cpu_usage_seconds_total",
            "nope",
        ]));
        assert_eq!(unknown, [(4, "nope".to_string())]);
        let off: Vec<String> = FAMILIES
            .iter()
            .filter(|f| !sel.enabled(f))
            .map(|f| f.exposed_name())
            .collect();
        assert_eq!(
            off,
            [
                "container_cpu_usage_seconds_total",
                "container_memory_failcnt",
                "container_fs_reads_bytes_total",
                "container_fs_writes_bytes_total",
                "container_fs_reads_total",
                "container_fs_writes_total",
                "container_processes",
                "container_threads",
                "container_threads_max",
                "container_file_descriptors",
                "container_sockets",
            ]
        );
        for g in GROUPS {
            assert!(Selection::of(&names(&[g])).1.is_empty(), "{g}");
        }
        assert!(Selection::default().enabled(&FAMILIES[0]));
    }

    #[test]
    fn label_names_are_unique_within_a_family() {
        for f in FAMILIES {
            let mut names: Vec<&str> = f.labels.iter().map(|l| l.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), f.labels.len(), "{}", f.base);
        }
    }
}
