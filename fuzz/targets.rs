//! The fuzz targets' bodies: every parser of untrusted input, with the
//! properties that must hold for any input (beyond "does not panic").
//! Shared by the cargo-fuzz binaries (fuzz/fuzz_targets/) and by the
//! regression test that replays the corpora and every minimised crash
//! (core/tests/fuzz_regressions.rs), so both run exactly this code.

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use twofactor_core::completion;
use twofactor_core::config::{self, DirConfig, ServerConfig, UsernamePattern, DEFAULT_USERNAME_PATTERN};
use twofactor_core::csrf::{self, Use};
use twofactor_core::factors::email::EmailCode;
use twofactor_core::factors::{lockout, recovery};
use twofactor_core::keys::Keys;
use twofactor_core::secret::Secret;
use twofactor_core::store::codec::{Completion, Failures};
use twofactor_core::store::signed::Signer;
use twofactor_core::totp::{self, LastStep, TotpParams, TotpRecord};
use twofactor_core::{apacheconf, form, identity, import, path, token};

/// A target's body: one input.
pub type Target = fn(&[u8]);

/// Every target by name (the directory names under fuzz/corpus/).
pub const ALL: &[(&str, Target)] = &[
    ("strict_path", strict_path),
    ("identity_header", identity_header),
    ("cookie_header", cookie_header),
    ("return_token", return_token),
    ("csrf_token", csrf_token),
    ("form_body", form_body),
    ("state_values", state_values),
    ("csv_import", csv_import),
    ("pskc_import", pskc_import),
    ("otpauth_uri", otpauth_uri),
    ("directive_values", directive_values),
    ("apache_config", apache_config),
];

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::from_files(&[Secret::new(vec![7; 32]), Secret::new(vec![9; 32])]).expect("keys"))
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Splits the input at its first `sep` (the rest empty if none).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A request target through the strict path check, both modes: never a
/// panic, and what strict accepts the lenient mode accepts.
pub fn strict_path(data: &[u8]) {
    let Ok(target) = std::str::from_utf8(data) else { return };
    let strict = path::check_request_target(target, true);
    let lenient = path::check_request_target(target, false);
    if strict.is_ok() {
        assert!(lenient.is_ok(), "lenient refuses what strict accepts: {target:?}");
    }
    if let Some(p) = path::path_of_target(target) {
        assert!(p.starts_with('/'), "{target:?} -> {p:?}");
    }
    // The return path made from it is always same-origin (or "/").
    let back = token::return_target(target);
    let signed = token::sign_return(keys(), &back, "alice", 100);
    let verified = token::verify_return(keys(), &signed, "alice", 50).expect("a token just signed");
    assert!(token::is_same_origin_path(&verified), "{verified:?}");
}

/// Identity header values (split at NUL into several), the look-alike and
/// `Connection` checks: a validated name always matches the pattern.
pub fn identity_header(data: &[u8]) {
    static PATTERN: OnceLock<UsernamePattern> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| UsernamePattern::new(DEFAULT_USERNAME_PATTERN).expect("pattern"));
    let values: Vec<&[u8]> = data.split(|&b| b == 0).take(3).collect();
    if let Ok(user) = identity::validate(&values, pattern) {
        assert!(pattern.is_match(user) && !user.contains(','), "{user:?}");
        assert_eq!(values.len(), 1);
    }
    let _ = identity::is_lookalike(data, "X-Remote-User");
    let _ = identity::is_weblogic_proxy_header(data);
    let _ = identity::connection_names_protected(data, &["X-Remote-User", "X-Gateway-Secret"]);
}

/// A `Cookie` header: what is found is well-formed, and what is left after
/// taking the session cookie out no longer holds it.
pub fn cookie_header(data: &[u8]) {
    const NAME: &str = "TwoFactorSession";
    if let Some(value) = completion::find_cookie(data, NAME) {
        assert!(!value.is_empty() && !value.contains(&b';') && !value.contains(&b','));
        assert!(completion::has_cookie(data, NAME));
    }
    match completion::without_cookie(data, NAME) {
        Some(rest) => {
            assert!(!completion::has_cookie(&rest, NAME), "still there: {:?}", text(&rest));
            assert!(rest.len() < data.len());
        }
        None => assert!(!completion::has_cookie(data, NAME)),
    }
    let _ = completion::is_plausible_cookie(data);
}

/// A return token from a form or query: only a signed one verifies, and its
/// path is always same-origin.
pub fn return_token(data: &[u8]) {
    let token = text(data);
    if let Ok(path) = token::verify_return(keys(), &token, "alice", 0) {
        assert!(token::is_same_origin_path(&path));
        panic!("an unsigned token verified: {token:?}");
    }
    let _ = token::is_same_origin_path(&token);
}

/// A CSRF token from a form: never valid unless issued.
pub fn csrf_token(data: &[u8]) {
    let token = text(data);
    for purpose in [Use::Form, Use::EnrollProof] {
        assert!(!csrf::verify(keys(), purpose, &token, "alice", "nonce", 0), "{token:?}");
    }
}

