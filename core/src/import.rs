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
//! # CSV
//!
//! * Text in UTF-8 (a BOM is ignored); blank lines and lines whose first
//!   non-blank character is `#` are skipped (outside a quoted field).
//! * The separator is `,`, `;` or a tab: whichever occurs most often, outside
//!   quotes, in the first line that is not skipped (`,` on a tie or when none
//!   occurs).
//! * Fields may be quoted with `"`, a `""` inside standing for one `"`; quoted
//!   fields may hold separators and line breaks. Every field is trimmed of
//!   surrounding white space.
//! * **Header.** The first record is a header when at least one of its fields
//!   is a known column name *and* its second field is not a valid secret
//!   (no name can be one). Names are matched case-insensitively, ignoring
//!   spaces, `_`, `-` and `.`:
//!   `serial` | `serial number` | `serial no` | `sn`; `secret` | `seed` | `key`;
//!   `algorithm` | `algo` | `hash`; `digits`; `period` | `time step` | `interval`;
//!   `user` | `username` | `login`. The columns may come in any order;
//!   `serial` and `secret` are required; an unknown or repeated name is an
//!   error; an empty name marks a column that is ignored.
//! * Without a header the columns are, in this order,
//!   `serial, secret, algorithm, digits, period, user`; trailing ones may be
//!   left out.
//! * Empty or missing algorithm, digits and period mean SHA1, 6 and 30; an
//!   empty user means none. A record may not have more non-empty fields than
//!   there are columns.
//! * **Secrets** (white space anywhere is ignored):
//!   - `hex:` or `0x` prefix: hexadecimal;
//!   - `base32:` prefix: base32;
//!   - otherwise, exactly 40, 64 or 128 hexadecimal digits (the seed sizes of
//!     SHA1, SHA256 and SHA512): hexadecimal. These lengths are base32 of 25,
//!     40 and 80 bytes, which would also have to avoid every letter past `F`
//!     to be mistaken for hex;
//!   - anything else: RFC 4648 base32, either case, `=` padding optional.
//! * Algorithms: `SHA1`, `SHA256`, `SHA512` in any case, with or without
//!   `-`/`_`/spaces and an `HMAC` prefix (`HMAC-SHA1`, `sha-256`, `HmacSHA512`).
//!
//! # PSKC (RFC 6030)
//!
//! The root must be `KeyContainer` in the `urn:ietf:params:xml:ns:keyprov:pskc`
//! namespace; below it elements are matched by local name (vendors differ in
//! how they qualify the PBKDF2 parameters). DTDs are refused. Each
//! `KeyPackage` holds one `Key`:
//!
//! * `Key@Algorithm` must be TOTP (`…pskc:totp`, or any URI ending in `#totp`
//!   or `:totp`); HOTP and anything else are errors.
//! * Serial: `DeviceInfo/SerialNo`, else `Key@Id`. User: `Key/UserId`, else
//!   `DeviceInfo/UserId`.
//! * Digits: `AlgorithmParameters/ResponseFormat@Length` (default 6;
//!   `Encoding`, if given, must be `DECIMAL`). Hash: the text of
//!   `AlgorithmParameters/Suite` (or, when that is empty, a `Suite` attribute
//!   whose name contains `hash`), default SHA1.
//! * `Data/Secret` as base64 `PlainValue` or as `EncryptedValue`;
//!   `Data/TimeInterval/PlainValue` is the period (default 30); a
//!   `Data/Time/PlainValue` (T0) other than 0 is an error.
//!
//! Encrypted containers (RFC 6030 §6.2) are supported when password-based:
//! `EncryptionKey/DerivedKey` with PBKDF2 (`Salt/Specified`,
//! `IterationCount` up to [`MAX_PBKDF2_ITERATIONS`], optional `KeyLength`,
//! `PRF` HMAC-SHA1 by default, or HMAC-SHA256/384/512), values encrypted
//! with AES-128/192/256-CBC (the IV is the first 16 bytes of the
//! `CipherValue`, PKCS#7 padding), and a `MACMethod` (HMAC-SHA1, or
//! HMAC-SHA256/384/512) whose `MACKey` is itself encrypted under the derived
//! key. Each encrypted secret must carry a `ValueMAC`, the HMAC of its whole
//! `CipherValue` (IV included), which is checked in constant time before
//! anything is decrypted: a wrong password shows as "wrong password or
//! corrupted file", never as a garbage secret. Pre-shared-key and
//! certificate-based containers are refused ("only password-protected PSKC
//! is supported").

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use ring::{hmac, pbkdf2};
use roxmltree::Node;
use zeroize::Zeroizing;

use crate::config::Algorithm;
use crate::secret::Secret;
use crate::totp::{base32_decode, TotpParams, DIGITS};

/// Shortest secret accepted, in bytes (80 bits).
pub const MIN_SECRET_LEN: usize = 10;

/// Time steps accepted for hardware tokens, in seconds.
pub const PERIODS: [u32; 2] = [30, 60];

/// Largest file [`detect_and_parse`] looks at.
pub const MAX_FILE_LEN: usize = 16 << 20;

/// Upper bound on a PSKC file's PBKDF2 iteration count: a hostile file must
/// not keep the importer busy for hours.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Lengths of unprefixed secrets read as hex: 20, 32 and 64 bytes.
const HEX_LENGTHS: [usize; 3] = [40, 64, 128];

const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const PBKDF2_URIS: [&str; 2] =
    ["http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2", "http://www.w3.org/2009/xmlenc11#pbkdf2"];
const WRONG_PASSWORD: &str = "wrong password or corrupted file";

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

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| text.get(prefix.len()..)).flatten()
}

/// A secret as written in a CSV file: see the module documentation for the
/// hex/base32 rule. Messages never quote it.
fn decode_secret(text: &str) -> Result<Secret, String> {
    let compact: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    if compact.is_empty() {
        return Err("empty secret".to_string());
    }
    let bytes = if let Some(hex) =
        strip_prefix_ignore_case(&compact, "hex:").or_else(|| strip_prefix_ignore_case(&compact, "0x"))
    {
        hex_decode(hex).ok_or("secret is not valid hex (an even number of digits 0-9, a-f)")?
    } else if let Some(base32) = strip_prefix_ignore_case(&compact, "base32:") {
        base32_decode(base32).ok_or("secret is not valid base32")?
    } else if HEX_LENGTHS.contains(&compact.len()) && compact.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex_decode(&compact).ok_or("secret is not valid hex")?
    } else {
        base32_decode(&compact)
            .ok_or("secret is not valid base32 (hex secrets need 40, 64 or 128 digits, or a 'hex:' prefix)")?
    };
    checked_secret(Secret::new(bytes))
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

// ---------------------------------------------------------------------------
// CSV

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Serial,
    Secret,
    Algorithm,
    Digits,
    Period,
    User,
}

/// The columns of a file without a header.
const DEFAULT_COLUMNS: [Column; 6] =
    [Column::Serial, Column::Secret, Column::Algorithm, Column::Digits, Column::Period, Column::User];

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Serial => "serial",
            Column::Secret => "secret",
            Column::Algorithm => "algorithm",
            Column::Digits => "digits",
            Column::Period => "period",
            Column::User => "user",
        }
    }

    fn from_header(name: &str) -> Option<Column> {
        let key = name.chars().filter(|c| !matches!(c, ' ' | '_' | '-' | '.')).collect::<String>().to_lowercase();
        match key.as_str() {
            "serial" | "serialnumber" | "serialno" | "sn" => Some(Column::Serial),
            "secret" | "seed" | "key" => Some(Column::Secret),
            "algorithm" | "algo" | "hash" => Some(Column::Algorithm),
            "digits" => Some(Column::Digits),
            "period" | "timestep" | "interval" => Some(Column::Period),
            "user" | "username" | "login" => Some(Column::User),
            _ => None,
        }
    }
}

/// One CSV record: the line it starts on and its trimmed fields.
struct Record {
    line: usize,
    fields: Vec<String>,
}

