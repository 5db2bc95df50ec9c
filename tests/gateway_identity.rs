//! The gateway's identity assertion, through real Apache: only the trusted
//! gateway may assert a user, only in one clean header, and nothing that
//! looks like it reaches a backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use testkit::backend::{seen_header, MARKER};
use testkit::http::{basic_auth, Headers, Request, GATEWAY_ADDR, STRANGER_ADDR};
use testkit::stack::{Stack, StackOptions};

fn stack() -> Stack {
    Stack::start(StackOptions { gateway: false, ..StackOptions::default() })
}

#[test]
fn a_stranger_cannot_assert_an_identity() {
    let s = stack();
    let port = s.protected.port;
    for path in ["/app/", "/app/x?y=1", "/2fa/"] {
        let r = Request::get(path).user("alice").browser().from(STRANGER_ADDR).send(port);
        assert_eq!(r.status, 403, "{path}");
        assert!(r.text().contains("accepts requests from the sign-in gateway only"), "{}", r.text());
    }
    let log = s.protected.wait_for_error_log("event=spoof reason=untrusted-peer peer=127.0.0.2");
    assert!(!log.contains("event=challenge"), "a stranger's request got as far as the challenge:\n{log}");

    // Outside enforcement a stranger is served, but its identity claim is gone.
    let r = Request::get("/public/").user("alice").header("X_Remote_User", "alice").from(STRANGER_ADDR).send(port);
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with(MARKER));
    assert!(seen_header(&r.text(), "X-Remote-User").is_empty(), "{}", r.text());
    assert!(seen_header(&r.text(), "X_Remote_User").is_empty(), "{}", r.text());
}

#[test]
fn identity_header_variants() {
    let s = stack();
    let port = s.protected.port;
    let cases: &[(Headers, u16, &str)] = &[
        (&[], 400, "detail=missing"),
        // Apache folds repeated request headers into one comma-joined value.
        (&[("X-Remote-User", "alice"), ("X-Remote-User", "alice")], 400, "detail=comma-joined user=alice,%20alice"),
        (&[("X-Remote-User", "alice"), ("x-remote-user", "bob")], 400, "detail=comma-joined user=alice,%20bob"),
        (&[("X-Remote-User", "alice,bob")], 400, "detail=comma-joined"),
        (&[("X-Remote-User", "alice, bob")], 400, "detail=comma-joined"),
        (&[("X-Remote-User", "al ice")], 400, "detail=pattern-mismatch"),
        (&[("X-Remote-User", "alice)(uid=*")], 400, "detail=pattern-mismatch"),
        (&[("X-Remote-User", "*")], 400, "detail=pattern-mismatch"),
        (&[("X-Remote-User", &"a".repeat(65))], 400, "detail=pattern-mismatch"),
        (&[("X-Remote-User", "")], 400, "detail=pattern-mismatch"),
        // A look-alike is removed, so only the real header counts.
        (&[("X_Remote_User", "alice")], 400, "detail=missing"),
        (&[("X-Remote-User", "alice"), ("X_REMOTE_USER", "admin")], 303, "event=challenge user=alice"),
        // Header names are case-insensitive: this is the header itself.
        (&[("x-remote-user", "alice")], 303, "event=challenge user=alice"),
        (&[("X-Remote-User", "bob@example.test")], 303, "event=challenge user=bob@example.test"),
    ];
    for (headers, status, log_needle) in cases {
        let mut req = Request::get("/app/").browser();
        for (k, v) in *headers {
            req = req.header(k, v);
        }
        let r = req.send(port);
        assert_eq!(r.status, *status, "{headers:?}: {}", r.text());
        s.protected.wait_for_error_log(log_needle);
    }
    // Bad bytes are logged escaped, never raw.
    let r = Request::get("/app/").browser().user("al\"ice").send(port);
    assert_eq!(r.status, 400);
    s.protected.wait_for_error_log("user=al%22ice");
}

