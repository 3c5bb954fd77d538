// SPDX-License-Identifier: GPL-2.0
//! The TCP state hook: a probe on the `inet_sock_set_state` tracepoint,
//! which every TCP state change passes through (`inet_sk_state_store`), in
//! every network namespace.
//!
//! C header: [include/trace/events/sock.h](srctree/include/trace/events/sock.h)
//!
//! The probe runs with preemption disabled, in process or softirq context,
//! *before* the new state is stored (datapath design, Part 2 §1.1): it sees
//! the old state in the sock and gets the new one as an argument. It must
//! not sleep. Unregistering waits (`tracepoint_synchronize_unregister`) until
//! no probe runs any more.

use crate::sys::sock::Sock;
use kernel::{bindings, prelude::*};

/// Who gets the state changes (the datapath's hook, registered in
/// [`StateHook::register`]; this file never names it).
pub(crate) trait StateProbe: 'static {
    /// `sk` moves from `old` to `new` (not stored yet). Any context,
    /// preemption off: must not sleep.
    fn on_state(sk: &Sock, old: i32, new: i32);
}

/// The probe's C type.
type ProbeFn = unsafe extern "C" fn(*mut core::ffi::c_void, *const bindings::sock, i32, i32);

/// # Safety
///
/// Called by the tracepoint with a live sock (the tracepoint's caller holds
/// it) and preemption disabled.
unsafe extern "C" fn probe<P: StateProbe>(
    _data: *mut core::ffi::c_void,
    sk: *const bindings::sock,
    old: i32,
    new: i32,
) {
    // SAFETY: the sock is live for the probe (tracepoint contract).
    let sk = unsafe { Sock::from_raw(sk) };
    P::on_state(sk, old, new);
}

/// The registered probe; unregistered (and waited for) when dropped.
pub(crate) struct StateHook(ProbeFn);

impl StateHook {
    pub(crate) fn register<P: StateProbe>() -> Result<Self> {
        let f: ProbeFn = probe::<P>;
        // SAFETY: `probe` has the tracepoint's prototype and lives as long as
        // the module; `Drop` unregisters it before the module goes.
        let rc =
            unsafe { bindings::register_trace_inet_sock_set_state(Some(f), core::ptr::null_mut()) };
        if rc < 0 {
            return Err(Error::from_errno(rc));
        }
        Ok(Self(f))
    }
}

impl Drop for StateHook {
    fn drop(&mut self) {
        crate::sys::rcu::might_sleep();
        // SAFETY: registered in `register` with the same arguments; the
        // synchronisation waits for probes still running.
        unsafe {
            bindings::unregister_trace_inet_sock_set_state(Some(self.0), core::ptr::null_mut());
            bindings::tracepoint_synchronize_unregister();
        }
    }
}
