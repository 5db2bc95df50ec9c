//! `application/x-www-form-urlencoded` bodies and query strings.

/// Decoded `name=value` pairs, in order. Malformed escapes make the whole
/// form invalid (`None`): a clear 400 rather than a guess.
pub fn parse(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut fields = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        fields.push((decode(name)?, decode(value)?));
    }
    Some(fields)
}

/// The one value of `name`; `None` if absent or given more than once (a
/// security field must not be ambiguous).
pub fn single<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut values = fields.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

fn decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a value for a query string or form.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let f = parse(b"code=123+456&r=a.b&empty=&flag&x=%E2%9C%93").unwrap();
        assert_eq!(single(&f, "code"), Some("123 456"));
        assert_eq!(single(&f, "r"), Some("a.b"));
        assert_eq!(single(&f, "empty"), Some(""));
        assert_eq!(single(&f, "flag"), Some(""));
        assert_eq!(single(&f, "x"), Some("\u{2713}"));
        assert_eq!(single(&f, "missing"), None);
    }

    #[test]
    fn duplicates_are_ambiguous() {
        let f = parse(b"code=1&code=2").unwrap();
        assert_eq!(single(&f, "code"), None);
    }

    #[test]
    fn malformed() {
        assert!(parse(b"a=%zz").is_none());
        assert!(parse(b"a=%4").is_none());
        assert!(parse(b"a=%ff").is_none(), "not UTF-8");
        assert_eq!(parse(b"").unwrap(), vec![]);
    }

    #[test]
    fn encoding_round_trips() {
        let v = "a b&c=d/é";
        let f = parse(format!("v={}", encode(v)).as_bytes()).unwrap();
        assert_eq!(single(&f, "v"), Some(v));
    }
}
