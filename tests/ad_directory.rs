//! Active Directory as the directory (Samba's AD DC, `testkit::samba`),
//! tried as an attacker who holds the victim's AD password: the first
//! factor, and an LDAP bind credential for her own entry.
//!
//! * Under `TwoFactorDirectory ad` she can write none of the attributes that
//!   hold her state (AD's default access rules), and `twofactorctl
//!   check-directory --as` says so.
//! * Under the mapping an earlier guide recommended
//!   (`msDS-cloudExtensionAttribute1`..`4` and two more of the property sets
//!   SELF may write), `check-directory` names every such attribute, and what
//!   she writes gains her nothing: a completion relabelled to pass a
//!   step-up, a lock deleted or an older count put back, an older TOTP step
//!   put back to replay a code, a passkey of her own copied in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::process::Command;

use testkit::directory::Kind;
use testkit::passkey_flows::{begin, register};
use testkit::samba::{AD_ATTRIBUTES, SELF_WRITABLE};
use testkit::session::{form, Session};
use testkit::softkey::SoftKey;
use testkit::stack::{Stack, StackOptions};
use twofactor_core::config::{Algorithm, Role};
use twofactor_core::totp::{self, TotpParams};

const ORIGIN: &str = "https://gateway.example.org";
/// The mapping of the earlier guide: every one of these a user may write on
/// her own entry (Personal-Information, Web-Information).
const SELF_WRITABLE_MAPPING: &str = "TwoFactorAttribute totp msDS-cloudExtensionAttribute1\n\
                                     TwoFactorAttribute totp-last msDS-cloudExtensionAttribute2\n\
                                     TwoFactorAttribute failures msDS-cloudExtensionAttribute3\n\
                                     TwoFactorAttribute email-code msDS-cloudExtensionAttribute4\n\
                                     TwoFactorAttribute completion url\n\
                                     TwoFactorAttribute webauthn userSharedFolderOther\n";
const SEED: &[u8] = b"12345678901234567890";
const PARAMS: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };

fn ad_stack(extra: &str) -> Stack {
    let extra = format!(
        "TwoFactorMethods totp email recovery webauthn\n\
         TwoFactorWebAuthnOrigin {ORIGIN}\n\
         TwoFactorEnrollmentProof none\n\
         TwoFactorMaxAttempts 3\n\
         <Location /app/admin>\n  TwoFactorRequireMethod webauthn\n</Location>\n{extra}"
    );
    Stack::start(StackOptions { gateway: false, extra, directory: Some(Kind::SambaAd), ..StackOptions::default() })
}

