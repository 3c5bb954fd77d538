// SPDX-License-Identifier: GPL-2.0
//! kTLS from kernel context: attach, `TLS_TX`, `TLS_RX` and
//! `TLS_RX_EXPECT_NO_PAD` in one step under the socket lock, through
//! `tls_sk_install_locked` (kernel patch 0004, net/tls), TLS 1.3 records.
//!
//! C header: [include/uapi/linux/tls.h](srctree/include/uapi/linux/tls.h),
//! [include/net/tls.h](srctree/include/net/tls.h) (patched)
//!
//! Why one step and not the `setsockopt` sequence (`TCP_ULP`, `TLS_TX`,
//! `TLS_RX`): each of those takes and drops the socket lock and publishes
//! its intermediate `sk_prot` and `sock->ops` (after `TLS_TX` alone,
//! `recvmsg` is still TCP's: a concurrent reader would get ciphertext), and
//! kTLS writes `sk->sk_socket->ops` and copies them as its tables' base,
//! which forced a stand-in `struct socket` that lockless readers could use
//! after it was freed (review H1). The helper never touches
//! `sk->sk_socket`, takes the base ops as an argument, changes `sk_prot`
//! once and returns the final ops, which the caller publishes under the
//! same lock ([`SockLock::publish_ops`]). It accepts CLOSE_WAIT (the peer
//! half-closed before the keys were in).
//!
//! Preconditions: process context, the socket lock owned by the caller
//! (a [`SockLock`]), no ULP and no socket map, `tls.ko` loaded (a symbol
//! dependency of this module: it cannot be unloaded under us). The
//! crypto_info buffers hold keys: they are wiped before they go out of
//! scope. May touch: the socket under its lock; nothing else.

use crate::keys::schedule::{zeroize, Cipher, DirKeys, FlowKeys};
use crate::sys::sock::{OpsPtr, SockLock};
use kernel::{bindings, prelude::*};

// Without lockdep (the benchmark kernel) `struct lockdep_map`, inside
// `struct proto` and `struct proto_ops`, has no fields, which rustc calls
// FFI-unsafe; only pointers to these kernel-owned structs cross here.
#[allow(improper_ctypes)]
extern "C" {
    /// `net/tls/tls_main.c` (kernel patch 0004), `EXPORT_SYMBOL_GPL`;
    /// declared in `include/net/tls.h`, which the bindings do not include.
    fn tls_sk_install_locked(
        sk: *mut kernel::ffi::c_void,
        base_ops: *const bindings::proto_ops,
        tx: *mut bindings::tls_crypto_info,
        tx_len: kernel::ffi::c_uint,
        rx: *mut bindings::tls_crypto_info,
        rx_len: kernel::ffi::c_uint,
        rx_no_pad: bool,
        ops: *mut *const bindings::proto_ops,
    ) -> kernel::ffi::c_int;
}

/// A `tls12_crypto_info_*` for one direction, as bytes; wiped on drop.
struct CryptoInfo {
    buf: [u8; core::mem::size_of::<bindings::tls12_crypto_info_aes_gcm_256>()],
    len: usize,
}

impl Drop for CryptoInfo {
    fn drop(&mut self) {
        zeroize(&mut self.buf);
    }
}

fn put(buf: &mut [u8], at: usize, data: &[u8]) -> Result {
    buf.get_mut(at..at + data.len())
        .ok_or(EINVAL)?
        .copy_from_slice(data);
    Ok(())
}

impl CryptoInfo {
    /// An empty buffer: filled in place ([`CryptoInfo::fill`]), never
    /// returned with a key in it (a move leaves a copy behind; review L2).
    const fn zeroed() -> Self {
        CryptoInfo {
            buf: [0; core::mem::size_of::<bindings::tls12_crypto_info_aes_gcm_256>()],
            len: 0,
        }
    }

    fn fill(&mut self, k: &DirKeys) -> Result {
        let ci = self;
        let (cipher_type, len, iv_at, key_at, salt_at, seq_at) = match k.cipher() {
            Cipher::Aes128Gcm => (
                bindings::TLS_CIPHER_AES_GCM_128,
                core::mem::size_of::<bindings::tls12_crypto_info_aes_gcm_128>(),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_128, iv),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_128, key),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_128, salt),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_128, rec_seq),
            ),
            Cipher::Aes256Gcm => (
                bindings::TLS_CIPHER_AES_GCM_256,
                core::mem::size_of::<bindings::tls12_crypto_info_aes_gcm_256>(),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_256, iv),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_256, key),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_256, salt),
                core::mem::offset_of!(bindings::tls12_crypto_info_aes_gcm_256, rec_seq),
            ),
            Cipher::Chacha20Poly1305 => (
                bindings::TLS_CIPHER_CHACHA20_POLY1305,
                core::mem::size_of::<bindings::tls12_crypto_info_chacha20_poly1305>(),
                core::mem::offset_of!(bindings::tls12_crypto_info_chacha20_poly1305, iv),
                core::mem::offset_of!(bindings::tls12_crypto_info_chacha20_poly1305, key),
                core::mem::offset_of!(bindings::tls12_crypto_info_chacha20_poly1305, salt),
                core::mem::offset_of!(bindings::tls12_crypto_info_chacha20_poly1305, rec_seq),
            ),
        };
        ci.len = len;
        put(&mut ci.buf, 0, &bindings::TLS_1_3_VERSION.to_ne_bytes())?;
        put(&mut ci.buf, 2, &(cipher_type as u16).to_ne_bytes())?;
        put(&mut ci.buf, iv_at, k.ktls_iv())?;
        put(&mut ci.buf, key_at, k.key())?;
        put(&mut ci.buf, salt_at, k.ktls_salt())?;
        put(&mut ci.buf, seq_at, &k.ktls_rec_seq())
    }

    fn bytes(&mut self) -> &mut [u8] {
        let len = self.len;
        self.buf.get_mut(..len).unwrap_or_default()
    }
}

/// Install kTLS TX and RX on the locked socket with `keys` (`client`:
/// which end we are); `base`: the family's stream ops. Returns the ops
/// kTLS chose, for [`SockLock::publish_ops`] under the same lock. On error
/// the socket may be half set up (its close frees that): the caller
/// resets it.
pub(crate) fn install_locked(
    l: &SockLock<'_>,
    keys: &FlowKeys,
    client: bool,
    base: *const bindings::proto_ops,
) -> Result<OpsPtr> {
    let (tx_keys, rx_keys) = keys.tx_rx(client);
    let (mut tx, mut rx) = (CryptoInfo::zeroed(), CryptoInfo::zeroed());
    tx.fill(tx_keys)?;
    rx.fill(rx_keys)?;
    let (tx_len, rx_len) = (u32::try_from(tx.len)?, u32::try_from(rx.len)?);
    let mut ops: *const bindings::proto_ops = core::ptr::null();
    // SAFETY: `l` owns the lock of a live TCP sock (what the helper asserts);
    // the buffers are kernel memory of the lengths given, live for the
    // call (copied by kTLS); `ops` is a valid out pointer; both ends are
    // this module and kTLS TX never pads, so `rx_no_pad` holds.
    let rc = unsafe {
        tls_sk_install_locked(
            l.sock().as_ptr().cast(),
            base,
            tx.bytes().as_mut_ptr().cast(),
            tx_len,
            rx.bytes().as_mut_ptr().cast(),
            rx_len,
            true,
            &mut ops,
        )
    };
    if rc < 0 {
        let e = Error::from_errno(rc);
        pr_info!("kTLS install: {:?}\n", e);
        return Err(e);
    }
    OpsPtr::new(ops).ok_or(EINVAL)
}
