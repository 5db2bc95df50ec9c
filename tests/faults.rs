//! Faults under load, with real processes: the directory killed, stopped
//! (answering nothing), answering garbage or resetting; a second directory
//! to fail over to; the mail relay down, refusing or slow; a broken key
//! file at a reload; graceful restarts under load. What must hold: no
//! protected 2xx without a valid completion, no child crash, a clear page
//! and log line, and service back by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testkit::apache::{wait_until, ApacheOptions};
use testkit::directory::Kind;
use testkit::http::Request;
use testkit::load::{Load, Sample};
use testkit::stack::{Stack, StackOptions};
use twofactor_core::completion::Presented;
use twofactor_core::keys::Keys;
use twofactor_core::secret::Secret;
use twofactor_core::store::codec::Completion;
use twofactor_core::store::signed::Signer;

const ALICE_COOKIE: &str = "QUxJQ0VBTElDRUFMSUNFQUxJQ0VBTElDRUFMSUNFQUw";
const BOB_COOKIE: &str = "Qk9CQk9CQk9CQk9CQk9CQk9CQk9CQk9CQk9CQk9CQk9";
/// Well-formed, but no completion was ever stored for it.
const FORGED_COOKIE: &str = "Rk9SR0VERk9SR0VERk9SR0VERk9SR0VERk9SR0VERk9";
const DIRECTORY_PAGE: &str = "cannot reach its directory";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Two children of 10 threads, a 2 s directory timeout.
fn fault_stack(extra: &str) -> Stack {
    let apache = ApacheOptions { threads: 10, servers: 2, ..ApacheOptions::default() };
    Stack::start(StackOptions {
        gateway: false,
        extra: format!("TwoFactorLDAPTimeout 2s\n{extra}"),
        apache,
        directory: None,
    })
}

fn store_completion(s: &Stack, uid: &str, cookie: &str) {
    let keys = Keys::from_files(&[Secret::new(std::fs::read(&s.key_file).unwrap())]).unwrap();
    let value = Completion {
        bound: Presented::Cookie(cookie.as_bytes()).bound(&keys),
        issued: now(),
        expires: now() + 3600,
        method: "totp".into(),
    }
    .seal(&Signer::new(&keys, uid, false));
    let attr = s.directory.attribute("completion");
    s.directory
        .modify_ldif(&format!("dn: {}\nchangetype: modify\nadd: {attr}\n{attr}: {value}\n", s.directory.user_dn(uid)));
}

fn with_cookie(path: &str, user: &str, cookie: &str) -> Request {
    Request::get(path).user(user).browser().header("Cookie", &format!("TwoFactorSession={cookie}"))
}

/// The mix of the load, by kind: 0 alice with her completion (cached after
/// its first look-up), 1 a navigation without a cookie (no look-up needed),
/// 2 a navigation with a cookie that has no completion (a look-up every
/// time: misses are never cached), 3 the same as an XHR.
fn mix() -> Vec<Request> {
    vec![
        with_cookie("/app/data", "alice", ALICE_COOKIE),
        Request::get("/app/data").user("bob").browser(),
        with_cookie("/app/data", "bob", FORGED_COOKIE),
        Request::get("/app/data")
            .user("bob")
            .header("X-Requested-With", "XMLHttpRequest")
            .header("Cookie", &format!("TwoFactorSession={FORGED_COOKIE}")),
    ]
}
const ALLOWED: usize = 0;

/// What every sample must satisfy, whatever the directory did: a 2xx only
/// with a valid completion, never a dropped connection or a 500, and a
/// 503 only with the directory page.
fn assert_fail_closed(samples: &[Sample]) {
    assert!(!samples.is_empty());
    for s in samples {
        let ok = matches!((s.kind, s.status), (ALLOWED, 200 | 503) | (1, 303) | (2, 303 | 503) | (3, 401 | 503));
        assert!(ok, "kind {} answered {} after {:?}:\n{}", s.kind, s.status, s.elapsed, s.text());
        if s.status == 503 {
            assert!(s.text().contains(DIRECTORY_PAGE), "a 503 without the directory page:\n{}", s.text());
        }
    }
}

