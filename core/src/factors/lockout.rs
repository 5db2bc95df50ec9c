//! Consecutive wrong codes (TOTP, email and recovery together) lock the
//! account; the lock lifts by itself after `TwoFactorAutoUnlock`, or only
//! by an administrator.
//!
//! An attempt is *reserved* before its code is checked: one compare-and-swap
//! raises the count, and is refused once the count has reached
//! `TwoFactorMaxAttempts`. So however many submissions arrive at once, at
//! most that many codes are ever checked per lock period. A wrong code then
//! only has to set the lock when its reservation was the last one allowed;
//! a right code resets the count, unless a lock was set meanwhile.

use std::time::Duration;

use crate::completion;
use crate::config::{Role, Settings};
use crate::store::cas::{self, Decision};
use crate::store::codec::{Completion, Failures, LOCKED_UNTIL_UNLOCKED};
use crate::store::{schema, Change, Directory, Lookup, StoreError};

/// The rules of one server: how many attempts, and how long a lock lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_attempts: u32,
    /// `None`: only an administrator unlocks.
    pub auto_unlock: Option<Duration>,
}

impl Limits {
    pub fn of(settings: &Settings) -> Limits {
        Limits { max_attempts: settings.max_attempts, auto_unlock: settings.auto_unlock }
    }

    /// When a lock set at `now` ends.
    fn lock_end(&self, now: u64) -> u64 {
        match self.auto_unlock {
            Some(d) => now.saturating_add(d.as_secs()),
            None => LOCKED_UNTIL_UNLOCKED,
        }
    }
}

/// The answer to "may one more code be checked?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Yes, and it is counted already: `count` includes this attempt.
    /// `ended_lock`: an expired lock was cleared to make room for it.
    Granted { count: u32, ended_lock: bool },
    /// No: the account is locked until then; `newly`: this refusal set the lock.
    Locked { until: u64, newly: bool },
}

/// Pending attempts older than this are taken as dead (their request ended
/// without reporting): a right code does not keep them counted.
pub const STALE_PENDING_SECS: u64 = 600;

/// What to do with the stored failures value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Keep,
    Remove,
    Write(Failures),
}

/// A stored value that cannot be read counts as a lock only an
/// administrator lifts (fail closed), as `codec::locked_until` says.
fn read(current: Option<&str>) -> Result<Option<Failures>, ()> {
    match current {
        None => Ok(None),
        Some(text) => Failures::decode(text).map(Some).ok_or(()),
    }
}

/// The reservation decision for the failures value read at `now`.
pub fn reserve(current: Option<&str>, now: u64, limits: Limits) -> (Update, Reservation) {
    let Ok(current) = read(current) else {
        return (Update::Keep, Reservation::Locked { until: LOCKED_UNTIL_UNLOCKED, newly: false });
    };
    if let Some(f) = current.filter(|f| f.is_locked(now)) {
        let until = f.locked_until.unwrap_or(LOCKED_UNTIL_UNLOCKED);
        return (Update::Keep, Reservation::Locked { until, newly: false });
    }
    // A lock that ran out starts a fresh count.
    let ended_lock = current.is_some_and(|f| f.locked_until.is_some());
    let previous = current.filter(|_| !ended_lock).unwrap_or_default();
    if previous.count >= limits.max_attempts {
        // Every allowed attempt is taken (some may still be in flight, or
        // died before they could report): lock now, so that the refusal
        // has an end.
        let until = limits.lock_end(now);
        let locked = Failures { locked_until: Some(until), ..previous };
        return (Update::Write(locked), Reservation::Locked { until, newly: true });
    }
    let count = previous.count.saturating_add(1);
    let next = Failures { count, last: now, locked_until: None, pending: previous.pending.saturating_add(1) };
    (Update::Write(next), Reservation::Granted { count, ended_lock })
}

/// After a wrong code whose attempt was reserved: no longer pending, and
/// the lock if the count has reached the limit. Returns the lock's end when
/// this call set it.
pub fn after_wrong_code(current: Option<&str>, now: u64, limits: Limits) -> (Update, Option<u64>) {
    match read(current) {
        // Unreadable, reset by a success meanwhile, or locked already:
        // the attempt was counted (or forgiven) already.
        Err(()) | Ok(None) => (Update::Keep, None),
        Ok(Some(f)) if f.locked_until.is_some() => (Update::Keep, None),
        Ok(Some(f)) => {
            let settled = Failures { pending: f.pending.saturating_sub(1), ..f };
            if f.count >= limits.max_attempts {
                let until = limits.lock_end(now);
                (Update::Write(Failures { locked_until: Some(until), ..settled }), Some(until))
            } else {
                (Update::Write(settled), None)
            }
        }
    }
}

