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
//!   admin-only `keys` group); whoever answers (the TLSHub agent, or an
//!   operator's `tlshubctl node set ... psk`) calls [`Peers::set_with`],
//!   which hands the waiting flows back to be keyed; a deadline resets them
//!   (fail closed). The agent may instead report that it cannot get a
//!   secret ([`Peers::fail`]): the waiting flows are handed back to be
//!   reset at once, and the error is kept for `peer-get`.
//!
//! A secret may have a lifetime: once it is over, the secret counts as
//! absent (a flow that needs it waits and a key request goes out, as on a
//! miss) and its PRK is wiped, lazily: by the next flow that needs it and by
//! every `peer-get`. Flows keyed before keep their keys (kTLS has them).
//! Times are jiffies (`sys::workq`: `CONFIG_HZ`, not the bindings' `HZ`).
//!
//! In the openssl and boringssl modes (`spec/key-schedule.md` §11) a flow
//! is keyed by a secret of its own instead: `derive` parks it on the
//! flow-wait list and the caller sends a per-flow key request; the agent's
//! answer ([`Peers::set_flow_secret`], found by the flow's tuple) is
//! extracted into a PRK kept on that list only until the flow is keyed.
//! The same deadline applies.
//!
//! Process context only (a sleeping mutex in `Datapath`). Secrets never
//! leave: only the PRK is kept, and it is wiped when replaced, expired or
//! dropped.

use crate::datapath::flow::Flow;
use crate::keys::announce::Announce;
use crate::keys::schedule::{self, Cipher, FlowInfo, FlowKeys, Identities, NodePairSecret, Prk};
use crate::state::mapping::IpAddr;
use crate::sys::rcu::{RcuBox, RcuWriter, Retired};
use crate::sys::sha256::LibSha256;
use crate::sys::workq;
use crate::uapi;
use kernel::prelude::*;
use kernel::sync::Arc;

/// A secret of a peer (its current one, or the one before).
struct Secret {
    /// `None` once the lifetime is over (wiped).
    prk: Option<Prk>,
    epoch: u64,
    /// When it was set (jiffies).
    set_at: u64,
    /// When it expires (jiffies); `None`: never.
    expires_at: Option<u64>,
}

impl Secret {
    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// The PRK, while the secret is usable.
    fn usable(&self, now: u64) -> Option<&Prk> {
        self.prk.as_ref().filter(|_| !self.expired(now))
    }

    /// The PRK for a flow whose client announced this epoch: while usable
    /// and for [`EXPIRED_GRACE_MS`] after (the client chose it while it
    /// was valid; both ends key a round trip or more later).
    fn for_announced(&self, now: u64) -> Option<&Prk> {
        let grace = workq::ms_to_jiffies(EXPIRED_GRACE_MS);
        self.prk.as_ref().filter(|_| {
            self.expires_at
                .map_or(true, |e| now < e.saturating_add(grace))
        })
    }
}

/// How long the secret an epoch replaced stays usable, for flows whose
/// client chose it (spec §3, "Which epoch keys a flow"): a client's SYN can
/// be retransmitted for up to 127 s (`tcp_syn_retries` 6) after it chose
/// the epoch. Not cut short by the secret's own lifetime: the agent renews
/// shortly before that ends, and a flow announced just before the switch
/// is keyed a round trip or more later.
pub(crate) const PREVIOUS_GRACE_MS: u32 = 128_000;

/// How long past its lifetime a secret still keys the flows whose client
/// announced it while it was valid (spec §3): a late renewal must not fail
/// the flows started just before the lifetime ended. Nothing announces an
/// expired secret, and its PRK is wiped after this.
pub(crate) const EXPIRED_GRACE_MS: u32 = 10_000;

/// The epoch bits a client puts in the low bits of its ISN (spec §3).
pub(crate) const EPOCH_MASK: u32 = 3;

/// The ISN bits that name `epoch`.
pub(crate) fn epoch_bits(epoch: u64) -> u32 {
    // Truncation intended: the low bits.
    (epoch as u32) & EPOCH_MASK
}

/// The last error the key provider reported for a peer.
struct PeerError {
    text: KVec<u8>,
    /// When (jiffies).
    at: u64,
}