/// A form body: decoded fields, found again by name.
pub fn form_body(data: &[u8]) {
    if let Some(fields) = form::parse(data) {
        for (name, _) in &fields {
            let _ = form::single(&fields, name);
            let _ = form::encode(name);
        }
    }
}

/// Every LDAP state value decoder (a value from the directory is input
/// too), behind the signed envelope and, as an earlier version wrote
/// them, without it: whatever opens seals back to a value that opens the same.
pub fn state_values(data: &[u8]) {
    let value = text(data);
    for accept_unsigned in [false, true] {
        let signer = Signer::new(keys(), "alice", accept_unsigned);
        if let Some(c) = Completion::open(&signer, &value) {
            assert_eq!(Completion::open(&signer, &c.seal(&signer)), Some(c));
        }
        if let Some(f) = Failures::open(&signer, &value) {
            assert_eq!(Failures::open(&signer, &f.seal(&signer)), Some(f));
        }
        let stored = lockout::Stored::of(&signer, std::slice::from_ref(&value), 1000);
        let limits = lockout::Limits { max_attempts: 5, auto_unlock: None };
        let _ = lockout::reserve(&stored, 1000, limits);
        let _ = lockout::after_wrong_code(&stored, 1000, limits);
        let _ = lockout::after_right_code(&stored, 1000);
        let _ = twofactor_core::store::codec::locked_until(&signer, std::slice::from_ref(&value), 1000);
        if let Some(e) = EmailCode::open(&signer, &value) {
            assert_eq!(EmailCode::open(&signer, &e.seal(&signer)), Some(e));
        }
        if let Some(r) = TotpRecord::open(&signer, &value) {
            assert!(TotpRecord::open(&signer, &r.seal(&signer)).is_some());
            let _ = keys().open(&totp::seal_context("alice"), &r.sealed);
        }
        if let Some(l) = LastStep::open(&signer, &value) {
            assert_eq!(LastStep::open(&signer, &l.seal(&signer)), Some(l));
        }
        let _ = recovery::matching(&signer, std::slice::from_ref(&value), "abcde-fghij");
    }
    let _ = twofactor_core::tamper::take();
}

/// A hardware token seed file in CSV.
pub fn csv_import(data: &[u8]) {
    let _ = import::parse_csv(&text(data));
    let _ = import::detect_and_parse(data, None);
}

/// A PSKC (RFC 6030) seed file, with and without a password.
pub fn pskc_import(data: &[u8]) {
    let xml = text(data);
    let _ = import::parse_pskc(&xml, None);
    let _ = import::parse_pskc(&xml, Some("secret"));
}

/// The enrollment URI and its QR codes from any issuer, account, secret
/// and parameters: ASCII only, the secret in base32, which decodes back.
pub fn otpauth_uri(data: &[u8]) {
    let (head, secret) = split(data, 0);
    let (issuer, account) = split(head, b'\n');
    let (issuer, account) = (text(issuer), text(account));
    let params = TotpParams::default();
    let uri = totp::otpauth_uri(&issuer, &account, secret, params);
    assert!(uri.bytes().all(|b| b.is_ascii_graphic()), "{uri:?}");
    let encoded = totp::base32_encode(secret);
    assert!(uri.contains(&format!("secret={encoded}")), "{uri:?}");
    assert_eq!(totp::base32_decode(&encoded).as_deref(), Some(secret));
    let _ = totp::base32_decode(&issuer);
    if uri.len() < 1000 {
        let _ = totp::qr_svg(&uri, &issuer);
    }
}

/// A directive line as Apache would hand it over: name, then arguments
/// split as Apache splits them; then the settings resolved.
pub fn directive_values(data: &[u8]) {
    let line = text(data);
    let words = apacheconf::split_words(&line);
    let Some((name, args)) = words.split_first() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerConfig::default();
    let mut dir = DirConfig::default();
    let root = Path::new("/nonexistent-server-root");
    let _ = config::apply(config::Target::Server { server: &mut server, dir: &mut dir }, name, &args, root);
    let _ = config::apply(config::Target::Section { server: &mut server, dir: &mut dir }, name, &args, root);
    let _ = config::Settings::resolve(&server, "fuzz.example");
    let _ = config::urls::ldap_url(&line);
    let _ = config::urls::smtp_url(&line);
    let _ = config::values::ip_net(&line);
}

/// A whole Apache configuration as twofactorctl reads it (includes are
/// looked for in an empty directory).
pub fn apache_config(data: &[u8]) {
    let root = std::env::temp_dir().join("twofactor-fuzz-empty-root");
    let _ = std::fs::create_dir_all(&root);
    let label = root.join("fuzz.conf");
    let conf = text(data);
    let _ = apacheconf::read_text(&conf, &label, &root, None);
    let _ = apacheconf::read_text(&conf, &label, &root, Some("vhost.example"));
}
