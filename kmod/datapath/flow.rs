// SPDX-License-Identifier: GPL-2.0
//! Tracked flows and the table that finds them by `struct sock`.
//!
//! A [`Flow`] exists from the moment the hook decides a connection must be
//! secured (connect: CLOSE→SYN_SENT; accept: SYN_RECV→ESTABLISHED) until the
//! connection closes. It holds a reference on its sock, both pods, the wire
//! facts captured at ESTABLISHED (ports, ISNs), and — in process context,
//! under its mutex — whether the app can reach the socket yet, the derived
//! keys (wiped in place) and its progress. It never keeps a pointer to the
//! app's `struct socket`: installs reach it as `sk->sk_socket` under the
//! socket lock, where it cannot be freed (review M1). Its size is bounded (well under 512 bytes plus the fixed
//! Mutex/CondVar/work items); keys are dropped as soon as kTLS has them.
//!
//! The table also records gated listeners, so that unload can give them
//! their ops back. It is [`SHARDS`] rbtrees, each under its own BH spinlock
//! (the hook runs in softirq), a sock going to the shard its key hashes to:
//! no lock is global, so the wire guard's lookup for a secured flow's
//! segment (review M4) contends only with flows of its shard; O(log n) in
//! the flows of that shard; a lock is held for a lookup or an insert of a
//! node allocated beforehand, and never two at once.
//!
//! In front of the tree sits [`PRESENT`], a counting filter over the keys
//! in it: a lookup whose slot counts zero answers "not tracked" with one
//! atomic load and no lock. That is the common case by far: every payload
//! segment of every TCP socket passes the wire guard, and every state
//! change of every TCP socket passes the hook, while only secured flows are
//! in the tree (Part 1 §1: untouched traffic pays nothing per packet that
//! takes a lock). A slot is counted up before its key goes into the tree
//! and down after it left, so the filter never hides an entry; a socket
//! that shares a slot with a tracked one just takes the locked path.
//!
//! Phases: an atomic, readable from any context, changed only through the
//! methods below, each a compare-and-swap (so a failure is never
//! overwritten by a late step). The whole machine:
//!
//! | transition                          | method          | taken by |
//! |-------------------------------------|-----------------|----------|
//! | `CONNECTING` → `ESTABLISHED`        | [`Flow::established`] | the hook (ISNs captured; a passive flow is born `CONNECTING` and moves at once) |
//! | `ESTABLISHED` → `KEY_WAIT`          | [`Flow::to_key_wait`] | the worker (no secret yet; the flow joins a wait list) |
//! | `ESTABLISHED`/`KEY_WAIT` → `KEYED`  | [`Flow::to_keyed`]    | the worker, under the flow lock (keys derived) |
//! | `KEYED` → `SECURED`                 | [`Flow::to_secured`]  | the installer under the flow lock: the worker, the gate's first call, our `accept()` |
//! | any but `SECURED`/`CLOSED` → `FAILED` | [`Flow::fail`]      | anyone (tick, control plane, hook, installer); the worker then resets |
//! | `SECURED` → `FAILED`                | [`Flow::fail_any`]    | the wire guard only |
//! | any but `SECURED` → `CLOSED`        | [`Flow::to_closed`]   | the hook at `→CLOSE` |
//! | any → `CLOSED`                      | [`Flow::to_closed`] (`always`) | unload/drain, after it let go of the socket |
//! | `CONNECTING` → `HANDED_OFF`         | [`Flow::hand_off`]    | the hook, for a tentative Service flow at ESTABLISHED |

use crate::keys::schedule::{Cipher, FlowKeys, Ip, Isns, Tuple};
use crate::state::mapping::{IpAddr, Pod};
use crate::sys::bhlock::{new_bh_spinlock, BhSpinLock};
use crate::sys::sock::{Sock, SockRef};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode};
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};

pub(crate) const CONNECTING: u32 = 0;
pub(crate) const ESTABLISHED: u32 = 1;
pub(crate) const KEY_WAIT: u32 = 2;
pub(crate) const KEYED: u32 = 3;
pub(crate) const SECURED: u32 = 4;
pub(crate) const FAILED: u32 = 5;
pub(crate) const CLOSED: u32 = 6;
/// A tentative Service flow decided at ESTABLISHED (`super::services`):
/// out of the table, replaced by the flow it resolved to or by nothing
/// (left alone). Threads parked on it look again.
pub(crate) const HANDED_OFF: u32 = 7;

