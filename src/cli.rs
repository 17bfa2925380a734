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
    /// Configuration file (YAML). Without one the exporter watches the Docker host of
    /// DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (as the docker CLI reads them),
    /// else the local socket, and keeps its database in the data directory.
    #[arg(long, short = 'c', env = "DOCKSTAT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address of /metrics, over `listen.metrics`: `:9487`, `0.0.0.0:9487`, `[::]:9487`.
    #[arg(long = "web.listen-address", value_name = "ADDR", value_parser = crate::config::parse_listen, global = true)]
    pub web_listen_address: Option<std::net::SocketAddr>,
    /// Address of the admin API, over `listen.admin`: `127.0.0.1:9488`.
    #[arg(long = "api.listen-address", value_name = "ADDR", value_parser = crate::config::parse_listen, global = true)]
    pub api_listen_address: Option<std::net::SocketAddr>,
    /// Prometheus exporter-toolkit web configuration (`tls_server_config` with
    /// `client_auth_type` and `client_ca_file`, `basic_auth_users` with bcrypt hashes) for
    /// the metrics listener; `/healthz` stays open to basic auth.
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Data directory: the database (`dockstat.db`) and the generated admin token go here.
    /// Default without a configuration file: $STATE_DIRECTORY, else
    /// /var/lib/dockstat-exporter when writable, else $XDG_STATE_HOME/dockstat-exporter
    /// (~/.local/state/dockstat-exporter); with one: the directory of `database.path`.
    #[arg(long, value_name = "DIR", env = "DOCKSTAT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
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
    /// `api.tokens`. With --hash, reads a token from stdin and prints only its hash. With
    /// --rotate, replaces the generated admin token (`admin.token` in the data directory,
    /// used while `api.tokens` is empty) and prints the file's path; restart the exporter
    /// to use it.
    Token {
        /// Hash the token given on stdin instead of making one.
        #[arg(long, conflicts_with = "rotate")]
        hash: bool,
        /// Replace the generated admin token file in the data directory.
        #[arg(long)]
        rotate: bool,
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
    // An invalid RUST_LOG is said, once logging runs, rather than silently replaced.
    let mut invalid = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&v).unwrap_or_else(|e| {
                invalid = Some((v, e.to_string()));
                tracing_subscriber::EnvFilter::new("info")
            })
        }
        _ => tracing_subscriber::EnvFilter::new("info"),
    };
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
    if let Some((value, error)) = invalid {
        tracing::warn!(rust_log = %value, error = %error,
            "RUST_LOG is not a valid filter (e.g. `info,dockstat_exporter=debug`); logging at info");
    }
    guard
}

