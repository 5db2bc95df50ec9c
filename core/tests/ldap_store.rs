//! The LDAP store (`LdapDirectory`) and the completion writes built on it,
//! against a real slapd (testkit), and against fake servers on 127.0.0.1
//! that never answer or answer garbage.
//!
//! Settings are built as the module builds them: directive lines through
//! `config::apply`, then `Settings::resolve`, with the key file and the
//! service password file in the test's directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use testkit::fake_ldap::{
    bind_ok, drain, entry_op, fake_ldap, junk, message, result_op, tlv, FakeServer, Reply, BIND_RESPONSE, SEARCH_DONE,
    SEARCH_ENTRY,
};
use testkit::process::{free_port, test_dir};
use testkit::slapd::Slapd;
use testkit::tls::TestCa;
use twofactor_core::anchor::{Forgetful, Local};
use twofactor_core::completion::{self, Presented};
use twofactor_core::config::{self, DirConfig, ServerConfig, Settings, Target};
use twofactor_core::factors::lockout::{self, Reservation};
use twofactor_core::store::codec::{Completion, Failures};
use twofactor_core::store::{Change, Directory, LdapDirectory, Lookup, StoreError, UserEntry};

/// `TwoFactorLDAPTimeout` of the tests that measure it.
const TIMEOUT: Duration = Duration::from_secs(2);
const COMPLETION: &str = "twoFactorCompletion";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Distinct file names for the files one test writes.
static FILE_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Directives beyond the URL, bind DN and files.
#[derive(Default)]
struct Extra<'a> {
    timeout: Option<Duration>,
    starttls: bool,
    ca_certificate: Option<&'a Path>,
}

/// Resolves `Settings` from directive lines, as the module does: a fresh key
/// file (32 random bytes) and `password` in a password file under `root`;
/// `urls` as the arguments of one TwoFactorLDAPURL line.
fn resolve_settings(root: &Path, urls: &[String], bind_dn: &str, password: &str, extra: &Extra<'_>) -> Settings {
    let seq = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
    let key_file = root.join(format!("key-{seq}"));
    let mut key = [0u8; 32];
    twofactor_core::random::fill(&mut key).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let password_file = root.join(format!("ldap-password-{seq}"));
    std::fs::write(&password_file, format!("{password}\n")).unwrap();

    let mut lines: Vec<(&str, Vec<String>)> = vec![
        ("TwoFactorSecretKeyFile", vec![key_file.display().to_string()]),
        ("TwoFactorLDAPURL", urls.to_vec()),
        ("TwoFactorLDAPBindDN", vec![bind_dn.to_string()]),
        ("TwoFactorLDAPBindPasswordFile", vec![password_file.display().to_string()]),
    ];
    if let Some(timeout) = extra.timeout {
        lines.push(("TwoFactorLDAPTimeout", vec![format!("{}", timeout.as_secs())]));
    }
    if extra.starttls {
        lines.push(("TwoFactorLDAPStartTLS", vec!["On".into()]));
    }
    if let Some(ca) = extra.ca_certificate {
        lines.push(("TwoFactorLDAPCACertificate", vec![ca.display().to_string()]));
    }

    let mut server = ServerConfig::default();
    let mut dir = DirConfig::default();
    for (name, args) in &lines {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        config::apply(Target::Server { server: &mut server, dir: &mut dir }, name, &args, root)
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
    }
    let (settings, _warnings) = Settings::resolve(&server, "hostname").unwrap_or_else(|e| panic!("resolve: {e}"));
    settings
}

fn open_directory(settings: &Settings) -> LdapDirectory {
    LdapDirectory::new(settings.ldap.as_ref().expect("LDAP settings")).expect("LdapDirectory::new")
}

/// `SERVER/ou=people,...?uid?sub`
fn people_url(server: &str, slapd: &Slapd) -> String {
    format!("{server}/{}?uid?sub", slapd.people_dn)
}

/// Settings for `slapd` (its plain URL, the service account) and a directory.
fn connect(slapd: &Slapd, root: &Path, extra: &Extra<'_>) -> (Settings, LdapDirectory) {
    let urls = [people_url(&slapd.url, slapd)];
    let settings = resolve_settings(root, &urls, &slapd.service_dn, &slapd.service_password, extra);
    let directory = open_directory(&settings);
    (settings, directory)
}

