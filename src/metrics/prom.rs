//! The prometheus-client path of `/metrics`: host and exporter families (and, in the unit
//! tests, every family, as the reference the direct text path is held to) rendered through
//! prometheus-client's encoders.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelEncoder, LabelSetEncoder, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit as PromUnit;

use super::text::{EXACT_INT, push_escaped};
use crate::families::{Family, Kind, Label, Reading, Sink, Subject, Unit, walk};
use crate::instruments::{BUCKETS, HistogramFigures};
use crate::snapshot::{ContainerMeta, HostSnapshot, InfoLabel};

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
    extra: ExtraLabels<'a>,
    /// `dockstat_container_labels`' labels, named per container.
    info: &'a [InfoLabel],
}

impl EncodeLabelSet for ContainerLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        self.block.encode(enc.encode_label())?;
        self.extra.encode(enc)?;
        for l in self.info {
            (l.name.as_str(), l.value.as_str()).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

/// `host`, `client` and extra labels for host series.
struct HostLabels<'a> {
    host: &'a str,
    client: &'a str,
    extra: ExtraLabels<'a>,
}

impl EncodeLabelSet for HostLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ("host", self.host).encode(enc.encode_label())?;
        ("client", self.client).encode(enc.encode_label())?;
        self.extra.encode(enc)
    }
}

/// A family's own labels: the names its row declares, the values the walk found.
#[derive(Clone, Copy)]
struct ExtraLabels<'a> {
    names: &'static [Label],
    values: &'a [&'a str],
}

impl EncodeLabelSet for ExtraLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        for (l, v) in self.names.iter().zip(self.values) {
            (l.name, *v).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

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

/// Renders a slice of [`FAMILIES`](crate::families::FAMILIES) of one reading through
/// prometheus-client: what its registry calls a collector (not one of ours, which collect
/// hosts).
pub(super) struct PromFamilies {
    pub(super) reading: Arc<Reading>,
    pub(super) families: &'static [Family],
}

impl fmt::Debug for PromFamilies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromFamilies")
            .field("families", &self.families.len())
            .finish_non_exhaustive()
    }
}

impl PromCollector for PromFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let reading = &*self.reading;
        let rows = match self.families.iter().any(|f| f.scope().is_container()) {
            true => reading.containers(),
            false => Vec::new(),
        };
        let blocks: Vec<LabelBlock> = rows
            .iter()
            .map(|(h, c)| LabelBlock::new(h, &c.meta))
            .collect();
        for f in self.families.iter().filter(|f| reading.exports(f)) {
            let unit = f.unit.map(|u| match u {
                Unit::Seconds => PromUnit::Seconds,
                Unit::Bytes => PromUnit::Bytes,
            });
            let metric_type = match f.kind {
                // prometheus-client gives every counter `_total`; `unknown` keeps the name
                // (see `Family::no_total`).
                Kind::Counter if f.no_total => MetricType::Unknown,
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut me = encoder.encode_descriptor(f.base, f.help, unit.as_ref(), metric_type)?;
            let mut sink = PromSink {
                me: &mut me,
                kind: if f.no_total { Kind::Gauge } else { f.kind },
                names: f.labels,
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
    /// The family's own label names.
    names: &'static [Label],
    blocks: &'a [LabelBlock<'a>],
}

impl PromSink<'_, '_> {
    fn labelled(
        &mut self,
        subject: Subject<'_>,
        values: &[&str],
        write: impl FnOnce(MetricEncoder) -> fmt::Result,
    ) -> fmt::Result {
        let extra = ExtraLabels {
            names: self.names,
            values,
        };
        match subject {
            Subject::Container(i) => match self.blocks.get(i) {
                Some(block) => write(self.me.encode_family(&ContainerLabels {
                    block,
                    extra,
                    info: &[],
                })?),
                None => Ok(()),
            },
            Subject::Host { host, client } => write(self.me.encode_family(&HostLabels {
                host,
                client,
                extra,
            })?),
            Subject::Process => write(self.me.encode_family(&extra)?),
        }
    }
}

impl Sink for PromSink<'_, '_> {
    fn info(&mut self, at: Subject<'_>, labels: &[InfoLabel]) -> fmt::Result {
        let Subject::Container(i) = at else {
            return Ok(());
        };
        let Some(block) = self.blocks.get(i) else {
            return Ok(());
        };
        let extra = ExtraLabels {
            names: self.names,
            values: &[],
        };
        let kind = self.kind;
        let set = ContainerLabels {
            block,
            extra,
            info: labels,
        };
        let mut me = self.me.encode_family(&set)?;
        write_value(&mut me, kind, 1.0)
    }

    fn point(&mut self, at: Subject<'_>, values: &[&str], v: f64) -> fmt::Result {
        let kind = self.kind;
        if matches!(at, Subject::Process) && values.is_empty() {
            return write_value(self.me, kind, v);
        }
        self.labelled(at, values, |mut me| write_value(&mut me, kind, v))
    }

    fn histogram(&mut self, at: Subject<'_>, values: &[&str], h: &HistogramFigures) -> fmt::Result {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(h.counts.iter().copied())
            .collect();
        self.labelled(at, values, |mut me| {
            me.encode_histogram::<NoLabelSet>(h.sum, h.count(), &buckets, None)
        })
    }
}
