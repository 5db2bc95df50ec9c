//! The decision against an in-memory directory: one row per line of
//! SPEC's response table, and the rules of the cache and of subrequests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::store::codec::{Completion, Failures};
use crate::store::memory::MemoryDirectory;
use crate::testing;

const NOW: u64 = 1_900_000_000;
const COOKIE: &[u8] = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const OTHER_COOKIE: &[u8] = b"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const HOUR: u64 = 3600;

/// A request as the hooks would describe it; rows change what they test.
#[derive(Clone)]
struct Request {
    peer: Peer,
    identity: Vec<&'static [u8]>,
    session: Vec<&'static [u8]>,
    cookie: Option<&'static [u8]>,
    initial_allow: Option<InitialAllow<'static>>,
    require_methods: MethodSet,
    challenge_path: bool,
    max_age: u64,
    method: &'static str,
    accept: Option<&'static [u8]>,
    requested_with: Option<&'static [u8]>,
}

impl Default for Request {
    /// alice's browser navigating, with her session cookie.
    fn default() -> Self {
        Request {
            peer: Peer::Gateway,
            identity: vec![b"alice"],
            session: Vec::new(),
            cookie: Some(COOKIE),
            initial_allow: None,
            require_methods: MethodSet::default(),
            challenge_path: false,
            max_age: 8 * HOUR,
            method: "GET",
            accept: Some(b"text/html,application/xhtml+xml"),
            requested_with: None,
        }
    }
}

impl Request {
    fn facts(&self) -> Facts<'_> {
        Facts {
            peer: self.peer,
            identity: &self.identity,
            session: &self.session,
            cookie: self.cookie,
            initial_allow: self.initial_allow,
            challenge_path: self.challenge_path,
            max_age: self.max_age,
            require_methods: self.require_methods,
            method: self.method,
            accept: self.accept,
            requested_with: self.requested_with,
        }
    }
}

/// A stored completion of `presented`, issued `age` seconds ago, valid for `life`.
fn completion(settings: &Settings, presented: Presented<'_>, age: u64, life: u64) -> String {
    completion_by(settings, presented, age, life, "totp")
}

/// The same, made with `method`.
fn completion_by(settings: &Settings, presented: Presented<'_>, age: u64, life: u64, method: &str) -> String {
    let keys = settings.keys.as_ref().unwrap();
    let issued = NOW - age;
    let completion = Completion { bound: presented.bound(keys), issued, expires: issued + life, method: method.into() };
    completion.seal(&settings.signer("alice").unwrap())
}

fn by_passkey(s: &Settings) -> Attributes {
    vec![("twoFactorCompletion", vec![completion_by(s, Presented::Cookie(COOKIE), 60, 8 * HOUR, "webauthn")])]
}

fn by_enrollment(s: &Settings) -> Attributes {
    vec![("twoFactorCompletion", vec![completion_by(s, Presented::Cookie(COOKIE), 60, 8 * HOUR, "enrolled")])]
}

fn passkeys_only(r: &mut Request) {
    r.require_methods = MethodSet::of(&[Method::WebAuthn]);
}

fn locked_until(until: u64) -> String {
    let keys = crate::testing::keys();
    let failures = Failures { count: 5, last: NOW - 10, locked_until: Some(until), pending: 0, generation: 1 };
    failures.seal(&crate::store::signed::Signer::new(&keys, "alice", false))
}

/// The verdict in one line: what a row expects.
fn summary(verdict: &Verdict<'_>) -> String {
    match verdict {
        Verdict::Allow { user, source, .. } => {
            assert_eq!(verdict.status(), 200);
            format!("allow {user} from {}", source.as_str())
        }
        Verdict::Challenge { user } => format!("challenge page for {user}"),
        Verdict::Refuse { user, reason, .. } => format!("{} {user} {reason}", verdict.status()),
        Verdict::Locked { user, .. } => format!("{} {user} locked", verdict.status()),
        Verdict::Spoof { peer } => format!("{} spoof {}", verdict.status(), peer.refusal_reason()),
        Verdict::BadIdentity { error, .. } => format!("{} bad-identity {}", verdict.status(), error.as_str()),
        Verdict::BadSessionHeader { detail, .. } => format!("{} bad-session-header {detail}", verdict.status()),
        Verdict::UnknownUser { user, detail } => format!("{} unknown-user {user} {detail}", verdict.status()),
        Verdict::DirectoryDown { error, .. } => format!("{} ldap-error {}", verdict.status(), error.reason()),
        Verdict::NotConfigured => format!("{} not-configured", verdict.status()),
    }
}

