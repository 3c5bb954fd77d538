// SPDX-License-Identifier: GPL-2.0
//! kTLS from kernel context: `TCP_ULP "tls"`, then `TLS_TX`, `TLS_RX` and
//! `TLS_RX_EXPECT_NO_PAD`, each through `sk->sk_prot->setsockopt` with a
//! kernel buffer (datapath design, Part 2 §3.1), TLS 1.3 records.
//!
//! C header: [include/uapi/linux/tls.h](srctree/include/uapi/linux/tls.h)
//!
//! Preconditions (each a trap in the design notes): process context, the
//! socket lock *not* held (every step takes it), `sk->sk_socket` set (the
//! real socket, or a shadow), ESTABLISHED or CLOSE_WAIT (the ULP goes on
//! under the socket lock through `SockLock::set_ulp_tls`, which lets kTLS
//! attach to a socket whose peer half-closed already), no ULP and no socket
//! map yet,
//! `tls.ko` loaded (ULP autoload needs the caller's CAP_NET_ADMIN, which pod
//! processes lack: [`load_tls`] at module init). The crypto_info buffers hold
//! keys: they are wiped before they go out of scope.

use crate::keys::schedule::{zeroize, Cipher, DirKeys, FlowKeys};
use crate::sys::sock::Sock;
use kernel::{bindings, c_str, prelude::*};

/// Ask for `tls.ko` now (init runs as root), so that installs from pod
/// contexts find the ULP.
pub(crate) fn load_tls() {
    // SAFETY: a constant module name; `request_module` may sleep (init is
    // process context).
    let rc = unsafe { bindings::__request_module(true, c_str!("tls").as_char_ptr()) };
    // A failure is logged by the installs that need it (`kTLS TCP_ULP`).
    if rc != 0 {
        pr_debug!("request_module(tls): {}\n", rc);
    }
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
    fn new(k: &DirKeys) -> Result<Self> {
        let mut ci = CryptoInfo {
            buf: [0; core::mem::size_of::<bindings::tls12_crypto_info_aes_gcm_256>()],
            len: 0,
        };
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
        put(&mut ci.buf, seq_at, &k.ktls_rec_seq())?;
        Ok(ci)
    }

    fn bytes(&mut self) -> &mut [u8] {
        let len = self.len;
        self.buf.get_mut(..len).unwrap_or_default()
    }
}

/// Install kTLS TX and RX on `sk` with `keys` (`client`: which end we are).
/// On error the socket may be half-installed: the caller resets it.
pub(crate) fn install(sk: &Sock, keys: &FlowKeys, client: bool) -> Result {
    let (tx, rx) = keys.tx_rx(client);
    let mut tx = CryptoInfo::new(tx)?;
    let mut rx = CryptoInfo::new(rx)?;
    let step = |what: &str, r: Result| {
        if let Err(e) = r {
            pr_info!("kTLS {}: {:?}\n", what, e);
        }
        r
    };
    step("TCP_ULP", sk.lock().set_ulp_tls())?;
    step(
        "TLS_TX",
        sk.setsockopt(bindings::SOL_TLS, bindings::TLS_TX, tx.bytes()),
    )?;
    step(
        "TLS_RX",
        sk.setsockopt(bindings::SOL_TLS, bindings::TLS_RX, rx.bytes()),
    )?;
    // Both ends are this module and kTLS TX never pads: zero-copy decrypt.
    let mut one = 1i32.to_ne_bytes();
    step(
        "TLS_RX_EXPECT_NO_PAD",
        sk.setsockopt(bindings::SOL_TLS, bindings::TLS_RX_EXPECT_NO_PAD, &mut one),
    )?;
    Ok(())
}
