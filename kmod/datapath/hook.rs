// SPDX-License-Identifier: GPL-2.0
//! The TCP state hook: decides which connections are secured and puts the
//! gate on them (datapath design, Part 1 §1, Part 2 §1).
//!
//! Called for every TCP state change in every network namespace, before
//! the new state is stored, with preemption disabled, in process or softirq
//! context: it never sleeps, allocates only `GFP_ATOMIC` (one flow entry),
//! and costs one lock-free mapping lookup per state change for untouched
//! traffic — nothing per packet.
//!
//! Transitions used:
//! - CLOSE→LISTEN (`listen()`, lock owned): a listener on a local pod's
//!   address, or on a wildcard address outside the initial netns, gets the
//!   listen gate (its `accept` installs kTLS before the fd exists); server
//!   TCP Fast Open is switched off on it.
//! - CLOSE→SYN_SENT (`connect()` or `sendto(MSG_FASTOPEN)`, lock owned): a
//!   secured destination gets the stream gate at once, before the SYN is
//!   built; SYN data (TFO) is dropped from the request; a thread already
//!   blocked on the socket lock marks the flow tainted (it may be inside
//!   the plain send path: the flow will be reset, never let through). A
//!   local pod's connect to a Service CIDR is gated the same way, but
//!   tentatively (`super::services`).
//! - SYN_SENT→ESTABLISHED (softirq usually): ISNs captured (`snd_una - 1`,
//!   `rcv_nxt - 1`, exact here); a tainted flow or a thread waiting in the
//!   plain send path (`sk_write_pending`) poisons `sk_err` before anyone is
//!   woken, and the flow is reset; otherwise the worker keys it. A
//!   tentative Service flow is decided here from its NAT record, as its
//!   server end decides: replaced by a flow to the backend pod (keyed with
//!   the post-NAT tuple), left alone (gate off, out of the table), or
//!   reset.
//! - SYN_SENT→SYN_RECV (simultaneous open): no reliable ISNs — reset.
//! - A passive TCP Fast Open child's SYN-ACK (the wire guard's LOCAL_OUT
//!   hook; no state change announces such a child before the app can
//!   accept it, and only listeners we never gated have a Fast Open queue):
//!   a pair we secure is failed closed there, poisoned before its SYN data
//!   can be read or a byte written; at ESTABLISHED its flow is failed and
//!   TCP sends a FIN for the shut send side (review L6).
//! - SYN_RECV→ESTABLISHED on a child (no `struct socket` yet): decided
//!   from the child's own addresses, ISNs captured, its `sk_prot` swapped
//!   for the poison proto (invisible to apps until our `accept` restores
//!   it; a child accepted any other way can never send or receive), worker
//!   derives its keys; kTLS goes on inside our `accept()`.
//! - →CLOSE: the entry goes, our ops come off the socket.
//!
//! If the one allocation fails, the flow is not tracked but still fails
//! closed: its send side is shut (`SEND_SHUTDOWN`, at most a FIN leaves).
//! So does a flow that would be keyed as a local pod whose network
//! namespace the mapping binds, from a socket in another namespace
//! (review M6): never keyed as that pod.

use super::flow::{Decided, Entry, Flow, Reason};
use super::services::End;
use super::{dp, Datapath};
use crate::keys::peers::{epoch_bits, EPOCH_MASK};
use crate::state::mapping::{IpAddr, Pod};
use crate::sys::gate;
use crate::sys::rcu::Guard;
use crate::sys::sock::{self, tcp_state as st, Sock, SocketPtr};
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Why a flow is left alone.
enum Bypass {
    LocalNotPod,
    RemoteNotPod,
    SameNode,
    /// Would be secured, but the socket is not in the local pod's network
    /// namespace (the mapping binds it; review M6): failed closed.
    Identity,
    /// A mapped pod of another node and an address of a pod CIDR the
    /// mapping does not name yet: the other end's mapping may have it
    /// (mapping skew): failed closed.
    Unmapped,
}

