//! Tokens that tie a form to the user and browser that received it: CSRF
//! tokens and short-lived proofs (an emailed passcode was shown, an
//! enrollment is pending), all MACs under the CSRF key.
//!
//! `<expiry>.<base64url(mac)>` where the MAC covers a purpose, the user
//! (lowercased), the browser's challenge nonce (a cookie), and the expiry.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::keys::{Keys, Purpose};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Any form post of the challenge.
    Form,
    /// The user proved their mailbox: may (re-)enroll.
    EnrollProof,
}

impl Use {
    fn label(self) -> &'static str {
        match self {
            Use::Form => "form",
            Use::EnrollProof => "enroll-proof",
        }
    }
}

fn message(purpose: Use, user: &str, nonce: &str, expires: u64) -> Vec<u8> {
    format!("{}\n{}\n{nonce}\n{expires}", purpose.label(), user.to_ascii_lowercase()).into_bytes()
}

pub fn issue(keys: &Keys, purpose: Use, user: &str, nonce: &str, expires: u64) -> String {
    let tag = keys.sign(Purpose::Csrf, &message(purpose, user, nonce, expires));
    format!("{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Whether `token` was issued for this purpose, user and browser, and is unexpired.
pub fn verify(keys: &Keys, purpose: Use, token: &str, user: &str, nonce: &str, now: u64) -> bool {
    let Some((expires, tag)) = token.split_once('.') else { return false };
    let (Ok(expires), Ok(tag)) = (expires.parse::<u64>(), URL_SAFE_NO_PAD.decode(tag)) else { return false };
    if nonce.is_empty() || expires < now {
        return false;
    }
    keys.verify(Purpose::Csrf, &message(purpose, user, nonce, expires), &tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn keys() -> Keys {
        Keys::from_files(&[Secret::new(vec![4; 32])]).unwrap()
    }

    #[test]
    fn bound_to_purpose_user_browser_and_time() {
        let k = keys();
        let t = issue(&k, Use::Form, "alice", "nonce-1", 100);
        assert!(verify(&k, Use::Form, &t, "alice", "nonce-1", 100));
        assert!(verify(&k, Use::Form, &t, "ALICE", "nonce-1", 50));
        assert!(!verify(&k, Use::Form, &t, "alice", "nonce-1", 101), "expired");
        assert!(!verify(&k, Use::Form, &t, "bob", "nonce-1", 50), "other user");
        assert!(!verify(&k, Use::Form, &t, "alice", "nonce-2", 50), "other browser");
        assert!(!verify(&k, Use::EnrollProof, &t, "alice", "nonce-1", 50), "other purpose");
        assert!(!verify(&k, Use::Form, &t.replace("100.", "200."), "alice", "nonce-1", 50), "expiry is signed");
        assert!(!verify(&k, Use::Form, "", "alice", "nonce-1", 50));
        assert!(!verify(&k, Use::Form, &issue(&k, Use::Form, "alice", "", 100), "alice", "", 50), "no nonce, no token");
    }
}
