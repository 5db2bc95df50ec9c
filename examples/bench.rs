//! What the module costs, and what the alternative costs, measured in one
//! run against real Apache and slapd on this machine. wrk and the servers
//! share the cores, so only ratios taken in the same run mean anything.
//!
//! Configurations, all serving the same static file behind the same site
//! configuration (rewrite rules, headers, a proxied path, an access log):
//!
//! * `apache`: Apache alone, the baseline;
//! * `cached`: the module, the user's completion cached (TTL 60 s);
//! * `uncached`: the module, TTL 0: one directory search per request;
//! * `authnz-ldap`, `authnz-ldap-tuned`, `authnz-ldap-nocache`: what a site
//!   would use instead, mod_authnz_ldap + mod_ldap checking an attribute
//!   with `Require ldap-attribute` (Basic credentials, the user's password
//!   checked by a bind), with mod_ldap's caches on under Debian's default
//!   lock, on under `Mutex sysvsem` (its cache lock is contended at 32
//!   connections), and off.
//!
//! Each round runs every configuration once (wrk -t2 -c32), in an order
//! that turns from round to round; the table gives medians. Then: peak
//! resident memory per child, directory operations per request (slapd's
//! statistics log), and the challenge: users completing TOTP at once.
//! Last, the cached allow path in instructions (valgrind's callgrind, which
//! counts the same on a busy machine as on an idle one).
//!
//! `scripts/bench.sh [ROUNDS] [SECONDS]` builds and runs it (ROUNDS 0: only
//! the callgrind comparison). It writes target/bench/results.md and
//! target/bench/chart.svg, and keeps the profiles in target/bench/.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::fs;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testkit::apache::{Apache, ApacheOptions};
use testkit::http::{basic_auth, Request};
use testkit::process::test_dir;
use testkit::session::{form, Form, Session};
use testkit::slapd::Slapd;
use testkit::stack::random_bytes;
use twofactor_core::completion::Presented;
use twofactor_core::config::Algorithm;
use twofactor_core::keys::Keys;
use twofactor_core::secret::Secret;
use twofactor_core::store::codec::Completion;
use twofactor_core::store::signed::Signer;
use twofactor_core::totp::{self, TotpParams};

const COOKIE: &str = "QkVOQ0hCRU5DSEJFTkNIQkVOQ0hCRU5DSEJFTkNIQkU";
const CONNECTIONS: usize = 32;
const THREADS: u32 = 32;
/// Users completing TOTP in the challenge measurement.
const CHALLENGE_USERS: usize = 1500;
const PARAMS: TotpParams = TotpParams { algorithm: Algorithm::Sha1, digits: 6, period: 30 };

/// What every configuration's site has besides the protected location.
const SITE: &str = "RewriteEngine On\n\
     RewriteRule ^/old/(.*)$ /static/$1 [R=301,L]\n\
     Header always set X-Content-Type-Options nosniff\n\
     Header always set Referrer-Policy same-origin\n\
     ProxyPass /backend http://127.0.0.1:9/backend\n";

struct Target {
    name: &'static str,
    what: &'static str,
    apache: Apache,
    /// Headers of every request: the gateway's identity and the browser's
    /// cookie, or Basic credentials.
    headers: Vec<(String, String)>,
    samples: Vec<Sample>,
    /// Requests served and directory operations seen while it ran.
    requests: usize,
    ldap: LdapOps,
    /// Access-log lines before the measured runs (the sanity checks').
    log_start: usize,
}

#[derive(Clone, Copy)]
struct Sample {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Apache's CPU time (all its processes, user + system) per request.
    cpu_us: f64,
}

#[derive(Default, Clone, Copy)]
struct LdapOps {
    searches: usize,
    binds: usize,
    compares: usize,
    modifies: usize,
}

/// Counts the operations slapd logs from where it last stopped reading.
struct OpsLog {
    path: std::path::PathBuf,
    offset: u64,
}

impl OpsLog {
    fn new(slapd: &Slapd) -> OpsLog {
        let path = slapd.log_path();
        let offset = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        OpsLog { path, offset }
    }

