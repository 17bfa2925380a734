//! Configuration: one YAML file, read once at start.
//!
//! Parsing happens in two steps. serde_yaml turns the text into the typed structs of
//! [`schema`] and reports syntax errors, unknown keys and wrong types with their line and
//! column. Then validation ([`validate`]) checks what types cannot say (unique names,
//! addresses, TLS files that exist, `${ENV}` expansion) and reports each problem with the
//! path of the offending key; [`locate`] turns that path back into a line and column of the
//! same file. So every configuration error names file, line and column, and the process
//! exits 2.
//!
//! - [`schema`]: the file's structs; their doc comments are the user documentation of each
//!   key (`config.example.yaml` repeats them next to the default values).
//! - [`address`]: Docker host addresses and TLS files, from the file or the API.
//! - [`env`](mod@env): `${ENV}` expansion.
//! - [`tokens`]: admin API tokens and their hashes.
//! - [`validate`]: what is checked after parsing, and the [`Validated`] result.
//! - [`ranges`], `otlp`, `locate`: bounds of numbers and durations, the `otlp` section,
//!   positions of keys.

/// Builds a path from string keys and indexes: `path!["clients", 0, "name"]`.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(PathSeg::from($seg)),*] };
}

pub mod address;
pub mod defaults;
pub mod env;
pub mod filter;
mod locate;
pub mod otlp;
pub mod ranges;
pub mod schema;
pub mod tokens;
pub mod validate;

use std::fmt;
use std::path::Path;

pub use address::{Address, Endpoint, TlsFiles, parse_listen};
pub use defaults::Overrides;
pub use env::expand_env;
pub use locate::{PathSeg, display_path as locate_display, locate};
pub use otlp::{Compression, OtlpConfig, OtlpOverlap, OtlpTlsConfig, Protocol, ValidOtlp};
pub use schema::{
    ApiConfig, ClientConfig, Config, DatabaseConfig, HostConfig, ListenConfig, MetricsConfig,
    MonitoringConfig, Role, ServerTlsConfig, ShardConfig, StatsSource, StreamsConfig, TlsConfig,
    TokenConfig,
};
pub use tokens::{
    ADMIN_TOKEN_FILE, ValidToken, generated_admin_token, rotate_admin_token, token_hash,
};
pub use validate::{ServerTlsFiles, ValidClient, ValidHost, Validated, sanitize_label};

