// SPDX-License-Identifier: GPL-2.0
//! Service traffic (datapath design, Part 2 §7): which destinations are
//! Kubernetes Services, and where a connection to one really went.
//!
//! A pod that connects to a ClusterIP sees the virtual address; kube-proxy's
//! DNAT (and maybe its masquerade SNAT) rewrites the SYN in the node's
//! network namespace after the client socket chose its destination, and
//! the server end sees the post-NAT tuple. So the client cannot decide at
//! `connect()`: the hook gates a connect to a configured Service CIDR
//! *tentatively* (no byte can leave), and decides at ESTABLISHED from the
//! translation recorded here, as the server end decides from its own
//! socket: secured with the post-NAT tuple if the backend is a pod on
//! another node and the client kept its address, left alone if the backend
//! is on the same node or not a pod, or if the node masqueraded the client
//! (the server then sees a node, not a pod); reset if no translation was
//! recorded or the client was rewritten to another pod's address.
//!
//! The translation comes from the POSTROUTING hook (`sys::netfilter`) of
//! every namespace: conntrack's original and reply tuples of a NATed
//! connection's first packet, recorded when the original destination is a
//! Service. The reply tuple is complete there (DNAT in PREROUTING or
//! OUTPUT, SNAT just before), and the record is in before the SYN reaches
//! the server, hence before the SYN-ACK can make the client ESTABLISHED.
//! (The SYN-ACK's own conntrack reference is dropped before TCP sees it,
//! `nf_reset_ct` in `tcp_v4_rcv`, and the client socket may live in
//! another namespace than the NAT: hence the record.)
//!
//! The same holds the other way round for a NodePort, hostPort or external
//! IP whose DNAT sends a connection to a pod this kernel serves: its client
//! addressed a node (not a pod, not a Service) and left the flow alone, but
//! the backend's socket sees the client pod's address. So such a
//! translation is recorded for the server end too (keyed by the tuple its
//! socket sees), and the server's ESTABLISHED probe, finding it, leaves the
//! flow alone as its client did.
//!
//! Records live in a fixed table ([`RECORD_SHARDS`] × [`RECORD_WAYS`], each
//! shard under its own BH spinlock, hashed with a random seed), taken by
//! the client's ESTABLISHED probe. A SYN retransmission rewrites its
//! record; a full shard evicts its oldest record (that connect then fails
//! closed), so a flood of unanswered Service SYNs costs availability,
//! never plaintext. Records older than [`RECORD_MAX_AGE_MS`] are ignored.
//! O(1) per Service connect; nothing per packet but the hook's conntrack
//! check. Any context; never sleeps, never allocates.

use crate::state::mapping::IpAddr;
use crate::sys::bhlock::{new_bh_spinlock, BhSpinLock};
use crate::sys::netfilter::NatTuples;
use crate::sys::workq;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

/// A Service CIDR: an address prefix with its host bits zero.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    ip: IpAddr,
    len: u8,
}

impl Cidr {
    /// `ip/len`, if `len` fits the family and no host bit is set.
    pub(crate) fn new(ip: IpAddr, len: u8) -> Option<Self> {
        let bytes = ip.as_bytes();
        if usize::from(len) > bytes.len() * 8 {
            return None;
        }
        let c = Self { ip, len };
        // The prefix of itself with host bits cleared must be itself.
        bytes
            .iter()
            .enumerate()
            .all(|(i, b)| b & !mask_byte(len, i) == 0)
            .then_some(c)
    }

    pub(crate) fn ip(&self) -> &IpAddr {
        &self.ip
    }

