//! Plugin names: they become file names and MCP tool names, so only a safe
//! charset is accepted and nothing can point outside the plugins directory.

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("a plugin name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] characters.
    #[error("plugin name {0:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
    #[error(
        "plugin name {0:?} is not allowed: use a lowercase letter first, then lowercase letters, digits, `_` or `-` (no dots, slashes or spaces)"
    )]
    /// The name has a character outside the rule, or does not start with a
    /// lowercase letter.
    Charset(String),
    /// The name is one of this server's own tools.
    #[error("plugin name {0:?} is taken by one of this server's own tools")]
    Reserved(String),
    /// An installed pattern analyzer has the name.
    #[error("name {0:?} is taken by an installed pattern analyzer (plugins and analyzers share one namespace); pick another name")]
    TakenByAnalyzer(String),
    /// A JS tool plugin has the name.
    #[error("name {0:?} is taken by a JS tool plugin (plugins and analyzers share one namespace); pick another name")]
    TakenByTool(String),
}

/// Checks `name` against `[a-z][a-z0-9_-]{0,63}`. No `.`, `/`, `\` or
/// NUL can pass, so `..`-style traversal and absolute paths are impossible.
pub fn validate(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty);
    };
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.chars().take(80).collect()));
    }
    let ok = first.is_ascii_lowercase()
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(NameError::Charset(name.chars().take(80).collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_pass() {
        for n in ["a", "summarize_failures", "word-count2", &"x".repeat(64)] {
            assert_eq!(validate(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for n in [
            "", "../evil", "..", "a/b", "a\\b", "/etc/passwd", "A", "x.wasm", "a b", "a\0b", "9lives", "-x", "_x", "é",
            &"x".repeat(65),
        ] {
            assert!(validate(n).is_err(), "{n:?} passed");
        }
    }
}
