// SPDX-License-Identifier: GPL-2.0
//! Safe reading of netlink attribute streams (`struct nlattr` TLVs).
//!
//! The genetlink core has already validated every attribute against our
//! policies before a handler runs; this parser still bounds-checks every
//! length itself, so a policy mistake can only ever produce `EINVAL`, never an
//! out-of-bounds read.

use kernel::prelude::*;

const NLA_HDRLEN: usize = 4;
/// High bits of `nla_type` carry flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One attribute: its type and payload, borrowed from the message.
#[derive(Clone, Copy)]
pub(crate) struct Attr<'a> {
    ty: u16,
    /// The attribute including its header; its address identifies the
    /// attribute in extended-ack error reports.
    whole: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The attribute type, flags stripped.
    pub(crate) fn ty(&self) -> u16 {
        self.ty
    }

    /// Start of the attribute header, for `extack->bad_attr`.
    pub(crate) fn header_ptr(&self) -> *const u8 {
        self.whole.as_ptr()
    }

    /// The payload.
    pub(crate) fn data(&self) -> &'a [u8] {
        self.whole.get(NLA_HDRLEN..).unwrap_or(&[])
    }

    /// A `u8` payload.
    pub(crate) fn u8(&self) -> Result<u8> {
        let b: [u8; 1] = self.data().try_into().map_err(|_| EINVAL)?;
        Ok(b[0])
    }

    /// A `u16` payload in host byte order.
    pub(crate) fn u16(&self) -> Result<u16> {
        let b: [u8; 2] = self.data().try_into().map_err(|_| EINVAL)?;
        Ok(u16::from_ne_bytes(b))
    }

    /// A `u32` payload in host byte order.
    pub(crate) fn u32(&self) -> Result<u32> {
        let b: [u8; 4] = self.data().try_into().map_err(|_| EINVAL)?;
        Ok(u32::from_ne_bytes(b))
    }

    /// A fixed-size binary payload, e.g. an address kept in network order.
    pub(crate) fn array<const N: usize>(&self) -> Result<[u8; N]> {
        self.data().try_into().map_err(|_| EINVAL)
    }

    /// A string payload: an optional trailing NUL is dropped, an embedded NUL
    /// is an error.
    pub(crate) fn str_bytes(&self) -> Result<&'a [u8]> {
        let d = self.data();
        let d = match d.split_last() {
            Some((0, rest)) => rest,
            _ => d,
        };
        if d.contains(&0) {
            return Err(EINVAL);
        }
        Ok(d)
    }

    /// The attributes nested inside this one.
    pub(crate) fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.data())
    }
}

/// Iterator over a stream of attributes. Stops at the first malformed header
/// (the core's validation makes that unreachable for requests we receive).
#[derive(Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Iterate over the attributes in `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let hdr: &[u8; NLA_HDRLEN] = self.rest.get(..NLA_HDRLEN)?.try_into().ok()?;
        let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
        let ty = u16::from_ne_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let whole = self.rest.get(..len)?;
        self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
        Some(Attr { ty, whole })
    }
}