    pub(crate) fn len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` is inside (same family, same prefix).
    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
        let (a, b) = (self.ip.as_bytes(), ip.as_bytes());
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .enumerate()
                .all(|(i, (x, y))| (x ^ y) & mask_byte(self.len, i) == 0)
    }
}

/// The network-mask byte `i` of a `len`-bit prefix.
fn mask_byte(len: u8, i: usize) -> u8 {
    let bits = usize::from(len).saturating_sub(i * 8).min(8);
    if bits == 0 {
        0
    } else {
        0xffu8 << (8 - bits)
    }
}

/// A set of CIDRs (the Service CIDRs, at most `uapi::MAX_SERVICE_CIDRS`;
/// the pod CIDRs, at most `uapi::MAX_POD_CIDRS`), published under RCU by
/// the control plane.
pub(crate) struct CidrSet {
    list: KVec<Cidr>,
}

impl CidrSet {
    pub(crate) fn new(list: KVec<Cidr>) -> Self {
        Self { list }
    }

    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
        self.list.iter().any(|c| c.contains(ip))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Cidr> {
        self.list.iter()
    }
}

/// Shards of the record table (a power of two).
pub(crate) const RECORD_SHARDS: usize = 16;
/// Records per shard.
pub(crate) const RECORD_WAYS: usize = 16;
/// A record this old is stale: the connect's SYN retries (about 127 s by
/// default) are over.
pub(crate) const RECORD_MAX_AGE_MS: u32 = 180_000;

/// Where a Service connect went, as the server end sees it.
pub(crate) struct Translation {
    /// The backend's address and port (the server's local end).
    pub(crate) backend: IpAddr,
    pub(crate) backend_port: u16,
    /// The client's address and port after any SNAT (the server's remote
    /// end).
    pub(crate) client: IpAddr,
    pub(crate) client_port: u16,
}

/// Which end takes a record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// A local pod's connect to a Service: keyed by its socket's tuple
    /// (before NAT).
    Client,
    /// A connection DNATed from a node address to a local pod: keyed by the
    /// backend socket's tuple (after NAT, remote first).
    Server,
}

/// One record: the tuple its end's socket has, and where it went.
#[derive(Clone, Copy)]
struct Record {
    /// Jiffies when recorded; 0: the slot is free.
    at: u64,
    end: End,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    backend: IpAddr,
    backend_port: u16,
    client: IpAddr,
    client_port: u16,
}

const FREE: Record = Record {
    at: 0,
    end: End::Client,
    src: IpAddr::ZERO,
    sport: 0,
    dst: IpAddr::ZERO,
    dport: 0,
    backend: IpAddr::ZERO,
    backend_port: 0,
    client: IpAddr::ZERO,
    client_port: 0,
};

impl Record {
    fn is(&self, end: End, src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16) -> bool {
        self.at != 0
            && self.end == end
            && self.sport == sport
            && self.dport == dport
            && self.src == *src
            && self.dst == *dst
    }
}

/// One shard of the records: a few ways under one BH spinlock.
type Shard = BhSpinLock<[Record; RECORD_WAYS]>;

/// The NAT records of Service connects waiting for their SYN-ACK.
#[pin_data]
pub(crate) struct NatRecords {
    seed: u32,
    #[pin]
    shards: [Shard; RECORD_SHARDS],
    /// Records in the table (gauge, `service-records`).
    count: AtomicU64,
}

/// An address of a [`NatTuples`].
pub(crate) fn addr(v6: bool, b: &[u8; 16]) -> IpAddr {
    if v6 {
        IpAddr::v6(*b)
    } else {
        IpAddr::v4([b[0], b[1], b[2], b[3]])
    }
}

impl NatRecords {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(NatRecords {
            seed: crate::sys::rand::u32(),
            // One lock class for all shards: no path holds two.
            shards <- kernel::init::pin_init_array_from_fn(|_| new_bh_spinlock!(
                [FREE; RECORD_WAYS],
                "tlshub::NatRecords"
            )),
            count: AtomicU64::new(0),
        })
    }

    fn shard(&self, src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16) -> usize {
        let mut h = crate::state::probe::hash_bytes(self.seed, src.as_bytes());
        h = crate::state::probe::hash_bytes(h, dst.as_bytes());
        let (a, b) = (sport.to_be_bytes(), dport.to_be_bytes());
        h = crate::state::probe::hash_bytes(h, &[a[0], a[1], b[0], b[1]]);
        h as usize & (RECORD_SHARDS - 1)
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Record translation `t` for `end` (the POSTROUTING hook, any
    /// context).
    pub(crate) fn record(&self, end: End, t: &NatTuples) {
        let (backend, client) = (addr(t.v6, &t.reply_src), addr(t.v6, &t.reply_dst));
        let (src, sport, dst, dport) = match end {
            End::Client => (
                addr(t.v6, &t.orig_src),
                t.orig_sport,
                addr(t.v6, &t.orig_dst),
                t.orig_dport,
            ),
            End::Server => (client, t.reply_dport, backend, t.reply_sport),
        };
        let r = Record {
            at: workq::jiffies().max(1),
            end,
            src,
            sport,
            dst,
            dport,
            backend,
            backend_port: t.reply_sport,
            client,
            client_port: t.reply_dport,
        };
        let Some(shard) = self
            .shards
            .get(self.shard(&r.src, r.sport, &r.dst, r.dport))
        else {
            return;
        };
        let mut s = shard.lock();
        // The same connect again (a retransmitted SYN), else a free slot,
        // else the oldest.
        let mut at = 0;
        let mut best = u64::MAX;
        for (i, x) in s.iter().enumerate() {
            if x.is(end, &r.src, r.sport, &r.dst, r.dport) {
                at = i;
                break;
            }
            if x.at < best {
                best = x.at;
                at = i;
            }
        }
        if let Some(slot) = s.get_mut(at) {
            if slot.at == 0 {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            *slot = r;
        }
    }

    /// Whether `end` has a record of `src:sport → dst:dport`, left in place
    /// (a passive Fast Open child's SYN-ACK, before its ESTABLISHED probe
    /// takes it). Any context.
    pub(crate) fn has(&self, end: End, src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16) -> bool {
        self.shard_of(src, sport, dst, dport).is_some_and(|shard| {
            shard
                .lock()
                .iter()
                .any(|x| x.is(end, src, sport, dst, dport))
        })
    }

    /// The shard that would hold a record of `src:sport → dst:dport`;
    /// `None` while the table holds no record (then no lock is taken).
    fn shard_of(&self, src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16) -> Option<&Shard> {
        if self.count() == 0 {
            return None;
        }
        self.shards.get(self.shard(src, sport, dst, dport))
    }

    /// Take `end`'s record of the connection `src:sport → dst:dport` (its
    /// socket's own addresses, remote last for the client, first for the
    /// server; the ESTABLISHED probe, any context). A lock only while the
    /// table holds any record.
    pub(crate) fn take(
        &self,
        end: End,
        src: &IpAddr,
        sport: u16,
        dst: &IpAddr,
        dport: u16,
    ) -> Option<Translation> {
        let mut s = self.shard_of(src, sport, dst, dport)?.lock();
        let slot = s.iter_mut().find(|x| x.is(end, src, sport, dst, dport))?;
        let r = *slot;
        *slot = FREE;
        drop(s);
        self.count.fetch_sub(1, Ordering::Relaxed);
        let age = workq::jiffies().wrapping_sub(r.at);
        if age > workq::ms_to_jiffies(RECORD_MAX_AGE_MS) {
            return None;
        }
        Some(Translation {
            backend: r.backend,
            backend_port: r.backend_port,
            client: r.client,
            client_port: r.client_port,
        })
    }
}
