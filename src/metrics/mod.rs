//! `/metrics`: renders the current snapshot and the live self-instrumentation through a
//! prometheus-client [`Collector`], in the Prometheus text format or OpenMetrics.
//!
//! Rendering only reads: it loads the snapshot (one atomic load) and never calls Docker.

mod families;

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelEncoder, LabelSetEncoder, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit as PromUnit};

pub use families::{
    FAMILIES, Family, Kind, Otlp, OtlpValue, PoolFigures, Source, Unit, markdown_table,
};

use crate::instruments::{BUCKETS, ExportOutcome, HistogramFigures, Instruments};
use crate::snapshot::{
    ContainerMeta, ContainerSnapshot, ContainerState, HostSnapshot, Snapshot, SnapshotStore,
};

/// Exposition format, chosen from the scrape's `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the client asks for it, else the classic text format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Something that reports pool figures at scrape time.
pub trait PoolSource: Send + Sync + fmt::Debug + 'static {
    /// Current figures.
    fn figures(&self) -> PoolFigures;
}

/// What `/metrics` renders: the snapshot plus the live self-instrumentation.
///
/// Each scrape takes one [`Reading`] and renders the families in table order: the
/// container-scoped ones (all but a few dozen of the series) directly as text (`TextSink`),
/// the host and exporter families through prometheus-client. The unit test
/// `fast_path_renders_like_prometheus_client` pins the output byte for byte against
/// rendering every family through prometheus-client (`render_with_client`).
#[derive(Debug)]
pub struct Exposition {
    snapshots: Arc<SnapshotStore>,
    instruments: Arc<Instruments>,
    pool: Arc<dyn PoolSource>,
}

impl Exposition {
    /// An exposition of the given sources; each scrape reads them once.
    pub fn new(
        snapshots: Arc<SnapshotStore>,
        instruments: Arc<Instruments>,
        pool: Arc<dyn PoolSource>,
    ) -> Exposition {
        Exposition {
            snapshots,
            instruments,
            pool,
        }
    }

    /// Renders everything into `out`.
    pub fn render(&self, format: Format, out: &mut impl fmt::Write) -> fmt::Result {
        let reading = Arc::new(Reading::take(
            &self.snapshots,
            &self.instruments,
            &*self.pool,
        ));
        render_reading(&reading, format, out)
    }

    /// Renders everything in chunks of about [`CHUNK`] bytes, each handed to `send` as soon
    /// as it is full: what `/metrics` does, so the answer starts at once and is never held
    /// whole. `send` returning false (the scraper left) stops the rendering with an error.
    pub fn render_chunked(&self, format: Format, send: impl FnMut(String) -> bool) -> fmt::Result {
        let mut out = Chunked {
            buf: String::with_capacity(CHUNK + 1024),
            send,
        };
        self.render(format, &mut out)?;
        out.flush()
    }
}

/// Size of the pieces `/metrics` is sent in: large enough that handing one over (a wake-up,
/// a `writev`) is rare, small enough that a scrape holds little. Each is freed once written,
/// so the allocator hands the same memory to the next one: an exposition of 10,000 containers
/// (~60 MB) built as one string spent two thirds of its render time in page faults.
pub const CHUNK: usize = 256 * 1024;

/// A [`fmt::Write`] that passes its text on in [`CHUNK`]-sized pieces.
struct Chunked<F> {
    buf: String,
    send: F,
}

impl<F: FnMut(String) -> bool> Chunked<F> {
    fn flush(&mut self) -> fmt::Result {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK + 1024));
        if (self.send)(full) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

impl<F: FnMut(String) -> bool> fmt::Write for Chunked<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }
}

/// Whether a family is rendered by [`TextSink`]: container-scoped families, whose series
/// make up nearly all of a large exposition. The rest goes through prometheus-client.
fn renders_directly(f: &Family) -> bool {
    f.kind != Kind::Histogram && container_scoped(f)
}

/// Whether a family's series are per container.
fn container_scoped(f: &Family) -> bool {
    matches!(
        f.source,
        Source::Stat(_)
            | Source::Meta(_)
            | Source::Network(_)
            | Source::Blkio(_)
            | Source::ContainerInfo
            | Source::ContainerState
            | Source::ContainerHealth
            | Source::ContainerExits
            | Source::ContainerOom
            | Source::ContainerLastExit
    )
}