/// After a right code whose attempt was reserved: the count goes, except
/// for other attempts still being checked (a right code in a burst of
/// guesses does not give the burst more tries). `Err(until)` when the
/// account was locked meanwhile: the success does not count, the lock stays.
pub fn after_right_code(current: Option<&str>, now: u64) -> Result<Update, u64> {
    match read(current) {
        Err(()) => Err(LOCKED_UNTIL_UNLOCKED),
        Ok(None) => Ok(Update::Keep),
        Ok(Some(f)) if f.is_locked(now) => Err(f.locked_until.unwrap_or(LOCKED_UNTIL_UNLOCKED)),
        Ok(Some(f)) => {
            let stale = now.saturating_sub(f.last) > STALE_PENDING_SECS;
            let others = if stale { 0 } else { f.pending.saturating_sub(1) };
            Ok(match others {
                0 => Update::Remove,
                n => Update::Write(Failures { count: n, last: f.last, locked_until: None, pending: n }),
            })
        }
    }
}

/// The compare-and-swap decision for an update.
fn decision<T>(update: Update, answer: T) -> Decision<T> {
    match update {
        Update::Keep => Decision::Keep(answer),
        Update::Remove => Decision::Write(None, answer),
        Update::Write(next) => Decision::Write(Some(next.encode()), answer),
    }
}

/// Attempts left before the lock, for the page.
pub fn attempts_left(count: u32, max_attempts: u32) -> u32 {
    max_attempts.saturating_sub(count)
}

/// The failures attribute of these settings and its auxiliary class.
fn failures_attribute(settings: &Settings) -> (&str, Option<&'static str>) {
    let attr = settings.attribute(Role::Failures);
    (attr, schema::class_for(attr))
}

/// Reserves one attempt of `user` in the directory (one compare-and-swap;
/// a CAS that gives up is an error, and the code must then not be checked).
pub fn reserve_attempt(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    now: u64,
) -> Result<Reservation, StoreError> {
    let (attr, class) = failures_attribute(settings);
    let limits = Limits::of(settings);
    cas::update(directory, user, attr, class, |_, current| {
        let (update, answer) = reserve(current, now, limits);
        decision(update, answer)
    })
}

/// Records that a reserved attempt held a wrong code; returns the lock's
/// end when this set the lock.
pub fn record_wrong_code(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    let (attr, class) = failures_attribute(settings);
    let limits = Limits::of(settings);
    cas::update(directory, user, attr, class, |_, current| {
        let (update, locked) = after_wrong_code(current, now, limits);
        decision(update, locked)
    })
}

/// Records that a reserved attempt held the right code (see
/// `after_right_code`; `Ok(Err(until))`: locked meanwhile, refuse the success).
pub fn record_right_code(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    now: u64,
) -> Result<Result<(), u64>, StoreError> {
    let (attr, _) = failures_attribute(settings);
    cas::update(directory, user, attr, None, |_, current| match after_right_code(current, now) {
        Ok(update) => decision(update, Ok(())),
        Err(until) => Decision::Keep(Err(until)),
    })
}

/// Changes of a modify compare-and-swap from `current` to `update`.
fn failure_changes(attr: &str, current: Option<&str>, update: Update) -> Vec<Change> {
    let next = match update {
        Update::Keep => return Vec::new(),
        Update::Remove => None,
        Update::Write(next) => Some(next.encode()),
    };
    let mut changes = Vec::with_capacity(2);
    if let Some(old) = current {
        changes.push(Change::Delete(attr.into(), vec![old.into()]));
    }
    if let Some(next) = next {
        changes.push(Change::Add(attr.into(), vec![next]));
    }
    changes
}

