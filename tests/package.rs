//! The Debian package: built by packaging/build-deb.sh, installed with dpkg
//! on this machine, enabled with a2enmod, checked by `apache2ctl -t`, then
//! disabled and purged without leaving anything behind.
//!
//! Needs root and Debian's apache2. It changes the system only for the
//! duration of the test: a guard purges the package and disables the
//! module even when an assertion fails halfway. The system's Apache is
//! never started or reloaded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step stops the run

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const PACKAGE: &str = "mod-twofactor";
const MODULE: &str = "/usr/lib/apache2/modules/mod_twofactor.so";
const LOAD: &str = "/etc/apache2/mods-available/twofactor.load";
const CONF: &str = "/etc/apache2/mods-available/twofactor.conf";
const CTL: &str = "/usr/sbin/twofactorctl";
const DOC: &str = "/usr/share/doc/mod-twofactor";
const ENABLED_DIR: &str = "/etc/apache2/mods-enabled";
const ENABLED_LOAD: &str = "/etc/apache2/mods-enabled/twofactor.load";
const ENABLED_CONF: &str = "/etc/apache2/mods-enabled/twofactor.conf";
/// Held while the test runs, so that two runs never interleave.
const LOCK: &str = "/tmp/mod-twofactor-package-test.lock";
/// Directories that a2enmod/a2dismod (state markers) and apache2ctl (runtime
/// directories) create when missing; the ones the test created are removed
/// again if empty. Children before parents.
const CREATED_ON_DEMAND: &[&str] = &[
    "/var/lib/apache2/module/enabled_by_admin",
    "/var/lib/apache2/module/disabled_by_admin",
    "/var/lib/apache2/module/enabled_by_maint",
    "/var/lib/apache2/module/disabled_by_maint",
    "/run/apache2/socks",
    "/run/apache2",
    "/run/lock/apache2",
];

fn command(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs a command that must succeed; returns its stdout and stderr together.
fn run(program: &str, args: &[&str]) -> String {
    let out = command(program, args);
    assert!(out.status.success(), "{program} {} failed ({}):\n{}", args.join(" "), out.status, text(&out));
    text(&out)
}

/// dpkg's status of the package, or None when dpkg does not know it.
fn package_status() -> Option<String> {
    let out = command("dpkg-query", &["-W", "-f=${Status} ${Version}", PACKAGE]);
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || status.is_empty() || status.starts_with("unknown ok not-installed") {
        None
    } else {
        Some(status)
    }
}

fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn enabled_entries() -> Vec<String> {
    fs::read_dir(ENABLED_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains("twofactor"))
                .collect()
        })
        .unwrap_or_default()
}

fn marker_files() -> Vec<PathBuf> {
    fs::read_dir("/var/lib/apache2/module")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path().join("twofactor")).filter(|p| p.exists()).collect())
        .unwrap_or_default()
}

fn assert_file(path: &str, mode: u32) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path} not installed: {e}"));
    assert!(meta.file_type().is_file(), "{path} is not a regular file");
    assert_eq!(meta.permissions().mode() & 0o7777, mode, "mode of {path}");
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "owner of {path}");
}

