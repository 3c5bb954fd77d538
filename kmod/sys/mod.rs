// SPDX-License-Identifier: GPL-2.0
//! The thin layer over the kernel's C APIs: the only place in the module
//! where raw `bindings::` appear. Everything here is a small safe wrapper in
//! `rust/kernel` style (documented invariants, `// SAFETY:` on every unsafe
//! block), the kind of code that would move to `rust/kernel` upstream.
//!
//! - `genl`: generic netlink families (registration, requests, replies,
//!   dumps, extack);
//! - `nlattr`: bounds-checked parsing of netlink attributes;
//! - `notify`: `NETLINK_URELEASE` notifications;
//! - `rand`: the kernel CRNG, for hash seeds;
//! - `rcu`: read guards, RCU-replaced boxes with a branded writer, freeing
//!   after a grace period;
//! - `bhlock`: a spinlock that disables softirqs (data shared with the hook);
//! - `sock`: TCP sockets (accessors, the shadow-socket install, the poison
//!   proto);
//! - `gate`: the gate's `proto_ops` tables and their C trampolines;
//! - `tracepoint`: the TCP state probe;
//! - `netfilter`: the wire guard's LOCAL_OUT hook in every namespace;
//! - `ktls`: installing kTLS from kernel context;
//! - `sha256`: lib/crypto SHA-256 for the key schedule;
//! - `workq`: the datapath's workqueue and deadline tick;
//! - `knobs` (test builds only): delay knobs that widen race windows.

use kernel::{bindings, prelude::*};

/// `ECONNABORTED` as a positive number (for `sk_err` and `tcp_abort`).
pub(crate) const ECONNABORTED_NR: i32 = bindings::ECONNABORTED as i32;

/// Errnos `kernel::error::code` does not name.
pub(crate) fn econnaborted() -> Error {
    Error::from_errno(-ECONNABORTED_NR)
}

pub(crate) fn enotconn() -> Error {
    Error::from_errno(-(bindings::ENOTCONN as i32))
}

pub(crate) fn eproto() -> Error {
    Error::from_errno(-(bindings::EPROTO as i32))
}

pub(crate) mod bhlock;
pub(crate) mod gate;
pub(crate) mod genl;
#[cfg(tlshub_test_knobs)]
pub(crate) mod knobs;
pub(crate) mod ktls;
pub(crate) mod netfilter;
pub(crate) mod nlattr;
pub(crate) mod notify;
pub(crate) mod rand;
pub(crate) mod rcu;
pub(crate) mod sha256;
pub(crate) mod sock;
pub(crate) mod tracepoint;
pub(crate) mod workq;
