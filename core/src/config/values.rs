//! Pure parsers for directive values: `&str -> Result<T, String>`.
//!
//! The error string says what is allowed; `ConfigError` adds the directive's
//! name and the offending value around it.

use std::net::IpAddr;
use std::time::Duration;

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `::1`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:192.0.2.1`) are compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `On`/`Off`, case-insensitive, as Apache's own flags.
pub fn on_off(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err("must be On or Off".into())
    }
}

/// `90s`, `10m`, `8h`, `30d` or plain seconds.
pub fn duration(value: &str) -> Result<Duration, String> {
    const ALLOWED: &str = "must be a duration such as 90s, 10m, 8h, 30d or plain seconds";
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    if digits.is_empty() || digits.len() > 9 {
        return Err(ALLOWED.into());
    }
    let n: u64 = digits.parse().map_err(|_| ALLOWED.to_string())?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(ALLOWED.into()),
    };
    Ok(Duration::from_secs(n * factor))
}

/// A duration within `[min, max]`; `bounds` is how the range reads in the message.
pub fn duration_in(value: &str, min: Duration, max: Duration, bounds: &str) -> Result<Duration, String> {
    let d = duration(value)?;
    if d < min || d > max {
        return Err(format!("must be a duration from {bounds}"));
    }
    Ok(d)
}

/// An integer within `[min, max]`.
pub fn integer_in(value: &str, min: u32, max: u32) -> Result<u32, String> {
    let allowed = || format!("must be an integer from {min} to {max}");
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(allowed());
    }
    let n: u32 = value.parse().map_err(|_| allowed())?;
    if n < min || n > max {
        return Err(allowed());
    }
    Ok(n)
}

/// An HTTP header field name (RFC 9110 token), at most 64 characters.
pub fn header_name(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(is_tchar) {
        return Err("must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, at most 64)".into());
    }
    Ok(value.to_string())
}

/// A cookie name (RFC 6265 token), at most 64 characters.
pub fn cookie_name(value: &str) -> Result<String, String> {
    // A token, as for header names; `$` would read as an RFC 2109 attribute.
    if value.is_empty() || value.len() > 64 || !value.bytes().all(is_tchar) || value.starts_with('$') {
        return Err("must be a cookie name (letters, digits and !#%&'*+-.^_`|~, at most 64)".into());
    }
    Ok(value.to_string())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An IP address or CIDR network.
pub fn ip_net(value: &str) -> Result<IpNet, String> {
    const ALLOWED: &str = "must be an IP address or a CIDR network such as 192.0.2.0/24 or 2001:db8::/32";
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| ALLOWED.to_string())?;
    let addr = addr.to_canonical();
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => integer_in(p, 0, u32::from(max)).map_err(|_| ALLOWED.to_string())? as u8,
    };
    Ok(IpNet { addr, prefix })
}

/// A URL path prefix such as `/2fa/`: absolute, no query, fragment, dot
/// segments, or characters that need escaping. Stored without a trailing
/// slash (`/2fa`), so that both `/2fa` and `/2fa/...` match it.
pub fn url_path_prefix(value: &str) -> Result<String, String> {
    const ALLOWED: &str = "must be an absolute URL path such as /2fa/ (letters, digits, - . _ ~ and /)";
    let ok_chars = value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    let dot_segment = value.split('/').any(|s| s == "." || s == "..");
    if !value.starts_with('/') || value.starts_with("//") || !ok_chars || dot_segment || value.contains("//") {
        return Err(ALLOWED.into());
    }
    let trimmed = value.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err("must not be / (the challenge needs its own path)".into());
    }
    Ok(trimmed.to_string())
}

/// An LDAP attribute description (RFC 4512 `descr`): a letter, then letters,
/// digits and hyphens.
pub fn attribute_name(value: &str) -> Result<String, String> {
    let mut bytes = value.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    if !first_ok || value.len() > 64 || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("must be an LDAP attribute name (a letter, then letters, digits or -)".into());
    }
    Ok(value.to_string())
}

/// Free text without control characters, at most `max` characters.
pub fn text(value: &str, max: usize) -> Result<String, String> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(format!("must be non-empty text of at most {max} characters without control characters"));
    }
    Ok(value.to_string())
}

