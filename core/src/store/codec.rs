//! Versioned text values of the state attributes, as pure encode/decode.
//!
//! Every payload is JSON with a `v` version field, so that the format can
//! evolve, and is stored signed (`super::signed`): `seal` makes the stored
//! form, `open` checks and parses it. A value that does not open is
//! treated as absent where that is safe (garbage is never a completion)
//! and as the worse case where absence would help (`locked_until`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::signed::Signer;
use crate::config::{Algorithm, Role};
use crate::secret::constant_time_eq;
use crate::totp::{Accepted, TotpParams};

/// What a completion is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Keyed hash of the session cookie or the gateway's session id.
    Session(Vec<u8>),
    /// `TwoFactorSessionBinding none`: any browser of this user, until expiry.
    Anywhere,
}

/// One `twoFactorCompletion` value: a browser session that passed the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub bound: Bound,
    /// Unix seconds.
    pub issued: u64,
    /// Unix seconds; the value is worthless afterwards.
    pub expires: u64,
    /// `totp`, `email`, `recovery`, `enrolled`, ...
    pub method: String,
}

#[derive(Serialize, Deserialize)]
struct CompletionV1 {
    v: u8,
    /// base64url keyed hash, or `*`.
    b: String,
    t: u64,
    e: u64,
    m: String,
}

impl Completion {
    /// The stored form.
    pub fn seal(&self, signer: &Signer<'_>) -> String {
        signer.sign(Role::Completion, &self.encode())
    }

    /// A stored value that passes its check, parsed.
    pub fn open(signer: &Signer<'_>, stored: &str) -> Option<Completion> {
        signer.decode(Role::Completion, stored, Completion::decode)
    }

    fn encode(&self) -> String {
        let b = match &self.bound {
            Bound::Session(hash) => URL_SAFE_NO_PAD.encode(hash),
            Bound::Anywhere => "*".to_string(),
        };
        let value = CompletionV1 { v: 1, b, t: self.issued, e: self.expires, m: self.method.clone() };
        serde_json::to_string(&value).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Completion> {
        let raw: CompletionV1 = serde_json::from_str(text).ok()?;
        if raw.v != 1
            || raw.e < raw.t
            || raw.m.len() > 32
            || !raw.m.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        {
            return None;
        }
        let bound = if raw.b == "*" {
            Bound::Anywhere
        } else {
            let hash = URL_SAFE_NO_PAD.decode(&raw.b).ok()?;
            if hash.len() != 32 {
                return None;
            }
            Bound::Session(hash)
        };
        Some(Completion { bound, issued: raw.t, expires: raw.e, method: raw.m })
    }

    /// Whether this completion belongs to a browser presenting one of
    /// `candidates` (its binding's keyed hashes under every accepted key).
    pub fn is_bound_to(&self, candidates: &[Vec<u8>]) -> bool {
        match &self.bound {
            Bound::Anywhere => true,
            Bound::Session(hash) => candidates.iter().fold(false, |hit, c| hit | constant_time_eq(hash, c)),
        }
    }

    /// Valid at `now` for a scope whose `TwoFactorMaxAge` is `max_age` seconds.
    pub fn is_valid(&self, now: u64, max_age: u64) -> bool {
        now < self.expires && now < self.issued.saturating_add(max_age) && self.issued <= now.saturating_add(300)
    }
}

/// `twoFactorFailures`: attempts counted against the lock, and the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    /// Attempts counted since the last success (or lock end): wrong codes,
    /// and codes still being checked.
    pub count: u32,
    /// Unix seconds of the last attempt counted.
    pub last: u64,
    /// Locked until then (Unix seconds); `LOCKED_UNTIL_UNLOCKED` for "until an administrator unlocks".
    pub locked_until: Option<u64>,
    /// Of `count`, the attempts whose code is still being checked.
    pub pending: u32,
    /// Grows with every write (`anchor::next_generation`), so that a value
    /// put back after a newer one was seen is known for what it is.
    pub generation: u64,
}

/// `locked_until` of a lock that only an administrator lifts.
pub const LOCKED_UNTIL_UNLOCKED: u64 = u64::MAX;

