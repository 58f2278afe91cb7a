//! Bearer-token authentication: who may call, and under which principal.
//!
//! Tokens come from `MEMORY_MCP_TOKEN` (one principal, named `token`) or
//! from a TOML token file that names several principals and holds only the
//! SHA-256 of each token:
//!
//! ```toml
//! [[principals]]
//! name = "alice"
//! token_sha256 = "<hex sha256 of the token>"
//! ```
//!
//! A presented token is hashed and compared with every principal's hash in
//! constant time (no early exit on the first match or mismatch). Tokens
//! are never logged; only principal names are.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::principal::Principal;

/// The environment variable holding the single-principal token.
pub const TOKEN_ENV: &str = "MEMORY_MCP_TOKEN";
/// The principal `MEMORY_MCP_TOKEN` authenticates.
pub const ENV_PRINCIPAL: &str = "token";
/// Names a token file may not give a principal (compared ignoring case):
/// the operator's.
pub const RESERVED_NAMES: &[&str] = &[crate::principal::LOCAL];

/// Why the HTTP transport's credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token file could not be read.
    #[error("reading the token file {path}: {source}")]
    Read {
        /// The token file.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The token file is not valid TOML of the expected shape, or names more than [`MAX_PRINCIPALS`] principals.
    #[error("the token file {path} is not valid: {message}")]
    Parse {
        /// The token file.
        path: String,
        /// What is wrong: the parser's message with line and column (never the offending line, which may hold a token), or the count over the limit.
        message: String,
    },
    /// The token file lists no principals, so nobody could connect.
    #[error("the token file {path} names no principals")]
    Empty {
        /// The token file.
        path: String,
    },
    /// One principal entry is invalid: a malformed, reserved or repeated name, a `token_sha256` that is not 64 hex digits, or a token another principal has.
    #[error("principal #{index} in {path}: {message}")]
    Principal {
        /// The token file.
        path: String,
        /// The entry's position in the file, counting from 1.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// `MEMORY_MCP_TOKEN` is set but empty or only whitespace (unset it or give a token).
    #[error("{TOKEN_ENV} is set but empty")]
    EmptyEnvToken,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    principals: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    token_sha256: String,
}

/// The principals and the SHA-256 of their tokens.
#[derive(Clone)]
pub struct Principals {
    entries: Vec<(Principal, [u8; 32])>,
}

impl std::fmt::Debug for Principals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the hashes stay out of logs too.
        f.debug_list().entries(self.entries.iter().map(|(p, _)| p.name())).finish()
    }
}

/// Most principals a token file may name.
pub const MAX_PRINCIPALS: usize = 1024;

impl Principals {
    /// One principal, `token`, from the plaintext token in the environment.
    pub fn from_token(token: &str) -> Result<Self, AuthError> {
        if token.trim().is_empty() {
            return Err(AuthError::EmptyEnvToken);
        }
        Ok(Self { entries: vec![(Principal::new(ENV_PRINCIPAL), sha256(token.as_bytes()))] })
    }

