//! The access decision: what a request in an enforced scope, or on the
//! challenge path, is answered. Pure over the request's facts, the
//! directory, this process's cache and the time: the hooks gather the
//! facts and carry out the verdict (log line, page, headers); nothing here
//! logs or answers.

use std::ffi::CStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{CompletionCache, Hit};
use crate::completion::{self, Presented};
use crate::config::{Keys, Method, MethodSet, Role, SessionBinding, Settings};
use crate::factors;
use crate::identity::{self, IdentityError};
use crate::policy::{self, Refusal};
use crate::secret::constant_time_eq;
use crate::store::signed::Signer;
use crate::store::{codec, Directory, Lookup, StoreError};

/// Longest gateway session id accepted as a binding.
const MAX_SESSION_ID_BYTES: usize = 4096;

/// What the TCP peer of the client's request is: decided once, when the
/// request arrives, and kept in a request note for the later phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A trusted proxy that presented the shared secret (if one is configured).
    Gateway,
    Untrusted,
    /// A trusted address without the right shared secret.
    BadSecret,
}

impl Peer {
    /// `trusted_address`: the peer is a `TwoFactorTrustedProxy`;
    /// `secret_values`: the secret header's first two values (if a secret
    /// is configured: exactly one value, equal to it, counts).
    pub fn classify(trusted_address: bool, expected_secret: Option<&[u8]>, secret_values: [Option<&[u8]>; 2]) -> Peer {
        match (expected_secret, trusted_address) {
            (_, false) => Peer::Untrusted,
            (None, true) => Peer::Gateway,
            (Some(expected), true) => match secret_values {
                [Some(given), None] if constant_time_eq(given, expected) => Peer::Gateway,
                _ => Peer::BadSecret,
            },
        }
    }

    /// The request note's value.
    pub fn note(self) -> &'static CStr {
        match self {
            Peer::Gateway => c"trusted",
            Peer::Untrusted => c"untrusted",
            Peer::BadSecret => c"bad-secret",
        }
    }

    /// The peer a request note records; a missing note (nothing vouched
    /// for the peer) is an untrusted one.
    pub fn from_note(value: Option<&[u8]>) -> Peer {
        match value {
            Some(b"trusted") => Peer::Gateway,
            Some(b"bad-secret") => Peer::BadSecret,
            _ => Peer::Untrusted,
        }
    }

    /// `reason=` of the spoof line.
    pub fn refusal_reason(self) -> &'static str {
        match self {
            Peer::BadSecret => "bad-proxy-secret",
            _ => "untrusted-peer",
        }
    }
}

/// Everything the decision reads from the request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub peer: Peer,
    /// The identity header's values, at most two (enough to tell one from several).
    pub identity: &'a [&'a [u8]],
    /// The gateway session header's values, at most two.
    pub session: &'a [&'a [u8]],
    /// The value of the module's session cookie, from any `Cookie` header.
    pub cookie: Option<&'a [u8]>,
    /// For a subrequest or internal redirect of a request that was let in:
    /// that request's user, and when and how its completion was made.
    pub initial_allow: Option<InitialAllow<'a>>,
    /// The request is for the challenge handler.
    pub challenge_path: bool,
    /// This scope's `TwoFactorMaxAge`, in seconds.
    pub max_age: u64,
    /// This scope's `TwoFactorRequireMethod` (empty: any method).
    pub require_methods: MethodSet,
    pub method: &'a str,
    pub accept: Option<&'a [u8]>,
    pub requested_with: Option<&'a [u8]>,
}

impl<'a> Facts<'a> {
    /// What the request presents for `TwoFactorSessionBinding`, if anything.
    pub fn presented(&self, binding: SessionBinding) -> Option<Presented<'a>> {
        presented(binding, self.cookie, self.session.first().copied())
    }

    fn refusal(&self) -> Refusal {
        policy::refusal(self.method, self.accept, self.requested_with)
    }

    /// Whether a completion made with `method` may enter this scope.
    fn accepts(&self, method: Option<Method>) -> bool {
        self.require_methods.is_empty() || method.is_some_and(|m| self.require_methods.contains(m))
    }
}

/// The client's request of which this one is a subrequest or internal
/// redirect, as it was let in.
#[derive(Debug, Clone, Copy)]
pub struct InitialAllow<'a> {
    pub user: &'a str,
    pub issued: u64,
    pub method: Option<Method>,
}

/// What a request presents for `binding`, from the module's session cookie
/// value and the gateway session header's (first) value.
pub fn presented<'a>(
    binding: SessionBinding,
    cookie: Option<&'a [u8]>,
    session: Option<&'a [u8]>,
) -> Option<Presented<'a>> {
    match binding {
        SessionBinding::Cookie => cookie.filter(|v| completion::is_plausible_cookie(v)).map(Presented::Cookie),
        SessionBinding::Header => {
            session.filter(|v| !v.is_empty() && v.len() <= MAX_SESSION_ID_BYTES).map(Presented::GatewaySession)
        }
        SessionBinding::None => Some(Presented::Anywhere),
    }
}

