//! Netlink framing: turning requests into bytes and datagrams into messages.
//!
//! Requests and generic netlink payloads go through neli's types. The
//! `NLMSG_ERROR` / `NLMSG_DONE` control messages are decoded here instead:
//! neli always expects the kernel to echo the whole failed request, but the
//! kernel omits it for acks and on `NETLINK_CAP_ACK` sockets (it says so with
//! `NLM_F_CAPPED`), and the extended-ack attributes that carry the kernel's
//! error text sit right after that echo. Framing every message by its own
//! `nlmsg_len` also means one odd message can never desynchronise the rest of
//! a datagram.

use std::fmt;
use std::io::Cursor;
use std::ops::Range;

use neli::consts::nl::NlmF;
use neli::genl::{
    AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder, NoUserHeader,
};
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::types::{Buffer, GenlBuffer};
use neli::{FromBytesWithInput, Size, ToBytes};

use super::NetlinkError;
use crate::uapi;

/// A generic netlink attribute with an undecoded payload.
pub(crate) type Attr = Nlattr<u16, Buffer>;

/// A decoded generic netlink message: command, version and attributes.
pub(crate) type GenlMsg = Genlmsghdr<u8, u16>;

/// `sizeof(struct nlmsghdr)`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct genlmsghdr)`.
pub(crate) const GENL_HDRLEN: usize = 4;

// Control message types and extended-ack attributes, from
// include/uapi/linux/netlink.h.
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;
const NLMSGERR_ATTR_MISS_NEST: u16 = 6;

/// Rounds up to the 4-byte netlink alignment.
pub(crate) fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn encode_err(e: impl fmt::Display) -> NetlinkError {
    NetlinkError::Encode(e.to_string())
}

/// An attribute of type `ty` holding `payload` (native-endian integers,
/// NUL-terminated `&str`, raw `[u8; N]`).
pub(crate) fn attr(ty: u16, payload: impl Size + ToBytes) -> Result<Attr, NetlinkError> {
    NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(ty)
                .build()
                .map_err(encode_err)?,
        )
        .nla_payload(payload)
        .build()
        .map_err(encode_err)
}

/// A nest of type `ty` around `children`, flagged `NLA_F_NESTED` as strict
/// kernel policy validation requires.
pub(crate) fn nest(ty: u16, children: &[Attr]) -> Result<Attr, NetlinkError> {
    let mut nest = NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(ty)
                .nla_nested(true)
                .build()
                .map_err(encode_err)?,
        )
        .nla_payload(Buffer::new())
        .build()
        .map_err(encode_err)?;
    for child in children {
        nest = nest.nest(child).map_err(encode_err)?;
    }
    Ok(nest)
}

/// The attribute's type with the nested/byte-order flag bits removed.
pub(crate) fn attr_type(a: &Attr) -> u16 {
    *a.nla_type().nla_type()
}

/// The attributes inside a nest.
pub(crate) fn nested(a: &Attr) -> Result<GenlBuffer<u16, Buffer>, NetlinkError> {
    parse_attrs(a.nla_payload().as_ref())
}

/// A run of attributes.
pub(crate) fn parse_attrs(bytes: &[u8]) -> Result<GenlBuffer<u16, Buffer>, NetlinkError> {
    GenlBuffer::from_bytes_with_input(&mut Cursor::new(bytes), bytes.len())
        .map_err(|e| NetlinkError::Protocol(format!("malformed attributes: {e}")))
}

/// One top-level attribute of a request, remembered so that the kernel's
/// error offset can be turned back into "which pod was wrong".
#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub ty: u16,
    pub text: String,
}

/// A generic netlink request before it is numbered and framed.
pub(crate) struct Request {
    pub cmd: u8,
    attrs: GenlBuffer<u16, Buffer>,
    labels: Vec<Label>,
    size: usize,
}

impl Request {
    pub fn new(cmd: u8) -> Self {
        Request {
            cmd,
            attrs: GenlBuffer::new(),
            labels: Vec::new(),
            size: NLMSG_HDRLEN + GENL_HDRLEN,
        }
    }

    /// Appends an attribute; `label` is how traces and errors name it.
    pub fn push(&mut self, a: Attr, label: impl Into<String>) {
        self.size += a.padded_size();
        self.labels.push(Label {
            ty: attr_type(&a),
            text: label.into(),
        });
        self.attrs.push(a);
    }