/// Runs the parsed command to completion.
pub fn execute(cli: Cli) -> ExitCode {
    let overrides = crate::config::Overrides {
        metrics: cli.web_listen_address,
        admin: cli.api_listen_address,
        data_dir: cli.data_dir.clone(),
    };
    let flags = (cli.shard, cli.total_shards, cli.advertise_address.clone());
    let load = |path: Option<PathBuf>| {
        let mut v = load(path, &overrides)?;
        let (index, total, advertise) = flags.clone();
        v.apply_flags(index, total, advertise).map_err(|e| {
            errln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        })?;
        Ok::<_, ExitCode>(v)
    };
    let web = match cli.web_config_file.as_deref().map(crate::web_config::load) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            errln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
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
        Command::Token { rotate: true, .. } => match load(cli.config) {
            Ok(v) => match crate::config::rotate_admin_token(&v.data_dir) {
                Ok(path) => {
                    outln!("new admin token written to {}", path.display());
                    outln!("restart the exporter to use it; the old token stops working then");
                    if !v.tokens.is_empty() {
                        errln!(
                            "note: api.tokens is set, so the exporter uses those and not this file"
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    errln!("{e}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
        Command::Token { hash, .. } => token(hash),
        Command::Healthcheck { timeout } => match load(cli.config) {
            Ok(v) => healthcheck(
                &v,
                web.as_ref().is_some_and(|w| w.tls.is_some()),
                Duration::from_secs(timeout.max(1)),
            ),
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
                outln!("database: {}", v.database_path.display());
                match &v.otlp {
                    None => outln!("otlp: off"),
                    Some(o) => outln!("otlp: on, {}", o.describe()),
                }
                if let Some(w) = &web {
                    outln!(
                        "web config: tls {}, basic auth {} user(s)",
                        if w.tls.is_some() { "on" } else { "off" },
                        w.users.len()
                    );
                }
                for o in &v.otlp_overlaps {
                    outln!(
                        "otlp.{}: the file's value is used; {} is ignored",
                        o.key,
                        o.variable
                    );
                }
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
            if let Err(e) = crate::pool::dedicate_thread() {
                // Collection then shares the workers: slower, not wrong.
                tracing::warn!(error = %e, "no thread of its own for collection");
            }
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
            runtime.block_on(run(cfg, web))
        }
    }
}

/// GET /healthz on the metrics listener. With TLS on, a completed TCP connection counts
/// (the check runs inside the container, next to the listener).
fn healthcheck(cfg: &Validated, web_tls: bool, timeout: Duration) -> ExitCode {
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
        if cfg.listen_tls.is_some() || web_tls {
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
        errln!(
            "put the sha256 line under api.tokens (with a name and a role). Without api.tokens \
             the exporter uses its own admin token, admin.token in its data directory; \
             `dockstat-exporter token --rotate` replaces that one (then restart)."
        );
    }
    ExitCode::SUCCESS
}

fn load(
    path: Option<PathBuf>,
    overrides: &crate::config::Overrides,
) -> Result<Validated, ExitCode> {
    let loaded = match &path {
        Some(path) => Config::load_with(path, overrides),
        None => Config::from_environment(overrides, &|k| std::env::var(k).ok()),
    };
    let cfg = loaded.map_err(|e| {
        match &e {
            ConfigError::Read { .. } => errln!("{e}"),
            ConfigError::Invalid(problems) => {
                for p in problems {
                    errln!("{p}");
                }
            }
        }
        ExitCode::from(EXIT_CONFIG)
    })?;
    // Which names are families is the family table's to say, not the configuration's.
    let (_, unknown) = crate::families::Selection::of(&cfg.config.metrics.disable);
    if !unknown.is_empty() {
        // Without a file, metrics.disable is empty: only a file can name an unknown family.
        let Some(path) = path else {
            return Err(ExitCode::from(EXIT_CONFIG));
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (i, name) in unknown {
            let at = [
                crate::config::PathSeg::from("metrics"),
                "disable".into(),
                i.into(),
            ];
            let (line, column) = crate::config::locate(&text, &at).unwrap_or((1, 1));
            errln!(
                "{}:{line}:{column}: metrics.disable[{i}]: `{name}` is neither a group ({}) nor a family (`dockstat-exporter metrics --markdown` lists them)",
                path.display(),
                crate::families::GROUPS.join(", ")
            );
        }
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    Ok(cfg)
}

/// Starts collection, the metrics listener and the admin API; returns when a signal asks
/// to stop.
pub async fn run(mut cfg: Validated, web: Option<crate::web_config::LoadedWebConfig>) -> ExitCode {
    // The admin API is never anonymous: without api.tokens, an admin token of its own in
    // the data directory, readable only by this user.
    if cfg.tokens.is_empty() {
        match crate::config::generated_admin_token(&cfg.data_dir) {
            Ok((path, token, made)) => {
                if made {
                    tracing::info!(file = %path.display(),
                        "no api.tokens: made an admin token for the admin API (mode 0600); send it as Authorization: Bearer");
                } else {
                    tracing::info!(file = %path.display(),
                        "no api.tokens: the admin API takes the admin token of this file");
                }
                cfg.tokens.push(token);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the admin API's token");
                return ExitCode::FAILURE;
            }
        }
    }
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
    for o in &cfg.otlp_overlaps {
        tracing::warn!(key = %format_args!("otlp.{}", o.key), variable = %o.variable,
            "set both in the configuration file and the environment: the file's value is used");
    }
    match &cfg.otlp {
        None => tracing::info!("OTLP push off"),
        Some(o) => tracing::info!(settings = %o.describe(), "OTLP push on"),
    }
    let limits = listener_limits(&cfg.config.listen);
    let docker = match DockerClient::start(&cfg).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
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
    // The web configuration file, when given, decides the metrics listener's TLS (client
    // certificates included) and basic auth; the admin API keeps listen.tls and its tokens.
    let (metrics_tls, users) = match &web {
        Some(w) => (w.tls.clone().or_else(|| tls.clone()), Some(w.users.clone())),
        None => (tls.clone(), None),
    };
    let mut metrics_router = crate::http::router(
        docker.clone(),
        cfg.config.metrics.gzip,
        cfg.advertise.clone(),
    );
    if let Some(users) = users.filter(|u| u.is_on()) {
        metrics_router = metrics_router.layer(axum::middleware::from_fn_with_state(
            users,
            crate::web_config::basic_auth,
        ));
    }
    if let Some(w) = &web {
        tracing::info!(
            tls = w.tls.is_some(),
            basic_auth_users = w.users.len(),
            "/metrics access from the web configuration file (/healthz open to basic auth)"
        );
    }
    let metrics = tokio::spawn(crate::serve::serve(
        metrics_listener,
        metrics_router,
        metrics_tls,
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
            match l.raised_from {
                Some(from) => tracing::info!(soft, hard, raised_from = from, "open-file limit"),
                None => tracing::info!(soft, hard, "open-file limit"),
            }
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
        header_timeout = %humantime::format_duration(limits.timeouts.header),
        idle_timeout = %humantime::format_duration(limits.timeouts.idle),
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
