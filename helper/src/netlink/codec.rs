//! Netlink messages driven by the [`schema`] table, built and parsed with
//! `neli`: requests are built attribute by attribute (neli's `Nlattr`) and
//! checked against the spec as they are written; received datagrams are
//! split into neli `Nlmsghdr`s; kernel errors carry their extended ack,
//! mapped back onto the request attribute it points at.
//!
//! What neli does not do stays here, thin: the spec's checks and byte
//! orders, the offsets of request attributes (for the extended ack), and
//! secrets. A secret (a `binary` attribute without a display hint: a PSK,
//! a flow's secret) never enters neli's buffers, which are freed unwiped:
//! neli lays out a placeholder of its size, and the secret is written into
//! the serialised request, a buffer this module owns and wipes.

use std::fmt;
use std::io::Cursor;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use neli::attr::{AttrHandle, Attribute};
use neli::consts::nl::{NlmF, Nlmsg, NlmsgerrAttr};
use neli::genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder};
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::types::{Buffer, GenlBuffer};
use neli::{FromBytes, FromBytesWithInput, Size, ToBytes};

use super::error::KernelError;
use super::schema::{self, AttrSet, Hint, Op, Type};
use super::NetlinkError;

/// `sizeof(struct nlmsghdr)`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct genlmsghdr)`.
pub(crate) const GENL_HDRLEN: usize = 4;
const NLA_HDRLEN: usize = 4;

/// A generic netlink attribute as neli holds it.
pub(crate) type Nla = Nlattr<u16, Buffer>;
/// A generic netlink message (header and attributes) as neli holds it.
pub(crate) type GenlMsg = Genlmsghdr<u8, u16>;

/// Rounds up to the 4-byte netlink alignment.
pub(crate) fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn encode_err(op: &Op, what: impl fmt::Display) -> NetlinkError {
    NetlinkError::Encode(format!("{}: {what}", op.name))
}

// --- encoding -------------------------------------------------------------

/// The value of one attribute; it must fit the attribute's [`Type`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Flag,
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Str(&'a str),
    Bytes(&'a [u8]),
}

/// A secret to write into the serialised request: top-level attribute
/// `top`, at byte `at` from its start.
struct Secret {
    top: usize,
    at: usize,
    bytes: Vec<u8>,
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Builds the attributes of one set (a message's top level, or a nest).
pub(crate) struct Writer<'b> {
    op: &'static Op,
    set: &'static AttrSet,
    /// The operation's request attributes, at the top level only.
    allowed: Option<&'static [u16]>,
    seen: Vec<u16>,
    attrs: Vec<Nla>,
    /// Where the next attribute goes, from the start of the top-level one.
    at: usize,
    top: usize,
    secrets: &'b mut Vec<Secret>,
}

impl Writer<'_> {
    /// The spec of attribute `id`, if the request may carry it (once more).
    fn spec(&mut self, id: u16) -> Result<&'static schema::Attr, NetlinkError> {
        let (op, set) = (self.op, self.set);
        let attr = set
            .get(id)
            .ok_or_else(|| encode_err(op, format!("no attribute {id} in set {}", set.name)))?;
        if self.allowed.is_some_and(|allowed| !allowed.contains(&id)) {
            return Err(encode_err(op, format!("request takes no '{}'", attr.name)));
        }
        if !attr.multi && self.seen.contains(&id) {
            return Err(encode_err(op, format!("'{}' given twice", attr.name)));
        }
        Ok(attr)
    }

    /// Appends attribute `id` with `payload` (serialised by neli).
    fn emit<P: Size + ToBytes>(
        &mut self,
        id: u16,
        nested: bool,
        payload: P,
    ) -> Result<(), NetlinkError> {
        let too_large = || encode_err(self.op, "attribute too large");
        if NLA_HDRLEN + payload.unpadded_size() > usize::from(u16::MAX) {
            return Err(too_large());
        }
        let ty = AttrTypeBuilder::default()
            .nla_type(id)
            .nla_nested(nested)
            .build()
            .map_err(|e| encode_err(self.op, e))?;
        let nla = NlattrBuilder::default()
            .nla_type(ty)
            .nla_payload(payload)
            .build()
            .map_err(|e| encode_err(self.op, e))?;
        self.at += nla.padded_size();
        self.attrs.push(nla);
        self.seen.push(id);
        Ok(())
    }

    /// Writes attribute `id` of this set, as the spec says: integers in its
    /// byte order, strings NUL-terminated, every check enforced.
    pub fn put(&mut self, id: u16, value: Value<'_>) -> Result<(), NetlinkError> {
        let a = self.spec(id)?;
        let c = a.checks;
        let fail = |what: String| Err(encode_err(self.op, format!("'{}' {what}", a.name)));
        let int = match value {
            Value::U8(v) => Some(u64::from(v)),
            Value::U16(v) => Some(u64::from(v)),
            Value::U32(v) => Some(u64::from(v)),
            Value::U64(v) => Some(v),
            _ => None,
        };
        if let Some(v) =
            int.filter(|&v| c.min.is_some_and(|m| v < m) || c.max.is_some_and(|m| v > m))
        {
            return fail(format!("value {v} out of range"));
        }
        match (a.ty, value) {
            (Type::Flag, Value::Flag) => self.emit(id, false, ()),
            (Type::U8, Value::U8(v)) => self.emit(id, false, v),
            (Type::U16, Value::U16(v)) if a.big_endian => self.emit(id, false, v.to_be_bytes()),
            (Type::U16, Value::U16(v)) => self.emit(id, false, v),
            (Type::U32, Value::U32(v)) if a.big_endian => self.emit(id, false, v.to_be_bytes()),
            (Type::U32, Value::U32(v)) => self.emit(id, false, v),
            (Type::U64, Value::U64(v)) => self.emit(id, false, v),
            (Type::String, Value::Str(s)) if s.contains('\0') => fail("contains a NUL byte".into()),
            (Type::String, Value::Str(s)) => match c.max_len {
                Some(max) if s.len() > max => fail(format!("longer than {max} bytes")),
                _ => self.emit(id, false, s),
            },
            (Type::Binary, Value::Bytes(b)) => {
                if c.exact_len.is_some_and(|n| b.len() != n)
                    || c.max_len.is_some_and(|n| b.len() > n)
                {
                    return fail(format!("has the wrong size ({} bytes)", b.len()));
                }
                if a.hint != Hint::None {
                    return self.emit(id, false, b);
                }
                // A secret: neli gets zeros, the bytes are written at encode.
                self.secrets.push(Secret {
                    top: self.top,
                    at: self.at + NLA_HDRLEN,
                    bytes: b.to_vec(),
                });
                self.emit(id, false, &vec![0; b.len()][..])
            }
            (ty, value) => fail(format!("is a {}, not {value:?}", ty.name())),
        }
    }

    /// Writes nest `id`, flagged `NLA_F_NESTED` (strict policy validation
    /// requires it), its contents written by `f` in the nested set.
    pub fn nest(
        &mut self,
        id: u16,
        f: impl FnOnce(&mut Writer<'_>) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError> {
        let a = self.spec(id)?;
        let Type::Nest(set) = a.ty else {
            return Err(encode_err(self.op, format!("'{}' is not a nest", a.name)));
        };
        let mut inner = Writer {
            op: self.op,
            set,
            allowed: None,
            seen: Vec::new(),
            attrs: Vec::new(),
            at: self.at + NLA_HDRLEN,
            top: self.top,
            secrets: self.secrets,
        };
        f(&mut inner)?;
        let children: GenlBuffer<u16, Buffer> = inner.attrs.into_iter().collect();
        self.emit(id, true, children)
            .map_err(|_| encode_err(self.op, format!("'{}' nest too large", a.name)))
    }
}

/// A top-level attribute of a request: where it sits in the message and how
/// traces and errors name it (`pod web-1`).
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub range: Range<usize>,
    pub attr: &'static schema::Attr,
    pub label: String,
}

