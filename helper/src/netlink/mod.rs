//! Client for the `tlshub` generic netlink family (`spec/tlshub.yaml`).
//!
//! Built on `neli`: one blocking `NETLINK_GENERIC` socket (neli's
//! `NlSocket`) with `NETLINK_EXT_ACK` on, the family and its multicast
//! groups resolved by neli's `nlctrl` helpers (`NlRouter`, on a socket of
//! their own), messages and attributes built and parsed with neli's types
//! and checked by the [`schema`] table (generated from the spec), one
//! request in flight at a time. Every `do` request carries `NLM_F_ACK` and
//! is finished only when its ack (or error) arrives, so a multi-message
//! operation such as [`Client::replace`] never runs ahead of a failure.
//! Kernel errors come back as [`KernelError`]s with the extended-ack text
//! and the request attribute it points at.
//!
//! What neli does not do stays here, thin: extended-ack offsets mapped back
//! to attribute names, dumps restarted on `NLM_F_DUMP_INTR`, buffers that
//! carried secrets wiped, a receive buffer that grows to the datagram
//! (neli's is fixed and would truncate), and the spec's checks. Requests do
//! not go through neli's `NlRouter`: it reads the socket on a thread of its
//! own, which would take it away from `poll` ([`AsFd`]) and from the events
//! kept while a reply is awaited.
//!
//! A client may also join the family's multicast group `keys`
//! ([`Client::subscribe`]) and then read its `key-request` events
//! ([`Client::next_key_request`], [`Client::next_key_request_timeout`]),
//! or all its events, `key-request` and `flow-key-request` alike
//! ([`Client::next_event`], [`Client::next_event_timeout`]). Events that
//! arrive while the same client waits for a reply are kept and handed out
//! later, so one client can both listen and answer. A `flow-key-request`
//! (a flow in the openssl or boringssl mode waiting for its own secret) is
//! answered with [`Client::flow_key_set`].
//!
//! # For a key provider (the TLSHub agent)
//!
//! ```no_run
//! # fn agent() -> Result<(), tlshub::NetlinkError> {
//! use std::time::Duration;
//! use tlshub::netlink::{Client, PeerState};
//! let mut nl = Client::connect()?; // CAP_NET_ADMIN
//! nl.subscribe(tlshub::uapi::MCGRP_KEYS)?;
//! loop {
//!     let Some(req) = nl.next_key_request_timeout(Duration::from_secs(1))? else {
//!         continue; // time to look at nl.peers() for secrets about to expire
//!     };
//!     // ... mTLS handshake with req.node's agent; on success:
//!     # let secret = tlshub::Psk::parse(&[7; 32]).unwrap(); let ok = true;
//!     if ok {
//!         let next = nl.peers()?.iter().find(|p| p.name == req.node).and_then(|p| p.epoch);
//!         nl.peer_set_with_lifetime(&req.node, &secret, Some(next.map_or(1, |e| e + 1)),
//!                                   Some(Duration::from_secs(3600)))?;
//!     } else {
//!         nl.peer_fail(&req.node, "handshake with node-2: certificate expired")?;
//!     }
//! }
//! # }
//! ```

mod codec;
mod entries;
mod error;
pub mod schema;

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use neli::consts::socket::{Msg, NlFamily};
use neli::err::RouterError;
use neli::router::synchronous::NlRouter;
use neli::socket::NlSocket;
use neli::utils::Groups;
use nix::errno::Errno;
use nix::sys::socket::{self, sockopt};
use nix::sys::time::TimeVal;
use serde::Serialize;

use crate::mapping::{canonical_ip, Node, Pod, PodNodeTable};
use crate::psk::Psk;
use crate::{uapi, Cidr, Cipher, Mode};
use codec::{describe_request, parse_datagram, Attrs, Encoded, GenlMsg, Message, Request, Value};
use entries::{flows_in, nodes_in, parse_flow_key_request, parse_key_request, peers_in, pods_in};

pub(crate) use codec::wipe;
pub use entries::{Flow, FlowKey, FlowKeyRequest, KeyRequest, Peer, PeerState, Role};
pub use error::KernelError;

/// How often a dump is restarted when the mapping changes under it.
const DUMP_ATTEMPTS: usize = 3;

/// `NLM_F_DUMP_INTR`: the data changed while a dump was being read.
const DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;

/// Anything that can go wrong talking to the module.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The `tlshub` family is not registered.
    #[error("tlshub module not loaded")]
    ModuleNotLoaded,
    /// The kernel refused a request.
    #[error(transparent)]
    Kernel(Box<KernelError>),
    /// The socket itself failed.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel sent something this client does not understand.
    #[error("netlink protocol error: {0}")]
    Protocol(String),
    /// A request could not be built.
    #[error("cannot encode request: {0}")]
    Encode(String),
    /// The family has no multicast group of this name.
    #[error("the tlshub module has no multicast group '{0}'")]
    NoGroup(String),
    /// Joining a multicast group failed.
    #[error("joining multicast group '{group}': {source}")]
    Join {
        group: String,
        #[source]
        source: io::Error,
    },
    /// Events were dropped because the socket's receive buffer was full.
    #[error("events lost: the socket's receive buffer overflowed")]
    EventsLost,
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

impl From<KernelError> for NetlinkError {
    fn from(e: KernelError) -> Self {
        NetlinkError::Kernel(Box::new(e))
    }
}

impl From<Errno> for NetlinkError {
    fn from(e: Errno) -> Self {
        NetlinkError::Io(e.into())
    }
}

// `Stats`: a field per counter of the spec's `stats` set, `counters()`
// and `slot()`, generated by build.rs.
include!(concat!(env!("OUT_DIR"), "/stats.rs"));

impl Stats {
    /// Decodes a `stats` nest; unknown counters (a newer module) and `pad`
    /// are skipped.
    fn parse(nest: &Attrs<'_>) -> Result<Stats, NetlinkError> {
        let mut stats = Stats::default();
        for a in nest.iter() {
            if let Some(slot) = stats.slot(a.ty) {
                *slot = a.u64()?;
            }
        }
        Ok(stats)
    }
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
    /// Cipher for new flows (`None` if the module did not say).
    pub cipher: Option<Cipher>,
    /// Key timeout in milliseconds (`None` if the module did not say).
    pub key_timeout_ms: Option<u32>,
    /// The nodes this kernel serves.
    pub local_nodes: Vec<String>,
}

impl Status {
    /// Decodes a `status-get` reply.
    fn parse(attrs: &Attrs<'_>) -> Result<Status, NetlinkError> {
        let u32_of = |ty| attrs.get(ty).map_or(Ok(0), |a| a.u32());
        let stats = match attrs.get(uapi::attr::STATS) {
            Some(nest) => Stats::parse(&nest.nested()?)?,
            None => Stats::default(),
        };
        Ok(Status {
            version: attrs
                .get(uapi::attr::VERSION)
                .map_or(Ok(String::new()), |a| a.string())?,
            mode: required_mode(attrs)?,
            pods: u32_of(uapi::attr::POD_COUNT)?,
            nodes: u32_of(uapi::attr::NODE_COUNT)?,
            generation: u32_of(uapi::attr::GENERATION)?,
            stats,
            cipher: attrs
                .get(uapi::attr::CIPHER)
                .map(|a| cipher_of(a.u32()?))
                .transpose()?,
            key_timeout_ms: attrs
                .get(uapi::attr::KEY_TIMEOUT_MS)
                .map(|a| a.u32())
                .transpose()?,
            local_nodes: local_nodes_in(attrs)?,
        })
    }
}

/// Reply of `config-get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Config {
    pub cipher: Cipher,
    pub key_timeout_ms: u32,
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

/// An event of the `keys` multicast group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Event {
    /// Flows need the node-pair secret shared with a peer node.
    KeyRequest(KeyRequest),
    /// A flow decided in the openssl or boringssl mode needs its own secret.
    FlowKeyRequest(FlowKeyRequest),
}

/// Receives one line per message sent or received, for `--verbose`.
pub type Trace = Box<dyn FnMut(&str) + Send>;

/// A connection to the `tlshub` family.
pub struct Client {
    socket: NlSocket,
    family: u16,
    /// The family's multicast groups: name and id.
    groups: Vec<(String, u32)>,
    seq: u32,
    buf: Vec<u8>,
    trace: Option<Trace>,
    /// Events received while waiting for a reply (or with others in one
    /// datagram).
    events: VecDeque<Event>,
}

/// The client's socket, for `poll`/`epoll` (readable: a message waits,
/// e.g. an event after [`Client::subscribe`]). Reading it yourself would
/// steal the client's messages.
impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is the socket's, open until it is dropped,
        // and the socket lives as long as the borrow of `self`.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }
}

impl AsRawFd for Client {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// A `NETLINK_GENERIC` socket with extended acks on.
fn open_socket() -> Result<NlSocket, NetlinkError> {
    let socket = NlSocket::connect(NlFamily::Generic, None, Groups::empty())?;
    socket.enable_ext_ack(true)?;
    Ok(socket)
}

impl Client {
    /// Opens a socket and resolves the `tlshub` family.
    pub fn connect() -> Result<Self, NetlinkError> {
        Self::connect_with_trace(None)
    }

    /// Like [`Client::connect`], reporting every message to `trace`.
    pub fn connect_with_trace(trace: Option<Trace>) -> Result<Self, NetlinkError> {
        let mut client = Client::unresolved(trace)?;
        let (family, groups) = client.resolve_family(uapi::FAMILY_NAME, &schema::MCAST_GROUPS)?;
        client.family = family;
        client.groups = groups;
        Ok(client)
    }

    fn unresolved(trace: Option<Trace>) -> Result<Self, NetlinkError> {
        Ok(Client {
            socket: open_socket()?,
            family: 0,
            groups: Vec::new(),
            seq: std::process::id().wrapping_shl(16),
            // Replies fit a page; dumps come in datagrams of up to 32 KiB,
            // and `recv_datagram` grows this when needed.
            buf: vec![0; 32 * 1024],
            trace,
            events: VecDeque::new(),
        })
    }

