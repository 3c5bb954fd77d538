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
//!   after a grace period.

pub(crate) mod genl;
pub(crate) mod nlattr;
pub(crate) mod notify;
pub(crate) mod rand;
pub(crate) mod rcu;
