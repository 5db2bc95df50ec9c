//! What `twofactorctl` does, as functions over a `Directory`: the binary
//! only parses arguments and prints.

use serde::Serialize;

use crate::completion;
use crate::config::{Role, Settings};
use crate::factors::lockout;
use crate::factors::totp::{Enrollment, Replacing};
use crate::factors::{self, recovery};
use crate::keys::Keys;
use crate::mail::{Mailer, SmtpMailer};
use crate::notify::{self, Notice, Origin};
use crate::secret::Secret;
use crate::store::codec::{Bound, Completion, Failures, LOCKED_UNTIL_UNLOCKED};
use crate::store::signed::{Opened, Signer};
use crate::store::{cas, schema, Change, Directory, Lookup, StoreError, UserEntry};
use crate::tamper;
use crate::totp::{self, seal_context, TotpParams, TotpRecord};

/// Why an administrative command failed; `exit_code` follows Unix habits.
#[derive(Debug)]
pub enum AdminError {
    NoSuchUser(String),
    Ambiguous(String),
    Directory(StoreError),
    Usage(String),
    Io(String),
    /// The user has no passkey with this id.
    NoSuchPasskey(String),
}

impl AdminError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Usage(_) => 2,
            AdminError::NoSuchUser(_) | AdminError::Ambiguous(_) | AdminError::NoSuchPasskey(_) => 3,
            AdminError::Directory(_) | AdminError::Io(_) => 1,
        }
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::NoSuchUser(u) => write!(f, "no user '{u}' in the directory"),
            AdminError::Ambiguous(u) => write!(f, "more than one directory entry matches '{u}'"),
            AdminError::Directory(e) => write!(f, "{e}"),
            AdminError::Usage(m) | AdminError::Io(m) => f.write_str(m),
            AdminError::NoSuchPasskey(id) => write!(f, "no passkey with id '{id}' (see the list)"),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Directory(e)
    }
}

#[derive(Debug, Serialize)]
pub struct CompletionInfo {
    pub method: String,
    pub issued: String,
    pub expires: String,
    pub expired: bool,
    /// `session` (cookie or gateway session) or `anywhere` (binding none).
    pub bound_to: &'static str,
}

/// The parameters of an enrolled secret (never the secret).
#[derive(Debug, Serialize)]
pub struct TotpInfo {
    pub algorithm: &'static str,
    pub digits: u32,
    pub period: u32,
    /// Hardware token serial number, when imported from a seed file.
    pub serial: Option<String>,
}

/// Everything about a user's second factor, never a secret.
#[derive(Debug, Serialize)]
pub struct Status {
    pub user: String,
    pub dn: String,
    pub enrolled: bool,
    pub totp: Option<TotpInfo>,
    pub locked: bool,
    /// ISO 8601, `never` when only an administrator can unlock.
    pub locked_until: Option<String>,
    pub failures: u32,
    pub completions: Vec<CompletionInfo>,
    pub recovery_codes_left: usize,
    pub passkeys: Vec<PasskeyInfo>,
    /// Stored values that did not pass their check (ignored, or a lock).
    pub untrusted: Vec<UntrustedValue>,
}

/// A stored value the module does not trust, and why (`tamper::Why`).
#[derive(Debug, Serialize)]
pub struct UntrustedValue {
    pub role: &'static str,
    pub reason: &'static str,
}

fn untrusted_found() -> Vec<UntrustedValue> {
    tamper::take().into_iter().map(|(role, why)| UntrustedValue { role: role.as_str(), reason: why.as_str() }).collect()
}

/// A registered passkey or security key (its public part only).
#[derive(Debug, Serialize)]
pub struct PasskeyInfo {
    /// The credential id, base64url (what `webauthn USER remove ID` takes).
    pub id: String,
    pub name: String,
    pub created: String,
    /// `never` before its first sign-in.
    pub last_used: String,
    pub sign_count: u32,
}

fn passkey_infos(entry: &crate::store::UserEntry, settings: &Settings) -> Vec<PasskeyInfo> {
    factors::webauthn::credentials(entry, settings)
        .into_iter()
        .map(|(_, c)| PasskeyInfo {
            id: c.id(),
            name: c.name.clone(),
            created: iso8601(c.created),
            last_used: c.last_used.map_or_else(|| "never".to_string(), iso8601),
            sign_count: c.counter(),
        })
        .collect()
}

/// A user's passkeys and security keys.
pub fn passkeys(directory: &dyn Directory, settings: &Settings, user: &str) -> Result<Vec<PasskeyInfo>, AdminError> {
    let entry = find(directory, settings, user)?;
    Ok(passkey_infos(&entry, settings))
}