/// An entry's attributes, as a row sets them up.
type Attributes = Vec<(&'static str, Vec<String>)>;

struct Row {
    name: &'static str,
    /// Directives besides the usual ones.
    config: &'static [&'static str],
    /// alice's attributes (a directory with alice and bob is the default).
    alice: fn(&Settings) -> Attributes,
    request: fn(&mut Request),
    directory: fn(&MemoryDirectory),
    expect: &'static str,
}

fn with_completion(s: &Settings) -> Attributes {
    vec![("twoFactorCompletion", vec![completion(s, Presented::Cookie(COOKIE), 60, 8 * HOUR)])]
}

fn nothing(_: &Settings) -> Attributes {
    Vec::new()
}

fn as_is(_: &mut Request) {}

fn up(_: &MemoryDirectory) {}

const DEFAULTS: Row = Row { name: "", config: &[], alice: with_completion, request: as_is, directory: up, expect: "" };

fn rows() -> Vec<Row> {
    vec![
        Row { name: "valid completion", expect: "allow alice from directory", ..DEFAULTS },
        Row {
            name: "the directory's spelling of the name",
            request: |r| r.identity = vec![b"ALICE"],
            expect: "allow alice from directory",
            ..DEFAULTS
        },
        Row {
            name: "peer not a trusted proxy",
            request: |r| r.peer = Peer::Untrusted,
            expect: "403 spoof untrusted-peer",
            ..DEFAULTS
        },
        Row {
            name: "wrong shared secret",
            request: |r| r.peer = Peer::BadSecret,
            expect: "403 spoof bad-proxy-secret",
            ..DEFAULTS
        },
        Row {
            name: "spoof on the challenge path too",
            request: |r| {
                r.peer = Peer::Untrusted;
                r.challenge_path = true;
            },
            expect: "403 spoof untrusted-peer",
            ..DEFAULTS
        },
        Row {
            name: "identity missing",
            request: |r| r.identity.clear(),
            expect: "400 bad-identity missing",
            ..DEFAULTS
        },
        Row {
            name: "identity repeated",
            request: |r| r.identity = vec![b"alice", b"alice"],
            expect: "400 bad-identity repeated",
            ..DEFAULTS
        },
        Row {
            name: "identity comma-joined",
            request: |r| r.identity = vec![b"alice, bob"],
            expect: "400 bad-identity comma-joined",
            ..DEFAULTS
        },
        Row {
            name: "identity not trimmed",
            request: |r| r.identity = vec![b" alice"],
            expect: "400 bad-identity pattern-mismatch",
            ..DEFAULTS
        },
        Row {
            name: "identity not UTF-8",
            request: |r| r.identity = vec![b"al\xffice"],
            expect: "400 bad-identity not-utf8",
            ..DEFAULTS
        },
        Row {
            name: "identity outside the configured pattern",
            config: &["TwoFactorUsernamePattern ^[a-z]{1,4}$"],
            expect: "400 bad-identity pattern-mismatch",
            ..DEFAULTS
        },
        Row {
            name: "user not in the directory",
            request: |r| r.identity = vec![b"carol"],
            expect: "403 unknown-user carol not-found",
            ..DEFAULTS
        },
        Row {
            name: "two entries for one name",
            request: |r| r.identity = vec![b"twin"],
            expect: "403 unknown-user twin ambiguous",
            ..DEFAULTS
        },
        Row {
            name: "directory unavailable",
            directory: |d| d.set_down(true),
            expect: "503 ldap-error unavailable",
            ..DEFAULTS
        },
        Row {
            name: "locked, a navigation",
            alice: |s| {
                let mut attrs = with_completion(s);
                attrs.push(("twoFactorFailures", vec![locked_until(NOW + 600)]));
                attrs
            },
            expect: "303 alice locked",
            ..DEFAULTS
        },
        Row {
            name: "locked, an XHR",
            alice: |_| vec![("twoFactorFailures", vec![locked_until(NOW + 600)])],
            request: |r| r.requested_with = Some(b"XMLHttpRequest"),
            expect: "403 alice locked",
            ..DEFAULTS
        },
        Row {
            name: "locked, a POST",
            alice: |_| vec![("twoFactorFailures", vec![locked_until(NOW + 600)])],
            request: |r| r.method = "POST",
            expect: "403 alice locked",
            ..DEFAULTS
        },
        Row {
            name: "a lock that has run out",
            alice: |s| {
                let mut attrs = with_completion(s);
                attrs.push(("twoFactorFailures", vec![locked_until(NOW - 1)]));
                attrs
            },
            expect: "allow alice from directory",
            ..DEFAULTS
        },
        Row { name: "no completion, a navigation", alice: nothing, expect: "303 alice no-completion", ..DEFAULTS },
        Row {
            name: "no completion, HEAD accepting HTML",
            alice: nothing,
            request: |r| r.method = "HEAD",
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "no completion, a GET for JSON",
            alice: nothing,
            request: |r| r.accept = Some(b"application/json"),
            expect: "401 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "no completion, a GET without Accept",
            alice: nothing,
            request: |r| r.accept = None,
            expect: "401 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "no completion, HTML refused with q=0",
            alice: nothing,
            request: |r| r.accept = Some(b"text/html;q=0, */*"),
            expect: "401 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "no completion, an XHR accepting HTML",
            alice: nothing,
            request: |r| r.requested_with = Some(b"XMLHttpRequest"),
            expect: "401 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "no completion, a POST",
            alice: nothing,
            request: |r| r.method = "POST",
            expect: "403 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "no completion, OPTIONS",
            alice: nothing,
            request: |r| r.method = "OPTIONS",
            expect: "403 alice no-completion",
            ..DEFAULTS
        },
        Row { name: "no session cookie", request: |r| r.cookie = None, expect: "303 alice no-session", ..DEFAULTS },
        Row {
            name: "a cookie not of the module's making",
            request: |r| r.cookie = Some(b"short"),
            expect: "303 alice no-session",
            ..DEFAULTS
        },
        Row {
            name: "another browser's completion",
            request: |r| r.cookie = Some(OTHER_COOKIE),
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "an expired completion",
            alice: |s| vec![("twoFactorCompletion", vec![completion(s, Presented::Cookie(COOKIE), 2 * HOUR, HOUR)])],
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "a completion older than this scope's max age",
            request: |r| r.max_age = 30,
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "a completion for any browser does not count under cookie binding",
            alice: |s| vec![("twoFactorCompletion", vec![completion(s, Presented::Anywhere, 60, HOUR)])],
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "another user's completion",
            alice: nothing,
            request: |r| r.identity = vec![b"bob"],
            expect: "303 bob no-completion",
            ..DEFAULTS
        },
        Row {
            name: "the challenge path with a valid identity",
            alice: nothing,
            request: |r| r.challenge_path = true,
            directory: |d| d.set_down(true),
            expect: "challenge page for alice",
            ..DEFAULTS
        },
        Row {
            name: "the challenge path with a bad identity",
            request: |r| {
                r.challenge_path = true;
                r.identity = vec![b"a,b"];
            },
            expect: "400 bad-identity comma-joined",
            ..DEFAULTS
        },
        Row {
            name: "binding header: the session's completion",
            config: &["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"],
            alice: |s| vec![("twoFactorCompletion", vec![completion(s, Presented::GatewaySession(b"s-1"), 60, HOUR)])],
            request: |r| r.session = vec![b"s-1"],
            expect: "allow alice from directory",
            ..DEFAULTS
        },
        Row {
            name: "binding header: another session",
            config: &["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"],
            alice: |s| vec![("twoFactorCompletion", vec![completion(s, Presented::GatewaySession(b"s-1"), 60, HOUR)])],
            request: |r| r.session = vec![b"s-2"],
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "binding header: no session id",
            config: &["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"],
            expect: "303 alice no-session",
            ..DEFAULTS
        },
        Row {
            name: "binding header: an empty session id",
            config: &["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"],
            request: |r| r.session = vec![b""],
            expect: "303 alice no-session",
            ..DEFAULTS
        },
        Row {
            name: "binding header: session id repeated",
            config: &["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"],
            request: |r| r.session = vec![b"s-1", b"s-1"],
            expect: "400 bad-session-header repeated",
            ..DEFAULTS
        },
        Row {
            name: "binding header: session ids comma-joined",
            config: &["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"],
            request: |r| r.session = vec![b"s-1, s-2"],
            expect: "400 bad-session-header comma-joined",
            ..DEFAULTS
        },
        Row {
            name: "binding header: the session header is checked on the challenge path too",
            config: &["TwoFactorSessionBinding header", "TwoFactorSessionHeader X-Session"],
            request: |r| {
                r.session = vec![b"s-1", b"s-2"];
                r.challenge_path = true;
            },
            expect: "400 bad-session-header repeated",
            ..DEFAULTS
        },
        Row {
            name: "binding none: a completion for any browser",
            config: &["TwoFactorSessionBinding none"],
            alice: |s| vec![("twoFactorCompletion", vec![completion(s, Presented::Anywhere, 60, HOUR)])],
            request: |r| r.cookie = None,
            expect: "allow alice from directory",
            ..DEFAULTS
        },
        Row {
            name: "binding none: a session's completion does not count",
            config: &["TwoFactorSessionBinding none"],
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "subrequest of an allowed request",
            alice: nothing,
            request: |r| {
                r.initial_allow = Some(InitialAllow { user: "alice", issued: NOW - 60, method: Some(Method::Totp) });
                r.cookie = None;
            },
            directory: |d| d.set_down(true),
            expect: "allow alice from initial-request",
            ..DEFAULTS
        },
        Row {
            name: "subrequest of an allowed request, in a scope with a shorter max age",
            alice: nothing,
            request: |r| {
                r.initial_allow = Some(InitialAllow { user: "alice", issued: NOW - 600, method: Some(Method::Totp) });
                r.max_age = 300;
            },
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "step-up: a TOTP completion where a passkey is required",
            request: passkeys_only,
            expect: "303 alice step-up",
            ..DEFAULTS
        },
        Row {
            name: "step-up: a form posted without the step-up is refused, never replayed",
            request: |r| {
                passkeys_only(r);
                r.method = "POST";
            },
            expect: "403 alice step-up",
            ..DEFAULTS
        },
        Row {
            name: "step-up: an XHR without the step-up",
            request: |r| {
                passkeys_only(r);
                r.requested_with = Some(b"XMLHttpRequest");
            },
            expect: "401 alice step-up",
            ..DEFAULTS
        },
        Row {
            name: "step-up: a passkey completion where a passkey is required",
            alice: by_passkey,
            request: passkeys_only,
            expect: "allow alice from directory",
            ..DEFAULTS
        },
        Row {
            name: "step-up: one of several accepted methods",
            request: |r| r.require_methods = MethodSet::of(&[Method::WebAuthn, Method::Totp]),
            expect: "allow alice from directory",
            ..DEFAULTS
        },
        Row {
            name: "step-up: a new authenticator confirmed with its first code is a TOTP completion",
            alice: by_enrollment,
            request: |r| r.require_methods = MethodSet::of(&[Method::Totp]),
            expect: "allow alice from directory",
            ..DEFAULTS
        },
        Row {
            name: "step-up: a passkey completion too old for this scope",
            alice: by_passkey,
            request: |r| {
                passkeys_only(r);
                r.max_age = 30;
            },
            expect: "303 alice no-completion",
            ..DEFAULTS
        },
        Row {
            name: "step-up: a subrequest of a request let in by TOTP, into a passkey scope",
            request: |r| {
                r.initial_allow = Some(InitialAllow { user: "alice", issued: NOW - 60, method: Some(Method::Totp) });
                passkeys_only(r);
            },
            expect: "303 alice step-up",
            ..DEFAULTS
        },
        Row {
            name: "step-up: a subrequest of a request let in by a passkey, into a passkey scope",
            alice: nothing,
            request: |r| {
                r.initial_allow =
                    Some(InitialAllow { user: "alice", issued: NOW - 60, method: Some(Method::WebAuthn) });
                r.cookie = None;
                passkeys_only(r);
            },
            directory: |d| d.set_down(true),
            expect: "allow alice from initial-request",
            ..DEFAULTS
        },
        Row {
            name: "subrequest for another user than the allowed request",
            alice: nothing,
            request: |r| {
                r.initial_allow = Some(InitialAllow { user: "bob", issued: NOW - 60, method: Some(Method::Totp) });
                r.cookie = None;
            },
            expect: "303 alice no-session",
            ..DEFAULTS
        },
    ]
}

