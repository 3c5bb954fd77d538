// SPDX-License-Identifier: GPL-2.0
//! What a gated socket does (datapath design, Part 1 §3, Part 2 §3–4).
//!
//! The stream gate is on a connection from the moment it is decided until
//! kTLS TX and RX are both in. Every data path enters here first:
//! - keys derived but not installed: install now, inline, under the flow
//!   lock (shadow socket, so other threads keep seeing the gate);
//! - no keys yet: blocking callers sleep on the flow (honouring
//!   `SO_SNDTIMEO`/`SO_RCVTIMEO` and signals), non-blocking ones get
//!   `EAGAIN`; poll masks `IN`/`OUT` so level-triggered loops do not spin
//!   (the install wakes every waiter, edge-triggered ones included);
//! - failed or closed: the socket's error (`ECONNABORTED` by default).
//!
//! Success means the socket's ops are kTLS's: the trampoline dispatches
//! through them.
//!
//! `accept()` on a gated listener lands in [`accepted`] before the new fd
//! exists: a keyed child gets kTLS right there; one still waiting for keys
//! leaves with the stream gate.

use super::flow::{self, Reason};
use super::{dp, install_locked};
use crate::sys::gate;
use crate::sys::sock::{self, tcp_state as st, Socket, SocketPtr};
use kernel::prelude::*;
use kernel::sync::CondVarTimeoutResult;

/// Whether module unload is under way.
pub(crate) fn draining() -> bool {
    dp().map_or(true, |d| d.draining())
}

/// Let a data call through (`Ok`: the socket's ops are final) or say why not.
pub(crate) fn enter(s: &Socket, send: bool, nonblock: bool) -> Result {
    let Some(dp) = dp() else {
        return Err(crate::sys::econnaborted());
    };
    let Some(sk) = s.sk() else {
        return Err(crate::sys::enotconn());
    };
    let Some(f) = dp.flows.flow(sk) else {
        // Not tracked (any more): a dead connection loses the gate; a live
        // one we cannot vouch for is reset, never let through.
        let state = sk.state();
        if state == st::CLOSE || state == st::LISTEN {
            if gate::is_stream_gate(s.ops()) {
                s.set_ops(gate::base_ops(sk.is_v6()));
            }
            return Ok(());
        }
        sk.abort(crate::sys::ECONNABORTED_NR);
        return Err(crate::sys::econnaborted());
    };
    let mut timeo = sk.timeo(send, nonblock);
    let mut inner = f.inner.lock();
    loop {
        match f.phase() {
            flow::SECURED => return Ok(()),
            // Not `sock_error()`: that would clear the `sk_err` poison a
            // stale sender inside the plain send path must still see.
            flow::FAILED | flow::CLOSED => return Err(crate::sys::econnaborted()),
            flow::KEYED => {
                if inner.sock.is_none() {
                    inner.sock = Some(SocketPtr::new(s));
                }
                let r = install_locked(dp, &f, &mut inner, Some(s));
                drop(inner);
                f.cv.notify_all();
                return match r {
                    Ok(()) => Ok(()),
                    Err(_) => {
                        dp.fail(&f, Reason::Install);
                        Err(crate::sys::econnaborted())
                    }
                };
            }
            _ => {}
        }
        if dp.draining() {
            return Err(crate::sys::econnaborted());
        }
        if timeo == 0 {
            return Err(EAGAIN);
        }
        let j = u64::try_from(timeo).unwrap_or(0);
        match f.cv.wait_interruptible_timeout(&mut inner, j as _) {
            CondVarTimeoutResult::Signal { .. } => return Err(sock::intr_errno(timeo)),
            CondVarTimeoutResult::Timeout => return Err(EAGAIN),
            CondVarTimeoutResult::Woken { jiffies } => {
                timeo = isize::try_from(jiffies).unwrap_or(isize::MAX);
            }
        }
    }
}

/// Whether poll may report readiness as is (secured, failed, untracked).
pub(crate) fn poll_ready(s: &Socket) -> bool {
    let (Some(dp), Some(sk)) = (dp(), s.sk()) else {
        return true;
    };
    match dp.flows.flow(sk) {
        Some(f) => matches!(f.phase(), flow::SECURED | flow::FAILED | flow::CLOSED),
        None => true,
    }
}

/// The app closes the socket: forget it (under the flow lock, so no
/// install is using it).
pub(crate) fn release(s: &Socket) {
    let (Some(dp), Some(sk)) = (dp(), s.sk()) else {
        return;
    };
    if let Some(f) = dp.flows.flow(sk) {
        let mut inner = f.inner.lock();
        if inner.sock.is_some_and(|p| p.is(s)) {
            inner.sock = None;
        }
    }
}

/// A gated listener accepted `n` (no fd yet; ops already the family's).
pub(crate) fn accepted(n: &Socket, v6: bool) -> Result {
    let Some(dp) = dp() else { return Ok(()) };
    let Some(sk) = n.sk() else { return Ok(()) };
    let Some(f) = dp.flows.flow(sk) else {
        return Ok(());
    };
    if sock::is_poison(sk.prot()) {
        sk.set_prot(gate::base_prot(v6));
    }
    let mut inner = f.inner.lock();
    inner.sock = Some(SocketPtr::new(n));
    match f.phase() {
        flow::KEYED => {
            // Nobody else can reach the socket: install on it directly.
            let r = install_locked(dp, &f, &mut inner, None);
            if r.is_err() {
                // `do_accept` releases the socket with the family's ops.
                inner.sock = None;
                drop(inner);
                dp.fail(&f, Reason::Install);
                return Err(crate::sys::econnaborted());
            }
            Ok(())
        }
        flow::FAILED | flow::CLOSED => {
            inner.sock = None;
            Err(crate::sys::econnaborted())
        }
        flow::SECURED => {
            // Installed before accept(): kTLS's ops go on the new socket.
            if let Some(ops) = inner.tls_ops.take() {
                n.set_tls_ops(ops);
            }
            inner.sock = None;
            Ok(())
        }
        _ => {
            n.set_ops(gate::stream_gate(v6));
            Ok(())
        }
    }
}
