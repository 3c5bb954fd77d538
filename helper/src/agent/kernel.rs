//! What the agent needs from the kernel module, as a trait ([`Kernel`]), and
//! its generic-netlink implementation ([`NetlinkKernel`]) on top of the
//! crate's public client.
//!
//! The trait keeps the session logic testable in one process (the tests
//! give each agent a fake kernel that records what was installed). The
//! netlink side opens one command socket (re-opened after an error, e.g.
//! the module reloaded) and, in [`watch_key_requests`], one socket joined
//! to the `keys` multicast group, which carries both the node-pair
//! `key-request` events and the per-flow `flow-key-request` events.

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::netlink::{Client, Event, FlowKey, FlowKeyRequest, NetlinkError, PeerState};
use crate::psk::Psk;
use crate::uapi;

/// A peer as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPeer {
    pub name: String,
    /// Epoch of the current secret, if any.
    pub epoch: Option<u64>,
    /// The highest epoch the kernel ever had for the peer (0: none), also
    /// after a delete or a failure: a new secret must come after it.
    pub last_epoch: u64,
    /// Flows waiting for a secret.
    pub pending: u32,
    /// The kernel holds a secret that has not expired.
    pub valid: bool,
}

/// What [`Kernel::fail`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Waiting flows were reset (key-refused).
    Told,
    /// The kernel still has a valid secret for the peer and no flow waits:
    /// it was left alone (a failed renewal must not cut working flows).
    KeptValidSecret,
}

/// Why [`Kernel::flow_key_set`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowKeySetError {
    /// No flow with that tuple waits for its own key (`ENOENT`): not
    /// decided yet (retry briefly), or keyed, reset, timed out already.
    NoSuchFlow,
    /// Anything else (the kernel's refusal with its message, a socket
    /// error).
    Other(String),
}

impl std::fmt::Display for FlowKeySetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowKeySetError::NoSuchFlow => f.write_str("no such flow waiting (ENOENT)"),
            FlowKeySetError::Other(e) => f.write_str(e),
        }
    }
}

/// The kernel operations the agent uses.
pub trait Kernel: Send + Sync {
    /// Installs the node-pair secret shared with `peer` under `epoch`;
    /// `lifetime` is how long it is meant to live.
    fn install(
        &self,
        peer: &str,
        secret: &Psk,
        epoch: u64,
        lifetime: Duration,
    ) -> Result<u64, String>;
    /// Tells the kernel no secret is coming for `peer` now, so waiting
    /// flows fail at once (unless a valid secret is in place).
    fn fail(&self, peer: &str, reason: &str) -> Result<FailOutcome, String>;
    /// Every peer with a secret or waiting flows.
    fn peers(&self) -> Result<Vec<KernelPeer>, String>;
    /// Keys one flow waiting for its own secret (openssl and boringssl
    /// modes). The default refuses: a kernel without per-flow keys.
    fn flow_key_set(&self, key: &FlowKey) -> Result<(), FlowKeySetError> {
        let _ = key;
        Err(FlowKeySetError::Other(
            "per-flow keys not supported".to_owned(),
        ))
    }
    /// The nodes this kernel serves (`node local`). The default: none known.
    fn local_nodes(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// The module, through generic netlink.
///
/// A kernel that serves several nodes holds a secret per node pair (spec
/// §3): an agent for one of them ([`NetlinkKernel::for_pair`]) installs,
/// fails and reads only the entries of the pairs {its node, peer}, so each
/// local node's agent makes its own sessions. A kernel that serves one
/// node gets the peers' own entries ([`NetlinkKernel::new`]).
pub struct NetlinkKernel {
    client: Mutex<Option<Client>>,
    /// This agent's node, in pair mode.
    local: Option<String>,
}

impl Default for NetlinkKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl NetlinkKernel {
    pub fn new() -> Self {
        NetlinkKernel {
            client: Mutex::new(None),
            local: None,
        }
    }

    /// Pair mode: the secrets of the pairs {`local`, peer}.
    pub fn for_pair(local: &str) -> Self {
        NetlinkKernel {
            client: Mutex::new(None),
            local: Some(local.to_owned()),
        }
    }

    /// The local node, in pair mode.
    pub fn pair_local(&self) -> Option<&str> {
        self.local.as_deref()
    }

    /// The peer an entry `(name, local)` is for, if it is this agent's:
    /// in pair mode the pairs {our node, peer} (either order), else the
    /// peers' own entries.
    fn ours(&self, name: String, local: Option<String>) -> Option<String> {
        match (self.local.as_deref(), local) {
            (None, None) => Some(name),
            (Some(me), Some(l)) if l == me => Some(name),
            (Some(me), Some(l)) if name == me => Some(l),
            _ => None,
        }
    }

    /// Runs `op` on the command socket, opening it if needed; a socket that
    /// failed below the kernel's answer is dropped and re-opened next time.
    fn with<T>(
        &self,
        op: impl FnOnce(&mut Client) -> Result<T, NetlinkError>,
    ) -> Result<T, String> {
        self.with_raw(op).map_err(|e| e.to_string())
    }

    /// [`NetlinkKernel::with`], keeping the error as it is.
    fn with_raw<T>(
        &self,
        op: impl FnOnce(&mut Client) -> Result<T, NetlinkError>,
    ) -> Result<T, NetlinkError> {
        let mut guard = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(Client::connect()?);
        }
        let Some(client) = guard.as_mut() else {
            return Err(NetlinkError::Protocol("no netlink socket".to_owned()));
        };
        let result = op(client);
        if let Err(e) = &result {
            if !matches!(e, NetlinkError::Kernel(_)) {
                *guard = None;
            }
        }
        result
    }
}

impl Kernel for NetlinkKernel {
    fn install(
        &self,
        peer: &str,
        secret: &Psk,
        epoch: u64,
        lifetime: Duration,
    ) -> Result<u64, String> {
        // The module treats the secret as absent once its lifetime is over;
        // the agent renews it before.
        let local = self.local.as_deref();
        self.with(|c| c.peer_set_pair(peer, local, secret, Some(epoch), Some(lifetime)))
    }