    /// The operations logged since the last call.
    fn take(&mut self) -> LdapOps {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = fs::File::open(&self.path).unwrap();
        file.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut new = Vec::new();
        file.read_to_end(&mut new).unwrap();
        // Up to the last complete line.
        let end = new.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += end as u64;
        LdapOps::read(&String::from_utf8_lossy(&new[..end]))
    }
}

impl LdapOps {
    fn read(log: &str) -> LdapOps {
        LdapOps {
            searches: log.matches(" SRCH base=").count(),
            binds: log.matches(" BIND dn=").count(),
            compares: log.matches(" CMP dn=").count(),
            modifies: log.matches(" MOD dn=").count(),
        }
    }

    fn add(&mut self, other: LdapOps) {
        self.searches += other.searches;
        self.binds += other.binds;
        self.compares += other.compares;
        self.modifies += other.modifies;
    }

    fn total(self) -> usize {
        self.searches + self.binds + self.compares + self.modifies
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);

    let dir = test_dir("twofactor-bench");
    let slapd = Slapd::start_with_stats_log(dir.path());
    let key = random_bytes(32);
    let page = "<p>".to_string() + &"static content ".repeat(60) + "</p>\n";
    let options = ApacheOptions { threads: THREADS, servers: 1, log_level: "warn".into(), ..ApacheOptions::default() };
    let site = |root: &std::path::Path, body: &str| {
        fs::create_dir_all(root.join("htdocs/static")).unwrap();
        fs::write(root.join("htdocs/static/index.html"), &page).unwrap();
        format!("{SITE}{body}")
    };
    let module = |name: &str, ttl: &str| {
        let root = dir.path().join(name);
        let body = site(&root, "");
        fs::write(root.join("twofactor.key"), &key).unwrap();
        fs::write(root.join("bind.pw"), format!("{}\n", slapd.service_password)).unwrap();
        let conf = format!(
            "{body}TwoFactorTrustedProxy 127.0.0.1\nTwoFactorSecretKeyFile {r}/twofactor.key\n\
             TwoFactorLDAPURL {url}/{people}?uid?sub\nTwoFactorLDAPBindDN {dn}\nTwoFactorLDAPBindPasswordFile {r}/bind.pw\n\
             TwoFactorMethods totp recovery\nTwoFactorEnrollmentProof none\nTwoFactorCacheTTL {ttl}\n\
             <Location /static>\n  TwoFactor On\n</Location>\n<Location /2fa>\n  SetHandler twofactor-challenge\n</Location>\n",
            r = root.display(),
            url = slapd.url,
            people = slapd.people_dn,
            dn = slapd.service_dn,
        );
        Apache::start(&root, options.clone(), &conf)
    };
    // mod_authnz_ldap: the password checked by a bind as the user, then the
    // attribute compared, both through mod_ldap (its connections pooled).
    let peer = |name: &str, tuning: &str| {
        let root = dir.path().join(name);
        let body = site(&root, "");
        let conf = format!(
            "{body}LoadModule ldap_module /usr/lib/apache2/modules/mod_ldap.so\n\
             LoadModule authnz_ldap_module /usr/lib/apache2/modules/mod_authnz_ldap.so\n\
             {tuning}\
             <Location /static>\n  AuthType Basic\n  AuthName protected\n  AuthBasicProvider ldap\n\
             \x20 AuthLDAPURL \"{url}/{people}?uid?sub\"\n  AuthLDAPBindDN \"{dn}\"\n  AuthLDAPBindPassword \"{pw}\"\n\
             \x20 Require ldap-attribute employeeType=second-factor\n</Location>\n",
            url = slapd.url,
            people = slapd.people_dn,
            dn = slapd.service_dn,
            pw = slapd.service_password,
        );
        Apache::start(&root, ApacheOptions { with_module: false, ..options.clone() }, &conf)
    };