    /// The id of family `name` and the ids of those of `groups` it has
    /// (name, id), by neli's `nlctrl` helpers on a socket of their own.
    fn resolve_family(
        &mut self,
        name: &str,
        groups: &[&str],
    ) -> Result<(u16, Vec<(String, u32)>), NetlinkError> {
        let failed = |e: &dyn std::fmt::Display| {
            NetlinkError::Protocol(format!("resolving family {name}: {e}"))
        };
        let (router, _) =
            NlRouter::connect(NlFamily::Generic, None, Groups::empty()).map_err(|e| failed(&e))?;
        let id = router.resolve_genl_family(name).map_err(|e| match e {
            RouterError::Nlmsgerr(e) if -*e.error() == libc::ENOENT => {
                NetlinkError::ModuleNotLoaded
            }
            RouterError::Nlmsgerr(e) => {
                let mut error = KernelError::new(-*e.error());
                error.op = Some("getfamily");
                error.into()
            }
            e => failed(&e),
        })?;
        self.log(|| format!("<- family {name} id {id}"));
        let mut found = Vec::new();
        for &group in groups {
            match router.resolve_nl_mcast_group(name, group) {
                Ok(gid) => {
                    self.log(|| format!("<- family {name} group {group} id {gid}"));
                    found.push((group.to_owned(), gid));
                }
                // Not a group of the family (neli's words): `subscribe`
                // says so.
                Err(RouterError::Msg(_) | RouterError::De(_)) => {}
                Err(e) => return Err(failed(&e)),
            }
        }
        Ok((id, found))
    }

    /// `mode-get`.
    pub fn mode_get(&mut self) -> Result<Mode, NetlinkError> {
        let replies = self.transact(Request::new(&schema::MODE_GET))?;
        required_mode(&single(&replies, "mode-get")?)
    }

    /// `mode-set`.
    pub fn mode_set(&mut self, mode: Mode) -> Result<(), NetlinkError> {
        let request = Request::new(&schema::MODE_SET).with(
            uapi::attr::MODE,
            Value::U32(mode.to_wire()),
            format!("mode {mode}"),
        )?;
        self.transact(request).map(drop)
    }

    /// `status-get`.
    pub fn status(&mut self) -> Result<Status, NetlinkError> {
        let replies = self.transact(Request::new(&schema::STATUS_GET))?;
        Status::parse(&single(&replies, "status-get")?)
    }

    /// `map-get` by pod name; `None` if the kernel has no such pod.
    pub fn map_get_by_name(&mut self, pod: &str) -> Result<Option<Lookup>, NetlinkError> {
        let request = Request::new(&schema::MAP_GET).with(
            uapi::attr::POD_NAME,
            Value::Str(pod),
            format!("pod-name {pod}"),
        )?;
        self.lookup(request)
    }

    /// `map-get` by one of the pod's addresses (an IPv4-mapped IPv6 address
    /// is its IPv4 address); `None` if no pod has it.
    pub fn map_get_by_ip(&mut self, ip: IpAddr) -> Result<Option<Lookup>, NetlinkError> {
        let ip = canonical_ip(ip);
        let label = format!("ip {ip}");
        let request = match ip {
            IpAddr::V4(v4) => {
                Request::new(&schema::MAP_GET).with(uapi::attr::IPV4, Value::U32(v4.into()), label)
            }
            IpAddr::V6(v6) => Request::new(&schema::MAP_GET).with(
                uapi::attr::IPV6,
                Value::Bytes(&v6.octets()),
                label,
            ),
        }?;
        self.lookup(request)
    }

    fn lookup(&mut self, request: Request) -> Result<Option<Lookup>, NetlinkError> {
        let replies = match self.transact(request) {
            Err(NetlinkError::Kernel(e)) if e.errno == libc::ENOENT => return Ok(None),
            other => other?,
        };
        let attrs = single(&replies, "map-get")?;
        let pod = pods_in(&attrs)?
            .into_iter()
            .next()
            .ok_or_else(|| NetlinkError::Protocol("map-get reply without a pod".to_owned()))?;
        let node = nodes_in(&attrs)?.into_iter().next();
        Ok(Some(Lookup { pod, node }))
    }

    /// Dumps the live mapping: nodes, then pods, in load order.
    ///
    /// Restarted (at most [`DUMP_ATTEMPTS`] times) if the mapping changes
    /// while it is being read: the kernel flags `NLM_F_DUMP_INTR`, or the
    /// generation differs between messages. The result is always one
    /// consistent generation.
    pub fn map_dump(&mut self) -> Result<MapDump, NetlinkError> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let mut dump = MapDump::default();
            let mut generation = None;
            let mut consistent = true;
            let interrupted = self.dump(Request::dump(&schema::MAP_GET), |attrs| {
                if let Some(g) = attrs.get(uapi::attr::GENERATION) {
                    let g = g.u32()?;
                    consistent &= *generation.get_or_insert(g) == g;
                }
                dump.nodes.extend(nodes_in(attrs)?);
                dump.pods.extend(pods_in(attrs)?);
                Ok(())
            })?;
            if consistent && !interrupted {
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
        if pod.is_none() && node.is_none() {
            return Err(NetlinkError::Encode(
                "map-add needs a pod or a node".to_owned(),
            ));
        }
        let mut request = Request::new(&schema::MAP_ADD);
        if let Some(pod) = pod {
            entries::put_pod(&mut request, pod)?;
        }
        if let Some(node) = node {
            entries::put_node(&mut request, node)?;
        }
        self.transact(request).map(drop)
    }

    /// `map-del` of one pod.
    pub fn map_del_pod(&mut self, pod: &str) -> Result<(), NetlinkError> {
        let request = Request::new(&schema::MAP_DEL).with(
            uapi::attr::POD_NAME,
            Value::Str(pod),
            format!("pod-name {pod}"),
        )?;
        self.transact(request).map(drop)
    }

    /// `map-del` of one node (the kernel refuses while pods use it).
    pub fn map_del_node(&mut self, node: &str) -> Result<(), NetlinkError> {
        let request = Request::new(&schema::MAP_DEL).with(
            uapi::attr::NODE_NAME,
            Value::Str(node),
            format!("node-name {node}"),
        )?;
        self.transact(request).map(drop)
    }

    /// Atomically replaces the live mapping with `table`: `map-stage` (the
    /// first with `begin`) as often as needed, then `map-commit`. Each
    /// message waits for its ack, and the live table only changes at the
    /// commit, so any failure leaves it untouched.
    pub fn replace(&mut self, table: &PodNodeTable) -> Result<Commit, NetlinkError> {
        for request in entries::stage_requests(table)? {
            self.transact(request)?;
        }
        let replies = self.transact(Request::new(&schema::MAP_COMMIT))?;
        let attrs = single(&replies, "map-commit")?;
        let u32_of = |ty| attrs.get(ty).map_or(Ok(0), |a| a.u32());
        Ok(Commit {
            pods: u32_of(uapi::attr::POD_COUNT)?,
            nodes: u32_of(uapi::attr::NODE_COUNT)?,
            generation: u32_of(uapi::attr::GENERATION)?,
        })
    }

    /// `node-local-set`: the nodes this kernel serves become `nodes` (none:
    /// it serves none). At most [`uapi::MAX_LOCAL_NODES`], each once.
    pub fn local_nodes_set<S: AsRef<str>>(&mut self, nodes: &[S]) -> Result<(), NetlinkError> {
        self.transact(local_nodes_request(nodes)?).map(drop)
    }

    /// `node-local-get`: the nodes this kernel serves.
    pub fn local_nodes_get(&mut self) -> Result<Vec<String>, NetlinkError> {
        let replies = self.transact(Request::new(&schema::NODE_LOCAL_GET))?;
        // No local node: the reply may be empty, or absent altogether.
        match replies.first() {
            Some(reply) => local_nodes_in(&Attrs::of(reply)),
            None => Ok(Vec::new()),
        }
    }

    /// `service-cidr-set`: the Service CIDRs become `cidrs` (none: there are
    /// none). At most [`uapi::MAX_SERVICE_CIDRS`], each once; all or
    /// nothing. Connects already decided stand.
    pub fn service_cidrs_set(&mut self, cidrs: &[Cidr]) -> Result<(), NetlinkError> {
        self.transact(service_cidrs_request(cidrs)?).map(drop)
    }

    /// `service-cidr-get`: the Service CIDRs.
    pub fn service_cidrs_get(&mut self) -> Result<Vec<Cidr>, NetlinkError> {
        let replies = self.transact(Request::new(&schema::SERVICE_CIDR_GET))?;
        // No Service CIDR: the reply may be empty, or absent altogether.
        match replies.first() {
            Some(reply) => service_cidrs_in(&Attrs::of(reply)),
            None => Ok(Vec::new()),
        }
    }

    /// `pod-cidr-set`: the pod CIDRs become `cidrs` (none: there are none).
    /// At most [`uapi::MAX_POD_CIDRS`], each once; all or nothing.
    pub fn pod_cidrs_set(&mut self, cidrs: &[Cidr]) -> Result<(), NetlinkError> {
        self.transact(pod_cidrs_request(cidrs)?).map(drop)
    }

    /// `pod-cidr-get`: the pod CIDRs.
    pub fn pod_cidrs_get(&mut self) -> Result<Vec<Cidr>, NetlinkError> {
        let replies = self.transact(Request::new(&schema::POD_CIDR_GET))?;
        // No pod CIDR: the reply may be empty, or absent altogether.
        match replies.first() {
            Some(reply) => pod_cidrs_in(&Attrs::of(reply)),
            None => Ok(Vec::new()),
        }
    }

