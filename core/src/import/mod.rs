//! Seed files of hardware TOTP tokens, as `twofactorctl import FILE` reads
//! them: the CSV lists token vendors ship, and PSKC (RFC 6030) key
//! containers, plain or password-protected.
//!
//! Import is all-or-nothing: the first bad record makes the whole parse fail
//! with an [`ImportError`] naming the record (`line 7`, `KeyPackage 3` or
//! `file`) and the problem, so the caller imports nothing. Error messages
//! never quote a secret.
//!
//! Every token must have: a serial (unique in the file, case-insensitively),
//! a secret of at least [`MIN_SECRET_LEN`] bytes, SHA1, SHA256 or SHA512,
//! 4, 6, 8 or 10 digits and a period of 30 or 60 seconds ([`PERIODS`]). A
//! user is optional (a token not yet assigned) but unique in the file
//! (case-insensitively) when given.
//!
//! The CSV reader is in `csv.rs`, the PSKC reader in `pskc.rs`; this file
//! holds what they share: the [`Seed`] they produce, [`ImportError`], the
//! checks every token passes, and [`detect_and_parse`], which picks the reader.

mod csv;
mod pskc;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::config::Algorithm;
use crate::secret::Secret;
use crate::totp::{TotpParams, DIGITS};

pub use csv::parse_csv;
pub use pskc::{parse_pskc, MAX_PBKDF2_ITERATIONS};

/// Shortest secret accepted, in bytes (80 bits).
pub const MIN_SECRET_LEN: usize = 10;

/// Time steps accepted for hardware tokens, in seconds.
pub const PERIODS: [u32; 2] = [30, 60];

/// Largest file [`detect_and_parse`] looks at.
pub const MAX_FILE_LEN: usize = 16 << 20;

/// One token read from a seed file.
#[derive(Clone)]
pub struct Seed {
    /// Where it was read, for messages: the 1-based line of its CSV record,
    /// or the 1-based index of its PSKC `KeyPackage`.
    pub line: usize,
    pub serial: String,
    /// `None` for a token not yet assigned to anyone.
    pub user: Option<String>,
    pub secret: Secret,
    pub params: TotpParams,
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seed")
            .field("line", &self.line)
            .field("serial", &self.serial)
            .field("user", &self.user)
            .field("secret", &self.secret)
            .field("params", &self.params)
            .finish()
    }
}

/// Why a file was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// `line 7`, `KeyPackage 3` or `file`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ImportError {}

fn in_file(message: impl Into<String>) -> ImportError {
    ImportError { location: "file".to_string(), message: message.into() }
}

/// How records are numbered in a kind of file.
#[derive(Clone, Copy)]
enum Unit {
    Line,
    KeyPackage,
}

impl Unit {
    fn name(self, n: usize) -> String {
        match self {
            Unit::Line => format!("line {n}"),
            Unit::KeyPackage => format!("KeyPackage {n}"),
        }
    }

    fn also(self, n: usize) -> String {
        match self {
            Unit::Line => format!("also on line {n}"),
            Unit::KeyPackage => format!("also in KeyPackage {n}"),
        }
    }

    fn error(self, n: usize, message: impl Into<String>) -> ImportError {
        ImportError { location: self.name(n), message: message.into() }
    }
}

/// A value from the file, made safe to quote in a message: at most 80
/// characters, control characters replaced. Never used on secrets.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
    if value.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------
// Values shared by both formats

/// `SHA1`, `sha-256`, `HMAC-SHA512`, `HmacSHA1`, `hmac_sha_256`, ...
fn parse_algorithm(text: &str) -> Option<Algorithm> {
    let compact: String =
        text.chars().filter(|c| !matches!(c, '-' | '_' | ' ')).collect::<String>().to_ascii_uppercase();
    Algorithm::parse(compact.strip_prefix("HMAC").unwrap_or(&compact))
}

fn parse_digits(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|d| DIGITS.contains(d))
        .ok_or_else(|| format!("bad digits '{}' (4, 6, 8 or 10)", shown(text)))
}