/// Why a flow was reset (counted per reason).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    KeyTimeout,
    Install,
    StaleSender,
    Unsupported,
    Unload,
    /// The wire guard saw a segment that was not TLS.
    Guard,
    /// The key provider said no secret can be had for the peer.
    KeyRefused,
    /// The repeat window refused its key inputs (`keys::repeat`).
    KeyRepeat,
    /// This end has no secret of the epoch the client announced in its
    /// ISN, and will not get one (`keys::announce`).
    KeyEpoch,
    /// A Service connect with no NAT record, or one the ends cannot agree
    /// on (`super::services`).
    Service,
    /// A passive TCP Fast Open child of a listener the module never gated
    /// (review L6): failed closed at its SYN-ACK (`super::hook`).
    FastOpen,
}

impl Reason {
    fn code(self) -> u8 {
        match self {
            Reason::KeyTimeout => 1,
            Reason::Install => 2,
            Reason::StaleSender => 3,
            Reason::Unsupported => 4,
            Reason::Unload => 5,
            Reason::Guard => 6,
            Reason::KeyRefused => 7,
            Reason::KeyRepeat => 8,
            Reason::KeyEpoch => 9,
            Reason::Service => 10,
            Reason::FastOpen => 11,
        }
    }
}

/// Process-context state of a flow (under `Flow::inner`).
pub(crate) struct Inner {
    /// The app can reach the socket: a connecting end, or a passive child
    /// our `accept()` handed out. Until then a passive child sits on its
    /// listener's queue, where the kernel assumes nobody owns it
    /// (`inet_csk_listen_stop`): the worker neither installs on it nor
    /// locks it; `accept()` does (review H2).
    pub(crate) in_app: bool,
    /// Derived keys, until kTLS has them; wiped in place when dropped
    /// (never moved out: a move leaves the bytes behind). Boxed: only for
    /// the moment between derivation and install, so a flow that lives on
    /// (every secured one, in the table until it closes) does not carry
    /// 92 bytes of empty key storage (bench/scale).
    pub(crate) keys: Option<KBox<FlowKeys>>,
    /// Reset already sent.
    pub(crate) aborted: bool,
}

/// One connection the datapath secures.
#[pin_data]
pub(crate) struct Flow {
    pub(crate) sk: SockRef,
    /// This kernel keys the connecting end.
    pub(crate) client: bool,
    /// A tentative connect to a Service address: `remote_ip` is the
    /// Service's and `remote_pod` stands in (the local pod) until the hook
    /// hands it off at ESTABLISHED; never keyed.
    pub(crate) service: bool,
    pub(crate) v6: bool,
    pub(crate) local_ip: IpAddr,
    pub(crate) remote_ip: IpAddr,
    pub(crate) local_pod: Arc<Pod>,
    pub(crate) remote_pod: Arc<Pod>,
    /// Jiffies when decided.
    pub(crate) born: u64,
    /// The cipher chosen when the flow was decided.
    pub(crate) cipher: Cipher,
    /// Key-provider mode when the flow was decided (for `flows`).
    mode: u32,
    phase: AtomicU32,
    reason: AtomicU8,
    /// A thread was blocked on the socket lock when the gate went in.
    pub(crate) tainted: AtomicBool,
    /// Jiffies after which a flow still without keys is reset (read by the
    /// tick without the flow lock).
    pub(crate) deadline: AtomicU64,
    /// Wire facts, written once by the ESTABLISHED probe before the phase
    /// moves to `ESTABLISHED` (release), read after seeing it (acquire).
    local_port: AtomicU32,
    remote_port: AtomicU32,
    snd_isn: AtomicU32,
    rcv_isn: AtomicU32,
    /// The wire guard's framing state (`super::guard`).
    #[pin]
    pub(crate) guard: BhSpinLock<super::guard::GuardState>,
    #[pin]
    pub(crate) inner: Mutex<Inner>,
    /// Parked app threads wait here.
    #[pin]
    pub(crate) cv: CondVar,
    #[pin]
    work: Work<Flow>,
}

impl_has_work! {
    impl HasWork<Flow> for Flow { self.work }
}