    fn fail(&self, peer: &str, reason: &str) -> Result<FailOutcome, String> {
        // peer-fail wipes the current secret: not while it is valid and
        // nothing waits.
        let current = self.peers()?.into_iter().find(|p| p.name == peer);
        if current.is_some_and(|p| p.valid && p.pending == 0) {
            return Ok(FailOutcome::KeptValidSecret);
        }
        let local = self.local.as_deref();
        self.with(|c| c.peer_fail_pair(peer, local, reason))
            .map(|()| FailOutcome::Told)
    }

    fn flow_key_set(&self, key: &FlowKey) -> Result<(), FlowKeySetError> {
        match self.with_raw(|c| c.flow_key_set(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Some(libc::ENOENT) => Err(FlowKeySetError::NoSuchFlow),
            Err(e) => Err(FlowKeySetError::Other(e.to_string())),
        }
    }

    fn local_nodes(&self) -> Result<Vec<String>, String> {
        self.with(|c| c.local_nodes_get())
    }

    fn peers(&self) -> Result<Vec<KernelPeer>, String> {
        self.with(|c| c.peers()).map(|peers| {
            // Only this agent's entries: the peers' own, or in pair mode
            // its node's pairs (another node's pairs are its agent's).
            peers
                .into_iter()
                .filter_map(|p| {
                    let last_epoch = p.last_epoch.unwrap_or(0).max(p.epoch.unwrap_or(0));
                    Some(KernelPeer {
                        name: self.ours(p.name, p.local)?,
                        epoch: p.epoch,
                        last_epoch,
                        pending: p.pending,
                        valid: p.state == PeerState::Established,
                    })
                })
                .collect()
        })
    }
}

/// What [`watch_key_requests`] reports.
pub enum KernelEvent {
    /// Flows wait for the secret shared with this peer.
    KeyRequest(String),
    /// A flow in the openssl or boringssl mode waits for its own secret.
    FlowKeyRequest(FlowKeyRequest),
    /// Events may have been missed (socket overflow, a new socket after an
    /// error): look at the kernel's peers again.
    Resync,
}

/// Follows the `keys` multicast group forever, calling `on` for each event
/// (with `local`, pair mode: only the key requests of flows on that node).
/// On any socket error it waits, re-joins and asks for a resync (the module
/// may have been reloaded).
pub fn watch_key_requests(local: Option<&str>, on: impl Fn(KernelEvent), log: impl Fn(&str)) {
    // `quiet`: a connect failure was logged already (log it once).
    let mut quiet = false;
    loop {
        let mut client = match Client::connect().and_then(|mut c| {
            c.subscribe(uapi::MCGRP_KEYS)?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                if !quiet {
                    log(&format!(
                        "cannot follow key requests: {e} (retrying every 2 s)"
                    ));
                }
                quiet = true;
                thread::sleep(Duration::from_secs(2));
                continue;
            }
        };
        if quiet {
            log("following key requests");
        }
        on(KernelEvent::Resync);
        loop {
            match client.next_event() {
                Ok(Event::KeyRequest(event)) => {
                    if local.is_none_or(|l| l == event.local_node) {
                        on(KernelEvent::KeyRequest(event.node));
                    }
                }
                Ok(Event::FlowKeyRequest(event)) => on(KernelEvent::FlowKeyRequest(event)),
                Err(NetlinkError::EventsLost) => {
                    log("key events lost (socket overflow): resyncing (a flow whose flow-key-request was lost times out)");
                    on(KernelEvent::Resync);
                }
                Err(NetlinkError::Protocol(e)) => log(&format!("bad key event: {e}")),
                Err(e) => {
                    log(&format!("key-request socket failed: {e}"));
                    break;
                }
            }
        }
    }
}
