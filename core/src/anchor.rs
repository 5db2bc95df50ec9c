//! What this server remembers of the two stored counters where putting an
//! older genuine value back would pay: a user's failure count (a value from
//! before the last wrong codes gives more guesses) and her last TOTP step
//! (an older one lets a used code in again).
//!
//! A MAC stops forged values, not old ones: whoever can write the entry can
//! save a value and restore it later, or delete it. So every failures value
//! carries a generation that only grows, every last step is its own, and
//! this table keeps the highest of each seen per user, in memory shared by
//! every child of the server (made before the fork, like the metrics). A
//! value below the mark, or missing once a mark exists, was put back or
//! deleted: the failure count is then a lock, the step the one remembered.
//!
//! The table is a fixed array of `AtomicU64` (shared memory in the module, a
//! `Vec` in tests and in `twofactorctl`): a lock word, an operation counter
//! for least-recently-used eviction, then buckets of (tag, mark, last use),
//! probed linearly. Its lock is a spin lock with a deadline: a process that
//! dies holding it (killed between two stores) is taken over after
//! `STALE_LOCK_SECS`, and a caller that cannot get it in time goes on
//! without the table (it only ever adds refusals).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::keys::Keys;

/// What a mark is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// The generation of the failures value.
    Failures,
    /// The last accepted TOTP step, plus one (0 is "none").
    TotpStep,
}

impl Counter {
    fn label(self) -> &'static str {
        match self {
            Counter::Failures => "anchor-failures",
            Counter::TotpStep => "anchor-totp-step",
        }
    }
}

/// A user's counter in the table: a keyed hash, never the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u64);

impl Key {
    pub fn of(keys: &Keys, counter: Counter, user: &str) -> Key {
        let hash = keys.hash(counter.label(), user.to_ascii_lowercase().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(hash.get(..8).unwrap_or(&[1; 8]));
        // 0 marks an empty bucket.
        Key(u64::from_le_bytes(first).max(1))
    }
}

/// Where marks are kept.
pub trait Anchor: Sync {
    /// The highest mark seen for `key` (0: none).
    fn get(&self, key: Key) -> u64;
    /// Raises `key`'s mark to at least `mark`.
    fn raise(&self, key: Key, mark: u64);
}

/// No memory at all: what a process that serves no requests uses.
pub struct Forgetful;

impl Anchor for Forgetful {
    fn get(&self, _key: Key) -> u64 {
        0
    }
    fn raise(&self, _key: Key, _mark: u64) {}
}

/// Words before the first bucket: the lock, the operation counter.
const HEADER: usize = 2;
const BUCKET: usize = 3;
/// Buckets looked at for one key: a full run evicts its least recently used.
const PROBE: usize = 16;
/// A lock held this long belongs to a process that died holding it.
const STALE_LOCK_SECS: u64 = 2;
/// How long a caller waits for the lock before going on without the table.
const LOCK_WAIT: Duration = Duration::from_millis(50);

/// Words needed for `buckets` buckets.
pub const fn words_for(buckets: usize) -> usize {
    HEADER + buckets * BUCKET
}

/// The table over `words` (zeroed when new; `words_for(n)` long).
pub struct Table<'a> {
    words: &'a [AtomicU64],
}

impl<'a> Table<'a> {
    /// `None` if `words` holds no bucket.
    pub fn new(words: &'a [AtomicU64]) -> Option<Table<'a>> {
        (words.len() >= words_for(1)).then_some(Table { words })
    }

    fn buckets(&self) -> usize {
        (self.words.len() - HEADER) / BUCKET
    }

    fn word(&self, bucket: usize, field: usize) -> &AtomicU64 {
        &self.words[HEADER + bucket * BUCKET + field]
    }

    /// Runs `f` under the table's lock; `None` when it could not be had in time.
    fn locked<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let lock = &self.words[0];
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let now = unix_secs();
            let mine = (u64::from(std::process::id()) << 32) | (now & 0xffff_ffff);
            let held = lock.load(Ordering::Acquire);
            let held_for = (now & 0xffff_ffff).wrapping_sub(held & 0xffff_ffff) & 0xffff_ffff;
            let stale = held != 0 && held_for > STALE_LOCK_SECS;
            if (held == 0 || stale) && lock.compare_exchange(held, mine, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                let result = f();
                // Only ours to release: if it was taken over meanwhile, leave it.
                let _ = lock.compare_exchange(mine, 0, Ordering::Release, Ordering::Relaxed);
                return Some(result);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// The bucket holding `key`, if any, among its probe run.
    fn find(&self, key: Key) -> Option<usize> {
        let n = self.buckets();
        let start = (key.0 as usize) % n;
        (0..PROBE.min(n)).map(|i| (start + i) % n).find(|&b| self.word(b, 0).load(Ordering::Relaxed) == key.0)
    }

    fn touch(&self, bucket: usize) {
        let tick = self.words[1].fetch_add(1, Ordering::Relaxed) + 1;
        self.word(bucket, 2).store(tick, Ordering::Relaxed);
    }
}

impl Anchor for Table<'_> {
    fn get(&self, key: Key) -> u64 {
        self.locked(|| {
            self.find(key).map_or(0, |b| {
                self.touch(b);
                self.word(b, 1).load(Ordering::Relaxed)
            })
        })
        .unwrap_or(0)
    }

    fn raise(&self, key: Key, mark: u64) {
        if mark == 0 {
            return;
        }
        self.locked(|| {
            let bucket = match self.find(key) {
                Some(b) => b,
                None => {
                    // An empty bucket of the run, else its least recently used.
                    let n = self.buckets();
                    let start = (key.0 as usize) % n;
                    let run = (0..PROBE.min(n)).map(|i| (start + i) % n);
                    let b = run
                        .min_by_key(|&b| match self.word(b, 0).load(Ordering::Relaxed) {
                            0 => 0,
                            _ => self.word(b, 2).load(Ordering::Relaxed).max(1),
                        })
                        .unwrap_or(start);
                    self.word(b, 0).store(key.0, Ordering::Relaxed);
                    self.word(b, 1).store(0, Ordering::Relaxed);
                    b
                }
            };
            self.word(bucket, 1).fetch_max(mark, Ordering::Relaxed);
            self.touch(bucket);
        });
    }
}

/// A table in this process's memory (tests, `twofactorctl`).
pub struct Local {
    words: Vec<AtomicU64>,
}

impl Local {
    pub fn new(buckets: usize) -> Local {
        Local { words: (0..words_for(buckets.max(1))).map(|_| AtomicU64::new(0)).collect() }
    }