fn found(result: Result<Lookup, StoreError>, what: &str) -> UserEntry {
    match result {
        Ok(Lookup::Found(entry)) => entry,
        other => panic!("{what}: expected Found, got {other:?}"),
    }
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) -> String {
    match result {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

/// A cookie value as the module issues them (43 base64url characters).
fn cookie(n: usize) -> Vec<u8> {
    format!("{n:A>43}").into_bytes()
}

/// Records a completion for `user`'s browser presenting `cookie`, issued at
/// `issued` for `lifetime` seconds, as the module does; returns it.
fn record(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    cookie: &[u8],
    method: &str,
    issued: u64,
    lifetime: u64,
) -> Result<Completion, StoreError> {
    let keys = settings.keys.as_ref().expect("keys");
    let new = Completion {
        bound: Presented::Cookie(cookie).bound(keys),
        issued,
        expires: issued + lifetime,
        method: method.into(),
    };
    completion::record(directory, settings, user, &new).map(|()| new)
}

// ---------------------------------------------------------------- find_user

#[test]
fn find_user_canonical_names_duplicates_and_injection() {
    let dir = test_dir("ldap-store-find-");
    let slapd = Slapd::start(dir.path());
    let (_, directory) = connect(&slapd, dir.path(), &Extra::default());

    let alice = found(directory.find_user("alice", &["mail", "objectClass"]), "alice");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.dn, slapd.user_dn("alice"));
    assert_eq!(alice.values("mail"), ["alice@example.test"]);
    assert!(alice.has_object_class("twoFactorUser"));

    for asked in ["ALICE", "Alice", "aLiCe"] {
        let entry = found(directory.find_user(asked, &[]), asked);
        assert_eq!(entry.username, "alice", "the canonical name, not the one asked for");
        assert_eq!(entry.dn, slapd.user_dn("alice"));
    }
    let carol = found(directory.find_user("carol", &["objectClass"]), "carol");
    assert!(!carol.has_object_class("twoFactorUser"));

    assert!(matches!(directory.find_user("nobody", &[]), Ok(Lookup::NotFound)));

    // uid=dup is in ou=people and in ou=others: one match under ou=people,
    // two when the URL's base is the whole directory, and then no guess.
    assert_eq!(found(directory.find_user("dup", &[]), "dup under ou=people").dn, slapd.user_dn("dup"));
    let whole = [format!("{}/{}?uid?sub", slapd.url, slapd.base_dn)];
    let whole = resolve_settings(dir.path(), &whole, &slapd.service_dn, &slapd.service_password, &Extra::default());
    let whole_directory = open_directory(&whole);
    assert!(matches!(whole_directory.find_user("dup", &[]), Ok(Lookup::Ambiguous)), "two entries with uid=dup");
    assert!(matches!(whole_directory.find_user("DUP", &[]), Ok(Lookup::Ambiguous)));
    assert_eq!(found(whole_directory.find_user("alice", &[]), "alice in the whole directory").username, "alice");
    let err = record(&whole_directory, &whole, "dup", &cookie(1), "totp", now(), 60).expect_err("ambiguous");
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    let dup_dn = slapd.user_dn("dup");
    assert!(slapd.attr_values(&dup_dn, COMPLETION).is_empty(), "nothing written");

    // Filter metacharacters stay values; and a name the directory matches
    // only by its own rules (insignificant spaces, Unicode case folding) is
    // not the canonical name, so it is no user either.
    for injection in [
        "*",
        "**",
        "a*",
        "*lice",
        "alice)(uid=*",
        "*)(|(uid=*",
        "*)(uid=*))(|(uid=*",
        "alice)(|(objectClass=*)",
        "(uid=alice)",
        "alice\0",
        "alice\0)(uid=*",
        "\\2a",
        "alice\\29",
        "alice ",
        " alice",
        "ALİCE",
        "alıce",
        "",
    ] {
        match directory.find_user(injection, &["mail"]) {
            Ok(Lookup::NotFound) => {}
            other => panic!("{injection:?}: expected NotFound, got {other:?}"),
        }
    }
}

// ------------------------------------------------------------------- record

#[test]
fn record_adds_the_class_replaces_and_prunes() {
    let dir = test_dir("ldap-store-record-");
    let slapd = Slapd::start(dir.path());
    let (settings, directory) = connect(&slapd, dir.path(), &Extra::default());
    let t = now();

    // carol has no twoFactorUser class: the first record adds it.
    let carol = slapd.user_dn("carol");
    let (a, b, c) = (cookie(1), cookie(2), cookie(3));
    let new = record(&directory, &settings, "carol", &a, "totp", t, 3600).expect("record for carol");
    assert!(slapd.attr_values(&carol, "objectClass").contains(&"twoFactorUser".to_string()));
    assert_eq!(slapd.attr_values(&carol, COMPLETION), [sealed(&settings, "carol", &new)]);

    // alice: a second record for the same cookie replaces the first value.
    let alice = slapd.user_dn("alice");
    let first = record(&directory, &settings, "alice", &a, "totp", t, 3600).expect("first record");
    assert_eq!(slapd.attr_values(&alice, COMPLETION), [sealed(&settings, "alice", &first)]);
    let second = record(&directory, &settings, "ALICE", &a, "email", t + 1, 3600).expect("second record, any case");
    assert_ne!(sealed(&settings, "alice", &first), sealed(&settings, "alice", &second));
    assert_eq!(slapd.attr_values(&alice, COMPLETION), [sealed(&settings, "alice", &second)]);

    // An expired value goes with the next record; live ones stay.
    let old = record(&directory, &settings, "alice", &b, "totp", t - 1000, 10).expect("a record that is long expired");
    assert_eq!(
        sorted(slapd.attr_values(&alice, COMPLETION)),
        sorted(vec![sealed(&settings, "alice", &second), sealed(&settings, "alice", &old)])
    );
    let third = record(&directory, &settings, "alice", &c, "totp", t, 3600).expect("third record");
    assert_eq!(
        sorted(slapd.attr_values(&alice, COMPLETION)),
        sorted(vec![sealed(&settings, "alice", &second), sealed(&settings, "alice", &third)])
    );

    // No single entry: refused, nothing written.
    let err = record(&directory, &settings, "nobody", &a, "totp", t, 60).expect_err("nobody");
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
}

/// The stored form of `completion` for `user`.
fn sealed(settings: &Settings, user: &str, completion: &Completion) -> String {
    completion.seal(&settings.signer(user).unwrap())
}

/// Wraps a directory: counts lost compare-and-swaps, and can let another
/// writer change the entry just before the first modify.
struct Meddling<'a> {
    inner: &'a LdapDirectory,
    conflicts: AtomicUsize,
    before_first_modify: std::sync::Mutex<Option<Box<dyn FnOnce() + Send + 'a>>>,
}

