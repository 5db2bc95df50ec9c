//! Passkeys and security keys over plain HTTP against a real Apache and
//! slapd: a software security key (testkit::softkey, P-256) answers the
//! prompts as a browser passes them on, so that every rule is tried where
//! requests arrive, including the answers no page offered, the same answer
//! many times at once, a cloned key and a look-alike origin. The same flows
//! in Chromium with its virtual authenticator are in tests/browser.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::process::Command;
use std::sync::{Arc, Barrier};

use serde_json::Value;
use testkit::passkey_flows::{begin, register, register_at, sign_in, sign_in_answer, sign_in_at};
use testkit::session::{form, list_items, Form, Session};
use testkit::softkey::SoftKey;
use testkit::stack::{Stack, StackOptions};

const ORIGIN: &str = "https://gateway.example.org";
const RP_ID: &str = "gateway.example.org";
/// Below `TwoFactorMaxAttempts 20`: every answer is counted before it is
/// checked, and a lock set by the last allowed one would refuse the winner.
const AT_ONCE: usize = 16;

fn stack(extra: &str) -> Stack {
    let extra = format!(
        "TwoFactorMethods totp email recovery webauthn\n\
         TwoFactorWebAuthnOrigin {ORIGIN}\n\
         TwoFactorEnrollmentProof none\n\
         <Location /app/admin>\n  TwoFactorRequireMethod webauthn\n  TwoFactorMaxAge 5m\n</Location>\n{extra}"
    );
    Stack::start(StackOptions { gateway: false, extra, ..StackOptions::default() })
}

fn key() -> SoftKey {
    SoftKey::new(ORIGIN, RP_ID)
}

fn values(s: &Stack, user: &str, attr: &str) -> Vec<String> {
    s.directory.attr_values(&s.directory.user_dn(user), attr)
}

/// The JSON of a stored value (`s1.MAC.JSON`: its signature is the module's business).
fn payload(stored: &str) -> Value {
    let json = stored.strip_prefix("s1.").and_then(|rest| rest.split_once('.')).map(|(_, json)| json);
    serde_json::from_str(json.unwrap_or_else(|| panic!("not a signed value: {stored}"))).unwrap()
}

/// The `href` of the link with this id.
fn link(html: &str, id: &str) -> String {
    let tag =
        html.split("<a ").find(|t| t.contains(&format!("id=\"{id}\""))).unwrap_or_else(|| panic!("no #{id}:\n{html}"));
    let href = tag.split("href=\"").nth(1).unwrap().split('"').next().unwrap();
    href.replace("&amp;", "&")
}

/// Options of a prompt that no server made.
fn stray_options() -> Value {
    serde_json::json!({ "publicKey": { "challenge": "c3RyYXktY2hhbGxlbmdl" } })
}

#[test]
fn a_security_key_registers_signs_in_and_lists_in_twofactorctl() {
    let s = stack("");
    let port = s.protected.port;
    let mut b = Session::direct(port, "bob");
    let start = b.follow("/app/page");
    let add = link(&start.text(), "add-passkey");

    let mut yubikey = key();
    let added = register_at(&mut b, &mut yubikey, "YubiKey 5C", &add);
    let html = added.text();
    assert_eq!(added.status, 200, "{html}");
    assert!(html.contains("<h1>Passkey added</h1>") && html.contains("YubiKey 5C"), "{html}");
    // A first factor comes with recovery codes; the key itself signs in next.
    assert_eq!(list_items(&html, "recovery-codes").len(), 10, "{html}");
    let next = link(&html, "continue");
    assert!(next.starts_with("/2fa/webauthn?r="), "{html}");
    assert_eq!(values(&s, "bob", "twoFactorWebAuthn").len(), 1);
    assert!(values(&s, "bob", "twoFactorWebAuthnPending").is_empty(), "the prompt is used up");
    assert!(values(&s, "bob", "twoFactorCompletion").is_empty(), "registering is no sign-in");
    s.protected.wait_for_error_log("event=enrolled user=bob method=webauthn");

    // Until it signs in, the application stays closed.
    assert_eq!(b.get("/app/page").status, 303);
    let done = sign_in_at(&mut b, &mut yubikey, &next);
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(done.header("Location"), Some("/app/page"));
    assert_eq!(b.get("/app/page").status, 200);
    s.protected.wait_for_error_log("event=webauthn-ok user=bob");
    let completion = payload(&values(&s, "bob", "twoFactorCompletion")[0]);
    assert_eq!(completion["m"], "webauthn");

    // A second key, after that recent sign-in with the first.
    let mut phone = key();
    let second = register(&mut b, &mut phone, "Phone");
    assert!(second.text().contains("<h1>Passkey added</h1>"), "{}", second.text());
    assert!(list_items(&second.text(), "recovery-codes").is_empty(), "codes only with a first factor");

    let conf = s.protected.root.join("httpd.conf");
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl")).arg("-f").arg(&conf).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, listed) = ctl(&["--json", "webauthn", "bob"]);
    assert_eq!(code, Some(0), "{listed}");
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["YubiKey 5C", "Phone"]);
    assert_ne!(listed[0]["last_used"], "never");
    assert_eq!(listed[1]["last_used"], "never");
    let (_, status) = ctl(&["status", "bob"]);
    assert!(status.contains("passkeys:       2") && status.contains("YubiKey 5C"), "{status}");

    // Removed: the phone no longer signs in.
    let phone_id = listed[1]["id"].as_str().unwrap().to_string();
    let (code, out) = ctl(&["webauthn", "bob", "remove", &phone_id]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ctl(&["webauthn", "bob", "remove", &phone_id]).0, Some(3), "gone");
    let mut other = Session::direct(port, "bob");
    let page = other.follow("/app/");
    let f = form(&page.text(), "/webauthn");
    let (status, options) = begin(&mut other, &f, "sign-in", &[]);
    assert_eq!(status, 200);
    let allowed: Vec<&str> = options["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(!allowed.contains(&phone_id.as_str()) && allowed.len() == 1, "{options}");
    let refused = other.post(&f.action, &f.replacing(&[("credential", &phone.sign(&options))]));
    assert_eq!(refused.status, 200);
    assert!(refused.text().contains("not accepted"), "{}", refused.text());
}

