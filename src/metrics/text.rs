//! The direct path of `/metrics`: container families written as text the way
//! prometheus-client would write them, with each container's base labels escaped and joined
//! once per scrape ([`LabelBlocks`]). The unit test `fast_path_renders_like_prometheus_client`
//! holds it byte for byte to the prometheus-client path.

use std::fmt;

use super::Format;
use crate::families::{ContainerRow, Family, Kind, Label, Sink, Subject};
use crate::instruments::HistogramFigures;
use crate::snapshot::{HostSnapshot, InfoLabel};

/// Largest magnitude written as an integer: every whole f64 below 2^53 is exact.
pub(super) const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Writes a family's `# HELP`, `# TYPE` (and for OpenMetrics `# UNIT`) lines exactly as
/// prometheus-client's encoders do, and leaves the series name in `name`.
pub(super) fn write_descriptor(
    out: &mut impl fmt::Write,
    format: Format,
    f: &Family,
    name: &mut String,
) -> fmt::Result {
    name.clear();
    name.push_str(f.base);
    if let Some(u) = f.unit {
        name.push('_');
        name.push_str(u.as_str());
    }
    let type_name = match format {
        // OpenMetrics counters must end in `_total`: a cAdvisor name without it is `unknown`.
        Format::OpenMetrics if f.no_total => "unknown",
        _ => f.kind.as_str(),
    };
    match format {
        Format::Text => {
            // The text format names the family as its series: counters with `_total`.
            if f.kind == Kind::Counter && !f.no_total {
                name.push_str("_total");
            }
            out.write_str("# HELP ")?;
            out.write_str(name)?;
            out.write_str(" ")?;
            // Text format HELP escapes backslash and newline (not quotes).
            let mut rest = f.help;
            while let Some(i) = rest.find(['\\', '\n']) {
                out.write_str(&rest[..i])?;
                out.write_str(if rest.as_bytes()[i] == b'\\' {
                    "\\\\"
                } else {
                    "\\n"
                })?;
                rest = &rest[i + 1..];
            }
            out.write_str(rest)?;
            out.write_str("\n# TYPE ")?;
            out.write_str(name)?;
            out.write_str(" ")?;
            out.write_str(type_name)?;
            out.write_str("\n")
        }
        Format::OpenMetrics => {
            out.write_str("# HELP ")?;
            out.write_str(name)?;
            out.write_str(" ")?;
            out.write_str(f.help)?;
            out.write_str("\n# TYPE ")?;
            out.write_str(name)?;
            out.write_str(" ")?;
            out.write_str(type_name)?;
            out.write_str("\n")?;
            if let Some(u) = f.unit {
                out.write_str("# UNIT ")?;
                out.write_str(name)?;
                out.write_str(" ")?;
                out.write_str(u.as_str())?;
                out.write_str("\n")?;
            }
            // OpenMetrics names the family without `_total` but its counter series with it.
            if f.kind == Kind::Counter && !f.no_total {
                name.push_str("_total");
            }
            Ok(())
        }
    }
}

/// Every container's base labels of one scrape, escaped and joined (`host="…",…`), in one
/// buffer: one allocation for the scrape instead of one per container.
pub(super) struct LabelBlocks {
    text: String,
    /// End of each container's block in `text`, in [`Reading::containers`] order.
    ends: Vec<usize>,
}

impl LabelBlocks {
    pub(super) fn new(rows: &[ContainerRow]) -> Self {
        let mut text = String::with_capacity(rows.len() * 256);
        let mut ends = Vec::with_capacity(rows.len());
        // `host="…",client="…"`, escaped once per host: rows come host by host.
        let mut host_labels = String::new();
        let mut last_host: Option<&HostSnapshot> = None;
        for (h, c) in rows {
            if !last_host.is_some_and(|l| std::ptr::eq(l, *h)) {
                host_labels.clear();
                host_labels.push_str("host=\"");
                push_escaped(&mut host_labels, &h.name);
                host_labels.push_str("\",client=\"");
                push_escaped(&mut host_labels, &h.client);
                host_labels.push('"');
                last_host = Some(h);
            }
            text.push_str(&host_labels);
            let m = &c.meta;
            for (k, v) in [
                ("id", m.id.as_str()),
                ("name", m.name.as_str()),
                ("image", m.image.as_str()),
            ]
            .into_iter()
            .chain(m.labels.iter().map(|(k, v)| (&**k, v.as_str())))
            {
                text.push(',');
                text.push_str(k);
                text.push_str("=\"");
                push_escaped(&mut text, v);
                text.push('"');
            }
            ends.push(text.len());
        }
        LabelBlocks { text, ends }
    }

    /// Container `i`'s block.
    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        self.text.get(start..end)
    }
}

/// Writes one family's series as text, the way prometheus-client would: the series name,
/// the pre-rendered label block, the family's labels, the value.
pub(super) struct TextSink<'a, W> {
    pub(super) out: &'a mut W,
    /// Series name (with `_total` for counters).
    pub(super) name: &'a str,
    pub(super) kind: Kind,
    /// The family's own label names.
    pub(super) names: &'static [Label],
    pub(super) format: Format,
    pub(super) blocks: &'a LabelBlocks,
}