fn directory_for(settings: &Settings, row: &Row) -> MemoryDirectory {
    let alice: Attributes = (row.alice)(settings);
    let alice: Vec<(&str, Vec<&str>)> =
        alice.iter().map(|(a, v)| (*a, v.iter().map(String::as_str).collect())).collect();
    let alice: Vec<(&str, &[&str])> = alice.iter().map(|(a, v)| (*a, v.as_slice())).collect();
    MemoryDirectory::default()
        .with_user("alice", &alice)
        .with_user("bob", &[])
        .with_user("twin", &[])
        .with_user("TWIN", &[])
}

#[test]
fn every_row_of_the_response_table() {
    let mut failures = Vec::new();
    for row in rows() {
        let settings = testing::settings(row.config);
        let directory = directory_for(&settings, &row);
        (row.directory)(&directory);
        let mut request = Request::default();
        (row.request)(&mut request);
        let cache = CompletionCache::new(Duration::from_secs(60), 100);
        let verdict =
            decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, Instant::now());
        let got = summary(&verdict);
        if got != row.expect {
            failures.push(format!("{}: expected '{}', got '{got}'", row.name, row.expect));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn alice_with_completion(settings: &Settings) -> MemoryDirectory {
    directory_for(settings, &DEFAULTS)
}

#[test]
fn a_directory_allow_is_cached_until_the_ttl() {
    let settings = testing::settings(&[]);
    let directory = alice_with_completion(&settings);
    let cache = CompletionCache::new(Duration::from_secs(30), 100);
    let request = Request::default();
    let clock = Instant::now();
    let first = decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock);
    assert_eq!(summary(&first), "allow alice from directory");
    assert!(first.directory_answered());
    let second = decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW + 1, clock);
    assert_eq!(summary(&second), "allow alice from cache");
    assert!(!second.directory_answered());
    assert_eq!(directory.reads(), 1);

    // A revoked completion stops within one TTL.
    directory.replace("alice", "twoFactorCompletion", &[]);
    let later = clock + Duration::from_secs(31);
    let third = decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW + 31, later);
    assert_eq!(summary(&third), "303 alice no-completion");
    assert_eq!(directory.reads(), 2);
}

