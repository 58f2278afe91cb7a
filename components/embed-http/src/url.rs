//! The provider's base URL: scheme, authority and a path prefix.

use super::Failure;

/// A parsed base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub https: bool,
    /// `host:port`, the port explicit.
    pub authority: String,
    /// The base path without a trailing slash (may be empty).
    pub path: String,
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Self, Failure> {
        let bad = |why: &str| Failure::InvalidConfig(format!("base_url `{url}`: {why}"));
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(bad("needs a host, and no credentials, query or fragment"));
        }
        let has_port = match authority.rfind(':') {
            Some(i) => {
                !authority.ends_with(']') && {
                    authority[i + 1..].parse::<u16>().map_err(|_| bad("the port is not a number"))?;
                    true
                }
            }
            None => false,
        };
        let authority =
            if has_port { authority.to_string() } else { format!("{authority}:{}", if https { 443 } else { 80 }) };
        Ok(Self { https, authority: authority.to_ascii_lowercase(), path: path.trim_end_matches('/').to_string() })
    }

    /// The endpoint a redirect's `Location` points to, relative or absolute.
    pub fn redirect(&self, location: &str) -> Result<(Endpoint, String), Failure> {
        if location.starts_with("http://") || location.starts_with("https://") {
            let target = Endpoint::parse(location).map_err(|_| unusable(location))?;
            let path = if target.path.is_empty() { "/".to_string() } else { target.path.clone() };
            Ok((Endpoint { path: String::new(), ..target }, path))
        } else if location.starts_with('/') {
            Ok((Endpoint { path: String::new(), ..self.clone() }, location.to_string()))
        } else {
            Err(unusable(location))
        }
    }
}

/// A redirect the embedder cannot follow; the location (the provider's
/// header) goes to the log, not into the error.
fn unusable(location: &str) -> Failure {
    eprintln!("redirect to an unusable location `{}`", location.chars().take(300).collect::<String>());
    Failure::BadResponse("redirect to an unusable location".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_providers_use() {
        let e = Endpoint::parse("http://127.0.0.1:11434").unwrap();
        assert_eq!((e.https, e.authority.as_str(), e.path.as_str()), (false, "127.0.0.1:11434", ""));
        let e = Endpoint::parse("https://API.openai.com/v1/").unwrap();
        assert_eq!((e.https, e.authority.as_str(), e.path.as_str()), (true, "api.openai.com:443", "/v1"));
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://user:pw@x").is_err());
        assert!(Endpoint::parse("http://x:notaport").is_err());
        let (to, path) = e.redirect("http://evil.example:8080/steal").unwrap();
        assert_eq!((to.authority.as_str(), path.as_str()), ("evil.example:8080", "/steal"));
    }
}
