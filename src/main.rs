//! The `dockstat-exporter` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use dockstat_exporter::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log_format);
    cli::execute(cli)
}
