//! dockstat-exporter: one small process that watches many Docker Engine hosts and turns
//! them into Prometheus metrics and OTLP pushes, with a Rust library ([`DockerClient`]) for the same
//! operations in-process.
//!
//! How data flows, and where each part lives:
//!
//! - [`config`]: the YAML file, validated with file:line:column errors.
//! - [`store`]: SQLite; clients and hosts from the file (source `config`) and added at run
//!   time (source `api`).
//! - [`pool`]: assigns hosts to workers; each host's collector is its own task.
//! - [`collect`]: per host, the events stream, re-lists and one-shot stats sampling.
//! - [`docker`]: Docker Engine API calls over pooled connections, with deadlines, bounded
//!   answers ([`docker::limits`]), timing and classified errors (bollard for the types).
//! - [`stats`]: Docker stats answers into figures (cgroup v1 and v2).
//! - [`cgroup`]: the `cgroup` stats source: the same answers read from the kernel's files
//!   for containers on this machine, at no cost to dockerd.
//! - [`snapshot`]: the immutable picture all readers share, swapped atomically.
//! - [`instruments`]: live self-instrumentation (Docker latency, errors, calls in flight).
//! - [`streams`]: live channels (events, host changes, stats) with resume and lag notices.
//! - [`metrics`]: the metric family table and the `/metrics` renderer.
//! - [`otlp`]: pushes the same families over OTLP (gRPC or HTTP) on an interval.
//! - [`http`]: the metrics listener (`/metrics` streamed as rendered, `/healthz`, `/readyz`).
//! - [`api`]: the admin API (`/api/v1`) on its own listener: tokens, roles, audit, OpenAPI.
//! - [`serve`]: runs a listener over HTTP or TLS: header and idle timeouts, a connection cap
//!   that evicts the longest-idle connection, bounded graceful shutdown.
//! - [`tls`]: PEM files into rustls client configurations (Docker hosts, OTLP).
//! - [`client`]: [`DockerClient`], the library API over all of the above.
//! - [`cli`]: command line, process lifetime.
//! - [`logging`]: stderr logging that never blocks or panics.
//! - [`process`]: the exporter's own CPU and memory from `/proc/self`.

pub mod api;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod clock;
pub mod collect;
pub mod config;
pub mod docker;
pub mod families;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod fixtures;
pub mod http;
pub mod instruments;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod pool;
pub mod process;
pub mod serve;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod streams;
pub mod tls;

pub use client::DockerClient;

/// The README's Rust examples, compiled by `cargo test` so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
