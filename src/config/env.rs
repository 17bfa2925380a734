//! `${NAME}` in configuration values (addresses, paths, tokens, OTLP headers): replaced
//! with the environment variable, so secrets need not be written into the file.

/// Replaces `${NAME}` with the environment variable NAME; `$${` stays a literal `${`.
/// An unset variable is an error, so a missing secret never turns into an empty string.
pub fn expand_env(s: &str) -> Result<String, String> {
    // No path, address or token can hold one; the OS would refuse it later, less clearly.
    if s.contains('\0') {
        return Err("must not contain a NUL character".to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?;
            if value.contains('\0') {
                return Err(format!(
                    "environment variable `{name}` holds a NUL character"
                ));
            }
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
