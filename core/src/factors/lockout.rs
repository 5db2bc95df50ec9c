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
//!
//! The count is never deleted, only rewritten (a success writes a count of
//! zero), and every value carries a growing generation that this server
//! remembers (`crate::anchor`): a value that does not pass its check, that
//! is older than one seen here, or that is gone once one was seen, counts
//! as a lock only an administrator lifts. So neither deleting the count nor
//! putting an earlier one back buys a guess.

use std::time::Duration;

use crate::anchor::{self, Anchor, Counter, Key};
use crate::completion;
use crate::config::{Role, Settings};
use crate::store::cas::{self, Decision};
use crate::store::codec::{Completion, Failures, LOCKED_UNTIL_UNLOCKED};
use crate::store::signed::Signer;
use crate::store::{schema, Change, Directory, Lookup, StoreError};
use crate::tamper::{self, Why};

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

/// What the stored failures value is, checked against what this server saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// No value, and none seen here.
    Nothing,
    Count(Failures),
    /// Not to be trusted: it counts as a lock only an administrator lifts.
    /// `generation`: the highest known, which the lock written over it exceeds.
    Untrusted {
        why: Why,
        generation: u64,
    },
}

impl Stored {
    /// The entry's values of the failures role, against the server's mark.
    pub fn of(signer: &Signer<'_>, values: &[String], mark: u64) -> Stored {
        match values {
            [] if mark == 0 => Stored::Nothing,
            [] => Stored::Untrusted { why: Why::RolledBack, generation: mark },
            [one] => match Failures::open(signer, one) {
                Some(f) if f.generation < mark => Stored::Untrusted { why: Why::RolledBack, generation: mark },
                Some(f) => Stored::Count(f),
                None => Stored::Untrusted { why: Why::BadMac, generation: mark },
            },
            // Several values where there is one: nothing says which counts.
            _ => Stored::Untrusted { why: Why::Malformed, generation: mark },
        }
    }

    fn generation(&self) -> u64 {
        match self {
            Stored::Nothing => 0,
            Stored::Count(f) => f.generation,
            Stored::Untrusted { generation, .. } => *generation,
        }
    }

    /// The lock that replaces an untrusted value.
    fn lock_over(&self, now: u64) -> Failures {
        Failures {
            count: 0,
            last: now,
            locked_until: Some(LOCKED_UNTIL_UNLOCKED),
            pending: 0,
            generation: anchor::next_generation(self.generation(), now),
        }
    }

    /// Why it was not trusted, for the request's `event=tampered` line.
    fn distrust(&self) -> Option<Why> {
        match self {
            Stored::Untrusted { why, .. } => Some(*why),
            _ => None,
        }
    }
}

/// What to do with the stored failures value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Keep,
    Write(Failures),
}

/// The next value after `stored`, with a generation above it.
fn next(stored: &Stored, now: u64, value: Failures) -> Failures {
    Failures { generation: anchor::next_generation(stored.generation(), now), ..value }
}

/// The reservation decision for the failures value read at `now`.
pub fn reserve(stored: &Stored, now: u64, limits: Limits) -> (Update, Reservation) {
    let current = match stored {
        Stored::Untrusted { .. } => {
            let lock = stored.lock_over(now);
            return (Update::Write(lock), Reservation::Locked { until: LOCKED_UNTIL_UNLOCKED, newly: true });
        }
        Stored::Nothing => None,
        Stored::Count(f) => Some(*f),
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
        let locked = next(stored, now, Failures { locked_until: Some(until), ..previous });
        return (Update::Write(locked), Reservation::Locked { until, newly: true });
    }
    let count = previous.count.saturating_add(1);
    let counted =
        Failures { count, last: now, locked_until: None, pending: previous.pending.saturating_add(1), generation: 0 };
    (Update::Write(next(stored, now, counted)), Reservation::Granted { count, ended_lock })
}

