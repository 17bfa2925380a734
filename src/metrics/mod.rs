//! `/metrics`: the current snapshot and the live self-instrumentation in the Prometheus
//! text format or OpenMetrics, family by family from the table in [`crate::families`].
//!
//! Two paths write the same text: `text` writes container families directly (nearly all
//! of a large exposition), `prom` writes the host and exporter families through
//! prometheus-client's encoders. Rendering only reads: it loads the snapshot (one atomic
//! load) and never calls Docker.

mod prom;
mod text;

use std::fmt;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::families::{FAMILIES, Family, Inputs, Kind, PoolSource, Reading, Scope, walk};
use crate::instruments::Instruments;
use crate::snapshot::SnapshotStore;

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

/// What `/metrics` renders: the snapshot plus the live self-instrumentation.
///
/// Each scrape takes one [`Reading`] and renders the families in table order: the
/// container-scoped ones (all but a few dozen of the series) directly as text (`text`),
/// the host and exporter families through prometheus-client. The unit test
/// `fast_path_renders_like_prometheus_client` pins the output byte for byte against
/// rendering every family through prometheus-client (`render_with_client`).
#[derive(Debug)]
pub struct Exposition {
    inputs: Inputs,
}

impl Exposition {
    /// An exposition of the given sources; each scrape reads them once.
    pub fn new(
        snapshots: Arc<SnapshotStore>,
        instruments: Arc<Instruments>,
        pool: Arc<dyn PoolSource>,
    ) -> Exposition {
        Exposition::of(Inputs {
            snapshots,
            instruments,
            pool,
            selection: Arc::default(),
        })
    }

    /// An exposition of `inputs`.
    pub fn of(inputs: Inputs) -> Exposition {
        Exposition { inputs }
    }

    /// Renders everything into `out`.
    pub fn render(&self, format: Format, out: &mut impl fmt::Write) -> fmt::Result {
        render(&Arc::new(self.inputs.read()), format, out)
    }

    /// Renders everything in chunks of about [`CHUNK`] bytes, each handed to `send` as soon
    /// as it is full: what `/metrics` does, so the answer starts at once and is never held
    /// whole. `send` returning false (the scraper left) stops the rendering with an error.
    pub fn render_chunked(&self, format: Format, send: impl FnMut(String) -> bool) -> fmt::Result {
        let mut out = Chunked::new(send);
        self.render(format, &mut out)?;
        out.flush()
    }

    /// The exporter's own families only (`/metrics?target=exporter`): process, pool,
    /// shard, build and OTLP figures, for a scrape job of their own when the hosts are
    /// scraped one target each.
    pub fn render_exporter_chunked(
        &self,
        format: Format,
        send: impl FnMut(String) -> bool,
    ) -> fmt::Result {
        let mut out = Chunked::new(send);
        render_view(
            &Arc::new(self.inputs.read()),
            format,
            View::Exporter,
            &mut out,
        )?;
        out.flush()
    }

    /// One host's reading for `/metrics?target=<client>/<host>`, None when this replica
    /// has no such host. Render it with [`render_host_chunked`].
    pub fn read_host(&self, client: &str, host: &str) -> Option<Reading> {
        self.inputs.read_host(client, host)
    }
}

/// Renders one host's reading ([`Exposition::read_host`]) in chunks: its container and host
/// families only, never the exporter's own (they stay on the plain `/metrics`, so that
/// scraping every host does not repeat them once per host).
pub fn render_host_chunked(
    reading: &Arc<Reading>,
    format: Format,
    send: impl FnMut(String) -> bool,
) -> fmt::Result {
    let mut out = Chunked::new(send);
    render_view(reading, format, View::Host, &mut out)?;
    out.flush()
}

/// Which families a rendering holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Every family: the plain `/metrics`.
    All,
    /// All but the exporter's own: a per-host target.
    Host,
    /// The exporter's own only.
    Exporter,
}

impl View {
    fn shows(self, f: &Family) -> bool {
        match self {
            View::All => true,
            View::Host => f.scope() != Scope::Exporter,
            View::Exporter => f.scope() == Scope::Exporter,
        }
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
    fn new(send: F) -> Self {
        Chunked {
            buf: String::with_capacity(CHUNK + 1024),
            send,
        }
    }

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

/// Whether a family is rendered by [`text::TextSink`]: container-scoped families, whose
/// series make up nearly all of a large exposition. The rest goes through prometheus-client.
fn renders_directly(f: &Family) -> bool {
    f.kind != Kind::Histogram && f.scope().is_container()
}

/// Renders one reading, every family in [`FAMILIES`] order: runs of container families
/// directly, runs of the others through prometheus-client, then OpenMetrics' `# EOF`.
pub fn render(reading: &Arc<Reading>, format: Format, out: &mut impl fmt::Write) -> fmt::Result {
    render_view(reading, format, View::All, out)
}

/// [`render`] of the families `view` shows.
fn render_view(
    reading: &Arc<Reading>,
    format: Format,
    view: View,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    let rows = reading.containers();
    let blocks = text::LabelBlocks::new(&rows);
    let mut rest = FAMILIES;
    while let Some(first) = rest.first() {
        let direct = renders_directly(first);
        let shown = view.shows(first);
        let run = rest
            .iter()
            .take_while(|f| renders_directly(f) == direct && view.shows(f) == shown)
            .count();
        let (families, tail) = rest.split_at(run);
        if !shown {
            // Left out of this view.
        } else if direct {
            let mut name = String::with_capacity(64);
            for f in families.iter().filter(|f| reading.exports(f)) {
                text::write_descriptor(out, format, f, &mut name)?;
                let mut sink = text::TextSink {
                    out: &mut *out,
                    name: &name,
                    kind: f.kind,
                    names: f.labels,
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

/// Renders `families` through a prometheus-client registry holding one [`prom::PromFamilies`];
/// `eof` ends an OpenMetrics exposition.
fn encode_with_client(
    reading: &Arc<Reading>,
    families: &'static [Family],
    format: Format,
    eof: bool,
    out: &mut impl fmt::Write,
) -> fmt::Result {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(prom::PromFamilies {
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

#[cfg(test)]
mod tests;
