// SPDX-License-Identifier: GPL-2.0
//! Generic netlink families, written in safe Rust on top of this wrapper.
//!
//! C header: [include/net/genetlink.h](srctree/include/net/genetlink.h)
//!
//! A family is declared as data ([`FamilySpec`], [`AttrSet`], [`OpSpec`]);
//! [`Registration`] turns it into the C `genl_family`, `genl_ops` and
//! `nla_policy` tables, registers it, and routes every request to a
//! [`Handler`]. Policies are strict: the core rejects unknown attributes,
//! wrong integer sizes and bad nesting with `-EINVAL` and an extack message
//! before a handler runs; see [`Kind`] for what is left to handlers. All raw `bindings::` use for genetlink lives in this file.

use crate::nlattr::{Attr, Attrs};
use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use kernel::{bindings, prelude::*, types::Opaque, ThisModule};

/// `-EMSGSIZE`: the message buffer is full.
pub(crate) fn emsgsize() -> Error {
    Error::from_errno(-(bindings::EMSGSIZE as i32))
}

/// `-EOPNOTSUPP`: a command the handler does not implement.
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// Payload room in a `do` reply; our replies are small.
const REPLY_SIZE: usize = 3072;

/// The type of an attribute, as checked by the netlink core.
///
/// Limits (string length, exact binary size, value range, empty flag) are
/// deliberately left to the handler: the core would answer them with
/// `-ERANGE`, while our contract is `-EINVAL` with a message naming the
/// attribute. Type, length of fixed-size integers and nesting are the core's.
pub(crate) enum Kind {
    U16,
    U32,
    /// Only ever sent, never accepted.
    U64,
    /// A flag; accepted as binary so that a payload is the handler's EINVAL.
    Flag,
    Str,
    Binary,
    /// Nested attributes of the given set.
    Nest(&'static AttrSet),
}

/// An attribute set: `attrs` lists `(type, kind)`; types run 1..=`max`.
pub(crate) struct AttrSet {
    pub(crate) max: u16,
    pub(crate) attrs: &'static [(u16, Kind)],
}

/// One command.
pub(crate) struct OpSpec {
    pub(crate) cmd: u8,
    /// Needs CAP_NET_ADMIN (`GENL_ADMIN_PERM`).
    pub(crate) admin: bool,
    pub(crate) doit: bool,
    pub(crate) dump: bool,
    /// Top-level attributes this command accepts; all others are rejected.
    pub(crate) request: &'static [u16],
}

/// A whole family.
pub(crate) struct FamilySpec {
    pub(crate) name: &'static CStr,
    pub(crate) version: u8,
    pub(crate) attrs: &'static AttrSet,
    pub(crate) ops: &'static [OpSpec],
}

/// Receives the family's requests. Runs in process context and may sleep.
pub(crate) trait Handler: Send + Sync + 'static {
    /// A `do` request; errors become the request's netlink error.
    fn doit(&self, cmd: u8, req: &Request<'_>) -> Result;
    /// One round of a dump: add entries until `dump` is full or done, and
    /// keep the position in its cursors.
    fn dumpit(&self, cmd: u8, dump: &mut Dump<'_>) -> Result;
    /// A socket that used [`Request::sock_slot`] was closed (or the family
    /// is going away); `value` is what its slot last held. Process context.
    fn sock_released(&self, value: u64);
}

/// Per-socket private memory of a family (`genl_sk_priv_get`): the handler to
/// tell when the socket goes away, and one value the handler keeps there.
/// All-zero is a valid state (the core allocates it with `kzalloc`).
#[repr(C)]
struct SockPriv {
    handler: AtomicPtr<c_void>,
    value: AtomicU64,
}

/// A value the handler keeps per netlink socket, e.g. to own state that must
/// not outlive the socket. Starts at 0.
pub(crate) struct SockSlot<'a>(&'a AtomicU64);

impl SockSlot<'_> {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// Called by the core when a socket with private memory is released, or for
/// every such socket when the family is unregistered.
///
/// # Safety
///
/// `priv_` points at a live `SockPriv` of a family registered by a
/// `Registration<H>`, whose handler outlives the family's registration.
unsafe extern "C" fn sock_priv_destroy<H: Handler>(priv_: *mut c_void) {
    // SAFETY: per the function's contract.
    let sp = unsafe { &*priv_.cast::<SockPriv>() };
    let h = sp.handler.load(Ordering::Acquire).cast::<H>();
    if !h.is_null() {
        // SAFETY: set by `Request::sock_slot` to the registration's handler,
        // which lives until after `genl_unregister_family` returns.
        unsafe { (*h).sock_released(sp.value.load(Ordering::Relaxed)) };
    }
}

/// The registered C structures and the handler.
///
/// # Invariants
///
/// `family` is the first field of a `#[repr(C)]` struct, so a pointer to it
/// is a pointer to the `Storage`; `ops` and `policies` never change after
/// registration, so the pointers the family holds into them stay valid.
#[repr(C)]
struct Storage<H: Handler> {
    family: Opaque<bindings::genl_family>,
    ops: KVec<bindings::genl_ops>,
    /// Each inner vector is one `nla_policy` array (heap storage is stable).
    policies: KVec<KVec<bindings::nla_policy>>,
    handler: Pin<KBox<H>>,
}

impl<H: Handler> Storage<H> {
    /// # Safety
    ///
    /// `family` must be the `family` field of a live `Storage<H>`.
    unsafe fn from_family<'a>(family: *const bindings::genl_family) -> &'a Self {
        // SAFETY: by the type invariant and the caller's guarantee.
        unsafe { &*family.cast::<Self>() }
    }
}

/// A registered family; unregistered when dropped.
pub(crate) struct Registration<H: Handler> {
    storage: KBox<Storage<H>>,
}

// SAFETY: the C side only touches `family` under its own locks; everything
// else is read-only after registration, and `H` is `Send + Sync`.
unsafe impl<H: Handler> Send for Registration<H> {}
// SAFETY: as above.
unsafe impl<H: Handler> Sync for Registration<H> {}

fn zeroed_policy() -> bindings::nla_policy {
    bindings::nla_policy::default()
}

fn build_policy(
    set: &AttrSet,
    only: Option<&[u16]>,
    policies: &mut KVec<KVec<bindings::nla_policy>>,
) -> Result<*const bindings::nla_policy> {
    let mut arr = KVec::from_elem(zeroed_policy(), usize::from(set.max) + 1, GFP_KERNEL)?;
    for (ty, kind) in set.attrs {
        if only.is_some_and(|o| !o.contains(ty)) {
            continue; // left as NLA_UNSPEC: strict validation rejects it
        }
        let mut p = zeroed_policy();
        match kind {
            Kind::U16 => p.type_ = bindings::NLA_U16 as u8,
            Kind::U32 => p.type_ = bindings::NLA_U32 as u8,
            Kind::U64 => p.type_ = bindings::NLA_U64 as u8,
            Kind::Flag | Kind::Binary => p.type_ = bindings::NLA_BINARY as u8,
            Kind::Str => p.type_ = bindings::NLA_STRING as u8,
            Kind::Nest(inner) => {
                p.type_ = bindings::NLA_NESTED as u8;
                p.len = inner.max;
                p.__bindgen_anon_1.nested_policy = build_policy(inner, None, policies)?;
            }
        }
        if let Some(slot) = arr.get_mut(usize::from(*ty)) {
            *slot = p;
        }
    }
    let ptr = arr.as_ptr();
    policies.push(arr, GFP_KERNEL)?;
    Ok(ptr)
}

impl<H: Handler> Registration<H> {
    /// Build the C tables for `spec` and register the family.
    pub(crate) fn new(
        module: &'static ThisModule,
        spec: &FamilySpec,
        handler: Pin<KBox<H>>,
    ) -> Result<Self> {
        let mut policies = KVec::new();
        let mut ops = KVec::with_capacity(spec.ops.len(), GFP_KERNEL)?;
        for op in spec.ops {
            let mut o = bindings::genl_ops::default();
            o.cmd = op.cmd;
            o.flags = if op.admin {
                bindings::GENL_ADMIN_PERM as u8
            } else {
                0
            };
            o.maxattr = u32::from(spec.attrs.max);
            o.policy = build_policy(spec.attrs, Some(op.request), &mut policies)?;
            if op.doit {
                o.doit = Some(doit_trampoline::<H>);
            }
            if op.dump {
                o.dumpit = Some(dumpit_trampoline::<H>);
            }
            ops.push(o, GFP_KERNEL)?;
        }
        let mut family = bindings::genl_family::default();
        let name = spec.name.to_bytes();
        if name.len() >= family.name.len() {
            return Err(EINVAL);
        }
        for (d, s) in family.name.iter_mut().zip(name) {
            *d = *s as _;
        }
        family.version = u32::from(spec.version);
        family.maxattr = u32::from(spec.attrs.max);
        family.n_ops = u8::try_from(ops.len())?;
        family.ops = ops.as_ptr();
        family.module = module.as_ptr();
        // The mapping is per node: only the initial network namespace sees
        // the family. Requests are serialised by the genetlink core.
        family.set_netnsok(0);
        family.set_parallel_ops(0);
        family.sock_priv_size = core::mem::size_of::<SockPriv>();
        family.sock_priv_destroy = Some(sock_priv_destroy::<H>);
        let storage = KBox::new(
            Storage {
                family: Opaque::new(family),
                ops,
                policies,
                handler,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `storage` is heap-allocated and kept until `drop` below
        // unregisters the family, so the family and its tables outlive the
        // registration; `ops` and `policies` are never modified again.
        kernel::error::to_result(unsafe { bindings::genl_register_family(storage.family.get()) })?;
        Ok(Self { storage })
    }
}

impl<H: Handler> Drop for Registration<H> {
    fn drop(&mut self) {
        // SAFETY: registered in `new`. Unregistering waits for running
        // requests; a dump in progress holds a reference on the module.
        unsafe { bindings::genl_unregister_family(self.storage.family.get()) };
    }
}

/// Set `extack` to report `msg` (and `attr`, if any).
///
/// # Safety
///
/// `extack` is null or valid for writes for the duration of the request.
unsafe fn set_extack(extack: *mut bindings::netlink_ext_ack, attr: *const u8, msg: &'static CStr) {
    if extack.is_null() {
        return;
    }
    // SAFETY: non-null and valid per the caller; `msg` is 'static, as the
    // core requires of `_msg`.
    unsafe {
        (*extack)._msg = msg.as_ptr().cast();
        (*extack).bad_attr = attr.cast();
    }
}

/// The payload (attribute stream) of a request.
///
/// # Safety
///
/// `info` must be valid, with `nlhdr` pointing at a complete message.
unsafe fn request_payload<'a>(info: *const bindings::genl_info) -> &'a [u8] {
    const HDRLEN: usize = 16 + 4; // NLMSG_HDRLEN + GENL_HDRLEN, no family header
                                  // SAFETY: valid per the caller.
    let nlh = unsafe { (*info).nlhdr };
    // SAFETY: the core checked `nlmsg_len` against the received buffer.
    let len = unsafe { (*nlh).nlmsg_len } as usize;
    if len <= HDRLEN {
        return &[];
    }
    // SAFETY: the message spans `len` bytes from `nlh` (checked by the core),
    // and it outlives the request.
    unsafe { core::slice::from_raw_parts(nlh.cast::<u8>().add(HDRLEN), len - HDRLEN) }
}

unsafe extern "C" fn doit_trampoline<H: Handler>(
    skb: *mut bindings::sk_buff,
    info: *mut bindings::genl_info,
) -> c_int {
    // SAFETY: the core passes a valid `info` for the duration of the call.
    let (family, cmd) = unsafe { ((*info).family, (*(*info).genlhdr).cmd) };
    // SAFETY: only our families route to this trampoline (set in `new`).
    let storage = unsafe { Storage::<H>::from_family(family) };
    // SAFETY: valid `info`, as above.
    let payload = unsafe { request_payload(info) };
    let handler = (&*storage.handler as *const H).cast::<c_void>();
    let req = Request {
        info,
        skb,
        handler,
        payload,
    };
    match storage.handler.doit(cmd, &req) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn dumpit_trampoline<H: Handler>(
    skb: *mut bindings::sk_buff,
    cb: *mut bindings::netlink_callback,
) -> c_int {
    // SAFETY: the core passes a valid `cb` whose `data` is its dump info.
    let info = unsafe { bindings::genl_info_dump(cb) };
    // SAFETY: as above; the family is ours (see `doit_trampoline`).
    let (family, cmd) = unsafe { ((*info).family, (*(*info).genlhdr).cmd) };
    // SAFETY: only our families route here.
    let storage = unsafe { Storage::<H>::from_family(family) };
    let mut dump = Dump {
        w: Writer { skb },
        cb,
        info,
        entries: 0,
        _p: core::marker::PhantomData,
    };
    match storage.handler.dumpit(cmd, &mut dump) {
        // SAFETY: `skb` is valid for the call.
        Ok(()) => unsafe { (*skb).len as c_int },
        Err(e) => e.to_errno(),
    }
}

/// A `do` request.
///
/// # Invariants
///
/// `info` is the core's `genl_info` for this request, valid (with its
/// extack and message) for `'a`, the duration of the `doit` call; `skb` is
/// the request's buffer; `handler` is the registration's `H`.
pub(crate) struct Request<'a> {
    info: *const bindings::genl_info,
    skb: *mut bindings::sk_buff,
    /// The family's handler, recorded in socket private memory.
    handler: *const c_void,
    payload: &'a [u8],
}

impl<'a> Request<'a> {
    /// All attributes, in order (for multi-attributes).
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }

    /// The sender socket's slot; the handler's `sock_released` gets its
    /// value when the socket is closed. Allocates on first use.
    pub(crate) fn sock_slot(&self) -> Result<SockSlot<'a>> {
        // SAFETY: `skb` is the request; its control block is the netlink
        // one (`NETLINK_CB`), naming the sending socket, which cannot be
        // released while its `sendmsg` runs this request.
        let sk = unsafe { (*(*self.skb).cb.as_ptr().cast::<bindings::netlink_skb_parms>()).sk };
        // SAFETY: `info.family` is our registered family; the core only
        // touches the xarray it points to, never the family struct itself.
        let p = unsafe { bindings::genl_sk_priv_get((*self.info).family.cast_mut(), sk) };
        let p = kernel::error::from_err_ptr(p)?;
        // SAFETY: the core allocated `sock_priv_size` zeroed bytes for this
        // socket (a valid `SockPriv`), freed only after the socket is gone.
        let sp = unsafe { &*p.cast::<SockPriv>() };
        sp.handler.store(self.handler.cast_mut(), Ordering::Release);
        Ok(SockSlot(&sp.value))
    }