fn assert_no_crash(s: &Stack) {
    let log = s.protected.error_log();
    for bad in ["exit signal", "panicked", "event=internal-error", "AH00052"] {
        assert!(!log.contains(bad), "{bad} in the error log:\n{log}");
    }
}

/// Waits until the load has answered at least `n` more requests (polled).
fn settle(load_started: Instant, what: &str, done: impl Fn() -> bool) -> Duration {
    let ok = wait_until(Duration::from_secs(30), &done);
    assert!(ok, "{what}: not within 30 s");
    load_started.elapsed()
}

/// How long after `from` a request that needs the directory is answered
/// normally again: bob's valid cookie (never cached in this process) lets
/// him in and a cookie without a completion is sent to the challenge.
fn recovery_time(port: u16, from: Instant) -> Duration {
    let back = wait_until(Duration::from_secs(30), || {
        with_cookie("/app/data", "bob", BOB_COOKIE).send(port).status == 200
            && with_cookie("/app/data", "bob", FORGED_COOKIE).send(port).status == 303
    });
    assert!(back, "service did not come back within 30 s");
    from.elapsed()
}

#[test]
fn the_directory_killed_under_load() {
    let mut s = fault_stack("");
    let port = s.protected.port;
    store_completion(&s, "alice", ALICE_COOKIE);
    store_completion(&s, "bob", BOB_COOKIE);
    let load = Load::start(port, mix(), 6);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    s.directory.kill();
    settle(started, "a 503 while the directory is gone", || {
        with_cookie("/app/data", "bob", FORGED_COOKIE).send(port).status == 503
    });
    std::thread::sleep(Duration::from_secs(2));
    s.directory.start_again();
    let restarted = Instant::now();
    let recovery = recovery_time(port, restarted);
    std::thread::sleep(Duration::from_millis(500));
    let samples = load.stop();
    eprintln!("slapd SIGKILL under load: {} requests, back {recovery:?} after the restart", samples.len());
    report(&samples);
    assert_fail_closed(&samples);
    assert!(samples.iter().any(|x| x.status == 503), "the outage was never seen");
    assert!(recovery < Duration::from_secs(5), "service came back {recovery:?} after the restart");
    assert_no_crash(&s);
    let log = s.protected.wait_for_error_log("event=ldap-recovered");
    assert!(log.contains("event=ldap-error reason=unavailable"), "{log}");
}

#[test]
fn the_directory_stopped_under_load() {
    let s = fault_stack("");
    let port = s.protected.port;
    store_completion(&s, "alice", ALICE_COOKIE);
    store_completion(&s, "bob", BOB_COOKIE);
    let load = Load::start(port, mix(), 6);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    s.directory.pause();
    let paused = Instant::now();
    settle(started, "a 503 while the directory answers nothing", || {
        with_cookie("/app/data", "bob", FORGED_COOKIE).send(port).status == 503
    });
    std::thread::sleep(Duration::from_secs(3));
    s.directory.resume();
    let resumed = Instant::now();
    let recovery = recovery_time(port, resumed);
    let samples = load.stop();
    eprintln!("slapd SIGSTOP under load: {} requests, back {recovery:?} after SIGCONT", samples.len());
    report(&samples);
    assert_fail_closed(&samples);
    // Each request that met the stopped directory ended within the
    // timeout (2 s) and a margin.
    let slowest = samples.iter().filter(|x| x.sent >= paused).map(|x| x.elapsed).max().unwrap_or_default();
    assert!(slowest < Duration::from_secs(4), "a request took {slowest:?} (TwoFactorLDAPTimeout 2s)");
    assert!(recovery < Duration::from_secs(5), "service came back {recovery:?} after SIGCONT");
    // No worker is stuck: every thread of both children answers at once.
    let handles: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || with_cookie("/app/data", "bob", BOB_COOKIE).send(port).status))
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|st| *st == 200), "{statuses:?}");
    assert_no_crash(&s);
}

/// Counts per kind and status, for the test's output.
fn report(samples: &[Sample]) {
    let mut counts = std::collections::BTreeMap::new();
    for s in samples {
        *counts.entry((s.kind, s.status)).or_insert(0usize) += 1;
    }
    let slowest = samples.iter().map(|s| s.elapsed).max().unwrap_or_default();
    eprintln!("  (kind, status) -> count: {counts:?}; slowest {slowest:?}");
}