impl<'a> Meddling<'a> {
    fn new(inner: &'a LdapDirectory) -> Self {
        Meddling { inner, conflicts: AtomicUsize::new(0), before_first_modify: std::sync::Mutex::new(None) }
    }
}

impl Directory for Meddling<'_> {
    fn find_user(&self, username: &str, attrs: &[&str]) -> Result<Lookup, StoreError> {
        self.inner.find_user(username, attrs)
    }

    fn modify(&self, dn: &str, changes: &[Change]) -> Result<(), StoreError> {
        let meddle = self.before_first_modify.lock().unwrap().take();
        if let Some(meddle) = meddle {
            meddle();
        }
        let result = self.inner.modify(dn, changes);
        if result == Err(StoreError::Conflict) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn users_with(&self, attr: &str) -> Result<Vec<UserEntry>, StoreError> {
        self.inner.users_with(attr)
    }
}

#[test]
fn record_retries_a_lost_compare_and_swap() {
    let dir = test_dir("ldap-store-cas-retry-");
    let slapd = Slapd::start(dir.path());
    let (settings, directory) = connect(&slapd, dir.path(), &Extra::default());
    let t = now();
    let bob = slapd.user_dn("bob");
    let (a, b, c) = (cookie(1), cookie(2), cookie(3));

    let expired = record(&directory, &settings, "bob", &a, "totp", t - 500, 5).expect("expired value");
    // Between record's read and its modify, another server prunes the
    // expired value and records its own: record's delete of the expired
    // value fails, it reads again and writes.
    let meddling = Meddling::new(&directory);
    let other_server = || record(&directory, &settings, "bob", &b, "totp", t, 3600).expect("the other server's record");
    let (other_tx, other_rx) = std::sync::mpsc::channel();
    *meddling.before_first_modify.lock().unwrap() = Some(Box::new(move || other_tx.send(other_server()).unwrap()));
    let mine = record(&meddling, &settings, "bob", &c, "totp", t, 3600).expect("record after a lost compare-and-swap");
    let other = other_rx.recv().unwrap();
    assert_eq!(meddling.conflicts.load(Ordering::Relaxed), 1, "exactly one lost compare-and-swap");
    let stored = sorted(slapd.attr_values(&bob, COMPLETION));
    assert_eq!(stored, sorted(vec![sealed(&settings, "bob", &mine), sealed(&settings, "bob", &other)]));
    assert!(!stored.contains(&sealed(&settings, "bob", &expired)));
}

