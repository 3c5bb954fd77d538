// SPDX-License-Identifier: GPL-2.0
//! The pod-node mapping, writer side: which pods exist, on which node each
//! runs, where each node's TLSHub agent listens, in load order.
//!
//! Only the holder of the state's update mutex touches a [`Mapping`]; the
//! datapath never does (it asks the RCU address index, `ipindex.rs`). Every
//! change is O(1) in the table size: entries live in slabs kept in load
//! order (a deleted entry leaves a hole, compacted away once holes outnumber
//! entries), names are found through open-addressing indexes (`probe.rs`),
//! and a pod's addresses are linked into / unlinked from the address index
//! one by one. Each change first makes everything it needs (allocations,
//! checks), then applies it in steps that cannot fail: all or nothing.
//!
//! This file may touch the mapping and, through an [`IndexWriter`], the
//! address index.

use super::ident;
use super::ipindex::{IndexWriter, IpNode, NewNode};
use super::probe::{self, Slot};
use crate::sys::rcu::RetireList;
use crate::uapi;
use kernel::prelude::*;
use kernel::sync::Arc;

/// IP addresses one pod may have.
pub(crate) const MAX_POD_IPS: usize = uapi::MAX_POD_IPS;
/// Most pods one mapping may hold: bounds the memory an update can pin.
pub(crate) const MAX_PODS: usize = 1 << 20;
/// Most nodes one mapping may hold.
pub(crate) const MAX_NODES: usize = 1 << 16;

/// Why a change was refused. Nothing was changed.
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

impl From<Error> for MapError {
    fn from(_: Error) -> Self {
        MapError::NoMem
    }
}

/// An IPv4 or IPv6 address, in network byte order, canonical: an
/// IPv4-mapped IPv6 address is stored as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpAddr {
    v6: bool,
    bytes: [u8; 16],
}

impl IpAddr {
    /// `0.0.0.0`.
    pub(crate) const ZERO: Self = Self {
        v6: false,
        bytes: [0; 16],
    };

    /// An IPv4 address (network byte order).
    pub(crate) fn v4(a: [u8; 4]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&a);
        Self { v6: false, bytes }
    }

    /// An IPv6 address (network byte order); IPv4-mapped becomes IPv4.
    pub(crate) fn v6(bytes: [u8; 16]) -> Self {
        match ident::v4_mapped(&bytes) {
            Some(a) => Self::v4(a),
            None => Self { v6: true, bytes },
        }
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

    /// The address bytes (4 significant for IPv4), for hashing.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        if self.v6 {
            &self.bytes
        } else {
            &self.bytes[..4]
        }
    }
}

/// Where a node's TLSHub agent listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeAddr {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
}

/// A node's name; shared by the node entry and its pods.
pub(crate) struct NodeName(KVec<u8>);

impl NodeName {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Names up to this long are stored inside the pod (most Kubernetes
/// `namespace/name`s are), saving an allocation per pod.
const INLINE_NAME: usize = 64;

/// A pod's name: inline when short, on the heap otherwise.
enum PodName {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(KVec<u8>),
}

impl PodName {
    fn new(name: &[u8]) -> Result<Self, MapError> {
        if name.len() <= INLINE_NAME {
            let mut bytes = [0u8; INLINE_NAME];
            bytes[..name.len()].copy_from_slice(name);
            Ok(Self::Inline {
                len: name.len() as u8,
                bytes,
            })
        } else {
            Ok(Self::Heap(copy_name(name)?))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            Self::Heap(v) => v,
        }
    }
}

/// One pod. Immutable once made: a change makes a new one.
pub(crate) struct Pod {
    name: PodName,
    node: Arc<NodeName>,
    ips: [IpAddr; MAX_POD_IPS],
    n_ips: u8,
    host_network: bool,
    /// The pod's network namespace (its cookie; 0: not bound).
    netns: u64,
}

impl Pod {
    pub(crate) fn name(&self) -> &[u8] {
        self.name.as_bytes()
    }

    pub(crate) fn node(&self) -> &[u8] {
        self.node.as_bytes()
    }

    /// The pod's addresses, in the order given.
    pub(crate) fn ips(&self) -> &[IpAddr] {
        self.ips.get(..usize::from(self.n_ips)).unwrap_or(&[])
    }

    /// A hostNetwork pod: its addresses are its node's, it is no endpoint.
    pub(crate) fn host_network(&self) -> bool {
        self.host_network
    }

    /// The cookie of the network namespace the pod's sockets live in, if
    /// the mapping binds it (review M6).
    pub(crate) fn netns(&self) -> Option<u64> {
        (self.netns != 0).then_some(self.netns)
    }
}

/// A pod as requested (borrowed from a netlink message).
pub(crate) struct PodSpec<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) node: &'a [u8],
    pub(crate) ips: &'a [IpAddr],
    pub(crate) host_network: bool,
    /// See [`Pod::netns`] (0: not bound).
    pub(crate) netns: u64,
}

