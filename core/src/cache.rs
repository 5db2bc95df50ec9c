//! Per-process cache of positive completion look-ups.
//!
//! Only "allow" is cached, and briefly: a completion written by any server
//! is honoured at once (a miss asks the directory), and a revoked one stops
//! within one TTL. Never a negative entry (mod_authnz_ldap's negative cache
//! causes redirect loops after a change).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What a cache hit gives back.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The directory's spelling of the username.
    pub canonical: Arc<str>,
    /// Unix seconds the completion was issued (for per-scope max ages).
    pub issued: u64,
    /// How it was made (for `TwoFactorRequireMethod`).
    pub method: Option<crate::config::Method>,
}

struct Entry {
    hit: Hit,
    until: Instant,
}

/// FNV-1a: the keys are short, and an entry exists only for a completion
/// the directory confirmed, so no attacker chooses what is inserted; a
/// keyed hash (SipHash) would cost a sizeable part of a cached request.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub struct CompletionCache {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<Vec<u8>, Entry, BuildHasherDefault<Fnv>>>,
}

impl CompletionCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        CompletionCache { ttl, capacity, entries: RwLock::new(HashMap::default()) }
    }

    pub fn get(&self, key: &[u8], now: Instant) -> Option<Hit> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|e| now < e.until).map(|e| e.hit.clone())
    }

    /// Remembers an allow for `min(ttl, time left before the completion expires)`.
    pub fn put(&self, key: Vec<u8>, hit: Hit, expires_in: Duration, now: Instant) {
        let life = self.ttl.min(expires_in);
        if life.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(key, Entry { hit, until: now + life });
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit() -> Hit {
        Hit { canonical: Arc::from("alice"), issued: 1, method: None }
    }

    #[test]
    fn entries_live_for_the_shorter_of_ttl_and_expiry() {
        let cache = CompletionCache::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        cache.put(vec![1; 32], hit(), Duration::from_secs(3600), t0);
        cache.put(vec![2; 32], hit(), Duration::from_secs(5), t0);
        assert!(cache.get(&[1; 32], t0 + Duration::from_secs(29)).is_some());
        assert!(cache.get(&[1; 32], t0 + Duration::from_secs(30)).is_none());
        assert!(cache.get(&[2; 32], t0 + Duration::from_secs(4)).is_some());
        assert!(cache.get(&[2; 32], t0 + Duration::from_secs(5)).is_none());
        assert!(cache.get(&[3; 32], t0).is_none());
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let cache = CompletionCache::new(Duration::ZERO, 10);
        let t0 = Instant::now();
        cache.put(vec![1; 32], hit(), Duration::from_secs(3600), t0);
        assert!(cache.get(&[1; 32], t0).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = CompletionCache::new(Duration::from_secs(30), 3);
        let t0 = Instant::now();
        for i in 0..10u8 {
            cache.put(vec![i; 32], hit(), Duration::from_secs(3600), t0);
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(&[9; 32], t0).is_some(), "the newest entry is kept");
    }
}
