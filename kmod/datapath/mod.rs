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
//! - `services`: Service CIDRs and the NAT records (POSTROUTING) that say
//!   where a connect to a Service really went;
//! - `crate::keys`: the key provider (secrets, key schedule);
//! - `crate::sys::ktls`, `crate::sys::sock`: kTLS installation, the shadow
//!   socket, socket accessors.
//!
//! This file owns the configuration the control plane sets (nodes this
//! kernel serves, Service CIDRs, cipher, key timeout), the counters, the worker that keys
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
pub(crate) mod services;

use crate::keys::announce::Announce;
use crate::keys::peers::{
    info_of, keys_into, Derived, FlowSetError, FlowTuple, PeerKey, Peers, SetError,
};
use crate::keys::repeat::{Refused, RepeatWindow};
use crate::keys::schedule::{Cipher, FlowKeys, NodePairSecret, Prk};
use crate::state::State;
use crate::sys::genl::Multicaster;
use crate::sys::rcu::{Guard, RcuBox, RcuWriter};
use crate::sys::sock;
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
    /// Key requests sent again by the tick (the first was lost or not
    /// answered in time).
    pub(crate) key_resends: AtomicU64,
    pub(crate) install_failures: AtomicU64,
    pub(crate) reset_key_timeout: AtomicU64,
    pub(crate) reset_install: AtomicU64,
    pub(crate) reset_stale_sender: AtomicU64,
    pub(crate) reset_unsupported: AtomicU64,
    pub(crate) reset_unload: AtomicU64,
    pub(crate) tracked: AtomicU64,
    pub(crate) guard_drops: AtomicU64,
    /// Segments held back at a hole (not reset; review L1).
    pub(crate) guard_holds: AtomicU64,
    pub(crate) reset_guard: AtomicU64,
    pub(crate) reset_key_refused: AtomicU64,
    /// Flows refused by the repeat window (`keys::repeat`), and of them
    /// those refused because it was full.
    pub(crate) reset_key_repeat: AtomicU64,
    pub(crate) repeat_window_full: AtomicU64,
    /// Flows whose announced epoch this end has no secret of.
    pub(crate) reset_key_epoch: AtomicU64,
    /// Connects to a Service CIDR gated tentatively, and how they were
    /// decided (`services`).
    pub(crate) flows_service: AtomicU64,
    pub(crate) service_secured: AtomicU64,
    pub(crate) bypass_service: AtomicU64,
    pub(crate) reset_service: AtomicU64,
    /// Flows from a socket outside the network namespace the mapping binds
    /// their local pod to (review M6).
    pub(crate) reset_identity: AtomicU64,
    /// Flows between a mapped pod of another node and an address of a pod
    /// CIDR the mapping does not name (mapping skew).
    pub(crate) reset_unmapped: AtomicU64,
    /// Passive TCP Fast Open children of a pair the module secures, on a
    /// listener it never gated: failed closed at their SYN-ACK (review L6).
    pub(crate) reset_fastopen: AtomicU64,
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
    /// By [`Cidrs`].
    cidr_writers: [RcuWriter<services::CidrSet>; 2],
}

/// Which CIDR setting.
#[derive(Clone, Copy)]
pub(crate) enum Cidrs {
    /// Kubernetes Service addresses (`services`).
    Service = 0,
    /// The cluster's pod addresses (mapping skew: `hook::classify`).
    Pod = 1,
}

impl Cidrs {
    pub(crate) fn max(self) -> usize {
        match self {
            Cidrs::Service => uapi::MAX_SERVICE_CIDRS,
            Cidrs::Pod => uapi::MAX_POD_CIDRS,
        }
    }
}