/// A node of the mapping.
pub(crate) struct NodeEntry {
    name: Arc<NodeName>,
    addr: Option<NodeAddr>,
    pods: u32,
    /// Named by a `node` entry (not only by its pods).
    declared: bool,
}

impl NodeEntry {
    pub(crate) fn name(&self) -> &[u8] {
        self.name.as_bytes()
    }

    pub(crate) fn addr(&self) -> Option<NodeAddr> {
        self.addr
    }
}

/// How to undo declaring a node (see [`Mapping::add`]).
enum NodeUndo {
    /// It existed: put its flag and address back.
    Restore {
        slot: u32,
        declared: bool,
        addr: Option<NodeAddr>,
    },
    /// It was created: remove it (it has no pods).
    Remove(u32),
}

/// Which half of a map-add was refused.
pub(crate) enum AddError {
    Node(MapError),
    Pod(MapError),
}

impl From<MapError> for AddError {
    fn from(e: MapError) -> Self {
        AddError::Pod(e)
    }
}

/// Entries in load order; a deleted entry leaves a hole.
struct Slab<T> {
    items: KVVec<Option<T>>,
    live: usize,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Self {
            items: KVVec::new(),
            live: 0,
        }
    }

    fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i)?.as_ref()
    }

    /// Room for one more push that then cannot fail.
    fn reserve(&mut self) -> Result<(), MapError> {
        self.items.reserve(1, GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    /// Push within reserved room; returns the position.
    fn push(&mut self, v: T) -> Result<u32, MapError> {
        let i = u32::try_from(self.items.len()).map_err(|_| MapError::TooBig)?;
        self.items.push(Some(v), GFP_KERNEL_ACCOUNT)?;
        self.live += 1;
        Ok(i)
    }

    fn take(&mut self, i: usize) -> Option<T> {
        let v = self.items.get_mut(i)?.take()?;
        self.live -= 1;
        Some(v)
    }

    fn holes(&self) -> usize {
        self.items.len() - self.live
    }
}

/// A name index over one slab.
struct NameIndex {
    slots: KVVec<Slot>,
    len: usize,
    seed: u32,
}

impl NameIndex {
    fn new(seed: u32) -> Self {
        Self {
            slots: KVVec::new(),
            len: 0,
            seed,
        }
    }

    fn hash(&self, name: &[u8]) -> u32 {
        probe::hash_bytes(self.seed, name)
    }

    fn find<'n>(
        &self,
        name: &[u8],
        name_of: impl Fn(u32) -> Option<&'n [u8]>,
    ) -> Option<(usize, u32)> {
        let pos = probe::find(&self.slots, self.hash(name), |i| name_of(i) == Some(name))?;
        Some((pos, self.slots.get(pos)?.entry()?))
    }

    /// Make sure one more insert fits (may rebuild the slots).
    fn reserve(&mut self) -> Result<(), MapError> {
        if probe::needs_grow(self.len, self.slots.len()) {
            self.resize(probe::capacity_for(self.len + 1))?;
        }
        Ok(())
    }

    fn resize(&mut self, cap: usize) -> Result<(), MapError> {
        let mut slots = KVVec::from_elem(Slot::default(), cap, GFP_KERNEL_ACCOUNT)?;
        for s in self.slots.iter().filter(|s| s.idx1 != 0) {
            probe::place(&mut slots, *s);
        }
        self.slots = slots;
        Ok(())
    }

    /// Insert within reserved room.
    fn insert(&mut self, name: &[u8], idx: u32) -> Result<(), MapError> {
        let slot = Slot::new(self.hash(name), idx).ok_or(MapError::TooBig)?;
        if !probe::place(&mut self.slots, slot) {
            return Err(MapError::NoMem);
        }
        self.len += 1;
        Ok(())
    }

    fn remove_at(&mut self, pos: usize) {
        probe::remove_at(&mut self.slots, pos);
        self.len -= 1;
    }
}

