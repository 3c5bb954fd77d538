// SPDX-License-Identifier: GPL-2.0
//! The datapath's netfilter attachments, for IPv4 and IPv6 in every network
//! namespace (a pernet subsystem registers them in the namespaces that
//! exist and in each new one):
//! - `NF_INET_LOCAL_OUT`, last: the wire guard's view of an outgoing TCP
//!   segment (its sock, sequence number, payload length, payload bytes),
//!   and of a SYN-ACK a full socket sends (a passive TCP Fast Open child:
//!   the one moment it is seen before the app can accept it);
//! - `NF_INET_POST_ROUTING`, just after source NAT: the NAT translation
//!   conntrack made for the first packet of a TCP connection (the tuples
//!   before and after DNAT and SNAT), for the Service records.
//!
//! C headers: [include/linux/netfilter.h](srctree/include/linux/netfilter.h),
//! [include/net/net_namespace.h](srctree/include/net/net_namespace.h),
//! [include/net/netfilter/nf_conntrack.h](srctree/include/net/netfilter/nf_conntrack.h)
//! (through the `tlshub_ct_nat_tuples` helper of `kernel/patches/`)
//!
//! The hooks run for every packet leaving a namespace, in process or
//! softirq context, inside an RCU read section (datapath design, Part 2
//! §2.4, §7). They must not sleep; they read the packet, never change it
//! (what the datapath does to a sock is its business).
//! A packet without a conntrack entry costs the POSTROUTING hook one load
//! (`skb->_nfct`). `nf_unregister_net_hooks` waits for running hooks
//! (`synchronize_net`), so after [`NetfilterHooks`] is dropped no call is
//! left inside module text.

use crate::sys::sock::Sock;
use kernel::{bindings, prelude::*, types::Opaque};

/// Who judges the segments (the datapath's wire guard, registered in
/// [`NetfilterHooks::register`]; this file never names it).
pub(crate) trait SegmentGuard: 'static {
    /// The verdict on an outgoing TCP payload segment of `sk`. Any
    /// context, preemption may be off, inside an RCU read section.
    fn check(sk: &Sock, seg: &Segment) -> Verdict;

    /// `sk`, a full TCP socket, sends a SYN-ACK: a passive TCP Fast Open
    /// child (`tcp_conn_request` sends it before queueing the child for
    /// `accept`, or its retransmission timer) or a socket in simultaneous
    /// open. The sending context owns the sock (its lock or `bh_lock_sock`).
    /// Same context otherwise as [`Self::check`]; the packet goes out.
    fn syn_ack(sk: &Sock);
}

/// Who records NAT translations (the datapath's Service records; this
/// file never names them).
pub(crate) trait NatWatcher: 'static {
    /// Conntrack NATed the first packet of a TCP connection as `t` says.
    /// Any context, preemption may be off, inside an RCU read section.
    fn translated(t: &NatTuples);
}

/// A TCP connection's NAT translation: the tuple before NAT (`orig_*`) and
/// the tuple the reply direction carries (`reply_*`: its source is where
/// the connection really goes, its destination the address and port the
/// server sees the client as). Addresses are 16 bytes (IPv4 in the first
/// 4), ports in host byte order.
pub(crate) struct NatTuples {
    pub(crate) v6: bool,
    pub(crate) orig_src: [u8; 16],
    pub(crate) orig_sport: u16,
    pub(crate) orig_dst: [u8; 16],
    pub(crate) orig_dport: u16,
    pub(crate) reply_src: [u8; 16],
    pub(crate) reply_sport: u16,
    pub(crate) reply_dst: [u8; 16],
    pub(crate) reply_dport: u16,
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
/// byte 12 the header length in 32-bit words, byte 13 the flags.
const TCP_SEQ_OFF: usize = 4;
const TCP_DOFF_OFF: usize = 12;
const TCP_FLAGS_OFF: usize = 13;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

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
        Some(Outgoing::Payload(sk, seg)) => match G::check(sk, &seg) {
            Verdict::Accept => bindings::NF_ACCEPT,
            Verdict::Drop => bindings::NF_DROP,
        },
        Some(Outgoing::SynAck(sk)) => {
            G::syn_ack(sk);
            bindings::NF_ACCEPT
        }
        None => bindings::NF_ACCEPT,
    }
}

/// The POSTROUTING hook (`nf_hookfn`): always accepts.
///
/// # Safety
///
/// Called by netfilter with a live skb and hook state.
unsafe extern "C" fn post_routing<W: NatWatcher>(
    _priv: *mut core::ffi::c_void,
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> u32 {
    let mut addrs = [0u8; 64];
    let mut ports = [0u16; 4];
    // SAFETY: live skb (caller), whose conntrack entry (if any) it pins;
    // `addrs` has the 64 bytes and `ports` the 4 ports the helper writes.
    let natted =
        unsafe { bindings::tlshub_ct_nat_tuples(skb, addrs.as_mut_ptr(), ports.as_mut_ptr()) };
    if !natted {
        return bindings::NF_ACCEPT;
    }
    // SAFETY: live state (caller).
    let pf = u32::from(unsafe { (*state).pf });
    let a = |i: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&addrs[i * 16..i * 16 + 16]);
        b
    };
    W::translated(&NatTuples {
        v6: pf == bindings::NFPROTO_IPV6,
        orig_src: a(0),
        orig_sport: u16::from_be(ports[0]),
        orig_dst: a(1),
        orig_dport: u16::from_be(ports[1]),
        reply_src: a(2),
        reply_sport: u16::from_be(ports[2]),
        reply_dst: a(3),
        reply_dport: u16::from_be(ports[3]),
    });
    bindings::NF_ACCEPT
}

