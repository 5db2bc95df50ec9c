//! The cost of the access check, measured with wrk against real Apache:
//! the cached allow path of a protected static file versus the same Apache
//! serving the same file without the module, in alternating runs (wrk and
//! Apache share the machine's cores, so only ratios mean anything). Then
//! the uncached path: requests per second and directory operations per
//! check, counted from slapd's statistics log.
//!
//! Last, the same comparison in instructions (valgrind's callgrind, which
//! counts the same on a busy machine as on an idle one): Apache in
//! single-process mode serving N and 3N requests, the difference divided
//! by 2N.
//!
//! Build with `cargo build --release --workspace --lib --bins --examples`,
//! then run `target/release/examples/bench [ROUNDS] [SECONDS]` (ROUNDS 0:
//! only the callgrind comparison; the profiles stay in target/bench/).

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
    let plain = Apache::start(&plain_root, ApacheOptions { with_module: false, ..options.clone() }, "");
    // The same server with the same <Location> section (a neutral one): what
    // the module costs beyond the section a protected site has anyway.
    let sectioned_root = dir.path().join("sectioned");
    fs::create_dir_all(sectioned_root.join("htdocs/static")).unwrap();
    fs::write(sectioned_root.join("htdocs/static/index.html"), &page).unwrap();
    let mut sectioned = Apache::start(
        &sectioned_root,
        ApacheOptions { with_module: false, ..options },
        "<Location /static>\n  Require all granted\n</Location>\n",
    );

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

    // ROUNDS 0: instructions only (callgrind), no wrk.
    if rounds > 0 {
        println!(
            "wrk -t1 -c{CONNECTIONS} -d{seconds}s, {rounds} alternating rounds, static file of {} bytes",
            page.len()
        );
        println!("throughput is noisy on a shared machine; Apache's own CPU time per request is the steadier measure");
        let mut rate_ratios = Vec::new();
        let mut cpu_ratios = Vec::new();
        for round in 0..rounds {
            // Alternate who goes first, so drift in the machine's load is shared.
            let (a, b) = if round % 2 == 0 {
                let a = measure(&cached, seconds, &cookie);
                (a, measure(&plain, seconds, &cookie))
            } else {
                let b = measure(&plain, seconds, &cookie);
                (measure(&cached, seconds, &cookie), b)
            };
            rate_ratios.push(a.rate / b.rate);
            cpu_ratios.push(a.cpu_us / b.cpu_us);
            println!(
                "round {}: module (cached allow) {:7.0} req/s {:5.1} us CPU/req | Apache alone {:7.0} req/s {:5.1} us CPU/req | ratios {:.3} {:.3}",
                round + 1,
                a.rate,
                a.cpu_us,
                b.rate,
                b.cpu_us,
                a.rate / b.rate,
                a.cpu_us / b.cpu_us
            );
        }
        let rate = median(&mut rate_ratios);
        let cpu = median(&mut cpu_ratios);
        println!("median throughput ratio cached-allow / Apache-alone: {rate:.3} ({:+.1} %)", (rate - 1.0) * 100.0);
        println!("median CPU-per-request ratio cached-allow / Apache-alone: {cpu:.3} ({:+.1} %)", (cpu - 1.0) * 100.0);
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

    let mut cached = cached;
    let mut plain = plain;
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
            let up = testkit::apache::wait_until(std::time::Duration::from_secs(60), || {
                testkit::process::wait_for_port(apache.port, std::time::Duration::from_millis(1)).is_ok()
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

struct Sample {
    rate: f64,
    /// Apache's CPU time (all its processes, user + system) per request.
    cpu_us: f64,
}

fn measure(apache: &Apache, seconds: u64, cookie: &str) -> Sample {
    let (ticks0, requests0) = (cpu_ticks(apache), count_requests(apache));
    let rate = wrk(apache, seconds, cookie);
    let (ticks1, requests1) = (cpu_ticks(apache), count_requests(apache));
    let requests = (requests1 - requests0).max(1) as f64;
    let tick_us = 1_000_000.0 / clock_ticks_per_second();
    Sample { rate, cpu_us: (ticks1 - ticks0) as f64 * tick_us / requests }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|x, y| x.total_cmp(y));
    values[values.len() / 2]
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
    apache.access_log().lines().count()
}

/// (searches, binds, accepted connections) in slapd's stats log.
fn ldap_ops(log: &str) -> (usize, usize, usize) {
    (log.matches(" SRCH base=").count(), log.matches(" BIND dn=").count(), log.matches(" ACCEPT from").count())
}