    // alice's browser completed the challenge; for the peer, alice has the
    // attribute it checks (and bob, who also has a password, does not).
    let keys = Keys::from_files(&[Secret::new(key.clone())]).unwrap();
    let now = unix_now();
    let value = Completion {
        bound: Presented::Cookie(COOKIE.as_bytes()).bound(&keys),
        issued: now,
        expires: now + 8 * 3600,
        method: "totp".into(),
    }
    .seal(&Signer::new(&keys, "alice", false));
    slapd.modify_ldif(&format!(
        "dn: {dn}\nchangetype: modify\nadd: twoFactorCompletion\ntwoFactorCompletion: {value}\n-\n\
         add: employeeType\nemployeeType: second-factor\n",
        dn = slapd.user_dn("alice")
    ));
    let gateway = vec![
        ("X-Remote-User".to_string(), "alice".to_string()),
        ("Cookie".to_string(), format!("TwoFactorSession={COOKIE}")),
    ];
    let basic = vec![("Authorization".to_string(), basic_auth("alice", &slapd.user_password("alice")))];

    let plain_root = dir.path().join("apache");
    let plain_body = site(&plain_root, "");
    let target = |name, what, apache, headers: &Vec<(String, String)>| Target {
        name,
        what,
        apache,
        headers: headers.clone(),
        samples: Vec::new(),
        requests: 0,
        ldap: LdapOps::default(),
        log_start: 0,
    };
    let mut targets = vec![
        target(
            "apache",
            "Apache alone",
            Apache::start(&plain_root, ApacheOptions { with_module: false, ..options.clone() }, &plain_body),
            &gateway,
        ),
        target("cached", "mod_twofactor, completion cached (TTL 60 s)", module("cached", "60"), &gateway),
        target("uncached", "mod_twofactor, TTL 0 (a search per request)", module("uncached", "0"), &gateway),
        target("authnz-ldap", "mod_authnz_ldap, caches on, default lock", peer("authnz-ldap", ""), &basic),
        target(
            "authnz-ldap-tuned",
            "mod_authnz_ldap, caches on, Mutex sysvsem",
            peer("authnz-ldap-tuned", "Mutex sysvsem ldap-cache\n"),
            &basic,
        ),
        target(
            "authnz-ldap-nocache",
            "mod_authnz_ldap, caches off",
            peer("authnz-ldap-nocache", "LDAPCacheEntries 0\nLDAPOpCacheEntries 0\n"),
            &basic,
        ),
    ];
    for t in &targets {
        let r = with_headers(Request::get("/static/index.html"), &t.headers).send(t.apache.port);
        assert_eq!(r.status, 200, "sanity request to {}: {}", t.name, r.text());
    }
    // The peer checks what it claims to: bob has a password, not the attribute.
    let bob = Request::get("/static/index.html")
        .header("Authorization", &basic_auth("bob", &slapd.user_password("bob")))
        .send(targets[3].apache.port);
    assert_eq!(bob.status, 401, "mod_authnz_ldap let bob in");
    for t in &mut targets {
        t.log_start = count_requests(&t.apache);
    }

    let mut results = String::new();
    if rounds > 0 {
        println!(
            "wrk -t2 -c{CONNECTIONS} -d{seconds}s --latency, {rounds} rounds, every configuration once per round in a turning order; static file of {} bytes",
            page.len()
        );
        let mut ops_log = OpsLog::new(&slapd);
        for round in 0..rounds {
            for k in 0..targets.len() {
                let i = (k + round) % targets.len();
                let t = &mut targets[i];
                ops_log.take();
                let served0 = count_requests(&t.apache);
                let sample = measure(t, seconds);
                t.requests += count_requests(&t.apache) - served0;
                t.ldap.add(ops_log.take());
                println!(
                    "round {}: {:<20} {:8.0} req/s  p50 {:6.2} ms  p99 {:6.2} ms  {:6.1} us CPU/req",
                    round + 1,
                    t.name,
                    sample.rate,
                    sample.p50_ms,
                    sample.p99_ms,
                    sample.cpu_us
                );
                t.samples.push(sample);
            }
        }
        for t in &targets {
            assert_only_200(&t.apache, t.log_start);
        }
        let challenge = challenge_rate(&slapd, &dir.path().join("challenge"), &module);
        results = report(&targets, rounds, seconds, &challenge);
        println!("\n{results}");
        let kept = testkit::repo_root().join("target/bench");
        fs::create_dir_all(&kept).unwrap();
        fs::write(kept.join("results.md"), &results).unwrap();
        fs::write(kept.join("chart.svg"), chart(&targets)).unwrap();
        println!("written: target/bench/results.md, target/bench/chart.svg");
    }

