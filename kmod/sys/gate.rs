// SPDX-License-Identifier: GPL-2.0
//! The gate's C face: module-owned clones of `inet_stream_ops` /
//! `inet6_stream_ops` stored in `sock->ops` of sockets the datapath holds,
//! and the `extern "C"` trampolines that turn the kernel's calls into calls
//! of safe functions in `crate::datapath::gate`.
//!
//! C header: [include/linux/net.h](srctree/include/linux/net.h)
//!
//! Why `sock->ops` and not `sk->sk_prot`: every syscall data path (send,
//! recv, splice, poll, mmap, set/getsockopt, accept) enters through
//! `READ_ONCE(sock->ops)`, and kTLS/sockmap snapshot `sk_prot` into global
//! tables (datapath design, Part 2 §2). Two tables per family:
//! - **stream gate**, on a connected socket whose keys are not in yet: data
//!   paths park or get `EAGAIN`, poll masks readiness;
//! - **listen gate**, on a listener that may accept secured flows: its
//!   `accept` installs kTLS on the child before the fd exists.
//!
//! Every table keeps `owner = NULL` like the built-in ops it copies: module
//! lifetime is the datapath's (it restores every socket's ops before the
//! module goes), not the socket's.
//!
//! The tables are written once in [`init`], before the hook that installs
//! them is registered, and never again.

use crate::datapath::gate as dp;
use crate::sys::sock::{Sock, Socket};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr;
use kernel::{bindings, prelude::*};

/// One `proto_ops` table in static storage.
struct OpsCell(UnsafeCell<MaybeUninit<bindings::proto_ops>>);

// SAFETY: written only by `init` before any reader can exist (the tables are
// published by the hook, registered after `init`); read-only afterwards.
unsafe impl Sync for OpsCell {}

impl OpsCell {
    const fn new() -> Self {
        Self(UnsafeCell::new(MaybeUninit::zeroed()))
    }

    fn get(&self) -> *const bindings::proto_ops {
        self.0.get().cast()
    }
}

static STREAM_GATE: [OpsCell; 2] = [OpsCell::new(), OpsCell::new()];
static LISTEN_GATE: [OpsCell; 2] = [OpsCell::new(), OpsCell::new()];

fn idx(v6: bool) -> usize {
    usize::from(v6)
}

/// `SPLICE_F_NONBLOCK` (`include/linux/splice.h`, not in the bindings).
const SPLICE_F_NONBLOCK: u32 = 0x02;

/// The family's own stream ops (what kTLS must see as the base).
pub(crate) fn base_ops(v6: bool) -> *const bindings::proto_ops {
    if v6 {
        ptr::addr_of!(bindings::inet6_stream_ops)
    } else {
        ptr::addr_of!(bindings::inet_stream_ops)
    }
}

extern "C" {
    /// `net/ipv6/tcp_ipv6.c`, `EXPORT_SYMBOL_GPL` (declared in
    /// `net/transp_v6.h`, which the bindings do not include).
    static tcpv6_prot: bindings::proto;
}

/// The family's own TCP proto (`tcp_prot` / `tcpv6_prot`).
pub(crate) fn base_prot(v6: bool) -> *const bindings::proto {
    if v6 {
        ptr::addr_of!(tcpv6_prot)
    } else {
        ptr::addr_of!(bindings::tcp_prot)
    }
}

pub(crate) fn stream_gate(v6: bool) -> *const bindings::proto_ops {
    STREAM_GATE[idx(v6)].get()
}

pub(crate) fn listen_gate(v6: bool) -> *const bindings::proto_ops {
    LISTEN_GATE[idx(v6)].get()
}

/// Which table `ops` is, if it is one of ours.
pub(crate) fn is_stream_gate(ops: *const bindings::proto_ops) -> bool {
    ptr::eq(ops, stream_gate(false)) || ptr::eq(ops, stream_gate(true))
}

pub(crate) fn is_listen_gate(ops: *const bindings::proto_ops) -> bool {
    ptr::eq(ops, listen_gate(false)) || ptr::eq(ops, listen_gate(true))
}