    /// `peer-set`: the secret shared with node `name`, under `epoch` (or the
    /// next epoch). Returns the epoch the kernel stored it under. The secret
    /// never expires; see [`Client::peer_set_with_lifetime`].
    pub fn peer_set(
        &mut self,
        name: &str,
        psk: &Psk,
        epoch: Option<u64>,
    ) -> Result<u64, NetlinkError> {
        self.peer_set_with_lifetime(name, psk, epoch, None)
    }

    /// `peer-set` with a lifetime: the secret shared with node `name`, under
    /// `epoch` (`None`: the one after the current secret's), valid for
    /// `lifetime` from now (`None`: forever; at most `u32::MAX` ms, rounded
    /// up to whole milliseconds, and at least 1 ms). Returns the epoch the
    /// kernel stored it under. Flows waiting for the peer are keyed at once,
    /// and a `peer-fail` error state is cleared.
    ///
    /// Once the lifetime is over the kernel treats the secret as absent: a
    /// new flow to the peer waits and a `key-request` event goes out (flows
    /// already secured keep their keys). Kernel refusals, which change
    /// nothing: `EEXIST` for a different secret under the current epoch, or
    /// under the epoch of an expired secret (use a newer epoch); `EINVAL`
    /// for an epoch older than the current one.
    pub fn peer_set_with_lifetime(
        &mut self,
        name: &str,
        psk: &Psk,
        epoch: Option<u64>,
        lifetime: Option<Duration>,
    ) -> Result<u64, NetlinkError> {
        self.peer_set_pair(name, None, psk, epoch, lifetime)
    }

    /// [`Client::peer_set_with_lifetime`] for the node pair {`local`,
    /// `name`} (`local`: a node this kernel serves, other than `name`), or,
    /// with `local` `None`, for peer `name` and every local node without a
    /// pair secret. The pair's flows in either direction use it, and flows
    /// of the pair that waited on the peer's own entry are keyed at once.
    pub fn peer_set_pair(
        &mut self,
        name: &str,
        local: Option<&str>,
        psk: &Psk,
        epoch: Option<u64>,
        lifetime: Option<Duration>,
    ) -> Result<u64, NetlinkError> {
        let lifetime_ms = lifetime.map(lifetime_ms).transpose()?;
        let mut request = Request::new(&schema::PEER_SET);
        entries::put_peer(&mut request, name, local, psk, epoch, lifetime_ms)?;
        let result = self.transact(request);
        // An error reply echoes the request, secret included.
        wipe(&mut self.buf);
        let replies = result?;
        peer_set_epoch(&single(&replies, "peer-set")?, name)
    }

    /// `peer-fail`: the key provider could not get a secret for node `name`
    /// (say, the mTLS handshake with its agent failed), for the reason
    /// `error` (not empty, at most [`uapi::ERROR_MAX_LEN`] bytes; shown to
    /// operators by `tlshubctl node show`, so no secrets in it). The kernel
    /// records it, wipes the peer's secret, resets every flow waiting for
    /// the peer at once (counter `reset-key-refused`) and sends a fresh
    /// `key-request` for the next flow. A later successful `peer-set`
    /// clears the error state.
    pub fn peer_fail(&mut self, name: &str, error: &str) -> Result<(), NetlinkError> {
        self.peer_fail_pair(name, None, error)
    }

    /// [`Client::peer_fail`] for the node pair {`local`, `name`} (or, with
    /// `local` `None`, for the peer's own entry).
    pub fn peer_fail_pair(
        &mut self,
        name: &str,
        local: Option<&str>,
        error: &str,
    ) -> Result<(), NetlinkError> {
        let mut request = Request::new(&schema::PEER_FAIL);
        entries::put_peer_error(&mut request, name, local, error)?;
        self.transact(request).map(drop)
    }

    /// `drain`: the module stops securing and lets go of every socket, so
    /// that `rmmod` can succeed (it holds a reference per gated socket).
    /// New pod-to-pod connections fail closed until it is unloaded.
    pub fn drain(&mut self) -> Result<(), NetlinkError> {
        self.transact(Request::new(&schema::DRAIN)).map(drop)
    }

    /// `peer-del`: forgets the secret shared with node `name`.
    pub fn peer_del(&mut self, name: &str) -> Result<(), NetlinkError> {
        self.peer_del_pair(name, None)
    }

    /// `peer-del` for the node pair {`local`, `name`} (or, with `local`
    /// `None`, the peer's own secret).
    pub fn peer_del_pair(&mut self, name: &str, local: Option<&str>) -> Result<(), NetlinkError> {
        let mut request = Request::new(&schema::PEER_DEL).with(
            uapi::attr::NODE_NAME,
            Value::Str(name),
            format!("node-name {name}"),
        )?;
        if let Some(l) = local {
            request = request.with(
                uapi::attr::LOCAL_NODE,
                Value::Str(l),
                format!("local-node {l}"),
            )?;
        }
        self.transact(request).map(drop)
    }

    /// `flow-key-set`: the secret of one flow waiting for its own key (the
    /// answer to a [`FlowKeyRequest`]), named by this end's view of its
    /// tuple; with ISNs, the kernel also checks them. The flow is keyed and
    /// its kTLS installed. Kernel refusals: `ENOENT` when no flow with that
    /// tuple waits for its own key (not decided yet: the accepting end's
    /// flow may appear a little after the connecting end's handshake is
    /// done, so retrying briefly makes sense; or already keyed, reset, or in
    /// a node-pair mode); `EINVAL` for bad attributes or ISNs that do not
    /// match. The request's bytes (secret included) are wiped once sent, and
    /// so is the receive buffer (an error reply echoes the request).
    pub fn flow_key_set(&mut self, key: &FlowKey) -> Result<(), NetlinkError> {
        let mut request = Request::new(&schema::FLOW_KEY_SET);
        entries::put_flow_key(&mut request, key)?;
        let result = self.transact(request);
        wipe(&mut self.buf);
        result.map(drop)
    }

    /// `peer-get` dump: peers with a secret, with flows waiting for one, or
    /// with an error; their state, epoch, waiting flows, the secret's age and
    /// remaining lifetime, and the last error (never the secret).
    pub fn peers(&mut self) -> Result<Vec<Peer>, NetlinkError> {
        self.dump_all(&schema::PEER_GET, "peers", peers_in)
    }

    /// `config-set`: the cipher of new flows and/or the key timeout.
    pub fn config_set(
        &mut self,
        cipher: Option<Cipher>,
        key_timeout_ms: Option<u32>,
    ) -> Result<(), NetlinkError> {
        self.transact(config_request(cipher, key_timeout_ms)?)
            .map(drop)
    }

    /// `config-get`: the cipher of new flows and the key timeout.
    pub fn config_get(&mut self) -> Result<Config, NetlinkError> {
        let replies = self.transact(Request::new(&schema::CONFIG_GET))?;
        Config::parse(&single(&replies, "config-get")?)
    }

    /// `flows-get` dump: the tracked flows.
    pub fn flows(&mut self) -> Result<Vec<Flow>, NetlinkError> {
        self.dump_all(&schema::FLOWS_GET, "flows", flows_in)
    }

    /// Dumps `op`, collecting what `parse` finds in each message; restarted
    /// (at most [`DUMP_ATTEMPTS`] times) when the kernel flags the dump as
    /// interrupted, so the result is one consistent snapshot.
    fn dump_all<T>(
        &mut self,
        op: &'static schema::Op,
        what: &str,
        parse: impl Fn(&Attrs<'_>) -> Result<Vec<T>, NetlinkError>,
    ) -> Result<Vec<T>, NetlinkError> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let mut all = Vec::new();
            let interrupted = self.dump(Request::dump(op), |attrs| {
                all.extend(parse(attrs)?);
                Ok(())
            })?;
            if !interrupted {
                return Ok(all);
            }
            self.log(|| format!("{what} changed during dump (attempt {attempt}), restarting"));
        }
        Err(NetlinkError::Protocol(format!(
            "{what} kept changing during {DUMP_ATTEMPTS} dump attempts"
        )))
    }

    // --- events ----------------------------------------------------------

    /// Joins the family's multicast group `group` (the spec's
    /// `mcast-groups`, e.g. [`uapi::MCGRP_KEYS`]), by the id `nlctrl`
    /// reported for it. Joining `keys` needs `CAP_NET_ADMIN`.
    pub fn subscribe(&mut self, group: &str) -> Result<(), NetlinkError> {
        let id = self
            .groups
            .iter()
            .find(|(name, _)| name == group)
            .map(|&(_, id)| id)
            .ok_or_else(|| NetlinkError::NoGroup(group.to_owned()))?;
        self.socket
            .add_mcast_membership(Groups::new_groups(&[id]))
            .map_err(|source| NetlinkError::Join {
                group: group.to_owned(),
                source,
            })?;
        self.log(|| format!("joined multicast group {group} (id {id})"));
        Ok(())
    }

    /// Waits for the next `key-request` event (after [`Client::subscribe`]
    /// to `keys`). Other messages of the family (`flow-key-request` events,
    /// events a newer module may add) are skipped. [`NetlinkError::EventsLost`]
    /// says the kernel dropped events because they were not read fast
    /// enough; the socket stays usable.
    pub fn next_key_request(&mut self) -> Result<KeyRequest, NetlinkError> {
        loop {
            if let Event::KeyRequest(event) = self.next_event()? {
                return Ok(event);
            }
        }
    }