/// Renders one reading, every family in [`FAMILIES`] order: runs of container families
/// directly, runs of the others through prometheus-client, then OpenMetrics' `# EOF`.
pub fn render_reading(
    reading: &Arc<Reading>,
    format: Format,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    let rows = reading.containers();
    let blocks = LabelBlocks::new(&rows);
    let mut rest = FAMILIES;
    while let Some(first) = rest.first() {
        let direct = renders_directly(first);
        let run = rest
            .iter()
            .take_while(|f| renders_directly(f) == direct)
            .count();
        let (families, tail) = rest.split_at(run);
        if direct {
            let mut name = String::with_capacity(64);
            for f in families {
                write_descriptor(out, format, f, &mut name)?;
                let mut sink = TextSink {
                    out: &mut *out,
                    name: &name,
                    kind: f.kind,
                    format,
                    blocks: &blocks,
                };
                walk(f, reading, &rows, &mut sink)?;
            }
        } else {
            encode_with_client(reading, families, format, false, out)?;
        }
        rest = tail;
    }
    match format {
        Format::Text => Ok(()),
        Format::OpenMetrics => prometheus_client::encoding::text::encode_eof(out),
    }
}

/// Renders `families` through a prometheus-client registry holding one [`ClientCollector`];
/// `eof` ends an OpenMetrics exposition.
fn encode_with_client(
    reading: &Arc<Reading>,
    families: &'static [Family],
    format: Format,
    eof: bool,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ClientCollector {
        reading: reading.clone(),
        families,
    }));
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(out, &registry),
        Format::OpenMetrics if eof => prometheus_client::encoding::text::encode(out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode_registry(out, &registry),
    }
}

/// Renders one reading with every family through prometheus-client: what `/metrics` did
/// before the direct path, kept as the reference the direct path is tested against.
#[cfg(test)]
fn render_with_client(
    reading: &Arc<Reading>,
    format: Format,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    encode_with_client(reading, FAMILIES, format, true, out)
}

