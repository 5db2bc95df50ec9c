//! A panic inside the module never takes an Apache child down: it becomes
//! a 500 (or a configuration error) and one log line, and the same child
//! goes on serving. The panicking paths exist only in builds with the
//! `test-hooks` feature, which scripts/test.sh enables.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use testkit::apache::{config_test, ApacheOptions};
use testkit::http::Request;
use testkit::process::test_dir;
use testkit::stack::{Stack, StackOptions};

#[test]
fn a_panic_in_a_hook_or_the_handler_is_a_500_and_the_child_lives() {
    // One child with one thread: if it died, the next request would find
    // a new process (and a log line about the dead one).
    let s = Stack::start(StackOptions {
        gateway: false,
        apache: ApacheOptions { threads: 1, ..ApacheOptions::default() },
        ..StackOptions::default()
    });
    let port = s.protected.port;
    let before = Request::get("/2fa/").user("alice").send(port);
    assert_eq!(before.status, 200);

    for (path, hook) in [("/__twofactor_test/panic", "access-checker"), ("/2fa/__panic", "handler")] {
        let r = Request::get(path).user("alice").browser().send(port);
        assert_eq!(r.status, 500, "{path}");
        let log = s.protected.wait_for_error_log(&format!("event=internal-error hook={hook} panic=src/"));
        let line = log.lines().find(|l| l.contains(&format!("hook={hook}"))).unwrap();
        assert!(line.contains(".rs:"), "the line names the place: {line}");
        assert!(!line.contains("deliberate"), "the panic's message stays out of the log: {line}");
    }
    for _ in 0..20 {
        assert_eq!(Request::get("/2fa/").user("alice").send(port).status, 200);
        assert_eq!(Request::get("/app/").user("alice").browser().send(port).status, 303);
    }
    let log = s.protected.error_log();
    for fatal in ["exit signal", "Abort", "panicked at", "child process"] {
        assert!(!log.contains(fatal), "{fatal:?} in the error log:\n{log}");
    }
    assert!(!s.protected.stderr().contains("panicked"), "{}", s.protected.stderr());
}

#[test]
fn a_panic_in_a_directive_is_a_configuration_error() {
    let dir = test_dir("twofactor-panic-directive");
    let (ok, out) = config_test(dir.path(), &ApacheOptions::default(), "TwoFactorTestPanic now\n");
    assert!(!ok);
    assert!(out.contains("mod_twofactor: internal error while reading this directive"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}