/// One problem found by validation, before it is given a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending key, e.g. `clients[0].hosts[1].tls.ca`.
    pub path: Vec<PathSeg>,
    /// What is wrong, for a human.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: Vec<PathSeg>, message: impl Into<String>) -> Problem {
        Problem {
            path,
            message: message.into(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read configuration: {source}")]
    Read {
        /// File given by the user.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// One or more problems, each with its position.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
}

/// A problem with the file, line and column it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, with the key path in front when known.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl Config {
    /// Reads, parses and validates a configuration file. Only a regular file of at most
    /// [`MAX_FILE_BYTES`] is read (a FIFO would block, `/dev/zero` would never end).
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        Config::load_with(path, &Overrides::default())
    }

    /// Like [`Config::load`], with the command line's settings over the file's.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Validated, ConfigError> {
        use std::io::Read;
        let read = |source: std::io::Error| ConfigError::Read {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if !meta.is_file() {
            return Err(read(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(read)?;
        Config::parse_bytes_with(&bytes, path, overrides)
    }

    /// The configuration of a run without a file (see [`defaults`]): the Docker host from
    /// `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`, the database in
    /// `--data-dir` or the default data directory (created when missing), the listeners
    /// from the command line or their defaults.
    pub fn from_environment(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Validated, ConfigError> {
        let source = Path::new("(environment)");
        let invalid = |message: String| {
            ConfigError::Invalid(vec![Located {
                file: source.display().to_string(),
                line: 1,
                column: 1,
                message,
            }])
        };
        let data_dir = match &overrides.data_dir {
            Some(d) => d.clone(),
            None => defaults::default_data_dir(env).map_err(invalid)?,
        };
        defaults::ensure_data_dir(&data_dir).map_err(invalid)?;
        let mut config = defaults::environment_config(env, &data_dir).map_err(invalid)?;
        overrides.apply(&mut config);
        let cwd = std::env::current_dir().unwrap_or_else(|_| Path::new("/").to_path_buf());
        config.validate(&cwd, source).map_err(|problems| {
            ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|p| Located {
                        file: source.display().to_string(),
                        line: 1,
                        column: 1,
                        message: format!("{}: {}", locate::display_path(&p.path), p.message),
                    })
                    .collect(),
            )
        })
    }

    /// Like [`Config::parse`] for raw bytes: refuses more than [`MAX_FILE_BYTES`] and text
    /// that is not UTF-8, with the position of the first bad byte.
    pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Validated, ConfigError> {
        Config::parse_bytes_with(bytes, path, &Overrides::default())
    }

    fn parse_bytes_with(
        bytes: &[u8],
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Validated, ConfigError> {
        let file = path.display().to_string();
        let at = |line: usize, column: usize, message: String| {
            ConfigError::Invalid(vec![Located {
                file: file.clone(),
                line,
                column,
                message,
            }])
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(at(
                1,
                1,
                format!(
                    "the file is larger than {} KiB; a configuration is a few KiB",
                    MAX_FILE_BYTES >> 10
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            at(
                line,
                column,
                format!(
                    "not UTF-8 text (invalid byte at offset {}); save the file as UTF-8",
                    e.valid_up_to()
                ),
            )
        })?;
        Config::parse_with(text, path, overrides)
    }

    /// Parses and validates configuration text; `path` names it in errors and is the base
    /// for relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Validated, ConfigError> {
        Config::parse_with(text, path, &Overrides::default())
    }

    /// Like [`Config::parse`], with the command line's settings over the file's.
    pub fn parse_with(
        text: &str,
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Validated, ConfigError> {
        let file = path.display().to_string();
        if let Some((line, column)) = too_deep(text, MAX_DEPTH) {
            return Err(ConfigError::Invalid(vec![Located {
                file,
                line,
                column,
                message: format!(
                    "nested deeper than {MAX_DEPTH} levels; a configuration needs fewer than ten"
                ),
            }]));
        }
        let mut config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                ConfigError::Invalid(vec![Located {
                    file: file.clone(),
                    line,
                    column,
                    message: strip_location(&e.to_string()),
                }])
            })?
        };
        overrides.apply(&mut config);
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.validate(base, path).map_err(|problems| {
            ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|p| {
                        let (line, column) = locate(text, &p.path).unwrap_or((1, 1));
                        Located {
                            file: file.clone(),
                            line,
                            column,
                            message: format!("{}: {}", locate::display_path(&p.path), p.message),
                        }
                    })
                    .collect(),
            )
        })
    }
}

/// Largest configuration file read: a configuration with a thousand hosts is ~100 KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Deepest nesting accepted before parsing: ours needs 6 (`clients[].hosts[].tls.ca`), and
/// libyaml's time grows steeply with depth (7 s at 40,000 levels).
pub const MAX_DEPTH: usize = 64;

/// Where the text first nests deeper than `max` levels, by a scan that costs nothing next
/// to parsing: block nesting by indentation (and `- ` items opening on the same line), flow
/// nesting by brackets outside quotes and comments. It over-counts at worst (a `- ` inside a
/// plain scalar), which only matters beyond `max`. None when it stays within.
fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if flow == 0 {
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let mut indent = line.len() - body.len();
            // Each `- ` opens a level at the column after it.
            let mut rest = body;
            while let Some(after) = rest
                .strip_prefix("- ")
                .or(rest.strip_prefix('-').filter(|r| r.is_empty()))
            {
                while indents.last().is_some_and(|top| *top > indent) {
                    indents.pop();
                }
                indents.push(indent + 1);
                let trimmed = after.trim_start_matches(' ');
                indent += 1 + (after.len() - trimmed.len()) + 1;
                rest = trimmed;
            }
            while indents.last().is_some_and(|top| *top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            if indents.len() > max {
                return Some((n + 1, indent + 1));
            }
        }
        let (mut single, mut double) = (false, false);
        for (col, c) in line.char_indices() {
            match c {
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                '#' if !single && !double => break,
                '[' | '{' if !single && !double => {
                    flow += 1;
                    if indents.len() + flow > max {
                        return Some((n + 1, col + 1));
                    }
                }
                ']' | '}' if !single && !double => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// serde_yaml puts " at line L column C" into its messages; we print the position in front,
/// so it is cut out wherever it appears.
fn strip_location(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n = digits(after);
        match after[n..].strip_prefix(" column ") {
            Some(col) if n > 0 && digits(col) > 0 => rest = &col[digits(col)..],
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
