//! The directory: where every piece of state lives, so that any number of
//! Apache servers share it and replication carries it between sites.

pub mod cas;
pub mod codec;
pub mod escape;
mod ldap;
#[cfg(test)]
pub(crate) mod memory;
pub mod schema;
mod seeded;
pub mod signed;

use std::fmt;

pub use ldap::{Found, LdapDirectory};
pub use seeded::Seeded;

/// One user entry, as read.
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub dn: String,
    /// The value of the username attribute that matched: the canonical name.
    pub username: String,
    attrs: Vec<(String, Vec<String>)>,
}

impl UserEntry {
    pub fn new(dn: String, username: String, attrs: Vec<(String, Vec<String>)>) -> Self {
        UserEntry { dn, username, attrs }
    }

    /// Values of `attr` (attribute names are case-insensitive).
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs.iter().find(|(name, _)| name.eq_ignore_ascii_case(attr)).map_or(&[], |(_, v)| v.as_slice())
    }

    pub fn has_object_class(&self, class: &str) -> bool {
        self.values("objectClass").iter().any(|c| c.eq_ignore_ascii_case(class))
    }

    /// The entry as it is after a modify of `changes` succeeded on it.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            let (Change::Add(attr, _) | Change::Delete(attr, _) | Change::Replace(attr, _)) = change;
            let index = match self.attrs.iter().position(|(name, _)| name.eq_ignore_ascii_case(attr)) {
                Some(index) => index,
                None => {
                    self.attrs.push((attr.clone(), Vec::new()));
                    self.attrs.len() - 1
                }
            };
            let current = &mut self.attrs[index].1;
            match change {
                Change::Add(_, values) => {
                    for value in values {
                        if !current.contains(value) {
                            current.push(value.clone());
                        }
                    }
                }
                Change::Delete(_, values) if values.is_empty() => current.clear(),
                Change::Delete(_, values) => current.retain(|v| !values.contains(v)),
                Change::Replace(_, values) => values.clone_into(current),
            }
            if current.is_empty() {
                self.attrs.remove(index);
            }
        }
    }
}

/// Result of a user look-up.
#[derive(Debug)]
pub enum Lookup {
    Found(UserEntry),
    /// No entry, or its username attribute does not equal the name asked for.
    NotFound,
    /// More than one entry matched: never guess which.
    Ambiguous,
}

/// One change of a modify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add these values.
    Add(String, Vec<String>),
    /// Delete exactly these values (fails if one is gone: compare-and-swap);
    /// an empty list deletes the attribute.
    Delete(String, Vec<String>),
    Replace(String, Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No server answered, the bind was refused, an operation timed out.
    Unavailable(String),
    /// A server answered something that makes no sense.
    Garbage(String),
    /// A compare-and-swap lost: a value to delete was already gone, or a
    /// single-valued attribute already had a value. Someone else changed it first.
    Conflict,
    /// The directory refused the change (access rights, schema).
    Refused(String),
}

impl StoreError {
    /// Stable short reason for log lines (`reason=`).
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Garbage(_) => "garbage",
            StoreError::Conflict => "conflict",
            StoreError::Refused(_) => "refused",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(d) => write!(f, "directory unavailable: {d}"),
            StoreError::Garbage(d) => write!(f, "directory answered garbage: {d}"),
            StoreError::Conflict => write!(f, "changed concurrently"),
            StoreError::Refused(d) => write!(f, "directory refused the change: {d}"),
        }
    }
}

/// What the module and twofactorctl need from a directory.
pub trait Directory: Send + Sync {
    /// Finds the one entry whose username attribute equals `username`
    /// (ignoring ASCII case), reading `attrs` besides the username attribute.
    fn find_user(&self, username: &str, attrs: &[&str]) -> Result<Lookup, StoreError>;

    /// Applies `changes` to `dn` in one modify operation (all or nothing).
    fn modify(&self, dn: &str, changes: &[Change]) -> Result<(), StoreError>;

    /// Every user entry that has a value of `attr`, with those values.
    fn users_with(&self, attr: &str) -> Result<Vec<UserEntry>, StoreError>;
}
