//! twofactorctl: administer mod_twofactor's state in the directory, with
//! the settings read from the same Apache configuration the module uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use twofactor_core::admin::{self, AdminError};
use twofactor_core::config::Settings;
use twofactor_core::keys::MIN_KEY_BYTES;
use twofactor_core::store::LdapDirectory;
use twofactor_core::{apacheconf, random};

/// Administer mod_twofactor: keys, users' second factors, completions.
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new secret key file (32 random bytes, mode 0600).
    GenKey {
        /// Where to write it (TwoFactorSecretKeyFile).
        file: PathBuf,
        /// Replace an existing file (every enrolled secret sealed with it becomes unreadable
        /// unless the old file stays listed after the new one).
        #[arg(long)]
        force: bool,
    },
    /// Show a user's second-factor state (never a secret).
    Status {
        /// Username as the gateway sends it.
        user: String,
    },
    /// Drop all of a user's completions: every browser must pass the challenge again.
    Revoke { user: String },
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

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn run(cli: &Cli) -> Result<(), AdminError> {
    match &cli.command {
        Command::GenKey { file, force } => gen_key(file, *force, cli.json),
        Command::Status { user } => {
            let (settings, directory) = open(cli)?;
            let status = admin::status(&directory, &settings, user, now())?;
            if cli.json {
                print_json(&status)
            } else {
                print_status(&status);
                Ok(())
            }
        }
        Command::Revoke { user } => {
            let (settings, directory) = open(cli)?;
            let count = admin::revoke(&directory, &settings, user)?;
            if cli.json {
                print_json(&serde_json::json!({ "user": user, "revoked": count }))
            } else {
                println!("{user}: {count} completion(s) revoked");
                Ok(())
            }
        }
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
    if json {
        print_json(&serde_json::json!({ "file": file, "bytes": key.len() }))
    } else {
        println!("wrote {} random bytes to {} (mode 0600)", key.len(), file.display());
        Ok(())
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), AdminError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| AdminError::Io(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn print_status(s: &admin::Status) {
    println!("user:           {} ({})", s.user, s.dn);
    println!("enrolled:       {}", if s.enrolled { "yes" } else { "no" });
    match &s.locked_until {
        Some(until) => println!("locked:         yes, until {until}"),
        None => println!("locked:         no"),
    }
    println!("failures:       {}", s.failures);
    println!("recovery codes: {} left", s.recovery_codes_left);
    println!("completions:    {}", s.completions.len());
    for c in &s.completions {
        let state = if c.expired { " (expired)" } else { "" };
        println!("  - {} at {}, expires {}{state}, bound to {}", c.method, c.issued, c.expires, c.bound_to);
    }
}