/// One browser's form with `answer`, posted `n` times at once (its cookies
/// on every copy); the statuses.
fn post_at_once(b: &Session, f: &Form, answer: &str, n: usize) -> Vec<u16> {
    let fields: Vec<(String, String)> =
        f.replacing(&[("credential", answer)]).into_iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, fields, action) = (barrier.clone(), fields.clone(), f.action.clone());
            let mut copy = Session { port: b.port, headers: b.headers.clone(), cookies: b.cookies.clone() };
            std::thread::spawn(move || {
                let refs: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                barrier.wait();
                copy.post(&action, &refs).status
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn many_concurrent_answers_to_one_prompt_let_in_once() {
    let s = stack("TwoFactorMaxAttempts 20\n");
    let mut b = Session::direct(s.protected.port, "carol");
    let mut k = key();
    assert_eq!(register(&mut b, &mut k, "Key").status, 200);
    let page = b.follow("/2fa/webauthn");
    let (f, answer) = sign_in_answer(&mut b, &mut k, &page.text());
    let statuses = post_at_once(&b, &f, &answer, AT_ONCE);
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), AT_ONCE - 1, "{statuses:?}");
    assert_eq!(values(&s, "carol", "twoFactorCompletion").len(), 1);
    // The stored counter moved once.
    let stored = payload(&values(&s, "carol", "twoFactorWebAuthn")[0]);
    assert_eq!(stored["k"]["counter"], 2);
}

#[test]
fn answers_no_page_offered_are_refused_where_they_arrive() {
    let s = stack("");
    let port = s.protected.port;
    // alice holds a key, but has not signed in with it in this browser:
    // another key cannot be added (the rules of §3), whatever is posted.
    let mut first = Session::direct(port, "alice");
    let mut k = key();
    assert_eq!(register(&mut first, &mut k, "Key").status, 200);
    let mut b = Session::direct(port, "alice");
    let page = b.follow("/app/");
    let f = form(&page.text(), "/webauthn");
    let (status, json) = begin(&mut b, &f, "register", &[("name", "Mine")]);
    assert_eq!(status, 403, "{json}");
    let refused = b.post("/2fa/webauthn/register", &f.replacing(&[("credential", &key().register(&stray_options()))]));
    assert!(refused.text().contains("Sign in with it"), "{}", refused.text());
    s.protected.wait_for_error_log("reason=enrollment-needs-recent-factor user=alice");
    assert_eq!(values(&s, "alice", "twoFactorWebAuthn").len(), 1);

    // An answer without a prompt of this browser is not even checked.
    let stray = b.post(&f.action, &f.replacing(&[("credential", &k.sign(&stray_options()))]));
    assert!(stray.text().contains("expired or was answered already"), "{}", stray.text());
    assert!(values(&s, "alice", "twoFactorFailures").is_empty(), "not counted");
    // Another browser's prompt is not this one's.
    let their_form = form(&first.follow("/2fa/webauthn").text(), "/webauthn");
    let (_, options) = begin(&mut first, &their_form, "sign-in", &[]);
    let theirs = b.post(&f.action, &f.replacing(&[("credential", &k.sign(&options))]));
    assert!(theirs.text().contains("expired or was answered already"), "{}", theirs.text());
    // Nonsense, and forms without the CSRF token.
    assert_eq!(begin(&mut b, &f, "enroll-everyone", &[]).0, 400);
    let no_csrf: Vec<(&str, &str)> = f.with(&[]).into_iter().filter(|(n, _)| *n != "csrf").collect();
    assert_eq!(b.post("/2fa/webauthn/begin", &no_csrf).status, 403);
    assert_eq!(b.get("/2fa/webauthn/begin").status, 405);
    // The script is the handler's own, behind the identity check like every page.
    let script = b.get("/2fa/webauthn.js");
    assert_eq!(script.status, 200);
    assert!(script.header("Content-Type").unwrap().starts_with("text/javascript"));
    assert!(script.text().contains("navigator.credentials"));
    let page = b.get("/2fa/webauthn");
    let csp = page.header("Content-Security-Policy").unwrap();
    let scripts = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src")).unwrap();
    assert_eq!(scripts, "script-src 'self'", "{csp}");
}