/// What LOCAL_OUT reports to the datapath.
enum Outgoing<'a> {
    /// A TCP segment with payload from a full socket.
    Payload(&'a Sock, Segment),
    /// A SYN-ACK without payload from a full TCP socket.
    SynAck(&'a Sock),
}

/// The sock and payload of a TCP segment with payload from a full socket,
/// or a SYN-ACK a full socket sends; `None` for anything else.
///
/// # Safety
///
/// `skb` and `state` are the live arguments of a LOCAL_OUT hook call.
unsafe fn segment<'a>(
    skb: *mut bindings::sk_buff,
    state: *const bindings::nf_hook_state,
) -> Option<Outgoing<'a>> {
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
        let syn_ack = TCP_SYN | TCP_ACK;
        return (th[TCP_FLAGS_OFF] & syn_ack == syn_ack).then_some(Outgoing::SynAck(sock));
    }
    let seq = u32::from_be_bytes([
        th[TCP_SEQ_OFF],
        th[TCP_SEQ_OFF + 1],
        th[TCP_SEQ_OFF + 2],
        th[TCP_SEQ_OFF + 3],
    ]);
    Some(Outgoing::Payload(
        sock,
        Segment {
            skb,
            payload_off: toff + doff,
            seq,
            len: plen,
        },
    ))
}

/// The hooks of one family pair: LOCAL_OUT and POSTROUTING, for IPv4 and
/// IPv6; the same (read-only) table is registered in every namespace, as
/// `nf_defrag_ipv4` does.
struct HookOps([bindings::nf_hook_ops; 4]);

// SAFETY: the table is never written after construction; netfilter only
// reads it (`const struct nf_hook_ops *`).
unsafe impl Sync for HookOps {}

const fn local_out_ops<G: SegmentGuard>(pf: u32) -> bindings::nf_hook_ops {
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

/// `NF_IP_PRI_NAT_SRC` and `NF_IP6_PRI_NAT_SRC`
/// (`include/uapi/linux/netfilter_ipv4.h`, `netfilter_ipv6.h`).
const PRI_NAT_SRC: i32 = 100;

const fn post_routing_ops<W: NatWatcher>(pf: u32) -> bindings::nf_hook_ops {
    // SAFETY: as in `local_out_ops`.
    let mut o: bindings::nf_hook_ops = unsafe { core::mem::zeroed() };
    o.hook = Some(post_routing::<W>);
    o.pf = pf as u8;
    o.hooknum = bindings::nf_inet_hooks_NF_INET_POST_ROUTING;
    // After source NAT (masquerade), so both translations are in the
    // reply tuple; before conntrack confirms the entry (`INT_MAX`).
    o.priority = PRI_NAT_SRC + 1;
    o
}

/// The tables for guard `G` and watcher `W` (one static per pair of
/// types, built at compile time).
struct Tables<G, W>(core::marker::PhantomData<(G, W)>);

impl<G: SegmentGuard, W: NatWatcher> Tables<G, W> {
    const HOOKS: HookOps = HookOps([
        local_out_ops::<G>(bindings::NFPROTO_IPV4),
        local_out_ops::<G>(bindings::NFPROTO_IPV6),
        post_routing_ops::<W>(bindings::NFPROTO_IPV4),
        post_routing_ops::<W>(bindings::NFPROTO_IPV6),
    ]);
    const STATIC: &'static HookOps = &Self::HOOKS;
}

/// Pernet `init`: the hooks in namespace `net`.
///
/// # Safety
///
/// Called by the pernet machinery with a live namespace.
unsafe extern "C" fn net_init<G: SegmentGuard, W: NatWatcher>(net: *mut bindings::net) -> i32 {
    let hooks = &Tables::<G, W>::STATIC.0;
    // SAFETY: live namespace (caller); the table is static.
    unsafe { bindings::nf_register_net_hooks(net, hooks.as_ptr(), hooks.len() as u32) }
}

/// Pernet `exit`: the namespace goes, or the subsystem is unregistered.
///
/// # Safety
///
/// Called by the pernet machinery with a namespace `net_init` succeeded on.
unsafe extern "C" fn net_exit<G: SegmentGuard, W: NatWatcher>(net: *mut bindings::net) {
    let hooks = &Tables::<G, W>::STATIC.0;
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
pub(crate) struct NetfilterHooks {
    ops: KBox<Opaque<bindings::pernet_operations>>,
}

// SAFETY: after registration the kernel owns the table's list linkage
// (under its pernet lock); this type only passes the pointer back to
// `unregister_pernet_subsys`, from any thread.
unsafe impl Send for NetfilterHooks {}
// SAFETY: no method reads or writes the table through `&self`.
unsafe impl Sync for NetfilterHooks {}

impl NetfilterHooks {
    /// Register (process context). Calls `net_init` for every namespace.
    pub(crate) fn register<G: SegmentGuard, W: NatWatcher>() -> Result<Self> {
        let ops = KBox::new(
            Opaque::new(bindings::pernet_operations {
                init: Some(net_init::<G, W>),
                exit: Some(net_exit::<G, W>),
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

impl Drop for NetfilterHooks {
    fn drop(&mut self) {
        crate::sys::rcu::might_sleep();
        // SAFETY: registered in `register` (invariant); calls `net_exit` for
        // every namespace, which waits for running hooks.
        unsafe { bindings::unregister_pernet_subsys(self.ops.get()) };
    }
}