    /// Builder form of [`Request::push`].
    pub fn with(mut self, a: Attr, label: impl Into<String>) -> Self {
        self.push(a, label);
        self
    }

    /// Size of the framed message in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of attributes of type `ty`.
    #[cfg(test)]
    pub fn count(&self, ty: u16) -> usize {
        self.labels.iter().filter(|l| l.ty == ty).count()
    }

    /// Frames the request for `family` (`NLM_F_REQUEST` is always added).
    pub fn encode(
        self,
        family: u16,
        version: u8,
        flags: NlmF,
        seq: u32,
    ) -> Result<Encoded, NetlinkError> {
        let mut spans = Vec::with_capacity(self.labels.len());
        let mut offset = NLMSG_HDRLEN + GENL_HDRLEN;
        for (a, label) in self.attrs.iter().zip(self.labels) {
            spans.push((offset..offset + a.padded_size(), label));
            offset += a.padded_size();
        }
        let genl = GenlmsghdrBuilder::<u8, u16, NoUserHeader>::default()
            .cmd(self.cmd)
            .version(version)
            .attrs(self.attrs)
            .build()
            .map_err(encode_err)?;
        let msg = NlmsghdrBuilder::default()
            .nl_type(family)
            .nl_flags(flags | NlmF::REQUEST)
            .nl_seq(seq)
            .nl_pid(0)
            .nl_payload(NlPayload::Payload(genl))
            .build()
            .map_err(encode_err)?;
        let mut cursor = Cursor::new(Vec::with_capacity(msg.padded_size()));
        msg.to_bytes(&mut cursor).map_err(encode_err)?;
        Ok(Encoded {
            seq,
            bytes: cursor.into_inner(),
            spans,
        })
    }
}

/// A framed request and the byte range of each of its top-level attributes.
pub(crate) struct Encoded {
    pub seq: u32,
    pub bytes: Vec<u8>,
    pub spans: Vec<(Range<usize>, Label)>,
}

impl Encoded {
    /// The top-level attribute containing byte `offset` of the request.
    fn label_at(&self, offset: usize) -> Option<&Label> {
        self.spans
            .iter()
            .find(|(range, _)| range.contains(&offset))
            .map(|(_, label)| label)
    }

    /// Adds to `err` which attribute of this request the kernel objected to,
    /// named in the terms of the spec.
    pub fn annotate(&self, mut err: KernelError) -> KernelError {
        if let Some(label) = err.offset.and_then(|o| self.label_at(o as usize)) {
            err.context = Some(label.text.clone());
        }
        if let Some(ty) = err.missing_type {
            let nest = match err.missing_nest {
                None => Some(None),
                Some(offset) => self.label_at(offset as usize).map(|label| {
                    err.context.get_or_insert_with(|| label.text.clone());
                    Some(label.ty)
                }),
            };
            err.missing_name = nest.and_then(|nest| attr_name(nest, ty)).map(str::to_owned);
        }
        err
    }
}

/// Spec name of attribute `ty`: of the top-level `tlshub` set when `nest` is
/// `None`, else of the set nested in a top-level attribute of type `nest`.
fn attr_name(nest: Option<u16>, ty: u32) -> Option<&'static str> {
    let ty = u16::try_from(ty).ok()?;
    let names: &[(u16, &str)] = match nest {
        None => &[
            (uapi::attr::MODE, "mode"),
            (uapi::attr::VERSION, "version"),
            (uapi::attr::POD, "pod"),
            (uapi::attr::NODE, "node"),
            (uapi::attr::POD_COUNT, "pod-count"),
            (uapi::attr::NODE_COUNT, "node-count"),
            (uapi::attr::GENERATION, "generation"),
            (uapi::attr::BEGIN, "begin"),
            (uapi::attr::POD_NAME, "pod-name"),
            (uapi::attr::NODE_NAME, "node-name"),
            (uapi::attr::IPV4, "ipv4"),
            (uapi::attr::IPV6, "ipv6"),
            (uapi::attr::STATS, "stats"),
        ],
        Some(uapi::attr::POD) => &[
            (uapi::pod::NAME, "name"),
            (uapi::pod::NODE, "node"),
            (uapi::pod::IPV4, "ipv4"),
            (uapi::pod::IPV6, "ipv6"),
        ],
        Some(uapi::attr::NODE) => &[
            (uapi::node::NAME, "name"),
            (uapi::node::IPV4, "ipv4"),
            (uapi::node::IPV6, "ipv6"),
            (uapi::node::PORT, "port"),
        ],
        Some(_) => &[],
    };
    names.iter().find(|(t, _)| *t == ty).map(|(_, n)| *n)
}

