//! The challenge over HTTP against real Apache, slapd and smtp-sink:
//! enrollment with an emailed proof, TOTP, emailed passcodes, recovery
//! codes, lockout, and the hostile cases (replay, races, skew, CSRF,
//! hijacked enrollment, mail bombing). The pages in a real browser are in
//! tests/browser.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::apache::ApacheOptions;
use testkit::directory::Kind;
use testkit::session::{element_text, form, form_where, list_items, passcode_in, Session};
use testkit::stack::{Stack, StackOptions};
use twofactor_core::config::Algorithm;
use twofactor_core::keys::Keys;
use twofactor_core::secret::Secret;
use twofactor_core::store::codec::Failures;
use twofactor_core::store::signed::Signer;
use twofactor_core::totp::{self, TotpParams};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn stack(extra: &str) -> Stack {
    Stack::start(StackOptions { gateway: false, extra: extra.into(), ..StackOptions::default() })
}

const SHA1_6_30: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };

/// The code `steps` steps away from now.
fn code(secret: &[u8], steps: i64) -> String {
    let t = (now() as i64 + steps * 30) as u64;
    totp::totp(secret, SHA1_6_30, t).unwrap()
}

/// The `n`-th passcode mail to `to` (security notices are not counted).
fn mail_for(s: &Stack, n: usize, to: &str) -> String {
    let mut mails = s.smtp.wait_for_passcode_mails(to, n, Duration::from_secs(15));
    mails.swap_remove(n - 1)
}

/// The first `n` security notices to `to`, each with its lines joined (the
/// body is wrapped at 72 columns).
fn notices_to(s: &Stack, to: &str, n: usize) -> Vec<String> {
    let mails = s.smtp.wait_for_notices(to, n, Duration::from_secs(15));
    mails.iter().map(|m| m.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

/// Enrolls `user` through the pages (email proof first); returns the
/// secret, the recovery codes and the session that finished.
fn enroll(s: &Stack, user: &str, passcodes_before: usize) -> (Vec<u8>, Vec<String>, Session) {
    let mut b = Session::direct(s.protected.port, user);
    let start = b.follow("/app/report");
    assert_eq!(start.status, 200, "{}", start.text());
    let send = form_where(&start.text(), "/email/send", "purpose", "enroll");
    let sent = b.post(&send.action, &send.with(&[]));
    assert_eq!(sent.status, 200, "{}", sent.text());
    let mail = mail_for(s, passcodes_before + 1, &format!("{user}@example.test"));
    let passcode = passcode_in(&mail).expect("a passcode in the mail");
    let verify = form(&sent.text(), "/email");
    let page = b.post(&verify.action, &verify.with(&[("code", &passcode)]));
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<svg"), "no QR code:\n{}", page.text());
    let secret = totp::base32_decode(&element_text(&page.text(), "secret").unwrap()).unwrap();
    let confirm = form(&page.text(), "/enroll");
    let done = b.post(&confirm.action, &confirm.with(&[("code", &code(&secret, 0))]));
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("All set"), "{}", done.text());
    let codes = list_items(&done.text(), "recovery-codes");
    (secret, codes, b)
}

#[test]
fn enrollment_then_totp_in_a_second_browser() {
    let s = stack("");
    let (secret, codes, mut first) = enroll(&s, "alice", 0);
    assert_eq!(codes.len(), 10);
    // The enrolling browser is in: the continue link goes back where it started.
    let app = first.get("/app/report");
    assert_eq!(app.status, 200, "{}", app.text());
    s.protected.wait_for_error_log("event=enrolled user=alice return=/app/report");

    // A second browser needs the factor again.
    let mut second = Session::direct(s.protected.port, "alice");
    let page = second.follow("/app/other?x=1");
    assert!(page.text().contains("autocomplete=\"one-time-code\""), "{}", page.text());
    assert!(page.text().contains("name=\"code\""));
    let totp_form = form(&page.text(), "/totp");
    // The enrollment used this step: the next one is within the skew.
    let next = code(&secret, 1);
    let ok = second.post(&totp_form.action, &totp_form.with(&[("code", &next)]));
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("Location"), Some("/app/other?x=1"));
    assert_eq!(second.get("/app/other?x=1").status, 200);
    s.protected.wait_for_error_log("event=totp-ok user=alice");

    // Replay of the same code from a third browser.
    let mut third = Session::direct(s.protected.port, "alice");
    let page = third.follow("/app/");
    let f = form(&page.text(), "/totp");
    let again = third.post(&f.action, &f.with(&[("code", &next)]));
    assert_eq!(again.status, 200);
    assert!(again.text().contains("already used"), "{}", again.text());
    s.protected.wait_for_error_log("event=totp-fail user=alice reason=replayed");
}

