//! Every value the module stores carries a MAC, so that whoever can write
//! the user's entry (on Active Directory, often the user herself) cannot
//! forge, edit, move or relabel state.
//!
//! A stored value is `s1.<tag>.<payload>`: the payload is the role's JSON,
//! the tag the first 16 bytes of an HMAC-SHA256 (key derived from
//! `TwoFactorSecretKeyFile` for this purpose only) over the format, the
//! role, the canonical user (ASCII lowercase) and the payload, base64url.
//! Every accepted key verifies; the first one signs, so that `twofactorctl
//! rekey` after a key rotation re-signs what older keys signed.
//!
//! What a MAC cannot stop is a genuine value put back after it was
//! replaced, or a value deleted: see `crate::anchor` for the two counters
//! where that matters, and the directory's access rules for the rest.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::config::Role;
use crate::keys::{Keys, Purpose};
use crate::tamper::{self, Why};

/// The format's prefix: version 1 of the signed envelope.
pub const PREFIX: &str = "s1.";
/// Bytes of the MAC kept (128 bits: no forgery is feasible, and values stay short).
const TAG_BYTES: usize = 16;
/// Its base64url length.
const TAG_CHARS: usize = 22;
const DOMAIN: &[u8] = b"mod_twofactor stored value v1\0";

/// Signs and opens the values of one user.
pub struct Signer<'a> {
    keys: &'a Keys,
    /// The canonical name, ASCII lowercase: a value belongs to one user.
    user: String,
    /// `TwoFactorAcceptUnsignedState On`: values written before values were
    /// signed are read (and signed when next written).
    accept_unsigned: bool,
}

impl std::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.user)
    }
}

