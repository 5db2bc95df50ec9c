//! The gateway's identity assertion: which header names are look-alikes of
//! a protected header, what a valid identity header looks like, and which
//! `Connection` values try to make a proxy drop a security header.

use crate::config::UsernamePattern;

/// Why an identity header was refused (`reason=bad-identity detail=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityError {
    Missing,
    Repeated,
    CommaJoined,
    NotUtf8,
    PatternMismatch,
}

impl IdentityError {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityError::Missing => "missing",
            IdentityError::Repeated => "repeated",
            IdentityError::CommaJoined => "comma-joined",
            IdentityError::NotUtf8 => "not-utf8",
            IdentityError::PatternMismatch => "pattern-mismatch",
        }
    }
}

/// Validates the values of the identity header (every occurrence, in
/// order) and returns the username. No trimming: a value with spaces is
/// refused by the pattern rather than silently repaired.
pub fn validate<'a>(values: &[&'a [u8]], pattern: &UsernamePattern) -> Result<&'a str, IdentityError> {
    let value = match values {
        [] => return Err(IdentityError::Missing),
        [one] => *one,
        _ => return Err(IdentityError::Repeated),
    };
    let value = std::str::from_utf8(value).map_err(|_| IdentityError::NotUtf8)?;
    if value.contains(',') {
        return Err(IdentityError::CommaJoined);
    }
    if !pattern.is_match(value) {
        return Err(IdentityError::PatternMismatch);
    }
    Ok(value)
}

/// Whether `name` would be read as `protected` by a lenient backend
/// (CGI-style `_` for `-`, any case) without being the same header to
/// Apache. Apache's tables already ignore case, so exact-case variants are
/// the same header and are handled as duplicates instead.
pub fn is_lookalike(name: &[u8], protected: &str) -> bool {
    name.len() == protected.len()
        && !name.eq_ignore_ascii_case(protected.as_bytes())
        && name.iter().zip(protected.bytes()).all(|(&a, b)| fold(a) == fold(b))
}

fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// WebLogic's plug-in headers (`WL-Proxy-Client-IP`, `WL-Proxy-SSL`, ...):
/// WebLogic trusts them, so only the gateway may send them.
pub fn is_weblogic_proxy_header(name: &[u8]) -> bool {
    const PREFIX: &[u8] = b"wl-proxy-";
    name.len() >= PREFIX.len() && name.iter().zip(PREFIX).all(|(&a, &b)| fold(a) == b)
}

/// Whether a `Connection` header value names one of the protected headers
/// (or a look-alike, or a WebLogic header): a hop-by-hop trick to make an
/// intermediary drop the gateway's header.
pub fn connection_names_protected(value: &[u8], protected: &[impl AsRef<str>]) -> bool {
    value.split(|&b| b == b',').map(trim_ascii).any(|token| {
        is_weblogic_proxy_header(token)
            || protected
                .iter()
                .map(AsRef::as_ref)
                .any(|p| token.eq_ignore_ascii_case(p.as_bytes()) || is_lookalike(token, p))
    })
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> UsernamePattern {
        UsernamePattern::new("^[A-Za-z0-9._@-]{1,64}$").unwrap()
    }

    #[test]
    fn identity_values() {
        let p = pattern();
        assert_eq!(validate(&[b"alice"], &p), Ok("alice"));
        assert_eq!(validate(&[b"alice@example.org"], &p), Ok("alice@example.org"));
        assert_eq!(validate(&[], &p), Err(IdentityError::Missing));
        assert_eq!(validate(&[b"alice", b"alice"], &p), Err(IdentityError::Repeated));
        assert_eq!(validate(&[b"alice,bob"], &p), Err(IdentityError::CommaJoined));
        assert_eq!(validate(&[b" alice"], &p), Err(IdentityError::PatternMismatch));
        assert_eq!(validate(&[b"alice "], &p), Err(IdentityError::PatternMismatch));
        assert_eq!(validate(&[b""], &p), Err(IdentityError::PatternMismatch));
        assert_eq!(validate(&[b"a*"], &p), Err(IdentityError::PatternMismatch));
        assert_eq!(validate(&[b"al\xffce"], &p), Err(IdentityError::NotUtf8));
        let long = "a".repeat(65);
        assert_eq!(validate(&[long.as_bytes()], &p), Err(IdentityError::PatternMismatch));
    }

    #[test]
    fn unanchored_patterns_match_whole_values() {
        let p = UsernamePattern::new("[a-z]+").unwrap();
        assert_eq!(validate(&[b"alice"], &p), Ok("alice"));
        assert_eq!(validate(&[b"alice)(uid=*"], &p), Err(IdentityError::PatternMismatch));
    }

    #[test]
    fn lookalikes() {
        assert!(is_lookalike(b"X_Remote_User", "X-Remote-User"));
        assert!(is_lookalike(b"x_remote-user", "X-Remote-User"));
        assert!(!is_lookalike(b"X-Remote-User", "X-Remote-User"), "the header itself");
        assert!(!is_lookalike(b"x-remote-user", "X-Remote-User"), "same header to Apache");
        assert!(!is_lookalike(b"X-Remote-Users", "X-Remote-User"));
        assert!(!is_lookalike(b"X-Remote-Usex", "X-Remote-User"));
    }

    #[test]
    fn weblogic_headers() {
        assert!(is_weblogic_proxy_header(b"WL-Proxy-Client-IP"));
        assert!(is_weblogic_proxy_header(b"wl_proxy_ssl"));
        assert!(!is_weblogic_proxy_header(b"WL-Proxy"));
        assert!(!is_weblogic_proxy_header(b"X-WL-Proxy-SSL"));
    }

    #[test]
    fn connection_tricks() {
        let protected = ["X-Remote-User", "X-Gateway-Secret"];
        assert!(connection_names_protected(b"close, X-Remote-User", &protected));
        assert!(connection_names_protected(b"keep-alive,x_remote_user", &protected));
        assert!(connection_names_protected(b"x-gateway-secret", &protected));
        assert!(connection_names_protected(b"WL-Proxy-Client-IP", &protected));
        assert!(!connection_names_protected(b"keep-alive", &protected));
        assert!(!connection_names_protected(b"close, Upgrade", &protected));
    }
}
