//! A real browser for the tests: headless Chromium driven through a
//! chromedriver that each `Browser` starts for itself, with a small
//! synchronous W3C WebDriver client (HTTP/1.1 over `TcpStream`, JSON with
//! serde_json).
//!
//! Each `Browser` has its own chromedriver (a free loopback port, in its own
//! process group), its own fresh profile, and `HOME`/`XDG_*` in the test
//! directory: tests may run several in parallel. Dropping it deletes the
//! session (which quits Chromium), waits for Chromium's processes to end
//! (SIGKILL, by pid, for any that do not), and stops chromedriver.
//!
//! Commands panic with the WebDriver error and the current URL: this is test
//! code. `click` and `submit_form` wait until the navigation they cause has
//! produced a new, completely loaded document, so form submissions are
//! deterministic.
//!
//! Cookies: Chromium treats loopback hosts (127.0.0.0/8, localhost) as
//! potentially trustworthy, so over plain `http://127.0.0.1` it stores a
//! cookie set with `Secure` and sends it back (over http on a non-loopback
//! address it rejects it). `cookies()` are those the current URL would
//! receive (WebDriver); `all_cookies()` is the whole jar.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::process::{free_port, ServerProcess, POLL_INTERVAL};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The real binary, not the `/usr/bin/chromium` wrapper script: the wrapper
/// sources /etc/chromium.d (Google API keys, extra extensions and flags).
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// Flags that keep Chromium headless, quiet and off the network (nothing
/// but the pages the test opens). Not `--disable-crashpad-for-testing`: with
/// it, Chromium 156 starts but no renderer ever answers ("Timed out
/// receiving message from renderer"). So two crashpad handlers run, in their
/// own session (outside chromedriver's process group), with their database
/// below `$XDG_CONFIG_HOME`, which `start` points into the test directory.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--lang=en-US",
    // Passkeys need a name (never an IP address): tests use localhost,
    // which stays on 127.0.0.1.
    "--host-resolver-rules=MAP localhost 127.0.0.1",
];

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// chromedriver startup (until `/status` says ready).
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// One WebDriver command on the wire (a navigation included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Deleting the session when the browser is dropped.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Chromium's processes get to exit after the session is deleted.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Distinguishes the documents before and after a navigation.
static NAV_MARKER: AtomicU64 = AtomicU64::new(0);

/// How a `Browser` is set up.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The viewport in CSS pixels; the default is a phone's (412 x 915).
    pub viewport: (u32, u32),
    /// Emulate a phone (chromedriver's `mobileEmulation.deviceMetrics`,
    /// pixel ratio 1): mobile viewport rules (a page without
    /// `<meta name="viewport">` is laid out 980 px wide, as on a phone) and
    /// touch events. Otherwise the viewport is set as `--window-size`, and
    /// headless Chromium widens windows narrower than 500 px to 500.
    pub mobile: bool,
    /// Replaces Chromium's `User-Agent` (`--user-agent`).
    pub user_agent: Option<String>,
    /// Page load timeout of navigations.
    pub page_load_timeout: Duration,
    /// More Chromium flags after `CHROMIUM_FLAGS`.
    pub extra_args: Vec<String>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            viewport: (412, 915),
            mobile: true,
            user_agent: None,
            page_load_timeout: Duration::from_secs(30),
            extra_args: Vec::new(),
        }
    }
}

impl BrowserOptions {
    /// A desktop window of this size (no mobile emulation).
    pub fn desktop(width: u32, height: u32) -> BrowserOptions {
        BrowserOptions { viewport: (width, height), mobile: false, ..Default::default() }
    }
}

/// A cookie as the browser stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None` (Chromium reports `Lax` when none was set).
    pub same_site: Option<String>,
    /// Seconds since the epoch; `None` for a session cookie.
    pub expiry: Option<u64>,
}

/// A WebDriver error response (or a transport failure, as `error`
/// "transport").
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.error, self.status, self.message)
    }
}

