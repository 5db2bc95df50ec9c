//! Reading the CSV seed lists token vendors ship.
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

use zeroize::Zeroizing;

use super::{
    check_name, check_unique, checked_secret, hex_decode, in_file, parse_algorithm, parse_digits, parse_period, shown,
    ImportError, Seed, Unit,
};
use crate::config::Algorithm;
use crate::secret::Secret;
use crate::totp::{base32_decode, TotpParams};

/// Lengths of unprefixed secrets read as hex: 20, 32 and 64 bytes.
const HEX_LENGTHS: [usize; 3] = [40, 64, 128];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::fixtures::*;

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
        let text = include_str!("../../tests/data/import/errors/bad_digits.csv");
        let error = parse_csv(text).unwrap_err();
        assert_eq!(error, ImportError { location: "line 5".into(), message: "bad digits '7' (4, 6, 8 or 10)".into() });
        assert_eq!(error.to_string(), "line 5: bad digits '7' (4, 6, 8 or 10)");
    }

    #[test]
    fn csv_bad_base32_does_not_quote_the_secret() {
        let text = include_str!("../../tests/data/import/errors/bad_base32.csv");
        let error = csv_error(text);
        assert!(error.starts_with("line 3: secret is not valid base32"), "{error}");
        assert!(!error.contains("GEZD"), "{error}");
    }

    #[test]
    fn csv_duplicate_serial_names_both_lines() {
        let text = include_str!("../../tests/data/import/errors/duplicate_serial.csv");
        assert_eq!(csv_error(text), "line 4: duplicate serial 's-1' (also on line 2)");
    }

    #[test]
    fn csv_duplicate_user_names_both_lines() {
        let text = include_str!("../../tests/data/import/errors/duplicate_user.csv");
        assert_eq!(csv_error(text), "line 4: duplicate user 'Alice' (also on line 1)");
    }

    #[test]
    fn csv_short_secret() {
        let text = include_str!("../../tests/data/import/errors/short_secret.csv");
        assert_eq!(csv_error(text), "line 3: secret is too short: 5 bytes (at least 10)");
    }

    #[test]
    fn csv_unknown_column_in_header() {
        let text = include_str!("../../tests/data/import/errors/unknown_column.csv");
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
}
