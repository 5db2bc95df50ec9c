//! Reading PSKC (RFC 6030) key containers, plain or password-protected.
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

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use ring::{hmac, pbkdf2};
use roxmltree::Node;
use zeroize::Zeroizing;

use super::{
    check_name, check_unique, checked_secret, in_file, parse_algorithm, parse_digits, parse_period, shown, ImportError,
    Seed, Unit,
};
use crate::config::Algorithm;
use crate::secret::Secret;
use crate::totp::TotpParams;

/// Upper bound on a PSKC file's PBKDF2 iteration count: a hostile file must
/// not keep the importer busy for hours.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const PBKDF2_URIS: [&str; 2] =
    ["http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2", "http://www.w3.org/2009/xmlenc11#pbkdf2"];
const WRONG_PASSWORD: &str = "wrong password or corrupted file";

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
    use crate::import::fixtures::*;
    use crate::import::{detect_and_parse, hex_decode};

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
}
