//! Emailed passcodes: random, stored only as a keyed hash with expiry and
//! send time, single use, replaced by a newer one, resend throttled.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::{Role, Settings};
use crate::keys::Keys;
use crate::secret::constant_time_eq;
use crate::store::signed::Signer;
use crate::store::UserEntry;

/// The user's mail address (`TwoFactorMailAttribute`), if it looks like one.
pub fn address<'e>(entry: &'e UserEntry, settings: &Settings) -> Option<&'e str> {
    entry.values(&settings.mail_attribute).first().map(String::as_str).filter(|m| m.contains('@'))
}

/// Digits of an emailed passcode.
pub const DIGITS: u32 = 8;

/// `twoFactorEmailCode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailCode {
    pub hash: Vec<u8>,
    /// Unix seconds.
    pub expires: u64,
    /// When it was sent, for the resend throttle.
    pub sent: u64,
}

#[derive(Serialize, Deserialize)]
struct EmailCodeV1 {
    v: u8,
    h: String,
    e: u64,
    s: u64,
}

impl EmailCode {
    pub fn new(keys: &Keys, user: &str, code: &str, now: u64, ttl: u64) -> EmailCode {
        EmailCode {
            hash: keys.hash(&domain(user), normalize(code).as_bytes()),
            expires: now.saturating_add(ttl),
            sent: now,
        }
    }

    pub fn seal(&self, signer: &Signer<'_>) -> String {
        signer.sign(Role::EmailCode, &self.encode())
    }

    pub fn open(signer: &Signer<'_>, stored: &str) -> Option<EmailCode> {
        signer.decode(Role::EmailCode, stored, EmailCode::decode)
    }

    fn encode(&self) -> String {
        let v = EmailCodeV1 { v: 1, h: URL_SAFE_NO_PAD.encode(&self.hash), e: self.expires, s: self.sent };
        serde_json::to_string(&v).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<EmailCode> {
        let raw: EmailCodeV1 = serde_json::from_str(text).ok()?;
        let hash = URL_SAFE_NO_PAD.decode(raw.h).ok()?;
        (raw.v == 1 && hash.len() == 32).then_some(EmailCode { hash, expires: raw.e, sent: raw.s })
    }

    /// Seconds to wait before another mail may be sent (0: now).
    pub fn resend_wait(&self, now: u64, interval: u64) -> u64 {
        self.sent.saturating_add(interval).saturating_sub(now)
    }

    /// Whether `code` is this passcode for `user`, unexpired at `now`.
    pub fn matches(&self, keys: &Keys, user: &str, code: &str, now: u64) -> bool {
        if now >= self.expires {
            return false;
        }
        let code = normalize(code);
        let domain = domain(user);
        keys.hashes(&domain, code.as_bytes()).fold(false, |hit, h| hit | constant_time_eq(&h, &self.hash))
    }
}

/// The hash covers the user: a passcode sent to one user is nobody else's.
fn domain(user: &str) -> String {
    format!("email-code\n{}", user.to_ascii_lowercase())
}

/// Digits only; spaces a user may type are ignored.
fn normalize(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The mail's subject and plain-text body. No link: nothing in it comes
/// from request headers, and there is nothing to click.
pub fn message(site: &str, code: &str, ttl_minutes: u64) -> (String, String) {
    let subject = format!("Your sign-in code for {site}");
    let body = format!(
        "Your sign-in code for {site} is:\n\n    {code}\n\nIt is valid for {ttl_minutes} minutes and can be used once.\n\
         If you did not try to sign in, someone knows your password: change it, and tell your IT support.\n"
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn keys(b: u8) -> Keys {
        Keys::from_files(&[Secret::new(vec![b; 32])]).unwrap()
    }

    #[test]
    fn a_code_matches_its_user_until_expiry() {
        let k = keys(1);
        let c = EmailCode::new(&k, "alice", "12345678", 100, 600);
        assert!(c.matches(&k, "alice", "12345678", 100));
        assert!(c.matches(&k, "ALICE", "1234 5678", 699));
        assert!(!c.matches(&k, "alice", "12345678", 700), "expired");
        assert!(!c.matches(&k, "bob", "12345678", 100), "another user's code");
        assert!(!c.matches(&k, "alice", "12345679", 100));
        assert!(!c.matches(&keys(2), "alice", "12345678", 100));
    }

    #[test]
    fn codec_and_throttle() {
        let k = keys(1);
        let c = EmailCode::new(&k, "alice", "12345678", 100, 600);
        assert_eq!(EmailCode::decode(&c.encode()), Some(c.clone()));
        assert!(!c.encode().contains("12345678"));
        assert_eq!(EmailCode::decode("{}"), None);
        assert_eq!(c.resend_wait(130, 60), 30);
        assert_eq!(c.resend_wait(160, 60), 0);
    }

    #[test]
    fn the_mail_names_the_site_and_has_no_link() {
        let (subject, body) = message("vpn.example.org", "12345678", 10);
        assert!(subject.contains("vpn.example.org"));
        assert!(body.contains("12345678") && body.contains("10 minutes"));
        assert!(!body.contains("http"));
    }
}
