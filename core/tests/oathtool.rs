//! Cross-checks the codes of `twofactor_core::totp` against OATH Toolkit's
//! `oathtool` (Debian package `oathtool`), an independent implementation.
//!
//! Covered: every combination the module supports that oathtool also
//! supports — algorithms SHA1, SHA256, SHA512 × digits 6 and 8 (oathtool
//! refuses 4 and 10; 7 it accepts but the module does not) × periods 30 s
//! and 60 s — at several times, each with the next few steps (`--window`),
//! for the RFC 6238 seeds and for freshly generated secrets; HOTP (SHA1
//! only in oathtool) at several counters; and secrets handed to oathtool
//! in our base32 encoding (`--base32`).
//!
//! If oathtool is not installed, the tests fail and say so: a cross-check
//! that silently does nothing proves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::process::Command;

use twofactor_core::config::Algorithm;
use twofactor_core::totp::{base32_encode, generate_secret, hotp, totp, TotpParams};

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
/// The module's digits that oathtool accepts.
const DIGITS: [u32; 2] = [6, 8];
const PERIODS: [u32; 2] = [30, 60];
/// Unix seconds: the epoch's first steps, RFC 6238 Appendix B times,
/// 2026-01-01, just before 2^31 and 2^32, and a time past 2038 (64-bit time).
const TIMES: [u64; 10] = [
    0,
    59,
    1_111_111_109,
    1_234_567_890,
    1_767_225_600,
    1_767_225_629,
    2_000_000_000,
    2_147_483_647,
    4_294_967_295,
    20_000_000_000,
];
/// Further steps checked after each time (`oathtool --window`).
const WINDOW: u64 = 3;

fn oathtool(args: &[String]) -> Vec<String> {
    let output = match Command::new("oathtool").args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("oathtool is not installed: these cross-checks need it (Debian/Ubuntu: `apt-get install oathtool`)")
        }
        Err(e) => panic!("cannot run oathtool: {e}"),
    };
    assert!(output.status.success(), "oathtool {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("oathtool prints ASCII").lines().map(str::to_string).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mode(algorithm: Algorithm) -> String {
    format!("--totp={}", algorithm.as_str())
}

/// oathtool's codes at `now` and the WINDOW steps after it.
fn oathtool_totp(key: &[String], params: TotpParams, now: u64) -> Vec<String> {
    let mut args = vec![
        mode(params.algorithm),
        format!("--digits={}", params.digits),
        format!("--time-step-size={}s", params.period),
        format!("--now=@{now}"),
        format!("--window={WINDOW}"),
    ];
    args.extend_from_slice(key);
    oathtool(&args)
}

/// Ours at `now` and the WINDOW steps after it.
fn our_totp(secret: &[u8], params: TotpParams, now: u64) -> Vec<String> {
    (0..=WINDOW).map(|i| totp(secret, params, now + i * u64::from(params.period)).unwrap()).collect()
}

/// "12345678901234567890" repeated to the HMAC's size, as in RFC 6238.
fn rfc_seed(algorithm: Algorithm) -> Vec<u8> {
    let len = match algorithm {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    };
    b"1234567890".iter().copied().cycle().take(len).collect()
}

fn all_params() -> Vec<TotpParams> {
    let mut all = Vec::new();
    for algorithm in ALGORITHMS {
        for digits in DIGITS {
            for period in PERIODS {
                all.push(TotpParams::new(algorithm, digits, period).unwrap());
            }
        }
    }
    all
}

fn cross_check(secret: &[u8], label: &str) {
    let mut checked = 0;
    for params in all_params() {
        for now in TIMES {
            let theirs = oathtool_totp(&[hex(secret)], params, now);
            assert_eq!(our_totp(secret, params, now), theirs, "{label} {params:?} at {now}");
            checked += theirs.len();
        }
    }
    assert_eq!(checked, 12 * TIMES.len() * (WINDOW as usize + 1));
}

#[test]
fn totp_matches_oathtool_for_the_rfc_seeds() {
    for algorithm in ALGORITHMS {
        cross_check(&rfc_seed(algorithm), "RFC seed");
    }
}

#[test]
fn totp_matches_oathtool_for_generated_secrets() {
    for algorithm in ALGORITHMS {
        let secret = generate_secret(algorithm).unwrap();
        cross_check(secret.expose(), "generated secret");
    }
}

#[test]
fn totp_matches_oathtool_with_a_calendar_time() {
    // The brief's example: SHA256, 8 digits, 60 s, 2026-01-01 00:00:00 UTC.
    let secret = rfc_seed(Algorithm::Sha256);
    let params = TotpParams::new(Algorithm::Sha256, 8, 60).unwrap();
    let theirs = oathtool(&[
        "--totp=SHA256".into(),
        "--digits=8".into(),
        "--time-step-size=60s".into(),
        "--now=2026-01-01 00:00:00 UTC".into(),
        hex(&secret),
    ]);
    assert_eq!(theirs, vec![totp(&secret, params, 1_767_225_600).unwrap()]);
}

#[test]
fn our_base32_is_what_oathtool_reads() {
    for algorithm in ALGORITHMS {
        let secret = generate_secret(algorithm).unwrap();
        let params = TotpParams::new(algorithm, 6, 30).unwrap();
        let key = ["--base32".to_string(), base32_encode(secret.expose())];
        assert_eq!(oathtool_totp(&key, params, 1_767_225_600), our_totp(secret.expose(), params, 1_767_225_600));
    }
}

#[test]
fn hotp_matches_oathtool() {
    for secret in [rfc_seed(Algorithm::Sha1), generate_secret(Algorithm::Sha1).unwrap().expose().to_vec()] {
        for digits in DIGITS {
            for counter in [0u64, 1, 9, 1000, u64::from(u32::MAX) + 1, 1 << 40] {
                let theirs = oathtool(&[
                    "--hotp".into(),
                    format!("--digits={digits}"),
                    format!("--counter={counter}"),
                    format!("--window={WINDOW}"),
                    hex(&secret),
                ]);
                let ours: Vec<String> =
                    (0..=WINDOW).map(|i| hotp(&secret, Algorithm::Sha1, digits, counter + i).unwrap()).collect();
                assert_eq!(ours, theirs, "digits {digits} counter {counter}");
            }
        }
    }
}