    let mut cached = targets.remove(1).apache;
    let mut plain = targets.remove(0).apache;
    drop(targets);
    let sectioned_root = dir.path().join("sectioned");
    let sectioned_body = site(&sectioned_root, "<Location /static>\n  Require all granted\n</Location>\n");
    let mut sectioned =
        Apache::start(&sectioned_root, ApacheOptions { with_module: false, ..options.clone() }, &sectioned_body);
    let cookie = format!("TwoFactorSession={COOKIE}");
    let with_module = instructions_per_request(&mut cached, &cookie, dir.path());
    let without = instructions_per_request(&mut plain, &cookie, dir.path());
    let with_section = instructions_per_request(&mut sectioned, &cookie, dir.path());
    println!(
        "callgrind, instructions per request (user space): module (cached allow) {with_module:.0}, Apache alone {without:.0}, ratio {:.3} ({:+.0} instructions)",
        with_module / without,
        with_module - without
    );
    println!(
        "callgrind, against Apache alone with the same <Location> section ({with_section:.0}): ratio {:.3} ({:+.0} instructions)",
        with_module / with_section,
        with_module - with_section
    );
    if !results.is_empty() {
        let line = format!(
            "\ncallgrind, cached allow: {with_module:.0} instructions per request, Apache alone {without:.0} ({:+.0}, ratio {:.3})\n",
            with_module - without,
            with_module / without
        );
        let path = testkit::repo_root().join("target/bench/results.md");
        fs::write(&path, results + &line).unwrap();
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn with_headers(mut request: Request, headers: &[(String, String)]) -> Request {
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
}

struct Challenge {
    users: usize,
    seconds: f64,
    ldap: LdapOps,
}

/// Users completing TOTP at once: each has a token (imported), has the
/// challenge page open, and posts the current code; 32 at a time. Counts
/// verifications that ended in a completion (303 back to the page).
fn challenge_rate(slapd: &Slapd, root: &std::path::Path, module: &dyn Fn(&str, &str) -> Apache) -> Challenge {
    let apache = module(root.file_name().unwrap().to_str().unwrap(), "60");
    let users = slapd.add_users(CHALLENGE_USERS);
    let seed = |user: &str| format!("{user:0<20}").into_bytes()[..20].to_vec();
    let csv: String = users
        .iter()
        .enumerate()
        .map(|(i, u)| format!("B{i:05},{},SHA1,6,30,{u}\n", totp::base32_encode(&seed(u))))
        .collect();
    let csv_file = root.join("tokens.csv");
    fs::write(&csv_file, format!("serial,secret,algorithm,digits,period,user\n{csv}")).unwrap();
    let twofactorctl = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("twofactorctl");
    let out = Command::new(twofactorctl)
        .arg("-f")
        .arg(apache.root.join("httpd.conf"))
        .args(["--no-notify", "import"])
        .arg(&csv_file)
        .output()
        .expect("run twofactorctl (cargo build --release --workspace --bins)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let prepared: Vec<(String, Session, Form)> = users
        .iter()
        .map(|u| {
            let mut b = Session::direct(apache.port, u);
            let page = b.follow("/static/index.html");
            let f = form(&page.text(), "/totp");
            (u.clone(), b, f)
        })
        .collect();
    let queue = Arc::new(Mutex::new(prepared));
    let mut ops_log = OpsLog::new(slapd);
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                loop {
                    let Some((u, mut b, f)) = queue.lock().unwrap().pop() else { break };
                    let code = totp::totp(&seed(&u), PARAMS, unix_now()).unwrap();
                    let answer = b.post(&f.action, &f.with(&[("code", &code)]));
                    assert_eq!(answer.status, 303, "{u}: {}", answer.text());
                    done += 1;
                }
                done
            })
        })
        .collect();
    let users: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let seconds = started.elapsed().as_secs_f64();
    let ldap = ops_log.take();
    Challenge { users, seconds, ldap }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|x, y| x.total_cmp(y));
    values[values.len() / 2]
}

