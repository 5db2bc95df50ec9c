//! RFC 4648 base32 for TOTP secrets: encoded for display and `otpauth://`
//! URIs, decoded as people type it.

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, uppercase, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32_ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32_ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_value(c: u8) -> Option<u32> {
    match c.to_ascii_uppercase() {
        c @ b'A'..=b'Z' => Some(u32::from(c - b'A')),
        c @ b'2'..=b'7' => Some(u32::from(c - b'2') + 26),
        _ => None,
    }
}

/// RFC 4648 base32 as people type it: either case, spaces anywhere, and
/// optional `=` padding (if present, exactly the right amount). Lengths no
/// encoding can produce (1, 3 or 6 characters mod 8) are refused; the unused
/// low bits of the last character are ignored, as authenticator apps do.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let cleaned: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let data_len = cleaned.iter().position(|b| *b == b'=').unwrap_or(cleaned.len());
    let (data, padding) = cleaned.split_at(data_len);
    if !padding.is_empty() && (!padding.iter().all(|b| *b == b'=') || padding.len() != (8 - data_len % 8) % 8) {
        return None;
    }
    if matches!(data_len % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(data_len * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &c in data {
        buffer = (buffer << 5) | base32_value(c)?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).as_deref(), Some(plain.as_bytes()), "{encoded}");
            let padded = format!("{encoded}{}", "=".repeat((8 - encoded.len() % 8) % 8));
            assert_eq!(base32_decode(&padded).as_deref(), Some(plain.as_bytes()), "{padded}");
            assert_eq!(base32_decode(&padded.to_lowercase()).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(base32_decode("MZXW6YTBOI======").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(base32_encode(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn base32_input_as_typed() {
        let secret = b"12345678901234567890";
        for typed in [
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            " GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJQ ",
            "GeZdGnBvGy3tQoJqGeZdGnBvGy3tQoJq",
        ] {
            assert_eq!(base32_decode(typed).as_deref(), Some(&secret[..]), "{typed}");
        }
        // Non-zero unused bits of the last character are ignored (as apps do).
        assert_eq!(base32_decode("MZ"), base32_decode("MY"));
        for bad in [
            "M",         // 1 mod 8: no encoding is this long
            "MZX",       // 3 mod 8
            "MZXW6Y",    // 6 mod 8
            "MY=",       // too little padding
            "MY=======", // too much
            "MY==A===",  // data after padding
            "MZXW1",     // '1' is not in the alphabet
            "MZXW8",
            "MZ-XW",
            "MZ\tXW",
            "MZÉW",
        ] {
            assert_eq!(base32_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_round_trips() {
        for len in 0..=70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(151).wrapping_add(7)).collect();
            let encoded = base32_encode(&bytes);
            assert_eq!(encoded.len(), (len * 8).div_ceil(5));
            assert!(encoded.bytes().all(|b| BASE32_ALPHABET.contains(&b)));
            assert_eq!(base32_decode(&encoded), Some(bytes), "len {len}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base32_decode(&base32_encode(&all)), Some(all));
    }
}
