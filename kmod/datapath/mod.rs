// SPDX-License-Identifier: GPL-2.0
//! The datapath: which TCP connections are secured, and the machinery that
//! keys them with kTLS before a byte of theirs moves (datapath design,
//! Part 1 is the contract, Part 2 the mechanism; what this code chose and
//! why is at the top of each file).
//!
//! - `hook`: the TCP state probe — decides, gates, captures ISNs;
//! - `gate`: what the gated socket's ops do (park, `EAGAIN`, masked poll,
//!   install on first use, install inside `accept()`);
//! - `flow`: tracked flows and the table;
//! - `guard`, `framing`: the wire guard (LOCAL_OUT) — no payload before
//!   install, nothing but TLS records after;
//! - `crate::keys`: the key provider (secrets, key schedule);
//! - `crate::sys::ktls`, `crate::sys::sock`: kTLS installation, the shadow
//!   socket, socket accessors.
//!
//! This file owns the configuration the control plane sets (nodes this
//! kernel serves, cipher, key timeout), the counters, the worker that keys
//! and installs (`process`), the deadline tick, and start/stop (unload
//! drain).
//!
//! The hook and the gate are called by the kernel without a context
//! argument; they find the datapath through [`DP`], which points at the live
//! `Datapath` from just before the hook is registered until every gated
//! socket has been given back its ops and no call is left inside module
//! text ([`Datapath::stop`]).

pub(crate) mod flow;
pub(crate) mod framing;
pub(crate) mod gate;
pub(crate) mod guard;
pub(crate) mod hook;

use crate::keys::peers::{Derived, FlowSetError, FlowTuple, Peers, SetError};
use crate::keys::schedule::{Cipher, NodePairSecret};
use crate::state::State;
use crate::sys::genl::Multicaster;
use crate::sys::rcu::{Guard, RcuBox, RcuWriter};
use crate::sys::sock::{self as sock, SocketPtr};
use crate::sys::workq::{self, OwnQueue, Ticker};
use crate::uapi;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use flow::{Entry, Flow, Reason};
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, Mutex};

/// Counters since load (`tlshubctl status`).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) seen: AtomicU64,
    pub(crate) secured: AtomicU64,
    pub(crate) bypass_local_not_pod: AtomicU64,
    pub(crate) bypass_remote_not_pod: AtomicU64,
    pub(crate) bypass_same_node: AtomicU64,
    pub(crate) key_waits: AtomicU64,
    pub(crate) key_requests: AtomicU64,
    pub(crate) install_failures: AtomicU64,
    pub(crate) reset_key_timeout: AtomicU64,
    pub(crate) reset_install: AtomicU64,
    pub(crate) reset_stale_sender: AtomicU64,
    pub(crate) reset_unsupported: AtomicU64,
    pub(crate) reset_unload: AtomicU64,
    pub(crate) tracked: AtomicU64,
    pub(crate) guard_drops: AtomicU64,
    pub(crate) reset_guard: AtomicU64,
    pub(crate) reset_key_refused: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The nodes this kernel serves (at most `uapi::MAX_LOCAL_NODES`).
pub(crate) struct LocalNodes {
    names: KVec<KVec<u8>>,
}

impl LocalNodes {
    pub(crate) fn contains(&self, node: &[u8]) -> bool {
        self.names.iter().any(|n| &n[..] == node)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.names.iter().map(|n| &n[..])
    }
}

/// Writer side of the configuration (process context).
struct Config {
    local_writer: RcuWriter<LocalNodes>,
}

/// The datapath.
#[pin_data]
pub(crate) struct Datapath {
    pub(crate) state: Arc<State>,
    local: RcuBox<LocalNodes>,
    #[pin]
    config: Mutex<Config>,
    cipher: AtomicU32,
    key_timeout_ms: AtomicU32,
    #[pin]
    pub(crate) flows: flow::FlowTable,
    #[pin]
    peers: Mutex<Peers>,
    pub(crate) counters: Counters,
    queue: OwnQueue,
    ticker: Ticker,
    #[pin]
    events: Mutex<Option<Multicaster>>,
    draining: AtomicBool,
}

