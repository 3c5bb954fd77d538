// SPDX-License-Identifier: GPL-2.0
//! The gate's C face: module-owned clones of `inet_stream_ops` /
//! `inet6_stream_ops` stored in `sock->ops` of sockets the datapath holds,
//! and the `extern "C"` trampolines that turn the kernel's calls into calls
//! of a [`GatePolicy`] (the datapath's, registered in [`init`]).
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
//! Every table is owned by this module (`owner`), and the module holds one
//! reference for each socket carrying one of them, the kernel's contract
//! for `sock->ops` (review M2): `do_accept` takes one for the new socket
//! before it may sleep and call our `accept`, and `__sock_release` drops
//! the socket's after our `release` returned. So `rmmod` fails with
//! `EWOULDBLOCK` ("in use") while any socket is gated, and no call can
//! reach freed text. The references are taken and dropped only here:
//! [`gate_on`] (family ops → ours), [`gate_off`] (ours → anything else, under
//! the socket lock), and `listen_accept` for the socket `do_accept` made.
//! A socket being released (its file's count is zero) keeps our table:
//! `__sock_release` may already have loaded it and drops the reference
//! itself. A call that goes on into the next ops (kTLS's, which may block
//! for as long as the peer is silent) holds a reference of its own while
//! it is there ([`ModRef`]), so module text is never left on the stack of
//! a sleeping thread without one.
//!
//! The tables are written once in [`init`], before the hook that installs
//! them is registered, and never again.

use crate::sys::sock::{Sock, Socket};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr;
use kernel::{bindings, prelude::*};

/// What the gate asks of its user (the datapath registers an
/// implementation in [`init`]; this file never names it, so `sys/` stays
/// mechanism only). All calls come from process context.
pub(crate) trait GatePolicy: 'static {
    /// Let a data call through (`Ok`: the socket's ops are final, no longer
    /// ours) or say why not; may block as the caller allows.
    fn enter(s: &Socket, send: bool, nonblock: bool) -> Result;
    /// Whether poll may report readiness as is.
    fn poll_ready(s: &Socket) -> bool;
    /// A gated listener accepted `n` (no fd yet, the family's ops on it):
    /// the final ops go on, or an error fails the `accept`. `Ok(true)`:
    /// our stream gate went on `n`, which keeps the module reference
    /// `do_accept` took for it (whoever takes the gate off drops it, maybe
    /// before this call's caller looks at `n` again).
    fn accepted(n: &Socket, v6: bool) -> Result<bool>;
    /// Unload or drain under way: blocked accepts give up.
    fn draining() -> bool;
}

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

// Without lockdep (the benchmark kernel) `struct lockdep_map`, inside
// `struct proto` and `struct proto_ops`, has no fields, which rustc calls
// FFI-unsafe; only pointers to these kernel-owned structs cross here.
#[allow(improper_ctypes)]
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
pub(crate) fn init<P: GatePolicy>() {
    for v6 in [false, true] {
        // SAFETY: the base tables are exported, immutable statics; our cells
        // have no readers yet (see `OpsCell`'s Sync).
        unsafe {
            let mut s: bindings::proto_ops = ptr::read(base_ops(v6));
            s.owner = this_module();
            s.sendmsg = Some(gate_sendmsg::<P>);
            s.recvmsg = Some(gate_recvmsg::<P>);
            s.splice_read = Some(gate_splice_read::<P>);
            s.splice_eof = Some(gate_splice_eof::<P>);
            s.shutdown = Some(gate_shutdown::<P>);
            s.poll = Some(gate_poll::<P>);
            s.mmap = Some(gate_mmap::<P>);
            s.setsockopt = Some(gate_setsockopt::<P>);
            s.getsockopt = Some(gate_getsockopt::<P>);
            s.release = Some(gate_release);
            ptr::write(STREAM_GATE[idx(v6)].0.get().cast(), s);

            let mut l: bindings::proto_ops = ptr::read(base_ops(v6));
            l.owner = this_module();
            l.accept = Some(listen_accept::<P>);
            l.setsockopt = Some(listen_setsockopt);
            l.release = Some(gate_release);
            ptr::write(LISTEN_GATE[idx(v6)].0.get().cast(), l);
        }
    }
}

