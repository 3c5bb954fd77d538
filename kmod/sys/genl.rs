// SPDX-License-Identifier: GPL-2.0
//! Generic netlink families, written in safe Rust on top of this wrapper.
//!
//! C header: [include/net/genetlink.h](srctree/include/net/genetlink.h)
//!
//! A family is declared as data ([`FamilySpec`], [`AttrSet`], [`OpSpec`]);
//! [`Registration`] turns it into the C `genl_family`, split `genl_split_ops`
//! (a `do` and a `dump` op per command, each with its own policy) and
//! `nla_policy` tables carrying the spec's limits, registers it, and routes
//! every request to a [`Handler`]. Validation is the core's, as for in-tree
//! families: unknown attributes and wrong integer sizes are `-EINVAL`, values
//! outside the spec's limits `-ERANGE`, each with the core's extack message.
//! Requests run in parallel (`parallel_ops`): handlers do their own locking,
//! and no request of ours ever holds the global `genl_mutex`.
//!
//! This file may touch the genetlink and netlink C APIs only.

use super::nlattr::{Attr, Attrs};
use core::ffi::{c_int, c_void, CStr};
use core::marker::{PhantomData, PhantomPinned};
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

/// An attribute's type and the limits the core enforces for it.
pub(crate) enum Kind {
    /// `u8`, at most `max`.
    U8 { max: u8 },
    /// `u16`, at least `min`.
    U16 { min: u16 },
    /// `u32`, at most `max` if given.
    U32 { max: Option<u16> },
    /// A big-endian `u32` (an IPv4 address), kept as its 4 bytes.
    Be32,
    /// A `u64` (8 bytes).
    U64,
    /// Present or absent; a payload is `-ERANGE`.
    Flag,
    /// A string of at most `max_len` bytes (a trailing NUL not counted).
    Str { max_len: u16 },
    /// Binary of exactly this many bytes.
    Exact(u16),
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
    /// The command also dumps; a dump takes no attributes.
    pub(crate) dump: bool,
    /// Top-level attributes the `do` request accepts; all others are
    /// rejected by the core.
    pub(crate) request: &'static [u16],
}

/// A whole family.
pub(crate) struct FamilySpec {
    pub(crate) name: &'static CStr,
    pub(crate) version: u8,
    pub(crate) attrs: &'static AttrSet,
    pub(crate) ops: &'static [OpSpec],
    /// Multicast groups, in spec order; joining any needs CAP_NET_ADMIN.
    pub(crate) mcgrps: &'static [&'static CStr],
}

/// `GENL_MCAST_CAP_NET_ADMIN` (`include/net/genetlink.h`: `BIT(0)`, which
/// bindgen cannot evaluate): joining the group needs CAP_NET_ADMIN in the
/// socket's user namespace.
const GENL_MCAST_CAP_NET_ADMIN: u8 = 1;

