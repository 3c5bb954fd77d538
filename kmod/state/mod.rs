// SPDX-License-Identifier: GPL-2.0
//! The node's state, owned by the module (`tlshub.rs`) and shared by
//! reference with the control plane and, later, the TCP hook: the
//! key-provider mode, the pod-node mapping, a staged replacement, counters
//! (and, to come, the flow table, node-pair secrets and local-node set).
//!
//! Locking and RCU rules:
//! - `update` (a sleeping mutex) serialises every writer and every control
//!   plane reader of the mapping; it is never taken in atomic context and
//!   nothing sleeps on RCU (no grace-period wait) while holding it: objects
//!   unlinked under it are returned as [`Retired`]/[`RetireList`] and freed
//!   by the caller after unlocking.
//! - `ips`, the address index, is what the datapath reads: lock-free, inside
//!   an RCU read section ([`Guard`]), from any context. Its one writer right
//!   ([`RcuWriter`]) lives inside `update`.
//! - `mode` and the counters are atomics.

pub(crate) mod ident;
pub(crate) mod ipindex;
pub(crate) mod mapping;
pub(crate) mod probe;

use crate::sys::rcu::{Guard, RcuBox, RcuWriter, RetireList, Retired};
use crate::uapi;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ipindex::{IpIndex, IpNode};
use kernel::sync::lock::{mutex::MutexBackend, Guard as LockGuard};
use kernel::{new_mutex, prelude::*, sync::Arc, sync::Mutex};
use mapping::{AddError, IpAddr, MapError, Mapping, NodeAddr, Pod, PodSpec};

/// Counters since load.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) lookups: AtomicU64,
    pub(crate) lookup_misses: AtomicU64,
    pub(crate) map_updates: AtomicU64,
}

/// A replacement being staged by one netlink socket (its port id).
struct Staging {
    owner: u32,
    map: Mapping,
    ips: KBox<IpIndex>,
}

/// Writer-side state, only touched with `State::update` held.
pub(crate) struct Update {
    ips_writer: RcuWriter<IpIndex>,
    map: Mapping,
    staging: Option<Staging>,
    generation: u32,
}

impl Update {
    /// The live mapping (control plane reads).
    pub(crate) fn map(&self) -> &Mapping {
        &self.map
    }

    /// Bumped by every committed change; never 0.
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    fn bump(&mut self) {
        self.generation = match self.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
    }
}

/// Why a staging request was refused.
pub(crate) enum StageError<E> {
    /// Nothing staged by this sender (no `begin`, or it was discarded).
    NotStaging,
    /// Another sender's replacement is in progress.
    Busy,
    /// No memory to start a replacement.
    NoMem,
    /// An entry was refused.
    Entry(E),
}

/// What a change leaves to free once the lock is dropped.
pub(crate) struct Garbage {
    nodes: RetireList<IpNode>,
    index: Option<Retired<IpIndex>>,
    map: Option<Mapping>,
}

impl Garbage {
    fn new() -> Self {
        Self {
            nodes: RetireList::new(),
            index: None,
            map: None,
        }
    }

    /// Free everything after one grace period. Sleeps: call unlocked.
    pub(crate) fn free(self) {
        let Garbage { nodes, index, map } = self;
        nodes.free();
        if let Some(idx) = index {
            idx.free();
        }
        // The old mapping's pods are reference-counted: address nodes still
        // in a grace period keep the ones readers may see.
        drop(map);
    }
}

