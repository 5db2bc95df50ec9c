//! The cost of the access check, measured with wrk against real Apache:
//! the cached allow path of a protected static file versus the same Apache
//! serving the same file without the module, in alternating runs (wrk and
//! Apache share the machine's cores, so only ratios mean anything). Then
//! the uncached path: requests per second and directory operations per
//! check, counted from slapd's statistics log.
//!
//! Build with `cargo build --release --workspace`, then run
//! `target/release/twofactor-bench [ROUNDS] [SECONDS]`.

use std::fs;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use testkit::apache::{Apache, ApacheOptions};
use testkit::http::Request;
use testkit::process::test_dir;
use testkit::slapd::Slapd;
use testkit::stack::random_bytes;
use twofactor_core::completion::Presented;
use twofactor_core::keys::Keys;
use twofactor_core::secret::Secret;
use twofactor_core::store::codec::Completion;

const COOKIE: &str = "QkVOQ0hCRU5DSEJFTkNIQkVOQ0hCRU5DSEJFTkNIQkU";
const CONNECTIONS: &str = "16";

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);

    let dir = test_dir("twofactor-bench");
    let slapd = Slapd::start_with_stats_log(dir.path());
    let key = random_bytes(32);
    let page = "<p>".to_string() + &"static content ".repeat(60) + "</p>\n";

    let options = ApacheOptions { threads: 32, log_level: "warn".into(), ..ApacheOptions::default() };
    let module_conf = |root: &std::path::Path, ttl: &str| {
        fs::create_dir_all(root.join("htdocs/static")).unwrap();
        fs::write(root.join("htdocs/static/index.html"), &page).unwrap();
        fs::write(root.join("twofactor.key"), &key).unwrap();
        fs::write(root.join("bind.pw"), format!("{}\n", slapd.service_password)).unwrap();
        format!(
            "TwoFactorTrustedProxy 127.0.0.1\nTwoFactorSecretKeyFile {r}/twofactor.key\n\
             TwoFactorLDAPURL {url}/{people}?uid?sub\nTwoFactorLDAPBindDN {dn}\nTwoFactorLDAPBindPasswordFile {r}/bind.pw\n\
             TwoFactorMethods totp recovery\nTwoFactorEnrollmentProof none\nTwoFactorCacheTTL {ttl}\n\
             <Location /static>\n  TwoFactor On\n</Location>\n",
            r = root.display(),
            url = slapd.url,
            people = slapd.people_dn,
            dn = slapd.service_dn,
        )
    };
    let cached =
        Apache::start(&dir.path().join("cached"), options.clone(), &module_conf(&dir.path().join("cached"), "60"));
    let uncached =
        Apache::start(&dir.path().join("uncached"), options.clone(), &module_conf(&dir.path().join("uncached"), "0"));
    let plain_root = dir.path().join("plain");
    fs::create_dir_all(plain_root.join("htdocs/static")).unwrap();
    fs::write(plain_root.join("htdocs/static/index.html"), &page).unwrap();
    let plain = Apache::start(&plain_root, ApacheOptions { with_module: false, ..options }, "");

    // alice's browser completed the challenge.
    let keys = Keys::from_files(&[Secret::new(key.clone())]).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let value = Completion {
        bound: Presented::Cookie(COOKIE.as_bytes()).bound(&keys),
        issued: now,
        expires: now + 8 * 3600,
        method: "totp".into(),
    }
    .encode();
    slapd.modify_ldif(&format!(
        "dn: {}\nchangetype: modify\nadd: twoFactorCompletion\ntwoFactorCompletion: {value}\n",
        slapd.user_dn("alice")
    ));
    let cookie = format!("TwoFactorSession={COOKIE}");
    for server in [&cached, &uncached, &plain] {
        let r = Request::get("/static/index.html").user("alice").header("Cookie", &cookie).send(server.port);
        assert_eq!(r.status, 200, "sanity request to {}", server.root.display());
    }

    println!("wrk -t1 -c{CONNECTIONS} -d{seconds}s, {rounds} alternating rounds, static file of {} bytes", page.len());
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // Alternate who goes first, so drift in the machine's load is shared.
        let (a, b) = if round % 2 == 0 {
            let a = wrk(&cached, seconds, &cookie);
            (a, wrk(&plain, seconds, &cookie))
        } else {
            let b = wrk(&plain, seconds, &cookie);
            (wrk(&cached, seconds, &cookie), b)
        };
        ratios.push(a / b);
        println!(
            "round {}: module (cached allow) {a:9.0} req/s, Apache alone {b:9.0} req/s, ratio {:.3}",
            round + 1,
            a / b
        );
    }
    ratios.sort_by(|x, y| x.total_cmp(y));
    let median = ratios[ratios.len() / 2];
    println!("median ratio cached-allow / Apache-alone: {median:.3} ({:+.1} %)", (median - 1.0) * 100.0);
    assert_only_200(&cached);
    assert_only_200(&plain);

    let before = slapd.log();
    let (searches0, binds0, conns0) = ldap_ops(&before);
    let rate = wrk(&uncached, seconds, &cookie);
    let after = slapd.log();
    let (searches1, binds1, conns1) = ldap_ops(&after);
    let requests = count_requests(&uncached);
    println!(
        "uncached (TwoFactorCacheTTL 0): {rate:.0} req/s; per check: {:.3} searches, {:.4} binds, {:.4} new connections ({requests} requests)",
        (searches1 - searches0) as f64 / requests as f64,
        (binds1 - binds0) as f64 / requests as f64,
        (conns1 - conns0) as f64 / requests as f64,
    );
    assert_only_200(&uncached);
}

/// Requests per second reported by one wrk run.
fn wrk(apache: &Apache, seconds: u64, cookie: &str) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s")])
        .args(["-H", "X-Remote-User: alice", "-H", &format!("Cookie: {cookie}"), "-H", "Accept: text/html"])
        .arg(format!("http://127.0.0.1:{}/static/index.html", apache.port))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx or 3xx"), "wrk saw errors:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}

/// wrk counts 3xx as success: the access log must show 200 only.
fn assert_only_200(apache: &Apache) {
    let log = apache.access_log();
    let bad = log.lines().filter(|l| !l.ends_with(" 200")).count();
    assert_eq!(bad, 0, "{bad} responses other than 200 in {}", apache.root.display());
}

fn count_requests(apache: &Apache) -> usize {
    apache.access_log().lines().count().saturating_sub(1)
}

/// (searches, binds, accepted connections) in slapd's stats log.
fn ldap_ops(log: &str) -> (usize, usize, usize) {
    (log.matches(" SRCH base=").count(), log.matches(" BIND dn=").count(), log.matches(" ACCEPT from").count())
}