#[test]
fn a_cloned_key_a_look_alike_origin_and_a_stale_answer_are_refused_and_counted() {
    let s = stack("TwoFactorMaxAttempts 3\n");
    let port = s.protected.port;
    let mut b = Session::direct(port, "bob");
    let mut k = key();
    assert_eq!(register(&mut b, &mut k, "Key").status, 200);
    assert_eq!(sign_in(&mut b, &mut k).status, 303);

    // A copy of the key, made before these sign-ins: its counter is behind.
    let mut b = Session::direct(port, "bob");
    let mut clone = k.copy(0);
    let cloned = sign_in(&mut b, &mut clone);
    assert_eq!(cloned.status, 200);
    assert!(cloned.text().contains("not accepted. 2 attempts left"), "{}", cloned.text());
    s.protected.wait_for_error_log("event=webauthn-clone user=bob reason=counter-regressed");

    // A look-alike page's answer: the browser wrote that page's origin.
    k.origin = format!("{ORIGIN}.evil.test");
    let phished = sign_in(&mut b, &mut k);
    assert!(phished.text().contains("1 attempt left"), "{}", phished.text());
    s.protected.wait_for_error_log("event=webauthn-fail user=bob reason=wrong-origin failures=2");
    k.origin = ORIGIN.into();

    // An answer to an earlier prompt, replayed after a new one started.
    let page = b.follow("/2fa/webauthn");
    let (f, old) = sign_in_answer(&mut b, &mut k, &page.text());
    let _newer = begin(&mut b, &f, "sign-in", &[]);
    let replayed = b.post(&f.action, &f.replacing(&[("credential", &old)]));
    assert!(replayed.text().contains("<h1>Account locked</h1>"), "{}", replayed.text());
    s.protected.wait_for_error_log("event=webauthn-fail user=bob reason=wrong-challenge failures=3");
    // Locked: even the right key waits now.
    assert!(b.follow("/2fa/webauthn").text().contains("<h1>Account locked</h1>"));
}