fn ctl(s: &Stack, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(s.protected.root.join("httpd.conf"))
        .args(args)
        .output()
        .expect("run twofactorctl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// `twofactorctl check-directory --as USER`, her password on standard input.
fn check_directory_as(s: &Stack, user: &str) -> (i32, String, String) {
    let password_file = s.dir.path().join(format!("{user}.pw"));
    std::fs::write(&password_file, format!("{}\n", s.directory.user_password(user))).unwrap();
    ctl(s, &["check-directory", "--as", user, "--password-file", password_file.to_str().unwrap()])
}

/// An LDAP modify of `user`'s own entry, bound as `user` with her AD password.
fn as_herself(s: &Stack, user: &str, changes: &str) -> Result<String, String> {
    let dn = s.directory.user_dn(user);
    let ldif = format!("dn: {dn}\nchangetype: modify\n{changes}");
    s.directory.modify_ldif_as(&dn, &s.directory.user_password(user), &ldif)
}

/// `user`'s values of `attr` (named: the stack knows only the profile's attributes).
fn values(s: &Stack, user: &str, attr: &str) -> Vec<String> {
    s.directory.attr_values(&s.directory.user_dn(user), attr)
}

/// A stored value without its signature (`s1.MAC.`): what an earlier
/// version wrote.
fn payload(stored: &str) -> &str {
    stored.strip_prefix("s1.").and_then(|rest| rest.split_once('.')).map_or(stored, |(_, json)| json)
}

fn totp_code(offset_steps: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    totp::totp(SEED, PARAMS, now.saturating_add_signed(offset_steps * 30)).unwrap()
}

/// Enrolls `user` with the RFC seed (an administrator's enrollment).
fn enroll(s: &Stack, user: &str) {
    let secret = totp::base32_encode(SEED);
    let (code, _, err) = ctl(s, &["--no-notify", "enroll", user, "--secret", &secret]);
    assert_eq!(code, 0, "{err}");
}

/// Posts `code` to the TOTP form of a fresh browser of `user`.
fn post_code(b: &mut Session, code: &str) -> testkit::http::Response {
    let page = b.follow("/2fa/totp");
    let f = form(&page.text(), "/totp");
    b.post(&f.action, &f.with(&[("code", code)]))
}

#[test]
fn the_ad_attributes_are_the_ones_the_test_domain_grants() {
    let module: Vec<(&str, &str)> = Role::ALL.iter().map(|r| (r.as_str(), r.ad_attribute())).collect();
    assert_eq!(module, AD_ATTRIBUTES.to_vec());
    for attr in SELF_WRITABLE {
        assert!(SELF_WRITABLE_MAPPING.contains(&format!(" {attr}\n")), "{attr} is mapped in the tests");
    }
}

#[test]
fn under_the_ad_profile_a_user_can_write_none_of_her_state_and_check_directory_agrees() {
    let s = ad_stack("");
    for (role, attr) in AD_ATTRIBUTES {
        for change in [format!("replace: {attr}\n{attr}: forged\n"), format!("delete: {attr}\n")] {
            let refused = as_herself(&s, "alice", &change).expect_err(&format!("alice wrote {attr} ({role})"));
            assert!(refused.contains("Insufficient access"), "{attr}: {refused}");
        }
    }
    // What she may write by AD's rules is refused to nobody: the test is not vacuous.
    as_herself(&s, "alice", "replace: msDS-cloudExtensionAttribute1\nmsDS-cloudExtensionAttribute1: mine\n").unwrap();

    let (code, out, err) = check_directory_as(&s, "alice");
    eprintln!("{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("directory: active-directory (writability by allowedAttributesEffective)"), "{out}");
    assert!(out.contains("no problem found"), "{out}");
    for (_, attr) in AD_ATTRIBUTES {
        let line = out.lines().find(|l| l.split_whitespace().nth(1) == Some(attr)).unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains(" no ") && line.trim_end().ends_with("yes"), "{line}");
    }
    let (code, _, err) = ctl(&s, &["check-directory", "--as", "alice"]);
    assert_eq!(code, 2, "--as needs a password: {err}");
}

#[test]
fn check_directory_names_every_mapped_attribute_a_user_can_write() {
    let s = ad_stack(SELF_WRITABLE_MAPPING);
    let (code, out, err) = check_directory_as(&s, "alice");
    eprintln!("{out}{err}");
    assert_eq!(code, 1, "{out}{err}");
    for attr in SELF_WRITABLE {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("problem: {attr} (")) && l.contains("alice can write it")),
            "{attr} not named:\n{out}"
        );
    }
    assert!(out.contains("Personal-Information"), "the property set is named:\n{out}");
    assert_eq!(out.matches("problem: ").count(), SELF_WRITABLE.len(), "{out}");
    assert!(err.contains("6 problem(s)"), "{err}");
    let (code, json, _) = ctl(&s, &["--json", "check-directory", "--as", "alice", "--password-file", &pw_file(&s)]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 6);
    assert_eq!(report["user"], "alice");
}

fn pw_file(s: &Stack) -> String {
    let file = s.dir.path().join("alice.pw");
    std::fs::write(&file, s.directory.user_password("alice")).unwrap();
    file.to_str().unwrap().to_string()
}

// Each of the four writes of an attacker who holds the victim's AD
// password, bound as her under the self-writable mapping: what it gains.

#[test]
fn a_completion_relabelled_to_pass_a_step_up_is_refused() {
    let s = ad_stack(SELF_WRITABLE_MAPPING);
    let port = s.protected.port;
    // A TOTP sign-in, made to pass for a passkey.
    enroll(&s, "alice");
    let mut browser = Session::direct(port, "alice");
    assert_eq!(post_code(&mut browser, &totp_code(0)).status, 303);
    assert_eq!(browser.get("/app/page").status, 200);
    assert_eq!(browser.get("/app/admin/users").status, 303, "step-up to a passkey");
    let stored = values(&s, "alice", "url");
    assert_eq!(stored.len(), 1);
    let relabelled = stored[0].replace("\"m\":\"totp\"", "\"m\":\"webauthn\"");
    assert_ne!(relabelled, stored[0]);
    let unsigned = payload(&relabelled);
    for forged in [relabelled.as_str(), unsigned] {
        as_herself(&s, "alice", &format!("replace: url\nurl: {forged}\n")).unwrap();
        let r = browser.get("/app/admin/users");
        assert_eq!(r.status, 303, "a relabelled completion passed the step-up: {forged}");
    }
    s.protected.wait_for_error_log("event=tampered role=completion user=alice");
}