/// Asks for a passcode mail as bob; returns the response.
fn ask_for_a_mail(port: u16) -> testkit::http::Response {
    let mut b = testkit::session::Session::direct(port, "bob");
    let start = b.follow("/app/");
    let send = testkit::session::form_where(&start.text(), "/email/send", "purpose", "login");
    b.post(&send.action, &send.with(&[]))
}

/// The mail relay down, refusing, or hanging: a clear page, one log line
/// per attempt, no passcode stored that was never sent (so the user may
/// ask again at once), and the next attempt works once the relay does.
#[test]
fn the_mail_relay_down_refusing_or_hanging() {
    let s = fault_stack("TwoFactorEmailResendInterval 5m\n");
    let bob = s.directory.user_dn("bob");
    let dir = testkit::process::test_dir("twofactor-smtp-faults");
    let refusing = testkit::smtp::SmtpSink::start_with(dir.path(), &["-f", "RCPT"]);
    let hanging_dir = testkit::process::test_dir("twofactor-smtp-hang");
    let hanging = testkit::smtp::SmtpSink::start_with(hanging_dir.path(), &["-w", "30"]);
    let mut s = s;
    let relays: [(&str, Option<u16>); 3] =
        [("down", None), ("refusing", Some(refusing.port)), ("hanging", Some(hanging.port))];
    s.smtp.stop();
    for (what, relay) in relays {
        if let Some(relay_port) = relay {
            let body = testkit::stack::protected_body(&s.protected.root, &s.directory, &s.smtp, &s.backend, "")
                .replace(&format!("smtp://127.0.0.1:{}", s.smtp.port), &format!("smtp://127.0.0.1:{relay_port}"));
            s.protected.restart_with(&format!("{body}TwoFactorLDAPTimeout 2s\nTwoFactorEmailResendInterval 5m\n"));
        }
        let port = s.protected.port;
        let before = s.protected.error_log().matches("event=smtp-error").count();
        let started = Instant::now();
        for attempt in 0..2 {
            let r = ask_for_a_mail(port);
            assert_eq!(r.status, 503, "{what}, attempt {attempt}: {}", r.text());
            assert!(r.text().contains("Mail could not be sent"), "{what}: {}", r.text());
            // Not "a code was sent moments ago": nothing was stored.
            let kept = s.directory.attr_values(&bob, s.directory.attribute("email-code"));
            assert!(kept.is_empty(), "{what}: a code was kept");
        }
        let log = s.protected.wait_for_error_log("event=smtp-error");
        assert_eq!(log.matches("event=smtp-error").count() - before, 2, "{what}: one line per attempt:\n{log}");
        let took = started.elapsed();
        eprintln!("relay {what}: two attempts answered in {took:?}");
        // A hanging relay is given up after 10 s (the page's whole wait).
        assert!(took < Duration::from_secs(26), "{what}: two attempts took {took:?}");
    }
    // A relay that works again: the next request sends the mail.
    let working = testkit::smtp::SmtpSink::start(testkit::process::test_dir("twofactor-smtp-ok").path());
    let body = testkit::stack::protected_body(&s.protected.root, &s.directory, &working, &s.backend, "");
    s.protected.restart_with(&body);
    assert_eq!(ask_for_a_mail(s.protected.port).status, 200);
    working.wait_for_passcode_mails("bob@example.test", 1, Duration::from_secs(15));
    assert_no_crash(&s);
}

/// The protected server's configuration with `urls` (slapd's, or fake
/// servers') as its directory.
fn body_with_directories(s: &Stack, urls: &[String], extra: &str) -> String {
    let list: Vec<String> = urls.iter().map(|u| format!("{u}/ou=people,dc=example,dc=test?uid?sub")).collect();
    let body = testkit::stack::protected_body(&s.protected.root, &s.directory, &s.smtp, &s.backend, "");
    let lines: Vec<String> = body
        .lines()
        .map(|line| match line.starts_with("TwoFactorLDAPURL ") {
            true => format!("TwoFactorLDAPURL {}", list.join(" ")),
            false => line.to_string(),
        })
        .collect();
    lines.join("\n") + "\nTwoFactorLDAPTimeout 2s\n" + extra
}

