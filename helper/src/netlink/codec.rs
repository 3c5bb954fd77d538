//! Netlink framing driven by the [`schema`] table: requests are built
//! attribute by attribute and checked against the spec as they are written;
//! received datagrams are split into messages; kernel errors carry their
//! extended ack, mapped back onto the request attribute it points at.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::error::KernelError;
use super::schema::{self, AttrSet, Hint, Op, Type};
use super::NetlinkError;

/// `sizeof(struct nlmsghdr)`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct genlmsghdr)`.
pub(crate) const GENL_HDRLEN: usize = 4;
const NLA_HDRLEN: usize = 4;

const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
const NLA_TYPE_MASK: u16 = libc::NLA_TYPE_MASK as u16;
const NLMSG_NOOP: u16 = libc::NLMSG_NOOP as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
const NLMSG_OVERRUN: u16 = libc::NLMSG_OVERRUN as u16;
pub(crate) const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
pub(crate) const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
pub(crate) const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
pub(crate) const NLM_F_DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;
const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
pub(crate) const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;

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

/// Writes the attributes of one set (a message's top level, or a nest).
pub(crate) struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    op: &'static Op,
    set: &'static AttrSet,
    /// The operation's request attributes, at the top level only.
    allowed: Option<&'static [u16]>,
    seen: Vec<u16>,
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

    fn emit(&mut self, ty: u16, parts: &[&[u8]]) -> Result<(), NetlinkError> {
        let len = NLA_HDRLEN + parts.iter().map(|p| p.len()).sum::<usize>();
        let len = u16::try_from(len).map_err(|_| encode_err(self.op, "attribute too large"))?;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        self.buf.resize(align(self.buf.len()), 0);
        Ok(())
    }

    /// Writes attribute `id` of this set, as the spec says: integers in its
    /// byte order, strings NUL-terminated, every check enforced.
    pub fn put(&mut self, id: u16, value: Value<'_>) -> Result<(), NetlinkError> {
        let a = self.spec(id)?;
        self.write(a, value)?;
        self.seen.push(id);
        Ok(())
    }

    fn write(&mut self, a: &'static schema::Attr, value: Value<'_>) -> Result<(), NetlinkError> {
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
            (Type::Flag, Value::Flag) => self.emit(a.id, &[]),
            (Type::U8, Value::U8(v)) => self.emit(a.id, &[&[v]]),
            (Type::U16, Value::U16(v)) => {
                let bytes = if a.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_ne_bytes()
                };
                self.emit(a.id, &[&bytes])
            }
            (Type::U32, Value::U32(v)) => {
                let bytes = if a.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_ne_bytes()
                };
                self.emit(a.id, &[&bytes])
            }
            (Type::U64, Value::U64(v)) => self.emit(a.id, &[&v.to_ne_bytes()]),
            (Type::String, Value::Str(s)) if s.contains('\0') => fail("contains a NUL byte".into()),
            (Type::String, Value::Str(s)) => match c.max_len {
                Some(max) if s.len() > max => fail(format!("longer than {max} bytes")),
                _ => self.emit(a.id, &[s.as_bytes(), &[0]]),
            },
            (Type::Binary, Value::Bytes(b)) => {
                if c.exact_len.is_some_and(|n| b.len() != n)
                    || c.max_len.is_some_and(|n| b.len() > n)
                {
                    return fail(format!("has the wrong size ({} bytes)", b.len()));
                }
                self.emit(a.id, &[b])
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
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; NLA_HDRLEN]);
        let mut inner = Writer {
            buf: self.buf,
            op: self.op,
            set,
            allowed: None,
            seen: Vec::new(),
        };
        f(&mut inner)?;
        let len = u16::try_from(self.buf.len() - start)
            .map_err(|_| encode_err(self.op, format!("'{}' nest too large", a.name)))?;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&(id | NLA_F_NESTED).to_ne_bytes());
        self.seen.push(id);
        Ok(())
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

/// Bytes reserved for a request's attributes when it is created.
const REQUEST_RESERVE: usize = 512;

