// SPDX-License-Identifier: GPL-2.0
//! RCU for the rest of the module: read-side guards, objects replaced whole
//! under RCU with one branded writer, and freeing after a grace period.
//!
//! C header: [include/linux/rcupdate.h](srctree/include/linux/rcupdate.h)
//!
//! Shaped like later mainline `kernel::sync::rcu`: a [`Guard`] is one read
//! section, and everything read through it borrows from it, so several
//! lookups share a section and nothing read escapes it. Writers hold the one
//! [`RcuWriter`] of a box (kept inside the writers' mutex); it is branded with
//! its box's unique id, so no writer can touch another box. Old objects are
//! handed back as [`Retired`] and freed after a grace period, in process
//! context, by whoever holds them: callers drop them after unlocking, never
//! under a lock.
//!
//! Sleeping inside a read section is forbidden (as upstream, this is outside
//! the type system; `CONFIG_DEBUG_ATOMIC_SLEEP` and lockdep catch it in the
//! test kernel).

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use kernel::{bindings, prelude::*};

/// An RCU read-side critical section, held from [`Guard::new`] to drop.
///
/// Not `Send`: the section belongs to the CPU/task that entered it.
pub(crate) struct Guard {
    _not_send: PhantomData<*mut ()>,
}

impl Guard {
    /// Enter a read-side section (any context).
    pub(crate) fn new() -> Self {
        // SAFETY: no preconditions; paired with `rcu_read_unlock` in `drop`.
        unsafe { bindings::rcu_read_lock() };
        Self {
            _not_send: PhantomData,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: this guard entered the section in `new`.
        unsafe { bindings::rcu_read_unlock() };
    }
}

/// Warn (in the test kernel: fail) if the caller may not sleep.
pub(crate) fn might_sleep() {
    // SAFETY: no preconditions; only checks the calling context.
    unsafe { bindings::might_sleep() };
}

/// Wait until every read section that began before this call has ended.
/// Sleeps: process context, no spinlock held.
pub(crate) fn synchronize() {
    might_sleep();
    // SAFETY: `might_sleep` above checked the context.
    unsafe { bindings::synchronize_rcu() };
}

/// Source of box ids: never reused, so a writer cannot match a later box
/// that happens to live at the same address.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An owned `KBox<T>` that readers reach under RCU and one writer replaces.
///
/// # Invariants
///
/// `ptr` comes from `KBox::into_raw` and is owned by this box. An object it
/// pointed to is freed only after it was unpublished and a grace period has
/// elapsed (see [`Retired`]), or in `drop`, after a grace period, when no
/// borrow of the box remains. At most one [`RcuWriter`] carries `id`.
pub(crate) struct RcuBox<T> {
    ptr: AtomicPtr<T>,
    id: u64,
    writer_taken: AtomicBool,
}

// SAFETY: readers on several CPUs get `&T` at once (needs `T: Sync`); the
// object may be freed on another CPU than the one that made it (`T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}
// SAFETY: as above: ownership of the boxed `T` moves with the `RcuBox`.
unsafe impl<T: Send + Sync> Send for RcuBox<T> {}

/// The right to change one [`RcuBox`]: there is exactly one per box, and
/// only it can replace the object, so whoever holds `&mut` to it is the
/// only writer. Keep it inside the writers' lock.
pub(crate) struct RcuWriter<T> {
    id: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> RcuBox<T> {
    /// Take ownership of `value`.
    pub(crate) fn new(value: KBox<T>) -> Self {
        Self {
            ptr: AtomicPtr::new(KBox::into_raw(value)),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            writer_taken: AtomicBool::new(false),
        }
    }

    /// The box's writer; `None` after the first call.
    pub(crate) fn writer(&self) -> Option<RcuWriter<T>> {
        if self.writer_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(RcuWriter {
            id: self.id,
            _t: PhantomData,
        })
    }

    /// The current object, for as long as the read section `_g` lasts.
    pub(crate) fn get<'g>(&'g self, _g: &'g Guard) -> &'g T {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: by the type invariant `p` is live; it is freed only a grace
        // period after it is unpublished, and `_g` keeps this section (which
        // may have seen it) open for `'g`. `drop` cannot run while `self` is
        // borrowed.
        unsafe { &*p }
    }
}

impl<T> Drop for RcuBox<T> {
    fn drop(&mut self) {
        // Readers that loaded the pointer before we got `&mut` may still be
        // inside their section.
        synchronize();
        // SAFETY: we own the pointer (type invariant) and no reader remains.
        drop(unsafe { KBox::from_raw(*self.ptr.get_mut()) });
    }
}

// SAFETY: the writer holds no pointer, only the id of its box.
unsafe impl<T> Send for RcuWriter<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for RcuWriter<T> {}

impl<T> RcuWriter<T> {
    fn check(&self, b: &RcuBox<T>) -> Result {
        if b.id == self.id {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// The current object of `b`, for the writer: it cannot be replaced
    /// while this writer is borrowed, so no read section is needed and the
    /// caller may sleep. `EINVAL` if `b` is not this writer's box.
    pub(crate) fn get<'a>(&'a self, b: &'a RcuBox<T>) -> Result<&'a T> {
        self.check(b)?;
        let p = b.ptr.load(Ordering::Acquire);
        // SAFETY: `b` is this writer's box (checked), and only `replace`,
        // which needs `&mut self`, unpublishes its object; `drop` of `b`
        // cannot run while `b` is borrowed.
        Ok(unsafe { &*p })
    }

    /// Publish `new` in `b`; the old object is returned to be freed after a
    /// grace period. Does not sleep. `EINVAL` if `b` is not this writer's.
    pub(crate) fn replace(&mut self, b: &RcuBox<T>, new: KBox<T>) -> Result<Retired<T>> {
        self.check(b)?;
        let old = b.ptr.swap(KBox::into_raw(new), Ordering::AcqRel);
        // SAFETY: `old` came from `KBox::into_raw` (type invariant of `b`)
        // and is no longer published; `Retired` frees it only after a grace
        // period.
        Ok(Retired::new(unsafe { KBox::from_raw(old) }))
    }
}

/// An object no longer reachable by new readers, that readers already in a
/// section may still see. Freed by [`Retired::free`] (or on drop) after a
/// grace period: process context, no lock held.
pub(crate) struct Retired<T>(Option<KBox<T>>);

impl<T> Retired<T> {
    /// `obj` must be unpublished (no new reader can reach it).
    fn new(obj: KBox<T>) -> Self {
        Self(Some(obj))
    }

    /// Wait for a grace period, then free. Sleeps.
    pub(crate) fn free(self) {
        drop(self);
    }
}

impl<T> Drop for Retired<T> {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            synchronize();
            drop(obj);
        }
    }
}

/// Objects unlinked from RCU-read structures (e.g. hash chain nodes), freed
/// together after one grace period. Room is reserved before a writer starts
/// changing anything, so retiring never fails half-way.
pub(crate) struct RetireList<T> {
    objs: KVec<KBox<T>>,
}

impl<T> RetireList<T> {
    pub(crate) fn new() -> Self {
        Self { objs: KVec::new() }
    }

    /// Make room for `n` more objects.
    pub(crate) fn reserve(&mut self, n: usize) -> Result {
        self.objs.reserve(n, GFP_KERNEL)?;
        Ok(())
    }

    /// Keep `obj` (already unlinked) until the grace period. Needs room
    /// from [`RetireList::reserve`]; without it the object is freed only
    /// after a grace period right here (sleeps).
    pub(crate) fn push(&mut self, obj: KBox<T>) {
        if self.objs.len() < self.objs.capacity() {
            // Within capacity `push` does not allocate and cannot fail.
            let _ = self.objs.push(obj, GFP_NOWAIT);
        } else {
            Retired::new(obj).free();
        }
    }

    /// Wait for one grace period, then free everything. Sleeps.
    pub(crate) fn free(self) {
        drop(self);
    }
}

impl<T> Drop for RetireList<T> {
    fn drop(&mut self) {
        if !self.objs.is_empty() {
            synchronize();
            self.objs = KVec::new();
        }
    }
}
