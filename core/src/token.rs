//! Signed return tokens: where to send the user after the challenge.
//!
//! `<base64url(json)>.<base64url(hmac)>`, signed with the return-token key.
//! The path inside is checked twice (when signing and when verifying) to be
//! a same-origin path, so that no token can ever redirect off-site.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::MethodSet;
use crate::keys::{Keys, Purpose};

/// Longest path+query a token carries; longer targets return to "/".
pub const MAX_RETURN_PATH: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    /// Path and query to return to.
    p: String,
    /// Username the token was issued for.
    u: String,
    /// Expiry, Unix seconds.
    e: u64,
    /// The methods the target location requires (`TwoFactorRequireMethod`), as bits.
    #[serde(default, skip_serializing_if = "is_zero")]
    m: u8,
}

fn is_zero(bits: &u8) -> bool {
    *bits == 0
}

/// Why a return token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
    OtherUser,
    UnsafePath,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadSignature => "bad-signature",
            TokenError::Expired => "expired",
            TokenError::OtherUser => "other-user",
            TokenError::UnsafePath => "unsafe-path",
        }
    }
}

/// Whether `target` is a path on this site: starts with one `/`, and holds
/// nothing a browser could read as another origin (`//`, `/\`), no
/// backslash, no control character, no space.
pub fn is_same_origin_path(target: &str) -> bool {
    let b = target.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && b.iter().all(|&c| c.is_ascii_graphic() && c != b'\\')
        && target.len() <= MAX_RETURN_PATH
}

/// Where to come back to after the challenge: the path and query exactly as
/// the client sent them on the request line (still percent-encoded: a
/// decoded path would turn `%3F` into `?` and `%20` into a space), "/" when
/// there is no path (`*`).
pub fn return_target(request_target: &str) -> String {
    let Some(path) = crate::path::path_of_target(request_target) else { return "/".into() };
    let query = request_target.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or_default());
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// Signs a return token for `user` back to `path` (path and query), valid
/// until `expires` (Unix seconds). An unsafe or overlong path becomes "/".
pub fn sign_return(keys: &Keys, path: &str, user: &str, expires: u64) -> String {
    sign_return_requiring(keys, path, user, expires, MethodSet::default())
}