/// An error the kernel returned for a request, with its extended ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError {
    /// Positive errno.
    pub errno: i32,
    /// `NLMSGERR_ATTR_MSG`: the kernel's explanation, if it gave one.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: byte offset of the offending attribute.
    pub offset: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_TYPE`: a required attribute that was missing.
    pub missing_type: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_NEST`: offset of the nest it was missing from.
    pub missing_nest: Option<u32>,
    /// Spec name of the missing attribute, when known.
    pub missing_name: Option<String>,
    /// The request attribute the error points at, e.g. `pod web-1`.
    pub context: Option<String>,
}

impl KernelError {
    pub(crate) fn new(errno: i32) -> Self {
        KernelError {
            errno,
            message: None,
            offset: None,
            missing_type: None,
            missing_nest: None,
            missing_name: None,
            context: None,
        }
    }

    /// Fills in the extended-ack attributes found in `tlvs`.
    fn with_ext_ack(mut self, tlvs: &[u8]) -> Self {
        // The error code is what matters; a garbled ext-ack only loses detail.
        let Ok(attrs) = parse_attrs(tlvs) else {
            return self;
        };
        for a in attrs.iter() {
            let payload = a.nla_payload().as_ref();
            let as_u32 = || <[u8; 4]>::try_from(payload).ok().map(u32::from_ne_bytes);
            match attr_type(a) {
                NLMSGERR_ATTR_MSG => {
                    let text = payload.split(|&c| c == 0).next().unwrap_or_default();
                    let text = String::from_utf8_lossy(text).trim().to_owned();
                    self.message = Some(text).filter(|t| !t.is_empty());
                }
                NLMSGERR_ATTR_OFFS => self.offset = as_u32(),
                NLMSGERR_ATTR_MISS_TYPE => self.missing_type = as_u32(),
                NLMSGERR_ATTR_MISS_NEST => self.missing_nest = as_u32(),
                _ => {}
            }
        }
        self
    }
}

