// SPDX-License-Identifier: GPL-2.0
//! The pod-node mapping: which peer addresses are pods, and on which node
//! each pod lives (and where that node's TLSHub agent listens).
//!
//! A [`Table`] is immutable once built; changes build a new table with a
//! [`Builder`] and swap it in whole under RCU (see `rcu.rs`), so the datapath
//! reads it from softirq without locks. Lookups by pod IP, pod name and node
//! name are O(1) through open-addressing indexes. Names live in one string
//! arena and entries in flat vectors: 100k pods are a handful of allocations.

use kernel::prelude::*;

/// Longest Kubernetes object name (DNS-1123 subdomain).
pub(crate) const NAME_MAX_LEN: usize = crate::uapi::NAME_MAX_LEN;
/// IP addresses one pod may have.
pub(crate) const MAX_POD_IPS: usize = crate::uapi::MAX_POD_IPS;
/// Most pods one table may hold: bounds the memory an update can pin.
pub(crate) const MAX_PODS: usize = 1 << 20;

/// Why a change to a table was refused. After any error the [`Builder`] is
/// discarded by its user: changes are all-or-nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapError {
    InvalidName,
    DuplicatePod,
    DuplicateIp,
    DuplicateNode,
    TooManyIps,
    NoSuchPod,
    NoSuchNode,
    NodeHasPods,
    TooBig,
    NoMem,
}

impl From<MapError> for Error {
    fn from(e: MapError) -> Error {
        match e {
            MapError::InvalidName | MapError::TooManyIps => EINVAL,
            MapError::DuplicatePod | MapError::DuplicateIp | MapError::DuplicateNode => EEXIST,
            MapError::NoSuchPod | MapError::NoSuchNode => ENOENT,
            MapError::NodeHasPods => EBUSY,
            MapError::TooBig => E2BIG,
            MapError::NoMem => ENOMEM,
        }
    }
}

impl From<kernel::alloc::AllocError> for MapError {
    fn from(_: kernel::alloc::AllocError) -> Self {
        MapError::NoMem
    }
}

/// An IPv4 or IPv6 address, in network byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpAddr {
    v6: bool,
    bytes: [u8; 16],
}

impl IpAddr {
    /// An IPv4 address (network byte order).
    pub(crate) fn v4(a: [u8; 4]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&a);
        Self { v6: false, bytes }
    }

    /// An IPv6 address (network byte order).
    pub(crate) fn v6(bytes: [u8; 16]) -> Self {
        Self { v6: true, bytes }
    }

    /// The IPv4 address, if this is one.
    pub(crate) fn as_v4(&self) -> Option<[u8; 4]> {
        if self.v6 {
            return None;
        }
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.bytes[..4]);
        Some(a)
    }

    /// The IPv6 address, if this is one.
    pub(crate) fn as_v6(&self) -> Option<[u8; 16]> {
        self.v6.then_some(self.bytes)
    }

    fn hash(&self) -> u32 {
        hash_bytes(&self.bytes) ^ u32::from(self.v6)
    }
}

/// Where a node's TLSHub agent listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeAddr {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
}

/// FNV-1a: tiny and good enough for names and addresses that only an
/// administrator can insert.
fn hash_bytes(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Kubernetes DNS-1123 subdomain: at most 253 bytes of dot-separated
/// labels, each of lowercase alphanumerics and '-', starting and ending
/// alphanumeric (the same rule `tlshubctl` applies to files).
pub(crate) fn valid_name(name: &[u8]) -> bool {
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label_ok = |l: &[u8]| match (l.first(), l.last()) {
        (Some(f), Some(e)) => alnum(f) && alnum(e) && l.iter().all(|c| alnum(c) || *c == b'-'),
        _ => false,
    };
    !name.is_empty() && name.len() <= NAME_MAX_LEN && name.split(|c| *c == b'.').all(label_ok)
}

#[derive(Clone, Copy, Default)]
struct Slot {
    hash: u32,
    /// Entry index + 1; 0 marks an empty slot.
    idx1: u32,
}

/// Open-addressing hash index from a key to an entry index. Keys live in
/// the entries; `find` is given an equality test on entry indexes.
struct Index {
    slots: KVVec<Slot>,
    len: usize,
}

impl Index {
    fn new() -> Self {
        Self {
            slots: KVVec::new(),
            len: 0,
        }
    }

    fn find(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = hash as usize & mask;
        loop {
            let s = self.slots.get(i)?;
            if s.idx1 == 0 {
                return None;
            }
            if s.hash == hash && eq(s.idx1 - 1) {
                return Some(s.idx1 - 1);
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert an entry known to be absent.
    fn insert(&mut self, hash: u32, idx: u32) -> Result<(), MapError> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow()?;
        }
        Self::place(
            &mut self.slots,
            Slot {
                hash,
                idx1: idx + 1,
            },
        );
        self.len += 1;
        Ok(())
    }

    fn place(slots: &mut KVVec<Slot>, slot: Slot) {
        let mask = slots.len() - 1;
        let mut i = slot.hash as usize & mask;
        while let Some(s) = slots.get_mut(i) {
            if s.idx1 == 0 {
                *s = slot;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) -> Result<(), MapError> {
        let cap = (self.slots.len() * 2).max(16);
        let mut slots = KVVec::from_elem(Slot::default(), cap, GFP_KERNEL)?;
        for s in self.slots.iter().filter(|s| s.idx1 != 0) {
            Self::place(&mut slots, *s);
        }
        self.slots = slots;
        Ok(())
    }
}

/// A name stored in the table's string arena.
#[derive(Clone, Copy)]
struct Span {
    off: u32,
    len: u16,
}

struct NodeEntry {
    name: Span,
    addr: Option<NodeAddr>,
    pods: u32,
}

struct PodEntry {
    name: Span,
    node: u32,
    ip_start: u32,
    ip_len: u8,
}

struct PodIp {
    addr: IpAddr,
    pod: u32,
}

/// An immutable mapping, shared by readers under RCU.
pub(crate) struct Table {
    strings: KVVec<u8>,
    nodes: KVVec<NodeEntry>,
    pods: KVVec<PodEntry>,
    ips: KVVec<PodIp>,
    pod_index: Index,
    node_index: Index,
    ip_index: Index,
    generation: u32,
}

/// A node as seen by readers.
#[derive(Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) addr: Option<NodeAddr>,
}

/// A pod as seen by readers.
#[derive(Clone, Copy)]
pub(crate) struct PodRef<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) node: NodeRef<'a>,
    ips: &'a [PodIp],
}

impl<'a> PodRef<'a> {
    /// The pod's addresses, in the order they were given.
    pub(crate) fn ips(&self) -> impl Iterator<Item = IpAddr> + 'a {
        self.ips.iter().map(|p| p.addr)
    }
}

