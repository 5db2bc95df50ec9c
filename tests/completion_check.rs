//! The LDAP completion check on every protected request, against a real
//! slapd: bound to the browser, cached briefly, failing closed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::backend::{seen_header, MARKER};
use testkit::http::{basic_auth, Request, STRANGER_ADDR};
use testkit::stack::{Stack, StackOptions};
use twofactor_core::completion::Presented;
use twofactor_core::keys::Keys;
use twofactor_core::secret::Secret;
use twofactor_core::store::codec::Completion;
use twofactor_core::store::signed::Signer;

const COOKIE: &str = "Q0FGRUJBQkVDQUZFQkFCRUNBRkVCQUJFQ0FGRUJBQkU";
const OTHER_COOKIE: &str = "T1RIRVJPVEhFUk9USEVST1RIRVJPVEhFUk9USEVST1Q";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn stack(extra: &str) -> Stack {
    Stack::start(StackOptions { gateway: false, extra: extra.into(), ..StackOptions::default() })
}

fn keys(s: &Stack) -> Keys {
    Keys::from_files(&[Secret::new(std::fs::read(&s.key_file).unwrap())]).unwrap()
}

/// Stores a completion for `uid` directly in the directory (as the challenge would).
fn store_completion(s: &Stack, uid: &str, attr: &str, presented: Presented<'_>, issued: u64, expires: u64) {
    let keys = keys(s);
    let completion = Completion { bound: presented.bound(&keys), issued, expires, method: "totp".into() };
    let value = completion.seal(&Signer::new(&keys, uid, false));
    s.directory
        .modify_ldif(&format!("dn: {}\nchangetype: modify\nadd: {attr}\n{attr}: {value}\n", s.directory.user_dn(uid)));
}

fn with_cookie(path: &str, user: &str, cookie: &str) -> Request {
    Request::get(path).user(user).browser().header("Cookie", &format!("theme=dark; TwoFactorSession={cookie}"))
}

#[test]
fn a_completion_lets_its_browser_in_and_no_other() {
    let s = stack("");
    let port = s.protected.port;
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);

    let r = with_cookie("/app/report?id=1", "alice", COOKIE).send(port);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with(MARKER));
    assert_eq!(seen_header(&r.text(), "X-Remote-User"), vec!["alice"]);
    // The session cookie is the module's: the backend gets the others only.
    assert_eq!(seen_header(&r.text(), "Cookie"), vec!["theme=dark"]);
    s.protected.wait_for_access_log("alice \"GET /app/report?id=1 HTTP/1.1\" 200");

    // The header may differ in case; the backend gets the directory's spelling.
    let r = with_cookie("/app/", "ALICE", COOKIE).send(port);
    assert_eq!(r.status, 200);
    assert_eq!(seen_header(&r.text(), "X-Remote-User"), vec!["alice"]);

    // Another browser (cookie), no cookie, a malformed cookie, another user.
    assert_eq!(with_cookie("/app/", "alice", OTHER_COOKIE).send(port).status, 303);
    assert_eq!(Request::get("/app/").user("alice").browser().send(port).status, 303);
    assert_eq!(with_cookie("/app/", "alice", "short").send(port).status, 303);
    assert_eq!(with_cookie("/app/", "bob", COOKIE).send(port).status, 303);
    // An API client with a valid cookie is allowed too; without, 401.
    assert_eq!(
        Request::get("/app/").user("alice").header("Cookie", &format!("TwoFactorSession={COOKIE}")).send(port).status,
        200
    );
    assert_eq!(Request::new("POST", "/app/").user("alice").body(b"x").send(port).status, 403);
    let log = s.protected.wait_for_error_log("event=challenge user=alice reason=no-completion");
    assert!(log.contains("event=challenge user=alice reason=no-session"), "{log}");
    // `LogLevel twofactor:debug` (the test servers' level) shows each allow.
    assert!(log.contains("[twofactor:debug]") && log.contains("event=allow user=alice source=directory"), "{log}");
    assert!(!log.contains(COOKIE), "a cookie value reached the log");
}

