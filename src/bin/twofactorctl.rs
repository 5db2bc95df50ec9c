//! twofactorctl: administer mod_twofactor's state in the directory, with
//! the settings read from the same Apache configuration the module uses.
#![deny(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use twofactor_core::admin::{self, AdminError};
use twofactor_core::clock::now;
use twofactor_core::config::{Algorithm, Settings};
use twofactor_core::directory_check::{self, AsUser};
use twofactor_core::keys::MIN_KEY_BYTES;
use twofactor_core::notify::Notice;
use twofactor_core::secret::Secret;
use twofactor_core::store::LdapDirectory;
use twofactor_core::totp::{self, TotpParams};
use twofactor_core::{apacheconf, import, random};

/// Administer mod_twofactor: keys, users' second factors, completions.
///
/// Settings (directory, key file, defaults) come from the TwoFactor*
/// directives of the Apache configuration given with -f.
#[derive(Parser)]
#[command(name = "twofactorctl", version)]
struct Cli {
    /// Apache configuration to read the TwoFactor* directives from.
    #[arg(short = 'f', long = "config", global = true, default_value = "/etc/apache2/apache2.conf")]
    config: PathBuf,
    /// Use the settings of this <VirtualHost> (its ServerName or ServerAlias).
    #[arg(long, global = true)]
    vhost: Option<String>,
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// Do not mail the user a security notice (TwoFactorNotify) about an
    /// enrollment, an import or new recovery codes.
    #[arg(long, global = true)]
    no_notify: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new secret key file (32 random bytes, mode 0600).
    GenKey {
        /// Where to write it (TwoFactorSecretKeyFile).
        file: PathBuf,
        /// Replace an existing file (secrets sealed with it become unreadable
        /// unless the old file stays listed after the new one).
        #[arg(long)]
        force: bool,
    },
    /// Show a user's second-factor state (never a secret).
    Status {
        /// Username as the gateway sends it.
        user: String,
    },
    /// Enroll a user's authenticator app or hardware token, replacing any
    /// earlier one; prints the otpauth URI and a QR code once.
    Enroll {
        user: String,
        /// The token's secret in base32 (default: a new random secret).
        #[arg(long)]
        secret: Option<String>,
        /// SHA1, SHA256 or SHA512 (default: TwoFactorTOTPDefaults).
        #[arg(long)]
        algorithm: Option<String>,
        /// 4, 6, 8 or 10 (default: TwoFactorTOTPDefaults).
        #[arg(long)]
        digits: Option<u32>,
        /// 30 or 60 seconds (default: TwoFactorTOTPDefaults).
        #[arg(long)]
        period: Option<u32>,
    },
    /// Assign hardware-token seeds from a vendor file (CSV: serial, secret,
    /// algorithm, digits, period, user; or PSKC, RFC 6030). All or nothing.
    Import {
        /// The seed file ("-" for standard input).
        file: PathBuf,
        /// Check the file and the users, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// File holding the password of an encrypted PSKC file.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Issue new recovery codes (the old ones stop working); prints them once.
    Recovery { user: String },
    /// Re-seal every stored secret with the first key file (after a key rotation).
    Rekey,
    /// Remove all of a user's second-factor state: they enroll again.
    Reset { user: String },
    /// Lift a user's lock (and forget their failure count).
    Unlock { user: String },
    /// Drop all of a user's completions: every browser must pass the challenge again.
    Revoke { user: String },
    /// List the users who are locked now.
    Locked,
    /// Check the attributes that hold the state: in the schema, single- or
    /// multi-valued as their role needs, long enough, writable by the
    /// service account and (with --as) not writable by the user herself.
    /// Exits 1 naming every problem.
    CheckDirectory {
        /// Bind as this user (her directory password from --password-file)
        /// and check what she may write on her own entry.
        #[arg(long = "as", value_name = "USER")]
        as_user: Option<String>,
        /// File holding the user's password ("-" for standard input).
        #[arg(long, requires = "as_user")]
        password_file: Option<PathBuf>,
    },
    /// A user's passkeys and security keys: list them (the default), or
    /// remove one by its id.
    Webauthn {
        user: String,
        #[command(subcommand)]
        action: Option<PasskeyAction>,
    },
}

#[derive(Subcommand)]
enum PasskeyAction {
    /// List the user's passkeys (id, name, created, last used).
    List,
    /// Remove one passkey (the user can no longer sign in with it).
    Remove {
        /// Its id, as the list shows it.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofactorctl: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Prints `value` as JSON, or `text` for people.
fn report(json: bool, value: &impl serde::Serialize, text: impl FnOnce() -> String) -> Result<(), AdminError> {
    if json {
        let text = serde_json::to_string_pretty(value).map_err(|e| AdminError::Io(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<(), AdminError> {
    let json = cli.json;
    match &cli.command {
        Command::GenKey { file, force } => gen_key(file, *force, json),
        Command::Status { user } => {
            let (settings, directory) = open(cli)?;
            let status = admin::status(&directory, &settings, user, now())?;
            report(json, &status, || status_text(&status))
        }
        Command::Enroll { user, secret, algorithm, digits, period } => {
            let (settings, directory) = open(cli)?;
            let d = settings.totp_defaults;
            let algorithm = match algorithm {
                Some(a) => Algorithm::parse(a).ok_or_else(|| {
                    AdminError::Usage(format!("--algorithm: invalid value '{a}': SHA1, SHA256 or SHA512"))
                })?,
                None => d.algorithm,
            };
            let params = TotpParams::new(algorithm, digits.unwrap_or(d.digits), period.unwrap_or(d.period))
                .map_err(|e| AdminError::Usage(e.to_string()))?;
            let secret = match secret {
                Some(text) => Some(Secret::new(
                    totp::base32_decode(text).ok_or_else(|| AdminError::Usage("--secret: not base32".into()))?,
                )),
                None => None,
            };
            let done = admin::enroll(&directory, &settings, user, secret, params)?;
            let notice = Notice::Enrolled { replaced: done.replaced, recovery_codes: 0 };
            notify(cli, &directory, &settings, &done.user, notice);
            report(json, &done, || {
                let qr = totp::qr_terminal(&done.uri).unwrap_or_default();
                format!(
                    "{} enrolled ({}, {} digits, {} s). Give this to the user once:\n{}\n{qr}",
                    done.user, done.algorithm, done.digits, done.period, done.uri
                )
            })
        }
        Command::Import { file, dry_run, password_file } => {
            let (settings, directory) = open(cli)?;
            let bytes = read_input(file)?;
            let password = match password_file {
                Some(p) => Some(read_line(p)?),
                None => None,
            };
            let seeds = import::detect_and_parse(&bytes, password.as_deref())
                .map_err(|e| AdminError::Usage(format!("{}: {e}", file.display())))?;
            let done = admin::import(&directory, &settings, seeds, *dry_run)?;
            if !done.dry_run {
                for token in &done.assigned {
                    // The seed file does not say whether a token replaced another.
                    let notice = Notice::Enrolled { replaced: false, recovery_codes: 0 };
                    notify(cli, &directory, &settings, &token.user, notice);
                }
            }
            report(json, &done, || {
                let mut out = String::new();
                let verb = if done.dry_run { "would assign" } else { "assigned" };
                for t in &done.assigned {
                    out.push_str(&format!(
                        "{verb} token {} to {} ({}, {} digits, {} s)\n",
                        t.serial, t.user, t.algorithm, t.digits, t.period
                    ));
                }
                for serial in &done.unassigned {
                    out.push_str(&format!("skipped token {serial}: no user in the file\n"));
                }
                let summary = if done.dry_run { "to assign (dry run: nothing changed)" } else { "assigned" };
                out.push_str(&format!(
                    "{} token(s) {summary}, {} without a user\n",
                    done.assigned.len(),
                    done.unassigned.len()
                ));
                out
            })
        }
        Command::Recovery { user } => {
            let (settings, directory) = open(cli)?;
            let codes = admin::new_recovery_codes(&directory, &settings, user)?;
            notify(cli, &directory, &settings, user, Notice::RecoveryCodesIssued { count: codes.len() });
            let value = serde_json::json!({ "user": user, "codes": codes });
            report(json, &value, || {
                format!("New recovery codes for {user} (the old ones no longer work):\n{}\n", codes.join("\n"))
            })
        }
        Command::Rekey => {
            let (settings, directory) = open(cli)?;
            let done = admin::rekey(&directory, &settings)?;
            let result = report(json, &done, || {
                let mut out = format!("{} secret(s) re-sealed, {} already current\n", done.resealed, done.current);
                out.push_str(&format!("{} stored value(s) signed with the current key\n", done.resigned));
                for user in &done.unreadable {
                    out.push_str(&format!("cannot open the secret of {user}: no listed key file fits\n"));
                }
                for value in &done.untrusted {
                    out.push_str(&format!("untrusted value left as it is: {value}\n"));
                }
                out
            });
            if done.unreadable.is_empty() {
                result
            } else {
                Err(AdminError::Io(format!("{} secret(s) could not be opened", done.unreadable.len())))
            }
        }
        Command::Reset { user } => {
            let (settings, directory) = open(cli)?;
            let count = admin::reset(&directory, &settings, user, now())?;
            let value = serde_json::json!({ "user": user, "attributes_removed": count });
            report(json, &value, || {
                format!("{user}: second-factor state removed ({count} attribute(s)); they enroll again\n")
            })
        }
        Command::Unlock { user } => {
            let (settings, directory) = open(cli)?;
            let was_locked = admin::unlock(&directory, &settings, user, now())?;
            let value = serde_json::json!({ "user": user, "was_locked": was_locked });
            report(json, &value, || {
                if was_locked {
                    format!("{user}: unlocked\n")
                } else {
                    format!("{user}: was not locked (failure count cleared)\n")
                }
            })
        }
        Command::Revoke { user } => {
            let (settings, directory) = open(cli)?;
            let count = admin::revoke(&directory, &settings, user)?;
            let value = serde_json::json!({ "user": user, "revoked": count });
            report(json, &value, || format!("{user}: {count} completion(s) revoked\n"))
        }
        Command::Webauthn { user, action } => {
            let (settings, directory) = open(cli)?;
            match action {
                None | Some(PasskeyAction::List) => {
                    let list = admin::passkeys(&directory, &settings, user)?;
                    report(json, &list, || passkeys_text(user, &list))
                }
                Some(PasskeyAction::Remove { id }) => {
                    let removed = admin::remove_passkey(&directory, &settings, user, id)?;
                    notify(cli, &directory, &settings, user, Notice::PasskeyRemoved);
                    report(json, &removed, || format!("{user}: passkey '{}' ({}) removed\n", removed.name, removed.id))
                }
            }
        }
        Command::CheckDirectory { as_user, password_file } => {
            let (settings, directory) = open(cli)?;
            let as_user = match (as_user, password_file) {
                (Some(name), Some(file)) => {
                    let password = String::from_utf8(read_input(file)?)
                        .map_err(|_| AdminError::Usage("the password is not UTF-8".into()))?;
                    let password = password.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
                    Some(AsUser { name, password: Secret::new(password) })
                }
                (Some(_), None) => {
                    return Err(AdminError::Usage("--as needs --password-file (\"-\": standard input)".into()))
                }
                _ => None,
            };
            let done = directory_check::check(&directory, &settings, as_user).map_err(AdminError::Io)?;
            report(json, &done, || check_text(&done))?;
            match done.problems.len() {
                0 => Ok(()),
                n => Err(AdminError::Io(format!("{n} problem(s) with the directory (see above)"))),
            }
        }
        Command::Locked => {
            let (settings, directory) = open(cli)?;
            let users = admin::locked(&directory, &settings, now())?;
            report(json, &users, || {
                if users.is_empty() {
                    return "no user is locked\n".to_string();
                }
                users.iter().map(|u| format!("{}\tuntil {}\t{} failure(s)\n", u.user, u.until, u.failures)).collect()
            })
        }
    }
}

/// Mails the user a notice of what was done; a failure is a warning only
/// (the change is made). Messages go to stderr, so that --json stays clean.
fn notify(cli: &Cli, directory: &LdapDirectory, settings: &Settings, user: &str, notice: Notice) {
    if cli.no_notify {
        return;
    }
    match admin::notify_user(directory, settings, user, notice, now()) {
        Ok(Some(to)) => eprintln!("twofactorctl: notice mailed to {user} <{to}>"),
        Ok(None) => {}
        Err(e) => eprintln!("twofactorctl: warning: the notice to {user} was not mailed: {e}"),
    }
}

/// The module's settings from the Apache configuration, and its directory.
fn open(cli: &Cli) -> Result<(Settings, LdapDirectory), AdminError> {
    let found = apacheconf::read(&cli.config, cli.vhost.as_deref()).map_err(AdminError::Usage)?;
    let name = found.server_name.clone().unwrap_or_else(|| "localhost".into());
    let (settings, _warnings) = Settings::resolve(&found.server, &name)
        .map_err(|e| AdminError::Usage(format!("{}: {e}", cli.config.display())))?;
    let ldap = settings
        .ldap
        .as_ref()
        .ok_or_else(|| AdminError::Usage(format!("{}: TwoFactorLDAPURL is not set", cli.config.display())))?;
    let directory = LdapDirectory::new(ldap).map_err(AdminError::Usage)?;
    Ok((settings, directory))
}

fn read_input(file: &Path) -> Result<Vec<u8>, AdminError> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(|e| AdminError::Io(format!("standard input: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(file).map_err(|e| AdminError::Usage(format!("cannot read {}: {e}", file.display())))
}

fn read_line(file: &Path) -> Result<String, AdminError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| AdminError::Usage(format!("cannot read {}: {e}", file.display())))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn gen_key(file: &Path, force: bool, json: bool) -> Result<(), AdminError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = vec![0u8; MIN_KEY_BYTES];
    random::fill(&mut key).map_err(AdminError::Io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(file).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists { " (use --force to replace it)" } else { "" };
        AdminError::Io(format!("cannot create {}: {e}{hint}", file.display()))
    })?;
    f.write_all(&key).and_then(|()| f.sync_all()).map_err(|e| AdminError::Io(format!("{}: {e}", file.display())))?;
    let value = serde_json::json!({ "file": file, "bytes": key.len() });
    report(json, &value, || format!("wrote {} random bytes to {} (mode 0600)\n", key.len(), file.display()))
}

fn check_text(report: &directory_check::Report) -> String {
    let yes_no = |v: Option<bool>, yes: &str, no: &str| match v {
        Some(true) => yes.to_string(),
        Some(false) => no.to_string(),
        None => "?".to_string(),
    };
    let mut out = format!("directory: {} (writability by {})\n", report.directory, report.method);
    out.push_str("role              attribute                      values  max    user may write  service may write\n");
    for f in &report.attributes {
        out.push_str(&format!(
            "{:<17} {:<30} {:<7} {:<6} {:<15} {}\n",
            f.role,
            f.attribute,
            match (f.in_schema, f.single_valued) {
                (Some(false), _) => "absent".to_string(),
                (_, v) => yes_no(v, "one", "many"),
            },
            f.max_length.map_or_else(|| "-".to_string(), |m| m.to_string()),
            yes_no(f.user_may_write, "YES", "no"),
            yes_no(f.service_may_write, "yes", "NO"),
        ));
    }
    if report.user.is_none() {
        out.push_str("(give --as USER --password-file FILE to check what a user may write on her own entry)\n");
    }
    for p in &report.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    if report.problems.is_empty() {
        out.push_str("no problem found\n");
    }
    out
}

fn passkeys_text(user: &str, list: &[admin::PasskeyInfo]) -> String {
    if list.is_empty() {
        return format!("{user}: no passkey or security key\n");
    }
    list.iter().map(|p| format!("{}\t{}\tcreated {}\tlast used {}\n", p.id, p.name, p.created, p.last_used)).collect()
}

fn status_text(s: &admin::Status) -> String {
    let mut out = format!("user:           {} ({})\n", s.user, s.dn);
    match &s.totp {
        Some(t) => {
            let serial = t.serial.as_deref().map(|n| format!(", token {n}")).unwrap_or_default();
            out.push_str(&format!(
                "enrolled:       yes ({}, {} digits, {} s{serial})\n",
                t.algorithm, t.digits, t.period
            ));
        }
        None => {
            out.push_str(&format!("enrolled:       {}\n", if s.enrolled { "yes (unreadable record)" } else { "no" }))
        }
    }
    match &s.locked_until {
        Some(until) => out.push_str(&format!("locked:         yes, until {until}\n")),
        None => out.push_str("locked:         no\n"),
    }
    out.push_str(&format!("failures:       {}\n", s.failures));
    out.push_str(&format!("recovery codes: {} left\n", s.recovery_codes_left));
    out.push_str(&format!("passkeys:       {}\n", s.passkeys.len()));
    for p in &s.passkeys {
        out.push_str(&format!("  - {} (id {}), created {}, last used {}\n", p.name, p.id, p.created, p.last_used));
    }
    out.push_str(&format!("completions:    {}\n", s.completions.len()));
    for c in &s.completions {
        let state = if c.expired { " (expired)" } else { "" };
        out.push_str(&format!(
            "  - {} at {}, expires {}{state}, bound to {}\n",
            c.method, c.issued, c.expires, c.bound_to
        ));
    }
    for u in &s.untrusted {
        out.push_str(&format!("untrusted:      a {} value ({}): not used; see event=tampered\n", u.role, u.reason));
    }
    out
}
