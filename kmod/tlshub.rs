// SPDX-License-Identifier: GPL-2.0
//! tlshub: transparent, sidecar-less mTLS for pod-to-pod TCP, in the kernel.
//!
//! This file owns the module's pieces and orders their lifetimes (as
//! WireGuard's main.c); it does nothing else.
//! - `state`: the node's state (mode, mapping, address index, counters),
//!   owned here as an `Arc<State>` and lent to everything else;
//! - `datapath`: the TCP hook, the gate and kTLS installation;
//! - `keys`: the key provider and the per-flow key schedule;
//! - `control`: the `tlshub` generic netlink family;
//! - `sys`: thin safe wrappers over the kernel's C APIs (the only place with
//!   raw `bindings::`).
//!
//! Init order: state → datapath (configuration, flow table, workqueue; not
//! hooked yet) → socket-release notifier → genetlink family → the family's
//! event sender handed to the datapath → the wire guard (LOCAL_OUT in every
//! namespace) → the TCP hook (last: the kernel calls into the module only
//! once everything it needs exists).
//!
//! Exit order (`Drop`, explicit below): stop the datapath (unregister the
//! hook, give every gated socket its ops back — resetting flows not yet
//! secured —, wait until no thread is inside module text, unregister the
//! wire guard) → take the event
//! sender back → unregister the family (waits for running requests; a
//! running dump holds a module reference, so none is left) → unregister the
//! release notifier → drop the datapath (destroying its workqueue runs what
//! is queued, which finds the datapath stopped) → drop the last reference
//! to the state, which waits for a grace period before freeing the address
//! index (`RcuBox`). Flows already on kTLS belong to the kernel's TLS code
//! and keep working after unload.

// `pin_init!` of the flow (many fields) nests deeper than the default.
#![recursion_limit = "256"]

use kernel::prelude::*;
use kernel::sync::Arc;

mod control;
mod datapath;
mod keys;
mod state;
mod sys;
#[path = "../spec/uapi.rs"]
mod uapi;

/// Reported by `tlshubctl status` and logged on load.
pub(crate) const VERSION: &str = "0.3.0";

module! {
    type: TlsHubModule,
    name: "tlshub",
    author: "tlshub developers",
    description: "Transparent in-kernel mTLS for pod-to-pod TCP",
    license: "GPL",
}

struct TlsHubModule {
    /// The TCP hook; `None` once stopped.
    hook: Option<datapath::Hooks>,
    datapath: Option<Arc<datapath::Datapath>>,
    /// The genetlink family; `None` once unregistered.
    control: Option<sys::genl::Registration<control::Control>>,
    /// Drops a socket's staged replacement when it closes.
    release: Option<sys::notify::ReleaseNotifier<control::StagingOwners>>,
    state: Option<Arc<state::State>>,
}

impl kernel::Module for TlsHubModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let state = state::State::new()?;
        let dp = datapath::Datapath::new(state.clone())?;
        let release =
            sys::notify::ReleaseNotifier::new(control::StagingOwners::new(state.clone()))?;
        let control = sys::genl::Registration::new(
            module,
            &control::FAMILY,
            control::Control::new(state.clone(), dp.clone()),
        )?;
        dp.set_events(Some(control.multicaster()));
        let hook = match dp.start() {
            Ok(h) => h,
            Err(e) => {
                dp.set_events(None);
                return Err(e);
            }
        };
        pr_info!(
            "version {} loaded, genetlink family \"{}\"\n",
            VERSION,
            uapi::FAMILY_NAME
        );
        Ok(Self {
            hook: Some(hook),
            datapath: Some(dp),
            control: Some(control),
            release: Some(release),
            state: Some(state),
        })
    }
}

impl Drop for TlsHubModule {
    fn drop(&mut self) {
        pr_info!("version {} unloading\n", VERSION);
        // 1. The datapath lets go of every socket.
        if let (Some(dp), Some(hook)) = (&self.datapath, self.hook.take()) {
            dp.stop(hook);
            dp.set_events(None);
        }
        // 2. No more requests.
        drop(self.control.take());
        // 3. No more release callbacks.
        drop(self.release.take());
        // 4. The datapath: its workqueue drains.
        drop(self.datapath.take());
        // 5. Last reference: frees the mapping; the address index after a
        //    grace period.
        drop(self.state.take());
    }
}