/// A generic netlink request of one operation, checked against the spec as
/// it is built.
pub(crate) struct Request {
    pub op: &'static Op,
    dump: bool,
    /// Which of the operation's messages this is (`do`, `dump`, and in tests
    /// `reply` and `event`) and the top-level attributes it may carry.
    kind: &'static str,
    allowed: Option<&'static [u16]>,
    attrs: Vec<u8>,
    seen: Vec<u16>,
    spans: Vec<Span>,
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
            // Room for any small request up front: growing would leave
            // copies of a secret in freed memory.
            attrs: Vec::with_capacity(REQUEST_RESERVE),
            seen: Vec::new(),
            spans: Vec::new(),
        }
    }

    fn allowed(&self) -> Option<&'static [u16]> {
        self.allowed
    }

    fn top(
        &mut self,
        label: String,
        f: impl FnOnce(&mut Writer<'_>) -> Result<(), NetlinkError>,
    ) -> Result<(), NetlinkError> {
        let start = self.attrs.len();
        let allowed = Some(self.allowed().unwrap_or_default());
        let mut w = Writer {
            buf: &mut self.attrs,
            op: self.op,
            set: self.op.set,
            allowed,
            seen: std::mem::take(&mut self.seen),
        };
        let written = f(&mut w);
        self.seen = w.seen;
        if let Err(e) = written {
            // Nothing of a failed attribute stays (not even half a nest).
            self.attrs.truncate(start);
            return Err(e);
        }
        let ty = u16::from_ne_bytes([self.attrs[start + 2], self.attrs[start + 3]]);
        let attr = self
            .op
            .set
            .get(ty & NLA_TYPE_MASK)
            .expect("written by Writer");
        let base = NLMSG_HDRLEN + GENL_HDRLEN;
        self.spans.push(Span {
            range: base + start..base + self.attrs.len(),
            attr,
            label,
        });
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
        if let Some(span) = self.spans.pop() {
            self.attrs
                .truncate(span.range.start - NLMSG_HDRLEN - GENL_HDRLEN);
            if let Some(i) = self.seen.iter().rposition(|&t| t == span.attr.id) {
                self.seen.remove(i);
            }
        }
    }

    /// Size of the framed message in bytes.
    pub fn size(&self) -> usize {
        NLMSG_HDRLEN + GENL_HDRLEN + self.attrs.len()
    }

    /// Number of top-level attributes of type `ty`.
    #[cfg(test)]
    pub fn count(&self, ty: u16) -> usize {
        self.spans.iter().filter(|s| s.attr.id == ty).count()
    }

    /// Frames the request for family `family`: `NLM_F_REQUEST` plus
    /// `NLM_F_ACK` (do) or `NLM_F_DUMP`.
    pub fn encode(mut self, family: u16, version: u8, seq: u32) -> Result<Encoded, NetlinkError> {
        if self.allowed().is_none() {
            return Err(encode_err(self.op, format!("has no {} mode", self.kind)));
        }
        let flags = NLM_F_REQUEST | if self.dump { NLM_F_DUMP } else { NLM_F_ACK };
        let len =
            u32::try_from(self.size()).map_err(|_| encode_err(self.op, "request too large"))?;
        let mut bytes = Vec::with_capacity(self.size());
        bytes.extend_from_slice(&len.to_ne_bytes());
        bytes.extend_from_slice(&family.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&seq.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        bytes.extend_from_slice(&[self.op.cmd, version, 0, 0]);
        bytes.extend_from_slice(&self.attrs);
        Ok(Encoded {
            op: self.op,
            seq,
            bytes,
            spans: std::mem::take(&mut self.spans),
        })
    }
}

/// Overwrites `buf` with zeros: a request may carry a node-pair secret
/// (`peer-set`), which should not outlive it in freed memory.
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    // Keeps the writes from being optimised away as dead stores.
    std::hint::black_box(buf);
}

impl Drop for Request {
    fn drop(&mut self) {
        wipe(&mut self.attrs);
    }
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
        for child in Attrs::parse(&self.bytes[start..span.range.end])
            .ok()?
            .iter()
        {
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
    pub fn nested(&self) -> Result<Attrs<'a>, NetlinkError> {
        Attrs::parse(self.payload)
    }
}

/// A run of attributes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attrs<'a>(Vec<RawAttr<'a>>);