/// Writes a family's `# HELP`, `# TYPE` (and for OpenMetrics `# UNIT`) lines exactly as
/// prometheus-client's encoders do, and leaves the series name in `name`.
fn write_descriptor(
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
    let type_name = match f.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    match format {
        Format::Text => {
            // The text format names the family as its series: counters with `_total`.
            if f.kind == Kind::Counter {
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
            if f.kind == Kind::Counter {
                name.push_str("_total");
            }
            Ok(())
        }
    }
}

/// Every container's base labels of one scrape, escaped and joined (`host="…",…`), in one
/// buffer: one allocation for the scrape instead of one per container.
struct LabelBlocks {
    text: String,
    /// End of each container's block in `text`, in [`Reading::containers`] order.
    ends: Vec<usize>,
}

impl LabelBlocks {
    fn new(rows: &[ContainerRow]) -> Self {
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
struct TextSink<'a, W> {
    out: &'a mut W,
    /// Series name (with `_total` for counters).
    name: &'a str,
    kind: Kind,
    format: Format,
    blocks: &'a LabelBlocks,
}

impl<W: fmt::Write> TextSink<'_, W> {
    /// `,k="v"` for each label, or without the first comma when `first`.
    fn extra(&mut self, extra: &[(&'static str, &str)], mut first: bool) -> fmt::Result {
        for (k, v) in extra {
            if !first {
                self.out.write_str(",")?;
            }
            first = false;
            self.out.write_str(k)?;
            self.out.write_str("=\"")?;
            write_escaped(self.out, v)?;
            self.out.write_str("\"")?;
        }
        Ok(())
    }

    /// ` value\n`, formatted as [`write_value`] has prometheus-client do it.
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
    fn point(
        &mut self,
        subject: Subject<'_>,
        extra: &[(&'static str, &str)],
        v: f64,
    ) -> fmt::Result {
        match subject {
            Subject::Container(i) => {
                let Some(block) = self.blocks.get(i) else {
                    return Ok(());
                };
                self.out.write_str(self.name)?;
                self.out.write_str("{")?;
                self.out.write_str(block)?;
                self.extra(extra, false)?;
                self.out.write_str("}")?;
            }
            Subject::Host { host, client } => {
                self.out.write_str(self.name)?;
                self.out.write_str("{host=\"")?;
                write_escaped(self.out, host)?;
                self.out.write_str("\",client=\"")?;
                write_escaped(self.out, client)?;
                self.out.write_str("\"")?;
                self.extra(extra, false)?;
                self.out.write_str("}")?;
            }
            Subject::Process => {
                self.out.write_str(self.name)?;
                if !extra.is_empty() {
                    self.out.write_str("{")?;
                    self.extra(extra, true)?;
                    self.out.write_str("}")?;
                }
            }
        }
        self.value(v)
    }

    fn histogram(
        &mut self,
        _subject: Subject<'_>,
        _extra: &[(&'static str, &str)],
        _h: &HistogramFigures,
    ) -> fmt::Result {
        // Histogram families go through prometheus-client (see `renders_directly`).
        Err(fmt::Error)
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

/// A container's base labels (`host`, `client`, `id`, `name`, `image`, allowlisted Docker
/// labels), escaped and joined once per scrape.
///
/// Why: a running container renders ~35 series, and encoding its base labels pair by pair
/// through prometheus-client's label encoders was over half of the render time. The block is
/// handed to the encoder as one label whose key part is everything up to the last key name
/// and whose value is the last label's (unescaped) value, so prometheus-client still writes
/// the separators, the quotes and the escaping of that last value. The unit test
/// `label_block_renders_like_pairwise_labels` pins this against the pair-by-pair encoding.
struct LabelBlock<'a> {
    /// `k1="v1",…,kN` with every value escaped.
    head: String,
    /// The value of `kN`, escaped by the encoder.
    last: &'a str,
}

impl<'a> LabelBlock<'a> {
    fn new(host: &'a HostSnapshot, meta: &'a ContainerMeta) -> Self {
        let mut pairs: Vec<(&str, &'a str)> = Vec::with_capacity(5 + meta.labels.len());
        pairs.extend([
            ("host", &*host.name),
            ("client", &*host.client),
            ("id", meta.id.as_str()),
            ("name", meta.name.as_str()),
            ("image", meta.image.as_str()),
        ]);
        pairs.extend(meta.labels.iter().map(|(k, v)| (&**k, v.as_str())));
        let (last_key, last) = pairs.pop().unwrap_or(("image", ""));
        let mut head = String::with_capacity(256);
        for (k, v) in pairs {
            head.push_str(k);
            head.push_str("=\"");
            push_escaped(&mut head, v);
            head.push_str("\",");
        }
        head.push_str(last_key);
        LabelBlock { head, last }
    }
}

/// [`write_escaped`] into a `String`.
fn push_escaped(out: &mut String, v: &str) {
    // Writing to a String cannot fail.
    let _ = write_escaped(out, v);
}

impl EncodeLabel for &LabelBlock<'_> {
    fn encode(&self, mut enc: LabelEncoder) -> fmt::Result {
        let mut key = enc.encode_label_key()?;
        key.write_str(&self.head)?;
        let mut value = key.encode_label_value()?;
        value.write_str(self.last)?;
        value.finish()
    }
}

/// Base labels of container series plus the family's own.
struct ContainerLabels<'a> {
    block: &'a LabelBlock<'a>,
    extra: &'a [(&'static str, &'a str)],
}

impl EncodeLabelSet for ContainerLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        self.block.encode(enc.encode_label())?;
        ExtraLabels(self.extra).encode(enc)
    }
}

/// `host`, `client` and extra labels for host series.
struct HostLabels<'a> {
    host: &'a str,
    client: &'a str,
    extra: &'a [(&'static str, &'a str)],
}

impl EncodeLabelSet for HostLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ("host", self.host).encode(enc.encode_label())?;
        ("client", self.client).encode(enc.encode_label())?;
        ExtraLabels(self.extra).encode(enc)
    }
}

/// A family's own labels.
struct ExtraLabels<'a>(&'a [(&'static str, &'a str)]);

impl EncodeLabelSet for ExtraLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        for (k, v) in self.0 {
            (*k, *v).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

/// Largest magnitude written as an integer: every whole f64 below 2^53 is exact.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

fn write_value(enc: &mut MetricEncoder, kind: Kind, v: f64) -> fmt::Result {
    // Most values are whole numbers (bytes, packets, counts, states): written as integers
    // they are shorter and far cheaper to format than floats.
    let whole = v.fract() == 0.0 && v.abs() < EXACT_INT;
    match kind {
        Kind::Counter if whole && v >= 0.0 => {
            enc.encode_counter::<NoLabelSet, u64, u64>(&(v as u64), None)
        }
        Kind::Counter => enc.encode_counter::<NoLabelSet, f64, f64>(&v, None),
        _ if whole => enc.encode_gauge(&(v as i64)),
        _ => enc.encode_gauge(&v),
    }
}

/// Renders a slice of [`FAMILIES`] of one reading through prometheus-client.
struct ClientCollector {
    reading: Arc<Reading>,
    families: &'static [Family],
}

impl fmt::Debug for ClientCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCollector")
            .field("families", &self.families.len())
            .finish_non_exhaustive()
    }
}