    /// The first attribute of type `ty`.
    pub(crate) fn attr(&self, ty: u16) -> Option<Attr<'a>> {
        self.attrs().find(ty)
    }

    /// Report `msg` about `attr` to the sender and return `err`.
    pub(crate) fn fail(&self, err: Error, attr: Option<&Attr<'_>>, msg: &'static CStr) -> Error {
        let ptr = attr.map_or(core::ptr::null(), |a| a.header_ptr());
        // SAFETY: `info` is valid for the request; its extack too.
        unsafe { set_extack((*self.info).extack, ptr, msg) };
        err
    }

    /// Report an attribute of type `ty` as missing; returns `EINVAL`.
    pub(crate) fn missing(&self, ty: u16, msg: &'static CStr) -> Error {
        // SAFETY: as in `fail`.
        let extack = unsafe { (*self.info).extack };
        if !extack.is_null() {
            // SAFETY: non-null extack, valid for the request.
            unsafe { (*extack).miss_type = ty };
        }
        self.fail(EINVAL, None, msg)
    }

    /// Start the reply to this request.
    pub(crate) fn reply(&self, cmd: u8) -> Result<Reply> {
        // SAFETY: plain allocation; process context.
        let skb = unsafe { bindings::genlmsg_new(REPLY_SIZE, bindings::GFP_KERNEL) };
        if skb.is_null() {
            return Err(ENOMEM);
        }
        let mut reply = Reply {
            w: Writer { skb },
            info: self.info,
            hdr: core::ptr::null_mut(),
        };
        // SAFETY: `skb` is fresh; `info` valid for the request.
        reply.hdr = unsafe {
            bindings::genlmsg_put(
                skb,
                (*self.info).snd_portid,
                (*self.info).snd_seq,
                (*self.info).family,
                0,
                cmd,
            )
        };
        if reply.hdr.is_null() {
            return Err(emsgsize());
        }
        Ok(reply)
    }
}

