// SPDX-License-Identifier: GPL-2.0
//! A spinlock that also disables softirqs (`spin_lock_bh`), for data shared
//! between process context and the TCP hook, which runs in softirq too.
//! A plain `SpinLock` taken in process context could be interrupted on the
//! same CPU by a softirq that takes it again: deadlock.
//!
//! C header: [include/linux/spinlock.h](srctree/include/linux/spinlock.h)

use kernel::bindings;
use kernel::sync::lock::{Backend, Lock};

/// `spin_lock_bh` / `spin_unlock_bh` as a `kernel::sync::lock` backend.
pub(crate) struct BhSpinLockBackend;

/// A spinlock taken with bottom halves disabled.
pub(crate) type BhSpinLock<T> = Lock<T, BhSpinLockBackend>;

/// Creates a [`BhSpinLock`] with a lockdep class for this call site.
macro_rules! new_bh_spinlock {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sys::bhlock::BhSpinLock::new(
            $inner, ::kernel::optional_name!($($name)?), ::kernel::static_lock_class!())
    };
}
pub(crate) use new_bh_spinlock;

// SAFETY: `spin_lock_bh`/`spin_unlock_bh` give mutual exclusion; the state
// is a `spinlock_t` initialised by `__spin_lock_init` before any use (the
// `Lock` type guarantees `init` runs first).
unsafe impl Backend for BhSpinLockBackend {
    type State = bindings::spinlock_t;
    type GuardState = ();

    /// # Safety
    ///
    /// As [`Backend::init`].
    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: valid for writes; `name`/`key` live forever (caller).
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    /// # Safety
    ///
    /// As [`Backend::lock`].
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: initialised lock (caller). The kernel's own `spin_lock_bh`
        // (through a helper, kernel/patches/0001): right on PREEMPT_RT too,
        // where a `spinlock_t` is an rt_mutex and not a `raw_spinlock_t`.
        unsafe { bindings::spin_lock_bh(ptr) }
    }

    /// # Safety
    ///
    /// As [`Backend::unlock`].
    unsafe fn unlock(ptr: *mut Self::State, _guard_state: &Self::GuardState) {
        // SAFETY: held by the caller, taken by `lock` above.
        unsafe { bindings::spin_unlock_bh(ptr) }
    }
}