#[test]
fn concurrent_records_all_land() {
    let dir = test_dir("ldap-store-concurrent-");
    let slapd = Slapd::start(dir.path());
    let (settings, directory) = connect(&slapd, dir.path(), &Extra::default());
    let t = now();
    let bob = slapd.user_dn("bob");

    // An expired value that every writer tries to prune: all but one lose
    // that compare-and-swap and must retry.
    let expired = record(&directory, &settings, "bob", &cookie(99), "totp", t - 500, 5).expect("expired value");
    let meddling = Meddling::new(&directory);
    let threads = 10;
    let barrier = Barrier::new(threads);
    let recorded: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (meddling, settings, barrier) = (&meddling, &settings, &barrier);
                s.spawn(move || {
                    let value = cookie(i);
                    barrier.wait();
                    let recorded = record(meddling, settings, "bob", &value, "totp", t, 3600)
                        .unwrap_or_else(|e| panic!("thread {i}: {e:?}"));
                    sealed(settings, "bob", &recorded)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let conflicts = meddling.conflicts.load(Ordering::Relaxed);
    eprintln!("concurrent_records_all_land: {conflicts} lost compare-and-swaps retried");

    let stored = sorted(slapd.attr_values(&bob, COMPLETION));
    assert_eq!(stored, sorted(recorded.clone()), "every thread's value, and the expired one gone");
    assert!(!stored.contains(&sealed(&settings, "bob", &expired)));
    // The store's own reading agrees with ldapsearch.
    let entry = found(directory.find_user("bob", &[COMPLETION]), "bob");
    assert_eq!(sorted(entry.values(COMPLETION).to_vec()), stored);

    // users_with lists bob (and only entries with values).
    let users = directory.users_with(COMPLETION).expect("users_with");
    assert_eq!(users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["bob"]);
    assert_eq!(users[0].values(COMPLETION).len(), threads);

    // revoke_all removes them all and says how many there were.
    assert_eq!(completion::revoke_all(&directory, &settings, "bob").expect("revoke"), threads);
    assert!(slapd.attr_values(&bob, COMPLETION).is_empty());
    assert_eq!(completion::revoke_all(&directory, &settings, "BOB").expect("revoke again"), 0);
    assert!(matches!(completion::revoke_all(&directory, &settings, "nobody"), Err(StoreError::Refused(_))));
    assert!(directory.users_with(COMPLETION).expect("users_with").is_empty());
}

#[test]
fn forty_concurrent_reservations_grant_max_attempts() {
    let dir = test_dir("ldap-store-reserve-");
    let slapd = Slapd::start(dir.path());
    let (settings, directory) = connect(&slapd, dir.path(), &Extra::default());
    assert_eq!(settings.max_attempts, 5);
    let t = now();
    let threads = 40;
    let anchor = Local::new(64);
    let barrier = Barrier::new(threads);
    let answers: Vec<Reservation> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (directory, settings, barrier, anchor) = (&directory, &settings, &barrier, &anchor);
                s.spawn(move || {
                    barrier.wait();
                    let answer = lockout::reserve_attempt(directory, settings, anchor, "alice", t)
                        .unwrap_or_else(|e| panic!("thread {i}: {e:?}"));
                    // Reads outdated by a concurrent write are never taken for tampering.
                    assert_eq!(twofactor_core::tamper::take(), [], "thread {i}");
                    answer
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted: Vec<u32> = answers
        .iter()
        .filter_map(|a| match a {
            Reservation::Granted { count, .. } => Some(*count),
            Reservation::Locked { .. } => None,
        })
        .collect();
    assert_eq!(sorted_counts(granted), [1, 2, 3, 4, 5], "{answers:?}");
    let newly = answers.iter().filter(|a| matches!(a, Reservation::Locked { newly: true, .. })).count();
    assert_eq!(newly, 1, "one refusal set the lock: {answers:?}");
    let stored = slapd.attr_values(&slapd.user_dn("alice"), "twoFactorFailures");
    let alice = settings.signer("alice").unwrap();
    let failures = Failures::open(&alice, &stored[0]).expect("a failures value");
    assert!(failures.is_locked(t), "{failures:?}");
    assert_eq!(failures.locked_until, Some(t + 1800), "the lock of the rules, not one for tampering");
    assert_eq!((failures.count, failures.pending), (5, 5));
    // A right code now does not lift the lock, and a wrong one changes nothing.
    assert!(lockout::record_right_code(&directory, &settings, &Forgetful, "alice", t).expect("right code").is_err());
    assert_eq!(lockout::record_wrong_code(&directory, &settings, &Forgetful, "alice", t).expect("wrong code"), None);
    assert!(Failures::open(&alice, &slapd.attr_values(&slapd.user_dn("alice"), "twoFactorFailures")[0])
        .expect("a failures value")
        .is_locked(t));
}

fn sorted_counts(mut counts: Vec<u32>) -> Vec<u32> {
    counts.sort_unstable();
    counts
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

/// Long-lived connections do not grow with the searches they carry
/// (found by the soak: ldap3's plain `search()` keeps every message ID).
/// Four threads, 40,000 look-ups each on their own pooled connection: the
/// kept IDs would need four tables of 65,536 slots, over a megabyte.
#[test]
fn searches_leave_nothing_behind_on_their_connections() {
    let dir = test_dir("ldap-store-ids-");
    let slapd = Slapd::start(dir.path());
    let (_, directory) = connect(&slapd, dir.path(), &Extra::default());
    let lookups = |n: usize| {
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..n {
                        found(directory.find_user("bob", &[COMPLETION]), "bob");
                    }
                });
            }
        })
    };
    lookups(2_000);
    let before = rss_kib();
    lookups(38_000);
    let grown = rss_kib().saturating_sub(before);
    eprintln!("160,000 searches on four connections: resident memory grew {grown} KiB");
    assert!(grown < 768, "grew {grown} KiB");
}