/// Writes attributes into a message under construction.
///
/// # Invariants
///
/// `skb` is a valid netlink message buffer that the writer may append to.
pub(crate) struct Writer {
    skb: *mut bindings::sk_buff,
}

impl Writer {
    fn put_raw(&mut self, ty: u16, data: &[u8]) -> Result {
        let len = c_int::try_from(data.len())?;
        // SAFETY: `skb` is a valid message buffer; `data` is readable.
        let ret =
            unsafe { bindings::nla_put(self.skb, c_int::from(ty), len, data.as_ptr().cast()) };
        kernel::error::to_result(ret)
    }

    pub(crate) fn put_u16(&mut self, ty: u16, v: u16) -> Result {
        self.put_raw(ty, &v.to_ne_bytes())
    }

    pub(crate) fn put_u32(&mut self, ty: u16, v: u32) -> Result {
        self.put_raw(ty, &v.to_ne_bytes())
    }

    /// A `u64`, 8-byte aligned with a `pad` attribute where needed.
    pub(crate) fn put_u64(&mut self, ty: u16, v: u64, pad: u16) -> Result {
        // SAFETY: `skb` is a valid message buffer.
        let ret =
            unsafe { bindings::nla_put_u64_64bit(self.skb, c_int::from(ty), v, c_int::from(pad)) };
        kernel::error::to_result(ret)
    }

