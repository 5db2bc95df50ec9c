//! The challenge pages in a real browser: headless Chromium emulating a
//! phone (412 x 915), always through the stand-in gateway (Basic
//! credentials on every request, as a user signed in at the gateway), never
//! straight to the protected server. The same flows over raw HTTP, and their
//! hostile cases, are in tests/challenge_flows.rs.
//!
//! Every page a test sees is saved as a full-page screenshot in
//! `test-artifacts/screenshots/<test>/NN-<page>.png` under the repository's
//! root (emptied when the test starts); a failing browser command saves
//! `failure-N.png` and `failure-N.html` there too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::cell::Cell;
use std::fs;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use testkit::browser::{base64_decode, Browser, BrowserOptions};
use testkit::session::{list_items, passcode_in};
use testkit::stack::{Stack, StackOptions, USERS};
use twofactor_core::config::Algorithm;
use twofactor_core::totp::{self, TotpParams};

const SHA1_6_30: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
const PERIOD_MS: u128 = 30_000;
/// A code typed this close to the end of its step may reach the server in
/// the next one: wait for the next step first.
const STEP_MARGIN_MS: u128 = 2_000;
const MAIL_TIMEOUT: Duration = Duration::from_secs(15);

const SESSION_COOKIE: &str = "TwoFactorSession";

// What the user clicks, by what the pages show (src/challenge/pages.rs).
const ENROLL_START: &str = r#"form[action$="/email/send"]:has(input[name="purpose"][value="enroll"]) button"#;
const EMAIL_LOGIN: &str = r#"form[action$="/email/send"]:has(input[name="purpose"][value="login"]) button"#;
const EMAIL_VERIFY: &str = r#"form[action$="/email"] button[type="submit"]"#;
const ENROLL_CONFIRM: &str = r#"form[action$="/enroll"] button[type="submit"]"#;
const TOTP_VERIFY: &str = r#"form[action$="/totp"] button[type="submit"]"#;
const RECOVERY_LINK: &str = r#"a[href*="/recovery"]"#;
const RECOVERY_VERIFY: &str = r#"form[action$="/recovery"] button[type="submit"]"#;

// Page titles (the `<h1>`).
const START: &str = "Second sign-in step";
const CHECK_MAIL: &str = "Check your mail";
const ENROLL: &str = "Set up your second factor";
const ALL_SET: &str = "All set";
const RECOVERY: &str = "Recovery code";
const LOCKED: &str = "Account locked";

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// The code of the current time step, or of the step after `used` when that
/// is later (a step the server accepted is never accepted again). Computed
/// right before it is typed; in the last 2 s of a step, waits for the next
/// one first (time alignment, not a readiness wait).
fn fresh_code(secret: &[u8], used: Option<u64>) -> (u64, String) {
    let into_step = now_ms() % PERIOD_MS;
    if into_step >= PERIOD_MS - STEP_MARGIN_MS {
        std::thread::sleep(Duration::from_millis((PERIOD_MS - into_step) as u64 + 50));
    }
    let current = (now_ms() / PERIOD_MS) as u64;
    let step = used.map_or(current, |u| current.max(u + 1));
    (step, code_at(secret, step))
}

fn code_at(secret: &[u8], step: u64) -> String {
    totp::totp(secret, SHA1_6_30, step * 30).expect("a TOTP code")
}

/// A six-digit code that is none of the codes of the 9 steps around now.
fn wrong_code(secret: &[u8]) -> String {
    let current = (now_ms() / PERIOD_MS) as u64;
    let near: Vec<String> = (current - 4..=current + 4).map(|s| code_at(secret, s)).collect();
    (0..10u32).map(|d| d.to_string().repeat(6)).find(|c| !near.contains(c)).expect("a wrong code")
}

/// One test: its stack (with the gateway), its screenshots, its browsers.
struct Run {
    stack: Stack,
    /// The gateway's host name in URLs: `127.0.0.1`, or `localhost` where
    /// passkeys are used (WebAuthn refuses IP addresses).
    host: &'static str,
    shots: PathBuf,
    shot_count: Cell<u32>,
    browser_count: Cell<u32>,
}

