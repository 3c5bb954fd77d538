// SPDX-License-Identifier: GPL-2.0
//! TCP sockets as the datapath sees them: `struct sock` (the connection) and
//! `struct socket` (the app's handle), read and changed through a few safe
//! methods.
//!
//! C headers: [include/net/sock.h](srctree/include/net/sock.h),
//! [include/linux/tcp.h](srctree/include/linux/tcp.h),
//! [include/linux/net.h](srctree/include/linux/net.h)
//!
//! What may be touched, and from where, is the datapath design's (Part 2):
//! reads of addresses, ports, sequence numbers and flags from any context;
//! `sock->ops` swapped with `WRITE_ONCE` (readers use `READ_ONCE`);
//! `sk_prot` swapped only while the app cannot reach the socket (a passive
//! child before `accept()` returns); `tcp_abort` and the kTLS setsockopts
//! only in process context with no socket lock held.

use crate::state::mapping::IpAddr;
use core::ptr;
use kernel::{bindings, prelude::*, types::Opaque};

/// `AF_INET`, `AF_INET6` as the kernel stores them in `sk_family`.
const AF_INET: u16 = bindings::AF_INET as u16;
const AF_INET6: u16 = bindings::AF_INET6 as u16;

/// A TCP state number (`TCP_ESTABLISHED` ...).
pub(crate) mod tcp_state {
    use kernel::bindings;
    pub(crate) const ESTABLISHED: i32 = bindings::TCP_ESTABLISHED as i32;
    pub(crate) const CLOSE_WAIT: i32 = bindings::TCP_CLOSE_WAIT as i32;
    pub(crate) const SYN_SENT: i32 = bindings::TCP_SYN_SENT as i32;
    pub(crate) const SYN_RECV: i32 = bindings::TCP_SYN_RECV as i32;
    pub(crate) const CLOSE: i32 = bindings::TCP_CLOSE as i32;
    pub(crate) const LISTEN: i32 = bindings::TCP_LISTEN as i32;
}

/// One end of a connection: address and port (host order).
#[derive(Clone, Copy)]
pub(crate) struct Endpoint {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
}

/// A `struct sock`, borrowed for as long as the caller's reference lasts.
///
/// # Invariants
///
/// Wraps a live `struct sock` of an inet (AF_INET/AF_INET6) socket.
#[repr(transparent)]
pub(crate) struct Sock(Opaque<bindings::sock>);

impl Sock {
    /// # Safety
    ///
    /// `sk` must point to a live `struct sock` that stays alive for `'a`.
    pub(crate) unsafe fn from_raw<'a>(sk: *const bindings::sock) -> &'a Sock {
        // SAFETY: `Sock` is a transparent wrapper; liveness is the caller's.
        unsafe { &*sk.cast::<Sock>() }
    }

    fn raw(&self) -> *mut bindings::sock {
        self.0.get()
    }

    fn tcp(&self) -> *mut bindings::tcp_sock {
        // `struct tcp_sock` starts with `struct sock` (via inet_connection_sock
        // and inet_sock); callers only use this on TCP sockets.
        self.raw().cast()
    }

    /// A TCP stream socket (not MPTCP's msk, not raw, not UDP).
    pub(crate) fn is_tcp_stream(&self) -> bool {
        // SAFETY: plain field reads of a live sock (invariant).
        let (proto, ty, fam) = unsafe {
            let sk = self.raw();
            (
                (*sk).sk_protocol,
                (*sk).sk_type,
                (*sk).__sk_common.skc_family,
            )
        };
        u32::from(proto) == bindings::IPPROTO_TCP
            && u32::from(ty) == bindings::sock_type_SOCK_STREAM
            && (fam == AF_INET || fam == AF_INET6)
    }

    /// An MPTCP subflow.
    pub(crate) fn is_mptcp(&self) -> bool {
        // SAFETY: the sock is live (invariant).
        unsafe { bindings::sk_is_mptcp(self.raw()) }
    }