#[derive(Serialize, Deserialize)]
struct FailuresV1 {
    v: u8,
    n: u32,
    l: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    p: u32,
    #[serde(default)]
    g: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Failures {
    pub fn seal(&self, signer: &Signer<'_>) -> String {
        signer.sign(Role::Failures, &self.encode())
    }

    pub fn open(signer: &Signer<'_>, stored: &str) -> Option<Failures> {
        signer.decode(Role::Failures, stored, Failures::decode)
    }

    fn encode(&self) -> String {
        let value =
            FailuresV1 { v: 1, n: self.count, l: self.last, u: self.locked_until, p: self.pending, g: self.generation };
        serde_json::to_string(&value).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Failures> {
        let raw: FailuresV1 = serde_json::from_str(text).ok()?;
        (raw.v == 1).then_some(Failures {
            count: raw.n,
            last: raw.l,
            locked_until: raw.u,
            pending: raw.p,
            generation: raw.g,
        })
    }

    /// Whether the account is locked at `now`.
    pub fn is_locked(&self, now: u64) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// The lock state of an entry's failures value, failing closed: a value
/// that cannot be read (or does not pass its check) counts as locked until
/// an administrator looks at it, and so do several values where there
/// should be one.
pub fn locked_until(signer: &Signer<'_>, values: &[String], now: u64) -> Option<u64> {
    let value = match values {
        [] => return None,
        [one] => one,
        _ => return Some(LOCKED_UNTIL_UNLOCKED),
    };
    match Failures::open(signer, value) {
        Some(f) if f.is_locked(now) => f.locked_until,
        Some(_) => None,
        None => Some(LOCKED_UNTIL_UNLOCKED),
    }
}

// ---------------------------------------------------------------------------
// TOTP (also `crate::totp::{TotpRecord, LastStep}`)

/// `twoFactorTOTP`: the secret sealed by `Keys::seal` (opaque bytes here) and its parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpRecord {
    pub sealed: Vec<u8>,
    pub params: TotpParams,
    /// The hardware token's serial number, when the secret came from one.
    pub serial: Option<String>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .field("params", &self.params)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct TotpRecordV1 {
    v: u8,
    /// base64url, unpadded.
    s: String,
    a: String,
    d: u32,
    p: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
}

impl TotpRecord {
    pub fn seal(&self, signer: &Signer<'_>) -> String {
        signer.sign(Role::Totp, &self.encode())
    }

    pub fn open(signer: &Signer<'_>, stored: &str) -> Option<TotpRecord> {
        signer.decode(Role::Totp, stored, TotpRecord::decode)
    }

    /// `{"v":1,"s":"<base64url>","a":"SHA1","d":6,"p":30}`
    fn encode(&self) -> String {
        let value = TotpRecordV1 {
            v: 1,
            s: URL_SAFE_NO_PAD.encode(&self.sealed),
            a: self.params.algorithm.as_str().to_string(),
            d: self.params.digits,
            p: self.params.period,
            n: self.serial.clone(),
        };
        serde_json::to_string(&value).unwrap_or_default()
    }

    /// `None` for anything but a well-formed version-1 value with valid parameters.
    fn decode(text: &str) -> Option<TotpRecord> {
        let raw: TotpRecordV1 = serde_json::from_str(text).ok()?;
        if raw.v != 1 {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(&raw.s).ok()?;
        if sealed.is_empty() {
            return None;
        }
        let params = TotpParams::new(Algorithm::parse(&raw.a)?, raw.d, raw.p).ok()?;
        Some(TotpRecord { sealed, params, serial: raw.n.filter(|n| n.len() <= 64) })
    }
}

/// The stored state of `twoFactorTOTPLastStep`: the last accepted time step
/// and the drift (in steps, accepted step minus the server's step) it was accepted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastStep {
    pub step: u64,
    pub drift: i64,
}

impl From<Accepted> for LastStep {
    fn from(accepted: Accepted) -> LastStep {
        LastStep { step: accepted.step, drift: accepted.drift }
    }
}

#[derive(Serialize, Deserialize)]
struct LastStepV1 {
    v: u8,
    t: u64,
    o: i64,
}

impl LastStep {
    pub fn seal(&self, signer: &Signer<'_>) -> String {
        signer.sign(Role::TotpLast, &self.encode())
    }

    pub fn open(signer: &Signer<'_>, stored: &str) -> Option<LastStep> {
        signer.decode(Role::TotpLast, stored, LastStep::decode)
    }

    /// `{"v":1,"t":<step>,"o":<drift>}`
    fn encode(&self) -> String {
        serde_json::to_string(&LastStepV1 { v: 1, t: self.step, o: self.drift }).unwrap_or_default()
    }

    /// `None` for anything but a well-formed version-1 value.
    fn decode(text: &str) -> Option<LastStep> {
        let raw: LastStepV1 = serde_json::from_str(text).ok()?;
        (raw.v == 1).then_some(LastStep { step: raw.t, drift: raw.o })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::test_support::{p, SHA1_6_30};

    fn sample() -> Completion {
        Completion { bound: Bound::Session(vec![7; 32]), issued: 1000, expires: 1000 + 8 * 3600, method: "totp".into() }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(Completion::decode(&c.encode()), Some(c));
        let any = Completion { bound: Bound::Anywhere, ..sample() };
        assert!(any.encode().contains("\"b\":\"*\""));
        assert_eq!(Completion::decode(&any.encode()), Some(any));
    }

    #[test]
    fn garbage_is_no_completion() {
        for text in [
            "",
            "garbage",
            "{}",
            r#"{"v":2,"b":"*","t":1,"e":2,"m":"totp"}"#,
            r#"{"v":1,"b":"*","t":5,"e":2,"m":"totp"}"#,
            r#"{"v":1,"b":"short","t":1,"e":2,"m":"totp"}"#,
            r#"{"v":1,"b":"*","t":1,"e":2,"m":"TOTP<script>"}"#,
            r#"{"v":1,"b":"*","t":-1,"e":2,"m":"totp"}"#,
        ] {
            assert_eq!(Completion::decode(text), None, "{text}");
        }
    }

    #[test]
    fn validity() {
        let c = sample();
        assert!(c.is_valid(1000, 8 * 3600));
        assert!(!c.is_valid(1000 + 8 * 3600, 8 * 3600), "expired");
        assert!(c.is_valid(1000 + 600, 3600));
        assert!(!c.is_valid(1000 + 3600, 3600), "older than this scope's max age");
        assert!(!c.is_valid(1, 8 * 3600), "issued more than 5 minutes in the future");
        assert!(c.is_valid(800, 8 * 3600), "a little clock difference between servers is fine");
    }

    #[test]
    fn binding() {
        let c = sample();
        assert!(c.is_bound_to(&[vec![1; 32], vec![7; 32]]));
        assert!(!c.is_bound_to(&[vec![1; 32]]));
        assert!(!c.is_bound_to(&[]));
        assert!(Completion { bound: Bound::Anywhere, ..sample() }.is_bound_to(&[]));
    }

    #[test]
    fn failures() {
        let f = Failures { count: 5, last: 100, locked_until: Some(1900), pending: 0, generation: 7 };
        assert_eq!(Failures::decode(&f.encode()), Some(f));
        assert!(f.is_locked(1899) && !f.is_locked(1900));
        let unlocked = Failures { count: 2, last: 100, locked_until: None, pending: 0, generation: 0 };
        assert!(!unlocked.encode().contains("\"u\"") && !unlocked.encode().contains("\"p\""));
        let in_flight = Failures { pending: 2, ..unlocked };
        assert_eq!(Failures::decode(&in_flight.encode()), Some(in_flight));
        assert_eq!(
            Failures::decode(r#"{"v":1,"n":2,"l":100}"#),
            Some(unlocked),
            "values written before pending and generations existed"
        );
    }

    #[test]
    fn the_lock_fails_closed_on_anything_but_one_genuine_value() {
        let keys = crate::testing::keys();
        let alice = Signer::new(&keys, "alice", false);
        let f = Failures { count: 5, last: 100, locked_until: Some(1900), pending: 0, generation: 7 };
        assert_eq!(locked_until(&alice, &[f.seal(&alice)], 1000), Some(1900));
        assert_eq!(locked_until(&alice, &[f.seal(&alice)], 2000), None);
        assert_eq!(locked_until(&alice, &[], 2000), None);
        let unlocked = Failures { locked_until: None, ..f };
        for (values, why) in [
            (vec!["{broken".to_string()], "garbage"),
            (vec![unlocked.encode()], "unsigned"),
            (vec![unlocked.seal(&Signer::new(&keys, "bob", false))], "another user's"),
            (vec![unlocked.seal(&alice), unlocked.seal(&alice).replace("\"n\":5", "\"n\":0")], "two values"),
        ] {
            assert_eq!(locked_until(&alice, &values, 2000), Some(LOCKED_UNTIL_UNLOCKED), "{why}");
        }
        crate::tamper::take();
    }

    // ----- codecs -----

    #[test]
    fn totp_record_round_trip_and_format() {
        let record = TotpRecord {
            sealed: vec![0xfb, 0xff, 1, 2, 3],
            params: p(Algorithm::Sha256, 8, 60),
            serial: Some("TK123".into()),
        };
        let text = record.encode();
        assert_eq!(text, r#"{"v":1,"s":"-_8BAgM","a":"SHA256","d":8,"p":60,"n":"TK123"}"#);
        assert_eq!(TotpRecord::decode(&text), Some(record.clone()));
        for params in [SHA1_6_30, p(Algorithm::Sha512, 10, 30), p(Algorithm::Sha1, 4, 60)] {
            let r = TotpRecord { sealed: vec![9; 80], params, serial: None };
            assert_eq!(TotpRecord::decode(&r.encode()), Some(r));
        }
        assert!(!format!("{record:?}").contains("251"), "Debug must not print the bytes");
        assert_eq!(
            TotpRecord::decode(r#"{"v":1,"s":"AQID","a":"SHA1","d":6,"p":30}"#),
            Some(TotpRecord { sealed: vec![1, 2, 3], params: SHA1_6_30, serial: None })
        );
    }

    #[test]
    fn totp_record_garbage() {
        for text in [
            "",
            "null",
            "{}",
            "[]",
            "AQID",
            r#"{"v":2,"s":"AQID","a":"SHA1","d":6,"p":30}"#,
            r#"{"v":1,"s":"","a":"SHA1","d":6,"p":30}"#,
            r#"{"v":1,"s":"AQ==","a":"SHA1","d":6,"p":30}"#,
            r#"{"v":1,"s":"A!ID","a":"SHA1","d":6,"p":30}"#,
            r#"{"v":1,"s":"AQID","a":"MD5","d":6,"p":30}"#,
            r#"{"v":1,"s":"AQID","a":"SHA1","d":7,"p":30}"#,
            r#"{"v":1,"s":"AQID","a":"SHA1","d":6,"p":0}"#,
            r#"{"v":1,"s":"AQID","a":"SHA1","d":-6,"p":30}"#,
            r#"{"v":1,"s":"AQID","a":"SHA1","d":6}"#,
            r#"{"v":1,"s":7,"a":"SHA1","d":6,"p":30}"#,
            r#"{"v":1,"s":"AQID","a":"SHA1","d":6,"p":30"#,
        ] {
            assert_eq!(TotpRecord::decode(text), None, "{text}");
        }
    }

    #[test]
    fn last_step_round_trip_and_garbage() {
        for last in [
            LastStep { step: 0, drift: 0 },
            LastStep { step: 58_907_520, drift: -4 },
            LastStep { step: u64::MAX, drift: i64::MIN },
        ] {
            assert_eq!(LastStep::decode(&last.encode()), Some(last));
        }
        assert_eq!(LastStep { step: 58_907_520, drift: 3 }.encode(), r#"{"v":1,"t":58907520,"o":3}"#);
        for text in [
            "",
            "{}",
            r#"{"v":2,"t":1,"o":0}"#,
            r#"{"v":1,"t":-1,"o":0}"#,
            r#"{"v":1,"t":1}"#,
            r#"{"v":1,"t":"1","o":0}"#,
            "1",
        ] {
            assert_eq!(LastStep::decode(text), None, "{text}");
        }
    }
}
