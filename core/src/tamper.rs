//! Stored values that failed their check, as one request found them.
//!
//! The state codecs open values deep inside pure functions (a completion
//! search, a compare-and-swap decision), and a request runs on one thread:
//! each finding is noted here, per role, and the hook that served the
//! request takes the notes afterwards and writes one `event=tampered` line
//! per role. Nothing else reads them; a thread that never takes them only
//! keeps the last request's notes (one small array).

use std::cell::Cell;

use crate::config::Role;

/// Why a stored value was not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its MAC does not match: written by someone without the key, moved
    /// from another user or role, edited, or signed with a key no longer listed.
    BadMac,
    /// No MAC at all (written by a version before values were signed) and
    /// `TwoFactorAcceptUnsignedState` is Off.
    Unsigned,
    /// The MAC matches but the value does not parse (a newer format?).
    Malformed,
    /// A genuine value older than one this server has seen, or missing
    /// after one was seen: put back or deleted by someone.
    RolledBack,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::BadMac => "bad-mac",
            Why::Unsigned => "unsigned",
            Why::Malformed => "malformed",
            Why::RolledBack => "rolled-back",
        }
    }

    fn code(self) -> u8 {
        match self {
            Why::BadMac => 1,
            Why::Unsigned => 2,
            Why::Malformed => 3,
            Why::RolledBack => 4,
        }
    }

    fn from_code(code: u8) -> Option<Why> {
        match code {
            1 => Some(Why::BadMac),
            2 => Some(Why::Unsigned),
            3 => Some(Why::Malformed),
            4 => Some(Why::RolledBack),
            _ => None,
        }
    }
}

thread_local! {
    /// Per role (in `Role::ALL` order), the first finding's code; 0: none.
    static FOUND: Cell<[u8; Role::ALL.len()]> = const { Cell::new([0; Role::ALL.len()]) };
}

/// Notes that a value of `role` was not trusted (the first reason per role is kept).
pub fn record(role: Role, why: Why) {
    let Some(i) = Role::ALL.iter().position(|r| *r == role) else { return };
    FOUND.with(|found| {
        let mut notes = found.get();
        if notes[i] == 0 {
            notes[i] = why.code();
            found.set(notes);
        }
    });
}

/// The notes since the last call, emptied.
pub fn take() -> Vec<(Role, Why)> {
    let notes = FOUND.with(|found| found.replace([0; Role::ALL.len()]));
    Role::ALL.iter().zip(notes).filter_map(|(role, code)| Some((*role, Why::from_code(code)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_per_thread_per_role_first_reason_and_taken_once() {
        take();
        record(Role::Failures, Why::BadMac);
        record(Role::Failures, Why::RolledBack);
        record(Role::Completion, Why::Unsigned);
        std::thread::spawn(|| {
            record(Role::Totp, Why::Malformed);
            assert_eq!(take(), [(Role::Totp, Why::Malformed)]);
        })
        .join()
        .unwrap();
        assert_eq!(take(), [(Role::Completion, Why::Unsigned), (Role::Failures, Why::BadMac)]);
        assert!(take().is_empty());
    }
}