/// Fill the tables. Call once, before the hook is registered.
pub(crate) fn init() {
    for v6 in [false, true] {
        // SAFETY: the base tables are exported, immutable statics; our cells
        // have no readers yet (see `OpsCell`'s Sync).
        unsafe {
            let mut s: bindings::proto_ops = ptr::read(base_ops(v6));
            s.owner = ptr::null_mut();
            s.sendmsg = Some(gate_sendmsg);
            s.recvmsg = Some(gate_recvmsg);
            s.splice_read = Some(gate_splice_read);
            s.splice_eof = Some(gate_splice_eof);
            s.poll = Some(gate_poll);
            s.mmap = Some(gate_mmap);
            s.setsockopt = Some(gate_setsockopt);
            s.getsockopt = Some(gate_getsockopt);
            s.release = Some(gate_release);
            ptr::write(STREAM_GATE[idx(v6)].0.get().cast(), s);

            let mut l: bindings::proto_ops = ptr::read(base_ops(v6));
            l.owner = ptr::null_mut();
            l.accept = Some(listen_accept);
            l.setsockopt = Some(listen_setsockopt);
            l.release = Some(gate_release);
            ptr::write(LISTEN_GATE[idx(v6)].0.get().cast(), l);
        }
    }
}

/// Calls currently inside a trampoline (module unload waits for zero).
static INFLIGHT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

pub(crate) fn inflight() -> usize {
    INFLIGHT.load(core::sync::atomic::Ordering::Acquire)
}

/// Counts one call for its duration.
struct Inflight;

impl Inflight {
    fn enter() -> Self {
        INFLIGHT.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
        Inflight
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        INFLIGHT.fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
    }
}

/// The ops to dispatch to after the gate let a call through. Never one of
/// our stream gates (the datapath guarantees it on success; a bug would
/// otherwise recurse).
fn next_ops(sock: &Socket) -> Result<&'static bindings::proto_ops> {
    let ops = sock.ops();
    if ops.is_null() || is_stream_gate(ops) {
        return Err(EIO);
    }
    // SAFETY: `sock->ops` always points to a static ops table (kTLS's, the
    // family's, or ours), valid for the module's life.
    Ok(unsafe { &*ops })
}