#[test]
fn look_alikes_and_weblogic_headers_never_reach_the_backend() {
    let s = stack();
    let port = s.protected.port;
    let r = Request::get("/public/")
        .user("alice")
        .header("X_Remote_User", "admin")
        .header("WL-Proxy-Client-IP", "10.9.9.9")
        .from(STRANGER_ADDR)
        .send(port);
    assert_eq!(r.status, 200);
    let body = r.text();
    for name in ["X-Remote-User", "X_Remote_User", "WL-Proxy-Client-IP"] {
        assert!(seen_header(&body, name).is_empty(), "{name} reached the backend:\n{body}");
    }
    // From the gateway, WebLogic headers pass (the gateway may set them);
    // the unverified identity does not leave an unprotected scope.
    let r = Request::get("/public/")
        .user("alice")
        .header("X_Remote_User", "admin")
        .header("WL-Proxy-Client-IP", "10.9.9.9")
        .from(GATEWAY_ADDR)
        .send(port);
    let body = r.text();
    assert_eq!(seen_header(&body, "WL-Proxy-Client-IP"), vec!["10.9.9.9"], "{body}");
    assert!(seen_header(&body, "X_Remote_User").is_empty(), "{body}");
    assert!(seen_header(&body, "X-Remote-User").is_empty(), "{body}");
}

#[test]
fn a_security_header_named_in_connection_is_refused_everywhere() {
    let s = stack();
    let port = s.protected.port;
    for path in ["/app/", "/public/", "/2fa/"] {
        for connection in ["close, X-Remote-User", "x_remote_user", "WL-Proxy-SSL"] {
            let r = Request::get(path).user("alice").browser().header("Connection", connection).send(port);
            assert_eq!(r.status, 400, "{path} {connection}");
        }
    }
    s.protected.wait_for_error_log("event=deny reason=bad-header detail=connection-names-security-header");
}

#[test]
fn the_shared_secret_header_is_checked_and_removed() {
    let dir = testkit::process::test_dir("twofactor-secret");
    let secret_file = dir.path().join("gateway.secret");
    std::fs::write(&secret_file, "correct horse battery staple\n").unwrap();
    let s = Stack::start(StackOptions {
        gateway: false,
        extra: format!(
            "TwoFactorProxySecretHeader X-Gateway-Secret\nTwoFactorProxySecretFile {}\n",
            secret_file.display()
        ),
        ..StackOptions::default()
    });
    let port = s.protected.port;
    let secret = "correct horse battery staple";
    let cases: &[(&[&str], u16)] = &[(&[], 403), (&["wrong"], 403), (&[secret, secret], 403), (&[secret], 303)];
    for (values, status) in cases {
        let mut req = Request::get("/app/").user("alice").browser();
        for v in *values {
            req = req.header("X-Gateway-Secret", v);
        }
        assert_eq!(req.send(port).status, *status, "{values:?}");
    }
    s.protected.wait_for_error_log("event=spoof reason=bad-proxy-secret");
    // The secret is for the module only.
    let r = Request::get("/public/").header("X-Gateway-Secret", secret).send(port);
    assert!(seen_header(&r.text(), "X-Gateway-Secret").is_empty(), "{}", r.text());
    assert!(!s.protected.error_log().contains(secret));
}

#[test]
fn through_the_gateway_a_navigation_goes_to_the_challenge_page() {
    let s = Stack::start(StackOptions::default());
    let port = s.gateway_port();
    let auth = basic_auth("alice", "alice-pw");

    // No first factor: the gateway asks for it, the module never sees the request.
    assert_eq!(Request::get("/app/").browser().send(port).status, 401);

    let r = Request::get("/app/report?id=7")
        .browser()
        .header("Authorization", &auth)
        .header("X-Remote-User", "admin")
        .header("X-Forwarded-Host", "evil.example")
        .send(port);
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("Location").expect("Location").to_string();
    assert!(location.starts_with("/2fa/?r="), "the redirect must be a path: {location}");
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    // The gateway replaced the client's claim with the authenticated name.
    s.protected.wait_for_error_log("event=challenge user=alice reason=no-session response=303");
    s.protected.wait_for_access_log("127.0.0.1 alice \"GET /app/report?id=7 HTTP/1.1\" 303");

    let page = Request::get(&location).browser().header("Authorization", &auth).send(port);
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<strong>alice</strong>"), "{}", page.text());
    assert_eq!(page.header("Cache-Control"), Some("no-store"));
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
    assert!(page.header("Content-Security-Policy").is_some_and(|v| v.contains("frame-ancestors 'none'")));
}

#[test]
fn the_challenge_path_is_never_proxied() {
    // A catch-all ProxyPass would take /2fa/ to the backend; the module keeps it.
    let s = Stack::start(StackOptions {
        gateway: false,
        extra: "ProxyPass /2fa/ http://127.0.0.1:9/never\n".into(),
        ..StackOptions::default()
    });
    let r = Request::get("/2fa/").user("alice").browser().send(s.protected.port);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains(MARKER));
    assert!(r.text().contains("Second sign-in step"));
}
