//! Client for the `tlshub` generic netlink family (`spec/tlshub.yaml`).
//!
//! One blocking socket, one request in flight at a time: every `do` request
//! carries `NLM_F_ACK` and is finished only when its ack (or error) arrives,
//! so a multi-message operation such as [`Client::replace`] never runs ahead
//! of a failure. Kernel errors come back as [`KernelError`]s carrying the
//! extended-ack text, which is why `NETLINK_EXT_ACK` is switched on.

mod codec;
mod wire;

use std::fmt;
use std::io;
use std::net::IpAddr;

use neli::consts::genl::{CtrlAttr, CtrlCmd};
use neli::consts::nl::{GenlId, NlmF};
use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;
use serde::Serialize;

use crate::mapping::{Node, Pod, PodNodeTable};
use crate::{uapi, Mode};
use codec::{
    find, get_string, get_u32, get_u64, node_attr, node_label, nodes_in, pod_attr, pod_label,
    pods_in,
};
use wire::{attr, parse_datagram, Encoded, GenlMsg, Message, Request};

pub use wire::KernelError;

/// Version of the generic netlink control family's own protocol.
const CTRL_VERSION: u8 = 2;

/// How often a dump is restarted when the mapping changes under it.
const DUMP_ATTEMPTS: usize = 3;

/// Anything that can go wrong talking to the module.
#[derive(Debug)]
pub enum NetlinkError {
    /// The `tlshub` family is not registered.
    ModuleNotLoaded,
    /// The kernel refused a request.
    Kernel(KernelError),
    /// The socket itself failed.
    Io(io::Error),
    /// The kernel sent something this client does not understand.
    Protocol(String),
    /// A request could not be built.
    Encode(String),
}

impl NetlinkError {
    /// The kernel's errno, for kernel errors.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel(e) => Some(e.errno),
            _ => None,
        }
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetlinkError::ModuleNotLoaded => f.write_str("tlshub module not loaded"),
            NetlinkError::Kernel(e) => e.fmt(f),
            NetlinkError::Io(e) => write!(f, "netlink socket: {e}"),
            NetlinkError::Protocol(m) => write!(f, "netlink protocol error: {m}"),
            NetlinkError::Encode(m) => write!(f, "cannot encode request: {m}"),
        }
    }
}

impl std::error::Error for NetlinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetlinkError::Kernel(e) => Some(e),
            NetlinkError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Counters since the module was loaded (`stats` nest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub lookups: u64,
    pub lookup_misses: u64,
    pub map_updates: u64,
}

/// Reply of `status-get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub version: String,
    pub mode: Mode,
    pub pods: u32,
    pub nodes: u32,
    pub generation: u32,
    pub stats: Stats,
}

/// Reply of a `map-get` lookup: the pod and, if the kernel sent it, its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup {
    pub pod: Pod,
    pub node: Option<Node>,
}

/// The whole live mapping, as dumped by `map-get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MapDump {
    pub generation: u32,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
}

/// Reply of `map-commit`: the size of the new live table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Commit {
    pub pods: u32,
    pub nodes: u32,
    pub generation: u32,
}

/// Receives one line per message sent or received, for `--verbose`.
pub type Trace = Box<dyn FnMut(&str) + Send>;

/// A connection to the `tlshub` family.
pub struct Client {
    socket: NlSocket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
    trace: Option<Trace>,
}

impl Client {
    /// Opens a socket and resolves the `tlshub` family.
    pub fn connect() -> Result<Self, NetlinkError> {
        Self::connect_with_trace(None)
    }

    /// Like [`Client::connect`], reporting every message to `trace`.
    pub fn connect_with_trace(trace: Option<Trace>) -> Result<Self, NetlinkError> {
        let socket = NlSocket::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(NetlinkError::Io)?;
        socket.enable_ext_ack(true).map_err(NetlinkError::Io)?;
        let mut client = Client {
            socket,
            family: GenlId::Ctrl.into(),
            seq: std::process::id().wrapping_shl(16),
            // One page would do for replies; dumps arrive in datagrams of up
            // to 32 KiB, and `recv_datagram` grows this when needed.
            buf: vec![0; 32 * 1024],
            trace,
        };
        client.family = client.resolve_family()?;
        Ok(client)
    }

