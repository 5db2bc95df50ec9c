//! The soak's setup, shared by examples/soak.rs (long) and tests/soak.rs
//! (short): the protected server with its cache (TTL 30 s) and a second
//! one without (TTL 0), both behind a gateway shared secret, alice with a
//! completion, and the mix of requests.

use std::time::{SystemTime, UNIX_EPOCH};

use testkit::apache::{Apache, ApacheOptions};
use testkit::directory::Kind as DirectoryKind;
use testkit::soak::Kind;
use testkit::stack::{protected_body, Stack, StackOptions};
use twofactor_core::completion::Presented;
use twofactor_core::keys::Keys;
use twofactor_core::secret::Secret;
use twofactor_core::store::codec::Completion;
use twofactor_core::store::signed::Signer;

pub const SECRET: &str = "soak-gateway-secret";
const COOKIE: &str = "U09BS1NPQUtTT0FLU09BS1NPQUtTT0FLU09BS1NPQUs";
const FORGED: &str = "Rk9SR0VERk9SR0VERk9SR0VERk9SR0VERk9SR0VERk9";

pub struct Rig {
    pub stack: Stack,
    /// The same site with `TwoFactorCacheTTL 0`: every allow asks the directory.
    pub uncached: Apache,
}

fn extra(root: &std::path::Path, ttl: &str) -> String {
    format!(
        "TwoFactorProxySecretHeader X-Gateway-Secret\nTwoFactorProxySecretFile {}/gateway.secret\n\
         TwoFactorCacheTTL {ttl}\n",
        root.display()
    )
}

pub fn rig(options: ApacheOptions) -> Rig {
    let dir = testkit::process::test_dir("twofactor-soak-secret");
    std::fs::write(dir.path().join("gateway.secret"), format!("{SECRET}\n")).unwrap();
    let stack = Stack::start(StackOptions {
        gateway: false,
        extra: extra(dir.path(), "30"),
        apache: ApacheOptions { log_level: "warn".into(), ..options.clone() },
        directory: Some(DirectoryKind::Slapd),
    });
    let root = stack.dir.path().join("uncached");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(&stack.key_file, root.join("twofactor.key")).unwrap();
    std::fs::copy(stack.protected.root.join("bind.pw"), root.join("bind.pw")).unwrap();
    std::fs::copy(dir.path().join("gateway.secret"), root.join("gateway.secret")).unwrap();
    let body = protected_body(&root, &stack.directory, &stack.smtp, &stack.backend, &extra(&root, "0"));
    let uncached = Apache::start(&root, ApacheOptions { log_level: "warn".into(), ..options }, &body);
    let keys = Keys::from_files(&[Secret::new(std::fs::read(&stack.key_file).unwrap())]).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let value = Completion {
        bound: Presented::Cookie(COOKIE.as_bytes()).bound(&keys),
        issued: now,
        expires: now + 8 * 3600,
        method: "totp".into(),
    }
    .seal(&Signer::new(&keys, "alice", false));
    stack.directory.modify_ldif(&format!(
        "dn: {}\nchangetype: modify\nadd: twoFactorCompletion\ntwoFactorCompletion: {value}\n",
        stack.directory.user_dn("alice")
    ));
    drop(dir);
    Rig { stack, uncached }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One of each, in turn: allowed, navigation without a completion, a
/// cookie without one (a directory look-up), XHR, a wrong gateway secret,
/// an ambiguous path.
pub fn mix() -> Vec<Kind> {
    let html = "text/html";
    let cookie = format!("TwoFactorSession={COOKIE}");
    let forged = format!("TwoFactorSession={FORGED}");
    let kind = |name, pairs: &[(&str, &str)], expect, allowed| Kind {
        name,
        headers: headers(pairs),
        path: None,
        expect,
        allowed,
    };
    vec![
        kind("allowed", &[("X-Remote-User", "alice"), ("X-Gateway-Secret", SECRET), ("Cookie", &cookie)], 200, true),
        kind("challenged", &[("X-Remote-User", "bob"), ("X-Gateway-Secret", SECRET), ("Accept", html)], 303, false),
        kind(
            "miss",
            &[("X-Remote-User", "bob"), ("X-Gateway-Secret", SECRET), ("Accept", html), ("Cookie", &forged)],
            303,
            false,
        ),
        kind(
            "xhr",
            &[("X-Remote-User", "bob"), ("X-Gateway-Secret", SECRET), ("X-Requested-With", "XMLHttpRequest")],
            401,
            false,
        ),
        kind("spoof", &[("X-Remote-User", "alice"), ("X-Gateway-Secret", "wrong"), ("Cookie", &cookie)], 403, false),
        Kind {
            name: "badpath",
            headers: headers(&[("X-Remote-User", "alice"), ("X-Gateway-Secret", SECRET), ("Cookie", &cookie)]),
            path: Some("/app/..;/soak-allowed".into()),
            expect: 400,
            allowed: false,
        },
    ]
}

/// Error-log lines above `warn` (error, crit, alert, emerg), and crashes.
pub fn serious_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            [":error]", ":crit]", ":alert]", ":emerg]", "exit signal", "panicked"]
                .iter()
                .any(|needle| l.contains(needle))
        })
        .map(str::to_string)
        .collect()
}
