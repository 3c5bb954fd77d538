// SPDX-License-Identifier: GPL-2.0
//! The wire guard: the backstop that makes "not one plaintext byte leaves"
//! hold even for threads the gate cannot stop (datapath design, Part 2
//! §2.3–2.4). A thread that loaded the socket's plain ops before the gate
//! went in (a `send()` racing `connect()`, a blocking `MSG_FASTOPEN`) runs
//! inside TCP's own send path; the gate never sees it. Every segment it
//! produces still passes the `LOCAL_OUT` hook (`crate::sys::netfilter`)
//! on its way to a device, and this file judges it there:
//!
//! - **before install** (the sock has no ULP yet): a tracked flow's segment
//!   that carries payload is plaintext by definition — drop it and reset
//!   the flow;
//! - **after install**: kTLS writes a contiguous chain of TLS 1.3 records
//!   from the first byte after our ISN, each starting `17 03 03 len` with
//!   `len` ≤ 2^14 + 256. The guard walks the record headers over the bytes
//!   it has not seen before (a high-water mark; retransmissions are not
//!   re-read), carrying a header split across segments. Bytes at a header
//!   position that are not a header are not kTLS's: drop and reset.
//!
//! Residual risk, documented: a stale writer whose bytes land *inside* a
//! record body (kTLS waiting for memory in the middle of a record) is
//! caught at the next header, after those bytes left. Plaintext that is
//! itself aligned TLS framing passes (it is not the app's data then).
//!
//! Cost: segments without payload (ACKs, SYNs, FINs) and segments of
//! sockets that are not TCP return before any lock. A payload segment of a
//! TCP socket the module does not track costs one atomic load (the flow
//! table's presence filter, `super::flow`); only tracked sockets (and the
//! rare one sharing a filter slot) take the table's lock for a lookup
//! (O(log n)); a tracked flow then takes its own guard lock and copies 5
//! bytes per record header. Nothing allocates.
//!
//! Context: any (process or softirq, RCU read section, BHs possibly
//! enabled); never sleeps. Resets are handed to the worker.

use super::flow::Flow;
use super::framing::{Judgement, TxFraming};
use crate::sys::netfilter::{Segment, Verdict};
use crate::sys::sock::Sock;
use core::sync::atomic::Ordering;

/// A flow's guard state (under its guard lock): `None` until the first
/// payload segment after install.
pub(crate) type GuardState = Option<TxFraming>;

/// The guard's verdict on a payload segment of `sk`.
pub(crate) fn check(sk: &Sock, seg: &Segment) -> Verdict {
    let Some(dp) = super::dp() else {
        return Verdict::Accept;
    };
    let Some(flow) = dp.flows.flow(sk) else {
        return Verdict::Accept;
    };
    match judge(&flow, sk, seg) {
        Judgement::Pass => Verdict::Accept,
        Judgement::Hold => {
            dp.counters.guard_holds.fetch_add(1, Ordering::Relaxed);
            Verdict::Drop
        }
        Judgement::Fail => {
            dp.counters.guard_drops.fetch_add(1, Ordering::Relaxed);
            dp.fail_guard(&flow);
            Verdict::Drop
        }
    }
}

/// What may happen to a tracked flow's payload segment.
fn judge(flow: &Flow, sk: &Sock, seg: &Segment) -> Judgement {
    if !sk.has_ulp() {
        // Not installed: whatever this is, it is not kTLS's.
        return Judgement::Fail;
    }
    let mut g = flow.guard.lock();
    let framing = g.get_or_insert_with(|| TxFraming::new(flow.isns().0.wrapping_add(1)));
    framing.check(seg.seq, seg.len, |off, buf| seg.copy(off, buf).is_ok())
}