/// A generic netlink request of one operation, checked against the spec as
/// it is built.
pub(crate) struct Request {
    pub op: &'static Op,
    dump: bool,
    /// Which of the operation's messages this is (`do`, `dump`, and in tests
    /// `reply` and `event`) and the top-level attributes it may carry.
    kind: &'static str,
    allowed: Option<&'static [u16]>,
    attrs: Vec<Nla>,
    seen: Vec<u16>,
    /// Label and spec of each top-level attribute.
    labels: Vec<(String, &'static schema::Attr)>,
    secrets: Vec<Secret>,
}

impl Request {
    /// A `do` request (acknowledged).
    pub fn new(op: &'static Op) -> Self {
        Request::of(op, false, "do", op.do_request)
    }

    /// A `dump` request.
    pub fn dump(op: &'static Op) -> Self {
        Request::of(op, true, "dump", op.dump_request)
    }

    /// A message as the kernel sends it: the reply of a `do` (or, with
    /// `dump`, one message of a dump), checked against the spec's reply
    /// attributes. For tests of the decoders.
    #[cfg(test)]
    pub fn reply(op: &'static Op, dump: bool) -> Self {
        match dump {
            true => Request::of(op, true, "dump reply", op.dump_reply),
            false => Request::of(op, false, "reply", op.do_reply),
        }
    }

    /// An event as the kernel multicasts it. For tests of the decoders.
    #[cfg(test)]
    pub fn event(op: &'static Op) -> Self {
        Request::of(op, false, "event", op.event)
    }

