//! Completions: which stored value lets this browser in, and the one
//! modify that records a new one.

use crate::config::{Role, Settings};
use crate::keys::Keys;
use crate::store::codec::{Bound, Completion};
use crate::store::schema::class_for;
use crate::store::signed::Signer;
use crate::store::{Change, Directory, Lookup, StoreError};

/// Attempts of the compare-and-swap write before giving up (each round of
/// a race has a winner).
const WRITE_ATTEMPTS: usize = 64;

/// What the browser presented for `TwoFactorSessionBinding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// The module's session cookie value.
    Cookie(&'a [u8]),
    /// The gateway's session id header value.
    GatewaySession(&'a [u8]),
    /// Binding `none`.
    Anywhere,
}

impl Presented<'_> {
    fn domain(&self) -> &'static str {
        match self {
            Presented::Cookie(_) => "session-cookie",
            Presented::GatewaySession(_) => "gateway-session",
            Presented::Anywhere => "anywhere",
        }
    }

    fn value(&self) -> &[u8] {
        match self {
            Presented::Cookie(v) | Presented::GatewaySession(v) => v,
            Presented::Anywhere => b"",
        }
    }

    /// The keyed hashes a matching stored value may carry (one per
    /// accepted key, current first); empty for binding `none`.
    pub fn hashes(&self, keys: &Keys) -> Vec<Vec<u8>> {
        match self {
            Presented::Anywhere => Vec::new(),
            _ => keys.hashes(self.domain(), self.value()).collect(),
        }
    }

    /// What a new completion is bound to.
    pub fn bound(&self, keys: &Keys) -> Bound {
        match self {
            Presented::Anywhere => Bound::Anywhere,
            _ => Bound::Session(keys.hash(self.domain(), self.value())),
        }
    }

    /// The per-process cache key for (user, presented value): compared
    /// whole, so two users or two sessions never share an entry. It stays in
    /// this process's memory, like the request headers it is made from.
    pub fn cache_key(&self, user: &str) -> Vec<u8> {
        let value = self.value();
        let mut key = Vec::with_capacity(9 + user.len() + value.len());
        key.push(match self {
            Presented::Cookie(_) => b'c',
            Presented::GatewaySession(_) => b'g',
            Presented::Anywhere => b'*',
        });
        // The length makes the split between user and value unambiguous.
        key.extend_from_slice(&(user.len() as u64).to_le_bytes());
        key.extend(user.bytes().map(|b| b.to_ascii_lowercase()));
        key.extend_from_slice(value);
        key
    }
}

/// A session cookie value as the module issues it: 43 base64url characters.
pub fn is_plausible_cookie(value: &[u8]) -> bool {
    value.len() == 43 && value.iter().all(|&b| BASE64URL[usize::from(b)])
}

/// Which bytes are base64url characters.
static BASE64URL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// One cookie of a `Cookie` header, as byte positions: the pair is
/// `header[start..end]`, its name ends at `name_end` (the first `=`, or
/// `end`), the next pair starts at `next`.
struct Pair {
    start: usize,
    name_end: usize,
    end: usize,
    next: usize,
}

/// The cookies of a `Cookie` header, in one pass over its bytes. Pairs end
/// at `;`, and at `,` too: Apache joins repeated `Cookie` headers with ", ",
/// and some backends split cookies there.
struct Pairs<'a> {
    header: &'a [u8],
    at: usize,
}

impl<'a> Pairs<'a> {
    fn new(header: &'a [u8]) -> Self {
        Pairs { header, at: skip_spaces(header, 0) }
    }
}

fn skip_spaces(header: &[u8], mut at: usize) -> usize {
    while header.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

impl Iterator for Pairs<'_> {
    type Item = Pair;

    fn next(&mut self) -> Option<Pair> {
        let h = self.header;
        let start = self.at;
        if start >= h.len() {
            return None;
        }
        let end = memchr::memchr2(b';', b',', &h[start..]).map_or(h.len(), |i| start + i);
        let name_end = memchr::memchr(b'=', &h[start..end]).map_or(end, |i| start + i);
        self.at = skip_spaces(h, (end + 1).min(h.len()));
        Some(Pair { start, name_end, end, next: self.at })
    }
}

impl Pair {
    /// The name as a backend would read it: up to `=`, trimmed.
    fn is_named(&self, header: &[u8], name: &str) -> bool {
        header[self.start..self.name_end].trim_ascii_end() == name.as_bytes()
    }
}

/// The first value of cookie `name` in a `Cookie` header.
pub fn find_cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    Pairs::new(header).find_map(|p| {
        let exact = &header[p.start..p.name_end] == name.as_bytes() && p.name_end < p.end;
        let value = header[p.name_end.saturating_add(1).min(p.end)..p.end].trim_ascii_end();
        (exact && !value.is_empty()).then_some(value)
    })
}

