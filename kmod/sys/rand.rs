// SPDX-License-Identifier: GPL-2.0
//! Random numbers from the kernel's CRNG.
//!
//! C header: [include/linux/random.h](srctree/include/linux/random.h)
//!
//! Used for hash-table seeds, so that lookups cost the same whatever keys an
//! outsider picks. May touch `get_random_u32` only.

use kernel::bindings;

/// A uniformly random `u32` (any context; never blocks once the CRNG is up,
/// which it is long before a module can load).
pub(crate) fn u32() -> u32 {
    // SAFETY: no preconditions.
    unsafe { bindings::get_random_u32() }
}