    /// IPv6 socket (v4-mapped peers included).
    pub(crate) fn is_v6(&self) -> bool {
        // SAFETY: field read of a live sock.
        unsafe { (*self.raw()).__sk_common.skc_family == AF_INET6 }
    }

    /// Whether the socket lives in the initial network namespace.
    pub(crate) fn in_init_net(&self) -> bool {
        // SAFETY: field read of a live sock; `init_net` is a static whose
        // address is only compared.
        unsafe {
            ptr::eq(
                (*self.raw()).__sk_common.skc_net.net,
                ptr::addr_of_mut!(bindings::init_net),
            )
        }
    }

    /// The cookie of the socket's network namespace (`net->net_cookie`,
    /// what `SO_NETNS_COOKIE` reports; unique while the kernel runs).
    pub(crate) fn netns_cookie(&self) -> u64 {
        // SAFETY: a live sock holds a reference on its namespace
        // (`sk_net_refcnt`) or is a kernel socket of a namespace that
        // outlives it; `net_cookie` is set once when the namespace is made.
        unsafe { (*(*self.raw()).__sk_common.skc_net.net).net_cookie }
    }

    /// The local end (bound address, local port; port 0 before connect picks one).
    pub(crate) fn local(&self) -> Endpoint {
        // SAFETY: field reads of a live sock; the unions are plain integers.
        unsafe {
            let c = &(*self.raw()).__sk_common;
            let ip = if c.skc_family == AF_INET6 {
                IpAddr::v6(c.skc_v6_rcv_saddr.in6_u.u6_addr8)
            } else {
                IpAddr::v4(
                    c.__bindgen_anon_1
                        .__bindgen_anon_1
                        .skc_rcv_saddr
                        .to_ne_bytes(),
                )
            };
            Endpoint {
                ip,
                port: c.__bindgen_anon_3.__bindgen_anon_1.skc_num,
            }
        }
    }

    /// The remote end.
    pub(crate) fn remote(&self) -> Endpoint {
        // SAFETY: as in `local`.
        unsafe {
            let c = &(*self.raw()).__sk_common;
            let ip = if c.skc_family == AF_INET6 {
                IpAddr::v6(c.skc_v6_daddr.in6_u.u6_addr8)
            } else {
                IpAddr::v4(c.__bindgen_anon_1.__bindgen_anon_1.skc_daddr.to_ne_bytes())
            };
            Endpoint {
                ip,
                port: u16::from_be(c.__bindgen_anon_3.__bindgen_anon_1.skc_dport),
            }
        }
    }

    /// The current TCP state (`inet_sk_state_load`).
    pub(crate) fn state(&self) -> i32 {
        // SAFETY: the sock is live.
        unsafe { bindings::inet_sk_state_load(self.raw()) }
    }

    /// `(snd_una, rcv_nxt)`: at ESTABLISHED, each is its side's ISN + 1.
    pub(crate) fn una_nxt(&self) -> (u32, u32) {
        // SAFETY: TCP socket (callers); plain reads, exact in the
        // ESTABLISHED probe where the stack holds the socket's lock.
        unsafe { ((*self.tcp()).snd_una, (*self.tcp()).rcv_nxt) }
    }

    /// `(write_seq, copied_seq)`: what the app queued and consumed.
    pub(crate) fn write_copied(&self) -> (u32, u32) {
        // SAFETY: as in `una_nxt`.
        unsafe { ((*self.tcp()).write_seq, (*self.tcp()).copied_seq) }
    }