/// Receives the family's requests. Runs in process context, possibly on
/// several CPUs at once; may sleep.
pub(crate) trait Handler: Send + Sync + 'static {
    /// A `do` request; errors become the request's netlink error.
    fn doit(&self, cmd: u8, req: &Request<'_>) -> Result;
    /// One round of a dump: add entries until `dump` is full or done, and
    /// keep the position in its cursors.
    fn dumpit(&self, cmd: u8, dump: &mut Dump<'_>) -> Result;
}

/// The registered C structures and the handler.
///
/// # Invariants
///
/// Pinned: `family` is registered with the core by address. `ops` and
/// `policies` never change after registration, so the pointers the family
/// holds into their heap storage stay valid until it is unregistered.
#[pin_data]
struct Storage<H: Handler> {
    family: Opaque<bindings::genl_family>,
    ops: KVec<bindings::genl_split_ops>,
    /// Each inner vector is one `nla_policy` array (heap storage is stable).
    policies: KVec<KVec<bindings::nla_policy>>,
    mcgrps: KVec<bindings::genl_multicast_group>,
    handler: H,
    #[pin]
    _pin: PhantomPinned,
}

impl<H: Handler> Storage<H> {
    /// # Safety
    ///
    /// `family` must be the `family` field of a live `Storage<H>` that stays
    /// alive for `'a`.
    unsafe fn from_family<'a>(family: *const bindings::genl_family) -> &'a Self {
        // SAFETY: `family` points at the `family` field of a `Storage<H>`
        // (caller), and `Opaque` is `repr(transparent)`.
        let s = unsafe { kernel::container_of!(family, Self, family) };
        // SAFETY: live for `'a` per the caller.
        unsafe { &*s }
    }
}

/// A registered family; unregistered when dropped.
pub(crate) struct Registration<H: Handler> {
    storage: Pin<KBox<Storage<H>>>,
}

// SAFETY: after registration nothing in `Storage` is written by Rust; the
// core reads the (immutable) tables from any CPU and `H: Send + Sync`.
unsafe impl<H: Handler> Send for Registration<H> {}
// SAFETY: as above.
unsafe impl<H: Handler> Sync for Registration<H> {}

/// Build the `nla_policy` array of `set`, accepting only `only` (if given)
/// at this level; everything else stays `NLA_UNSPEC`, which strict
/// validation rejects.
fn build_policy(
    set: &AttrSet,
    only: Option<&[u16]>,
    policies: &mut KVec<KVec<bindings::nla_policy>>,
) -> Result<*const bindings::nla_policy> {
    let mut arr = KVec::from_elem(
        bindings::nla_policy::default(),
        usize::from(set.max) + 1,
        GFP_KERNEL,
    )?;
    for (ty, kind) in set.attrs {
        if only.is_some_and(|o| !o.contains(ty)) {
            continue;
        }
        let mut p = bindings::nla_policy::default();
        match kind {
            Kind::U8 { max } => {
                p.type_ = bindings::NLA_U8 as u8;
                p.validation_type = bindings::nla_policy_validation_NLA_VALIDATE_MAX as u8;
                p.__bindgen_anon_1.__bindgen_anon_1 =
                    bindings::nla_policy__bindgen_ty_1__bindgen_ty_1 {
                        min: 0,
                        max: i16::from(*max),
                    };
            }
            Kind::U16 { min } => {
                p.type_ = bindings::NLA_U16 as u8;
                if *min > 0 {
                    p.validation_type = bindings::nla_policy_validation_NLA_VALIDATE_MIN as u8;
                    p.__bindgen_anon_1.__bindgen_anon_1 =
                        bindings::nla_policy__bindgen_ty_1__bindgen_ty_1 {
                            min: i16::try_from(*min)?,
                            max: 0,
                        };
                }
            }
            Kind::U32 { max } => {
                p.type_ = bindings::NLA_U32 as u8;
                if let Some(max) = max {
                    p.validation_type = bindings::nla_policy_validation_NLA_VALIDATE_MAX as u8;
                    p.__bindgen_anon_1.__bindgen_anon_1 =
                        bindings::nla_policy__bindgen_ty_1__bindgen_ty_1 {
                            min: 0,
                            max: i16::try_from(*max)?,
                        };
                }
            }
            Kind::Be32 => p.type_ = bindings::NLA_BE32 as u8,
            Kind::U64 => p.type_ = bindings::NLA_U64 as u8,
            Kind::Flag => p.type_ = bindings::NLA_FLAG as u8,
            Kind::Str { max_len } => {
                p.type_ = bindings::NLA_STRING as u8;
                p.len = *max_len;
            }
            Kind::Exact(len) => {
                let len = i16::try_from(*len)?;
                p.type_ = bindings::NLA_BINARY as u8;
                p.validation_type = bindings::nla_policy_validation_NLA_VALIDATE_RANGE as u8;
                p.__bindgen_anon_1.__bindgen_anon_1 =
                    bindings::nla_policy__bindgen_ty_1__bindgen_ty_1 { min: len, max: len };
            }
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
    pub(crate) fn new(module: &'static ThisModule, spec: &FamilySpec, handler: H) -> Result<Self> {
        let mut policies = KVec::new();
        let mut ops = KVec::with_capacity(spec.ops.len() * 2, GFP_KERNEL)?;
        let admin = |op: &OpSpec| {
            if op.admin {
                bindings::GENL_ADMIN_PERM as u8
            } else {
                0
            }
        };
        // Split ops: per command a `do` then a `dump`, sorted by command.
        for op in spec.ops {
            if op.doit {
                let mut o = bindings::genl_split_ops {
                    cmd: op.cmd,
                    flags: admin(op) | bindings::GENL_CMD_CAP_DO as u8,
                    maxattr: u32::from(spec.attrs.max),
                    policy: build_policy(spec.attrs, Some(op.request), &mut policies)?,
                    ..Default::default()
                };
                o.__bindgen_anon_1.__bindgen_anon_1.doit = Some(doit_trampoline::<H>);
                ops.push(o, GFP_KERNEL)?;
            }
            if op.dump {
                // A policy that accepts nothing: selectors are refused.
                let mut o = bindings::genl_split_ops {
                    cmd: op.cmd,
                    flags: admin(op) | bindings::GENL_CMD_CAP_DUMP as u8,
                    maxattr: u32::from(spec.attrs.max),
                    policy: build_policy(spec.attrs, Some(&[]), &mut policies)?,
                    ..Default::default()
                };
                o.__bindgen_anon_1.__bindgen_anon_2.dumpit = Some(dumpit_trampoline::<H>);
                ops.push(o, GFP_KERNEL)?;
            }
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
        family.n_split_ops = u8::try_from(ops.len())?;
        family.split_ops = ops.as_ptr();
        let mut mcgrps = KVec::with_capacity(spec.mcgrps.len(), GFP_KERNEL)?;
        for g in spec.mcgrps {
            let mut grp = bindings::genl_multicast_group {
                name: [0; 16],
                flags: GENL_MCAST_CAP_NET_ADMIN,
            };
            let n = g.to_bytes();
            if n.len() >= grp.name.len() {
                return Err(EINVAL);
            }
            for (d, s) in grp.name.iter_mut().zip(n) {
                *d = *s as _;
            }
            mcgrps.push(grp, GFP_KERNEL)?;
        }
        family.n_mcgrps = u8::try_from(mcgrps.len())?;
        family.mcgrps = if mcgrps.is_empty() {
            core::ptr::null()
        } else {
            mcgrps.as_ptr()
        };
        family.module = module.as_ptr();
        // The mapping is per node: only the initial network namespace sees
        // the family. Handlers lock for themselves.
        family.set_netnsok(0);
        family.set_parallel_ops(1);
        let storage = KBox::pin_init(
            pin_init!(Storage {
                family: Opaque::new(family),
                ops,
                policies,
                mcgrps,
                handler,
                _pin: PhantomPinned,
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `storage` is pinned on the heap and kept until `drop`
        // below unregisters the family, so the family and its tables outlive
        // the registration; `ops` and `policies` are never modified again.
        kernel::error::to_result(unsafe { bindings::genl_register_family(storage.family.get()) })?;
        Ok(Self { storage })
    }
}

impl<H: Handler> Registration<H> {
    /// A sender of this family's multicast events. It must not outlive the
    /// registration (the module drops it first; see `tlshub.rs`).
    pub(crate) fn multicaster(&self) -> Multicaster {
        Multicaster {
            family: self.storage.family.get(),
        }
    }
}

/// Sends events to a family's multicast groups (initial netns only).
///
/// # Invariants
///
/// `family` is a registered family that stays registered while this value
/// exists (its owner drops it before unregistering).
pub(crate) struct Multicaster {
    family: *mut bindings::genl_family,
}

// SAFETY: the family is immutable once registered and the multicast API is
// safe from any process context.
unsafe impl Send for Multicaster {}
// SAFETY: as above.
unsafe impl Sync for Multicaster {}

impl Multicaster {
    /// Build one `cmd` message with `f` and send it to group 0. Process
    /// context. `ESRCH`: nobody is listening.
    pub(crate) fn send(&self, cmd: u8, f: impl FnOnce(&mut Writer) -> Result) -> Result {
        // SAFETY: plain allocation; process context (callers).
        let skb = unsafe { bindings::genlmsg_new(REPLY_SIZE, bindings::GFP_KERNEL) };
        if skb.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: fresh `skb`; live family (invariant).
        let hdr = unsafe { bindings::genlmsg_put(skb, 0, 0, self.family, 0, cmd) };
        let mut w = Writer { skb };
        let built = if hdr.is_null() {
            Err(emsgsize())
        } else {
            f(&mut w)
        };
        if let Err(e) = built {
            // SAFETY: we still own `skb`.
            unsafe { bindings::nlmsg_free(skb) };
            return Err(e);
        }
        // SAFETY: `hdr` starts the message on `skb`; the multicast consumes
        // `skb` whatever it returns.
        let rc = unsafe {
            bindings::genlmsg_end(skb, hdr);
            bindings::genlmsg_multicast(self.family, skb, 0, 0, bindings::GFP_KERNEL)
        };
        kernel::error::to_result(rc)
    }
}

impl<H: Handler> Drop for Registration<H> {
    fn drop(&mut self) {
        // SAFETY: registered in `new`. Unregistering waits for running
        // requests; a dump in progress holds a reference on the module.
        unsafe { bindings::genl_unregister_family(self.storage.family.get()) };
    }
}

/// Size of `T` rounded up to netlink's 4-byte alignment.
const fn nl_align(n: usize) -> usize {
    (n + 3) & !3
}

/// The payload (attribute stream) of a request.
///
/// # Safety
///
/// `info` must be valid, with `nlhdr` pointing at a complete message that
/// stays alive for `'a`.
unsafe fn request_payload<'a>(info: *const bindings::genl_info) -> &'a [u8] {
    // SAFETY: `info` and its family are valid per the caller.
    let (nlh, hdrsize) = unsafe { ((*info).nlhdr, (*(*info).family).hdrsize) };
    let start = payload_offset(hdrsize);
    // SAFETY: the core checked `nlmsg_len` against the received buffer.
    let len = unsafe { (*nlh).nlmsg_len } as usize;
    if len <= start {
        return &[];
    }
    // SAFETY: the message spans `len` bytes from `nlh` (checked by the core)
    // and outlives the request (caller).
    unsafe { core::slice::from_raw_parts(nlh.cast::<u8>().add(start), len - start) }
}

/// Where a request's attributes start in its message.
fn payload_offset(hdrsize: u32) -> usize {
    nl_align(core::mem::size_of::<bindings::nlmsghdr>())
        + nl_align(core::mem::size_of::<bindings::genlmsghdr>())
        + nl_align(hdrsize as usize)
}

/// # Safety
///
/// Called by the genetlink core with a valid `skb` and `info` of one of our
/// families' `do` requests (registered by [`Registration::new`]).
unsafe extern "C" fn doit_trampoline<H: Handler>(
    skb: *mut bindings::sk_buff,
    info: *mut bindings::genl_info,
) -> c_int {
    // SAFETY: the core passes a valid `info` for the duration of the call.
    let (family, cmd) = unsafe { ((*info).family, (*(*info).genlhdr).cmd) };
    // SAFETY: only our registered families route to this trampoline, and
    // the family stays registered while a request runs.
    let storage = unsafe { Storage::<H>::from_family(family) };
    // SAFETY: valid `info`, as above; the message lives for the call.
    let payload = unsafe { request_payload(info) };
    // INVARIANT: `info` is the core's, valid for this call.
    // The request (and every borrow of the message) ends with this block.
    let (r, secret) = {
        let req = Request {
            info,
            payload,
            secret: core::cell::Cell::new(None),
        };
        let r = match storage.handler.doit(cmd, &req) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        };
        (r, req.secret.get())
    };
    if let Some((off, len)) = secret {
        // SAFETY: `info` is valid for the call (as above), and so is `skb`,
        // the request's buffer.
        let (nlh, hdrsize, data) =
            unsafe { ((*info).nlhdr, (*(*info).family).hdrsize, (*skb).data) };
        // `netlink_rcv_skb` hands each message over with `skb->data` at
        // its header (it pulls past it afterwards): write through that
        // (mutable) pointer, and only if it is this message's.
        if core::ptr::eq(data.cast_const(), nlh.cast::<u8>()) {
            // SAFETY: no reference into the message is left (the request
            // and every attribute borrowed from it are gone with the
            // handler's return). `(off, len)` lies inside the payload
            // (checked by `wipe_after`), which starts `payload_offset`
            // bytes into the message at `data`: the request skb's linear
            // data, writable memory the netlink core allocated for this
            // message and frees after the ack. A netlink tap's clone
            // shares it: the tap then sees zeros too.
            let secret = unsafe {
                core::slice::from_raw_parts_mut(data.add(payload_offset(hdrsize) + off), len)
            };
            crate::keys::schedule::zeroize(secret);
        }
    }
    r
}

/// # Safety
///
/// Called by the genetlink core with a valid `skb` and `cb` of a dump of one
/// of our families.
unsafe extern "C" fn dumpit_trampoline<H: Handler>(
    skb: *mut bindings::sk_buff,
    cb: *mut bindings::netlink_callback,
) -> c_int {
    // SAFETY: the core passes a valid `cb` whose `data` is its dump info.
    let info = unsafe { bindings::genl_info_dump(cb) };
    // SAFETY: as above; `info` is valid for the call.
    let (family, cmd) = unsafe { ((*info).family, (*(*info).genlhdr).cmd) };
    // SAFETY: only our families route here; a running dump holds a module
    // reference, so the family (and storage) is alive.
    let storage = unsafe { Storage::<H>::from_family(family) };
    // INVARIANT: `cb`, `info` and `skb` are valid for this round.
    let mut dump = Dump {
        w: Writer { skb },
        cb,
        info,
        entries: 0,
        _p: PhantomData,
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
/// extack and message) for `'a`, the duration of the `doit` call; `payload`
/// is the request's attribute stream.
pub(crate) struct Request<'a> {
    info: *const bindings::genl_info,
    payload: &'a [u8],
    /// A secret's place in `payload` (offset, length), wiped in the
    /// message once the handler is done with it ([`Request::wipe_after`]).
    secret: core::cell::Cell<Option<(usize, usize)>>,
}

impl<'a> Request<'a> {
    /// Have `a`'s payload (a secret) wiped in the request message once the
    /// handler returned, before the core echoes the message in an error
    /// ack or frees it. One per request: a later call replaces the first.
    pub(crate) fn wipe_after(&self, a: &Attr<'a>) {
        let d = a.data();
        let off = (d.as_ptr() as usize).wrapping_sub(self.payload.as_ptr() as usize);
        if off
            .checked_add(d.len())
            .is_some_and(|end| end <= self.payload.len())
        {
            self.secret.set(Some((off, d.len())));
        }
    }

    /// All attributes, in order (for multi-attributes).
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }

    /// The sending socket's netlink port id.
    pub(crate) fn portid(&self) -> u32 {
        // SAFETY: `info` is valid for the request (type invariant).
        unsafe { (*self.info).snd_portid }
    }

    /// The only attribute of type `ty`, if present; a second one is
    /// `EINVAL` "duplicate attribute" pointing at it.
    pub(crate) fn single(&self, ty: u16) -> Result<Option<Attr<'a>>> {
        single_of(self, self.attrs(), ty)
    }

    fn extack(&self) -> *mut bindings::netlink_ext_ack {
        // SAFETY: `info` is valid for the request (type invariant).
        unsafe { (*self.info).extack }
    }

    /// Report `msg` about `attr` to the sender and return `err`.
    pub(crate) fn fail(&self, err: Error, attr: Option<&Attr<'_>>, msg: &'static CStr) -> Error {
        let ext = self.extack();
        if !ext.is_null() {
            // SAFETY: non-null extack of the live request; `msg` is
            // 'static as the core requires of `_msg`, and `bad_attr`
            // points into the request's message.
            unsafe {
                (*ext)._msg = msg.as_ptr().cast();
                (*ext).bad_attr = attr.map_or(core::ptr::null(), |a| a.header_ptr().cast());
            }
        }
        err
    }

    /// Report a top-level attribute of type `ty` as missing; `EINVAL`.
    pub(crate) fn missing(&self, ty: u16, msg: &'static CStr) -> Error {
        self.missing_in(None, ty, msg)
    }

    /// Report attribute `ty` as missing inside `nest` (`NL_SET_ERR_ATTR_MISS`);
    /// returns `EINVAL`.
    pub(crate) fn missing_in(&self, nest: Option<&Attr<'_>>, ty: u16, msg: &'static CStr) -> Error {
        let ext = self.extack();
        if !ext.is_null() {
            // SAFETY: non-null extack of the live request; `miss_nest`
            // points into the request's message.
            unsafe {
                (*ext).miss_type = ty;
                (*ext).miss_nest = nest.map_or(core::ptr::null(), |a| a.header_ptr().cast());
            }
        }
        self.fail(EINVAL, None, msg)
    }

    /// Start the reply to this request.
    pub(crate) fn reply(&self, cmd: u8) -> Result<Reply<'_>> {
        // SAFETY: plain allocation; process context.
        let skb = unsafe { bindings::genlmsg_new(REPLY_SIZE, bindings::GFP_KERNEL) };
        if skb.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: we own the fresh `skb`; `hdr` is set below before use.
        let mut reply = Reply {
            w: Writer { skb },
            info: self.info,
            hdr: core::ptr::null_mut(),
            _req: PhantomData,
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

/// The only attribute of type `ty` in `attrs`; a second is `EINVAL`.
pub(crate) fn single_of<'a>(
    req: &Request<'_>,
    attrs: Attrs<'a>,
    ty: u16,
) -> Result<Option<Attr<'a>>> {
    let mut found = None;
    for a in attrs.filter(|a| a.ty() == ty) {
        if found.is_some() {
            return Err(req.fail(EINVAL, Some(&a), c"duplicate attribute"));
        }
        found = Some(a);
    }
    Ok(found)
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

    pub(crate) fn put_u8(&mut self, ty: u16, v: u8) -> Result {
        self.put_raw(ty, &[v])
    }

    pub(crate) fn put_u16(&mut self, ty: u16, v: u16) -> Result {
        self.put_raw(ty, &v.to_ne_bytes())
    }

    pub(crate) fn put_u32(&mut self, ty: u16, v: u32) -> Result {
        self.put_raw(ty, &v.to_ne_bytes())
    }

    /// A flag (no payload).
    pub(crate) fn put_flag(&mut self, ty: u16) -> Result {
        self.put_raw(ty, &[])
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
        let hdrlen = nl_align(core::mem::size_of::<bindings::nlattr>());
        // SAFETY: `nla_reserve` made room for the header plus `len` bytes.
        let dst = unsafe { nla.cast::<u8>().add(hdrlen) };
        // SAFETY: `dst` has room for `s.len() + 1` bytes (above).
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), dst, s.len()) };
        // SAFETY: as above, the last of the `len` reserved bytes.
        unsafe { *dst.add(s.len()) = 0 };
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

/// A reply to a `do` request; freed if dropped unsent. Cannot outlive the
/// request it answers.
///
/// # Invariants
///
/// Owns `w.skb`, whose current message starts at `hdr`; `info` is the live
/// request being answered, valid for `'a`.
pub(crate) struct Reply<'a> {
    w: Writer,
    info: *const bindings::genl_info,
    hdr: *mut c_void,
    _req: PhantomData<&'a Request<'a>>,
}

impl core::ops::Deref for Reply<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.w
    }
}

impl core::ops::DerefMut for Reply<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.w
    }
}

impl Reply<'_> {
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

impl Drop for Reply<'_> {
    fn drop(&mut self) {
        // SAFETY: we still own the unsent `skb` (type invariant).
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
    _p: PhantomData<&'a ()>,
}

impl Dump<'_> {
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
