//! twofactorctl against the same configuration file and directory as a
//! running protected server.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use testkit::http::Request;
use testkit::stack::{Stack, StackOptions};

fn ctl(s: &Stack, args: &[&str]) -> (i32, String, String) {
    let conf = s.protected.root.join("httpd.conf");
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(&conf)
        .args(args)
        .output()
        .expect("run twofactorctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gen_key_writes_a_private_key_once() {
    let dir = testkit::process::test_dir("twofactor-genkey");
    let file = dir.path().join("new.key");
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_twofactorctl")).args(args).output().unwrap();
    let out = run(&["gen-key", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = std::fs::read(&file).unwrap();
    assert_eq!(first.len(), 32);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let again = run(&["gen-key", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("use --force"));
    assert_eq!(std::fs::read(&file).unwrap(), first, "an existing key is never overwritten silently");
    assert!(run(&["gen-key", "--force", file.to_str().unwrap()]).status.success());
    assert_ne!(std::fs::read(&file).unwrap(), first);
    let usage = run(&["gen-key"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn status_and_revoke() {
    let s =
        Stack::start(StackOptions { gateway: false, extra: "TwoFactorCacheTTL 0\n".into(), ..StackOptions::default() });
    let port = s.protected.port;

    let (code, out, err) = ctl(&s, &["status", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("user:           alice (uid=alice,ou=people,dc=example,dc=test)"), "{out}");
    assert!(out.contains("completions:    0"), "{out}");

    // A browser completes the challenge (test builds' success path).
    let done = Request::get("/2fa/__test_complete").user("alice").send(port);
    let cookie = done.set_cookie("TwoFactorSession").unwrap().split(';').next().unwrap().to_string();
    let get = || Request::get("/app/").user("alice").browser().header("Cookie", &cookie).send(port).status;
    assert_eq!(get(), 200);

    let (code, out, _) = ctl(&s, &["status", "ALICE", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["user"], "alice");
    assert_eq!(status["completions"].as_array().unwrap().len(), 1);
    assert_eq!(status["completions"][0]["method"], "test");
    assert_eq!(status["completions"][0]["bound_to"], "session");
    assert!(!out.contains(cookie.split('=').nth(1).unwrap()), "status printed the cookie");

    let (code, out, _) = ctl(&s, &["revoke", "alice"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "alice: 1 completion(s) revoked");
    assert_eq!(get(), 303, "a revoked completion no longer lets the browser in");

    let (code, _, err) = ctl(&s, &["status", "dave"]);
    assert_eq!(code, 3);
    assert!(err.contains("no user 'dave' in the directory"), "{err}");
}

#[test]
fn configuration_errors_name_the_file() {
    let dir = testkit::process::test_dir("twofactor-ctl-conf");
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "TwoFactorMaxAttempts 50\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(&conf)
        .args(["status", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.conf:1: TwoFactorMaxAttempts: invalid value '50'"), "{err}");
}
