//! Keys derived from the key file(s) of `TwoFactorSecretKeyFile`.
//!
//! Each purpose gets its own HKDF-derived key, so that a value made for one
//! purpose (a CSRF token, say) can never be replayed as another (a return
//! token). The first file seals and signs; older files only open and verify,
//! so the key rotates without re-enrolling anyone.

use ring::{aead, hkdf, hmac};

use crate::secret::Secret;

/// Shortest key file accepted.
pub const MIN_KEY_BYTES: usize = 32;
const HKDF_SALT: &[u8] = b"mod_twofactor key derivation v1";

/// What a MAC or keyed hash is for; part of the derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ReturnToken,
    Csrf,
    /// Keyed hashes of cookies, gateway session ids, passcodes and recovery codes.
    Hash,
    /// MACs of the values stored in the directory (`store::signed`).
    State,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::ReturnToken => b"return-token",
            Purpose::Csrf => b"csrf-token",
            Purpose::Hash => b"keyed-hash",
            Purpose::State => b"state-mac",
        }
    }
}

struct KeySet {
    return_token: hmac::Key,
    csrf: hmac::Key,
    hash: hmac::Key,
    state: hmac::Key,
    seal: aead::LessSafeKey,
}

impl KeySet {
    fn derive(ikm: &[u8]) -> Result<KeySet, String> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(ikm);
        let mac = |purpose: Purpose| -> Result<hmac::Key, String> {
            let info = [purpose.label()];
            let okm = prk.expand(&info, hmac::HMAC_SHA256).map_err(|_| "key derivation failed".to_string())?;
            Ok(hmac::Key::from(okm))
        };
        let seal_info: [&[u8]; 1] = [b"seal"];
        let seal_okm = prk.expand(&seal_info, &aead::AES_256_GCM).map_err(|_| "key derivation failed".to_string())?;
        Ok(KeySet {
            return_token: mac(Purpose::ReturnToken)?,
            csrf: mac(Purpose::Csrf)?,
            hash: mac(Purpose::Hash)?,
            state: mac(Purpose::State)?,
            seal: aead::LessSafeKey::new(aead::UnboundKey::from(seal_okm)),
        })
    }

    fn mac_key(&self, purpose: Purpose) -> &hmac::Key {
        match purpose {
            Purpose::ReturnToken => &self.return_token,
            Purpose::Csrf => &self.csrf,
            Purpose::Hash => &self.hash,
            Purpose::State => &self.state,
        }
    }
}

/// The current key and the older ones still accepted.
pub struct Keys {
    sets: Vec<KeySet>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} key file(s), redacted)", self.sets.len())
    }
}