    /// Choose the ISN of a `connect()` in progress. Only from the
    /// CLOSE→SYN_SENT probe: `tcp_v4_connect`/`tcp_v6_connect` set that
    /// state before they pick an ISN, and pick one only while `write_seq`
    /// is 0 (`net/ipv4/tcp_ipv4.c`, `net/ipv6/tcp_ipv6.c`); a TIME_WAIT
    /// reuse (`tcp_twsk_unique`) may still overwrite it. `isn` must not be 0.
    pub(crate) fn choose_isn(&self, isn: u32) {
        // SAFETY: TCP socket; `connect()` owns the socket lock for the
        // probe, the writer's context; lockless readers (`tcp_poll`,
        // `tcp_get_info`) use READ_ONCE, so write once (volatile).
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*self.tcp()).write_seq), isn) }
    }

    /// `TCP_REPAIR` mode: the app chooses sequence numbers.
    pub(crate) fn in_repair(&self) -> bool {
        // SAFETY: TCP socket; bitfield read.
        unsafe { (*self.tcp()).repair() != 0 }
    }

    /// A thread sleeps in `lock_sock`, waiting for the owner (it may have
    /// chosen the plain TCP path already).
    pub(crate) fn lock_waiters(&self) -> bool {
        // SAFETY: the sock is live; the wait queue head is embedded in it.
        unsafe { bindings::waitqueue_active(ptr::addr_of_mut!((*self.raw()).sk_lock.wq)) }
    }

    /// Threads waiting inside the plain TCP send path.
    pub(crate) fn write_pending(&self) -> bool {
        // SAFETY: plain read.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.raw()).sk_write_pending)) > 0 }
    }

    /// Make every later send and the connect waiters fail with `err`
    /// (positive errno), before anyone copies data (`tcp_sendmsg_locked`
    /// refuses to copy while `sk_err` is set).
    pub(crate) fn poison(&self, err: i32) {
        // SAFETY: a plain int store the stack itself does from softirq.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*self.raw()).sk_err), err) };
    }

    /// Shut the send side (`sk_shutdown |= SEND_SHUTDOWN`): sends fail with
    /// `EPIPE`; at most a FIN leaves. The fail-closed fallback when a flow
    /// cannot be tracked.
    pub(crate) fn shutdown_send(&self) {
        // SAFETY: a byte field the stack itself updates under the socket
        // lock, which the hook's callers hold.
        unsafe {
            let p = ptr::addr_of_mut!((*self.raw()).sk_shutdown);
            ptr::write_volatile(p, ptr::read_volatile(p) | bindings::SEND_SHUTDOWN as u8);
        }
    }

    /// No data in the SYN: drop a pending `MSG_FASTOPEN` payload (its
    /// sender gets `EINPROGRESS` or blocks as without a cookie) and
    /// `TCP_FASTOPEN_CONNECT`. Called at CLOSE→SYN_SENT under the owner's
    /// lock.
    pub(crate) fn no_fastopen(&self) {
        // SAFETY: TCP socket owned by the connecting thread (probe context);
        // `fastopen_req` is that thread's request, live until connect ends.
        unsafe {
            let tp = self.tcp();
            let req = (*tp).fastopen_req;
            if !req.is_null() {
                (*req).size = 0;
            }
            (*tp).set_fastopen_connect(0);
        }
    }

    /// A passive TCP Fast Open child before its handshake completes: in
    /// `SYN_RECV` with its request still attached (`tcp_fastopen_create_child`
    /// sets `fastopen_rsk`; the final ACK clears it before ESTABLISHED).
    pub(crate) fn is_passive_fastopen(&self) -> bool {
        // SAFETY: a TCP sock (callers); only compared with NULL, as
        // `rcu_access_pointer` does.
        unsafe { !ptr::read_volatile(ptr::addr_of!((*self.tcp()).fastopen_rsk)).is_null() }
    }

    /// Toss what it received and nobody read, as `tcp_close` does with
    /// unread data: the receive queue is purged and `copied_seq` catches up
    /// with `rcv_nxt`, so reads and `SIOCINQ` see nothing. For a child that
    /// closes before anyone accepted it.
    pub(crate) fn drop_unread(&self) {
        // SAFETY: a TCP sock under its lock (owned or bh-locked: the state
        // probe's callers); `skb_queue_purge_reason` takes the queue's own
        // lock, and the lock holder is the one writer of `copied_seq`. No
        // caller of a →CLOSE change touches a queued skb afterwards
        // (`tcp_data_queue` frees only skbs it did not queue, after
        // `tcp_fin`; `tcp_close` and `tcp_disconnect` purge the queue
        // themselves).
        unsafe {
            bindings::skb_queue_purge_reason(
                ptr::addr_of_mut!((*self.raw()).sk_receive_queue),
                bindings::skb_drop_reason_SKB_DROP_REASON_NOT_SPECIFIED,
            );
            let tp = self.tcp();
            let nxt = ptr::read_volatile(ptr::addr_of!((*tp).rcv_nxt));
            ptr::write_volatile(ptr::addr_of_mut!((*tp).copied_seq), nxt);
        }
    }

    /// Whether our poison proto is on it ([`poison_on`]).
    pub(crate) fn is_poisoned(&self) -> bool {
        // SAFETY: field read of a live sock.
        let prot = unsafe { ptr::read_volatile(ptr::addr_of!((*self.raw()).__sk_common.skc_prot)) };
        prot.cast_const() == poison_prot(self.is_v6())
    }

    /// A listener: no TCP Fast Open queue (no cookies, no SYN data).
    pub(crate) fn no_fastopen_queue(&self) {
        // SAFETY: TCP listener, owned by `listen()`'s caller in the probe.
        unsafe {
            let icsk = self.raw().cast::<bindings::inet_connection_sock>();
            (*icsk).icsk_accept_queue.fastopenq.max_qlen = 0;
        }
    }

    /// The app's socket, if grafted.
    pub(crate) fn socket_ptr(&self) -> *mut bindings::socket {
        // SAFETY: plain read.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.raw()).sk_socket)) }
    }

    /// Has a ULP (kTLS, MPTCP) or a socket map: kTLS cannot be installed.
    pub(crate) fn has_ulp_or_psock(&self) -> bool {
        let _g = crate::sys::rcu::Guard::new();
        // SAFETY: live sock; `sk_psock` needs an RCU read section (held).
        unsafe {
            bindings::inet_csk_has_ulp(self.raw()) || !bindings::sk_psock(self.raw()).is_null()
        }
    }

    /// Has a ULP other than MPTCP's (kTLS went on: kTLS never goes on an
    /// MPTCP subflow, whose ULP is MPTCP's). Any context.
    pub(crate) fn has_ulp(&self) -> bool {
        // SAFETY: live sock; a pointer read and a flag of the tcp_sock
        // fixed when the subflow is created (cleared on a passive fallback
        // before the child is visible).
        unsafe { bindings::inet_csk_has_ulp(self.raw()) && !bindings::sk_is_mptcp(self.raw()) }
    }

    /// Take a reference.
    pub(crate) fn hold(&self) -> SockRef {
        // SAFETY: live sock; the reference is dropped by `SockRef::drop`.
        unsafe { bindings::sock_hold(self.raw()) };
        SockRef(ptr::NonNull::from(&self.0).cast())
    }

    /// Abort the connection with an RST (`tcp_abort`). Process context, the
    /// socket lock not held by the caller.
    pub(crate) fn abort(&self, err: i32) {
        crate::sys::rcu::might_sleep();
        // SAFETY: live TCP sock; context checked above.
        unsafe { bindings::tcp_abort(self.raw(), err) };
    }

    /// Address of the sock, as a table key.
    pub(crate) fn key(&self) -> usize {
        self.raw() as usize
    }

    /// The socket's wait queue.
    pub(crate) fn sleep_queue(&self) -> *mut bindings::wait_queue_head {
        // SAFETY: live sock.
        unsafe { bindings::sk_sleep(self.raw()) }
    }

    /// `SO_SNDTIMEO`/`SO_RCVTIMEO` in jiffies, 0 if `nonblock`.
    pub(crate) fn timeo(&self, send: bool, nonblock: bool) -> isize {
        // SAFETY: live sock.
        unsafe {
            if send {
                bindings::sock_sndtimeo(self.raw(), nonblock)
            } else {
                bindings::sock_rcvtimeo(self.raw(), nonblock)
            }
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::sock {
        self.raw()
    }
}

/// A reference to a `struct sock` (`sock_hold`), dropped with `sock_put`.
///
/// # Invariants
///
/// Points to a live sock on which this value holds one reference.
pub(crate) struct SockRef(ptr::NonNull<bindings::sock>);

// SAFETY: a sock reference may be dropped on any CPU and in any context
// (`sock_put` is what the stack calls from softirq).
unsafe impl Send for SockRef {}
// SAFETY: `&SockRef` only gives `&Sock`, whose methods are safe from any
// thread.
unsafe impl Sync for SockRef {}

impl core::ops::Deref for SockRef {
    type Target = Sock;
    fn deref(&self) -> &Sock {
        // SAFETY: the reference keeps the sock alive (invariant).
        unsafe { Sock::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for SockRef {
    fn drop(&mut self) {
        // SAFETY: this value holds one reference (invariant).
        unsafe { bindings::sock_put(self.0.as_ptr()) };
    }
}

/// A `struct socket` (the app's handle).
///
/// # Invariants
///
/// Wraps a live `struct socket` whose `sk` is an inet TCP sock.
#[repr(transparent)]
pub(crate) struct Socket(Opaque<bindings::socket>);

impl Socket {
    /// # Safety
    ///
    /// `sock` must point to a live `struct socket` that stays alive for `'a`.
    pub(crate) unsafe fn from_raw<'a>(sock: *mut bindings::socket) -> &'a Socket {
        // SAFETY: transparent wrapper; liveness is the caller's.
        unsafe { &*sock.cast::<Socket>() }
    }

    pub(crate) fn as_ptr(&self) -> *mut bindings::socket {
        self.0.get()
    }

    /// The connection, if any.
    pub(crate) fn sk(&self) -> Option<&Sock> {
        // SAFETY: live socket; a grafted sk lives at least as long as the
        // socket holds it (released only in `release`).
        unsafe {
            let sk = ptr::read_volatile(ptr::addr_of!((*self.as_ptr()).sk));
            if sk.is_null() {
                None
            } else {
                Some(Sock::from_raw(sk))
            }
        }
    }

    /// The current ops (`READ_ONCE(sock->ops)`).
    pub(crate) fn ops(&self) -> *const bindings::proto_ops {
        // SAFETY: plain pointer read.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.as_ptr()).ops)) }
    }

    /// Swap the ops (`WRITE_ONCE(sock->ops, ops)`).
    pub(crate) fn set_ops(&self, ops: *const bindings::proto_ops) {
        // SAFETY: pointer store; readers use READ_ONCE.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*self.as_ptr()).ops), ops) };
    }

    /// Replace the ops if they are still `from` (`cmpxchg`): of two
    /// racing swaps, one wins. Returns whether this one did.
    pub(crate) fn swap_ops(
        &self,
        from: *const bindings::proto_ops,
        to: *const bindings::proto_ops,
    ) -> bool {
        // SAFETY: live socket; its `ops` field lives as long.
        unsafe { cas_ptr(ptr::addr_of_mut!((*self.as_ptr()).ops), from, to) }
    }

    /// The socket is being released, or has no file (a kernel socket,
    /// released by `sock_release`): its file's count is zero, so
    /// `__sock_release` may have loaded its ops already
    /// (`net/socket.c` `sock_close` runs at the last `fput`).
    pub(crate) fn releasing(&self) -> bool {
        // SAFETY: live socket; `file` lives until `__sock_release` is done
        // with the socket (it is freed after `sock_close` returns);
        // `f_count` is an `atomic_long_t`.
        unsafe {
            let f = ptr::read_volatile(ptr::addr_of!((*self.as_ptr()).file));
            if f.is_null() {
                return true;
            }
            let c = &*ptr::addr_of!((*f).f_count).cast::<core::sync::atomic::AtomicI64>();
            c.load(core::sync::atomic::Ordering::Acquire) == 0
        }
    }

    /// A reference on the socket's file, unless it has none or is being
    /// released (its count reached zero). While it is held the file's last
    /// `fput`, hence `__sock_release` (which loads `sock->ops` and drops a
    /// reference on *their* owner), cannot start.
    pub(crate) fn pin_file(&self) -> Option<FilePin> {
        // SAFETY: live socket; `get_file_active` reads `sock->file` and
        // takes a reference only while the count is not zero, re-checking
        // the pointer (files are `SLAB_TYPESAFE_BY_RCU`; it holds RCU).
        let f = unsafe { bindings::get_file_active(ptr::addr_of_mut!((*self.as_ptr()).file)) };
        // Not `then_some`: it would build (and drop, `fput`) a pin of a
        // null file.
        if f.is_null() {
            None
        } else {
            Some(FilePin(f))
        }
    }

    /// Non-blocking file (`O_NONBLOCK`).
    pub(crate) fn file_nonblock(&self) -> bool {
        // SAFETY: live socket; `file` is set for sockets with an fd and
        // lives as long as the socket.
        unsafe {
            let f = (*self.as_ptr()).file;
            !f.is_null() && ((*f).f_flags & bindings::O_NONBLOCK) != 0
        }
    }
}

/// A socket ops table kTLS chose (a static table in tls.ko, which cannot
/// be unloaded while this module, which uses its symbols, is loaded).
#[derive(Clone, Copy)]
pub(crate) struct OpsPtr(*const bindings::proto_ops);

// SAFETY: a pointer to an immutable static table.
unsafe impl Send for OpsPtr {}

impl OpsPtr {
    /// `ops` as kTLS returned it (non-null).
    pub(crate) fn new(ops: *const bindings::proto_ops) -> Option<Self> {
        (!ops.is_null()).then_some(Self(ops))
    }
}

/// The socket lock (`lock_sock`), released on drop. Process context.
pub(crate) struct SockLock<'a>(&'a Sock);

impl Sock {
    /// Take the socket lock (sleeps).
    pub(crate) fn lock(&self) -> SockLock<'_> {
        crate::sys::rcu::might_sleep();
        // SAFETY: live sock; released by `SockLock::drop`.
        unsafe { bindings::lock_sock(self.raw()) };
        SockLock(self)
    }
}

impl<'a> SockLock<'a> {
    /// The locked sock.
    pub(crate) fn sock(&self) -> &'a Sock {
        self.0
    }

    /// The app's socket, if grafted. Live while this lock is held: a
    /// socket is orphaned (`sock_orphan` in `tcp_close`, `sk_socket` set to
    /// NULL) only under this lock, before it is freed.
    pub(crate) fn socket(&self) -> Option<&Socket> {
        let p = self.0.socket_ptr();
        // SAFETY: non-null and live while the lock is held (see above).
        (!p.is_null()).then(|| unsafe { Socket::from_raw(p) })
    }

    /// Put the ops kTLS chose on the app's socket (if it still has one),
    /// as kTLS itself would have at the end of its setup. Under the lock
    /// that installed them, so `sk_prot` and the ops never disagree for a
    /// locked reader.
    pub(crate) fn publish_ops(&self, ops: OpsPtr) {
        if let Some(s) = self.socket() {
            crate::sys::gate::gate_off(s, ops.0, true);
        }
    }

    /// Wake writers and every poller (an install or a failure changed
    /// readiness). Under the socket lock: `sk_write_space` may be kTLS's,
    /// whose context a concurrent `close` frees under this lock (review L8).
    pub(crate) fn wake(&self) {
        // SAFETY: live sock with its lock owned; the callbacks are the
        // stack's or kTLS's and may be called from process context.
        unsafe {
            let sk = self.0.raw();
            if let Some(f) = (*sk).sk_write_space {
                f(sk);
            }
            if let Some(f) = (*sk).sk_state_change {
                f(sk);
            }
        }
    }
}

impl Drop for SockLock<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `Sock::lock`.
        unsafe { bindings::release_sock(self.0.raw()) };
    }
}

