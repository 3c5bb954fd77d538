// SPDX-License-Identifier: GPL-2.0
//! tlshub: transparent, sidecar-less mTLS for pod-to-pod TCP, in the kernel.
//!
//! This file only wires the pieces together (as WireGuard's main.c):
//! - `hub`: per-node state (mode, pod-node mapping, counters);
//! - `mapping`: the mapping tables, O(1) lookups by pod IP and name;
//! - `netlink`: the `tlshub` generic netlink control plane;
//! - `genl`, `nlattr`, `rcu`: thin safe wrappers over the kernel's C APIs.

use kernel::prelude::*;

mod genl;
mod hub;
mod mapping;
mod netlink;
mod nlattr;
mod rcu;
#[path = "../spec/uapi.rs"]
mod uapi;

/// Reported by `tlshubctl status` and logged on load.
pub(crate) const VERSION: &str = "0.1.0";

module! {
    type: TlsHubModule,
    name: "tlshub",
    author: "tlshub developers",
    description: "Transparent in-kernel mTLS for pod-to-pod TCP",
    license: "GPL",
}

struct TlsHubModule {
    _control: genl::Registration<netlink::Control>,
}

impl kernel::Module for TlsHubModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let hub = hub::Hub::new()?;
        let control = KBox::pin(netlink::Control { hub }, GFP_KERNEL)?;
        let reg = genl::Registration::new(module, &netlink::FAMILY, control)?;
        pr_info!(
            "version {} loaded, genetlink family \"{}\"\n",
            VERSION,
            uapi::FAMILY_NAME
        );
        Ok(Self { _control: reg })
    }
}

impl Drop for TlsHubModule {
    fn drop(&mut self) {
        pr_info!("version {} unloading\n", VERSION);
    }
}