    /// Raw bytes (e.g. an address in network byte order).
    pub(crate) fn put_bytes(&mut self, ty: u16, data: &[u8]) -> Result {
        self.put_raw(ty, data)
    }

    /// A NUL-terminated string.
    pub(crate) fn put_str(&mut self, ty: u16, s: &[u8]) -> Result {
        let len = c_int::try_from(s.len() + 1)?;
        // SAFETY: `skb` is a valid message buffer.
        let nla = unsafe { bindings::nla_reserve(self.skb, c_int::from(ty), len) };
        if nla.is_null() {
            return Err(emsgsize());
        }
        // SAFETY: `nla_reserve` made room for the header plus `len` bytes.
        unsafe {
            let dst = nla.cast::<u8>().add(4);
            core::ptr::copy_nonoverlapping(s.as_ptr(), dst, s.len());
            *dst.add(s.len()) = 0;
        }
        Ok(())
    }

    /// A nest of attributes written by `f`; removed again if `f` fails.
    pub(crate) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Self) -> Result) -> Result {
        // SAFETY: `skb` is a valid message buffer.
        let start = unsafe { bindings::nla_nest_start(self.skb, c_int::from(ty)) };
        if start.is_null() {
            return Err(emsgsize());
        }
        match f(self) {
            Ok(()) => {
                // SAFETY: `start` was returned by `nla_nest_start` on `skb`.
                unsafe { bindings::nla_nest_end(self.skb, start) };
                Ok(())
            }
            Err(e) => {
                // SAFETY: as above; trims the skb back to `start`.
                unsafe { bindings::nla_nest_cancel(self.skb, start) };
                Err(e)
            }
        }
    }
}