fn is_skipped(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// The most frequent of `,`, `;` and tab outside quotes in the first line
/// that is not skipped; `,` on a tie.
fn detect_separator(text: &str) -> char {
    let first = text.lines().find(|line| !is_skipped(line)).unwrap_or("");
    let mut counts = [(',', 0usize), (';', 0), ('\t', 0)];
    let mut quoted = false;
    for c in first.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            for (separator, count) in counts.iter_mut() {
                if c == *separator {
                    *count += 1;
                }
            }
        }
    }
    let mut best = (',', 0);
    for (separator, count) in counts {
        if count > best.1 {
            best = (separator, count);
        }
    }
    best.0
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// In an unquoted field (or before a field's first character).
    Field,
    Quoted,
    /// Just after a quote inside a quoted field: an escaped `"` or the end of the field.
    AfterQuote,
}

fn read_records(text: &str, separator: char) -> Result<Vec<Record>, ImportError> {
    let mut records = Vec::new();
    // A record whose quoted field goes on past the end of its line.
    let mut open: Option<(usize, Vec<String>, String)> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let (start, mut fields, mut field, mut state) = match open.take() {
            Some((start, fields, mut field)) => {
                field.push('\n');
                (start, fields, field, State::Quoted)
            }
            None if is_skipped(line) => continue,
            None => (number, Vec::new(), String::new(), State::Field),
        };
        for c in line.chars() {
            match state {
                State::Field if c == separator => fields.push(std::mem::take(&mut field).trim().to_string()),
                State::Field if c == '"' && field.trim().is_empty() => {
                    field.clear();
                    state = State::Quoted;
                }
                State::Field | State::Quoted if c != '"' => field.push(c),
                State::Field => field.push(c),
                State::Quoted => state = State::AfterQuote,
                State::AfterQuote if c == '"' => {
                    field.push('"');
                    state = State::Quoted;
                }
                State::AfterQuote if c == separator => {
                    fields.push(std::mem::take(&mut field).trim().to_string());
                    state = State::Field;
                }
                State::AfterQuote if c.is_whitespace() => {}
                State::AfterQuote => {
                    return Err(Unit::Line.error(number, "unexpected text after a closing quote"));
                }
            }
        }
        if state == State::Quoted {
            open = Some((start, fields, field));
            continue;
        }
        fields.push(field.trim().to_string());
        records.push(Record { line: start, fields });
    }
    if let Some((start, ..)) = open {
        return Err(Unit::Line.error(start, "quoted field is never closed"));
    }
    Ok(records)
}

/// Whether the second field (the secret without a header) is a valid secret.
fn second_is_secret(record: &Record) -> bool {
    record.fields.get(1).is_some_and(|f| decode_secret(f).is_ok())
}

fn is_header(record: &Record) -> bool {
    record.fields.iter().any(|f| Column::from_header(f).is_some()) && !second_is_secret(record)
}

fn header_columns(record: &Record) -> Result<Vec<Option<Column>>, ImportError> {
    let mut columns: Vec<Option<Column>> = Vec::with_capacity(record.fields.len());
    for name in &record.fields {
        if name.is_empty() {
            columns.push(None);
            continue;
        }
        let column = Column::from_header(name).ok_or_else(|| {
            let known = DEFAULT_COLUMNS.map(Column::name).join(", ");
            Unit::Line.error(record.line, format!("unknown column '{}' in header (known: {known})", shown(name)))
        })?;
        if columns.contains(&Some(column)) {
            let message = format!("column '{}' in header repeats column '{}'", shown(name), column.name());
            return Err(Unit::Line.error(record.line, message));
        }
        columns.push(Some(column));
    }
    for required in [Column::Serial, Column::Secret] {
        if !columns.contains(&Some(required)) {
            return Err(Unit::Line.error(record.line, format!("header has no {} column", required.name())));
        }
    }
    Ok(columns)
}

fn csv_seed(record: &Record, columns: &[Option<Column>], header: bool) -> Result<Seed, String> {
    if let Some(extra) = record.fields.get(columns.len()..) {
        if extra.iter().any(|f| !f.is_empty()) {
            return Err(if header {
                format!("{} fields, but the header has {} columns", record.fields.len(), columns.len())
            } else {
                format!(
                    "{} fields, at most {} without a header ({})",
                    record.fields.len(),
                    columns.len(),
                    DEFAULT_COLUMNS.map(Column::name).join(", ")
                )
            });
        }
    }
    let value = |wanted: Column| -> &str {
        columns
            .iter()
            .zip(&record.fields)
            .find_map(|(column, field)| (*column == Some(wanted)).then_some(field.as_str()))
            .unwrap_or("")
    };
    let serial = value(Column::Serial);
    if serial.is_empty() {
        return Err("empty serial".to_string());
    }
    check_name("serial", serial)?;
    let secret = decode_secret(value(Column::Secret))?;
    let algorithm = match value(Column::Algorithm) {
        "" => Algorithm::Sha1,
        text => {
            parse_algorithm(text).ok_or_else(|| format!("bad algorithm '{}' (SHA1, SHA256 or SHA512)", shown(text)))?
        }
    };
    let digits = match value(Column::Digits) {
        "" => 6,
        text => parse_digits(text)?,
    };
    let period = match value(Column::Period) {
        "" => 30,
        text => parse_period(text)?,
    };
    let user = match value(Column::User) {
        "" => None,
        text => {
            check_name("user", text)?;
            Some(text.to_string())
        }
    };
    let params = TotpParams::new(algorithm, digits, period).map_err(|e| e.to_string())?;
    Ok(Seed { line: record.line, serial: serial.to_string(), user, secret, params })
}

/// Reads a CSV seed list; see the module documentation for the rules.
pub fn parse_csv(text: &str) -> Result<Vec<Seed>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = read_records(text, detect_separator(text))?;
    let Some((first, rest)) = records.split_first() else {
        return Err(in_file("no tokens: the file has no records"));
    };
    let header = is_header(first);
    let (columns, data) =
        if header { (header_columns(first)?, rest) } else { (DEFAULT_COLUMNS.map(Some).to_vec(), records.as_slice()) };
    let mut seeds = Vec::with_capacity(data.len());
    for record in data {
        let seed = csv_seed(record, &columns, header).map_err(|mut message| {
            if !header && record.line == first.line && !second_is_secret(first) {
                message.push_str(" (the first line was not read as a header: it has no known column names)");
            }
            Unit::Line.error(record.line, message)
        })?;
        seeds.push(seed);
    }
    if seeds.is_empty() {
        return Err(in_file("no tokens: the file has a header but no records"));
    }
    check_unique(&seeds, Unit::Line)?;
    Ok(seeds)
}

// ---------------------------------------------------------------------------
// PSKC

fn children<'a, 'input: 'a>(node: Node<'a, 'input>, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children().filter(move |n| n.is_element() && n.tag_name().name() == name)
}

fn child<'a, 'input: 'a>(node: Node<'a, 'input>, name: &'static str) -> Option<Node<'a, 'input>> {
    children(node, name).next()
}

/// The element's own text, trimmed.
fn text(node: Node<'_, '_>) -> String {
    node.children().filter(Node::is_text).filter_map(|n| n.text()).collect::<String>().trim().to_string()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD_PAD_INDIFFERENT.decode(compact).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    Aes128,
    Aes192,
    Aes256,
}

impl Cipher {
    fn from_uri(uri: &str) -> Option<Cipher> {
        match uri {
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => Some(Cipher::Aes128),
            "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => Some(Cipher::Aes192),
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => Some(Cipher::Aes256),
            _ => None,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128 => 16,
            Cipher::Aes192 => 24,
            Cipher::Aes256 => 32,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cipher::Aes128 => "aes128-cbc",
            Cipher::Aes192 => "aes192-cbc",
            Cipher::Aes256 => "aes256-cbc",
        }
    }

    /// AES-CBC with the IV in front and PKCS#7 padding; `None` for a wrong
    /// key length, a truncated value or bad padding.
    fn decrypt(self, key: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (iv, body) = data.split_at_checked(16)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = match self {
            Cipher::Aes128 => cbc_decrypt::<aes::Aes128>(key, iv, &mut buf)?,
            Cipher::Aes192 => cbc_decrypt::<aes::Aes192>(key, iv, &mut buf)?,
            Cipher::Aes256 => cbc_decrypt::<aes::Aes256>(key, iv, &mut buf)?,
        };
        buf.truncate(len);
        Some(buf)
    }
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Option<usize>
where
    C: cbc::cipher::BlockDecryptMut + cbc::cipher::BlockCipher + cbc::cipher::KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    decryptor.decrypt_padded_mut::<Pkcs7>(buf).ok().map(<[u8]>::len)
}

