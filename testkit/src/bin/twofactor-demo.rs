//! A local demonstration of mod_twofactor behind the stand-in gateway.
//!
//! Starts slapd (users alice, bob, carol) -- or with `--ad` (or
//! `TWOFACTOR_TEST_DIRECTORY=ad`) a Samba AD domain controller with the same
//! users and `TwoFactorDirectory ad` --, smtp-sink, an echo backend, the
//! protected Apache with the module and the stand-in gateway, all on
//! 127.0.0.1, prints where to point a browser, and runs until Ctrl-C (or
//! SIGTERM). Every process it started is stopped by pid on the way out, and
//! the temporary directory is removed.
//!
//! The module is found through `TWOFACTOR_MODULE`, or as
//! `libmod_twofactor.so` next to this binary (`cargo build --release
//! --workspace`, then `target/release/twofactor-demo`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use testkit::apache::ApacheOptions;
use testkit::directory::{Kind, TestDirectory};
use testkit::stack::{Stack, StackOptions, USERS};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler = request_stop as extern "C" fn(libc::c_int);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; no other code of this process installs handlers.
        let previous = unsafe { libc::signal(signal, handler as libc::sighandler_t) };
        if previous == libc::SIG_ERR {
            eprintln!("twofactor-demo: cannot install a handler for signal {signal}");
        }
    }
}

fn main() {
    install_signal_handlers();
    let directory = match std::env::args().nth(1).as_deref() {
        Some("--ad") => Kind::SambaAd,
        None => Kind::from_environment(),
        Some(other) => {
            eprintln!("twofactor-demo: unknown argument '{other}' (--ad runs it on Samba AD)");
            std::process::exit(2);
        }
    };
    let name = if directory == Kind::SambaAd { "a Samba AD domain controller" } else { "slapd" };
    println!("Starting {name}, smtp-sink, the backend, the protected Apache and the gateway ...");
    // Passkeys need a host name (never an IP address): the demo's origin is
    // localhost, which stays on 127.0.0.1. /app/admin/ needs a passkey.
    let extra = "TwoFactorMethods totp email recovery webauthn\n\
                 TwoFactorWebAuthnOrigin http://localhost:{gateway_port}\n\
                 <Location /app/admin>\n  TwoFactorRequireMethod webauthn\n  TwoFactorMaxAge 5m\n</Location>\n";
    let options = StackOptions {
        extra: extra.into(),
        apache: ApacheOptions { log_level: "warn twofactor:info".into(), ..ApacheOptions::default() },
        directory: Some(directory),
        ..StackOptions::default()
    };
    let stack = Stack::start(options);

    let logins: Vec<String> = USERS.iter().map(|(user, password)| format!("{user} / {password}")).collect();
    let protected = &stack.protected.root;
    println!();
    println!("mod_twofactor demo is running.");
    println!();
    println!("  Open:         http://localhost:{}/app/", stack.gateway_port());
    println!("  Step-up:      http://localhost:{}/app/admin/ (needs a passkey)", stack.gateway_port());
    println!("  Log in as:    {}", logins.join(", "));
    println!("  Passcodes:    mails land in {}", stack.smtp.maildir.display());
    println!("  Error log:    {}", protected.join("error.log").display());
    println!("  Access log:   {}", protected.join("access.log").display());
    match &stack.directory {
        TestDirectory::Slapd(slapd) => println!("  Directory:    {} (base {})", slapd.url, slapd.base_dn),
        TestDirectory::SambaAd(dc) => {
            println!("  Directory:    Samba AD at {} (base {}, TwoFactorDirectory ad)", dc.url, dc.base_dn);
            let passwords: Vec<String> =
                testkit::samba::USERS.iter().map(|u| testkit::samba::user_password(u)).collect();
            println!("  AD passwords: {} (to bind as the user)", passwords.join(", "));
        }
    }
    println!();
    println!("Press Ctrl-C to stop.");

    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!();
    println!("Stopping ...");
    drop(stack);
    println!("Stopped: every process is gone and the temporary directory is removed.");
}