/// An e-mail address, bare (`a@b.example`) or with a display name
/// (`Sign-in <a@b.example>`).
pub fn mail_address(value: &str) -> Result<String, String> {
    const ALLOWED: &str = "must be an e-mail address such as 2fa@example.org or \"Sign-in <2fa@example.org>\"";
    let addr = match (value.find('<'), value.strip_suffix('>')) {
        (Some(i), Some(rest)) => &rest[i + 1..],
        (None, None) => value,
        _ => return Err(ALLOWED.into()),
    };
    let valid = match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && addr.bytes().all(|b| b.is_ascii_graphic() && !b"<>()[],;:\\\"".contains(&b))
        }
        None => false,
    };
    if !valid || value.chars().any(char::is_control) {
        return Err(ALLOWED.into());
    }
    Ok(value.to_string())
}

/// A DN given to a directive: non-empty, `attr=value` first, no control characters.
pub fn distinguished_name(value: &str) -> Result<String, String> {
    let first = value.split(',').next().unwrap_or("");
    let valid = first.split_once('=').is_some_and(|(a, v)| !a.trim().is_empty() && !v.is_empty());
    if !valid || value.chars().any(char::is_control) || value.len() > 1024 {
        return Err("must be a distinguished name such as cn=twofactor,ou=services,dc=example,dc=org".into());
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("90s", Some(90)),
            ("10m", Some(600)),
            ("8h", Some(28800)),
            ("30d", Some(2_592_000)),
            ("45", Some(45)),
            ("0", Some(0)),
            ("", None),
            ("m", None),
            ("10 m", None),
            ("10M", None),
            ("-5", None),
            ("1.5h", None),
            ("10w", None),
            ("9999999999", None),
        ];
        for (input, want) in cases {
            assert_eq!(duration(input).ok().map(|d| d.as_secs()), want, "{input:?}");
        }
    }

    #[test]
    fn bounded_duration_names_its_range() {
        let five_min = Duration::from_secs(300);
        assert!(duration_in("5m", Duration::ZERO, five_min, "0 to 5m").is_ok());
        let err = duration_in("6m", Duration::ZERO, five_min, "0 to 5m").unwrap_err();
        assert_eq!(err, "must be a duration from 0 to 5m");
    }

    #[test]
    fn integers() {
        assert_eq!(integer_in("5", 1, 20), Ok(5));
        assert!(integer_in("0", 1, 20).is_err());
        assert!(integer_in("21", 1, 20).is_err());
        assert!(integer_in("+5", 1, 20).is_err());
        assert!(integer_in("", 1, 20).is_err());
    }

    #[test]
    fn networks() {
        let net = ip_net("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped");
        let host = ip_net("127.0.0.1").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let any = ip_net("0.0.0.0/0").unwrap();
        assert!(any.contains("203.0.113.9".parse().unwrap()));
        assert!(!any.contains("2001:db8::1".parse().unwrap()));
        let v6 = ip_net("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0/8", "host.example", "::1/129", "10.0.0.0/", "10.0.0.0/-1"] {
            assert!(ip_net(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_and_cookie_names() {
        assert!(header_name("X-Remote-User").is_ok());
        assert!(header_name("X Remote").is_err());
        assert!(header_name("X-Remote:").is_err());
        assert!(header_name("").is_err());
        assert!(cookie_name("TwoFactorSession").is_ok());
        assert!(cookie_name("a=b").is_err());
        assert!(cookie_name("$Version").is_err());
    }

    #[test]
    fn challenge_paths() {
        assert_eq!(url_path_prefix("/2fa/").as_deref(), Ok("/2fa"));
        assert_eq!(url_path_prefix("/auth/second-factor").as_deref(), Ok("/auth/second-factor"));
        for bad in ["2fa/", "/", "//evil.example/", "/a/../b", "/a?b", "/a b", "/a%2f", "/a//b", "http://x/2fa/"] {
            assert!(url_path_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attribute_names() {
        assert!(attribute_name("mail").is_ok());
        assert!(attribute_name("extensionAttribute-1").is_ok());
        assert!(attribute_name("1mail").is_err());
        assert!(attribute_name("ma il").is_err());
        assert!(attribute_name("mail;binary").is_err());
    }

    #[test]
    fn mail_addresses() {
        assert!(mail_address("2fa@example.org").is_ok());
        assert!(mail_address("Sign-in <2fa@example.org>").is_ok());
        for bad in ["example.org", "@example.org", "a@b", "a@b.example>", "<a@b.example", "a b@c.example"] {
            assert!(mail_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns() {
        assert!(distinguished_name("cn=svc,dc=example,dc=org").is_ok());
        assert!(distinguished_name("svc").is_err());
        assert!(distinguished_name("=x").is_err());
    }
}