/// Where a peer's secret is (`enum peer-state`). When several apply, the
/// first of `Failed`, `Established`, `Expired`, `Waiting` wins.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerState {
    /// No secret, flows wait.
    Waiting,
    /// A secret that has not expired.
    Established,
    /// The secret's lifetime is over.
    Expired,
    /// The last event was a `peer-fail`.
    Failed,
    /// No secret, nothing waits.
    None,
}

/// Which secret a control-plane command names: the peer node's, for any
/// local node (`local: None`, the form for a kernel that serves one node),
/// or the secret of the unordered node pair {`local`, `name`} (a kernel
/// that serves several nodes holds one per pair; review M8, spec §3).
#[derive(Clone, Copy)]
pub(crate) struct PeerKey<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) local: Option<&'a [u8]>,
}

impl PeerKey<'_> {
    fn is(&self, p: &Peer) -> bool {
        self.names(&p.name, p.local.as_deref())
    }

    /// Whether an entry for peer `name` (pair with `local`) is this one.
    pub(crate) fn names(&self, name: &[u8], local: Option<&[u8]>) -> bool {
        match (self.local, local) {
            (None, None) => name == self.name,
            (Some(l), Some(pl)) => (name == self.name && pl == l) || (name == l && pl == self.name),
            _ => false,
        }
    }
}

/// One peer node (for any local node), or one node pair.
pub(crate) struct Peer {
    name: KVec<u8>,
    /// A pair entry's local node (as `peer-set` named it); `None`: the
    /// peer's secret for every local node without a pair entry.
    local: Option<KVec<u8>>,
    secret: Option<Secret>,
    /// The secret `secret` replaced, for flows whose client chose its
    /// epoch: usable for [`PREVIOUS_GRACE_MS`] after it was replaced.
    previous: Option<Secret>,
    waiting: KVec<Arc<Flow>>,
    /// When the outstanding key request was sent (jiffies; `None`: none
    /// outstanding). The tick sends it again while flows still wait
    /// ([`Peers::resend_due`]): an event can be lost (no listener yet,
    /// `ENOBUFS` on the agent's socket) and steady traffic would otherwise
    /// keep the wait list from ever draining (review M5).
    requested: Option<u64>,
    /// The last error reported for this peer, kept until overwritten.
    error: Option<PeerError>,
    /// The last event was a `peer-fail` (a `peer-set` clears it).
    failed: bool,
    /// The highest epoch ever installed here (0: none), kept after
    /// `peer-del` and `peer-fail`: a secret under it or below is refused
    /// even once its bytes are gone (spec §3: an epoch the pair "has or
    /// had" names one secret; review L3).
    last_epoch: u64,
}

impl Peer {
    pub(crate) fn name(&self) -> &[u8] {
        &self.name
    }

    /// A pair entry's local node.
    pub(crate) fn local(&self) -> Option<&[u8]> {
        self.local.as_deref()
    }

    /// A pair entry applies to its pair's flows: it had a secret or a
    /// failure (a deleted one has neither: the peers' own apply again).
    pub(crate) fn counts(&self) -> bool {
        self.secret.is_some() || self.failed
    }

    /// The current secret's epoch and expiry (jiffies, `u64::MAX`: never)
    /// while it has its PRK, for [`super::announce`].
    pub(crate) fn current_for_announce(&self) -> Option<(u64, u64)> {
        let s = self.secret.as_ref()?;
        s.prk.as_ref()?;
        Some((s.epoch, s.expires_at.unwrap_or(u64::MAX)))
    }

    /// Epoch of the current secret, also when it has expired.
    pub(crate) fn epoch(&self) -> Option<u64> {
        self.secret.as_ref().map(|s| s.epoch)
    }