/// Removes the passkey `id` of `user` (its value, exactly: a sign-in
/// updating it meanwhile makes this retry).
pub fn remove_passkey(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    id: &str,
) -> Result<PasskeyInfo, AdminError> {
    for _ in 0..8 {
        let entry = find(directory, settings, user)?;
        let info = passkey_infos(&entry, settings).into_iter().find(|p| p.id == id);
        let (Some(info), Some(value)) = (info, factors::webauthn::value_of(&entry, settings, id)) else {
            return Err(AdminError::NoSuchPasskey(id.to_string()));
        };
        let change = Change::Delete(settings.attribute(Role::WebAuthn).into(), vec![value.clone()]);
        match directory.modify(&entry.dn, &[change]) {
            Ok(()) => return Ok(info),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::Directory(StoreError::Conflict))
}

/// Every state attribute, and objectClass (writes add the auxiliary class where missing).
fn state_roles(settings: &Settings) -> Vec<&str> {
    let mut attrs: Vec<&str> = Role::ALL.iter().map(|r| settings.attribute(*r)).collect();
    attrs.push("objectClass");
    attrs
}

fn find(directory: &dyn Directory, settings: &Settings, user: &str) -> Result<crate::store::UserEntry, AdminError> {
    match directory.find_user(user, &state_roles(settings))? {
        Lookup::Found(entry) => Ok(entry),
        Lookup::NotFound => Err(AdminError::NoSuchUser(user.into())),
        Lookup::Ambiguous => Err(AdminError::Ambiguous(user.into())),
    }
}

fn signer<'a>(settings: &'a Settings, entry: &UserEntry) -> Result<Signer<'a>, AdminError> {
    Ok(Signer::new(keys(settings)?, &entry.username, settings.accept_unsigned_state))
}

pub fn status(directory: &dyn Directory, settings: &Settings, user: &str, now: u64) -> Result<Status, AdminError> {
    let entry = find(directory, settings, user)?;
    let signer = signer(settings, &entry)?;
    tamper::take();
    let failures_values = entry.values(settings.attribute(Role::Failures));
    let failures = failures_values.first().and_then(|v| Failures::open(&signer, v)).unwrap_or_default();
    // What the access check makes of the value: an untrusted one is a lock.
    let locked_until = crate::store::codec::locked_until(&signer, failures_values, now);
    let completions = entry
        .values(settings.attribute(Role::Completion))
        .iter()
        .filter_map(|v| Completion::open(&signer, v))
        .map(|c| CompletionInfo {
            method: c.method.clone(),
            issued: iso8601(c.issued),
            expires: iso8601(c.expires),
            expired: now >= c.expires,
            bound_to: match c.bound {
                Bound::Session(_) => "session",
                Bound::Anywhere => "anywhere",
            },
        })
        .collect();
    Ok(Status {
        user: entry.username.clone(),
        dn: entry.dn.clone(),
        enrolled: factors::TOTP.enrolled(&entry, settings),
        totp: entry.values(settings.attribute(Role::Totp)).first().and_then(|v| TotpRecord::open(&signer, v)).map(
            |r| TotpInfo {
                algorithm: r.params.algorithm.as_str(),
                digits: r.params.digits,
                period: r.params.period,
                serial: r.serial,
            },
        ),
        locked: locked_until.is_some(),
        locked_until: locked_until.map(|u| if u == LOCKED_UNTIL_UNLOCKED { "never".to_string() } else { iso8601(u) }),
        failures: failures.count,
        completions,
        recovery_codes_left: entry
            .values(settings.attribute(Role::Recovery))
            .iter()
            .filter(|v| signer.open(Role::Recovery, v).is_some())
            .count(),
        passkeys: passkey_infos(&entry, settings),
        untrusted: untrusted_found(),
    })
}

/// Drops every completion of `user`: all browsers must pass the challenge again
/// (other servers' caches forget within TwoFactorCacheTTL).
pub fn revoke(directory: &dyn Directory, settings: &Settings, user: &str) -> Result<usize, AdminError> {
    find(directory, settings, user)?;
    Ok(completion::revoke_all(directory, settings, user)?)
}

fn keys(settings: &Settings) -> Result<&Keys, AdminError> {
    settings.keys.as_ref().ok_or_else(|| AdminError::Usage("TwoFactorSecretKeyFile is not set".into()))
}

/// An administrator's enrollment replaces whatever is stored, starts the
/// replay state over and leaves the recovery codes alone.
fn admin_enrollment(record: &TotpRecord) -> Enrollment<'_> {
    Enrollment { record, replacing: Replacing::Whatever, confirmed: None, recovery: None }
}