fn mac_algorithm(uri: &str) -> Option<hmac::Algorithm> {
    match uri {
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1" => Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256" => Some(hmac::HMAC_SHA256),
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384" => Some(hmac::HMAC_SHA384),
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512" => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

/// PBKDF2's PRF: HMAC-SHA1 when not stated, else named by the end of its URI.
fn prf_algorithm(uri: Option<&str>) -> Result<pbkdf2::Algorithm, String> {
    let Some(uri) = uri.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(pbkdf2::PBKDF2_HMAC_SHA1);
    };
    let lower = uri.to_ascii_lowercase();
    for (suffix, algorithm) in [
        ("hmac-sha1", pbkdf2::PBKDF2_HMAC_SHA1),
        ("hmac-sha256", pbkdf2::PBKDF2_HMAC_SHA256),
        ("hmac-sha384", pbkdf2::PBKDF2_HMAC_SHA384),
        ("hmac-sha512", pbkdf2::PBKDF2_HMAC_SHA512),
    ] {
        if lower.ends_with(suffix) {
            return Ok(algorithm);
        }
    }
    Err(format!("unsupported PBKDF2 PRF '{}'", shown(uri)))
}

/// The key derived from the password.
struct DerivedKey {
    bytes: Zeroizing<Vec<u8>>,
    /// The file stated `KeyLength`: the cipher must use exactly that.
    stated_len: bool,
}

impl DerivedKey {
    fn for_cipher(&self, cipher: Cipher) -> Result<&[u8], String> {
        if self.stated_len && self.bytes.len() != cipher.key_len() {
            return Err(format!(
                "PBKDF2 KeyLength {} does not fit {} ({} bytes)",
                self.bytes.len(),
                cipher.name(),
                cipher.key_len()
            ));
        }
        self.bytes.get(..cipher.key_len()).ok_or_else(|| format!("derived key too short for {}", cipher.name()))
    }
}

/// Everything needed to open an encrypted value.
struct Protection {
    key: DerivedKey,
    mac: hmac::Key,
}

/// `EncryptionKey/DerivedKey` with PBKDF2 → the derived key.
fn derive_key(derived: Node<'_, '_>, password: &str) -> Result<DerivedKey, String> {
    let method = child(derived, "KeyDerivationMethod").ok_or("DerivedKey has no KeyDerivationMethod")?;
    let algorithm = method.attribute("Algorithm").unwrap_or("").trim();
    if !PBKDF2_URIS.contains(&algorithm) {
        return Err(format!("unsupported key derivation '{}' (PBKDF2 only)", shown(algorithm)));
    }
    let params = child(method, "PBKDF2-params").ok_or("KeyDerivationMethod has no PBKDF2-params")?;
    let salt = child(params, "Salt").ok_or("PBKDF2-params has no Salt")?;
    let salt = child(salt, "Specified").ok_or("only a Specified PBKDF2 salt is supported")?;
    let salt = base64_decode(&text(salt)).filter(|s| !s.is_empty()).ok_or("PBKDF2 salt is empty or not base64")?;
    let iterations = child(params, "IterationCount").map(text).unwrap_or_default();
    let iterations =
        iterations.parse::<u32>().ok().filter(|n| *n <= MAX_PBKDF2_ITERATIONS).and_then(NonZeroU32::new).ok_or_else(
            || format!("bad PBKDF2 IterationCount '{}' (1 to {MAX_PBKDF2_ITERATIONS})", shown(&iterations)),
        )?;
    let stated_len = match child(params, "KeyLength") {
        Some(node) => {
            let value = text(node);
            let len = value.parse::<usize>().ok().filter(|l| [16, 24, 32].contains(l));
            Some(len.ok_or_else(|| format!("bad PBKDF2 KeyLength '{}' (16, 24 or 32)", shown(&value)))?)
        }
        None => None,
    };
    let prf = prf_algorithm(child(params, "PRF").and_then(|p| p.attribute("Algorithm")))?;
    let mut bytes = Zeroizing::new(vec![0u8; stated_len.unwrap_or(32)]);
    pbkdf2::derive(prf, iterations, &salt, password.as_bytes(), &mut bytes);
    Ok(DerivedKey { bytes, stated_len: stated_len.is_some() })
}

/// The cipher and the raw `CipherValue` (IV included) of an element shaped
/// like xenc's `EncryptedData` (`EncryptedValue`, `MACKey`).
fn encrypted_value(node: Node<'_, '_>) -> Result<(Cipher, Vec<u8>), String> {
    let uri = child(node, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or("encrypted value has no EncryptionMethod")?
        .trim();
    let cipher = Cipher::from_uri(uri)
        .ok_or_else(|| format!("unsupported encryption algorithm '{}' (AES-CBC only)", shown(uri)))?;
    let value = child(node, "CipherData").and_then(|d| child(d, "CipherValue")).ok_or("no CipherData/CipherValue")?;
    let data = base64_decode(&text(value)).ok_or("CipherValue is not base64")?;
    if data.len() < 32 || data.len() % 16 != 0 {
        return Err("CipherValue is not an IV followed by whole AES blocks".to_string());
    }
    Ok((cipher, data))
}

/// The container's `EncryptionKey` and `MACMethod`, opened with the password.
fn protection(root: Node<'_, '_>, encryption_key: Node<'_, '_>, password: Option<&str>) -> Result<Protection, String> {
    let Some(derived) = child(encryption_key, "DerivedKey") else {
        let how = if child(encryption_key, "KeyName").is_some() {
            " (this file is encrypted with a pre-shared key)"
        } else if child(encryption_key, "X509Data").is_some() {
            " (this file is encrypted to a certificate)"
        } else {
            ""
        };
        return Err(format!("only password-protected PSKC is supported{how}"));
    };
    let password = password.ok_or("the file is password-protected: a password is needed")?;
    let key = derive_key(derived, password)?;
    let method = child(root, "MACMethod").ok_or("the file is encrypted but has no MACMethod to check it with")?;
    let uri = method.attribute("Algorithm").unwrap_or("").trim();
    let algorithm = mac_algorithm(uri)
        .ok_or_else(|| format!("unsupported MAC algorithm '{}' (HMAC-SHA1/256/384/512)", shown(uri)))?;
    let mac_key = child(method, "MACKey").ok_or("MACMethod has no MACKey")?;
    let (cipher, data) = encrypted_value(mac_key).map_err(|e| format!("MACKey: {e}"))?;
    let mac_key = cipher.decrypt(key.for_cipher(cipher)?, &data).filter(|k| !k.is_empty()).ok_or(WRONG_PASSWORD)?;
    Ok(Protection { key, mac: hmac::Key::new(algorithm, &mac_key) })
}

/// `Data/Secret`: a base64 `PlainValue`, or an `EncryptedValue` whose
/// `ValueMAC` is checked before it is decrypted.
fn secret_value(secret: Node<'_, '_>, protection: Option<&Protection>) -> Result<Secret, String> {
    if let Some(plain) = child(secret, "PlainValue") {
        let value = Zeroizing::new(text(plain));
        let bytes = base64_decode(&value).ok_or("Secret/PlainValue is not base64")?;
        return checked_secret(Secret::new(bytes));
    }
    let encrypted = child(secret, "EncryptedValue").ok_or("Secret has neither PlainValue nor EncryptedValue")?;
    let protection = protection.ok_or("the secret is encrypted but the file has no EncryptionKey")?;
    let (cipher, data) = encrypted_value(encrypted)?;
    let mac = child(secret, "ValueMAC").ok_or("encrypted secret without a ValueMAC")?;
    let mac = base64_decode(&text(mac)).ok_or(WRONG_PASSWORD)?;
    // Constant time.
    hmac::verify(&protection.mac, &data, &mac).map_err(|_| WRONG_PASSWORD)?;
    let mut plain = cipher.decrypt(protection.key.for_cipher(cipher)?, &data).ok_or(WRONG_PASSWORD)?;
    checked_secret(Secret::new(std::mem::take(&mut *plain)))
}

/// An integer `Data` element (`TimeInterval`, `Time`).
fn plain_int(node: Node<'_, '_>, what: &str) -> Result<String, String> {
    if let Some(plain) = child(node, "PlainValue") {
        return Ok(text(plain));
    }
    if child(node, "EncryptedValue").is_some() {
        return Err(format!("encrypted {what} is not supported"));
    }
    Err(format!("{what} has no PlainValue"))
}

fn key_algorithm(key: Node<'_, '_>) -> Result<(), String> {
    let uri = key.attribute("Algorithm").map(str::trim).ok_or("Key has no Algorithm")?;
    let kind = uri.rsplit([':', '#']).next().unwrap_or("").to_ascii_lowercase();
    match kind.as_str() {
        "totp" => Ok(()),
        "hotp" => Err("HOTP tokens are not supported (only TOTP)".to_string()),
        _ => Err(format!("unsupported algorithm '{}' (only TOTP: {PSKC_NS}:totp)", shown(uri))),
    }
}

fn suite_hash(suite: Node<'_, '_>) -> Result<Algorithm, String> {
    let mut value = text(suite);
    if value.is_empty() {
        value = suite
            .attributes()
            .find(|a| a.name().to_ascii_lowercase().contains("hash"))
            .map(|a| a.value().trim().to_string())
            .unwrap_or_default();
    }
    if value.is_empty() {
        return Ok(Algorithm::Sha1);
    }
    parse_algorithm(&value).ok_or_else(|| format!("unsupported Suite '{}' (SHA1, SHA256 or SHA512)", shown(&value)))
}

fn response_digits(format: Node<'_, '_>) -> Result<u32, String> {
    if let Some(encoding) = format.attribute("Encoding").map(str::trim) {
        if !encoding.eq_ignore_ascii_case("DECIMAL") {
            return Err(format!("ResponseFormat Encoding '{}' is not supported (DECIMAL only)", shown(encoding)));
        }
    }
    if format.attribute("CheckDigits").is_some_and(|c| c.trim() == "true" || c.trim() == "1") {
        return Err("ResponseFormat CheckDigits is not supported".to_string());
    }
    parse_digits(format.attribute("Length").unwrap_or("").trim())
}

fn pskc_seed(package: Node<'_, '_>, index: usize, protection: Option<&Protection>) -> Result<Seed, String> {
    let mut keys = children(package, "Key");
    let key = keys.next().ok_or("KeyPackage has no Key")?;
    if keys.next().is_some() {
        return Err("KeyPackage has more than one Key".to_string());
    }
    key_algorithm(key)?;
    let device = child(package, "DeviceInfo");
    let serial = device
        .and_then(|d| child(d, "SerialNo"))
        .map(text)
        .filter(|s| !s.is_empty())
        .or_else(|| key.attribute("Id").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string))
        .ok_or("no DeviceInfo/SerialNo (and no Key Id)")?;
    check_name("serial", &serial)?;
    let user = child(key, "UserId")
        .map(text)
        .filter(|u| !u.is_empty())
        .or_else(|| device.and_then(|d| child(d, "UserId")).map(text).filter(|u| !u.is_empty()));
    if let Some(user) = &user {
        check_name("user", user)?;
    }
    let parameters = child(key, "AlgorithmParameters");
    let algorithm = match parameters.and_then(|p| child(p, "Suite")) {
        Some(suite) => suite_hash(suite)?,
        None => Algorithm::Sha1,
    };
    let digits = match parameters.and_then(|p| child(p, "ResponseFormat")) {
        Some(format) => response_digits(format)?,
        None => 6,
    };
    let data = child(key, "Data").ok_or("Key has no Data")?;
    let period = match child(data, "TimeInterval") {
        Some(interval) => parse_period(&plain_int(interval, "TimeInterval")?)?,
        None => 30,
    };
    if let Some(time) = child(data, "Time") {
        let t0 = plain_int(time, "Time")?;
        if t0.parse::<u64>() != Ok(0) {
            return Err(format!("Time (T0) '{}' is not supported (only 0)", shown(&t0)));
        }
    }
    let secret = secret_value(child(data, "Secret").ok_or("Key has no Data/Secret")?, protection)?;
    let params = TotpParams::new(algorithm, digits, period).map_err(|e| e.to_string())?;
    Ok(Seed { line: index, serial, user, secret, params })
}

/// Reads a PSKC (RFC 6030) key container; see the module documentation for
/// what is supported. `password` opens a password-protected container.
pub fn parse_pskc(xml: &str, password: Option<&str>) -> Result<Vec<Seed>, ImportError> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml).trim_start();
    let document = roxmltree::Document::parse(xml).map_err(|e| in_file(format!("not well-formed XML: {e}")))?;
    let root = document.root_element();
    if root.tag_name().name() != "KeyContainer" || root.tag_name().namespace() != Some(PSKC_NS) {
        return Err(in_file(format!(
            "not a PSKC document: the root element is <{}> in namespace '{}', not <KeyContainer> in '{PSKC_NS}'",
            shown(root.tag_name().name()),
            shown(root.tag_name().namespace().unwrap_or(""))
        )));
    }
    let protection = match child(root, "EncryptionKey") {
        Some(key) => Some(protection(root, key, password).map_err(in_file)?),
        None => None,
    };
    let mut seeds = Vec::new();
    for (i, package) in children(root, "KeyPackage").enumerate() {
        let index = i + 1;
        seeds.push(pskc_seed(package, index, protection.as_ref()).map_err(|m| Unit::KeyPackage.error(index, m))?);
    }
    if seeds.is_empty() {
        return Err(in_file("no tokens: the container has no KeyPackage"));
    }
    check_unique(&seeds, Unit::KeyPackage)?;
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::totp;

    /// RFC 6238 Appendix B seeds and their codes at T = 59 (8 digits).
    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";
    const RFC6238_SHA1_59: &str = "94287082";
    const RFC6238_SHA256_59: &str = "46119246";
    const RFC6238_SHA512_59: &str = "90693936";
    /// RFC 4226 Appendix D: HOTP of SEED_SHA1 at counter 0 (a 60 s step at T = 59).
    const RFC4226_COUNT0: &str = "755224";

    const HEADER_CSV: &str = include_str!("../tests/data/import/header.csv");
    const NO_HEADER_CSV: &str = include_str!("../tests/data/import/no_header.csv");
    const SEMICOLON_CSV: &str = include_str!("../tests/data/import/semicolon.csv");
    const ALGORITHMS_CSV: &str = include_str!("../tests/data/import/algorithms.csv");
    const FIGURE2: &str = include_str!("../tests/data/import/rfc6030_figure2.xml");
    const FIGURE2_TOTP: &str = include_str!("../tests/data/import/rfc6030_figure2_totp.xml");
    const FIGURE4: &str = include_str!("../tests/data/import/rfc6030_figure4.xml");
    const FIGURE5: &str = include_str!("../tests/data/import/rfc6030_figure5.xml");
    const FIGURE5_TOTP: &str = include_str!("../tests/data/import/rfc6030_figure5_totp.xml");
    const TOKEN2_STYLE: &[u8] = include_bytes!("../tests/data/import/token2_style.xml");

    fn params(algorithm: Algorithm, digits: u32, period: u32) -> TotpParams {
        TotpParams::new(algorithm, digits, period).unwrap()
    }

    fn code(seed: &Seed) -> String {
        totp(seed.secret.expose(), seed.params, 59).unwrap()
    }

    fn csv_error(text: &str) -> String {
        parse_csv(text).unwrap_err().to_string()
    }

    const B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    // ----- CSV -----

    #[test]
    fn csv_with_header_hex_and_base32_give_the_rfc6238_codes() {
        let seeds = parse_csv(HEADER_CSV).unwrap();
        let got: Vec<(usize, &str, Option<&str>, TotpParams)> =
            seeds.iter().map(|s| (s.line, s.serial.as_str(), s.user.as_deref(), s.params)).collect();
        assert_eq!(
            got,
            vec![
                (4, "T2-0001", Some("alice"), params(Algorithm::Sha1, 8, 30)),
                (5, "T2-0002", Some("bob"), params(Algorithm::Sha1, 8, 30)),
                (7, "T2-0003", Some("carol"), params(Algorithm::Sha256, 8, 30)),
                (8, "T2-0004", None, params(Algorithm::Sha512, 8, 30)),
                (9, "T2-0005", Some("dave"), params(Algorithm::Sha1, 6, 60)),
            ]
        );
        // 40 hex digits and spaced base32 are the same RFC 6238 seed.
        assert_eq!(seeds[0].secret.expose(), SEED_SHA1);
        assert_eq!(seeds[1].secret.expose(), SEED_SHA1);
        assert_eq!(code(&seeds[0]), RFC6238_SHA1_59);
        assert_eq!(code(&seeds[1]), RFC6238_SHA1_59);
        assert_eq!(seeds[2].secret.expose(), SEED_SHA256);
        assert_eq!(code(&seeds[2]), RFC6238_SHA256_59);
        assert_eq!(seeds[3].secret.expose(), SEED_SHA512);
        assert_eq!(code(&seeds[3]), RFC6238_SHA512_59);
        assert_eq!(seeds[4].secret.expose(), SEED_SHA1);
        assert_eq!(code(&seeds[4]), RFC4226_COUNT0);
    }

    #[test]
    fn csv_without_header_bom_defaults_and_spaces() {
        assert!(NO_HEADER_CSV.starts_with('\u{feff}'));
        let seeds = parse_csv(NO_HEADER_CSV).unwrap();
        assert_eq!(seeds.len(), 4);
        assert_eq!((seeds[0].line, seeds[0].serial.as_str(), seeds[0].user.as_deref()), (1, "SN100", None));
        assert_eq!(seeds[0].params, TotpParams::default());
        assert_eq!(seeds[0].secret.expose(), SEED_SHA1);
        assert_eq!(seeds[1].secret.expose(), b"abcdefghijklmnopqrst");
        assert_eq!(seeds[1].params, params(Algorithm::Sha256, 6, 30));
        assert_eq!(seeds[2].user.as_deref(), Some("erin"));
        assert_eq!(code(&seeds[2]), RFC6238_SHA1_59);
        // Lowercase base32, ten digits, a trailing empty field.
        assert_eq!(seeds[3].secret.expose(), SEED_SHA1);
        assert_eq!(seeds[3].params, params(Algorithm::Sha512, 10, 60));
        assert_eq!(seeds[3].user.as_deref(), Some("frank"));
    }

    #[test]
    fn csv_semicolons_quotes_crlf_and_a_reordered_header() {
        assert!(SEMICOLON_CSV.contains("\r\n"));
        let seeds = parse_csv(SEMICOLON_CSV).unwrap();
        assert_eq!(seeds.len(), 3);
        assert_eq!((seeds[0].line, seeds[0].serial.as_str()), (3, "A-1"));
        assert_eq!(seeds[0].user.as_deref(), Some("Doe; John"));
        assert_eq!(seeds[0].params, params(Algorithm::Sha1, 8, 30));
        assert_eq!(code(&seeds[0]), RFC6238_SHA1_59);
        assert_eq!(seeds[1].user.as_deref(), Some("O\"Brien"));
        assert_eq!(seeds[1].params, params(Algorithm::Sha256, 6, 60));
        assert_eq!(seeds[1].secret.expose(), SEED_SHA1);
        assert_eq!((seeds[2].serial.as_str(), seeds[2].user.as_deref()), ("A-3", None));
        assert_eq!(seeds[2].params, TotpParams::default());
        assert_eq!(seeds[2].secret.expose(), SEED_SHA1);
    }

    #[test]
    fn csv_every_algorithm_spelling() {
        let seeds = parse_csv(ALGORITHMS_CSV).unwrap();
        let algorithms: Vec<Algorithm> = seeds.iter().map(|s| s.params.algorithm).collect();
        let mut expected = vec![Algorithm::Sha1; 6];
        expected.extend([Algorithm::Sha256; 4]);
        expected.extend([Algorithm::Sha512; 4]);
        assert_eq!(algorithms, expected);
        for bad in ["MD5", "SHA3", "SHA-384", "HMAC", "SHA 1 1"] {
            assert_eq!(parse_algorithm(bad), None, "{bad}");
        }
    }

    #[test]
    fn csv_tabs_multiline_quotes_and_header_aliases() {
        let text = format!("SN\tKey\tUser Name\tAlgo\tInterval\tDIGITS\n  T-1 \t{B32}\t\" u1 \"\tsha1\t30\t4\n");
        let seeds = parse_csv(&text).unwrap();
        assert_eq!((seeds[0].serial.as_str(), seeds[0].user.as_deref()), ("T-1", Some("u1")));
        assert_eq!(seeds[0].params, params(Algorithm::Sha1, 4, 30));
        // A quoted field may span lines: one record, numbered by its first line...
        let text = format!("A,{B32},,,,\"two\n# not a comment\nlines\"\n\nB,{B32}\n");
        let records = read_records(&text, ',').unwrap();
        let lines: Vec<(usize, usize)> = records.iter().map(|r| (r.line, r.fields.len())).collect();
        assert_eq!(lines, vec![(1, 6), (5, 2)]);
        assert_eq!(records[0].fields[5], "two\n# not a comment\nlines");
        // ...but a user with a line break is refused.
        assert_eq!(csv_error(&text), "line 1: user 'two?# not a comment?lines' contains control characters");
        let seeds = parse_csv(&format!("serial_number,seed,login,time-step\nX,{B32},\"\",60\n")).unwrap();
        assert_eq!((seeds[0].user.as_deref(), seeds[0].params.period), (None, 60));
        // A comma inside a quoted field does not count towards the separator.
        let seeds = parse_csv(&format!("\"a,b,c\";{B32}\n")).unwrap();
        assert_eq!(seeds[0].serial, "a,b,c");
    }

    #[test]
    fn csv_secret_encodings() {
        let hex = "3132333435363738393031323334353637383930";
        for (text, expected) in [
            (B32, SEED_SHA1),
            ("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", SEED_SHA1),
            ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====", SEED_SHA256),
            (hex, SEED_SHA1),
            ("3132 3334 3536 3738 3930 3132 3334 3536 3738 3930", SEED_SHA1),
            ("HEX:3132333435363738393031323334353637383930", SEED_SHA1),
            ("hex:31323334353637383930", b"1234567890"),
            ("0x31323334353637383930", b"1234567890"),
            ("base32:GEZDGNBVGY3TQOJQ", b"1234567890"),
        ] {
            assert_eq!(decode_secret(text).unwrap().expose(), expected, "{text}");
        }
        // 32 hex digits are not one of the hex lengths: read as base32, where '1', '8', '9' and '0' are invalid.
        let error = decode_secret("31323334353637383930313233343536").unwrap_err();
        assert!(error.contains("not valid base32") && error.contains("'hex:' prefix"), "{error}");
        assert!(decode_secret("hex:313").unwrap_err().contains("not valid hex"));
        assert!(decode_secret("hex:31323334353637383G").unwrap_err().contains("not valid hex"));
        assert_eq!(decode_secret("  ").unwrap_err(), "empty secret");
        assert_eq!(decode_secret("GEZDGNBVGY3TQOI").unwrap_err(), "secret is too short: 9 bytes (at least 10)");
    }

    #[test]
    fn csv_bad_digits_names_its_line() {
        let text = include_str!("../tests/data/import/errors/bad_digits.csv");
        let error = parse_csv(text).unwrap_err();
        assert_eq!(error, ImportError { location: "line 5".into(), message: "bad digits '7' (4, 6, 8 or 10)".into() });
        assert_eq!(error.to_string(), "line 5: bad digits '7' (4, 6, 8 or 10)");
    }

    #[test]
    fn csv_bad_base32_does_not_quote_the_secret() {
        let text = include_str!("../tests/data/import/errors/bad_base32.csv");
        let error = csv_error(text);
        assert!(error.starts_with("line 3: secret is not valid base32"), "{error}");
        assert!(!error.contains("GEZD"), "{error}");
    }

    #[test]
    fn csv_duplicate_serial_names_both_lines() {
        let text = include_str!("../tests/data/import/errors/duplicate_serial.csv");
        assert_eq!(csv_error(text), "line 4: duplicate serial 's-1' (also on line 2)");
    }

    #[test]
    fn csv_duplicate_user_names_both_lines() {
        let text = include_str!("../tests/data/import/errors/duplicate_user.csv");
        assert_eq!(csv_error(text), "line 4: duplicate user 'Alice' (also on line 1)");
    }

    #[test]
    fn csv_short_secret() {
        let text = include_str!("../tests/data/import/errors/short_secret.csv");
        assert_eq!(csv_error(text), "line 3: secret is too short: 5 bytes (at least 10)");
    }

    #[test]
    fn csv_unknown_column_in_header() {
        let text = include_str!("../tests/data/import/errors/unknown_column.csv");
        assert_eq!(
            csv_error(text),
            "line 1: unknown column 'colour' in header (known: serial, secret, algorithm, digits, period, user)"
        );
    }

    #[test]
    fn csv_other_errors() {
        let cases = [
            (format!("A,{B32},MD5"), "line 1: bad algorithm 'MD5' (SHA1, SHA256 or SHA512)"),
            (format!("A,{B32},SHA1,6,45"), "line 1: bad period '45' (30 or 60)"),
            (format!("A,{B32},SHA1,six"), "line 1: bad digits 'six' (4, 6, 8 or 10)"),
            (format!("# c\n\nA,{B32}\n,{B32}"), "line 4: empty serial"),
            (format!("A,{B32}\nB,"), "line 2: empty secret"),
            (
                format!("A,{B32},SHA1,6,30,u,x"),
                "line 1: 7 fields, at most 6 without a header (serial, secret, algorithm, digits, period, user)",
            ),
            (format!("serial,secret\nA,{B32},x"), "line 2: 3 fields, but the header has 2 columns"),
            (format!("serial,user\nA,{B32}"), "line 1: header has no secret column"),
            (format!("serial,secret,seed\nA,{B32},{B32}"), "line 1: column 'seed' in header repeats column 'secret'"),
            (format!("A,\"{B32}\"x"), "line 1: unexpected text after a closing quote"),
            (format!("A,{B32}\nB,\"{B32}\nC,{B32}\n"), "line 2: quoted field is never closed"),
            (format!("A,{B32},,,,\"bad\u{7}user\""), "line 1: user 'bad?user' contains control characters"),
            ("".to_string(), "file: no tokens: the file has no records"),
            ("# nothing\n\n   \n".to_string(), "file: no tokens: the file has no records"),
            ("serial,secret\n".to_string(), "file: no tokens: the file has a header but no records"),
        ];
        for (text, expected) in cases {
            assert_eq!(csv_error(&text), expected, "{text:?}");
        }
        // A first line with no known names and no valid secret: the message says it was not taken for a header.
        let error = csv_error(&format!("Seriennummer,Geheimnis\nA,{B32}"));
        assert!(error.starts_with("line 1: secret is not valid base32"), "{error}");
        assert!(error.contains("not read as a header"), "{error}");
        // Any bad record fails the whole file, wherever it is.
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("T{i},{B32},SHA1,6,30,user{i}\n"));
        }
        assert_eq!(parse_csv(&text).unwrap().len(), 50);
        text.push_str(&format!("T50,{B32},SHA1,6,31,user50\n"));
        assert_eq!(csv_error(&text), "line 51: bad period '31' (30 or 60)");
    }

    #[test]
    fn csv_header_detection_does_not_eat_data() {
        // A user named like a column does not make the first record a header: its secret is valid.
        let seeds = parse_csv(&format!("A,{B32},,,,login\nB,{B32},,,,user\n")).unwrap();
        assert_eq!(seeds.len(), 2);
        assert_eq!(seeds[0].user.as_deref(), Some("login"));
        // Header names are matched case-insensitively and ignoring spaces, '_', '-', '.'.
        for name in ["Serial Number", "SERIAL_NO", "s.n", "serial-number", "sn"] {
            assert_eq!(Column::from_header(name), Some(Column::Serial), "{name}");
        }
        // An empty header name marks an ignored column.
        let seeds = parse_csv(&format!("serial,,secret\nA,whatever,{B32}\n")).unwrap();
        assert_eq!(seeds[0].secret.expose(), SEED_SHA1);
    }

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

    // ----- PSKC, plain -----

    #[test]
    fn pskc_rfc6030_figure2_is_hotp_and_refused() {
        let error = parse_pskc(FIGURE2, None).unwrap_err();
        assert_eq!(error.to_string(), "KeyPackage 1: HOTP tokens are not supported (only TOTP)");
    }

    #[test]
    fn pskc_rfc6030_figure2_as_totp() {
        let seeds = parse_pskc(FIGURE2_TOTP, None).unwrap();
        assert_eq!(seeds.len(), 1);
        let seed = &seeds[0];
        assert_eq!((seed.line, seed.serial.as_str()), (1, "987654321"));
        // Key/UserId wins over DeviceInfo/UserId.
        assert_eq!(seed.user.as_deref(), Some("UID=jsmith,DC=example-bank,DC=net"));
        assert_eq!(seed.params, params(Algorithm::Sha1, 8, 30));
        assert_eq!(seed.secret.expose(), SEED_SHA1);
        assert_eq!(code(seed), RFC6238_SHA1_59);
    }

    #[test]
    fn pskc_vendor_style_suites_and_users() {
        let seeds = detect_and_parse(TOKEN2_STYLE, None).unwrap();
        let got: Vec<(usize, &str, Option<&str>, TotpParams)> =
            seeds.iter().map(|s| (s.line, s.serial.as_str(), s.user.as_deref(), s.params)).collect();
        assert_eq!(
            got,
            vec![
                (1, "60234567", Some("alice"), params(Algorithm::Sha256, 6, 30)),
                (2, "60234568", Some("bob"), params(Algorithm::Sha512, 8, 30)),
                (3, "60234569", None, params(Algorithm::Sha1, 6, 60)),
            ]
        );
        assert_eq!(seeds[0].secret.expose(), SEED_SHA256);
        assert_eq!(code(&seeds[0]), &RFC6238_SHA256_59[2..]);
        assert_eq!(seeds[1].secret.expose(), SEED_SHA512);
        assert_eq!(code(&seeds[1]), RFC6238_SHA512_59);
        assert_eq!(code(&seeds[2]), RFC4226_COUNT0);
    }

    /// A one-KeyPackage container around `key` (the inside of `<Key>`) and `device`.
    fn plain_pskc(algorithm: &str, device: &str, key: &str) -> String {
        format!(
            r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage>
<DeviceInfo>{device}</DeviceInfo><Key Id="K1" Algorithm="{algorithm}">{key}</Key></KeyPackage></KeyContainer>"#
        )
    }

    const TOTP_URI: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";
    const SECRET_DATA: &str = "<Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret></Data>";

    #[test]
    fn pskc_plain_variants() {
        // No SerialNo: the Key Id. No AlgorithmParameters: 6 digits, SHA1, 30 s.
        let seeds = parse_pskc(&plain_pskc(TOTP_URI, "", SECRET_DATA), None).unwrap();
        assert_eq!((seeds[0].serial.as_str(), seeds[0].params), ("K1", TotpParams::default()));
        // The older '#totp' spelling; a hash given as a Suite attribute; unpadded base64.
        let key = r#"<AlgorithmParameters><Suite hashAlgo="SHA-256"/></AlgorithmParameters>
<Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA</PlainValue></Secret></Data>"#;
        let seeds = parse_pskc(&plain_pskc("urn:ietf:params:xml:ns:keyprov:pskc#totp", "", key), None).unwrap();
        assert_eq!(seeds[0].params.algorithm, Algorithm::Sha256);
        assert_eq!(seeds[0].secret.expose(), SEED_SHA1);
    }

    /// The error of a one-TOTP-key container whose `<Key>` holds `inside`.
    fn key_error(inside: &str) -> String {
        parse_pskc(&plain_pskc(TOTP_URI, "", inside), None).unwrap_err().to_string()
    }

    #[test]
    fn pskc_key_errors() {
        let format = |attributes: &str| {
            format!(r#"<AlgorithmParameters><ResponseFormat {attributes}/></AlgorithmParameters>{SECRET_DATA}"#)
        };
        let data =
            |more: &str| format!("<Data><Secret><PlainValue>{}</PlainValue></Secret>{more}</Data>", b64(SEED_SHA1));
        let cases = [
            (format(r#"Length="7" Encoding="DECIMAL""#), "bad digits '7' (4, 6, 8 or 10)"),
            (
                format(r#"Length="6" Encoding="HEXADECIMAL""#),
                "ResponseFormat Encoding 'HEXADECIMAL' is not supported (DECIMAL only)",
            ),
            (
                "<AlgorithmParameters><Suite>HMAC-MD5</Suite></AlgorithmParameters>".into(),
                "unsupported Suite 'HMAC-MD5' (SHA1, SHA256 or SHA512)",
            ),
            (data("<TimeInterval><PlainValue>45</PlainValue></TimeInterval>"), "bad period '45' (30 or 60)"),
            (data("<Time><PlainValue>1000</PlainValue></Time>"), "Time (T0) '1000' is not supported (only 0)"),
            (data("<TimeInterval><EncryptedValue/></TimeInterval>"), "encrypted TimeInterval is not supported"),
            ("<Data><TimeInterval><PlainValue>30</PlainValue></TimeInterval></Data>".into(), "Key has no Data/Secret"),
            (
                "<Data><Secret><PlainValue>MTIzNDU2Nzg5</PlainValue></Secret></Data>".into(),
                "secret is too short: 9 bytes (at least 10)",
            ),
            (
                "<Data><Secret><PlainValue>not*base64</PlainValue></Secret></Data>".into(),
                "Secret/PlainValue is not base64",
            ),
            (
                "<Data><Secret><EncryptedValue/></Secret></Data>".into(),
                "the secret is encrypted but the file has no EncryptionKey",
            ),
        ];
        for (inside, expected) in cases {
            assert_eq!(key_error(&inside), format!("KeyPackage 1: {expected}"), "{inside}");
        }
        let error = parse_pskc(&plain_pskc("urn:ietf:params:xml:ns:keyprov:pskc:ocra", "", SECRET_DATA), None);
        assert_eq!(
            error.unwrap_err().to_string(),
            "KeyPackage 1: unsupported algorithm 'urn:ietf:params:xml:ns:keyprov:pskc:ocra' \
             (only TOTP: urn:ietf:params:xml:ns:keyprov:pskc:totp)"
        );
    }

    #[test]
    fn pskc_container_errors() {
        let container = |inside: &str| format!(r#"<KeyContainer xmlns="{PSKC_NS}">{inside}</KeyContainer>"#);
        let error = |xml: &str| parse_pskc(xml, None).unwrap_err().to_string();
        assert_eq!(error(&container("")), "file: no tokens: the container has no KeyPackage");
        assert_eq!(error(&container("<KeyPackage/>")), "KeyPackage 1: KeyPackage has no Key");
        assert_eq!(
            error(r#"<KeyContainer xmlns="urn:other"/>"#),
            "file: not a PSKC document: the root element is <KeyContainer> in namespace 'urn:other', \
             not <KeyContainer> in 'urn:ietf:params:xml:ns:keyprov:pskc'"
        );
        // Two KeyPackages with the same serial, or the same user.
        let package = |serial: &str, user: &str| {
            format!(
                r#"<KeyPackage><DeviceInfo><SerialNo>{serial}</SerialNo><UserId>{user}</UserId></DeviceInfo>
                <Key Algorithm="{TOTP_URI}">{SECRET_DATA}</Key></KeyPackage>"#
            )
        };
        let xml = container(&[package("X", "a"), package("Y", "b"), package("x", "c")].concat());
        assert_eq!(error(&xml), "KeyPackage 3: duplicate serial 'x' (also in KeyPackage 1)");
        let xml = container(&[package("X", "a"), package("Y", "b"), package("Z", "B")].concat());
        assert_eq!(error(&xml), "KeyPackage 3: duplicate user 'B' (also in KeyPackage 2)");
        // Not XML, and XML with a DTD (entities are never expanded).
        assert!(error("<KeyContainer").starts_with("file: not well-formed XML"));
        let dtd = format!(r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>{}"#, container(""));
        assert!(error(&dtd).starts_with("file: not well-formed XML"), "{}", error(&dtd));
    }

    // ----- PSKC, encrypted -----

    #[test]
    fn pskc_rfc6030_figure5_published_vectors() {
        let document = roxmltree::Document::parse(FIGURE5).unwrap();
        let root = document.root_element();
        let derived = root.descendants().find(|n| n.tag_name().name() == "DerivedKey").unwrap();
        let key = derive_key(derived, "qwerty").unwrap();
        assert_eq!(key.bytes.as_slice(), &hex_decode("651e63cd57008476af1ff6422cd02e41").unwrap()[..]);
        let protection = protection(root, child(root, "EncryptionKey").unwrap(), Some("qwerty")).unwrap();
        let secret = root.descendants().find(|n| n.tag_name().name() == "Secret").unwrap();
        assert_eq!(secret_value(secret, Some(&protection)).unwrap().expose(), SEED_SHA1);
        // The published file itself is an HOTP key: refused as such, once the password opened it.
        assert_eq!(
            parse_pskc(FIGURE5, Some("qwerty")).unwrap_err().to_string(),
            "KeyPackage 1: HOTP tokens are not supported (only TOTP)"
        );
    }

    #[test]
    fn pskc_rfc6030_figure5_as_totp() {
        let seeds = parse_pskc(FIGURE5_TOTP, Some("qwerty")).unwrap();
        assert_eq!((seeds[0].serial.as_str(), seeds[0].user.as_deref()), ("987654321", None));
        assert_eq!(seeds[0].params, params(Algorithm::Sha1, 8, 30));
        assert_eq!(seeds[0].secret.expose(), SEED_SHA1);
        assert_eq!(code(&seeds[0]), RFC6238_SHA1_59);
        for wrong in ["qwertz", "", "QWERTY"] {
            let error = parse_pskc(FIGURE5_TOTP, Some(wrong)).unwrap_err();
            assert!(error.message == WRONG_PASSWORD, "{wrong}: {error}");
        }
        assert_eq!(
            parse_pskc(FIGURE5_TOTP, None).unwrap_err().to_string(),
            "file: the file is password-protected: a password is needed"
        );
    }

    #[test]
    fn pskc_pre_shared_key_is_refused() {
        assert_eq!(
            parse_pskc(FIGURE4, Some("anything")).unwrap_err().to_string(),
            "file: only password-protected PSKC is supported (this file is encrypted with a pre-shared key)"
        );
    }

    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::BlockEncryptMut;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Tamper {
        Nothing,
        /// One bit of the first secret's ValueMAC.
        Mac,
        /// One bit of the first secret's last ciphertext block.
        Ciphertext,
        /// One bit of the first secret's IV.
        Iv,
        /// One bit of the encrypted MAC key.
        MacKey,
        /// No ValueMAC at all.
        NoMac,
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn aes128_cbc(key: &[u8], iv: [u8; 16], plain: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; (plain.len() / 16 + 1) * 16];
        buf[..plain.len()].copy_from_slice(plain);
        let encryptor = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv).unwrap();
        let cipher = encryptor.encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len()).unwrap().to_vec();
        [iv.as_slice(), &cipher].concat()
    }

    /// A PSKC container protecting `tokens` (serial, user, secret) with
    /// PBKDF2-HMAC-SHA1 (`password`), AES-128-CBC and HMAC-SHA1, built the
    /// way RFC 6030 §6.2 describes, independently of the parser.
    fn encrypt_for_test(password: &str, tokens: &[(&str, &str, &[u8])], tamper: Tamper) -> String {
        let salt = b"\x12\x3e\xff\x3c\x4a\x72\x12\x9c";
        let iterations = 2000;
        let mut key = [0u8; 16];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA1,
            NonZeroU32::new(iterations).unwrap(),
            salt,
            password.as_bytes(),
            &mut key,
        );
        let mac_key = [0xa5u8; 20];
        let mut encrypted_mac_key = aes128_cbc(&key, [7; 16], &mac_key);
        if tamper == Tamper::MacKey {
            encrypted_mac_key[20] ^= 1;
        }
        let mac = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &mac_key);
        let mut packages = String::new();
        for (i, (serial, user, secret)) in tokens.iter().enumerate() {
            let mut cipher = aes128_cbc(&key, [i as u8 + 16; 16], secret);
            let mut value_mac = hmac::sign(&mac, &cipher).as_ref().to_vec();
            if i == 0 {
                match tamper {
                    Tamper::Mac => value_mac[3] ^= 0x80,
                    Tamper::Ciphertext => *cipher.last_mut().unwrap() ^= 1,
                    Tamper::Iv => cipher[0] ^= 1,
                    _ => {}
                }
            }
            let value_mac = if tamper == Tamper::NoMac {
                String::new()
            } else {
                format!("<pskc:ValueMAC>{}</pskc:ValueMAC>", b64(&value_mac))
            };
            packages.push_str(&format!(
                r#"
  <pskc:KeyPackage>
    <pskc:DeviceInfo><pskc:SerialNo>{serial}</pskc:SerialNo></pskc:DeviceInfo>
    <pskc:Key Id="{serial}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <pskc:AlgorithmParameters><pskc:ResponseFormat Length="8" Encoding="DECIMAL"/></pskc:AlgorithmParameters>
      <pskc:Data>
        <pskc:Secret>
          <pskc:EncryptedValue>
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>
          </pskc:EncryptedValue>
          {value_mac}
        </pskc:Secret>
        <pskc:TimeInterval><pskc:PlainValue>30</pskc:PlainValue></pskc:TimeInterval>
      </pskc:Data>
      <pskc:UserId>{user}</pskc:UserId>
    </pskc:Key>
  </pskc:KeyPackage>"#,
                b64(&cipher)
            ));
        }
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer Version="1.0" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"
    xmlns:xenc11="http://www.w3.org/2009/xmlenc11#"
    xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#"
    xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <pskc:EncryptionKey>
    <xenc11:DerivedKey>
      <xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
        <pkcs5:PBKDF2-params>
          <Salt><Specified>{}</Specified></Salt>
          <IterationCount>{iterations}</IterationCount>
          <KeyLength>16</KeyLength>
          <PRF/>
        </pkcs5:PBKDF2-params>
      </xenc11:KeyDerivationMethod>
    </xenc11:DerivedKey>
  </pskc:EncryptionKey>
  <pskc:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
    <pskc:MACKey>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>
    </pskc:MACKey>
  </pskc:MACMethod>{packages}
</pskc:KeyContainer>
"#,
            b64(salt),
            b64(&encrypted_mac_key)
        )
    }

    const TOKENS: [(&str, &str, &[u8]); 2] = [("E-1", "alice", SEED_SHA1), ("E-2", "bob", SEED_SHA512)];

    #[test]
    fn pskc_encrypted_round_trip() {
        let xml = encrypt_for_test("correct horse", &TOKENS, Tamper::Nothing);
        let seeds = parse_pskc(&xml, Some("correct horse")).unwrap();
        assert_eq!(seeds.len(), 2);
        assert_eq!((seeds[0].serial.as_str(), seeds[0].user.as_deref()), ("E-1", Some("alice")));
        assert_eq!(seeds[0].secret.expose(), SEED_SHA1);
        assert_eq!(code(&seeds[0]), RFC6238_SHA1_59);
        assert_eq!((seeds[1].serial.as_str(), seeds[1].user.as_deref()), ("E-2", Some("bob")));
        assert_eq!(seeds[1].secret.expose(), SEED_SHA512);
        // A password with non-ASCII characters is used as UTF-8.
        let xml = encrypt_for_test("pässwörd ✓", &TOKENS, Tamper::Nothing);
        assert_eq!(parse_pskc(&xml, Some("pässwörd ✓")).unwrap()[1].secret.expose(), SEED_SHA512);
    }

    #[test]
    fn pskc_encrypted_wrong_password_and_tampering_are_errors() {
        let xml = encrypt_for_test("correct horse", &TOKENS, Tamper::Nothing);
        let error = parse_pskc(&xml, Some("correct horsf")).unwrap_err();
        assert_eq!(error.message, WRONG_PASSWORD);
        for (tamper, location) in
            [(Tamper::Mac, "KeyPackage 1"), (Tamper::Ciphertext, "KeyPackage 1"), (Tamper::Iv, "KeyPackage 1")]
        {
            let xml = encrypt_for_test("correct horse", &TOKENS, tamper);
            let error = parse_pskc(&xml, Some("correct horse")).unwrap_err();
            assert_eq!(error.to_string(), format!("{location}: {WRONG_PASSWORD}"), "{tamper:?}");
        }
        // A damaged MAC key: either its padding breaks or every ValueMAC fails.
        let xml = encrypt_for_test("correct horse", &TOKENS, Tamper::MacKey);
        assert_eq!(parse_pskc(&xml, Some("correct horse")).unwrap_err().message, WRONG_PASSWORD);
        let xml = encrypt_for_test("correct horse", &TOKENS, Tamper::NoMac);
        assert_eq!(
            parse_pskc(&xml, Some("correct horse")).unwrap_err().to_string(),
            "KeyPackage 1: encrypted secret without a ValueMAC"
        );
    }

    #[test]
    fn pskc_encrypted_parameter_errors() {
        let xml = encrypt_for_test("pw", &TOKENS, Tamper::Nothing);
        let cases = [
            (
                "<IterationCount>2000</IterationCount>",
                "<IterationCount>0</IterationCount>",
                "file: bad PBKDF2 IterationCount '0' (1 to 10000000)",
            ),
            (
                "<IterationCount>2000</IterationCount>",
                "<IterationCount>4000000000</IterationCount>",
                "file: bad PBKDF2 IterationCount '4000000000' (1 to 10000000)",
            ),
            (
                "<KeyLength>16</KeyLength>",
                "<KeyLength>32</KeyLength>",
                "file: PBKDF2 KeyLength 32 does not fit aes128-cbc (16 bytes)",
            ),
            (
                "<KeyLength>16</KeyLength>",
                "<KeyLength>20</KeyLength>",
                "file: bad PBKDF2 KeyLength '20' (16, 24 or 32)",
            ),
            ("<PRF/>", r#"<PRF Algorithm="urn:example:md5"/>"#, "file: unsupported PBKDF2 PRF 'urn:example:md5'"),
            (
                "pkcs-5v2-0#pbkdf2\">",
                "pkcs-5v2-0#scrypt\">",
                "file: unsupported key derivation \
                 'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#scrypt' (PBKDF2 only)",
            ),
            (
                "xmldsig#hmac-sha1",
                "xmldsig#hmac-md5",
                "file: unsupported MAC algorithm 'http://www.w3.org/2000/09/xmldsig#hmac-md5' (HMAC-SHA1/256/384/512)",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(xml.contains(from), "{from}");
            let changed = xml.replacen(from, to, 1);
            assert_eq!(parse_pskc(&changed, Some("pw")).unwrap_err().to_string(), expected, "{to}");
        }
        // Without KeyLength the derived key fits the cipher; a stated PRF of HMAC-SHA1 is the default.
        let changed = xml.replacen("<KeyLength>16</KeyLength>", "", 1).replacen(
            "<PRF/>",
            r#"<PRF Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"/>"#,
            1,
        );
        assert_eq!(parse_pskc(&changed, Some("pw")).unwrap()[0].secret.expose(), SEED_SHA1);
        // Another cipher in the secret than the one the MAC key used.
        let changed = xml.replacen(
            r#"<pskc:EncryptedValue>
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>"#,
            r#"<pskc:EncryptedValue>
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#kw-aes128"/>"#,
            1,
        );
        assert_eq!(
            parse_pskc(&changed, Some("pw")).unwrap_err().to_string(),
            "KeyPackage 1: unsupported encryption algorithm 'http://www.w3.org/2001/04/xmlenc#kw-aes128' (AES-CBC only)"
        );
    }

    #[test]
    fn cipher_round_trips_for_every_key_size() {
        let data = aes128_cbc(&[9; 16], [3; 16], SEED_SHA1);
        assert_eq!(Cipher::Aes128.decrypt(&[9; 16], &data).unwrap().as_slice(), SEED_SHA1);
        assert!(Cipher::Aes128.decrypt(&[9; 15], &data).is_none());
        assert!(Cipher::Aes128.decrypt(&[9; 16], &data[..20]).is_none());
        assert!(Cipher::Aes192.decrypt(&[9; 24], &data).is_none_or(|p| p.as_slice() != SEED_SHA1));
        for (cipher, len) in [(Cipher::Aes128, 16), (Cipher::Aes192, 24), (Cipher::Aes256, 32)] {
            assert_eq!(cipher.key_len(), len);
            assert_eq!(Cipher::from_uri(&format!("http://www.w3.org/2001/04/xmlenc#{}", cipher.name())), Some(cipher));
        }
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