/// Whether a `Cookie` header carries cookie `name` (in any spelling a
/// backend would take for it: spaces around the name, an empty value).
pub fn has_cookie(header: &[u8], name: &str) -> bool {
    Pairs::new(header).any(|p| p.is_named(header, name))
}

/// The `Cookie` header without cookie `name`, if it held that cookie
/// (`Some(empty)` when nothing else is left): the module's session cookie
/// is for the module, not for backends. Everything else is kept byte for
/// byte, whether UTF-8 or not. One pass; no allocation when the cookie is
/// absent.
pub fn without_cookie(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut kept: Option<Vec<u8>> = None;
    let mut copied_to = 0usize;
    for pair in Pairs::new(header).filter(|p| p.is_named(header, name)) {
        let out = kept.get_or_insert_with(|| Vec::with_capacity(header.len()));
        out.extend_from_slice(&header[copied_to..pair.start]);
        copied_to = pair.next;
    }
    let mut kept = kept?;
    kept.extend_from_slice(&header[copied_to..]);
    // What a removed last cookie leaves behind: "a=1; ".
    while kept.last().is_some_and(|&b| b == b';' || b == b',' || b.is_ascii_whitespace()) {
        kept.pop();
    }
    Some(kept)
}

/// The stored completion that lets `presented` in at `now` under `max_age`
/// (values that do not pass their check are none).
pub fn find_valid(
    signer: &Signer<'_>,
    values: &[String],
    presented: &Presented<'_>,
    keys: &Keys,
    now: u64,
    max_age: u64,
) -> Option<Completion> {
    let hashes = presented.hashes(keys);
    values.iter().filter_map(|v| Completion::open(signer, v)).filter(|c| c.is_valid(now, max_age)).find(|c| {
        match (&c.bound, presented) {
            (Bound::Anywhere, Presented::Anywhere) => true,
            (Bound::Session(_), Presented::Cookie(_) | Presented::GatewaySession(_)) => c.is_bound_to(&hashes),
            _ => false,
        }
    })
}

/// The changes of the one modify that records `new`: expired values, values
/// that do not pass their check and the previous value of the same session
/// go, `new` comes. A concurrent writer that removed one of those values
/// first makes the modify fail (the caller reads again and retries).
pub fn record_changes(
    signer: &Signer<'_>,
    attr: &str,
    existing: &[String],
    new: &Completion,
    now: u64,
    add_class: Option<&str>,
) -> Vec<Change> {
    let stale: Vec<String> = existing
        .iter()
        .filter(|v| Completion::open(signer, v).is_none_or(|c| now >= c.expires || c.bound == new.bound))
        .cloned()
        .collect();
    let mut changes = Vec::with_capacity(3);
    if let Some(class) = add_class {
        changes.push(Change::Add("objectClass".into(), vec![class.into()]));
    }
    if !stale.is_empty() {
        changes.push(Change::Delete(attr.into(), stale));
    }
    changes.push(Change::Add(attr.into(), vec![new.seal(signer)]));
    changes
}