/// A new enrollment made by an administrator.
#[derive(Debug, Serialize)]
pub struct Enrolled {
    pub user: String,
    /// An earlier authenticator was replaced.
    pub replaced: bool,
    /// The otpauth URI: holds the secret, printed once for the user's app.
    pub uri: String,
    pub algorithm: &'static str,
    pub digits: u32,
    pub period: u32,
}

/// Enrolls `user` with `secret` (or a new random one), replacing any
/// earlier secret. The caller shows the URI once.
pub fn enroll(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    secret: Option<Secret>,
    params: TotpParams,
) -> Result<Enrolled, AdminError> {
    params.validate().map_err(|e| AdminError::Usage(e.to_string()))?;
    let keys = keys(settings)?;
    let entry = find(directory, settings, user)?;
    let secret = match secret {
        Some(s) => s,
        None => totp::generate_secret(params.algorithm).map_err(AdminError::Io)?,
    };
    let sealed = keys.seal(&seal_context(&entry.username), secret.expose()).map_err(AdminError::Io)?;
    let record = TotpRecord { sealed, params, serial: None };
    directory.modify(&entry.dn, &factors::totp::enrollment_changes(settings, &entry, admin_enrollment(&record))?)?;
    Ok(Enrolled {
        replaced: !entry.values(settings.attribute(Role::Totp)).is_empty(),
        uri: totp::otpauth_uri(&settings.totp_issuer, &entry.username, secret.expose(), params),
        user: entry.username,
        algorithm: params.algorithm.as_str(),
        digits: params.digits,
        period: params.period,
    })
}

