//! Consecutive wrong codes (TOTP, email and recovery together) lock the
//! account; the lock lifts by itself after `TwoFactorAutoUnlock`, or only
//! by an administrator.

use std::time::Duration;

use crate::store::codec::{Failures, LOCKED_UNTIL_UNLOCKED};

/// The failures value after one more wrong code at `now`.
pub fn after_failure(
    current: Option<&Failures>,
    now: u64,
    max_attempts: u32,
    auto_unlock: Option<Duration>,
) -> Failures {
    // A lock that ran out starts a fresh count.
    let previous = current.filter(|f| f.locked_until.is_none_or(|until| until > now)).map_or(0, |f| f.count);
    let count = previous.saturating_add(1);
    let locked_until = (count >= max_attempts).then(|| match auto_unlock {
        Some(d) => now.saturating_add(d.as_secs()),
        None => LOCKED_UNTIL_UNLOCKED,
    });
    Failures { count, last: now, locked_until }
}

/// Attempts left before the lock, for the page.
pub fn attempts_left(failures: &Failures, max_attempts: u32) -> u32 {
    max_attempts.saturating_sub(failures.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_then_locks() {
        let auto = Some(Duration::from_secs(600));
        let mut f = after_failure(None, 100, 3, auto);
        assert_eq!((f.count, f.locked_until), (1, None));
        f = after_failure(Some(&f), 101, 3, auto);
        assert_eq!((f.count, f.locked_until, attempts_left(&f, 3)), (2, None, 1));
        f = after_failure(Some(&f), 102, 3, auto);
        assert_eq!((f.count, f.locked_until), (3, Some(702)));
        assert!(f.is_locked(701) && !f.is_locked(702));
    }

    #[test]
    fn without_auto_unlock_only_an_administrator_unlocks() {
        let f = after_failure(None, 100, 1, None);
        assert_eq!(f.locked_until, Some(LOCKED_UNTIL_UNLOCKED));
        assert!(f.is_locked(u64::MAX - 1));
    }

    #[test]
    fn an_expired_lock_starts_over() {
        let locked = Failures { count: 5, last: 100, locked_until: Some(200) };
        let f = after_failure(Some(&locked), 300, 5, Some(Duration::from_secs(600)));
        assert_eq!((f.count, f.locked_until), (1, None));
    }
}