/// `sk->sk_socket` as read in a context that keeps it alive for a while
/// (a state probe under the socket lock; the unload drain under it): the
/// holder says why when it dereferences. Never stored.
#[derive(Clone, Copy)]
pub(crate) struct SocketPtr(ptr::NonNull<bindings::socket>);

impl SocketPtr {
    /// From `sk->sk_socket`, if set.
    pub(crate) fn of(sk: &Sock) -> Option<Self> {
        ptr::NonNull::new(sk.socket_ptr()).map(Self)
    }

    /// # Safety
    ///
    /// The socket must still be live (not released) for `'a`.
    pub(crate) unsafe fn get<'a>(self) -> &'a Socket {
        // SAFETY: live per the caller.
        unsafe { Socket::from_raw(self.0.as_ptr()) }
    }
}

/// The errno for an interrupted wait (`sock_intr_errno`).
pub(crate) fn intr_errno(timeo: isize) -> Error {
    // SAFETY: no preconditions.
    Error::from_errno(unsafe { bindings::sock_intr_errno(timeo) })
}

/// Sleep `ms` milliseconds (process context).
pub(crate) fn msleep(ms: u32) {
    crate::sys::rcu::might_sleep();
    // SAFETY: no preconditions beyond the context.
    unsafe { bindings::msleep(ms) };
}