    /// The highest epoch ever installed (0: none), also after a delete or
    /// a failure.
    pub(crate) fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    pub(crate) fn pending(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn state(&self, now: u64) -> PeerState {
        match &self.secret {
            _ if self.failed => PeerState::Failed,
            Some(s) if s.prk.is_some() && !s.expired(now) => PeerState::Established,
            Some(_) => PeerState::Expired,
            None if !self.waiting.is_empty() => PeerState::Waiting,
            None => PeerState::None,
        }
    }

    /// Milliseconds since the current secret was set.
    pub(crate) fn age_ms(&self, now: u64) -> Option<u64> {
        self.secret
            .as_ref()
            .map(|s| workq::jiffies_to_ms(now.saturating_sub(s.set_at)))
    }

    /// Milliseconds until the current secret expires (0 once it has);
    /// `None` without a secret or a lifetime.
    pub(crate) fn expires_ms(&self, now: u64) -> Option<u64> {
        let e = self.secret.as_ref()?.expires_at?;
        Some(workq::jiffies_to_ms(e.saturating_sub(now)))
    }

    /// The last error and its age in milliseconds.
    pub(crate) fn error(&self, now: u64) -> Option<(&[u8], u64)> {
        self.error
            .as_ref()
            .map(|e| (&e.text[..], workq::jiffies_to_ms(now.saturating_sub(e.at))))
    }

    /// Wipe the PRKs whose lifetime (and grace) is over.
    fn sweep(&mut self, now: u64) {
        if let Some(s) = &mut self.secret {
            if s.for_announced(now).is_none() {
                // Dropping the PRK zeroizes it.
                s.prk = None;
            }
        }
        if self
            .previous
            .as_ref()
            .is_some_and(|s| s.for_announced(now).is_none())
        {
            // Zeroized on drop.
            self.previous = None;
        }
    }
}

/// What `derive` found.
pub(crate) enum Derived {
    /// The secret is there: its PRK is copied into the caller's slot, to
    /// derive the flow's keys with ([`keys_into`]) outside the `Peers` lock
    /// (review M4).
    Prk,
    /// No secret: the flow now waits; `request` says whether to send the
    /// key-request event (the first waiter since the last answer). A flow
    /// whose client chose the epoch after the current one waits for it
    /// without a request (its key provider is installing it).
    Wait { request: bool },
    /// This end has no secret of the epoch the flow's client chose, and
    /// will not get one: reset.
    NoEpoch,
}

/// Why `set` refused a secret.
pub(crate) enum SetError {
    /// A different secret under the epoch the pair already has, or the
    /// epoch of an expired (wiped) secret, which can no longer be compared.
    EpochConflict,
    /// An epoch older than the current one.
    EpochOld,
}

/// A flow keyed by a secret of its own (openssl/boringssl mode), waiting.
struct FlowWait {
    flow: Arc<Flow>,
    /// The flow's secret, extracted, once the agent sent it.
    prk: Option<Prk>,
    /// When its per-flow request was last sent (jiffies).
    requested: u64,
}

/// The tuple by which `flow-key-set` names a waiting flow: this end's view.
pub(crate) struct FlowTuple {
    pub(crate) local_ip: IpAddr,
    pub(crate) local_port: u16,
    pub(crate) remote_ip: IpAddr,
    pub(crate) remote_port: u16,
    /// `(client, server)` ISNs, when the caller gives them (must match).
    pub(crate) isns: Option<(u32, u32)>,
}

impl FlowTuple {
    fn matches(&self, f: &Flow) -> bool {
        let (lp, rp) = f.ports();
        if f.local_ip != self.local_ip
            || f.remote_ip != self.remote_ip
            || lp != self.local_port
            || rp != self.remote_port
        {
            return false;
        }
        match self.isns {
            None => true,
            Some((c, s)) => {
                let (_, isns) = f.tuple_isns();
                isns.client == c && isns.server == s
            }
        }
    }
}

/// Why `set_flow_secret` refused.
pub(crate) enum FlowSetError {
    /// No flow with that tuple waits for a secret of its own.
    NotWaiting,
    /// That flow already has its secret.
    Already,
}

/// All peers (a small list: one entry per peer node with a secret, with
/// waiting flows or with an error), and the flows waiting for a secret of
/// their own.
pub(crate) struct Peers {
    list: KVec<Peer>,
    /// Publishes what connecting clients announce (`super::announce`),
    /// under this lock so snapshots are published in order.
    announce: RcuWriter<Announce>,
    /// Slots; `None` is free (`KVec` has no removal).
    flow_waits: KVec<Option<FlowWait>>,
}

/// The key schedule's `info` for `flow` keyed with `cipher` (its tuple,
/// ISNs and pods).
pub(crate) fn info_of(flow: &Flow, cipher: Cipher) -> Result<FlowInfo> {
    let (client, server) = if flow.client {
        (&flow.local_pod, &flow.remote_pod)
    } else {
        (&flow.remote_pod, &flow.local_pod)
    };
    let ids = Identities {
        client: client.name(),
        server: server.name(),
    };
    let (tuple, isns) = flow.tuple_isns();
    schedule::flow_info(cipher, &tuple, &isns, &ids).map_err(|_| EINVAL)
}

/// The keys of a flow from `prk` and its `info` ([`info_of`]), written into
/// `out` in place (review L2: a key moved by value leaves a copy behind),
/// then the stack the HMACs used is overwritten.
pub(crate) fn keys_into(prk: &Prk, cipher: Cipher, info: &FlowInfo, out: &mut FlowKeys) -> Result {
    let r = schedule::keys_from_info_into::<LibSha256>(prk, cipher, info, out);
    schedule::burn_stack();
    r.map_err(|_| EINVAL)
}

impl Peers {
    pub(crate) fn new(announce: RcuWriter<Announce>) -> Self {
        Self {
            list: KVec::new(),
            announce,
            flow_waits: KVec::new(),
        }
    }