/// Records `new` (a browser of `user` that completed the challenge): one
/// modify that also prunes expired values and the session's previous
/// value, retried if another server changed the attribute in between.
/// Adds the auxiliary class when the entry lacks it and the attribute is
/// the project's own.
pub fn record(directory: &dyn Directory, settings: &Settings, user: &str, new: &Completion) -> Result<(), StoreError> {
    let attr = settings.attribute(Role::Completion);
    for _ in 0..WRITE_ATTEMPTS {
        let entry = match directory.find_user(user, &[attr, "objectClass"])? {
            Lookup::Found(entry) => entry,
            Lookup::NotFound | Lookup::Ambiguous => {
                return Err(StoreError::Refused("no single entry for this user".into()))
            }
        };
        let class = class_for(attr).filter(|c| !entry.has_object_class(c));
        let signer = settings.signer(&entry.username).ok_or_else(no_key)?;
        let changes = record_changes(&signer, attr, entry.values(attr), new, new.issued, class);
        match directory.modify(&entry.dn, &changes) {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// What a write without a key fails with (start-up refuses such a configuration).
pub fn no_key() -> StoreError {
    StoreError::Refused("no TwoFactorSecretKeyFile to sign the value with".into())
}

/// Removes every completion of `user` (all browsers): `twofactorctl revoke`.
/// Returns how many values there were.
pub fn revoke_all(directory: &dyn Directory, settings: &Settings, user: &str) -> Result<usize, StoreError> {
    let attr = settings.attribute(Role::Completion);
    let entry = match directory.find_user(user, &[attr])? {
        Lookup::Found(entry) => entry,
        Lookup::NotFound | Lookup::Ambiguous => {
            return Err(StoreError::Refused("no single entry for this user".into()))
        }
    };
    let count = entry.values(attr).len();
    if count > 0 {
        directory.modify(&entry.dn, &[Change::Delete(attr.into(), Vec::new())])?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn keys(files: &[u8]) -> Keys {
        Keys::from_files(&files.iter().map(|b| Secret::new(vec![*b; 32])).collect::<Vec<_>>()).unwrap()
    }

    const COOKIE: &[u8] = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn completion(k: &Keys, presented: Presented<'_>, issued: u64, expires: u64) -> Completion {
        Completion { bound: presented.bound(k), issued, expires, method: "totp".into() }
    }

    fn alice(k: &Keys) -> Signer<'_> {
        Signer::new(k, "alice", false)
    }

    #[test]
    fn a_cookie_finds_its_own_completion_only() {
        let k = keys(&[1]);
        let s = alice(&k);
        let mine = completion(&k, Presented::Cookie(COOKIE), 100, 1000);
        let other = completion(&k, Presented::Cookie(b"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"), 100, 1000);
        let values = vec!["garbage".to_string(), other.seal(&s), mine.seal(&s)];
        assert_eq!(find_valid(&s, &values, &Presented::Cookie(COOKIE), &k, 200, 3600), Some(mine.clone()));
        assert_eq!(find_valid(&s, &values, &Presented::Cookie(COOKIE), &k, 1000, 3600), None, "expired");
        assert_eq!(find_valid(&s, &values, &Presented::Cookie(COOKIE), &k, 200, 60), None, "older than max age");
        assert_eq!(find_valid(&s, &values, &Presented::GatewaySession(COOKIE), &k, 200, 3600), None, "other domain");
        assert_eq!(find_valid(&s, &values, &Presented::Anywhere, &k, 200, 3600), None, "binding none needs *");
        crate::tamper::take();
    }

    #[test]
    fn forged_edited_and_foreign_completions_let_nobody_in() {
        let k = keys(&[1]);
        let s = alice(&k);
        let genuine = completion(&k, Presented::Cookie(COOKIE), 100, 1000);
        let relabelled = genuine.seal(&s).replace("\"m\":\"totp\"", "\"m\":\"webauthn\"");
        let extended = genuine.seal(&s).replace("\"e\":1000", "\"e\":99999");
        let bobs = genuine.seal(&Signer::new(&k, "bob", false));
        let unsigned = s.open(Role::Completion, &genuine.seal(&s)).unwrap().to_string();
        let attacker_key = keys(&[9]);
        let forged = genuine.seal(&Signer::new(&attacker_key, "alice", false));
        crate::tamper::take();
        for value in [relabelled, extended, bobs, unsigned, forged] {
            let found = find_valid(&s, std::slice::from_ref(&value), &Presented::Cookie(COOKIE), &k, 200, 3600);
            assert_eq!(found, None, "{value}");
        }
        assert_eq!(crate::tamper::take().len(), 1, "noted, once for the role");
        let migrating = Signer::new(&k, "alice", true);
        let unsigned = s.open(Role::Completion, &genuine.seal(&s)).unwrap().to_string();
        assert!(find_valid(&migrating, &[unsigned], &Presented::Cookie(COOKIE), &k, 200, 3600).is_some());
    }

    #[test]
    fn binding_none_matches_star_values_only() {
        let k = keys(&[1]);
        let s = alice(&k);
        let any = completion(&k, Presented::Anywhere, 100, 1000);
        let session = completion(&k, Presented::Cookie(COOKIE), 100, 1000);
        assert!(find_valid(&s, &[any.seal(&s)], &Presented::Anywhere, &k, 200, 3600).is_some());
        assert!(find_valid(&s, &[any.seal(&s)], &Presented::Cookie(COOKIE), &k, 200, 3600).is_none());
        assert!(find_valid(&s, &[session.seal(&s)], &Presented::Anywhere, &k, 200, 3600).is_none());
    }

    #[test]
    fn completions_survive_key_rotation() {
        let old = keys(&[1]);
        let stored = completion(&old, Presented::Cookie(COOKIE), 100, 1000).seal(&alice(&old));
        let rotated = keys(&[2, 1]);
        let cookie = Presented::Cookie(COOKIE);
        assert!(find_valid(&alice(&rotated), std::slice::from_ref(&stored), &cookie, &rotated, 200, 3600).is_some());
        let new_only = keys(&[2]);
        assert!(find_valid(&alice(&new_only), &[stored], &cookie, &new_only, 200, 3600).is_none());
        crate::tamper::take();
    }

    #[test]
    fn recording_prunes_expired_replaced_and_tampered_values() {
        let k = keys(&[1]);
        let s = alice(&k);
        let expired = completion(&k, Presented::Cookie(b"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"), 10, 50);
        let previous = completion(&k, Presented::Cookie(COOKIE), 60, 900);
        let live = completion(&k, Presented::Cookie(b"CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"), 60, 900);
        let new = completion(&k, Presented::Cookie(COOKIE), 100, 1000);
        let existing = vec![expired.seal(&s), previous.seal(&s), live.seal(&s), "garbage".into()];
        let changes = record_changes(&s, "twoFactorCompletion", &existing, &new, 100, Some("twoFactorUser"));
        assert_eq!(
            changes,
            vec![
                Change::Add("objectClass".into(), vec!["twoFactorUser".into()]),
                Change::Delete(
                    "twoFactorCompletion".into(),
                    vec![expired.seal(&s), previous.seal(&s), "garbage".into()]
                ),
                Change::Add("twoFactorCompletion".into(), vec![new.seal(&s)]),
            ]
        );
        let first = record_changes(&s, "a", &[], &new, 100, None);
        assert_eq!(first, vec![Change::Add("a".into(), vec![new.seal(&s)])]);
        crate::tamper::take();
    }

    #[test]
    fn cache_keys_separate_users_and_sessions() {
        let a = Presented::Cookie(COOKIE).cache_key("alice");
        assert_eq!(a, Presented::Cookie(COOKIE).cache_key("ALICE"));
        assert_ne!(a, Presented::Cookie(COOKIE).cache_key("bob"));
        assert_ne!(a, Presented::GatewaySession(COOKIE).cache_key("alice"));
        assert_ne!(a, Presented::Cookie(b"x").cache_key("alice"));
        assert_ne!(Presented::Cookie(b"b\0c").cache_key("a"), Presented::Cookie(b"c").cache_key("a\0b"));
    }

    #[test]
    fn cookies() {
        let header = b"a=1; TwoFactorSession=abc; TwoFactorSessionX=no; b=2";
        assert_eq!(find_cookie(header, "TwoFactorSession"), Some(&b"abc"[..]));
        assert_eq!(find_cookie(header, "b"), Some(&b"2"[..]));
        assert_eq!(find_cookie(b"x=1", "TwoFactorSession"), None);
        assert_eq!(find_cookie(b"twofactorsession=abc", "TwoFactorSession"), None, "names are case-sensitive");
        assert_eq!(find_cookie(b"", "a"), None);
        // Apache joins repeated Cookie headers with ", ".
        assert_eq!(find_cookie(b"a=1, TwoFactorSession=abc", "TwoFactorSession"), Some(&b"abc"[..]));
        assert_eq!(find_cookie(b"TwoFactorSession=; TwoFactorSession=x", "TwoFactorSession"), Some(&b"x"[..]));
    }

    #[test]
    fn the_session_cookie_is_taken_out() {
        let name = "TwoFactorSession";
        assert_eq!(without_cookie(b"a=1; TwoFactorSession=x; b=2", name).as_deref(), Some(&b"a=1; b=2"[..]));
        assert_eq!(without_cookie(b"TwoFactorSession=x", name).as_deref(), Some(&b""[..]));
        assert_eq!(without_cookie(b"a=1; TwoFactorSessionX=y", name), None);
        assert_eq!(without_cookie(b"a=1", name), None);
        // Spellings a lenient backend parser reads as the same cookie.
        assert_eq!(without_cookie(b"a=1;TwoFactorSession =x", name).as_deref(), Some(&b"a=1"[..]));
        assert_eq!(without_cookie(b"TwoFactorSession=; b=2", name).as_deref(), Some(&b"b=2"[..]));
        assert_eq!(without_cookie(b"a=1; TwoFactorSession=x; TwoFactorSession=y", name).as_deref(), Some(&b"a=1"[..]));
        // Joined headers; other cookies' values kept byte for byte.
        assert_eq!(without_cookie(b"a=1,2, TwoFactorSession=x; b=2", name).as_deref(), Some(&b"a=1,2, b=2"[..]));
        assert_eq!(without_cookie(b"TwoFactorSession=x, lang=en", name).as_deref(), Some(&b"lang=en"[..]));
        // Not UTF-8: cleaned all the same, the other bytes kept.
        assert_eq!(without_cookie(b"a=\xff\xfe; TwoFactorSession=x", name).as_deref(), Some(&b"a=\xff\xfe"[..]));
        assert!(has_cookie(b"x=1; TwoFactorSession=abc", name));
        assert!(!has_cookie(b"x=TwoFactorSession=abc", name));
    }

    #[test]
    fn cookie_shape() {
        assert!(is_plausible_cookie(COOKIE));
        assert!(!is_plausible_cookie(b"short"));
        assert!(!is_plausible_cookie(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    }
}