/// The mapping.
///
/// # Invariants
///
/// `pod_index`/`node_index` name exactly the live slab entries; every
/// non-hostNetwork pod's addresses are in the address index written
/// alongside (and nothing else is); `NodeEntry::pods` counts the node's pods.
pub(crate) struct Mapping {
    nodes: Slab<NodeEntry>,
    pods: Slab<Arc<Pod>>,
    node_index: NameIndex,
    pod_index: NameIndex,
}

fn copy_name(name: &[u8]) -> Result<KVec<u8>, MapError> {
    let mut v = KVec::with_capacity(name.len(), GFP_KERNEL_ACCOUNT)?;
    v.extend_from_slice(name, GFP_KERNEL_ACCOUNT)?;
    Ok(v)
}

impl Mapping {
    /// An empty mapping; `seed` keys its hashes.
    pub(crate) fn new(seed: u32) -> Self {
        Self {
            nodes: Slab::new(),
            pods: Slab::new(),
            node_index: NameIndex::new(seed),
            pod_index: NameIndex::new(seed.rotate_left(16)),
        }
    }

    pub(crate) fn pod_count(&self) -> usize {
        self.pods.live
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes.live
    }

    /// Positions in load order: nodes `0..node_slots()`, then pods.
    pub(crate) fn node_slots(&self) -> usize {
        self.nodes.items.len()
    }

    pub(crate) fn pod_slots(&self) -> usize {
        self.pods.items.len()
    }

    /// The node at slab position `i`, if not deleted.
    pub(crate) fn node_at(&self, i: usize) -> Option<&NodeEntry> {
        self.nodes.get(i)
    }

    /// The pod at slab position `i`, if not deleted.
    pub(crate) fn pod_at(&self, i: usize) -> Option<&Arc<Pod>> {
        self.pods.get(i)
    }

    fn node_pos(&self, name: &[u8]) -> Option<(usize, u32)> {
        self.node_index
            .find(name, |i| self.nodes.get(i as usize).map(|n| n.name()))
    }

    fn pod_pos(&self, name: &[u8]) -> Option<(usize, u32)> {
        self.pod_index
            .find(name, |i| self.pods.get(i as usize).map(|p| p.name()))
    }

    /// The pod called `name` (`get_node_by_pod`).
    pub(crate) fn pod(&self, name: &[u8]) -> Option<&Arc<Pod>> {
        self.pods.get(self.pod_pos(name)?.1 as usize)
    }

    /// The node called `name`.
    pub(crate) fn node(&self, name: &[u8]) -> Option<&NodeEntry> {
        self.nodes.get(self.node_pos(name)?.1 as usize)
    }

    /// Declare node `name` (with its agent address, if any). A node first
    /// named by a pod may be declared once; declaring a node twice is an
    /// error unless `update` is set (map-add), which overwrites the address.
    pub(crate) fn add_node(
        &mut self,
        name: &[u8],
        addr: Option<NodeAddr>,
        update: bool,
    ) -> Result<(), MapError> {
        self.declare_node(name, addr, update).map(|_| ())
    }

    /// [`Mapping::add_node`], returning how to undo it.
    fn declare_node(
        &mut self,
        name: &[u8],
        addr: Option<NodeAddr>,
        update: bool,
    ) -> Result<NodeUndo, MapError> {
        if !ident::valid_node_name(name) {
            return Err(MapError::InvalidName);
        }
        if let Some((_, i)) = self.node_pos(name) {
            let e = self
                .nodes
                .items
                .get_mut(i as usize)
                .and_then(|e| e.as_mut())
                .ok_or(MapError::NoSuchNode)?;
            if e.declared && !update {
                return Err(MapError::DuplicateNode);
            }
            let undo = NodeUndo::Restore {
                slot: i,
                declared: e.declared,
                addr: e.addr,
            };
            e.declared = true;
            if addr.is_some() {
                e.addr = addr;
            }
            return Ok(undo);
        }
        let entry = self.make_node(name, addr, true)?;
        Ok(NodeUndo::Remove(self.insert_node(entry)?))
    }

    /// Put a node back as it was before [`Mapping::declare_node`].
    fn undo_node(&mut self, undo: NodeUndo) {
        match undo {
            NodeUndo::Restore {
                slot,
                declared,
                addr,
            } => {
                if let Some(Some(e)) = self.nodes.items.get_mut(slot as usize) {
                    e.declared = declared;
                    e.addr = addr;
                }
            }
            NodeUndo::Remove(slot) => {
                let pos = self
                    .nodes
                    .get(slot as usize)
                    .and_then(|e| self.node_pos(e.name()));
                if let Some((pos, _)) = pos {
                    self.node_index.remove_at(pos);
                    self.nodes.take(slot as usize);
                }
            }
        }
    }

