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