/// What the kernel calls the datapath through while it runs: the TCP state
/// hook and the wire guard (each unregisters when dropped).
pub(crate) struct Hooks {
    state: crate::sys::tracepoint::StateHook,
    guard: crate::sys::netfilter::LocalOutHooks,
}

/// The live datapath, for the kernel's callbacks (see the file's doc).
static DP: AtomicPtr<Datapath> = AtomicPtr::new(core::ptr::null_mut());

/// The live datapath, if started.
pub(crate) fn dp() -> Option<&'static Datapath> {
    let p = DP.load(Ordering::Acquire);
    // SAFETY: `DP` is non-null only between `start` and the end of `stop`,
    // while the module's `Arc<Datapath>` keeps it alive; `stop` clears it
    // only after the hook is unregistered, every gate is removed and no
    // call is left inside the module (RCU Tasks).
    unsafe { p.as_ref() }
}

/// Default key timeout.
const DEFAULT_KEY_TIMEOUT_MS: u32 = 5000;
/// How often the deadline tick runs while flows wait.
const TICK_MS: u32 = 100;

impl Datapath {
    pub(crate) fn new(state: Arc<State>) -> Result<Arc<Self>> {
        let local = RcuBox::new(KBox::new(LocalNodes { names: KVec::new() }, GFP_KERNEL)?);
        let local_writer = local.writer().ok_or(EINVAL)?;
        let queue = OwnQueue::new()?;
        Arc::pin_init(
            try_pin_init!(Datapath {
                state,
                local,
                config <- new_mutex!(Config { local_writer }),
                cipher: AtomicU32::new(uapi::cipher::AES_128_GCM),
                key_timeout_ms: AtomicU32::new(DEFAULT_KEY_TIMEOUT_MS),
                flows <- flow::FlowTable::new(),
                peers <- new_mutex!(Peers::new()),
                counters: Counters::default(),
                queue,
                ticker: Ticker::new(),
                events <- new_mutex!(None),
                draining: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// The local-node set, for a read section.
    pub(crate) fn local<'g>(&'g self, g: &'g Guard) -> &'g LocalNodes {
        self.local.get(g)
    }

    /// Replace the local-node set (names already validated).
    pub(crate) fn set_local(&self, names: &[&[u8]]) -> Result {
        if names.len() > uapi::MAX_LOCAL_NODES {
            return Err(E2BIG);
        }
        let mut v = KVec::with_capacity(names.len(), GFP_KERNEL)?;
        for n in names {
            let mut name = KVec::with_capacity(n.len(), GFP_KERNEL)?;
            name.extend_from_slice(n, GFP_KERNEL)?;
            v.push(name, GFP_KERNEL)?;
        }
        let new = KBox::new(LocalNodes { names: v }, GFP_KERNEL)?;
        let old = self.config.lock().local_writer.replace(&self.local, new)?;
        drop(old); // after a grace period, unlocked
        Ok(())
    }

    /// The cipher for a flow decided now.
    pub(crate) fn cipher_now(&self) -> Cipher {
        u8::try_from(self.cipher())
            .ok()
            .and_then(Cipher::from_id)
            .unwrap_or(Cipher::Aes128Gcm)
    }

    pub(crate) fn cipher(&self) -> u32 {
        self.cipher.load(Ordering::Relaxed)
    }

    pub(crate) fn set_cipher(&self, c: u32) -> Result {
        Cipher::from_id(u8::try_from(c).map_err(|_| EINVAL)?).ok_or(EINVAL)?;
        self.cipher.store(c, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn key_timeout_ms(&self) -> u32 {
        self.key_timeout_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_key_timeout_ms(&self, ms: u32) {
        self.key_timeout_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn set_events(&self, m: Option<Multicaster>) {
        *self.events.lock() = m;
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Peers, for the control plane (`peer-get`).
    pub(crate) fn peers(
        &self,
    ) -> kernel::sync::lock::Guard<'_, Peers, kernel::sync::lock::mutex::MutexBackend> {
        self.peers.lock()
    }

    /// `peer-set`: install a secret and key the flows that waited for it.
    pub(crate) fn set_secret(
        &self,
        name: &[u8],
        psk: &[u8],
        epoch: Option<u64>,
    ) -> Result<core::result::Result<u64, SetError>> {
        let mut woken = KVec::new();
        let res = {
            let mut peers = self.peers.lock();
            let epoch = match epoch {
                Some(e) => e,
                None => peers.next_epoch(name),
            };
            let secret = NodePairSecret::from_slice(psk, epoch).ok_or(EINVAL)?;
            peers.set(name, &secret, &mut woken)?
        };
        for f in woken {
            self.kick(&f);
        }
        Ok(res)
    }

    pub(crate) fn del_secret(&self, name: &[u8]) -> bool {
        self.peers.lock().del(name)
    }

    /// Queue `flow`'s worker (derive and/or install).
    pub(crate) fn kick(&self, flow: &Arc<Flow>) {
        let _ = self.queue.queue().enqueue(flow.clone());
    }

    /// Send a key request for `peer` to the `keys` group.
    fn request_key(&self, peer: &[u8], local: &[u8]) {
        inc(&self.counters.key_requests);
        if let Some(m) = &*self.events.lock() {
            let r = m.send(uapi::cmd::KEY_REQUEST, |w| {
                w.put_str(uapi::attr::NODE_NAME, peer)?;
                w.put_str(uapi::attr::LOCAL_NODE, local)
            });
            // ESRCH: nobody listens (no agent). The flow still waits for an
            // operator's `node set ... psk` until its deadline.
            if let Err(e) = r {
                if e != ESRCH {
                    pr_warn!("key request not sent ({:?})\n", e);
                }
            }
        }
    }

    /// Send a per-flow key request (openssl/boringssl mode) to the `keys`
    /// group: the flow's tuple, ISNs, pods and mode.
    fn request_flow_key(&self, f: &Flow) {
        inc(&self.counters.key_requests);
        if let Some(m) = &*self.events.lock() {
            let r = m.send(uapi::cmd::FLOW_KEY_REQUEST, |w| {
                crate::control::datapath::put_flow(w, f)
            });
            // ESRCH: no agent listens; the flow waits until its deadline.
            if let Err(e) = r {
                if e != ESRCH {
                    pr_warn!("flow key request not sent ({:?})\n", e);
                }
            }
        }
    }

    /// `flow-key-set`: the secret of a flow keyed on its own; queues its
    /// worker.
    pub(crate) fn set_flow_secret(
        &self,
        t: &FlowTuple,
        secret: &[u8],
    ) -> Result<core::result::Result<(), FlowSetError>> {
        let r = self.peers.lock().set_flow_secret(t, secret)?;
        Ok(r.map(|f| self.kick(&f)))
    }

    fn count_reset(&self, why: Reason) {
        inc(match why {
            Reason::KeyTimeout => &self.counters.reset_key_timeout,
            Reason::Install => &self.counters.reset_install,
            Reason::StaleSender => &self.counters.reset_stale_sender,
            Reason::Unsupported => &self.counters.reset_unsupported,
            Reason::Unload => &self.counters.reset_unload,
            Reason::Guard => &self.counters.reset_guard,
            Reason::KeyRefused => &self.counters.reset_key_refused,
        });
    }

    /// The wire guard dropped a segment of `flow`: reset it, secured or not
    /// (any context).
    pub(crate) fn fail_guard(&self, flow: &Arc<Flow>) {
        if flow.fail_any(Reason::Guard) {
            self.count_reset(Reason::Guard);
            flow.cv.notify_all();
            self.kick(flow);
        }
    }

    /// Fail `flow` for `why` and have the worker reset it.
    pub(crate) fn fail(&self, flow: &Arc<Flow>, why: Reason) {
        if flow.fail(why) {
            self.count_reset(why);
            flow.cv.notify_all();
            self.kick(flow);
        }
    }

    /// Start: fill the gate tables, register the wire guard, then the
    /// hook (so no flow exists without its guard). After this, the kernel
    /// calls into the datapath.
    pub(crate) fn start(self: &Arc<Self>) -> Result<Hooks> {
        crate::sys::ktls::load_tls();
        crate::sys::gate::init();
        sock::poison_init();
        DP.store((&**self as *const Datapath).cast_mut(), Ordering::Release);
        let hooks = crate::sys::netfilter::LocalOutHooks::register().and_then(|guard| {
            let state = crate::sys::tracepoint::StateHook::register()?;
            Ok(Hooks { state, guard })
        });
        if hooks.is_err() {
            DP.store(core::ptr::null_mut(), Ordering::Release);
        }
        hooks
    }

    /// Stop (module unload): unhook, give every gated socket its ops back
    /// (resetting flows that are not secured yet), wait until no thread is
    /// inside module text, drain the workqueue.
    pub(crate) fn stop(&self, hooks: Hooks) {
        let Hooks { state, guard } = hooks;
        // 1. No new decisions (waits for running probes).
        drop(state);
        // 2. Gate entries and blocked accepts give up.
        self.draining.store(true, Ordering::Release);
        // 3. Give back everything we hold.
        let mut waiting = KVec::new();
        let _ = self.peers.lock().take_waiting(&mut waiting);
        drop(waiting);
        let all = self.flows.take_all();
        for (_, e) in all.iter() {
            match e {
                Entry::Listener(sk) => {
                    let _l = sk.lock();
                    let s = SocketPtr::of(sk);
                    if let Some(s) = s {
                        // SAFETY: under the socket lock a listener's socket
                        // cannot be released (its close takes that lock
                        // first), and `sk_socket` is set.
                        let s = unsafe { s.get() };
                        if crate::sys::gate::is_listen_gate(s.ops()) {
                            s.set_ops(crate::sys::gate::base_ops(sk.is_v6()));
                        }
                    }
                }
                Entry::Flow(f) => self.release_flow(f),
            }
        }
        // 4. Threads that loaded our ops before they were restored are now
        //    inside (counted) or gone; wake parked ones and wait for all.
        sock::synchronize_tasks();
        for (_, e) in all.iter() {
            if let Entry::Flow(f) = e {
                f.cv.notify_all();
            }
        }
        let mut waited = 0u32;
        while crate::sys::gate::inflight() != 0 {
            sock::msleep(10);
            waited += 1;
            if waited % 500 == 0 {
                pr_warn!(
                    "unload: {} calls still inside the gate\n",
                    crate::sys::gate::inflight()
                );
            }
        }
        sock::synchronize_tasks();
        // 5. Every flow is released: the guard goes (waits for running
        //    hooks), then the flows.
        drop(guard);
        drop(all);
        DP.store(core::ptr::null_mut(), Ordering::Release);
    }

    /// Unload: reset a flow that is not secured and take our ops and proto
    /// off its socket.
    fn release_flow(&self, f: &Arc<Flow>) {
        let mut inner = f.inner.lock();
        let phase = f.phase();
        if phase != flow::SECURED && phase != flow::CLOSED {
            f.fail(Reason::Unload);
            self.count_reset(Reason::Unload);
            if !inner.aborted {
                inner.aborted = true;
                f.sk.abort(bindings_econnaborted());
            }
        }
        if sock::is_poison(f.sk.prot()) {
            f.sk.set_prot(crate::sys::gate::base_prot(f.v6));
        }
        if let Some(s) = inner.sock {
            // SAFETY: `inner.sock` is cleared by the gate's `release` under
            // this lock before the socket goes: set means live.
            let s = unsafe { s.get() };
            if crate::sys::gate::is_stream_gate(s.ops()) {
                s.set_ops(crate::sys::gate::base_ops(f.v6));
            }
        }
        inner.keys = None;
        f.set_phase(flow::CLOSED);
        drop(inner);
        f.cv.notify_all();
        f.sk.wake();
    }
}

fn bindings_econnaborted() -> i32 {
    crate::sys::ECONNABORTED_NR
}

/// The worker: derive keys, install, or reset — whatever the flow needs.
pub(crate) fn process(f: &Arc<Flow>) {
    let Some(dp) = dp() else { return };
    let mut inner = f.inner.lock();
    match f.phase() {
        flow::FAILED => {
            if !inner.aborted {
                inner.aborted = true;
                inner.keys = None;
                f.sk.abort(bindings_econnaborted());
            }
            drop(inner);
            f.cv.notify_all();
            f.sk.wake();
            return;
        }
        flow::ESTABLISHED | flow::KEY_WAIT => {
            if f.phase() == flow::ESTABLISHED {
                // Before the flow can join a wait list: the tick takes
                // flows past their deadline off it, and must never see one
                // without a deadline (it would drop it unfailed).
                f.deadline.store(
                    workq::jiffies() + workq::ms_to_jiffies(dp.key_timeout_ms()),
                    Ordering::Relaxed,
                );
            }
            let cipher = f.cipher;
            let derived = dp.peers.lock().derive(f, cipher);
            match derived {
                Ok(Derived::Keys(k)) => {
                    // Unless it failed meanwhile (its reset is queued).
                    let from = f.phase();
                    if matches!(from, flow::ESTABLISHED | flow::KEY_WAIT)
                        && f.advance(from, flow::KEYED)
                    {
                        inner.keys = Some(k);
                    }
                }
                Ok(Derived::Wait { request }) => {
                    if f.advance(flow::ESTABLISHED, flow::KEY_WAIT) {
                        inc(&dp.counters.key_waits);
                        dp.ticker.arm(workq::ms_to_jiffies(TICK_MS));
                    }
                    drop(inner);
                    if request {
                        if f.mode() == uapi::mode::TLSHUB {
                            dp.request_key(f.remote_pod.node(), f.local_pod.node());
                        } else {
                            dp.request_flow_key(f);
                        }
                    }
                    return;
                }
                Err(_) => {
                    drop(inner);
                    dp.fail(f, Reason::Install);
                    return;
                }
            }
        }
        _ => {}
    }
    if f.phase() == flow::KEYED && !f.client && inner.sock.is_none() {
        // A passive child not accepted yet: install now, so that accept()
        // hands out a kTLS socket at once (also when a client that sends
        // and half-closes at once already moved the child to CLOSE_WAIT).
        match preaccept_locked(dp, f, &mut inner) {
            Ok(()) => {}
            Err(_) => {
                drop(inner);
                dp.fail(f, Reason::Install);
            }
        }
        return;
    }
    if f.phase() == flow::KEYED {
        if let Some(s) = inner.sock {
            // SAFETY: set means live (cleared by `release` under this lock).
            let s = unsafe { s.get() };
            let r = install_locked(dp, f, &mut inner, Some(s));
            drop(inner);
            if r.is_err() {
                dp.fail(f, Reason::Install);
            }
            f.cv.notify_all();
        }
    }
}

/// kTLS can go on: established, or the peer half-closed already (its data
/// and FIN arrived before the keys; `SockLock::set_ulp_tls`).
fn installable_state(state: i32) -> bool {
    state == sock::tcp_state::ESTABLISHED || state == sock::tcp_state::CLOSE_WAIT
}

/// Install kTLS on a keyed passive child before `accept()` (flow lock held).
/// If `accept()` got there first, the keys stay for it.
fn preaccept_locked(dp: &Datapath, f: &Flow, inner: &mut flow::Inner) -> Result {
    let sk = &*f.sk;
    let (snd, rcv) = f.isns();
    let (state, ulp, grafted, write_seq, copied_seq) = {
        let _l = sk.lock();
        let (w, c) = sk.write_copied();
        (
            sk.state(),
            sk.has_ulp_or_psock(),
            !sk.socket_ptr().is_null(),
            w,
            c,
        )
    };
    if grafted {
        return Ok(());
    }
    let queued = write_seq.wrapping_sub(snd.wrapping_add(1));
    let consumed = copied_seq.wrapping_sub(rcv.wrapping_add(1));
    if !installable_state(state) || ulp || queued != 0 || consumed != 0 {
        pr_info!(
            "child not installable: state {} ulp/psock {} queued {} consumed {}\n",
            state,
            ulp,
            queued,
            consumed
        );
        inc(&dp.counters.install_failures);
        return Err(crate::sys::eproto());
    }
    let Some(keys) = inner.keys.take() else {
        return Err(EINVAL);
    };
    // kTLS must see the family's proto (it keeps it for close and options).
    if sock::is_poison(sk.prot()) {
        sk.set_prot(crate::sys::gate::base_prot(f.v6));
    }
    let base = crate::sys::gate::base_ops(f.v6);
    let r = sock::install_preaccept(sk, base, || crate::sys::ktls::install(sk, &keys, false));
    match r {
        Ok(Some(ops)) => {
            inner.tls_ops = Some(ops);
            // Unless it failed meanwhile: accept() then refuses it.
            if f.advance(flow::KEYED, flow::SECURED) {
                inc(&dp.counters.secured);
            }
            Ok(())
        }
        Ok(None) => {
            // Accepted meanwhile: accept() installs with these keys.
            inner.keys = Some(keys);
            Ok(())
        }
        Err(e) => {
            pr_info!("kTLS install before accept failed: {:?}\n", e);
            inc(&dp.counters.install_failures);
            Err(e)
        }
    }
}

/// Install kTLS on a keyed flow, the flow lock held. `real`: the app's
/// socket when app threads may reach it (shadow install), `None` inside
/// `accept()` (nobody can).
pub(crate) fn install_locked(
    dp: &Datapath,
    f: &Flow,
    inner: &mut flow::Inner,
    real: Option<&sock::Socket>,
) -> Result {
    let keys = inner.keys.take().ok_or(EINVAL)?;
    let sk = &*f.sk;
    // Invariants kTLS does not check (Part 2 §3.2): established, no ULP
    // or socket map, nothing queued by the app, nothing consumed. Read
    // under the socket lock: the worker is queued by the ESTABLISHED probe,
    // which runs before the stack stores the new state, and taking the
    // lock waits for that softirq to finish with the socket.
    let (snd, rcv) = f.isns();
    let (state, ulp, repair, write_seq, copied_seq) = {
        let _l = sk.lock();
        let (w, c) = sk.write_copied();
        (sk.state(), sk.has_ulp_or_psock(), sk.in_repair(), w, c)
    };
    let queued = write_seq.wrapping_sub(snd.wrapping_add(1));
    let consumed = copied_seq.wrapping_sub(rcv.wrapping_add(1));
    if !installable_state(state) || ulp || repair || queued != 0 || consumed != 0 {
        pr_info!(
            "flow not installable: state {} ulp/psock {} repair {} queued {} consumed {}\n",
            state,
            ulp,
            repair,
            queued,
            consumed
        );
        inc(&dp.counters.install_failures);
        return Err(crate::sys::eproto());
    }
    let client = f.client;
    let r = match real {
        Some(s) => sock::install_shadowed(sk, s, crate::sys::gate::base_ops(f.v6), || {
            crate::sys::ktls::install(sk, &keys, client)
        }),
        None => crate::sys::ktls::install(sk, &keys, client),
    };
    drop(keys);
    match r {
        Ok(()) => {
            // kTLS owns the socket now; its release no longer passes our
            // gate, so the flow forgets it.
            inner.sock = None;
            // Unless it failed meanwhile (the wire guard, a peer-fail): its
            // reset is queued.
            if f.advance(flow::KEYED, flow::SECURED) {
                inc(&dp.counters.secured);
                Ok(())
            } else {
                Err(crate::sys::econnaborted())
            }
        }
        Err(e) => {
            pr_info!("kTLS install failed: {:?}\n", e);
            inc(&dp.counters.install_failures);
            Err(e)
        }
    }
}

/// The deadline tick: reset flows whose key wait timed out.
pub(crate) fn tick() {
    let Some(dp) = dp() else { return };
    let mut due = KVec::new();
    let now = workq::jiffies();
    let still = dp
        .peers
        .lock()
        .expire(now, |f| f.deadline.load(Ordering::Relaxed), &mut due);
    for f in due {
        // ESTABLISHED: its worker put it on the wait list and has not yet
        // moved it to KEY_WAIT (`advance` then finds it failed).
        if matches!(f.phase(), flow::ESTABLISHED | flow::KEY_WAIT) {
            dp.fail(&f, Reason::KeyTimeout);
        }
    }
    if !matches!(still, Ok(false)) && !dp.draining() {
        dp.ticker.arm(workq::ms_to_jiffies(TICK_MS));
    }
}

/// Age of a flow in milliseconds.
pub(crate) fn age_ms(f: &Flow) -> u64 {
    workq::jiffies_to_ms(workq::jiffies().wrapping_sub(f.born))
}
