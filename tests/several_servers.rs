//! Several protected Apache servers sharing one directory: a completion,
//! the lockout (parallel guesses split between them), TOTP replay and
//! single-use passcodes hold across all of them, and a lock survives a
//! restart. (Two replicated directories: tests/replication.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::apache::{Apache, ApacheOptions};
use testkit::directory::Kind;
use testkit::session::{form, form_where, passcode_in, Form, Session};
use testkit::stack::{protected_body, Stack, StackOptions};
use twofactor_core::config::Algorithm;
use twofactor_core::store::codec::Failures;
use twofactor_core::totp::{self, TotpParams};

const SEED: &[u8] = b"12345678901234567890";
const PARAMS: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn code(steps: i64) -> String {
    totp::totp(SEED, PARAMS, (now() as i64 + steps * 30) as u64).unwrap()
}

/// The stack's protected server and a second one with the same key and
/// directory; alice enrolled (known secret) with twofactorctl.
struct Two {
    s: Stack,
    b: Apache,
}

fn two_servers(extra: &str) -> Two {
    let apache = ApacheOptions { threads: 20, ..ApacheOptions::default() };
    let s = Stack::start(StackOptions {
        gateway: false,
        extra: extra.into(),
        apache: apache.clone(),
        directory: Some(Kind::Slapd),
    });
    let root = s.dir.path().join("second");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&s.key_file, root.join("twofactor.key")).unwrap();
    std::fs::copy(s.protected.root.join("bind.pw"), root.join("bind.pw")).unwrap();
    let b = Apache::start(&root, apache, &protected_body(&root, &s.directory, &s.smtp, &s.backend, extra));
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(s.protected.root.join("httpd.conf"))
        .args(["--no-notify", "enroll", "alice", "--secret", &totp::base32_encode(SEED)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Two { s, b }
}

impl Two {
    fn ports(&self) -> [u16; 2] {
        [self.s.protected.port, self.b.port]
    }

    fn logs(&self) -> String {
        self.s.protected.error_log() + &self.b.error_log()
    }
}

/// A browser of `user` on the form for `action` at the server on `port`.
fn on_form(port: u16, user: &str, action: &str) -> (Session, Form) {
    let mut b = Session::direct(port, user);
    let page = b.follow("/app/");
    (b, form(&page.text(), action))
}

/// How many browsers post one right code at once: fewer than
/// `TwoFactorMaxAttempts` (20, its ceiling), because the attempt that
/// reaches the maximum with a wrong code locks the account and may do so
/// before the winner's success is written (then no one wins, by design).
const AT_ONCE: usize = 16;

/// Posts each `(session, form, code)` at once; the statuses in order.
fn at_once(prepared: Vec<(Session, Form, String)>) -> Vec<u16> {
    let barrier = Arc::new(Barrier::new(prepared.len()));
    let handles: Vec<_> = prepared
        .into_iter()
        .map(|(mut b, f, code)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                b.post(&f.action, &f.with(&[("code", &code)])).status
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_completion_and_a_replayed_code_across_two_servers() {
    let t = two_servers("TwoFactorMaxAttempts 20\n");
    let [a, b] = t.ports();
    // One code, eight browsers at each server at once: one wins.
    let right = code(1);
    let prepared: Vec<_> = (0..AT_ONCE)
        .map(|i| {
            let (s, f) = on_form(if i % 2 == 0 { a } else { b }, "alice", "/totp");
            (s, f, right.clone())
        })
        .collect();
    let statuses = at_once(prepared);
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "{statuses:?}");
    assert!(t.logs().matches("reason=replayed").count() >= 1);
    // A completion made at one server lets the browser in at the other.
    let (mut browser, f) = on_form(a, "alice", "/totp");
    assert_eq!(browser.post(&f.action, &f.with(&[("code", &code(2))])).status, 303);
    browser.port = b;
    assert_eq!(browser.get("/app/data").status, 200);
}

#[test]
fn parallel_guesses_split_between_two_servers_check_at_most_max_attempts_and_the_lock_survives_a_restart() {
    let mut t = two_servers("");
    let [a, b] = t.ports();
    let wrong: Vec<String> = (0..40).map(|i| format!("{:06}", (i * 7919 + 13) % 1_000_000)).collect();
    let near: Vec<String> = (-3..=3).map(code).collect();
    assert!(wrong.iter().all(|w| !near.contains(w)));
    let prepared: Vec<_> = wrong
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let (s, f) = on_form(if i % 2 == 0 { a } else { b }, "alice", "/totp");
            (s, f, w)
        })
        .collect();
    at_once(prepared);
    let checked = t.logs().matches("event=totp-fail user=alice").count();
    eprintln!("40 wrong codes split between two servers: {checked} checked");
    assert!(checked <= 5, "{checked} wrong codes were checked across both servers");
    let stored = t.s.directory.attr_values(&t.s.directory.user_dn("alice"), "twoFactorFailures");
    let key = std::fs::read(&t.s.key_file).unwrap();
    let keys = twofactor_core::keys::Keys::from_files(&[twofactor_core::secret::Secret::new(key)]).unwrap();
    let alice = twofactor_core::store::signed::Signer::new(&keys, "alice", false);
    assert!(Failures::open(&alice, &stored[0]).unwrap().is_locked(now()));
    // The lock lives in the directory: a restarted server still sees it.
    t.b.restart_with(&protected_body(&t.b.root, &t.s.directory, &t.s.smtp, &t.s.backend, ""));
    for port in [a, t.b.port] {
        let page = Session::direct(port, "alice").follow("/app/");
        assert!(page.text().contains("Account locked"), "{}", page.text());
    }
}

