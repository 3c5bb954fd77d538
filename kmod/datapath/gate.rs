// SPDX-License-Identifier: GPL-2.0
//! What a gated socket does (datapath design, Part 1 §3, Part 2 §3–4).
//!
//! The stream gate is on a connection from the moment it is decided until
//! kTLS TX and RX are both in. Every data path enters here first:
//! - keys derived but not installed: install now, inline, under the flow
//!   lock and in one socket-lock section (other threads keep seeing the
//!   gate until kTLS's ops replace it);
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
//! exists: a keyed child gets kTLS right there (the only place a passive
//! child is installed); one still waiting for keys leaves with the stream
//! gate.

use super::flow::{self, Reason};
use super::{dp, install_locked};
use crate::sys::gate;
use crate::sys::sock::{self, tcp_state as st, Socket};
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
    let mut timeo = sk.timeo(send, nonblock);
    // Again when the flow was handed off (a Service connect decided at
    // ESTABLISHED: replaced, or left alone).
    loop {
        let Some(f) = dp.flows.flow(sk) else {
            // Not tracked (any more): a dead connection loses the gate; a
            // live one whose gate already came off (a Service connect left
            // alone) goes on through its ops; a live one we cannot vouch
            // for is reset, never let through.
            let state = sk.state();
            if state == st::CLOSE || state == st::LISTEN {
                let _l = sk.lock();
                gate::gate_off(s, gate::base_ops(sk.is_v6()), false);
                return Ok(());
            }
            if !gate::is_ours(s.ops()) {
                return Ok(());
            }
            sk.abort(crate::sys::ECONNABORTED_NR);
            return Err(crate::sys::econnaborted());
        };
        let mut inner = f.inner.lock();
        loop {
            match f.phase() {
                flow::SECURED => return Ok(()),
                // Not `sock_error()`: that would clear the `sk_err` poison a
                // stale sender inside the plain send path must still see.
                flow::FAILED | flow::CLOSED => return Err(crate::sys::econnaborted()),
                flow::HANDED_OFF => break,
                flow::KEYED => {
                    let r = install_locked(dp, &f, &mut inner);
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

/// A gated listener accepted `n` (no fd yet; ops already the family's).
/// From here the app can reach the child: a keyed one gets kTLS right
/// here (its first and only install: none happens while it sits on the
/// listener's queue); one still waiting leaves with the stream gate
/// (`Ok(true)`: from then on a worker may take it off at any time).
pub(crate) fn accepted(n: &Socket, v6: bool) -> Result<bool> {
    let Some(dp) = dp() else { return Ok(false) };
    let Some(sk) = n.sk() else { return Ok(false) };
    let Some(f) = dp.flows.flow(sk) else {
        return Ok(false);
    };
    sock::poison_off(sk, gate::base_prot(v6));
    let mut inner = f.inner.lock();
    inner.in_app = true;
    match f.phase() {
        flow::KEYED => {
            // Nobody else can reach the socket yet; kTLS's ops go on it.
            let r = install_locked(dp, &f, &mut inner);
            drop(inner);
            if r.is_err() {
                // `do_accept` releases the socket; the worker resets it.
                dp.fail(&f, Reason::Install);
                return Err(crate::sys::econnaborted());
            }
            Ok(false)
        }
        flow::FAILED | flow::CLOSED => {
            // The worker left the reset to us (it never locks a queued
            // child): off the queue now, it is ours to abort.
            if !inner.aborted {
                inner.aborted = true;
                sk.abort(crate::sys::ECONNABORTED_NR);
            }
            Err(crate::sys::econnaborted())
        }
        _ => {
            // With the module reference `do_accept` took for `n`
            // (`listen_accept` keeps it when our ops stay on).
            n.set_ops(gate::stream_gate(v6));
            Ok(true)
        }
    }
}