/// Wait for every task that may be executing module text it entered
/// through a pointer we already removed (RCU Tasks).
pub(crate) fn synchronize_tasks() {
    crate::sys::rcu::might_sleep();
    #[cfg(CONFIG_TASKS_RCU)]
    {
        // SAFETY: process context (checked).
        unsafe { bindings::synchronize_rcu_tasks() };
    }
    // Without preemption there are no RCU Tasks (a non-preemptible
    // kernel, or voluntary preemption without PREEMPT_DYNAMIC): a task can
    // leave such text only by a voluntary context switch, which is also an
    // RCU quiescent state, so the kernel's own `synchronize_rcu_tasks` is
    // `synchronize_rcu` there (include/linux/rcupdate.h).
    #[cfg(not(CONFIG_TASKS_RCU))]
    {
        // SAFETY: process context (checked).
        unsafe { bindings::synchronize_rcu() };
    }
}

/// The poison `proto`s: clones of `tcp_prot`/`tcpv6_prot` whose data and
/// option calls fail. Put on a secured passive child (invisible to apps)
/// until our `accept` takes it; a child accepted any other way (a listener
/// we never gated) can then never carry plaintext.
struct ProtCell(core::cell::UnsafeCell<core::mem::MaybeUninit<bindings::proto>>);