/// A reply to a `do` request; freed if dropped unsent.
///
/// # Invariants
///
/// Owns `w.skb`, whose current message starts at `hdr`; `info` is the live
/// request being answered.
pub(crate) struct Reply {
    w: Writer,
    info: *const bindings::genl_info,
    hdr: *mut c_void,
}

impl core::ops::Deref for Reply {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.w
    }
}

impl core::ops::DerefMut for Reply {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.w
    }
}

impl Reply {
    /// Finish and send the reply.
    pub(crate) fn send(self) -> Result {
        let (skb, info, hdr) = (self.w.skb, self.info, self.hdr);
        core::mem::forget(self);
        // SAFETY: `hdr` is the message `genlmsg_put` started on `skb`.
        unsafe { bindings::genlmsg_end(skb, hdr) };
        // SAFETY: `info` is the live request; `genlmsg_reply` consumes `skb`.
        kernel::error::to_result(unsafe { bindings::genlmsg_reply(skb, info.cast_mut()) })
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // SAFETY: we still own the unsent `skb`.
        unsafe { bindings::nlmsg_free(self.w.skb) };
    }
}

/// One round of a dump.
///
/// # Invariants
///
/// `cb` and its dump `info` are valid for `'a` (one `dumpit` call); `w.skb`
/// is the buffer the core gave this round.
pub(crate) struct Dump<'a> {
    w: Writer,
    cb: *mut bindings::netlink_callback,
    info: *const bindings::genl_info,
    entries: usize,
    /// Ties the callback's state to this round.
    _p: core::marker::PhantomData<&'a ()>,
}