/// A return token that also carries the methods the target requires, so
/// that the challenge offers only those (the access check decides anyway).
pub fn sign_return_requiring(keys: &Keys, path: &str, user: &str, expires: u64, methods: MethodSet) -> String {
    let p = if is_same_origin_path(path) { path } else { "/" };
    let payload = Payload { v: 1, p: p.to_string(), u: user.to_string(), e: expires, m: methods.bits() };
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    let body = URL_SAFE_NO_PAD.encode(json);
    let tag = keys.sign(Purpose::ReturnToken, body.as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Verifies a return token for `user` at time `now` and gives its path.
pub fn verify_return(keys: &Keys, token: &str, user: &str, now: u64) -> Result<String, TokenError> {
    verify(keys, token, user, now).map(|payload| payload.p)
}

/// The methods a valid return token says its target requires (empty: any).
pub fn required_methods(keys: &Keys, token: &str, user: &str, now: u64) -> MethodSet {
    verify(keys, token, user, now).map_or_else(|_| MethodSet::default(), |payload| MethodSet::from_bits(payload.m))
}

fn verify(keys: &Keys, token: &str, user: &str, now: u64) -> Result<Payload, TokenError> {
    if token.len() > 4 * MAX_RETURN_PATH {
        return Err(TokenError::Malformed);
    }
    let (body, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
    if !keys.verify(Purpose::ReturnToken, body.as_bytes(), &tag) {
        return Err(TokenError::BadSignature);
    }
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Malformed)?;
    let payload: Payload = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if payload.v != 1 {
        return Err(TokenError::Malformed);
    }
    if payload.e < now {
        return Err(TokenError::Expired);
    }
    if !payload.u.eq_ignore_ascii_case(user) {
        return Err(TokenError::OtherUser);
    }
    if !is_same_origin_path(&payload.p) {
        return Err(TokenError::UnsafePath);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_targets_keep_the_encoding_of_the_request_line() {
        assert_eq!(return_target("/app/a%20b"), "/app/a%20b");
        assert_eq!(return_target("/a%3Fb?x=%3F&y"), "/a%3Fb?x=%3F&y");
        assert_eq!(return_target("/a;x=1?q"), "/a;x=1?q");
        assert_eq!(return_target("http://evil.example/app/x?y=1"), "/app/x?y=1");
        assert_eq!(return_target("https://h"), "/");
        assert_eq!(return_target("/app/?"), "/app/");
        assert_eq!(return_target("*"), "/");
        assert!(is_same_origin_path(&return_target("/app/a%20b?x=a%20b")));
    }
    use crate::secret::Secret;

    fn keys(byte: u8) -> Keys {
        Keys::from_files(&[Secret::new(vec![byte; 32])]).unwrap()
    }

    #[test]
    fn a_token_carries_the_methods_its_target_requires() {
        use crate::config::{Method, MethodSet};
        let k = keys(1);
        let webauthn = MethodSet::of(&[Method::WebAuthn]);
        let t = sign_return_requiring(&k, "/admin/", "alice", 1000, webauthn);
        assert_eq!(verify_return(&k, &t, "alice", 999).as_deref(), Ok("/admin/"));
        assert_eq!(required_methods(&k, &t, "alice", 999), webauthn);
        assert!(required_methods(&k, &t, "bob", 999).is_empty());
        assert!(required_methods(&k, &sign_return(&k, "/", "alice", 1000), "alice", 999).is_empty());
        // The bits are signed: flipping them breaks the token.
        let (body, tag) = t.split_once('.').unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        json["m"] = serde_json::json!(1);
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(json.to_string()));
        assert_eq!(verify_return(&k, &forged, "alice", 999), Err(TokenError::BadSignature));
    }

    #[test]
    fn round_trip() {
        let k = keys(1);
        let t = sign_return(&k, "/app/page?x=1&y=%20", "alice", 1000);
        assert_eq!(verify_return(&k, &t, "alice", 999).as_deref(), Ok("/app/page?x=1&y=%20"));
        assert_eq!(verify_return(&k, &t, "ALICE", 999).as_deref(), Ok("/app/page?x=1&y=%20"));
    }

    #[test]
    fn refusals() {
        let k = keys(1);
        let t = sign_return(&k, "/app", "alice", 1000);
        assert_eq!(verify_return(&k, &t, "alice", 1001), Err(TokenError::Expired));
        assert_eq!(verify_return(&k, &t, "bob", 999), Err(TokenError::OtherUser));
        assert_eq!(verify_return(&keys(2), &t, "alice", 999), Err(TokenError::BadSignature));
        assert_eq!(verify_return(&k, "garbage", "alice", 999), Err(TokenError::Malformed));
        assert_eq!(verify_return(&k, "a.b.c", "alice", 999), Err(TokenError::Malformed));
        let (body, _) = t.split_once('.').unwrap();
        let (_, other_tag) = sign_return(&k, "/other", "alice", 1000)
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        assert_eq!(verify_return(&k, &format!("{body}.{other_tag}"), "alice", 999), Err(TokenError::BadSignature));
    }

    #[test]
    fn unsafe_paths_never_come_back() {
        let k = keys(1);
        let payloads = include_str!("../../tests/data/open-redirect-payloads.txt");
        for line in payloads.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            assert!(!is_same_origin_path(line), "{line:?} must not count as a same-origin path");
            let t = sign_return(&k, line, "alice", 1000);
            assert_eq!(verify_return(&k, &t, "alice", 0).as_deref(), Ok("/"), "{line:?}");
        }
    }

    #[test]
    fn same_origin_paths() {
        for ok in ["/", "/app/", "/app?next=//evil.example", "/a%2F%2Fb", "/~user/x.html#top"] {
            assert!(is_same_origin_path(ok), "{ok}");
        }
    }
}
