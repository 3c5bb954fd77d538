//! Host tests of the kernel module's open-addressing index
//! (`kmod/state/probe.rs`, compiled here verbatim): random inserts and
//! deletes checked against a reference map, including clusters that wrap
//! around the end of the slot array and deletes inside clusters.

#[path = "../../kmod/state/probe.rs"]
mod probe;

use probe::Slot;
use std::collections::HashMap;

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// An index as the kernel uses it: keys live in `keys`, slots name them.
struct Index {
    slots: Vec<Slot>,
    keys: Vec<Option<u64>>,
    len: usize,
    /// Few distinct hashes force long clusters and collisions.
    hash_bits: u32,
}

impl Index {
    fn hash(&self, k: u64) -> u32 {
        probe::hash_bytes(7, &k.to_le_bytes()) & (u32::MAX >> (32 - self.hash_bits))
    }
    fn find(&self, k: u64) -> Option<usize> {
        probe::find(&self.slots, self.hash(k), |e| {
            self.keys[e as usize] == Some(k)
        })
    }
    fn insert(&mut self, k: u64) {
        if probe::needs_grow(self.len, self.slots.len()) {
            let mut s = vec![Slot::default(); probe::capacity_for(self.len + 1)];
            for x in self.slots.iter().filter(|x| x.idx1 != 0) {
                assert!(probe::place(&mut s, *x));
            }
            self.slots = s;
        }
        self.keys.push(Some(k));
        let slot = Slot::new(self.hash(k), (self.keys.len() - 1) as u32).unwrap();
        assert!(probe::place(&mut self.slots, slot));
        self.len += 1;
    }
    fn remove(&mut self, k: u64) -> bool {
        match self.find(k) {
            Some(pos) => {
                let e = self.slots[pos].entry().unwrap();
                self.keys[e as usize] = None;
                probe::remove_at(&mut self.slots, pos);
                self.len -= 1;
                true
            }
            None => false,
        }
    }
}

fn run(seed: u64, hash_bits: u32, ops: usize, keyspace: u64) {
    let mut rng = Rng(seed);
    let mut idx = Index {
        slots: Vec::new(),
        keys: Vec::new(),
        len: 0,
        hash_bits,
    };
    let mut reference: HashMap<u64, ()> = HashMap::new();
    for _ in 0..ops {
        let k = rng.next() % keyspace;
        if rng.next().is_multiple_of(3) {
            assert_eq!(idx.remove(k), reference.remove(&k).is_some(), "remove {k}");
        } else if let std::collections::hash_map::Entry::Vacant(e) = reference.entry(k) {
            idx.insert(k);
            e.insert(());
        }
        // Spot-check membership of a random key each step.
        let q = rng.next() % keyspace;
        assert_eq!(
            idx.find(q).is_some(),
            reference.contains_key(&q),
            "find {q}"
        );
    }
    // Full check: every reference key is found, nothing else is.
    for k in 0..keyspace {
        assert_eq!(
            idx.find(k).is_some(),
            reference.contains_key(&k),
            "final {k}"
        );
    }
    assert_eq!(idx.len, reference.len());
    assert_eq!(
        idx.slots.iter().filter(|s| s.idx1 != 0).count(),
        reference.len()
    );
}

#[test]
fn random_ops_match_a_reference_map() {
    run(1, 32, 20_000, 5_000);
}

#[test]
fn heavy_collisions_and_wraparound_clusters() {
    // 3 hash bits: at most 8 home slots, so clusters span and wrap the array.
    run(2, 3, 20_000, 300);
    run(3, 1, 5_000, 60);
}

#[test]
fn deleting_in_the_middle_of_a_cluster_keeps_later_members_reachable() {
    // Four keys with the same home slot, the second one deleted.
    let mut slots = vec![Slot::default(); 16];
    for i in 0..4 {
        assert!(probe::place(&mut slots, Slot::new(15, i).unwrap()));
    }
    // They occupy 15, 0, 1, 2 (wrapping).
    let pos1 = probe::find(&slots, 15, |e| e == 1).unwrap();
    probe::remove_at(&mut slots, pos1);
    for i in [0, 2, 3] {
        assert!(probe::find(&slots, 15, |e| e == i).is_some(), "entry {i}");
    }
    assert!(probe::find(&slots, 15, |e| e == 1).is_none());
    assert_eq!(slots.iter().filter(|s| s.idx1 != 0).count(), 3);
}

#[test]
fn capacity_keeps_load_at_most_half() {
    for n in [0usize, 1, 7, 8, 9, 1000, 100_000] {
        let c = probe::capacity_for(n);
        assert!(c.is_power_of_two() && c >= 16 && c >= 2 * n, "{n} -> {c}");
        assert!(!probe::needs_grow(n.saturating_sub(1), c));
    }
    assert!(probe::find(&[], 1, |_| true).is_none());
}
