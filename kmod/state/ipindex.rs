// SPDX-License-Identifier: GPL-2.0
//! The datapath's question, "is this peer address a pod, and which?",
//! answered lock-free from any context.
//!
//! A hash table of singly linked RCU chains (as WireGuard's `peerlookup.c`):
//! readers walk a chain inside an RCU read section; the one writer (the
//! holder of the state's update mutex) links a new node with a release store
//! of the bucket head and unlinks by re-pointing its predecessor, handing the
//! unlinked node to a [`RetireList`] that frees it after a grace period.
//! Inserting and deleting one address is O(1); growing builds a larger table
//! beside the live one and swaps it in whole (amortised O(1)).
//!
//! hostNetwork pods are never here: their addresses are their node's.
//! This file may touch only the index and the `Pod`s it references.

use super::mapping::{IpAddr, Pod};
use super::probe::hash_bytes;
use crate::sys::rcu::{RcuBox, RcuWriter, RetireList};
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// Smallest bucket array.
const MIN_BUCKETS: usize = 64;

/// One address of one pod, on one chain.
pub(crate) struct IpNode {
    next: AtomicPtr<IpNode>,
    ip: IpAddr,
    pod: Arc<Pod>,
}

/// The address index.
///
/// # Invariants
///
/// `buckets.len()` is a power of two. Every non-null pointer reachable from
/// `buckets` comes from `KBox::into_raw` and is owned by the index; a node
/// is freed only after it is unlinked and a grace period has passed (or
/// when the whole index is dropped, after a grace period of its own). Only
/// the holder of an [`IndexWriter`] changes the chains.
pub(crate) struct IpIndex {
    buckets: KVVec<AtomicPtr<IpNode>>,
    len: AtomicUsize,
    seed: u32,
}

// SAFETY: readers on any CPU follow the chains with acquire loads and get
// `&Pod` (`Pod: Sync`); nodes are owned by the index and may be freed on
// another CPU (`Arc<Pod>: Send`).
unsafe impl Send for IpIndex {}
// SAFETY: as above; writers are serialised by `IndexWriter`'s `&mut`.
unsafe impl Sync for IpIndex {}

impl IpIndex {
    /// An empty index with room for about `len` addresses.
    pub(crate) fn with_capacity(len: usize, seed: u32) -> Result<Self> {
        let n = len.max(MIN_BUCKETS).next_power_of_two();
        let mut buckets = KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..n {
            buckets.push(AtomicPtr::new(ptr::null_mut()), GFP_KERNEL_ACCOUNT)?;
        }
        Ok(Self {
            buckets,
            len: AtomicUsize::new(0),
            seed,
        })
    }

    /// Addresses indexed.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn bucket(&self, ip: &IpAddr) -> Option<&AtomicPtr<IpNode>> {
        let h = hash_bytes(self.seed, ip.as_bytes()) as usize;
        self.buckets.get(h & (self.buckets.len().wrapping_sub(1)))
    }

    /// The pod owning `ip`. Readers call this inside an RCU read section
    /// (the result borrows from it, see `State::peer_pod`); the writer may
    /// call it any time.
    pub(crate) fn lookup(&self, ip: &IpAddr) -> Option<&Arc<Pod>> {
        let mut p = self.bucket(ip)?.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: reachable nodes are live until a grace period after
            // they are unlinked (type invariant), and the caller is inside
            // a read section or is the writer.
            let n = unsafe { &*p };
            if n.ip == *ip {
                return Some(&n.pod);
            }
            p = n.next.load(Ordering::Acquire);
        }
        None
    }

    /// Every node, for rebuilding (writer only).
    fn for_each(&self, mut f: impl FnMut(&IpNode) -> Result) -> Result {
        for b in self.buckets.iter() {
            let mut p = b.load(Ordering::Acquire);
            while !p.is_null() {
                // SAFETY: as in `lookup`; the caller is the writer.
                let n = unsafe { &*p };
                f(n)?;
                p = n.next.load(Ordering::Acquire);
            }
        }
        Ok(())
    }

    /// Writer access to an index nobody else can see yet.
    pub(crate) fn writer(&mut self) -> IndexWriter<'_> {
        IndexWriter {
            idx: self,
            _excl: PhantomData,
        }
    }

    /// Writer access to the published index of `b`.
    pub(crate) fn published<'a>(
        w: &'a mut RcuWriter<IpIndex>,
        b: &'a RcuBox<IpIndex>,
    ) -> Result<IndexWriter<'a>> {
        Ok(IndexWriter {
            idx: w.get(b)?,
            _excl: PhantomData,
        })
    }
}