impl Run {
    fn start(test: &str, extra: &str) -> Run {
        Run::start_at(test, extra, "127.0.0.1")
    }

    fn start_at(test: &str, extra: &str, host: &'static str) -> Run {
        let shots = testkit::repo_root().join("test-artifacts/screenshots").join(test);
        let _ = fs::remove_dir_all(&shots);
        fs::create_dir_all(&shots).unwrap_or_else(|e| panic!("create {}: {e}", shots.display()));
        let stack = Stack::start(StackOptions { extra: extra.into(), ..StackOptions::default() });
        Run { stack, host, shots, shot_count: Cell::new(0), browser_count: Cell::new(0) }
    }

    /// A URL at the stand-in gateway.
    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.stack.gateway_port())
    }

    /// A new browser (fresh profile: a new session) signed in at the
    /// gateway as `user`.
    fn browser(&self, user: &str) -> Tab {
        self.browser_with(user, BrowserOptions::default(), true)
    }

    fn browser_with(&self, user: &str, options: BrowserOptions, scripts: bool) -> Tab {
        let n = self.browser_count.get() + 1;
        self.browser_count.set(n);
        let dir = self.stack.dir.path().join(format!("browser-{n}"));
        let browser = Browser::start_with(&dir, Some(&self.shots), options);
        let password = USERS.iter().find(|(u, _)| *u == user).map(|(_, p)| *p).expect("a gateway user");
        browser.set_extra_headers(&[("Authorization", &testkit::http::basic_auth(user, password))]);
        Tab { browser, scripts }
    }

    /// Saves the whole page as the test's next `NN-<page>.png`.
    fn shot(&self, b: &Browser, page: &str) -> PathBuf {
        let n = self.shot_count.get() + 1;
        self.shot_count.set(n);
        let metrics = b.cdp("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let viewport = &metrics["cssLayoutViewport"];
        let width = size["width"].as_f64().unwrap_or(0.0).max(viewport["clientWidth"].as_f64().unwrap_or(0.0));
        let height = size["height"].as_f64().unwrap_or(0.0).max(viewport["clientHeight"].as_f64().unwrap_or(0.0));
        let png = b.cdp(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
            }),
        );
        let png = base64_decode(png["data"].as_str().unwrap_or_default()).expect("a base64 screenshot");
        let path = self.shots.join(format!("{n:02}-{page}.png"));
        fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// How many passcode mails `user` has received.
    fn mails(&self, user: &str) -> usize {
        self.stack.smtp.wait_for_passcode_mails(&format!("{user}@example.test"), 0, MAIL_TIMEOUT).len()
    }

    /// The passcode in the `n`-th passcode mail to `user`.
    fn passcode(&self, n: usize, user: &str) -> String {
        let mails = self.stack.smtp.wait_for_passcode_mails(&format!("{user}@example.test"), n, MAIL_TIMEOUT);
        let mail = &mails[n - 1];
        passcode_in(mail).unwrap_or_else(|| panic!("no passcode in the mail:\n{mail}"))
    }
}

/// A browser whose clicks and typing go through WebDriver, or, with
/// JavaScript disabled, through DevTools input events.
struct Tab {
    browser: Browser,
    scripts: bool,
}

impl Deref for Tab {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl Tab {
    fn click(&self, css: &str) {
        if self.scripts {
            self.browser.click(css)
        } else {
            self.browser.click_native(css)
        }
    }

