// SPDX-License-Identifier: GPL-2.0
//! The key provider (TLSHub), in the kernel: node-pair secrets per peer node
//! and the flows waiting for one.
//!
//! The seed's contract, `get_key(tuple)` → `fetch_key` → on a miss
//! `handshake` → `fetch_key`, maps onto this file as:
//! - `fetch_key` = [`Peers::derive`]: the peer's cached PRK (extracted once
//!   per secret and epoch, `spec/key-schedule.md` §3) expanded over the
//!   flow's tuple, ISNs and pods — no round trip, a few µs of HMAC;
//! - `handshake` = a miss: the flow is parked on the peer's wait list and
//!   the caller sends one key-request event per peer (multicast on the
//!   admin-only `keys` group); whoever answers (today `tlshubctl node set
//!   ... psk`, next the TLSHub agent) calls [`Peers::set`], which hands the
//!   waiting flows back to be keyed; a deadline resets them (fail closed).
//!
//! Process context only (a sleeping mutex in `Datapath`). Secrets never
//! leave: only the PRK is kept, and it is wiped when replaced or dropped.

use crate::datapath::flow::Flow;
use crate::keys::schedule::{self, Cipher, FlowKeys, Identities, NodePairSecret, Prk};
use crate::sys::sha256::LibSha256;
use kernel::prelude::*;
use kernel::sync::Arc;

/// One peer node.
pub(crate) struct Peer {
    name: KVec<u8>,
    prk: Option<Prk>,
    waiting: KVec<Arc<Flow>>,
    /// A key request is outstanding (sent, not answered).
    requested: bool,
}

impl Peer {
    pub(crate) fn name(&self) -> &[u8] {
        &self.name
    }

    pub(crate) fn epoch(&self) -> Option<u64> {
        self.prk.as_ref().map(|p| p.epoch())
    }

    pub(crate) fn pending(&self) -> usize {
        self.waiting.len()
    }
}

/// What `derive` found.
pub(crate) enum Derived {
    Keys(FlowKeys),
    /// No secret: the flow now waits; `request` says whether to send the
    /// key-request event (the first waiter since the last answer).
    Wait {
        request: bool,
    },
}

/// Why `set` refused a secret.
pub(crate) enum SetError {
    /// A different secret under the epoch the pair already has.
    EpochConflict,
    /// An epoch older than the current one.
    EpochOld,
}

/// All peers (a small list: one entry per peer node with a secret or with
/// waiting flows).
pub(crate) struct Peers {
    list: KVec<Peer>,
}

impl Peers {
    pub(crate) fn new() -> Self {
        Self { list: KVec::new() }
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.list.iter().position(|p| &p.name[..] == name)
    }

    fn find_or_add(&mut self, name: &[u8]) -> Result<usize> {
        if let Some(i) = self.find(name) {
            return Ok(i);
        }
        let mut n = KVec::with_capacity(name.len(), GFP_KERNEL)?;
        n.extend_from_slice(name, GFP_KERNEL)?;
        self.list.push(
            Peer {
                name: n,
                prk: None,
                waiting: KVec::new(),
                requested: false,
            },
            GFP_KERNEL,
        )?;
        Ok(self.list.len() - 1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.list.iter()
    }

    /// `fetch_key`: the flow's keys, or park it on its peer's wait list.
    pub(crate) fn derive(&mut self, flow: &Arc<Flow>, cipher: Cipher) -> Result<Derived> {
        let i = self.find_or_add(flow.remote_pod.node())?;
        let peer = self.list.get_mut(i).ok_or(EINVAL)?;
        if let Some(prk) = &peer.prk {
            let (tuple, isns) = flow.tuple_isns();
            let (client, server) = if flow.client {
                (&flow.local_pod, &flow.remote_pod)
            } else {
                (&flow.remote_pod, &flow.local_pod)
            };
            let ids = Identities {
                client: client.name(),
                server: server.name(),
            };
            return schedule::derive_with_prk::<LibSha256>(prk, cipher, &tuple, &isns, &ids)
                .map(Derived::Keys)
                .map_err(|_| EINVAL);
        }
        if !peer.waiting.iter().any(|f| Arc::ptr_eq(f, flow)) {
            peer.waiting.push(flow.clone(), GFP_KERNEL)?;
        }
        let request = !peer.requested;
        peer.requested = true;
        Ok(Derived::Wait { request })
    }

    /// The answer to a handshake: install `secret` for `name` and hand back
    /// the flows that waited for it.
    pub(crate) fn set(
        &mut self,
        name: &[u8],
        secret: &NodePairSecret,
        out: &mut KVec<Arc<Flow>>,
    ) -> Result<core::result::Result<u64, SetError>> {
        let i = self.find_or_add(name)?;
        let peer = self.list.get_mut(i).ok_or(EINVAL)?;
        let prk = Prk::extract::<LibSha256>(secret);
        if let Some(old) = &peer.prk {
            if secret.epoch() == old.epoch() && old.bytes() != prk.bytes() {
                return Ok(Err(SetError::EpochConflict));
            }
            if secret.epoch() < old.epoch() {
                return Ok(Err(SetError::EpochOld));
            }
        }
        out.reserve(peer.waiting.len(), GFP_KERNEL)?;
        peer.prk = Some(prk);
        peer.requested = false;
        for f in core::mem::take(&mut peer.waiting) {
            // Room reserved above.
            out.push(f, GFP_KERNEL)?;
        }
        Ok(Ok(secret.epoch()))
    }

    /// The next epoch for `name` when none is given.
    pub(crate) fn next_epoch(&self, name: &[u8]) -> u64 {
        self.find(name)
            .and_then(|i| self.list.get(i))
            .and_then(|p| p.epoch())
            .map_or(1, |e| e.saturating_add(1))
    }

    /// Forget `name`'s secret; its waiting flows keep waiting (until their
    /// deadline). Returns whether there was one.
    pub(crate) fn del(&mut self, name: &[u8]) -> bool {
        match self.find(name).and_then(|i| self.list.get_mut(i)) {
            Some(p) => p.prk.take().is_some(),
            None => false,
        }
    }

    /// Take out flows whose deadline passed into `out`; returns whether any
    /// flow still waits. Process context.
    pub(crate) fn expire(
        &mut self,
        now: u64,
        deadline: impl Fn(&Flow) -> u64,
        out: &mut KVec<Arc<Flow>>,
    ) -> Result<bool> {
        let mut waiting = false;
        for p in self.list.iter_mut() {
            let mut keep = KVec::with_capacity(p.waiting.len(), GFP_KERNEL)?;
            out.reserve(p.waiting.len(), GFP_KERNEL)?;
            let old = core::mem::take(&mut p.waiting);
            for f in old {
                // Room reserved above: these pushes do not allocate.
                if now >= deadline(&f) {
                    out.push(f, GFP_KERNEL)?;
                } else {
                    keep.push(f, GFP_KERNEL)?;
                }
            }
            p.waiting = keep;
            if p.waiting.is_empty() {
                p.requested = false;
            } else {
                waiting = true;
            }
        }
        Ok(waiting)
    }

    /// Everything waiting (unload).
    pub(crate) fn take_waiting(&mut self, out: &mut KVec<Arc<Flow>>) -> Result {
        for p in self.list.iter_mut() {
            let old = core::mem::take(&mut p.waiting);
            out.reserve(old.len(), GFP_KERNEL)?;
            for f in old {
                out.push(f, GFP_KERNEL)?;
            }
        }
        Ok(())
    }
}
