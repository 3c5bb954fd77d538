// SPDX-License-Identifier: GPL-2.0
//! SHA-256 for the key schedule: lib/crypto's generic implementation, which
//! needs no allocation and runs in any context.
//!
//! C header: [include/crypto/sha2.h](srctree/include/crypto/sha2.h)

use crate::keys::schedule::{Sha256, HASH_LEN};
use kernel::bindings;

/// A lib/crypto SHA-256 state, wiped when dropped.
pub(crate) struct LibSha256(bindings::sha256_state);

impl Sha256 for LibSha256 {
    fn new() -> Self {
        let mut s = LibSha256(bindings::sha256_state::default());
        // SAFETY: `s.0` is a valid state to initialise.
        unsafe { bindings::sha256_init(&mut s.0) };
        s
    }

    fn update(&mut self, data: &[u8]) {
        // SAFETY: `data` is valid for `len` bytes; the state is initialised.
        unsafe { bindings::sha256_update(&mut self.0, data.as_ptr(), data.len() as u32) };
    }

    fn finish(mut self) -> [u8; HASH_LEN] {
        let mut out = [0u8; HASH_LEN];
        // SAFETY: `out` has room for the digest; `sha256_final` also wipes
        // the state.
        unsafe { bindings::sha256_final(&mut self.0, out.as_mut_ptr()) };
        out
    }
}

impl Drop for LibSha256 {
    fn drop(&mut self) {
        // Key material may be in the buffer (HMAC pads): wipe it.
        let size = core::mem::size_of::<bindings::sha256_state>();
        // SAFETY: a plain-data struct we own, viewed as its bytes.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(
                (&mut self.0 as *mut bindings::sha256_state).cast::<u8>(),
                size,
            )
        };
        crate::keys::schedule::zeroize(bytes);
    }
}
