// SPDX-License-Identifier: GPL-2.0
//! tlshub: transparent, sidecar-less mTLS for pod-to-pod TCP, in the kernel.
//!
//! This file owns the module's pieces and orders their lifetimes (as
//! WireGuard's main.c); it does nothing else.
//! - `state`: the node's state (mode, mapping, address index, counters),
//!   owned here as an `Arc<State>` and lent to everything else;
//! - `control`: the `tlshub` generic netlink family;
//! - `sys`: thin safe wrappers over the kernel's C APIs (the only place with
//!   raw `bindings::`).
//!
//! Init order: state → socket-release notifier → genetlink family (last, so
//! no request arrives before everything it needs exists).
//!
//! Exit order (`Drop`, explicit below): stop the hooks (none yet: the TCP
//! hook will be unregistered first) → unregister the family (waits for
//! running requests; a running dump holds a module reference, so none is
//! left) → unregister the release notifier (waits for callbacks in flight)
//! → drain and RCU barrier (to come with the flow table's deferred frees)
//! → drop the last reference to the state, which waits for a grace period
//! before freeing the address index (`RcuBox`).

use kernel::prelude::*;
use kernel::sync::Arc;

mod control;
mod state;
mod sys;
#[path = "../spec/uapi.rs"]
mod uapi;

/// Reported by `tlshubctl status` and logged on load.
pub(crate) const VERSION: &str = "0.2.0";

module! {
    type: TlsHubModule,
    name: "tlshub",
    author: "tlshub developers",
    description: "Transparent in-kernel mTLS for pod-to-pod TCP",
    license: "GPL",
}

struct TlsHubModule {
    /// The genetlink family; `None` once unregistered.
    control: Option<sys::genl::Registration<control::Control>>,
    /// Drops a socket's staged replacement when it closes.
    release: Option<sys::notify::ReleaseNotifier<control::StagingOwners>>,
    state: Option<Arc<state::State>>,
}

impl kernel::Module for TlsHubModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let state = state::State::new()?;
        let release =
            sys::notify::ReleaseNotifier::new(control::StagingOwners::new(state.clone()))?;
        let control = sys::genl::Registration::new(
            module,
            &control::FAMILY,
            control::Control::new(state.clone()),
        )?;
        pr_info!(
            "version {} loaded, genetlink family \"{}\"\n",
            VERSION,
            uapi::FAMILY_NAME
        );
        Ok(Self {
            control: Some(control),
            release: Some(release),
            state: Some(state),
        })
    }
}

impl Drop for TlsHubModule {
    fn drop(&mut self) {
        pr_info!("version {} unloading\n", VERSION);
        // 1. Hooks: none yet.
        // 2. No more requests.
        drop(self.control.take());
        // 3. No more release callbacks.
        drop(self.release.take());
        // 4. Last reference: frees the mapping; the address index after a
        //    grace period.
        drop(self.state.take());
    }
}