    fn resolve_family(&mut self) -> Result<u16, NetlinkError> {
        let request = Request::new(CtrlCmd::Getfamily.into()).with(
            attr(CtrlAttr::FamilyName.into(), uapi::FAMILY_NAME)?,
            format!("family-name {}", uapi::FAMILY_NAME),
        );
        let replies = match self.transact_as(request, "nlctrl getfamily", CTRL_VERSION) {
            Err(NetlinkError::Kernel(e)) if e.errno == libc::ENOENT => {
                return Err(NetlinkError::ModuleNotLoaded)
            }
            other => other?,
        };
        let attrs = replies
            .first()
            .map(|r| r.attrs())
            .ok_or_else(|| NetlinkError::Protocol("empty getfamily reply".to_owned()))?;
        let id = find(attrs, CtrlAttr::FamilyId.into())
            .ok_or(NetlinkError::ModuleNotLoaded)
            .and_then(|a| codec::get_u16(a, "family id"))?;
        if let Some(version) = find(attrs, CtrlAttr::Version.into()) {
            let version = get_u32(version, "family version")?;
            self.log(|| format!("<- family {} id {id} version {version}", uapi::FAMILY_NAME));
        }
        Ok(id)
    }

    /// `mode-get`.
    pub fn mode_get(&mut self) -> Result<Mode, NetlinkError> {
        let replies = self.transact(Request::new(uapi::cmd::MODE_GET))?;
        let reply = single(&replies, "mode-get")?;
        let attrs = reply.attrs();
        required_mode(attrs)
    }

    /// `mode-set`.
    pub fn mode_set(&mut self, mode: Mode) -> Result<(), NetlinkError> {
        let request = Request::new(uapi::cmd::MODE_SET).with(
            attr(uapi::attr::MODE, mode.to_wire())?,
            format!("mode {mode}"),
        );
        self.transact(request).map(drop)
    }

    /// `status-get`.
    pub fn status(&mut self) -> Result<Status, NetlinkError> {
        let replies = self.transact(Request::new(uapi::cmd::STATUS_GET))?;
        let attrs = single(&replies, "status-get")?.attrs();
        let u32_of = |ty, what| find(attrs, ty).map_or(Ok(0), |a| get_u32(a, what));
        let mut stats = Stats::default();
        if let Some(nest) = find(attrs, uapi::attr::STATS) {
            for a in wire::nested(nest)?.iter() {
                match wire::attr_type(a) {
                    uapi::stats::LOOKUPS => stats.lookups = get_u64(a, "lookups")?,
                    uapi::stats::LOOKUP_MISSES => {
                        stats.lookup_misses = get_u64(a, "lookup-misses")?
                    }
                    uapi::stats::MAP_UPDATES => stats.map_updates = get_u64(a, "map-updates")?,
                    _ => {}
                }
            }
        }
        Ok(Status {
            version: find(attrs, uapi::attr::VERSION)
                .map_or(Ok(String::new()), |a| get_string(a, "version"))?,
            mode: required_mode(attrs)?,
            pods: u32_of(uapi::attr::POD_COUNT, "pod-count")?,
            nodes: u32_of(uapi::attr::NODE_COUNT, "node-count")?,
            generation: u32_of(uapi::attr::GENERATION, "generation")?,
            stats,
        })
    }

    /// `map-get` by pod name; `None` if the kernel has no such pod.
    pub fn map_get_by_name(&mut self, pod: &str) -> Result<Option<Lookup>, NetlinkError> {
        let request = Request::new(uapi::cmd::MAP_GET)
            .with(attr(uapi::attr::POD_NAME, pod)?, format!("pod-name {pod}"));
        self.lookup(request)
    }