#[test]
fn codes_outside_the_skew_are_refused_and_inside_accepted() {
    // TwoFactorTOTPSkew 1m with 30 s steps: +-2 steps in, +-3 out.
    let s = stack("TwoFactorMaxAttempts 20\n");
    let (secret, _, _) = enroll(&s, "alice", 0);
    let try_code = |steps: i64| {
        // Codes at the window's edge are judged against the server's clock:
        // keep clear of a step boundary so that both clocks agree on the step.
        while (now() % 30) > 27 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut b = Session::direct(s.protected.port, "alice");
        let page = b.follow("/app/");
        let f = form(&page.text(), "/totp");
        b.post(&f.action, &f.with(&[("code", &code(&secret, steps))])).status
    };
    assert_eq!(try_code(-3), 200, "3 steps behind");
    assert_eq!(try_code(3), 200, "3 steps ahead");
    assert_eq!(try_code(2), 303, "2 steps ahead is inside the skew");
    assert_eq!(try_code(1), 200, "older than the accepted step: replay");
}

/// How many browsers submit one code at once: fewer than
/// `TwoFactorMaxAttempts` (20, its ceiling). The attempt that reaches the
/// maximum with a wrong code locks the account, and that lock may be set
/// before the winner's success is written; the success is then refused
/// with the locked page, as SPEC wants, and the race has no winner.
const AT_ONCE: usize = 16;