impl WorkItem for Flow {
    type Pointer = Arc<Flow>;

    fn run(this: Arc<Flow>) {
        super::process(&this);
    }
}

/// What the hook knows when it decides.
pub(crate) struct Decided {
    pub(crate) client: bool,
    /// See [`Flow::service`].
    pub(crate) service: bool,
    pub(crate) local_ip: IpAddr,
    pub(crate) remote_ip: IpAddr,
    pub(crate) local_pod: Arc<Pod>,
    pub(crate) remote_pod: Arc<Pod>,
    pub(crate) cipher: Cipher,
    pub(crate) mode: u32,
    pub(crate) now: u64,
    /// See [`Inner::in_app`].
    pub(crate) in_app: bool,
}

impl Flow {
    /// A new flow (atomic allocation: the hook may run in softirq).
    pub(crate) fn new(sk: &Sock, d: Decided) -> Result<Arc<Flow>> {
        Arc::pin_init(
            pin_init!(Flow {
                sk: sk.hold(),
                client: d.client,
                service: d.service,
                v6: sk.is_v6(),
                local_ip: d.local_ip,
                remote_ip: d.remote_ip,
                local_pod: d.local_pod,
                remote_pod: d.remote_pod,
                born: d.now,
                cipher: d.cipher,
                mode: d.mode,
                phase: AtomicU32::new(CONNECTING),
                reason: AtomicU8::new(0),
                tainted: AtomicBool::new(false),
                deadline: AtomicU64::new(0),
                local_port: AtomicU32::new(0),
                remote_port: AtomicU32::new(0),
                snd_isn: AtomicU32::new(0),
                rcv_isn: AtomicU32::new(0),
                guard <- new_bh_spinlock!(None, "tlshub::Flow::guard"),
                inner <- new_mutex!(Inner {
                    in_app: d.in_app,
                    keys: None,
                    aborted: false,
                }),
                cv <- new_condvar!(),
                work <- new_work!("tlshub::Flow::work"),
            }),
            GFP_ATOMIC,
        )
    }

    pub(crate) fn cipher_id(&self) -> u8 {
        self.cipher.id()
    }

    pub(crate) fn mode(&self) -> u32 {
        self.mode
    }

    pub(crate) fn phase(&self) -> u32 {
        self.phase.load(Ordering::Acquire)
    }