    /// `map-get` by one of the pod's addresses; `None` if no pod has it.
    pub fn map_get_by_ip(&mut self, ip: IpAddr) -> Result<Option<Lookup>, NetlinkError> {
        let a = match ip {
            IpAddr::V4(v4) => attr(uapi::attr::IPV4, v4.octets())?,
            IpAddr::V6(v6) => attr(uapi::attr::IPV6, v6.octets())?,
        };
        self.lookup(Request::new(uapi::cmd::MAP_GET).with(a, format!("ip {ip}")))
    }

    fn lookup(&mut self, request: Request) -> Result<Option<Lookup>, NetlinkError> {
        let replies = match self.transact(request) {
            Err(NetlinkError::Kernel(e)) if e.errno == libc::ENOENT => return Ok(None),
            other => other?,
        };
        let attrs = single(&replies, "map-get")?.attrs();
        let pod = pods_in(attrs)?
            .into_iter()
            .next()
            .ok_or_else(|| NetlinkError::Protocol("map-get reply without a pod".to_owned()))?;
        let node = nodes_in(attrs)?.into_iter().next();
        Ok(Some(Lookup { pod, node }))
    }

    /// Dumps the live mapping: nodes, then pods, in load order.
    ///
    /// Restarted if the mapping changes while it is being read (the kernel
    /// flags `NLM_F_DUMP_INTR`, or the generation differs between messages),
    /// so the result is always one consistent generation.
    pub fn map_dump(&mut self) -> Result<MapDump, NetlinkError> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let mut dump = MapDump::default();
            let mut generation = None;
            let mut consistent = true;
            let interrupted = self.dump(Request::new(uapi::cmd::MAP_GET), |msg| {
                let attrs = msg.attrs();
                if let Some(g) = find(attrs, uapi::attr::GENERATION) {
                    let g = get_u32(g, "generation")?;
                    consistent &= *generation.get_or_insert(g) == g;
                }
                dump.nodes.extend(nodes_in(attrs)?);
                dump.pods.extend(pods_in(attrs)?);
                Ok(())
            })?;
            consistent &= !interrupted;
            if consistent {
                dump.generation = generation.unwrap_or(0);
                return Ok(dump);
            }
            self.log(|| format!("mapping changed during dump (attempt {attempt}), restarting"));
        }
        Err(NetlinkError::Protocol(format!(
            "mapping kept changing during {DUMP_ATTEMPTS} dump attempts"
        )))
    }

    /// `map-add`: adds or updates a pod and/or a node.
    pub fn map_add(&mut self, pod: Option<&Pod>, node: Option<&Node>) -> Result<(), NetlinkError> {
        let mut request = Request::new(uapi::cmd::MAP_ADD);
        if let Some(pod) = pod {
            request.push(pod_attr(pod)?, pod_label(pod));
        }
        if let Some(node) = node {
            request.push(node_attr(node)?, node_label(node));
        }
        if pod.is_none() && node.is_none() {
            return Err(NetlinkError::Encode(
                "map-add needs a pod or a node".to_owned(),
            ));
        }
        self.transact(request).map(drop)
    }

    /// `map-del` of one pod.
    pub fn map_del_pod(&mut self, pod: &str) -> Result<(), NetlinkError> {
        let request = Request::new(uapi::cmd::MAP_DEL)
            .with(attr(uapi::attr::POD_NAME, pod)?, format!("pod-name {pod}"));
        self.transact(request).map(drop)
    }

    /// `map-del` of one node (the kernel refuses while pods use it).
    pub fn map_del_node(&mut self, node: &str) -> Result<(), NetlinkError> {
        let request = Request::new(uapi::cmd::MAP_DEL).with(
            attr(uapi::attr::NODE_NAME, node)?,
            format!("node-name {node}"),
        );
        self.transact(request).map(drop)
    }

    /// Atomically replaces the live mapping with `table`: `map-stage` (the
    /// first with `begin`) as often as needed, then `map-commit`. Each
    /// message waits for its ack, and the live table only changes at the
    /// commit, so any failure leaves it untouched.
    pub fn replace(&mut self, table: &PodNodeTable) -> Result<Commit, NetlinkError> {
        let requests = codec::stage_requests(table)?;
        for request in requests {
            self.transact(request)?;
        }
        let replies = self.transact(Request::new(uapi::cmd::MAP_COMMIT))?;
        let attrs = single(&replies, "map-commit")?.attrs();
        let u32_of = |ty, what| find(attrs, ty).map_or(Ok(0), |a| get_u32(a, what));
        Ok(Commit {
            pods: u32_of(uapi::attr::POD_COUNT, "pod-count")?,
            nodes: u32_of(uapi::attr::NODE_COUNT, "node-count")?,
            generation: u32_of(uapi::attr::GENERATION, "generation")?,
        })
    }

    // --- transport -------------------------------------------------------

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            trace(&line());
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends a `do` request of the tlshub family and collects its replies.
    fn transact(&mut self, request: Request) -> Result<Vec<GenlMsg>, NetlinkError> {
        let name = cmd_name(request.cmd);
        self.transact_as(request, name, uapi::FAMILY_VERSION)
    }

    fn transact_as(
        &mut self,
        request: Request,
        name: &str,
        version: u8,
    ) -> Result<Vec<GenlMsg>, NetlinkError> {
        let family = self.family;
        let seq = self.next_seq();
        let encoded = request.encode(family, version, NlmF::ACK, seq)?;
        self.send(&encoded, name)?;
        let mut replies = Vec::new();
        loop {
            for msg in self.recv_datagram()? {
                match msg {
                    Message::Data { genl, .. } => replies.push(genl),
                    Message::Ack { .. } => {
                        self.log(|| format!("<- ack seq {seq}"));
                        return Ok(replies);
                    }
                    Message::Error { error, .. } => {
                        self.log(|| format!("<- error seq {seq}: {error}"));
                        return Err(NetlinkError::Kernel(encoded.annotate(error)));
                    }
                    Message::Done { .. } => {
                        return Err(NetlinkError::Protocol(format!(
                            "unexpected NLMSG_DONE for {name}"
                        )))
                    }
                    Message::Noop => {}
                }
            }
        }
    }

    /// Sends a dump request and feeds each reply to `each` until
    /// `NLMSG_DONE`. Returns whether the kernel flagged the dump as
    /// interrupted (`NLM_F_DUMP_INTR`: the data changed while it was read).
    fn dump(
        &mut self,
        request: Request,
        mut each: impl FnMut(&GenlMsg) -> Result<(), NetlinkError>,
    ) -> Result<bool, NetlinkError> {
        let name = cmd_name(request.cmd);
        let seq = self.next_seq();
        // No NLM_F_ACK: the kernel ends a dump with NLMSG_DONE, never an ack.
        let encoded = request.encode(self.family, uapi::FAMILY_VERSION, NlmF::DUMP, seq)?;
        self.send(&encoded, name)?;
        let (mut count, mut interrupted) = (0usize, false);
        loop {
            for msg in self.recv_datagram()? {
                match msg {
                    Message::Data { flags, genl, .. } => {
                        count += 1;
                        interrupted |= flags.contains(NlmF::DUMP_INTR);
                        each(&genl)?;
                    }
                    Message::Done {
                        flags, error: None, ..
                    } => {
                        self.log(|| format!("<- done seq {seq} after {count} messages"));
                        return Ok(interrupted || flags.contains(NlmF::DUMP_INTR));
                    }
                    Message::Done {
                        error: Some(error), ..
                    }
                    | Message::Error { error, .. } => {
                        return Err(NetlinkError::Kernel(encoded.annotate(error)))
                    }
                    Message::Ack { .. } => {
                        return Err(NetlinkError::Protocol(format!(
                            "unexpected ack for {name} dump"
                        )))
                    }
                    Message::Noop => {}
                }
            }
        }
    }

    fn send(&mut self, encoded: &Encoded, name: &str) -> Result<(), NetlinkError> {
        self.log(|| describe_request(encoded, name));
        let sent = self
            .socket
            .send(&encoded.bytes, Msg::empty())
            .map_err(NetlinkError::Io)?;
        if sent != encoded.bytes.len() {
            return Err(NetlinkError::Protocol(format!(
                "short send: {sent} of {} bytes",
                encoded.bytes.len()
            )));
        }
        Ok(())
    }

    /// Receives the next datagram and returns its messages for the request
    /// in flight.
    ///
    /// The datagram is peeked first to learn its size: netlink silently
    /// truncates a datagram that does not fit, and an error reply echoes the
    /// whole failed request, which can exceed any fixed buffer.
    fn recv_datagram(&mut self) -> Result<Vec<Message>, NetlinkError> {
        let size = retry_eintr(|| self.socket.recv(&mut self.buf[..], Msg::PEEK | Msg::TRUNC))?.0;
        if size > self.buf.len() {
            self.buf.resize(size, 0);
        }
        let len = retry_eintr(|| self.socket.recv(&mut self.buf[..], Msg::empty()))?.0;
        let mut messages = parse_datagram(&self.buf[..len.min(self.buf.len())])?;
        // Replies to an earlier, abandoned request are not ours to judge.
        let current = self.seq;
        let before = messages.len();
        messages.retain(|m| m.seq().is_none_or(|s| s == current));
        if messages.len() != before {
            self.log(|| format!("ignoring {} stale messages", before - messages.len()));
        }
        Ok(messages)
    }
}