/// A reserved attempt held the right code: its end (`after_right_code`)
/// and the completion `new` recorded in one modify, so that a success is
/// one write, not two. `Ok(Err(until))`: locked meanwhile, nothing written,
/// refuse the success.
pub fn record_right_code_and_completion(
    directory: &dyn Directory,
    settings: &Settings,
    user: &str,
    new: &Completion,
    now: u64,
) -> Result<Result<(), u64>, StoreError> {
    let (failures, _) = failures_attribute(settings);
    let completions = settings.attribute(Role::Completion);
    for _ in 0..cas::ATTEMPTS {
        let entry = match directory.find_user(user, &[failures, completions, "objectClass"])? {
            Lookup::Found(entry) => entry,
            Lookup::NotFound | Lookup::Ambiguous => {
                return Err(StoreError::Refused("no single entry for this user".into()))
            }
        };
        let current = entry.values(failures).first().map(String::as_str);
        let update = match after_right_code(current, now) {
            Ok(update) => update,
            Err(until) => return Ok(Err(until)),
        };
        let class = schema::class_for(completions).filter(|c| !entry.has_object_class(c));
        let mut changes = completion::record_changes(completions, entry.values(completions), new, new.issued, class);
        changes.extend(failure_changes(failures, current, update));
        match directory.modify(&entry.dn, &changes) {
            Ok(()) => return Ok(Ok(())),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_attempts: 3, auto_unlock: Some(Duration::from_secs(600)) };

    /// A stored value as the directory holds it, changed as the CAS would.
    #[derive(Default)]
    struct Stored(Option<String>);

    impl Stored {
        fn apply(&mut self, update: Update) {
            match update {
                Update::Keep => {}
                Update::Remove => self.0 = None,
                Update::Write(f) => self.0 = Some(f.encode()),
            }
        }

        fn reserve(&mut self, now: u64) -> Reservation {
            let (update, answer) = reserve(self.0.as_deref(), now, LIMITS);
            self.apply(update);
            answer
        }

        fn wrong(&mut self, now: u64) -> Option<u64> {
            let (update, locked) = after_wrong_code(self.0.as_deref(), now, LIMITS);
            self.apply(update);
            locked
        }

        fn right(&mut self, now: u64) -> Result<(), u64> {
            let update = after_right_code(self.0.as_deref(), now)?;
            self.apply(update);
            Ok(())
        }

        fn failures(&self) -> Option<Failures> {
            self.0.as_deref().and_then(Failures::decode)
        }
    }

    #[test]
    fn one_at_a_time_the_last_allowed_wrong_code_locks() {
        let mut s = Stored::default();
        for n in 1..=2 {
            assert_eq!(s.reserve(100), Reservation::Granted { count: n, ended_lock: false });
            assert_eq!(s.wrong(100), None);
        }
        assert_eq!(s.reserve(100), Reservation::Granted { count: 3, ended_lock: false });
        assert_eq!(s.wrong(101), Some(701));
        assert_eq!(s.reserve(102), Reservation::Locked { until: 701, newly: false });
        assert_eq!(s.failures(), Some(Failures { count: 3, last: 100, locked_until: Some(701), pending: 0 }));
    }

    #[test]
    fn one_at_a_time_a_right_code_on_the_last_attempt_resets() {
        let mut s = Stored::default();
        for _ in 0..2 {
            s.reserve(100);
            s.wrong(100);
        }
        assert!(matches!(s.reserve(100), Reservation::Granted { count: 3, .. }));
        assert_eq!(s.right(100), Ok(()));
        assert_eq!(s.0, None, "a success removes the count");
        assert_eq!(s.right(100), Ok(()), "nothing to remove");
    }

    #[test]
    fn forty_at_once_are_granted_the_limit_and_lock() {
        let mut s = Stored::default();
        let answers: Vec<Reservation> = (0..40).map(|_| s.reserve(100)).collect();
        let granted = answers.iter().filter(|a| matches!(a, Reservation::Granted { .. })).count();
        assert_eq!(granted, 3);
        assert_eq!(answers[3], Reservation::Locked { until: 700, newly: true });
        assert!(answers[4..].iter().all(|a| *a == Reservation::Locked { until: 700, newly: false }));
        // The three in flight report wrong codes: locked once, already.
        assert_eq!((s.wrong(101), s.wrong(101), s.wrong(101)), (None, None, None));
        assert_eq!(s.failures().unwrap().locked_until, Some(700));
    }

    #[test]
    fn a_right_code_after_the_lock_does_not_lift_it() {
        let mut s = Stored::default();
        for _ in 0..3 {
            s.reserve(100);
        }
        assert_eq!(s.wrong(100), Some(700));
        assert_eq!(s.right(100), Err(700), "locked meanwhile: the success does not count");
        assert_eq!(s.failures().unwrap().locked_until, Some(700));
    }

    #[test]
    fn a_right_code_in_a_burst_keeps_the_others_counted() {
        let mut s = Stored::default();
        // Two wrong guesses and one right code in flight together.
        s.reserve(100);
        s.reserve(100);
        s.reserve(100);
        assert_eq!(s.right(100), Ok(()));
        assert_eq!(s.failures(), Some(Failures { count: 2, last: 100, locked_until: None, pending: 2 }));
        assert_eq!((s.wrong(100), s.wrong(100)), (None, None));
        // One more attempt is left, not three.
        assert!(matches!(s.reserve(101), Reservation::Granted { count: 3, .. }));
        assert_eq!(s.reserve(101), Reservation::Locked { until: 701, newly: true });
    }

    #[test]
    fn pending_attempts_of_dead_requests_do_not_outlive_a_success() {
        let f = Failures { count: 2, last: 100, locked_until: None, pending: 2 };
        assert_eq!(after_right_code(Some(&f.encode()), 100 + STALE_PENDING_SECS + 1), Ok(Update::Remove));
        assert_eq!(
            after_right_code(Some(&f.encode()), 100 + STALE_PENDING_SECS),
            Ok(Update::Write(Failures { count: 1, last: 100, locked_until: None, pending: 1 }))
        );
    }

    #[test]
    fn a_reset_meanwhile_forgives_a_late_wrong_code() {
        assert_eq!(after_wrong_code(None, 100, LIMITS), (Update::Keep, None));
    }

    #[test]
    fn without_auto_unlock_only_an_administrator_unlocks() {
        let limits = Limits { max_attempts: 1, auto_unlock: None };
        let (update, answer) = reserve(None, 100, limits);
        assert!(matches!(answer, Reservation::Granted { count: 1, .. }));
        let Update::Write(f) = update else { panic!("nothing written") };
        let (update, locked) = after_wrong_code(Some(&f.encode()), 100, limits);
        assert_eq!(locked, Some(LOCKED_UNTIL_UNLOCKED));
        let Update::Write(f) = update else { panic!("nothing written") };
        assert_eq!(
            reserve(Some(&f.encode()), u64::MAX - 1, limits).1,
            Reservation::Locked { until: LOCKED_UNTIL_UNLOCKED, newly: false }
        );
    }

    #[test]
    fn an_expired_lock_starts_over() {
        let locked = Failures { count: 5, last: 100, locked_until: Some(200), pending: 1 };
        let (update, answer) = reserve(Some(&locked.encode()), 300, LIMITS);
        assert_eq!(answer, Reservation::Granted { count: 1, ended_lock: true });
        assert_eq!(update, Update::Write(Failures { count: 1, last: 300, locked_until: None, pending: 1 }));
    }

    #[test]
    fn an_unreadable_value_refuses_every_attempt() {
        let (update, answer) = reserve(Some("{broken"), 100, LIMITS);
        assert_eq!((update, answer), (Update::Keep, Reservation::Locked { until: u64::MAX, newly: false }));
        assert_eq!(after_right_code(Some("{broken"), 100), Err(u64::MAX));
    }

    #[test]
    fn attempts_left_for_the_page() {
        assert_eq!(attempts_left(1, 3), 2);
        assert_eq!(attempts_left(3, 3), 0);
        assert_eq!(attempts_left(9, 3), 0);
    }

    #[test]
    fn the_end_of_an_attempt_is_a_compare_and_swap() {
        let old = Failures { count: 2, last: 100, locked_until: None, pending: 2 }.encode();
        assert!(failure_changes("f", None, Update::Keep).is_empty());
        assert_eq!(
            failure_changes("f", Some(&old), Update::Remove),
            vec![Change::Delete("f".into(), vec![old.clone()])]
        );
        let next = Failures { count: 1, last: 100, locked_until: None, pending: 1 };
        assert_eq!(
            failure_changes("f", Some(&old), Update::Write(next)),
            vec![Change::Delete("f".into(), vec![old.clone()]), Change::Add("f".into(), vec![next.encode()])]
        );
    }

    mod against_a_directory {
        use super::super::*;
        use crate::store::codec::Bound;
        use crate::store::memory::MemoryDirectory;
        use crate::testing;

        const NOW: u64 = 1_900_000_000;

        fn alice() -> MemoryDirectory {
            MemoryDirectory::default().with_user("alice", &[])
        }

        fn failures(directory: &MemoryDirectory) -> Option<Failures> {
            directory.values("alice", "twoFactorFailures").first().and_then(|v| Failures::decode(v))
        }

        fn completion() -> Completion {
            Completion { bound: Bound::Anywhere, issued: NOW, expires: NOW + 3600, method: "totp".into() }
        }

        fn granted(reservation: &Result<Reservation, StoreError>) -> bool {
            matches!(reservation, Ok(Reservation::Granted { .. }))
        }

        #[test]
        fn forty_guesses_at_once_check_at_most_the_attempts_allowed() {
            let settings = testing::settings(&["TwoFactorMaxAttempts 5"]);
            let directory = alice();
            let outcomes: Vec<Result<Reservation, StoreError>> = std::thread::scope(|scope| {
                let runs: Vec<_> = (0..40)
                    .map(|_| {
                        scope.spawn(|| {
                            let reservation = reserve_attempt(&directory, &settings, "alice", NOW);
                            if granted(&reservation) {
                                // Every guess is wrong.
                                record_wrong_code(&directory, &settings, "alice", NOW).unwrap();
                            }
                            reservation
                        })
                    })
                    .collect();
                runs.into_iter().map(|run| run.join().unwrap()).collect()
            });
            let checked = outcomes.iter().filter(|o| granted(o)).count();
            assert!((1..=5).contains(&checked), "{checked} codes checked: {outcomes:?}");
            assert!(
                outcomes
                    .iter()
                    .all(|o| granted(o) || matches!(o, Ok(Reservation::Locked { .. }) | Err(StoreError::Conflict))),
                "{outcomes:?}"
            );
            assert!(failures(&directory).unwrap().is_locked(NOW), "the account ends locked");
            let after = reserve_attempt(&directory, &settings, "alice", NOW + 1).unwrap();
            assert!(matches!(after, Reservation::Locked { newly: false, .. }), "{after:?}");
        }

        #[test]
        fn the_last_wrong_code_locks_and_the_lock_runs_out() {
            let settings = testing::settings(&["TwoFactorMaxAttempts 2", "TwoFactorAutoUnlock 10m"]);
            let directory = alice();
            for attempt in 1..=2 {
                let reservation = reserve_attempt(&directory, &settings, "alice", NOW).unwrap();
                assert_eq!(reservation, Reservation::Granted { count: attempt, ended_lock: false });
                let locked = record_wrong_code(&directory, &settings, "alice", NOW).unwrap();
                assert_eq!(locked.is_some(), attempt == 2, "attempt {attempt}");
            }
            let refused = reserve_attempt(&directory, &settings, "alice", NOW + 599).unwrap();
            assert_eq!(refused, Reservation::Locked { until: NOW + 600, newly: false });
            let fresh = reserve_attempt(&directory, &settings, "alice", NOW + 600).unwrap();
            assert_eq!(fresh, Reservation::Granted { count: 1, ended_lock: true });
        }

        #[test]
        fn a_success_is_one_write_that_ends_the_count() {
            let settings = testing::settings(&[]);
            let directory = alice();
            reserve_attempt(&directory, &settings, "alice", NOW).unwrap();
            record_wrong_code(&directory, &settings, "alice", NOW).unwrap();
            reserve_attempt(&directory, &settings, "alice", NOW).unwrap();
            let writes = directory.writes();
            let recorded = record_right_code_and_completion(&directory, &settings, "alice", &completion(), NOW);
            assert_eq!(recorded, Ok(Ok(())));
            assert_eq!(directory.writes(), writes + 1);
            assert_eq!(failures(&directory), None, "the count starts again");
            assert_eq!(directory.values("alice", "twoFactorCompletion"), [completion().encode()]);
        }

        #[test]
        fn no_success_once_the_account_locked_meanwhile() {
            let settings = testing::settings(&[]);
            let directory = alice();
            reserve_attempt(&directory, &settings, "alice", NOW).unwrap();
            // A parallel request used up the attempts and set the lock.
            let lock = Failures { count: 5, last: NOW, locked_until: Some(NOW + 1800), pending: 0 };
            directory.replace("alice", "twoFactorFailures", &[&lock.encode()]);
            let recorded = record_right_code_and_completion(&directory, &settings, "alice", &completion(), NOW);
            assert_eq!(recorded, Ok(Err(NOW + 1800)));
            assert!(directory.values("alice", "twoFactorCompletion").is_empty());
            assert_eq!(record_right_code(&directory, &settings, "alice", NOW), Ok(Err(NOW + 1800)));
        }

        #[test]
        fn an_unreadable_count_locks_for_good() {
            let settings = testing::settings(&[]);
            let directory = alice();
            directory.replace("alice", "twoFactorFailures", &["{not json"]);
            let refused = reserve_attempt(&directory, &settings, "alice", NOW).unwrap();
            assert_eq!(refused, Reservation::Locked { until: u64::MAX, newly: false });
        }

        #[test]
        fn a_directory_that_is_down_checks_nothing() {
            let settings = testing::settings(&[]);
            let directory = alice();
            directory.set_down(true);
            assert!(matches!(reserve_attempt(&directory, &settings, "alice", NOW), Err(StoreError::Unavailable(_))));
        }
    }
}