    fn of(
        op: &'static Op,
        dump: bool,
        kind: &'static str,
        allowed: Option<&'static [u16]>,
    ) -> Self {
        Request {
            op,
            dump,
            kind,
            allowed,
            attrs: Vec::new(),
            seen: Vec::new(),
            labels: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn top(
        &mut self,
        label: String,
        f: impl FnOnce(&mut Writer<'_>) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError> {
        let secrets = self.secrets.len();
        let mut w = Writer {
            op: self.op,
            set: self.op.set,
            allowed: Some(self.allowed.unwrap_or_default()),
            seen: std::mem::take(&mut self.seen),
            attrs: Vec::new(),
            at: 0,
            top: self.attrs.len(),
            secrets: &mut self.secrets,
        };
        let written = f(&mut w);
        let (seen, attrs) = (w.seen, w.attrs);
        self.seen = seen;
        if let Err(e) = written {
            // Nothing of a failed attribute stays (not even half a nest).
            self.secrets.truncate(secrets);
            return Err(e);
        }
        for nla in attrs {
            let id = *nla.nla_type().nla_type();
            let attr = self.op.set.get(id).expect("written by Writer");
            self.labels.push((label.clone(), attr));
            self.attrs.push(nla);
        }
        Ok(())
    }

    /// Appends top-level attribute `id`; `label` names it in traces and
    /// errors.
    pub fn put(
        &mut self,
        id: u16,
        value: Value<'_>,
        label: impl Into<String>,
    ) -> Result<(), NetlinkError> {
        self.top(label.into(), |w| w.put(id, value))
    }

    /// Builder form of [`Request::put`].
    pub fn with(
        mut self,
        id: u16,
        value: Value<'_>,
        label: impl Into<String>,
    ) -> Result<Self, NetlinkError> {
        self.put(id, value, label)?;
        Ok(self)
    }

    /// Appends top-level nest `id`, filled by `f`.
    pub fn nest(
        &mut self,
        id: u16,
        label: impl Into<String>,
        f: impl FnOnce(&mut Writer<'_>) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError> {
        self.top(label.into(), |w| w.nest(id, f))
    }

    /// Removes the last top-level attribute again.
    pub fn pop(&mut self) {
        if let Some((_, attr)) = self.labels.pop() {
            self.attrs.pop();
            let top = self.attrs.len();
            self.secrets.retain(|s| s.top != top);
            if let Some(i) = self.seen.iter().rposition(|&t| t == attr.id) {
                self.seen.remove(i);
            }
        }
    }

    /// Size of the framed message in bytes.
    pub fn size(&self) -> usize {
        NLMSG_HDRLEN + GENL_HDRLEN + self.attrs.iter().map(Size::padded_size).sum::<usize>()
    }

    /// Number of top-level attributes of type `ty`.
    #[cfg(test)]
    pub fn count(&self, ty: u16) -> usize {
        self.labels.iter().filter(|(_, a)| a.id == ty).count()
    }

    /// Frames the request for family `family` with neli: `NLM_F_REQUEST`
    /// plus `NLM_F_ACK` (do) or `NLM_F_DUMP`; then writes the secrets in.
    pub fn encode(mut self, family: u16, version: u8, seq: u32) -> Result<Encoded, NetlinkError> {
        let op = self.op;
        if self.allowed.is_none() {
            return Err(encode_err(op, format!("has no {} mode", self.kind)));
        }
        let mut spans = Vec::with_capacity(self.attrs.len());
        let mut at = NLMSG_HDRLEN + GENL_HDRLEN;
        for (nla, (label, attr)) in self.attrs.iter().zip(std::mem::take(&mut self.labels)) {
            spans.push(Span {
                range: at..at + nla.padded_size(),
                attr,
                label,
            });
            at += nla.padded_size();
        }
        let genl = GenlmsghdrBuilder::default()
            .cmd(op.cmd)
            .version(version)
            .attrs(std::mem::take(&mut self.attrs).into_iter().collect())
            .build()
            .map_err(|e| encode_err(op, e))?;
        let flags = NlmF::REQUEST | if self.dump { NlmF::DUMP } else { NlmF::ACK };
        let msg = NlmsghdrBuilder::default()
            .nl_type(family)
            .nl_flags(flags)
            .nl_seq(seq)
            .nl_pid(0) // the kernel fills it in
            .nl_payload(NlPayload::Payload(genl))
            .build()
            .map_err(|e| encode_err(op, e))?;
        if msg.padded_size() > u32::MAX as usize {
            return Err(encode_err(op, "request too large"));
        }
        // Written in place: a Vec that grew would leave copies behind.
        let mut cursor = Cursor::new(Vec::with_capacity(msg.padded_size()));
        msg.to_bytes(&mut cursor).map_err(|e| encode_err(op, e))?;
        let mut bytes = cursor.into_inner();
        for s in &self.secrets {
            let at = spans[s.top].range.start + s.at;
            bytes[at..at + s.bytes.len()].copy_from_slice(&s.bytes);
        }
        Ok(Encoded {
            op,
            seq,
            bytes,
            spans,
        })
    }
}

/// Overwrites `buf` with zeros: a request may carry a node-pair secret
/// (`peer-set`), which should not outlive it in freed memory.
pub(crate) fn wipe(buf: &mut [u8]) {
    // One wipe for the whole helper: volatile writes and a fence (the
    // workers' crate), not a best-effort `black_box` (review-agent L3).
    tlshub_worker_common::wipe(buf);
}

impl Drop for Encoded {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// A framed request, and where each of its top-level attributes sits.
pub(crate) struct Encoded {
    pub op: &'static Op,
    pub seq: u32,
    pub bytes: Vec<u8>,
    pub spans: Vec<Span>,
}

impl Encoded {
    fn span_at(&self, offset: usize) -> Option<&Span> {
        self.spans.iter().find(|s| s.range.contains(&offset))
    }

    /// Names the request attribute at byte `offset`: `pod web-1`, or
    /// `pod web-1: ipv4 10.0.0.1` for an attribute inside a nest.
    fn describe_at(&self, offset: usize) -> Option<String> {
        let span = self.span_at(offset)?;
        let Type::Nest(set) = span.attr.ty else {
            return Some(span.label.clone());
        };
        let start = span.range.start + NLA_HDRLEN;
        if offset < start {
            return Some(span.label.clone());
        }
        let mut at = start;
        let len = u16::from_ne_bytes([
            self.bytes[span.range.start],
            self.bytes[span.range.start + 1],
        ]);
        let nest = Attrs::parse(&self.bytes[start..span.range.start + usize::from(len)]).ok()?;
        for child in nest.iter() {
            let end = at + align(NLA_HDRLEN + child.payload.len());
            if (at..end).contains(&offset) {
                let Some(spec) = set.get(child.ty) else { break };
                return Some(format!("{}: {}", span.label, render(spec, child)));
            }
            at = end;
        }
        Some(span.label.clone())
    }
    /// Adds to `err` the request's operation and, in the spec's terms, the
    /// attribute the kernel objected to or found missing.
    pub fn annotate(&self, mut err: KernelError) -> KernelError {
        err.op = Some(self.op.name);
        err.context = err.offset.map(|o| {
            self.describe_at(o as usize)
                .unwrap_or(format!("offset {o}"))
        });
        if let Some(ty) = err.missing_type {
            let set = match err.missing_nest {
                None => Some(self.op.set),
                Some(nest) => {
                    let span = self.span_at(nest as usize);
                    if err.context.is_none() {
                        err.context =
                            Some(span.map_or(format!("offset {nest}"), |s| s.label.clone()));
                    }
                    span.and_then(|s| match s.attr.ty {
                        Type::Nest(set) => Some(set),
                        _ => None,
                    })
                }
            };
            let name = set.and_then(|s| u16::try_from(ty).ok().and_then(|t| s.get(t)));
            err.missing = Some(match (name, set) {
                (Some(a), Some(s)) if s.name != self.op.set.name => {
                    format!("missing attribute '{}' in {}", a.name, s.name)
                }
                (Some(a), _) => format!("missing attribute '{}'", a.name),
                (None, _) => format!("missing attribute {ty}"),
            });
        }
        err
    }
}

/// An attribute and, for numbers and addresses, its value.
/// Secrets (`binary` without a display hint) are never shown.
fn render(spec: &schema::Attr, a: RawAttr<'_>) -> String {
    let value = match (spec.hint, spec.ty, spec.enumeration) {
        (Hint::Ipv4, _, _) => a.ipv4().ok().map(|ip| ip.to_string()),
        (Hint::Ipv6, _, _) => a.ipv6().ok().map(|ip| ip.to_string()),
        (_, Type::U32, Some(e)) => a.u32().ok().map(|v| match e.name_of(v) {
            Some(name) => name.to_owned(),
            None => v.to_string(),
        }),
        (_, Type::U8, _) => a.u8().ok().map(|v| v.to_string()),
        (_, Type::U16, _) => a.u16().ok().map(|v| v.to_string()),
        (_, Type::U32, _) => a.u32().ok().map(|v| v.to_string()),
        (_, Type::U64, _) => a.u64().ok().map(|v| v.to_string()),
        _ => None,
    };
    match value {
        Some(v) => format!("{} {v}", spec.name),
        None => spec.name.to_owned(),
    }
}

/// One trace line per request: every attribute for small requests and for
/// those without pods or nodes (at most 17: `node-local-set`,
/// `service-cidr-set`, `pod-cidr-set`), counts for the large `map-stage`
/// batches.
pub(crate) fn describe_request(encoded: &Encoded) -> String {
    const LISTED: usize = 4;
    let labels: Vec<&str> = encoded.spans.iter().map(|s| s.label.as_str()).collect();
    let batch = encoded
        .spans
        .iter()
        .any(|s| matches!(s.attr.name, "pod" | "node"));
    let attrs = if labels.len() <= LISTED || !batch {
        labels.join(", ")
    } else {
        let count = |name| encoded.spans.iter().filter(|s| s.attr.name == name).count();
        let begin = if count("begin") > 0 { "begin, " } else { "" };
        format!(
            "{begin}{} nodes, {} pods ({} .. {})",
            count("node"),
            count("pod"),
            labels.iter().find(|l| **l != "begin").unwrap_or(&""),
            labels.last().unwrap_or(&"")
        )
    };
    let sep = if attrs.is_empty() { "" } else { ": " };
    format!(
        "-> {} seq {} ({} bytes){sep}{attrs}",
        encoded.op.name,
        encoded.seq,
        encoded.bytes.len()
    )
}

// --- decoding -------------------------------------------------------------

fn protocol(what: impl Into<String>) -> NetlinkError {
    NetlinkError::Protocol(what.into())
}

/// One received attribute (type without the nested/byte-order flags).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawAttr<'a> {
    pub ty: u16,
    pub payload: &'a [u8],
}

impl<'a> RawAttr<'a> {
    fn of(nla: &'a Nla) -> Self {
        RawAttr {
            ty: *nla.nla_type().nla_type(),
            payload: nla.payload().as_ref(),
        }
    }
    /// The payload, of exactly `N` bytes.
    pub fn array<const N: usize>(&self) -> Result<[u8; N], NetlinkError> {
        <[u8; N]>::try_from(self.payload)
            .map_err(|_| protocol(format!("attribute {} is not {N} bytes", self.ty)))
    }
    pub fn u8(&self) -> Result<u8, NetlinkError> {
        self.array().map(u8::from_ne_bytes)
    }
    pub fn u16(&self) -> Result<u16, NetlinkError> {
        self.array().map(u16::from_ne_bytes)
    }
    pub fn u32(&self) -> Result<u32, NetlinkError> {
        self.array().map(u32::from_ne_bytes)
    }
    /// The kernel sends u64 counters as 8 bytes (`nla_put_u64_64bit`).
    pub fn u64(&self) -> Result<u64, NetlinkError> {
        self.array().map(u64::from_ne_bytes)
    }
    /// A big-endian IPv4 address.
    pub fn ipv4(&self) -> Result<Ipv4Addr, NetlinkError> {
        self.array().map(Ipv4Addr::from)
    }
    pub fn ipv6(&self) -> Result<Ipv6Addr, NetlinkError> {
        self.array().map(Ipv6Addr::from)
    }
    /// A NUL-terminated string.
    pub fn string(&self) -> Result<String, NetlinkError> {
        let raw = self.payload.split(|&c| c == 0).next().unwrap_or_default();
        String::from_utf8(raw.to_vec())
            .map_err(|_| protocol(format!("attribute {} is not UTF-8", self.ty)))
    }
    pub fn nested(&self) -> Result<Attrs<'static>, NetlinkError> {
        Attrs::parse(self.payload)
    }
}

/// A run of attributes (neli's attribute handle): a message's own, or
/// parsed from a nest.
pub(crate) struct Attrs<'a>(AttrHandle<'a, GenlBuffer<u16, Buffer>, Nla>);

impl Attrs<'_> {
    pub fn parse(b: &[u8]) -> Result<Attrs<'static>, NetlinkError> {
        GenlBuffer::from_bytes_with_input(&mut Cursor::new(b), b.len())
            .map(|attrs| Attrs(AttrHandle::new(attrs)))
            .map_err(|e| protocol(format!("malformed attributes: {e}")))
    }

