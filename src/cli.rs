//! Command line: `run` (the default), `check-config`, `metrics`; logging set-up; the
//! process lifetime with graceful shutdown on SIGTERM and SIGINT (listeners drain, the
//! final OTLP export goes out, then collection stops).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::DockerClient;
use crate::config::{Config, ConfigError, Validated};
use crate::logging::{LogGuard, QueuedStderr};
use crate::{errln, outln};

/// Exit status for configuration errors.
pub const EXIT_CONFIG: u8 = 2;

/// dockstat-exporter: Prometheus and OpenTelemetry metrics for many Docker hosts.
#[derive(Debug, Parser)]
#[command(name = "dockstat-exporter", version, about)]
pub struct Cli {
    /// Configuration file (YAML).
    #[arg(long, short = 'c', env = "DOCKSTAT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log line format; the level comes from RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// This replica's shard, 0-based (over `shard.index`; default: the ordinal at the end
    /// of the host name, `dockstat-2` is 2).
    #[arg(long, env = "DOCKSTAT_SHARD", global = true)]
    pub shard: Option<usize>,
    /// Replicas sharing the host set (over `shard.total`).
    #[arg(long, env = "DOCKSTAT_TOTAL_SHARDS", global = true)]
    pub total_shards: Option<usize>,
    /// Where Prometheus reaches this replica's metrics listener, `host:port`, as `/sd`
    /// hands it out (over `listen.advertise`).
    #[arg(long, env = "DOCKSTAT_ADVERTISE_ADDRESS", global = true)]
    pub advertise_address: Option<String>,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter (the default).
    Run,
    /// Validate the configuration file and exit: 0 when valid, 2 otherwise.
    CheckConfig,
    /// Print the metric families this build exports.
    Metrics {
        /// As the Markdown table of the README.
        #[arg(long)]
        markdown: bool,
    },
    /// Exit 0 when the running exporter answers `/healthz` on its metrics listener (from
    /// the configuration), else 1. For container HEALTHCHECKs: no curl needed.
    Healthcheck {
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Make an admin API token: prints a new random token and the `sha256:` line for
    /// `api.tokens`. With --hash, reads a token from stdin and prints only its hash.
    Token {
        /// Hash the token given on stdin instead of making one.
        #[arg(long)]
        hash: bool,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up tracing to stderr through a queue that never blocks or panics (see
/// [`crate::logging`]); keep the guard and flush it before exiting.
pub fn init_logging(format: LogFormat) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = QueuedStderr::start();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

/// Runs the parsed command to completion.
pub fn execute(cli: Cli) -> ExitCode {
    let flags = (cli.shard, cli.total_shards, cli.advertise_address.clone());
    let load = move |path: Option<PathBuf>| {
        let mut v = load(path)?;
        let (index, total, advertise) = flags.clone();
        v.apply_flags(index, total, advertise).map_err(|e| {
            errln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        })?;
        Ok::<_, ExitCode>(v)
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Metrics { markdown } => {
            if markdown {
                crate::logging::out(format_args!("{}", crate::families::markdown_table()));
            } else {
                for f in crate::families::FAMILIES {
                    outln!("{}", f.exposed_name());
                }
            }
            ExitCode::SUCCESS
        }
        Command::Token { hash } => token(hash),
        Command::Healthcheck { timeout } => match load(cli.config) {
            Ok(v) => healthcheck(&v, Duration::from_secs(timeout.max(1))),
            Err(code) => code,
        },
        Command::CheckConfig => match load(cli.config) {
            Ok(v) => {
                let hosts: usize = v.clients.iter().map(|c| c.hosts.len()).sum();
                outln!(
                    "{}: ok ({} client(s), {hosts} host(s))",
                    v.source.display(),
                    v.clients.len()
                );
                if v.shard.total > 1 {
                    outln!("shard {} of {}", v.shard.index, v.shard.total);
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run => {
            let cfg = match load(cli.config) {
                Ok(v) => v,
                Err(code) => return code,
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    errln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(cfg))
        }
    }
}

/// GET /healthz on the metrics listener. With TLS on, a completed TCP connection counts
/// (the check runs inside the container, next to the listener).
fn healthcheck(cfg: &Validated, timeout: Duration) -> ExitCode {
    use std::io::{Read, Write};
    let mut addr = cfg.config.listen.metrics;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let check = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        if cfg.listen_tls.is_some() {
            return Ok(true);
        }
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200"))
    };
    match check() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            errln!("{addr}/healthz did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            errln!("{addr}/healthz: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token(hash_stdin: bool) -> ExitCode {
    let token = if hash_stdin {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            errln!("cannot read the token from stdin: {e}");
            return ExitCode::FAILURE;
        }
        line.trim().to_string()
    } else {
        let mut raw = [0u8; 32];
        if let Err(e) = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut raw))
        {
            errln!("cannot read /dev/urandom: {e}");
            return ExitCode::FAILURE;
        }
        hex(&raw)
    };
    if token.len() < 16 {
        errln!("a token must be at least 16 characters");
        return ExitCode::from(EXIT_CONFIG);
    }
    let digest = hex(&crate::config::token_hash(&token));
    if hash_stdin {
        outln!("{digest}");
    } else {
        outln!("token:  {token}");
        outln!("config: sha256: {digest}");
    }
    ExitCode::SUCCESS
}

fn load(path: Option<PathBuf>) -> Result<Validated, ExitCode> {
    let Some(path) = path else {
        errln!("no configuration file: pass --config FILE or set DOCKSTAT_CONFIG");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    Config::load(&path).map_err(|e| {
        match &e {
            ConfigError::Read { .. } => errln!("{e}"),
            ConfigError::Invalid(problems) => {
                for p in problems {
                    errln!("{p}");
                }
            }
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Starts collection, the metrics listener and the admin API; returns when a signal asks
/// to stop.
pub async fn run(cfg: Validated) -> ExitCode {
    let bind = |what: &str, addr: std::net::SocketAddr| {
        crate::serve::bind(addr).map_err(|e| {
            tracing::error!(%addr, error = %e, "cannot listen for {what}");
        })
    };
    let (Ok(metrics_listener), Ok(admin_listener)) = (
        bind("/metrics", cfg.config.listen.metrics),
        bind("the admin API", cfg.config.listen.admin),
    ) else {
        return ExitCode::FAILURE;
    };
    let tls = match &cfg.listen_tls {
        None => None,
        Some(files) => match crate::serve::tls_config(&files.cert, &files.key) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(cert = %files.cert.display(), key = %files.key.display(), error = %e,
                    "cannot load the listeners' TLS certificate");
                return ExitCode::FAILURE;
            }
        },
    };
    let limits = listener_limits(&cfg.config.listen);
    let docker = match DockerClient::start(&cfg).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    if cfg.tokens.is_empty() {
        tracing::warn!(addr = %cfg.config.listen.admin,
            "admin API without tokens: every local caller is admin (set api.tokens to require tokens)");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(metrics = %cfg.config.listen.metrics, admin = %cfg.config.listen.admin, scheme,
        version = env!("CARGO_PKG_VERSION"), "serving /metrics and the admin API");

    let stop = tokio_util::sync::CancellationToken::new();
    let otlp = cfg
        .otlp
        .clone()
        .map(|o| crate::otlp::spawn(o, &cfg.labels, docker.export_inputs(), stop.clone()));
    let state = std::sync::Arc::new(crate::api::AppState::new(docker.clone(), &cfg));
    let admin_app = crate::api::app(state, cfg.config.api.max_body_bytes);
    let metrics = tokio::spawn(crate::serve::serve(
        metrics_listener,
        crate::http::router(
            docker.clone(),
            cfg.config.metrics.gzip,
            cfg.advertise.clone(),
        ),
        tls.clone(),
        limits,
        stop.clone(),
    ));
    let admin = tokio::spawn(crate::serve::serve(
        admin_listener,
        admin_app,
        tls,
        limits,
        stop.clone(),
    ));
    let signal = stop.clone();
    tokio::spawn(async move {
        let which = shutdown_signal().await;
        // Stop first, log after: stopping must never depend on a log line being written.
        signal.cancel();
        tracing::info!("{which}: shutting down");
    });
    // Either listener failing stops the process: half an exporter is worse than none.
    let mut failed = false;
    for (what, task) in [("metrics", metrics), ("admin", admin)] {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(listener = what, error = %e, "listener failed");
                failed = true;
            }
            Err(e) => {
                tracing::error!(listener = what, error = %e, "listener task failed");
                failed = true;
            }
        }
        stop.cancel();
    }
    // The final OTLP export reads the snapshot before collection stops.
    if let Some(task) = otlp
        && let Err(e) = task.await
    {
        tracing::error!(error = %e, "OTLP task failed");
    }
    docker.shutdown().await;
    if failed {
        ExitCode::FAILURE
    } else {
        tracing::info!("stopped");
        ExitCode::SUCCESS
    }
}

/// Raises the open-file limit and sizes the listeners' connection caps to fit it.
fn listener_limits(listen: &crate::config::ListenConfig) -> crate::serve::Limits {
    let open_files = match crate::serve::raise_open_file_limit() {
        Ok(l) => {
            let (soft, hard) = (l.soft, l.hard);
            tracing::info!(soft, hard, raised_from = ?l.raised_from, "open-file limit");
            soft
        }
        Err(e) => {
            // Assume systemd's default: the caps then err on the low side.
            tracing::warn!(error = %e, "assuming an open-file limit of 1024");
            1024
        }
    };
    let limits = crate::serve::Limits::new(listen, open_files);
    if limits.max_connections < listen.max_connections {
        tracing::warn!(
            configured = listen.max_connections,
            max_connections = limits.max_connections,
            open_files,
            "listen.max_connections lowered to fit the open-file limit"
        );
    }
    tracing::info!(max_connections = limits.max_connections,
        header_timeout = ?limits.timeouts.header, idle_timeout = ?limits.timeouts.idle,
        "connection limits of each listener");
    limits
}

/// Waits for SIGTERM or SIGINT and says which.
async fn shutdown_signal() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let int = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot watch SIGINT");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = term => "SIGTERM",
        _ = int => "SIGINT",
    }
}