fn this_module() -> *mut bindings::module {
    crate::THIS_MODULE.as_ptr()
}

/// Take a module reference unless the module is going away.
pub(crate) fn module_try_get() -> bool {
    // SAFETY: our own, live module (we are running its code).
    unsafe { bindings::try_module_get(this_module()) }
}

/// Drop a module reference taken by [`module_try_get`] (or by the kernel
/// for one of our tables). The caller's remaining instructions are covered
/// by the RCU Tasks wait in module exit (they contain no voluntary sleep).
pub(crate) fn module_put() {
    // SAFETY: the caller owns one reference.
    unsafe { bindings::module_put(this_module()) };
}

/// References on this module right now, all holders (the kernel's count:
/// after `rmmod` passed its check it is `-1` with no holder left,
/// `kernel/module/main.c` `try_release_module_ref`, `module_refcount`).
pub(crate) fn module_refs() -> i32 {
    // SAFETY: our own module.
    unsafe { bindings::module_refcount(this_module()) }
}

/// A module reference for the duration of a call into other ops.
pub(crate) struct ModRef(());

impl ModRef {
    pub(crate) fn try_get() -> Option<Self> {
        module_try_get().then_some(ModRef(()))
    }
}

impl Drop for ModRef {
    fn drop(&mut self) {
        module_put();
    }
}

/// Whether `ops` is one of our tables.
pub(crate) fn is_ours(ops: *const bindings::proto_ops) -> bool {
    is_stream_gate(ops) || is_listen_gate(ops)
}

/// Put our table `gate` on `s`, whose ops are `from` (the family's), with
/// the socket's module reference. `false`: the module is going away, or
/// the ops changed meanwhile: nothing was done. Under the socket lock.
pub(crate) fn gate_on(
    s: &Socket,
    from: *const bindings::proto_ops,
    gate: *const bindings::proto_ops,
) -> bool {
    if !module_try_get() {
        return false;
    }
    if s.swap_ops(from, gate) {
        true
    } else {
        module_put();
        false
    }
}