    /// Like [`Client::next_key_request`], but gives up after `timeout`
    /// (`Ok(None)`). An event already received (while a request waited for
    /// its reply) is returned at once.
    pub fn next_key_request_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<KeyRequest>, NetlinkError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event_timeout(left)? {
                Some(Event::KeyRequest(event)) => return Ok(Some(event)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Waits for the next event of the `keys` group, of either kind (after
    /// [`Client::subscribe`]). Messages of the family this client does not
    /// know are skipped; [`NetlinkError::EventsLost`] as for
    /// [`Client::next_key_request`].
    pub fn next_event(&mut self) -> Result<Event, NetlinkError> {
        loop {
            if let Some(event) = self.recv_event(None)? {
                return Ok(event);
            }
        }
    }

    /// Like [`Client::next_event`], but gives up after `timeout`
    /// (`Ok(None)`). An event already received is returned at once.
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, NetlinkError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if left.is_zero() {
                return Ok(None);
            }
            if let Some(event) = self.recv_event(Some(left))? {
                return Ok(Some(event));
            }
        }
    }

    /// A kept event, or the events of the next datagram (waiting at most
    /// `timeout`, if given); `None` if that datagram had none or the time
    /// ran out.
    fn recv_event(&mut self, timeout: Option<Duration>) -> Result<Option<Event>, NetlinkError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        let received = match timeout {
            None => self.recv_messages(),
            Some(t) => {
                // SO_RCVTIMEO of at least 1 µs (0 would mean forever).
                let us = t.as_micros().clamp(1, i64::MAX as u128) as i64;
                let tv = TimeVal::new(us / 1_000_000, (us % 1_000_000) as _);
                socket::setsockopt(&self.as_fd(), sockopt::ReceiveTimeout, &tv)?;
                let r = self.recv_messages();
                socket::setsockopt(&self.as_fd(), sockopt::ReceiveTimeout, &TimeVal::new(0, 0))?;
                r
            }
        };
        let messages = match received {
            Err(NetlinkError::Io(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Err(NetlinkError::EventsLost)
            }
            Err(NetlinkError::Io(e))
                if timeout.is_some()
                    && matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) =>
            {
                return Ok(None)
            }
            other => other?,
        };
        for msg in messages {
            if let Message::Data {
                seq: 0,
                family,
                msg,
                ..
            } = msg
            {
                let cmd = *msg.cmd();
                if family != self.family {
                    self.log(|| format!("<- skipping message type {family} cmd {cmd}"));
                    continue;
                }
                match self.parse_event(&msg) {
                    Some(event) => self.events.push_back(event?),
                    None => self.log(|| format!("<- skipping message type {family} cmd {cmd}")),
                }
            }
        }
        Ok(self.events.pop_front())
    }

    /// Decodes an event of this family: `None` for a command that is not
    /// an event this client knows.
    fn parse_event(&mut self, msg: &GenlMsg) -> Option<Result<Event, NetlinkError>> {
        let (cmd, attrs) = (*msg.cmd(), Attrs::of(msg));
        let event = if cmd == schema::KEY_REQUEST.cmd {
            parse_key_request(&attrs).map(Event::KeyRequest)
        } else if cmd == schema::FLOW_KEY_REQUEST.cmd {
            parse_flow_key_request(&attrs).map(Event::FlowKeyRequest)
        } else {
            return None;
        };
        if let Ok(e) = &event {
            self.log(|| describe_event(e));
        }
        Some(event)
    }

    // --- transport -------------------------------------------------------

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            trace(&line());
        }
    }

    /// The next request's sequence number; never 0, which events carry.
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends a `do` request of the tlshub family; returns the attributes of
    /// each reply.
    fn transact(&mut self, request: Request) -> Result<Vec<GenlMsg>, NetlinkError> {
        self.exchange(request, self.family, uapi::FAMILY_VERSION)
    }

    fn exchange(
        &mut self,
        request: Request,
        family: u16,
        version: u8,
    ) -> Result<Vec<GenlMsg>, NetlinkError> {
        let seq = self.next_seq();
        let encoded = request.encode(family, version, seq)?;
        self.roundtrip(&encoded)
    }

    /// Sends an encoded `do` request and collects its replies until the ack.
    fn roundtrip(&mut self, encoded: &Encoded) -> Result<Vec<GenlMsg>, NetlinkError> {
        let seq = encoded.seq;
        self.send(encoded)?;
        let mut replies = Vec::new();
        loop {
            for msg in self.recv_datagram()? {
                match msg {
                    Message::Data { msg, .. } => replies.push(msg),
                    Message::Ack { .. } => {
                        self.log(|| format!("<- ack seq {seq}"));
                        return Ok(replies);
                    }
                    Message::Error { error, .. } => {
                        let error = encoded.annotate(error);
                        self.log(|| format!("<- error seq {seq}: {error}"));
                        return Err(error.into());
                    }
                    Message::Done { .. } => {
                        return Err(NetlinkError::Protocol(format!(
                            "unexpected NLMSG_DONE for {}",
                            encoded.op.name
                        )))
                    }
                    Message::Noop => {}
                }
            }
        }
    }

    /// Sends a dump request of the tlshub family and feeds each reply to
    /// `each` until `NLMSG_DONE`. Returns whether the kernel flagged the dump
    /// as interrupted (`NLM_F_DUMP_INTR`: the data changed while it was read).
    fn dump(
        &mut self,
        request: Request,
        each: impl FnMut(&Attrs<'_>) -> Result<(), NetlinkError>,
    ) -> Result<bool, NetlinkError> {
        self.dump_of(request, self.family, uapi::FAMILY_VERSION, each)
    }

    fn dump_of(
        &mut self,
        request: Request,
        family: u16,
        version: u8,
        mut each: impl FnMut(&Attrs<'_>) -> Result<(), NetlinkError>,
    ) -> Result<bool, NetlinkError> {
        let seq = self.next_seq();
        let encoded = request.encode(family, version, seq)?;
        self.send(&encoded)?;
        let (mut count, mut interrupted) = (0usize, false);
        loop {
            for msg in self.recv_datagram()? {
                match msg {
                    Message::Data { flags, msg, .. } => {
                        count += 1;
                        interrupted |= flags & DUMP_INTR != 0;
                        each(&Attrs::of(&msg))?;
                    }
                    Message::Done {
                        flags, error: None, ..
                    } => {
                        interrupted |= flags & DUMP_INTR != 0;
                        let intr = if interrupted { " (interrupted)" } else { "" };
                        self.log(|| format!("<- done seq {seq} after {count} messages{intr}"));
                        return Ok(interrupted);
                    }
                    Message::Done {
                        error: Some(error), ..
                    }
                    | Message::Error { error, .. } => return Err(encoded.annotate(error).into()),
                    Message::Ack { .. } => {
                        return Err(NetlinkError::Protocol(format!(
                            "unexpected ack for {} dump",
                            encoded.op.name
                        )))
                    }
                    Message::Noop => {}
                }
            }
        }
    }

    fn send(&mut self, encoded: &Encoded) -> Result<(), NetlinkError> {
        self.log(|| describe_request(encoded));
        let sent = retry_eintr(|| self.socket.send(&encoded.bytes, Msg::empty()))?;
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
        let mut messages = self.recv_messages()?;
        self.keep_events(&mut messages);
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

impl Client {
    /// Takes this family's events (sequence 0: `key-request`,
    /// `flow-key-request`) out of `messages` and keeps them for
    /// [`Client::next_event`]; a malformed one is logged and dropped.
    fn keep_events(&mut self, messages: &mut Vec<Message>) {
        let family = self.family;
        let mut kept = Vec::new();
        for m in std::mem::take(messages) {
            match m {
                Message::Data {
                    seq: 0,
                    family: f,
                    msg,
                    ..
                } if f == family
                    && [schema::KEY_REQUEST.cmd, schema::FLOW_KEY_REQUEST.cmd]
                        .contains(msg.cmd()) =>
                {
                    kept.push(msg)
                }
                other => messages.push(other),
            }
        }
        for msg in kept {
            match self.parse_event(&msg) {
                Some(Ok(event)) => {
                    self.log(|| "<- (event kept for later)".to_owned());
                    self.events.push_back(event);
                }
                Some(Err(e)) => self.log(|| format!("<- dropping a malformed event: {e}")),
                None => {}
            }
        }
    }

    /// Receives the next datagram, whatever it is, and splits it into
    /// messages.
    fn recv_messages(&mut self) -> Result<Vec<Message>, NetlinkError> {
        let peek = Msg::PEEK | Msg::TRUNC;
        let (size, _) = retry_eintr(|| self.socket.recv(&mut self.buf, peek))?;
        if size > self.buf.len() {
            self.buf.resize(size, 0);
        }
        let (len, _) = retry_eintr(|| self.socket.recv(&mut self.buf, Msg::empty()))?;
        let len = len.min(self.buf.len());
        parse_datagram(&mut self.buf[..len])
    }
}

/// How an event shows up in traces.
fn describe_event(event: &Event) -> String {
    match event {
        Event::KeyRequest(e) => format!(
            "<- key-request node-name {} local-node {}",
            e.node, e.local_node
        ),
        Event::FlowKeyRequest(e) => format!(
            "<- flow-key-request {} {} {} -> {} peer-node {} isn {}/{}",
            e.mode,
            e.role,
            e.local,
            e.remote,
            e.peer_node.as_deref().unwrap_or("-"),
            e.client_isn,
            e.server_isn
        ),
    }
}

fn retry_eintr<T>(mut op: impl FnMut() -> io::Result<T>) -> Result<T, NetlinkError> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return Ok(other?),
        }
    }
}

/// A `peer-set` lifetime in whole milliseconds (rounded up), 1 to
/// `u32::MAX`.
fn lifetime_ms(lifetime: Duration) -> Result<u32, NetlinkError> {
    let ms = lifetime.as_nanos().div_ceil(1_000_000);
    match u32::try_from(ms) {
        Ok(0) => Err(NetlinkError::Encode(
            "peer-set: a lifetime of 0 (omit it for a secret that never expires)".to_owned(),
        )),
        Ok(ms) => Ok(ms),
        Err(_) => Err(NetlinkError::Encode(format!(
            "peer-set: lifetime {lifetime:?} longer than {} ms",
            u32::MAX
        ))),
    }
}

