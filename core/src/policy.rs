//! Pure decisions about how to answer a request that has no valid completion.

/// How to send away a request that lacks a valid completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A browser navigation: 303 to the challenge.
    Redirect,
    /// Another GET/HEAD (XHR, API client): 401, the page cannot be shown there.
    Unauthorized,
    /// Any other method: 403, a form post or API write never starts a challenge.
    Forbidden,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Redirect => 303,
            Refusal::Unauthorized => 401,
            Refusal::Forbidden => 403,
        }
    }
}

/// The answer for a request without a completion: only a navigation
/// (`GET`/`HEAD` accepting `text/html`, not marked as XHR) is redirected.
pub fn refusal(method: &str, accept: Option<&[u8]>, x_requested_with: Option<&[u8]>) -> Refusal {
    if method != "GET" && method != "HEAD" {
        return Refusal::Forbidden;
    }
    let xhr = x_requested_with.is_some_and(|v| v.eq_ignore_ascii_case(b"XMLHttpRequest"));
    if !xhr && accept.is_some_and(accepts_html) {
        Refusal::Redirect
    } else {
        Refusal::Unauthorized
    }
}

/// Whether an `Accept` value lists `text/html` with a non-zero quality.
pub fn accepts_html(accept: &[u8]) -> bool {
    accept.split(|&b| b == b',').any(|range| {
        let mut parts = range.split(|&b| b == b';');
        let media = parts.next().map(trim).unwrap_or_default();
        if !media.eq_ignore_ascii_case(b"text/html") {
            return false;
        }
        // q=0 means "not acceptable".
        !parts.map(trim).any(|p| {
            p.len() >= 3 && p[..2].eq_ignore_ascii_case(b"q=") && p[2..].iter().all(|&b| b == b'0' || b == b'.')
        })
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// Headers of every challenge page: never cached, never framed, no
/// scripts, forms post only to the challenge itself.
pub const PAGE_HEADERS: [(&std::ffi::CStr, &str); 5] = [
    (c"Cache-Control", "no-store"),
    (c"X-Content-Type-Options", "nosniff"),
    (c"X-Frame-Options", "DENY"),
    (c"Referrer-Policy", "no-referrer"),
    (
        c"Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
    ),
];

/// The policy of the passkey pages: the one script the handler serves
/// (no inline script), which may post to the challenge itself.
pub const SCRIPTED_PAGE_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER: &[u8] = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    #[test]
    fn navigations_are_redirected() {
        assert_eq!(refusal("GET", Some(BROWSER), None), Refusal::Redirect);
        assert_eq!(refusal("HEAD", Some(b"TEXT/HTML"), None), Refusal::Redirect);
    }

    #[test]
    fn xhr_and_api_get_401() {
        assert_eq!(refusal("GET", Some(BROWSER), Some(b"XMLHttpRequest")), Refusal::Unauthorized);
        assert_eq!(refusal("GET", Some(b"application/json"), None), Refusal::Unauthorized);
        assert_eq!(refusal("GET", Some(b"*/*"), None), Refusal::Unauthorized);
        assert_eq!(refusal("GET", None, None), Refusal::Unauthorized);
        assert_eq!(refusal("GET", Some(b"text/html;q=0, */*"), None), Refusal::Unauthorized);
        assert_eq!(refusal("GET", Some(b"text/html-fragment"), None), Refusal::Unauthorized);
    }

    #[test]
    fn other_methods_get_403() {
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "TRACE", "get"] {
            assert_eq!(refusal(m, Some(BROWSER), None), Refusal::Forbidden, "{m}");
        }
    }

    #[test]
    fn quality_values() {
        assert!(accepts_html(b"text/html;q=0.5"));
        assert!(accepts_html(b"text/html ; level=1"));
        assert!(!accepts_html(b"text/html;q=0.0"));
        assert!(!accepts_html(b"application/xhtml+xml"));
    }
}