// SAFETY: written once by `poison_init` before the hook (the only
// publisher) is registered; read-only afterwards.
unsafe impl Sync for ProtCell {}

static POISON: [ProtCell; 2] = [
    ProtCell(core::cell::UnsafeCell::new(core::mem::MaybeUninit::zeroed())),
    ProtCell(core::cell::UnsafeCell::new(core::mem::MaybeUninit::zeroed())),
];

/// # Safety
///
/// Called by the kernel through a poisoned `sk_prot`.
unsafe extern "C" fn poison_sendmsg(
    _sk: *mut bindings::sock,
    _m: *mut bindings::msghdr,
    _l: usize,
) -> i32 {
    -(bindings::ECONNABORTED as i32)
}

/// # Safety
///
/// Called by the kernel through a poisoned `sk_prot`.
unsafe extern "C" fn poison_recvmsg(
    _sk: *mut bindings::sock,
    _m: *mut bindings::msghdr,
    _l: usize,
    _f: i32,
    _a: *mut i32,
) -> i32 {
    -(bindings::ECONNABORTED as i32)
}

/// # Safety
///
/// Called by the kernel through a poisoned `sk_prot`.
unsafe extern "C" fn poison_setsockopt(
    _sk: *mut bindings::sock,
    _level: i32,
    _name: i32,
    _v: bindings::sockptr_t,
    _l: u32,
) -> i32 {
    -(bindings::ECONNABORTED as i32)
}

