//! Self-tests of `testkit::browser`: headless Chromium through chromedriver
//! against a plain Apache (no module) and the echo backend.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use testkit::apache::{wait_until, Apache, ApacheOptions};
use testkit::backend::{seen_header, EchoBackend, MARKER};
use testkit::browser::{Browser, BrowserOptions};
use testkit::http::basic_auth;
use testkit::process::test_dir;

const FORM_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Enter code</title></head>
<body>
<h1 id="heading">Enter your code</h1>
<form id="challenge" method="get" action="/result.html">
  <label>Code <input name="code" id="code" autocomplete="one-time-code" inputmode="numeric"></label>
  <button type="submit" id="verify">Verify</button>
</form>
</body></html>
"#;

const RESULT_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Result</title></head>
<body>
<p id="done">Submitted</p>
<form id="again" method="post" action="/result.html"><button type="submit" id="post">Post here</button></form>
</body></html>
"#;

/// A plain Apache serving the two pages. The form page sets a plain cookie
/// and one with the attributes the module uses; a separate log records
/// the `Cookie`, `X-Test` and `Authorization` headers of every request.
fn start_site(root: &Path) -> Apache {
    let htdocs = root.join("htdocs");
    fs::create_dir_all(&htdocs).expect("htdocs");
    fs::write(htdocs.join("form.html"), FORM_PAGE).expect("form.html");
    fs::write(htdocs.join("result.html"), RESULT_PAGE).expect("result.html");
    let body = format!(
        r#"<Location /form.html>
  Header always set Set-Cookie "t=1; Path=/"
  Header always add Set-Cookie "s=2; Path=/; HttpOnly; Secure; SameSite=Lax"
  Header always add Set-Cookie "p=3; Path=/private/; Max-Age=600"
</Location>
LogFormat "%m %U cookie=[%{{Cookie}}i] x-test=[%{{X-Test}}i] auth=[%{{Authorization}}i]" seen
CustomLog {}/seen.log seen
"#,
        root.display()
    );
    Apache::start(root, ApacheOptions { with_module: false, ..Default::default() }, &body)
}

fn seen_log(apache: &Apache) -> String {
    fs::read_to_string(apache.root.join("seen.log")).unwrap_or_default()
}

/// Waits for a line of the request log containing every needle.
fn wait_for_seen(apache: &Apache, needles: &[&str]) -> String {
    let mut line = None;
    let found = wait_until(Duration::from_secs(10), || {
        line = seen_log(apache).lines().find(|l| needles.iter().all(|n| l.contains(n))).map(String::from);
        line.is_some()
    });
    assert!(found, "no request log line with {needles:?}:\n{}", seen_log(apache));
    line.unwrap_or_default()
}