impl Drop for IpIndex {
    fn drop(&mut self) {
        // Only reached when no reader can see the index any more (an
        // unpublished index, or a published one after a grace period).
        for b in self.buckets.iter() {
            let mut p = b.swap(ptr::null_mut(), Ordering::Relaxed);
            while !p.is_null() {
                // SAFETY: owned node (type invariant), unreachable now.
                let n = unsafe { KBox::from_raw(p) };
                p = n.next.load(Ordering::Relaxed);
            }
        }
    }
}

/// A node made ahead of time, so that linking it cannot fail.
pub(crate) struct NewNode(KBox<IpNode>);

impl NewNode {
    pub(crate) fn new(ip: IpAddr, pod: Arc<Pod>) -> Result<Self> {
        Ok(Self(KBox::new(
            IpNode {
                next: AtomicPtr::new(ptr::null_mut()),
                ip,
                pod,
            },
            GFP_KERNEL_ACCOUNT,
        )?))
    }
}

/// The exclusive right to change one index; `&mut` to the writer (or to an
/// unpublished index) makes writers exclusive, readers may run alongside.
pub(crate) struct IndexWriter<'a> {
    idx: &'a IpIndex,
    _excl: PhantomData<&'a mut ()>,
}

impl IndexWriter<'_> {
    pub(crate) fn index(&self) -> &IpIndex {
        self.idx
    }

    /// Link `node` (its address must not be indexed yet).
    pub(crate) fn insert(&mut self, node: NewNode) {
        let Some(b) = self.idx.bucket(&node.0.ip) else {
            return; // unreachable: there is always a bucket; drops `node`
        };
        node.0
            .next
            .store(b.load(Ordering::Relaxed), Ordering::Relaxed);
        // Publish: a reader that sees the node sees it fully initialised.
        b.store(KBox::into_raw(node.0), Ordering::Release);
        self.idx.len.fetch_add(1, Ordering::Relaxed);
    }

    /// Unlink `ip`; the node goes to `retire`, freed after a grace period.
    /// `retire` must have room reserved.
    pub(crate) fn remove(&mut self, ip: &IpAddr, retire: &mut RetireList<IpNode>) -> bool {
        let Some(b) = self.idx.bucket(ip) else {
            return false;
        };
        let mut link: &AtomicPtr<IpNode> = b;
        loop {
            let p = link.load(Ordering::Relaxed);
            if p.is_null() {
                return false;
            }
            // SAFETY: a linked node is live; only we (the writer) unlink.
            let n = unsafe { &*p };
            if n.ip == *ip {
                // Readers already on `n` continue along its (unchanged)
                // `next`; new readers skip it.
                link.store(n.next.load(Ordering::Relaxed), Ordering::Release);
                self.idx.len.fetch_sub(1, Ordering::Relaxed);
                // SAFETY: unlinked above and owned by the index; freed by
                // `retire` only after a grace period.
                retire.push(unsafe { KBox::from_raw(p) });
                return true;
            }
            link = &n.next;
        }
    }

    /// Whether the index should be rebuilt larger (more than two addresses
    /// per bucket on average).
    pub(crate) fn crowded(&self) -> bool {
        self.idx.len() > self.idx.buckets.len() * 2
    }

    /// A copy with twice the buckets per address, ready to be swapped in.
    pub(crate) fn grown(&self) -> Result<KBox<IpIndex>> {
        let mut new = KBox::new(
            IpIndex::with_capacity(self.idx.len() * 2, self.idx.seed)?,
            GFP_KERNEL_ACCOUNT,
        )?;
        {
            let mut w = new.writer();
            self.idx.for_each(|n| {
                w.insert(NewNode::new(n.ip, n.pod.clone())?);
                Ok(())
            })?;
        }
        Ok(new)
    }
}
