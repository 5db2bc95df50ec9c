//! The HOTP/TOTP engine: parameters, codes, the verification window with
//! replay protection and drift, and new secrets.
//!
//! # The verification window
//!
//! With `period` seconds per step, `n = now / period` and
//! `k = ceil(skew_secs / period)` (at most [`MAX_SKEW_STEPS`]), the previous
//! drift `d` (the offset, in steps, at which the last code was accepted,
//! clamped to `-k..=k`) centres the window: the candidate steps are
//! `n + o` for every offset `o` with `|o - d| <= k` **and** `|o| <= k`, tried
//! nearest the centre first (`d`, `d-1`, `d+1`, `d-2`, `d+2`, ...). So the
//! window follows a drifting token but never reaches beyond the configured
//! skew around the server's own clock. Candidates at or before the last
//! accepted step are not eligible; a code that matches only such a step is
//! [`Rejection::Replayed`]. The accepted step `s` is stored with the new drift
//! `s - n`.

use ring::hmac;

use crate::config::Algorithm;
use crate::secret::{constant_time_eq, Secret};
use crate::store::codec::LastStep;

/// Code lengths the module supports (those of Token2 hardware tokens).
pub const DIGITS: [u32; 4] = [4, 6, 8, 10];

/// Upper bound on the window's half-width in steps, whatever the skew: a
/// misconfiguration must not turn one verification into millions of HMACs.
pub const MAX_SKEW_STEPS: u64 = 1024;

/// Longest input accepted as a code (spaces included) before it is even looked at.
const MAX_CODE_INPUT: usize = 64;

/// Algorithm, code length and time step of one TOTP secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    /// 4, 6, 8 or 10.
    pub digits: u32,
    /// Seconds per time step; tokens use 30 or 60, the engine accepts any value >= 1.
    pub period: u32,
}

/// Why parameters were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    Digits(u32),
    Period(u32),
}

impl std::fmt::Display for ParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamsError::Digits(d) => write!(f, "invalid digits '{d}': must be one of 4 | 6 | 8 | 10"),
            ParamsError::Period(p) => write!(f, "invalid period '{p}': must be at least 1 second"),
        }
    }
}

impl std::error::Error for ParamsError {}

impl Default for TotpParams {
    /// SHA1, 6 digits, 30 seconds: what every authenticator app understands.
    fn default() -> Self {
        TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 }
    }
}

impl TotpParams {
    pub fn new(algorithm: Algorithm, digits: u32, period: u32) -> Result<TotpParams, ParamsError> {
        let params = TotpParams { algorithm, digits, period };
        params.validate()?;
        Ok(params)
    }

    /// Digits one of [`DIGITS`], period at least one second.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if !DIGITS.contains(&self.digits) {
            return Err(ParamsError::Digits(self.digits));
        }
        if self.period == 0 {
            return Err(ParamsError::Period(self.period));
        }
        Ok(())
    }

    /// The time step containing `now`, or `None` for a period of 0.
    pub fn step(&self, now: u64) -> Option<u64> {
        now.checked_div(u64::from(self.period))
    }
}

fn hmac_algorithm(algorithm: Algorithm) -> hmac::Algorithm {
    match algorithm {
        Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Algorithm::Sha256 => hmac::HMAC_SHA256,
        Algorithm::Sha512 => hmac::HMAC_SHA512,
    }
}