impl Keys {
    /// Derives keys from the contents of each key file, newest first.
    pub fn from_files(files: &[Secret]) -> Result<Keys, String> {
        if files.is_empty() {
            return Err("no key file given".into());
        }
        let mut sets = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            if file.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "key file {} holds {} bytes; at least {MIN_KEY_BYTES} random bytes are needed \
                     (twofactorctl gen-key, or head -c 32 /dev/urandom)",
                    i + 1,
                    file.len()
                ));
            }
            sets.push(KeySet::derive(file.expose())?);
        }
        Ok(Keys { sets })
    }

    /// Number of key files, the current one included.
    pub fn count(&self) -> usize {
        self.sets.len()
    }

    /// MAC of `data` with the current key.
    pub fn sign(&self, purpose: Purpose, data: &[u8]) -> Vec<u8> {
        match self.sets.first() {
            Some(set) => hmac::sign(set.mac_key(purpose), data).as_ref().to_vec(),
            None => Vec::new(),
        }
    }

    /// Whether `tag` is a MAC of `data` under any accepted key (constant time).
    pub fn verify(&self, purpose: Purpose, data: &[u8], tag: &[u8]) -> bool {
        self.sets.iter().any(|set| hmac::verify(set.mac_key(purpose), data, tag).is_ok())
    }

    /// Whether `tag` is a MAC of `data` under any accepted key, and under
    /// which: `Some(true)` for the current one (`false`: due for re-signing).
    /// `tag` may be a prefix of the MAC (at least 16 bytes). Constant time
    /// per key.
    pub fn verify_prefix(&self, purpose: Purpose, data: &[u8], tag: &[u8]) -> Option<bool> {
        if tag.len() < 16 {
            return None;
        }
        let mut found = None;
        for (i, set) in self.sets.iter().enumerate() {
            let full = hmac::sign(set.mac_key(purpose), data);
            let hit = full.as_ref().get(..tag.len()).is_some_and(|mac| crate::secret::constant_time_eq(mac, tag));
            if hit && found.is_none() {
                found = Some(i == 0);
            }
        }
        found
    }

    /// Keyed hash of `value` with the current key: what LDAP stores for
    /// cookies, session ids and codes.
    pub fn hash(&self, domain: &str, value: &[u8]) -> Vec<u8> {
        self.hashes(domain, value).next().unwrap_or_default()
    }

    /// Keyed hashes of `value` under every accepted key, current first: a
    /// value stored before a key rotation still matches one of them.
    pub fn hashes<'a>(&'a self, domain: &'a str, value: &'a [u8]) -> impl Iterator<Item = Vec<u8>> + 'a {
        self.sets.iter().map(move |set| {
            let mut ctx = hmac::Context::with_key(&set.hash);
            ctx.update(domain.as_bytes());
            ctx.update(&[0]);
            ctx.update(value);
            ctx.sign().as_ref().to_vec()
        })
    }

    /// Encrypts `plaintext` with the current key; `context` is authenticated
    /// too (a username, so that a sealed value cannot move to another entry).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let set = self.sets.first().ok_or("no key")?;
        let mut nonce = [0u8; aead::NONCE_LEN];
        crate::random::fill(&mut nonce)?;
        let mut buf = plaintext.to_vec();
        set.seal
            .seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(context), &mut buf)
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts a value made by `seal` under any accepted key. The second
    /// value says whether the current key opened it (false: re-seal it).
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<(Secret, bool)> {
        if sealed.len() < aead::NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, body) = sealed.split_at(aead::NONCE_LEN);
        let nonce: [u8; aead::NONCE_LEN] = nonce.try_into().ok()?;
        for (i, set) in self.sets.iter().enumerate() {
            let mut buf = body.to_vec();
            let opened =
                set.seal.open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(context), &mut buf);
            if let Ok(plain) = opened {
                return Some((Secret::new(plain.to_vec()), i == 0));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(files: &[&[u8]]) -> Keys {
        Keys::from_files(&files.iter().map(|f| Secret::new(f.to_vec())).collect::<Vec<_>>()).unwrap()
    }

    const K1: &[u8] = &[1u8; 32];
    const K2: &[u8] = &[2u8; 32];

    #[test]
    fn short_key_file_is_refused() {
        let err = Keys::from_files(&[Secret::new(vec![7; 31])]).unwrap_err();
        assert!(err.contains("31 bytes"), "{err}");
        assert!(Keys::from_files(&[]).is_err());
    }

    #[test]
    fn purposes_are_separate() {
        let k = keys(&[K1]);
        let tag = k.sign(Purpose::Csrf, b"data");
        assert!(k.verify(Purpose::Csrf, b"data", &tag));
        assert!(!k.verify(Purpose::ReturnToken, b"data", &tag));
        assert!(!k.verify(Purpose::Csrf, b"date", &tag));
    }

    #[test]
    fn rotation_keeps_old_tags_and_seals_valid() {
        let old = keys(&[K1]);
        let tag = old.sign(Purpose::ReturnToken, b"x");
        let sealed = old.seal(b"alice", b"JBSWY3DPEHPK3PXP").unwrap();
        let hash = old.hash("cookie", b"v");

        let rotated = keys(&[K2, K1]);
        assert!(rotated.verify(Purpose::ReturnToken, b"x", &tag));
        let (plain, current) = rotated.open(b"alice", &sealed).unwrap();
        assert_eq!(plain.expose(), b"JBSWY3DPEHPK3PXP");
        assert!(!current, "opened with the old key: due for re-sealing");
        assert!(rotated.hashes("cookie", b"v").any(|h| h == hash));
        assert_ne!(rotated.hash("cookie", b"v"), hash);

        let new_only = keys(&[K2]);
        assert!(!new_only.verify(Purpose::ReturnToken, b"x", &tag));
        assert!(new_only.open(b"alice", &sealed).is_none());
    }

    #[test]
    fn sealed_values_are_bound_to_their_context() {
        let k = keys(&[K1]);
        let sealed = k.seal(b"alice", b"secret").unwrap();
        assert!(k.open(b"bob", &sealed).is_none());
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(k.open(b"alice", &tampered).is_none());
        assert!(k.open(b"alice", &sealed[..10]).is_none());
        assert_ne!(k.seal(b"alice", b"secret").unwrap(), sealed, "fresh nonce each time");
    }

    #[test]
    fn hash_domains_differ() {
        let k = keys(&[K1]);
        assert_ne!(k.hash("cookie", b"v"), k.hash("session", b"v"));
        assert_eq!(k.hash("cookie", b"v"), k.hash("cookie", b"v"));
    }
}