/// The datapath.
#[pin_data]
pub(crate) struct Datapath {
    pub(crate) state: Arc<State>,
    local: RcuBox<LocalNodes>,
    /// By [`Cidrs`].
    cidrs: [RcuBox<services::CidrSet>; 2],
    #[pin]
    pub(crate) nat: services::NatRecords,
    #[pin]
    config: Mutex<Config>,
    cipher: AtomicU32,
    key_timeout_ms: AtomicU32,
    #[pin]
    pub(crate) flows: flow::FlowTable,
    #[pin]
    peers: Mutex<Peers>,
    /// What connecting clients announce (`keys::announce`); its writer is
    /// inside `peers`.
    announce: RcuBox<Announce>,
    #[pin]
    pub(crate) repeats: RepeatWindow,
    pub(crate) counters: Counters,
    queue: OwnQueue,
    ticker: Ticker,
    #[pin]
    events: Mutex<Option<Multicaster>>,
    draining: AtomicBool,
    /// Jiffies of the last "event not delivered" warning (0: never).
    warned: AtomicU64,
}

/// What the kernel calls the datapath through while it runs: the TCP state
/// hook and the wire guard (each unregisters when dropped).
pub(crate) struct Hooks {
    state: crate::sys::tracepoint::StateHook,
    guard: crate::sys::netfilter::NetfilterHooks,
}

/// What the kernel calls, through `sys/`'s mechanisms (they are generic
/// over these traits and never name the datapath): the TCP state probe,
/// the wire guard, the gate's policy and the deadline tick.
pub(crate) struct Kernel;

impl crate::sys::tracepoint::StateProbe for Kernel {
    fn on_state(sk: &sock::Sock, old: i32, new: i32) {
        hook::on_state(sk, old, new);
    }
}

impl crate::sys::netfilter::SegmentGuard for Kernel {
    fn check(
        sk: &sock::Sock,
        seg: &crate::sys::netfilter::Segment,
    ) -> crate::sys::netfilter::Verdict {
        guard::check(sk, seg)
    }

    fn syn_ack(sk: &sock::Sock) {
        hook::fastopen_child(sk);
    }
}

impl crate::sys::netfilter::NatWatcher for Kernel {
    fn translated(t: &crate::sys::netfilter::NatTuples) {
        let Some(dp) = dp() else { return };
        let (src, dst) = (
            services::addr(t.v6, &t.orig_src),
            services::addr(t.v6, &t.orig_dst),
        );
        let backend = services::addr(t.v6, &t.reply_src);
        // Only what an ESTABLISHED probe will take: a local pod's connect
        // to a Service (its client end), or a connection DNATed from
        // anything but a pod or a Service to a local pod (its server end).
        let g = Guard::new();
        if dp.services(&g).contains(&dst) {
            if hook::is_local_pod(dp, &g, &src) {
                dp.nat.record(services::End::Client, t);
            }
        } else if dst != backend
            && hook::is_local_pod(dp, &g, &backend)
            && !hook::is_pod(dp, &g, &dst)
        {
            dp.nat.record(services::End::Server, t);
        }
    }
}

impl crate::sys::gate::GatePolicy for Kernel {
    fn enter(s: &sock::Socket, send: bool, nonblock: bool) -> Result {
        gate::enter(s, send, nonblock)
    }
    fn poll_ready(s: &sock::Socket) -> bool {
        gate::poll_ready(s)
    }
    fn accepted(n: &sock::Socket, v6: bool) -> Result<bool> {
        gate::accepted(n, v6)
    }
    fn draining() -> bool {
        gate::draining()
    }
}

