// SPDX-License-Identifier: GPL-2.0
//! The datapath's own workqueue (so unload can wait for every queued item by
//! destroying it) and one periodic tick (a `delayed_work`) for deadlines.
//!
//! C header: [include/linux/workqueue.h](srctree/include/linux/workqueue.h)

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use kernel::{bindings, c_str, prelude::*, workqueue::Queue};

/// An unbound, high-priority workqueue; destroying it (on drop) runs or
/// waits for everything queued.
///
/// # Invariants
///
/// `0` is a live workqueue owned by this value.
pub(crate) struct OwnQueue(*mut bindings::workqueue_struct);

// SAFETY: workqueues are used from any CPU and context by design.
unsafe impl Send for OwnQueue {}
// SAFETY: as above.
unsafe impl Sync for OwnQueue {}

impl OwnQueue {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: a constant format without arguments.
        let wq = unsafe {
            bindings::alloc_workqueue(
                c_str!("tlshub").as_char_ptr(),
                bindings::wq_flags_WQ_UNBOUND | bindings::wq_flags_WQ_HIGHPRI,
                0,
            )
        };
        if wq.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self(wq))
    }

    /// Wait until everything queued so far has run.
    pub(crate) fn flush(&self) {
        crate::sys::rcu::might_sleep();
        // SAFETY: live workqueue (invariant); process context (checked).
        unsafe { bindings::__flush_workqueue(self.0) };
    }

    pub(crate) fn queue(&self) -> &Queue {
        // SAFETY: live workqueue for as long as `self` (invariant).
        unsafe { Queue::from_raw(self.0) }
    }
}

impl Drop for OwnQueue {
    fn drop(&mut self) {
        crate::sys::rcu::might_sleep();
        // SAFETY: ours (invariant); drains and frees it.
        unsafe { bindings::destroy_workqueue(self.0) };
    }
}

/// What the tick runs (the datapath's deadline tick, registered in
/// [`Ticker::new`]; this file never names it).
pub(crate) trait Tick: 'static {
    /// Process context (a workqueue item).
    fn tick();
}

/// A module-wide `delayed_work` that calls a [`Tick`].
struct TickCell(UnsafeCell<MaybeUninit<bindings::delayed_work>>);

// SAFETY: initialised once in `Ticker::new` before it can be queued; then
// only touched through the workqueue API, which synchronises itself.
unsafe impl Sync for TickCell {}

static TICK: TickCell = TickCell(UnsafeCell::new(MaybeUninit::zeroed()));

/// # Safety
///
/// Called by the workqueue for `TICK`.
unsafe extern "C" fn tick_fn<T: Tick>(_w: *mut bindings::work_struct) {
    T::tick();
}

/// Owner of the tick: cancelled (and waited for) when dropped.
pub(crate) struct Ticker(());

impl Ticker {
    pub(crate) fn new<T: Tick>() -> Self {
        // SAFETY: nothing can have queued `TICK` yet (only a `Ticker` does).
        unsafe { bindings::init_delayed_work(TICK.0.get().cast(), Some(tick_fn::<T>)) };
        Self(())
    }

    /// Run the tick in `jiffies` (sooner if already armed sooner... the
    /// workqueue keeps the earlier one: `queue_delayed_work` does nothing if
    /// pending).
    pub(crate) fn arm(&self, jiffies: u64) {
        // SAFETY: initialised in `new`; `system_wq` is always there.
        unsafe {
            bindings::queue_delayed_work(bindings::system_wq, TICK.0.get().cast(), jiffies as usize)
        };
    }
}

impl Ticker {
    /// Cancel the tick and wait for a running one (it re-arms itself
    /// unless the datapath is draining, which the caller ensures first).
    pub(crate) fn cancel(&self) {
        crate::sys::rcu::might_sleep();
        // SAFETY: initialised in `new`; process context (checked).
        unsafe { bindings::cancel_delayed_work_sync(TICK.0.get().cast()) };
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        crate::sys::rcu::might_sleep();
        // SAFETY: initialised in `new`; waits for a running tick.
        unsafe { bindings::cancel_delayed_work_sync(TICK.0.get().cast()) };
    }
}

/// Jiffies now.
pub(crate) fn jiffies() -> u64 {
    // SAFETY: reading the kernel's tick counter.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(bindings::jiffies)) as u64 }
}

/// Milliseconds to jiffies (rounded up). `CONFIG_HZ`, the kernel's tick:
/// the bindings' `HZ` is the user-space `USER_HZ` (100).
pub(crate) fn ms_to_jiffies(ms: u32) -> u64 {
    (u64::from(ms) * u64::from(bindings::CONFIG_HZ)).div_ceil(1000)
}

/// Jiffies to milliseconds.
pub(crate) fn jiffies_to_ms(j: u64) -> u64 {
    j * 1000 / u64::from(bindings::CONFIG_HZ)
}
