//! Enrollment: the `otpauth://` Key Uri Format URI, and QR codes of it for
//! a terminal and as inline SVG.

use std::fmt::Write as _;

use super::base32::base32_encode;
use super::TotpParams;

/// Percent-encodes everything but RFC 3986 unreserved characters (and `@`
/// where `keep_at`), as UTF-8; a space is `%20`, never `+`.
fn percent_encode(text: &str, keep_at: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') || (keep_at && byte == b'@') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The Key Uri Format enrollment URI:
/// `otpauth://totp/<Issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`.
/// Label and issuer are percent-encoded (a `:` inside either becomes `%3A`;
/// `@` stays literal in the label, as in the format's own example). An empty
/// issuer leaves out the prefix and the parameter. The result holds the
/// secret: show it to its owner, never log it.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8], params: TotpParams) -> String {
    let mut uri = String::from("otpauth://totp/");
    if !issuer.is_empty() {
        uri.push_str(&percent_encode(issuer, true));
        uri.push(':');
    }
    uri.push_str(&percent_encode(account, true));
    uri.push_str("?secret=");
    uri.push_str(&base32_encode(secret));
    if !issuer.is_empty() {
        uri.push_str("&issuer=");
        uri.push_str(&percent_encode(issuer, false));
    }
    let _ = write!(uri, "&algorithm={}&digits={}&period={}", params.algorithm.as_str(), params.digits, params.period);
    uri
}

/// `text` as a QR code for a terminal, two rows per line with half
/// blocks. Light modules are drawn (as `qrencode -t UTF8` does), so the
/// code reads on the usual dark terminal background.
pub fn qr_terminal(text: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
        .map_err(|e| format!("cannot encode as a QR code: {e}"))?;
    let width = code.width();
    let modules = code.to_colors();
    let quiet = 2usize;
    let size = width + 2 * quiet;
    let light = |x: usize, y: usize| {
        x < quiet
            || y < quiet
            || x >= quiet + width
            || y >= quiet + width
            || modules.get((y - quiet) * width + (x - quiet)) != Some(&qrcode::Color::Dark)
    };
    let mut out = String::with_capacity(size * (size / 2 + 1) * 3);
    for y in (0..size).step_by(2) {
        for x in 0..size {
            let top = light(x, y);
            let bottom = y + 1 >= size || light(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '\u{2588}',
                (true, false) => '\u{2580}',
                (false, true) => '\u{2584}',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// Light modules around the symbol (the QR specification's quiet zone).
const QUIET_ZONE: usize = 4;
/// Rendered size of one module in CSS pixels (the `width`/`height` attributes).
const MODULE_PX: usize = 4;

/// `text` as a QR code (error correction M) in one inline `<svg>` element:
/// a white background, one `<path>` of dark runs, a 4-module quiet zone,
/// `shape-rendering="crispEdges"`, and `title` as its accessible name. No
/// script, no `style` attribute, no XML prolog: fit for a page whose CSP
/// allows neither.
pub fn qr_svg(text: &str, title: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| format!("cannot encode as a QR code: {e}"))?;
    let width = code.width();
    let modules = code.to_colors();
    let dark = |x: usize, y: usize| modules.get(y * width + x) == Some(&qrcode::Color::Dark);
    let mut path = String::new();
    for y in 0..width {
        let mut x = 0;
        while x < width {
            if !dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < width && dark(x, y) {
                x += 1;
            }
            let run = x - start;
            let _ = write!(path, "M{} {}h{run}v1h-{run}z", start + QUIET_ZONE, y + QUIET_ZONE);
        }
    }
    let size = width + 2 * QUIET_ZONE;
    let px = size * MODULE_PX;
    let title = crate::text::html(title);
    Ok(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{px}" height="{px}""#,
            r#" role="img" aria-label="{title}" shape-rendering="crispEdges">"#,
            r##"<title>{title}</title><rect width="{size}" height="{size}" fill="#fff"/>"##,
            r##"<path fill="#000" d="{path}"/></svg>"##
        ),
        size = size,
        px = px,
        title = title,
        path = path
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Algorithm;
    use crate::totp::test_support::{p, seed, SHA1_6_30};

    #[test]
    fn otpauth_uri_encoding() {
        let uri = otpauth_uri("ACME Co", "john.doe@example.com", b"12345678901234567890", SHA1_6_30);
        assert_eq!(
            uri,
            "otpauth://totp/ACME%20Co:john.doe@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
        );
        let uri = otpauth_uri("Lab VPN: R&D/2+2=4?", "Zoë O'Brien", b"\x00", p(Algorithm::Sha512, 10, 60));
        assert_eq!(
            uri,
            "otpauth://totp/Lab%20VPN%3A%20R%26D%2F2%2B2%3D4%3F:Zo%C3%AB%20O%27Brien?secret=AA\
             &issuer=Lab%20VPN%3A%20R%26D%2F2%2B2%3D4%3F&algorithm=SHA512&digits=10&period=60"
        );
        assert_eq!(
            otpauth_uri("", "a@b", b"\x00", SHA1_6_30),
            "otpauth://totp/a@b?secret=AA&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("a@b c", false), "a%40b%20c");
        assert_eq!(percent_encode("-._~AZaz09", false), "-._~AZaz09");
    }

    #[test]
    fn qr_svg_is_one_compact_inline_element() {
        let uri = otpauth_uri("ACME Co", "jd@example.com", &seed(64), p(Algorithm::Sha512, 6, 30));
        let svg = qr_svg(&uri, "Scan <this> & \"enroll\"").unwrap();
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 "#), "{svg}");
        assert!(svg.ends_with("\"/></svg>"));
        assert_eq!(svg.matches("<path").count(), 1);
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.contains(r#"shape-rendering="crispEdges""#));
        assert!(svg.contains("<title>Scan &lt;this&gt; &amp; &quot;enroll&quot;</title>"));
        assert!(svg.contains(r#"aria-label="Scan &lt;this&gt; &amp; &quot;enroll&quot;""#));
        for forbidden in ["<?xml", "<script", "style=", "href", "<!"] {
            assert!(!svg.contains(forbidden), "{forbidden}");
        }
        // viewBox = modules + 2 * quiet zone; the first finder pattern starts at (4, 4).
        let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).unwrap();
        let size = code.width() + 8;
        assert!(svg.contains(&format!(r#"viewBox="0 0 {size} {size}""#)));
        assert!(svg.contains(r#"d="M4 4h7v1h-7z"#), "finder pattern's top row as one run");
        assert!(svg.len() < 20_000, "{} bytes", svg.len());
        // Re-drawing the path's runs gives back the module matrix exactly.
        let d = svg.split(" d=\"").nth(1).unwrap().trim_end_matches("\"/></svg>");
        let mut drawn = vec![false; code.width() * code.width()];
        for run in d.split('M').filter(|r| !r.is_empty()) {
            let nums: Vec<usize> = run
                .split(|c: char| !c.is_ascii_digit())
                .filter(|n| !n.is_empty())
                .map(|n| n.parse().unwrap())
                .collect();
            let (x, y, w) = (nums[0] - 4, nums[1] - 4, nums[2]);
            for dx in 0..w {
                drawn[y * code.width() + x + dx] = true;
            }
        }
        let expected: Vec<bool> = code.to_colors().iter().map(|c| *c == qrcode::Color::Dark).collect();
        assert_eq!(drawn, expected);
        // Too much data for any QR code is an error, not a panic.
        assert!(qr_svg(&"x".repeat(5000), "t").is_err());
    }
}