/// Where an allow came from (`source=` of the debug line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client's request, of which this is a subrequest or internal redirect.
    InitialRequest,
    Cache,
    Directory,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::InitialRequest => "initial-request",
            Source::Cache => "cache",
            Source::Directory => "directory",
        }
    }
}

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// In, as the directory's spelling of the name; `method`: how the
    /// completion was made (`None`: a method this build does not know).
    Allow { user: Arc<str>, issued: u64, method: Option<Method>, source: Source },
    /// The challenge path with a valid identity: the handler takes over.
    Challenge { user: &'a str },
    /// No valid completion: to the challenge, 401 or 403 (`refusal`).
    /// `reason`: `no-session` (nothing presented), `no-completion`, or
    /// `step-up` (a completion by a method this scope does not accept).
    Refuse { user: String, reason: &'static str, refusal: Refusal },
    /// Too many wrong codes.
    Locked { user: String, until: u64, refusal: Refusal },
    /// Not from the gateway.
    Spoof { peer: Peer },
    /// The identity header is missing, repeated or invalid; `value` its first value.
    BadIdentity { error: IdentityError, value: &'a [u8] },
    /// With binding `header`: the session id came repeated or comma-joined.
    BadSessionHeader { user: &'a str, detail: &'static str },
    /// The directory has no single entry for the name (`detail`: not-found, ambiguous).
    UnknownUser { user: &'a str, detail: &'static str },
    /// The directory did not answer.
    DirectoryDown { user: &'a str, error: StoreError },
    /// No key or no directory configured (start-up refuses that; fail closed anyway).
    NotConfigured,
}

impl Verdict<'_> {
    /// The name to record as the request's user (access log, backends).
    pub fn user(&self) -> Option<&str> {
        match self {
            Verdict::Allow { user, .. } => Some(user),
            Verdict::Refuse { user, .. } | Verdict::Locked { user, .. } => Some(user),
            Verdict::Challenge { user } | Verdict::UnknownUser { user, .. } | Verdict::DirectoryDown { user, .. } => {
                Some(user)
            }
            Verdict::Spoof { .. }
            | Verdict::BadIdentity { .. }
            | Verdict::BadSessionHeader { .. }
            | Verdict::NotConfigured => None,
        }
    }

    /// The HTTP status the request is answered with (200: let in, or the
    /// challenge handler runs). A locked account sends navigations to the
    /// challenge, which shows when it unlocks; everything else gets 403.
    pub fn status(&self) -> u16 {
        match self {
            Verdict::Allow { .. } | Verdict::Challenge { .. } => 200,
            Verdict::Refuse { refusal, .. } => refusal.status(),
            Verdict::Locked { refusal: Refusal::Redirect, .. } => 303,
            Verdict::Locked { .. } | Verdict::Spoof { .. } | Verdict::UnknownUser { .. } => 403,
            Verdict::BadIdentity { .. } | Verdict::BadSessionHeader { .. } => 400,
            Verdict::DirectoryDown { .. } => 503,
            Verdict::NotConfigured => 500,
        }
    }

    /// Whether the directory answered while deciding (an outage ends).
    pub fn directory_answered(&self) -> bool {
        match self {
            Verdict::Allow { source, .. } => *source == Source::Directory,
            Verdict::Refuse { reason, .. } => *reason == NO_COMPLETION || *reason == STEP_UP,
            Verdict::Locked { .. } | Verdict::UnknownUser { .. } => true,
            _ => false,
        }
    }
}

/// `reason` of a refusal: nothing presented.
pub const NO_SESSION: &str = "no-session";
/// `reason` of a refusal: no valid completion.
pub const NO_COMPLETION: &str = "no-completion";
/// `reason` of a refusal: a completion, by a method this scope does not accept.
pub const STEP_UP: &str = "step-up";

/// The decision.
pub fn decide<'a>(
    facts: &Facts<'a>,
    settings: &Settings,
    directory: Option<Directories<'_>>,
    cache: &CompletionCache,
    now: u64,
    clock: Instant,
) -> Verdict<'a> {
    if facts.peer != Peer::Gateway {
        return Verdict::Spoof { peer: facts.peer };
    }
    let user = match identity::validate(facts.identity, &settings.username_pattern) {
        Ok(user) => user,
        Err(error) => return Verdict::BadIdentity { error, value: facts.identity.first().copied().unwrap_or(b"") },
    };
    if settings.session_binding == SessionBinding::Header {
        match facts.session {
            [_, _, ..] => return Verdict::BadSessionHeader { user, detail: "repeated" },
            [one] if one.contains(&b',') => return Verdict::BadSessionHeader { user, detail: "comma-joined" },
            _ => {}
        }
    }
    if facts.challenge_path {
        return Verdict::Challenge { user };
    }
    let (Some(keys), Some(directory)) = (&settings.keys, directory) else { return Verdict::NotConfigured };
    let max_age = facts.max_age;

    // A subrequest or internal redirect of a request that was let in
    // carries the same identity and session: that verdict holds (only this
    // scope's max age can still say no). First, because the allowed request
    // no longer carries the session cookie: backends never see it.
    if let Some(initial) = facts.initial_allow {
        if initial.user.eq_ignore_ascii_case(user)
            && initial.issued.saturating_add(max_age) > now
            && facts.accepts(initial.method)
        {
            let (user, issued, method) = (Arc::from(initial.user), initial.issued, initial.method);
            return Verdict::Allow { user, issued, method, source: Source::InitialRequest };
        }
    }

    // Without the binding's cookie or session id there can be no completion.
    let Some(presented) = facts.presented(settings.session_binding) else {
        return Verdict::Refuse { user: user.to_string(), reason: NO_SESSION, refusal: facts.refusal() };
    };
    let cache_key = presented.cache_key(user);
    // A cached completion too old or of another method for this scope
    // asks the directory: the user may have stepped up on another server.
    if let Some(hit) = cache.get(&cache_key, clock) {
        if hit.issued.saturating_add(max_age) > now && facts.accepts(hit.method) {
            return Verdict::Allow {
                user: hit.canonical,
                issued: hit.issued,
                method: hit.method,
                source: Source::Cache,
            };
        }
    }

    let asked = Asked { facts, settings, keys, presented: &presented, cache_key: &cache_key, user, cache, now, clock };
    let verdict = asked.of(directory.read);
    // A replica may not have the sign-in (or the unlock) yet: the server
    // that takes the writes has the last word before a refusal.
    match (directory.write, &verdict) {
        (Some(writer), Verdict::Refuse { .. } | Verdict::Locked { .. } | Verdict::DirectoryDown { .. }) => {
            asked.of(writer)
        }
        _ => verdict,
    }
}

