//! Escaping of untrusted values for LDAP filters (RFC 4515) and DNs (RFC 4514).

/// Escapes a value for use inside a filter assertion: `*`, `(`, `)`, `\`,
/// NUL and every non-ASCII byte become `\XX`, so that no value can change
/// the filter's structure.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for &b in value.as_bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 | 0x80..=0xff => out.push_str(&format!("\\{b:02x}")),
            _ => out.push(char::from(b)),
        }
    }
    out
}

/// Escapes a value for use as an attribute value in a DN.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.len().saturating_sub(1);
    for (i, &b) in value.as_bytes().iter().enumerate() {
        let special = matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'=')
            || (i == 0 && (b == b' ' || b == b'#'))
            || (i == last && b == b' ');
        if b == 0 || b >= 0x80 {
            out.push_str(&format!("\\{b:02x}"));
        } else if special {
            out.push('\\');
            out.push(char::from(b));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4515_examples() {
        assert_eq!(
            filter_value("Parens R Us (for all your parenthetical needs)"),
            "Parens R Us \\28for all your parenthetical needs\\29"
        );
        assert_eq!(filter_value("*"), "\\2a");
        assert_eq!(filter_value("C:\\MyFile"), "C:\\5cMyFile");
        assert_eq!(filter_value("Lu\u{010d}i\u{0107}"), "Lu\\c4\\8di\\c4\\87");
        assert_eq!(filter_value("a\0b"), "a\\00b");
        assert_eq!(filter_value("alice"), "alice");
    }

    #[test]
    fn injection_attempts_stay_values() {
        let escaped = filter_value("*)(uid=*))(|(uid=*");
        assert!(!escaped.contains('(') && !escaped.contains(')') && !escaped.contains('*'), "{escaped}");
    }

    #[test]
    fn rfc4514_examples() {
        assert_eq!(dn_value("Sue, Grabbit and Runn"), "Sue\\, Grabbit and Runn");
        assert_eq!(dn_value("a+b=c"), "a\\+b\\=c");
        assert_eq!(dn_value(" lead"), "\\ lead");
        assert_eq!(dn_value("trail "), "trail\\ ");
        assert_eq!(dn_value("#hash"), "\\#hash");
        assert_eq!(dn_value("x\"<>;\\"), "x\\\"\\<\\>\\;\\\\");
        assert_eq!(dn_value("n\0l"), "n\\00l");
        assert_eq!(dn_value("Lu\u{010d}"), "Lu\\c4\\8d");
    }
}
