//! `/metrics` render time at 100, 1,000 and 10,000 containers: rendered in 256 KiB chunks as
//! the HTTP handler does, and beside it (same run, alternating) into one string of the whole.
//!
//! The snapshot is a synthetic fleet built from one recorded real stats answer
//! (tests/fixtures/stats-cgroup-v1-oneshot.json) plus one block device per container, so
//! each container renders the same ~40 series a real running container does.
//!
//! A second table times one OTLP export's work on the same fleets: building the request
//! from the snapshot and encoding it to protobuf (what goes on the wire before gzip).
//!
//! Run: `cargo bench --bench render` (prints Markdown tables; BENCHMARKS.md quotes them).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dockstat_exporter::families::{PoolFigures, PoolSource, Reading};
use dockstat_exporter::fixtures::{publish_fleet, recorded_sample};
use dockstat_exporter::instruments::Instruments;
use dockstat_exporter::metrics::{Exposition, Format};
use dockstat_exporter::otlp::RequestBuilder;
use dockstat_exporter::snapshot::SnapshotStore;
use prost::Message as _;

/// Counts bytes allocated, to report what one render allocates.
struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Debug)]
struct FixedPool;

impl PoolSource for FixedPool {
    fn figures(&self) -> PoolFigures {
        PoolFigures {
            workers: 20,
            hosts: 20,
            active_streams: 20,
            inflight: 0,
            tasks: 100,
            shard: Default::default(),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let sample = recorded_sample().expect("recorded stats fixture");

    println!(
        "| containers | hosts | series | body | format | chunked median | p90 | p99 | max | whole-string median | p99 | chunked : whole | allocated per chunked scrape | runs |"
    );
    println!("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (hosts, per_host, runs) in [(10, 10, 400), (10, 100, 100), (20, 500, 30)] {
        let store = Arc::new(SnapshotStore::default());
        publish_fleet(&store, hosts, per_host, &sample);
        let exposition =
            Exposition::new(store, Arc::new(Instruments::default()), Arc::new(FixedPool));
        for format in [Format::Text, Format::OpenMetrics] {
            let mut last = String::new();
            let (mut chunked, mut whole) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
            let mut allocated = 0;
            // Alternating the two ways, so that both see the same machine.
            for i in 0..runs + 3 {
                // What /metrics does: 256 KiB chunks, each dropped once "sent".
                let mut bytes = 0;
                let before = ALLOCATED.load(Ordering::Relaxed);
                let t = Instant::now();
                exposition
                    .render_chunked(format, |chunk| {
                        bytes += chunk.len();
                        true
                    })
                    .expect("render");
                let took = t.elapsed();
                allocated = ALLOCATED.load(Ordering::Relaxed) - before;
                // The way before: one string of the whole, sized from the previous one.
                let mut out = String::with_capacity(last.len() + 4096);
                let t = Instant::now();
                exposition.render(format, &mut out).expect("render");
                let took_whole = t.elapsed();
                // The same but for the exporter's own figures (RSS, CPU), read anew each time.
                assert!(bytes.abs_diff(out.len()) < 1024, "{bytes} vs {}", out.len());
                if i >= 3 {
                    chunked.push(took);
                    whole.push(took_whole);
                }
                last = out;
            }
            chunked.sort();
            whole.sort();
            let series = last.lines().filter(|l| !l.starts_with('#')).count();
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!(
                "| {} | {hosts} | {series} | {:.1} MB | {format:?} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} | {:.2} MB | {runs} |",
                hosts * per_host,
                last.len() as f64 / 1e6,
                ms(percentile(&chunked, 0.5)),
                ms(percentile(&chunked, 0.9)),
                ms(percentile(&chunked, 0.99)),
                ms(chunked[chunked.len() - 1]),
                ms(percentile(&whole, 0.5)),
                ms(percentile(&whole, 0.99)),
                ms(percentile(&chunked, 0.5)) / ms(percentile(&whole, 0.5)),
                allocated as f64 / 1e6,
            );
        }
    }

    println!();
    println!("| containers | data points | encoded | build median | encode median | runs |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (hosts, per_host, runs) in [(10, 10, 200), (10, 100, 50), (20, 500, 10)] {
        let store = Arc::new(SnapshotStore::default());
        publish_fleet(&store, hosts, per_host, &sample);
        let instruments = Instruments::default();
        let builder = RequestBuilder::new(&[], &[]);
        let (mut build, mut encode) = (Vec::new(), Vec::new());
        let (mut points, mut bytes) = (0, 0);
        for i in 0..runs + 2 {
            let t = Instant::now();
            let request = builder.request(&Reading::take(&store, &instruments, &FixedPool));
            let built = t.elapsed();
            let t = Instant::now();
            let body = request.encode_to_vec();
            let encoded = t.elapsed();
            if i >= 2 {
                build.push(built);
                encode.push(encoded);
            }
            bytes = body.len();
            points = request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| {
                    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                    match &m.data {
                        Some(Data::Sum(s)) => s.data_points.len(),
                        Some(Data::Gauge(g)) => g.data_points.len(),
                        Some(Data::Histogram(h)) => h.data_points.len(),
                        _ => 0,
                    }
                })
                .sum::<usize>();
        }
        build.sort();
        encode.sort();
        println!(
            "| {} | {points} | {:.1} MB | {:.1} ms | {:.1} ms | {runs} |",
            hosts * per_host,
            bytes as f64 / 1e6,
            percentile(&build, 0.5).as_secs_f64() * 1e3,
            percentile(&encode, 0.5).as_secs_f64() * 1e3,
        );
    }
}
