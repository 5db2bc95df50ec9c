//! Single-use recovery codes: shown once at enrollment, stored as keyed
//! hashes, one value each; using one deletes its value.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::secret::constant_time_eq;

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

/// The stored value for a new code.
pub fn stored_value(keys: &Keys, user: &str, code: &str) -> String {
    let hash = keys.hash(&domain(user), normalize(code).as_bytes());
    serde_json::to_string(&RecoveryV1 { v: 1, h: URL_SAFE_NO_PAD.encode(hash) }).unwrap_or_default()
}

/// The stored value that `code` matches, if any (to delete it).
pub fn matching<'a>(values: &'a [String], keys: &Keys, user: &str, code: &str) -> Option<&'a String> {
    let code = normalize(code);
    if code.len() != 10 {
        return None;
    }
    let candidates: Vec<Vec<u8>> = keys.hashes(&domain(user), code.as_bytes()).collect();
    values.iter().find(|v| {
        let Some(raw) = serde_json::from_str::<RecoveryV1>(v).ok().filter(|r| r.v == 1) else { return false };
        let Ok(hash) = URL_SAFE_NO_PAD.decode(raw.h) else { return false };
        candidates.iter().fold(false, |hit, c| hit | constant_time_eq(c, &hash))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn codes_match_their_user_once_written() {
        let k = Keys::from_files(&[Secret::new(vec![3; 32])]).unwrap();
        let codes = generate(10).unwrap();
        assert_eq!(codes.len(), 10);
        assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
        let values: Vec<String> = codes.iter().map(|c| stored_value(&k, "alice", c)).collect();
        assert_eq!(matching(&values, &k, "alice", &codes[3]), Some(&values[3]));
        assert_eq!(matching(&values, &k, "Alice", &codes[3].to_uppercase().replace('-', " ")), Some(&values[3]));
        assert_eq!(matching(&values, &k, "bob", &codes[3]), None);
        assert_eq!(matching(&values, &k, "alice", "aaaaa-aaaaa"), None);
        assert_eq!(matching(&values, &k, "alice", ""), None);
        assert!(!values[0].contains(&codes[0]));
    }
}