/// The probe.
pub(crate) fn on_state(sk: &Sock, old: i32, new: i32) {
    let Some(dp) = dp() else { return };
    if !sk.is_tcp_stream() {
        return;
    }
    match (old, new) {
        (_, st::CLOSE) => closed(dp, sk),
        (st::CLOSE, st::SYN_SENT) => connecting(dp, sk),
        (st::SYN_SENT, st::ESTABLISHED) => active_established(dp, sk),
        (st::SYN_SENT, st::SYN_RECV) => simultaneous(dp, sk),
        (st::SYN_RECV, st::ESTABLISHED) => passive_established(dp, sk),
        (_, st::LISTEN) => listening(dp, sk),
        _ => {}
    }
}

fn inc(c: &core::sync::atomic::AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A mapped pod endpoint at `ip` (hostNetwork pods are no endpoints).
fn pod_at(dp: &Datapath, g: &Guard, ip: &IpAddr) -> Option<Arc<Pod>> {
    let p = dp.state.pod_arc(g, ip)?;
    (!p.host_network()).then_some(p)
}

/// A mapped pod (not hostNetwork).
pub(crate) fn is_pod(dp: &Datapath, g: &Guard, ip: &IpAddr) -> bool {
    pod_at(dp, g, ip).is_some()
}

/// A mapped pod on a node this kernel serves.
pub(crate) fn is_local_pod(dp: &Datapath, g: &Guard, ip: &IpAddr) -> bool {
    pod_at(dp, g, ip).is_some_and(|p| dp.local(g).contains(p.node()))
}

/// Part 1 §1: local pod on a node this kernel serves ↔ remote pod on
/// another node; the socket in the local pod's network namespace
/// (`netns`, its cookie) when the mapping binds one.
///
/// With pod CIDRs configured, an address in one that the mapping does not
/// name is a pod this end's mapping does not have yet, while the other
/// end's may (README, "Mapping skew"): a flow between it and a mapped pod,
/// or another such address, is failed closed, never left alone, since the
/// other end may secure it. Both ends apply this to the same two
/// addresses, so a pod one end has mapped and the other not yet is secured
/// by the first and reset by the second: never plaintext.
fn classify(
    dp: &Datapath,
    netns: u64,
    local: &IpAddr,
    remote: &IpAddr,
) -> Result<(Arc<Pod>, Arc<Pod>), Bypass> {
    let g = Guard::new();
    let served = |p: &Pod| dp.local(&g).contains(p.node());
    let (lp, rp) = match (pod_at(dp, &g, local), pod_at(dp, &g, remote)) {
        (Some(lp), _) if !served(&lp) => return Err(Bypass::LocalNotPod),
        (Some(lp), Some(rp)) => (lp, rp),
        (Some(_), None) if unmapped(dp, &g, remote) => return Err(Bypass::Unmapped),
        (Some(_), None) => return Err(Bypass::RemoteNotPod),
        (None, Some(_)) if unmapped(dp, &g, local) => return Err(Bypass::Unmapped),
        (None, None) if local != remote && unmapped(dp, &g, local) && unmapped(dp, &g, remote) => {
            return Err(Bypass::Unmapped)
        }
        (None, _) => return Err(Bypass::LocalNotPod),
    };
    if rp.node() == lp.node() {
        return Err(Bypass::SameNode);
    }
    if !in_netns_of(&lp, netns) {
        return Err(Bypass::Identity);
    }
    Ok((lp, rp))
}

/// An address in a pod CIDR that the mapping does not name.
fn unmapped(dp: &Datapath, g: &Guard, ip: &IpAddr) -> bool {
    dp.pod_cidrs(g).contains(ip) && dp.state.pod_arc(g, ip).is_none()
}

/// A flow between a mapped pod and a pod not mapped yet (see
/// [`classify`]): failed closed like [`impostor`], counted.
fn skewed(dp: &Datapath, sk: &Sock) {
    sk.shutdown_send();
    sk.poison(crate::sys::ECONNABORTED_NR);
    inc(&dp.counters.reset_unmapped);
}

/// Whether a socket of namespace `netns` may be pod `p` (review M6).
fn in_netns_of(p: &Pod, netns: u64) -> bool {
    p.netns().map_or(true, |c| c == netns)
}

/// A flow that would be keyed as a pod its socket is not in: failed
/// closed (at most a FIN leaves), never keyed, counted.
fn impostor(dp: &Datapath, sk: &Sock) {
    sk.shutdown_send();
    sk.poison(crate::sys::ECONNABORTED_NR);
    inc(&dp.counters.reset_identity);
}

fn count_bypass(dp: &Datapath, b: Bypass) {
    let c = &dp.counters;
    inc(match b {
        Bypass::LocalNotPod => &c.bypass_local_not_pod,
        Bypass::RemoteNotPod => &c.bypass_remote_not_pod,
        Bypass::SameNode => &c.bypass_same_node,
        Bypass::Identity => &c.reset_identity,
        Bypass::Unmapped => &c.reset_unmapped,
    });
}

/// Track a new flow, or fail it closed without tracking.
fn track(dp: &Datapath, sk: &Sock, d: Decided) -> Option<Arc<Flow>> {
    let f = match Flow::new(sk, d) {
        Ok(f) => f,
        Err(_) => {
            untracked(dp, sk);
            return None;
        }
    };
    match dp.flows.insert(sk, Entry::Flow(f.clone())) {
        Ok(old) => {
            if old.is_none() {
                inc(&dp.counters.tracked);
            }
            drop(old);
            Some(f)
        }
        Err(_) => {
            untracked(dp, sk);
            None
        }
    }
}

fn untracked(dp: &Datapath, sk: &Sock) {
    sk.shutdown_send();
    sk.poison(crate::sys::ECONNABORTED_NR);
    inc(&dp.counters.reset_unsupported);
}

fn connecting(dp: &Datapath, sk: &Sock) {
    let Some(sp) = SocketPtr::of(sk) else { return };
    inc(&dp.counters.seen);
    let (local, remote) = (sk.local().ip, sk.remote().ip);
    let netns = sk.netns_cookie();
    let (lp, rp, service) = match classify(dp, netns, &local, &remote) {
        Ok((lp, rp)) => (lp, rp, false),
        Err(Bypass::RemoteNotPod) if is_service(dp, &remote) => {
            // Its backend, hence the decision, is known at ESTABLISHED;
            // the local pod stands in for the remote one until then.
            // `classify` found it a pod of a node this kernel serves.
            let g = Guard::new();
            let Some(lp) = pod_at(dp, &g, &local) else {
                return count_bypass(dp, Bypass::LocalNotPod);
            };
            if !in_netns_of(&lp, netns) {
                return impostor(dp, sk);
            }
            inc(&dp.counters.flows_service);
            (lp.clone(), lp, true)
        }
        Err(Bypass::Identity) => return impostor(dp, sk),
        Err(Bypass::Unmapped) => return skewed(dp, sk),
        Err(b) => return count_bypass(dp, b),
    };
    let isn = if service {
        service_isn(dp, &lp)
    } else {
        client_isn(dp, &lp, &rp)
    };
    let decided = move || Decided {
        client: true,
        service,
        local_ip: local,
        remote_ip: remote,
        local_pod: lp,
        remote_pod: rp,
        cipher: dp.cipher_now(),
        mode: dp.state.mode(),
        now: crate::sys::workq::jiffies(),
        in_app: true,
    };
    if sk.is_mptcp() {
        // An MPTCP subflow: its `struct socket` is MPTCP's (the app's
        // MPTCP socket, or a kernel socket MPTCP discards after `connect`),
        // and MPTCP pushes data into the subflow past any ops and ignores
        // its `sk_err`/`sk_shutdown`. kTLS cannot go on it: track it
        // without our ops (the wire guard drops its payload) and have the
        // worker abort it, which reports the error to MPTCP and the app.
        if let Some(f) = track(dp, sk, decided()) {
            dp.fail(&f, Reason::Unsupported);
        }
        return;
    }
    // SAFETY: `connect()` holds the socket (its fd) and the socket lock
    // for the whole probe: the socket is live.
    let s = unsafe { sp.get() };
    let v6 = sk.is_v6();
    if s.ops() != gate::base_ops(v6) || s.releasing() || dp.draining() {
        // Not a plain TCP socket of its family (another module's ops), a
        // kernel socket (no file: our ops could never come off it), or
        // the datapath is draining: fail closed.
        untracked(dp, sk);
        return;
    }
    let Some(f) = track(dp, sk, decided()) else {
        return;
    };
    if !gate::gate_on(s, gate::base_ops(v6), gate::stream_gate(v6)) {
        // The module is going away: fail closed.
        sk.shutdown_send();
        sk.poison(crate::sys::ECONNABORTED_NR);
        dp.fail(&f, Reason::Unload);
        return;
    }
    sk.no_fastopen();
    if sk.lock_waiters() {
        f.tainted.store(true, Ordering::Release);
    }
    if sk.in_repair() {
        sk.poison(crate::sys::ECONNABORTED_NR);
        dp.fail(&f, Reason::Unsupported);
    } else {
        sk.choose_isn(isn);
    }
}

/// The ISN of a secured client (`keys::announce`, spec §3 and §7): 30
/// random bits, so that no (client ISN, server ISN) pair comes round with
/// the clock (review H3's ISN wrap), and in the low 2 bits the epoch the
/// client keys the flow with. Never 0 (the kernel would pick its own).
fn client_isn(dp: &Datapath, lp: &Pod, rp: &Pod) -> u32 {
    let g = Guard::new();
    isn_of(dp.announced_epoch(&g, rp.node(), lp.node()))
}

/// [`client_isn`] of a connect to a Service (`keys::announce`).
fn service_isn(dp: &Datapath, lp: &Pod) -> u32 {
    let g = Guard::new();
    isn_of(dp.announced_service_epoch(&g, lp.node()))
}

fn isn_of(epoch: u64) -> u32 {
    let isn = (crate::sys::rand::u32() & !EPOCH_MASK) | epoch_bits(epoch);
    if isn == 0 {
        EPOCH_MASK + 1
    } else {
        isn
    }
}

/// Whether `ip` is in a configured Service CIDR.
fn is_service(dp: &Datapath, ip: &IpAddr) -> bool {
    let g = Guard::new();
    dp.services(&g).contains(ip)
}

fn active_established(dp: &Datapath, sk: &Sock) {
    let Some(f) = dp.flows.flow(sk) else { return };
    if f.service {
        return service_established(dp, sk, &f);
    }
    if !f.established(sk) {
        return;
    }
    keyable(dp, sk, &f);
}

/// A client flow just moved to ESTABLISHED: reset it if a thread may have
/// sent in the plain path, else have the worker key it.
fn keyable(dp: &Datapath, sk: &Sock, f: &Arc<Flow>) {
    if f.tainted.load(Ordering::Acquire) || sk.write_pending() {
        // Before the state is stored and before anyone is woken: the
        // stale sender's copy loop sees `sk_err` and sends nothing.
        sk.poison(crate::sys::ECONNABORTED_NR);
        dp.fail(f, Reason::StaleSender);
    } else if sk.in_repair() {
        sk.poison(crate::sys::ECONNABORTED_NR);
        dp.fail(f, Reason::Unsupported);
    } else {
        dp.kick(f);
    }
}

/// How a Service connect ends up, decided as its server end decides from
/// its own socket (Part 2 §7).
enum ServiceEnd {
    /// To a pod on another node, the client's address kept: keyed with
    /// the post-NAT tuple.
    Secure(Arc<Pod>, Arc<Pod>, IpAddr, u16),
    /// To the same node or to no pod, or the client masqueraded to a
    /// node's address: the server end leaves it alone too.
    Bypass,
    /// No record, or a translation the ends cannot agree on.
    Reset,
}

fn service_end(dp: &Datapath, sk: &Sock) -> ServiceEnd {
    let (l, r) = (sk.local(), sk.remote());
    let Some(t) = dp.nat.take(End::Client, &l.ip, l.port, &r.ip, r.port) else {
        return ServiceEnd::Reset;
    };
    if t.client != l.ip || t.client_port != l.port {
        // SNAT: the server sees `t.client`. Not a pod (a node's address,
        // kube-proxy's masquerade): it leaves the flow alone. Another
        // pod's address: neither end could key it as the other does.
        let g = Guard::new();
        return if pod_at(dp, &g, &t.client).is_some() {
            ServiceEnd::Reset
        } else {
            ServiceEnd::Bypass
        };
    }
    match classify(dp, sk.netns_cookie(), &l.ip, &t.backend) {
        Ok((lp, rp)) => ServiceEnd::Secure(lp, rp, t.backend, t.backend_port),
        Err(Bypass::SameNode | Bypass::RemoteNotPod) => ServiceEnd::Bypass,
        // The client pod was unmapped meanwhile: its server end may still
        // see a pod. Or the mapping bound the pod to another namespace
        // since the connect.
        Err(Bypass::LocalNotPod | Bypass::Identity | Bypass::Unmapped) => ServiceEnd::Reset,
    }
}

/// SYN_SENT→ESTABLISHED of a tentative Service flow `f` (see the file's
/// doc).
fn service_established(dp: &Datapath, sk: &Sock, f: &Arc<Flow>) {
    if f.phase() != super::flow::CONNECTING {
        // Failed at connect (its reset is queued).
        return;
    }
    match service_end(dp, sk) {
        ServiceEnd::Secure(lp, rp, backend, port) => {
            let d = Decided {
                client: true,
                service: false,
                local_ip: f.local_ip,
                remote_ip: backend,
                local_pod: lp,
                remote_pod: rp,
                cipher: f.cipher,
                mode: f.mode(),
                now: crate::sys::workq::jiffies(),
                in_app: true,
            };
            let Ok(nf) = Flow::new(sk, d) else {
                sk.poison(crate::sys::ECONNABORTED_NR);
                dp.fail(f, Reason::Service);
                return;
            };
            nf.tainted
                .store(f.tainted.load(Ordering::Acquire), Ordering::Release);
            if dp.draining() {
                return;
            }
            // `nf` replaces the tentative flow's entry before the tentative
            // flow is handed off: a parked thread that looks again finds it.
            match dp.flows.insert(sk, Entry::Flow(nf.clone())) {
                Ok(old) => drop(old),
                Err(_) => {
                    // Out of memory: the tentative flow stays, and fails.
                    sk.poison(crate::sys::ECONNABORTED_NR);
                    dp.fail(f, Reason::Service);
                    return;
                }
            }
            if !f.hand_off() {
                // Failed meanwhile (unload): so is its successor.
                sk.poison(crate::sys::ECONNABORTED_NR);
                dp.fail(&nf, Reason::Unload);
                return;
            }
            nf.established_to(sk, port);
            f.cv.notify_all();
            inc(&dp.counters.service_secured);
            keyable(dp, sk, &nf);
        }
        ServiceEnd::Bypass => {
            // Ops first, then out of the table, then handed off: a thread
            // that finds no flow finds our ops gone too and goes on
            // (`super::gate::enter`); a parked one is woken after both.
            if let Some(sp) = SocketPtr::of(sk) {
                // SAFETY: the probe runs under the socket lock (owned or
                // bh-locked), and orphaning a socket takes that lock: a
                // set `sk_socket` is live for the probe.
                let s = unsafe { sp.get() };
                gate::gate_off(s, gate::base_ops(sk.is_v6()), false);
            }
            if dp.flows.remove(sk).is_some() {
                dp.counters.tracked.fetch_sub(1, Ordering::Relaxed);
            }
            f.hand_off();
            f.cv.notify_all();
            inc(&dp.counters.bypass_service);
        }
        ServiceEnd::Reset => {
            sk.poison(crate::sys::ECONNABORTED_NR);
            dp.fail(f, Reason::Service);
        }
    }
}

fn simultaneous(dp: &Datapath, sk: &Sock) {
    if let Some(f) = dp.flows.flow(sk) {
        sk.poison(crate::sys::ECONNABORTED_NR);
        dp.fail(&f, Reason::Unsupported);
    }
}

/// A passive TCP Fast Open child sends its SYN-ACK (review L6). Only a
/// listener we never gated has a Fast Open queue (one that listened before
/// the module loaded, or whose gate could not go on), and our connects
/// never send SYN data or a cookie: a pair we secure is then a client that
/// did not key (its node not serving, or a forged SYN), and the child's SYN
/// data is plaintext the app must never read. `tcp_conn_request` sends
/// this before it queues the child for `accept`, and the child's lock is
/// held: poison it now (reads, writes and options fail), shut its send
/// side (at ESTABLISHED, TCP sends a FIN for it: `tcp_rcv_state_process`);
/// its ESTABLISHED probe fails its flow. A child an app already holds (a
/// retransmitted SYN-ACK after a module load) is left as it is: its
/// socket calls may already be past our reach.
pub(crate) fn fastopen_child(sk: &Sock) {
    let Some(dp) = dp() else { return };
    if sk.state() != st::SYN_RECV
        || !sk.is_passive_fastopen()
        || !sk.socket_ptr().is_null()
        || sk.is_poisoned()
    {
        return;
    }
    let (l, r) = (sk.local(), sk.remote());
    if dp.nat.has(End::Server, &r.ip, r.port, &l.ip, l.port) {
        // DNATed from a node address: its client addressed no pod.
        return;
    }
    match classify(dp, sk.netns_cookie(), &l.ip, &r.ip) {
        Ok(_) | Err(Bypass::Identity) | Err(Bypass::Unmapped) => {}
        Err(_) => return,
    }
    // The poison proto needs a module reference and the family's proto;
    // without them (unloading; a socket map's proto put on by a sockops
    // program) the shut send side and the error still keep bytes off the
    // wire, but the SYN data stays readable.
    let _ = sock::poison_on(sk, gate::base_prot(sk.is_v6()));
    sk.shutdown_send();
    sk.poison(crate::sys::ECONNABORTED_NR);
    inc(&dp.counters.reset_fastopen);
}

fn passive_established(dp: &Datapath, sk: &Sock) {
    if !sk.socket_ptr().is_null() {
        // Not a child (simultaneous open's second step): handled above.
        return;
    }
    inc(&dp.counters.seen);
    let (l, r) = (sk.local(), sk.remote());
    if dp
        .nat
        .take(End::Server, &r.ip, r.port, &l.ip, l.port)
        .is_some()
    {
        // DNATed here from a node address (NodePort, hostPort): its client
        // addressed no pod and left it alone (`super::services`).
        return inc(&dp.counters.bypass_service);
    }
    let (local, remote) = (l.ip, r.ip);
    let (lp, rp) = match classify(dp, sk.netns_cookie(), &local, &remote) {
        Ok(p) => p,
        Err(Bypass::Identity) => return impostor(dp, sk),
        Err(Bypass::Unmapped) => return skewed(dp, sk),
        Err(b) => return count_bypass(dp, b),
    };
    let d = Decided {
        client: false,
        service: false,
        local_ip: local,
        remote_ip: remote,
        local_pod: lp,
        remote_pod: rp,
        cipher: dp.cipher_now(),
        mode: dp.state.mode(),
        now: crate::sys::workq::jiffies(),
        // A child on its listener's queue until our `accept()` takes it;
        // an MPTCP subflow never reaches an app's accept (MPTCP's does):
        // the worker resets it at once.
        in_app: sk.is_mptcp(),
    };
    if dp.draining() {
        untracked(dp, sk);
        return;
    }
    let fastopen_failed = sk.is_poisoned();
    let Some(f) = track(dp, sk, d) else { return };
    // New: nobody else has seen it yet, so this cannot lose to a failure.
    f.established(sk);
    if fastopen_failed {
        // Failed closed at its SYN-ACK (`fastopen_child`, counted there).
        dp.fail_counted(&f, Reason::FastOpen);
        return;
    }
    if sk.is_mptcp() {
        // An MP_CAPABLE subflow (a plain client of an MPTCP listener falls
        // back before this: a plain TCP child, handled below). Apps never
        // see it, and its `sk_prot` is MPTCP's: left alone. The wire guard
        // drops its payload until the worker aborts it.
        dp.fail(&f, Reason::Unsupported);
        return;
    }
    // Invisible to apps until `accept()`; our accept restores it. Only
    // over the family's proto: another one (a socket map's, put on by a
    // sockops program just before) stays, and the flow is reset (kTLS and
    // socket maps exclude each other; review L7).
    if !sock::poison_on(sk, gate::base_prot(sk.is_v6())) {
        sk.shutdown_send();
        sk.poison(crate::sys::ECONNABORTED_NR);
        dp.fail(&f, Reason::Unsupported);
        return;
    }
    dp.kick(&f);
}

/// Wildcard address (`0.0.0.0`, `::`).
fn is_any(ip: &IpAddr) -> bool {
    ip.as_bytes().iter().all(|b| *b == 0)
}

fn listening(dp: &Datapath, sk: &Sock) {
    let Some(sp) = SocketPtr::of(sk) else { return };
    let local = sk.local().ip;
    let gated = if is_any(&local) {
        !sk.in_init_net()
    } else {
        // Not a listener on a pod's address from outside its namespace
        // (its children are failed closed in any case).
        let g = Guard::new();
        pod_at(dp, &g, &local)
            .is_some_and(|p| dp.local(&g).contains(p.node()) && in_netns_of(&p, sk.netns_cookie()))
    };
    if !gated || dp.draining() {
        return;
    }
    // SAFETY: `listen()` holds the socket and its lock during the probe.
    let s = unsafe { sp.get() };
    let v6 = sk.is_v6();
    // Another module's ops, or a kernel socket (no file: our ops could
    // never come off it before it is released): not gated.
    if s.ops() != gate::base_ops(v6) || s.releasing() {
        return;
    }
    match dp.flows.insert(sk, Entry::Listener(sk.hold())) {
        Ok(old) => drop(old),
        // Not gated: its secured children stay poisoned and fail closed.
        Err(_) => return,
    }
    if !gate::gate_on(s, gate::base_ops(v6), gate::listen_gate(v6)) {
        // The module is going away: not gated (its secured children
        // fail closed).
        drop(dp.flows.remove(sk));
        return;
    }
    sk.no_fastopen_queue();
}

fn closed(dp: &Datapath, sk: &Sock) {
    if let Some(e) = dp.flows.remove(sk) {
        if let Entry::Flow(f) = &e {
            dp.counters.tracked.fetch_sub(1, Ordering::Relaxed);
            f.to_closed(false);
            f.cv.notify_all();
        }
        drop(e);
    }
    if sk.socket_ptr().is_null() && sk.is_poisoned() {
        // A child failed closed on its listener's queue, going away before
        // anyone accepted it: a listener we never gated can still hand it
        // to its app, and once the poison is off its receive queue (a Fast
        // Open child's SYN data; plaintext of a client that did not key)
        // would be readable. Nothing it received is ever read.
        sk.drop_unread();
    }
    sock::poison_off(sk, gate::base_prot(sk.is_v6()));
    if let Some(sp) = SocketPtr::of(sk) {
        // SAFETY: state changes run under the socket lock (owned or
        // bh-locked), and orphaning a socket takes that lock: a set
        // `sk_socket` is live for the probe.
        let s = unsafe { sp.get() };
        gate::gate_off(s, gate::base_ops(sk.is_v6()), false);
    }
}