#[test]
fn a_cached_completion_of_another_method_asks_the_directory_which_may_know_the_step_up() {
    let settings = testing::settings(&[]);
    let directory = alice_with_completion(&settings);
    let cache = CompletionCache::new(Duration::from_secs(30), 100);
    let clock = Instant::now();
    let anywhere = Request::default();
    let admin = Request { require_methods: MethodSet::of(&[Method::WebAuthn]), ..Request::default() };
    assert_eq!(
        summary(&decide(&anywhere.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock)),
        "allow alice from directory"
    );
    assert_eq!(
        summary(&decide(&anywhere.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock)),
        "allow alice from cache"
    );
    // The cache holds a TOTP completion: the passkey scope asks the directory.
    assert_eq!(
        summary(&decide(&admin.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock)),
        "303 alice step-up"
    );
    assert_eq!(directory.reads(), 2);
    // The user stepped up on another server: this one sees it at once.
    let stepped_up = completion_by(&settings, Presented::Cookie(COOKIE), 1, 8 * HOUR, "webauthn");
    directory.replace("alice", "twoFactorCompletion", &[&stepped_up]);
    assert_eq!(
        summary(&decide(&admin.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock)),
        "allow alice from directory"
    );
    assert_eq!(
        summary(&decide(&admin.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock)),
        "allow alice from cache"
    );
    assert_eq!(directory.reads(), 3);
}

