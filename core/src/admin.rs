//! What `twofactorctl` does, as functions over a `Directory`: the binary
//! only parses arguments and prints.

use serde::Serialize;

use crate::completion;
use crate::config::{Role, Settings};
use crate::store::codec::{Bound, Completion, Failures, LOCKED_UNTIL_UNLOCKED};
use crate::store::{Directory, Lookup, StoreError};

/// Why an administrative command failed; `exit_code` follows Unix habits.
#[derive(Debug)]
pub enum AdminError {
    NoSuchUser(String),
    Ambiguous(String),
    Directory(StoreError),
    Usage(String),
    Io(String),
}

impl AdminError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Usage(_) => 2,
            AdminError::NoSuchUser(_) | AdminError::Ambiguous(_) => 3,
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

/// Everything about a user's second factor, never a secret.
#[derive(Debug, Serialize)]
pub struct Status {
    pub user: String,
    pub dn: String,
    pub enrolled: bool,
    pub locked: bool,
    /// ISO 8601, `never` when only an administrator can unlock.
    pub locked_until: Option<String>,
    pub failures: u32,
    pub completions: Vec<CompletionInfo>,
    pub recovery_codes_left: usize,
}

fn state_roles(settings: &Settings) -> Vec<&str> {
    Role::ALL.iter().map(|r| settings.attribute(*r)).collect()
}

fn find(directory: &dyn Directory, settings: &Settings, user: &str) -> Result<crate::store::UserEntry, AdminError> {
    match directory.find_user(user, &state_roles(settings))? {
        Lookup::Found(entry) => Ok(entry),
        Lookup::NotFound => Err(AdminError::NoSuchUser(user.into())),
        Lookup::Ambiguous => Err(AdminError::Ambiguous(user.into())),
    }
}

pub fn status(directory: &dyn Directory, settings: &Settings, user: &str, now: u64) -> Result<Status, AdminError> {
    let entry = find(directory, settings, user)?;
    let failures =
        entry.values(settings.attribute(Role::Failures)).first().and_then(|v| Failures::decode(v)).unwrap_or_default();
    let completions = entry
        .values(settings.attribute(Role::Completion))
        .iter()
        .filter_map(|v| Completion::decode(v))
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
        enrolled: !entry.values(settings.attribute(Role::Totp)).is_empty(),
        locked: failures.is_locked(now),
        locked_until: failures.locked_until.filter(|_| failures.is_locked(now)).map(|u| {
            if u == LOCKED_UNTIL_UNLOCKED {
                "never".to_string()
            } else {
                iso8601(u)
            }
        }),
        failures: failures.count,
        completions,
        recovery_codes_left: entry.values(settings.attribute(Role::Recovery)).len(),
    })
}

/// Drops every completion of `user`: all browsers must pass the challenge again
/// (other servers' caches forget within TwoFactorCacheTTL).
pub fn revoke(directory: &dyn Directory, settings: &Settings, user: &str) -> Result<usize, AdminError> {
    find(directory, settings, user)?;
    Ok(completion::revoke_all(directory, settings, user)?)
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