    /// Move from phase `from` to `to` unless someone else moved it first
    /// (a failure). Returns whether this call did it.
    fn advance(&self, from: u32, to: u32) -> bool {
        self.phase
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The hook: record the wire facts at ESTABLISHED and move there from
    /// `CONNECTING` (the facts are written before the phase is, and read
    /// after it is seen). Returns whether it moved (not if it failed first).
    pub(crate) fn established(&self, sk: &Sock) -> bool {
        self.established_to(sk, sk.remote().port)
    }

    /// [`Flow::established`] of a Service flow: the server's port is
    /// `remote_port` (after DNAT), not the socket's.
    pub(crate) fn established_to(&self, sk: &Sock, remote_port: u16) -> bool {
        let (una, nxt) = sk.una_nxt();
        self.local_port
            .store(u32::from(sk.local().port), Ordering::Relaxed);
        self.remote_port
            .store(u32::from(remote_port), Ordering::Relaxed);
        self.snd_isn.store(una.wrapping_sub(1), Ordering::Relaxed);
        self.rcv_isn.store(nxt.wrapping_sub(1), Ordering::Relaxed);
        self.advance(CONNECTING, ESTABLISHED)
    }

    /// The hook: a tentative Service flow was decided (replaced or left
    /// alone). Returns whether it moved (not if it failed first).
    pub(crate) fn hand_off(&self) -> bool {
        self.advance(CONNECTING, HANDED_OFF)
    }

    /// The worker: no secret yet, the flow waits.
    pub(crate) fn to_key_wait(&self) -> bool {
        self.advance(ESTABLISHED, KEY_WAIT)
    }

    /// The worker, under the flow lock: keys derived.
    pub(crate) fn to_keyed(&self) -> bool {
        self.advance(ESTABLISHED, KEYED) || self.advance(KEY_WAIT, KEYED)
    }

    /// The installer, under the flow lock: kTLS TX and RX are in.
    pub(crate) fn to_secured(&self) -> bool {
        self.advance(KEYED, SECURED)
    }

    /// The connection is gone (the hook at `→CLOSE`: a secured flow keeps
    /// its phase), or the datapath let go of it (`always`).
    pub(crate) fn to_closed(&self, always: bool) {
        let mut cur = self.phase.load(Ordering::Acquire);
        while cur != CLOSED && (always || cur != SECURED) {
            match self
                .phase
                .compare_exchange(cur, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }

    /// Mark failed (first reason wins). Returns whether this call did it.
    pub(crate) fn fail(&self, why: Reason) -> bool {
        self.fail_from(why, false)
    }

    /// Mark failed even if secured (the wire guard caught a segment that
    /// was not kTLS's).
    pub(crate) fn fail_any(&self, why: Reason) -> bool {
        self.fail_from(why, true)
    }

    fn fail_from(&self, why: Reason, secured_too: bool) -> bool {
        let _ = self
            .reason
            .compare_exchange(0, why.code(), Ordering::AcqRel, Ordering::Acquire);
        let mut cur = self.phase.load(Ordering::Acquire);
        loop {
            if (cur == SECURED && !secured_too)
                || cur == FAILED
                || cur == CLOSED
                || cur == HANDED_OFF
            {
                return false;
            }
            match self
                .phase
                .compare_exchange(cur, FAILED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
    }

    pub(crate) fn ports(&self) -> (u16, u16) {
        (
            self.local_port.load(Ordering::Relaxed) as u16,
            self.remote_port.load(Ordering::Relaxed) as u16,
        )
    }

    /// `(snd_isn, rcv_isn)`: our ISN and the peer's.
    pub(crate) fn isns(&self) -> (u32, u32) {
        (
            self.snd_isn.load(Ordering::Relaxed),
            self.rcv_isn.load(Ordering::Relaxed),
        )
    }

    /// The key schedule's view: client = the connecting end.
    pub(crate) fn tuple_isns(&self) -> (Tuple, Isns) {
        let (lp, rp) = self.ports();
        let (snd, rcv) = self.isns();
        let ip = |a: &IpAddr| match a.as_v4() {
            Some(v4) => Ip::V4(v4),
            None => Ip::V6(a.as_v6().unwrap_or([0; 16])),
        };
        let (l, r) = (ip(&self.local_ip), ip(&self.remote_ip));
        if self.client {
            (
                Tuple {
                    client_ip: l,
                    client_port: lp,
                    server_ip: r,
                    server_port: rp,
                },
                Isns {
                    client: snd,
                    server: rcv,
                },
            )
        } else {
            (
                Tuple {
                    client_ip: r,
                    client_port: rp,
                    server_ip: l,
                    server_port: lp,
                },
                Isns {
                    client: rcv,
                    server: snd,
                },
            )
        }
    }
}

/// An entry of the table.
pub(crate) enum Entry {
    Flow(Arc<Flow>),
    /// A listener carrying our listen gate.
    Listener(SockRef),
}

/// Slots of the presence filter (a power of two): 64 KiB.
const PRESENT_SLOTS: usize = 1 << 14;

/// How many table keys hash to each slot (see the file's doc). One table
/// exists at a time (the datapath's), so the filter is static: no
/// allocation, and it is back to all zeros whenever the table is empty.
static PRESENT: [AtomicU32; PRESENT_SLOTS] = {
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: AtomicU32 = AtomicU32::new(0);
    [ZERO; PRESENT_SLOTS]
};

/// The 14-bit hash of a table key (a sock address: drop the bits every
/// sock shares, then a multiplicative hash).
fn hash(key: usize) -> usize {
    // 64 - 50 = 14 bits: always below PRESENT_SLOTS.
    (((key as u64) >> 6).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50) as usize
}

/// The filter slot of a table key.
fn slot(key: usize) -> &'static AtomicU32 {
    &PRESENT[hash(key) & (PRESENT_SLOTS - 1)]
}

/// Shards of the table (a power of two, at most `PRESENT_SLOTS`).
pub(crate) const SHARDS: usize = 64;

/// The shard of a table key: the top bits of its hash.
pub(crate) fn shard_of(key: usize) -> usize {
    (hash(key) * SHARDS / PRESENT_SLOTS) & (SHARDS - 1)
}

/// One shard: an rbtree by sock address.
type Tree = RBTree<usize, Entry>;

/// A place in the table: (shard, sock key).
pub(crate) type Position = (usize, usize);

/// A round of a dump: flows, and where to go on from (`None`: the end).
pub(crate) type FlowsRound = (KVec<Arc<Flow>>, Option<Position>);

/// Flows and gated listeners by sock address.
#[pin_data]
pub(crate) struct FlowTable {
    #[pin]
    shards: [BhSpinLock<Tree>; SHARDS],
}

impl FlowTable {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(FlowTable {
            // One lock class for all shards: no path holds two.
            shards <- kernel::init::pin_init_array_from_fn(|_| new_bh_spinlock!(
                RBTree::new(),
                "tlshub::FlowTable"
            )),
        })
    }

    fn shard(&self, key: usize) -> &BhSpinLock<Tree> {
        &self.shards[shard_of(key)]
    }

    /// Insert (any context). A stale entry for the same sock (a listener
    /// that connects, a socket re-used after a failed connect) is replaced
    /// and returned, to be dropped by the caller.
    pub(crate) fn insert(&self, sk: &Sock, e: Entry) -> Result<Option<Entry>> {
        let key = sk.key();
        let node = RBTreeNode::new(key, e, GFP_ATOMIC)?;
        // Counted before it is in the tree (the filter never hides it).
        slot(key).fetch_add(1, Ordering::Relaxed);
        let old = self.shard(key).lock().insert(node);
        // A replaced entry had the same key: its count goes.
        Ok(old.map(|n| {
            slot(key).fetch_sub(1, Ordering::Relaxed);
            n.to_key_value().1
        }))
    }

    /// The flow of `sk`, if tracked (any context; no lock when the
    /// presence filter rules it out).
    pub(crate) fn flow(&self, sk: &Sock) -> Option<Arc<Flow>> {
        let key = sk.key();
        if slot(key).load(Ordering::Relaxed) == 0 {
            return None;
        }
        match self.shard(key).lock().get(&key) {
            Some(Entry::Flow(f)) => Some(f.clone()),
            _ => None,
        }
    }

    /// Take `sk`'s entry out (any context; no lock when the presence
    /// filter rules it out: the hook calls this on every close, of every
    /// TCP socket, review M4). An entry is counted before it goes in, and
    /// its socket's close is ordered after that by the socket lock.
    pub(crate) fn remove(&self, sk: &Sock) -> Option<Entry> {
        let key = sk.key();
        if slot(key).load(Ordering::Relaxed) == 0 {
            return None;
        }
        let old = self.shard(key).lock().remove(&key);
        if old.is_some() {
            // Uncounted after it left the tree.
            slot(key).fetch_sub(1, Ordering::Relaxed);
        }
        old
    }

    /// Everything, emptied out, shard by shard (unload).
    pub(crate) fn take_all(&self) -> [Tree; SHARDS] {
        let all: [Tree; SHARDS] =
            core::array::from_fn(|i| core::mem::take(&mut *self.shards[i].lock()));
        for t in all.iter() {
            for (k, _) in t.iter() {
                slot(*k).fetch_sub(1, Ordering::Relaxed);
            }
        }
        all
    }

    /// Flows from position `(shard, key)` on (shard by shard, in key order
    /// within one), at most `max`, with the position to continue from.
    /// Starts at `key` (O(log n)), so a whole dump in rounds of `max` costs
    /// O(n + SHARDS) node visits, not O(n²/max) (review M4).
    pub(crate) fn flows_from(&self, from: Position, max: usize) -> Result<FlowsRound> {
        let mut out = KVec::with_capacity(max, GFP_KERNEL)?;
        let (mut shard, mut key) = from;
        while shard < SHARDS {
            let mut t = self.shards[shard].lock();
            let mut cur = t.cursor_lower_bound(&key);
            while let Some(c) = cur {
                let (k, e) = c.current();
                if let Entry::Flow(f) = e {
                    if out.len() == max {
                        return Ok((out, Some((shard, *k))));
                    }
                    // Capacity reserved above: cannot fail or allocate.
                    out.push(f.clone(), GFP_ATOMIC)?;
                }
                cur = c.move_next();
            }
            drop(t);
            shard += 1;
            key = 0;
        }
        Ok((out, None))
    }
}