#[test]
fn the_cache_holds_for_one_user_and_one_browser_only() {
    let settings = testing::settings(&[]);
    let directory = alice_with_completion(&settings);
    let cache = CompletionCache::new(Duration::from_secs(30), 100);
    let clock = Instant::now();
    let alice = Request::default();
    decide(&alice.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock);

    let bob = Request { identity: vec![b"bob"], ..Request::default() };
    assert_eq!(
        summary(&decide(&bob.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock)),
        "303 bob no-completion"
    );
    let other_browser = Request { cookie: Some(OTHER_COOKIE), ..Request::default() };
    let verdict = decide(&other_browser.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock);
    assert_eq!(summary(&verdict), "303 alice no-completion");
    assert_eq!(directory.reads(), 3);
}

#[test]
fn a_cached_allow_still_obeys_a_shorter_max_age() {
    let settings = testing::settings(&[]);
    let directory = alice_with_completion(&settings);
    let cache = CompletionCache::new(Duration::from_secs(30), 100);
    let clock = Instant::now();
    decide(&Request::default().facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock);
    let strict = Request { max_age: 30, ..Request::default() };
    let verdict = decide(&strict.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock);
    assert_eq!(summary(&verdict), "303 alice no-completion");
}

#[test]
fn without_a_cache_every_request_asks_the_directory() {
    let settings = testing::settings(&["TwoFactorCacheTTL 0"]);
    let directory = alice_with_completion(&settings);
    let cache = CompletionCache::new(settings.cache_ttl, 100);
    let request = Request::default();
    for _ in 0..3 {
        let verdict =
            decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, Instant::now());
        assert_eq!(summary(&verdict), "allow alice from directory");
    }
    assert_eq!(directory.reads(), 3);
}

