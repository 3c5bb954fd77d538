// SPDX-License-Identifier: GPL-2.0
//! Test-only knobs: module parameters that widen race windows so that a VM
//! test hits them under TCG (issue 14's method: "widen it with a delay knob
//! that exists only in test builds of the module"). Compiled only with
//! `--cfg tlshub_test_knobs`, which `scripts/kmod-build` passes for the test
//! kernel's `kmod/tlshub.ko` (`TLSHUB_TEST_KNOBS=y`, `kmod/Kbuild`); the
//! benchmark kernel's module has none. Each knob is 0 (no delay) unless a
//! test writes `/sys/module/tlshub/parameters/NAME` (root only).
//!
//! Mechanism only: one `__param` entry per knob, the layout C's
//! `module_param_named` emits (`include/linux/moduleparam.h`), read by the
//! module loader and `/sys/module`; a busy-wait that is safe in any
//! context, and a sleep for process context.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::bindings;

/// `gate_off_delay_ms`: milliseconds `gate::gate_off` waits between its
/// check that the socket still carries our ops and the swap (the window
/// the file pin closes: a last `fput` there would drop the socket's module
/// reference twice). VM test 52.
pub(crate) static GATE_OFF_DELAY_MS: AtomicU32 = AtomicU32::new(0);

/// `accept_delay_ms`: milliseconds the listen gate's `accept` sleeps after
/// the datapath put the stream gate on a new socket still waiting for its
/// keys, before it settles the socket's module reference (the window in
/// which a worker's install takes the gate off). VM test 53.
pub(crate) static ACCEPT_DELAY_MS: AtomicU32 = AtomicU32::new(0);

/// A `__param` entry. The kernel reads and writes the knob only through
/// `param_ops_uint`; nothing else touches the entry.
#[repr(transparent)]
struct Param(bindings::kernel_param);

// SAFETY: the entry is immutable after link time; its pointers are to
// statics (a name, `param_ops_uint`, this module, the knob) that live as
// long as the module.
unsafe impl Sync for Param {}

/// One `uint` knob, root-writable at run time (0644), with the layout of
/// C's `module_param_named` for a loadable module (no `MODULE.` prefix).
/// Only addresses are taken (this module's `struct module`, the kernel's
/// ops for `uint`, the knob).
macro_rules! knob_param {
    ($entry:ident, $name:literal, $knob:ident) => {
        #[link_section = "__param"]
        #[used]
        static $entry: Param = Param(bindings::kernel_param {
            name: $name.as_ptr().cast(),
            mod_: core::ptr::addr_of_mut!(bindings::__this_module),
            ops: core::ptr::addr_of!(bindings::param_ops_uint),
            perm: 0o644,
            level: -1,
            flags: 0,
            __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
                arg: $knob.as_ptr().cast(),
            },
        });
    };
}

knob_param!(
    GATE_OFF_DELAY_PARAM,
    c"gate_off_delay_ms",
    GATE_OFF_DELAY_MS
);
knob_param!(ACCEPT_DELAY_PARAM, c"accept_delay_ms", ACCEPT_DELAY_MS);

/// Busy-waits `knob` milliseconds (no sleep: callers may hold spinlocks).
pub(crate) fn delay(knob: &AtomicU32) {
    for _ in 0..knob.load(Ordering::Relaxed) {
        // SAFETY: `__udelay` only spins; valid in any context.
        unsafe { bindings::__udelay(1000) };
    }
}

/// Sleeps `knob` milliseconds (process context, no spinlock held).
pub(crate) fn sleep(knob: &AtomicU32) {
    let ms = knob.load(Ordering::Relaxed);
    if ms > 0 {
        crate::sys::sock::msleep(ms);
    }
}
