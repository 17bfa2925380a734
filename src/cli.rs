//! Command line: `run` (the default), `check-config`, `metrics`; logging set-up; the
//! process lifetime with graceful shutdown on SIGTERM and SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::DockerClient;
use crate::config::{Config, ConfigError, Validated};

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
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up tracing to stderr.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the parsed command to completion.
pub fn execute(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Run) {
        Command::Metrics { markdown } => {
            if markdown {
                print!("{}", crate::metrics::markdown_table());
            } else {
                for f in crate::metrics::FAMILIES {
                    println!("{}", f.exposed_name());
                }
            }
            ExitCode::SUCCESS
        }
        Command::CheckConfig => match load(cli.config) {
            Ok(v) => {
                let hosts: usize = v.clients.iter().map(|c| c.hosts.len()).sum();
                println!(
                    "{}: ok ({} client(s), {hosts} host(s))",
                    v.source.display(),
                    v.clients.len()
                );
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
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(cfg))
        }
    }
}

fn load(path: Option<PathBuf>) -> Result<Validated, ExitCode> {
    let Some(path) = path else {
        eprintln!("no configuration file: pass --config FILE or set DOCKSTAT_CONFIG");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    Config::load(&path).map_err(|e| {
        match &e {
            ConfigError::Read { .. } => eprintln!("{e}"),
            ConfigError::Invalid(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
            }
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Starts collection and the metrics listener; returns when a signal asks to stop.
pub async fn run(cfg: Validated) -> ExitCode {
    let addr = cfg.config.listen.metrics;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for /metrics");
            return ExitCode::FAILURE;
        }
    };
    let client = match DockerClient::start(&cfg).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "serving /metrics");
    let served = axum::serve(listener, crate::http::router(client.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    client.shutdown().await;
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics listener failed");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
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
    tokio::select! {
        _ = term => tracing::info!("SIGTERM: shutting down"),
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => tracing::info!("SIGINT: shutting down"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGINT");
                std::future::pending::<()>().await;
            }
        },
    }
}