/// After a wrong code whose attempt was reserved: no longer pending, and
/// the lock if the count has reached the limit. Returns the lock's end when
/// this call set it.
pub fn after_wrong_code(stored: &Stored, now: u64, limits: Limits) -> (Update, Option<u64>) {
    match stored {
        Stored::Untrusted { .. } => (Update::Write(stored.lock_over(now)), Some(LOCKED_UNTIL_UNLOCKED)),
        // Reset by a success meanwhile (with no memory of it here), or
        // locked already: the attempt was counted (or forgiven) already.
        Stored::Nothing => (Update::Keep, None),
        Stored::Count(f) if f.locked_until.is_some() => (Update::Keep, None),
        Stored::Count(f) => {
            let settled = next(stored, now, Failures { pending: f.pending.saturating_sub(1), ..*f });
            if f.count >= limits.max_attempts {
                let until = limits.lock_end(now);
                (Update::Write(Failures { locked_until: Some(until), ..settled }), Some(until))
            } else {
                (Update::Write(settled), None)
            }
        }
    }
}

/// After a right code whose attempt was reserved: the count goes (to zero,
/// never deleted), except for other attempts still being checked (a right
/// code in a burst of guesses does not give the burst more tries).
/// `Err(until)` when the account is locked: the success does not count,
/// the lock stays (and is written over an untrusted value).
pub fn after_right_code(stored: &Stored, now: u64) -> (Update, Result<(), u64>) {
    match stored {
        Stored::Untrusted { .. } => (Update::Write(stored.lock_over(now)), Err(LOCKED_UNTIL_UNLOCKED)),
        Stored::Nothing => (Update::Keep, Ok(())),
        Stored::Count(f) if f.is_locked(now) => (Update::Keep, Err(f.locked_until.unwrap_or(LOCKED_UNTIL_UNLOCKED))),
        Stored::Count(f) => {
            let stale = now.saturating_sub(f.last) > STALE_PENDING_SECS;
            let others = if stale { 0 } else { f.pending.saturating_sub(1) };
            let rest = Failures { count: others, last: f.last, locked_until: None, pending: others, generation: 0 };
            (Update::Write(next(stored, now, rest)), Ok(()))
        }
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

/// One user's failure count: where it is stored, how it is signed, and
/// what this server remembers of it.
struct Count<'a> {
    directory: &'a dyn Directory,
    settings: &'a Settings,
    anchor: &'a dyn Anchor,
    user: &'a str,
}

/// A decision made on a value, with what to note once it is written.
struct Decided<T> {
    answer: T,
    written: Option<Failures>,
    seen: u64,
    distrust: Option<Why>,
}

impl Count<'_> {
    fn key(&self) -> Option<Key> {
        Some(Key::of(self.settings.keys.as_ref()?, Counter::Failures, self.user))
    }

    /// Runs `decide` on the stored value in one compare-and-swap; once the
    /// write landed, the server's mark rises and distrust is noted (a stale
    /// read never gets that far: its compare-and-swap fails).
    fn update<T>(&self, mut decide: impl FnMut(&Stored) -> (Update, T)) -> Result<T, StoreError> {
        let (attr, class) = failures_attribute(self.settings);
        let key = self.key();
        let decided = cas::update(self.directory, self.user, attr, class, |entry, _| {
            let Some(signer) = self.settings.signer(&entry.username) else {
                return Decision::Keep(Err(completion::no_key()));
            };
            let mark = key.map_or(0, |k| self.anchor.get(k));
            let stored = Stored::of(&signer, entry.values(attr), mark);
            let (update, answer) = decide(&stored);
            let decided =
                |written| Ok(Decided { answer, written, seen: stored.generation(), distrust: stored.distrust() });
            match update {
                Update::Keep => Decision::Keep(decided(None)),
                Update::Write(value) => Decision::Write(Some(value.seal(&signer)), decided(Some(value))),
            }
        })??;
        self.settle(key, &decided);
        Ok(decided.answer)
    }

    fn settle<T>(&self, key: Option<Key>, decided: &Decided<T>) {
        if let Some(key) = key {
            self.anchor.raise(key, decided.written.map_or(decided.seen, |w| w.generation));
        }
        if let (Some(why), Some(_)) = (decided.distrust, decided.written) {
            tamper::record(Role::Failures, why);
        }
    }
}

/// Reserves one attempt of `user` in the directory (one compare-and-swap;
/// a CAS that gives up is an error, and the code must then not be checked).
pub fn reserve_attempt(
    directory: &dyn Directory,
    settings: &Settings,
    anchor: &dyn Anchor,
    user: &str,
    now: u64,
) -> Result<Reservation, StoreError> {
    let limits = Limits::of(settings);
    Count { directory, settings, anchor, user }.update(|stored| reserve(stored, now, limits))
}