impl<'a> Attrs<'a> {
    pub fn parse(mut b: &'a [u8]) -> Result<Self, NetlinkError> {
        let mut out = Vec::new();
        while b.len() >= NLA_HDRLEN {
            let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
            let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
            if len < NLA_HDRLEN || len > b.len() {
                return Err(protocol(format!(
                    "attribute length {len} does not fit {} bytes",
                    b.len()
                )));
            }
            out.push(RawAttr {
                ty,
                payload: &b[NLA_HDRLEN..len],
            });
            b = &b[align(len).min(b.len())..];
        }
        Ok(Attrs(out))
    }

    pub fn iter(&self) -> impl Iterator<Item = RawAttr<'a>> + '_ {
        self.0.iter().copied()
    }

    /// The first attribute of type `ty`.
    pub fn get(&self, ty: u16) -> Option<RawAttr<'a>> {
        self.iter().find(|a| a.ty == ty)
    }

    /// Every attribute of type `ty`.
    pub fn all(&self, ty: u16) -> impl Iterator<Item = RawAttr<'a>> + '_ {
        self.iter().filter(move |a| a.ty == ty)
    }
}

/// One message of a received datagram.
#[derive(Debug)]
pub(crate) enum Message {
    /// A generic netlink message (a `do` reply, one part of a dump, or an
    /// event): `family` is its `nlmsg_type`, `cmd` the genetlink command, and
    /// `attrs` the bytes after the genetlink header.
    Data {
        seq: u32,
        flags: u16,
        family: u16,
        cmd: u8,
        attrs: Vec<u8>,
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
/// `nlmsg_len`, so one odd message cannot desynchronise the rest.
pub(crate) fn parse_datagram(mut buf: &[u8]) -> Result<Vec<Message>, NetlinkError> {
    let mut messages = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(protocol(format!(
                "message length {len} does not fit the {} bytes received",
                buf.len()
            )));
        }
        messages.push(parse_message(&buf[..len])?);
        buf = &buf[align(len).min(buf.len())..];
    }
    Ok(messages)
}

fn parse_message(msg: &[u8]) -> Result<Message, NetlinkError> {
    let ty = u16::from_ne_bytes([msg[4], msg[5]]);
    let flags = u16::from_ne_bytes([msg[6], msg[7]]);
    let seq = u32_at(msg, 8);
    let body = &msg[NLMSG_HDRLEN..];
    // NLMSG_ERROR and NLMSG_DONE start with a negative errno.
    let errno = || (body.len() >= 4).then(|| -(u32_at(body, 0) as i32));
    match ty {
        NLMSG_NOOP => Ok(Message::Noop),
        NLMSG_OVERRUN => Err(protocol("kernel reported overrun")),
        NLMSG_ERROR => {
            let errno = errno().ok_or_else(|| protocol("truncated error message"))?;
            if errno == 0 {
                return Ok(Message::Ack { seq });
            }
            // Then the failed request's header, and its payload unless capped;
            // then the extended ack.
            let echoed = match body.get(4..8) {
                Some(_) if flags & NLM_F_CAPPED == 0 => align(u32_at(body, 4) as usize),
                _ => NLMSG_HDRLEN,
            };
            let tlvs = body.get(4 + echoed..).unwrap_or_default();
            let error = KernelError::new(errno).with_ext_ack(flags, tlvs);
            Ok(Message::Error { seq, error })
        }
        NLMSG_DONE => {
            let error = errno()
                .filter(|&e| e != 0)
                .map(|e| KernelError::new(e).with_ext_ack(flags, &body[4..]));
            Ok(Message::Done { seq, flags, error })
        }
        _ => {
            let attrs = body
                .get(GENL_HDRLEN..)
                .ok_or_else(|| protocol("reply without genetlink header"))?;
            Ok(Message::Data {
                seq,
                flags,
                family: ty,
                cmd: body[0],
                attrs: attrs.to_vec(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::error::*;
    use super::*;
    use crate::uapi;
    use schema::{MAP_ADD, MAP_GET, MODE_SET};

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
        let msgs = parse_datagram(reply).unwrap();
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
        let msgs = parse_datagram(&dgram).unwrap();
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
        assert!(parse_datagram(&b).is_err());
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_datagram(&b).is_err());
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
