//! The strict request-path checker.
//!
//! mod_twofactor sits behind a reverse-proxy gateway. Apache decides which
//! `<Location>` (and so which protection) applies from its own reading of the
//! path, while the backend (Tomcat, WebLogic, IIS, ...) may read the same bytes
//! differently: `/public/..;/app/` is "somewhere under /public" to Apache but
//! `/app/` to Tomcat. Such "URL manipulation" lets a request reach a protected
//! application through an unprotected prefix. This module refuses every
//! request-target whose path could be resolved differently by the two sides.
//!
//! Only the path is checked; the query string is the application's business.
//!
//! # Check order
//!
//! The order is fixed so that a target with several problems always gets the
//! same reason in the log:
//!
//! 1. a raw `#` anywhere in the target → [`PathViolation::Fragment`];
//! 2. the target `*` (`OPTIONS *`) is accepted;
//! 3. the path is extracted ([`path_of_target`]); failure → [`PathViolation::NotAPath`];
//! 4. the path is scanned left to right, segment by segment (split on raw `/`).
//!    On reaching a segment, the dot-segment check runs first (a dot segment is
//!    the more telling reason than, say, the `;` of `..;`); then the segment's
//!    bytes are checked one by one, each escape `%XY` being one unit. For a
//!    byte, its own rule (encoded slash, control char, ...) comes before the
//!    UTF-8 check of the decoded stream. A UTF-8 sequence cut short by a `/`
//!    fails at that `/`; one cut short by the end of the path fails at the end.
//!    An overlong UTF-8 form of an ASCII character (`%c0%ae` is `.` to a
//!    lenient decoder) is one unit too, judged as that character: it can make
//!    a dot segment, an encoded `/` or `\`, or a NUL in either mode.

use std::fmt;

/// Why a request target was refused; `as_str()` gives a short stable kebab-case reason for log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathViolation {
    /// A `;` in the path (strict only): path parameters (`;jsessionid=`) are
    /// stripped by Java backends but kept by Apache.
    Semicolon,
    /// `%25` (strict only): double encoding, for backends that decode twice.
    EncodedPercent,
    /// `%2F`: Apache does not split segments on it, some backends do.
    EncodedSlash,
    /// `%5C`: IIS and others treat a decoded `\` as a separator.
    EncodedBackslash,
    /// `%3F` (strict only): becomes a query separator after a second decode.
    EncodedQuestion,
    /// `%23` (strict only): becomes a fragment after a second decode.
    EncodedHash,
    /// A raw or encoded NUL: C backends truncate the path there.
    Nul,
    /// A raw `\`: a separator for Windows backends, not for Apache.
    Backslash,
    /// A raw or encoded control character 0x01-0x1F or 0x7F (strict only).
    ControlChar,
    /// The decoded path is not UTF-8 (strict only): overlong forms such as
    /// `%c0%ae` decode to `.` in lenient decoders.
    InvalidUtf8,
    /// A `.` or `..` segment in any spelling (`%2e%2e`, `..;x`, ...).
    DotSegment,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A raw `#`: never sent by a browser, so only by someone probing.
    Fragment,
    /// Neither `*`, nor an origin-form path, nor an http(s) absolute-form URI.
    NotAPath,
}

impl PathViolation {
    /// A short, stable, kebab-case reason for log lines (and the payload list).
    pub fn as_str(self) -> &'static str {
        match self {
            PathViolation::Semicolon => "semicolon",
            PathViolation::EncodedPercent => "encoded-percent",
            PathViolation::EncodedSlash => "encoded-slash",
            PathViolation::EncodedBackslash => "encoded-backslash",
            PathViolation::EncodedQuestion => "encoded-question",
            PathViolation::EncodedHash => "encoded-hash",
            PathViolation::Nul => "nul",
            PathViolation::Backslash => "backslash",
            PathViolation::ControlChar => "control-char",
            PathViolation::InvalidUtf8 => "invalid-utf8",
            PathViolation::DotSegment => "dot-segment",
            PathViolation::BadEscape => "bad-escape",
            PathViolation::Fragment => "fragment",
            PathViolation::NotAPath => "not-a-path",
        }
    }
}

impl fmt::Display for PathViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for PathViolation {}

