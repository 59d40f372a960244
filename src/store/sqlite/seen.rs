//! `SeenIds`: the partner delivery ids the store may hold, so that a new id (nearly every
//! delivery) is known to be new without a read of the store. Only a store written by one
//! process can keep it: every id reaches the table through this process.
//!
//! A Bloom filter per generation: an id that was remembered is always found; an id that was not
//! is found by mistake about once in 2,000 lookups while a generation holds 200,000 ids (then
//! the store is read, as without the filter). A generation is dropped once every id in it is
//! older than what the store prunes, so the filter forgets with the store, and never holds
//! more than two generations (1 MiB).

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

/// Bits per generation (a power of two): 512 KiB.
const BITS: usize = 1 << 22;
/// Bits set per id.
const HASHES: u64 = 5;

struct Generation {
    bits: Vec<u64>,
    /// The creation time (unix seconds) of the newest id inserted.
    newest: i64,
}

impl Generation {
    fn new() -> Self {
        Self {
            bits: vec![0; BITS / 64],
            newest: i64::MIN,
        }
    }

    fn insert(&mut self, hash: u64, at: i64) {
        for bit in bits_of(hash) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
        self.newest = self.newest.max(at);
    }

    fn may_hold(&self, hash: u64) -> bool {
        bits_of(hash).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// The filter's bits for one id: double hashing of the two halves of one 64-bit hash.
fn bits_of(hash: u64) -> impl Iterator<Item = usize> {
    let (low, high) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..HASHES).map(move |i| (low.wrapping_add(i.wrapping_mul(high)) as usize) & (BITS - 1))
}

struct Generations {
    current: Generation,
    previous: Option<Generation>,
}

pub struct SeenIds {
    generations: Mutex<Generations>,
    hasher: RandomState,
}

impl SeenIds {
    pub fn new() -> Self {
        Self {
            generations: Mutex::new(Generations {
                current: Generation::new(),
                previous: None,
            }),
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, route: &str, id: &str) -> u64 {
        self.hasher.hash_one((route, id))
    }

    fn generations(&self) -> MutexGuard<'_, Generations> {
        // Bits only ever get set: a panicking holder cannot leave them wrong.
        self.generations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `id` of `route` is (or is about to be) in the store, created at `at`.
    pub fn insert(&self, route: &str, id: &str, at: i64) {
        let hash = self.hash(route, id);
        self.generations().current.insert(hash, at);
    }

    /// False: the store does not hold this id. True: it may.
    pub fn may_hold(&self, route: &str, id: &str) -> bool {
        let hash = self.hash(route, id);
        let g = self.generations();
        g.current.may_hold(hash) || g.previous.as_ref().is_some_and(|p| p.may_hold(hash))
    }

    /// The store forgets ids created before `before`: once every id of the older generation
    /// is among them, it goes, and the current one becomes the older.
    pub fn expire(&self, before: i64) {
        let mut g = self.generations();
        if g.previous.as_ref().is_none_or(|p| p.newest < before) {
            let current = std::mem::replace(&mut g.current, Generation::new());
            g.previous = Some(current);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SeenIds;

    #[test]
    fn every_inserted_id_is_found_and_few_others_are() {
        let seen = SeenIds::new();
        for i in 0..200_000 {
            seen.insert("github", &format!("delivery-{i}"), 1_000);
        }
        assert!((0..200_000).all(|i| seen.may_hold("github", &format!("delivery-{i}"))));
        let mistaken = (0..100_000)
            .filter(|i| seen.may_hold("github", &format!("other-{i}")))
            .count();
        assert!(
            mistaken < 200,
            "{mistaken} of 100,000 new ids taken for seen"
        );
        assert!(
            !seen.may_hold("stripe", "delivery-1") || !seen.may_hold("stripe", "delivery-2"),
            "the route is part of the key"
        );
    }

    #[test]
    fn ids_are_kept_until_the_store_forgets_them() {
        let seen = SeenIds::new();
        seen.insert("r", "old", 100);
        seen.expire(50); // the first prune: the current generation becomes the older one
        seen.insert("r", "new", 200);
        seen.expire(100); // "old" (created at 100) is not before 100: kept
        assert!(seen.may_hold("r", "old") && seen.may_hold("r", "new"));
        seen.expire(101); // now it is: its generation goes, "new" stays
        assert!(!seen.may_hold("r", "old"));
        assert!(seen.may_hold("r", "new"));
        seen.expire(150); // "new" (200) is kept in the older generation
        assert!(seen.may_hold("r", "new"));
        seen.expire(201);
        assert!(!seen.may_hold("r", "new"));
    }
}