#[test]
fn step_up_to_a_passkey_for_one_location_and_back_to_the_page() {
    // Besides /app/admin: a directory whose index page (a subrequest of
    // /docs/) needs a passkey.
    let s = stack(
        "<Location /docs>\n  TwoFactor On\n</Location>\n\
         <Location /docs/index.html>\n  TwoFactorRequireMethod webauthn\n</Location>\n",
    );
    let docs = s.protected.root.join("htdocs/docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("index.html"), "<p>INDEX-FOR-PASSKEYS</p>\n").unwrap();
    let port = s.protected.port;
    let mut enrolling = Session::direct(port, "alice");
    let mut k = key();
    let added = register(&mut enrolling, &mut k, "Key");
    let codes = list_items(&added.text(), "recovery-codes");

    // Signed in with a recovery code: the application opens, /app/admin does not.
    let mut b = Session::direct(port, "alice");
    b.follow("/app/");
    let page = b.follow("/2fa/recovery");
    let f = form(&page.text(), "/recovery");
    assert_eq!(b.post(&f.action, &f.with(&[("code", &codes[0])])).status, 303);
    assert_eq!(b.get("/app/report").status, 200);
    assert!(!b.get("/docs/").text().contains("INDEX-FOR-PASSKEYS"), "the index subrequest needs a passkey");
    let admin = b.get("/app/admin/users");
    assert_eq!(admin.status, 303);
    s.protected.wait_for_error_log("event=challenge user=alice reason=step-up");
    // The challenge offers the passkey only, and says why.
    let step_up = b.follow(admin.header("Location").unwrap());
    let html = step_up.text();
    assert!(html.contains("asks for a recent sign-in with a passkey or security key"), "{html}");
    assert!(!html.contains("/2fa/recovery") && !html.contains("value=\"login\""), "{html}");
    // A recovery code posted there anyway is not even checked.
    let r = form(&html, "/webauthn").field("r").unwrap().to_string();
    let recovery_page = b.get(&format!("/2fa/recovery?r={r}"));
    let rf = form(&recovery_page.text(), "/recovery");
    let refused = b.post(&rf.action, &rf.with(&[("code", &codes[1])]));
    assert_eq!(refused.status, 200);
    assert_eq!(values(&s, "alice", "twoFactorRecovery").len(), 9, "the second code is unused");
    // A form posted to the admin area without the step-up: 403, never replayed.
    let post = b.post("/app/admin/users", &[("delete", "everyone")]);
    assert_eq!(post.status, 403);
    assert!(post.text().contains("Stronger sign-in required"), "{}", post.text());

    // The passkey, and back to the admin page.
    let (f, answer) = sign_in_answer(&mut b, &mut k, &html);
    let done = b.post(&f.action, &f.replacing(&[("credential", &answer)]));
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(done.header("Location"), Some("/app/admin/users"));
    assert_eq!(b.get("/app/admin/users").status, 200);
    assert_eq!(b.post("/app/admin/users", &[("delete", "nobody")]).status, 200);
    assert_eq!(b.get("/app/report").status, 200, "a passkey completion opens everything");
    // The subrequest of the index inherits how the request was let in.
    let index = b.get("/docs/");
    assert!(index.status == 200 && index.text().contains("INDEX-FOR-PASSKEYS"), "{}", index.text());
}

#[test]
fn a_user_with_a_passkey_and_an_authenticator_app_is_offered_the_passkey_first_and_keeps_the_app() {
    use twofactor_core::config::Algorithm;
    use twofactor_core::totp::{self, TotpParams};
    let s = stack("");
    let seed = b"12345678901234567890";
    let conf = s.protected.root.join("httpd.conf");
    let secret = totp::base32_encode(seed);
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(&conf)
        .args(["--no-notify", "enroll", "alice", "--secret", &secret])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let params = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
    let code = totp::totp(seed, params, twofactor_core::clock::now()).unwrap();

    // The app signs in; right after, a passkey is added.
    let mut b = Session::direct(s.protected.port, "alice");
    let page = b.follow("/app/");
    let f = form(&page.text(), "/totp");
    assert_eq!(b.post(&f.action, &f.with(&[("code", &code)])).status, 303);
    let mut k = key();
    assert!(register(&mut b, &mut k, "Key").text().contains("<h1>Passkey added</h1>"));

    // Next session: the passkey prompt first, the app one link away, and a
    // wrong code keeps the app's form.
    let mut b = Session::direct(s.protected.port, "alice");
    let page = b.follow("/app/");
    assert!(page.text().contains("id=\"webauthn\""), "{}", page.text());
    let app = b.get(&link(&page.text(), "use-totp"));
    let f = form(&app.text(), "/totp");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let again = b.post(&f.action, &f.with(&[("code", wrong)]));
    assert!(again.text().contains("That code is not right"), "{}", again.text());
    assert!(again.text().contains("action=\"/2fa/totp\""), "{}", again.text());
    assert!(again.text().contains("id=\"use-passkey\""), "{}", again.text());
}

#[test]
fn forty_answers_at_once_are_checked_once_and_never_beyond_the_attempt_limit() {
    // More answers than TwoFactorMaxAttempts: the lock may land before the
    // one answer that passes the prompt is recorded, so at most one gets in.
    let s = stack("TwoFactorMaxAttempts 20\n");
    let mut b = Session::direct(s.protected.port, "carol");
    let mut k = key();
    assert_eq!(register(&mut b, &mut k, "Key").status, 200);
    let page = b.follow("/2fa/webauthn");
    let (f, answer) = sign_in_answer(&mut b, &mut k, &page.text());
    let statuses = post_at_once(&b, &f, &answer, 40);
    let admitted = statuses.iter().filter(|s| **s == 303).count();
    assert!(admitted <= 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [200, 303, 403, 503].contains(s)), "{statuses:?}");
    assert_eq!(values(&s, "carol", "twoFactorCompletion").len(), admitted);
    // Only one answer passed the prompt; the rest were refused unchecked:
    // the prompt used up (counted), or already gone when they looked (not).
    let log = s.protected.error_log();
    let fails: Vec<&str> = log.lines().filter(|l| l.contains("event=webauthn-fail user=carol")).collect();
    let unchecked = |l: &&str| l.contains("reason=replayed") || l.contains("reason=no-pending-prompt");
    assert!(fails.iter().all(unchecked), "{fails:#?}");
    let counted = fails.iter().filter(|l| l.contains(" failures=")).count();
    assert!(counted <= 20, "{counted} answers counted past the limit");
    let stored = payload(&values(&s, "carol", "twoFactorWebAuthn")[0]);
    assert!(stored["k"]["counter"].as_u64().unwrap() <= 2, "the counter moved at most once: {stored}");
}