fn parse_period(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|p| PERIODS.contains(p))
        .ok_or_else(|| format!("bad period '{}' (30 or 60)", shown(text)))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks_exact(2) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
            _ => return None,
        };
        out.push(hi << 4 | lo);
    }
    Some(std::mem::take(&mut *out))
}

fn checked_secret(secret: Secret) -> Result<Secret, String> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!("secret is too short: {} bytes (at least {MIN_SECRET_LEN})", secret.len()));
    }
    Ok(secret)
}

/// Serials and users end up in the directory and in log lines.
fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!("{what} '{}' contains control characters", shown(value)));
    }
    Ok(())
}

/// No serial, and no user, twice in one file (case-insensitively).
fn check_unique(seeds: &[Seed], unit: Unit) -> Result<(), ImportError> {
    let mut serials: HashMap<String, usize> = HashMap::new();
    let mut users: HashMap<String, usize> = HashMap::new();
    for seed in seeds {
        match serials.entry(seed.serial.to_lowercase()) {
            Entry::Occupied(first) => {
                let message = format!("duplicate serial '{}' ({})", shown(&seed.serial), unit.also(*first.get()));
                return Err(unit.error(seed.line, message));
            }
            Entry::Vacant(slot) => {
                slot.insert(seed.line);
            }
        }
        if let Some(user) = &seed.user {
            match users.entry(user.to_lowercase()) {
                Entry::Occupied(first) => {
                    let message = format!("duplicate user '{}' ({})", shown(user), unit.also(*first.get()));
                    return Err(unit.error(seed.line, message));
                }
                Entry::Vacant(slot) => {
                    slot.insert(seed.line);
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Detection

/// Parses `bytes` as PSKC when, after an optional BOM and white space, it
/// starts with `<`; as CSV otherwise. UTF-8 (BOM optional) and UTF-16 with
/// a BOM are read. `password` is used only by an encrypted PSKC file.
pub fn detect_and_parse(bytes: &[u8], password: Option<&str>) -> Result<Vec<Seed>, ImportError> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(in_file(format!("too large: more than {} MiB", MAX_FILE_LEN >> 20)));
    }
    let text = decode_text(bytes)?;
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if body.trim_start().starts_with('<') {
        parse_pskc(body, password)
    } else {
        parse_csv(body)
    }
}

fn decode_text(bytes: &[u8]) -> Result<Zeroizing<String>, ImportError> {
    let utf16 = |big_endian: bool, body: &[u8]| -> Result<Zeroizing<String>, ImportError> {
        let units = body.chunks(2).map(|pair| match pair {
            [a, b] if big_endian => Ok(u16::from_be_bytes([*a, *b])),
            [a, b] => Ok(u16::from_le_bytes([*a, *b])),
            _ => Err(()),
        });
        let mut out = Zeroizing::new(String::with_capacity(body.len() / 2));
        for unit in char::decode_utf16(units.map_while(Result::ok)) {
            out.push(unit.map_err(|_| in_file("not valid UTF-16 text"))?);
        }
        if body.len() % 2 != 0 {
            return Err(in_file("not valid UTF-16 text (odd length)"));
        }
        Ok(out)
    };
    match bytes {
        [0xff, 0xfe, body @ ..] => utf16(false, body),
        [0xfe, 0xff, body @ ..] => utf16(true, body),
        _ => std::str::from_utf8(bytes)
            .map(|text| Zeroizing::new(text.to_string()))
            .map_err(|e| in_file(format!("not UTF-8 text (invalid byte at offset {})", e.valid_up_to()))),
    }
}

/// RFC 6238 seeds, their codes and the sample files, for the tests of every reader.
#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::totp::totp;

    /// RFC 6238 Appendix B seeds and their codes at T = 59 (8 digits).
    pub(super) const SEED_SHA1: &[u8] = b"12345678901234567890";
    pub(super) const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    pub(super) const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";
    pub(super) const RFC6238_SHA1_59: &str = "94287082";
    pub(super) const RFC6238_SHA256_59: &str = "46119246";
    pub(super) const RFC6238_SHA512_59: &str = "90693936";
    /// RFC 4226 Appendix D: HOTP of SEED_SHA1 at counter 0 (a 60 s step at T = 59).
    pub(super) const RFC4226_COUNT0: &str = "755224";

    pub(super) const HEADER_CSV: &str = include_str!("../../tests/data/import/header.csv");
    pub(super) const NO_HEADER_CSV: &str = include_str!("../../tests/data/import/no_header.csv");
    pub(super) const SEMICOLON_CSV: &str = include_str!("../../tests/data/import/semicolon.csv");
    pub(super) const ALGORITHMS_CSV: &str = include_str!("../../tests/data/import/algorithms.csv");
    pub(super) const FIGURE2: &str = include_str!("../../tests/data/import/rfc6030_figure2.xml");
    pub(super) const FIGURE2_TOTP: &str = include_str!("../../tests/data/import/rfc6030_figure2_totp.xml");
    pub(super) const FIGURE4: &str = include_str!("../../tests/data/import/rfc6030_figure4.xml");
    pub(super) const FIGURE5: &str = include_str!("../../tests/data/import/rfc6030_figure5.xml");
    pub(super) const FIGURE5_TOTP: &str = include_str!("../../tests/data/import/rfc6030_figure5_totp.xml");
    pub(super) const TOKEN2_STYLE: &[u8] = include_bytes!("../../tests/data/import/token2_style.xml");

    pub(super) fn params(algorithm: Algorithm, digits: u32, period: u32) -> TotpParams {
        TotpParams::new(algorithm, digits, period).unwrap()
    }

    pub(super) fn code(seed: &Seed) -> String {
        totp(seed.secret.expose(), seed.params, 59).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    // ----- detection -----

    #[test]
    fn detect_csv_pskc_and_encodings() {
        let seeds = detect_and_parse(HEADER_CSV.as_bytes(), None).unwrap();
        assert_eq!(seeds.len(), 5);
        let seeds = detect_and_parse(NO_HEADER_CSV.as_bytes(), Some("ignored")).unwrap();
        assert_eq!(seeds.len(), 4);
        let seeds = detect_and_parse(TOKEN2_STYLE, None).unwrap();
        assert_eq!(seeds.len(), 3);
        let with_bom = format!("\u{feff}\n  {FIGURE5_TOTP}");
        assert_eq!(code(&detect_and_parse(with_bom.as_bytes(), Some("qwerty")).unwrap()[0]), RFC6238_SHA1_59);
        // UTF-16 with a BOM, as spreadsheets save "Unicode text".
        for big_endian in [false, true] {
            let mut bytes = if big_endian { vec![0xfe, 0xff] } else { vec![0xff, 0xfe] };
            for unit in SEMICOLON_CSV.encode_utf16() {
                bytes.extend(if big_endian { unit.to_be_bytes() } else { unit.to_le_bytes() });
            }
            let seeds = detect_and_parse(&bytes, None).unwrap();
            assert_eq!(seeds[0].user.as_deref(), Some("Doe; John"));
            bytes.push(0);
            assert_eq!(detect_and_parse(&bytes, None).unwrap_err().location, "file");
        }
        assert_eq!(
            detect_and_parse(b"A,\xff\xfe,x", None).unwrap_err().to_string(),
            "file: not UTF-8 text (invalid byte at offset 2)"
        );
        let huge = vec![b'#'; MAX_FILE_LEN + 1];
        assert_eq!(detect_and_parse(&huge, None).unwrap_err().to_string(), "file: too large: more than 16 MiB");
    }

    // ----- output types -----

    #[test]
    fn debug_never_shows_the_secret() {
        let seeds = parse_csv(HEADER_CSV).unwrap();
        let debug = format!("{seeds:?}");
        assert!(debug.contains("T2-0001") && debug.contains("Secret(redacted)"), "{debug}");
        for leak in ["1234567890", "3132333435", "GEZDGNBV", "49, 50, 51"] {
            assert!(!debug.contains(leak), "{leak}: {debug}");
        }
    }
}
