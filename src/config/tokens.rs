//! Admin API tokens: only the SHA-256 of each is kept ([`ValidToken`]), from the file's
//! `sha256` or the hash of its `token`.

use std::fmt;

use super::{PathSeg, Problem, Role, TokenConfig, expand_env};

/// A token from the file: name, role and SHA-256 of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// Holder's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
}

impl fmt::Debug for ValidToken {
    // Keeps even the hash out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a token, as stored and compared.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Checks the token list: unique names, exactly one of `sha256`/`token`, well-formed hashes.
pub(super) fn validate_tokens(
    list: &[TokenConfig],
    problems: &mut Vec<Problem>,
) -> Vec<ValidToken> {
    let mut tokens: Vec<ValidToken> = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let at = |key: &str| path!["api", "tokens", i, key];
        if t.name.trim().is_empty() {
            problems.push(Problem::new(at("name"), "must not be empty"));
        } else if tokens.iter().any(|v| v.name == t.name) {
            problems.push(Problem::new(
                at("name"),
                format!("duplicate token `{}`", t.name),
            ));
        }
        let hash = match (&t.sha256, &t.token) {
            (Some(h), None) => match parse_hex32(h) {
                Some(h) => Some(h),
                None => {
                    problems.push(Problem::new(at("sha256"), "must be 64 hex digits"));
                    None
                }
            },
            (None, Some(tok)) => match expand_env(tok) {
                Ok(tok) if tok.len() >= 16 => Some(token_hash(&tok)),
                Ok(_) => {
                    problems.push(Problem::new(
                        at("token"),
                        "must be at least 16 characters (`dockstat-exporter token` makes one)",
                    ));
                    None
                }
                Err(e) => {
                    problems.push(Problem::new(at("token"), e));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push(Problem::new(
                    at("token"),
                    "give either sha256 or token, not both",
                ));
                None
            }
            (None, None) => {
                problems.push(Problem::new(
                    path!["api", "tokens", i],
                    "needs sha256 (hex SHA-256 of the token) or token",
                ));
                None
            }
        };
        if let Some(sha256) = hash {
            if tokens.iter().any(|v| v.sha256 == sha256) {
                problems.push(Problem::new(
                    at(if t.token.is_some() { "token" } else { "sha256" }),
                    "the same token is given twice",
                ));
            }
            tokens.push(ValidToken {
                name: t.name.clone(),
                role: t.role,
                sha256,
            });
        }
    }
    tokens
}

/// File name of the generated admin token in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Name of the generated token in the audit log.
pub const GENERATED_TOKEN_NAME: &str = "generated-admin";

/// A new random token: 32 bytes from `/dev/urandom`, as 64 hex digits.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// The admin token of a run without `api.tokens`, kept in `dir/admin.token` (mode 0600,
/// only the exporter's user reads it): read when the file is there, else made and written.
/// Returns the file, the token (hashed) and whether it was made now. The token itself is
/// never logged. A file others may read is refused with the reason: the token would not
/// be a secret.
pub fn generated_admin_token(
    dir: &std::path::Path,
) -> Result<(std::path::PathBuf, ValidToken, bool), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = dir.join(ADMIN_TOKEN_FILE);
    let valid = |token: &str| ValidToken {
        name: GENERATED_TOKEN_NAME.to_string(),
        role: Role::Admin,
        sha256: token_hash(token),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let meta = std::fs::metadata(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} is readable by others (mode {mode:o}): the admin token would not be \
                     a secret; `chmod 600 {}` (and rotate it: `dockstat-exporter token --rotate`)",
                    path.display(),
                    path.display()
                ));
            }
            let token = text.trim();
            if token.len() < 16 {
                return Err(format!(
                    "{} holds no token (at least 16 characters); delete it to have a new one made",
                    path.display()
                ));
            }
            Ok((path, valid(token), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = new_token().map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| {
                    f.write_all(format!("{token}\n").as_bytes())?;
                    f.sync_all()
                })
                .map_err(|e| format!("cannot write the admin token to {}: {e}", path.display()))?;
            Ok((path, valid(&token), true))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the generated admin token with a new one (written to a temporary file, then
/// renamed over the old: a reader sees the old or the new, never half).
pub fn rotate_admin_token(dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(ADMIN_TOKEN_FILE);
    let tmp = dir.join(format!(".{ADMIN_TOKEN_FILE}.{}", std::process::id()));
    let token = new_token().map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write the admin token to {}: {e}", path.display()))?;
    Ok(path)
}
