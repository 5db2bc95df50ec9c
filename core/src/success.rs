//! The bookkeeping of a completed challenge: the completion recorded in
//! the directory (with the end of the counted attempt, in one write), a
//! fresh session cookie, this process's cache primed, and where the user
//! goes next. The handler only sets the headers and writes the log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access;
use crate::anchor::Anchor;
use crate::cache::{CompletionCache, Hit};
use crate::completion::{self, Presented};
use crate::config::{SessionBinding, Settings};
use crate::factors::lockout;
use crate::keys::Keys;
use crate::random;
use crate::store::codec::Completion;
use crate::store::{Directory, StoreError};
use crate::token::{self, TokenError};

/// A success to record.
#[derive(Debug, Clone, Copy)]
pub struct Success<'a> {
    /// The directory's spelling of the name.
    pub user: &'a str,
    /// `totp`, `email`, `recovery`, `enrolled`, ...
    pub method: &'a str,
    /// The success of a counted attempt (`lockout::reserve_attempt`): its
    /// end is written with the completion, and a lock set meanwhile refuses it.
    pub ends_attempt: bool,
    /// Seconds the completion lives: the challenge location's max age.
    pub lifetime: u64,
    /// The gateway's session id on this request (binding `header`).
    pub gateway_session: Option<&'a [u8]>,
}

/// What became of it.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded. With binding `cookie`, the new session cookie's value.
    Done { session_cookie: Option<String> },
    /// The account was locked meanwhile: nothing recorded.
    Locked { until: u64 },
    /// Binding `header`, and the gateway sent no session id to bind to.
    NoGatewaySession,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Directory(StoreError),
    /// No key configured (start-up refuses that), or no randomness.
    Internal(&'static str),
}

/// Records `success` at `now`; a recorded completion is cached for its life.
pub fn record(
    directory: &dyn Directory,
    settings: &Settings,
    anchor: &dyn Anchor,
    cache: &CompletionCache,
    success: &Success<'_>,
    now: u64,
    clock: Instant,
) -> Result<Recorded, Failure> {
    let keys = settings.keys.as_ref().ok_or(Failure::Internal("no-key"))?;
    let session_cookie = match settings.session_binding {
        SessionBinding::Cookie => Some(random::token(32).map_err(|_| Failure::Internal("no-randomness"))?),
        _ => None,
    };
    let cookie = session_cookie.as_deref().map(str::as_bytes);
    let Some(presented) = access::presented(settings.session_binding, cookie, success.gateway_session) else {
        return Ok(Recorded::NoGatewaySession);
    };
    let new = Completion {
        bound: presented.bound(keys),
        issued: now,
        expires: now.saturating_add(success.lifetime),
        method: success.method.into(),
    };
    let recorded = if success.ends_attempt {
        lockout::record_right_code_and_completion(directory, settings, anchor, success.user, &new, now)
    } else {
        completion::record(directory, settings, success.user, &new).map(Ok)
    };
    match recorded.map_err(Failure::Directory)? {
        Ok(()) => {}
        Err(until) => return Ok(Recorded::Locked { until }),
    }
    prime(cache, &presented, success, new.issued, clock);
    Ok(Recorded::Done { session_cookie })
}

fn prime(cache: &CompletionCache, presented: &Presented<'_>, success: &Success<'_>, issued: u64, clock: Instant) {
    let method = crate::factors::completion_method(success.method);
    let hit = Hit { canonical: Arc::from(success.user), issued, method };
    cache.put(presented.cache_key(success.user), hit, Duration::from_secs(success.lifetime), clock);
}

