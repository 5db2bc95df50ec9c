//! `SetHandler twofactor-status`: known traffic through a real Apache with
//! two children, real slapd; the scraped numbers equal what was sent,
//! whichever child served each request, and the text parses with the
//! Prometheus project's own Python parser.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::apache::{wait_until, ApacheOptions};
use testkit::directory::Kind;
use testkit::http::Request;
use testkit::session::{form, Session};
use testkit::stack::{Stack, StackOptions};
use twofactor_core::config::Algorithm;
use twofactor_core::totp::{self, TotpParams};

const SEED: &[u8] = b"12345678901234567890";
const PARAMS: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };

const STATUS: &str = "<Location /twofactor-status>
  SetHandler twofactor-status
  TwoFactor Off
  Require ip 127.0.0.1
</Location>
TwoFactorCacheTTL 0
TwoFactorMaxAttempts 3
TwoFactorNotify Off
";

fn code(steps: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    totp::totp(SEED, PARAMS, (now + steps * 30) as u64).unwrap()
}

/// A code no step near now gives.
fn wrong_code(i: u32) -> String {
    let near: Vec<String> = (-3..=3).map(code).collect();
    (0..).map(|k| format!("{:06}", (i * 7919 + k * 104_729 + 13) % 1_000_000)).find(|c| !near.contains(c)).unwrap()
}