/// # Safety
///
/// Called by the kernel through a poisoned `sk_prot`.
unsafe extern "C" fn poison_splice_eof(_s: *mut bindings::socket) {}

/// Fill the poison tables. Once, before the hook is registered.
pub(crate) fn poison_init() {
    for v6 in [false, true] {
        // SAFETY: reading the exported base protos; our cells have no
        // readers yet.
        unsafe {
            let mut p: bindings::proto = ptr::read(crate::sys::gate::base_prot(v6));
            p.owner = ptr::null_mut();
            p.sendmsg = Some(poison_sendmsg);
            p.recvmsg = Some(poison_recvmsg);
            p.setsockopt = Some(poison_setsockopt);
            p.splice_eof = Some(poison_splice_eof);
            ptr::write(POISON[usize::from(v6)].0.get().cast(), p);
        }
    }
}

pub(crate) fn poison_prot(v6: bool) -> *const bindings::proto {
    POISON[usize::from(v6)].0.get().cast()
}

/// `cmpxchg` on a pointer field the kernel reads with `READ_ONCE` and
/// writes with `WRITE_ONCE` (`sock->ops`, `sk->sk_prot`): of two racing
/// swaps, one wins. Returns whether this one did.
///
/// # Safety
///
/// `field` points to such a field (aligned, pointer-sized) of a live
/// object.
unsafe fn cas_ptr<T>(field: *mut *const T, from: *const T, to: *const T) -> bool {
    // SAFETY: per the caller; `AtomicPtr<T>` has the layout of `*mut T`.
    let a = unsafe { &*field.cast::<core::sync::atomic::AtomicPtr<T>>() };
    a.compare_exchange(
        from.cast_mut(),
        to.cast_mut(),
        core::sync::atomic::Ordering::AcqRel,
        core::sync::atomic::Ordering::Acquire,
    )
    .is_ok()
}