fn retry_eintr<T>(mut op: impl FnMut() -> io::Result<T>) -> Result<T, NetlinkError> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map_err(NetlinkError::Io),
        }
    }
}

/// The one reply a `do` request must have produced.
fn single<'a>(replies: &'a [GenlMsg], name: &str) -> Result<&'a GenlMsg, NetlinkError> {
    replies
        .first()
        .ok_or_else(|| NetlinkError::Protocol(format!("{name}: no reply before the ack")))
}

fn required_mode(
    attrs: &neli::types::GenlBuffer<u16, neli::types::Buffer>,
) -> Result<Mode, NetlinkError> {
    let value = find(attrs, uapi::attr::MODE)
        .ok_or_else(|| NetlinkError::Protocol("reply without mode".to_owned()))
        .and_then(|a| get_u32(a, "mode"))?;
    Mode::from_wire(value)
        .ok_or_else(|| NetlinkError::Protocol(format!("unknown mode {value} in reply")))
}

/// Spec name of a command, for traces.
fn cmd_name(cmd: u8) -> &'static str {
    match cmd {
        uapi::cmd::MODE_GET => "mode-get",
        uapi::cmd::MODE_SET => "mode-set",
        uapi::cmd::STATUS_GET => "status-get",
        uapi::cmd::MAP_GET => "map-get",
        uapi::cmd::MAP_ADD => "map-add",
        uapi::cmd::MAP_DEL => "map-del",
        uapi::cmd::MAP_STAGE => "map-stage",
        uapi::cmd::MAP_COMMIT => "map-commit",
        _ => "unknown",
    }
}

