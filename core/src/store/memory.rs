//! A directory in memory, for the unit tests of the rules that sit on top
//! of `Directory` (the decision, lockout, single use). It keeps slapd's
//! answers to the compare-and-swap modifies the rules rely on; the store
//! itself is tested against a real slapd.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Change, Directory, Lookup, StoreError, UserEntry};

/// Attributes of the project's schema that take one value (SINGLE-VALUE).
const SINGLE_VALUED: [&str; 4] = ["twoFactorTOTP", "twoFactorTOTPLastStep", "twoFactorFailures", "twoFactorEmailCode"];

#[derive(Default)]
pub struct MemoryDirectory {
    entries: Mutex<Vec<UserEntry>>,
    down: AtomicBool,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

impl MemoryDirectory {
    /// Adds a user `uid=NAME` with the given attributes.
    pub fn with_user(self, name: &str, attrs: &[(&str, &[&str])]) -> Self {
        let attrs = attrs.iter().map(|(a, v)| (a.to_string(), v.iter().map(|s| s.to_string()).collect())).collect();
        let entry = UserEntry::new(format!("uid={name},ou=people,dc=example,dc=test"), name.to_string(), attrs);
        self.entries.lock().unwrap().push(entry);
        self
    }

    /// Every operation fails as if no server answered.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    pub fn values(&self, name: &str, attr: &str) -> Vec<String> {
        let entries = self.entries.lock().unwrap();
        entries.iter().find(|e| e.username == name).map(|e| e.values(attr).to_vec()).unwrap_or_default()
    }

    /// Someone else's write.
    pub fn replace(&self, name: &str, attr: &str, values: &[&str]) {
        let mut entries = self.entries.lock().unwrap();
        if let Some(entry) = entries.iter_mut().find(|e| e.username == name) {
            entry.apply(&[Change::Replace(attr.into(), values.iter().map(|v| v.to_string()).collect())]);
        }
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    fn check_up(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::Relaxed) {
            true => Err(StoreError::Unavailable("connection refused".into())),
            false => Ok(()),
        }
    }
}

impl Directory for MemoryDirectory {
    fn find_user(&self, username: &str, _attrs: &[&str]) -> Result<Lookup, StoreError> {
        self.check_up()?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let entries = self.entries.lock().unwrap();
        let mut found = entries.iter().filter(|e| e.username.eq_ignore_ascii_case(username));
        Ok(match (found.next(), found.next()) {
            (Some(entry), None) => Lookup::Found(entry.clone()),
            (Some(_), Some(_)) => Lookup::Ambiguous,
            (None, _) => Lookup::NotFound,
        })
    }

    /// All or nothing, like slapd: deleting a value that is gone, adding a
    /// value that is there, or a second value of a single-valued attribute
    /// is a conflict.
    fn modify(&self, dn: &str, changes: &[Change]) -> Result<(), StoreError> {
        self.check_up()?;
        let mut entries = self.entries.lock().unwrap();
        let Some(entry) = entries.iter_mut().find(|e| e.dn == dn) else {
            return Err(StoreError::Refused("no such object".into()));
        };
        let mut after = entry.clone();
        for change in changes {
            match change {
                Change::Delete(attr, values) if values.iter().any(|v| !after.values(attr).contains(v)) => {
                    return Err(StoreError::Conflict)
                }
                Change::Add(attr, values) if values.iter().any(|v| after.values(attr).contains(v)) => {
                    return Err(StoreError::Conflict)
                }
                _ => {}
            }
            after.apply(std::slice::from_ref(change));
            if let Change::Add(attr, _) | Change::Replace(attr, _) = change {
                let single = SINGLE_VALUED.iter().any(|s| s.eq_ignore_ascii_case(attr));
                if single && after.values(attr).len() > 1 {
                    return Err(StoreError::Conflict);
                }
            }
        }
        *entry = after;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn users_with(&self, attr: &str) -> Result<Vec<UserEntry>, StoreError> {
        self.check_up()?;
        let entries = self.entries.lock().unwrap();
        Ok(entries.iter().filter(|e| !e.values(attr).is_empty()).cloned().collect())
    }
}