fn report(targets: &[Target], rounds: usize, seconds: u64, challenge: &Challenge) -> String {
    let baseline = &targets[0];
    // Each round's ratio to the baseline of the same round, then the median.
    let ratio = |t: &Target| median(t.samples.iter().zip(&baseline.samples).map(|(a, b)| a.rate / b.rate).collect());
    let baseline_peak = peak_rss_per_child_kib(&baseline.apache);
    let mut out = String::new();
    out.push_str(&format!(
        "Measured {} on {}; wrk -t2 -c{CONNECTIONS}, {rounds} rounds of {seconds} s, medians.\n\n",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine()
    ));
    out.push_str(
        "| configuration | req/s | × Apache alone | p50 ms | p99 ms | CPU µs/req | LDAP ops/req | peak RSS/child MiB (over Apache alone) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for t in targets {
        let peak = peak_rss_per_child_kib(&t.apache);
        let ops = t.ldap.total() as f64 / t.requests.max(1) as f64;
        let ops_detail = if t.ldap.total() == 0 {
            "0".to_string()
        } else {
            format!(
                "{ops:.2} ({:.2} search, {:.2} bind, {:.2} compare)",
                t.ldap.searches as f64 / t.requests as f64,
                t.ldap.binds as f64 / t.requests as f64,
                t.ldap.compares as f64 / t.requests as f64
            )
        };
        out.push_str(&format!(
            "| {} ({}) | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {ops_detail} | {:.1} ({:+.1}) |\n",
            t.name,
            t.what,
            median(t.samples.iter().map(|s| s.rate).collect()),
            ratio(t),
            median(t.samples.iter().map(|s| s.p50_ms).collect()),
            median(t.samples.iter().map(|s| s.p99_ms).collect()),
            median(t.samples.iter().map(|s| s.cpu_us).collect()),
            peak as f64 / 1024.0,
            (peak as f64 - baseline_peak as f64) / 1024.0,
        ));
    }
    out.push_str(
        "\nresident memory of a child after the runs, KiB: the module's file / other files / anonymous; private to the child\n\n```\n",
    );
    for t in targets {
        let (module, files, anon, private) = rss_by_kind_kib(&t.apache);
        out.push_str(&format!("{:<20} {module:>6} / {files:>6} / {anon:>6}; private {private:>6}\n", t.name));
    }
    out.push_str("```\n");
    let by_name = |name: &str| targets.iter().find(|t| t.name == name).map(ratio).unwrap_or(f64::NAN);
    out.push_str(&format!(
        "\nmod_twofactor against mod_authnz_ldap: cached / caches-on {:.2}×, cached / tuned {:.2}×, uncached / caches-off {:.2}×\n",
        by_name("cached") / by_name("authnz-ldap"),
        by_name("cached") / by_name("authnz-ldap-tuned"),
        by_name("uncached") / by_name("authnz-ldap-nocache"),
    ));
    out.push_str(&format!(
        "\nchallenge: {} users completed TOTP in {:.2} s, {:.0} verifications/s ({CONNECTIONS} at a time); per verification {:.2} searches, {:.2} modifies\n",
        challenge.users,
        challenge.seconds,
        challenge.users as f64 / challenge.seconds,
        challenge.ldap.searches as f64 / challenge.users as f64,
        challenge.ldap.modifies as f64 / challenge.users as f64,
    ));
    out
}