#[test]
fn find_valid_matches_the_recorded_cookie_only() {
    let dir = test_dir("ldap-store-find-valid-");
    let slapd = Slapd::start(dir.path());
    let (settings, directory) = connect(&slapd, dir.path(), &Extra::default());
    let keys = settings.keys.as_ref().unwrap();
    let t = now();
    let (mine, other) = (cookie(1), cookie(2));

    let recorded = record(&directory, &settings, "alice", &mine, "totp", t, 3600).expect("record");
    let entry = found(directory.find_user("alice", &[COMPLETION]), "alice");
    let values = entry.values(COMPLETION);
    let s = settings.signer("alice").unwrap();
    assert_eq!(completion::find_valid(&s, values, &Presented::Cookie(&mine), keys, t + 1, 3600), Some(recorded));
    assert_eq!(completion::find_valid(&s, values, &Presented::Cookie(&other), keys, t + 1, 3600), None);
    assert_eq!(completion::find_valid(&s, values, &Presented::GatewaySession(&mine), keys, t + 1, 3600), None);
    let expired = completion::find_valid(&s, values, &Presented::Cookie(&mine), keys, t + 3600, 8 * 3600);
    assert_eq!(expired, None, "expired");

    // Another key (another installation) does not recognise it.
    let other_settings = settings_for_same(&slapd, dir.path());
    let other_keys = other_settings.keys.as_ref().unwrap();
    let other_signer = other_settings.signer("alice").unwrap();
    let mine_elsewhere =
        completion::find_valid(&other_signer, values, &Presented::Cookie(&mine), other_keys, t + 1, 3600);
    assert_eq!(mine_elsewhere, None);
}

fn settings_for_same(slapd: &Slapd, root: &Path) -> Settings {
    resolve_settings(
        root,
        &[people_url(&slapd.url, slapd)],
        &slapd.service_dn,
        &slapd.service_password,
        &Extra::default(),
    )
}

// ------------------------------------------------------ compare-and-swap

#[test]
fn modify_is_compare_and_swap() {
    let dir = test_dir("ldap-store-modify-");
    let slapd = Slapd::start(dir.path());
    let (_, directory) = connect(&slapd, dir.path(), &Extra::default());
    let alice = slapd.user_dn("alice");
    let swap = |old: &str, new: &str| {
        [Change::Delete(COMPLETION.into(), vec![old.into()]), Change::Add(COMPLETION.into(), vec![new.into()])]
    };

    directory.modify(&alice, &[Change::Add(COMPLETION.into(), vec!["v0".into()])]).expect("add v0");
    // Two writers that both read v0: the first swap wins, the second loses.
    assert_eq!(directory.modify(&alice, &swap("v0", "v1")), Ok(()));
    assert_eq!(directory.modify(&alice, &swap("v0", "v2")), Err(StoreError::Conflict));
    assert_eq!(slapd.attr_values(&alice, COMPLETION), ["v1"], "the losing modify changed nothing");

    // The same, racing: exactly one of ten wins.
    let threads = 10;
    let barrier = Barrier::new(threads);
    let results: Vec<Result<(), StoreError>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (directory, barrier, alice, swap) = (&directory, &barrier, &alice, &swap);
                s.spawn(move || {
                    let changes = swap("v1", &format!("w{i}"));
                    barrier.wait();
                    directory.modify(alice, &changes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..threads).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok() || *r == Err(StoreError::Conflict)), "{results:?}");
    assert_eq!(slapd.attr_values(&alice, COMPLETION), [format!("w{}", winners[0])]);

    // Adding a value that is there, or a second value of a single-valued
    // attribute, also loses; deleting an absent attribute too.
    let winner = format!("w{}", winners[0]);
    assert_eq!(directory.modify(&alice, &[Change::Add(COMPLETION.into(), vec![winner])]), Err(StoreError::Conflict));
    let failures = "twoFactorFailures";
    directory.modify(&alice, &[Change::Add(failures.into(), vec!["{\"v\":1,\"n\":1,\"l\":1}".into()])]).expect("add");
    assert_eq!(
        directory.modify(&alice, &[Change::Add(failures.into(), vec!["{\"v\":1,\"n\":2,\"l\":2}".into()])]),
        Err(StoreError::Conflict)
    );
    assert_eq!(
        directory.modify(&alice, &[Change::Delete("twoFactorRecovery".into(), vec![])]),
        Err(StoreError::Conflict)
    );
    // A change the ACLs forbid is refused, not a conflict.
    match directory.modify(&alice, &[Change::Replace("mail".into(), vec!["mallory@example.test".into()])]) {
        Err(StoreError::Refused(_)) => {}
        other => panic!("writing mail: expected Refused, got {other:?}"),
    }
    assert_eq!(slapd.attr_values(&alice, "mail"), ["alice@example.test"]);
}

// ------------------------------------------------------------- bind refused

#[test]
fn refused_bind_is_unavailable_quickly() {
    let dir = test_dir("ldap-store-bind-");
    let slapd = Slapd::start(dir.path());
    let urls = [people_url(&slapd.url, &slapd)];
    let extra = Extra { timeout: Some(TIMEOUT), ..Extra::default() };
    let settings = resolve_settings(dir.path(), &urls, &slapd.service_dn, "not-the-password", &extra);
    let directory = open_directory(&settings);

    let started = Instant::now();
    let message = assert_unavailable(directory.find_user("alice", &[]), "wrong password");
    let elapsed = started.elapsed();
    assert!(message.contains("bind"), "{message}");
    assert!(elapsed < TIMEOUT, "a refused bind answers at once, not after the timeout: {elapsed:?}");
    let message = assert_unavailable(directory.modify(&slapd.user_dn("alice"), &[]), "modify");
    assert!(message.contains("bind"), "{message}");
    assert_unavailable(directory.users_with(COMPLETION), "users_with");

    // The same LDAP URL with an unknown bind DN.
    let nobody = format!("cn=nobody,{}", slapd.base_dn);
    let settings = resolve_settings(dir.path(), &urls, &nobody, &slapd.service_password, &extra);
    let message = assert_unavailable(open_directory(&settings).find_user("alice", &[]), "unknown bind DN");
    assert!(message.contains("bind"), "{message}");
}