    /// The principals of a TOML token file.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: shown.clone(), source })?;
        Self::parse(&text, &shown)
    }

    /// The principals of a token file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Self, AuthError> {
        // Not the parser's Display: it quotes the offending line, which may
        // hold a plaintext token. Its message and line number only.
        let file: TokenFile = toml::from_str(text).map_err(|e| AuthError::Parse {
            path: path.into(),
            message: match e.span() {
                Some(span) => {
                    let (line, column) = line_and_column(text, span.start);
                    format!("line {line}, column {column}: {}", error_kind(e.message()))
                }
                None => error_kind(e.message()).into(),
            },
        })?;
        if file.principals.is_empty() {
            return Err(AuthError::Empty { path: path.into() });
        }
        if file.principals.len() > MAX_PRINCIPALS {
            return Err(AuthError::Parse {
                path: path.into(),
                message: format!("{} principals, over the limit of {MAX_PRINCIPALS}", file.principals.len()),
            });
        }
        let mut entries: Vec<(Principal, [u8; 32])> = Vec::with_capacity(file.principals.len());
        for (i, e) in file.principals.into_iter().enumerate() {
            let bad = |message: String| AuthError::Principal { path: path.into(), index: i + 1, message };
            let name = e.name.trim();
            // The value is not shown: a token pasted into the wrong key
            // would reach the log.
            if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
                return Err(bad(
                    "the name must be 1 to 64 characters of letters, digits, `-`, `_`, `.` or `@`".into(),
                ));
            }
            if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                return Err(bad(format!(
                    "the name `{name}` is reserved: `{}` is the operator (stdio, or loopback HTTP without \
                     tokens), who may change any plugin and reads every principal's audit",
                    crate::principal::LOCAL
                )));
            }
            let hash = decode_hex32(e.token_sha256.trim())
                .ok_or_else(|| bad("token_sha256 must be 64 hex digits (the SHA-256 of the token)".into()))?;
            if entries.iter().any(|(p, _)| p.name() == name) {
                return Err(bad(format!("the name `{name}` is used twice")));
            }
            if entries.iter().any(|(_, h)| bool::from(h.ct_eq(&hash))) {
                return Err(bad(format!("`{name}` has the same token as another principal")));
            }
            entries.push((Principal::new(name), hash));
        }
        Ok(Self { entries })
    }

    /// Number of principals (at most [`MAX_PRINCIPALS`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no principals (never true for a set built by `from_token` or `from_file`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal whose token this is. Every entry is compared, in
    /// constant time, whatever matched.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented = sha256(token.as_bytes());
        let mut found = None;
        for (principal, hash) in &self.entries {
            if bool::from(presented.ct_eq(hash)) {
                found = Some(principal);
            }
        }
        found.cloned()
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The kind of a parse error, in words of our own: the parser's message
/// quotes keys and values from the file (an unknown key, a value of the
/// wrong type), and a misplaced token would reach the log.
fn error_kind(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("unknown field") {
        "an unknown key (a principal has only `name` and `token_sha256`; the file only `[[principals]]`)"
    } else if m.contains("missing field `name`") {
        "a principal without `name`"
    } else if m.contains("missing field `token_sha256`") {
        "a principal without `token_sha256`"
    } else if m.contains("missing field") {
        "a required key is missing (`[[principals]]` with `name` and `token_sha256`)"
    } else if m.contains("invalid type") {
        "a value of the wrong type (`name` and `token_sha256` are strings, `principals` an array of tables)"
    } else if m.contains("duplicate key") {
        "a key given twice"
    } else {
        "not valid TOML"
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The hex SHA-256 of a token, as a token file holds it.
pub fn token_sha256_hex(token: &str) -> String {
    sha256(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_authenticates_each_principal_by_its_own_token() {
        let text = format!(
            "[[principals]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\n[[principals]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\n",
            token_sha256_hex("alice-secret"),
            token_sha256_hex("bob-secret").to_uppercase()
        );
        let p = Principals::parse(&text, "t.toml").unwrap();
        assert_eq!(p.authenticate("alice-secret").unwrap().name(), "alice");
        assert_eq!(p.authenticate("bob-secret").unwrap().name(), "bob");
        assert!(p.authenticate("alice-secret ").is_none());
        assert!(p.authenticate("").is_none());
    }

    #[test]
    fn bad_token_files_are_refused_with_the_reason() {
        for (text, want) in [
            ("", "names no principals"),
            ("[[principals]]\nname = \"a\"\ntoken_sha256 = \"abc\"\n", "64 hex digits"),
            ("[[principals]]\nname = \"a\"\ntoken = \"plain\"\n", "an unknown key"),
            ("[[principals]]\nname = \"a b\"\ntoken_sha256 = \"".to_string().as_str(), "not valid"),
        ] {
            let e = Principals::parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let h = token_sha256_hex("x");
        let twice = format!("[[principals]]\nname = \"a\"\ntoken_sha256 = \"{h}\"\n[[principals]]\nname = \"b\"\ntoken_sha256 = \"{h}\"\n");
        assert!(Principals::parse(&twice, "t").unwrap_err().to_string().contains("same token"));
    }

    #[test]
    fn a_parse_error_names_the_line_but_never_quotes_it() {
        let secret = "plaintext-secret-token-123";
        for text in [
            format!("[[principals]]\nname = \"a\"\ntoken_sha256 = {secret}\n"),
            format!("[[principals]]\nname = \"a\"\ntoken = \"{secret}\"\n"),
            format!("[[principals]]\nname = \"a\"\ntoken_sha256 = \"{secret}\" x\n"),
            format!("principals = \"{secret}\"\n"),
            format!("[[principals]]\nname = \"{secret} x\"\ntoken_sha256 = \"{}\"\n", "0".repeat(64)),
            format!("[[principals]]\nname = \"a\"\ntoken_sha256 = \"{}\"\n[{secret}]\n", "0".repeat(64)),
            format!("[[principals]]\nname = \"a\"\ntoken_sha256 = \"{}\"\n{secret} = 1\n", "0".repeat(64)),
        ] {
            let e = Principals::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(!e.contains(secret), "{e}");
            assert!(e.contains("line ") || e.contains("principal #1"), "{e}");
        }
    }

    #[test]
    fn the_operators_name_is_reserved() {
        for name in ["local", "LOCAL"] {
            let text = format!("[[principals]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\n", "0".repeat(64));
            let e = Principals::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(e.contains("is reserved") && e.contains("operator"), "{e}");
        }
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(bearer(&v("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&v("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&v("Basic abc")), None);
        assert_eq!(bearer(&v("Bearer ")), None);
    }
}
