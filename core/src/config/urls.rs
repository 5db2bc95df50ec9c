//! The two URL-valued directives: `TwoFactorLDAPURL` (RFC 4516) and
//! `TwoFactorSMTPServer`.

/// Search scope of the user lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Base,
    One,
    Sub,
}

/// One `ldap[s]://host[:port]/base?userattr?scope?filter` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub base: String,
    pub user_attribute: String,
    pub scope: Scope,
    pub filter: String,
}

impl LdapUrl {
    /// `ldap://host:port` (what the connection needs; the search part is shared).
    pub fn server(&self) -> String {
        let scheme = if self.tls { "ldaps" } else { "ldap" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// Whether two URLs name the same search (they may differ only in server).
    pub fn same_search(&self, other: &LdapUrl) -> bool {
        self.base == other.base
            && self.user_attribute == other.user_attribute
            && self.scope == other.scope
            && self.filter == other.filter
    }
}

const LDAP_ALLOWED: &str =
    "must be an LDAP URL such as ldap://ldap.example.org/ou=people,dc=example,dc=org?uid?sub?(objectClass=person)";

/// Parses an RFC 4516 URL. Defaults: port 389/636, attribute `uid`, scope
/// `sub`, filter `(objectClass=*)`. Extensions are refused rather than ignored.
pub fn ldap_url(value: &str) -> Result<LdapUrl, String> {
    let (tls, rest) = if let Some(r) = strip_prefix_ignore_case(value, "ldaps://") {
        (true, r)
    } else if let Some(r) = strip_prefix_ignore_case(value, "ldap://") {
        (false, r)
    } else {
        return Err(LDAP_ALLOWED.into());
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (host, port) = host_port(hostport, if tls { 636 } else { 389 }).ok_or(LDAP_ALLOWED)?;
    let mut parts = path.split('?');
    let base = percent_decode(parts.next().unwrap_or("")).ok_or(LDAP_ALLOWED)?;
    let attrs = parts.next().unwrap_or("");
    let scope = parts.next().unwrap_or("");
    let filter = parts.next().unwrap_or("");
    if parts.next().is_some_and(|ext| !ext.is_empty()) {
        return Err("LDAP URL extensions are not supported".into());
    }
    if base.is_empty() {
        return Err(format!("{LDAP_ALLOWED} (the search base is missing)"));
    }
    let user_attribute = match percent_decode(attrs).ok_or(LDAP_ALLOWED)?.as_str() {
        "" => "uid".to_string(),
        a if a.contains(',') => return Err("the LDAP URL must name exactly one username attribute".into()),
        a => super::values::attribute_name(a)?,
    };
    let scope = match scope.to_ascii_lowercase().as_str() {
        "" | "sub" => Scope::Sub,
        "one" => Scope::One,
        "base" => Scope::Base,
        _ => return Err("the LDAP URL scope must be base, one or sub".into()),
    };
    let filter = match percent_decode(filter).ok_or(LDAP_ALLOWED)?.as_str() {
        "" => "(objectClass=*)".to_string(),
        f if f.starts_with('(') && f.ends_with(')') && balanced(f) => f.to_string(),
        _ => return Err("the LDAP URL filter must be a parenthesised LDAP filter".into()),
    };
    Ok(LdapUrl { tls, host, port, base, user_attribute, scope, filter })
}

/// `smtp://[user@]host[:port]`, `smtps://...`, `smtp://...?tls=starttls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP: only sensible to a relay on the same host.
    Plain,
    StartTls,
    /// Implicit TLS (`smtps://`, port 465).
    Tls,
}

const SMTP_ALLOWED: &str = "must be smtp://host[:port], smtps://host[:port] or smtp://host[:port]?tls=starttls";

pub fn smtp_url(value: &str) -> Result<SmtpUrl, String> {
    let (implicit_tls, rest) = if let Some(r) = strip_prefix_ignore_case(value, "smtps://") {
        (true, r)
    } else if let Some(r) = strip_prefix_ignore_case(value, "smtp://") {
        (false, r)
    } else {
        return Err(SMTP_ALLOWED.into());
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(percent_decode(u).filter(|u| !u.is_empty()).ok_or(SMTP_ALLOWED)?), h),
        None => (None, authority),
    };
    let security = match (implicit_tls, query) {
        (true, None) => SmtpSecurity::Tls,
        (false, None) => SmtpSecurity::Plain,
        (false, Some(q)) if q.eq_ignore_ascii_case("tls=starttls") => SmtpSecurity::StartTls,
        _ => return Err(SMTP_ALLOWED.into()),
    };
    let default_port = if implicit_tls { 465 } else { 25 };
    let (host, port) = host_port(hostport, default_port).ok_or(SMTP_ALLOWED)?;
    Ok(SmtpUrl { security, host, port, user })
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &value[prefix.len()..])
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. The host is returned without brackets.
fn host_port(value: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        h.parse::<std::net::Ipv6Addr>().ok()?;
        (h, port)
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        }
    };
    let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
    };
    Some((host.to_string(), port))
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn balanced(filter: &str) -> bool {
    let mut depth: i32 = 0;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_url_full() {
        let u =
            ldap_url("ldaps://dir.example.org:1636/ou=people,dc=example,dc=org?sAMAccountName?one?(objectClass=user)")
                .unwrap();
        assert!(u.tls);
        assert_eq!(u.host, "dir.example.org");
        assert_eq!(u.port, 1636);
        assert_eq!(u.base, "ou=people,dc=example,dc=org");
        assert_eq!(u.user_attribute, "sAMAccountName");
        assert_eq!(u.scope, Scope::One);
        assert_eq!(u.filter, "(objectClass=user)");
        assert_eq!(u.server(), "ldaps://dir.example.org:1636");
    }

    #[test]
    fn ldap_url_defaults_and_escapes() {
        let u = ldap_url("ldap://127.0.0.1/ou=people,dc=example,dc=test").unwrap();
        assert_eq!((u.port, u.user_attribute.as_str(), u.scope), (389, "uid", Scope::Sub));
        assert_eq!(u.filter, "(objectClass=*)");
        let u = ldap_url("ldap://[::1]:3389/o=Acme%20Inc??base").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.base.as_str()), ("::1", 3389, "o=Acme Inc"));
        assert_eq!(u.server(), "ldap://[::1]:3389");
    }

    #[test]
    fn ldap_url_refusals() {
        for bad in [
            "http://x/dc=a",
            "ldap://",
            "ldap://host",
            "ldap://host:0/dc=a",
            "ldap://host:99999/dc=a",
            "ldap://host/dc=a?uid,cn",
            "ldap://host/dc=a?uid?deep",
            "ldap://host/dc=a?uid?sub?objectClass=*",
            "ldap://host/dc=a?uid?sub?((a=b)",
            "ldap://host/dc=a?uid?sub?(a=b)?x-ext",
            "ldap://ho st/dc=a",
            "ldap://host/dc=a%zz",
        ] {
            assert!(ldap_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn smtp_urls() {
        let u = smtp_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((u.security, u.host.as_str(), u.port, u.user), (SmtpSecurity::Plain, "127.0.0.1", 2525, None));
        let u = smtp_url("smtps://relay.example.org").unwrap();
        assert_eq!((u.security, u.port), (SmtpSecurity::Tls, 465));
        let u = smtp_url("smtp://2fa%40example.org@relay.example.org:587?tls=starttls").unwrap();
        assert_eq!(u.security, SmtpSecurity::StartTls);
        assert_eq!(u.user.as_deref(), Some("2fa@example.org"));
        for bad in ["relay:25", "smtps://h?tls=starttls", "smtp://h?tls=none", "smtp://:25", "smtp://@h"] {
            assert!(smtp_url(bad).is_err(), "{bad}");
        }
    }
}

/// `TwoFactorWebAuthnOrigin`: the origin the end user's browser shows
/// (the gateway's public one), `https://host[:port]`. `http://` only for
/// `localhost`, which browsers treat as secure (for trying it out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnOrigin {
    /// `https://gateway.example.org` or with `:port`, no trailing slash.
    pub origin: String,
    /// Lowercase host name.
    pub host: String,
}

impl WebAuthnOrigin {
    pub fn parse(value: &str) -> Result<WebAuthnOrigin, String> {
        const ALLOWED: &str = "must be an origin such as https://gateway.example.org[:port] \
                               (http:// only for localhost), without path, query or user";
        let lower = value.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").ok_or(ALLOWED)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\']) {
            return Err(ALLOWED.into());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port.parse().map_err(|_| ALLOWED)?;
                (host, Some(port))
            }
            None => (rest, None),
        };
        rp_id(host)
            .map_err(|_| format!("{ALLOWED}; the host must be a domain name (WebAuthn refuses IP addresses)"))?;
        match scheme {
            "https" => {}
            "http" if host == "localhost" => {}
            _ => return Err(ALLOWED.into()),
        }
        let origin = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        Ok(WebAuthnOrigin { origin, host: host.to_string() })
    }

    /// Whether `rp_id` may serve this origin: the host itself or a parent domain of it.
    pub fn accepts_rp_id(&self, rp_id: &str) -> bool {
        self.host == rp_id || self.host.strip_suffix(rp_id).is_some_and(|prefix| prefix.ends_with('.'))
    }
}

/// `TwoFactorWebAuthnRPID`: a domain name (lowercased), never an IP address.
pub fn rp_id(value: &str) -> Result<String, String> {
    const ALLOWED: &str = "must be a domain name such as example.org (not an IP address)";
    let lower = value.to_ascii_lowercase();
    let labels_ok = !lower.is_empty()
        && lower.len() <= 253
        && lower.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let numeric = lower.split('.').next_back().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if !labels_ok || numeric {
        return Err(ALLOWED.into());
    }
    Ok(lower)
}