    /// The attributes of a received message.
    pub fn of(msg: &GenlMsg) -> Attrs<'_> {
        Attrs(msg.attrs().get_attr_handle())
    }

    pub fn iter(&self) -> impl Iterator<Item = RawAttr<'_>> + '_ {
        self.0.iter().map(RawAttr::of)
    }

    /// The first attribute of type `ty`.
    pub fn get(&self, ty: u16) -> Option<RawAttr<'_>> {
        self.iter().find(|a| a.ty == ty)
    }

    /// Every attribute of type `ty`.
    pub fn all(&self, ty: u16) -> impl Iterator<Item = RawAttr<'_>> + '_ {
        self.iter().filter(move |a| a.ty == ty)
    }
}

/// One message of a received datagram.
#[derive(Debug)]
pub(crate) enum Message {
    /// A generic netlink message (a `do` reply, one part of a dump, or an
    /// event): `family` is its `nlmsg_type`.
    Data {
        seq: u32,
        flags: u16,
        family: u16,
        msg: GenlMsg,
    },
    /// `NLMSG_ERROR` with error 0: the request succeeded.
    Ack { seq: u32 },
    /// `NLMSG_ERROR` with an error.
    Error { seq: u32, error: KernelError },
    /// `NLMSG_DONE`: the end of a dump, which may itself have failed.
    Done {
        seq: u32,
        flags: u16,
        error: Option<KernelError>,
    },
    /// `NLMSG_NOOP`, to be skipped.
    Noop,
}

