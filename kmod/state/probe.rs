// SPDX-License-Identifier: GPL-2.0
//! Open-addressing hash index over a slice of slots: linear probing with
//! backward-shift deletion, so lookups, inserts and deletes are O(1) on
//! average and no tombstones build up.
//!
//! Pure `core` code on caller-owned slices (the caller allocates and grows
//! them), shared verbatim with the host tests (`helper/tests/probe.rs`,
//! through `#[path]`), which check it against a reference map. It may touch
//! nothing but its arguments.
#![allow(dead_code, unreachable_pub)]

/// One slot: the key's hash and the entry it names.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Slot {
    pub hash: u32,
    /// Entry index + 1; 0 marks an empty slot.
    pub idx1: u32,
}

impl Slot {
    /// A slot naming entry `idx`.
    pub fn new(hash: u32, idx: u32) -> Option<Self> {
        Some(Self {
            hash,
            idx1: idx.checked_add(1)?,
        })
    }

    /// The entry this slot names, if it is in use.
    pub fn entry(&self) -> Option<u32> {
        self.idx1.checked_sub(1)
    }
}

/// Slots needed so that `len` entries keep the load factor at most 1/2
/// (a power of two, at least 16).
pub fn capacity_for(len: usize) -> usize {
    len.saturating_mul(2).max(16).next_power_of_two()
}

/// Whether one more entry needs a larger slice.
pub fn needs_grow(len: usize, cap: usize) -> bool {
    len.saturating_add(1).saturating_mul(2) > cap
}

/// Position of the entry with `hash` for which `eq(entry)` holds.
/// `slots.len()` must be 0 or a power of two with at least one empty slot.
pub fn find(slots: &[Slot], hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
    let mask = slots.len().checked_sub(1)?;
    let mut i = hash as usize & mask;
    for _ in 0..slots.len() {
        let s = slots.get(i)?;
        let e = s.entry()?;
        if s.hash == hash && eq(e) {
            return Some(i);
        }
        i = (i + 1) & mask;
    }
    None
}

/// Put `slot` into the first free position of its probe sequence; false if
/// the slice has no free slot (the caller grows it first).
pub fn place(slots: &mut [Slot], slot: Slot) -> bool {
    let Some(mask) = slots.len().checked_sub(1) else {
        return false;
    };
    let mut i = slot.hash as usize & mask;
    for _ in 0..slots.len() {
        match slots.get_mut(i) {
            Some(s) if s.idx1 == 0 => {
                *s = slot;
                return true;
            }
            Some(_) => i = (i + 1) & mask,
            None => return false,
        }
    }
    false
}

/// Empty position `pos` and shift later members of its cluster back, so
/// that every remaining entry stays reachable from its home slot.
pub fn remove_at(slots: &mut [Slot], pos: usize) {
    let Some(mask) = slots.len().checked_sub(1) else {
        return;
    };
    let mut hole = pos & mask;
    let mut j = hole;
    for _ in 0..slots.len() {
        j = (j + 1) & mask;
        let Some(&s) = slots.get(j) else { break };
        if s.idx1 == 0 {
            break;
        }
        let home = s.hash as usize & mask;
        // `s` may fill the hole if the hole lies on its probe path, i.e.
        // between its home and its position (cyclically).
        if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
            if let Some(h) = slots.get_mut(hole) {
                *h = s;
            }
            hole = j;
        }
    }
    if let Some(h) = slots.get_mut(hole) {
        *h = Slot::default();
    }
}

/// FNV-1a, seeded: cheap and good enough for keys only an administrator
/// inserts (names, pod addresses).
pub fn hash_bytes(seed: u32, b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5 ^ seed;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
