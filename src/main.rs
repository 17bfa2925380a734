//! The `dockstat-exporter` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use dockstat_exporter::cli::{self, Cli};

fn main() -> ExitCode {
    dockstat_exporter::process::one_malloc_arena();
    let cli = Cli::parse();
    let logs = cli::init_logging(cli.log_format);
    let code = cli::execute(cli);
    logs.flush(std::time::Duration::from_secs(1));
    code
}
