// SPDX-License-Identifier: GPL-2.0
//! The wire guard's attachment: an `NF_INET_LOCAL_OUT` netfilter hook for
//! IPv4 and IPv6 in every network namespace (a pernet subsystem registers it
//! in the namespaces that exist and in each new one), and the view of an
//! outgoing TCP segment the guard needs (its sock, sequence number, payload
//! length, payload bytes).
//!
//! C headers: [include/linux/netfilter.h](srctree/include/linux/netfilter.h),
//! [include/net/net_namespace.h](srctree/include/net/net_namespace.h)
//!
//! The hook runs for every locally generated packet, in process or softirq
//! context, inside an RCU read section, before the packet reaches a device
//! (datapath design, Part 2 §2.4). It must not sleep; it reads the packet,
//! never changes it. `nf_unregister_net_hooks` waits for running hooks
//! (`synchronize_net`), so after [`LocalOutHooks`] is dropped no call is
//! left inside module text.

use crate::sys::sock::Sock;
use kernel::{bindings, prelude::*, types::Opaque};

/// Who judges the segments (the datapath's wire guard, registered in
/// [`LocalOutHooks::register`]; this file never names it).
pub(crate) trait SegmentGuard: 'static {
    /// The verdict on an outgoing TCP payload segment of `sk`. Any
    /// context, preemption may be off, inside an RCU read section.
    fn check(sk: &Sock, seg: &Segment) -> Verdict;
}

/// What the guard decided for a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    Drop,
}

/// An outgoing TCP segment with payload, borrowed for the hook call.
///
/// # Invariants
///
/// `skb` is the packet the hook was called with (alive for the call); it is
/// a TCP segment of a full socket whose payload starts at `payload_off`
/// and is `len` bytes long (both within `skb->len`).
pub(crate) struct Segment {
    skb: *const bindings::sk_buff,
    payload_off: u32,
    /// Sequence number of the first payload byte.
    pub(crate) seq: u32,
    /// Payload bytes.
    pub(crate) len: u32,
}

impl Segment {
    /// Copy payload bytes `[off, off + buf.len())` into `buf`.
    pub(crate) fn copy(&self, off: u32, buf: &mut [u8]) -> Result {
        let end = off.checked_add(buf.len() as u32).ok_or(EINVAL)?;
        if end > self.len {
            return Err(EINVAL);
        }
        let at = self.payload_off.checked_add(off).ok_or(EINVAL)?;
        let at = i32::try_from(at).map_err(|_| EINVAL)?;
        let n = i32::try_from(buf.len()).map_err(|_| EINVAL)?;
        // SAFETY: live skb (invariant); `at + n` lies within the payload,
        // hence within `skb->len` (checked above); `buf` has `n` bytes.
        let rc = unsafe { bindings::skb_copy_bits(self.skb, at, buf.as_mut_ptr().cast(), n) };
        if rc < 0 {
            return Err(Error::from_errno(rc));
        }
        Ok(())
    }
}

/// `TCPHDR` facts: bytes 4..8 are the sequence number, the high nibble of
/// byte 12 the header length in 32-bit words.
const TCP_SEQ_OFF: usize = 4;
const TCP_DOFF_OFF: usize = 12;