impl<'a> Dump<'a> {
    /// Cursor `i` (0..6), kept between rounds; starts at 0.
    pub(crate) fn cursor(&self, i: usize) -> usize {
        // SAFETY: `cb` is valid for the round.
        let args = unsafe { &(*self.cb).__bindgen_anon_1.args };
        args.get(i).map_or(0, |v| *v as usize)
    }

    pub(crate) fn set_cursor(&mut self, i: usize, v: usize) {
        // SAFETY: `cb` is valid for the round and only we write `args`.
        let args = unsafe { &mut (*self.cb).__bindgen_anon_1.args };
        if let Some(slot) = args.get_mut(i) {
            *slot = v as _;
        }
    }

    /// Mark the dump's snapshot: if `seq` changes between rounds, the
    /// messages after the change carry NLM_F_DUMP_INTR. `seq` must not be 0.
    pub(crate) fn set_seq(&mut self, seq: u32) {
        // SAFETY: `cb` is valid for the round.
        unsafe { (*self.cb).seq = seq };
    }

    /// Add one message written by `f`. `Ok(false)`: no room left this round.
    pub(crate) fn entry(&mut self, cmd: u8, f: impl FnOnce(&mut Writer) -> Result) -> Result<bool> {
        let skb = self.w.skb;
        // SAFETY: `info` is the dump's info, valid for the round.
        let hdr = unsafe {
            bindings::genlmsg_put(
                skb,
                (*self.info).snd_portid,
                (*self.info).snd_seq,
                (*self.info).family,
                bindings::NLM_F_MULTI as c_int,
                cmd,
            )
        };
        if hdr.is_null() {
            return self.full();
        }
        // SAFETY: `hdr` was just put on the dump skb of `cb`.
        unsafe { bindings::genl_dump_check_consistent(self.cb, hdr) };
        match f(&mut self.w) {
            Ok(()) => {
                // SAFETY: `hdr` is the current message of `skb`.
                unsafe { bindings::genlmsg_end(skb, hdr) };
                self.entries += 1;
                Ok(true)
            }
            Err(e) => {
                // SAFETY: as above; removes the partial message.
                unsafe { bindings::genlmsg_cancel(skb, hdr) };
                if e == emsgsize() {
                    self.full()
                } else {
                    Err(e)
                }
            }
        }
    }

    fn full(&self) -> Result<bool> {
        // An entry that does not fit into an empty buffer never will.
        if self.entries == 0 {
            Err(emsgsize())
        } else {
            Ok(false)
        }
    }
}