/// Where the access check reads.
#[derive(Clone, Copy)]
pub struct Directories<'a> {
    /// `TwoFactorLDAPReadURL`, else the writer.
    pub read: &'a dyn Directory,
    /// The server of the writes, when reads go elsewhere: asked before a
    /// refusal.
    pub write: Option<&'a dyn Directory>,
}

impl<'a> Directories<'a> {
    /// Reads and writes on one directory.
    pub fn one(directory: &'a dyn Directory) -> Directories<'a> {
        Directories { read: directory, write: None }
    }
}

/// One question to a directory: what it holds for this request's user.
struct Asked<'f, 'a> {
    facts: &'f Facts<'a>,
    settings: &'f Settings,
    keys: &'f Keys,
    presented: &'f Presented<'a>,
    cache_key: &'f [u8],
    user: &'a str,
    cache: &'f CompletionCache,
    now: u64,
    clock: Instant,
}

impl<'a> Asked<'_, 'a> {
    /// The verdict on what `directory` holds. An allow is cached for this
    /// process until the completion expires (the cache's TTL caps it).
    fn of(&self, directory: &dyn Directory) -> Verdict<'a> {
        let Asked { facts, settings, keys, presented, cache_key, user, cache, now, clock } = *self;
        let max_age = facts.max_age;
        let completion_attr = settings.attribute(Role::Completion);
        let failures_attr = settings.attribute(Role::Failures);
        let entry = match directory.find_user(user, &[completion_attr, failures_attr]) {
            Ok(Lookup::Found(entry)) => entry,
            Ok(Lookup::NotFound) => return Verdict::UnknownUser { user, detail: "not-found" },
            Ok(Lookup::Ambiguous) => return Verdict::UnknownUser { user, detail: "ambiguous" },
            Err(error) => return Verdict::DirectoryDown { user, error },
        };
        let signer = Signer::new(keys, &entry.username, settings.accept_unsigned_state);
        if let Some(until) = codec::locked_until(&signer, entry.values(failures_attr), now) {
            return Verdict::Locked { user: entry.username, until, refusal: facts.refusal() };
        }
        match completion::find_valid(&signer, entry.values(completion_attr), presented, keys, now, max_age) {
            Some(found) => {
                let canonical: Arc<str> = Arc::from(entry.username.as_str());
                let method = factors::completion_method(&found.method);
                let hit = Hit { canonical: Arc::clone(&canonical), issued: found.issued, method };
                cache.put(cache_key.to_vec(), hit, Duration::from_secs(found.expires.saturating_sub(now)), clock);
                if !facts.accepts(method) {
                    return Verdict::Refuse { user: entry.username, reason: STEP_UP, refusal: facts.refusal() };
                }
                Verdict::Allow { user: canonical, issued: found.issued, method, source: Source::Directory }
            }
            None => Verdict::Refuse { user: entry.username, reason: NO_COMPLETION, refusal: facts.refusal() },
        }
    }
}

#[cfg(test)]
mod tests;