impl crate::sys::workq::Tick for Kernel {
    fn tick() {
        tick();
    }
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
/// A key request still unanswered is sent again after a third of the key
/// timeout, and not more often than this.
const RESEND_MIN_MS: u32 = 250;
/// At most this many requests are sent again per tick.
const RESEND_MAX: usize = 64;

impl Datapath {
    pub(crate) fn new(state: Arc<State>) -> Result<Arc<Self>> {
        let local = RcuBox::new(KBox::new(LocalNodes { names: KVec::new() }, GFP_KERNEL)?);
        let local_writer = local.writer().ok_or(EINVAL)?;
        let empty = || -> Result<RcuBox<services::CidrSet>> {
            let set = services::CidrSet::new(KVec::new());
            Ok(RcuBox::new(KBox::new(set, GFP_KERNEL)?))
        };
        let cidrs = [empty()?, empty()?];
        let cidr_writers = [
            cidrs[0].writer().ok_or(EINVAL)?,
            cidrs[1].writer().ok_or(EINVAL)?,
        ];
        let announce = RcuBox::new(KBox::new(Announce::empty(), GFP_KERNEL)?);
        let announce_writer = announce.writer().ok_or(EINVAL)?;
        let queue = OwnQueue::new()?;
        Arc::pin_init(
            try_pin_init!(Datapath {
                state,
                local,
                cidrs,
                nat <- services::NatRecords::new(),
                config <- new_mutex!(Config {
                    local_writer,
                    cidr_writers
                }),
                cipher: AtomicU32::new(uapi::cipher::AES_128_GCM),
                key_timeout_ms: AtomicU32::new(DEFAULT_KEY_TIMEOUT_MS),
                flows <- flow::FlowTable::new(),
                peers <- new_mutex!(Peers::new(announce_writer)),
                announce,
                repeats <- RepeatWindow::new(),
                counters: Counters::default(),
                queue,
                ticker: Ticker::new::<Kernel>(),
                events <- new_mutex!(None),
                draining: AtomicBool::new(false),
                warned: AtomicU64::new(0),
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

    /// A CIDR setting, for a read section.
    pub(crate) fn cidrs<'g>(&'g self, g: &'g Guard, which: Cidrs) -> &'g services::CidrSet {
        self.cidrs[which as usize].get(g)
    }

    /// The Service CIDRs, for a read section.
    pub(crate) fn services<'g>(&'g self, g: &'g Guard) -> &'g services::CidrSet {
        self.cidrs(g, Cidrs::Service)
    }

    /// The pod CIDRs, for a read section.
    pub(crate) fn pod_cidrs<'g>(&'g self, g: &'g Guard) -> &'g services::CidrSet {
        self.cidrs(g, Cidrs::Pod)
    }

    /// Replace a CIDR setting (process context).
    pub(crate) fn set_cidrs(&self, which: Cidrs, list: KVec<services::Cidr>) -> Result {
        if list.len() > which.max() {
            return Err(E2BIG);
        }
        let new = KBox::new(services::CidrSet::new(list), GFP_KERNEL)?;
        let i = which as usize;
        let old = self.config.lock().cidr_writers[i].replace(&self.cidrs[i], new)?;
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

    /// The epoch a client on `local` node announces to `remote` node now
    /// (the TCP state probe, in a read section).
    pub(crate) fn announced_epoch(&self, g: &Guard, remote: &[u8], local: &[u8]) -> u64 {
        self.announce.get(g).epoch(remote, local, workq::jiffies())
    }

    /// The epoch a client on `local` node announces to a Service, whose
    /// backend's node it cannot know yet (`keys::announce`).
    pub(crate) fn announced_service_epoch(&self, g: &Guard, local: &[u8]) -> u64 {
        self.announce.get(g).service_epoch(local, workq::jiffies())
    }

    /// Change the peers (`set`, `del`, `fail`) and publish what connecting
    /// clients announce; the old snapshot is freed after unlocking.
    pub(crate) fn update_peers<R>(&self, f: impl FnOnce(&mut Peers) -> Result<R>) -> Result<R> {
        let (r, old) = {
            let mut peers = self.peers.lock();
            let r = f(&mut peers);
            // Published even when `f` failed part-way (it may have changed
            // something); on an allocation failure the snapshot stays old
            // until the next change (a client may then announce a stale
            // epoch: its flow waits or resets, never mis-keys).
            (r, peers.publish(&self.announce))
        };
        drop(old);
        r
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
        key: PeerKey<'_>,
        psk: &[u8],
        epoch: Option<u64>,
    ) -> Result<core::result::Result<u64, SetError>> {
        let mut woken = KVec::new();
        let res = self.update_peers(|peers| {
            let epoch = match epoch {
                Some(e) => e,
                None => peers.next_epoch(key),
            };
            let secret = NodePairSecret::from_slice(psk, epoch).ok_or(EINVAL)?;
            peers.set(key, &secret, &mut woken)
        });
        // The secret and its PRK passed through the frames below (L2).
        crate::keys::schedule::burn_stack();
        let res = res?;
        for f in woken {
            self.kick(&f);
        }
        Ok(res)
    }

    /// `peer-del`: whether there was a secret. A pair's waiting flows are
    /// derived again (from the peers' own entries).
    pub(crate) fn del_secret(&self, key: PeerKey<'_>) -> Result<bool> {
        let mut again = KVec::new();
        let had = self.update_peers(|p| p.del(key, &mut again))?;
        for f in again {
            self.kick(&f);
        }
        Ok(had)
    }

    /// Queue `flow`'s worker (derive and/or install).
    pub(crate) fn kick(&self, flow: &Arc<Flow>) {
        let _ = self.queue.queue().enqueue(flow.clone());
    }

    /// Send a key request for `peer` to the `keys` group. Whether or not it
    /// is delivered (ESRCH: nobody listens yet; ENOBUFS: the agent's socket
    /// is full), the tick sends it again while flows still wait and no
    /// answer came within a third of the key timeout (review M5). Meanwhile
    /// the flows wait for an agent or an operator's `node set ... psk`
    /// until their deadline.
    fn request_key(&self, peer: &[u8], local: &[u8]) {
        inc(&self.counters.key_requests);
        let r = match &*self.events.lock() {
            Some(m) => m.send(uapi::cmd::KEY_REQUEST, |w| {
                w.put_str(uapi::attr::NODE_NAME, peer)?;
                w.put_str(uapi::attr::LOCAL_NODE, local)
            }),
            None => Err(ESRCH),
        };
        if let Err(e) = r {
            if e != ESRCH {
                self.warn_lost(e);
            }
        }
    }

    /// Log an undeliverable event, at most once per 10 s.
    fn warn_lost(&self, e: Error) {
        let now = workq::jiffies();
        let last = self.warned.load(Ordering::Relaxed);
        if last == 0 || now.wrapping_sub(last) >= workq::ms_to_jiffies(10_000) {
            self.warned.store(now, Ordering::Relaxed);
            pr_warn!(
                "key request event not delivered ({:?}); sent again while flows wait\n",
                e
            );
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
            // ESRCH: no agent listens; the tick asks again while the flow
            // waits, until its deadline.
            if let Err(e) = r {
                if e != ESRCH {
                    self.warn_lost(e);
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
        let r = self.peers.lock().set_flow_secret(t, secret);
        // The secret and its PRK passed through the frames below (L2).
        crate::keys::schedule::burn_stack();
        Ok(r?.map(|f| self.kick(&f)))
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
            Reason::KeyRepeat => &self.counters.reset_key_repeat,
            Reason::KeyEpoch => &self.counters.reset_key_epoch,
            Reason::Service => &self.counters.reset_service,
            Reason::FastOpen => &self.counters.reset_fastopen,
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
        if self.fail_counted(flow, why) {
            self.count_reset(why);
        }
    }

    /// [`Self::fail`] for a flow whose failure was counted before it was
    /// tracked (a Fast Open child failed closed at its SYN-ACK). Returns
    /// whether this call failed it.
    pub(crate) fn fail_counted(&self, flow: &Arc<Flow>, why: Reason) -> bool {
        let failed = flow.fail(why);
        if failed {
            flow.cv.notify_all();
            self.kick(flow);
        }
        failed
    }

    /// Start: fill the gate tables, register the wire guard, then the
    /// hook (so no flow exists without its guard). After this, the kernel
    /// calls into the datapath.
    pub(crate) fn start(self: &Arc<Self>) -> Result<Hooks> {
        crate::sys::gate::init::<Kernel>();
        sock::poison_init();
        DP.store((&**self as *const Datapath).cast_mut(), Ordering::Release);
        let hooks =
            crate::sys::netfilter::NetfilterHooks::register::<Kernel, Kernel>().and_then(|guard| {
                let state = crate::sys::tracepoint::StateHook::register::<Kernel>()?;
                Ok(Hooks { state, guard })
            });
        if hooks.is_err() {
            DP.store(core::ptr::null_mut(), Ordering::Release);
        }
        hooks
    }

    /// `drain` (admin): stop securing and let go of every socket, so that
    /// `rmmod` can go through. From here the hook fails new pod-to-pod
    /// connections closed instead of gating them (no plaintext, Part 1
    /// §1), listeners are no longer gated, every gated socket gets its ops
    /// back and every flow not secured yet is reset. Secured flows go on:
    /// kTLS belongs to tls.ko. One-way until the module is reloaded.
    /// Returns the module references still held afterwards (by calls
    /// inside the next ops, and sockets being released), for the caller.
    pub(crate) fn drain(&self) -> i32 {
        self.draining.store(true, Ordering::Release);
        self.release_all();
        crate::sys::gate::module_refs()
    }

    /// Stop (module exit, which the kernel runs only once no socket holds
    /// a module reference: nothing is gated any more, unless `drain` was
    /// skipped and flows raced the `rmmod`): fail new flows closed, unhook,
    /// let go of what is left, wait until no thread is inside module text.
    pub(crate) fn stop(&self, hooks: Hooks) {
        let Hooks { state, guard } = hooks;
        // 1. New decisions fail closed, then none are made (unregistering
        //    waits for running probes).
        self.draining.store(true, Ordering::Release);
        drop(state);
        // 2. Give back everything we hold (normally nothing by now).
        self.release_all();
        // 3. A `do_accept` or `__sock_release` that loaded one of our
        //    tables just before its socket let go of it may have taken a
        //    reference after the kernel's check (`__module_get`): it is
        //    about to call into us and finds us draining. Wait for it.
        let mut waited = 0u32;
        while crate::sys::gate::module_refs() >= 0 {
            sock::msleep(10);
            waited += 1;
            if waited % 500 == 0 {
                pr_warn!(
                    "unload: {} module references still held\n",
                    crate::sys::gate::module_refs() + 1
                );
            }
        }
        sock::synchronize_tasks();
        // 4. Every flow is released: the guard goes (waits for running
        //    hooks).
        drop(guard);
        DP.store(core::ptr::null_mut(), Ordering::Release);
        // 5. A worker or tick that loaded `DP` before it was cleared may
        //    still run: wait for them here, before the flows and secrets
        //    they use can be freed (the fields drop in declaration order,
        //    the queue after them; review L4). Later ones find no `DP`.
        self.ticker.cancel();
        self.queue.flush();
    }

    /// Give back every gated socket (resetting flows that are not secured
    /// yet), wake parked threads and wait until none is inside a
    /// trampoline (calls that went on into kTLS hold a module reference
    /// instead, and do not count).
    fn release_all(&self) {
        let mut waiting = KVec::new();
        let _ = self.peers.lock().take_waiting(&mut waiting);
        drop(waiting);
        let all = self.flows.take_all();
        for (_, e) in all.iter().flat_map(|t| t.iter()) {
            match e {
                Entry::Listener(sk) => {
                    let l = sk.lock();
                    if let Some(s) = l.socket() {
                        crate::sys::gate::gate_off(
                            s,
                            crate::sys::gate::base_ops(sk.is_v6()),
                            false,
                        );
                    }
                }
                Entry::Flow(f) => self.release_flow(f),
            }
        }
        // Threads that loaded our ops before they were restored are now
        // inside (counted) or gone; wake parked ones and wait for all.
        sock::synchronize_tasks();
        for (_, e) in all.iter().flat_map(|t| t.iter()) {
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
                    "drain: {} calls still inside the gate\n",
                    crate::sys::gate::inflight()
                );
            }
        }
        sock::synchronize_tasks();
        drop(all);
    }

    /// Unload: reset a flow that is not secured and take our ops and proto
    /// off its socket.
    fn release_flow(&self, f: &Arc<Flow>) {
        let mut inner = f.inner.lock();
        let phase = f.phase();
        let unsecured = phase != flow::SECURED && phase != flow::CLOSED;
        if unsecured {
            f.fail(Reason::Unload);
            self.count_reset(Reason::Unload);
        }
        if unsecured && !inner.in_app {
            // A child on its listener's queue: not ours to lock (H2). It
            // can never send (send side shut) nor be read as a healthy
            // connection (`sk_err`); its accept or its listener's close
            // ends it.
            f.sk.shutdown_send();
            f.sk.poison(bindings_econnaborted());
        } else if unsecured && !inner.aborted {
            inner.aborted = true;
            f.sk.abort(bindings_econnaborted());
        }
        sock::poison_off(&f.sk, crate::sys::gate::base_prot(f.v6));
        if inner.in_app {
            let l = f.sk.lock();
            if let Some(s) = l.socket() {
                crate::sys::gate::gate_off(s, crate::sys::gate::base_ops(f.v6), false);
            }
            l.wake();
        }
        wipe_keys(&mut inner);
        f.to_closed(true);
        drop(inner);
        f.cv.notify_all();
    }
}

/// Drop a flow's keys where they lie (their `Drop` wipes the bytes in
/// place; `take()` would move a copy out and leave the original behind).
fn wipe_keys(inner: &mut flow::Inner) {
    inner.keys = None;
}

fn bindings_econnaborted() -> i32 {
    crate::sys::ECONNABORTED_NR
}

/// What the worker got for a flow: its keys (in `Inner::keys`), or a wait.
enum Keyed {
    Keys,
    Wait { request: bool },
}

/// The worker: derive keys, install, or reset — whatever the flow needs.
pub(crate) fn process(f: &Arc<Flow>) {
    let Some(dp) = dp() else { return };
    let mut inner = f.inner.lock();
    match f.phase() {
        flow::FAILED => {
            wipe_keys(&mut inner);
            // A child not accepted yet is reset by our `accept()` (or goes
            // with its listener): the kernel assumes nobody owns it (H2).
            if !inner.aborted && inner.in_app {
                inner.aborted = true;
                f.sk.abort(bindings_econnaborted());
                f.sk.lock().wake();
            }
            drop(inner);
            f.cv.notify_all();
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
            // The HMACs (about 21 SHA-256 blocks) run outside the `Peers`
            // lock, on a copy of the PRK (review M4), in a slot that is
            // wiped where it lies when it goes (review L2).
            let mut prk = Prk::zeroed();
            let derived = dp.peers.lock().derive(f, &mut prk);
            let derived = match derived {
                Ok(Derived::Prk) => {
                    // Never key a flow from inputs a recent one had (a
                    // replayed SYN-cookie handshake): `keys::repeat`. A
                    // per-flow secret (openssl/boringssl) never repeats.
                    let admitted = info_of(f, cipher).and_then(|info| {
                        let ok = if f.mode() == uapi::mode::TLSHUB {
                            dp.repeats.admit(f.client, &info)?
                        } else {
                            Ok(())
                        };
                        Ok(ok.map(|()| info))
                    });
                    match admitted {
                        // Derived into the flow's own storage, in place.
                        Ok(Ok(info)) => match KBox::new(FlowKeys::zeroed(cipher), GFP_KERNEL) {
                            Ok(b) => {
                                let out = inner.keys.insert(b);
                                keys_into(&prk, cipher, &info, out).map(|()| Keyed::Keys)
                            }
                            Err(e) => Err(e.into()),
                        },
                        Ok(Err(why)) => {
                            if matches!(why, Refused::Full) {
                                inc(&dp.counters.repeat_window_full);
                            }
                            drop(inner);
                            dp.fail(f, Reason::KeyRepeat);
                            return;
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(Derived::Wait { request }) => Ok(Keyed::Wait { request }),
                Ok(Derived::NoEpoch) => {
                    drop(inner);
                    dp.fail(f, Reason::KeyEpoch);
                    return;
                }
                Err(e) => Err(e),
            };
            match derived {
                Ok(Keyed::Keys) => {
                    // Unless it failed meanwhile (its reset is queued).
                    if !f.to_keyed() {
                        wipe_keys(&mut inner);
                    }
                }
                Ok(Keyed::Wait { request }) => {
                    if f.to_key_wait() {
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
                    wipe_keys(&mut inner);
                    drop(inner);
                    dp.fail(f, Reason::Install);
                    return;
                }
            }
        }
        _ => {}
    }
    // Keyed: install, unless this is a child still on its listener's
    // queue (our `accept()` installs then, H2/M3).
    if f.phase() == flow::KEYED && inner.in_app {
        let r = install_locked(dp, f, &mut inner);
        drop(inner);
        if r.is_err() {
            dp.fail(f, Reason::Install);
        }
        f.cv.notify_all();
    }
}

/// Install kTLS on a keyed flow whose socket the app can reach (the flow
/// lock held: one install at a time, and the gate's callers wait on it).
///
/// One socket-lock section does it all (Part 2 §3.2): the invariants kTLS
/// does not check (established or half-closed by the peer, no ULP or
/// socket map, not in repair, nothing queued by the app, nothing consumed),
/// attach + TX + RX (`tls_sk_install_locked`), and the final ops on the
/// app's socket — so nothing can change between the check and the install,
/// and no thread sees a half-installed socket. Taking the lock also waits
/// for the ESTABLISHED probe's softirq to be done with the socket.
pub(crate) fn install_locked(dp: &Datapath, f: &Flow, inner: &mut flow::Inner) -> Result {
    let r = install_keys(f, inner);
    wipe_keys(inner);
    // The kTLS crypto_info buffers and kTLS's own key setup were below
    // this frame (review L2).
    crate::keys::schedule::burn_stack();
    match r {
        Ok(()) => {
            // Unless it failed meanwhile (the wire guard, a peer-fail): its
            // reset is queued.
            if f.to_secured() {
                inc(&dp.counters.secured);
                Ok(())
            } else {
                Err(crate::sys::econnaborted())
            }
        }
        Err(e) => {
            inc(&dp.counters.install_failures);
            Err(e)
        }
    }
}

fn install_keys(f: &Flow, inner: &flow::Inner) -> Result {
    let keys = inner.keys.as_ref().ok_or(EINVAL)?;
    let sk = &*f.sk;
    let l = sk.lock();
    let (snd, rcv) = f.isns();
    let (w, c) = sk.write_copied();
    let (state, ulp, repair) = (sk.state(), sk.has_ulp_or_psock(), sk.in_repair());
    let queued = w.wrapping_sub(snd.wrapping_add(1));
    let consumed = c.wrapping_sub(rcv.wrapping_add(1));
    if !installable_state(state) || ulp || repair || queued != 0 || consumed != 0 {
        pr_info!(
            "flow not installable: state {} ulp/psock {} repair {} queued {} consumed {}\n",
            state,
            ulp,
            repair,
            queued,
            consumed
        );
        return Err(crate::sys::eproto());
    }
    // kTLS must find the family's proto (it keeps it for close and options).
    sock::poison_off(sk, crate::sys::gate::base_prot(f.v6));
    let ops =
        crate::sys::ktls::install_locked(&l, keys, f.client, crate::sys::gate::base_ops(f.v6))?;
    l.publish_ops(ops);
    l.wake();
    Ok(())
}

/// kTLS can go on: established, or the peer half-closed already (its data
/// and FIN arrived before the keys).
fn installable_state(state: i32) -> bool {
    state == sock::tcp_state::ESTABLISHED || state == sock::tcp_state::CLOSE_WAIT
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
    // Ask again for what is still awaited (a lost event must not leave
    // flows waiting until they time out), at most RESEND_MAX per tick.
    let every = core::cmp::max(
        workq::ms_to_jiffies(dp.key_timeout_ms() / 3),
        workq::ms_to_jiffies(RESEND_MIN_MS),
    );
    let mut again = KVec::new();
    let _ = dp
        .peers
        .lock()
        .resend_due(now, every, RESEND_MAX, &mut again);
    for f in again {
        if !matches!(f.phase(), flow::ESTABLISHED | flow::KEY_WAIT) {
            continue;
        }
        inc(&dp.counters.key_resends);
        if f.mode() == uapi::mode::TLSHUB {
            dp.request_key(f.remote_pod.node(), f.local_pod.node());
        } else {
            dp.request_flow_key(&f);
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