    /// map-add: declare (or update) a node and/or add (or replace) a pod as
    /// one change; if the pod is refused, the node is put back as it was.
    pub(crate) fn add(
        &mut self,
        node: Option<(&[u8], Option<NodeAddr>)>,
        pod: Option<&PodSpec<'_>>,
        ips: &mut IndexWriter<'_>,
        retire: &mut RetireList<IpNode>,
    ) -> Result<(), AddError> {
        let undo = match node {
            Some((name, addr)) => Some(
                self.declare_node(name, addr, true)
                    .map_err(AddError::Node)?,
            ),
            None => None,
        };
        if let Some(p) = pod {
            if let Err(e) = self.add_pod(p, true, ips, retire) {
                if let Some(u) = undo {
                    self.undo_node(u);
                }
                return Err(AddError::Pod(e));
            }
        }
        Ok(())
    }

    /// A new node entry (allocated, room reserved), not inserted yet.
    fn make_node(
        &mut self,
        name: &[u8],
        addr: Option<NodeAddr>,
        declared: bool,
    ) -> Result<NodeEntry, MapError> {
        if self.nodes.live >= MAX_NODES {
            return Err(MapError::TooBig);
        }
        let entry = NodeEntry {
            name: Arc::new(NodeName(copy_name(name)?), GFP_KERNEL_ACCOUNT)?,
            addr,
            pods: 0,
            declared,
        };
        self.nodes.reserve()?;
        self.node_index.reserve()?;
        Ok(entry)
    }

    /// Insert an entry from [`Mapping::make_node`] (room is reserved);
    /// returns its slab position.
    fn insert_node(&mut self, entry: NodeEntry) -> Result<u32, MapError> {
        let name = entry.name.clone();
        let i = self.nodes.push(entry)?;
        self.node_index.insert(name.as_bytes(), i)?;
        Ok(i)
    }