#[test]
fn the_module_log_level_is_its_own() {
    let s = Stack::start(StackOptions {
        gateway: false,
        apache: testkit::apache::ApacheOptions { log_level: "warn twofactor:info".into(), ..Default::default() },
        ..StackOptions::default()
    });
    let port = s.protected.port;
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);
    assert_eq!(with_cookie("/app/", "alice", COOKIE).send(port).status, 200);
    assert_eq!(Request::get("/app/").user("alice").browser().send(port).status, 303);
    let log = s.protected.wait_for_error_log("[twofactor:info]");
    assert!(log.contains("event=challenge user=alice"), "{log}");
    assert!(!log.contains("event=allow"), "debug lines at LogLevel twofactor:info:\n{log}");
}

#[test]
fn expiry_and_per_location_max_age() {
    let s = stack("<Location /app/admin>\n  TwoFactorMaxAge 10m\n</Location>\n");
    let port = s.protected.port;
    let t = now();
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), t - 1200, t + 3600);
    store_completion(&s, "bob", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), t - 7200, t - 1);
    assert_eq!(with_cookie("/app/", "alice", COOKIE).send(port).status, 200);
    assert_eq!(with_cookie("/app/admin/", "alice", COOKIE).send(port).status, 303, "20 minutes old > 10m");
    assert_eq!(with_cookie("/app/", "bob", COOKIE).send(port).status, 303, "expired");
}

#[test]
fn unknown_and_ambiguous_users_are_refused() {
    // The whole tree: `dup` exists in two branches.
    let s = stack("TwoFactorLDAPURL {ldap_url}/dc=example,dc=test?uid?sub?(objectClass=inetOrgPerson)\n");
    let port = s.protected.port;
    let r = with_cookie("/app/", "dave", COOKIE).send(port);
    assert_eq!(r.status, 403);
    s.protected.wait_for_error_log("event=deny reason=unknown-user detail=not-found user=dave");
    assert_eq!(with_cookie("/app/", "dup", COOKIE).send(port).status, 403);
    s.protected.wait_for_error_log("event=deny reason=unknown-user detail=ambiguous user=dup");
    // Without a cookie the directory is not asked: the challenge tells the rest.
    assert_eq!(Request::get("/app/").user("dave").browser().send(port).status, 303);
}

#[test]
fn the_directory_being_down_fails_closed_and_recovers_without_restart() {
    let s = stack("TwoFactorLDAPTimeout 2s\nTwoFactorCacheTTL 0\n");
    let port = s.protected.port;
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);
    assert_eq!(with_cookie("/app/", "alice", COOKIE).send(port).status, 200);

    let mut slapd = s.directory;
    slapd.stop();
    for _ in 0..20 {
        let r = with_cookie("/app/", "alice", COOKIE).send(port);
        assert_eq!(r.status, 503);
        assert!(r.text().contains("cannot reach its directory"));
        assert_eq!(r.header("Retry-After"), Some("30"));
    }
    // No cookie: no completion is possible, the directory is not needed.
    assert_eq!(Request::get("/app/").user("alice").browser().send(port).status, 303);
    let log = s.protected.wait_for_error_log("event=ldap-error reason=unavailable");
    let lines = log.matches("event=ldap-error").count();
    assert!(lines <= 2, "20 failures in a few seconds must be summarised, got {lines} lines:\n{log}");

    slapd.start_again();
    let back = testkit::apache::wait_until(Duration::from_secs(40), || {
        with_cookie("/app/", "alice", COOKIE).send(port).status == 200
    });
    assert!(back, "service did not resume after the directory came back");
}