/// What an import did (or would do, with `dry_run`).
#[derive(Debug, Serialize)]
pub struct Imported {
    pub assigned: Vec<ImportedToken>,
    /// Serial numbers of tokens in the file with no user (not stored).
    pub unassigned: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct ImportedToken {
    pub serial: String,
    pub user: String,
    pub algorithm: &'static str,
    pub digits: u32,
    pub period: u32,
}

/// Assigns the seeds of a token file to their users. All or nothing: every
/// user must exist (exactly one entry) before anything is written.
pub fn import(
    directory: &dyn Directory,
    settings: &Settings,
    seeds: Vec<crate::import::Seed>,
    dry_run: bool,
) -> Result<Imported, AdminError> {
    let keys = keys(settings)?;
    let mut planned = Vec::new();
    let mut unassigned = Vec::new();
    for seed in seeds {
        let Some(user) = seed.user.clone().filter(|u| !u.is_empty()) else {
            unassigned.push(seed.serial.clone());
            continue;
        };
        let entry = match directory.find_user(&user, &state_roles(settings))? {
            Lookup::Found(entry) => entry,
            Lookup::NotFound => {
                return Err(AdminError::Usage(format!("record {}: no user '{user}' in the directory", seed.line)))
            }
            Lookup::Ambiguous => {
                return Err(AdminError::Usage(format!("record {}: more than one entry matches '{user}'", seed.line)))
            }
        };
        planned.push((seed, entry));
    }
    let mut assigned = Vec::with_capacity(planned.len());
    for (seed, entry) in planned {
        if !dry_run {
            let sealed = keys.seal(&seal_context(&entry.username), seed.secret.expose()).map_err(AdminError::Io)?;
            let record = TotpRecord { sealed, params: seed.params, serial: Some(seed.serial.clone()) };
            directory
                .modify(&entry.dn, &factors::totp::enrollment_changes(settings, &entry, admin_enrollment(&record))?)?;
        }
        assigned.push(ImportedToken {
            serial: seed.serial,
            user: entry.username,
            algorithm: seed.params.algorithm.as_str(),
            digits: seed.params.digits,
            period: seed.params.period,
        });
    }
    Ok(Imported { assigned, unassigned, dry_run })
}

/// Issues `TwoFactorRecoveryCodes` new recovery codes, replacing the old ones.
pub fn new_recovery_codes(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
) -> Result<Vec<String>, AdminError> {
    let n = settings.recovery_codes.ok_or_else(|| AdminError::Usage("TwoFactorRecoveryCodes is Off".into()))?;
    let entry = find(directory, settings, user)?;
    let signer = signer(settings, &entry)?;
    let codes = recovery::generate(n).map_err(AdminError::Io)?;
    let attr = settings.attribute(Role::Recovery);
    let mut changes = Vec::with_capacity(2);
    if let Some(class) = schema::class_for(attr).filter(|c| !entry.has_object_class(c)) {
        changes.push(Change::Add("objectClass".into(), vec![class.into()]));
    }
    let values = codes.iter().map(|c| recovery::stored_value(&signer, c)).collect();
    changes.push(Change::Replace(attr.into(), values));
    directory.modify(&entry.dn, &changes)?;
    Ok(codes)
}

/// Mails `user` a security notice about what an administrator just did
/// (`TwoFactorNotify`). `Ok(None)`: notices are off, or the directory has
/// no mail address for the user; `Ok(Some(address))`: sent.
pub fn notify_user(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    notice: Notice,
    now: u64,
) -> Result<Option<String>, AdminError> {
    let Some(smtp) = settings.smtp.as_ref().filter(|_| settings.notify) else { return Ok(None) };
    let entry = match directory.find_user(user, &[settings.mail_attribute.as_str()])? {
        Lookup::Found(entry) => entry,
        Lookup::NotFound => return Err(AdminError::NoSuchUser(user.into())),
        Lookup::Ambiguous => return Err(AdminError::Ambiguous(user.into())),
    };
    let Some(to) = entry.values(&settings.mail_attribute).first().filter(|m| m.contains('@')) else {
        return Ok(None);
    };
    let (subject, body) = notify::message(&settings.totp_issuer, &entry.username, notice, now, Origin::Administrator);
    SmtpMailer::new(smtp, NOTICE_SMTP_TIMEOUT).send(to, &subject, &body).map_err(AdminError::Io)?;
    Ok(Some(to.clone()))
}

/// Limit of the SMTP conversation of one notice.
const NOTICE_SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Removes every piece of a user's second-factor state: they enroll again.
/// The failure count is written back to zero, not deleted (servers that
/// remember it would take a missing count for tampering). Returns how many
/// roles held something.
pub fn reset(directory: &dyn Directory, settings: &Settings, user: &str, now: u64) -> Result<usize, AdminError> {
    let entry = find(directory, settings, user)?;
    let signer = signer(settings, &entry)?;
    let failures = settings.attribute(Role::Failures);
    let held = Role::ALL.iter().filter(|r| !entry.values(settings.attribute(**r)).is_empty()).count();
    let mut changes: Vec<Change> = Role::ALL
        .iter()
        .map(|r| settings.attribute(*r))
        .filter(|a| *a != failures && !entry.values(a).is_empty())
        .map(|a| Change::Delete(a.into(), Vec::new()))
        .collect();
    let previous = entry.values(failures).first().and_then(|v| Failures::open(&signer, v)).map_or(0, |f| f.generation);
    if let Some(class) = schema::class_for(failures).filter(|c| !entry.has_object_class(c)) {
        changes.push(Change::Add("objectClass".into(), vec![class.into()]));
    }
    changes.push(Change::Replace(failures.into(), vec![lockout::cleared(previous, now).seal(&signer)]));
    directory.modify(&entry.dn, &changes)?;
    tamper::take();
    Ok(held)
}

/// Lifts a lock (and forgets the failure count), by writing a count of
/// zero over whatever is stored, in one compare-and-swap. True if the
/// account was locked (an untrusted value counts as a lock).
pub fn unlock(directory: &dyn Directory, settings: &Settings, user: &str, now: u64) -> Result<bool, AdminError> {
    let entry = find(directory, settings, user)?;
    let attr = settings.attribute(Role::Failures);
    if entry.values(attr).is_empty() {
        return Ok(false);
    }
    let keys = keys(settings)?;
    let was_locked = cas::update(directory, user, attr, schema::class_for(attr), |entry, _| {
        let signer = Signer::new(keys, &entry.username, settings.accept_unsigned_state);
        let values = entry.values(attr);
        let was_locked = crate::store::codec::locked_until(&signer, values, now).is_some();
        let previous = values.first().and_then(|v| Failures::open(&signer, v)).map_or(0, |f| f.generation);
        cas::Decision::Write(Some(lockout::cleared(previous, now).seal(&signer)), was_locked)
    })?;
    tamper::take();
    Ok(was_locked)
}

#[derive(Debug, Serialize)]
pub struct LockedUser {
    pub user: String,
    pub failures: u32,
    /// ISO 8601, or `never` (an administrator must unlock).
    pub until: String,
}

/// Users locked at `now` (an untrusted count is a lock).
pub fn locked(directory: &dyn Directory, settings: &Settings, now: u64) -> Result<Vec<LockedUser>, AdminError> {
    let keys = keys(settings)?;
    let attr = settings.attribute(Role::Failures);
    let mut users: Vec<LockedUser> = directory
        .users_with(attr)?
        .into_iter()
        .filter_map(|entry| {
            let signer = Signer::new(keys, &entry.username, settings.accept_unsigned_state);
            let values = entry.values(attr);
            let until = crate::store::codec::locked_until(&signer, values, now)?;
            let count = values.first().and_then(|v| Failures::open(&signer, v)).map_or(0, |f| f.count);
            let until = if until == LOCKED_UNTIL_UNLOCKED { "never".to_string() } else { iso8601(until) };
            Some(LockedUser { user: entry.username, failures: count, until })
        })
        .collect();
    tamper::take();
    users.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(users)
}

#[derive(Debug, Default, Serialize)]
pub struct Rekeyed {
    /// Secrets re-sealed with the current key.
    pub resealed: usize,
    /// Secrets already sealed with it.
    pub current: usize,
    /// Users whose secret no listed key opens (they must enroll again).
    pub unreadable: Vec<String>,
    /// Stored values signed again with the current key (signed by an older
    /// one, or written before values were signed).
    pub resigned: usize,
    /// Values that did not pass their check, left as they are (the module
    /// ignores them, or counts them as a lock): `user role reason`.
    pub untrusted: Vec<String>,
}

/// Re-seals every stored TOTP secret and re-signs every stored value with
/// the first key file, so that older key files can be dropped from
/// `TwoFactorSecretKeyFile`; values written before values were signed are
/// signed too (the migration after an upgrade). One compare-and-swap per
/// user and role: a value the module rewrote meanwhile is left to it.
pub fn rekey(directory: &dyn Directory, settings: &Settings) -> Result<Rekeyed, AdminError> {
    let keys = keys(settings)?;
    let mut report = Rekeyed::default();
    for role in Role::ALL {
        let attr = settings.attribute(role);
        for entry in directory.users_with(attr)? {
            // The migration reads what earlier versions wrote, whatever the directive says.
            let signer = Signer::new(keys, &entry.username, true);
            let mut old = Vec::new();
            let mut new = Vec::new();
            for value in entry.values(attr) {
                let payload = match signer.check(role, value) {
                    Opened::Current(_) if role != Role::Totp => continue,
                    Opened::Current(payload) | Opened::OlderKey(payload) | Opened::Unsigned(payload) => payload,
                    Opened::Refused(why) => {
                        report.untrusted.push(format!("{} {} {}", entry.username, role.as_str(), why.as_str()));
                        continue;
                    }
                };
                let resigned = if role == Role::Totp {
                    match reseal_totp(keys, &signer, &entry.username, value, &mut report)? {
                        Some(resealed) => resealed,
                        None => continue,
                    }
                } else {
                    signer.sign(role, payload)
                };
                old.push(value.clone());
                new.push(resigned);
            }
            if old.is_empty() {
                continue;
            }
            let count = old.len();
            match directory.modify(&entry.dn, &[Change::Delete(attr.into(), old), Change::Add(attr.into(), new)]) {
                Ok(()) => report.resigned += count,
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    tamper::take();
    Ok(report)
}

/// A TOTP value signed and sealed with the current key, or `None` when it
/// is current already (counted) or its secret cannot be opened (reported).
fn reseal_totp(
    keys: &Keys,
    signer: &Signer<'_>,
    user: &str,
    value: &str,
    report: &mut Rekeyed,
) -> Result<Option<String>, AdminError> {
    let signed_now = matches!(signer.check(Role::Totp, value), Opened::Current(_));
    let opened = TotpRecord::open(signer, value).and_then(|r| {
        let (secret, current) = keys.open(&seal_context(user), &r.sealed)?;
        Some((r, secret, current))
    });
    match opened {
        None => {
            report.unreadable.push(user.to_string());
            Ok(None)
        }
        Some((_, _, true)) if signed_now => {
            report.current += 1;
            Ok(None)
        }
        Some((record, _, true)) => Ok(Some(record.seal(signer))),
        Some((record, secret, false)) => {
            let sealed = keys.seal(&seal_context(user), secret.expose()).map_err(AdminError::Io)?;
            report.resealed += 1;
            Ok(Some(TotpRecord { sealed, ..record }.seal(signer)))
        }
    }
}

/// Unix seconds as `2026-11-22T16:14:19Z`.
pub fn iso8601(unix: u64) -> String {
    let days = unix / 86400;
    let secs = unix % 86400;
    // Civil-from-days (Howard Hinnant's algorithm), for dates after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::iso8601(1_795_365_883), "2026-11-22T16:44:43Z");
    }
}