/// The attributes of the one reply a `do` request must have produced.
fn single<'a>(replies: &'a [GenlMsg], name: &str) -> Result<Attrs<'a>, NetlinkError> {
    let reply = replies
        .first()
        .ok_or_else(|| NetlinkError::Protocol(format!("{name}: no reply before the ack")))?;
    Ok(Attrs::of(reply))
}

/// `node-local-set` of `nodes`: the `local-set` flag, then each node. At
/// most [`uapi::MAX_LOCAL_NODES`], each once.
fn local_nodes_request<S: AsRef<str>>(nodes: &[S]) -> Result<Request, NetlinkError> {
    if nodes.len() > uapi::MAX_LOCAL_NODES {
        return Err(NetlinkError::Encode(format!(
            "node-local-set: {} local nodes, at most {} are allowed",
            nodes.len(),
            uapi::MAX_LOCAL_NODES
        )));
    }
    let mut request = Request::new(&schema::NODE_LOCAL_SET);
    request.put(uapi::attr::LOCAL_SET, Value::Flag, "local-set")?;
    for (i, node) in nodes.iter().enumerate() {
        let node = node.as_ref();
        if nodes[..i].iter().any(|n| n.as_ref() == node) {
            return Err(NetlinkError::Encode(format!(
                "node-local-set: local node '{node}' given twice"
            )));
        }
        request.put(
            uapi::attr::LOCAL_NODE,
            Value::Str(node),
            format!("local-node {node}"),
        )?;
    }
    Ok(request)
}

/// One of the CIDR sets the kernel holds: its requests, attributes, bound
/// and how errors name it.
struct CidrSet {
    set: &'static schema::Op,
    flag: u16,
    flag_name: &'static str,
    nest: u16,
    nest_name: &'static str,
    max: usize,
    /// "Service CIDR", "pod CIDR".
    what: &'static str,
}

/// The Service CIDRs: `service-cidr-set`, `service-cidr-get`.
static SERVICE_CIDRS: CidrSet = CidrSet {
    set: &schema::SERVICE_CIDR_SET,
    flag: uapi::attr::SERVICE_SET,
    flag_name: "service-set",
    nest: uapi::attr::SERVICE_CIDR,
    nest_name: "service-cidr",
    max: uapi::MAX_SERVICE_CIDRS,
    what: "Service CIDR",
};

/// The pod CIDRs: `pod-cidr-set`, `pod-cidr-get`.
static POD_CIDRS: CidrSet = CidrSet {
    set: &schema::POD_CIDR_SET,
    flag: uapi::attr::POD_SET,
    flag_name: "pod-set",
    nest: uapi::attr::POD_CIDR,
    nest_name: "pod-cidr",
    max: uapi::MAX_POD_CIDRS,
    what: "pod CIDR",
};

/// `service-cidr-set` of `cidrs`: the `service-set` flag, then a `cidr`
/// nest each. At most [`uapi::MAX_SERVICE_CIDRS`], each once.
fn service_cidrs_request(cidrs: &[Cidr]) -> Result<Request, NetlinkError> {
    cidrs_request(&SERVICE_CIDRS, cidrs)
}

/// `pod-cidr-set` of `cidrs`: the `pod-set` flag, then a `cidr` nest each.
/// At most [`uapi::MAX_POD_CIDRS`], each once.
fn pod_cidrs_request(cidrs: &[Cidr]) -> Result<Request, NetlinkError> {
    cidrs_request(&POD_CIDRS, cidrs)
}

/// The set request of `set` for `cidrs`: its flag, then a `cidr` nest each.
fn cidrs_request(set: &CidrSet, cidrs: &[Cidr]) -> Result<Request, NetlinkError> {
    let op = set.set.name;
    if cidrs.len() > set.max {
        return Err(NetlinkError::Encode(format!(
            "{op}: {} {}s, at most {} are allowed",
            cidrs.len(),
            set.what,
            set.max
        )));
    }
    let mut request = Request::new(set.set);
    request.put(set.flag, Value::Flag, set.flag_name)?;
    for (i, cidr) in cidrs.iter().enumerate() {
        if cidrs[..i].contains(cidr) {
            return Err(NetlinkError::Encode(format!(
                "{op}: {} {cidr} given twice",
                set.what
            )));
        }
        request.nest(set.nest, format!("{} {cidr}", set.nest_name), |w| {
            match cidr.addr() {
                IpAddr::V4(a) => w.put(uapi::cidr::IPV4, Value::U32(u32::from(a)))?,
                IpAddr::V6(a) => w.put(uapi::cidr::IPV6, Value::Bytes(&a.octets()))?,
            }
            w.put(uapi::cidr::PREFIX_LEN, Value::U8(cidr.prefix_len()))
        })?;
    }
    Ok(request)
}

/// Every `service-cidr` nest at the top level of `attrs`.
fn service_cidrs_in(attrs: &Attrs<'_>) -> Result<Vec<Cidr>, NetlinkError> {
    cidrs_in(&SERVICE_CIDRS, attrs)
}

/// Every `pod-cidr` nest at the top level of `attrs`.
fn pod_cidrs_in(attrs: &Attrs<'_>) -> Result<Vec<Cidr>, NetlinkError> {
    cidrs_in(&POD_CIDRS, attrs)
}

/// Every nest of `set` at the top level of `attrs`: one address (`ipv4` or
/// `ipv6`) and its `prefix-len`, a network without host bits.
fn cidrs_in(set: &CidrSet, attrs: &Attrs<'_>) -> Result<Vec<Cidr>, NetlinkError> {
    attrs
        .all(set.nest)
        .map(|nest| {
            let nest = nest.nested()?;
            let bad = |what: &str| NetlinkError::Protocol(format!("{} {what}", set.nest_name));
            let addr = match (nest.get(uapi::cidr::IPV4), nest.get(uapi::cidr::IPV6)) {
                (Some(a), None) => IpAddr::V4(a.ipv4()?),
                (None, Some(a)) => IpAddr::V6(a.ipv6()?),
                _ => return Err(bad("without exactly one address")),
            };
            let len = nest
                .get(uapi::cidr::PREFIX_LEN)
                .ok_or_else(|| bad("without prefix-len"))?
                .u8()?;
            Cidr::new(addr, len).ok_or_else(|| bad(&format!("{addr}/{len} is not a network")))
        })
        .collect()
}

/// `config-set` of a cipher and/or a key timeout (at least one).
fn config_request(
    cipher: Option<Cipher>,
    key_timeout_ms: Option<u32>,
) -> Result<Request, NetlinkError> {
    if cipher.is_none() && key_timeout_ms.is_none() {
        return Err(NetlinkError::Encode(
            "config-set needs a cipher or a key timeout".to_owned(),
        ));
    }
    let mut request = Request::new(&schema::CONFIG_SET);
    if let Some(cipher) = cipher {
        request.put(
            uapi::attr::CIPHER,
            Value::U32(cipher.to_wire()),
            format!("cipher {cipher}"),
        )?;
    }
    if let Some(ms) = key_timeout_ms {
        request.put(
            uapi::attr::KEY_TIMEOUT_MS,
            Value::U32(ms),
            format!("key-timeout-ms {ms}"),
        )?;
    }
    Ok(request)
}

impl Config {
    /// Decodes a `config-get` reply: both settings are required.
    fn parse(attrs: &Attrs<'_>) -> Result<Config, NetlinkError> {
        let field = |ty, what: &str| {
            attrs
                .get(ty)
                .ok_or_else(|| NetlinkError::Protocol(format!("config-get reply without {what}")))
        };
        Ok(Config {
            cipher: cipher_of(field(uapi::attr::CIPHER, "cipher")?.u32()?)?,
            key_timeout_ms: field(uapi::attr::KEY_TIMEOUT_MS, "key-timeout-ms")?.u32()?,
        })
    }
}

/// The epoch in a `peer-set` reply, which must name peer `name`.
fn peer_set_epoch(attrs: &Attrs<'_>, name: &str) -> Result<u64, NetlinkError> {
    let peer = peers_in(attrs)?
        .into_iter()
        .next()
        .ok_or_else(|| NetlinkError::Protocol("peer-set reply without a peer".to_owned()))?;
    if peer.name != name {
        return Err(NetlinkError::Protocol(format!(
            "peer-set reply names peer '{}', not '{name}'",
            peer.name
        )));
    }
    peer.epoch
        .ok_or_else(|| NetlinkError::Protocol("peer-set reply without epoch".to_owned()))
}

/// Every `local-node` at the top level of `attrs`.
fn local_nodes_in(attrs: &Attrs<'_>) -> Result<Vec<String>, NetlinkError> {
    attrs
        .all(uapi::attr::LOCAL_NODE)
        .map(|a| a.string())
        .collect()
}

fn cipher_of(value: u32) -> Result<Cipher, NetlinkError> {
    Cipher::from_wire(value)
        .ok_or_else(|| NetlinkError::Protocol(format!("unknown cipher {value} in reply")))
}

fn required_mode(attrs: &Attrs<'_>) -> Result<Mode, NetlinkError> {
    let value = attrs
        .get(uapi::attr::MODE)
        .ok_or_else(|| NetlinkError::Protocol("reply without mode".to_owned()))?
        .u32()?;
    Mode::from_wire(value)
        .ok_or_else(|| NetlinkError::Protocol(format!("unknown mode {value} in reply")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_summarises_big_batches() {
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!("p{i} n\n"));
        }
        let table = PodNodeTable::parse_str(&text, "t").unwrap();
        let request = entries::stage_requests(&table).unwrap().remove(0);
        let line = describe_request(&request.encode(30, 1, 5).unwrap());
        assert!(line.starts_with("-> map-stage seq 5 ("), "{line}");
        assert!(
            line.ends_with("begin, 0 nodes, 10 pods (pod p0 .. pod p9)"),
            "{line}"
        );
    }
}