/// Cargo's target directory of this test binary (target/<profile>/deps/).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary directory");
    match deps.parent().and_then(Path::parent) {
        Some(target) if deps.file_name().is_some_and(|n| n == "deps") => target.to_path_buf(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// Undoes whatever the test changed, also when it panics: disables the
/// module, purges the package and removes the directories the tools
/// created. Nothing here panics (a panic while unwinding would abort).
struct Cleanup {
    created: Vec<&'static str>,
}

impl Cleanup {
    fn new() -> Self {
        Cleanup { created: CREATED_ON_DEMAND.iter().copied().filter(|d| !exists(d)).collect() }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if exists(ENABLED_LOAD) || exists(ENABLED_CONF) {
            let out = command("a2dismod", &["-q", "-f", "twofactor"]);
            if !out.status.success() {
                eprintln!("cleanup: a2dismod twofactor failed: {}", text(&out));
            }
        }
        if package_status().is_some() {
            let out = command("dpkg", &["-P", PACKAGE]);
            if !out.status.success() {
                eprintln!("cleanup: dpkg -P {PACKAGE} failed: {}", text(&out));
            }
        }
        // The package's postrm forgets a2enmod's markers on purge; this
        // covers a purge that failed.
        for marker in marker_files() {
            let _ = fs::remove_file(marker);
        }
        for dir in &self.created {
            let _ = fs::remove_dir(dir); // only if empty
        }
    }
}

#[test]
fn debian_package_installs_enables_and_purges_cleanly() {
    let started = Instant::now();
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the package test installs a Debian package and must run as root");

    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)
        .unwrap_or_else(|e| panic!("cannot open {LOCK}: {e}"));
    // SAFETY: the descriptor belongs to `lock`, which outlives the call; the
    // lock is released when `lock` is dropped at the end of the test.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock {LOCK}: {}", std::io::Error::last_os_error());

    if let Some(status) = package_status() {
        panic!("{PACKAGE} is already known to dpkg ({status}); remove it (dpkg -P {PACKAGE}) before running this test");
    }
    for path in [MODULE, LOAD, CONF, CTL, DOC, ENABLED_LOAD, ENABLED_CONF] {
        assert!(
            !exists(path),
            "{path} exists though {PACKAGE} is not installed (scripts/install.sh?); the test would delete it, \
             so remove it first"
        );
    }

    // Build the package.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = target_dir();
    // Cargo gives tests variables of its own (OUT_DIR, LD_LIBRARY_PATH,
    // CARGO_PKG_*): passed on to the release build they would change its
    // fingerprints and rebuild it from scratch.
    let mut build = Command::new(root.join("packaging/build-deb.sh"));
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n == "OUT_DIR" || n == "LD_LIBRARY_PATH" || (n.starts_with("CARGO") && n != "CARGO_HOME") {
            build.env_remove(&name);
        }
    }
    let out = build.arg(&target).current_dir(root).stdin(Stdio::null()).output().expect("run packaging/build-deb.sh");
    assert!(out.status.success(), "packaging/build-deb.sh failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = PathBuf::from(stdout.lines().last().expect("build-deb.sh prints the package path").trim());
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let version = env!("CARGO_PKG_VERSION").replacen('-', "~", 1);
    let arch = run("dpkg", &["--print-architecture"]).trim().to_string();
    assert_eq!(deb_name, format!("{PACKAGE}_{version}_{arch}.deb"));
    assert_eq!(deb.parent().unwrap(), target.join("debian"));
    let built = started.elapsed();
    let deb = deb.to_str().unwrap();

    let info = run("dpkg-deb", &["-f", deb]);
    for field in [
        format!("Package: {PACKAGE}"),
        format!("Version: {version}"),
        format!("Architecture: {arch}"),
        "Section: httpd".to_string(),
        "Recommends: ldap-utils".to_string(),
    ] {
        assert!(info.lines().any(|l| l == field), "control lacks {field:?}:\n{info}");
    }
    let depends = info.lines().find_map(|l| l.strip_prefix("Depends: ")).expect("Depends");
    for dep in ["apache2-bin", "apache2-api-20120211", "libc6"] {
        assert!(depends.split(", ").any(|d| d == dep || d.starts_with(&format!("{dep} "))), "Depends: {depends}");
    }

    // Install.
    let cleanup = Cleanup::new();
    let installed = run("dpkg", &["-i", deb]);
    assert!(installed.contains("a2enmod twofactor && apachectl -t"), "postinst prints the next steps:\n{installed}");
    assert_eq!(package_status(), Some(format!("install ok installed {version}")));
    assert!(enabled_entries().is_empty(), "installing must not enable the module: {:?}", enabled_entries());

    assert_file(MODULE, 0o644);
    assert_file(LOAD, 0o644);
    assert_file(CONF, 0o644);
    assert_file(CTL, 0o755);
    for doc in ["README.md", "twofactor.schema", "twofactor.ldif", "copyright", "changelog.Debian.gz"] {
        assert_file(&format!("{DOC}/{doc}"), 0o644);
    }
    assert_eq!(fs::read(LOAD).unwrap(), fs::read(root.join("apache-conf/twofactor.load")).unwrap());
    assert_eq!(fs::read(CONF).unwrap(), fs::read(root.join("apache-conf/twofactor.conf")).unwrap());
    assert_eq!(
        fs::read(format!("{DOC}/twofactor.schema")).unwrap(),
        fs::read(root.join("apache-conf/twofactor.schema")).unwrap()
    );
    let conffiles = run("dpkg-query", &["-W", "-f=${Conffiles}", PACKAGE]);
    for conffile in [LOAD, CONF] {
        assert!(conffiles.lines().any(|l| l.trim().starts_with(&format!("{conffile} "))), "conffiles:\n{conffiles}");
    }
    let copyright = fs::read_to_string(format!("{DOC}/copyright")).unwrap();
    assert!(copyright.contains("License: Apache-2.0"), "{copyright}");
    // Every file the package owns, to check after the purge.
    let owned: Vec<String> =
        run("dpkg", &["-L", PACKAGE]).lines().filter(|p| Path::new(p).is_file()).map(str::to_string).collect();
    assert_eq!(owned.len(), 9, "files of the package: {owned:?}");

    // Enable and check the configuration as shipped.
    run("a2enmod", &["twofactor"]);
    let link = fs::read_link(ENABLED_LOAD).expect("a2enmod links twofactor.load");
    assert_eq!(link, Path::new("../mods-available/twofactor.load"));
    assert!(exists(ENABLED_CONF), "a2enmod links twofactor.conf");
    let syntax = run("apache2ctl", &["-t"]);
    assert!(syntax.contains("Syntax OK"), "apache2ctl -t:\n{syntax}");
    let modules = run("apache2ctl", &["-M"]);
    assert!(modules.contains("twofactor_module (shared)"), "apache2ctl -M:\n{modules}");

    let help = run(CTL, &["--help"]);
    assert!(help.contains("Usage: twofactorctl"), "{help}");

    // Reinstalling (an upgrade) keeps the module enabled.
    run("dpkg", &["-i", deb]);
    assert!(exists(ENABLED_LOAD), "an upgrade must not disable the module");

    // Disable and purge.
    run("a2dismod", &["twofactor"]);
    assert!(enabled_entries().is_empty(), "a2dismod left {:?}", enabled_entries());
    run("dpkg", &["-P", PACKAGE]);
    assert_eq!(package_status(), None);
    for path in owned.iter().map(String::as_str).chain([DOC, LOAD, CONF]) {
        assert!(!exists(path), "{path} is left after dpkg -P");
    }
    assert!(enabled_entries().is_empty(), "mods-enabled: {:?}", enabled_entries());
    assert!(marker_files().is_empty(), "a2enmod markers left after the purge: {:?}", marker_files());

    // Removing the package while the module is enabled disables it first:
    // Apache is not left with a LoadModule line for a deleted file. The
    // configuration stays until the purge.
    run("dpkg", &["-i", deb]);
    run("a2enmod", &["twofactor"]);
    run("dpkg", &["-r", PACKAGE]);
    assert!(enabled_entries().is_empty(), "dpkg -r left {:?} enabled", enabled_entries());
    assert!(!exists(MODULE) && !exists(CTL), "dpkg -r removes the binaries");
    assert!(exists(LOAD) && exists(CONF), "dpkg -r keeps the conffiles");
    let syntax = run("apache2ctl", &["-t"]);
    assert!(syntax.contains("Syntax OK"), "apache2ctl -t after dpkg -r:\n{syntax}");
    run("dpkg", &["-P", PACKAGE]);
    assert_eq!(package_status(), None);
    assert!(!exists(LOAD) && !exists(CONF) && !exists(DOC), "dpkg -P removes the conffiles and the docs");
    assert!(marker_files().is_empty(), "a2enmod markers left after the purge: {:?}", marker_files());

    drop(cleanup);
    eprintln!(
        "package test: {deb_name} built in {:.1}s, whole test {:.1}s",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(lock);
}
