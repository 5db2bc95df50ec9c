//! How a protected scope answers every HTTP method, and the strict-path
//! payloads sent raw over TCP to a real Apache.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::fs;

use testkit::apache::{Apache, ApacheOptions};
use testkit::http::{send_raw_from, Headers, Request, GATEWAY_ADDR};
use testkit::process::test_dir;
use testkit::repo_root;
use testkit::stack::{Stack, StackOptions};

fn stack(extra: &str) -> Stack {
    Stack::start(StackOptions { gateway: false, extra: extra.into(), ..StackOptions::default() })
}

#[test]
fn every_method_without_a_completion() {
    let s = stack("");
    let port = s.protected.port;
    let html = testkit::http::BROWSER_ACCEPT;
    let cases: &[(&str, Headers, u16)] = &[
        ("GET", &[("Accept", html)], 303),
        ("HEAD", &[("Accept", html)], 303),
        ("GET", &[("Accept", html), ("X-Requested-With", "XMLHttpRequest")], 401),
        ("GET", &[("Accept", "application/json")], 401),
        ("GET", &[], 401),
        ("HEAD", &[], 401),
        ("POST", &[("Accept", html)], 403),
        ("PUT", &[("Accept", html)], 403),
        ("DELETE", &[], 403),
        ("PATCH", &[], 403),
        ("OPTIONS", &[("Accept", html)], 403),
        ("PROPFIND", &[], 403),
        ("MKCOL", &[], 403),
        ("TRACE", &[], 403),
        ("BREW", &[], 403),
    ];
    for (method, headers, status) in cases {
        let mut req = Request::new(method, "/app/data").user("alice");
        for (k, v) in *headers {
            req = req.header(k, v);
        }
        if *method == "POST" || *method == "PUT" {
            req = req.body(b"a=1");
        }
        let r = req.send(port);
        assert_eq!(r.status, *status, "{method} {headers:?}");
        if *status == 303 {
            assert!(r.header("Location").is_some_and(|l| l.starts_with("/2fa/?r=")));
        }
    }
    // The challenge page itself needs an identity, not a completion.
    assert_eq!(Request::get("/2fa/").user("alice").browser().send(port).status, 200);
    // Its forms need their CSRF token; the start page is read-only.
    assert_eq!(Request::new("POST", "/2fa/totp").user("alice").body(b"code=123456").send(port).status, 403);
    assert_eq!(Request::new("POST", "/2fa/").user("alice").body(b"x=1").send(port).status, 405);
}

/// `(expected with strict paths, expected without, target)` from the shared payload list.
fn payloads() -> Vec<(String, String, String)> {
    let text = fs::read_to_string(repo_root().join("tests/data/strict-path-payloads.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace();
            let (a, b, c) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
            (a.to_string(), b.to_string(), c.to_string())
        })
        .collect()
}

/// Sends each payload as the request-target of a raw GET from the gateway
/// with a valid identity; a refused one must never be served, and an
/// accepted one must never be refused as a bad path.
fn check_payloads(apache: &Apache, strict: bool) {
    let mut refused_by_module = 0;
    for (strict_expect, lax_expect, target) in payloads() {
        let expect = if strict { &strict_expect } else { &lax_expect };
        let raw = format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Remote-User: alice\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
        );
        let before = apache.error_log().matches("event=bad-path").count();
        let r = send_raw_from(GATEWAY_ADDR, apache.port, raw.as_bytes(), false);
        // The module logs before it answers: the count is final here.
        let after = apache.error_log().matches("event=bad-path").count();
        if expect == "ok" {
            assert!(after == before, "{target}: refused as a bad path (strict={strict})");
        } else {
            // Apache itself refuses some targets first (404 for %2F, 400 for
            // malformed escapes); either way nothing is served.
            assert!(matches!(r.status, 400 | 404), "{target}: status {} (strict={strict})", r.status);
            if after > before {
                refused_by_module += 1;
                assert_eq!(r.status, 400);
                let log = apache.error_log();
                let line = log.lines().rev().find(|l| l.contains("event=bad-path")).unwrap();
                assert!(line.contains(&format!("reason={expect}")), "{target}: {line}");
            }
        }
    }
    assert!(refused_by_module > 20, "only {refused_by_module} payloads reached the module's check");
}

#[test]
fn strict_path_payloads() {
    let s = stack("");
    check_payloads(&s.protected, true);
}

#[test]
fn relaxed_path_payloads() {
    let s = stack("TwoFactorStrictPath Off\n");
    check_payloads(&s.protected, false);
}