impl Collector for ClientCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let reading = &*self.reading;
        let rows = match self.families.iter().any(container_scoped) {
            true => reading.containers(),
            false => Vec::new(),
        };
        let blocks: Vec<LabelBlock> = rows
            .iter()
            .map(|(h, c)| LabelBlock::new(h, &c.meta))
            .collect();
        for f in self.families {
            let unit = f.unit.map(|u| match u {
                Unit::Seconds => PromUnit::Seconds,
                Unit::Bytes => PromUnit::Bytes,
            });
            let metric_type = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut me = encoder.encode_descriptor(f.base, f.help, unit.as_ref(), metric_type)?;
            let mut sink = PromSink {
                me: &mut me,
                kind: f.kind,
                blocks: &blocks,
            };
            walk(f, reading, &rows, &mut sink)?;
        }
        Ok(())
    }
}

/// Writes one family's series through prometheus-client.
struct PromSink<'a, 'e> {
    me: &'a mut MetricEncoder<'e>,
    kind: Kind,
    blocks: &'a [LabelBlock<'a>],
}

impl PromSink<'_, '_> {
    fn labelled(
        &mut self,
        subject: Subject<'_>,
        extra: &[(&'static str, &str)],
        write: impl FnOnce(MetricEncoder) -> fmt::Result,
    ) -> fmt::Result {
        match subject {
            Subject::Container(i) => match self.blocks.get(i) {
                Some(block) => write(self.me.encode_family(&ContainerLabels { block, extra })?),
                None => Ok(()),
            },
            Subject::Host { host, client } => write(self.me.encode_family(&HostLabels {
                host,
                client,
                extra,
            })?),
            Subject::Process => write(self.me.encode_family(&ExtraLabels(extra))?),
        }
    }
}

impl Sink for PromSink<'_, '_> {
    fn point(
        &mut self,
        subject: Subject<'_>,
        extra: &[(&'static str, &str)],
        v: f64,
    ) -> fmt::Result {
        let kind = self.kind;
        if matches!(subject, Subject::Process) && extra.is_empty() {
            return write_value(self.me, kind, v);
        }
        self.labelled(subject, extra, |mut me| write_value(&mut me, kind, v))
    }

    fn histogram(
        &mut self,
        subject: Subject<'_>,
        extra: &[(&'static str, &str)],
        h: &HistogramFigures,
    ) -> fmt::Result {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(h.counts.iter().copied())
            .collect();
        self.labelled(subject, extra, |mut me| {
            me.encode_histogram::<NoLabelSet>(h.sum, h.count(), &buckets, None)
        })
    }
}

/// What one series describes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// A container: its index in [`Reading::containers`].
    Container(usize),
    /// A Docker host.
    Host {
        /// `host` label.
        host: &'a str,
        /// `client` label.
        client: &'a str,
    },
    /// The exporter itself.
    Process,
}

impl<'a> Subject<'a> {
    /// A host's series.
    fn of(h: &'a HostSnapshot) -> Self {
        Subject::Host {
            host: &h.name,
            client: &h.client,
        }
    }
}

/// Receives one family's series as [`walk`] finds them: the Prometheus renderer and the
/// OTLP export are the two sinks, so both carry the same series.
pub(crate) trait Sink {
    /// One value.
    fn point(
        &mut self,
        subject: Subject<'_>,
        extra: &[(&'static str, &str)],
        v: f64,
    ) -> fmt::Result;
    /// One histogram.
    fn histogram(
        &mut self,
        subject: Subject<'_>,
        extra: &[(&'static str, &str)],
        h: &HistogramFigures,
    ) -> fmt::Result;
}

/// Everything one scrape or export reads, gathered once: the snapshot and the live figures.
pub struct Reading {
    /// The snapshot.
    pub snap: Arc<Snapshot>,
    /// When it was read.
    pub now: SystemTime,
    pub(crate) pool: PoolFigures,
    pub(crate) process: Option<crate::process::ProcessStats>,
    pub(crate) instruments: Vec<Arc<crate::instruments::HostInstruments>>,
    pub(crate) otlp: [(ExportOutcome, u64); 3],
    pub(crate) otlp_last_error: Option<&'static str>,
    pub(crate) otlp_last_success: Option<SystemTime>,
    /// `dockstat_build_info`'s `version`: this build's, fixed in the golden files.
    pub(crate) version: &'static str,
}

/// One container of a reading and its host.
pub type ContainerRow<'a> = (&'a HostSnapshot, &'a ContainerSnapshot);

impl Reading {
    /// Reads the snapshot and the live figures.
    pub fn take(
        snapshots: &SnapshotStore,
        instruments: &Instruments,
        pool: &dyn PoolSource,
    ) -> Reading {
        Reading {
            snap: snapshots.load(),
            now: SystemTime::now(),
            pool: pool.figures(),
            process: crate::process::read(),
            instruments: instruments.all(),
            otlp: instruments.otlp.outcomes(),
            otlp_last_error: instruments.otlp.last_error().map(|(kind, _, _)| kind),
            otlp_last_success: instruments.otlp.last_success(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// Every container of every host, in snapshot order; [`Subject::Container`] indexes it.
    pub fn containers(&self) -> Vec<ContainerRow<'_>> {
        self.snap
            .hosts
            .iter()
            .flat_map(|h| h.containers.iter().map(move |c| (&**h, c)))
            .collect()
    }
}

/// Finds every series of `f` in the reading and hands it to `sink`.
pub(crate) fn walk(
    f: &Family,
    reading: &Reading,
    rows: &[ContainerRow],
    sink: &mut impl Sink,
) -> fmt::Result {
    let snap = &reading.snap;
    let containers = || {
        rows.iter()
            .enumerate()
            .map(|(i, (_, c))| (Subject::Container(i), *c))
    };
    match f.source {
        Source::Stat(get) => {
            for (at, c) in containers() {
                if let Some(v) = c.stats.as_deref().and_then(get) {
                    sink.point(at, &[], v)?;
                }
            }
        }
        Source::Meta(get) => {
            for (at, c) in containers() {
                if let Some(v) = get(&c.meta) {
                    sink.point(at, &[], v)?;
                }
            }
        }
        Source::Network(get) => {
            for (at, c) in containers() {
                for (iface, n) in c.stats.iter().flat_map(|s| s.networks.iter()) {
                    sink.point(at, &[("interface", iface)], get(n) as f64)?;
                }
            }
        }
        Source::Blkio(get) => {
            for (at, c) in containers() {
                for (dev, b) in c.stats.iter().flat_map(|s| s.blkio.iter()) {
                    sink.point(at, &[("device", dev)], get(b) as f64)?;
                }
            }
        }
        Source::ContainerInfo => {
            for (at, c) in containers() {
                let m = &c.meta;
                let extra = [
                    ("image_id", m.image_id.as_str()),
                    (
                        "compose_project",
                        m.compose_project.as_deref().unwrap_or(""),
                    ),
                    (
                        "compose_service",
                        m.compose_service.as_deref().unwrap_or(""),
                    ),
                ];
                sink.point(at, &extra, 1.0)?;
            }
        }
        Source::ContainerState => {
            for (at, c) in containers() {
                sink.point(at, &[("state", c.meta.state.as_str())], 1.0)?;
            }
        }
        Source::ContainerExits => {
            for (at, c) in containers() {
                for (code, n) in c.lifecycle.iter().flat_map(|l| l.exits.iter()) {
                    let code = code.to_string();
                    sink.point(at, &[("exit_code", &code)], *n as f64)?;
                }
            }
        }
        Source::ContainerOom => {
            for (at, c) in containers() {
                let n = c.lifecycle.as_ref().map_or(0, |l| l.oom_events);
                sink.point(at, &[], n as f64)?;
            }
        }
        Source::ContainerLastExit => {
            for (at, c) in containers() {
                let code = if c.meta.state == ContainerState::Running {
                    None
                } else {
                    c.meta.exit_code
                }
                .or_else(|| c.lifecycle.as_ref().and_then(|l| l.last_exit_code));
                if let Some(code) = code {
                    sink.point(at, &[], code as f64)?;
                }
            }
        }
        Source::HostEvents => {
            for h in &snap.hosts {
                for ((typ, action), n) in h.events.iter() {
                    let extra = [("type", typ.as_str()), ("action", action.as_str())];
                    sink.point(Subject::of(h), &extra, *n as f64)?;
                }
            }
        }
        Source::ContainerHealth => {
            for (at, c) in containers() {
                sink.point(at, &[("status", c.meta.health.as_str())], 1.0)?;
            }
        }
        Source::Machine(get) => {
            for h in &snap.hosts {
                if let Some(v) = h.info.as_deref().and_then(get) {
                    sink.point(Subject::of(h), &[], v as f64)?;
                }
            }
        }
        Source::HostMonitoring => {
            for h in &snap.hosts {
                sink.point(Subject::of(h), &[], f64::from(u8::from(h.monitored)))?;
            }
        }
        Source::HostUp
        | Source::CollectionDuration
        | Source::CollectionSuccess
        | Source::SnapshotAge => {
            // A host that is not collected has no such figures: only its monitoring 0.
            for h in snap.hosts.iter().filter(|h| h.monitored) {
                let v = match f.source {
                    Source::HostUp => f64::from(u8::from(h.up)),
                    Source::CollectionDuration => h.collection_duration.as_secs_f64(),
                    Source::CollectionSuccess => f64::from(u8::from(h.collection_success)),
                    _ => reading
                        .now
                        .duration_since(h.built_at)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                };
                sink.point(Subject::of(h), &[], v)?;
            }
        }
        Source::HostInfo => {
            for h in &snap.hosts {
                let Some(i) = h.info.as_deref() else { continue };
                let extra = [
                    ("server_version", i.server_version.as_str()),
                    ("api_version", i.api_version.as_str()),
                    ("os", i.operating_system.as_str()),
                    ("os_type", i.os_type.as_str()),
                    ("arch", i.architecture.as_str()),
                    ("kernel", i.kernel_version.as_str()),
                    ("cgroup_version", i.cgroup_version.as_str()),
                    ("cgroup_driver", i.cgroup_driver.as_str()),
                ];
                sink.point(Subject::of(h), &extra, 1.0)?;
            }
        }
        Source::StatsSources => {
            for h in snap.hosts.iter().filter(|h| h.up) {
                let s = h.stats_sources;
                sink.point(Subject::of(h), &[("source", "cgroup")], s.cgroup as f64)?;
                sink.point(Subject::of(h), &[("source", "api")], s.api as f64)?;
            }
        }
        Source::HostContainers => {
            for h in snap.hosts.iter().filter(|h| h.up) {
                for state in ContainerState::ALL {
                    let n = h.container_counts.get(&state).copied().unwrap_or(0);
                    sink.point(Subject::of(h), &[("state", state.as_str())], n as f64)?;
                }
            }
        }
        Source::RequestDuration => {
            for inst in &reading.instruments {
                let at = Subject::Host {
                    host: &inst.host,
                    client: &inst.client,
                };
                for (call, hist) in inst.durations() {
                    sink.histogram(at, &[("endpoint", call.as_str())], &hist.figures())?;
                }
            }
        }
        Source::DockerErrors => {
            for inst in &reading.instruments {
                let at = Subject::Host {
                    host: &inst.host,
                    client: &inst.client,
                };
                for ((kind_label, status), n) in inst.errors() {
                    let status = status.map(|s| s.to_string());
                    match &status {
                        Some(s) => {
                            sink.point(at, &[("kind", kind_label), ("status", s)], n as f64)?
                        }
                        None => sink.point(at, &[("kind", kind_label)], n as f64)?,
                    }
                }
            }
        }
        Source::Pool(get) => sink.point(Subject::Process, &[], get(&reading.pool))?,
        Source::BuildInfo => sink.point(Subject::Process, &[("version", reading.version)], 1.0)?,
        Source::Process(get) => {
            if let Some(p) = &reading.process {
                sink.point(Subject::Process, &[], get(p))?;
            }
        }
        Source::OtlpExports => {
            for (outcome, n) in reading.otlp {
                sink.point(Subject::Process, &[("outcome", outcome.as_str())], n as f64)?;
            }
        }
        Source::OtlpLastError => {
            if let Some(kind) = reading.otlp_last_error {
                sink.point(Subject::Process, &[("kind", kind)], 1.0)?;
            }
        }
        Source::OtlpLastSuccess => {
            if let Some(t) = reading.otlp_last_success {
                sink.point(Subject::Process, &[], crate::clock::unix_seconds(t))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