/// Requests per second and CPU per request in each configuration, as an
/// SVG bar chart with p99 latency beside it.
fn chart(targets: &[Target]) -> String {
    let rows: Vec<(&str, f64, f64)> = targets
        .iter()
        .map(|t| {
            (
                t.name,
                median(t.samples.iter().map(|s| s.rate).collect()),
                median(t.samples.iter().map(|s| s.p99_ms).collect()),
            )
        })
        .collect();
    let max_rate = rows.iter().map(|r| r.1).fold(1.0, f64::max);
    let max_p99 = rows.iter().map(|r| r.2).fold(0.1, f64::max);
    let (label_w, bar_w, gap, row_h) = (170.0, 300.0, 80.0, 28.0);
    let width = label_w + 2.0 * bar_w + gap + 90.0;
    let height = 50.0 + row_h * rows.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{label_w}\" y=\"20\" font-weight=\"bold\">requests per second (more is better)</text>\n\
         <text x=\"{}\" y=\"20\" font-weight=\"bold\">p99 latency, ms (less is better)</text>\n",
        label_w + bar_w + gap
    );
    for (i, (name, rate, p99)) in rows.iter().enumerate() {
        let y = 36.0 + row_h * i as f64;
        let colour = if name.starts_with("authnz") {
            "#b0b0b0"
        } else if *name == "apache" {
            "#6b8fb3"
        } else {
            "#2e7d32"
        };
        let rate_w = bar_w * rate / max_rate;
        let p99_w = bar_w * p99 / max_p99;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{name}</text>\n\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{rate_w:.1}\" height=\"{}\" fill=\"{colour}\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{rate:.0}</text>\n\
             <rect x=\"{}\" y=\"{y}\" width=\"{p99_w:.1}\" height=\"{}\" fill=\"{colour}\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{p99:.2}</text>\n",
            label_w - 8.0,
            y + 15.0,
            row_h - 8.0,
            label_w + rate_w + 4.0,
            y + 15.0,
            label_w + bar_w + gap,
            row_h - 8.0,
            label_w + bar_w + gap + p99_w + 4.0,
            y + 15.0,
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// CPU model, cores, memory; Apache's and slapd's versions.
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|v| v.trim_start_matches([' ', '\t', ':']));
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let apache = command_line("/usr/sbin/apache2", &["-v"]);
    let apache = apache.lines().next().unwrap_or("").trim_start_matches("Server version: ");
    let slapd = command_line("dpkg-query", &["-W", "-f", "${Version}", "slapd"]);
    format!(
        "{} ({} cores, {:.0} GiB), {apache}, slapd {slapd}",
        model.unwrap_or("unknown CPU"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

/// Where a child's resident memory is, in KiB: the module's file (its
/// code and constants), other files (Apache, its modules, libraries), and
/// anonymous memory (heaps, thread stacks); and how much of all that is the
/// child's alone (the rest is shared with Apache's parent and the other
/// children: pages of files it loaded before forking). The first child's, now.
fn rss_by_kind_kib(apache: &Apache) -> (u64, u64, u64, u64) {
    let parent = apache.pid().expect("apache pid");
    let Some(child) = testkit::soak::children_rss_kib(parent).first().map(|(pid, _)| *pid) else {
        return (0, 0, 0, 0);
    };
    let smaps = fs::read_to_string(format!("/proc/{child}/smaps")).unwrap_or_default();
    let (mut module, mut files, mut anon, mut private) = (0, 0, 0, 0);
    let mut mapping = String::new();
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            mapping = fields.get(5).map(|p| p.to_string()).unwrap_or_default();
        } else if let (Some(&"Rss:"), Some(kib)) = (fields.first(), fields.get(1).and_then(|v| v.parse::<u64>().ok())) {
            if mapping.contains("mod_twofactor") {
                module += kib;
            } else if mapping.starts_with('/') {
                files += kib;
            } else {
                anon += kib;
            }
        } else if let (Some(&("Private_Clean:" | "Private_Dirty:")), Some(kib)) =
            (fields.first(), fields.get(1).and_then(|v| v.parse::<u64>().ok()))
        {
            private += kib;
        }
    }
    (module, files, anon, private)
}

/// The largest peak resident memory (VmHWM) among Apache's children.
fn peak_rss_per_child_kib(apache: &Apache) -> u64 {
    let parent = apache.pid().expect("apache pid");
    let mut peak = 0;
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else { continue };
        let field = |name: &str| -> Option<u64> {
            status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        if field("PPid:") == Some(u64::from(parent)) {
            peak = peak.max(field("VmHWM:").unwrap_or(0));
        }
    }
    peak
}