/// Where to send the user after a success: the path inside a valid return
/// token of `user`, else `/` (with why the token was not used).
pub fn return_target(keys: &Keys, return_token: &str, user: &str, now: u64) -> (String, Option<TokenError>) {
    if return_token.is_empty() {
        return ("/".into(), None);
    }
    match token::verify_return(keys, return_token, user, now) {
        Ok(path) => (path, None),
        Err(e) => ("/".into(), Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{decide, Directories, Facts, Peer, Source, Verdict};
    use crate::anchor::Forgetful;
    use crate::store::memory::MemoryDirectory;
    use crate::testing;

    const NOW: u64 = 1_900_000_000;

    fn success(method: &str) -> Success<'_> {
        Success { user: "alice", method, ends_attempt: false, lifetime: 3600, gateway_session: None }
    }

    fn facts<'a>(identity: &'a [&'a [u8]], cookie: Option<&'a [u8]>, session: &'a [&'a [u8]]) -> Facts<'a> {
        Facts {
            peer: Peer::Gateway,
            identity,
            session,
            cookie,
            initial_allow: None,
            challenge_path: false,
            max_age: 8 * 3600,
            require_methods: Default::default(),
            method: "GET",
            accept: Some(b"text/html"),
            requested_with: None,
        }
    }

    #[test]
    fn a_recorded_success_lets_the_new_cookie_in_and_no_other() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let cache = CompletionCache::new(Duration::ZERO, 10);
        let recorded =
            record(&directory, &settings, &Forgetful, &cache, &success("totp"), NOW, Instant::now()).unwrap();
        let Recorded::Done { session_cookie: Some(cookie) } = recorded else { panic!("{recorded:?}") };
        assert!(completion::is_plausible_cookie(cookie.as_bytes()));

        let identity: &[&[u8]] = &[b"alice"];
        let verdict = decide(
            &facts(identity, Some(cookie.as_bytes()), &[]),
            &settings,
            Some(Directories::one(&directory)),
            &cache,
            NOW + 1,
            Instant::now(),
        );
        assert!(matches!(verdict, Verdict::Allow { source: Source::Directory, issued: NOW, .. }), "{verdict:?}");
        let other = b"CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";
        let verdict = decide(
            &facts(identity, Some(other), &[]),
            &settings,
            Some(Directories::one(&directory)),
            &cache,
            NOW + 1,
            Instant::now(),
        );
        assert!(matches!(verdict, Verdict::Refuse { .. }), "{verdict:?}");
        // It expires with its lifetime.
        let verdict = decide(
            &facts(identity, Some(cookie.as_bytes()), &[]),
            &settings,
            Some(Directories::one(&directory)),
            &cache,
            NOW + 3600,
            Instant::now(),
        );
        assert!(matches!(verdict, Verdict::Refuse { .. }), "{verdict:?}");
    }

    #[test]
    fn the_cache_is_primed_for_the_new_session() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let cache = CompletionCache::new(Duration::from_secs(30), 10);
        let clock = Instant::now();
        let recorded = record(&directory, &settings, &Forgetful, &cache, &success("totp"), NOW, clock).unwrap();
        let Recorded::Done { session_cookie: Some(cookie) } = recorded else { panic!("{recorded:?}") };
        let reads = directory.reads();
        let identity: &[&[u8]] = &[b"alice"];
        let verdict = decide(
            &facts(identity, Some(cookie.as_bytes()), &[]),
            &settings,
            Some(Directories::one(&directory)),
            &cache,
            NOW,
            clock,
        );
        assert!(matches!(verdict, Verdict::Allow { source: Source::Cache, .. }), "{verdict:?}");
        assert_eq!(directory.reads(), reads);
    }

    #[test]
    fn binding_header_needs_the_gateway_session() {
        let settings = testing::settings(&["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let cache = CompletionCache::new(Duration::ZERO, 10);
        let without = record(&directory, &settings, &Forgetful, &cache, &success("email"), NOW, Instant::now());
        assert_eq!(without, Ok(Recorded::NoGatewaySession));
        assert_eq!(directory.writes(), 0);

        let with = Success { gateway_session: Some(b"s-1"), ..success("email") };
        let recorded = record(&directory, &settings, &Forgetful, &cache, &with, NOW, Instant::now());
        assert_eq!(recorded, Ok(Recorded::Done { session_cookie: None }));
        let identity: &[&[u8]] = &[b"alice"];
        let session: &[&[u8]] = &[b"s-1"];
        let verdict = decide(
            &facts(identity, None, session),
            &settings,
            Some(Directories::one(&directory)),
            &cache,
            NOW,
            Instant::now(),
        );
        assert!(matches!(verdict, Verdict::Allow { .. }), "{verdict:?}");
    }

    #[test]
    fn a_counted_attempt_is_refused_once_locked() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        let cache = CompletionCache::new(Duration::from_secs(30), 10);
        let until = NOW + 600;
        let lock =
            crate::store::codec::Failures { count: 5, last: NOW, locked_until: Some(until), pending: 0, generation: 1 };
        directory.replace("alice", "twoFactorFailures", &[&lock.seal(&settings.signer("alice").unwrap())]);
        let counted = Success { ends_attempt: true, ..success("totp") };
        let recorded = record(&directory, &settings, &Forgetful, &cache, &counted, NOW, Instant::now());
        assert_eq!(recorded, Ok(Recorded::Locked { until }));
        assert!(directory.values("alice", "twoFactorCompletion").is_empty());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_directory_failure_records_nothing() {
        let settings = testing::settings(&[]);
        let directory = MemoryDirectory::default().with_user("alice", &[]);
        directory.set_down(true);
        let cache = CompletionCache::new(Duration::from_secs(30), 10);
        let recorded = record(&directory, &settings, &Forgetful, &cache, &success("totp"), NOW, Instant::now());
        assert!(matches!(recorded, Err(Failure::Directory(StoreError::Unavailable(_)))), "{recorded:?}");
        assert!(cache.is_empty());
    }

    #[test]
    fn the_return_target() {
        let settings = testing::settings(&[]);
        let keys = settings.keys.as_ref().unwrap();
        let signed = token::sign_return(keys, "/app/page?x=1", "alice", NOW + 60);
        assert_eq!(return_target(keys, &signed, "alice", NOW), ("/app/page?x=1".to_string(), None));
        assert_eq!(return_target(keys, "", "alice", NOW), ("/".to_string(), None));
        assert_eq!(return_target(keys, &signed, "bob", NOW).1, Some(TokenError::OtherUser));
        assert_eq!(return_target(keys, &signed, "alice", NOW + 61), ("/".to_string(), Some(TokenError::Expired)));
    }
}
