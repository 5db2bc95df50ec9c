//! One request's view of one user's entry: read once, kept current with the
//! request's own writes, and read again only when a write finds it stale.
//!
//! Every state change is a compare-and-swap (the modify deletes the value
//! it read), so a view that someone else changed meanwhile costs a failed
//! modify and a fresh read, never a lost update. A challenge step that read
//! the entry, counted the attempt, moved the TOTP step, reset the count and
//! recorded the completion made five searches; with this, one.

use std::sync::{Mutex, MutexGuard};

use super::{Change, Directory, Lookup, StoreError, UserEntry};

pub struct Seeded<'a> {
    inner: &'a dyn Directory,
    kept: Mutex<Option<Kept>>,
}

struct Kept {
    /// The name looked up, and the attributes read besides the username.
    asked: String,
    read: Vec<String>,
    entry: UserEntry,
}

impl<'a> Seeded<'a> {
    pub fn new(inner: &'a dyn Directory) -> Self {
        Seeded { inner, kept: Mutex::new(None) }
    }

    fn kept(&self) -> MutexGuard<'_, Option<Kept>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Directory for Seeded<'_> {
    fn find_user(&self, username: &str, attrs: &[&str]) -> Result<Lookup, StoreError> {
        if let Some(kept) = self.kept().as_ref() {
            let covered = attrs.iter().all(|a| kept.read.iter().any(|r| r.eq_ignore_ascii_case(a)));
            if kept.asked == username && covered {
                return Ok(Lookup::Found(kept.entry.clone()));
            }
        }
        let found = self.inner.find_user(username, attrs)?;
        *self.kept() = match &found {
            Lookup::Found(entry) => Some(Kept {
                asked: username.to_string(),
                read: attrs.iter().map(|a| a.to_string()).collect(),
                entry: entry.clone(),
            }),
            Lookup::NotFound | Lookup::Ambiguous => None,
        };
        Ok(found)
    }

    fn modify(&self, dn: &str, changes: &[Change]) -> Result<(), StoreError> {
        let result = self.inner.modify(dn, changes);
        let mut kept = self.kept();
        match (&result, kept.as_mut()) {
            (Ok(()), Some(k)) if k.entry.dn == dn => k.entry.apply(changes),
            // A lost compare-and-swap, or an answer that leaves the entry
            // in doubt: the next look-up reads it again.
            _ => *kept = None,
        }
        result
    }

    fn users_with(&self, attr: &str) -> Result<Vec<UserEntry>, StoreError> {
        self.inner.users_with(attr)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// One entry in memory, counting reads, with compare-and-swap deletes.
    struct OneEntry {
        entry: Mutex<UserEntry>,
        reads: AtomicUsize,
    }

    impl OneEntry {
        fn new() -> Self {
            let entry = UserEntry::new(
                "uid=alice,ou=people".into(),
                "alice".into(),
                vec![("objectClass".into(), vec!["inetOrgPerson".into()]), ("failures".into(), vec!["1".into()])],
            );
            OneEntry { entry: Mutex::new(entry), reads: AtomicUsize::new(0) }
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::Relaxed)
        }

        /// Someone else's write.
        fn set(&self, attr: &str, value: &str) {
            let mut entry = self.entry.lock().unwrap();
            entry.apply(&[Change::Replace(attr.into(), vec![value.into()])]);
        }
    }

    impl Directory for OneEntry {
        fn find_user(&self, username: &str, _attrs: &[&str]) -> Result<Lookup, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let entry = self.entry.lock().unwrap();
            Ok(if entry.username == username { Lookup::Found(entry.clone()) } else { Lookup::NotFound })
        }

        fn modify(&self, _dn: &str, changes: &[Change]) -> Result<(), StoreError> {
            let mut entry = self.entry.lock().unwrap();
            for change in changes {
                if let Change::Delete(attr, values) = change {
                    if values.iter().any(|v| !entry.values(attr).contains(v)) {
                        return Err(StoreError::Conflict);
                    }
                }
            }
            entry.apply(changes);
            Ok(())
        }

        fn users_with(&self, _attr: &str) -> Result<Vec<UserEntry>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn found(lookup: Lookup) -> UserEntry {
        match lookup {
            Lookup::Found(entry) => entry,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_once_and_follows_its_own_writes() {
        let directory = OneEntry::new();
        let seeded = Seeded::new(&directory);
        let entry = found(seeded.find_user("alice", &["failures", "objectClass"]).unwrap());
        seeded.modify(&entry.dn, &[Change::Delete("failures".into(), vec!["1".into()])]).unwrap();
        seeded.modify(&entry.dn, &[Change::Add("failures".into(), vec!["2".into()])]).unwrap();
        let again = found(seeded.find_user("alice", &["failures"]).unwrap());
        assert_eq!(again.values("failures"), ["2"]);
        assert_eq!(directory.reads(), 1);
    }

    #[test]
    fn attributes_not_read_are_read() {
        let directory = OneEntry::new();
        let seeded = Seeded::new(&directory);
        found(seeded.find_user("alice", &["failures"]).unwrap());
        found(seeded.find_user("alice", &["failures", "mail"]).unwrap());
        assert_eq!(directory.reads(), 2);
        assert!(matches!(seeded.find_user("bob", &["failures"]).unwrap(), Lookup::NotFound));
        assert_eq!(directory.reads(), 3);
    }

    #[test]
    fn a_lost_compare_and_swap_reads_again() {
        let directory = OneEntry::new();
        let seeded = Seeded::new(&directory);
        let entry = found(seeded.find_user("alice", &["failures"]).unwrap());
        directory.set("failures", "5");
        let stale = seeded.modify(&entry.dn, &[Change::Delete("failures".into(), vec!["1".into()])]);
        assert_eq!(stale, Err(StoreError::Conflict));
        let fresh = found(seeded.find_user("alice", &["failures"]).unwrap());
        assert_eq!(fresh.values("failures"), ["5"]);
        assert_eq!(directory.reads(), 2);
    }

    #[test]
    fn applied_changes_match_what_the_directory_keeps() {
        let mut entry = UserEntry::new("dn".into(), "u".into(), vec![("a".into(), vec!["1".into(), "2".into()])]);
        entry.apply(&[Change::Delete("a".into(), vec!["1".into()]), Change::Add("A".into(), vec!["3".into()])]);
        assert_eq!(entry.values("a"), ["2", "3"]);
        entry.apply(&[Change::Add("b".into(), vec!["x".into()]), Change::Replace("a".into(), Vec::new())]);
        assert!(entry.values("a").is_empty());
        assert_eq!(entry.values("b"), ["x"]);
        entry.apply(&[Change::Delete("b".into(), Vec::new())]);
        assert!(entry.values("b").is_empty());
    }
}