/// RFC 4226 §5.3 dynamic truncation of HMAC(secret, counter): a 31-bit value.
fn truncated(secret: &[u8], algorithm: Algorithm, counter: u64) -> u32 {
    let key = hmac::Key::new(hmac_algorithm(algorithm), secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Every HMAC here is at least 20 bytes, so offset + 3 <= 15 + 3 is in range;
    // `get` keeps this free of panics all the same.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac.get(offset..offset + 4).unwrap_or(&[0; 4]);
    u32::from_be_bytes([word[0], word[1], word[2], word[3]]) & 0x7fff_ffff
}

/// The HOTP code for `counter`, zero-padded to `digits` (one of [`DIGITS`]).
/// Ten digits are the whole 31-bit value (modulo 10^10 in u64), never
/// truncated to fit a u32 power of ten.
pub fn hotp(secret: &[u8], algorithm: Algorithm, digits: u32, counter: u64) -> Option<String> {
    if !DIGITS.contains(&digits) {
        return None;
    }
    let modulus = 10u64.pow(digits);
    let value = u64::from(truncated(secret, algorithm, counter)) % modulus;
    Some(format!("{value:0width$}", width = digits as usize))
}

/// The TOTP code at `now` (Unix seconds), or `None` for invalid parameters.
pub fn totp(secret: &[u8], params: TotpParams, now: u64) -> Option<String> {
    params.validate().ok()?;
    hotp(secret, params.algorithm, params.digits, params.step(now)?)
}

/// A code was accepted at `step`, `drift` steps away from the server's clock:
/// the new [`LastStep`] to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub step: u64,
    pub drift: i64,
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not exactly `digits` ASCII digits (spaces aside).
    Malformed,
    /// No step in the window has this code (also: unusable parameters).
    Wrong,
    /// The code matches only steps at or before the last accepted one.
    Replayed,
}

impl Rejection {
    /// For log lines (`reason=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Wrong => "wrong",
            Rejection::Replayed => "replayed",
        }
    }
}

/// The code with its spaces (U+0020, anywhere) removed, if what remains is
/// exactly `digits` ASCII digits. Nothing else is trimmed or tolerated.
fn normalize_code(code: &str, digits: u32) -> Option<String> {
    if code.len() > MAX_CODE_INPUT {
        return None;
    }
    let stripped: String = code.chars().filter(|c| *c != ' ').collect();
    (stripped.len() == digits as usize && stripped.bytes().all(|b| b.is_ascii_digit())).then_some(stripped)
}

/// The window's candidate steps with their drift (step minus the server's
/// step), in the order they are tried. See the module documentation for the rule.
/// Empty for a period of 0.
pub fn candidates(period: u32, now: u64, skew_secs: u64, previous_drift: i64) -> Vec<(u64, i64)> {
    if period == 0 {
        return Vec::new();
    }
    let now_step = now / u64::from(period);
    // MAX_SKEW_STEPS fits an i64.
    let k = skew_secs.div_ceil(u64::from(period)).min(MAX_SKEW_STEPS) as i64;
    let centre = previous_drift.clamp(-k, k);
    let (lo, hi) = ((centre - k).max(-k), (centre + k).min(k));
    let mut offsets: Vec<i64> = (lo..=hi).collect();
    offsets.sort_by_key(|o| ((o - centre).abs(), *o));
    offsets.into_iter().filter_map(|o| now_step.checked_add_signed(o).map(|step| (step, o))).collect()
}

/// Checks `code` against `secret` at `now`, within `skew_secs` of the server's
/// clock, following the token's previous drift and refusing any step at or
/// before `last.step`. Every candidate is computed and compared (in constant
/// time), so the time taken does not depend on which one matched.
pub fn verify(
    secret: &[u8],
    params: TotpParams,
    code: &str,
    now: u64,
    skew_secs: u64,
    last: Option<LastStep>,
) -> Result<Accepted, Rejection> {
    let presented = normalize_code(code, params.digits).ok_or(Rejection::Malformed)?;
    if params.validate().is_err() {
        return Err(Rejection::Wrong);
    }
    let previous_drift = last.map_or(0, |l| l.drift);
    let mut accepted: Option<Accepted> = None;
    let mut replayed = false;
    for (step, drift) in candidates(params.period, now, skew_secs, previous_drift) {
        let expected = hotp(secret, params.algorithm, params.digits, step).unwrap_or_default();
        let hit = constant_time_eq(expected.as_bytes(), presented.as_bytes());
        let fresh = last.is_none_or(|l| step > l.step);
        if hit && fresh && accepted.is_none() {
            accepted = Some(Accepted { step, drift });
        }
        replayed |= hit && !fresh;
    }
    match accepted {
        Some(a) => Ok(a),
        None if replayed => Err(Rejection::Replayed),
        None => Err(Rejection::Wrong),
    }
}