/// User-space instructions Apache spends per request, from two callgrind
/// runs of `apache2 -X` (one process) that differ only in request count.
fn instructions_per_request(apache: &mut Apache, cookie: &str, scratch: &std::path::Path) -> f64 {
    const N: usize = 500;
    apache.stop();
    let out_dir = scratch.join("callgrind");
    fs::create_dir_all(&out_dir).unwrap();
    let totals: Vec<f64> = [N, 3 * N]
        .iter()
        .map(|&requests| {
            // The child drops to www-data before callgrind writes its file.
            let out = out_dir.join(format!("{}-{requests}.out", apache.port));
            fs::write(&out, b"").unwrap();
            Command::new("chown").arg("www-data").arg(&out).status().unwrap();
            let conf = apache.root.join("httpd.conf");
            let mut vg = Command::new("valgrind")
                .args(["--tool=callgrind", "--quiet", "--vgdb=no"])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .args(["/usr/sbin/apache2", "-X", "-f"])
                .arg(&conf)
                .spawn()
                .expect("run valgrind");
            let up = testkit::apache::wait_until(Duration::from_secs(60), || {
                testkit::process::wait_for_port(apache.port, Duration::from_millis(1)).is_ok()
            });
            assert!(up, "apache2 under valgrind did not start");
            let ab = Command::new("ab")
                .args(["-q", "-n", &requests.to_string(), "-c", "1"])
                .args(["-H", "X-Remote-User: alice", "-H", &format!("Cookie: {cookie}"), "-H", "Accept: text/html"])
                .arg(format!("http://127.0.0.1:{}/static/index.html", apache.port))
                .output()
                .expect("run ab (apache2-utils)");
            let report = String::from_utf8_lossy(&ab.stdout);
            assert!(report.contains("Failed requests:        0") && !report.contains("Non-2xx"), "{report}");
            // SAFETY: kill has no memory preconditions; the pid is our child.
            unsafe { libc::kill(vg.id() as i32, libc::SIGTERM) };
            vg.wait().unwrap();
            let text = fs::read_to_string(&out).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("no totals in {}", out.display()))
        })
        .collect();
    // Kept for `callgrind_annotate --inclusive=yes target/bench/<server>.callgrind`.
    let kept = testkit::repo_root().join("target/bench");
    let name = apache.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if fs::create_dir_all(&kept).is_ok() {
        let _ =
            fs::copy(out_dir.join(format!("{}-{}.out", apache.port, 3 * N)), kept.join(format!("{name}.callgrind")));
    }
    (totals[1] - totals[0]) / (2 * N) as f64
}

fn measure(t: &Target, seconds: u64) -> Sample {
    let (ticks0, requests0) = (cpu_ticks(&t.apache), count_requests(&t.apache));
    let (rate, p50_ms, p99_ms) = wrk(&t.apache, seconds, &t.headers);
    let (ticks1, requests1) = (cpu_ticks(&t.apache), count_requests(&t.apache));
    let requests = (requests1 - requests0).max(1) as f64;
    let tick_us = 1_000_000.0 / clock_ticks_per_second();
    Sample { rate, p50_ms, p99_ms, cpu_us: (ticks1 - ticks0) as f64 * tick_us / requests }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime of the Apache parent and its children, in clock ticks.
fn cpu_ticks(apache: &Apache) -> u64 {
    let parent = apache.pid().expect("apache pid");
    let mut total = 0;
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the command name, which is in parentheses.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let pid: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        let ppid: u32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
        if pid == parent || ppid == parent {
            let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
            total += utime + stime;
        }
    }
    total
}

/// Requests per second, p50 and p99 in ms, from one wrk run.
fn wrk(apache: &Apache, seconds: u64, headers: &[(String, String)]) -> (f64, f64, f64) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s"), "--latency"]);
    for (name, value) in headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain([("Accept", "text/html")]) {
        cmd.args(["-H", &format!("{name}: {value}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{}/static/index.html", apache.port))
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx or 3xx"), "wrk saw errors:\n{text}");
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| milliseconds(v.trim()))
            .unwrap_or_else(|| panic!("no {p} latency in wrk output:\n{text}"))
    };
    (rate, percentile("50%"), percentile("99%"))
}

/// wrk's "123.45us", "1.23ms", "1.02s" in milliseconds.
fn milliseconds(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        "m" => Some(number * 60_000.0),
        _ => None,
    }
}

/// wrk counts 3xx as success: the access log must show 200 only, after
/// its first `skip` lines.
fn assert_only_200(apache: &Apache, skip: usize) {
    let log = apache.access_log();
    let bad = log.lines().skip(skip).filter(|l| !l.ends_with(" 200")).count();
    assert_eq!(bad, 0, "{bad} responses other than 200 in {}", apache.root.display());
}

fn count_requests(apache: &Apache) -> usize {
    apache.access_log().lines().count()
}
