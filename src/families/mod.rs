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
    fn label_names_are_unique_within_a_family() {
        for f in FAMILIES {
            let mut names: Vec<&str> = f.labels.iter().map(|l| l.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), f.labels.len(), "{}", f.base);
        }
    }
}