#[test]
fn an_older_totp_step_put_back_lets_no_used_code_in_again() {
    let s = ad_stack(SELF_WRITABLE_MAPPING);
    let port = s.protected.port;
    enroll(&s, "alice");
    // An older TOTP step put back, to use a code again from another browser.
    let mut victim = Session::direct(port, "alice");
    let before = values(&s, "alice", "msDS-cloudExtensionAttribute2");
    let code = totp_code(1);
    assert_eq!(post_code(&mut victim, &code).status, 303, "the victim signs in");
    let after = values(&s, "alice", "msDS-cloudExtensionAttribute2");
    assert_ne!(before, after);
    let restore = match before.first() {
        Some(v) => format!("replace: msDS-cloudExtensionAttribute2\nmsDS-cloudExtensionAttribute2: {v}\n"),
        None => "delete: msDS-cloudExtensionAttribute2\n".to_string(),
    };
    as_herself(&s, "alice", &restore).unwrap();
    let mut attacker = Session::direct(port, "alice");
    let replay = post_code(&mut attacker, &code);
    assert_eq!(replay.status, 200, "the code was accepted again");
    assert!(replay.text().contains("already used"), "{}", replay.text());
    assert_eq!(attacker.get("/app/page").status, 303);
}

#[test]
fn a_lock_deleted_or_an_earlier_count_put_back_is_still_a_lock() {
    let s = ad_stack(SELF_WRITABLE_MAPPING);
    let port = s.protected.port;
    // A lock deleted, and a count from before the lock put back.
    enroll(&s, "bob");
    let mut guesser = Session::direct(port, "bob");
    assert_eq!(post_code(&mut guesser, "000000").status, 200);
    let early = values(&s, "bob", "msDS-cloudExtensionAttribute3");
    for _ in 0..2 {
        post_code(&mut guesser, "000000");
    }
    assert!(guesser.follow("/2fa/").text().contains("Account locked"));
    let bob_as_bob = |changes: &str| as_herself(&s, "bob", changes).unwrap();
    bob_as_bob("delete: msDS-cloudExtensionAttribute3\n");
    let right = post_code(&mut guesser, &totp_code(0));
    assert!(right.text().contains("Account locked"), "a deleted lock let a code in:\n{}", right.text());
    bob_as_bob(&format!("replace: msDS-cloudExtensionAttribute3\nmsDS-cloudExtensionAttribute3: {}\n", early[0]));
    let right = post_code(&mut guesser, &totp_code(0));
    assert!(right.text().contains("Account locked"), "an earlier count let a code in:\n{}", right.text());
    s.protected.wait_for_error_log("event=tampered role=failures user=bob reason=rolled-back");
    let (code, out, _) = ctl(&s, &["unlock", "bob"]);
    assert_eq!(code, 0, "{out}");
    let mut after_unlock = Session::direct(port, "bob");
    assert_eq!(post_code(&mut after_unlock, &totp_code(0)).status, 303, "an administrator's unlock holds");
}

#[test]
fn a_passkey_copied_from_another_entry_signs_nobody_in() {
    let s = ad_stack(SELF_WRITABLE_MAPPING);
    let port = s.protected.port;
    // A passkey of her own, registered on an account of hers (carol),
    //    copied into the victim's entry: signed for carol, or unsigned.
    let mut own = SoftKey::new(ORIGIN, "gateway.example.org");
    let mut carol = Session::direct(port, "carol");
    carol.follow("/app/page");
    assert_eq!(register(&mut carol, &mut own, "mine").status, 200);
    let carols = values(&s, "carol", "userSharedFolderOther");
    assert_eq!(carols.len(), 1);
    let unsigned = payload(&carols[0]);
    for copied in [carols[0].as_str(), unsigned] {
        let change = format!("replace: userSharedFolderOther\nuserSharedFolderOther: {copied}\n");
        as_herself(&s, "alice", &change).unwrap();
        let mut thief = Session::direct(port, "alice");
        let page = thief.follow("/2fa/webauthn");
        let f = form(&page.text(), "/webauthn");
        let (status, options) = begin(&mut thief, &f, "sign-in", &[]);
        // No prompt for a key the module does not know; answered anyway, refused.
        assert_eq!(status, 400, "{options}");
        let answer =
            own.sign(&serde_json::json!({ "publicKey": { "challenge": "c3RyYXk", "rpId": "gateway.example.org" } }));
        let r = thief.post(&f.action, &f.replacing(&[("credential", &answer)]));
        assert_ne!(r.status, 303, "a copied passkey signed alice in");
        assert_eq!(thief.get("/app/page").status, 303, "alice is not signed in");
    }
    s.protected.wait_for_error_log("event=tampered role=webauthn user=alice");
}
