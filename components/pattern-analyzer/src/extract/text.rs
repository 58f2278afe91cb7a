//! Normalising free text into key parts, so "Retry in 5s" and "retry in 10s"
//! are one observation.

/// Longest normalised key part, in characters.
const MAX_KEY_PART_CHARS: usize = 80;

/// Lower case, runs of digits as `#`, whitespace collapsed, trimmed of
/// punctuation at the ends, at most 80 characters.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_KEY_PART_CHARS));
    let mut chars = 0;
    let mut last_space = true;
    let mut last_digit = false;
    for c in s.chars() {
        if chars >= MAX_KEY_PART_CHARS {
            break;
        }
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
                chars += 1;
            }
            last_space = true;
            last_digit = false;
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('#');
                chars += 1;
            }
            last_digit = true;
            last_space = false;
            continue;
        }
        out.extend(c.to_lowercase());
        chars += 1;
        last_space = false;
        last_digit = false;
    }
    out.trim_matches(|c: char| c.is_whitespace() || matches!(c, '.' | ',' | ';' | ':' | '!')).to_string()
}

/// `a → b → c`.
pub fn arrow_join(tools: &[String]) -> String {
    tools.join(" → ")
}