#[test]
fn many_concurrent_submissions_of_one_code_succeed_once() {
    let s = stack("TwoFactorMaxAttempts 20\n");
    let (secret, _, _) = enroll(&s, "alice", 0);
    let code = code(&secret, 1);
    let port = s.protected.port;
    // Many browsers, each with its own form, submit together.
    let prepared: Vec<(Session, testkit::session::Form)> = (0..AT_ONCE)
        .map(|_| {
            let mut b = Session::direct(port, "alice");
            let page = b.follow("/app/");
            let f = form(&page.text(), "/totp");
            (b, f)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(prepared.len()));
    let handles: Vec<_> = prepared
        .into_iter()
        .map(|(mut b, f)| {
            let (barrier, code) = (barrier.clone(), code.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b.post(&f.action, &f.with(&[("code", &code)])).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), AT_ONCE - 1, "{statuses:?}");
}

#[test]
fn emailed_passcodes() {
    let s = stack("TwoFactorEmailResendInterval 0\n");
    let port = s.protected.port;
    let mut b = Session::direct(port, "bob");
    let start = b.follow("/app/");
    let login = form_where(&start.text(), "/email/send", "purpose", "login");
    let sent = b.post(&login.action, &login.with(&[]));
    let first = passcode_in(&mail_for(&s, 1, "bob@example.test")).unwrap();
    // A newer code replaces the older one.
    let resend = form(&sent.text(), "/email/send");
    let sent = b.post(&resend.action, &resend.with(&[]));
    let second = passcode_in(&mail_for(&s, 2, "bob@example.test")).unwrap();
    assert_ne!(first, second);
    let verify = form(&sent.text(), "/email");
    let old = b.post(&verify.action, &verify.with(&[("code", &first)]));
    assert_eq!(old.status, 200);
    assert!(old.text().contains("not right"), "{}", old.text());
    // Another user's browser cannot use bob's code.
    let mut other = Session::direct(port, "alice");
    let page = other.follow("/app/");
    let f = form_where(&page.text(), "/email/send", "purpose", "login");
    let other_page = other.post(&f.action, &f.with(&[]));
    let vf = form(&other_page.text(), "/email");
    assert_eq!(other.post(&vf.action, &vf.with(&[("code", &second)])).status, 200);
    // The right one lets bob in, once.
    let ok = b.post(&verify.action, &verify.with(&[("code", &second)]));
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(b.get("/app/").status, 200);
    let again = b.post(&verify.action, &verify.with(&[("code", &second)]));
    assert!(again.text().contains("expired or was already used"), "{}", again.text());
    let mail = mail_for(&s, 2, "bob@example.test");
    assert!(mail.contains("Subject: Your sign-in code for 127.0.0.1"), "{mail}");
    assert!(!mail.contains("http://") && !mail.contains("https://"), "a link in the mail:\n{mail}");
    s.protected.wait_for_error_log("event=email-ok user=bob");
}

#[test]
fn an_expired_passcode_is_refused() {
    let s = stack("");
    let mut b = Session::direct(s.protected.port, "bob");
    let start = b.follow("/app/");
    let f = form_where(&start.text(), "/email/send", "purpose", "login");
    let sent = b.post(&f.action, &f.with(&[]));
    let passcode = passcode_in(&mail_for(&s, 1, "bob@example.test")).unwrap();
    // Ten minutes later (the stored expiry moved into the past).
    let dn = s.directory.user_dn("bob");
    let attr = s.directory.attribute("email-code");
    let stored = s.directory.attr_values(&dn, attr).pop().unwrap();
    let keys = keys(&s);
    let bob = Signer::new(&keys, "bob", false);
    let code = twofactor_core::factors::email::EmailCode::open(&bob, &stored).expect("a genuine passcode value");
    let aged = twofactor_core::factors::email::EmailCode { expires: now() - 1, ..code }.seal(&bob);
    s.directory.modify_ldif(&format!(
        "dn: {dn}\nchangetype: modify\ndelete: {attr}\n{attr}: {stored}\n-\nadd: {attr}\n{attr}: {aged}\n"
    ));
    let v = form(&sent.text(), "/email");
    let r = b.post(&v.action, &v.with(&[("code", &passcode)]));
    assert_eq!(r.status, 200);
    assert!(r.text().contains("not right"), "{}", r.text());
}

#[test]
fn mail_bombing_the_resend_button_sends_one_mail() {
    let s = stack("");
    let mut b = Session::direct(s.protected.port, "bob");
    let start = b.follow("/app/");
    let f = form(&start.text(), "/email/send");
    for _ in 0..10 {
        assert_eq!(b.post(&f.action, &f.with(&[])).status, 200);
    }
    s.smtp.wait_for_messages(1, Duration::from_secs(10));
    // Give a wrongly sent second mail every chance to arrive before counting.
    let throttled = s.protected.wait_for_error_log("event=email-throttled");
    assert!(throttled.matches("event=email-throttled").count() >= 9);
    assert_eq!(s.smtp.messages().len(), 1);
}

#[test]
fn recovery_codes_work_once() {
    let s = stack("");
    let (_, codes, _) = enroll(&s, "alice", 0);
    let mut b = Session::direct(s.protected.port, "alice");
    b.follow("/app/");
    let page = b.get("/2fa/recovery");
    let f = form(&page.text(), "/recovery");
    let ok = b.post(&f.action, &f.with(&[("code", &codes[4].to_uppercase())]));
    assert_eq!(ok.status, 303, "{}", ok.text());
    let mut c = Session::direct(s.protected.port, "alice");
    c.follow("/app/");
    let page = c.get("/2fa/recovery");
    let f = form(&page.text(), "/recovery");
    let again = c.post(&f.action, &f.with(&[("code", &codes[4])]));
    assert_eq!(again.status, 200, "a recovery code works once");
    s.protected.wait_for_error_log("event=recovery-ok user=alice");
    s.protected.wait_for_error_log("event=recovery-fail user=alice");
}

/// Many browsers post one recovery code at the same instant, straight
/// to the handler: one is let in (the code's end, the attempt's end and
/// the completion written once), the others get the form again.
#[test]
fn many_concurrent_submissions_of_one_recovery_code_succeed_once() {
    let s = roomy_stack("TwoFactorMaxAttempts 20\n");
    let (_, codes, _) = enroll(&s, "alice", 0);
    let dn = s.directory.user_dn("alice");
    let (recovery, completion) = (s.directory.attribute("recovery"), s.directory.attribute("completion"));
    let stored_codes = s.directory.attr_values(&dn, recovery).len();
    let completions = s.directory.attr_values(&dn, completion).len();
    let prepared: Vec<(Session, testkit::session::Form)> = (0..AT_ONCE)
        .map(|_| {
            let mut b = Session::direct(s.protected.port, "alice");
            b.follow("/app/");
            let page = b.get("/2fa/recovery");
            let f = form(&page.text(), "/recovery");
            (b, f)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(prepared.len()));
    let handles: Vec<_> = prepared
        .into_iter()
        .map(|(mut b, f)| {
            let (barrier, code) = (barrier.clone(), codes[2].clone());
            std::thread::spawn(move || {
                barrier.wait();
                b.post(&f.action, &f.with(&[("code", &code)])).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), AT_ONCE - 1, "{statuses:?}");
    assert_eq!(s.directory.attr_values(&dn, recovery).len(), stored_codes - 1, "the code is used up once");
    assert_eq!(s.directory.attr_values(&dn, completion).len(), completions + 1, "one completion recorded");
}

#[test]
fn lockout_after_max_attempts_and_auto_unlock() {
    let s = stack("TwoFactorMaxAttempts 3\n");
    let (secret, _, _) = enroll(&s, "alice", 0);
    let mut b = Session::direct(s.protected.port, "alice");
    let page = b.follow("/app/");
    let f = form(&page.text(), "/totp");
    let r1 = b.post(&f.action, &f.with(&[("code", "000000")]));
    assert!(r1.text().contains("2 attempts left"), "{}", r1.text());
    b.post(&f.action, &f.with(&[("code", "000001")]));
    let locked = b.post(&f.action, &f.with(&[("code", "000002")]));
    assert_eq!(locked.status, 403);
    assert!(locked.text().contains("Account locked"), "{}", locked.text());
    s.protected.wait_for_error_log("event=locked user=alice");
    // Locked: even the right code is refused, the app too.
    let right = b.post(&f.action, &f.with(&[("code", &code(&secret, 1))]));
    assert_eq!(right.status, 403);
    assert_eq!(Session::direct(s.protected.port, "alice").get("/app/").status, 303);

    // The lock ends by itself (here: its end moved into the past).
    let failures =
        Failures { count: 3, last: now() - 700, locked_until: Some(now() - 1), pending: 0, generation: u64::MAX / 2 };
    s.directory.set_state("alice", "failures", &[&failures.seal(&Signer::new(&keys(&s), "alice", false))]);
    let page = b.follow("/app/");
    let f = form(&page.text(), "/totp");
    assert_eq!(b.post(&f.action, &f.with(&[("code", &code(&secret, 1))])).status, 303);
    assert_eq!(stored_failures(&s, "alice").count, 0, "a success resets the count");
    s.protected.wait_for_error_log("event=unlocked user=alice reason=lock-expired");
}

#[test]
fn parallel_wrong_guesses_all_count() {
    let s = stack("TwoFactorMaxAttempts 20\n");
    enroll(&s, "alice", 0);
    let port = s.protected.port;
    let prepared: Vec<(Session, testkit::session::Form)> = (0..12)
        .map(|_| {
            let mut b = Session::direct(port, "alice");
            let page = b.follow("/app/");
            (b, form(&page.text(), "/totp"))
        })
        .collect();
    let handles: Vec<_> = prepared
        .into_iter()
        .enumerate()
        .map(|(i, (mut b, f))| {
            std::thread::spawn(move || b.post(&f.action, &f.with(&[("code", &format!("{:06}", 100 + i))])))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(stored_failures(&s, "alice").count, 12, "every wrong guess counted");
}

/// A stack whose protected Apache has two children and enough threads for
/// a burst of 40 submissions to be checked at the same time.
fn roomy_stack(extra: &str) -> Stack {
    let apache = ApacheOptions { threads: 20, servers: 2, ..ApacheOptions::default() };
    Stack::start(StackOptions { gateway: false, extra: extra.into(), apache, directory: None })
}

/// A browser of `user` on the TOTP form.
fn on_totp_form(s: &Stack, user: &str) -> (Session, testkit::session::Form) {
    let mut b = Session::direct(s.protected.port, user);
    let page = b.follow("/app/");
    let f = form(&page.text(), "/totp");
    (b, f)
}

/// Posts `codes` to `/totp` of `user` at once, each from its own browser
/// with its own form; returns the statuses in order.
fn burst(s: &Stack, user: &str, codes: &[String]) -> Vec<u16> {
    let prepared: Vec<_> = codes.iter().map(|_| on_totp_form(s, user)).collect();
    let barrier = Arc::new(Barrier::new(prepared.len()));
    let handles: Vec<_> = prepared
        .into_iter()
        .zip(codes.iter().cloned())
        .map(|((mut b, f), code)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                b.post(&f.action, &f.with(&[("code", &code)])).status
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn stored_failures(s: &Stack, user: &str) -> Failures {
    let stored = s.directory.state(user, "failures");
    let keys = keys(s);
    Failures::open(&Signer::new(&keys, user, false), stored.first().expect("a failures value"))
        .expect("a genuine failures value")
}

fn keys(s: &Stack) -> Keys {
    Keys::from_files(&[Secret::new(std::fs::read(&s.key_file).unwrap())]).unwrap()
}

/// Checked codes, as the operator sees them.
fn totp_failures_logged(s: &Stack, user: &str) -> usize {
    s.protected.error_log().matches(&format!("event=totp-fail user={user} ")).count()
}

#[test]
fn forty_parallel_wrong_codes_check_at_most_max_attempts() {
    let s = roomy_stack("");
    let (secret, _, _) = enroll(&s, "alice", 0);
    let (mut late, late_form) = on_totp_form(&s, "alice");
    let wrong: Vec<String> = (0..40).map(|i| wrong_code(&secret, i)).collect();
    let statuses = burst(&s, "alice", &wrong);
    assert!(statuses.iter().all(|st| *st == 200 || *st == 403), "{statuses:?}");
    s.protected.wait_for_error_log("event=locked user=alice");
    let checked = totp_failures_logged(&s, "alice");
    eprintln!("40 wrong codes at once: {checked} checked, statuses {statuses:?}");
    assert!(checked <= 5, "{checked} wrong codes were checked; TwoFactorMaxAttempts is 5");
    assert!(checked >= 1, "no code was checked at all");
    let failures = stored_failures(&s, "alice");
    assert!(failures.is_locked(now()), "{failures:?}");
    // It stays locked: the right code is refused without being checked.
    let page = Session::direct(s.protected.port, "alice").follow("/app/");
    assert!(page.text().contains("Account locked"), "{}", page.text());
    let right = late.post(&late_form.action, &late_form.with(&[("code", &code(&secret, 1))]));
    assert_eq!(right.status, 403, "{}", right.text());
    assert!(right.text().contains("Account locked"), "{}", right.text());
    assert!(stored_failures(&s, "alice").is_locked(now()));
    assert_eq!(s.directory.state("alice", "completion").len(), 1, "only the enrollment's");
    assert!(!s.protected.error_log().contains("event=unlocked"));
}

#[test]
fn a_right_code_in_a_burst_of_wrong_ones_does_not_lift_the_lock() {
    let s = roomy_stack("");
    let (secret, _, _) = enroll(&s, "alice", 0);
    let (mut late, late_form) = on_totp_form(&s, "alice");
    let mut codes: Vec<String> = (0..39).map(|i| wrong_code(&secret, i)).collect();
    codes.insert(17, code(&secret, 1));
    let statuses = burst(&s, "alice", &codes);
    let successes = statuses.iter().filter(|st| **st == 303).count();
    assert!(successes <= 1, "{statuses:?}");
    s.protected.wait_for_error_log("event=locked user=alice");
    // Without a success, the limit holds exactly. A success that lands
    // before the lock ends the run of wrong codes before it (SPEC §3: a
    // success resets the count), keeping those still in flight counted: at
    // most max - 1 before it and max after it.
    let checked = totp_failures_logged(&s, "alice");
    let bound = if successes == 0 { 5 } else { 9 };
    eprintln!("39 wrong codes and a right one at once: {checked} wrong checked, {successes} success");
    assert!(checked <= bound, "{checked} wrong codes were checked (success: {successes}); TwoFactorMaxAttempts is 5");
    let failures = stored_failures(&s, "alice");
    assert!(failures.is_locked(now()), "the burst ended unlocked: {failures:?}");
    assert!(!s.protected.error_log().contains("event=unlocked"), "a lock was lifted");
    // And stays locked for a browser that tries the next right code.
    let right = late.post(&late_form.action, &late_form.with(&[("code", &code(&secret, 2))]));
    assert_eq!(right.status, 403, "{}", right.text());
    assert!(right.text().contains("Account locked"), "{}", right.text());
    assert!(stored_failures(&s, "alice").is_locked(now()));
}

/// A wrong code for `secret` that is not the code of any step near now.
fn wrong_code(secret: &[u8], i: usize) -> String {
    let near: Vec<String> = (-3..=3).map(|steps| code(secret, steps)).collect();
    (0..).map(|n| format!("{:06}", (i * 7919 + n * 104729 + 123) % 1_000_000)).find(|c| !near.contains(c)).unwrap()
}

#[test]
fn posts_without_a_valid_csrf_token_are_refused() {
    let s = stack("");
    let mut b = Session::direct(s.protected.port, "bob");
    let start = b.follow("/app/");
    let f = form(&start.text(), "/email/send");
    let mut tampered: Vec<(&str, &str)> = f.with(&[]).into_iter().filter(|(n, _)| *n != "csrf").collect();
    assert_eq!(b.post(&f.action, &tampered).status, 403);
    tampered.push(("csrf", "123.abc"));
    assert_eq!(b.post(&f.action, &tampered).status, 403);
    // A token from another browser (other nonce cookie) is refused too.
    let mut other = Session::direct(s.protected.port, "bob");
    other.follow("/app/");
    assert_eq!(other.post(&f.action, &f.with(&[])).status, 403);
    s.protected.wait_for_error_log("event=deny reason=csrf user=bob");
    assert!(s.smtp.messages().is_empty());
}

#[test]
fn enrollment_cannot_be_hijacked_with_the_first_factor_alone() {
    let s = stack("");
    let (_, _, _) = enroll(&s, "alice", 0);
    // Someone with alice's password only: no mail proof, no completion.
    let mut intruder = Session::direct(s.protected.port, "alice");
    intruder.follow("/app/");
    let page = intruder.get("/2fa/enroll");
    assert!(!page.text().contains("<svg"), "a secret was shown:\n{}", page.text());
    assert!(page.text().contains("You already have a second factor. Sign in with it"), "{}", page.text());
    s.protected.wait_for_error_log("event=deny reason=enrollment-needs-recent-factor user=alice");
    // Without mail proof configured, re-enrolling needs the old factor.
    let s2 = stack("TwoFactorEnrollmentProof none\n");
    let mut first = Session::direct(s2.protected.port, "carol");
    first.follow("/app/");
    let page = first.get("/2fa/enroll");
    assert!(page.text().contains("<svg"), "first enrollment without proof:\n{}", page.text());
    let secret = totp::base32_decode(&element_text(&page.text(), "secret").unwrap()).unwrap();
    let f = form(&page.text(), "/enroll");
    assert_eq!(first.post(&f.action, &f.with(&[("code", &code(&secret, 0))])).status, 200);
    let mut intruder = Session::direct(s2.protected.port, "carol");
    intruder.follow("/app/");
    let page = intruder.get("/2fa/enroll");
    assert!(!page.text().contains("<svg"), "re-enrollment without the old factor:\n{}", page.text());
    // A forged pending secret is refused.
    let forged = intruder.post(&f.action, &f.with(&[("code", &code(&secret, 1))]));
    assert_ne!(forged.status, 303);
}

/// SPEC §3: the first factor and the mailbox are not enough to replace an
/// enrolled user's authenticator, whatever the pages offer: the POST
/// handlers refuse the enrollment mail and the enrollment code.
#[test]
fn the_mailbox_alone_cannot_replace_an_authenticator() {
    for config in ["", "TwoFactorMethods totp recovery\n"] {
        let s = stack(config);
        let (secret, _, _) = enroll(&s, "alice", 0);
        let mut intruder = Session::direct(s.protected.port, "alice");
        let page = intruder.follow("/app/");
        assert!(!page.text().contains("set up a new authenticator"), "{}", page.text());
        // The form the page does not offer, posted by hand with the page's CSRF token.
        let any = form(&page.text(), "/totp");
        let sent = intruder.post("/2fa/email/send", &any.with(&[("purpose", "enroll")]));
        assert!(sent.text().contains("You already have a second factor"), "{config}: {}", sent.text());
        s.protected.wait_for_error_log("event=deny reason=enrollment-needs-recent-factor user=alice purpose=enroll");
        if config.is_empty() {
            // A login code from the mailbox, then posted as an enrollment proof.
            let login = form_where(&page.text(), "/email/send", "purpose", "login");
            intruder.post(&login.action, &login.with(&[]));
            let passcode = passcode_in(&mail_for(&s, 2, "alice@example.test")).unwrap();
            let stolen = intruder.post("/2fa/email", &any.with(&[("purpose", "enroll"), ("code", &passcode)]));
            assert!(!stolen.text().contains("<svg"), "a new secret was shown:\n{}", stolen.text());
            assert!(stolen.text().contains("You already have a second factor"), "{}", stolen.text());
        }
        let passcodes = s.smtp.wait_for_passcode_mails("alice@example.test", 0, Duration::ZERO).len();
        assert_eq!(passcodes, if config.is_empty() { 2 } else { 1 }, "{config}: an enrollment mail was sent");
        // The authenticator is the one enrolled.
        let mut b = Session::direct(s.protected.port, "alice");
        let f = form(&b.follow("/app/").text(), "/totp");
        assert_eq!(b.post(&f.action, &f.with(&[("code", &code(&secret, 1))])).status, 303, "{config}");
    }
}

/// A user signed in with the authenticator replaces it (mail proof too);
/// the shown secret works once, the old authenticator and recovery codes
/// stop working, and the user is told by mail each time.
#[test]
fn a_signed_in_user_replaces_the_authenticator_once() {
    let s = stack("");
    let port = s.protected.port;
    let (old, old_codes, _) = enroll(&s, "alice", 0);
    let mut b = Session::direct(port, "alice");
    let f = form(&b.follow("/app/").text(), "/totp");
    assert_eq!(b.post(&f.action, &f.with(&[("code", &code(&old, 1))])).status, 303);
    // Now the start page offers a new authenticator, behind the mail proof.
    let start = b.get("/2fa/");
    let send = form_where(&start.text(), "/email/send", "purpose", "enroll");
    let sent = b.post(&send.action, &send.with(&[]));
    let passcode = passcode_in(&mail_for(&s, 2, "alice@example.test")).unwrap();
    let verify = form(&sent.text(), "/email");
    let page = b.post(&verify.action, &verify.with(&[("code", &passcode)]));
    assert!(page.text().contains("<svg"), "{}", page.text());
    let shown = element_text(&page.text(), "secret").unwrap();
    let new = totp::base32_decode(&shown).unwrap();
    let confirm = form(&page.text(), "/enroll");
    let done = b.post(&confirm.action, &confirm.with(&[("code", &code(&new, 0))]));
    assert!(done.text().contains("All set"), "{}", done.text());
    let new_codes = list_items(&done.text(), "recovery-codes");
    assert_eq!(new_codes.len(), 10);
    // The same form again, with a right or a wrong code: used up, the secret not shown again.
    for again in [code(&new, 1), "000000".to_string()] {
        let r = b.post(&confirm.action, &confirm.with(&[("code", &again)]));
        assert!(!r.text().contains("<svg") && !r.text().contains(&shown), "shown again:\n{}", r.text());
        assert!(r.text().contains("expired or was used already"), "{}", r.text());
    }
    s.protected.wait_for_error_log("event=enroll-fail user=alice reason=no-pending-secret");
    // The old authenticator and recovery codes no longer work; the new ones do.
    let mut other = Session::direct(port, "alice");
    let f = form(&other.follow("/app/").text(), "/totp");
    assert_eq!(other.post(&f.action, &f.with(&[("code", &code(&old, 2))])).status, 200);
    let r = other.get("/2fa/recovery");
    let rf = form(&r.text(), "/recovery");
    assert_eq!(other.post(&rf.action, &rf.with(&[("code", &old_codes[0])])).status, 200);
    assert_eq!(other.post(&f.action, &f.with(&[("code", &code(&new, 2))])).status, 303);
    // Two notices: set up, then replaced; no link, no secret, no code in them.
    let notices = notices_to(&s, "alice@example.test", 2);
    assert!(notices[0].contains("Subject: An authenticator was set up for 127.0.0.1"), "{}", notices[0]);
    assert!(notices[1].contains("Subject: An authenticator was replaced for 127.0.0.1"), "{}", notices[1]);
    assert!(notices[1].contains("10 new recovery codes"), "{}", notices[1]);
    for notice in &notices {
        assert!(!notice.contains("http://") && !notice.contains("https://"), "a link:\n{notice}");
        let secrets = [totp::base32_encode(&old), totp::base32_encode(&new), passcode.clone()];
        for secret in secrets.iter().chain(&old_codes).chain(&new_codes) {
            assert!(!notice.contains(secret.as_str()), "a secret in a notice:\n{notice}");
        }
    }
}

/// Recovery codes used and locks are mailed too, with when and from where;
/// a mail relay that is down is logged and holds nobody up.
#[test]
fn notices_of_a_recovery_code_and_a_lock() {
    let mut s = stack(
        "LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so\n\
         RemoteIPHeader X-Forwarded-For\nRemoteIPInternalProxy 127.0.0.1\nTwoFactorMaxAttempts 2\n",
    );
    let (secret, codes, _) = enroll(&s, "alice", 0);
    let mut b = Session::direct(s.protected.port, "alice");
    b.headers.push(("X-Forwarded-For".into(), "192.0.2.44".into()));
    b.follow("/app/");
    let rf = form(&b.get("/2fa/recovery").text(), "/recovery");
    assert_eq!(b.post(&rf.action, &rf.with(&[("code", &codes[3])])).status, 303);
    let notices = notices_to(&s, "alice@example.test", 2);
    assert!(notices[1].contains("Subject: A recovery code was used"), "{}", notices[1]);
    assert!(notices[1].contains("9 unused codes are left"), "{}", notices[1]);
    assert!(notices[1].contains("UTC, from the address 192.0.2.44."), "{}", notices[1]);
    assert!(notices[1].contains("If it was not you"), "{}", notices[1]);
    // Two wrong codes lock the account: one notice.
    let mut c = Session::direct(s.protected.port, "alice");
    c.headers.push(("X-Forwarded-For".into(), "198.51.100.7".into()));
    let f = form(&c.follow("/app/").text(), "/totp");
    c.post(&f.action, &f.with(&[("code", &wrong_code(&secret, 1))]));
    assert_eq!(c.post(&f.action, &f.with(&[("code", &wrong_code(&secret, 2))])).status, 403);
    let notices = notices_to(&s, "alice@example.test", 3);
    assert!(notices[2].contains("Subject: Your second sign-in step was locked"), "{}", notices[2]);
    assert!(notices[2].contains("locked until ") && notices[2].contains("from the address 198.51.100.7"));
    s.protected.wait_for_error_log("event=notified kind=locked user=alice");

    // The relay goes away: the user's next step is not held up, the failure is logged.
    s.smtp.stop();
    let mut d = Session::direct(s.protected.port, "alice");
    d.follow("/app/");
    let rf = form(&d.get("/2fa/recovery").text(), "/recovery");
    // Locked: the recovery code is refused without being checked, and the lock's notice was sent already.
    assert_eq!(d.post(&rf.action, &rf.with(&[("code", &codes[4])])).status, 403);
    // An administrator unlocks (a count deleted behind the module's back would be a lock).
    let unlock = std::process::Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(s.protected.root.join("httpd.conf"))
        .args(["unlock", "alice"])
        .output()
        .unwrap();
    assert!(unlock.status.success(), "{}", String::from_utf8_lossy(&unlock.stderr));
    let started = std::time::Instant::now();
    assert_eq!(d.post(&rf.action, &rf.with(&[("code", &codes[4])])).status, 303);
    assert!(started.elapsed() < Duration::from_secs(5), "the response waited for the mail relay");
    s.protected.wait_for_error_log("event=smtp-error purpose=notice kind=recovery-used user=alice");
}

/// The end user's address is mod_remoteip's, derived with the gateway as
/// its trusted proxy; without what it derives, enrollment stays closed.
#[test]
fn enrollment_only_from_allowed_networks() {
    let s = stack(
        "LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so\n\
         RemoteIPHeader X-Forwarded-For\nRemoteIPInternalProxy 127.0.0.1\n\
         TwoFactorEnrollmentFrom 10.0.0.0/8\nTwoFactorEnrollmentProof none\n",
    );
    let offered = |forwarded: Option<&str>| {
        let mut b = Session::direct(s.protected.port, "carol");
        if let Some(value) = forwarded {
            b.headers.push(("X-Forwarded-For".into(), value.into()));
        }
        b.follow("/app/");
        b.get("/2fa/enroll").text().contains("<svg")
    };
    assert!(!offered(Some("203.0.113.9")), "from outside the network");
    assert!(offered(Some("10.1.2.3")), "from inside the network");
    // The gateway appends the address it saw: what the client wrote before it does not count.
    assert!(!offered(Some("10.1.2.3, 203.0.113.9")), "a client-written address was believed");
    assert!(offered(Some("203.0.113.9, 10.1.2.3")));
    // No forwarded address at all: the end user is unknown, and the gateway's own address is no end user's.
    assert!(!offered(None), "enrollment without a known end-user address");
    s.protected.wait_for_error_log("event=deny reason=enrollment-not-allowed user=carol");
}

#[test]
fn no_secret_code_or_cookie_reaches_a_log() {
    let s = stack("TwoFactorEmailResendInterval 0\n");
    let (secret, codes, first) = enroll(&s, "alice", 0);
    let mut b = Session::direct(s.protected.port, "alice");
    let page = b.follow("/app/");
    let f = form(&page.text(), "/totp");
    let used = code(&secret, 1);
    b.post(&f.action, &f.with(&[("code", &used)]));
    let mut m = Session::direct(s.protected.port, "bob");
    let page = m.follow("/app/");
    let f = form_where(&page.text(), "/email/send", "purpose", "login");
    m.post(&f.action, &f.with(&[]));
    let passcode = passcode_in(&mail_for(&s, 1, "bob@example.test")).unwrap();

    let mut needles = vec![totp::base32_encode(&secret), used, passcode];
    needles.extend(codes);
    needles.extend(first.cookies.iter().chain(b.cookies.iter()).map(|(_, v)| v.clone()));
    let logs = [s.protected.error_log(), s.protected.access_log(), s.protected.stderr(), s.directory.log()];
    for needle in &needles {
        for log in &logs {
            assert!(!log.contains(needle.as_str()), "a secret value appears in a log");
        }
    }
}

#[test]
fn state_is_written_to_entries_without_the_auxiliary_class() {
    // carol's entry has no twoFactorUser class: the first write adds it.
    let s = stack("");
    let mut b = Session::direct(s.protected.port, "carol");
    let start = b.follow("/app/");
    let f = form_where(&start.text(), "/email/send", "purpose", "login");
    let sent = b.post(&f.action, &f.with(&[]));
    assert_eq!(sent.status, 200, "{}", sent.text());
    let passcode = passcode_in(&mail_for(&s, 1, "carol@example.test")).unwrap();
    let v = form(&sent.text(), "/email");
    let wrong = b.post(&v.action, &v.with(&[("code", "00000000")]));
    assert_eq!(wrong.status, 200, "{}", wrong.text());
    assert_eq!(b.post(&v.action, &v.with(&[("code", &passcode)])).status, 303);
    let classes = s.directory.attr_values(&s.directory.user_dn("carol"), "objectClass");
    match s.directory.kind() {
        Kind::Slapd => assert!(classes.iter().any(|c| c == "twoFactorUser"), "{classes:?}"),
        // AD's own attributes need no class of ours: none is added.
        Kind::SambaAd => assert!(!classes.iter().any(|c| c == "twoFactorUser"), "{classes:?}"),
    }
}