// ------------------------------------------------- failover, coming back

#[test]
fn failover_to_the_next_server() {
    let dir = test_dir("ldap-store-failover-");
    let mut slapd = Slapd::start(dir.path());
    // Nothing listens there: the port was free a moment ago and is not bound.
    let dead = format!("ldap://127.0.0.1:{}", free_port());
    let urls = [people_url(&dead, &slapd), people_url(&slapd.url, &slapd)];
    let extra = Extra { timeout: Some(TIMEOUT), ..Extra::default() };
    let settings = resolve_settings(dir.path(), &urls, &slapd.service_dn, &slapd.service_password, &extra);
    let directory = open_directory(&settings);

    let started = Instant::now();
    assert_eq!(found(directory.find_user("alice", &[]), "via the second URL").username, "alice");
    eprintln!("failover: first lookup {:?}", started.elapsed());
    record(&directory, &settings, "alice", &cookie(1), "totp", now(), 60).expect("record via the second URL");

    // Both down (the first marked down for a while): fails fast; once the
    // second is back it is used again at once, although it was marked down too.
    slapd.stop();
    let started = Instant::now();
    assert_unavailable(directory.find_user("alice", &[]), "all servers down");
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1), "{:?}", started.elapsed());
    slapd.start_again();
    assert_eq!(found(directory.find_user("alice", &[]), "after coming back").username, "alice");
}

#[test]
fn a_server_that_comes_back() {
    let dir = test_dir("ldap-store-comeback-");
    let mut slapd = Slapd::start(dir.path());
    let extra = Extra { timeout: Some(TIMEOUT), ..Extra::default() };
    let (settings, directory) = connect(&slapd, dir.path(), &extra);
    let alice = slapd.user_dn("alice");
    found(directory.find_user("alice", &[]), "before");

    // Restarted behind the pool's back: the pooled connection is dead, and
    // replaced without the caller noticing.
    slapd.restart();
    found(directory.find_user("alice", &[]), "after a restart (pooled connection replaced)");

    // Down: every operation fails within the timeout (plus a margin).
    for crash in [false, true] {
        if crash {
            slapd.kill();
        } else {
            slapd.stop();
        }
        let started = Instant::now();
        assert_unavailable(directory.find_user("alice", &[]), "find_user while down");
        assert_unavailable(directory.modify(&alice, &[Change::Add(COMPLETION.into(), vec!["x".into()])]), "modify");
        let elapsed = started.elapsed();
        eprintln!("comeback (crash={crash}): two failed operations took {elapsed:?}");
        assert!(elapsed < 2 * TIMEOUT + Duration::from_secs(1), "{elapsed:?}");

        slapd.start_again();
        found(directory.find_user("alice", &[]), "after coming back");
        record(&directory, &settings, "alice", &cookie(1), "totp", now(), 60).expect("record after coming back");
    }
}

// ------------------------------------------------------------ fake servers

fn fake_settings(root: &Path, urls: &[String], extra: &Extra<'_>) -> Settings {
    resolve_settings(root, urls, "cn=twofactor,ou=services,dc=example,dc=test", "service-secret", extra)
}

/// find_user against a fake server: the result and how long it took.
fn lookup_at(root: &Path, url: String, extra: &Extra<'_>) -> (Result<Lookup, StoreError>, Duration) {
    let settings = fake_settings(root, &[url], extra);
    let directory = open_directory(&settings);
    let started = Instant::now();
    let result = directory.find_user("alice", &["mail"]);
    (result, started.elapsed())
}

#[test]
fn fake_server_control_answers_like_ldap() {
    // The fake server's BER is right: a well-formed answer is understood,
    // so the garbage cases below do reach the parsing they aim at.
    let dir = test_dir("ldap-store-fake-control-");
    let alice = entry_op(b"uid=alice,ou=people,dc=example,dc=test", &[("uid", &[b"alice"]), ("mail", &[b"a@x"])]);
    let server = fake_ldap(bind_ok(), Reply::Ops(vec![alice, result_op(SEARCH_DONE, 0)]));
    let extra = Extra { timeout: Some(TIMEOUT), ..Extra::default() };
    let (result, _) = lookup_at(dir.path(), server.url("ldap"), &extra);
    let entry = found(result, "fake alice");
    assert_eq!((entry.username.as_str(), entry.values("mail")), ("alice", &["a@x".to_string()][..]));
}