    fn table(&self) -> Table<'_> {
        Table { words: &self.words }
    }
}

impl Anchor for Local {
    fn get(&self, key: Key) -> u64 {
        self.table().get(key)
    }
    fn raise(&self, key: Key, mark: u64) {
        self.table().raise(key, mark)
    }
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The generation of a failures value written at `now` after one of
/// generation `previous`: above it, and above any written at an earlier
/// second (so that an administrator's write on another machine is newer
/// than what a server saw before it, without a shared counter).
pub fn next_generation(previous: u64, now: u64) -> u64 {
    previous.saturating_add(1).max(now.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn keys() -> Keys {
        Keys::from_files(&[Secret::new(vec![4; 32])]).unwrap()
    }

    #[test]
    fn marks_only_rise_and_are_per_user_and_counter() {
        let k = keys();
        let table = Local::new(64);
        let alice = Key::of(&k, Counter::Failures, "alice");
        assert_eq!(alice, Key::of(&k, Counter::Failures, "ALICE"));
        let alice_step = Key::of(&k, Counter::TotpStep, "alice");
        let bob = Key::of(&k, Counter::Failures, "bob");
        assert_eq!(table.get(alice), 0);
        table.raise(alice, 10);
        table.raise(alice, 7);
        table.raise(alice_step, 3);
        assert_eq!(table.get(alice), 10);
        assert_eq!(table.get(alice_step), 3);
        assert_eq!(table.get(bob), 0);
        table.raise(alice, 12);
        assert_eq!(table.get(alice), 12);
    }

    #[test]
    fn a_full_run_evicts_its_least_recently_used() {
        let k = keys();
        let table = Local::new(PROBE);
        let users: Vec<Key> = (0..PROBE).map(|i| Key::of(&k, Counter::Failures, &format!("u{i}"))).collect();
        for (i, key) in users.iter().enumerate() {
            table.raise(*key, i as u64 + 1);
        }
        for key in &users[1..] {
            assert!(table.get(*key) > 0);
        }
        let newcomer = Key::of(&k, Counter::Failures, "newcomer");
        table.raise(newcomer, 99);
        assert_eq!(table.get(newcomer), 99);
        assert_eq!(table.get(users[0]), 0, "the least recently used went");
        assert!(users[1..].iter().all(|key| table.get(*key) > 0));
    }

    #[test]
    fn many_threads_raising_at_once_keep_the_highest() {
        let k = keys();
        let table = Local::new(256);
        let keys: Vec<Key> = (0..8).map(|i| Key::of(&k, Counter::TotpStep, &format!("u{i}"))).collect();
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let (table, keys) = (&table, &keys);
                scope.spawn(move || {
                    for m in 1..=500u64 {
                        table.raise(keys[(m % 8) as usize], m * 8 + t);
                    }
                });
            }
        });
        for (i, key) in keys.iter().enumerate() {
            let highest = (1..=500u64).filter(|m| m % 8 == i as u64).max().unwrap() * 8 + 7;
            assert_eq!(table.get(*key), highest);
        }
    }

    #[test]
    fn a_lock_left_by_a_dead_holder_is_taken_over() {
        let table = Local::new(4);
        // Held "since" long ago by a process that is gone.
        table.words[0].store((999_999u64 << 32) | (unix_secs().wrapping_sub(60) & 0xffff_ffff), Ordering::Relaxed);
        let key = Key::of(&keys(), Counter::Failures, "alice");
        table.raise(key, 5);
        assert_eq!(table.get(key), 5);
        assert_eq!(table.words[0].load(Ordering::Relaxed), 0, "released");
    }

    #[test]
    fn a_lock_held_now_makes_callers_go_on_without_the_table() {
        let table = Local::new(4);
        let key = Key::of(&keys(), Counter::Failures, "alice");
        table.raise(key, 5);
        table.words[0].store((1u64 << 32) | (unix_secs() & 0xffff_ffff), Ordering::Relaxed);
        assert_eq!(table.get(key), 0, "no answer rather than a wait");
        table.raise(key, 9);
        table.words[0].store(0, Ordering::Relaxed);
        assert_eq!(table.get(key), 5, "nothing written without the lock");
    }

    #[test]
    fn generations_rise_past_the_previous_and_the_clock() {
        assert_eq!(next_generation(0, 1000), 1_024_000);
        assert_eq!(next_generation(1_024_000, 1000), 1_024_001);
        assert_eq!(next_generation(5_000_000, 1000), 5_000_001);
        assert!(next_generation(1_024_001, 1001) > 1_024_001);
    }
}