pub struct Browser {
    driver: ServerProcess,
    port: u16,
    session: String,
    /// Chromium's browser process (`goog:processID`).
    browser_pid: Option<u32>,
    dir: PathBuf,
    profile: PathBuf,
    home: PathBuf,
    artifacts: PathBuf,
    /// Save a screenshot and the page source when a command fails (only
    /// when the caller named an artifacts directory).
    failure_artifacts: bool,
    startup: Duration,
    page_load_timeout: Duration,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with the default
    /// options. The profile, `HOME` and chromedriver's log go to `dir`;
    /// screenshots to `artifacts` (default `dir/artifacts`). When
    /// `artifacts` is given, a failing command also saves
    /// `failure-N.png` and `failure-N.html` there.
    pub fn start(dir: &Path, artifacts: Option<&Path>) -> Browser {
        Self::start_with(dir, artifacts, BrowserOptions::default())
    }

    pub fn start_with(dir: &Path, artifacts: Option<&Path>, options: BrowserOptions) -> Browser {
        let began = Instant::now();
        let dir = dir.to_path_buf();
        let artifacts_dir = artifacts.map(Path::to_path_buf).unwrap_or_else(|| dir.join("artifacts"));
        let profile = dir.join("chromium-profile");
        let home = dir.join("home");
        for d in [&dir, &artifacts_dir, &home] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        // A fresh profile: never one left over from a previous browser.
        let _ = fs::remove_dir_all(&profile);

        let (driver, port) = start_driver(&dir, &home);
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let (width, height) = options.viewport;
        let mut chrome_options = json!({ "binary": CHROMIUM });
        if options.mobile {
            chrome_options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "mobile": true, "touch": true }
            });
        } else {
            args.push(format!("--window-size={width},{height}"));
        }
        if let Some(agent) = &options.user_agent {
            args.push(format!("--user-agent={agent}"));
        }
        args.extend(options.extra_args.iter().cloned());
        chrome_options["args"] = json!(args);
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {
                        "pageLoad": options.page_load_timeout.as_millis() as u64,
                        "script": 30_000,
                        "implicit": 0,
                    },
                    "goog:chromeOptions": chrome_options,
                }
            }
        });
        let value = match request(port, "POST", "/session", Some(&capabilities), COMMAND_TIMEOUT) {
            Ok(v) => v,
            Err(e) => {
                let log = fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default();
                panic!("chromedriver could not start Chromium: {e}\nchromedriver.log:\n{}", tail(&log, 40));
            }
        };
        let session = value["sessionId"].as_str().expect("sessionId in the new session response").to_string();
        let browser_pid = value["capabilities"]["goog:processID"].as_u64().and_then(|p| u32::try_from(p).ok());
        Browser {
            driver,
            port,
            session,
            browser_pid,
            dir,
            profile,
            home,
            artifacts: artifacts_dir,
            failure_artifacts: artifacts.is_some(),
            startup: began.elapsed(),
            page_load_timeout: options.page_load_timeout,
        }
    }

    /// How long `start` took (chromedriver ready + new session).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// chromedriver's log (in the test directory).
    pub fn driver_log(&self) -> String {
        fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default()
    }

    /// Chromium's browser process id, when chromedriver reported it.
    pub fn browser_pid(&self) -> Option<u32> {
        self.browser_pid
    }

    // ----- navigation and page state -----

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "url", json!({ "url": url }), &format!("goto {url}"));
    }

    pub fn back(&self) {
        self.cmd("POST", "back", json!({}), "back");
    }

    pub fn refresh(&self) {
        self.cmd("POST", "refresh", json!({}), "refresh");
    }

    pub fn url(&self) -> String {
        self.cmd_get("url", "get url").as_str().unwrap_or_default().to_string()
    }

    pub fn title(&self) -> String {
        self.cmd_get("title", "get title").as_str().unwrap_or_default().to_string()
    }

    /// The current document serialized as HTML.
    pub fn source(&self) -> String {
        self.cmd_get("source", "get source").as_str().unwrap_or_default().to_string()
    }

    /// Sets the outer window size (of a desktop, not a mobile-emulating,
    /// browser).
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.cmd("POST", "window/rect", json!({ "width": width, "height": height }), "set window rect");
    }

    // ----- elements -----

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.cmd_get(&format!("element/{id}/text"), &format!("text of {css:?}")).as_str().unwrap_or_default().into()
    }

    /// An attribute of the first element matching `css` as written in the
    /// document (`None` when absent).
    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css);
        let v = self.cmd_get(&format!("element/{id}/attribute/{name}"), &format!("attribute {name} of {css:?}"));
        v.as_str().map(String::from)
    }

    /// A DOM property (e.g. the current `value` of an input).
    pub fn property(&self, css: &str, name: &str) -> Value {
        let id = self.find(css);
        self.cmd_get(&format!("element/{id}/property/{name}"), &format!("property {name} of {css:?}"))
    }

    /// The current value of an input.
    pub fn value(&self, css: &str) -> String {
        self.property(css, "value").as_str().unwrap_or_default().to_string()
    }

    pub fn exists(&self, css: &str) -> bool {
        self.count(css) > 0
    }

    pub fn count(&self, css: &str) -> usize {
        let v =
            self.cmd("POST", "elements", json!({ "using": "css selector", "value": css }), &format!("find {css:?}"));
        v.as_array().map_or(0, Vec::len)
    }

    /// Clears the first input matching `css` and types `value` into it.
    pub fn fill(&self, css: &str, value: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("element/{id}/clear"), json!({}), &format!("clear {css:?}"));
        self.cmd("POST", &format!("element/{id}/value"), json!({ "text": value }), &format!("type into {css:?}"));
    }

    /// Clicks the first element matching `css` and waits for the navigation
    /// it causes: a new document, completely loaded. Panics when no new
    /// document arrives within the page load timeout (use `click_in_place`
    /// for clicks that do not navigate).
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.navigating(&format!("click {css:?}"), || {
            self.cmd("POST", &format!("element/{id}/click"), json!({}), &format!("click {css:?}"));
        });
    }

    /// Clicks without waiting for any navigation.
    pub fn click_in_place(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("element/{id}/click"), json!({}), &format!("click {css:?}"));
    }

    /// Clicks the centre of the first element matching `css` with DevTools
    /// mouse events (`Input.dispatchMouseEvent`), as a user's pointer would,
    /// and waits for the navigation it causes, like `click`. For pages with
    /// JavaScript disabled (`--blink-settings=scriptEnabled=false`), where
    /// chromedriver's element click never answers; WebDriver scripts (and
    /// so this method) still run there.
    pub fn click_native(&self, css: &str) {
        let centre = self.execute(
            "const e = document.querySelector(arguments[0]); if (!e) return null; \
             e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2];",
            json!([css]),
        );
        let (Some(x), Some(y)) = (centre[0].as_f64(), centre[1].as_f64()) else {
            panic!("no element matches {css:?} on {}", self.url());
        };
        self.navigating(&format!("click {css:?} (input events)"), || {
            for kind in ["mousePressed", "mouseReleased"] {
                let event = json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
                self.cdp("Input.dispatchMouseEvent", event);
            }
        });
    }

    /// Focuses the first input matching `css`, empties it and types `text`
    /// with DevTools `Input.insertText` (for pages with JavaScript
    /// disabled; see `click_native`).
    pub fn type_native(&self, css: &str, text: &str) {
        let found = self.execute(
            "const e = document.querySelector(arguments[0]); if (!e) return false; \
             e.focus(); e.value = ''; return document.activeElement === e;",
            json!([css]),
        );
        assert_eq!(found, Value::Bool(true), "no focusable input matches {css:?} on {}", self.url());
        self.cdp("Input.insertText", json!({ "text": text }));
    }

    /// Submits the form matching `form_css` as its default button would
    /// (`requestSubmit`: validation and submit events run) and waits for
    /// the new document.
    pub fn submit_form(&self, form_css: &str) {
        assert!(self.exists(form_css), "no form matches {form_css:?} on {}", self.url());
        self.navigating(&format!("submit {form_css:?}"), || {
            self.execute("document.querySelector(arguments[0]).requestSubmit();", json!([form_css]));
        });
    }

    // ----- cookies -----

    /// Name and value of every cookie visible to the current page's URL.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.cookie_details().into_iter().map(|c| (c.name, c.value)).collect()
    }

    /// The cookies visible to the current page's URL, with their attributes
    /// (HttpOnly cookies included).
    pub fn cookie_details(&self) -> Vec<Cookie> {
        let v = self.cmd_get("cookie", "get cookies");
        v.as_array().map(|a| a.iter().map(parse_cookie).collect()).unwrap_or_default()
    }

    pub fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookie_details().into_iter().find(|c| c.name == name)
    }

    /// Adds a cookie for the current page's host (path `/`).
    pub fn add_cookie(&self, name: &str, value: &str) {
        let cookie = json!({ "cookie": { "name": name, "value": value, "path": "/" } });
        self.cmd("POST", "cookie", cookie, &format!("add cookie {name}"));
    }

    pub fn delete_cookie(&self, name: &str) {
        self.cmd("DELETE", &format!("cookie/{name}"), Value::Null, &format!("delete cookie {name}"));
    }

    /// Deletes the cookies visible to the current page's URL.
    pub fn delete_all_cookies(&self) {
        self.cmd("DELETE", "cookie", Value::Null, "delete all cookies");
    }

    /// Every cookie in the browser, whatever its host and path (DevTools
    /// `Storage.getCookies`). Unlike `cookie_details`, `same_site` is `None`
    /// when the cookie set none.
    pub fn all_cookies(&self) -> Vec<Cookie> {
        let v = self.cdp("Storage.getCookies", json!({}));
        let cookies = v["cookies"].as_array().cloned().unwrap_or_default();
        cookies
            .iter()
            .map(|c| {
                let session = c["session"].as_bool().unwrap_or(true);
                let mut cookie = parse_cookie(c);
                cookie.expiry = if session { None } else { c["expires"].as_f64().map(|e| e as u64) };
                cookie
            })
            .collect()
    }

    /// Deletes every cookie in the browser (DevTools `Storage.clearCookies`).
    pub fn clear_all_cookies(&self) {
        self.cdp("Storage.clearCookies", json!({}));
    }

    // ----- headers, scripts, artifacts -----

    /// Sends these headers with every request of the current tab from now
    /// on (replacing those set before), through chromedriver's DevTools
    /// passthrough: `Network.enable`, then `Network.setExtraHTTPHeaders`.
    pub fn set_extra_headers(&self, headers: &[(&str, &str)]) {
        let map: serde_json::Map<String, Value> =
            headers.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
        self.cdp("Network.enable", json!({}));
        self.cdp("Network.setExtraHTTPHeaders", json!({ "headers": map }));
    }

    /// A DevTools protocol command on the current tab.
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        self.cmd("POST", "goog/cdp/execute", json!({ "cmd": command, "params": params }), &format!("CDP {command}"))
    }

    /// Runs `script` as a function body in the page; `args` is an array
    /// (`arguments[0]`, ...). Returns what the script returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        let args = if args.is_null() { json!([]) } else { args };
        self.cmd("POST", "execute/sync", json!({ "script": script, "args": args }), "execute script")
    }

    // ----- WebAuthn (chromedriver's virtual authenticators) -----

    /// Adds a virtual authenticator to the browser and returns its id.
    /// `options`: `protocol` (`ctap2`), `transport` (`internal` for a
    /// platform passkey, `usb` for a security key), `hasResidentKey`,
    /// `hasUserVerification`, `isUserConsenting`, `isUserVerified`.
    pub fn add_virtual_authenticator(&self, options: Value) -> String {
        let v = self.cmd("POST", "webauthn/authenticator", options, "add a virtual authenticator");
        v.as_str().unwrap_or_else(|| panic!("no authenticator id in {v}")).to_string()
    }

    pub fn remove_virtual_authenticator(&self, id: &str) {
        self.cmd("DELETE", &format!("webauthn/authenticator/{id}"), Value::Null, "remove a virtual authenticator");
    }

    /// The credentials a virtual authenticator holds (`credentialId`,
    /// `privateKey`, `rpId`, `signCount`, ..., base64url where binary).
    pub fn authenticator_credentials(&self, id: &str) -> Vec<Value> {
        let v = self.cmd_get(&format!("webauthn/authenticator/{id}/credentials"), "list credentials");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Puts a credential (as `authenticator_credentials` lists them) into a virtual authenticator.
    pub fn add_authenticator_credential(&self, id: &str, credential: Value) {
        self.cmd("POST", &format!("webauthn/authenticator/{id}/credential"), credential, "add a credential");
    }

    /// Saves a PNG of the viewport as `name`(.png) in the artifacts
    /// directory and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.cmd_get("screenshot", "screenshot");
        let png = base64_decode(data.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot is not base64: {e} (on {})", self.url()));
        let file = if name.ends_with(".png") { name.to_string() } else { format!("{name}.png") };
        let path = self.artifacts.join(file);
        fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Saves the page source as `name`(.html) in the artifacts directory.
    pub fn save_source(&self, name: &str) -> PathBuf {
        let file = if name.ends_with(".html") { name.to_string() } else { format!("{name}.html") };
        let path = self.artifacts.join(file);
        fs::write(&path, self.source()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    // ----- internals -----

    /// Runs `action`, then waits until the tab holds a new document whose
    /// `readyState` is `complete`. The old document is tagged with a marker
    /// first: a new document never has it, whatever its URL (a POST that
    /// answers on the same URL included).
    fn navigating(&self, what: &str, action: impl FnOnce()) {
        let marker = format!("m{}-{}", std::process::id(), NAV_MARKER.fetch_add(1, Ordering::Relaxed));
        self.execute("window.__testkitNavigation = arguments[0];", json!([marker]));
        action();
        let probe = json!({
            "script": "return [window.__testkitNavigation === undefined ? null : String(window.__testkitNavigation), \
                       document.readyState];",
            "args": [],
        });
        let deadline = Instant::now() + self.page_load_timeout;
        loop {
            // While the old document unloads, a script may fail (context
            // destroyed) or still run in the old document: both mean "not yet".
            let last = match self.call("POST", "execute/sync", Some(&probe)) {
                Ok(v) if v[0].as_str() != Some(marker.as_str()) && v[1] == "complete" => return,
                Ok(v) => format!("document marker {}, readyState {}", v[0], v[1]),
                Err(e) if e.error == "unexpected alert open" || e.error == "transport" => self.fail(what, &e),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                self.fail(
                    what,
                    &WebDriverError {
                        status: 0,
                        error: "navigation timeout".into(),
                        message: format!(
                            "no new, complete document within {:?} (last: {last})",
                            self.page_load_timeout
                        ),
                    },
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The element id of the first match of `css`.
    fn find(&self, css: &str) -> String {
        let v = self.cmd("POST", "element", json!({ "using": "css selector", "value": css }), &format!("find {css:?}"));
        v[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element reference in {v}")).to_string()
    }

    fn cmd_get(&self, path: &str, what: &str) -> Value {
        self.cmd("GET", path, Value::Null, what)
    }

    /// A session command; panics on error.
    fn cmd(&self, method: &str, path: &str, body: Value, what: &str) -> Value {
        let body = if body.is_null() { None } else { Some(&body) };
        self.call(method, path, body).unwrap_or_else(|e| self.fail(what, &e))
    }

    /// A session command.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, WebDriverError> {
        let path = format!("/session/{}/{path}", self.session);
        request(self.port, method, &path, body, COMMAND_TIMEOUT)
    }

    fn fail(&self, what: &str, error: &WebDriverError) -> ! {
        let url = match self.call("GET", "url", None) {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => format!("<unknown: {e}>"),
        };
        let mut saved = String::new();
        if self.failure_artifacts {
            static FAILURES: AtomicU64 = AtomicU64::new(0);
            let n = FAILURES.fetch_add(1, Ordering::Relaxed);
            if let Ok(v) = self.call("GET", "screenshot", None) {
                if let Some(png) = v.as_str().and_then(|s| base64_decode(s).ok()) {
                    let path = self.artifacts.join(format!("failure-{n}.png"));
                    if fs::write(&path, png).is_ok() {
                        saved.push_str(&format!("\nscreenshot: {}", path.display()));
                    }
                }
            }
            if let Ok(v) = self.call("GET", "source", None) {
                let path = self.artifacts.join(format!("failure-{n}.html"));
                if fs::write(&path, v.as_str().unwrap_or_default()).is_ok() {
                    saved.push_str(&format!("\npage source: {}", path.display()));
                }
            }
        }
        panic!("browser: {what} failed: {error}\ncurrent URL: {url}{saved}");
    }

    /// Pids of this browser's processes that still run (zombies left out):
    /// those in chromedriver's process group other than chromedriver itself
    /// (Chromium and its helpers), and the crashpad handlers, which run in
    /// their own session but name this browser's crash database.
    fn leftovers(&self) -> Vec<u32> {
        let pgid = self.driver.pid();
        let profile_arg = format!("--user-data-dir={}", self.profile.display());
        let crashpad_arg = format!("--database={}", self.home.join(".config/chromium/Crash Reports").display());
        let mut pids = Vec::new();
        let Ok(entries) = fs::read_dir("/proc") else { return pids };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid == pgid {
                continue;
            }
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // pid (comm) state ppid pgrp ...; comm may contain spaces.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() < 3 || fields[0] == "Z" {
                continue;
            }
            let ours = fields[2].parse::<u32>().ok() == Some(pgid)
                || fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                    cmdline
                        .split(|&b| b == 0)
                        .any(|arg| arg == profile_arg.as_bytes() || arg == crashpad_arg.as_bytes())
                });
            if ours {
                pids.push(pid);
            }
        }
        pids
    }

    /// Polls until none of this browser's processes run, or `timeout`;
    /// returns those still running.
    fn wait_for_exit(&self, timeout: Duration) -> Vec<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.leftovers();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session quits Chromium (chromedriver reaps it); its
        // helpers and crashpad handlers follow.
        let path = format!("/session/{}", self.session);
        if let Err(e) = request(self.port, "DELETE", &path, None, QUIT_TIMEOUT) {
            eprintln!("browser: deleting session {} failed: {e}", self.session);
        }
        let left = self.wait_for_exit(EXIT_GRACE);
        if !left.is_empty() {
            eprintln!("browser: Chromium processes {left:?} outlived the session: SIGKILL");
            if self.driver.is_running() {
                // chromedriver is not reaped yet, so its pid is still this
                // process group's id: the group is ours.
                let pgid = libc::pid_t::try_from(self.driver.pid()).expect("pid fits pid_t");
                // SAFETY: kill(2) on our own child's process group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            for pid in left {
                let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
                // SAFETY: kill(2) on a pid just seen running with this
                // browser's process group or profile.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let left = self.wait_for_exit(EXIT_GRACE);
            if !left.is_empty() {
                eprintln!("browser: Chromium processes {left:?} survived SIGKILL");
            }
        }
        self.driver.stop();
    }
}

/// Starts chromedriver on a free port in its own process group (so that
/// Chromium and its helpers can be found and, if need be, killed as one
/// group) and waits until `/status` says it is ready. Retries on a port
/// that was taken meanwhile.
fn start_driver(dir: &Path, home: &Path) -> (ServerProcess, u16) {
    let log_path = dir.join("chromedriver.log");
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port();
        let _ = fs::remove_file(&log_path);
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}")).arg(format!("--log-path={}", log_path.display()));
        // Chromium writes below $HOME (.config, .cache, .pki): keep it in the test directory.
        cmd.env("HOME", home).env("XDG_CONFIG_HOME", home.join(".config")).env("XDG_CACHE_HOME", home.join(".cache"));
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        cmd.stderr(fs::File::create(dir.join("chromedriver.stderr")).map(Stdio::from).unwrap_or(Stdio::null()));
        cmd.process_group(0);
        let mut driver = ServerProcess::spawn("chromedriver", cmd).expect("spawn chromedriver");
        let deadline = Instant::now() + DRIVER_READY_TIMEOUT;
        loop {
            if !driver.is_running() {
                last_error = format!(
                    "chromedriver exited ({:?}):\n{}{}",
                    driver.exit_status(),
                    fs::read_to_string(dir.join("chromedriver.stderr")).unwrap_or_default(),
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
                break;
            }
            match request(port, "GET", "/status", None, Duration::from_secs(2)) {
                Ok(v) if v["ready"] == true => return (driver, port),
                Ok(v) => last_error = format!("chromedriver not ready: {v}"),
                Err(e) => last_error = e.to_string(),
            }
            if Instant::now() >= deadline {
                driver.stop();
                panic!("chromedriver on port {port} not ready within {DRIVER_READY_TIMEOUT:?}: {last_error}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        if !last_error.contains("port not available") && !last_error.contains("Address already in use") {
            break;
        }
    }
    panic!("chromedriver did not start: {last_error}");
}

/// One WebDriver request to chromedriver on 127.0.0.1:`port`; returns the
/// response's `value`, or the error it carries.
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Value, WebDriverError> {
    let transport = |e: io::Error| WebDriverError {
        status: 0,
        error: "transport".into(),
        message: format!("{method} {path} to chromedriver on port {port}: {e}"),
    };
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if method != "GET" {
        head.push_str(&format!("Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(transport)?;
    stream.set_read_timeout(Some(timeout)).map_err(transport)?;
    stream.write_all(head.as_bytes()).map_err(transport)?;
    stream.write_all(body.as_bytes()).map_err(transport)?;
    let raw = read_http_response(&mut stream).map_err(transport)?;
    let response = crate::http::parse_response(&raw, false);
    let parsed: Value = serde_json::from_slice(&response.body).map_err(|e| WebDriverError {
        status: response.status,
        error: "invalid response".into(),
        message: format!("{e}: {}", response.text()),
    })?;
    let value = parsed.get("value").cloned().unwrap_or(Value::Null);
    if response.status == 200 {
        return Ok(value);
    }
    let message = value["message"].as_str().unwrap_or_default();
    Err(WebDriverError {
        status: response.status,
        error: value["error"].as_str().unwrap_or("unknown").to_string(),
        // The first line; the rest is chromedriver's stack trace and session info.
        message: message.lines().next().unwrap_or_default().to_string(),
    })
}

/// Reads a response whole: up to `Content-Length`, or to the end of the
/// connection without one.
fn read_http_response(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == "content-length")
                .and_then(|(_, v)| v.trim().parse::<usize>().ok());
            if let Some(length) = length {
                while raw.len() < end + 4 + length {
                    let n = stream.read(&mut buf)?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-body"));
                    }
                    raw.extend_from_slice(&buf[..n]);
                }
                return Ok(raw);
            }
            stream.read_to_end(&mut raw)?;
            return Ok(raw);
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn parse_cookie(v: &Value) -> Cookie {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Cookie {
        name: s("name"),
        value: s("value"),
        domain: s("domain"),
        path: s("path"),
        secure: v["secure"].as_bool().unwrap_or(false),
        http_only: v["httpOnly"].as_bool().unwrap_or(false),
        same_site: v["sameSite"].as_str().map(String::from),
        expiry: v["expiry"].as_u64(),
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Standard base64 (padding optional, whitespace ignored).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for (i, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return Err(format!("invalid base64 byte {c:#04x} at {i}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap(), b"Aladdin:open sesame");
        assert_eq!(base64_decode("YTpi").unwrap(), b"a:b");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("iVBO\nRw0K").unwrap(), b"\x89PNG\r\n");
        assert!(base64_decode("a$b").is_err());
    }
}
