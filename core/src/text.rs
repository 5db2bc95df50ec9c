//! Escaping: HTML text and attribute values, and log fields.

/// Escapes `&<>"'` so that `value` is inert in HTML text and quoted attributes.
pub fn html(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value made safe for one log field: printable ASCII except space, `"`,
/// `%` and `\` is kept, the rest is percent-encoded (Apache would double a
/// backslash escape); cut at `max` bytes.
pub fn log_field(value: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max) + 3);
    for &b in value.iter().take(max) {
        if b.is_ascii_graphic() && !b"\"%\\".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if value.len() > max {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text() {
        assert_eq!(html(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(html("alice"), "alice");
    }

    #[test]
    fn log_fields() {
        assert_eq!(log_field(b"/app/x?y=1", 64), "/app/x?y=1");
        assert_eq!(log_field(b"/a b\r\n\"%\\", 64), "/a%20b%0D%0A%22%25%5C");
        assert_eq!(log_field(b"/abcdef", 3), "/ab...");
    }
}
