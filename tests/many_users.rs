//! 200 users completing the second step at the same moment through the
//! stand-in gateway, half with a hardware token's TOTP code, half with a
//! mailed passcode: each ends on the backend with their own identity, no
//! one gets another's completion, and no lock is set by mistake.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::apache::{gateway_body, write_htpasswd, Apache, ApacheOptions};
use testkit::backend::seen_header;
use testkit::directory::Kind;
use testkit::session::{form, form_where, passcode_in, Session};
use testkit::stack::{Stack, StackOptions};
use twofactor_core::config::Algorithm;
use twofactor_core::totp::{self, TotpParams};

const USERS: usize = 200;
const PARAMS: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };

/// Each token user's seed (20 bytes, from the name).
fn seed(user: &str) -> Vec<u8> {
    format!("{user:0<20}").into_bytes()[..20].to_vec()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn two_hundred_users_complete_at_once_through_the_gateway() {
    let options =
        ApacheOptions { threads: 50, servers: 2, log_level: "warn twofactor:info".into(), ..ApacheOptions::default() };
    let s = Stack::start(StackOptions {
        gateway: false,
        extra: String::new(),
        apache: options.clone(),
        directory: Some(Kind::Slapd),
    });
    let users = s.directory.slapd().add_users(USERS);
    let (token_users, mail_users) = users.split_at(USERS / 2);

    // The hardware tokens of the first half, imported as a seed file.
    let csv: String = token_users
        .iter()
        .enumerate()
        .map(|(i, u)| format!("T{i:04},{},SHA1,6,30,{u}\n", totp::base32_encode(&seed(u))))
        .collect();
    let csv_file = s.dir.path().join("tokens.csv");
    std::fs::write(&csv_file, format!("serial,secret,algorithm,digits,period,user\n{csv}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(s.protected.root.join("httpd.conf"))
        .args(["--no-notify", "import"])
        .arg(&csv_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The gateway, with everyone's first factor.
    let groot = s.dir.path().join("gateway");
    std::fs::create_dir_all(&groot).unwrap();
    let passwords: Vec<(String, String)> = users.iter().map(|u| (u.clone(), format!("{u}-pw"))).collect();
    let pairs: Vec<(&str, &str)> = passwords.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    write_htpasswd(&groot.join("htpasswd"), &pairs);
    let gateway_options = ApacheOptions { with_module: false, ..options };
    let gateway = Apache::start(&groot, gateway_options, &gateway_body(&groot, s.protected.port));

    // Everyone reaches their form; the mail users get their passcode first.
    let mut prepared = Vec::new();
    for u in token_users {
        let mut b = Session::via_gateway(gateway.port, u, &format!("{u}-pw"));
        let page = b.follow(&format!("/app/whoami-{u}"));
        prepared.push((u.clone(), b, form(&page.text(), "/totp"), true));
    }
    for u in mail_users {
        let mut b = Session::via_gateway(gateway.port, u, &format!("{u}-pw"));
        let page = b.follow(&format!("/app/whoami-{u}"));
        let send = form_where(&page.text(), "/email/send", "purpose", "login");
        let sent = b.post(&send.action, &send.with(&[]));
        assert_eq!(sent.status, 200, "{u}: {}", sent.text());
        prepared.push((u.clone(), b, form(&sent.text(), "/email"), false));
    }
    let mails = s
        .smtp
        .wait_for_matching(mail_users.len(), Duration::from_secs(60), |m| m.contains("Subject: Your sign-in code"));
    let passcode_of = |u: &str| {
        let to = format!("To: {u}@example.test");
        let mail = mails.iter().find(|m| m.contains(&to)).unwrap_or_else(|| panic!("no mail to {u}"));
        passcode_in(mail).unwrap()
    };

    // Everyone submits at the same moment.
    let barrier = Arc::new(Barrier::new(prepared.len()));
    let handles: Vec<_> = prepared
        .into_iter()
        .map(|(u, mut b, f, token)| {
            let code = if token { String::new() } else { passcode_of(&u) };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let code = if token { totp::totp(&seed(&u), PARAMS, now()).unwrap() } else { code };
                let answer = b.post(&f.action, &f.with(&[("code", &code)]));
                (u, b, answer)
            })
        })
        .collect();
    let mut done = 0;
    let tail = |log: String| log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
    for h in handles {
        let (u, mut b, answer) = h.join().unwrap();
        assert_eq!(
            answer.status,
            303,
            "{u}: {}\n--- gateway:\n{}\n--- protected:\n{}",
            answer.text(),
            tail(gateway.error_log()),
            tail(s.protected.error_log())
        );
        let back = answer.header("Location").unwrap().to_string();
        assert_eq!(back, format!("/app/whoami-{u}"));
        let page = b.get(&back);
        assert_eq!(page.status, 200, "{u}: {}", page.text());
        assert_eq!(seen_header(&page.text(), "X-Remote-User"), vec![u.clone()], "{u} saw another identity");
        done += 1;
    }
    assert_eq!(done, USERS);
    let logs = s.protected.error_log();
    assert!(!logs.contains("event=locked") && !logs.contains("-fail "), "a code was refused:\n{logs}");
    // Every count the attempts raised went back to zero with the success.
    let failures = s.directory.slapd().search("(twoFactorFailures=*)", &["twoFactorFailures"]);
    let counts: Vec<&str> = failures.lines().filter(|l| l.starts_with("twoFactorFailures:")).collect();
    assert!(counts.iter().all(|c| c.contains("\"n\":0,")), "a failure count was left:\n{failures}");
    assert!(!logs.contains("exit signal") && !logs.contains("panicked"));
}
