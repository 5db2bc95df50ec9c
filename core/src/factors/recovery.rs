//! Single-use recovery codes: shown once at enrollment, stored as keyed
//! hashes, one value each; using one deletes its value.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::Role;
use crate::secret::constant_time_eq;
use crate::store::signed::Signer;

const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

#[derive(Serialize, Deserialize)]
struct RecoveryV1 {
    v: u8,
    h: String,
}

/// `n` new codes like `k7wq2-mx9pd` (50 bits each, no look-alike characters).
pub fn generate(n: u32) -> Result<Vec<String>, String> {
    (0..n)
        .map(|_| {
            let mut bytes = [0u8; 10];
            crate::random::fill(&mut bytes)?;
            let chars: String = bytes.iter().map(|b| char::from(ALPHABET[usize::from(b % 32)])).collect();
            Ok(format!("{}-{}", &chars[..5], &chars[5..]))
        })
        .collect()
}

fn normalize(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

fn domain(user: &str) -> String {
    format!("recovery\n{}", user.to_ascii_lowercase())
}

/// The stored value for a new code of the signer's user.
pub fn stored_value(signer: &Signer<'_>, code: &str) -> String {
    let hash = signer.keys().hash(&domain(signer.user()), normalize(code).as_bytes());
    let payload = serde_json::to_string(&RecoveryV1 { v: 1, h: URL_SAFE_NO_PAD.encode(hash) }).unwrap_or_default();
    signer.sign(Role::Recovery, &payload)
}

/// The stored value that `code` matches, if any (to delete it); values
/// that do not pass their check match nothing.
pub fn matching<'a>(signer: &Signer<'_>, values: &'a [String], code: &str) -> Option<&'a String> {
    let code = normalize(code);
    if code.len() != 10 {
        return None;
    }
    let candidates: Vec<Vec<u8>> = signer.keys().hashes(&domain(signer.user()), code.as_bytes()).collect();
    values.iter().find(|v| {
        let parse = |payload: &str| {
            let raw = serde_json::from_str::<RecoveryV1>(payload).ok().filter(|r| r.v == 1)?;
            URL_SAFE_NO_PAD.decode(raw.h).ok()
        };
        let Some(hash) = signer.decode(Role::Recovery, v, parse) else { return false };
        candidates.iter().fold(false, |hit, c| hit | constant_time_eq(c, &hash))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;
    use crate::secret::Secret;

    #[test]
    fn codes_match_their_user_once_written() {
        let k = Keys::from_files(&[Secret::new(vec![3; 32])]).unwrap();
        let alice = Signer::new(&k, "alice", false);
        let codes = generate(10).unwrap();
        assert_eq!(codes.len(), 10);
        assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
        let values: Vec<String> = codes.iter().map(|c| stored_value(&alice, c)).collect();
        assert_eq!(matching(&alice, &values, &codes[3]), Some(&values[3]));
        let spelled = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(matching(&Signer::new(&k, "Alice", false), &values, &spelled), Some(&values[3]));
        crate::tamper::take();
        assert_eq!(matching(&Signer::new(&k, "bob", false), &values, &codes[3]), None);
        assert_eq!(matching(&alice, &values, "aaaaa-aaaaa"), None);
        assert_eq!(matching(&alice, &values, ""), None);
        assert!(!values[0].contains(&codes[0]));
    }

    #[test]
    fn a_code_value_copied_from_another_user_or_edited_matches_nothing() {
        let k = Keys::from_files(&[Secret::new(vec![3; 32])]).unwrap();
        let (alice, bob) = (Signer::new(&k, "alice", false), Signer::new(&k, "bob", false));
        let code = "abcde-fghij";
        // Bob's value for a code he knows, written into Alice's entry.
        let copied = vec![stored_value(&bob, code)];
        assert_eq!(matching(&alice, &copied, code), None);
        let unsigned = vec![alice.open(Role::Recovery, &stored_value(&alice, code)).unwrap().to_string()];
        assert_eq!(matching(&alice, &unsigned, code), None);
        assert!(matching(&Signer::new(&k, "alice", true), &unsigned, code).is_some(), "while migrating");
        crate::tamper::take();
    }
}
