// SPDX-License-Identifier: GPL-2.0
//! Per-node state of tlshub: the key-provider mode, the live pod-node
//! mapping and the staged replacement, and counters.
//!
//! The datapath reads the mapping under RCU without locks; every change is
//! made by one writer at a time (the `update` mutex) by building a complete
//! new table and swapping it in.

use crate::mapping::{Builder, MapError, Table};
use crate::rcu::{RcuBox, WriterToken};
use crate::uapi;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::{new_mutex, prelude::*, sync::Mutex};

/// Counters since load.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) lookups: AtomicU64,
    pub(crate) lookup_misses: AtomicU64,
    pub(crate) map_updates: AtomicU64,
}

/// A replacement table being staged by one netlink socket, identified by a
/// ticket that socket holds (see `netlink.rs`); never reused, unlike port ids.
struct Staging {
    ticket: u64,
    builder: Builder,
}

/// Writer-side state, only touched with `Hub::update` held.
struct Update {
    token: WriterToken,
    staging: Option<Staging>,
    last_ticket: u64,
}

/// Why a staging request was refused.
pub(crate) enum StageError<E> {
    /// Nothing staged by this sender (no `begin`, or it was discarded).
    NotStaging,
    /// Another sender's replacement is in progress.
    Busy,
    /// An entry was refused.
    Entry(E),
}

#[pin_data]
pub(crate) struct Hub {
    mode: AtomicU32,
    table: RcuBox<Table>,
    #[pin]
    update: Mutex<Update>,
    pub(crate) stats: Stats,
}

impl Hub {
    pub(crate) fn new() -> Result<Pin<KBox<Self>>> {
        let (table, token) = RcuBox::new(KVBox::new(Table::new(), GFP_KERNEL)?);
        KBox::pin_init(
            try_pin_init!(Hub {
                mode: AtomicU32::new(uapi::mode::TLSHUB),
                table,
                update <- new_mutex!(Update {
                    token,
                    staging: None,
                    last_ticket: 0
                }),
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

    /// Run `f` on the live table (any context; `f` must not sleep).
    pub(crate) fn with_table<R>(&self, f: impl FnOnce(&Table) -> R) -> R {
        self.table.read(f)
    }

    /// Count a lookup and whether it hit.
    pub(crate) fn count_lookup(&self, hit: bool) {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        if !hit {
            self.stats.lookup_misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn commit(&self, up: &mut Update, b: Builder) -> Result<(u32, usize, usize), MapError> {
        let gen = match self.table.get(&up.token).generation().wrapping_add(1) {
            0 => 1, // 0 is "no snapshot" for dump consistency checks
            g => g,
        };
        let t = b.finish(gen);
        let counts = (gen, t.pod_count(), t.node_count());
        let old = self
            .table
            .replace(KVBox::new(t, GFP_KERNEL)?, &mut up.token);
        drop(old);
        self.stats.map_updates.fetch_add(1, Ordering::Relaxed);
        Ok(counts)
    }

    /// Build a new table from the live one with `f` and swap it in, or
    /// change nothing if `f` fails.
    pub(crate) fn modify<E: From<MapError>>(
        &self,
        f: impl FnOnce(&Table) -> Result<Builder, E>,
    ) -> Result<(), E> {
        let mut up = self.update.lock();
        let b = f(self.table.get(&up.token))?;
        self.commit(&mut up, b)?;
        Ok(())
    }

    /// Stage entries for the holder of `ticket` (0: none yet). `begin`
    /// starts over with a new ticket, which is returned. On any error the
    /// staged replacement is dropped: a replacement is all or nothing.
    pub(crate) fn stage<E>(
        &self,
        ticket: u64,
        begin: bool,
        f: impl FnOnce(&mut Builder) -> Result<(), E>,
    ) -> Result<u64, StageError<E>> {
        let mut up = self.update.lock();
        let mut ticket = ticket;
        if begin {
            up.last_ticket += 1;
            ticket = up.last_ticket;
            up.staging = Some(Staging {
                ticket,
                builder: Builder::new(),
            });
        }
        let st = match up.staging.as_mut() {
            None => return Err(StageError::NotStaging),
            Some(st) if st.ticket != ticket => return Err(StageError::Busy),
            Some(st) => st,
        };
        if let Err(e) = f(&mut st.builder) {
            up.staging = None;
            return Err(StageError::Entry(e));
        }
        Ok(ticket)
    }

    /// Drop the replacement staged under `ticket`, if it is still the one
    /// staged (its socket was closed without committing).
    pub(crate) fn release_staging(&self, ticket: u64) {
        let mut up = self.update.lock();
        if up.staging.as_ref().is_some_and(|st| st.ticket == ticket) {
            up.staging = None;
        }
    }

    /// Swap the replacement staged under `ticket` in; returns (generation, pods, nodes).
    pub(crate) fn commit_staged(
        &self,
        ticket: u64,
    ) -> Result<(u32, usize, usize), StageError<MapError>> {
        let mut up = self.update.lock();
        match up.staging.as_ref() {
            None => return Err(StageError::NotStaging),
            Some(st) if st.ticket != ticket => return Err(StageError::Busy),
            Some(_) => {}
        }
        let st = up.staging.take().ok_or(StageError::NotStaging)?;
        self.commit(&mut up, st.builder).map_err(StageError::Entry)
    }
}
