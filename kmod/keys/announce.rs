// SPDX-License-Identifier: GPL-2.0
//! The epoch a connecting client announces: which node-pair secret keys a
//! flow is chosen by its client and carried in the low bits of the
//! client's ISN (`spec/key-schedule.md` §3, "Which epoch keys a flow").
//!
//! Both ends of a flow must key it with the same secret, also while the two
//! agents install a new epoch one after the other (the follower first, then
//! the leader, one round trip apart). No end can know when the other
//! switched, so the flow says it: the TCP state probe picks the client's
//! ISN as 30 random bits and the 2 low bits of the epoch it announces, at
//! `connect()`, before the SYN is built; each end then keys the flow with
//! its secret of that epoch — the current one, the one before it (kept for
//! a grace period), or, on the end that has not switched yet, the next one,
//! which it waits for ([`super::peers::Peers::derive`]).
//!
//! The probe runs with preemption disabled and cannot take the `Peers`
//! mutex, so what it needs is published here: a copy, per peer (and per
//! node pair), of its current epoch, that epoch's expiry and the highest
//! epoch it ever had, replaced whole under RCU whenever a secret is set,
//! deleted or failed (control-plane events; one `synchronize_rcu` each).
//! Expiry is checked by the reader, so a lazily wiped secret needs no
//! update. The probe's lookup is a binary search (O(log peers) per
//! connect).
//!
//! A connect to a Kubernetes Service announces before anyone knows which
//! node its backend is on (`datapath::services`): it announces the lowest
//! current epoch of all pairs, computed with the snapshot. While every
//! pair has the same epoch (one pair; or pairs renewed on one schedule)
//! that is the backend pair's; a pair one epoch ahead still keys it with
//! its previous secret (kept 128 s after its switch); a pair further ahead
//! resets the flow (`reset-key-epoch`). README, "Limits". Process or softirq context for readers; writers hold the
//! `Peers` mutex. Touches nothing else.

use super::peers::Peers;
use kernel::prelude::*;

/// One peer's (or pair's) announce state, under its key: a peer's entry
/// is `(false, name, "")`, a pair's `(true, lower name, higher name)`.
struct Entry {
    pair: bool,
    a: KVec<u8>,
    b: KVec<u8>,
    /// The current secret's epoch and expiry (jiffies, `u64::MAX`: never),
    /// while it has its PRK.
    current: Option<(u64, u64)>,
    last_epoch: u64,
}

impl Entry {
    fn epoch(&self, now: u64) -> u64 {
        match self.current {
            Some((e, until)) if now < until => e,
            // Expired or none: the key provider's next install.
            _ => self.last_epoch.saturating_add(1),
        }
    }
}

/// A snapshot of every peer's announce state.
pub(crate) struct Announce {
    entries: KVec<Entry>,
    /// What a connect to a Service announces (see the file's doc).
    service: u64,
}

fn copy(b: &[u8]) -> Result<KVec<u8>> {
    let mut v = KVec::with_capacity(b.len(), GFP_KERNEL)?;
    v.extend_from_slice(b, GFP_KERNEL)?;
    Ok(v)
}

/// Sorts `v` by `less`, in place, in O(n log n) without allocating, and
/// without a panicking path (every access checked by `get`). Not `core`'s
/// `sort_unstable_by`: its merge carries a panic path
/// (`panic_on_ord_violation`) that 6.12's objtool does not know never
/// returns, so the benchmark kernel's build warned that the merge "falls
/// through to next function".
fn heap_sort<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    // Swaps `v[i]` and `v[j]`, `i < j < v.len()` (else nothing).
    let swap = |v: &mut [T], i: usize, j: usize| {
        if let Some((a, rest)) = v.get_mut(i..=j).and_then(|s| s.split_first_mut()) {
            if let Some(b) = rest.last_mut() {
                core::mem::swap(a, b);
            }
        }
    };
    // The first child of `root` in the heap `v[..end]`, if it has one.
    let first_child = |root: usize, end: usize| {
        root.checked_mul(2)
            .and_then(|c| c.checked_add(1))
            .filter(|c| *c < end)
    };
    // Moves `v[root]` down the max-heap `v[..end]` to its place.
    let sift = |v: &mut [T], mut root: usize, end: usize| {
        while let Some(mut child) = first_child(root, end) {
            if child + 1 < end {
                if let (Some(a), Some(b)) = (v.get(child), v.get(child + 1)) {
                    if less(a, b) {
                        child += 1;
                    }
                }
            }
            match (v.get(root), v.get(child)) {
                (Some(r), Some(c)) if less(r, c) => {}
                _ => break,
            }
            swap(v, root, child);
            root = child;
        }
    };
    let n = v.len();
    for i in (0..n / 2).rev() {
        sift(v, i, n);
    }
    for end in (1..n).rev() {
        swap(v, 0, end);
        sift(v, 0, end);
    }
}

impl Announce {
    pub(crate) fn empty() -> Self {
        Self {
            entries: KVec::new(),
            service: 1,
        }
    }

    /// The snapshot of `peers` now (process context), sorted by key so
    /// that the probe's lookup is O(log peers). A pair entry that does not
    /// apply (deleted: no secret, no failure) is left out, as `derive`
    /// passes over it.
    pub(crate) fn of(peers: &Peers) -> Result<Self> {
        let mut entries = KVec::with_capacity(peers.iter().count(), GFP_KERNEL)?;
        for p in peers.iter() {
            let (pair, a, b) = match p.local() {
                None => (false, p.name(), &[][..]),
                Some(_) if !p.counts() => continue,
                Some(l) => (true, p.name().min(l), p.name().max(l)),
            };
            entries.push(
                Entry {
                    pair,
                    a: copy(a)?,
                    b: copy(b)?,
                    current: p.current_for_announce(),
                    last_epoch: p.last_epoch(),
                },
                GFP_KERNEL,
            )?;
        }
        heap_sort(entries.as_mut_slice(), |x, y| Self::key(x) < Self::key(y));
        let service = entries
            .iter()
            .map(|e| e.current.map_or(e.last_epoch.saturating_add(1), |c| c.0))
            .min()
            .unwrap_or(1);
        Ok(Self { entries, service })
    }

    fn key(e: &Entry) -> (bool, &[u8], &[u8]) {
        (e.pair, &e.a, &e.b)
    }

    fn find(&self, key: (bool, &[u8], &[u8])) -> Option<&Entry> {
        let i = self
            .entries
            .binary_search_by(|e| Self::key(e).cmp(&key))
            .ok()?;
        self.entries.get(i)
    }

    /// The epoch a client on `local` node announces to `remote` node at
    /// `now` (jiffies): the pair's entry if it applies, else the peer's,
    /// else 1 (no secret ever).
    pub(crate) fn epoch(&self, remote: &[u8], local: &[u8], now: u64) -> u64 {
        self.find((true, remote.min(local), remote.max(local)))
            .or_else(|| self.find((false, remote, &[])))
            .map_or(1, |e| e.epoch(now))
    }

    /// The epoch a client on `local` node announces to a Service (see the
    /// file's doc; one value for every local node).
    pub(crate) fn service_epoch(&self, _local: &[u8], _now: u64) -> u64 {
        self.service
    }
}