/// The hook (`nf_hookfn`).
///
/// # Safety
///
/// Called by netfilter with a live skb and hook state.
unsafe extern "C" fn local_out<G: SegmentGuard>(
    _priv: *mut core::ffi::c_void,
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> u32 {
    // SAFETY: netfilter passes a live skb and state (caller).
    match unsafe { segment(skb, state) } {
        Some((sk, seg)) => match G::check(sk, &seg) {
            Verdict::Accept => bindings::NF_ACCEPT,
            Verdict::Drop => bindings::NF_DROP,
        },
        None => bindings::NF_ACCEPT,
    }
}

/// The sock and payload of a TCP segment with payload from a full socket;
/// `None` for anything else.
///
/// # Safety
///
/// `skb` and `state` are the live arguments of a LOCAL_OUT hook call.
unsafe fn segment<'a>(
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> Option<(&'a Sock, Segment)> {
    // SAFETY: live state (caller).
    let sk = unsafe { (*state).sk };
    if sk.is_null() {
        return None;
    }
    // SAFETY: the sock sent the packet and is kept alive by it for the
    // call; `sk_fullsock` only reads the common header every kind of sock
    // has (request and timewait socks are smaller: checked first).
    if !unsafe { bindings::sk_fullsock(sk) } {
        return None;
    }
    // SAFETY: a live full sock (checked above) for the hook call.
    let sock = unsafe { Sock::from_raw(sk) };
    if !sock.is_tcp_stream() {
        return None;
    }
    // SAFETY: live skb; TCP set its transport header before handing it to
    // IP (`tcp_transmit_skb`).
    let (toff, len) = unsafe { (bindings::skb_transport_offset(skb), (*skb).len) };
    let toff = u32::try_from(toff).ok()?;
    let mut th = [0u8; 20];
    let seg = Segment {
        skb,
        payload_off: toff,
        seq: 0,
        len: len.checked_sub(toff)?,
    };
    seg.copy(0, &mut th).ok()?;
    let doff = u32::from(th[TCP_DOFF_OFF] >> 4) * 4;
    let plen = seg.len.checked_sub(doff)?;
    if plen == 0 {
        return None;
    }
    let seq = u32::from_be_bytes([
        th[TCP_SEQ_OFF],
        th[TCP_SEQ_OFF + 1],
        th[TCP_SEQ_OFF + 2],
        th[TCP_SEQ_OFF + 3],
    ]);
    Some((
        sock,
        Segment {
            skb,
            payload_off: toff + doff,
            seq,
            len: plen,
        },
    ))
}

/// One LOCAL_OUT hook per family; the same (read-only) table is registered
/// in every namespace, as `nf_defrag_ipv4` does.
struct HookOps([bindings::nf_hook_ops; 2]);

// SAFETY: the table is never written after construction; netfilter only
// reads it (`const struct nf_hook_ops *`).
unsafe impl Sync for HookOps {}

const fn hook_ops<G: SegmentGuard>(pf: u32) -> bindings::nf_hook_ops {
    // SAFETY: all-zero is a valid `nf_hook_ops` (null pointers, no device,
    // `NF_HOOK_OP_UNDEFINED`).
    let mut o: bindings::nf_hook_ops = unsafe { core::mem::zeroed() };
    o.hook = Some(local_out::<G>);
    o.pf = pf as u8;
    o.hooknum = bindings::nf_inet_hooks_NF_INET_LOCAL_OUT;
    // Last: the guard sees the segment as it leaves (after any mangling).
    o.priority = i32::MAX;
    o
}

/// The tables for guard `G` (one static per guard type, built at compile
/// time).
struct Tables<G>(core::marker::PhantomData<G>);

impl<G: SegmentGuard> Tables<G> {
    const HOOKS: HookOps = HookOps([
        hook_ops::<G>(bindings::NFPROTO_IPV4),
        hook_ops::<G>(bindings::NFPROTO_IPV6),
    ]);
    const STATIC: &'static HookOps = &Self::HOOKS;
}

/// Pernet `init`: the hooks in namespace `net`.
///
/// # Safety
///
/// Called by the pernet machinery with a live namespace.
unsafe extern "C" fn net_init<G: SegmentGuard>(net: *mut bindings::net) -> i32 {
    let hooks = &Tables::<G>::STATIC.0;
    // SAFETY: live namespace (caller); the table is static.
    unsafe { bindings::nf_register_net_hooks(net, hooks.as_ptr(), hooks.len() as u32) }
}

/// Pernet `exit`: the namespace goes, or the subsystem is unregistered.
///
/// # Safety
///
/// Called by the pernet machinery with a namespace `net_init` succeeded on.
unsafe extern "C" fn net_exit<G: SegmentGuard>(net: *mut bindings::net) {
    let hooks = &Tables::<G>::STATIC.0;
    // SAFETY: registered by `net_init` in this namespace; waits for
    // running hooks.
    unsafe { bindings::nf_unregister_net_hooks(net, hooks.as_ptr(), hooks.len() as u32) }
}

/// The hooks, registered in every namespace while this lives.
///
/// # Invariants
///
/// `ops` is registered with the pernet machinery (which links it into its
/// list: it must not move, hence the box) until `drop`.
pub(crate) struct LocalOutHooks {
    ops: KBox<Opaque<bindings::pernet_operations>>,
}

// SAFETY: after registration the kernel owns the table's list linkage
// (under its pernet lock); this type only passes the pointer back to
// `unregister_pernet_subsys`, from any thread.
unsafe impl Send for LocalOutHooks {}
// SAFETY: no method reads or writes the table through `&self`.
unsafe impl Sync for LocalOutHooks {}

impl LocalOutHooks {
    /// Register (process context). Calls `net_init` for every namespace.
    pub(crate) fn register<G: SegmentGuard>() -> Result<Self> {
        let ops = KBox::new(
            Opaque::new(bindings::pernet_operations {
                init: Some(net_init::<G>),
                exit: Some(net_exit::<G>),
                ..Default::default()
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: a valid `pernet_operations` at a stable address that stays
        // registered until `drop` unregisters it.
        let rc = unsafe { bindings::register_pernet_subsys(ops.get()) };
        if rc < 0 {
            return Err(Error::from_errno(rc));
        }
        Ok(Self { ops })
    }
}

impl Drop for LocalOutHooks {
    fn drop(&mut self) {
        crate::sys::rcu::might_sleep();
        // SAFETY: registered in `register` (invariant); calls `net_exit` for
        // every namespace, which waits for running hooks.
        unsafe { bindings::unregister_pernet_subsys(self.ops.get()) };
    }
}