/// A directory that sends junk, or dies in the middle of its answer: the
/// request fails closed with the directory page, the child lives on.
#[test]
fn a_directory_that_answers_junk_or_resets_mid_reply() {
    use testkit::fake_ldap::{bind_ok, entry_op, fake_ldap, junk, result_op, FakeServer, Reply, SEARCH_DONE};
    let mut s = fault_stack("");
    let alice = entry_op(b"uid=alice,ou=people,dc=example,dc=test", &[("uid", &[b"alice"])]);
    let fakes = [
        ("junk at once", FakeServer::start(|mut c| drop(std::io::Write::write_all(&mut c, &junk(2000))))),
        ("junk for the search", fake_ldap(bind_ok(), Reply::Junk)),
        ("reset in the bind answer", fake_ldap(Reply::HalfThenReset(vec![result_op(0x61, 0)]), Reply::Silent)),
        (
            "reset in the search answer",
            fake_ldap(bind_ok(), Reply::HalfThenReset(vec![alice, result_op(SEARCH_DONE, 0)])),
        ),
    ];
    for (what, fake) in &fakes {
        let url = format!("ldap://127.0.0.1:{}", fake.port);
        s.protected.restart_with(&body_with_directories(&s, &[url], ""));
        let port = s.protected.port;
        for _ in 0..5 {
            let r = with_cookie("/app/data", "alice", ALICE_COOKIE).send(port);
            assert_eq!(r.status, 503, "{what}: {}", r.text());
            assert!(r.text().contains(DIRECTORY_PAGE), "{what}: {}", r.text());
        }
        assert_eq!(Request::get("/app/data").user("bob").browser().send(port).status, 303, "{what}");
        let log = s.protected.wait_for_error_log("event=ldap-error");
        eprintln!("{what}: {}", log.lines().rev().find(|l| l.contains("event=ldap-error")).unwrap_or_default());
        assert_no_crash(&s);
    }
}

/// Two directories, the first preferred: it dies (under load) and the
/// second carries on without a refusal; it comes back and, once its
/// down-mark ends, service returns to it; it stalls and requests still
/// end within the timeout, answered by the second.
#[test]
fn failover_to_the_second_directory_and_back() {
    if Kind::from_environment() == Kind::SambaAd {
        eprintln!("skipped against Samba AD: this test is about two slapd replicas and their operation logs");
        return;
    }
    let mut s = fault_stack("");
    let first_dir = testkit::process::test_dir("twofactor-first-directory");
    let mut first = testkit::slapd::Slapd::start_with_stats_log(first_dir.path());
    for (slapd, uid, cookie) in [(s.directory.slapd(), "bob", BOB_COOKIE), (&first, "bob", BOB_COOKIE)] {
        let keys = Keys::from_files(&[Secret::new(std::fs::read(&s.key_file).unwrap())]).unwrap();
        let value = Completion {
            bound: Presented::Cookie(cookie.as_bytes()).bound(&keys),
            issued: now(),
            expires: now() + 3600,
            method: "totp".into(),
        }
        .seal(&Signer::new(&keys, uid, false));
        slapd.modify_ldif(&format!(
            "dn: {}\nchangetype: modify\nadd: twoFactorCompletion\ntwoFactorCompletion: {value}\n",
            slapd.user_dn(uid)
        ));
    }
    let second = s.directory.slapd().url.clone();
    let body = body_with_directories(&s, &[first.url.clone(), second], "TwoFactorCacheTTL 0\n");
    s.protected.restart_with(&body);
    let port = s.protected.port;
    let bob = || with_cookie("/app/data", "bob", BOB_COOKIE);
    assert_eq!(bob().send(port).status, 200);
    let searches = |slapd: &testkit::slapd::Slapd| slapd.log().matches(" SRCH base=").count();
    assert!(searches(&first) > 0, "the first directory is the one asked");

    // The first dies under load: the second answers, nobody is refused.
    let mix = vec![bob(), with_cookie("/app/data", "bob", FORGED_COOKIE)];
    let load = Load::start(port, mix.clone(), 4);
    std::thread::sleep(Duration::from_millis(500));
    first.kill();
    std::thread::sleep(Duration::from_secs(2));
    let samples = load.stop();
    report(&samples);
    for x in &samples {
        assert_eq!(
            x.status,
            if x.kind == 0 { 200 } else { 303 },
            "kind {} after {:?}: {}",
            x.kind,
            x.elapsed,
            x.text()
        );
    }

    // It comes back: within its down-mark (30 s) plus a little, the first
    // directory answers again.
    first.start_again();
    let back_at = Instant::now();
    let before = searches(&first);
    let returned = wait_until(Duration::from_secs(45), || {
        assert_eq!(bob().send(port).status, 200);
        searches(&first) > before
    });
    assert!(returned, "service never returned to the first directory");
    eprintln!("returned to the first directory {:?} after it came back", back_at.elapsed());

    // It stalls: each request still ends within the timeout and a margin,
    // answered by the second.
    first.pause();
    let load = Load::start(port, mix, 4);
    std::thread::sleep(Duration::from_secs(4));
    let samples = load.stop();
    first.resume();
    report(&samples);
    for x in &samples {
        assert_eq!(
            x.status,
            if x.kind == 0 { 200 } else { 303 },
            "kind {} after {:?}: {}",
            x.kind,
            x.elapsed,
            x.text()
        );
        assert!(x.elapsed < Duration::from_secs(4), "a request took {:?} (TwoFactorLDAPTimeout 2s)", x.elapsed);
    }
    assert_no_crash(&s);
}