/// `raw` is the request-target exactly as received on the request line (Apache's r->unparsed_uri):
/// origin-form "/a/b?x=1", absolute-form "http://host:8080/a/b?x", or "*" (OPTIONS *).
/// `strict` is the TwoFactorStrictPath setting in effect.
///
/// See the module documentation for the rules and their order.
pub fn check_request_target(raw: &str, strict: bool) -> Result<(), PathViolation> {
    // Before anything else: path_of_target stops at '#', so a fragment would
    // otherwise hide whatever follows it.
    if raw.as_bytes().contains(&b'#') {
        return Err(PathViolation::Fragment);
    }
    if raw == "*" {
        return Ok(());
    }
    let path = path_of_target(raw).ok_or(PathViolation::NotAPath)?;
    if is_plain_path(path.as_bytes()) {
        return Ok(());
    }
    check_path(path.as_bytes(), strict)
}

/// The common case, decided in one pass: only unreserved characters and
/// `/`, and no segment that is `.` or `..`. Such a path has nothing any
/// rule looks at (no `%`, `;` or `\`), so it passes in both modes.
fn is_plain_path(path: &[u8]) -> bool {
    let mut segment_len = 0usize;
    let mut segment_dots = 0usize;
    for &b in path {
        match b {
            b'/' => {
                if segment_len > 0 && segment_len == segment_dots && segment_len <= 2 {
                    return false;
                }
                segment_len = 0;
                segment_dots = 0;
            }
            b'.' => {
                segment_len += 1;
                segment_dots += 1;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'~' => segment_len += 1,
            _ => return false,
        }
    }
    !(segment_len > 0 && segment_len == segment_dots && segment_len <= 2)
}

/// The path part of a request target (absolute-form -> its path, "" path -> "/"), without the query. None for "*" or unparseable.
///
/// The path also ends at a `#` (RFC 3986); [`check_request_target`] refuses
/// such targets anyway.
pub fn path_of_target(raw: &str) -> Option<&str> {
    let rest = if raw.starts_with('/') {
        raw
    } else {
        let after_scheme = strip_http_scheme(raw)?;
        // The authority is not ours to judge: it ends at the first '/', '?'
        // (or '#'), and a missing path means "/".
        match after_scheme.find(['/', '?', '#']) {
            Some(i) if after_scheme.as_bytes().get(i) == Some(&b'/') => after_scheme.get(i..)?,
            _ => return Some("/"),
        }
    };
    let end = rest.bytes().position(|b| b == b'?' || b == b'#').unwrap_or(rest.len());
    rest.get(..end)
}

/// `raw` without a leading `http://` or `https://` (scheme case-insensitive).
fn strip_http_scheme(raw: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = raw.get(..scheme.len())?;
        if head.eq_ignore_ascii_case(scheme) {
            raw.get(scheme.len()..)
        } else {
            None
        }
    })
}

/// Scans a path (bytes before the query) left to right.
fn check_path(path: &[u8], strict: bool) -> Result<(), PathViolation> {
    let mut utf8 = Utf8Stream::default();
    for (n, segment) in path.split(|&b| b == b'/').enumerate() {
        // The '/' in front of this segment belongs to the decoded stream too.
        if strict && n > 0 {
            utf8.feed(b'/')?;
        }
        if is_dot_segment(segment) {
            return Err(PathViolation::DotSegment);
        }
        check_segment(segment, strict, &mut utf8)?;
    }
    if strict {
        utf8.finish()?;
    }
    Ok(())
}

/// Whether a segment resolves to `.` or `..` once its path parameters are
/// cut off and it is decoded.
///
/// The cut happens at the first `;` raw or encoded as `%3B`: a backend that
/// decodes before stripping parameters reads `..%3Bx` as `..`. A dot may be
/// written raw, as `%2E`, or as an overlong UTF-8 form (`%c0%ae`), which
/// lenient decoders read as `.`. Without a buffer: such a segment can only
/// be one or two dot units.
fn is_dot_segment(segment: &[u8]) -> bool {
    let mut dots = 0usize;
    let mut i = 0usize;
    while i < segment.len() {
        let (unit, width) = match overlong_ascii(&segment[i..]).or_else(|| decoded_unit(&segment[i..])) {
            Some(unit) => unit,
            // A broken escape is no dot; check_segment reports it.
            None => return false,
        };
        match unit {
            b'.' => dots += 1,
            b';' => break,
            _ => return false,
        }
        if dots > 2 {
            return false;
        }
        i += width;
    }
    dots == 1 || dots == 2
}