#[test]
fn refusals_and_errors_are_never_cached() {
    let settings = testing::settings(&[]);
    let directory = MemoryDirectory::default().with_user("alice", &[]);
    let cache = CompletionCache::new(Duration::from_secs(30), 100);
    let clock = Instant::now();
    let request = Request::default();
    decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock);
    directory.set_down(true);
    let verdict = decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, clock);
    assert_eq!(summary(&verdict), "503 ldap-error unavailable");
    assert!(cache.is_empty());
}

#[test]
fn without_key_or_directory_nothing_is_allowed() {
    let mut settings = testing::settings(&[]);
    let directory = alice_with_completion(&settings);
    let cache = CompletionCache::new(Duration::from_secs(30), 100);
    let request = Request::default();
    let verdict = decide(&request.facts(), &settings, None, &cache, NOW, Instant::now());
    assert_eq!(verdict, Verdict::NotConfigured);
    settings.keys = None;
    let verdict = decide(&request.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, Instant::now());
    assert_eq!(verdict, Verdict::NotConfigured);
}

#[test]
fn the_user_recorded_on_the_request() {
    let settings = testing::settings(&[]);
    let directory = alice_with_completion(&settings);
    let cache = CompletionCache::new(Duration::ZERO, 100);
    let shouting = Request { identity: vec![b"ALICE"], ..Request::default() };
    let verdict = decide(&shouting.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, Instant::now());
    assert_eq!(verdict.user(), Some("alice"));
    let allow = Verdict::Allow { user: Arc::from("alice"), issued: NOW, method: None, source: Source::Cache };
    assert_eq!(allow.user(), Some("alice"));
    directory.set_down(true);
    let verdict = decide(&shouting.facts(), &settings, Some(Directories::one(&directory)), &cache, NOW, Instant::now());
    assert_eq!(verdict.user(), Some("ALICE"), "the gateway's name, when the directory cannot say better");
    assert_eq!(Verdict::Spoof { peer: Peer::Untrusted }.user(), None);
}