#[test]
fn silent_servers_time_out() {
    let dir = test_dir("ldap-store-timeout-");
    let ca = TestCa::new(&dir.path().join("ca"), "unused CA");
    let silent = FakeServer::start(drain);
    let search_hangs = fake_ldap(bind_ok(), Reply::Silent);
    let plain = Extra { timeout: Some(TIMEOUT), ..Extra::default() };
    let starttls = Extra { timeout: Some(TIMEOUT), starttls: true, ca_certificate: Some(&ca.cert) };
    let ldaps = Extra { timeout: Some(TIMEOUT), ca_certificate: Some(&ca.cert), ..Extra::default() };
    let cases = [
        ("connect, bind unanswered", silent.url("ldap"), &plain),
        ("StartTLS unanswered", silent.url("ldap"), &starttls),
        ("TLS handshake unanswered", silent.url("ldaps"), &ldaps),
        ("bind answered, search unanswered", search_hangs.url("ldap"), &plain),
    ];
    // In parallel: each takes the timeout.
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> =
            cases.iter().map(|(_, url, extra)| s.spawn(|| lookup_at(dir.path(), url.clone(), extra))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((what, _, _), (result, elapsed)) in cases.iter().zip(results) {
        eprintln!("silent_servers_time_out: {what}: {elapsed:?} {result:?}");
        assert_unavailable(result, what);
        // Loose bounds: it is the timeout that ended it, and nothing hangs.
        assert!(elapsed >= TIMEOUT - Duration::from_millis(100), "{what}: {elapsed:?}");
        assert!(elapsed < 3 * TIMEOUT, "{what}: {elapsed:?}");
    }
}

#[test]
fn garbage_is_never_a_user() {
    let dir = test_dir("ldap-store-garbage-");
    let alice_dn: &[u8] = b"uid=alice,ou=people,dc=example,dc=test";
    let done = || result_op(SEARCH_DONE, 0);
    let entry = |dn: &[u8], uid: &[u8]| entry_op(dn, &[("uid", &[uid])]);
    // A search entry whose attribute list holds integers, not attributes.
    let bad_attrs = tlv(SEARCH_ENTRY, &[tlv(0x04, alice_dn), tlv(0x30, &tlv(0x02, &[1]))].concat());
    // A search entry with a primitive where the attribute list belongs.
    let flat_attrs = tlv(SEARCH_ENTRY, &[tlv(0x04, alice_dn), tlv(0x04, b"uid")].concat());
    let mut cases: Vec<(&str, FakeServer)> = vec![
        (
            "junk on connect",
            FakeServer::start(|mut s| {
                let _ = s.write_all(&junk(1000));
                drain(s);
            }),
        ),
        ("junk for the bind", fake_ldap(Reply::Junk, Reply::Junk)),
        ("junk for the search", fake_ldap(bind_ok(), Reply::Junk)),
        ("a BER header claiming 2 GiB", fake_ldap(Reply::Raw(vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]), Reply::Silent)),
        ("an LDAPMessage of junk", fake_ldap(Reply::Raw(tlv(0x30, &junk(200))), Reply::Silent)),
        ("an empty LDAPMessage", fake_ldap(Reply::Raw(vec![0x30, 0x00]), Reply::Silent)),
        ("an LDAPMessage with only an ID", fake_ldap(Reply::Raw(tlv(0x30, &tlv(0x02, &[1]))), Reply::Silent)),
        (
            "a message ID that is a string",
            fake_ldap(Reply::Raw(tlv(0x30, &[tlv(0x04, b"x"), result_op(BIND_RESPONSE, 0)].concat())), Reply::Silent),
        ),
        ("an empty bind response", fake_ldap(Reply::Ops(vec![tlv(BIND_RESPONSE, b"")]), Reply::Silent)),
        (
            "a bind response without texts",
            fake_ldap(Reply::Ops(vec![tlv(BIND_RESPONSE, &tlv(0x0a, &[0]))]), Reply::Silent),
        ),
        (
            "a bind response with a string result code",
            fake_ldap(
                Reply::Ops(vec![tlv(BIND_RESPONSE, &[tlv(0x04, b"0"), tlv(0x04, b""), tlv(0x04, b"")].concat())]),
                Reply::Silent,
            ),
        ),
        ("a primitive bind response", fake_ldap(Reply::Ops(vec![vec![BIND_RESPONSE, 0x01, 0x00]]), Reply::Silent)),
        (
            "a bind response for another message",
            fake_ldap(Reply::Raw(message(&[0x02, 0x01, 0x7f], &result_op(BIND_RESPONSE, 0))), Reply::Silent),
        ),
        ("a refused bind", fake_ldap(Reply::Ops(vec![result_op(BIND_RESPONSE, 49)]), Reply::Silent)),
        ("a search entry answering the bind", fake_ldap(Reply::Ops(vec![entry(alice_dn, b"alice")]), Reply::Silent)),
        ("the connection closed at the bind", fake_ldap(Reply::Close, Reply::Close)),
        ("the connection closed at the search", fake_ldap(bind_ok(), Reply::Close)),
        ("a failed search", fake_ldap(bind_ok(), Reply::Ops(vec![result_op(SEARCH_DONE, 80)]))),
        ("an empty search done", fake_ldap(bind_ok(), Reply::Ops(vec![tlv(SEARCH_DONE, b"")]))),
        ("entry, then junk", fake_ldap(bind_ok(), Reply::Ops(vec![entry(alice_dn, b"alice"), junk(100)]))),
        ("entry, no done, then silence", fake_ldap(bind_ok(), Reply::Ops(vec![entry(alice_dn, b"alice")]))),
        ("an entry with integers for attributes", fake_ldap(bind_ok(), Reply::Ops(vec![bad_attrs, done()]))),
        ("an entry with a string for attributes", fake_ldap(bind_ok(), Reply::Ops(vec![flat_attrs, done()]))),
        ("an empty entry", fake_ldap(bind_ok(), Reply::Ops(vec![tlv(SEARCH_ENTRY, b""), done()]))),
        (
            "a DN that is not UTF-8",
            fake_ldap(bind_ok(), Reply::Ops(vec![entry(b"uid=\xff\xfe,dc=x", b"alice"), done()])),
        ),
        ("a uid that is not UTF-8", fake_ldap(bind_ok(), Reply::Ops(vec![entry(alice_dn, b"al\xffice"), done()]))),
        (
            "an entry for someone else",
            fake_ldap(bind_ok(), Reply::Ops(vec![entry(b"uid=mallory,dc=x", b"mallory"), done()])),
        ),
        (
            "an entry without the uid",
            fake_ldap(bind_ok(), Reply::Ops(vec![entry_op(alice_dn, &[("mail", &[b"a@x"])]), done()])),
        ),
        ("a bind response answering the search", fake_ldap(bind_ok(), Reply::Ops(vec![result_op(BIND_RESPONSE, 0)]))),
    ];
    for i in 0..5 {
        let name: &'static str = Box::leak(format!("junk entry #{i}").into_boxed_str());
        cases.push((name, fake_ldap(bind_ok(), Reply::Ops(vec![tlv(SEARCH_ENTRY, &junk(300)), done()]))));
    }

    let extra = Extra { timeout: Some(Duration::from_secs(1)), ..Extra::default() };
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(what, server)| {
                let url = server.url("ldap");
                let extra = &extra;
                let root = dir.path();
                s.spawn(move || {
                    // A panic here fails the test: the store must turn
                    // every answer into a result.
                    std::panic::catch_unwind(|| lookup_at(root, url, extra)).map_err(|_| format!("{what}: panicked"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for ((what, _), outcome) in cases.iter().zip(results) {
        let (result, elapsed) = match outcome {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        eprintln!("garbage_is_never_a_user: {what}: {elapsed:?} {result:?}");
        match &result {
            Err(StoreError::Unavailable(_) | StoreError::Garbage(_)) => {}
            // A well-formed answer that names no matching user.
            Ok(Lookup::NotFound | Lookup::Ambiguous) => {}
            other => failures.push(format!("{what}: {other:?}")),
        }
        if elapsed >= Duration::from_secs(3) {
            failures.push(format!("{what}: took {elapsed:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------- TLS

fn tls_extra(starttls: bool, ca: &Path) -> Extra<'_> {
    Extra { timeout: Some(TIMEOUT), starttls, ca_certificate: Some(ca) }
}

#[test]
fn tls_ldaps_and_starttls() {
    let dir = test_dir("ldap-store-tls-");
    let slapd = Slapd::start_tls(dir.path());
    let ca = slapd.ca_cert().to_path_buf();
    let other_ca = TestCa::new(&dir.path().join("other-ca"), "another CA");
    let ldaps = [people_url(slapd.ldaps_url(), &slapd)];
    let plain = [people_url(&slapd.url, &slapd)];
    let make = |urls: &[String], extra: &Extra<'_>| {
        let settings = resolve_settings(dir.path(), urls, &slapd.service_dn, &slapd.service_password, extra);
        let directory = open_directory(&settings);
        (settings, directory)
    };

    for (what, urls, starttls) in [("ldaps", &ldaps, false), ("StartTLS", &plain, true)] {
        let (settings, directory) = make(urls, &tls_extra(starttls, &ca));
        let started = Instant::now();
        let entry = found(directory.find_user("alice", &["mail"]), what);
        eprintln!("tls: {what} lookup {:?}", started.elapsed());
        assert_eq!(entry.username, "alice");
        let c = cookie(if starttls { 1 } else { 2 });
        record(&directory, &settings, "alice", &c, "totp", now(), 60)
            .unwrap_or_else(|e| panic!("{what}: record: {e:?}"));
        // A second operation on the pooled TLS connection.
        found(directory.find_user("alice", &[COMPLETION]), what);

        // A certificate from a CA not trusted: refused, quickly.
        let (_, untrusted) = make(urls, &tls_extra(starttls, &other_ca.cert));
        let started = Instant::now();
        let message = assert_unavailable(untrusted.find_user("alice", &[]), &format!("{what}, another CA"));
        eprintln!("tls: {what} with another CA: {:?}: {message}", started.elapsed());
        assert!(message.to_ascii_lowercase().contains("certificate"), "{message}");
        assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    }
    let slapd_log = slapd.log();
    assert!(!slapd_log.to_ascii_lowercase().contains("tls init"), "{slapd_log}");
}