/// Strict paths apply where TwoFactor is Off too: `/public/..;/app/` is a
/// door into /app for a backend that drops `;` parameters.
#[test]
fn exempt_prefixes_are_no_door() {
    let s = stack("");
    for target in ["/public/..;/app/", "/public/%2e%2e/app/", "/public/.%2e/app/", "/public/..%3b/app/"] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nX-Remote-User: alice\r\nConnection: close\r\n\r\n");
        let r = send_raw_from(GATEWAY_ADDR, s.protected.port, raw.as_bytes(), false);
        assert_eq!(r.status, 400, "{target}");
        assert!(!r.text().contains(testkit::backend::MARKER), "{target} reached the backend");
    }
}

/// `%3B` is a path parameter to the backend (mod_proxy forwards it as a raw
/// `;`), so an exemption by suffix is no door into a protected path; and
/// overlong UTF-8 dots are dot segments even where strict paths are off.
#[test]
fn encoded_semicolons_and_overlong_dots_are_no_door() {
    let s = stack("<LocationMatch \"\\.css$\">\n  TwoFactor Off\n</LocationMatch>\n");
    let send = |port: u16, target: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nX-Remote-User: alice\r\nConnection: close\r\n\r\n");
        send_raw_from(GATEWAY_ADDR, port, raw.as_bytes(), false)
    };
    // The exemption itself works: a real stylesheet path reaches the backend.
    let css = send(s.protected.port, "/app/style.css");
    assert!(css.text().contains(testkit::backend::MARKER), "{} {}", css.status, css.text());
    for target in ["/app/secret%3Bx.css", "/app/secret%3bx.css", "/public/page%3Bx"] {
        let r = send(s.protected.port, target);
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        assert!(!r.text().contains(testkit::backend::MARKER), "{target} reached the backend:\n{}", r.text());
    }
    s.protected.wait_for_error_log("event=bad-path reason=semicolon");

    let lax = stack("TwoFactorStrictPath Off\n");
    for target in ["/public/%c0%ae%c0%ae/app/", "/public/%e0%80%ae%e0%80%ae/app/", "/public/..%c0%afapp/"] {
        let r = send(lax.protected.port, target);
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        assert!(!r.text().contains(testkit::backend::MARKER), "{target} reached the backend:\n{}", r.text());
    }
    // Non-strict still lets through what it promises to: ";" parameters.
    let r = send(lax.protected.port, "/public/page;jsessionid=1");
    assert!(r.text().contains("GET /public/page;jsessionid=1 "), "{}", r.text());
}

#[test]
fn absolute_form_targets_are_judged_by_their_path() {
    let s = stack("");
    let port = s.protected.port;
    let send = |target: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Remote-User: alice\r\nAccept: text/html\r\nConnection: close\r\n\r\n");
        send_raw_from(GATEWAY_ADDR, port, raw.as_bytes(), false)
    };
    let r = send(&format!("http://127.0.0.1:{port}/app/x"));
    assert_eq!(r.status, 303);
    assert!(r.header("Location").unwrap().starts_with("/2fa/?r="));
    assert_eq!(send("http://evil.example/app/x").status, 303);
    assert_eq!(send(&format!("http://127.0.0.1:{port}/public/..;/app/")).status, 400);
}

#[test]
fn a_server_without_twofactor_directives_is_unchanged() {
    // The module loaded into a server without TwoFactor directives changes
    // nothing; compared side by side with the same server without it.
    let dir = test_dir("twofactor-unconfigured");
    let backend = testkit::backend::EchoBackend::start();
    let body = format!("ProxyPass /public http://127.0.0.1:{}/public\n", backend.port);
    let with = Apache::start(&dir.path().join("with"), ApacheOptions::default(), &body);
    let without = Apache::start(
        &dir.path().join("without"),
        ApacheOptions { with_module: false, ..ApacheOptions::default() },
        &body,
    );
    let requests = [
        Request::get("/public/x").user("alice"),
        Request::get("/public/x").user("alice").from(testkit::http::STRANGER_ADDR),
        Request::get("/public/x").header("X_Remote_User", "admin").header("WL-Proxy-Client-IP", "1.2.3.4"),
        Request::get("/public/..;/x"),
        Request::get("/public/a%25b;c"),
        Request::get("/public/x").header("Connection", "close, X-Remote-User"),
        Request::new("POST", "/public/x").body(b"a=1"),
        Request::get("/2fa/"),
    ];
    for req in requests {
        let a = req.send(with.port);
        let b = req.send(without.port);
        assert_eq!(a.status, b.status, "{req:?}");
        let strip = |t: String| {
            t.lines()
                .filter(|l| !l.starts_with("X-Forwarded") && !l.starts_with("Host:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(a.text()), strip(b.text()), "{req:?}");
    }
    assert!(!with.error_log().contains("[twofactor:"), "{}", with.error_log());
}