    fn fill(&self, css: &str, text: &str) {
        if self.scripts {
            self.browser.fill(css, text)
        } else {
            self.browser.type_native(css, text)
        }
    }
}

/// Asserts the page's `<h1>` is `title`.
fn on_page(b: &Browser, title: &str) {
    let h1 = if b.exists("h1") { b.text("h1") } else { String::new() };
    assert_eq!(h1, title, "on {}:\n{}", b.url(), b.source());
}

/// Asserts the browser shows the echo backend's answer to `path` for `user`.
fn on_backend(run: &Run, b: &Browser, path: &str, user: &str) {
    assert_eq!(b.url(), run.url(path));
    let body = b.text("body");
    assert!(body.contains(testkit::backend::MARKER), "not the backend:\n{body}");
    let identity = format!("X-Remote-User: {user}");
    assert!(body.lines().any(|l| l.trim_end() == identity), "{identity} not in:\n{body}");
    assert!(!body.contains(SESSION_COOKIE), "the backend saw the module's cookie:\n{body}");
}

/// The visible error box of the page.
fn error_text(b: &Browser) -> String {
    assert!(b.exists(".error"), "no error on {}:\n{}", b.url(), b.source());
    b.text(".error")
}

/// What an enrollment left: the secret, the step of the code that confirmed
/// it, the recovery codes.
struct Enrolled {
    secret: Vec<u8>,
    step: u64,
    codes: Vec<String>,
}

/// From the protected `path` to the "All set" page: the start page, a mailed
/// passcode as proof, the QR code and secret, a first code. Screenshots of
/// each page.
fn enroll(run: &Run, b: &Tab, user: &str, path: &str) -> Enrolled {
    b.goto(&run.url(path));
    on_page(b, START);
    assert!(b.url().starts_with(&run.url("/2fa/?r=")), "{}", b.url());
    run.shot(b, "start");
    let mails = run.mails(user);
    b.click(ENROLL_START);
    on_page(b, CHECK_MAIL);
    run.shot(b, "check-mail");
    let passcode = run.passcode(mails + 1, user);
    b.fill("#code", &passcode);
    b.click(EMAIL_VERIFY);
    on_page(b, ENROLL);
    assert!(b.exists("svg"), "no QR code:\n{}", b.source());
    let secret_text = b.text("#secret");
    let secret = totp::base32_decode(&secret_text).unwrap_or_else(|| panic!("secret {secret_text:?} is not base32"));
    run.shot(b, "enroll");
    let (step, code) = fresh_code(&secret, None);
    b.fill("#code", &code);
    b.click(ENROLL_CONFIRM);
    on_page(b, ALL_SET);
    let codes = list_items(&b.source(), "recovery-codes");
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert_eq!(b.count("#recovery-codes li"), 10);
    run.shot(b, "all-set");
    Enrolled { secret, step, codes }
}

/// Opens the protected `path` in `b` and expects the TOTP page.
fn totp_page(run: &Run, b: &Browser, path: &str) {
    b.goto(&run.url(path));
    on_page(b, START);
    assert!(b.exists(TOTP_VERIFY), "no TOTP form:\n{}", b.source());
}

#[test]
fn first_visit_enrollment_then_backend_then_second_session() {
    let run = Run::start("first_visit_enrollment_then_backend_then_second_session", "");
    let first = run.browser("alice");
    let enrolled = enroll(&run, &first, "alice", "/app/welcome");
    assert_eq!(first.attribute("#continue", "href").as_deref(), Some("/app/welcome"));
    first.click("#continue");
    on_backend(&run, &first, "/app/welcome", "alice");
    run.shot(&first, "backend");

    let cookie = first.cookie(SESSION_COOKIE).expect("the session cookie");
    assert!(cookie.http_only, "{cookie:?}");
    assert!(cookie.secure, "{cookie:?}");
    assert_eq!(cookie.path, "/", "{cookie:?}");
    assert_eq!(cookie.same_site.as_deref(), Some("Lax"), "{cookie:?}");
    assert_eq!(cookie.expiry, None, "a session cookie: {cookie:?}");
    // WebDriver reports Lax for a cookie without SameSite; DevTools does not.
    let stored = first.all_cookies().into_iter().find(|c| c.name == SESSION_COOKIE).expect("in the jar");
    assert_eq!(stored.same_site.as_deref(), Some("Lax"), "SameSite set explicitly: {stored:?}");

    // A second session of the same user: the authenticator's code.
    let second = run.browser("alice");
    totp_page(&run, &second, "/app/welcome");
    run.shot(&second, "totp");
    assert!(second.cookie(SESSION_COOKIE).is_none_or(|c| c.value != cookie.value));
    // The enrollment used its step: the next one.
    let (_, code) = fresh_code(&enrolled.secret, Some(enrolled.step));
    second.fill("#code", &code);
    second.click(TOTP_VERIFY);
    on_backend(&run, &second, "/app/welcome", "alice");
    run.shot(&second, "backend-second-session");
    let other = second.cookie(SESSION_COOKIE).expect("the second session's cookie");
    assert_ne!(other.value, cookie.value, "each browser has its own session");
}

#[test]
fn email_passcode_login() {
    let run = Run::start("email_passcode_login", "");
    let b = run.browser("bob");
    b.goto(&run.url("/app/welcome"));
    on_page(&b, START);
    assert!(!b.exists(TOTP_VERIFY), "bob has no authenticator:\n{}", b.source());
    run.shot(&b, "start");
    let mails = run.mails("bob");
    b.click(EMAIL_LOGIN);
    on_page(&b, CHECK_MAIL);
    run.shot(&b, "check-mail");
    let passcode = run.passcode(mails + 1, "bob");
    b.fill("#code", &passcode);
    b.click(EMAIL_VERIFY);
    on_backend(&run, &b, "/app/welcome", "bob");
    run.shot(&b, "backend");
    assert!(b.cookie(SESSION_COOKIE).is_some());
}

#[test]
fn recovery_code_login() {
    let run = Run::start("recovery_code_login", "");
    let enrolled = {
        let b = run.browser("alice");
        enroll(&run, &b, "alice", "/app/welcome")
    };
    let code = &enrolled.codes[3];

    let b = run.browser("alice");
    totp_page(&run, &b, "/app/welcome");
    run.shot(&b, "totp");
    b.click(RECOVERY_LINK);
    on_page(&b, RECOVERY);
    run.shot(&b, "recovery");
    b.fill("#code", code);
    b.click(RECOVERY_VERIFY);
    on_backend(&run, &b, "/app/welcome", "alice");
    run.shot(&b, "backend");

    // The same code in yet another browser: refused, and said so.
    let again = run.browser("alice");
    totp_page(&run, &again, "/app/welcome");
    again.click(RECOVERY_LINK);
    on_page(&again, RECOVERY);
    again.fill("#code", code);
    again.click(RECOVERY_VERIFY);
    on_page(&again, RECOVERY);
    let error = error_text(&again);
    assert!(error.contains("That code is not right."), "{error}");
    run.shot(&again, "recovery-code-used-twice");
    again.goto(&run.url("/app/welcome"));
    on_page(&again, START);
}

#[test]
fn lockout_page() {
    let run = Run::start("lockout_page", "TwoFactorMaxAttempts 3\n");
    let enrolled = {
        let b = run.browser("alice");
        enroll(&run, &b, "alice", "/app/welcome")
    };
    let b = run.browser("alice");
    totp_page(&run, &b, "/app/welcome");
    run.shot(&b, "totp");
    for left in [2, 1] {
        b.fill("#code", &wrong_code(&enrolled.secret));
        b.click(TOTP_VERIFY);
        on_page(&b, START);
        let error = error_text(&b);
        let expected = if left == 1 { "1 attempt left".to_string() } else { format!("{left} attempts left") };
        assert!(error.contains(&expected), "{error}");
        run.shot(&b, &format!("wrong-code-{left}-left"));
    }
    b.fill("#code", &wrong_code(&enrolled.secret));
    let before = (now_ms() / 1000) as u64;
    b.click(TOTP_VERIFY);
    let after = (now_ms() / 1000) as u64;
    on_page(&b, LOCKED);
    run.shot(&b, "locked");
    assert!(error_text(&b).contains("Too many wrong codes"), "{}", b.source());
    // Unlocks by itself after TwoFactorAutoUnlock (30m), said in UTC.
    let body = b.text("main");
    let when = (before + 1800..=after + 1800)
        .map(|t| twofactor_core::admin::iso8601(t).replace('T', " ").replace('Z', ""))
        .find(|t| body.contains(&format!("(after {t} UTC)")));
    assert!(when.is_some(), "no unlock time 30 minutes from now:\n{body}");
    assert!(body.contains("You can try again in about 30 minutes"), "{body}");

    // Locked: the protected page leads back to the locked page, even with the right code at hand.
    b.goto(&run.url("/app/welcome"));
    on_page(&b, LOCKED);
}

#[test]
fn pages_are_readable_on_a_phone() {
    let run = Run::start("pages_are_readable_on_a_phone", "");
    // JavaScript off in Blink: the pages must work as plain HTML forms.
    let no_js =
        || BrowserOptions { extra_args: vec!["--blink-settings=scriptEnabled=false".into()], ..Default::default() };
    let first = run.browser_with("alice", no_js(), false);
    first.goto("data:text/html,<title>js-off</title><script>document.title='js-on'</script>");
    assert_eq!(first.title(), "js-off", "JavaScript is not disabled");

    // Through the enrollment; the checks on each page.
    first.goto(&run.url("/app/welcome"));
    on_page(&first, START);
    run.shot(&first, "start");
    check_phone_page(&first, false);
    let mails = run.mails("alice");
    first.click(ENROLL_START);
    on_page(&first, CHECK_MAIL);
    run.shot(&first, "check-mail");
    check_phone_page(&first, true);
    first.fill("#code", &run.passcode(mails + 1, "alice"));
    first.click(EMAIL_VERIFY);
    on_page(&first, ENROLL);
    run.shot(&first, "enroll");
    check_phone_page(&first, true);
    let secret = totp::base32_decode(&first.text("#secret")).expect("a base32 secret");
    let (step, code) = fresh_code(&secret, None);
    first.fill("#code", &code);
    first.click(ENROLL_CONFIRM);
    on_page(&first, ALL_SET);
    run.shot(&first, "all-set");
    check_phone_page(&first, false);
    first.click("#continue");
    on_backend(&run, &first, "/app/welcome", "alice");
    run.shot(&first, "backend");

    // The TOTP page in a second session, also without JavaScript.
    let second = run.browser_with("alice", no_js(), false);
    totp_page(&run, &second, "/app/welcome");
    run.shot(&second, "totp");
    check_phone_page(&second, true);
    let (_, code) = fresh_code(&secret, Some(step));
    second.fill("#code", &code);
    second.click(TOTP_VERIFY);
    on_backend(&run, &second, "/app/welcome", "alice");
    run.shot(&second, "backend-second-session");
}

/// A phone's view: the viewport meta, nothing wider than the 412 px screen,
/// no scripts, and (with `code`) the one-time-code input.
fn check_phone_page(b: &Browser, code: bool) {
    let url = b.url();
    assert!(b.exists(r#"meta[name="viewport"][content*="width=device-width"]"#), "no viewport meta on {url}");
    let layout = b.execute(
        "const w = window.innerWidth; \
         const wide = [...document.querySelectorAll('body *')] \
           .filter(e => e.getBoundingClientRect().right > w + 0.5 || e.getBoundingClientRect().left < -0.5) \
           .map(e => e.tagName + (e.id ? '#' + e.id : '')); \
         const handlers = [...document.querySelectorAll('*')] \
           .flatMap(e => [...e.attributes].map(a => a.name)).filter(n => n.startsWith('on')); \
         return { scrollWidth: document.documentElement.scrollWidth, innerWidth: w, wide, handlers, \
                  scripts: document.scripts.length };",
        json!([]),
    );
    let num = |k: &str| layout[k].as_u64().unwrap_or_else(|| panic!("{k} in {layout}"));
    assert_eq!(num("innerWidth"), 412, "a phone-sized viewport on {url}: {layout}");
    assert!(num("scrollWidth") <= num("innerWidth"), "horizontal scrolling on {url}: {layout}");
    assert_eq!(layout["wide"], json!([]), "elements wider than the screen on {url}: {layout}");
    assert_eq!(num("scripts"), 0, "scripts on {url}");
    assert_eq!(layout["handlers"], json!([]), "inline event handlers on {url}");
    assert!(!b.source().to_ascii_lowercase().contains("<script"), "a <script> on {url}");
    if code {
        assert_eq!(b.attribute("input[name=code]", "autocomplete").as_deref(), Some("one-time-code"), "{url}");
        assert_eq!(b.attribute("input[name=code]", "inputmode").as_deref(), Some("numeric"), "{url}");
        assert_eq!(b.attribute("input[name=code]", "id").as_deref(), Some("code"), "{url}");
        assert_eq!(b.count("label[for=code]"), 1, "the code input has a label on {url}");
    }
}

// ----- passkeys (Chromium's virtual authenticators) -----

/// Passkeys through the gateway's origin, and an admin area that needs one.
const PASSKEYS: &str = "TwoFactorMethods totp email recovery webauthn\n\
                        TwoFactorWebAuthnOrigin http://localhost:{gateway_port}\n\
                        <Location /app/admin>\n  TwoFactorRequireMethod webauthn\n  TwoFactorMaxAge 5m\n</Location>\n";
const PASSKEY_START: &str = "#webauthn-start";
const PASSKEY_ADDED: &str = "Passkey added";
const PASSKEY_REGISTER: &str = "Add a passkey or security key";

/// A virtual authenticator: `internal` (a platform passkey, with user
/// verification) or `usb` (a security key without a PIN).
fn authenticator(b: &Browser, transport: &str, consenting: bool) -> String {
    let internal = transport == "internal";
    b.add_virtual_authenticator(json!({
        "protocol": "ctap2",
        "transport": transport,
        "hasResidentKey": true,
        "hasUserVerification": internal,
        "isUserVerified": internal,
        "isUserConsenting": consenting,
    }))
}

/// Clicks the passkey button and waits for what the script says (the
/// prompt failed, so no page is loaded).
fn prompt_fails(b: &Browser, needle: &str) -> String {
    b.click_in_place(PASSKEY_START);
    let said = || if b.exists("#webauthn-status") { b.text("#webauthn-status") } else { String::new() };
    let shown = testkit::apache::wait_until(Duration::from_secs(20), || said().contains(needle));
    assert!(shown, "the page said {:?}, not {needle:?}", said());
    said()
}

/// From the registration page: a name, the prompt, the "Passkey added" page.
fn register_passkey(run: &Run, b: &Browser, name: &str) {
    on_page(b, PASSKEY_REGISTER);
    b.fill("#name", name);
    b.click(PASSKEY_START);
    on_page(b, PASSKEY_ADDED);
    assert_eq!(b.text("#passkey-name"), name);
    run.shot(b, "passkey-added");
}

#[test]
fn passkey_step_up_from_an_authenticator_app_and_back_to_the_admin_page() {
    let run =
        Run::start_at("passkey_step_up_from_an_authenticator_app_and_back_to_the_admin_page", PASSKEYS, "localhost");
    let b = run.browser("alice");
    authenticator(&b, "internal", true);
    enroll(&run, &b, "alice", "/app/welcome");
    b.click("#continue");
    on_backend(&run, &b, "/app/welcome", "alice");
    // A form posted to the admin area with the authenticator's completion:
    // refused, and never replayed after a step-up.
    let answer = b.execute(
        "return fetch('/app/admin/users', {method: 'POST', body: 'delete=everyone', credentials: 'same-origin'})\
         .then(r => r.text().then(t => [r.status, t]));",
        json!([]),
    );
    assert_eq!(answer[0], json!(403), "{answer}");
    assert!(answer[1].as_str().unwrap().contains("Stronger sign-in required"), "{answer}");

    // The admin area wants a passkey: the challenge says so and offers
    // setting one up (after a mailed code, as the enrollment rules want).
    b.goto(&run.url("/app/admin/"));
    on_page(&b, START);
    assert!(error_text(&b).contains("a passkey or security key"), "{}", b.source());
    assert!(!b.exists(TOTP_VERIFY) && !b.exists(RECOVERY_LINK), "only passkeys count here:\n{}", b.source());
    run.shot(&b, "step-up");
    let mails = run.mails("alice");
    b.click(ENROLL_START);
    let passcode = run.passcode(mails + 1, "alice");
    b.fill("#code", &passcode);
    b.click(EMAIL_VERIFY);
    on_page(&b, ENROLL);
    b.click("#passkey-instead");
    run.shot(&b, "passkey-register");
    register_passkey(&run, &b, "Laptop");
    assert!(!b.exists("#recovery-codes"), "alice has her codes already");

    // Registering proved nothing yet: the new passkey signs in, and the
    // admin page opens.
    b.click("#continue");
    on_page(&b, START);
    assert!(b.exists(PASSKEY_START), "{}", b.source());
    run.shot(&b, "passkey-sign-in");
    b.click(PASSKEY_START);
    on_backend(&run, &b, "/app/admin/", "alice");
    run.stack.protected.wait_for_error_log("event=webauthn-ok user=alice");
}

#[test]
fn passkeys_on_a_desktop_second_key_missing_key_clone_and_no_script() {
    let run = Run::start_at(
        "passkeys_on_a_desktop_second_key_missing_key_clone_and_no_script",
        &format!("{PASSKEYS}TwoFactorEnrollmentProof none\n"),
        "localhost",
    );
    let b = run.browser_with("bob", BrowserOptions::desktop(1280, 900), true);
    let key = authenticator(&b, "usb", true);
    b.goto(&run.url("/app/report"));
    on_page(&b, START);
    b.click("#add-passkey");
    run.shot(&b, "passkey-register-desktop");
    register_passkey(&run, &b, "YubiKey");
    let codes = list_items(&b.source(), "recovery-codes");
    assert_eq!(codes.len(), 10, "a first factor comes with recovery codes");
    b.click("#continue");
    run.shot(&b, "passkey-sign-in-desktop");
    b.click(PASSKEY_START);
    on_backend(&run, &b, "/app/report", "bob");

    // A second key (a phone's passkey), right after signing in with the
    // first, which is put away (a key already registered refuses the prompt).
    let saved = b.authenticator_credentials(&key);
    assert_eq!(saved.len(), 1);
    b.remove_virtual_authenticator(&key);
    let phone = authenticator(&b, "internal", true);
    b.goto(&run.url("/2fa/webauthn/register"));
    assert_eq!(b.count("#passkeys li"), 1);
    register_passkey(&run, &b, "Phone");
    b.goto(&run.url("/2fa/webauthn/register"));
    assert_eq!(b.count("#passkeys li"), 2, "{}", b.source());

    // A device without a passkey of this account: the prompt fails, the
    // page says why and what else there is.
    b.remove_virtual_authenticator(&phone);
    let empty = authenticator(&b, "usb", true);
    b.goto(&run.url("/2fa/webauthn"));
    prompt_fails(&b, "no passkey of this account is on this device");
    run.shot(&b, "passkey-not-on-this-device");
    b.remove_virtual_authenticator(&empty);

    // A copy of the key made before its last sign-ins: refused as a clone.
    let copy = authenticator(&b, "usb", true);
    let mut cloned = saved[0].clone();
    cloned["signCount"] = json!(0);
    b.add_authenticator_credential(&copy, cloned);
    b.goto(&run.url("/2fa/webauthn"));
    b.click(PASSKEY_START);
    assert!(error_text(&b).contains("not accepted"), "{}", b.source());
    run.stack.protected.wait_for_error_log("event=webauthn-clone user=bob");

    // Without JavaScript the prompt cannot run; the page says so, and the
    // recovery codes work as ever.
    let plain = run.browser_with(
        "bob",
        BrowserOptions {
            extra_args: vec!["--blink-settings=scriptEnabled=false".into()],
            ..BrowserOptions::desktop(1280, 900)
        },
        false,
    );
    plain.goto(&run.url("/app/report"));
    on_page(&plain, START);
    assert!(plain.source().contains("Passkeys need JavaScript"), "{}", plain.source());
    run.shot(&plain, "passkey-no-script");
    plain.click(RECOVERY_LINK);
    plain.fill("#code", &codes[0]);
    plain.click(RECOVERY_VERIFY);
    on_backend(&run, &plain, "/app/report", "bob");
}