/// One trace line per request: every attribute for small requests, a count
/// for the large `map-stage` batches.
fn describe_request(encoded: &Encoded, name: &str) -> String {
    const LISTED: usize = 4;
    let labels: Vec<&str> = encoded.spans.iter().map(|(_, l)| l.text.as_str()).collect();
    let attrs = if labels.len() <= LISTED {
        labels.join(", ")
    } else {
        let count = |ty| encoded.spans.iter().filter(|(_, l)| l.ty == ty).count();
        let begin = if count(uapi::attr::BEGIN) > 0 {
            "begin, "
        } else {
            ""
        };
        format!(
            "{begin}{} nodes, {} pods ({} .. {})",
            count(uapi::attr::NODE),
            count(uapi::attr::POD),
            labels.iter().find(|l| **l != "begin").unwrap_or(&""),
            labels.last().unwrap_or(&"")
        )
    };
    let sep = if attrs.is_empty() { "" } else { ": " };
    format!(
        "-> {name} seq {} ({} bytes){sep}{attrs}",
        encoded.seq,
        encoded.bytes.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_loaded_message() {
        assert_eq!(
            NetlinkError::ModuleNotLoaded.to_string(),
            "tlshub module not loaded"
        );
    }

    #[test]
    fn trace_summarises_big_batches() {
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!("p{i} n\n"));
        }
        let table = PodNodeTable::from_str(&text, "t").unwrap();
        let request = codec::stage_requests(&table).unwrap().remove(0);
        let enc = request.encode(30, 1, NlmF::ACK, 5).unwrap();
        let line = describe_request(&enc, "map-stage");
        assert!(line.starts_with("-> map-stage seq 5 ("), "{line}");
        assert!(
            line.ends_with("begin, 0 nodes, 10 pods (pod p0 .. pod p9)"),
            "{line}"
        );
    }
}

