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
use kernel::{bindings, c_str, prelude::*, types::Opaque};

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

    /// Wake writers and every poller (install or failure changed readiness).
    pub(crate) fn wake(&self) {
        // SAFETY: live sock; the callbacks are the stack's (or kTLS's) and
        // may be called from process context.
        unsafe {
            let sk = self.raw();
            if let Some(f) = (*sk).sk_write_space {
                f(sk);
            }
            if let Some(f) = (*sk).sk_state_change {
                f(sk);
            }
        }
    }

    /// Address of the sock, as a table key.
    pub(crate) fn key(&self) -> usize {
        self.raw() as usize
    }

    /// The socket's wait queue (the real socket's, also while a shadow is
    /// grafted: `sk_wq` is not touched by the shadow).
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

    /// The protocol ops (`sk_prot`).
    pub(crate) fn prot(&self) -> *const bindings::proto {
        // SAFETY: plain read.
        unsafe {
            ptr::read_volatile(ptr::addr_of!((*self.raw()).__sk_common.skc_prot)).cast_const()
        }
    }

    /// Swap `sk_prot`. Only while the app cannot reach the socket (a
    /// passive child before `accept()` returns).
    pub(crate) fn set_prot(&self, prot: *const bindings::proto) {
        // SAFETY: pointer store (`WRITE_ONCE`); the caller owns the moment.
        unsafe {
            ptr::write_volatile(
                ptr::addr_of_mut!((*self.raw()).__sk_common.skc_prot),
                prot.cast_mut(),
            )
        };
    }

    /// `setsockopt` through `sk_prot` with a kernel buffer, as
    /// `sock_common_setsockopt` does. Process context, lock not held.
    pub(crate) fn setsockopt(&self, level: u32, name: u32, val: &mut [u8]) -> Result {
        crate::sys::rcu::might_sleep();
        let len = u32::try_from(val.len())?;
        // SAFETY: live sock; `val` is a kernel buffer of `len` bytes for the
        // duration of the call.
        let rc = unsafe {
            bindings::sk_setsockopt_kernel(
                self.raw(),
                level as i32,
                name as i32,
                val.as_mut_ptr().cast(),
                len,
            )
        };
        if rc < 0 {
            Err(Error::from_errno(rc))
        } else {
            Ok(())
        }
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

/// Install kTLS on a passive child before `accept()` has taken it (its
/// `sk_socket` is NULL; kTLS needs one): a private stand-in `struct socket`
/// is grafted while `install` runs, unless `accept()` grafted the real one
/// first (`Ok(None)`: nothing done, the caller leaves the install to
/// accept). On success returns the ops kTLS chose for the socket, for
/// `accept()` to put on the real socket. If `accept()` grafts the real
/// socket meanwhile, kTLS finishes on it (its ops are then the family's:
/// our accept sets them first) and the stand-in is simply dropped.
pub(crate) fn install_preaccept(
    sk: &Sock,
    base: *const bindings::proto_ops,
    install: impl FnOnce() -> Result,
) -> Result<Option<OpsPtr>> {
    crate::sys::rcu::might_sleep();
    let shadow = KBox::new(
        // SAFETY: all-zero is a valid `socket_alloc` (plain data and null
        // pointers), as `kzalloc` would give.
        unsafe { core::mem::zeroed::<bindings::socket_alloc>() },
        GFP_KERNEL,
    )?;
    let shadow = KBox::into_raw(shadow);
    let sh_sock = shadow.cast::<bindings::socket>();
    // SAFETY: ours; the socket is the first field of `socket_alloc`.
    unsafe {
        (*sh_sock).state = bindings::socket_state_SS_CONNECTED;
        (*sh_sock).type_ = bindings::sock_type_SOCK_STREAM as i16;
        (*sh_sock).sk = sk.as_ptr();
        (*sh_sock).ops = base;
    }
    // SAFETY: live sock; `sk_callback_lock` is what `sock_graft` takes, so
    // the NULL check and the graft are atomic with respect to accept.
    let grafted = unsafe {
        let lock = ptr::addr_of_mut!((*sk.as_ptr()).sk_callback_lock);
        bindings::write_lock_bh(lock);
        let free = (*sk.as_ptr()).sk_socket.is_null();
        if free {
            bindings::sk_set_socket(sk.as_ptr(), sh_sock);
        }
        bindings::write_unlock_bh(lock);
        free
    };
    if !grafted {
        // SAFETY: from `KBox::into_raw`; never published.
        drop(unsafe { KBox::from_raw(shadow) });
        return Ok(None);
    }
    let res = install();
    // SAFETY: as above; ungraft only if accept has not replaced us.
    let ops = unsafe {
        let lock = ptr::addr_of_mut!((*sk.as_ptr()).sk_callback_lock);
        bindings::write_lock_bh(lock);
        if ptr::eq((*sk.as_ptr()).sk_socket, sh_sock) {
            bindings::sk_set_socket(sk.as_ptr(), ptr::null_mut());
        }
        bindings::write_unlock_bh(lock);
        (*sh_sock).ops
    };
    // SAFETY: from `KBox::into_raw`; no longer grafted (or replaced).
    drop(unsafe { KBox::from_raw(shadow) });
    res.map(|()| Some(OpsPtr(ops)))
}

/// A socket ops table kTLS chose (a static table in tls.ko, which cannot
/// be unloaded while a socket uses it).
#[derive(Clone, Copy)]
pub(crate) struct OpsPtr(*const bindings::proto_ops);

// SAFETY: a pointer to an immutable static table.
unsafe impl Send for OpsPtr {}

impl Socket {
    /// Put kTLS's ops (from [`install_preaccept`]) on an accepted socket
    /// that no app thread can reach yet, as kTLS would have: its ops, and
    /// no `SOCK_SUPPORT_ZC`.
    pub(crate) fn set_tls_ops(&self, ops: OpsPtr) {
        // SAFETY: live socket; the flags word is updated atomically.
        unsafe {
            let word =
                ptr::addr_of_mut!((*self.as_ptr()).flags).cast::<core::sync::atomic::AtomicUsize>();
            (*word).fetch_and(
                !(1usize << bindings::SOCK_SUPPORT_ZC),
                core::sync::atomic::Ordering::SeqCst,
            );
        }
        self.set_ops(ops.0);
    }
}

/// Run `install` on `sk` while a private stand-in `struct socket` is grafted
/// in place of `real`: kTLS rewrites `sk->sk_socket->ops` while it installs,
/// so app threads keep seeing `real`'s ops (the gate) until TX and RX are
/// both in. On success the stand-in's final ops (kTLS's) are copied into
/// `real`, `SOCK_SUPPORT_ZC` follows the stand-in, and waiters are woken.
/// `base` is the ops kTLS must see as the socket's own (the family's stream
/// ops). Process context; no socket lock held.
pub(crate) fn install_shadowed(
    sk: &Sock,
    real: &Socket,
    base: *const bindings::proto_ops,
    install: impl FnOnce() -> Result,
) -> Result {
    crate::sys::rcu::might_sleep();
    let shadow = KBox::new(
        // SAFETY: all-zero is a valid `socket_alloc` (plain data and null
        // pointers), as the kernel's `kzalloc` of one would be.
        unsafe { core::mem::zeroed::<bindings::socket_alloc>() },
        GFP_KERNEL,
    )?;
    let shadow = KBox::into_raw(shadow);
    let sh_sock = shadow.cast::<bindings::socket>();
    // SAFETY: `shadow` is ours; `real` is live (caller). `socket_alloc`
    // starts with the socket; inode fields are copied from the real one the
    // way `SOCK_INODE` finds it (the socket is the first field).
    unsafe {
        let r = real.as_ptr();
        (*sh_sock).state = (*r).state;
        (*sh_sock).type_ = (*r).type_;
        (*sh_sock).flags = (*r).flags;
        (*sh_sock).file = (*r).file;
        (*sh_sock).sk = sk.as_ptr();
        (*sh_sock).ops = base;
        let real_alloc = r.cast::<bindings::socket_alloc>();
        (*shadow).vfs_inode.i_ino = (*real_alloc).vfs_inode.i_ino;
        (*shadow).vfs_inode.i_uid = (*real_alloc).vfs_inode.i_uid;
    }
    let graft = |to: *mut bindings::socket| {
        // SAFETY: live sock; `sk_callback_lock` is what `sock_graft` takes.
        unsafe {
            let lock = ptr::addr_of_mut!((*sk.as_ptr()).sk_callback_lock);
            bindings::write_lock_bh(lock);
            bindings::sk_set_socket(sk.as_ptr(), to);
            bindings::write_unlock_bh(lock);
        }
    };
    graft(sh_sock);
    let res = install();
    graft(real.as_ptr());
    if res.is_ok() {
        // SAFETY: both sockets are live; bit ops on their flags words.
        unsafe {
            let zc = bindings::SOCK_SUPPORT_ZC;
            if ((*sh_sock).flags >> zc) & 1 == 0 {
                // `clear_bit`: the flags word is updated atomically elsewhere.
                let word = ptr::addr_of_mut!((*real.as_ptr()).flags)
                    .cast::<core::sync::atomic::AtomicUsize>();
                (*word).fetch_and(!(1usize << zc), core::sync::atomic::Ordering::SeqCst);
            }
            real.set_ops((*sh_sock).ops);
        }
        sk.wake();
    }
    // SAFETY: from `KBox::into_raw` above; no one refers to it any more
    // (the real socket is grafted back).
    drop(unsafe { KBox::from_raw(shadow) });
    res
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

impl SockLock<'_> {
    /// Attach the kTLS ULP (`tcp_set_ulp(sk, "tls")`, what `TCP_ULP` does)
    /// with this lock held.
    ///
    /// kTLS attaches only to ESTABLISHED sockets (`tls_init`). A socket
    /// whose peer already sent its data and FIN (CLOSE_WAIT: a client that
    /// writes and half-closes at once, faster than the keys) carries
    /// records both ways just as well — kTLS's RX reads the queued records
    /// and then EOF, TX sends — so for the duration of the call it is shown
    /// to kTLS as ESTABLISHED. Nothing else can act on the state meanwhile:
    /// the lock is owned, so segments go to the backlog and TCP's timers
    /// back off; a lockless reader (`ss`, a poll of the gated socket) may
    /// see ESTABLISHED for that moment.
    pub(crate) fn set_ulp_tls(&self) -> Result {
        let sk = self.0.raw();
        let shown = self.0.state() == tcp_state::CLOSE_WAIT;
        // SAFETY: the socket lock is owned (self), so the stack does not
        // change the state under us; the byte is restored below before the
        // lock is released.
        let state = unsafe { ptr::addr_of_mut!((*sk).__sk_common.skc_state) };
        if shown {
            // SAFETY: see above; a byte store, as `inet_sk_state_store` does.
            unsafe { ptr::write_volatile(state, tcp_state::ESTABLISHED as u8) };
        }
        // SAFETY: live TCP sock with its lock owned (`tcp_set_ulp` asserts
        // `sock_owned_by_me`); a constant NUL-terminated ULP name.
        let rc = unsafe { bindings::tcp_set_ulp(sk, c_str!("tls").as_char_ptr()) };
        if shown {
            // SAFETY: as above.
            unsafe { ptr::write_volatile(state, tcp_state::CLOSE_WAIT as u8) };
        }
        if rc < 0 {
            return Err(Error::from_errno(rc));
        }
        Ok(())
    }
}

impl Drop for SockLock<'_> {
    fn drop(&mut self) {
        // SAFETY: taken in `Sock::lock`.
        unsafe { bindings::release_sock(self.0.raw()) };
    }
}

/// The app's socket of a flow, as a pointer whose validity the datapath's
/// flow lock guarantees (the gate's `release` clears it under that lock
/// before the socket goes away).
#[derive(Clone, Copy)]
pub(crate) struct SocketPtr(ptr::NonNull<bindings::socket>);

// SAFETY: a plain pointer; dereferenced only under the flow lock (see the
// type's doc).
unsafe impl Send for SocketPtr {}

impl SocketPtr {
    pub(crate) fn new(s: &Socket) -> Self {
        Self(ptr::NonNull::from(&s.0).cast())
    }

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

    pub(crate) fn is(self, s: &Socket) -> bool {
        ptr::eq(self.0.as_ptr(), s.as_ptr())
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
    // SAFETY: process context (checked).
    unsafe { bindings::synchronize_rcu_tasks() };
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

pub(crate) fn is_poison(p: *const bindings::proto) -> bool {
    ptr::eq(p, poison_prot(false)) || ptr::eq(p, poison_prot(true))
}