#[test]
fn the_cache_holds_an_allow_for_one_ttl_only() {
    let s = stack("TwoFactorCacheTTL 2s\n");
    let port = s.protected.port;
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);
    assert_eq!(with_cookie("/app/", "alice", COOKIE).send(port).status, 200);
    s.directory.modify_ldif(&format!(
        "dn: {}\nchangetype: modify\ndelete: twoFactorCompletion\n",
        s.directory.user_dn("alice")
    ));
    let revoked_at = std::time::Instant::now();
    // Within the TTL the cached allow may still hold; after it, never.
    let stopped = testkit::apache::wait_until(Duration::from_secs(10), || {
        with_cookie("/app/", "alice", COOKIE).send(port).status == 303
    });
    assert!(stopped);
    assert!(revoked_at.elapsed() < Duration::from_secs(4), "revocation took {:?}", revoked_at.elapsed());
    // A completion written elsewhere is honoured at once: misses are not cached.
    assert_eq!(with_cookie("/app/", "bob", COOKIE).send(port).status, 303);
    store_completion(&s, "bob", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);
    assert_eq!(with_cookie("/app/", "bob", COOKIE).send(port).status, 200);
}

#[test]
fn binding_to_the_gateway_session_header() {
    let s = stack("TwoFactorSessionBinding header\nTwoFactorSessionHeader X-Gateway-Session\n");
    let port = s.protected.port;
    store_completion(
        &s,
        "alice",
        "twoFactorCompletion",
        Presented::GatewaySession(b"pcs-session-1"),
        now(),
        now() + 3600,
    );
    let req = |session: &str| Request::get("/app/").user("alice").browser().header("X-Gateway-Session", session);
    assert_eq!(req("pcs-session-1").send(port).status, 200);
    assert_eq!(req("pcs-session-2").send(port).status, 303);
    assert_eq!(Request::get("/app/").user("alice").browser().send(port).status, 303);
    // A stranger's copy of the header is gone before anything reads it.
    assert_eq!(req("pcs-session-1").from(STRANGER_ADDR).send(port).status, 403);
    // Repeated (Apache joins them with ", ") or comma-joined values are
    // refused like a bad identity, even when the first of them is the right one.
    assert_eq!(req("pcs-session-1").header("X-Gateway-Session", "pcs-session-2").send(port).status, 400);
    assert_eq!(req("pcs-session-1, pcs-session-2").send(port).status, 400);
    assert_eq!(req("pcs-session-1,x").send(port).status, 400);
    s.protected.wait_for_error_log("event=deny reason=bad-session-header detail=comma-joined user=alice");
    // On the challenge path too: a completion is never bound to a merged id.
    let challenge = Request::get("/2fa/").user("alice").browser().header("X-Gateway-Session", "a, b").send(port);
    assert_eq!(challenge.status, 400);
}

/// The session cookie never reaches a backend, whichever `Cookie` header
/// carries it and whatever bytes are around it.
#[test]
fn the_session_cookie_is_taken_out_of_every_cookie_header() {
    let s = stack("");
    let port = s.protected.port;
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);
    let cookie = format!("TwoFactorSession={COOKIE}");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["theme=dark", &cookie], vec!["theme=dark"]),
        (vec![&cookie, "lang=en; TwoFactorSession=other"], vec!["lang=en"]),
        (vec![&cookie], vec![]),
    ];
    for (sent, expected) in cases {
        let mut req = Request::get("/app/").user("alice");
        for value in &sent {
            req = req.header("Cookie", value);
        }
        let r = req.send(port);
        assert_eq!(r.status, 200, "{sent:?}: {}", r.text());
        assert_eq!(seen_header(&r.text(), "Cookie"), expected, "{sent:?}");
        assert!(!r.text().contains(COOKIE), "{sent:?}: the session cookie reached the backend");
    }
    // A header that is not UTF-8 is cleaned just the same.
    let raw = format!(
        "GET /app/ HTTP/1.1\r\nHost: x\r\nX-Remote-User: alice\r\nCookie: n=\u{e9}t\u{e9}; {cookie}\r\nConnection: close\r\n\r\n"
    );
    let latin1: Vec<u8> = raw.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    let r = testkit::http::send_raw_from(testkit::http::GATEWAY_ADDR, port, &latin1, false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains(COOKIE), "the session cookie reached the backend:\n{}", r.text());
    assert!(r.body.windows(5).any(|w| w == b"n=\xe9t\xe9"), "the other cookie was lost:\n{}", r.text());
}