#[test]
fn an_emailed_passcode_works_once_across_two_servers() {
    let t = two_servers("TwoFactorMaxAttempts 20\n");
    let [a, b] = t.ports();
    let mut asker = Session::direct(a, "bob");
    let start = asker.follow("/app/");
    let send = form_where(&start.text(), "/email/send", "purpose", "login");
    let sent = asker.post(&send.action, &send.with(&[]));
    assert_eq!(sent.status, 200, "{}", sent.text());
    let mail = t.s.smtp.wait_for_passcode_mails("bob@example.test", 1, Duration::from_secs(15)).remove(0);
    let passcode = passcode_in(&mail).unwrap();
    // The same code from eight browsers at each server at once.
    let prepared: Vec<_> = (0..AT_ONCE)
        .map(|i| {
            let mut s = Session::direct(if i % 2 == 0 { a } else { b }, "bob");
            s.follow("/app/");
            let page = s.get("/2fa/");
            let send = form_where(&page.text(), "/email/send", "purpose", "login");
            let f = Form { action: "/2fa/email".into(), fields: send.fields };
            (s, f, passcode.clone())
        })
        .collect();
    let statuses = at_once(prepared);
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "{statuses:?}");
}

/// Reads from a site's replica (`TwoFactorLDAPReadURL`), writes on one
/// server (`TwoFactorLDAPURL`): two slapds that do not replicate, so that
/// each operation shows where it went (their operation logs).
#[test]
fn writes_go_to_one_server_and_the_access_check_reads_the_replica() {
    let s = Stack::start(StackOptions {
        gateway: false,
        extra: "TwoFactorCacheTTL 0\n".into(),
        directory: Some(Kind::Slapd),
        ..StackOptions::default()
    });
    let writer = testkit::slapd::Slapd::start_with_stats_log(&s.dir.path().join("writer"));
    let replica = testkit::slapd::Slapd::start_with_stats_log(&s.dir.path().join("replica"));
    let root = s.dir.path().join("split");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&s.key_file, root.join("twofactor.key")).unwrap();
    std::fs::copy(s.protected.root.join("bind.pw"), root.join("bind.pw")).unwrap();
    let extra = format!("TwoFactorCacheTTL 0\nTwoFactorLDAPReadURL {}\n", replica.user_url());
    let body = testkit::stack::slapd_protected_body(&root, &writer, &s.smtp, &s.backend, &extra);
    let split = Apache::start(&root, ApacheOptions::default(), &body);
    let port = split.port;
    let counts = |slapd: &testkit::slapd::Slapd| {
        let log = slapd.log();
        (log.matches(" SRCH base=").count(), log.matches(" MOD dn=").count())
    };

    // A sign-in: written on the writer only (the replica never hears of it).
    let first = testkit::http::Request::get("/app/x").user("alice").browser().send(port);
    assert_eq!(first.status, 303);
    let token = first.header("Location").unwrap().split("r=").nth(1).unwrap().to_string();
    let done = testkit::http::Request::get(&format!("/2fa/__test_complete?r={token}")).user("alice").send(port);
    let cookie = done.set_cookie("TwoFactorSession").unwrap().split(';').next().unwrap().to_string();
    let (_, replica_mods) = counts(&replica);
    assert_eq!(replica_mods, 0, "nothing is written to the replica");
    assert!(counts(&writer).1 > 0, "the completion is written to the writer");

    // The replica has no completion: the writer is asked before a refusal, and lets her in.
    let get = || testkit::http::Request::get("/app/x").user("alice").browser().header("Cookie", &cookie).send(port);
    let (replica_before, writer_before) = (counts(&replica).0, counts(&writer).0);
    assert_eq!(get().status, 200, "a sign-in that has not replicated yet lets the browser in");
    assert_eq!((counts(&replica).0 - replica_before, counts(&writer).0 - writer_before), (1, 1));

    // Once it has "replicated", the replica answers alone.
    let completion = writer.attr_values(&writer.user_dn("alice"), "twoFactorCompletion");
    replica.modify_ldif(&format!(
        "dn: {}\nchangetype: modify\nadd: twoFactorCompletion\ntwoFactorCompletion: {}\n",
        replica.user_dn("alice"),
        completion[0]
    ));
    let (replica_before, writer_before) = (counts(&replica).0, counts(&writer).0);
    assert_eq!(get().status, 200);
    assert_eq!((counts(&replica).0 - replica_before, counts(&writer).0 - writer_before), (1, 0));

    // The challenge (a wrong code counted, a passcode mailed) reads and writes the writer only.
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(root.join("httpd.conf"))
        .args(["--no-notify", "enroll", "bob", "--secret", &totp::base32_encode(SEED)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // (The replica's one modify so far is the test's own, just above.)
    let replica_before = counts(&replica);
    let mut b = Session::direct(port, "bob");
    let page = b.follow("/2fa/totp");
    let f = form(&page.text(), "/totp");
    assert_eq!(b.post(&f.action, &f.with(&[("code", "000000")])).status, 200);
    assert_eq!(counts(&replica), replica_before, "the challenge never asked the replica");
    assert!(!writer.attr_values(&writer.user_dn("bob"), "twoFactorFailures").is_empty(), "counted on the writer");
}