// ---------------------------------------------------------------------------
// Secrets

/// Length of a generated secret: the HMAC's output size (RFC 6238 Appendix B seeds).
pub fn secret_len(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Sha1 => 20,
        Algorithm::Sha256 => 32,
        Algorithm::Sha512 => 64,
    }
}

/// A new random secret of [`secret_len`] bytes from the system's CSPRNG.
pub fn generate_secret(algorithm: Algorithm) -> Result<Secret, String> {
    let mut bytes = vec![0u8; secret_len(algorithm)];
    crate::random::fill(&mut bytes)?;
    Ok(Secret::new(bytes))
}

/// What a TOTP secret is sealed to (authenticated with it): its owner, so
/// that a sealed value copied to another entry does not open.
pub fn seal_context(user: &str) -> Vec<u8> {
    format!("totp\n{}", user.to_ascii_lowercase()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::test_support::{p, seed, SHA1_6_30};
    use crate::totp::{base32_decode, base32_encode};

    fn rfc_seed(algorithm: Algorithm) -> Vec<u8> {
        seed(secret_len(algorithm))
    }

    /// The code of `secret` (SHA1, 6 digits) at `step`.
    fn code_at(secret: &[u8], step: u64) -> String {
        hotp(secret, Algorithm::Sha1, 6, step).unwrap()
    }

    // ----- engine -----

    #[test]
    fn rfc6238_appendix_b() {
        use Algorithm::*;
        let table: [(u64, &str, Algorithm); 18] = [
            (59, "94287082", Sha1),
            (59, "46119246", Sha256),
            (59, "90693936", Sha512),
            (1111111109, "07081804", Sha1),
            (1111111109, "68084774", Sha256),
            (1111111109, "25091201", Sha512),
            (1111111111, "14050471", Sha1),
            (1111111111, "67062674", Sha256),
            (1111111111, "99943326", Sha512),
            (1234567890, "89005924", Sha1),
            (1234567890, "91819424", Sha256),
            (1234567890, "93441116", Sha512),
            (2000000000, "69279037", Sha1),
            (2000000000, "90698825", Sha256),
            (2000000000, "38618901", Sha512),
            (20000000000, "65353130", Sha1),
            (20000000000, "77737706", Sha256),
            (20000000000, "47863826", Sha512),
        ];
        for (time, expected, algorithm) in table {
            let got = totp(&rfc_seed(algorithm), p(algorithm, 8, 30), time);
            assert_eq!(got.as_deref(), Some(expected), "{} at {time}", algorithm.as_str());
        }
    }

    /// RFC 4226 Appendix D: counter, truncated 31-bit value, 6-digit HOTP.
    const RFC4226: [(u64, u32, &str); 10] = [
        (0, 1284755224, "755224"),
        (1, 1094287082, "287082"),
        (2, 137359152, "359152"),
        (3, 1726969429, "969429"),
        (4, 1640338314, "338314"),
        (5, 868254676, "254676"),
        (6, 1918287922, "287922"),
        (7, 82162583, "162583"),
        (8, 673399871, "399871"),
        (9, 645520489, "520489"),
    ];

    #[test]
    fn rfc4226_appendix_d() {
        let secret = seed(20);
        for (counter, value, code) in RFC4226 {
            assert_eq!(truncated(&secret, Algorithm::Sha1, counter), value, "counter {counter}");
            assert_eq!(hotp(&secret, Algorithm::Sha1, 6, counter).as_deref(), Some(code), "counter {counter}");
        }
    }

    #[test]
    fn four_and_ten_digits_come_from_the_same_truncation() {
        let secret = seed(20);
        for (counter, value, _) in RFC4226 {
            let four = hotp(&secret, Algorithm::Sha1, 4, counter).unwrap();
            assert_eq!(four, format!("{:04}", value % 10_000));
            let ten = hotp(&secret, Algorithm::Sha1, 10, counter).unwrap();
            // The 31-bit value is below 10^10, so all ten digits are the value itself, zero-padded.
            assert_eq!(ten, format!("{value:010}"));
        }
        // Concretely: counter 0 keeps its leading "1", which a u32 modulus (10^10 > u32::MAX)
        // could not have produced, and counter 2 is padded with a leading zero.
        assert_eq!(hotp(&secret, Algorithm::Sha1, 10, 0).as_deref(), Some("1284755224"));
        assert_eq!(hotp(&secret, Algorithm::Sha1, 10, 2).as_deref(), Some("0137359152"));
        assert_eq!(hotp(&secret, Algorithm::Sha1, 4, 7).as_deref(), Some("2583"));
        // 10-digit TOTP at the RFC 6238 times: the 8-digit code is its tail.
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for time in [59u64, 1111111109, 20000000000] {
                let s = rfc_seed(algorithm);
                let ten = totp(&s, p(algorithm, 10, 30), time).unwrap();
                let eight = totp(&s, p(algorithm, 8, 30), time).unwrap();
                assert_eq!(ten.len(), 10);
                assert!(ten.ends_with(&eight) && ten.as_bytes()[0] <= b'2', "{ten} vs {eight}");
            }
        }
    }

    #[test]
    fn periods_of_60_and_other_lengths() {
        let secret = seed(20);
        // 60-second steps: step = now / 60.
        assert_eq!(totp(&secret, p(Algorithm::Sha1, 6, 60), 59).as_deref(), Some("755224"));
        assert_eq!(totp(&secret, p(Algorithm::Sha1, 6, 60), 60).as_deref(), Some("287082"));
        assert_eq!(totp(&secret, p(Algorithm::Sha1, 6, 60), 9 * 60 + 59).as_deref(), Some("520489"));
        // Any period >= 1 works in the engine.
        assert_eq!(totp(&secret, p(Algorithm::Sha1, 6, 1), 3).as_deref(), Some("969429"));
        assert_eq!(totp(&secret, p(Algorithm::Sha1, 6, 0), 3), None);
        assert_eq!(totp(&secret, p(Algorithm::Sha1, 7, 30), 3), None);
        assert_eq!(hotp(&secret, Algorithm::Sha1, 5, 3), None);
        assert_eq!(hotp(&secret, Algorithm::Sha1, 11, 3), None);
    }

    #[test]
    fn params_validation() {
        for digits in [4, 6, 8, 10] {
            for period in [1, 30, 60, u32::MAX] {
                assert!(TotpParams::new(Algorithm::Sha256, digits, period).is_ok());
            }
        }
        for digits in [0, 1, 5, 7, 9, 11, 100] {
            assert_eq!(TotpParams::new(Algorithm::Sha1, digits, 30), Err(ParamsError::Digits(digits)));
        }
        assert_eq!(TotpParams::new(Algorithm::Sha1, 6, 0), Err(ParamsError::Period(0)));
        assert_eq!(TotpParams::default(), SHA1_6_30);
        assert_eq!(SHA1_6_30.step(59), Some(1));
        assert_eq!(p(Algorithm::Sha1, 6, 0).step(59), None);
        assert!(ParamsError::Digits(7).to_string().contains("4 | 6 | 8 | 10"));
    }

    // ----- verification -----

    const NOW: u64 = 1_767_225_600; // 2026-01-01 00:00:00 UTC, a step boundary for 30 and 60.
    const N: u64 = NOW / 30;

    #[test]
    fn accepts_the_current_code_and_reports_the_state_to_store() {
        let s = seed(20);
        let code = totp(&s, SHA1_6_30, NOW + 7).unwrap();
        assert_eq!(verify(&s, SHA1_6_30, &code, NOW + 7, 0, None), Ok(Accepted { step: N, drift: 0 }));
        assert_ne!(code, "000000");
        assert_eq!(verify(&s, SHA1_6_30, "000000", NOW + 7, 0, None), Err(Rejection::Wrong));
        // 10 digits and SHA512 go through the same path.
        let s512 = seed(64);
        let params = p(Algorithm::Sha512, 10, 60);
        let code = totp(&s512, params, NOW).unwrap();
        assert_eq!(verify(&s512, params, &code, NOW, 0, None), Ok(Accepted { step: NOW / 60, drift: 0 }));
    }

    #[test]
    fn malformed_codes() {
        let s = seed(20);
        let good = totp(&s, SHA1_6_30, NOW).unwrap();
        let spaced = format!("{} {}", &good[..3], &good[3..]);
        assert!(verify(&s, SHA1_6_30, &spaced, NOW, 0, None).is_ok());
        assert!(verify(&s, SHA1_6_30, &format!(" {good} "), NOW, 0, None).is_ok());
        let bad = [
            "",
            " ",
            "12345",
            "1234567",
            "12a456",
            "123-456",
            "123\t456",
            "123456\n",
            "\u{a0}123456",
            "１２３４５６", // full-width digits
            "+12345",
            "-12345",
            "12345.",
            "0x1234",
            "1234567890",
        ];
        for code in bad {
            assert_eq!(verify(&s, SHA1_6_30, code, NOW, 60, None), Err(Rejection::Malformed), "{code:?}");
        }
        assert_eq!(verify(&s, SHA1_6_30, &" ".repeat(65), NOW, 60, None), Err(Rejection::Malformed));
        // The length is that of the parameters: 4 digits want exactly 4.
        let four = p(Algorithm::Sha1, 4, 30);
        assert_eq!(verify(&s, four, &good, NOW, 0, None), Err(Rejection::Malformed));
        let code4 = totp(&s, four, NOW).unwrap();
        assert!(verify(&s, four, &code4, NOW, 0, None).is_ok());
        // Unusable parameters never accept anything.
        assert_eq!(verify(&s, p(Algorithm::Sha1, 6, 0), &good, NOW, 60, None), Err(Rejection::Wrong));
    }

    #[test]
    fn replay_same_step_and_older_steps() {
        let s = seed(20);
        let code = code_at(&s, N);
        let first = verify(&s, SHA1_6_30, &code, NOW, 60, None).unwrap();
        assert_eq!(first, Accepted { step: N, drift: 0 });
        let last = Some(LastStep::from(first));
        // The same code again, even later within its step or within the skew: replayed.
        assert_eq!(verify(&s, SHA1_6_30, &code, NOW + 29, 60, last), Err(Rejection::Replayed));
        assert_eq!(verify(&s, SHA1_6_30, &code, NOW + 45, 60, last), Err(Rejection::Replayed));
        // An older (still in-window) code: replayed too, never accepted.
        assert_eq!(verify(&s, SHA1_6_30, &code_at(&s, N - 1), NOW, 60, last), Err(Rejection::Replayed));
        // The next step's code is fine, and then the current one is old.
        let next = verify(&s, SHA1_6_30, &code_at(&s, N + 1), NOW, 60, last).unwrap();
        assert_eq!(next, Accepted { step: N + 1, drift: 1 });
        assert_eq!(verify(&s, SHA1_6_30, &code, NOW, 60, Some(next.into())), Err(Rejection::Replayed));
        // A wrong code stays wrong with state present.
        let wrong =
            (0..1_000_000u32).map(|i| format!("{i:06}")).find(|c| (N - 2..=N + 2).all(|step| code_at(&s, step) != *c));
        assert_eq!(verify(&s, SHA1_6_30, &wrong.unwrap(), NOW, 60, last), Err(Rejection::Wrong));
    }

    #[test]
    fn a_code_that_also_matches_a_used_step_is_accepted_at_the_fresh_one() {
        // Find, for 4 digits, two steps one apart with the same code (1 in 10^4 per pair).
        let s = seed(20);
        let four = p(Algorithm::Sha1, 4, 30);
        let base = N;
        let collision = (base..base + 200_000)
            .find(|&step| hotp(&s, Algorithm::Sha1, 4, step) == hotp(&s, Algorithm::Sha1, 4, step + 1))
            .expect("a collision among 200000 steps");
        let code = hotp(&s, Algorithm::Sha1, 4, collision).unwrap();
        let now = (collision + 1) * 30;
        // The earlier step was used: the same digits are still good for the later one.
        let last = Some(LastStep { step: collision, drift: 0 });
        assert_eq!(verify(&s, four, &code, now, 60, last), Ok(Accepted { step: collision + 1, drift: 0 }));
        // Without state the step nearer the centre wins, ties to the earlier step.
        assert_eq!(verify(&s, four, &code, now, 60, None), Ok(Accepted { step: collision + 1, drift: 0 }));
        assert_eq!(verify(&s, four, &code, now + 15, 0, None), Ok(Accepted { step: collision + 1, drift: 0 }));
        let mid = collision * 30 + 15; // centre at `collision`
        assert_eq!(verify(&s, four, &code, mid, 60, None), Ok(Accepted { step: collision, drift: 0 }));
    }

    /// Skew 60 s with 30 s steps: k = ceil(60/30) = 2, so the codes of the
    /// steps N-2..=N+2 are accepted and those of N±3 refused.
    #[test]
    fn window_edges() {
        let s = seed(20);
        for offset in -2i64..=2 {
            let step = N.checked_add_signed(offset).unwrap();
            assert_eq!(
                verify(&s, SHA1_6_30, &code_at(&s, step), NOW, 60, None),
                Ok(Accepted { step, drift: offset }),
                "offset {offset}"
            );
        }
        for offset in [-3i64, 3, -4, 4] {
            let step = N.checked_add_signed(offset).unwrap();
            assert_eq!(
                verify(&s, SHA1_6_30, &code_at(&s, step), NOW, 60, None),
                Err(Rejection::Wrong),
                "offset {offset}"
            );
        }
        // The window is counted in whole steps of the server's clock, wherever
        // `now` falls inside its step: at NOW + 29 still exactly N-2..=N+2.
        assert!(verify(&s, SHA1_6_30, &code_at(&s, N - 2), NOW + 29, 60, None).is_ok());
        assert!(verify(&s, SHA1_6_30, &code_at(&s, N + 3), NOW + 29, 60, None).is_err());
        // Partial steps round up: 45 s -> 2 steps, 61 s -> 3 steps; 0 s -> the current step only.
        assert!(verify(&s, SHA1_6_30, &code_at(&s, N + 2), NOW, 45, None).is_ok());
        assert!(verify(&s, SHA1_6_30, &code_at(&s, N + 3), NOW, 61, None).is_ok());
        assert!(verify(&s, SHA1_6_30, &code_at(&s, N), NOW, 0, None).is_ok());
        assert!(verify(&s, SHA1_6_30, &code_at(&s, N + 1), NOW, 0, None).is_err());
        // 60-second steps with a 2-minute skew: ±2 steps of a minute.
        let sixty = p(Algorithm::Sha1, 6, 60);
        let n60 = NOW / 60;
        assert!(verify(&s, sixty, &code_at(&s, n60 - 2), NOW, 120, None).is_ok());
        assert!(verify(&s, sixty, &code_at(&s, n60 + 3), NOW, 120, None).is_err());
    }

    #[test]
    fn candidate_order_and_clamping() {
        // No drift, k = 2: centre first, then nearest, the earlier of a tie first.
        assert_eq!(candidates(30, NOW, 60, 0), vec![(N, 0), (N - 1, -1), (N + 1, 1), (N - 2, -2), (N + 2, 2)]);
        // Drift +3, k = 4 (2 min): centred on N+3, clamped at N+4 on the far side.
        assert_eq!(
            candidates(30, NOW, 120, 3),
            vec![(N + 3, 3), (N + 2, 2), (N + 4, 4), (N + 1, 1), (N, 0), (N - 1, -1)]
        );
        // A stored drift beyond the skew (the skew was lowered) is clamped to it.
        assert_eq!(candidates(30, NOW, 60, -1000), vec![(N - 2, -2), (N - 1, -1), (N, 0)]);
        assert_eq!(candidates(30, NOW, 0, 5), vec![(N, 0)]);
        assert_eq!(candidates(0, NOW, 60, 0), vec![]);
        // Near the epoch, steps below zero do not exist.
        assert_eq!(candidates(30, 0, 60, 0), vec![(0, 0), (1, 1), (2, 2)]);
        // A huge skew is capped.
        assert_eq!(candidates(1, NOW, u64::MAX, 0).len() as u64, 2 * MAX_SKEW_STEPS + 1);
        assert_eq!(candidates(1, u64::MAX, 5, 0).len(), 6);
    }

    /// A token 3 steps (90 s) fast, skew 2 minutes (k = 4).
    #[test]
    fn drift_is_remembered_and_followed_within_the_skew() {
        let s = seed(20);
        let skew = 120;
        // First login: the token shows step N+3; within ±4, accepted, drift 3 remembered.
        let first = verify(&s, SHA1_6_30, &code_at(&s, N + 3), NOW, skew, None).unwrap();
        assert_eq!(first, Accepted { step: N + 3, drift: 3 });
        let last = Some(LastStep::from(first));
        assert_eq!(last, Some(LastStep { step: N + 3, drift: 3 }));
        // Ten minutes later the token is still 3 steps fast: accepted, drift kept.
        let later = NOW + 600;
        let n = later / 30;
        let second = verify(&s, SHA1_6_30, &code_at(&s, n + 3), later, skew, last).unwrap();
        assert_eq!(second, Accepted { step: n + 3, drift: 3 });
        let last = Some(LastStep::from(second));
        // The window is now N+3±4 clamped to N±4, i.e. n-1..=n+4:
        let at = 1200 + NOW;
        let n = at / 30;
        // n+4 (the clamp) is accepted, n+5 (inside the drifted window, beyond the skew) is not;
        assert_eq!(verify(&s, SHA1_6_30, &code_at(&s, n + 4), at, skew, last), Ok(Accepted { step: n + 4, drift: 4 }));
        assert_eq!(verify(&s, SHA1_6_30, &code_at(&s, n + 5), at, skew, last), Err(Rejection::Wrong));
        // n-1 (drift 3 - 4) is accepted, n-2 (allowed without the remembered drift) is not.
        assert_eq!(verify(&s, SHA1_6_30, &code_at(&s, n - 1), at, skew, last), Ok(Accepted { step: n - 1, drift: -1 }));
        assert_eq!(verify(&s, SHA1_6_30, &code_at(&s, n - 2), at, skew, last), Err(Rejection::Wrong));
        assert!(verify(&s, SHA1_6_30, &code_at(&s, n - 2), at, skew, None).is_ok());
        // A token re-set to the right time (drift 0) is still inside the window, and recentres it.
        let back = verify(&s, SHA1_6_30, &code_at(&s, n), at, skew, last).unwrap();
        assert_eq!(back, Accepted { step: n, drift: 0 });
    }

    #[test]
    fn generated_secrets() {
        for (algorithm, len) in [(Algorithm::Sha1, 20), (Algorithm::Sha256, 32), (Algorithm::Sha512, 64)] {
            let a = generate_secret(algorithm).unwrap();
            let b = generate_secret(algorithm).unwrap();
            assert_eq!(a.len(), len);
            assert_ne!(a.expose(), b.expose());
            assert_eq!(base32_decode(&base32_encode(a.expose())).as_deref(), Some(a.expose()));
        }
    }
}