/// A key file replaced by garbage or cut short: `apachectl graceful`
/// refuses the new configuration with a message that names the directive,
/// and the running server keeps serving with the key it has.
#[test]
fn a_broken_key_file_is_refused_at_reload_and_the_server_keeps_serving() {
    let s = fault_stack("");
    let port = s.protected.port;
    store_completion(&s, "alice", ALICE_COOKIE);
    let good = std::fs::read(&s.key_file).unwrap();
    for (what, bytes, message) in [
        ("truncated", good[..16].to_vec(), "TwoFactorSecretKeyFile: "),
        ("empty", Vec::new(), "TwoFactorSecretKeyFile: "),
    ] {
        std::fs::write(&s.key_file, &bytes).unwrap();
        let (ok, out) = s.protected.ctl("graceful");
        assert!(!ok, "{what}: graceful accepted a broken key file:\n{out}");
        assert!(out.contains(message) && out.contains("holds"), "{what}: {out}");
        assert_eq!(with_cookie("/app/data", "alice", ALICE_COOKIE).send(port).status, 200, "{what}");
    }
    // Garbage of the right length is a different key: completions made
    // with the old one no longer open, and nothing crashes.
    std::fs::write(&s.key_file, testkit::stack::random_bytes(32)).unwrap();
    let (ok, out) = s.protected.ctl("graceful");
    assert!(ok, "{out}");
    let answered = wait_until(Duration::from_secs(20), || {
        with_cookie("/app/data", "alice", ALICE_COOKIE).send(port).status == 303
    });
    assert!(answered, "the new key was never used");
    std::fs::write(&s.key_file, &good).unwrap();
    assert_no_crash(&s);
}

/// `apachectl graceful` while a load runs: every request is answered, none
/// with a 5xx, none let in without a completion.
#[test]
fn graceful_restarts_under_load() {
    let s = fault_stack("");
    let port = s.protected.port;
    store_completion(&s, "alice", ALICE_COOKIE);
    let load = Load::start(port, mix(), 6);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let (ok, out) = s.protected.ctl("graceful");
        assert!(ok, "{out}");
    }
    std::thread::sleep(Duration::from_millis(700));
    let samples = load.stop();
    report(&samples);
    assert!(samples.iter().all(|x| x.status != 503), "a 503 without any directory fault");
    assert_fail_closed(&samples);
    let log = s.protected.error_log();
    assert_eq!(log.matches("resuming normal operations").count(), 4, "three graceful restarts:\n{log}");
    assert_no_crash(&s);
}