impl Table {
    /// An empty table.
    pub(crate) fn new() -> Self {
        Self {
            strings: KVVec::new(),
            nodes: KVVec::new(),
            pods: KVVec::new(),
            ips: KVVec::new(),
            pod_index: Index::new(),
            node_index: Index::new(),
            ip_index: Index::new(),
            generation: 0,
        }
    }

    pub(crate) fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bumped by every committed change; lets dumps detect a concurrent swap.
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    fn str(&self, s: Span) -> &[u8] {
        let off = s.off as usize;
        self.strings
            .get(off..off + usize::from(s.len))
            .unwrap_or(&[])
    }

    /// The `i`-th node, in insertion order.
    pub(crate) fn node(&self, i: usize) -> Option<NodeRef<'_>> {
        let n = self.nodes.get(i)?;
        Some(NodeRef {
            name: self.str(n.name),
            addr: n.addr,
        })
    }

    /// The `i`-th pod, in insertion order.
    pub(crate) fn pod(&self, i: usize) -> Option<PodRef<'_>> {
        let p = self.pods.get(i)?;
        let start = p.ip_start as usize;
        Some(PodRef {
            name: self.str(p.name),
            node: self.node(p.node as usize)?,
            ips: self.ips.get(start..start + usize::from(p.ip_len))?,
        })
    }

    fn pod_idx(&self, name: &[u8]) -> Option<u32> {
        self.pod_index.find(hash_bytes(name), |i| {
            self.pods.get(i as usize).map(|p| self.str(p.name)) == Some(name)
        })
    }

    fn node_idx(&self, name: &[u8]) -> Option<u32> {
        self.node_index.find(hash_bytes(name), |i| {
            self.nodes.get(i as usize).map(|n| self.str(n.name)) == Some(name)
        })
    }

    fn ip_idx(&self, ip: &IpAddr) -> Option<u32> {
        self.ip_index.find(ip.hash(), |i| {
            self.ips.get(i as usize).map(|p| &p.addr) == Some(ip)
        })
    }

    /// The pod called `name` (`get_node_by_pod`).
    pub(crate) fn pod_by_name(&self, name: &[u8]) -> Option<PodRef<'_>> {
        self.pod(self.pod_idx(name)? as usize)
    }

    /// The pod owning `ip`: the datapath's question. Safe in any context.
    pub(crate) fn pod_by_ip(&self, ip: &IpAddr) -> Option<PodRef<'_>> {
        let pip = self.ips.get(self.ip_idx(ip)? as usize)?;
        self.pod(pip.pod as usize)
    }

    /// The node called `name`.
    pub(crate) fn node_by_name(&self, name: &[u8]) -> Option<NodeRef<'_>> {
        self.node(self.node_idx(name)? as usize)
    }
}

/// Builds a new [`Table`], checking every invariant as entries arrive.
pub(crate) struct Builder {
    t: Table,
}

impl Builder {
    /// Start from an empty table.
    pub(crate) fn new() -> Self {
        Self { t: Table::new() }
    }