    /// Add pod `spec`, or with `replace` (map-add) replace a pod of that
    /// name (it may move node and change addresses). Unlinked address
    /// nodes go to `retire`.
    pub(crate) fn add_pod(
        &mut self,
        spec: &PodSpec<'_>,
        replace: bool,
        ips: &mut IndexWriter<'_>,
        retire: &mut RetireList<IpNode>,
    ) -> Result<(), MapError> {
        if !ident::valid_pod_name(spec.name) || !ident::valid_node_name(spec.node) {
            return Err(MapError::InvalidName);
        }
        if spec.ips.len() > MAX_POD_IPS {
            return Err(MapError::TooManyIps);
        }
        let old = self.pod_pos(spec.name);
        if old.is_some() && !replace {
            return Err(MapError::DuplicatePod);
        }
        if old.is_none() && self.pods.live >= MAX_PODS {
            return Err(MapError::TooBig);
        }
        // Checks: an address may belong to no other pod.
        if !spec.host_network {
            for (i, ip) in spec.ips.iter().enumerate() {
                if spec.ips[..i].contains(ip) {
                    return Err(MapError::DuplicateIp);
                }
                if let Some(owner) = ips.index().lookup(ip) {
                    if owner.name() != spec.name {
                        return Err(MapError::DuplicateIp);
                    }
                }
            }
        }
        // Make everything that can fail: a pod's node that does not exist
        // yet is made here and inserted below.
        let (node_pos, new_node) = match self.node_pos(spec.node) {
            Some((_, i)) => (Some(i), None),
            None => (None, Some(self.make_node(spec.node, None, false)?)),
        };
        let node = match (&new_node, node_pos) {
            (Some(n), _) => n.name.clone(),
            (None, Some(i)) => self
                .nodes
                .get(i as usize)
                .ok_or(MapError::NoSuchNode)?
                .name
                .clone(),
            (None, None) => return Err(MapError::NoSuchNode),
        };
        let mut addrs = [IpAddr::v4([0; 4]); MAX_POD_IPS];
        for (d, s) in addrs.iter_mut().zip(spec.ips) {
            *d = *s;
        }
        let pod = Arc::new(
            Pod {
                name: PodName::new(spec.name)?,
                node,
                ips: addrs,
                n_ips: spec.ips.len() as u8,
                host_network: spec.host_network,
                netns: spec.netns,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        let mut nodes: [Option<NewNode>; MAX_POD_IPS] = Default::default();
        if !spec.host_network {
            for (n, ip) in nodes.iter_mut().zip(spec.ips) {
                *n = Some(NewNode::new(*ip, pod.clone())?);
            }
        }
        retire.reserve(MAX_POD_IPS)?;
        self.pods.reserve()?;
        self.pod_index.reserve()?;
        // Apply; nothing below fails (room was reserved).
        let node_pos = match new_node {
            Some(n) => self.insert_node(n)?,
            None => node_pos.ok_or(MapError::NoSuchNode)?,
        };
        if let Some((pos, i)) = old {
            self.unlink_pod(pos, i as usize, ips, retire);
        }
        for n in nodes.into_iter().flatten() {
            ips.insert(n);
        }
        let i = self.pods.push(pod)?;
        self.pod_index.insert(spec.name, i)?;
        if let Some(Some(n)) = self.nodes.items.get_mut(node_pos as usize) {
            n.pods += 1;
        }
        if old.is_some() {
            // A replaced pod leaves a hole like a deleted one.
            self.compact();
        }
        Ok(())
    }

    /// Remove the pod at index position `pos`, slab position `i`.
    fn unlink_pod(
        &mut self,
        pos: usize,
        i: usize,
        ips: &mut IndexWriter<'_>,
        retire: &mut RetireList<IpNode>,
    ) {
        self.pod_index.remove_at(pos);
        let Some(pod) = self.pods.take(i) else {
            return;
        };
        if !pod.host_network {
            for ip in pod.ips() {
                ips.remove(ip, retire);
            }
        }
        if let Some((_, n)) = self.node_pos(pod.node()) {
            if let Some(Some(n)) = self.nodes.items.get_mut(n as usize) {
                n.pods = n.pods.saturating_sub(1);
            }
        }
    }

    /// Delete pod `name`.
    pub(crate) fn del_pod(
        &mut self,
        name: &[u8],
        ips: &mut IndexWriter<'_>,
        retire: &mut RetireList<IpNode>,
    ) -> Result<(), MapError> {
        let (pos, i) = self.pod_pos(name).ok_or(MapError::NoSuchPod)?;
        retire.reserve(MAX_POD_IPS)?;
        self.unlink_pod(pos, i as usize, ips, retire);
        self.compact();
        Ok(())
    }

    /// Delete node `name`, which must have no pods.
    pub(crate) fn del_node(&mut self, name: &[u8]) -> Result<(), MapError> {
        let (pos, i) = self.node_pos(name).ok_or(MapError::NoSuchNode)?;
        if self.nodes.get(i as usize).is_some_and(|n| n.pods > 0) {
            return Err(MapError::NodeHasPods);
        }
        self.node_index.remove_at(pos);
        self.nodes.take(i as usize);
        self.compact();
        Ok(())
    }

    /// Squeeze out holes once they outnumber entries (amortised O(1) per
    /// delete). Best effort: without memory the holes just stay.
    fn compact(&mut self) {
        if self.pods.holes() > 64 && self.pods.holes() > self.pods.live {
            let _ = Self::compact_slab(&mut self.pods, &mut self.pod_index, |p| p.name());
        }
        if self.nodes.holes() > 64 && self.nodes.holes() > self.nodes.live {
            let _ = Self::compact_slab(&mut self.nodes, &mut self.node_index, |n| n.name());
        }
    }

    fn compact_slab<T>(
        slab: &mut Slab<T>,
        index: &mut NameIndex,
        name: impl Fn(&T) -> &[u8],
    ) -> Result<(), MapError> {
        let mut items = KVVec::with_capacity(slab.live, GFP_KERNEL_ACCOUNT)?;
        let mut new_index = NameIndex::new(index.seed);
        new_index.resize(probe::capacity_for(slab.live))?;
        // Build the new index first (the only fallible part), then move.
        for (n, item) in slab.items.iter().flatten().enumerate() {
            new_index.insert(name(item), u32::try_from(n).map_err(|_| MapError::TooBig)?)?;
        }
        let old = core::mem::replace(&mut slab.items, KVVec::new());
        for item in old.into_iter().flatten() {
            items.push(Some(item), GFP_KERNEL_ACCOUNT)?;
        }
        slab.items = items;
        *index = new_index;
        Ok(())
    }
}