/// The byte at the start of `s` as a decoder reads it (a raw byte or one
/// `%XY` escape) and how many bytes it spans; `None` for a broken escape.
fn decoded_unit(s: &[u8]) -> Option<(u8, usize)> {
    match s.first()? {
        b'%' => {
            let hi = s.get(1).copied().and_then(hex_value)?;
            let lo = s.get(2).copied().and_then(hex_value)?;
            Some(((hi << 4) | lo, 3))
        }
        &b => Some((b, 1)),
    }
}

/// An overlong UTF-8 form of an ASCII character at the start of `s`, raw or
/// escaped (`%c0%ae`, `%e0%80%ae`, `%f0%80%80%ae` are all `.` to a lenient
/// decoder): the character and how many bytes the form spans.
fn overlong_ascii(s: &[u8]) -> Option<(u8, usize)> {
    let (lead, mut width) = decoded_unit(s)?;
    let (len, mut value) = match lead {
        0xc0 | 0xc1 => (2, u32::from(lead & 0x1f)),
        0xe0 => (3, 0),
        0xf0 => (4, 0),
        _ => return None,
    };
    for _ in 1..len {
        let (next, w) = decoded_unit(&s[width..])?;
        if next & 0xc0 != 0x80 {
            return None;
        }
        value = (value << 6) | u32::from(next & 0x3f);
        width += w;
    }
    u8::try_from(value).ok().filter(|v| v.is_ascii()).map(|v| (v, width))
}

/// Checks the bytes of one segment (no `/` in it), feeding the decoded bytes
/// to the UTF-8 check when strict.
fn check_segment(segment: &[u8], strict: bool, utf8: &mut Utf8Stream) -> Result<(), PathViolation> {
    let mut i = 0usize;
    while let Some(&b) = segment.get(i) {
        if let Some((ascii, width)) = overlong_ascii(&segment[i..]) {
            // Judged as the character a lenient decoder makes of it; the
            // form itself is invalid UTF-8.
            check_encoded_byte(ascii, strict)?;
            if strict {
                return Err(PathViolation::InvalidUtf8);
            }
            i += width;
            continue;
        }
        let decoded = if b == b'%' {
            let Some((d, _)) = decoded_unit(&segment[i..]) else {
                return Err(PathViolation::BadEscape);
            };
            check_encoded_byte(d, strict)?;
            i += 3;
            d
        } else {
            check_raw_byte(b, strict)?;
            i += 1;
            b
        };
        if strict {
            utf8.feed(decoded)?;
        }
    }
    Ok(())
}

/// Rules for a byte as it appears on the wire (not `%`, not `/`).
fn check_raw_byte(b: u8, strict: bool) -> Result<(), PathViolation> {
    match b {
        0 => Err(PathViolation::Nul),
        b'\\' => Err(PathViolation::Backslash),
        b';' if strict => Err(PathViolation::Semicolon),
        _ if strict && is_control(b) => Err(PathViolation::ControlChar),
        _ => Ok(()),
    }
}

/// Rules for a byte written as `%XY`.
fn check_encoded_byte(d: u8, strict: bool) -> Result<(), PathViolation> {
    match d {
        0 => Err(PathViolation::Nul),
        b'/' => Err(PathViolation::EncodedSlash),
        b'\\' => Err(PathViolation::EncodedBackslash),
        b'%' if strict => Err(PathViolation::EncodedPercent),
        // `%3B` is the same path parameter as `;` once mod_proxy forwards it raw.
        b';' if strict => Err(PathViolation::Semicolon),
        b'?' if strict => Err(PathViolation::EncodedQuestion),
        b'#' if strict => Err(PathViolation::EncodedHash),
        _ if strict && is_control(d) => Err(PathViolation::ControlChar),
        _ => Ok(()),
    }
}

