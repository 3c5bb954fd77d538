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
//! module loader and `/sys/module`; and a busy-wait that is safe in any
//! context.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::bindings;

/// `gate_off_delay_ms`: milliseconds `gate::gate_off` waits between its
/// check that the socket still carries our ops and the swap (the window
/// the file pin closes: a last `fput` there would drop the socket's module
/// reference twice). VM test 52.
pub(crate) static GATE_OFF_DELAY_MS: AtomicU32 = AtomicU32::new(0);

/// A `__param` entry. The kernel reads and writes the knob only through
/// `param_ops_uint`; nothing else touches the entry.
#[repr(transparent)]
struct Param(bindings::kernel_param);

// SAFETY: the entry is immutable after link time; its pointers are to
// statics (a name, `param_ops_uint`, this module, the knob) that live as
// long as the module.
unsafe impl Sync for Param {}

#[link_section = "__param"]
#[used]
static GATE_OFF_DELAY_PARAM: Param = Param(bindings::kernel_param {
    // A loadable module's parameters have no `MODULE.` prefix.
    name: c"gate_off_delay_ms".as_ptr().cast(),
    // Addresses only (this module's `struct module`, the kernel's ops for
    // `uint`): nothing is read.
    mod_: core::ptr::addr_of_mut!(bindings::__this_module),
    ops: core::ptr::addr_of!(bindings::param_ops_uint),
    // 0644: root may set it at run time.
    perm: 0o644,
    level: -1,
    flags: 0,
    __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
        arg: GATE_OFF_DELAY_MS.as_ptr().cast(),
    },
});

/// Busy-waits `knob` milliseconds (no sleep: callers may hold spinlocks).
pub(crate) fn delay(knob: &AtomicU32) {
    for _ in 0..knob.load(Ordering::Relaxed) {
        // SAFETY: `__udelay` only spins; valid in any context.
        unsafe { bindings::__udelay(1000) };
    }
}