impl Message {
    pub fn seq(&self) -> Option<u32> {
        match self {
            Message::Data { seq, .. }
            | Message::Ack { seq }
            | Message::Error { seq, .. }
            | Message::Done { seq, .. } => Some(*seq),
            Message::Noop => None,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits a datagram into messages. Each message is framed by its own
/// `nlmsg_len` and handed to neli alone, so one odd message (an ack with
/// TLVs neli does not read) cannot desynchronise the rest. The datagram is
/// the caller's receive buffer: the request an error echoes (a secret,
/// perhaps) is blanked there before neli copies anything.
pub(crate) fn parse_datagram(mut buf: &mut [u8]) -> Result<Vec<Message>, NetlinkError> {
    let mut messages = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(protocol(format!(
                "message length {len} does not fit the {} bytes received",
                buf.len()
            )));
        }
        let next = align(len).min(buf.len());
        let (msg, rest) = std::mem::take(&mut buf).split_at_mut(next);
        messages.push(parse_message(&mut msg[..len])?);
        buf = rest;
    }
    Ok(messages)
}

fn parse_message(msg: &mut [u8]) -> Result<Message, NetlinkError> {
    let flags = u16::from_ne_bytes([msg[6], msg[7]]);
    let error = u16::from_ne_bytes([msg[4], msg[5]]) == u16::from(Nlmsg::Error);
    // An error: its errno, the failed request's header, its payload unless
    // capped, then the extended ack.
    if error && msg.len() >= NLMSG_HDRLEN + 4 + NLMSG_HDRLEN && u32_at(msg, NLMSG_HDRLEN) != 0 {
        let echo = NLMSG_HDRLEN + 4;
        if flags & u16::from(NlmF::CAPPED) != 0 {
            // neli reads the echoed length as the payload's.
            msg[echo..echo + 4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        } else {
            let end = (echo + align(u32_at(msg, echo) as usize)).min(msg.len());
            wipe(&mut msg[(echo + NLMSG_HDRLEN).min(end)..end]);
        }
    }
    let msg = Nlmsghdr::<u16, Buffer>::from_bytes(&mut Cursor::new(&*msg))
        .map_err(|e| protocol(format!("malformed message: {e}")))?;
    let (seq, ty) = (*msg.nl_seq(), *msg.nl_type());
    let kernel_error = |errno: i32, tlvs: &GenlBuffer<NlmsgerrAttr, Buffer>| {
        let tlvs = tlvs
            .iter()
            .map(|a| (u16::from(a.nla_type().nla_type()), a.payload().as_ref()));
        KernelError::new(-errno).with_ext_ack(flags, tlvs)
    };
    Ok(match msg.nl_payload() {
        NlPayload::Ack(_) => Message::Ack { seq },
        NlPayload::Err(e) => Message::Error {
            seq,
            error: kernel_error(*e.error(), e.ext_ack()),
        },
        NlPayload::DumpExtAck(e) => Message::Done {
            seq,
            flags,
            error: (*e.error() != 0).then(|| kernel_error(*e.error(), e.ext_ack())),
        },
        NlPayload::Empty => Message::Done {
            seq,
            flags,
            error: None,
        },
        _ if ty == u16::from(Nlmsg::Noop) => Message::Noop,
        _ if ty == u16::from(Nlmsg::Overrun) => return Err(protocol("kernel reported overrun")),
        _ if ty == u16::from(Nlmsg::Done) || ty == u16::from(Nlmsg::Error) => {
            return Err(protocol(format!("truncated message of type {ty}")))
        }
        NlPayload::Payload(body) => Message::Data {
            seq,
            flags,
            family: ty,
            msg: GenlMsg::from_bytes_with_input(&mut Cursor::new(body.as_ref()), body.len())
                .map_err(|e| protocol(format!("malformed genetlink message: {e}")))?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::error::*;
    use super::*;
    use crate::uapi;
    use schema::{MAP_ADD, MAP_GET, MODE_SET};

    const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
    const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
    const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
    const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
    const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
    const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
    const NLM_F_DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;
    const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
    const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;

    /// An `NLMSG_ERROR` for `request` as the kernel builds it; `tlvs` are
    /// (type, payload) ext-ack attributes.
    fn error_reply(request: &[u8], errno: i32, capped: bool, tlvs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = (-errno).to_ne_bytes().to_vec();
        body.extend_from_slice(if capped {
            &request[..NLMSG_HDRLEN]
        } else {
            request
        });
        let mut flags = if capped { NLM_F_CAPPED } else { 0 };
        if !tlvs.is_empty() {
            flags |= NLM_F_ACK_TLVS;
        }
        for (ty, payload) in tlvs {
            body.extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&ty.to_ne_bytes());
            body.extend_from_slice(payload);
            body.resize(align(body.len()), 0);
        }
        let mut msg = ((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&request[8..16]); // seq, pid
        msg.extend_from_slice(&body);
        msg
    }

    fn text(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    /// map-add: a node nest, then a pod nest (name, node, two IPv4s).
    fn sample_request() -> Encoded {
        let mut r = Request::new(&MAP_ADD);
        r.nest(uapi::attr::NODE, "node n", |w| {
            w.put(uapi::node::NAME, Value::Str("n"))
        })
        .unwrap();
        r.nest(uapi::attr::POD, "pod web-1", |w| {
            w.put(uapi::pod::NAME, Value::Str("web-1"))?;
            w.put(uapi::pod::NODE, Value::Str("n"))?;
            w.put(uapi::pod::IPV4, Value::U32(0x0a00_0001))?;
            w.put(uapi::pod::IPV4, Value::U32(0x0a00_0002))
        })
        .unwrap();
        r.encode(0x20, 1, 7).unwrap()
    }

    fn error_of(reply: &[u8]) -> KernelError {
        let msgs = parse_datagram(&mut reply.to_vec()).unwrap();
        let [Message::Error { seq: 7, error }] = msgs.as_slice() else {
            panic!("{msgs:?}")
        };
        error.clone()
    }

    #[test]
    fn framing() {
        let enc = sample_request();
        let b = &enc.bytes;
        assert_eq!(u32_at(b, 0) as usize, b.len());
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 0x20);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(b, 8), 7);
        assert_eq!(&b[16..20], &[uapi::cmd::MAP_ADD, 1, 0, 0]);
        let attrs = Attrs::parse(&b[20..]).unwrap();
        let pod = attrs.get(uapi::attr::POD).unwrap().nested().unwrap();
        assert_eq!(pod.get(uapi::pod::NAME).unwrap().payload, b"web-1\0");
        assert_eq!(pod.get(uapi::pod::IPV4).unwrap().payload, &[10, 0, 0, 1]);
        assert_eq!(pod.all(uapi::pod::IPV4).count(), 2);
        let nested_flag = u16::from_ne_bytes([
            b[enc.spans[1].range.start + 2],
            b[enc.spans[1].range.start + 3],
        ]);
        assert_eq!(nested_flag, uapi::attr::POD | NLA_F_NESTED);
        assert_eq!(enc.spans[0].range.start, 20);
        let dump = Request::dump(&MAP_GET).encode(0x20, 1, 8).unwrap();
        assert_eq!(
            u16::from_ne_bytes([dump.bytes[6], dump.bytes[7]]),
            NLM_F_REQUEST | NLM_F_DUMP
        );
    }

    /// The bytes on the wire, assembled by hand: neli's framing is the
    /// kernel's (lengths, padding, `NLA_F_NESTED`), byte for byte.
    #[test]
    fn wire_bytes() {
        fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
            let mut v = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
            v.extend_from_slice(&ty.to_ne_bytes());
            v.extend_from_slice(payload);
            v.resize(align(v.len()), 0);
            v
        }
        let node = nla(uapi::node::NAME, b"n\0");
        let pod = [
            nla(uapi::pod::NAME, b"web-1\0"),
            nla(uapi::pod::NODE, b"n\0"),
            nla(uapi::pod::IPV4, &[10, 0, 0, 1]),
            nla(uapi::pod::IPV4, &[10, 0, 0, 2]),
        ]
        .concat();
        let attrs = [
            nla(uapi::attr::NODE | NLA_F_NESTED, &node),
            nla(uapi::attr::POD | NLA_F_NESTED, &pod),
        ]
        .concat();
        let mut expected = ((20 + attrs.len()) as u32).to_ne_bytes().to_vec();
        expected.extend_from_slice(&0x20u16.to_ne_bytes());
        expected.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        expected.extend_from_slice(&7u32.to_ne_bytes());
        expected.extend_from_slice(&0u32.to_ne_bytes());
        expected.extend_from_slice(&[uapi::cmd::MAP_ADD, 1, 0, 0]);
        expected.extend_from_slice(&attrs);
        assert_eq!(sample_request().bytes, expected);
    }

    /// A secret never enters neli's buffers (freed unwiped): they hold
    /// zeros of its size, and the secret is written into the request's own
    /// bytes, which are wiped.
    #[test]
    fn secrets_stay_out_of_neli_buffers() {
        let psk = [0x5a; 32];
        let mut r = Request::new(&schema::PEER_SET);
        r.nest(uapi::attr::PEER, "peer n2", |w| {
            w.put(uapi::peer::NAME, Value::Str("n2"))?;
            w.put(uapi::peer::PSK, Value::Bytes(&psk))?;
            w.put(uapi::peer::EPOCH, Value::U64(3))
        })
        .unwrap();
        let has_psk = |b: &[u8]| b.windows(32).any(|w| w == psk);
        assert!(r.attrs.iter().all(|a| !has_psk(a.payload().as_ref())));
        let enc = r.encode(0x20, 1, 1).unwrap();
        let attrs = Attrs::parse(&enc.bytes[20..]).unwrap();
        let peer = attrs.get(uapi::attr::PEER).unwrap().nested().unwrap();
        assert_eq!(peer.get(uapi::peer::PSK).unwrap().payload, psk);
        assert_eq!(peer.get(uapi::peer::EPOCH).unwrap().u64().unwrap(), 3);
        // Dropped with the request, the attribute it was in gone too.
        let mut r = Request::new(&schema::PEER_SET);
        r.nest(uapi::attr::PEER, "p", |w| {
            w.put(uapi::peer::PSK, Value::Bytes(&psk))
        })
        .unwrap();
        r.pop();
        assert!(r.secrets.is_empty());
    }

    #[test]
    fn encoder_enforces_the_spec() {
        let err = |r: Result<(), NetlinkError>| r.unwrap_err().to_string();
        let mut r = Request::new(&MODE_SET);
        assert_eq!(
            err(r.put(uapi::attr::MODE, Value::U32(3), "mode")),
            "cannot encode request: mode-set: 'mode' value 3 out of range"
        );
        assert_eq!(
            err(r.put(uapi::attr::POD_NAME, Value::Str("x"), "x")),
            "cannot encode request: mode-set: request takes no 'pod-name'"
        );
        r.put(uapi::attr::MODE, Value::U32(2), "mode").unwrap();
        assert_eq!(
            err(r.put(uapi::attr::MODE, Value::U32(1), "mode")),
            "cannot encode request: mode-set: 'mode' given twice"
        );
        let mut r = Request::new(&MAP_GET);
        assert_eq!(
            err(r.put(uapi::attr::IPV4, Value::Str("10.0.0.1"), "ip")),
            "cannot encode request: map-get: 'ipv4' is a u32, not Str(\"10.0.0.1\")"
        );
        assert_eq!(
            err(r.put(uapi::attr::IPV6, Value::Bytes(&[0; 4]), "ip")),
            "cannot encode request: map-get: 'ipv6' has the wrong size (4 bytes)"
        );
        let long = "a".repeat(uapi::POD_NAME_MAX_LEN + 1);
        assert_eq!(
            err(r.put(uapi::attr::POD_NAME, Value::Str(&long), "p")),
            "cannot encode request: map-get: 'pod-name' longer than 317 bytes"
        );
        assert_eq!(
            r.size(),
            NLMSG_HDRLEN + GENL_HDRLEN,
            "failed puts leave nothing"
        );
        assert!(Request::dump(&MODE_SET).encode(1, 1, 1).is_err());
        let mut r = Request::new(&MAP_ADD);
        let nested = r.nest(uapi::attr::POD, "p", |w| {
            w.put(uapi::pod::HOST_NETWORK, Value::Flag)?;
            w.put(uapi::pod::HOST_NETWORK, Value::Flag)
        });
        assert_eq!(
            err(nested),
            "cannot encode request: map-add: 'host-network' given twice"
        );
    }

    #[test]
    fn error_with_message_and_offset_into_a_nest() {
        let enc = sample_request();
        let pod = enc.spans[1].range.start;
        // The second ipv4 of the pod: header 4 + name 12 + node 8 + ipv4 8.
        let offset = (pod + 4 + 12 + 8 + 8) as u32;
        let reply = error_reply(
            &enc.bytes,
            libc::EEXIST,
            false,
            &[
                (
                    NLMSGERR_ATTR_MSG,
                    text("IP address already belongs to a pod"),
                ),
                (NLMSGERR_ATTR_OFFS, offset.to_ne_bytes().to_vec()),
            ],
        );
        let error = error_of(&reply);
        assert_eq!(
            error.to_string(),
            "kernel: File exists (EEXIST): IP address already belongs to a pod"
        );
        assert_eq!(
            enc.annotate(error).to_string(),
            "kernel: File exists (EEXIST): IP address already belongs to a pod \
             (at pod web-1: ipv4 10.0.0.2)"
        );
        // Pointing at the nest itself names just the pod.
        let reply = error_reply(
            &enc.bytes,
            libc::EINVAL,
            true,
            &[(NLMSGERR_ATTR_OFFS, (pod as u32).to_ne_bytes().to_vec())],
        );
        assert_eq!(
            enc.annotate(error_of(&reply)).to_string(),
            "kernel: Invalid argument (EINVAL) (at pod web-1)"
        );
    }

    #[test]
    fn policy_violation_shows_the_bound() {
        let enc = sample_request();
        let name = enc.spans[1].range.start as u32 + 4;
        let mut policy = Vec::new();
        for (ty, v) in [(1u16, 5u32), (NL_POLICY_TYPE_ATTR_MAX_LENGTH, 317)] {
            policy.extend_from_slice(&8u16.to_ne_bytes());
            policy.extend_from_slice(&ty.to_ne_bytes());
            policy.extend_from_slice(&v.to_ne_bytes());
        }
        let reply = error_reply(
            &enc.bytes,
            libc::ERANGE,
            false,
            &[
                (
                    NLMSGERR_ATTR_MSG,
                    text("Attribute failed policy validation"),
                ),
                (NLMSGERR_ATTR_OFFS, name.to_ne_bytes().to_vec()),
                (NLMSGERR_ATTR_POLICY, policy),
            ],
        );
        assert_eq!(
            enc.annotate(error_of(&reply)).to_string(),
            "kernel: Math result not representable (ERANGE): Attribute failed policy validation; \
             length must be at most 317 (at pod web-1: name)"
        );
    }

    #[test]
    fn missing_attribute_in_a_nest() {
        let enc = sample_request();
        let reply = error_reply(
            &enc.bytes,
            libc::EINVAL,
            true,
            &[
                (
                    NLMSGERR_ATTR_MISS_TYPE,
                    u32::from(uapi::pod::NODE).to_ne_bytes().to_vec(),
                ),
                (
                    NLMSGERR_ATTR_MISS_NEST,
                    (enc.spans[1].range.start as u32).to_ne_bytes().to_vec(),
                ),
            ],
        );
        let error = enc.annotate(error_of(&reply));
        assert_eq!(error.op, Some("map-add"));
        assert_eq!(
            error.to_string(),
            "kernel: Invalid argument (EINVAL): missing attribute 'node' in pod (at pod web-1)"
        );
        // At the top level, without a nest.
        let reply = error_reply(
            &enc.bytes,
            libc::EINVAL,
            true,
            &[(
                NLMSGERR_ATTR_MISS_TYPE,
                u32::from(uapi::attr::POD_NAME).to_ne_bytes().to_vec(),
            )],
        );
        assert_eq!(
            enc.annotate(error_of(&reply)).to_string(),
            "kernel: Invalid argument (EINVAL): missing attribute 'pod-name'"
        );
    }

    #[test]
    fn error_ack_and_done_in_one_datagram() {
        let enc = sample_request();
        let mut dgram = error_reply(&enc.bytes, libc::EPERM, false, &[]);
        let mut ack = error_reply(&enc.bytes, 0, true, &[]);
        ack[8..12].copy_from_slice(&8u32.to_ne_bytes());
        dgram.extend_from_slice(&ack);
        let mut done = 20u32.to_ne_bytes().to_vec();
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&(libc::NLM_F_MULTI as u16 | NLM_F_DUMP_INTR).to_ne_bytes());
        done.extend_from_slice(&9u32.to_ne_bytes());
        done.extend_from_slice(&0u32.to_ne_bytes());
        done.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        dgram.extend_from_slice(&done);
        let msgs = parse_datagram(&mut dgram).unwrap();
        assert_eq!(msgs.len(), 3);
        let Message::Error { error, .. } = &msgs[0] else {
            panic!()
        };
        assert_eq!(error.to_string(), "kernel: Operation not permitted (EPERM)");
        assert!(matches!(msgs[1], Message::Ack { seq: 8 }));
        let Message::Done {
            seq: 9,
            flags,
            error: Some(e),
        } = &msgs[2]
        else {
            panic!()
        };
        assert_eq!(e.errno, libc::ENOENT);
        assert_ne!(flags & NLM_F_DUMP_INTR, 0);
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        let mut b = sample_request().bytes.clone();
        b[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_datagram(&mut b).is_err());
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_datagram(&mut b).is_err());
        assert!(Attrs::parse(&[9, 0, 1, 0, 0]).is_err());
    }

    #[test]
    fn errno_names() {
        assert_eq!(describe_errno(libc::EINVAL), "Invalid argument (EINVAL)");
        assert_eq!(
            describe_errno(libc::ERANGE),
            "Math result not representable (ERANGE)"
        );
        assert_eq!(describe_errno(4000), "unknown error (errno 4000)");
    }
}