    /// Publish the announce state of every peer in `b` (after a `set`,
    /// `del` or `fail`); the old snapshot is for the caller to free once
    /// it has unlocked.
    pub(crate) fn publish(&mut self, b: &RcuBox<Announce>) -> Result<Retired<Announce>> {
        let new = KBox::new(Announce::of(self)?, GFP_KERNEL)?;
        self.announce.replace(b, new)
    }

    fn find(&self, key: PeerKey<'_>) -> Option<usize> {
        self.list.iter().position(|p| key.is(p))
    }

    fn find_or_add(&mut self, key: PeerKey<'_>) -> Result<usize> {
        if let Some(i) = self.find(key) {
            return Ok(i);
        }
        let mut n = KVec::with_capacity(key.name.len(), GFP_KERNEL)?;
        n.extend_from_slice(key.name, GFP_KERNEL)?;
        let local = match key.local {
            None => None,
            Some(l) => {
                let mut v = KVec::with_capacity(l.len(), GFP_KERNEL)?;
                v.extend_from_slice(l, GFP_KERNEL)?;
                Some(v)
            }
        };
        self.list.push(
            Peer {
                name: n,
                local,
                secret: None,
                previous: None,
                waiting: KVec::new(),
                requested: None,
                error: None,
                failed: false,
                last_epoch: 0,
            },
            GFP_KERNEL,
        )?;
        Ok(self.list.len() - 1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.list.iter()
    }

    /// Wipe every secret whose lifetime is over (`peer-get`).
    pub(crate) fn sweep(&mut self, now: u64) {
        for p in self.list.iter_mut() {
            p.sweep(now);
        }
    }

    /// `fetch_key`: the PRK to key the flow with, or park it on its peer's wait list.
    /// An expired secret counts as none (and is wiped here).
    /// A flow keyed by a secret of its own (`flow.mode()` is not TLSHUB)
    /// waits for that secret instead.
    pub(crate) fn derive(&mut self, flow: &Arc<Flow>, prk_out: &mut Prk) -> Result<Derived> {
        if flow.mode() != uapi::mode::TLSHUB {
            return self.derive_own(flow, prk_out);
        }
        // The pair's own entry if there is one, else the peer's.
        let (remote, local) = (flow.remote_pod.node(), flow.local_pod.node());
        let pair = PeerKey {
            name: remote,
            local: Some(local),
        };
        // A pair entry counts once it had a secret or a failure (a
        // deleted one has neither: the peers' own apply again).
        let i = match self.find(pair) {
            Some(i) if self.list.get(i).is_some_and(Peer::counts) => i,
            _ => self.find_or_add(PeerKey {
                name: remote,
                local: None,
            })?,
        };
        let peer = self.list.get_mut(i).ok_or(EINVAL)?;
        let now = workq::jiffies();
        peer.sweep(now);
        // The epoch the flow's client chose (spec §3): both ends read it
        // from the same ISN.
        let want = flow.tuple_isns().1.client & EPOCH_MASK;
        for s in [&peer.secret, &peer.previous].into_iter().flatten() {
            if let Some(prk) = s.for_announced(now).filter(|_| epoch_bits(s.epoch) == want) {
                prk_out.copy_from(prk);
                return Ok(Derived::Prk);
            }
        }
        let next = match peer.secret.as_ref().filter(|s| s.usable(now).is_some()) {
            // The client is one epoch ahead: it arrives within the
            // rotation's round trip (else the deadline resets the flow).
            Some(cur) if want == epoch_bits(cur.epoch.wrapping_add(1)) => true,
            // Behind by more than the previous secret's grace, or ahead by two.
            Some(_) => return Ok(Derived::NoEpoch),
            None => false,
        };
        if !peer.waiting.iter().any(|f| Arc::ptr_eq(f, flow)) {
            peer.waiting.push(flow.clone(), GFP_KERNEL)?;
        }
        let request = !next && peer.requested.is_none();
        if request {
            peer.requested = Some(now);
        }
        Ok(Derived::Wait { request })
    }

    /// `derive` for a flow with a secret of its own: keys once the agent
    /// sent it (the PRK goes with the list entry), else wait; the first
    /// call asks for a key request.
    fn derive_own(&mut self, flow: &Arc<Flow>, prk_out: &mut Prk) -> Result<Derived> {
        let slots = self.flow_waits.as_mut_slice();
        let Some(slot) = slots
            .iter_mut()
            .find(|w| w.as_ref().is_some_and(|w| Arc::ptr_eq(&w.flow, flow)))
        else {
            let w = FlowWait {
                flow: flow.clone(),
                prk: None,
                requested: workq::jiffies(),
            };
            match slots.iter_mut().find(|w| w.is_none()) {
                Some(free) => *free = Some(w),
                None => self.flow_waits.push(Some(w), GFP_KERNEL)?,
            }
            return Ok(Derived::Wait { request: true });
        };
        let Some(prk) = slot.as_ref().and_then(|w| w.prk.as_ref()) else {
            return Ok(Derived::Wait { request: false });
        };
        prk_out.copy_from(prk);
        // Wipes the PRK in place.
        *slot = None;
        Ok(Derived::Prk)
    }

    /// Flows waiting for a secret of their own.
    fn own_waiting(&self) -> bool {
        self.flow_waits.iter().any(|w| w.is_some())
    }

    /// `flow-key-set`: the secret of the waiting flow named by `t`; returns
    /// the flow, for the caller to queue its worker. Nothing changes on an
    /// error.
    pub(crate) fn set_flow_secret(
        &mut self,
        t: &FlowTuple,
        secret: &[u8],
    ) -> Result<core::result::Result<Arc<Flow>, FlowSetError>> {
        // No epoch: this PRK lives only until its one flow is keyed.
        let secret = NodePairSecret::from_slice(secret, 0).ok_or(EINVAL)?;
        let Some(w) = self
            .flow_waits
            .as_mut_slice()
            .iter_mut()
            .flatten()
            .find(|w| t.matches(&w.flow))
        else {
            return Ok(Err(FlowSetError::NotWaiting));
        };
        if w.prk.is_some() {
            return Ok(Err(FlowSetError::Already));
        }
        w.prk = Some(Prk::extract::<LibSha256>(&secret));
        Ok(Ok(w.flow.clone()))
    }

    /// The answer to a handshake, without a lifetime: see [`Peers::set_with`].
    pub(crate) fn set(
        &mut self,
        key: PeerKey<'_>,
        secret: &NodePairSecret,
        out: &mut KVec<Arc<Flow>>,
    ) -> Result<core::result::Result<u64, SetError>> {
        self.set_with(key, secret, None, out)
    }

    /// A pair entry {a, b} was set or failed: the flows of that pair
    /// waiting on a peer entry (`a`'s or `b`'s, made before the pair had
    /// its own) move to `out`, to be derived again or reset.
    fn take_pair_waiters(&mut self, key: PeerKey<'_>, out: &mut KVec<Arc<Flow>>) -> Result {
        let Some(local) = key.local else {
            return Ok(());
        };
        for p in self.list.iter_mut().filter(|p| p.local.is_none()) {
            // Its flows' remote node is `p.name`; theirs is the other end.
            let other = if &p.name[..] == key.name {
                local
            } else if &p.name[..] == local {
                key.name
            } else {
                continue;
            };
            let mut keep = KVec::with_capacity(p.waiting.len(), GFP_KERNEL)?;
            out.reserve(p.waiting.len(), GFP_KERNEL)?;
            for f in core::mem::take(&mut p.waiting) {
                // Room reserved above: these pushes do not allocate.
                if f.local_pod.node() == other {
                    out.push(f, GFP_KERNEL)?;
                } else {
                    keep.push(f, GFP_KERNEL)?;
                }
            }
            p.waiting = keep;
        }
        Ok(())
    }

    /// The answer to a handshake: install `secret` for `name`, valid for
    /// `lifetime` jiffies from now (`None`: forever), and hand back the
    /// flows that waited for it. A newer epoch replaces the current secret;
    /// an older one, or a different secret under the current epoch, is
    /// refused and changes nothing. Clears a reported error state.
    pub(crate) fn set_with(
        &mut self,
        key: PeerKey<'_>,
        secret: &NodePairSecret,
        lifetime: Option<u64>,
        out: &mut KVec<Arc<Flow>>,
    ) -> Result<core::result::Result<u64, SetError>> {
        let now = workq::jiffies();
        let i = self.find_or_add(key)?;
        let peer = self.list.get_mut(i).ok_or(EINVAL)?;
        peer.sweep(now);
        let prk = Prk::extract::<LibSha256>(secret);
        if let Some(old) = &peer.secret {
            if secret.epoch() == old.epoch {
                // An expired secret's PRK is gone: a secret under its epoch
                // cannot be shown to be the same one, so it is refused.
                let same = old
                    .prk
                    .as_ref()
                    .is_some_and(|p| schedule::ct_eq(p.bytes(), prk.bytes()));
                if !same {
                    return Ok(Err(SetError::EpochConflict));
                }
            }
            if secret.epoch() < old.epoch {
                return Ok(Err(SetError::EpochOld));
            }
        } else if secret.epoch() == peer.last_epoch {
            // Deleted or failed: its bytes are gone, it cannot be compared.
            return Ok(Err(SetError::EpochConflict));
        } else if secret.epoch() < peer.last_epoch {
            return Ok(Err(SetError::EpochOld));
        }
        out.reserve(peer.waiting.len(), GFP_KERNEL)?;
        peer.last_epoch = peer.last_epoch.max(secret.epoch());
        let old = peer.secret.replace(Secret {
            prk: Some(prk),
            epoch: secret.epoch(),
            set_at: now,
            expires_at: lifetime.map(|l| now.saturating_add(l)),
        });
        if let Some(mut old) = old.filter(|o| o.epoch != secret.epoch()) {
            // Flows whose client still chose it get it for a while; the
            // one before goes (zeroized on drop).
            // Past its own lifetime too: a client may have announced it up
            // to the moment its node replaced it (a round trip after this
            // one, for the side that switched first), and keys the flow
            // only at ESTABLISHED.
            // One already past its lifetime keeps only its expired grace.
            let grace = now.saturating_add(workq::ms_to_jiffies(PREVIOUS_GRACE_MS));
            old.expires_at = Some(match old.expires_at {
                Some(e) if now >= e => e,
                _ => grace,
            });
            peer.previous = old.prk.is_some().then_some(old);
        }
        peer.requested = None;
        peer.failed = false;
        peer.error = None;
        for f in core::mem::take(&mut peer.waiting) {
            // Room reserved above.
            out.push(f, GFP_KERNEL)?;
        }
        // Installed: a failure to hand over the pair's flows from the peer
        // entries leaves them waiting (a later resend or flow retries).
        let _ = self.take_pair_waiters(key, out);
        Ok(Ok(secret.epoch()))
    }

    /// The next epoch for `key` when none is given: after the highest one
    /// it ever had (current, expired, deleted or failed).
    pub(crate) fn next_epoch(&self, key: PeerKey<'_>) -> u64 {
        self.find(key)
            .and_then(|i| self.list.get(i))
            .map_or(1, |p| p.last_epoch.saturating_add(1))
    }

    /// Forget `key`'s secret; returns whether there was one. A peer's
    /// waiting flows keep waiting (until their deadline); a pair's go to
    /// `out`, and the pair's entry no longer counts (the peers' own apply).
    pub(crate) fn del(&mut self, key: PeerKey<'_>, out: &mut KVec<Arc<Flow>>) -> Result<bool> {
        match self.find(key).and_then(|i| self.list.get_mut(i)) {
            Some(p) => {
                if key.local.is_some() {
                    // A pair's flows go back to the peers' own entries:
                    // handed to the caller to be derived again.
                    out.reserve(p.waiting.len(), GFP_KERNEL)?;
                    for f in core::mem::take(&mut p.waiting) {
                        // Room reserved above.
                        out.push(f, GFP_KERNEL)?;
                    }
                    p.requested = None;
                }
                p.failed = false;
                p.previous = None;
                Ok(p.secret.take().is_some())
            }
            None => Ok(false),
        }
    }

    /// The key provider cannot get a secret for `name`: record `error`
    /// (at most `uapi::ERROR_MAX_LEN` bytes, checked by the caller), wipe
    /// the secret, move every flow waiting for it into `out` (the caller
    /// resets them) and let the next flow send a fresh key request. On an
    /// allocation failure nothing has changed.
    pub(crate) fn fail(
        &mut self,
        key: PeerKey<'_>,
        error: &[u8],
        out: &mut KVec<Arc<Flow>>,
    ) -> Result {
        let mut text = KVec::with_capacity(error.len(), GFP_KERNEL)?;
        text.extend_from_slice(error, GFP_KERNEL)?;
        let i = self.find_or_add(key)?;
        let peer = self.list.get_mut(i).ok_or(EINVAL)?;
        out.reserve(peer.waiting.len(), GFP_KERNEL)?;
        peer.error = Some(PeerError {
            text,
            at: workq::jiffies(),
        });
        peer.failed = true;
        peer.secret = None;
        peer.previous = None;
        peer.requested = None;
        for f in core::mem::take(&mut peer.waiting) {
            // Room reserved above.
            out.push(f, GFP_KERNEL)?;
        }
        // The pair's flows still on a peer entry: reset them too (on an
        // allocation failure they wait out their deadline instead).
        let _ = self.take_pair_waiters(key, out);
        Ok(())
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
                p.requested = None;
            } else {
                waiting = true;
            }
        }
        out.reserve(self.flow_waits.len(), GFP_KERNEL)?;
        for slot in self.flow_waits.as_mut_slice() {
            if slot.as_ref().is_some_and(|w| now >= deadline(&w.flow)) {
                if let Some(w) = slot.take() {
                    // Room reserved above.
                    out.push(w.flow, GFP_KERNEL)?;
                }
            }
        }
        if !self.own_waiting() {
            self.flow_waits = KVec::new();
        }
        Ok(waiting || self.own_waiting())
    }