/// Exercises the transport against the running kernel's own `nlctrl` family,
/// which every Linux kernel has, so the framing, ack, dump and extended-ack
/// paths are checked without the tlshub module. Skipped where netlink
/// sockets are unavailable.
#[cfg(test)]
mod kernel_tests {
    use super::*;

    fn ctrl_client() -> Option<Client> {
        let socket = NlSocket::connect(NlFamily::Generic, None, Groups::empty()).ok()?;
        socket.enable_ext_ack(true).ok()?;
        Some(Client {
            socket,
            family: GenlId::Ctrl.into(),
            seq: 100,
            buf: vec![0; 64],
            trace: None,
        })
    }

    fn getfamily(name_attr: Attr) -> Request {
        Request::new(CtrlCmd::Getfamily.into()).with(name_attr, "family-name")
    }

    use wire::Attr;

    #[test]
    fn connect_reports_missing_module() {
        match Client::connect() {
            Ok(_) | Err(NetlinkError::ModuleNotLoaded) => {}
            Err(NetlinkError::Io(e)) => eprintln!("skipped: {e}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn do_request_with_reply_and_ack() {
        let Some(mut c) = ctrl_client() else { return };
        let request = getfamily(attr(CtrlAttr::FamilyName.into(), "nlctrl").unwrap());
        let replies = c.transact_as(request, "getfamily", CTRL_VERSION).unwrap();
        assert_eq!(replies.len(), 1);
        let id = find(replies[0].attrs(), CtrlAttr::FamilyId.into()).unwrap();
        assert_eq!(codec::get_u16(id, "id").unwrap(), u16::from(GenlId::Ctrl));
    }

    #[test]
    fn kernel_error_carries_ext_ack_text() {
        let Some(mut c) = ctrl_client() else { return };
        // A family name without its NUL terminator fails policy validation.
        let request = getfamily(attr(CtrlAttr::FamilyName.into(), *b"nlct").unwrap());
        let err = c
            .transact_as(request, "getfamily", CTRL_VERSION)
            .unwrap_err();
        let NetlinkError::Kernel(e) = err else {
            panic!("{err}")
        };
        assert_eq!(e.errno, libc::EINVAL);
        let text = e.to_string();
        assert!(
            text.starts_with("kernel: Invalid argument (EINVAL)"),
            "{text}"
        );
        if e.message.is_some() {
            assert!(text.ends_with("(at family-name)"), "{text}");
        }
        // The socket stays usable after an error.
        let request = getfamily(attr(CtrlAttr::FamilyName.into(), "no-such-family").unwrap());
        let err = c
            .transact_as(request, "getfamily", CTRL_VERSION)
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn multipart_dump() {
        let Some(mut c) = ctrl_client() else { return };
        let mut names = Vec::new();
        let interrupted = c
            .dump(Request::new(CtrlCmd::Getfamily.into()), |msg| {
                let name = find(msg.attrs(), CtrlAttr::FamilyName.into()).unwrap();
                names.push(get_string(name, "name")?);
                Ok(())
            })
            .unwrap();
        assert!(!interrupted);
        assert!(names.iter().any(|n| n == "nlctrl"), "{names:?}");
        // A second request on the same socket after the dump.
        let request = getfamily(attr(CtrlAttr::FamilyName.into(), "nlctrl").unwrap());
        assert_eq!(
            c.transact_as(request, "getfamily", CTRL_VERSION)
                .unwrap()
                .len(),
            1
        );
    }
}