fn errno(e: Error) -> i32 {
    e.to_errno()
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_sendmsg(
    sock: *mut bindings::socket,
    msg: *mut bindings::msghdr,
    len: usize,
) -> i32 {
    let _c = Inflight::enter();
    // SAFETY: live socket and message for the call (kernel).
    let (s, flags) = unsafe { (Socket::from_raw(sock), (*msg).msg_flags) };
    let nonblock = (flags & bindings::MSG_DONTWAIT) != 0 || s.file_nonblock();
    if let Err(e) = dp::enter(s, true, nonblock) {
        return errno(e);
    }
    match next_ops(s).map(|o| o.sendmsg) {
        // SAFETY: dispatching the kernel's own call to the socket's ops.
        Ok(Some(f)) => unsafe { f(sock, msg, len) },
        Ok(None) => -(bindings::EOPNOTSUPP as i32),
        Err(e) => errno(e),
    }
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_recvmsg(
    sock: *mut bindings::socket,
    msg: *mut bindings::msghdr,
    len: usize,
    flags: i32,
) -> i32 {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let nonblock = (flags as u32 & bindings::MSG_DONTWAIT) != 0 || s.file_nonblock();
    if let Err(e) = dp::enter(s, false, nonblock) {
        return errno(e);
    }
    match next_ops(s).map(|o| o.recvmsg) {
        // SAFETY: dispatching the kernel's own call.
        Ok(Some(f)) => unsafe { f(sock, msg, len, flags) },
        Ok(None) => -(bindings::EOPNOTSUPP as i32),
        Err(e) => errno(e),
    }
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_splice_read(
    sock: *mut bindings::socket,
    ppos: *mut bindings::loff_t,
    pipe: *mut bindings::pipe_inode_info,
    len: usize,
    flags: u32,
) -> isize {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let nonblock = (flags & SPLICE_F_NONBLOCK) != 0 || s.file_nonblock();
    if let Err(e) = dp::enter(s, false, nonblock) {
        return errno(e) as isize;
    }
    match next_ops(s).map(|o| o.splice_read) {
        // SAFETY: dispatching the kernel's own call.
        Ok(Some(f)) => unsafe { f(sock, ppos, pipe, len, flags) },
        Ok(None) => -(bindings::EOPNOTSUPP as isize),
        Err(e) => errno(e) as isize,
    }
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_splice_eof(sock: *mut bindings::socket) {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if dp::enter(s, true, true).is_err() {
        return;
    }
    if let Ok(Some(f)) = next_ops(s).map(|o| o.splice_eof) {
        // SAFETY: dispatching the kernel's own call.
        unsafe { f(sock) };
    }
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_poll(
    file: *mut bindings::file,
    sock: *mut bindings::socket,
    wait: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let ops = s.ops();
    if !ops.is_null() && !is_stream_gate(ops) {
        // Installed meanwhile: kTLS's poll.
        // SAFETY: a static ops table (see `next_ops`).
        if let Some(f) = unsafe { (*ops).poll } {
            // SAFETY: dispatching the kernel's own call.
            return unsafe { f(file, sock, wait) };
        }
    }
    // Registers the waiter on the socket's queue; the install wakes it.
    // SAFETY: the kernel's arguments, passed on.
    let mask = unsafe { bindings::tcp_poll(file, sock, wait) };
    if dp::poll_ready(s) {
        return mask;
    }
    mask & !(bindings::EPOLLIN
        | bindings::EPOLLRDNORM
        | bindings::EPOLLOUT
        | bindings::EPOLLWRNORM
        | bindings::EPOLLWRBAND)
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_mmap(
    file: *mut bindings::file,
    sock: *mut bindings::socket,
    vma: *mut bindings::vm_area_struct,
) -> i32 {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if let Err(e) = dp::enter(s, false, s.file_nonblock()) {
        return errno(e);
    }
    match next_ops(s).map(|o| o.mmap) {
        // SAFETY: dispatching the kernel's own call.
        Ok(Some(f)) => unsafe { f(file, sock, vma) },
        Ok(None) => -(bindings::ENODEV as i32),
        Err(e) => errno(e),
    }
}

/// Options that would reach the raw TCP socket or change its ops: keys go
/// in first (then kTLS answers `EEXIST`/`EBUSY` itself).
fn needs_install(level: i32, name: i32) -> bool {
    let (level, name) = (level as u32, name as u32);
    (level == bindings::SOL_TCP
        && (name == bindings::TCP_ULP
            || name == bindings::TCP_REPAIR
            || name == bindings::TCP_REPAIR_QUEUE
            || name == bindings::TCP_QUEUE_SEQ
            || name == bindings::TCP_ZEROCOPY_RECEIVE))
        || level == bindings::SOL_TLS
        || (level == bindings::SOL_IPV6 && name == bindings::IPV6_ADDRFORM)
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_setsockopt(
    sock: *mut bindings::socket,
    level: i32,
    name: i32,
    val: bindings::sockptr_t,
    len: u32,
) -> i32 {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if needs_install(level, name) {
        if let Err(e) = dp::enter(s, true, s.file_nonblock()) {
            return errno(e);
        }
        return match next_ops(s).map(|o| o.setsockopt) {
            // SAFETY: dispatching the kernel's own call.
            Ok(Some(f)) => unsafe { f(sock, level, name, val, len) },
            Ok(None) => -(bindings::EOPNOTSUPP as i32),
            Err(e) => errno(e),
        };
    }
    let is_v6 = s.sk().is_some_and(|sk| sk.is_v6());
    // SAFETY: the family's table is a static; dispatching the kernel's call.
    match unsafe { (*base_ops(is_v6)).setsockopt } {
        // SAFETY: as above.
        Some(f) => unsafe { f(sock, level, name, val, len) },
        None => -(bindings::EOPNOTSUPP as i32),
    }
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_getsockopt(
    sock: *mut bindings::socket,
    level: i32,
    name: i32,
    val: *mut kernel::ffi::c_char,
    len: *mut i32,
) -> i32 {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if needs_install(level, name) {
        if let Err(e) = dp::enter(s, false, s.file_nonblock()) {
            return errno(e);
        }
        return match next_ops(s).map(|o| o.getsockopt) {
            // SAFETY: dispatching the kernel's own call.
            Ok(Some(f)) => unsafe { f(sock, level, name, val, len) },
            Ok(None) => -(bindings::EOPNOTSUPP as i32),
            Err(e) => errno(e),
        };
    }
    let is_v6 = s.sk().is_some_and(|sk| sk.is_v6());
    // SAFETY: static table; dispatching the kernel's call.
    match unsafe { (*base_ops(is_v6)).getsockopt } {
        // SAFETY: as above.
        Some(f) => unsafe { f(sock, level, name, val, len) },
        None => -(bindings::EOPNOTSUPP as i32),
    }
}

/// # Safety
///
/// Called by the kernel from `__sock_release` on a socket carrying one of
/// our tables.
unsafe extern "C" fn gate_release(sock: *mut bindings::socket) -> i32 {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let v6 = s.sk().is_some_and(|sk| sk.is_v6());
    dp::release(s);
    // `inet(6)_release` is also what kTLS's tables carry.
    // SAFETY: the family's static table; dispatching the kernel's call.
    match unsafe { (*base_ops(v6)).release } {
        // SAFETY: as above.
        Some(f) => unsafe { f(sock) },
        None => 0,
    }
}

/// # Safety
///
/// Called by the kernel on a listener carrying our listen gate.
unsafe extern "C" fn listen_setsockopt(
    sock: *mut bindings::socket,
    level: i32,
    name: i32,
    val: bindings::sockptr_t,
    len: u32,
) -> i32 {
    let _c = Inflight::enter();
    // Server TCP Fast Open stays off on gated listeners (no SYN data from
    // pods on other nodes): accepted and ignored, as without cookies.
    if level as u32 == bindings::SOL_TCP && name as u32 == bindings::TCP_FASTOPEN {
        return 0;
    }
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let is_v6 = s.sk().is_some_and(|sk| sk.is_v6());
    // SAFETY: static table; dispatching the kernel's call.
    match unsafe { (*base_ops(is_v6)).setsockopt } {
        // SAFETY: as above.
        Some(f) => unsafe { f(sock, level, name, val, len) },
        None => -(bindings::EOPNOTSUPP as i32),
    }
}

/// Wait (interruptibly, up to `timeo` jiffies and at most half a second, so
/// a draining module is noticed) until `listener` has a child queued.
/// Returns the jiffies left.
fn wait_for_child(listener: &Sock, timeo: isize) -> isize {
    let mut w = MaybeUninit::<bindings::wait_queue_entry>::zeroed();
    let wq = listener.sleep_queue();
    // SAFETY: `w` lives on this stack frame until `finish_wait` removed it;
    // the queue is the listener's, live while the caller holds the socket.
    unsafe {
        bindings::init_wait_entry(w.as_mut_ptr(), 0);
        bindings::prepare_to_wait_exclusive(
            wq,
            w.as_mut_ptr(),
            bindings::TASK_INTERRUPTIBLE as i32,
        );
        let icsk = listener.as_ptr().cast::<bindings::inet_connection_sock>();
        let empty =
            ptr::read_volatile(ptr::addr_of!((*icsk).icsk_accept_queue.rskq_accept_head)).is_null();
        let left = if empty && !dp::draining() {
            let hz = bindings::CONFIG_HZ as isize;
            let slice = core::cmp::min(timeo, hz / 2);
            timeo - slice + bindings::schedule_timeout(slice)
        } else {
            timeo
        };
        bindings::finish_wait(wq, w.as_mut_ptr());
        left
    }
}

/// # Safety
///
/// Called by the kernel (`do_accept`) on a listener carrying our listen
/// gate, with `newsock` allocated but without an fd yet.
unsafe extern "C" fn listen_accept(
    sock: *mut bindings::socket,
    newsock: *mut bindings::socket,
    arg: *mut bindings::proto_accept_arg,
) -> i32 {
    let _c = Inflight::enter();
    // SAFETY: live sockets and argument (kernel).
    let (s, n) = unsafe { (Socket::from_raw(sock), Socket::from_raw(newsock)) };
    let Some(lsk) = s.sk() else {
        return -(bindings::EINVAL as i32);
    };
    let v6 = lsk.is_v6();
    // `do_accept` gave the new socket the listener's (our) ops. The child is
    // grafted onto it inside `inet_accept`, possibly while the worker is
    // installing kTLS on that child (pre-accept install): kTLS must then
    // find the family's ops there, never ours (it snapshots them into its
    // global tables). No app thread can reach the socket before we return.
    n.set_ops(base_ops(v6));
    // SAFETY: `arg` is the kernel's, live for the call.
    let caller_flags = unsafe { (*arg).flags };
    let blocking = caller_flags & bindings::O_NONBLOCK as i32 == 0;
    let mut timeo = lsk.timeo(false, !blocking);
    // Our own wait (not inet_accept's) so that a module unload is noticed
    // by threads blocked here.
    let err = loop {
        // SAFETY: `arg` is live; the accept itself never blocks.
        let err = unsafe {
            (*arg).flags = caller_flags | bindings::O_NONBLOCK as i32;
            let r = bindings::inet_accept(sock, newsock, arg);
            (*arg).flags = caller_flags;
            r
        };
        if err != -(bindings::EAGAIN as i32) || !blocking {
            break err;
        }
        if dp::draining() {
            break -(bindings::ECONNABORTED as i32);
        }
        if timeo == 0 {
            break -(bindings::EAGAIN as i32);
        }
        if kernel::current!().signal_pending() {
            // SAFETY: no preconditions.
            break unsafe { bindings::sock_intr_errno(timeo) };
        }
        timeo = wait_for_child(lsk, timeo);
    };
    // Until the fd exists no app thread can reach the child, so the
    // datapath decides (kTLS's ops, the family's, or — for a flow still
    // waiting for keys — the stream gate, under its flow lock).
    n.set_ops(base_ops(v6));
    if err != 0 {
        return err;
    }
    match dp::accepted(n, v6) {
        Ok(()) => 0,
        Err(e) => errno(e),
    }
}
