//! twofactorctl against the same configuration file and directory as a
//! running protected server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

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

/// The code for `secret` now, with the given parameters.
fn code_now(secret: &[u8], params: twofactor_core::totp::TotpParams) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    twofactor_core::totp::totp(secret, params, now).unwrap()
}

/// Logs `user` in through the challenge's TOTP form with `code`; the status of the answer.
fn totp_login(s: &Stack, user: &str, code: &str) -> u16 {
    let mut b = testkit::session::Session::direct(s.protected.port, user);
    let page = b.follow("/app/");
    let f = testkit::session::form(&page.text(), "/totp");
    b.post(&f.action, &f.with(&[("code", code)])).status
}

const RFC_SEED: &[u8] = b"12345678901234567890";

#[test]
fn every_verb_has_help() {
    for verb in [
        "gen-key",
        "status",
        "enroll",
        "import",
        "recovery",
        "rekey",
        "reset",
        "unlock",
        "revoke",
        "locked",
        "webauthn",
        "check-directory",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl")).args([verb, "--help"]).output().unwrap();
        assert!(out.status.success(), "{verb} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: twofactorctl"), "{verb}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl")).arg("no-such-verb").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn enroll_recovery_lock_unlock_reset() {
    use twofactor_core::config::Algorithm;
    use twofactor_core::totp::TotpParams;
    let s = Stack::start(StackOptions {
        gateway: false,
        extra: "TwoFactorMaxAttempts 2\n".into(),
        ..StackOptions::default()
    });
    let secret = twofactor_core::totp::base32_encode(RFC_SEED);
    let (code, out, err) = ctl(&s, &["enroll", "alice", "--secret", &secret, "--digits", "8", "--algorithm", "sha256"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice enrolled (SHA256, 8 digits, 30 s)"), "{out}");
    assert!(out.contains("otpauth://totp/127.0.0.1:alice?secret="), "{out}");
    assert!(out.contains('\u{2588}'), "a QR code for the terminal:\n{out}");
    let params = TotpParams { algorithm: Algorithm::Sha256, digits: 8, period: 30 };
    assert_eq!(totp_login(&s, "alice", &code_now(RFC_SEED, params)), 303);

    let (_, out, _) = ctl(&s, &["--json", "recovery", "alice"]);
    let codes: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = codes["codes"][0].as_str().unwrap().to_string();
    assert_eq!(codes["codes"].as_array().unwrap().len(), 10);

    // Two wrong codes lock alice; `locked` lists her, `unlock` lets her in again.
    assert_eq!(totp_login(&s, "alice", "00000000"), 200);
    assert_eq!(totp_login(&s, "alice", "00000001"), 403);
    let (_, out, _) = ctl(&s, &["locked"]);
    assert!(out.starts_with("alice\tuntil "), "{out}");
    let (_, out, _) = ctl(&s, &["--json", "status", "alice"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["locked"], true);
    assert_eq!(status["totp"]["digits"], 8);
    assert_eq!(status["recovery_codes_left"], 10);
    let (code, out, _) = ctl(&s, &["unlock", "alice"]);
    assert_eq!((code, out.trim()), (0, "alice: unlocked"));
    assert_eq!(ctl(&s, &["locked"]).1.trim(), "no user is locked");

    // A recovery code from the new set works.
    let mut b = testkit::session::Session::direct(s.protected.port, "alice");
    b.follow("/app/");
    let page = b.get("/2fa/recovery");
    let f = testkit::session::form(&page.text(), "/recovery");
    assert_eq!(b.post(&f.action, &f.with(&[("code", &first)])).status, 303);

    let (code, out, _) = ctl(&s, &["reset", "alice"]);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = ctl(&s, &["status", "alice"]);
    assert!(out.contains("enrolled:       no") && out.contains("completions:    0"), "{out}");
    for log in [s.protected.error_log(), s.directory.log()] {
        assert!(!log.contains(&secret) && !log.contains(&first));
    }
    // alice was told of each change by mail: enrollment and recovery codes
    // by an administrator, the lock, the recovery code she used.
    let notices = s.smtp.wait_for_notices("alice@example.test", 4, std::time::Duration::from_secs(15));
    let subjects: Vec<&str> =
        notices.iter().map(|n| n.lines().find(|l| l.starts_with("Subject: ")).unwrap_or_default()).collect();
    for expected in [
        "Subject: An authenticator was set up for 127.0.0.1",
        "Subject: New recovery codes were issued for 127.0.0.1",
        "Subject: Your second sign-in step was locked for 127.0.0.1",
        "Subject: A recovery code was used for 127.0.0.1",
    ] {
        assert!(subjects.contains(&expected), "{expected} not in {subjects:?}");
    }
    let joined = |n: &String| n.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(notices.iter().filter(|n| joined(n).contains("UTC, by an administrator.")).count() >= 2);
    assert!(notices.iter().all(|n| !n.contains(&secret) && !n.contains(&first)), "a secret in a notice");
    // --no-notify: no mail for this one.
    let (code, _, err) = ctl(&s, &["--no-notify", "recovery", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("notice mailed"), "{err}");
}

#[test]
fn import_csv_and_pskc_then_log_in_with_the_token() {
    use twofactor_core::config::Algorithm;
    use twofactor_core::totp::TotpParams;
    let s = Stack::start(StackOptions { gateway: false, ..StackOptions::default() });
    let dir = s.dir.path();
    let bob_seed = b"0123456789abcdefghij0123456789ab";
    let csv = format!(
        "serial,secret,algorithm,digits,period,user\nTK0001,{},SHA256,6,60,bob\nTK0002,{},SHA1,6,30,\n",
        twofactor_core::totp::base32_encode(bob_seed),
        twofactor_core::totp::base32_encode(RFC_SEED)
    );
    std::fs::write(dir.join("tokens.csv"), &csv).unwrap();
    let file = dir.join("tokens.csv");
    let file = file.to_str().unwrap();

    let (code, out, err) = ctl(&s, &["import", "--dry-run", file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would assign token TK0001 to bob (SHA256, 6 digits, 60 s)"), "{out}");
    assert!(out.contains("skipped token TK0002: no user in the file"), "{out}");
    assert!(ctl(&s, &["status", "bob"]).1.contains("enrolled:       no"), "a dry run changes nothing");

    let (code, out, err) = ctl(&s, &["import", file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("assigned token TK0001 to bob"), "{out}");
    assert!(ctl(&s, &["status", "bob"]).1.contains("enrolled:       yes (SHA256, 6 digits, 60 s, token TK0001)"));
    let bob = TotpParams { algorithm: Algorithm::Sha256, digits: 6, period: 60 };
    assert_eq!(totp_login(&s, "bob", &code_now(bob_seed, bob)), 303);

    // PSKC (RFC 6030) for carol, whose entry has no twoFactorUser class yet.
    let pskc = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Token2</Manufacturer><SerialNo>TK0003</SerialNo></DeviceInfo>
    <Key Id="1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>{}</PlainValue></Secret>
        <TimeInterval><PlainValue>30</PlainValue></TimeInterval>
      </Data>
      <UserId>carol</UserId>
    </Key>
  </KeyPackage>
</KeyContainer>
"#,
        base64_of(RFC_SEED)
    );
    std::fs::write(dir.join("tokens.xml"), pskc).unwrap();
    let (code, out, err) = ctl(&s, &["--json", "import", dir.join("tokens.xml").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["assigned"][0]["user"], "carol");
    let carol = TotpParams { algorithm: Algorithm::Sha1, digits: 8, period: 30 };
    assert_eq!(totp_login(&s, "carol", &code_now(RFC_SEED, carol)), 303);

    // A password-protected PSKC file (RFC 6030 Figure 5's encrypted values,
    // as a TOTP key), assigned to alice.
    let fixture = testkit::repo_root().join("core/tests/data/import/rfc6030_figure5_totp.xml");
    let encrypted =
        std::fs::read_to_string(fixture).unwrap().replace("</pskc:Key>", "<pskc:UserId>alice</pskc:UserId></pskc:Key>");
    std::fs::write(dir.join("encrypted.xml"), encrypted).unwrap();
    std::fs::write(dir.join("pskc.pw"), "qwerty\n").unwrap();
    let encrypted_file = dir.join("encrypted.xml");
    let (code, _, err) = ctl(&s, &["import", encrypted_file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("password"), "{err}");
    std::fs::write(dir.join("wrong.pw"), "qwertz\n").unwrap();
    let wrong = dir.join("wrong.pw");
    let (code, _, err) =
        ctl(&s, &["import", "--password-file", wrong.to_str().unwrap(), encrypted_file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("wrong password or corrupted file"), "{err}");
    let pw = dir.join("pskc.pw");
    let (code, out, err) =
        ctl(&s, &["import", "--password-file", pw.to_str().unwrap(), encrypted_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("assigned token 987654321 to alice (SHA1, 8 digits, 30 s)"), "{out}");
    assert_eq!(totp_login(&s, "alice", &code_now(RFC_SEED, carol)), 303);
    let (_, out, _) = ctl(&s, &["reset", "alice"]);
    assert!(out.contains("removed"), "{out}");

    // A bad file names the line and the problem, and imports nothing.
    let bad = "serial,secret,algorithm,digits,period,user\nTK0009,GEZDGNBVGY3TQOJQ,SHA1,6,30,alice\nTK0010,GEZDGNBVGY3TQOJQ,SHA1,7,30,dave\n";
    std::fs::write(dir.join("bad.csv"), bad).unwrap();
    let (code, _, err) = ctl(&s, &["import", dir.join("bad.csv").to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("line 3"), "{err}");
    assert!(ctl(&s, &["status", "alice"]).1.contains("enrolled:       no"), "nothing imported");
    let unknown = "serial,secret,algorithm,digits,period,user\nTK0011,GEZDGNBVGY3TQOJQGEZA,SHA1,6,30,alice\nTK0012,GEZDGNBVGY3TQOJQGEZA,SHA1,6,30,dave\n";
    std::fs::write(dir.join("unknown.csv"), unknown).unwrap();
    let (code, _, err) = ctl(&s, &["import", dir.join("unknown.csv").to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("no user 'dave'"), "{err}");
    assert!(ctl(&s, &["status", "alice"]).1.contains("enrolled:       no"), "all or nothing");
}

#[test]
fn rekey_moves_secrets_to_the_new_key() {
    use twofactor_core::config::Algorithm;
    use twofactor_core::totp::TotpParams;
    let mut s = Stack::start(StackOptions { gateway: false, ..StackOptions::default() });
    let secret = twofactor_core::totp::base32_encode(RFC_SEED);
    assert_eq!(ctl(&s, &["enroll", "alice", "--secret", &secret]).0, 0);
    // Rotate: a new key first, the old one still listed.
    let root = s.protected.root.clone();
    std::fs::rename(root.join("twofactor.key"), root.join("old.key")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .args(["gen-key"])
        .arg(root.join("twofactor.key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let body_with = |keys: &str| {
        testkit::stack::protected_body(
            &root,
            &s.directory,
            &s.smtp,
            &s.backend,
            &format!("TwoFactorSecretKeyFile {keys}\n"),
        )
    };
    let both = body_with(&format!("{r}/twofactor.key {r}/old.key", r = root.display()));
    s.protected.restart_with(&both);
    let (code, out, err) = ctl(&s, &["rekey"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1 secret(s) re-sealed, 0 already current\n1 stored value(s) signed with the current key\n");
    let again = ctl(&s, &["rekey"]).1;
    assert_eq!(again, "0 secret(s) re-sealed, 1 already current\n0 stored value(s) signed with the current key\n");
    // The old key can go: the secret opens with the new one alone.
    let only_new = body_with(&format!("{}/twofactor.key", root.display()));
    s.protected.restart_with(&only_new);
    let params = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
    assert_eq!(totp_login(&s, "alice", &code_now(RFC_SEED, params)), 303);
}

fn base64_of(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// After an upgrade from a version that stored values without a MAC: they
/// are not trusted (the user looks unenrolled), unless the transition
/// switch reads them; `rekey` signs them, and they work without it.
#[test]
fn rekey_signs_the_values_an_earlier_version_wrote() {
    use twofactor_core::config::Algorithm;
    use twofactor_core::totp::TotpParams;
    let mut s = Stack::start(StackOptions { gateway: false, ..StackOptions::default() });
    let secret = twofactor_core::totp::base32_encode(RFC_SEED);
    assert_eq!(ctl(&s, &["--no-notify", "enroll", "alice", "--secret", &secret]).0, 0);
    // What an earlier version wrote: the same value, without its MAC.
    let dn = s.directory.user_dn("alice");
    let signed = s.directory.attr_values(&dn, "twoFactorTOTP").pop().unwrap();
    let unsigned = signed.splitn(3, '.').nth(2).unwrap().to_string();
    assert!(unsigned.starts_with("{\"v\":1,"), "{unsigned}");
    s.directory.set_state("alice", "totp", &[&unsigned]);
    let params = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
    let mut b = testkit::session::Session::direct(s.protected.port, "alice");
    let page = b.follow("/2fa/totp");
    let f = testkit::session::form(&page.text(), "/totp");
    let refused = b.post(&f.action, &f.with(&[("code", &code_now(RFC_SEED, params))]));
    assert!(refused.text().contains("No authenticator is set up"), "{}", refused.text());
    s.protected.wait_for_error_log("event=tampered role=totp user=alice reason=unsigned");
    let status = ctl(&s, &["status", "alice"]).1;
    assert!(status.contains("enrolled:       yes (unreadable record)"), "{status}");
    assert!(status.contains("untrusted:      a totp value (unsigned): not used"), "{status}");

    // The transition switch reads it.
    let root = s.protected.root.clone();
    let body = |extra: &str| testkit::stack::protected_body(&root, &s.directory, &s.smtp, &s.backend, extra);
    s.protected.restart_with(&body("TwoFactorAcceptUnsignedState On\n"));
    assert_eq!(totp_login(&s, "alice", &code_now(RFC_SEED, params)), 303);

    // rekey signs it; without the switch it is trusted again.
    s.protected.restart_with(&body(""));
    let (code, out, err) = ctl(&s, &["rekey"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 secret(s) re-sealed, 0 already current\n"), "{out}");
    let signed_now: usize =
        out.lines().find_map(|l| l.strip_suffix(" stored value(s) signed with the current key")?.parse().ok()).unwrap();
    assert!(signed_now >= 1, "{out}");
    assert!(s.directory.attr_values(&dn, "twoFactorTOTP")[0].starts_with("s1."));
    // The next step's code (this step's was used a moment ago: the replay state holds).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let next = twofactor_core::totp::totp(RFC_SEED, params, now + 30).unwrap();
    assert_eq!(totp_login(&s, "alice", &next), 303, "the signed record is trusted");
}