impl<W: fmt::Write> TextSink<'_, W> {
    /// `,k="v"` for each label, or without the first comma when `first`.
    fn extra(&mut self, values: &[&str], mut first: bool) -> fmt::Result {
        for (l, v) in self.names.iter().zip(values) {
            if !first {
                self.out.write_str(",")?;
            }
            first = false;
            self.out.write_str(l.name)?;
            self.out.write_str("=\"")?;
            write_escaped(self.out, v)?;
            self.out.write_str("\"")?;
        }
        Ok(())
    }

    /// ` value\n`, formatted as `prom::write_value` has prometheus-client do it.
    fn value(&mut self, v: f64) -> fmt::Result {
        let whole = v.fract() == 0.0 && v.abs() < EXACT_INT;
        let mut ints = itoa::Buffer::new();
        let mut floats = dtoa::Buffer::new();
        let text = match self.kind {
            Kind::Counter if whole && v >= 0.0 => ints.format(v as u64),
            Kind::Counter => format_float(&mut floats, self.format, v),
            _ if whole => ints.format(v as i64),
            _ => format_float(&mut floats, self.format, v),
        };
        self.out.write_str(" ")?;
        self.out.write_str(text)?;
        self.out.write_str("\n")
    }
}

/// A float value as prometheus-client writes it: shortest round-trip digits (dtoa), and for
/// non-finite values `NaN`/`+Inf`/`-Inf` in the text format, dtoa's `NaN`/`inf`/`-inf` in
/// OpenMetrics.
fn format_float(buf: &mut dtoa::Buffer, format: Format, v: f64) -> &str {
    match format {
        Format::OpenMetrics => buf.format(v),
        Format::Text if v.is_finite() => buf.format_finite(v),
        Format::Text if v.is_nan() => "NaN",
        Format::Text if v > 0.0 => "+Inf",
        Format::Text => "-Inf",
    }
}

impl<W: fmt::Write> Sink for TextSink<'_, W> {
    fn point(&mut self, at: Subject<'_>, values: &[&str], v: f64) -> fmt::Result {
        match at {
            Subject::Container(i) => {
                let Some(block) = self.blocks.get(i) else {
                    return Ok(());
                };
                self.out.write_str(self.name)?;
                self.out.write_str("{")?;
                self.out.write_str(block)?;
                self.extra(values, false)?;
                self.out.write_str("}")?;
            }
            Subject::Host { host, client } => {
                self.out.write_str(self.name)?;
                self.out.write_str("{host=\"")?;
                write_escaped(self.out, host)?;
                self.out.write_str("\",client=\"")?;
                write_escaped(self.out, client)?;
                self.out.write_str("\"")?;
                self.extra(values, false)?;
                self.out.write_str("}")?;
            }
            Subject::Process => {
                self.out.write_str(self.name)?;
                if !values.is_empty() {
                    self.out.write_str("{")?;
                    self.extra(values, true)?;
                    self.out.write_str("}")?;
                }
            }
        }
        self.value(v)
    }

    fn histogram(&mut self, _: Subject<'_>, _: &[&str], _: &HistogramFigures) -> fmt::Result {
        // Histogram families go through prometheus-client (see `renders_directly`).
        Err(fmt::Error)
    }

    fn info(&mut self, at: Subject<'_>, labels: &[InfoLabel]) -> fmt::Result {
        let Subject::Container(i) = at else {
            return Ok(());
        };
        let Some(block) = self.blocks.get(i) else {
            return Ok(());
        };
        self.out.write_str(self.name)?;
        self.out.write_str("{")?;
        self.out.write_str(block)?;
        for l in labels {
            self.out.write_str(",")?;
            self.out.write_str(&l.name)?;
            self.out.write_str("=\"")?;
            write_escaped(self.out, &l.value)?;
            self.out.write_str("\"")?;
        }
        self.out.write_str("}")?;
        self.value(1.0)
    }
}

/// Writes a label value escaped as the text formats require (`\\`, `\"`, `\n`).
fn write_escaped(out: &mut impl fmt::Write, v: &str) -> fmt::Result {
    match v.bytes().position(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        None => out.write_str(v),
        Some(first) => write_escaped_from(out, v, first),
    }
}

/// [`write_escaped`] of a value whose first byte to escape is at `first`.
#[cold]
#[inline(never)]
fn write_escaped_from(out: &mut impl fmt::Write, v: &str, first: usize) -> fmt::Result {
    let mut done = 0;
    for (i, b) in v.bytes().enumerate().skip(first) {
        let escaped = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.write_str(&v[done..i])?;
        out.write_str(escaped)?;
        done = i + 1;
    }
    out.write_str(&v[done..])
}

/// [`write_escaped`] into a `String`.
pub(super) fn push_escaped(out: &mut String, v: &str) {
    // Writing to a String cannot fail.
    let _ = write_escaped(out, v);
}