/// Requests and replies of the datapath operations, without a kernel.
#[cfg(test)]
mod datapath_tests {
    use super::codec::{GENL_HDRLEN, NLMSG_HDRLEN};
    use super::error::{NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS};
    use super::*;

    fn bytes_of(request: Request) -> Vec<u8> {
        let enc = request.encode(0x20, 1, 1).unwrap();
        enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..].to_vec()
    }

    #[test]
    fn node_local_set_request() {
        let bytes = bytes_of(local_nodes_request(&["node-1", "node-2"]).unwrap());
        let attrs = Attrs::parse(&bytes).unwrap();
        assert_eq!(attrs.get(uapi::attr::LOCAL_SET).unwrap().payload, b"");
        let nodes: Vec<String> = local_nodes_in(&attrs).unwrap();
        assert_eq!(nodes, ["node-1", "node-2"]);
        // Clearing: the flag alone.
        let bytes = bytes_of(local_nodes_request::<&str>(&[]).unwrap());
        let attrs = Attrs::parse(&bytes).unwrap();
        assert_eq!(attrs.iter().count(), 1);
        assert!(attrs.get(uapi::attr::LOCAL_SET).is_some());
        let err = |r: Result<Request, NetlinkError>| r.err().unwrap().to_string();
        let many: Vec<String> = (0..=uapi::MAX_LOCAL_NODES)
            .map(|i| format!("n{i}"))
            .collect();
        assert_eq!(
            err(local_nodes_request(&many)),
            "cannot encode request: node-local-set: 17 local nodes, at most 16 are allowed"
        );
        assert!(local_nodes_request(&many[..16]).is_ok());
        assert_eq!(
            err(local_nodes_request(&["a", "b", "a"])),
            "cannot encode request: node-local-set: local node 'a' given twice"
        );
        assert_eq!(
            err(local_nodes_request(&["x".repeat(254)])),
            "cannot encode request: node-local-set: 'local-node' longer than 253 bytes"
        );
    }

    #[test]
    fn config_set_request() {
        let bytes = bytes_of(config_request(Some(Cipher::Aes256Gcm), Some(5000)).unwrap());
        let attrs = Attrs::parse(&bytes).unwrap();
        assert_eq!(attrs.get(uapi::attr::CIPHER).unwrap().u32().unwrap(), 2);
        assert_eq!(
            attrs
                .get(uapi::attr::KEY_TIMEOUT_MS)
                .unwrap()
                .u32()
                .unwrap(),
            5000
        );
        let bytes = bytes_of(config_request(None, Some(100)).unwrap());
        let attrs = Attrs::parse(&bytes).unwrap();
        assert!(attrs.get(uapi::attr::CIPHER).is_none());
        let err = |r: Result<Request, NetlinkError>| r.err().unwrap().to_string();
        assert_eq!(
            err(config_request(None, None)),
            "cannot encode request: config-set needs a cipher or a key timeout"
        );
        // The spec's bounds are the encoder's.
        assert_eq!(
            err(config_request(None, Some(99))),
            "cannot encode request: config-set: 'key-timeout-ms' value 99 out of range"
        );
        assert_eq!(
            err(config_request(None, Some(600_001))),
            "cannot encode request: config-set: 'key-timeout-ms' value 600001 out of range"
        );
        assert!(config_request(None, Some(600_000)).is_ok());
        let mut r = Request::new(&schema::CONFIG_SET);
        for bad in [0, 4] {
            assert_eq!(
                r.put(uapi::attr::CIPHER, Value::U32(bad), "c")
                    .unwrap_err()
                    .to_string(),
                format!("cannot encode request: config-set: 'cipher' value {bad} out of range")
            );
        }
    }

    #[test]
    fn status_reply_with_every_counter() {
        let mut r = Request::reply(&schema::STATUS_GET, false);
        r.put(uapi::attr::VERSION, Value::Str("0.3.0"), "v")
            .unwrap();
        r.put(uapi::attr::MODE, Value::U32(uapi::mode::OPENSSL), "m")
            .unwrap();
        r.put(uapi::attr::POD_COUNT, Value::U32(3), "p").unwrap();
        r.nest(uapi::attr::STATS, "stats", |w| {
            // Every counter of the spec, valued by its attribute number.
            for a in schema::STATS
                .attrs
                .iter()
                .filter(|a| a.ty != schema::Type::Pad)
            {
                w.put(a.id, Value::U64(1000 + u64::from(a.id)))?;
            }
            Ok(())
        })
        .unwrap();
        r.put(
            uapi::attr::CIPHER,
            Value::U32(uapi::cipher::AES_128_GCM),
            "c",
        )
        .unwrap();
        r.put(uapi::attr::KEY_TIMEOUT_MS, Value::U32(2000), "t")
            .unwrap();
        r.put(uapi::attr::LOCAL_NODE, Value::Str("node-1"), "l")
            .unwrap();
        r.put(uapi::attr::LOCAL_NODE, Value::Str("node-9"), "l")
            .unwrap();
        let bytes = bytes_of(r);
        let status = Status::parse(&Attrs::parse(&bytes).unwrap()).unwrap();
        assert_eq!(status.version, "0.3.0");
        assert_eq!(status.mode, Mode::Openssl);
        assert_eq!(status.pods, 3);
        assert_eq!(status.cipher, Some(Cipher::Aes128Gcm));
        assert_eq!(status.key_timeout_ms, Some(2000));
        assert_eq!(status.local_nodes, ["node-1", "node-9"]);
        // counters() lists every counter of the spec, by its spec name, in
        // spec order, each with its own value.
        let spec: Vec<(&str, u64)> = schema::STATS
            .attrs
            .iter()
            .filter(|a| a.ty != schema::Type::Pad)
            .map(|a| (a.name, 1000 + u64::from(a.id)))
            .collect();
        assert_eq!(status.stats.counters().to_vec(), spec);
        assert_eq!(status.stats.flows_tracked, 1000 + 18);
        assert_eq!(status.stats.service_records, 1000 + 32);
        assert_eq!(status.stats.reset_identity, 1000 + 33);
        assert_eq!(status.stats.reset_unmapped, 1000 + 34);
        assert_eq!(status.stats.reset_fastopen, 1000 + 35);
        // And JSON names them in snake case.
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["stats"]["reset_stale_sender"], 1015);
        assert_eq!(json["stats"]["bypass_service"], 1030);
        assert_eq!(json["stats"]["reset_identity"], 1033);
        assert_eq!(json["stats"]["reset_unmapped"], 1034);
        assert_eq!(json["stats"]["reset_fastopen"], 1035);
        assert_eq!(json["cipher"], "aes-128-gcm");
        assert_eq!(json["key_timeout_ms"], 2000);
        assert_eq!(json["local_nodes"][1], "node-9");

        // An older reply (no datapath settings) still decodes.
        let mut r = Request::reply(&schema::STATUS_GET, false);
        r.put(uapi::attr::MODE, Value::U32(0), "m").unwrap();
        let bytes = bytes_of(r);
        let status = Status::parse(&Attrs::parse(&bytes).unwrap()).unwrap();
        assert_eq!((status.cipher, status.key_timeout_ms), (None, None));
        assert!(status.local_nodes.is_empty());
        assert_eq!(status.stats, Stats::default());
    }

    #[test]
    fn config_get_reply() {
        let reply = |cipher: Option<u32>, ms: Option<u32>| {
            let mut r = Request::reply(&schema::CONFIG_GET, false);
            if let Some(c) = cipher {
                r.put(uapi::attr::CIPHER, Value::U32(c), "c").unwrap();
            }
            if let Some(ms) = ms {
                r.put(uapi::attr::KEY_TIMEOUT_MS, Value::U32(ms), "t")
                    .unwrap();
            }
            let bytes = bytes_of(r);
            Config::parse(&Attrs::parse(&bytes).unwrap()).map_err(|e| e.to_string())
        };
        assert_eq!(
            reply(Some(3), Some(700)),
            Ok(Config {
                cipher: Cipher::Chacha20Poly1305,
                key_timeout_ms: 700
            })
        );
        assert_eq!(
            reply(None, Some(700)),
            Err("netlink protocol error: config-get reply without cipher".into())
        );
        assert_eq!(
            reply(Some(1), None),
            Err("netlink protocol error: config-get reply without key-timeout-ms".into())
        );
    }

    /// One CIDR setting as its tests see it: its request and decoding
    /// functions, operations, attributes and bound, the words its messages
    /// use, and an example network of each family.
    struct CidrCase {
        request: fn(&[Cidr]) -> Result<Request, NetlinkError>,
        decode: fn(&Attrs<'_>) -> Result<Vec<Cidr>, NetlinkError>,
        set: &'static schema::Op,
        get: &'static schema::Op,
        cmd: u8,
        flag: u16,
        nest: u16,
        max: usize,
        /// The set operation, its flag and its nests as messages name them.
        set_name: &'static str,
        flag_name: &'static str,
        nest_name: &'static str,
        /// One CIDR of the setting in errors.
        what: &'static str,
        /// An IPv4 network: its address, big-endian, and prefix length.
        v4: ([u8; 4], u8),
        /// An IPv6 network: its address and prefix length.
        v6: (&'static str, u8),
    }

    static SERVICE_CASE: CidrCase = CidrCase {
        request: service_cidrs_request,
        decode: service_cidrs_in,
        set: &schema::SERVICE_CIDR_SET,
        get: &schema::SERVICE_CIDR_GET,
        cmd: uapi::cmd::SERVICE_CIDR_SET,
        flag: uapi::attr::SERVICE_SET,
        nest: uapi::attr::SERVICE_CIDR,
        max: uapi::MAX_SERVICE_CIDRS,
        set_name: "service-cidr-set",
        flag_name: "service-set",
        nest_name: "service-cidr",
        what: "Service CIDR",
        v4: ([10, 96, 0, 0], 12),
        v6: ("fd00:96::", 108),
    };

    static POD_CASE: CidrCase = CidrCase {
        request: pod_cidrs_request,
        decode: pod_cidrs_in,
        set: &schema::POD_CIDR_SET,
        get: &schema::POD_CIDR_GET,
        cmd: uapi::cmd::POD_CIDR_SET,
        flag: uapi::attr::POD_SET,
        nest: uapi::attr::POD_CIDR,
        max: uapi::MAX_POD_CIDRS,
        set_name: "pod-cidr-set",
        flag_name: "pod-set",
        nest_name: "pod-cidr",
        what: "pod CIDR",
        v4: ([10, 244, 0, 0], 16),
        v6: ("fd00:10:244::", 56),
    };

    #[test]
    fn service_cidr_set_request() {
        cidr_set_request(&SERVICE_CASE, &POD_CASE);
    }

    #[test]
    fn pod_cidr_set_request() {
        cidr_set_request(&POD_CASE, &SERVICE_CASE);
    }

    /// The set request of `case`; `other` is the other setting, whose
    /// attributes the request must not carry.
    fn cidr_set_request(case: &CidrCase, other: &CidrCase) {
        let (v4, v4_len) = case.v4;
        let (v6, v6_len) = case.v6;
        let v4_text = format!("{}/{v4_len}", std::net::Ipv4Addr::from(v4));
        let v6_text = format!("{v6}/{v6_len}");
        let cidrs: Vec<Cidr> = [&*v4_text, &*v6_text, "192.0.2.7/32", "::/0"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        let enc = (case.request)(&cidrs).unwrap().encode(0x20, 1, 1).unwrap();
        assert_eq!(enc.bytes[16], case.cmd);
        let bytes = enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..].to_vec();
        let attrs = Attrs::parse(&bytes).unwrap();
        assert_eq!(attrs.get(case.flag).unwrap().payload, b"");
        assert!(attrs.get(other.flag).is_none());
        assert!(attrs.get(other.nest).is_none());
        // The wire form: ipv4 big-endian, ipv6 16 bytes, prefix-len one byte.
        let first = attrs.get(case.nest).unwrap().nested().unwrap();
        assert_eq!(first.get(uapi::cidr::IPV4).unwrap().payload, &v4);
        assert_eq!(
            first.get(uapi::cidr::PREFIX_LEN).unwrap().payload,
            &[v4_len]
        );
        assert!(first.get(uapi::cidr::IPV6).is_none());
        let second = attrs.all(case.nest).nth(1).unwrap().nested().unwrap();
        assert_eq!(
            second.get(uapi::cidr::IPV6).unwrap().ipv6().unwrap(),
            v6.parse::<std::net::Ipv6Addr>().unwrap()
        );
        assert_eq!(
            second.get(uapi::cidr::PREFIX_LEN).unwrap().u8().unwrap(),
            v6_len
        );
        // What the request says is what a reply of the same nests decodes to.
        assert_eq!((case.decode)(&attrs).unwrap(), cidrs);
        // The other set's nests are not these.
        assert!((other.decode)(&attrs).unwrap().is_empty());
        let nest = case.nest_name;
        assert_eq!(
            describe_request(&enc),
            format!(
                "-> {} seq 1 ({} bytes): {}, {nest} {v4_text}, {nest} {v6_text}, \
                 {nest} 192.0.2.7/32, {nest} ::/0",
                case.set_name,
                enc.bytes.len(),
                case.flag_name
            )
        );
        // Clearing: the flag alone.
        let bytes = bytes_of((case.request)(&[]).unwrap());
        let attrs = Attrs::parse(&bytes).unwrap();
        assert_eq!(attrs.iter().count(), 1);
        assert!(attrs.get(case.flag).is_some());
        let err = |r: Result<Request, NetlinkError>| r.err().unwrap().to_string();
        let many: Vec<Cidr> = (0..=case.max)
            .map(|i| format!("10.{i}.0.0/16").parse().unwrap())
            .collect();
        assert_eq!(
            err((case.request)(&many)),
            format!(
                "cannot encode request: {}: 17 {}s, at most 16 are allowed",
                case.set_name, case.what
            )
        );
        assert!((case.request)(&many[..16]).is_ok());
        assert_eq!(
            err((case.request)(&[cidrs[1], cidrs[0], cidrs[1]])),
            format!(
                "cannot encode request: {}: {} {v6_text} given twice",
                case.set_name, case.what
            )
        );
    }

    #[test]
    fn service_cidr_get_reply() {
        cidr_get_reply(&SERVICE_CASE);
    }

    #[test]
    fn pod_cidr_get_reply() {
        cidr_get_reply(&POD_CASE);
    }

    /// Replies to the get request of `case`, and the bound on prefix-len.
    fn cidr_get_reply(case: &CidrCase) {
        /// One nest: ipv4, ipv6, prefix-len, each if given.
        type Nest = (Option<u32>, Option<[u8; 16]>, Option<u8>);
        let reply = |nests: &[Nest]| {
            let mut r = Request::reply(case.get, false);
            for &(v4, v6, len) in nests {
                r.nest(case.nest, "c", |w| {
                    if let Some(a) = v4 {
                        w.put(uapi::cidr::IPV4, Value::U32(a))?;
                    }
                    if let Some(a) = &v6 {
                        w.put(uapi::cidr::IPV6, Value::Bytes(a))?;
                    }
                    match len {
                        Some(l) => w.put(uapi::cidr::PREFIX_LEN, Value::U8(l)),
                        None => Ok(()),
                    }
                })
                .unwrap();
            }
            let bytes = bytes_of(r);
            (case.decode)(&Attrs::parse(&bytes).unwrap())
                .map(|c| c.iter().map(Cidr::to_string).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        };
        let (v4, v4_len) = case.v4;
        let v4 = u32::from_be_bytes(v4);
        let ipv4 = std::net::Ipv4Addr::from;
        let (v6_text, v6_len) = case.v6;
        let v6 = v6_text.parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(
            reply(&[
                (Some(v4), None, Some(v4_len)),
                (None, Some(v6), Some(v6_len))
            ]),
            Ok(vec![
                format!("{}/{v4_len}", ipv4(v4)),
                format!("{v6_text}/{v6_len}")
            ])
        );
        assert_eq!(reply(&[]), Ok(vec![]));
        let protocol =
            |what: &str| Err(format!("netlink protocol error: {} {what}", case.nest_name));
        assert_eq!(
            reply(&[(Some(v4), None, None)]),
            protocol("without prefix-len")
        );
        assert_eq!(
            reply(&[(None, None, Some(8))]),
            protocol("without exactly one address")
        );
        assert_eq!(
            reply(&[(Some(1), Some(v6), Some(8))]),
            protocol("without exactly one address")
        );
        // A host bit set.
        assert_eq!(
            reply(&[(Some(v4 + 1), None, Some(v4_len))]),
            protocol(&format!("{}/{v4_len} is not a network", ipv4(v4 + 1)))
        );
        assert_eq!(
            reply(&[(Some(v4), None, Some(33))]),
            protocol(&format!("{}/33 is not a network", ipv4(v4)))
        );
        // The encoder keeps to the spec's bound on prefix-len.
        let mut r = Request::new(case.set);
        assert_eq!(
            r.nest(case.nest, "c", |w| w
                .put(uapi::cidr::PREFIX_LEN, Value::U8(129)))
                .unwrap_err()
                .to_string(),
            format!(
                "cannot encode request: {}: 'prefix-len' value 129 out of range",
                case.set_name
            )
        );
    }

    #[test]
    fn peer_set_reply() {
        let reply = |name: &str, epoch: Option<u64>| {
            let mut r = Request::reply(&schema::PEER_SET, false);
            r.nest(uapi::attr::PEER, "peer", |w| {
                w.put(uapi::peer::NAME, Value::Str(name))?;
                match epoch {
                    Some(e) => w.put(uapi::peer::EPOCH, Value::U64(e)),
                    None => Ok(()),
                }
            })
            .unwrap();
            let bytes = bytes_of(r);
            peer_set_epoch(&Attrs::parse(&bytes).unwrap(), "node-2").map_err(|e| e.to_string())
        };
        assert_eq!(reply("node-2", Some(3)), Ok(3));
        assert_eq!(
            reply("node-2", None),
            Err("netlink protocol error: peer-set reply without epoch".into())
        );
        assert_eq!(
            reply("node-3", Some(3)),
            Err("netlink protocol error: peer-set reply names peer 'node-3', not 'node-2'".into())
        );
    }

    /// A kernel error pointing into a `peer` nest names the attribute, and
    /// never shows the secret.
    #[test]
    fn errors_inside_a_peer_nest_hide_the_secret() {
        let psk = Psk::parse(&[0x41; 32]).unwrap();
        let mut r = Request::new(&schema::PEER_SET);
        entries::put_peer(&mut r, "node-2", None, &psk, Some(1), None).unwrap();
        let enc = r.encode(0x20, 1, 7).unwrap();
        let nest = enc.spans[0].range.start;
        // Nest header 4, name "node-2\0" padded to 8 plus its header 4.
        let psk_at = (nest + 4 + 12) as u32;
        let mut error = KernelError::new(libc::EKEYREJECTED);
        error.offset = Some(psk_at);
        error.message = Some("different secret for this epoch".into());
        let text = enc.annotate(error).to_string();
        assert!(text.ends_with("(at peer node-2 epoch 1: psk)"), "{text}");
        assert!(!text.contains("AAAA"), "{text}");
        // The same through a real NLMSG_ERROR datagram.
        let mut body = (-libc::EINVAL).to_ne_bytes().to_vec();
        body.extend_from_slice(&enc.bytes);
        for (ty, payload) in [
            (NLMSGERR_ATTR_MSG, b"bad\0".to_vec()),
            (NLMSGERR_ATTR_OFFS, psk_at.to_ne_bytes().to_vec()),
        ] {
            body.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&ty.to_ne_bytes());
            body.extend_from_slice(&payload);
            body.resize(codec::align(body.len()), 0);
        }
        let mut msg = ((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        msg.extend_from_slice(&(libc::NLM_F_ACK_TLVS as u16).to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&body);
        assert!(msg.windows(32).any(|w| w == [0x41; 32]), "the echo");
        let messages: [Message; 1] = parse_datagram(&mut msg).unwrap().try_into().unwrap();
        // The echoed request, secret included, is blanked before neli
        // copies anything out of the receive buffer.
        assert!(!msg.windows(32).any(|w| w == [0x41; 32]));
        let [Message::Error { error, .. }] = messages else {
            panic!("not an error")
        };
        assert_eq!(
            enc.annotate(error).to_string(),
            "kernel: Invalid argument (EINVAL): bad (at peer node-2 epoch 1: psk)"
        );
    }

    /// Events are generic netlink messages like replies: their family and
    /// command come out of the datagram.
    #[test]
    fn messages_carry_family_and_command() {
        let mut r = Request::event(&schema::KEY_REQUEST);
        r.put(uapi::attr::NODE_NAME, Value::Str("node-2"), "n")
            .unwrap();
        r.put(uapi::attr::LOCAL_NODE, Value::Str("node-1"), "l")
            .unwrap();
        let mut enc = r.encode(0x1d, 1, 0).unwrap();
        // Events have no request flags and sequence 0.
        enc.bytes[6..8].copy_from_slice(&0u16.to_ne_bytes());
        let messages = parse_datagram(&mut enc.bytes).unwrap();
        let [Message::Data {
            seq: 0,
            family: 0x1d,
            msg,
            ..
        }] = messages.as_slice()
        else {
            panic!("{messages:?}")
        };
        assert_eq!(*msg.cmd(), uapi::cmd::KEY_REQUEST);
        let event = entries::parse_key_request(&Attrs::of(msg)).unwrap();
        assert_eq!(
            (event.node.as_str(), event.local_node.as_str()),
            ("node-2", "node-1")
        );
    }
}

/// The transport against the running kernel: its own `nlctrl` family, which
/// every Linux kernel has, exercises framing, acks, dumps and extended acks
/// without the tlshub module. Host tests need `NETLINK_GENERIC` sockets (any
/// Linux host has them); there is no silent skip.
#[cfg(test)]
mod kernel_tests {
    use super::*;

    use schema::ctrl;

    fn ctrl_client() -> Client {
        let mut c = Client::unresolved(None).expect("NETLINK_GENERIC socket");
        c.family = ctrl::FAMILY_ID;
        c
    }

    fn getfamily_str(name: &str) -> Request {
        Request::new(&ctrl::GETFAMILY)
            .with(ctrl::ATTR_FAMILY_NAME, Value::Str(name), "family-name")
            .unwrap()
    }

    #[test]
    fn connect_reports_missing_module() {
        // The module is built for the VM's kernel, never loaded on the host.
        match Client::connect() {
            Err(NetlinkError::ModuleNotLoaded) => {}
            Err(e) => panic!("expected 'module not loaded', got: {e}"),
            Ok(_) => panic!("a tlshub family is registered on the test host"),
        }
    }

    #[test]
    fn do_request_with_reply_and_ack() {
        let mut c = ctrl_client();
        assert_eq!(c.resolve_family("nlctrl", &[]).unwrap().0, ctrl::FAMILY_ID);
        let replies = c
            .exchange(getfamily_str("nlctrl"), ctrl::FAMILY_ID, ctrl::VERSION)
            .unwrap();
        assert_eq!(replies.len(), 1);
    }

    #[test]
    fn kernel_error_carries_ext_ack_text() {
        let mut c = ctrl_client();
        // A family name without its NUL terminator fails nlctrl's policy
        // (NLA_NUL_STRING). The encoder never writes one, so the encoded
        // request is corrupted after the fact.
        let seq = c.next_seq();
        let mut encoded = getfamily_str("nlctrl")
            .encode(ctrl::FAMILY_ID, ctrl::VERSION, seq)
            .unwrap();
        let last = encoded.bytes.len() - 1;
        assert_eq!(&encoded.bytes[last - 2..], b"l\0\0", "NUL, then padding");
        encoded.bytes[last - 1] = b'x';
        let err = c.roundtrip(&encoded).unwrap_err();
        let NetlinkError::Kernel(e) = err else {
            panic!("{err}")
        };
        assert_eq!(e.errno, libc::EINVAL);
        assert_eq!(e.op, Some("getfamily"));
        assert_eq!(
            e.message.as_deref(),
            Some("Attribute failed policy validation")
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "kernel: Invalid argument (EINVAL): Attribute failed policy validation"
            ),
            "{text}"
        );
        assert!(text.ends_with(" (at family-name)"), "{text}");
        // The socket stays usable after an error.
        let err = c.resolve_family("no-such-family", &[]).unwrap_err();
        assert!(matches!(err, NetlinkError::ModuleNotLoaded), "{err}");
        // And the spec's bound is enforced before anything is sent.
        let mut r = Request::new(&ctrl::GETFAMILY);
        let long = "b".repeat(16);
        assert_eq!(
            r.put(ctrl::ATTR_FAMILY_NAME, Value::Str(&long), "f")
                .unwrap_err()
                .to_string(),
            "cannot encode request: getfamily: 'family-name' longer than 15 bytes"
        );
    }

    /// nlctrl's own multicast group, `notify`, is found in
    /// `CTRL_ATTR_MCAST_GROUPS` and can be joined (it needs no privilege);
    /// a group the family does not have is a clear error.
    #[test]
    fn multicast_groups_resolve_and_join() {
        let mut c = ctrl_client();
        let (id, groups) = c
            .resolve_family("nlctrl", &["notify", "no-such-group"])
            .unwrap();
        assert_eq!(id, ctrl::FAMILY_ID);
        assert!(groups == [("notify".to_owned(), 0x10)], "{groups:?}");
        c.groups = groups;
        c.subscribe("notify").unwrap();
        let err = c.subscribe(uapi::MCGRP_KEYS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the tlshub module has no multicast group 'keys'"
        );
        // Requests still work on a socket that joined a group.
        assert_eq!(c.resolve_family("nlctrl", &[]).unwrap().0, ctrl::FAMILY_ID);
    }

    /// A `key-request` event that arrives while the client waits for a
    /// reply is kept (not taken for the reply, not lost) and handed out by
    /// `next_key_request_timeout` at once; replies never use sequence 0.
    #[test]
    fn events_during_a_request_are_kept() {
        let mut c = ctrl_client();
        c.family = 0x1d;
        let event = |node: &str| {
            let mut r = Request::event(&schema::KEY_REQUEST);
            r.put(uapi::attr::NODE_NAME, Value::Str(node), "n").unwrap();
            r.put(uapi::attr::LOCAL_NODE, Value::Str("node-1"), "l")
                .unwrap();
            let mut enc = r.encode(0x1d, 1, 0).unwrap();
            enc.bytes[6..8].copy_from_slice(&0u16.to_ne_bytes());
            enc.bytes.clone()
        };
        let mut datagram = event("node-2");
        let mut reply = Request::reply(&schema::MODE_GET, false);
        reply.put(uapi::attr::MODE, Value::U32(0), "m").unwrap();
        datagram.extend_from_slice(&reply.encode(0x1d, 1, 77).unwrap().bytes);
        datagram.extend_from_slice(&event("node-3"));
        let mut messages = parse_datagram(&mut datagram).unwrap();
        assert_eq!(messages.len(), 3);
        c.keep_events(&mut messages);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].seq(), Some(77));
        // Another family's message of the same command number is not ours.
        let mut other = parse_datagram(&mut event("node-4")).unwrap();
        c.family = 0x1e;
        c.keep_events(&mut other);
        assert_eq!(other.len(), 1);
        let got: Vec<String> = std::iter::from_fn(|| {
            c.next_key_request_timeout(Duration::ZERO)
                .unwrap()
                .map(|e| e.node)
        })
        .collect();
        assert_eq!(got, ["node-2", "node-3"]);
        // Nothing more: the timeout is honoured (nothing arrives on this
        // socket).
        let t = Instant::now();
        assert_eq!(
            c.next_key_request_timeout(Duration::from_millis(50))
                .unwrap(),
            None
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        // And the socket still answers requests afterwards.
        assert_eq!(c.resolve_family("nlctrl", &[]).unwrap().0, ctrl::FAMILY_ID);
        c.seq = u32::MAX;
        assert_eq!(c.next_seq(), 1);
    }

    #[test]
    fn lifetimes_in_milliseconds() {
        assert_eq!(lifetime_ms(Duration::from_secs(2)).unwrap(), 2000);
        assert_eq!(lifetime_ms(Duration::from_micros(1)).unwrap(), 1);
        assert_eq!(lifetime_ms(Duration::from_micros(1500)).unwrap(), 2);
        assert_eq!(
            lifetime_ms(Duration::from_millis(u64::from(u32::MAX))).unwrap(),
            u32::MAX
        );
        assert!(lifetime_ms(Duration::ZERO).is_err());
        assert!(lifetime_ms(Duration::from_millis(u64::from(u32::MAX) + 1)).is_err());
    }

    #[test]
    fn multipart_dump() {
        let mut c = ctrl_client();
        let mut names = Vec::new();
        let interrupted = c
            .dump_of(
                Request::dump(&ctrl::GETFAMILY),
                ctrl::FAMILY_ID,
                ctrl::VERSION,
                |attrs| {
                    names.push(attrs.get(ctrl::ATTR_FAMILY_NAME).unwrap().string()?);
                    Ok(())
                },
            )
            .unwrap();
        assert!(!interrupted);
        assert!(names.iter().any(|n| n == "nlctrl"), "{names:?}");
        // A second request on the same socket after the dump.
        assert_eq!(c.resolve_family("nlctrl", &[]).unwrap().0, ctrl::FAMILY_ID);
    }
}