#[test]
fn the_peer() {
    let secret: &[u8] = b"s3cret";
    type Case<'a> = (bool, Option<&'a [u8]>, [Option<&'a [u8]>; 2], Peer);
    let cases: [Case<'_>; 7] = [
        (false, None, [None, None], Peer::Untrusted),
        (false, Some(secret), [Some(secret), None], Peer::Untrusted),
        (true, None, [None, None], Peer::Gateway),
        (true, Some(secret), [Some(secret), None], Peer::Gateway),
        (true, Some(secret), [None, None], Peer::BadSecret),
        (true, Some(secret), [Some(b"s3cre"), None], Peer::BadSecret),
        (true, Some(secret), [Some(secret), Some(secret)], Peer::BadSecret),
    ];
    for (trusted, expected, given, peer) in cases {
        assert_eq!(Peer::classify(trusted, expected, given), peer, "{trusted} {given:?}");
    }
    for peer in [Peer::Gateway, Peer::Untrusted, Peer::BadSecret] {
        assert_eq!(Peer::from_note(Some(peer.note().to_bytes())), peer);
    }
    assert_eq!(Peer::from_note(None), Peer::Untrusted);
    assert_eq!(Peer::from_note(Some(b"TRUSTED")), Peer::Untrusted);
}

#[test]
fn a_replica_that_lags_is_confirmed_by_the_writer_before_a_refusal() {
    let settings = testing::settings(&[]);
    let writer = alice_with_completion(&settings);
    let replica = MemoryDirectory::default().with_user("alice", &[]);
    let both = Directories { read: &replica, write: Some(&writer) };
    let request = Request::default();
    let fresh_cache = || CompletionCache::new(Duration::from_secs(30), 100);

    // The sign-in has not replicated: the writer lets her in, no loop.
    let verdict = decide(&request.facts(), &settings, Some(both), &fresh_cache(), NOW, Instant::now());
    assert_eq!(summary(&verdict), "allow alice from directory");
    assert_eq!((replica.reads(), writer.reads()), (1, 1));

    // Once it has, the replica answers alone.
    replica.replace("alice", "twoFactorCompletion", &[&completion(&settings, Presented::Cookie(COOKIE), 60, HOUR)]);
    let verdict = decide(&request.facts(), &settings, Some(both), &fresh_cache(), NOW, Instant::now());
    assert_eq!(summary(&verdict), "allow alice from directory");
    assert_eq!((replica.reads(), writer.reads()), (2, 1));

    // A lock the writer lifted already, and a replica that is down, are the writer's to decide.
    replica.replace("alice", "twoFactorFailures", &[&locked_until(NOW + 600)]);
    let verdict = decide(&request.facts(), &settings, Some(both), &fresh_cache(), NOW, Instant::now());
    assert_eq!(summary(&verdict), "allow alice from directory");
    replica.set_down(true);
    let verdict = decide(&request.facts(), &settings, Some(both), &fresh_cache(), NOW, Instant::now());
    assert_eq!(summary(&verdict), "allow alice from directory");

    // Nothing anywhere: refused after both were asked.
    writer.replace("alice", "twoFactorCompletion", &[]);
    replica.set_down(false);
    replica.replace("alice", "twoFactorCompletion", &[]);
    let reads = writer.reads();
    let verdict = decide(&request.facts(), &settings, Some(both), &fresh_cache(), NOW, Instant::now());
    assert!(summary(&verdict).contains("no-completion"), "{}", summary(&verdict));
    assert_eq!(writer.reads(), reads + 1);
}
