//! dockstat-exporter: one small process that watches many Docker Engine hosts and turns
//! them into Prometheus metrics and OTLP pushes, with a Rust library ([`DockerClient`]) for the same
//! operations in-process.
//!
//! # Layers
//!
//! From the top down; a module imports only modules of the layers below its own, never one
//! above (and none of its own layer but where said).
//!
//! 1. [`cli`]: command line, process lifetime.
//! 2. The listeners: [`http`] (`/metrics` whole or per host, `/sd`, `/healthz`,
//!    `/readyz`; [`web_config`]: basic auth and client certificates from
//!    `--web.config.file`) and [`api`] (the admin API, `/api/v1`: tokens, roles, audit,
//!    OpenAPI); [`serve`] runs either over HTTP or TLS (header and idle timeouts, a
//!    connection cap that evicts the longest-idle connection, bounded graceful shutdown).
//! 3. [`client`]: [`DockerClient`], the library over everything below: clients, hosts,
//!    monitoring, containers, status, the audit log. (`fixtures`, for tests and
//!    benchmarks only, sits here too.)
//! 4. [`pool`]: which hosts are collected, one collector task each (in the binary, all on
//!    one thread of their own, [`pool::dedicate_thread`]). The exports, which
//!    only read the snapshot: [`metrics`] renders `/metrics`, [`otlp`] pushes the same
//!    families over OTLP (gRPC or HTTP).
//! 5. [`collect`]: one host's collector: events, inventory, sampling. [`families`]: the
//!    metric family table and the walk that finds each family's series in a snapshot,
//!    shared by both exports.
//! 6. [`streams`]: live channels (events, host changes, stats) with resume and lag
//!    notices. [`snapshot`]: the immutable picture all readers share, swapped atomically.
//! 7. [`docker`]: Docker Engine API calls over pooled connections, with deadlines, bounded
//!    answers ([`docker::limits`]), timing and classified errors (bollard for the types).
//!    [`store`]: SQLite: clients and hosts, the audit log, event cursors.
//! 8. [`config`]: the YAML file, validated with file:line:column errors. [`stats`]: Docker
//!    stats answers into figures (cgroup v1 and v2). [`instruments`]: live
//!    self-instrumentation (Docker latency, errors, calls in flight).
//! 9. The ground, importing nothing of ours but each other: [`cgroup`] (the `cgroup` stats
//!    source: the same answers read from the kernel's files), [`shard`] (which replica
//!    collects which host: rendezvous hashing, StatefulSet ordinals), [`tls`] (PEM files into
//!    rustls configurations), [`process`] (the exporter's own CPU and memory), [`logging`]
//!    (stderr logging that never blocks or panics), [`clock`] (unix seconds), [`lock`]
//!    (mutexes that outlive a panic).
//!
//! # Words
//!
//! - **client**: a named group of hosts (the seed's `registerClient`; the `client` label,
//!   `/api/v1/clients`). The library object is the [`DockerClient`] (module [`client`]),
//!   held as `docker`; HTTP clients are named for what they speak (`http`, `grpc`,
//!   `https`). A TLS *client certificate* keeps TLS's own word.
//! - **host**: one Docker Engine endpoint of a client: unix socket, TCP or mutual TLS.
//! - **collector**: the task that collects one host ([`collect::Collector`]); its log lines
//!   carry a `collector{host=… client=…}` span. prometheus-client's registry "collector"
//!   appears only as `metrics::prom::PromFamilies`.
//! - **pool**, **worker**: the [`pool`] runs the collectors; a worker is the unit the
//!   seed's `getStatus` reports (a group of hosts with an id, uptime and calls in flight),
//!   with no task of its own.
//! - **snapshot**: everything known of every host at one moment; collectors publish, the
//!   exports and the API read.
//! - **sample**: one container's figures at one moment ([`stats::Sample`]); the API's
//!   view of it is [`stats::ContainerStats`].
//! - **family**, **series**, **scope**, **label**: a metric family is one row of
//!   [`families::FAMILIES`]; [`families::Series`] says where its series come from,
//!   [`families::Scope`] what one series describes, [`families::Label`] each label of its
//!   own with the OTLP attribute it becomes.
//! - **reading**, **inputs**: what one scrape or export reads, gathered once
//!   ([`families::Reading`]) from its [`families::Inputs`].
//! - **stats source**: where a running container's figures come from, its cgroup files
//!   or Docker's one-shot stats (`stats_source`); the only thing called a source.
//! - **origin**: where a client or host was declared, the file or the API
//!   ([`store::Origin`]; `source` in the API's JSON, kept for compatibility).
//! - **channel**, **subscriber**: a live stream of messages ([`streams::Channel`]) and who
//!   listens to one.
//! - **audit record**: one mutating admin API call, as written and as read back
//!   ([`store::AuditRecord`]).

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
pub mod shard;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod streams;
pub mod tls;
pub mod web_config;

pub use client::DockerClient;

/// The README's Rust examples, compiled by `cargo test` so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