fn enroll(s: &Stack, user: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_twofactorctl"))
        .arg("-f")
        .arg(s.protected.root.join("httpd.conf"))
        .args(["--no-notify", "enroll", user, "--secret", &totp::base32_encode(SEED)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Every sample of `text` as the Prometheus client library parses it:
/// `name{label=value,...}` (labels sorted) to value.
fn parsed(text: &str) -> BTreeMap<String, f64> {
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
        \x20       print(f'{s.name}{{{labels}}} {s.value}')\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused the text: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn scrape(s: &Stack) -> (String, BTreeMap<String, f64>) {
    let r = Request::get("/twofactor-status").send(s.protected.port);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = r.text();
    let samples = parsed(&text);
    (text, samples)
}

#[test]
fn the_scraped_numbers_are_the_traffic_sent_whichever_child_served_it() {
    let apache = ApacheOptions { threads: 4, servers: 2, ..ApacheOptions::default() };
    let mut s =
        Stack::start(StackOptions { gateway: false, extra: STATUS.into(), apache, directory: Some(Kind::Slapd) });
    enroll(&s, "alice");
    enroll(&s, "carol");
    let port = s.protected.port;

    // Without a session: a challenge each.
    for _ in 0..3 {
        assert_eq!(Request::get("/app/a").user("alice").browser().send(port).status, 303);
    }
    // Not from the gateway: spoofs.
    let stranger: IpAddr = "127.0.0.2".parse().unwrap();
    for _ in 0..2 {
        assert_eq!(Request::get("/app/a").user("alice").from(stranger).send(port).status, 403);
    }
    // An ambiguous path, refused before the access check.
    assert_eq!(Request::get("/app/%2e%2e/etc").user("alice").send(port).status, 400);
    // alice: the challenge (a challenge on the way in), one wrong code,
    // the right one, and then in (TTL 0: the directory answers).
    let mut alice = Session::direct(port, "alice");
    let page = alice.follow("/app/");
    let f = form(&page.text(), "/totp");
    assert_eq!(alice.post(&f.action, &f.with(&[("code", &wrong_code(1))])).status, 200);
    assert_eq!(alice.post(&f.action, &f.with(&[("code", &code(0))])).status, 303);
    assert_eq!(alice.get("/app/").status, 200);
    // carol: three wrong codes with TwoFactorMaxAttempts 3 lock her.
    let mut carol = Session::direct(port, "carol");
    let page = carol.follow("/app/");
    let f = form(&page.text(), "/totp");
    for i in 0..3 {
        carol.post(&f.action, &f.with(&[("code", &wrong_code(10 + i))]));
    }
    // The directory goes away: alice's next request is an error.
    s.directory.stop();
    assert_eq!(alice.get("/app/").status, 503);

    let (text, m) = scrape(&s);
    eprintln!("the scrape after the traffic:\n{text}");
    let get = |name: &str| m.get(name).copied().unwrap_or_else(|| panic!("no sample {name}:\n{text}"));
    let decisions =
        |result: &str, reason: &str| get(&format!("twofactor_decisions_total{{reason={reason},result={result}}}"));
    assert_eq!(decisions("challenge", "no-session"), 5.0, "3 bare requests, alice's and carol's way in\n{text}");
    assert_eq!(decisions("deny", "untrusted-peer"), 2.0);
    assert_eq!(decisions("deny", "bad-path"), 1.0);
    assert_eq!(decisions("allow", "directory"), 1.0);
    assert_eq!(decisions("allow", "cache"), 0.0);
    assert_eq!(decisions("error", "directory-down"), 1.0);
    assert_eq!(decisions("deny", "locked"), 0.0);
    let attempts = |result: &str| get(&format!("twofactor_factor_attempts_total{{method=totp,result={result}}}"));
    assert_eq!(attempts("ok"), 1.0);
    assert_eq!(attempts("fail"), 4.0);
    assert_eq!(attempts("replayed"), 0.0);
    assert_eq!(get("twofactor_locks_total{}"), 1.0);
    assert_eq!(get("twofactor_cache_lookups_total{result=miss}"), 2.0, "the allow and the error asked the directory");
    assert_eq!(get("twofactor_cache_lookups_total{result=hit}"), 0.0);
    // Every request that reached the access check was timed: the 10
    // counted decisions above but the bad path (refused before it), and
    // the 7 requests to the challenge path.
    assert_eq!(get("twofactor_decision_duration_seconds_count{}"), 16.0);
    assert_eq!(get("twofactor_ldap_up{}"), 0.0, "the last directory operation failed");
    assert_eq!(get("twofactor_children{}"), 2.0);
    assert!(get("twofactor_ldap_operations_total{op=search,result=error}") >= 1.0);
    assert!(get("twofactor_ldap_operations_total{op=modify,result=ok}") >= 5.0, "attempts counted, a step used");
    assert_eq!(get("twofactor_mails_total{kind=notice,result=ok}"), 0.0);
    let log = s.protected.error_log();
    assert!(!text.contains("alice") && !text.contains("carol") && !text.contains(&code(0)));
    assert!(!log.contains("event=internal-error"), "{log}");

    // The same numbers as JSON.
    let r = Request::get("/twofactor-status?format=json").send(port);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let json_text = r.text();
    assert!(!json_text.contains("alice") && !json_text.contains("carol"), "{json_text}");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["decisions"]["challenge"]["no-session"], 5);
    assert_eq!(json["factor_attempts"]["totp"]["fail"], 4);
    assert_eq!(json["locks"], 1);
    assert_eq!(json["ldap_up"], false);
    assert_eq!(Request::get("/twofactor-status?format=yaml").send(port).status, 400);
    assert_eq!(Request::new("POST", "/twofactor-status").send(port).status, 405);
}

#[test]
fn the_health_check_follows_the_directory() {
    let mut s = Stack::start(StackOptions { gateway: false, extra: STATUS.into(), ..StackOptions::default() });
    let port = s.protected.port;
    let health = || Request::get("/twofactor-status?format=health").send(port);
    let up = health();
    assert_eq!(up.status, 200, "{}", up.text());
    assert_eq!(up.text(), "directory: ok\nkey: ok\n");
    s.directory.stop();
    assert!(wait_until(Duration::from_secs(15), || health().status == 503), "still healthy with slapd stopped");
    let down = health();
    assert!(down.text().starts_with("directory: down ("), "{}", down.text());
    s.directory.start_again();
    assert!(wait_until(Duration::from_secs(15), || health().status == 200), "not healthy after slapd returned");
}

#[test]
fn server_status_has_a_section_and_the_counts_survive_a_graceful_restart() {
    let extra = format!(
        "{STATUS}LoadModule status_module /usr/lib/apache2/modules/mod_status.so
<Location /server-status>
  SetHandler server-status
  TwoFactor Off
  Require ip 127.0.0.1
</Location>
"
    );
    let s = Stack::start(StackOptions { gateway: false, extra, ..StackOptions::default() });
    let port = s.protected.port;
    for _ in 0..2 {
        assert_eq!(Request::get("/app/a").user("alice").browser().send(port).status, 303);
    }
    let stranger: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(Request::get("/app/a").user("alice").from(stranger).send(port).status, 403);

    let auto = Request::get("/server-status?auto").send(port);
    assert_eq!(auto.status, 200);
    let text = auto.text();
    assert!(text.contains("TwoFactorAllow: 0\nTwoFactorChallenge: 2\nTwoFactorDeny: 1\nTwoFactorError: 0\n"), "{text}");
    let page = Request::get("/server-status").send(port).text();
    assert!(page.contains("<h2>mod_twofactor</h2>"), "{page}");
    assert!(page.contains("<dt>Decisions: 0 allowed, 2 sent to the challenge, 1 denied, 0 errors</dt>"), "{page}");

    // A graceful restart (SIGUSR1): the parent keeps the segment, the new
    // children take rows next to the old ones, and nothing is lost.
    let resumed = |log: String| log.matches("resuming normal operations").count();
    assert_eq!(resumed(s.protected.error_log()), 1);
    // SAFETY: kill with a valid signal; the pid is the Apache parent this test started.
    let rc = unsafe { libc::kill(s.protected.pid().unwrap() as libc::pid_t, libc::SIGUSR1) };
    assert_eq!(rc, 0);
    assert!(wait_until(Duration::from_secs(20), || resumed(s.protected.error_log()) == 2), "no graceful restart");
    assert_eq!(Request::get("/app/a").user("alice").browser().send(port).status, 303);
    let (text, m) = scrape(&s);
    assert_eq!(m["twofactor_decisions_total{reason=no-session,result=challenge}"], 3.0, "{text}");
    assert_eq!(m["twofactor_decisions_total{reason=untrusted-peer,result=deny}"], 1.0, "{text}");
}