    /// Requests to send again (review M5): for each peer whose flows still
    /// wait and whose request went out `every` jiffies ago or more, its
    /// oldest waiter (for the event's local node); then per-flow waiters
    /// whose request is that old, at most `max` of them per call (the
    /// oldest first in list order). Marks them sent now. Process context.
    pub(crate) fn resend_due(
        &mut self,
        now: u64,
        every: u64,
        max: usize,
        out: &mut KVec<Arc<Flow>>,
    ) -> Result {
        let mut budget = max;
        for p in self.list.iter_mut() {
            if budget == 0 {
                break;
            }
            let Some(first) = p.waiting.first() else {
                continue;
            };
            if p.secret.as_ref().is_some_and(|s| s.usable(now).is_some()) {
                continue;
            }
            let due = p.requested.map_or(true, |t| now.wrapping_sub(t) >= every);
            if due {
                out.push(first.clone(), GFP_KERNEL)?;
                p.requested = Some(now);
                budget -= 1;
            }
        }
        for w in self.flow_waits.as_mut_slice().iter_mut().flatten() {
            if budget == 0 {
                break;
            }
            if w.prk.is_none() && now.wrapping_sub(w.requested) >= every {
                out.push(w.flow.clone(), GFP_KERNEL)?;
                w.requested = now;
                budget -= 1;
            }
        }
        Ok(())
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
        out.reserve(self.flow_waits.len(), GFP_KERNEL)?;
        for w in core::mem::take(&mut self.flow_waits).into_iter().flatten() {
            out.push(w.flow, GFP_KERNEL)?;
        }
        Ok(())
    }
}