/// Processes (not zombies) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn form_submission_cookies_headers_and_screenshot() {
    let dir = test_dir("selftest-browser-");
    let apache = start_site(&dir.path().join("apache"));
    let echo = EchoBackend::start();
    let artifacts = dir.path().join("artifacts");
    let browser_dir = dir.path().join("browser");
    let browser = Browser::start(&browser_dir, Some(&artifacts));
    eprintln!("browser started in {:?}", browser.startup_time());
    assert!(browser.startup_time() < Duration::from_secs(10), "slow start: {:?}", browser.startup_time());
    let base = format!("http://127.0.0.1:{}", apache.port);

    // Extra headers go with every request of the tab, navigations included.
    let auth = basic_auth("alice", "secret");
    browser.set_extra_headers(&[("X-Test", "hello"), ("Authorization", &auth)]);

    browser.goto(&format!("{base}/form.html"));
    assert_eq!(browser.url(), format!("{base}/form.html"));
    assert_eq!(browser.title(), "Enter code");
    assert_eq!(browser.text("#heading"), "Enter your code");
    assert_eq!(browser.attribute("#code", "name").as_deref(), Some("code"));
    assert_eq!(browser.attribute("#code", "autocomplete").as_deref(), Some("one-time-code"));
    assert_eq!(browser.attribute("#code", "no-such-attribute"), None);
    assert!(browser.exists("form#challenge"));
    assert!(!browser.exists("#nothing-here"));
    assert!(browser.source().contains(r#"<form id="challenge""#));
    // The window is phone-sized.
    let viewport = browser.execute("return [window.innerWidth, window.innerHeight];", serde_json::json!([]));
    eprintln!("viewport {viewport}");
    assert_eq!(viewport, serde_json::json!([412, 915]));

    // The two cookies of path / are visible here; the Secure one is stored
    // too, over plain http://127.0.0.1.
    let mut cookies = browser.cookies();
    cookies.sort();
    assert_eq!(cookies, [("s".to_string(), "2".to_string()), ("t".to_string(), "1".to_string())]);
    let s = browser.cookie("s").expect("cookie s");
    assert!(s.secure && s.http_only, "{s:?}");
    assert_eq!((s.same_site.as_deref(), s.path.as_str(), s.domain.as_str()), (Some("Lax"), "/", "127.0.0.1"));
    let t = browser.cookie("t").expect("cookie t");
    assert!(!t.secure && !t.http_only, "{t:?}");
    // all_cookies sees those of other paths too.
    let mut all = browser.all_cookies();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["p", "s", "t"]);
    assert_eq!((all[0].path.as_str(), all[0].same_site.as_deref()), ("/private/", None));
    assert!(all[0].expiry.is_some() && all[2].expiry.is_none(), "{all:?}");
    assert!(all[1].secure && all[1].http_only && all[1].same_site.as_deref() == Some("Lax"), "{all:?}");
    // HttpOnly: not visible to scripts.
    assert_eq!(browser.execute("return document.cookie;", serde_json::json!([])), "t=1");

    // Fill and click: the click waits for the new document.
    browser.fill("#code", "wrong");
    browser.fill("#code", "123456");
    assert_eq!(browser.value("#code"), "123456");
    browser.click("#verify");
    assert_eq!(browser.url(), format!("{base}/result.html?code=123456"));
    assert_eq!(browser.text("#done"), "Submitted");

    // The request carried both cookies (the Secure one over plain http),
    // and the extra headers.
    let line = wait_for_seen(&apache, &["GET /result.html"]);
    eprintln!("Apache saw: {line}");
    assert!(line.contains("t=1") && line.contains("s=2"), "{line}");
    assert!(line.contains("x-test=[hello]"), "{line}");
    assert!(line.contains(&format!("auth=[{auth}]")), "{line}");

    // A navigation to the same URL (Apache serves static files to POST
    // too) is a new document: the change made to the old one is gone.
    browser.execute("document.getElementById('done').textContent = 'old document';", serde_json::json!([]));
    browser.click("#post");
    assert_eq!(browser.url(), format!("{base}/result.html"));
    assert_eq!(browser.text("#done"), "Submitted");
    wait_for_seen(&apache, &["POST /result.html"]);

    // submit_form on a fresh form page.
    browser.goto(&format!("{base}/form.html"));
    browser.fill("input[name=code]", "654321");
    browser.submit_form("#challenge");
    assert_eq!(browser.url(), format!("{base}/result.html?code=654321"));

    let png = browser.screenshot("result");
    assert_eq!(png, artifacts.join("result.png"));
    let bytes = fs::read(&png).expect("read screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &bytes[..bytes.len().min(16)]);
    assert!(bytes.len() > 1024, "screenshot of {} bytes", bytes.len());

    // The echo backend shows the request head exactly as the browser sent it.
    browser.goto(&format!("http://127.0.0.1:{}/echo", echo.port));
    let echoed = browser.text("body");
    assert!(echoed.starts_with(MARKER), "{echoed}");
    assert_eq!(seen_header(&echoed, "X-Test"), ["hello"]);
    assert_eq!(seen_header(&echoed, "Authorization"), [auth.as_str()]);
    browser.set_extra_headers(&[]);
    browser.refresh();
    assert!(seen_header(&browser.text("body"), "X-Test").is_empty());

    // Cookies are per host: 127.0.0.1 on another port shares them (cookies
    // ignore ports); deleting them all empties the jar for this host.
    assert_eq!(browser.cookies().len(), 2);
    browser.delete_all_cookies();
    assert!(browser.cookies().is_empty());
    browser.goto(&format!("{base}/result.html"));
    assert!(browser.cookies().is_empty());
    assert_eq!(browser.all_cookies().len(), 1, "the /private/ cookie is left");
    browser.clear_all_cookies();
    assert!(browser.all_cookies().is_empty());

    let profile = browser_dir.join("chromium-profile");
    let stopping = Instant::now();
    drop(browser);
    eprintln!("browser stopped in {:?}", stopping.elapsed());
    assert_eq!(processes_mentioning(&profile.display().to_string()), Vec::<String>::new());
}

#[test]
fn a_failing_command_names_the_error_and_the_url_and_saves_artifacts() {
    let dir = test_dir("selftest-browser-fail-");
    let apache = start_site(&dir.path().join("apache"));
    let artifacts = dir.path().join("artifacts");
    let browser = Browser::start(&dir.path().join("browser"), Some(&artifacts));
    let url = format!("http://127.0.0.1:{}/form.html", apache.port);
    browser.goto(&url);
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| browser.text("#missing")))
        .expect_err("text of a missing element must panic");
    let message = failure.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("no such element"), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("failure-") && message.contains(".png"), "{message}");
    let saved: Vec<_> = fs::read_dir(&artifacts).expect("artifacts").flatten().map(|e| e.file_name()).collect();
    assert!(saved.iter().any(|n| n.to_string_lossy().ends_with(".html")), "{saved:?}");
}

#[test]
fn two_browsers_in_parallel_are_independent() {
    let dir = test_dir("selftest-browser-pair-");
    let apache = start_site(&dir.path().join("apache"));
    let base = format!("http://127.0.0.1:{}", apache.port);
    let options = BrowserOptions::desktop(1280, 800);
    let began = Instant::now();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Browser::start_with(&dir.path().join("a"), None, options.clone()));
        let b = scope.spawn(|| Browser::start_with(&dir.path().join("b"), None, options.clone()));
        (a.join().expect("browser a"), b.join().expect("browser b"))
    });
    eprintln!(
        "two browsers started in parallel in {:?} (a {:?}, b {:?})",
        began.elapsed(),
        a.startup_time(),
        b.startup_time()
    );
    assert_ne!(a.browser_pid(), b.browser_pid());

    std::thread::scope(|scope| {
        scope.spawn(|| {
            a.goto(&format!("{base}/form.html"));
            a.fill("#code", "111111");
            a.click("#verify");
            assert_eq!(a.url(), format!("{base}/result.html?code=111111"));
        });
        scope.spawn(|| {
            b.goto(&format!("{base}/result.html"));
            assert_eq!(b.text("#done"), "Submitted");
        });
    });
    let width = a.execute("return window.innerWidth;", serde_json::Value::Null);
    assert_eq!(width, 1280);
    // Only a visited the page that sets cookies.
    assert_eq!(a.cookies().len(), 2);
    assert!(b.cookies().is_empty(), "{:?}", b.cookies());
}