/// What a stored value turned out to be (`Signer::check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened<'t> {
    /// Signed with the current key.
    Current(&'t str),
    /// Signed with an older key still listed: valid, due for re-signing.
    OlderKey(&'t str),
    /// From before values were signed (only read with `accept_unsigned`).
    Unsigned(&'t str),
    Refused(Why),
}

impl<'a> Signer<'a> {
    pub fn new(keys: &'a Keys, user: &str, accept_unsigned: bool) -> Signer<'a> {
        Signer { keys, user: user.to_ascii_lowercase(), accept_unsigned }
    }

    /// The keys it signs with (for the keyed hashes inside values).
    pub fn keys(&self) -> &'a Keys {
        self.keys
    }

    /// The user, ASCII lowercase.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn data(&self, role: Role, payload: &str) -> Vec<u8> {
        let role = role.as_str().as_bytes();
        let mut data = Vec::with_capacity(DOMAIN.len() + role.len() + self.user.len() + payload.len() + 9);
        data.extend_from_slice(DOMAIN);
        data.extend_from_slice(role);
        data.push(0);
        // The length makes the split between user and payload unambiguous.
        data.extend_from_slice(&(self.user.len() as u64).to_be_bytes());
        data.extend_from_slice(self.user.as_bytes());
        data.extend_from_slice(payload.as_bytes());
        data
    }

    /// The stored form of `payload` as a value of `role`.
    pub fn sign(&self, role: Role, payload: &str) -> String {
        let mut tag = self.keys.sign(Purpose::State, &self.data(role, payload));
        tag.truncate(TAG_BYTES);
        format!("{PREFIX}{}.{payload}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// What `stored` is, without noting anything.
    pub fn check<'t>(&self, role: Role, stored: &'t str) -> Opened<'t> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return if self.accept_unsigned { Opened::Unsigned(stored) } else { Opened::Refused(Why::Unsigned) };
        };
        let (Some(tag), Some(payload)) = (rest.get(..TAG_CHARS), rest.get(TAG_CHARS + 1..)) else {
            return Opened::Refused(Why::BadMac);
        };
        if rest.as_bytes().get(TAG_CHARS) != Some(&b'.') {
            return Opened::Refused(Why::BadMac);
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else { return Opened::Refused(Why::BadMac) };
        match self.keys.verify_prefix(Purpose::State, &self.data(role, payload), &tag) {
            Some(true) => Opened::Current(payload),
            Some(false) => Opened::OlderKey(payload),
            None => Opened::Refused(Why::BadMac),
        }
    }

    /// The payload of a value of `role` that passes its check; `None` (and
    /// a note for the request's log line) for one that does not.
    pub fn open<'t>(&self, role: Role, stored: &'t str) -> Option<&'t str> {
        match self.check(role, stored) {
            Opened::Current(payload) | Opened::OlderKey(payload) | Opened::Unsigned(payload) => Some(payload),
            Opened::Refused(why) => {
                tamper::record(role, why);
                None
            }
        }
    }

    /// Opens and parses a value; a genuine value that does not parse is noted too.
    pub fn decode<T>(&self, role: Role, stored: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        let parsed = parse(self.open(role, stored)?);
        if parsed.is_none() {
            tamper::record(role, Why::Malformed);
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn keys(files: &[u8]) -> Keys {
        Keys::from_files(&files.iter().map(|b| Secret::new(vec![*b; 32])).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_signed_value_opens_for_its_user_and_role_only() {
        let k = keys(&[1]);
        let alice = Signer::new(&k, "Alice", false);
        let stored = alice.sign(Role::Failures, r#"{"v":1,"n":0}"#);
        assert!(stored.starts_with("s1.") && stored.ends_with(r#".{"v":1,"n":0}"#), "{stored}");
        tamper::take();
        assert_eq!(alice.open(Role::Failures, &stored), Some(r#"{"v":1,"n":0}"#));
        assert_eq!(Signer::new(&k, "ALICE", false).open(Role::Failures, &stored), Some(r#"{"v":1,"n":0}"#));
        assert!(tamper::take().is_empty());
        assert_eq!(Signer::new(&k, "bob", false).open(Role::Failures, &stored), None, "another user's");
        assert_eq!(alice.open(Role::TotpLast, &stored), None, "another role's");
        assert_eq!(tamper::take(), [(Role::TotpLast, Why::BadMac), (Role::Failures, Why::BadMac)]);
    }

    #[test]
    fn edits_and_forgeries_fail() {
        let k = keys(&[1]);
        let s = Signer::new(&k, "alice", false);
        let stored = s.sign(Role::Completion, r#"{"m":"totp"}"#);
        let relabelled = stored.replace("totp", "webauthn");
        let foreign = keys(&[9]);
        let forged = Signer::new(&foreign, "alice", false).sign(Role::Completion, r#"{"m":"totp"}"#);
        for bad in [
            relabelled.as_str(),
            forged.as_str(),
            "s1.",
            "s1.AAAAAAAAAAAAAAAAAAAAAA.x",
            "s1.AAAAAAAAAAAAAAAAAAAAAAx{}",
            "s1.!!!!!!!!!!!!!!!!!!!!!!.{}",
            &stored[..stored.len() - 1],
        ] {
            assert_eq!(s.check(Role::Completion, bad), Opened::Refused(Why::BadMac), "{bad}");
        }
    }

    #[test]
    fn unsigned_values_only_with_the_migration_switch() {
        let k = keys(&[1]);
        let legacy = r#"{"v":1,"n":2,"l":100}"#;
        assert_eq!(Signer::new(&k, "alice", false).check(Role::Failures, legacy), Opened::Refused(Why::Unsigned));
        assert_eq!(Signer::new(&k, "alice", true).check(Role::Failures, legacy), Opened::Unsigned(legacy));
    }

    #[test]
    fn an_older_key_still_verifies_and_says_so() {
        let old = keys(&[1]);
        let stored = Signer::new(&old, "alice", false).sign(Role::Totp, "{}");
        let rotated = keys(&[2, 1]);
        assert_eq!(Signer::new(&rotated, "alice", false).check(Role::Totp, &stored), Opened::OlderKey("{}"));
        let resigned = Signer::new(&rotated, "alice", false).sign(Role::Totp, "{}");
        assert_eq!(Signer::new(&rotated, "alice", false).check(Role::Totp, &resigned), Opened::Current("{}"));
        assert_eq!(Signer::new(&keys(&[2]), "alice", false).check(Role::Totp, &stored), Opened::Refused(Why::BadMac));
    }

    #[test]
    fn a_genuine_value_that_does_not_parse_is_noted() {
        let k = keys(&[1]);
        let s = Signer::new(&k, "alice", false);
        let stored = s.sign(Role::EmailCode, "not json");
        tamper::take();
        assert_eq!(s.decode(Role::EmailCode, &stored, |p| serde_json::from_str::<u8>(p).ok()), None);
        assert_eq!(tamper::take(), [(Role::EmailCode, Why::Malformed)]);
    }
}