#[test]
fn binding_none_trusts_time_only() {
    let s = stack("TwoFactorSessionBinding none\n");
    let port = s.protected.port;
    assert_eq!(Request::get("/app/").user("alice").browser().send(port).status, 303);
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Anywhere, now(), now() + 3600);
    assert_eq!(Request::get("/app/").user("alice").browser().send(port).status, 200);
}

#[test]
fn mapped_attributes_for_directories_without_the_schema() {
    let s = stack("TwoFactorAttribute completion carLicense\nTwoFactorAttribute failures roomNumber\n");
    let port = s.protected.port;
    store_completion(&s, "alice", "twoFactorCompletion", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);
    assert_eq!(with_cookie("/app/", "alice", COOKIE).send(port).status, 303, "the default attribute is not read");
    store_completion(&s, "bob", "carLicense", Presented::Cookie(COOKIE.as_bytes()), now(), now() + 3600);
    assert_eq!(with_cookie("/app/", "bob", COOKIE).send(port).status, 200);
    let locked = twofactor_core::store::codec::Failures {
        count: 5,
        last: now(),
        locked_until: Some(now() + 600),
        pending: 0,
        generation: 1,
    };
    s.directory.modify_ldif(&format!(
        "dn: {}\nchangetype: modify\nadd: roomNumber\nroomNumber: {}\n",
        s.directory.user_dn("bob"),
        locked.seal(&Signer::new(&keys(&s), "bob", false))
    ));
    // Locked: navigations go to the challenge (which explains), the rest get
    // 403. The allow above may be cached for the TTL: use a fresh binding.
    store_completion(&s, "bob", "carLicense", Presented::Cookie(OTHER_COOKIE.as_bytes()), now(), now() + 3600);
    assert_eq!(with_cookie("/app/", "bob", OTHER_COOKIE).send(port).status, 303);
    assert_eq!(
        Request::get("/app/")
            .user("bob")
            .header("Cookie", &format!("TwoFactorSession={OTHER_COOKIE}"))
            .send(port)
            .status,
        403
    );
    s.protected.wait_for_error_log("event=deny reason=locked user=bob");
}

#[test]
fn a_completion_made_through_one_server_is_honoured_by_another() {
    let s = Stack::start(StackOptions::default());
    let gw = s.gateway_port();
    let auth = basic_auth("alice", "alice-pw");
    let first = Request::get("/app/page?x=1").browser().header("Authorization", &auth).send(gw);
    assert_eq!(first.status, 303);
    let location = first.header("Location").unwrap().to_string();
    let token = location.split("r=").nth(1).unwrap();

    // The success path of the challenge (test builds): cookie, directory write, redirect back.
    let done =
        Request::get(&format!("/2fa/__test_complete?r={token}")).browser().header("Authorization", &auth).send(gw);
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(done.header("Location"), Some("/app/page?x=1"));
    let set_cookie = done.set_cookie("TwoFactorSession").expect("Set-Cookie").to_string();
    for attr in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let back =
        Request::get("/app/page?x=1").browser().header("Authorization", &auth).header("Cookie", &cookie).send(gw);
    assert_eq!(back.status, 200, "{}", back.text());

    // A second protected server, same directory and key, never saw this browser.
    let root = s.dir.path().join("second");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&s.key_file, root.join("twofactor.key")).unwrap();
    std::fs::copy(s.protected.root.join("bind.pw"), root.join("bind.pw")).unwrap();
    let body = testkit::stack::protected_body(&root, &s.directory, &s.smtp, &s.backend, "");
    let second = testkit::apache::Apache::start(&root, testkit::apache::ApacheOptions::default(), &body);
    let value = cookie.split_once('=').unwrap().1;
    assert_eq!(with_cookie("/app/page", "alice", value).send(second.port).status, 200);
    assert_eq!(with_cookie("/app/page", "bob", value).send(second.port).status, 303);
}
