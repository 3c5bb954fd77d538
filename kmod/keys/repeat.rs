// SPDX-License-Identifier: GPL-2.0
//! The repeat window: no flow is keyed from inputs a recent flow was keyed
//! from (`spec/key-schedule.md` §7, review H3).
//!
//! A flow's keys are a function of the node pair's secret and the flow
//! `info` (cipher, tuple, both ISNs, both pods). A TCP server answering
//! with a SYN cookie keeps no state, so an on-path attacker who replays a
//! recorded SYN, ACK and first records within the cookie's life (under
//! 120 s: `MAX_SYNCOOKIE_AGE` minutes of `tcp_cookie_time()`, and
//! `TCP_SYNCOOKIE_VALID` since the listener's last cookie) makes the
//! server's kernel build the same child with the same ISNs: the same keys,
//! so the app would take the recorded records again and its answers would
//! reuse (key, nonce) pairs. Every flow keyed by the node-pair secret is
//! therefore admitted here first: the fingerprint of its side (client or
//! server) and `info` must not have been admitted within the last
//! [`WINDOW_MIN_SECS`] s; a repeat is refused (the flow is reset, counted,
//! never keyed).
//!
//! The fingerprint is the first 8 bytes of SHA-256(salt ‖ side ‖ info), the
//! salt random per load, so nobody outside can aim at a collision; with
//! `n` flows in the window a new flow is refused by chance with
//! probability `n / 2^64` (1M flows: 5e-14).
//!
//! Memory: three generations of [`GEN_SECS`] s each; a fingerprint lives
//! 128 to 192 s, 32 bytes (a kmalloc-32 rbtree node) each, at most
//! [`MAX_ENTRIES`] (32 MiB). At 10k new flows/s per side that is 1.9M:
//! past the cap, new flows fail closed (`repeat-window-full`) until a
//! generation ages out. Per flow: one SHA-256 of about 100 bytes and an
//! O(log n) lookup per generation, under one mutex (process context: the
//! flow worker), never on the per-packet path.
//!
//! Flows keyed by a secret of their own (openssl/boringssl modes: a
//! handshake per flow) are not admitted here: their secrets never repeat.

use crate::keys::schedule::{FlowInfo, Sha256, HASH_LEN};
use crate::sys::sha256::LibSha256;
use crate::sys::workq;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode};
use kernel::sync::{new_mutex, Mutex};

/// A generation's span.
pub(crate) const GEN_SECS: u64 = 64;
/// Generations kept: a fingerprint lives at least `(GENS - 1) * GEN_SECS`.
const GENS: usize = 3;
/// The shortest time a fingerprint is remembered (above the syncookie's
/// 120 s).
pub(crate) const WINDOW_MIN_SECS: u64 = (GENS as u64 - 1) * GEN_SECS;
/// Fingerprints held at most (all generations).
pub(crate) const MAX_ENTRIES: usize = 1 << 20;

const _: () = assert!(WINDOW_MIN_SECS > 120);

/// Why a flow was not admitted.
pub(crate) enum Refused {
    /// Its fingerprint is in the window: keying it would repeat keys.
    Repeat,
    /// The window is full.
    Full,
}

struct Gen {
    tree: RBTree<u64, ()>,
    len: usize,
    /// When it started (jiffies).
    start: u64,
}

struct Window {
    gens: [Gen; GENS],
    /// The generation new fingerprints go into.
    cur: usize,
}

impl Window {
    /// Age generations out up to `now`; the trees that went are returned,
    /// to be freed after the lock is dropped.
    fn rotate(&mut self, now: u64, gone: &mut KVec<RBTree<u64, ()>>) {
        let span = workq::ms_to_jiffies((GEN_SECS * 1000) as u32);
        let mut steps = 0;
        while now.wrapping_sub(self.gens[self.cur].start) >= span && steps < GENS {
            let next_start = if steps + 1 < GENS {
                self.gens[self.cur].start.wrapping_add(span)
            } else {
                // Idle for a whole window: start afresh.
                now
            };
            self.cur = (self.cur + 1) % GENS;
            let g = &mut self.gens[self.cur];
            let old = core::mem::take(&mut g.tree);
            g.len = 0;
            g.start = next_start;
            // Freed by the caller after the lock; if the vector cannot
            // grow, `push` drops (frees) the tree here instead.
            let _ = gone.push(old, GFP_KERNEL);
            steps += 1;
        }
    }

    fn len(&self) -> usize {
        self.gens.iter().map(|g| g.len).sum()
    }

    fn contains(&self, fp: u64) -> bool {
        self.gens.iter().any(|g| g.tree.get(&fp).is_some())
    }
}

/// The repeat window (see the file's doc).
#[pin_data]
pub(crate) struct RepeatWindow {
    salt: [u8; 16],
    #[pin]
    window: Mutex<Window>,
}

impl RepeatWindow {
    pub(crate) fn new() -> impl PinInit<Self> {
        let mut salt = [0u8; 16];
        for c in salt.chunks_mut(4) {
            c.copy_from_slice(&crate::sys::rand::u32().to_ne_bytes());
        }
        let now = workq::jiffies();
        let gens = [(); GENS].map(|()| Gen {
            tree: RBTree::new(),
            len: 0,
            start: now,
        });
        pin_init!(RepeatWindow {
            salt,
            window <- new_mutex!(Window { gens, cur: 0 }),
        })
    }

    /// The fingerprint of a flow's side (`client`) and key-schedule `info`.
    fn fingerprint(&self, client: bool, info: &FlowInfo) -> u64 {
        let mut h = LibSha256::new();
        h.update(&self.salt);
        h.update(&[u8::from(client)]);
        h.update(info.as_bytes());
        let d: [u8; HASH_LEN] = h.finish();
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&d[..8]);
        u64::from_ne_bytes(fp)
    }

    /// Admit a flow (its side, and the `info` it is about to be keyed
    /// from): `Ok(Ok(()))` if that is new (and now remembered), `Ok(Err(_))`
    /// if it must not be keyed. Process context.
    pub(crate) fn admit(
        &self,
        client: bool,
        info: &FlowInfo,
    ) -> Result<core::result::Result<(), Refused>> {
        let fp = self.fingerprint(client, info);
        let node = RBTreeNode::new(fp, (), GFP_KERNEL)?;
        let mut gone = KVec::new();
        let r = {
            let mut w = self.window.lock();
            w.rotate(workq::jiffies(), &mut gone);
            if w.contains(fp) {
                Err(Refused::Repeat)
            } else if w.len() >= MAX_ENTRIES {
                Err(Refused::Full)
            } else {
                let cur = w.cur;
                let g = &mut w.gens[cur];
                g.tree.insert(node);
                g.len += 1;
                Ok(())
            }
        };
        // The aged-out generations are freed here, outside the lock.
        drop(gone);
        Ok(r)
    }

    /// Fingerprints held now (`tlshubctl status`).
    pub(crate) fn len(&self) -> usize {
        self.window.lock().len()
    }
}