/// An outage soon after another still writes its line, and each return
/// says how long it lasted and how many requests were refused.
#[test]
fn every_outage_is_told_with_its_end() {
    let apache = ApacheOptions { servers: 1, ..ApacheOptions::default() };
    let mut s = Stack::start(StackOptions {
        gateway: false,
        extra: "TwoFactorLDAPTimeout 2s\n".into(),
        apache,
        directory: None,
    });
    let port = s.protected.port;
    store_completion(&s, "bob", BOB_COOKIE);
    let forged = || with_cookie("/app/data", "bob", FORGED_COOKIE).send(port).status;
    for outage in 1..=2 {
        s.directory.kill();
        for _ in 0..3 {
            assert_eq!(forged(), 503);
        }
        s.directory.start_again();
        assert!(wait_until(Duration::from_secs(10), || forged() == 303), "outage {outage}: no return");
        let log = s.protected.wait_for_error_log("event=ldap-recovered");
        assert_eq!(log.matches("event=ldap-error").count(), outage, "one line per outage:\n{log}");
        let recovered: Vec<&str> = log.lines().filter(|l| l.contains("event=ldap-recovered")).collect();
        assert_eq!(recovered.len(), outage, "{log}");
        let last = recovered[outage - 1];
        assert!(last.contains(" refused=3 ") && last.contains(" down="), "{last}");
    }
}

/// Passcodes over STARTTLS and over SMTPS to a real TLS-capable relay on
/// loopback: delivered when its certificate chains to the configured CA;
/// refused (no mail, a clear page, a log line) under another CA or the
/// system's roots.
#[test]
fn mail_over_starttls_and_smtps_with_the_certificate_verified() {
    use testkit::smtp_tls::{Mode, TlsSmtp};
    let mut s = fault_stack("");
    let dir = testkit::process::test_dir("twofactor-mail-tls");
    let ca = testkit::tls::TestCa::new(&dir.path().join("ca"), "relay CA");
    let cert = ca.server_cert(&dir.path().join("server"), "relay");
    let other = testkit::tls::TestCa::new(&dir.path().join("other"), "another CA");
    for mode in [Mode::StartTls, Mode::Smtps] {
        let relay = TlsSmtp::start(&dir.path().join(format!("{mode:?}")), mode, &cert);
        let url = match mode {
            Mode::StartTls => format!("smtp://127.0.0.1:{}?tls=starttls", relay.port),
            Mode::Smtps => format!("smtps://127.0.0.1:{}", relay.port),
        };
        let plain = format!("smtp://127.0.0.1:{}", s.smtp.port);
        for (trust, delivered) in [(Some(&ca.cert), true), (Some(&other.cert), false), (None, false)] {
            let body = testkit::stack::protected_body(&s.protected.root, &s.directory, &s.smtp, &s.backend, "")
                .replace(&plain, &url);
            let ca_line = trust.map(|c| format!("TwoFactorSMTPCACertificate {}\n", c.display())).unwrap_or_default();
            s.protected.restart_with(&format!("{body}{ca_line}TwoFactorEmailResendInterval 0\n"));
            let before = relay.messages().len();
            let r = ask_for_a_mail(s.protected.port);
            let what = format!("{mode:?} with {trust:?}");
            if delivered {
                assert_eq!(r.status, 200, "{what}: {}", r.text());
                let mails = relay.messages();
                assert_eq!(mails.len(), before + 1, "{what}");
                let mail = mails.last().unwrap();
                assert!(
                    mail.contains("To: bob@example.test") && testkit::session::passcode_in(mail).is_some(),
                    "{mail}"
                );
            } else {
                assert_eq!(r.status, 503, "{what}: {}", r.text());
                assert!(r.text().contains("Mail could not be sent"), "{what}");
                assert_eq!(relay.messages().len(), before, "{what}: a mail got through");
                let log = s.protected.wait_for_error_log("event=smtp-error");
                let line = log.lines().rev().find(|l| l.contains("event=smtp-error")).unwrap_or_default();
                eprintln!("{what}: {line}");
            }
        }
    }
    assert_no_crash(&s);
}