/// 0x01-0x1F and 0x7F (NUL has its own reason).
fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A byte-at-a-time UTF-8 validator (Unicode table 3-7: no overlong forms,
/// no surrogates, nothing above U+10FFFF), so that the decoded path never
/// needs a buffer.
#[derive(Default)]
struct Utf8Stream {
    /// Continuation bytes still expected.
    need: u8,
    /// Allowed range of the next continuation byte.
    lo: u8,
    hi: u8,
}

impl Utf8Stream {
    fn feed(&mut self, b: u8) -> Result<(), PathViolation> {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return Err(PathViolation::InvalidUtf8);
            }
            self.need -= 1;
            // Only the byte after the lead byte has a narrowed range.
            self.lo = 0x80;
            self.hi = 0xbf;
            return Ok(());
        }
        let (need, lo, hi) = match b {
            0x00..=0x7f => return Ok(()),
            0xc2..=0xdf => (1, 0x80, 0xbf),
            0xe0 => (2, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
            0xed => (2, 0x80, 0x9f),
            0xf0 => (3, 0x90, 0xbf),
            0xf1..=0xf3 => (3, 0x80, 0xbf),
            0xf4 => (3, 0x80, 0x8f),
            // Stray continuation bytes, overlong leads C0/C1, F5-FF.
            _ => return Err(PathViolation::InvalidUtf8),
        };
        *self = Utf8Stream { need, lo, hi };
        Ok(())
    }

    fn finish(&self) -> Result<(), PathViolation> {
        if self.need > 0 {
            Err(PathViolation::InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fast_path_agrees_with_the_full_check() {
        for path in [
            "/",
            "/app/index.html",
            "/a/.../b",
            "/a/.b",
            "/a/b.",
            "//x",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/-_~",
        ] {
            if super::is_plain_path(path.as_bytes()) {
                assert_eq!(super::check_path(path.as_bytes(), true), Ok(()), "{path}");
            }
        }
        assert!(super::is_plain_path(b"/app/index.html"));
        for path in ["/.", "/..", "/a/./b", "/a/../b", "/a/..", "/a;b", "/a%2e", "/a\\b"] {
            assert!(!super::is_plain_path(path.as_bytes()), "{path}");
        }
    }

    use super::*;

    const PAYLOADS: &str = include_str!("../../tests/data/strict-path-payloads.txt");

    const ALL: [PathViolation; 14] = [
        PathViolation::Semicolon,
        PathViolation::EncodedPercent,
        PathViolation::EncodedSlash,
        PathViolation::EncodedBackslash,
        PathViolation::EncodedQuestion,
        PathViolation::EncodedHash,
        PathViolation::Nul,
        PathViolation::Backslash,
        PathViolation::ControlChar,
        PathViolation::InvalidUtf8,
        PathViolation::DotSegment,
        PathViolation::BadEscape,
        PathViolation::Fragment,
        PathViolation::NotAPath,
    ];

    /// What the checker answers for one target in one mode.
    type Verdict = Result<(), PathViolation>;

    fn expected(word: &str, line: &str) -> Verdict {
        if word == "ok" {
            return Ok(());
        }
        match ALL.iter().find(|v| v.as_str() == word) {
            Some(v) => Err(*v),
            None => panic!("unknown expectation {word:?} in payload line {line:?}"),
        }
    }

    fn result_str(r: Verdict) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(v) => v.as_str(),
        }
    }

    /// (strict, non-strict, target) for every case line of the payload list.
    fn payload_cases() -> Vec<(Verdict, Verdict, &'static str)> {
        let mut cases = Vec::new();
        for line in PAYLOADS.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = trimmed.split_whitespace().collect();
            assert_eq!(cols.len(), 3, "payload line needs 3 columns: {line:?}");
            cases.push((expected(cols[0], line), expected(cols[1], line), cols[2]));
        }
        cases
    }

    #[test]
    fn payload_table() {
        let cases = payload_cases();
        assert!(cases.len() >= 60, "only {} payload cases", cases.len());
        let mut failures = Vec::new();
        for (strict, lenient, target) in &cases {
            let got_strict = check_request_target(target, true);
            let got_lenient = check_request_target(target, false);
            if got_strict != *strict || got_lenient != *lenient {
                failures.push(format!(
                    "{target}: expected {} {}, got {} {}",
                    result_str(*strict),
                    result_str(*lenient),
                    result_str(got_strict),
                    result_str(got_lenient),
                ));
            }
        }
        assert!(failures.is_empty(), "payload mismatches:\n{}", failures.join("\n"));
    }

    #[test]
    fn payload_table_covers_every_violation_in_both_modes_where_possible() {
        let cases = payload_cases();
        for v in ALL {
            assert!(cases.iter().any(|(s, _, _)| *s == Err(v)), "no strict case for {v}");
        }
        // Strict-only reasons never appear in the non-strict column.
        for (_, lenient, target) in &cases {
            if let Err(v) = lenient {
                assert!(
                    !matches!(
                        v,
                        PathViolation::Semicolon
                            | PathViolation::EncodedPercent
                            | PathViolation::EncodedQuestion
                            | PathViolation::EncodedHash
                            | PathViolation::ControlChar
                            | PathViolation::InvalidUtf8
                    ),
                    "{target}: strict-only reason {v} in the non-strict column"
                );
            }
        }
    }

    #[test]
    fn payload_targets_fit_on_a_request_line() {
        for (_, _, target) in payload_cases() {
            assert!(
                target.bytes().all(|b| b.is_ascii_graphic()),
                "{target:?} has a byte that cannot go on a request line"
            );
        }
    }

    #[test]
    fn non_strict_never_refuses_what_strict_accepts() {
        for (strict, lenient, target) in payload_cases() {
            if strict.is_ok() {
                assert!(lenient.is_ok(), "{target}");
            }
        }
    }

    #[test]
    fn raw_control_characters() {
        // These cannot go in the payload file (they would break its lines or
        // the request line), so they are checked here.
        for b in (1u8..0x20).chain([0x7f]) {
            let target = format!("/a{}b", char::from(b));
            assert_eq!(check_request_target(&target, true), Err(PathViolation::ControlChar), "{b:#x}");
            assert_eq!(check_request_target(&target, false), Ok(()), "{b:#x}");
        }
        for target in ["/a\0b", "/\0", "/a/..\0"] {
            assert_eq!(check_request_target(target, true), Err(PathViolation::Nul));
            assert_eq!(check_request_target(target, false), Err(PathViolation::Nul));
        }
        // Control characters in the query are not ours to judge.
        assert_eq!(check_request_target("/a?\r\n", true), Ok(()));
    }

    #[test]
    fn raw_non_ascii_is_fine() {
        assert_eq!(check_request_target("/café/ünïcode/€", true), Ok(()));
        // A raw multi-byte character after a dangling lead byte is still caught.
        assert_eq!(check_request_target("/%c3é", true), Err(PathViolation::InvalidUtf8));
        assert_eq!(check_request_target("/%c3é", false), Ok(()));
    }

    #[test]
    fn empty_and_odd_targets() {
        for target in ["", "?", "http:", "http:/", "ftp://h/", "\\a", "./a", "../a", "**"] {
            assert_eq!(check_request_target(target, true), Err(PathViolation::NotAPath), "{target:?}");
            assert_eq!(check_request_target(target, false), Err(PathViolation::NotAPath), "{target:?}");
        }
        assert_eq!(check_request_target("*", true), Ok(()));
        assert_eq!(check_request_target("*#", true), Err(PathViolation::Fragment));
    }

    #[test]
    fn left_to_right_order() {
        assert_eq!(check_request_target("/a%2f%zz", false), Err(PathViolation::EncodedSlash));
        assert_eq!(check_request_target("/a%zz%2f", false), Err(PathViolation::BadEscape));
        // The dot-segment check runs on reaching a segment, before its bytes.
        assert_eq!(check_request_target("/..;%zz", true), Err(PathViolation::DotSegment));
        // A truncated UTF-8 sequence fails at the following '/'.
        assert_eq!(check_request_target("/%c3/../", true), Err(PathViolation::InvalidUtf8));
        assert_eq!(check_request_target("/%c3/../", false), Err(PathViolation::DotSegment));
    }

    #[test]
    fn dot_segment_spellings() {
        let dots = [
            ".",
            "..",
            "%2e",
            "%2E",
            "%2e%2e",
            "%2E%2e",
            ".%2e",
            "%2e.",
            "..;",
            ".;",
            "..;x=1",
            "%2e;x",
            "..%3b",
            "..%3Bx",
            ".%3b",
            "%c0%ae",
            "%C0%AE%c0%ae",
            "%e0%80%ae",
            "%f0%80%80%ae",
            ".%c0%ae",
            "%c0%ae%c0%ae;x",
        ];
        for seg in dots {
            assert!(is_dot_segment(seg.as_bytes()), "{seg}");
        }
        let not_dots = [
            "",
            "...",
            "%2e%2e%2e",
            "..x",
            "x..",
            ".a",
            ";",
            ";..",
            "%3b..",
            "%2e%2",
            "..%",
            "%252e",
            "%c0%ae%c0%ae%c0%ae",
            "%c0%2e",
            "%c0%af",
            "%e0%80",
            ".%2f",
            "a;..",
        ];
        for seg in not_dots {
            assert!(!is_dot_segment(seg.as_bytes()), "{seg}");
        }
    }

    #[test]
    fn display_is_as_str() {
        for v in ALL {
            assert_eq!(v.to_string(), v.as_str());
            assert!(v.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
        let mut names: Vec<&str> = ALL.iter().map(|v| v.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn path_of_origin_form() {
        assert_eq!(path_of_target("/"), Some("/"));
        assert_eq!(path_of_target("/a/b"), Some("/a/b"));
        assert_eq!(path_of_target("/a/b?x=1"), Some("/a/b"));
        assert_eq!(path_of_target("/a/b?"), Some("/a/b"));
        assert_eq!(path_of_target("/?x"), Some("/"));
        assert_eq!(path_of_target("//a//b"), Some("//a//b"));
        assert_eq!(path_of_target("/a?b/c?d"), Some("/a"));
        assert_eq!(path_of_target("/a#f"), Some("/a"));
        assert_eq!(path_of_target("/a;x=1?y"), Some("/a;x=1"));
    }

    #[test]
    fn path_of_absolute_form() {
        assert_eq!(path_of_target("http://h/a/b?x"), Some("/a/b"));
        assert_eq!(path_of_target("http://host:8080/a/b?x"), Some("/a/b"));
        assert_eq!(path_of_target("HTTP://h:1/a"), Some("/a"));
        assert_eq!(path_of_target("hTtPs://h/a"), Some("/a"));
        assert_eq!(path_of_target("https://h"), Some("/"));
        assert_eq!(path_of_target("https://h?x=/y"), Some("/"));
        assert_eq!(path_of_target("https://h#/y"), Some("/"));
        assert_eq!(path_of_target("http://h/"), Some("/"));
        assert_eq!(path_of_target("http://u:p@h:80//x"), Some("//x"));
        assert_eq!(path_of_target("http://"), Some("/"));
        assert_eq!(path_of_target("http:///a"), Some("/a"));
    }

    #[test]
    fn path_of_unparseable() {
        for target in [
            "*",
            "",
            "a",
            "a/b",
            "?x",
            "http:",
            "http:/a",
            "http:h/a",
            "ftp://h/a",
            "httpx://h/a",
            "https:/",
            "ws://h/a",
            " /a",
            "é",
        ] {
            assert_eq!(path_of_target(target), None, "{target:?}");
        }
    }

    /// The streaming validator agrees with std on every 1- and 2-byte input,
    /// every 3-byte input with a multi-byte lead, and a spread of 4-byte ones.
    #[test]
    fn utf8_stream_matches_std() {
        fn stream_ok(bytes: &[u8]) -> bool {
            let mut s = Utf8Stream::default();
            bytes.iter().all(|&b| s.feed(b).is_ok()) && s.finish().is_ok()
        }
        for a in 0..=255u8 {
            assert_eq!(stream_ok(&[a]), std::str::from_utf8(&[a]).is_ok(), "{a:x}");
            for b in 0..=255u8 {
                let two = [a, b];
                assert_eq!(stream_ok(&two), std::str::from_utf8(&two).is_ok());
            }
        }
        let edges = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff];
        for a in 0xc0..=0xffu8 {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    let three = [a, b, c];
                    assert_eq!(stream_ok(&three), std::str::from_utf8(&three).is_ok());
                }
                for c in edges {
                    for d in edges {
                        let four = [a, b, c, d];
                        assert_eq!(stream_ok(&four), std::str::from_utf8(&four).is_ok());
                    }
                }
            }
        }
    }
}