/// Records that a reserved attempt held a wrong code; returns the lock's
/// end when this set the lock.
pub fn record_wrong_code(
    directory: &dyn Directory,
    settings: &Settings,
    anchor: &dyn Anchor,
    user: &str,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    let limits = Limits::of(settings);
    Count { directory, settings, anchor, user }.update(|stored| after_wrong_code(stored, now, limits))
}

/// Records that a reserved attempt held the right code (see
/// `after_right_code`; `Ok(Err(until))`: locked meanwhile, refuse the success).
pub fn record_right_code(
    directory: &dyn Directory,
    settings: &Settings,
    anchor: &dyn Anchor,
    user: &str,
    now: u64,
) -> Result<Result<(), u64>, StoreError> {
    Count { directory, settings, anchor, user }.update(|stored| after_right_code(stored, now))
}

/// Changes of a modify compare-and-swap from the values read to `update`.
fn failure_changes(attr: &str, read: &[String], update: Option<String>) -> Vec<Change> {
    let Some(next) = update else { return Vec::new() };
    let mut changes = Vec::with_capacity(2);
    if !read.is_empty() {
        changes.push(Change::Delete(attr.into(), read.to_vec()));
    }
    changes.push(Change::Add(attr.into(), vec![next]));
    changes
}

/// A reserved attempt held the right code: its end (`after_right_code`)
/// and the completion `new` recorded in one modify, so that a success is
/// one write, not two. `Ok(Err(until))`: locked meanwhile, no completion
/// written, refuse the success.
pub fn record_right_code_and_completion(
    directory: &dyn Directory,
    settings: &Settings,
    anchor: &dyn Anchor,
    user: &str,
    new: &Completion,
    now: u64,
) -> Result<Result<(), u64>, StoreError> {
    let (failures, _) = failures_attribute(settings);
    let completions = settings.attribute(Role::Completion);
    let count = Count { directory, settings, anchor, user };
    let key = count.key();
    for _ in 0..cas::ATTEMPTS {
        let entry = match directory.find_user(user, &[failures, completions, "objectClass"])? {
            Lookup::Found(entry) => entry,
            Lookup::NotFound | Lookup::Ambiguous => {
                return Err(StoreError::Refused("no single entry for this user".into()))
            }
        };
        let signer = settings.signer(&entry.username).ok_or_else(completion::no_key)?;
        let stored = Stored::of(&signer, entry.values(failures), key.map_or(0, |k| anchor.get(k)));
        let (update, answer) = after_right_code(&stored, now);
        let written = match update {
            Update::Keep => None,
            Update::Write(value) => Some(value),
        };
        let mut changes = failure_changes(failures, entry.values(failures), written.map(|w| w.seal(&signer)));
        if answer.is_ok() {
            let class = schema::class_for(completions).filter(|c| !entry.has_object_class(c));
            changes.extend(completion::record_changes(
                &signer,
                completions,
                entry.values(completions),
                new,
                new.issued,
                class,
            ));
        }
        if !changes.is_empty() {
            match directory.modify(&entry.dn, &changes) {
                Ok(()) => {}
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        let decided = Decided { answer, written, seen: stored.generation(), distrust: stored.distrust() };
        count.settle(key, &decided);
        return Ok(decided.answer);
    }
    Err(StoreError::Conflict)
}

/// The value an administrator's unlock or reset writes: no count, no lock,
/// a generation above any seen (never a deletion, which servers that
/// remember the count would take for tampering).
pub fn cleared(previous: u64, now: u64) -> Failures {
    Failures { count: 0, last: now, locked_until: None, pending: 0, generation: anchor::next_generation(previous, now) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_attempts: 3, auto_unlock: Some(Duration::from_secs(600)) };

    /// A stored value as the directory holds it, changed as the CAS would,
    /// with the server's memory of it.
    #[derive(Default)]
    struct Held {
        value: Option<Failures>,
        mark: u64,
    }

    impl Held {
        fn stored(&self) -> Stored {
            match self.value {
                None if self.mark == 0 => Stored::Nothing,
                None => Stored::Untrusted { why: Why::RolledBack, generation: self.mark },
                Some(f) if f.generation < self.mark => {
                    Stored::Untrusted { why: Why::RolledBack, generation: self.mark }
                }
                Some(f) => Stored::Count(f),
            }
        }

        fn apply(&mut self, update: Update) {
            if let Update::Write(f) = update {
                assert!(f.generation > self.value.map_or(0, |v| v.generation), "generations grow");
                self.mark = self.mark.max(f.generation);
                self.value = Some(f);
            }
        }

        fn reserve(&mut self, now: u64) -> Reservation {
            let (update, answer) = reserve(&self.stored(), now, LIMITS);
            self.apply(update);
            answer
        }

        fn wrong(&mut self, now: u64) -> Option<u64> {
            let (update, locked) = after_wrong_code(&self.stored(), now, LIMITS);
            self.apply(update);
            locked
        }

        fn right(&mut self, now: u64) -> Result<(), u64> {
            let (update, answer) = after_right_code(&self.stored(), now);
            self.apply(update);
            answer
        }

        fn failures(&self) -> Option<Failures> {
            self.value
        }
    }

    /// `f` without its generation, to compare the counts.
    fn counts(f: Option<Failures>) -> Option<(u32, u64, Option<u64>, u32)> {
        f.map(|f| (f.count, f.last, f.locked_until, f.pending))
    }

    #[test]
    fn one_at_a_time_the_last_allowed_wrong_code_locks() {
        let mut s = Held::default();
        for n in 1..=2 {
            assert_eq!(s.reserve(100), Reservation::Granted { count: n, ended_lock: false });
            assert_eq!(s.wrong(100), None);
        }
        assert_eq!(s.reserve(100), Reservation::Granted { count: 3, ended_lock: false });
        assert_eq!(s.wrong(101), Some(701));
        assert_eq!(s.reserve(102), Reservation::Locked { until: 701, newly: false });
        assert_eq!(counts(s.failures()), Some((3, 100, Some(701), 0)));
    }

    #[test]
    fn one_at_a_time_a_right_code_on_the_last_attempt_resets() {
        let mut s = Held::default();
        for _ in 0..2 {
            s.reserve(100);
            s.wrong(100);
        }
        assert!(matches!(s.reserve(100), Reservation::Granted { count: 3, .. }));
        assert_eq!(s.right(100), Ok(()));
        assert_eq!(counts(s.failures()), Some((0, 100, None, 0)), "a success writes the count back to zero");
        assert_eq!(s.right(100), Ok(()), "nothing to reset");
    }

    #[test]
    fn forty_at_once_are_granted_the_limit_and_lock() {
        let mut s = Held::default();
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
        let mut s = Held::default();
        for _ in 0..3 {
            s.reserve(100);
        }
        assert_eq!(s.wrong(100), Some(700));
        assert_eq!(s.right(100), Err(700), "locked meanwhile: the success does not count");
        assert_eq!(s.failures().unwrap().locked_until, Some(700));
    }

    #[test]
    fn a_right_code_in_a_burst_keeps_the_others_counted() {
        let mut s = Held::default();
        // Two wrong guesses and one right code in flight together.
        s.reserve(100);
        s.reserve(100);
        s.reserve(100);
        assert_eq!(s.right(100), Ok(()));
        assert_eq!(counts(s.failures()), Some((2, 100, None, 2)));
        assert_eq!((s.wrong(100), s.wrong(100)), (None, None));
        // One more attempt is left, not three.
        assert!(matches!(s.reserve(101), Reservation::Granted { count: 3, .. }));
        assert_eq!(s.reserve(101), Reservation::Locked { until: 701, newly: true });
    }

    #[test]
    fn pending_attempts_of_dead_requests_do_not_outlive_a_success() {
        let f = Stored::Count(Failures { count: 2, last: 100, locked_until: None, pending: 2, generation: 5 });
        let (update, answer) = after_right_code(&f, 100 + STALE_PENDING_SECS + 1);
        assert_eq!(answer, Ok(()));
        assert!(matches!(update, Update::Write(Failures { count: 0, pending: 0, .. })), "{update:?}");
        let (update, _) = after_right_code(&f, 100 + STALE_PENDING_SECS);
        assert!(matches!(update, Update::Write(Failures { count: 1, pending: 1, .. })), "{update:?}");
    }

    #[test]
    fn a_reset_meanwhile_forgives_a_late_wrong_code() {
        assert_eq!(after_wrong_code(&Stored::Nothing, 100, LIMITS), (Update::Keep, None));
        let cleared = Stored::Count(cleared(5, 100));
        assert!(matches!(after_wrong_code(&cleared, 100, LIMITS), (Update::Write(_), None)));
    }

    #[test]
    fn without_auto_unlock_only_an_administrator_unlocks() {
        let limits = Limits { max_attempts: 1, auto_unlock: None };
        let (update, answer) = reserve(&Stored::Nothing, 100, limits);
        assert!(matches!(answer, Reservation::Granted { count: 1, .. }));
        let Update::Write(f) = update else { panic!("nothing written") };
        let (update, locked) = after_wrong_code(&Stored::Count(f), 100, limits);
        assert_eq!(locked, Some(LOCKED_UNTIL_UNLOCKED));
        let Update::Write(f) = update else { panic!("nothing written") };
        assert_eq!(
            reserve(&Stored::Count(f), u64::MAX - 1, limits).1,
            Reservation::Locked { until: LOCKED_UNTIL_UNLOCKED, newly: false }
        );
    }

    #[test]
    fn an_expired_lock_starts_over() {
        let locked = Failures { count: 5, last: 100, locked_until: Some(200), pending: 1, generation: 9 };
        let (update, answer) = reserve(&Stored::Count(locked), 300, LIMITS);
        assert_eq!(answer, Reservation::Granted { count: 1, ended_lock: true });
        let Update::Write(f) = update else { panic!("nothing written") };
        assert_eq!(counts(Some(f)), Some((1, 300, None, 1)));
        assert!(f.generation > 9);
    }

    #[test]
    fn an_untrusted_value_is_replaced_by_a_lock_only_an_administrator_lifts() {
        for why in [Why::BadMac, Why::RolledBack, Why::Malformed] {
            let untrusted = Stored::Untrusted { why, generation: 5000 };
            let (update, answer) = reserve(&untrusted, 100, LIMITS);
            assert_eq!(answer, Reservation::Locked { until: LOCKED_UNTIL_UNLOCKED, newly: true });
            let Update::Write(lock) = update else { panic!("the lock is written") };
            assert_eq!(lock.locked_until, Some(LOCKED_UNTIL_UNLOCKED));
            assert!(lock.generation > 5000, "above what was seen");
            assert_eq!(after_right_code(&untrusted, 100).1, Err(LOCKED_UNTIL_UNLOCKED));
            assert_eq!(after_wrong_code(&untrusted, 100, LIMITS).1, Some(LOCKED_UNTIL_UNLOCKED));
        }
    }

    #[test]
    fn putting_an_earlier_count_back_or_deleting_it_buys_no_guess() {
        let mut s = Held::default();
        s.reserve(100);
        s.wrong(100);
        let saved = s.value;
        for _ in 0..2 {
            s.reserve(100);
            s.wrong(100);
        }
        assert!(s.failures().unwrap().is_locked(100));
        // Someone who can write the entry puts the early count back ...
        s.value = saved;
        assert_eq!(s.reserve(101), Reservation::Locked { until: LOCKED_UNTIL_UNLOCKED, newly: true });
        // ... or deletes it.
        s.value = None;
        assert_eq!(s.reserve(102), Reservation::Locked { until: LOCKED_UNTIL_UNLOCKED, newly: true });
        assert_eq!(s.failures().unwrap().locked_until, Some(LOCKED_UNTIL_UNLOCKED));
        // An administrator's unlock is newer than anything seen.
        s.value = Some(cleared(s.mark, 200));
        assert!(matches!(s.reserve(200), Reservation::Granted { count: 1, .. }));
    }

    #[test]
    fn the_stored_value_is_read_against_the_servers_mark() {
        let keys = crate::testing::keys();
        let alice = Signer::new(&keys, "alice", false);
        let f = Failures { count: 1, last: 100, locked_until: None, pending: 0, generation: 40 };
        assert_eq!(Stored::of(&alice, &[], 0), Stored::Nothing);
        assert_eq!(Stored::of(&alice, &[], 40), Stored::Untrusted { why: Why::RolledBack, generation: 40 });
        assert_eq!(Stored::of(&alice, &[f.seal(&alice)], 40), Stored::Count(f));
        assert_eq!(
            Stored::of(&alice, &[f.seal(&alice)], 41),
            Stored::Untrusted { why: Why::RolledBack, generation: 41 }
        );
        let bobs = f.seal(&Signer::new(&keys, "bob", false));
        assert_eq!(Stored::of(&alice, &[bobs], 0), Stored::Untrusted { why: Why::BadMac, generation: 0 });
        let two = [f.seal(&alice), cleared(40, 100).seal(&alice)];
        assert_eq!(Stored::of(&alice, &two, 0), Stored::Untrusted { why: Why::Malformed, generation: 0 });
        crate::tamper::take();
    }

    #[test]
    fn attempts_left_for_the_page() {
        assert_eq!(attempts_left(1, 3), 2);
        assert_eq!(attempts_left(3, 3), 0);
        assert_eq!(attempts_left(9, 3), 0);
    }

    #[test]
    fn the_end_of_an_attempt_is_a_compare_and_swap() {
        let old = vec!["old".to_string()];
        assert!(failure_changes("f", &old, None).is_empty());
        assert_eq!(
            failure_changes("f", &old, Some("new".into())),
            vec![Change::Delete("f".into(), old.clone()), Change::Add("f".into(), vec!["new".into()])]
        );
        assert_eq!(failure_changes("f", &[], Some("new".into())), vec![Change::Add("f".into(), vec!["new".into()])]);
    }

    mod against_a_directory {
        use super::super::*;
        use crate::anchor::Local;
        use crate::store::codec::Bound;
        use crate::store::memory::MemoryDirectory;
        use crate::testing;

        const NOW: u64 = 1_900_000_000;

        fn alice() -> MemoryDirectory {
            MemoryDirectory::default().with_user("alice", &[])
        }

        fn failures(directory: &MemoryDirectory) -> Option<Failures> {
            let keys = testing::keys();
            let alice = Signer::new(&keys, "alice", false);
            directory.values("alice", "twoFactorFailures").first().and_then(|v| Failures::open(&alice, v))
        }

        fn sealed(value: Failures) -> String {
            value.seal(&Signer::new(&testing::keys(), "alice", false))
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
            let anchor = Local::new(64);
            let outcomes: Vec<Result<Reservation, StoreError>> = std::thread::scope(|scope| {
                let runs: Vec<_> = (0..40)
                    .map(|_| {
                        scope.spawn(|| {
                            let reservation = reserve_attempt(&directory, &settings, &anchor, "alice", NOW);
                            if granted(&reservation) {
                                // Every guess is wrong.
                                record_wrong_code(&directory, &settings, &anchor, "alice", NOW).unwrap();
                            }
                            // A read that a concurrent write outdated is never taken for tampering.
                            assert_eq!(crate::tamper::take(), [], "a stale read was noted");
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
            let timed = Some(NOW + 1800);
            assert_eq!(
                failures(&directory).unwrap().locked_until,
                timed,
                "the lock of the rules, not one for tampering"
            );
            let after = reserve_attempt(&directory, &settings, &anchor, "alice", NOW + 1).unwrap();
            assert!(matches!(after, Reservation::Locked { newly: false, .. }), "{after:?}");
        }

        #[test]
        fn the_last_wrong_code_locks_and_the_lock_runs_out() {
            let settings = testing::settings(&["TwoFactorMaxAttempts 2", "TwoFactorAutoUnlock 10m"]);
            let directory = alice();
            let anchor = Local::new(64);
            for attempt in 1..=2 {
                let reservation = reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
                assert_eq!(reservation, Reservation::Granted { count: attempt, ended_lock: false });
                let locked = record_wrong_code(&directory, &settings, &anchor, "alice", NOW).unwrap();
                assert_eq!(locked.is_some(), attempt == 2, "attempt {attempt}");
            }
            let refused = reserve_attempt(&directory, &settings, &anchor, "alice", NOW + 599).unwrap();
            assert_eq!(refused, Reservation::Locked { until: NOW + 600, newly: false });
            let fresh = reserve_attempt(&directory, &settings, &anchor, "alice", NOW + 600).unwrap();
            assert_eq!(fresh, Reservation::Granted { count: 1, ended_lock: true });
        }

        #[test]
        fn a_success_is_one_write_that_ends_the_count() {
            let settings = testing::settings(&[]);
            let directory = alice();
            let anchor = Local::new(64);
            reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
            record_wrong_code(&directory, &settings, &anchor, "alice", NOW).unwrap();
            reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
            let writes = directory.writes();
            let recorded =
                record_right_code_and_completion(&directory, &settings, &anchor, "alice", &completion(), NOW);
            assert_eq!(recorded, Ok(Ok(())));
            assert_eq!(directory.writes(), writes + 1);
            assert_eq!(failures(&directory).map(|f| f.count), Some(0), "the count starts again");
            let keys = testing::keys();
            assert_eq!(
                directory.values("alice", "twoFactorCompletion"),
                [completion().seal(&Signer::new(&keys, "alice", false))]
            );
        }

        #[test]
        fn no_success_once_the_account_locked_meanwhile() {
            let settings = testing::settings(&[]);
            let directory = alice();
            let anchor = Local::new(64);
            reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
            // A parallel request used up the attempts and set the lock.
            let lock =
                Failures { count: 5, last: NOW, locked_until: Some(NOW + 1800), pending: 0, generation: u64::MAX };
            directory.replace("alice", "twoFactorFailures", &[&sealed(lock)]);
            let recorded =
                record_right_code_and_completion(&directory, &settings, &anchor, "alice", &completion(), NOW);
            assert_eq!(recorded, Ok(Err(NOW + 1800)));
            assert!(directory.values("alice", "twoFactorCompletion").is_empty());
            assert_eq!(record_right_code(&directory, &settings, &anchor, "alice", NOW), Ok(Err(NOW + 1800)));
        }

        #[test]
        fn an_unreadable_count_locks_for_good() {
            let settings = testing::settings(&[]);
            let directory = alice();
            let anchor = Local::new(64);
            directory.replace("alice", "twoFactorFailures", &["{not json"]);
            crate::tamper::take();
            let refused = reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
            assert_eq!(refused, Reservation::Locked { until: u64::MAX, newly: true });
            assert_eq!(failures(&directory).and_then(|f| f.locked_until), Some(u64::MAX), "a genuine lock replaces it");
            assert_eq!(crate::tamper::take(), [(Role::Failures, Why::Unsigned)]);
            let again = reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
            assert_eq!(again, Reservation::Locked { until: u64::MAX, newly: false });
        }

        #[test]
        fn a_count_put_back_or_deleted_behind_the_servers_back_is_a_lock() {
            let settings = testing::settings(&["TwoFactorMaxAttempts 3"]);
            let directory = alice();
            let anchor = Local::new(64);
            reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
            record_wrong_code(&directory, &settings, &anchor, "alice", NOW).unwrap();
            let early = directory.values("alice", "twoFactorFailures");
            for _ in 0..2 {
                reserve_attempt(&directory, &settings, &anchor, "alice", NOW).unwrap();
                record_wrong_code(&directory, &settings, &anchor, "alice", NOW).unwrap();
            }
            let early: Vec<&str> = early.iter().map(String::as_str).collect();
            directory.replace("alice", "twoFactorFailures", &early);
            crate::tamper::take();
            let refused = reserve_attempt(&directory, &settings, &anchor, "alice", NOW + 1).unwrap();
            assert_eq!(refused, Reservation::Locked { until: u64::MAX, newly: true });
            assert_eq!(crate::tamper::take(), [(Role::Failures, Why::RolledBack)]);
            directory.replace("alice", "twoFactorFailures", &[]);
            let refused = reserve_attempt(&directory, &settings, &anchor, "alice", NOW + 2).unwrap();
            assert_eq!(refused, Reservation::Locked { until: u64::MAX, newly: true });
            // Another server, which never saw the count, is not fooled by its lock.
            let elsewhere = Local::new(64);
            let refused = reserve_attempt(&directory, &settings, &elsewhere, "alice", NOW + 3).unwrap();
            assert_eq!(refused, Reservation::Locked { until: u64::MAX, newly: false });
        }

        #[test]
        fn a_directory_that_is_down_checks_nothing() {
            let settings = testing::settings(&[]);
            let directory = alice();
            let anchor = Local::new(64);
            directory.set_down(true);
            assert!(matches!(
                reserve_attempt(&directory, &settings, &anchor, "alice", NOW),
                Err(StoreError::Unavailable(_))
            ));
        }
    }
}