impl fmt::Display for KernelError {
    /// `kernel: Invalid argument (EINVAL): pod name missing (at pod web-1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel: {}", describe_errno(self.errno))?;
        let missing = match (&self.missing_name, self.missing_type) {
            (Some(name), _) => Some(format!("missing attribute '{name}'")),
            (None, Some(ty)) => Some(format!("missing attribute {ty}")),
            (None, None) => None,
        };
        let details: Vec<&str> = self
            .message
            .as_deref()
            .into_iter()
            .chain(missing.as_deref())
            .collect();
        if !details.is_empty() {
            write!(f, ": {}", details.join("; "))?;
        }
        if let Some(context) = &self.context {
            write!(f, " (at {context})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelError {}

/// `Invalid argument (EINVAL)`: strerror plus the symbolic name, since the
/// name is what people search kernel sources for.
pub(crate) fn describe_errno(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // std renders "Invalid argument (os error 22)"; keep only the text.
    let text = match text.rsplit_once(" (os error") {
        Some((text, _)) => text.to_owned(),
        None => text,
    };
    match errno_name(errno) {
        Some(name) => format!("{text} ({name})"),
        None => format!("{text} (errno {errno})"),
    }
}

fn errno_name(errno: i32) -> Option<&'static str> {
    use libc::*;
    Some(match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        E2BIG => "E2BIG",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        ENOSPC => "ENOSPC",
        ERANGE => "ERANGE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ENODATA => "ENODATA",
        EPROTO => "EPROTO",
        EMSGSIZE => "EMSGSIZE",
        EOPNOTSUPP => "EOPNOTSUPP",
        EADDRINUSE => "EADDRINUSE",
        EADDRNOTAVAIL => "EADDRNOTAVAIL",
        ENOBUFS => "ENOBUFS",
        ETIMEDOUT => "ETIMEDOUT",
        EALREADY => "EALREADY",
        EINPROGRESS => "EINPROGRESS",
        ESTALE => "ESTALE",
        ECANCELED => "ECANCELED",
        _ => return None,
    })
}

/// One message of a received datagram.
#[derive(Debug)]
pub(crate) enum Message {
    /// A generic netlink reply (a `do` reply or one element of a dump).
    Data {
        seq: u32,
        flags: NlmF,
        genl: GenlMsg,
    },
    /// `NLMSG_ERROR` with error 0: the request succeeded.
    Ack { seq: u32 },
    /// `NLMSG_ERROR` with an error.
    Error { seq: u32, error: KernelError },
    /// `NLMSG_DONE`: end of a dump, which may itself have failed.
    Done {
        seq: u32,
        flags: NlmF,
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

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits a datagram into messages.
pub(crate) fn parse_datagram(mut buf: &[u8]) -> Result<Vec<Message>, NetlinkError> {
    let mut messages = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = read_u32(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(NetlinkError::Protocol(format!(
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
    let ty = read_u16(msg, 4);
    let flags = NlmF::from_bits_retain(read_u16(msg, 6));
    let seq = read_u32(msg, 8);
    let body = &msg[NLMSG_HDRLEN..];
    let short = |what: &str| NetlinkError::Protocol(format!("truncated {what} message"));
    match ty {
        NLMSG_NOOP => Ok(Message::Noop),
        NLMSG_OVERRUN => Err(NetlinkError::Protocol("kernel reported overrun".to_owned())),
        NLMSG_ERROR => {
            if body.len() < 4 {
                return Err(short("error"));
            }
            let errno = -(read_u32(body, 0) as i32);
            if errno == 0 {
                return Ok(Message::Ack { seq });
            }
            // Then the failed request's header, and its payload unless capped.
            let echoed = if body.len() >= 4 + NLMSG_HDRLEN {
                if flags.contains(NlmF::CAPPED) {
                    NLMSG_HDRLEN
                } else {
                    align(read_u32(body, 4) as usize).max(NLMSG_HDRLEN)
                }
            } else {
                0
            };
            let mut error = KernelError::new(errno);
            if flags.contains(NlmF::ACK_TLVS) {
                let start = (4 + echoed).min(body.len());
                error = error.with_ext_ack(&body[start..]);
            }
            Ok(Message::Error { seq, error })
        }
        NLMSG_DONE => {
            let errno = if body.len() >= 4 {
                -(read_u32(body, 0) as i32)
            } else {
                0
            };
            let error = (errno != 0).then(|| {
                let error = KernelError::new(errno);
                if flags.contains(NlmF::ACK_TLVS) {
                    error.with_ext_ack(&body[4..])
                } else {
                    error
                }
            });
            Ok(Message::Done { seq, flags, error })
        }
        _ => {
            let genl = GenlMsg::from_bytes_with_input(&mut Cursor::new(body), body.len())
                .map_err(|e| NetlinkError::Protocol(format!("malformed reply: {e}")))?;
            Ok(Message::Data { seq, flags, genl })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `NLMSG_ERROR` for `request` as the kernel builds it.
    fn error_reply(request: &[u8], errno: i32, capped: bool, tlvs: &[Attr]) -> Vec<u8> {
        let mut body = (-errno).to_ne_bytes().to_vec();
        if capped {
            body.extend_from_slice(&request[..NLMSG_HDRLEN]);
        } else {
            body.extend_from_slice(request);
        }
        let mut flags = if capped { NlmF::CAPPED } else { NlmF::empty() };
        if !tlvs.is_empty() {
            flags |= NlmF::ACK_TLVS;
        }
        for t in tlvs {
            let mut c = Cursor::new(Vec::new());
            t.to_bytes(&mut c).unwrap();
            body.extend_from_slice(c.get_ref());
        }
        let mut msg = ((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&flags.bits().to_ne_bytes());
        msg.extend_from_slice(&request[8..16]); // seq, pid
        msg.extend_from_slice(&body);
        msg
    }

    fn sample_request() -> Encoded {
        Request::new(uapi::cmd::MAP_ADD)
            .with(attr(uapi::attr::MODE, 1u32).unwrap(), "mode")
            .with(
                nest(
                    uapi::attr::POD,
                    &[
                        attr(uapi::pod::NAME, "web-1").unwrap(),
                        attr(uapi::pod::NODE, "node-1").unwrap(),
                    ],
                )
                .unwrap(),
                "pod web-1",
            )
            .encode(0x20, 1, NlmF::ACK, 7)
            .unwrap()
    }

    #[test]
    fn request_framing() {
        let enc = sample_request();
        let b = &enc.bytes;
        assert_eq!(read_u32(b, 0) as usize, b.len());
        assert_eq!(read_u16(b, 4), 0x20);
        assert_eq!(read_u16(b, 6), (NlmF::REQUEST | NlmF::ACK).bits());
        assert_eq!(read_u32(b, 8), 7);
        assert_eq!(&b[16..18], &[uapi::cmd::MAP_ADD, 1]);
        // mode: len 8, type 1, value 1
        assert_eq!(read_u16(b, 20), 8);
        assert_eq!(read_u16(b, 22), uapi::attr::MODE);
        assert_eq!(read_u32(b, 24), 1);
        // pod nest: NLA_F_NESTED set
        assert_eq!(read_u16(b, 30), uapi::attr::POD | 0x8000);
        let attrs = parse_attrs(&b[20..]).unwrap();
        let pod = nested(attrs.iter().nth(1).unwrap()).unwrap();
        let name = pod.iter().next().unwrap();
        assert_eq!(attr_type(name), uapi::pod::NAME);
        assert_eq!(name.nla_payload().as_ref(), b"web-1\0");
        assert_eq!(enc.spans[1].0.start, 28);
    }

    #[test]
    fn error_with_message_and_offset() {
        let enc = sample_request();
        let offset = enc.spans[1].0.start as u32 + 4; // inside the pod nest
        let reply = error_reply(
            &enc.bytes,
            libc::EINVAL,
            false,
            &[
                attr(NLMSGERR_ATTR_MSG, "pod name missing").unwrap(),
                attr(NLMSGERR_ATTR_OFFS, offset).unwrap(),
            ],
        );
        let msgs = parse_datagram(&reply).unwrap();
        let [Message::Error { seq: 7, error }] = msgs.as_slice() else {
            panic!("{msgs:?}")
        };
        assert_eq!(
            error.to_string(),
            "kernel: Invalid argument (EINVAL): pod name missing"
        );
        assert_eq!(
            enc.annotate(error.clone()).to_string(),
            "kernel: Invalid argument (EINVAL): pod name missing (at pod web-1)"
        );
    }

    #[test]
    fn capped_error_with_missing_attribute() {
        let enc = sample_request();
        let reply = error_reply(
            &enc.bytes,
            libc::EINVAL,
            true,
            &[
                attr(NLMSGERR_ATTR_MISS_TYPE, u32::from(uapi::pod::NODE)).unwrap(),
                attr(NLMSGERR_ATTR_MISS_NEST, enc.spans[1].0.start as u32).unwrap(),
            ],
        );
        let msgs = parse_datagram(&reply).unwrap();
        let [Message::Error { error, .. }] = msgs.as_slice() else {
            panic!("{msgs:?}")
        };
        assert_eq!(
            enc.annotate(error.clone()).to_string(),
            "kernel: Invalid argument (EINVAL): missing attribute 'node' (at pod web-1)"
        );
    }

    #[test]
    fn plain_error_ack_and_done_in_one_datagram() {
        let enc = sample_request();
        let mut dgram = error_reply(&enc.bytes, libc::EPERM, false, &[]);
        // ack: error 0 + capped header
        let mut ack = error_reply(&enc.bytes, 0, true, &[]);
        ack[8..12].copy_from_slice(&8u32.to_ne_bytes());
        dgram.extend_from_slice(&ack);
        // done with -ENOENT
        let mut done = 20u32.to_ne_bytes().to_vec();
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&NlmF::MULTI.bits().to_ne_bytes());
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
            error: Some(e),
            ..
        } = &msgs[2]
        else {
            panic!()
        };
        assert_eq!(e.errno, libc::ENOENT);
    }

    #[test]
    fn bad_length_is_an_error_not_a_panic() {
        let mut b = sample_request().bytes;
        b[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_datagram(&b).is_err());
        b[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_datagram(&b).is_err());
    }
}