    /// Start from a copy of `old`, leaving out the pod `skip_pod` and the
    /// node `skip_node` (the latter must have no pods left).
    pub(crate) fn copy_of(
        old: &Table,
        skip_pod: Option<&[u8]>,
        skip_node: Option<&[u8]>,
    ) -> Result<Self, MapError> {
        let mut b = Self::new();
        for i in 0..old.node_count() {
            if let Some(n) = old.node(i) {
                if Some(n.name) != skip_node {
                    b.add_node(n.name, n.addr, false)?;
                }
            }
        }
        for i in 0..old.pod_count() {
            if let Some(p) = old.pod(i) {
                if Some(p.name) == skip_pod {
                    continue;
                }
                if Some(p.node.name) == skip_node {
                    return Err(MapError::NodeHasPods);
                }
                let mut ips = [IpAddr::v4([0; 4]); MAX_POD_IPS];
                let mut n = 0;
                for (slot, ip) in ips.iter_mut().zip(p.ips()) {
                    *slot = ip;
                    n += 1;
                }
                b.add_pod(p.name, p.node.name, &ips[..n])?;
            }
        }
        Ok(b)
    }

    fn intern(&mut self, name: &[u8]) -> Result<Span, MapError> {
        let off = u32::try_from(self.t.strings.len()).map_err(|_| MapError::TooBig)?;
        let len = u16::try_from(name.len()).map_err(|_| MapError::InvalidName)?;
        self.t.strings.extend_from_slice(name, GFP_KERNEL)?;
        Ok(Span { off, len })
    }

    fn push_node(&mut self, name: &[u8], addr: Option<NodeAddr>) -> Result<u32, MapError> {
        let idx = u32::try_from(self.t.nodes.len()).map_err(|_| MapError::TooBig)?;
        let span = self.intern(name)?;
        self.t.nodes.push(
            NodeEntry {
                name: span,
                addr,
                pods: 0,
            },
            GFP_KERNEL,
        )?;
        self.t.node_index.insert(hash_bytes(name), idx)?;
        Ok(idx)
    }

    /// Declare node `name`. A node first named by a pod has no address yet
    /// and may get one here; declaring an address twice is an error unless
    /// `update` is set (map-add), which overwrites it.
    pub(crate) fn add_node(
        &mut self,
        name: &[u8],
        addr: Option<NodeAddr>,
        update: bool,
    ) -> Result<(), MapError> {
        if !valid_name(name) {
            return Err(MapError::InvalidName);
        }
        let Some(idx) = self.t.node_idx(name) else {
            return self.push_node(name, addr).map(|_| ());
        };
        let entry = self
            .t
            .nodes
            .get_mut(idx as usize)
            .ok_or(MapError::NoSuchNode)?;
        match (entry.addr, addr) {
            (_, None) => Ok(()),
            (Some(_), Some(_)) if !update => Err(MapError::DuplicateNode),
            (_, new) => {
                entry.addr = new;
                Ok(())
            }
        }
    }

    /// Add pod `name` on `node` with addresses `ips`; the node is created if
    /// needed. Checks everything before changing anything.
    pub(crate) fn add_pod(
        &mut self,
        name: &[u8],
        node: &[u8],
        ips: &[IpAddr],
    ) -> Result<(), MapError> {
        if !valid_name(name) || !valid_name(node) {
            return Err(MapError::InvalidName);
        }
        if ips.len() > MAX_POD_IPS {
            return Err(MapError::TooManyIps);
        }
        if self.t.pod_idx(name).is_some() {
            return Err(MapError::DuplicatePod);
        }
        if self.t.pods.len() >= MAX_PODS {
            return Err(MapError::TooBig);
        }
        for (i, ip) in ips.iter().enumerate() {
            if self.t.ip_idx(ip).is_some() || ips[..i].contains(ip) {
                return Err(MapError::DuplicateIp);
            }
        }
        let node_idx = match self.t.node_idx(node) {
            Some(i) => i,
            None => self.push_node(node, None)?,
        };
        let pod_idx = u32::try_from(self.t.pods.len()).map_err(|_| MapError::TooBig)?;
        let ip_start = u32::try_from(self.t.ips.len()).map_err(|_| MapError::TooBig)?;
        for (i, ip) in ips.iter().enumerate() {
            self.t.ips.push(
                PodIp {
                    addr: *ip,
                    pod: pod_idx,
                },
                GFP_KERNEL,
            )?;
            self.t.ip_index.insert(ip.hash(), ip_start + i as u32)?;
        }
        let span = self.intern(name)?;
        self.t.pods.push(
            PodEntry {
                name: span,
                node: node_idx,
                ip_start,
                ip_len: ips.len() as u8,
            },
            GFP_KERNEL,
        )?;
        self.t.pod_index.insert(hash_bytes(name), pod_idx)?;
        if let Some(n) = self.t.nodes.get_mut(node_idx as usize) {
            n.pods += 1;
        }
        Ok(())
    }

    /// The finished table, stamped with `generation`.
    pub(crate) fn finish(mut self, generation: u32) -> Table {
        self.t.generation = generation;
        self.t
    }
}