/// Take our table off `s` in favour of `to` (not ours), dropping the
/// socket's module reference; if `s` carries other ops, `to` replaces them
/// only when `always`. A socket being released keeps our table (see the
/// file's doc). Returns whether `to` is now on the socket. Under the socket
/// lock, with the socket live (grafted on a locked sock, or the caller's).
pub(crate) fn gate_off(s: &Socket, to: *const bindings::proto_ops, always: bool) -> bool {
    let cur = s.ops();
    if !is_ours(cur) {
        if always {
            s.set_ops(to);
        }
        return always;
    }
    // The file pinned from the check to the swap: if its last `fput` came
    // in between, `__sock_release` could load our ops, and drop the
    // socket's module reference after we dropped it too (an underflow:
    // `rmmod` would then never pass, or pass while a socket is ours).
    let Some(pin) = s.pin_file() else {
        return false;
    };
    #[cfg(tlshub_test_knobs)]
    crate::sys::knobs::delay(&crate::sys::knobs::GATE_OFF_DELAY_MS);
    let swapped = s.swap_ops(cur, to);
    if swapped {
        module_put();
    }
    drop(pin);
    swapped
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

/// The gate opened during a call that would now block in kTLS (the peer
/// may stay silent for as long as it likes): a user task's system call is
/// started again from its entry instead (`restart_syscall`: nothing was
/// done yet, the gate let nothing through), and finds kTLS's ops there.
/// So no module text stays on the stack of a thread sleeping in kTLS, and
/// unload never waits for an idle secured flow (review M2). `None`: go on
/// inline (a non-blocking call, or a kernel thread or io_uring worker,
/// which have no system call to restart; they hold a [`ModRef`] while
/// inside the next ops).
fn reenter(sock: &Socket, nonblock: bool) -> Option<i32> {
    if nonblock || is_ours(sock.ops()) {
        return None;
    }
    // SAFETY: `current` is always valid in process context (the gate's
    // data calls are syscalls or kernel callers in process context).
    let flags = unsafe { (*bindings::get_current()).flags };
    if flags & (bindings::PF_KTHREAD | bindings::PF_IO_WORKER) != 0 {
        return None;
    }
    // SAFETY: no preconditions (sets TIF_SIGPENDING on the current task).
    Some(unsafe { bindings::restart_syscall() })
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_sendmsg<P: GatePolicy>(
    sock: *mut bindings::socket,
    msg: *mut bindings::msghdr,
    len: usize,
) -> i32 {
    let c = Inflight::enter();
    // SAFETY: live socket and message for the call (kernel).
    let (s, flags) = unsafe { (Socket::from_raw(sock), (*msg).msg_flags) };
    let nonblock = (flags & bindings::MSG_DONTWAIT) != 0 || s.file_nonblock();
    if let Err(e) = P::enter(s, true, nonblock) {
        return errno(e);
    }
    if let Some(rc) = reenter(s, nonblock) {
        return rc;
    }
    let Some(_m) = ModRef::try_get() else {
        return -(bindings::ECONNABORTED as i32);
    };
    // Past the gate: the module reference covers the call.
    drop(c);
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
unsafe extern "C" fn gate_recvmsg<P: GatePolicy>(
    sock: *mut bindings::socket,
    msg: *mut bindings::msghdr,
    len: usize,
    flags: i32,
) -> i32 {
    let c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let nonblock = (flags as u32 & bindings::MSG_DONTWAIT) != 0 || s.file_nonblock();
    if let Err(e) = P::enter(s, false, nonblock) {
        return errno(e);
    }
    if let Some(rc) = reenter(s, nonblock) {
        return rc;
    }
    let Some(_m) = ModRef::try_get() else {
        return -(bindings::ECONNABORTED as i32);
    };
    // Past the gate: the module reference covers the call.
    drop(c);
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
unsafe extern "C" fn gate_splice_read<P: GatePolicy>(
    sock: *mut bindings::socket,
    ppos: *mut bindings::loff_t,
    pipe: *mut bindings::pipe_inode_info,
    len: usize,
    flags: u32,
) -> isize {
    let c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let nonblock = (flags & SPLICE_F_NONBLOCK) != 0 || s.file_nonblock();
    if let Err(e) = P::enter(s, false, nonblock) {
        return errno(e) as isize;
    }
    if let Some(rc) = reenter(s, nonblock) {
        return rc as isize;
    }
    let Some(_m) = ModRef::try_get() else {
        return -(bindings::ECONNABORTED as isize);
    };
    // Past the gate: the module reference covers the call.
    drop(c);
    match next_ops(s).map(|o| o.splice_read) {
        // SAFETY: dispatching the kernel's own call.
        Ok(Some(f)) => unsafe { f(sock, ppos, pipe, len, flags) },
        Ok(None) => -(bindings::EOPNOTSUPP as isize),
        Err(e) => errno(e) as isize,
    }
}

/// `shutdown(SHUT_WR)` (or `SHUT_RDWR`) while the keys are pending would
/// queue a FIN in the plain stream: kTLS could then no longer go on (the
/// install requires nothing queued) and the flow would be reset (review
/// L9). The keys go in first, as for a send (waiting up to `SO_SNDTIMEO`;
/// `shutdown` has no non-blocking form); `SHUT_RD` sends nothing and goes
/// through at once.
///
/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_shutdown<P: GatePolicy>(sock: *mut bindings::socket, how: i32) -> i32 {
    let c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    // `how` is SHUT_RD (0), SHUT_WR (1) or SHUT_RDWR (2), as the syscall
    // passed it (`inet_shutdown` adds one to make it a mask).
    let sends_fin = how == 1 || how == 2;
    let v6 = s.sk().is_some_and(|sk| sk.is_v6());
    let ops = if sends_fin {
        if let Err(e) = P::enter(s, true, false) {
            return errno(e);
        }
        match next_ops(s) {
            Ok(o) => o as *const bindings::proto_ops,
            Err(e) => return errno(e),
        }
    } else {
        // Still ours, or kTLS's by now: the family's shutdown is also
        // what kTLS's tables carry.
        base_ops(v6)
    };
    let Some(_m) = ModRef::try_get() else {
        return -(bindings::ECONNABORTED as i32);
    };
    drop(c);
    // SAFETY: a static ops table (the family's or kTLS's); dispatching the
    // kernel's own call.
    match unsafe { (*ops).shutdown } {
        // SAFETY: as above.
        Some(f) => unsafe { f(sock, how) },
        None => -(bindings::EOPNOTSUPP as i32),
    }
}

/// # Safety
///
/// Called by the kernel with a live socket carrying our stream gate.
unsafe extern "C" fn gate_splice_eof<P: GatePolicy>(sock: *mut bindings::socket) {
    let _c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if P::enter(s, true, true).is_err() {
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
unsafe extern "C" fn gate_poll<P: GatePolicy>(
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
    if P::poll_ready(s) {
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
unsafe extern "C" fn gate_mmap<P: GatePolicy>(
    file: *mut bindings::file,
    sock: *mut bindings::socket,
    vma: *mut bindings::vm_area_struct,
) -> i32 {
    let c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if let Err(e) = P::enter(s, false, s.file_nonblock()) {
        return errno(e);
    }
    let Some(_m) = ModRef::try_get() else {
        return -(bindings::ECONNABORTED as i32);
    };
    // Past the gate: the module reference covers the call.
    drop(c);
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
unsafe extern "C" fn gate_setsockopt<P: GatePolicy>(
    sock: *mut bindings::socket,
    level: i32,
    name: i32,
    val: bindings::sockptr_t,
    len: u32,
) -> i32 {
    let c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if needs_install(level, name) {
        if let Err(e) = P::enter(s, true, s.file_nonblock()) {
            return errno(e);
        }
        let Some(_m) = ModRef::try_get() else {
            return -(bindings::ECONNABORTED as i32);
        };
        // Past the gate: the module reference covers the call.
        drop(c);
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
unsafe extern "C" fn gate_getsockopt<P: GatePolicy>(
    sock: *mut bindings::socket,
    level: i32,
    name: i32,
    val: *mut kernel::ffi::c_char,
    len: *mut i32,
) -> i32 {
    let c = Inflight::enter();
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    if needs_install(level, name) {
        if let Err(e) = P::enter(s, false, s.file_nonblock()) {
            return errno(e);
        }
        let Some(_m) = ModRef::try_get() else {
            return -(bindings::ECONNABORTED as i32);
        };
        // Past the gate: the module reference covers the call.
        drop(c);
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
    // Not counted in `INFLIGHT`: the socket's module reference, which
    // `__sock_release` drops only after this returns, covers the call
    // (a lingering close may block here for its linger time).
    // SAFETY: live socket (kernel).
    let s = unsafe { Socket::from_raw(sock) };
    let v6 = s.sk().is_some_and(|sk| sk.is_v6());
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
fn wait_for_child<P: GatePolicy>(listener: &Sock, timeo: isize) -> isize {
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
        let left = if empty && !P::draining() {
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
unsafe extern "C" fn listen_accept<P: GatePolicy>(
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
    // `do_accept` gave the new socket the listener's (our) ops; it is
    // nobody's but ours until we return (no fd yet).
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
        if P::draining() {
            break -(bindings::ECONNABORTED as i32);
        }
        if timeo == 0 {
            break -(bindings::EAGAIN as i32);
        }
        if kernel::current!().signal_pending() {
            // SAFETY: no preconditions.
            break unsafe { bindings::sock_intr_errno(timeo) };
        }
        timeo = wait_for_child::<P>(lsk, timeo);
    };
    // Until the fd exists no app thread can reach the child, so the
    // datapath decides (kTLS's ops, the family's, or — for a flow still
    // waiting for keys — the stream gate, under its flow lock).
    n.set_ops(base_ops(v6));
    let (rc, gated) = if err != 0 {
        (err, false)
    } else {
        match P::accepted(n, v6) {
            Ok(gated) => (0, gated),
            Err(e) => (errno(e), false),
        }
    };
    #[cfg(tlshub_test_knobs)]
    crate::sys::knobs::sleep(&crate::sys::knobs::ACCEPT_DELAY_MS);
    // `do_accept` took a module reference for `n` with our listen gate on
    // it; the new socket keeps it only if it left with our stream gate.
    // Decided by what `accepted` did, not by looking at `n` again: from the
    // moment the gate is on, a worker may install kTLS on `n` and take the
    // gate off, dropping that very reference (twice dropped, the count
    // underflows and `rmmod` hits the kernel's BUG_ON; VM test 53).
    if !gated {
        module_put();
    }
    rc
}