/// Run writer `f` on an index, then, if it succeeded and the index is
/// crowded, make a larger copy to swap in (best effort: without memory the
/// index just stays crowded).
fn write_index<T, E>(
    w: &mut ipindex::IndexWriter<'_>,
    f: impl FnOnce(&mut ipindex::IndexWriter<'_>) -> Result<T, E>,
) -> (Result<T, E>, Option<KBox<IpIndex>>) {
    let res = f(w);
    let grown = if res.is_ok() && w.crowded() {
        w.grown().ok()
    } else {
        None
    };
    (res, grown)
}

/// The node's state.
#[pin_data]
pub(crate) struct State {
    mode: AtomicU32,
    ips: RcuBox<IpIndex>,
    #[pin]
    update: Mutex<Update>,
    /// Keys the hash tables of every mapping (live and staged).
    seed: u32,
    pub(crate) stats: Stats,
}

/// A fresh seed for hash tables.
fn seed() -> u32 {
    crate::sys::rand::u32()
}

impl State {
    pub(crate) fn new() -> Result<Arc<Self>> {
        let seed = seed();
        let ips = RcuBox::new(KBox::new(IpIndex::with_capacity(0, seed)?, GFP_KERNEL)?);
        let ips_writer = ips.writer().ok_or(EINVAL)?;
        Arc::pin_init(
            try_pin_init!(State {
                mode: AtomicU32::new(uapi::mode::TLSHUB),
                ips,
                update <- new_mutex!(Update {
                    ips_writer,
                    map: Mapping::new(seed),
                    staging: None,
                    generation: 1,
                }),
                seed,
                stats: Stats::default(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn mode(&self) -> u32 {
        self.mode.load(Ordering::Relaxed)
    }

    pub(crate) fn set_mode(&self, mode: u32) {
        self.mode.store(mode, Ordering::Relaxed);
    }

    /// The pod owning peer address `ip`, for as long as the read section
    /// `g` lasts: the datapath's lookup. Any context; never sleeps.
    pub(crate) fn peer_pod<'g>(&'g self, g: &'g Guard, ip: &IpAddr) -> Option<&'g Pod> {
        self.ips.get(g).lookup(ip).map(|p| &**p)
    }

    /// Like [`State::peer_pod`], but a reference that outlives the read
    /// section (the flow keeps its pods).
    pub(crate) fn pod_arc(&self, g: &Guard, ip: &IpAddr) -> Option<Arc<Pod>> {
        self.ips.get(g).lookup(ip).cloned()
    }

    /// Count a lookup and whether it hit.
    pub(crate) fn count_lookup(&self, hit: bool) {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        if !hit {
            self.stats.lookup_misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lock the writer side (process context; sleeps).
    pub(crate) fn lock(&self) -> LockGuard<'_, Update, MutexBackend> {
        self.update.lock()
    }

    fn committed(&self, up: &mut Update) {
        up.bump();
        self.stats.map_updates.fetch_add(1, Ordering::Relaxed);
    }

    /// Apply one incremental change `f` to the live mapping and address
    /// index; O(1) in the table size. The returned garbage is freed here,
    /// after the lock is dropped.
    fn change<E: From<MapError>>(
        &self,
        f: impl FnOnce(
            &mut Mapping,
            &mut ipindex::IndexWriter<'_>,
            &mut RetireList<IpNode>,
        ) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut garbage = Garbage::new();
        let res = {
            let mut guard = self.lock();
            let up = &mut *guard;
            let (res, grown) = write_index(
                &mut IpIndex::published(&mut up.ips_writer, &self.ips).map_err(MapError::from)?,
                |w| f(&mut up.map, w, &mut garbage.nodes),
            );
            if let Some(new) = grown {
                if let Ok(old) = up.ips_writer.replace(&self.ips, new) {
                    garbage.index = Some(old);
                }
            }
            if res.is_ok() {
                self.committed(up);
            }
            res
        };
        garbage.free();
        res
    }

    /// Add or update a node and/or a pod, as one change (map-add).
    pub(crate) fn add(
        &self,
        node: Option<(&[u8], Option<NodeAddr>)>,
        pod: Option<&PodSpec<'_>>,
    ) -> Result<(), AddError> {
        self.change(|m, w, r| m.add(node, pod, w, r))
    }

    /// Delete one pod (map-del).
    pub(crate) fn del_pod(&self, name: &[u8]) -> Result<(), MapError> {
        self.change(|m, w, r| m.del_pod(name, w, r))
    }

    /// Delete one node without pods (map-del).
    pub(crate) fn del_node(&self, name: &[u8]) -> Result<(), MapError> {
        self.change(|m, _, _| m.del_node(name))
    }

    /// Stage entries for socket `owner`. `begin` starts over (taking the
    /// staging over from any other socket). On any error the staged
    /// replacement is dropped: a replacement is all or nothing.
    pub(crate) fn stage<E>(
        &self,
        owner: u32,
        begin: bool,
        f: impl FnOnce(
            &mut Mapping,
            &mut ipindex::IndexWriter<'_>,
            &mut RetireList<IpNode>,
        ) -> Result<(), E>,
    ) -> Result<(), StageError<E>> {
        let seed = self.seed;
        // A fresh index for `begin`, made before locking.
        let fresh = match begin {
            true => Some(
                IpIndex::with_capacity(0, seed)
                    .and_then(|i| Ok(KBox::new(i, GFP_KERNEL_ACCOUNT)?))
                    .map_err(|_| StageError::NoMem)?,
            ),
            false => None,
        };
        let mut dropped = None;
        // Nothing staged is published, so nothing is retired; the list the
        // writer takes is freed unlocked all the same.
        let mut retire = RetireList::new();
        let res = {
            let mut up = self.lock();
            if let Some(ips) = fresh {
                dropped = up.staging.replace(Staging {
                    owner,
                    map: Mapping::new(seed),
                    ips,
                });
            }
            match up.staging.as_mut() {
                None => Err(StageError::NotStaging),
                Some(st) if st.owner != owner => Err(StageError::Busy),
                Some(st) => {
                    let (r, grown) =
                        write_index(&mut st.ips.writer(), |w| f(&mut st.map, w, &mut retire));
                    if let Some(g) = grown {
                        st.ips = g;
                    }
                    r.map_err(|e| {
                        dropped = up.staging.take();
                        StageError::Entry(e)
                    })
                }
            }
        };
        drop(dropped);
        retire.free();
        res
    }

    /// A socket closed: drop what it staged and did not commit.
    pub(crate) fn release_staging(&self, owner: u32) {
        let dropped = {
            let mut up = self.lock();
            if up.staging.as_ref().is_some_and(|st| st.owner == owner) {
                up.staging.take()
            } else {
                None
            }
        };
        drop(dropped);
    }

    /// Swap the replacement staged by `owner` in; returns (generation,
    /// pods, nodes).
    pub(crate) fn commit_staged(
        &self,
        owner: u32,
    ) -> Result<(u32, usize, usize), StageError<MapError>> {
        let mut garbage = Garbage::new();
        let res = {
            let mut guard = self.lock();
            let up = &mut *guard;
            match up.staging.as_ref() {
                None => return Err(StageError::NotStaging),
                Some(st) if st.owner != owner => return Err(StageError::Busy),
                Some(_) => {}
            }
            let st = up.staging.take().ok_or(StageError::NotStaging)?;
            let old = up
                .ips_writer
                .replace(&self.ips, st.ips)
                .map_err(|e| StageError::Entry(MapError::from(e)))?;
            garbage.index = Some(old);
            garbage.map = Some(core::mem::replace(&mut up.map, st.map));
            self.committed(up);
            (up.generation, up.map.pod_count(), up.map.node_count())
        };
        garbage.free();
        Ok(res)
    }
}
