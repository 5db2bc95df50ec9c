//! Requests Apache makes on its own inside an enforced scope: the
//! subrequest of a DirectoryIndex, the internal redirect of an
//! ErrorDocument, with and without the gateway's shared secret; what
//! mod_cache may keep of an enforced response; and a request whose
//! per-directory record is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::fs;
use std::os::unix::fs::PermissionsExt;

use testkit::backend::{seen_header, MARKER};
use testkit::http::{Request, Response};
use testkit::stack::{Stack, StackOptions};

const INDEX: &str = "INDEX-OF-DOCS";
const MISSING: &str = "THE-NOT-FOUND-PAGE";
const PAGE: &str = "A-CACHEABLE-PAGE";

/// A static directory under `TwoFactor On` with an index page and an error
/// document inside the enforced scope; `/docs/sub` sends its 404s to the
/// proxied (and enforced) /app instead.
fn docs_stack(extra: &str) -> Stack {
    let extra = format!(
        "<Location /docs>\n  TwoFactor On\n  ErrorDocument 404 /docs/missing.html\n</Location>\n\
         <Location /docs/sub>\n  ErrorDocument 404 /app/not-found\n</Location>\n{extra}"
    );
    let s = Stack::start(StackOptions { gateway: false, extra, ..StackOptions::default() });
    let docs = s.protected.root.join("htdocs/docs");
    fs::create_dir_all(docs.join("sub")).unwrap();
    fs::write(docs.join("index.html"), format!("<p>{INDEX}</p>\n")).unwrap();
    fs::write(docs.join("missing.html"), format!("<p>{MISSING}</p>\n")).unwrap();
    fs::write(docs.join("page.html"), format!("<p>{PAGE}</p>\n")).unwrap();
    s
}

/// A browser of `user` that completed the challenge (test builds' success
/// path), starting from `path`; returns its cookie header value.
fn complete(port: u16, user: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut first = Request::get(path).user(user).browser();
    for (k, v) in headers {
        first = first.header(k, v);
    }
    let r = first.send(port);
    assert_eq!(r.status, 303, "{}", r.text());
    let token = r.header("Location").unwrap().split("r=").nth(1).unwrap().to_string();
    let mut done = Request::get(&format!("/2fa/__test_complete?r={token}")).user(user);
    for (k, v) in headers {
        done = done.header(k, v);
    }
    let done = done.send(port);
    assert_eq!(done.status, 303, "{}", done.text());
    done.set_cookie("TwoFactorSession").expect("a session cookie").split(';').next().unwrap().to_string()
}

fn get(port: u16, path: &str, user: &str, cookie: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::get(path).user(user).browser().header("Cookie", &format!("theme=dark; {cookie}"));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send(port)
}

/// What a completed browser gets from the index and the error documents.
fn assert_served_with_completion(s: &Stack, headers: &[(&str, &str)]) {
    let port = s.protected.port;
    let cookie = complete(port, "alice", "/docs/", headers);
    let before = s.protected.error_log().len();
    let missing = get(port, "/docs/nope.html", "alice", &cookie, headers);
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(missing.text().contains(MISSING), "{}", missing.text());
    let index = get(port, "/docs/", "alice", &cookie, headers);
    assert_eq!(index.status, 200, "{}", index.text());
    assert!(index.text().contains(INDEX), "{}", index.text());
    // An error document served by the backend: it never sees the cookie.
    let proxied = get(port, "/docs/sub/nope.html", "alice", &cookie, headers);
    assert!(proxied.text().contains(MARKER), "{} {}", proxied.status, proxied.text());
    assert_eq!(seen_header(&proxied.text(), "Cookie"), vec!["theme=dark"]);
    assert_eq!(seen_header(&proxied.text(), "X-Remote-User"), vec!["alice"]);
    let log = s.protected.error_log()[before..].to_string();
    assert!(!log.contains("event=challenge"), "a request of the completed browser was challenged:\n{log}");
    assert!(log.contains("event=allow user=alice source=initial-request"), "{log}");
}

#[test]
fn an_enforced_static_directory_serves_its_index_and_error_documents() {
    let s = docs_stack("");
    assert_served_with_completion(&s, &[]);
    // Without a completion, none of it.
    let port = s.protected.port;
    for path in ["/docs/", "/docs/nope.html", "/docs/sub/nope.html"] {
        let r = Request::get(path).user("alice").browser().send(port);
        assert_eq!(r.status, 303, "{path}: {}", r.text());
        assert!(!r.text().contains(INDEX) && !r.text().contains(MISSING) && !r.text().contains(MARKER));
    }
}

#[test]
fn the_gateway_secret_holds_across_internal_redirects() {
    let dir = testkit::process::test_dir("twofactor-secret-redirect");
    let secret_file = dir.path().join("gateway.secret");
    fs::write(&secret_file, "correct horse battery staple\n").unwrap();
    let s = docs_stack(&format!(
        "TwoFactorProxySecretHeader X-Gateway-Secret\nTwoFactorProxySecretFile {}\n",
        secret_file.display()
    ));
    assert_served_with_completion(&s, &[("X-Gateway-Secret", "correct horse battery staple")]);
    assert!(!s.protected.error_log().contains("event=spoof"), "{}", s.protected.error_log());
}

/// mod_cache's quick handler answers before any access check: what an
/// enforced scope serves must never be stored for the next caller.
#[test]
fn mod_cache_never_serves_an_enforced_response_to_another_caller() {
    // The children (www-data) write the cache.
    let cache = testkit::process::test_dir("twofactor-cache");
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let s = docs_stack(&format!(
        "LoadModule cache_module /usr/lib/apache2/modules/mod_cache.so\n\
         LoadModule cache_disk_module /usr/lib/apache2/modules/mod_cache_disk.so\n\
         CacheRoot {}\nCacheEnable disk /docs\nCacheHeader On\n\
         <Location /docs>\n  Header set Cache-Control \"public, max-age=600\"\n</Location>\n",
        cache.path().display()
    ));
    let port = s.protected.port;
    let cookie = complete(port, "alice", "/docs/page.html", &[]);
    for _ in 0..2 {
        let r = get(port, "/docs/page.html", "alice", &cookie, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains(PAGE));
    }
    // Another user, and alice's name without her browser's cookie.
    for req in [Request::get("/docs/page.html").user("bob").browser(), Request::get("/docs/page.html").user("alice")] {
        let r = req.send(port);
        assert!(!r.text().contains(PAGE), "served from the cache: {:?} {}", r.header("X-Cache"), r.text());
        assert!(matches!(r.status, 303 | 401), "{}", r.status);
    }
    let cached = fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(cached, 0, "mod_cache stored an enforced response");
    assert!(
        s.protected.stderr().contains("mod_cache is loaded: responses where TwoFactor is On are never stored"),
        "no start-up warning:\n{}",
        s.protected.stderr()
    );
}

#[test]
fn a_request_without_its_per_directory_record_is_enforced() {
    let s = docs_stack("<Location /nodir>\n  TwoFactorTestNoDirConfig On\n</Location>\n");
    let nodir = s.protected.root.join("htdocs/nodir");
    fs::create_dir_all(&nodir).unwrap();
    fs::write(nodir.join("page.html"), format!("<p>{PAGE}</p>\n")).unwrap();
    let r = Request::get("/nodir/page.html").user("alice").browser().send(s.protected.port);
    assert!(!r.text().contains(PAGE), "served without a completion: {}", r.status);
    assert_eq!(r.status, 303);
}