fn swap_prot(sk: &Sock, from: *const bindings::proto, to: *const bindings::proto) -> bool {
    // SAFETY: live sock; `sk_prot` lives as long.
    unsafe {
        cas_ptr(
            ptr::addr_of_mut!((*sk.raw()).__sk_common.skc_prot).cast::<*const bindings::proto>(),
            from,
            to,
        )
    }
}

/// Put the poison proto on a child whose proto is `base` (the family's),
/// with a module reference (the poison is module data). `false`: the
/// module is going away or the proto changed: nothing was done.
pub(crate) fn poison_on(sk: &Sock, base: *const bindings::proto) -> bool {
    if !crate::sys::gate::module_try_get() {
        return false;
    }
    if swap_prot(sk, base, poison_prot(sk.is_v6())) {
        true
    } else {
        crate::sys::gate::module_put();
        false
    }
}

/// Take the poison proto off (back to `base`), dropping its module
/// reference; nothing if it is not on. Any context: of racing callers,
/// one does it.
pub(crate) fn poison_off(sk: &Sock, base: *const bindings::proto) {
    if swap_prot(sk, poison_prot(sk.is_v6()), base) {
        crate::sys::gate::module_put();
    }
}

/// A file reference taken by [`Socket::pin_file`], dropped with `fput`.
///
/// # Invariants
///
/// Holds one reference on the file.
pub(crate) struct FilePin(*mut bindings::file);

impl Drop for FilePin {
    fn drop(&mut self) {
        // SAFETY: our reference (invariant). `fput` may be called from any
        // context: a last reference is released from task work or a
        // workqueue, never here.
        unsafe { bindings::fput(self.0) }
    }
}
