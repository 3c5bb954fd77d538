// SPDX-License-Identifier: GPL-2.0
//! A heap object replaced as a whole under RCU.
//!
//! C header: [include/linux/rcupdate.h](srctree/include/linux/rcupdate.h)
//!
//! Readers (any context, softirq included) see either the old or the new
//! object, never a mix; writers publish a complete replacement and free the
//! old one after a grace period. This is how the datapath reads the mapping
//! without locks while the control plane swaps whole tables.

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{bindings, prelude::*};

/// An RCU-protected, owned `KVBox<T>`.
///
/// # Invariants
///
/// `ptr` always comes from `KVBox::into_raw` and is owned by this object;
/// after a replacement, the old pointer is only freed once a grace period has
/// elapsed, so a reader inside `rcu_read_lock()` never sees freed memory.
pub(crate) struct RcuBox<T> {
    ptr: AtomicPtr<T>,
}

// SAFETY: readers get `&T` from several CPUs at once (needs `T: Sync`); the
// value can be dropped on another CPU than it was created on (needs `T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}
// SAFETY: as above, ownership of the boxed `T` moves with the `RcuBox`.
unsafe impl<T: Send + Sync> Send for RcuBox<T> {}

/// The right to replace the object of one [`RcuBox`]. There is exactly one
/// per box, so whoever holds `&mut` to it is the only writer; keep it inside
/// the writers' lock.
pub(crate) struct WriterToken(());

impl<T> RcuBox<T> {
    /// Take ownership of `value`; the token is the box's only writer right.
    pub(crate) fn new(value: KVBox<T>) -> (Self, WriterToken) {
        (
            Self {
                ptr: AtomicPtr::new(KVBox::into_raw(value)),
            },
            WriterToken(()),
        )
    }

    /// The current object, for the writer: it cannot be replaced while the
    /// token is borrowed, so no RCU section is needed and the caller may sleep.
    /// `token` must be the one returned with this box.
    pub(crate) fn get<'a>(&'a self, _token: &'a WriterToken) -> &'a T {
        // SAFETY: `replace` needs `&mut WriterToken`, so the object cannot be
        // replaced (and freed) while `_token` is borrowed for `'a`.
        unsafe { &*self.ptr.load(Ordering::Acquire) }
    }

    /// Run `f` on the current object inside an RCU read-side section.
    ///
    /// `f` must not sleep. Callable from any context.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: no preconditions; paired with the unlock below.
        unsafe { bindings::rcu_read_lock() };
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: by the type invariant `p` is a live box; it cannot be freed
        // before `rcu_read_unlock()` because `replace` waits for a grace period.
        let r = f(unsafe { &*p });
        // SAFETY: paired with the lock above.
        unsafe { bindings::rcu_read_unlock() };
        r
    }

    /// Publish `new` and return the old object once no reader can still see
    /// it. Sleeps: process context only.
    pub(crate) fn replace(&self, new: KVBox<T>, _token: &mut WriterToken) -> KVBox<T> {
        let old = self.ptr.swap(KVBox::into_raw(new), Ordering::AcqRel);
        // SAFETY: process context, as documented; waits for all readers that
        // may still hold `old`.
        unsafe { bindings::synchronize_rcu() };
        // SAFETY: `old` came from `KVBox::into_raw` (type invariant) and, after
        // the grace period, nobody else refers to it.
        unsafe { KVBox::from_raw(old) }
    }
}

impl<T> Drop for RcuBox<T> {
    fn drop(&mut self) {
        // SAFETY: process context (module exit). Let readers finish first.
        unsafe { bindings::synchronize_rcu() };
        // SAFETY: we own the pointer (type invariant) and no reader remains.
        drop(unsafe { KVBox::from_raw(*self.ptr.get_mut()) });
    }
}
