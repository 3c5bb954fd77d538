//! The nests of the spec (`pod`, `node`, `peer`, `flow`), the `key-request`
//! and `flow-key-request` events, the `flow-key-set` nest, and how a whole
//! table is cut into `map-stage` messages.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::codec::{Attrs, RawAttr, Request, Value, Writer};
use super::{schema, NetlinkError};
use crate::mapping::{canonical_ip, Netns, Node, Pod, PodNodeTable, DEFAULT_AGENT_PORT};
use crate::psk::Psk;
use crate::{uapi, Cipher, Mode};

/// At most this many pods or nodes go into one `map-stage` message.
pub(crate) const STAGE_MAX_ENTRIES: usize = 1000;

/// And a `map-stage` message stays below this many bytes. The kernel refuses
/// messages larger than the socket send buffer (`net.core.wmem_default`,
/// usually 208 KiB) and echoes a failed request in its error reply, so
/// messages are kept well under both.
pub(crate) const STAGE_MAX_BYTES: usize = 64 * 1024;

/// An address as the attributes carry it: IPv4 (also for IPv4-mapped IPv6,
/// which names the same peer) as a big-endian u32, IPv6 as 16 bytes.
fn put_ip(w: &mut Writer<'_>, ip: IpAddr, v4: u16, v6: u16) -> Result<(), NetlinkError> {
    match canonical_ip(ip) {
        IpAddr::V4(a) => w.put(v4, Value::U32(a.into())),
        IpAddr::V6(a) => w.put(v6, Value::Bytes(&a.octets())),
    }
}

/// `pod` nest: name, node, each IPv4 and IPv6, `host-network`, and
/// `netns-cookie` when the pod is bound. A `netns=PATH` not resolved yet
/// ([`PodNodeTable::bind_netns`]) is refused: sending the pod unbound would
/// silently drop the binding.
pub(crate) fn put_pod(request: &mut Request, pod: &Pod) -> Result<(), NetlinkError> {
    if let Some(Netns::Path(path)) = &pod.netns {
        return Err(NetlinkError::Encode(format!(
            "pod {}: network namespace {} not resolved to its cookie",
            pod.name,
            path.display()
        )));
    }
    request.nest(uapi::attr::POD, pod_label(pod), |w| {
        w.put(uapi::pod::NAME, Value::Str(&pod.name))?;
        w.put(uapi::pod::NODE, Value::Str(&pod.node))?;
        for &ip in &pod.ips {
            put_ip(w, ip, uapi::pod::IPV4, uapi::pod::IPV6)?;
        }
        if pod.host_network {
            w.put(uapi::pod::HOST_NETWORK, Value::Flag)?;
        }
        // A u64 without the pad attribute: the kernel reads it unaligned
        // (nla_get_u64), as it does the peer nest's epoch.
        if let Some(Netns::Cookie(cookie)) = pod.netns {
            w.put(uapi::pod::NETNS_COOKIE, Value::U64(cookie))?;
        }
        Ok(())
    })
}

/// `node` nest: name, and the agent's address and port if known.
pub(crate) fn put_node(request: &mut Request, node: &Node) -> Result<(), NetlinkError> {
    request.nest(uapi::attr::NODE, node_label(node), |w| {
        w.put(uapi::node::NAME, Value::Str(&node.name))?;
        if let Some(agent) = node.agent {
            put_ip(w, agent.ip(), uapi::node::IPV4, uapi::node::IPV6)?;
            w.put(uapi::node::PORT, Value::U16(agent.port()))?;
        }
        Ok(())
    })
}

/// How a pod shows up in traces and error messages.
pub(crate) fn pod_label(pod: &Pod) -> String {
    format!("pod {}", pod.name)
}

/// How a node shows up in traces and error messages.
pub(crate) fn node_label(node: &Node) -> String {
    format!("node {}", node.name)
}

/// Decodes a `pod` nest. Unknown attributes are skipped, so that a newer
/// module can add some.
pub(crate) fn parse_pod(a: RawAttr<'_>) -> Result<Pod, NetlinkError> {
    let attrs = a.nested()?;
    let string = |ty| attrs.get(ty).map(|a| a.string()).transpose();
    let (Some(name), Some(node)) = (string(uapi::pod::NAME)?, string(uapi::pod::NODE)?) else {
        return Err(NetlinkError::Protocol(
            "pod without name or node in reply".to_owned(),
        ));
    };
    let mut ips = Vec::new();
    for a in attrs.iter() {
        match a.ty {
            uapi::pod::IPV4 => ips.push(IpAddr::V4(a.ipv4()?)),
            uapi::pod::IPV6 => ips.push(IpAddr::V6(a.ipv6()?)),
            _ => {}
        }
    }
    let cookie = attrs
        .get(uapi::pod::NETNS_COOKIE)
        .map(|a| a.u64())
        .transpose()?;
    Ok(Pod {
        name,
        node,
        ips,
        host_network: attrs.get(uapi::pod::HOST_NETWORK).is_some(),
        // 0: not bound.
        netns: cookie.filter(|&c| c != 0).map(Netns::Cookie),
    })
}

/// Decodes a `node` nest.
pub(crate) fn parse_node(a: RawAttr<'_>) -> Result<Node, NetlinkError> {
    let attrs = a.nested()?;
    let name = attrs
        .get(uapi::node::NAME)
        .ok_or_else(|| NetlinkError::Protocol("node without name in reply".to_owned()))?
        .string()?;
    let ip = match (attrs.get(uapi::node::IPV4), attrs.get(uapi::node::IPV6)) {
        (Some(v4), _) => Some(IpAddr::V4(v4.ipv4()?)),
        (None, Some(v6)) => Some(IpAddr::V6(v6.ipv6()?)),
        (None, None) => None,
    };
    let port = attrs.get(uapi::node::PORT).map(|p| p.u16()).transpose()?;
    let agent = ip.map(|ip| SocketAddr::new(ip, port.unwrap_or(DEFAULT_AGENT_PORT)));
    Ok(Node { name, agent })
}

/// Every `pod` nest at the top level of `attrs`.
pub(crate) fn pods_in(attrs: &Attrs<'_>) -> Result<Vec<Pod>, NetlinkError> {
    attrs.all(uapi::attr::POD).map(parse_pod).collect()
}

/// Every `node` nest at the top level of `attrs`.
pub(crate) fn nodes_in(attrs: &Attrs<'_>) -> Result<Vec<Node>, NetlinkError> {
    attrs.all(uapi::attr::NODE).map(parse_node).collect()
}

/// Where a peer's node-pair secret is (the spec's `peer-state` enum). When
/// several apply, the first of `Failed`, `Established`, `Expired`, `Waiting`
/// wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// No secret, and flows wait for one (a key request went out).
    Waiting,
    /// A secret that has not expired: flows to the peer are keyed from it.
    Established,
    /// The secret's lifetime is over: it counts as absent and was wiped;
    /// flows secured before keep their keys.
    Expired,
    /// The last event was a `peer-fail`; a successful `peer-set` clears it.
    Failed,
    /// No secret and no flow waiting.
    None,
}

impl PeerState {
    /// Every state, in spec order.
    pub const ALL: [PeerState; 5] = [
        PeerState::Waiting,
        PeerState::Established,
        PeerState::Expired,
        PeerState::Failed,
        PeerState::None,
    ];

    /// The spec's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Waiting => "waiting",
            PeerState::Established => "established",
            PeerState::Expired => "expired",
            PeerState::Failed => "failed",
            PeerState::None => "none",
        }
    }

    /// The wire value.
    pub fn to_wire(self) -> u32 {
        match self {
            PeerState::Waiting => uapi::peer_state::WAITING,
            PeerState::Established => uapi::peer_state::ESTABLISHED,
            PeerState::Expired => uapi::peer_state::EXPIRED,
            PeerState::Failed => uapi::peer_state::FAILED,
            PeerState::None => uapi::peer_state::NONE,
        }
    }

    /// The state of wire value `v`; `None` for a value this build does not
    /// know.
    pub fn from_wire(v: u32) -> Option<PeerState> {
        PeerState::ALL.into_iter().find(|s| s.to_wire() == v)
    }
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A peer node's node-pair secret, as `peer-get` reports it (never the
/// secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// The peer node.
    pub name: String,
    /// A node-pair entry's local node: the secret of the pair {local,
    /// name}. `None`: the peer's secret for every local node.
    pub local: Option<String>,
    /// Where its secret is. A module that does not report it (older than
    /// `peer-state`) gets `established` with an epoch, else `waiting` with
    /// pending flows, else `none`.
    pub state: PeerState,
    /// Epoch of the current secret (also when it has expired); `None`
    /// while there is no secret.
    pub epoch: Option<u64>,
    /// The highest epoch ever installed, also after a delete or a failure
    /// (`None`: never one); a new secret must come after it.
    pub last_epoch: Option<u64>,
    /// Flows waiting for this peer's secret.
    pub pending: u32,
    /// Milliseconds since the current secret was set.
    pub age_ms: Option<u64>,
    /// Milliseconds until the current secret expires (0 once it has);
    /// `None` without a secret or when it never expires.
    pub expires_ms: Option<u64>,
    /// The last error the key provider reported for the peer (`peer-fail`),
    /// until a secret is set.
    pub error: Option<String>,
    /// Milliseconds since that error was reported.
    pub error_age_ms: Option<u64>,
}

/// One tracked flow (`flow` nest of `flows-get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// `client` or `server` (the spec's `role` enum).
    pub role: &'static str,
    /// `key-wait`, `keyed`, `secured` or `failed` (`flow-state`).
    pub state: &'static str,
    pub local_ip: IpAddr,
    pub local_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub local_pod: Option<String>,
    pub remote_pod: Option<String>,
    pub peer_node: Option<String>,
    pub cipher: Option<Cipher>,
    pub age_ms: Option<u64>,
    /// Key-provider mode that keyed the flow.
    pub mode: Option<Mode>,
}

/// A `key-request` event: flows need the secret shared with `node`, and
/// `local_node` is the local node asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRequest {
    pub node: String,
    pub local_node: String,
}

/// `peer` nest of `peer-set`: the peer's name, its secret and, if given, the
/// secret's epoch and lifetime (milliseconds). Traces and errors name it
/// `peer NODE`; the secret is never shown.
pub(crate) fn put_peer(
    request: &mut Request,
    name: &str,
    local: Option<&str>,
    psk: &Psk,
    epoch: Option<u64>,
    lifetime_ms: Option<u32>,
) -> Result<(), NetlinkError> {
    let label = match epoch {
        Some(epoch) => format!("peer {} epoch {epoch}", pair_label(name, local)),
        None => format!("peer {}", pair_label(name, local)),
    };
    request.nest(uapi::attr::PEER, label, |w| {
        w.put(uapi::peer::NAME, Value::Str(name))?;
        if let Some(l) = local {
            w.put(uapi::peer::LOCAL, Value::Str(l))?;
        }
        w.put(uapi::peer::PSK, Value::Bytes(psk.as_bytes()))?;
        if let Some(epoch) = epoch {
            w.put(uapi::peer::EPOCH, Value::U64(epoch))?;
        }
        if let Some(ms) = lifetime_ms {
            w.put(uapi::peer::LIFETIME_MS, Value::U32(ms))?;
        }
        Ok(())
    })
}

/// `peer` nest of `peer-fail`: the peer's name and why no secret can be had
/// (not empty; at most [`uapi::ERROR_MAX_LEN`] bytes, no NUL).
pub(crate) fn put_peer_error(
    request: &mut Request,
    name: &str,
    local: Option<&str>,
    error: &str,
) -> Result<(), NetlinkError> {
    if error.is_empty() {
        return Err(NetlinkError::Encode(
            "peer-fail: 'error' is empty".to_owned(),
        ));
    }
    request.nest(
        uapi::attr::PEER,
        format!("peer {}", pair_label(name, local)),
        |w| {
            w.put(uapi::peer::NAME, Value::Str(name))?;
            if let Some(l) = local {
                w.put(uapi::peer::LOCAL, Value::Str(l))?;
            }
            w.put(uapi::peer::ERROR, Value::Str(error))
        },
    )
}

/// How error messages name a peer entry: `n2`, or `n2 (local n1)`.
pub(crate) fn pair_label(name: &str, local: Option<&str>) -> String {
    match local {
        Some(l) => format!("{name} (local {l})"),
        None => name.to_owned(),
    }
}

fn protocol(what: String) -> NetlinkError {
    NetlinkError::Protocol(what)
}

/// Decodes a `peer` nest. A reply never carries the secret; if one did, it
/// is ignored, not kept. Unknown attributes are skipped; the error text is
/// decoded leniently (it is whatever the key provider reported).
pub(crate) fn parse_peer(a: RawAttr<'_>) -> Result<Peer, NetlinkError> {
    let attrs = a.nested()?;
    let name = attrs
        .get(uapi::peer::NAME)
        .ok_or_else(|| protocol("peer without name in reply".to_owned()))?
        .string()?;
    let u64_of = |id| attrs.get(id).map(|a| a.u64()).transpose();
    let epoch = u64_of(uapi::peer::EPOCH)?;
    let pending = attrs.get(uapi::peer::PENDING).map_or(Ok(0), |a| a.u32())?;
    let state = match attrs.get(uapi::peer::STATE) {
        Some(a) => {
            let v = a.u32()?;
            PeerState::from_wire(v)
                .ok_or_else(|| protocol(format!("unknown peer-state {v} in peer state")))?
        }
        None if epoch.is_some() => PeerState::Established,
        None if pending > 0 => PeerState::Waiting,
        None => PeerState::None,
    };
    let error = attrs.get(uapi::peer::ERROR).map(|a| {
        let raw = a.payload.split(|&c| c == 0).next().unwrap_or_default();
        String::from_utf8_lossy(raw).into_owned()
    });
    let local = attrs
        .get(uapi::peer::LOCAL)
        .map(|a| a.string())
        .transpose()?;
    Ok(Peer {
        last_epoch: u64_of(uapi::peer::LAST_EPOCH)?,
        local,
        state,
        epoch,
        pending,
        age_ms: u64_of(uapi::peer::AGE_MS)?,
        expires_ms: u64_of(uapi::peer::EXPIRES_MS)?,
        error,
        error_age_ms: u64_of(uapi::peer::ERROR_AGE_MS)?,
        name,
    })
}

/// Every `peer` nest at the top level of `attrs`.
pub(crate) fn peers_in(attrs: &Attrs<'_>) -> Result<Vec<Peer>, NetlinkError> {
    attrs.all(uapi::attr::PEER).map(parse_peer).collect()
}

/// The name of enum attribute `id` of `set` with wire value `value`.
fn enum_name(set: &'static schema::AttrSet, a: RawAttr<'_>) -> Result<&'static str, NetlinkError> {
    let spec = set.get(a.ty).expect("attribute of the set");
    let e = spec.enumeration.expect("an enum attribute");
    let value = a.u32()?;
    e.name_of(value).ok_or_else(|| {
        protocol(format!(
            "unknown {} {value} in {} {}",
            e.name, set.name, spec.name
        ))
    })
}

/// The address of a flow end: its IPv4 or its IPv6 attribute, exactly one.
fn flow_ip(attrs: &Attrs<'_>, v4: u16, v6: u16, end: &str) -> Result<IpAddr, NetlinkError> {
    match (attrs.get(v4), attrs.get(v6)) {
        (Some(a), None) => Ok(IpAddr::V4(a.ipv4()?)),
        (None, Some(a)) => Ok(IpAddr::V6(a.ipv6()?)),
        (None, None) => Err(protocol(format!("flow without {end} address in reply"))),
        (Some(_), Some(_)) => Err(protocol(format!(
            "flow with both an IPv4 and an IPv6 {end} address in reply"
        ))),
    }
}

/// Decodes a `flow` nest. Role, state and both ends are required; the rest
/// is absent when the kernel does not know it (yet).
pub(crate) fn parse_flow(a: RawAttr<'_>) -> Result<Flow, NetlinkError> {
    let attrs = a.nested()?;
    let required = |id: u16, what: &str| {
        attrs
            .get(id)
            .ok_or_else(|| protocol(format!("flow without {what} in reply")))
    };
    let string = |id| attrs.get(id).map(|a| a.string()).transpose();
    let cipher = match attrs.get(uapi::flow::CIPHER) {
        None => None,
        Some(a) => {
            let v = a.u32()?;
            Some(
                Cipher::from_wire(v)
                    .ok_or_else(|| protocol(format!("unknown cipher {v} in flow cipher")))?,
            )
        }
    };
    let mode = match attrs.get(uapi::flow::MODE) {
        None => None,
        Some(a) => {
            let v = a.u32()?;
            Some(
                Mode::from_wire(v)
                    .ok_or_else(|| protocol(format!("unknown mode {v} in flow mode")))?,
            )
        }
    };
    Ok(Flow {
        role: enum_name(&schema::FLOW, required(uapi::flow::ROLE, "role")?)?,
        state: enum_name(&schema::FLOW, required(uapi::flow::STATE, "state")?)?,
        local_ip: flow_ip(
            &attrs,
            uapi::flow::LOCAL_IPV4,
            uapi::flow::LOCAL_IPV6,
            "local",
        )?,
        local_port: required(uapi::flow::LOCAL_PORT, "local port")?.u16()?,
        remote_ip: flow_ip(
            &attrs,
            uapi::flow::REMOTE_IPV4,
            uapi::flow::REMOTE_IPV6,
            "remote",
        )?,
        remote_port: required(uapi::flow::REMOTE_PORT, "remote port")?.u16()?,
        local_pod: string(uapi::flow::LOCAL_POD)?,
        remote_pod: string(uapi::flow::REMOTE_POD)?,
        peer_node: string(uapi::flow::PEER_NODE)?,
        cipher,
        age_ms: attrs.get(uapi::flow::AGE_MS).map(|a| a.u64()).transpose()?,
        mode,
    })
}

/// Every `flow` nest at the top level of `attrs`.
pub(crate) fn flows_in(attrs: &Attrs<'_>) -> Result<Vec<Flow>, NetlinkError> {
    attrs.all(uapi::attr::FLOW).map(parse_flow).collect()
}

/// Decodes a `key-request` event.
pub(crate) fn parse_key_request(attrs: &Attrs<'_>) -> Result<KeyRequest, NetlinkError> {
    let string = |id, what: &str| {
        attrs
            .get(id)
            .ok_or_else(|| protocol(format!("key-request event without {what}")))?
            .string()
    };
    Ok(KeyRequest {
        node: string(uapi::attr::NODE_NAME, "node-name")?,
        local_node: string(uapi::attr::LOCAL_NODE, "local-node")?,
    })
}

/// Which end of a flow this kernel is (the spec's `role` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The connecting end.
    Client,
    /// The accepting end.
    Server,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    pub fn from_wire(v: u32) -> Option<Role> {
        match v {
            uapi::role::CLIENT => Some(Role::Client),
            uapi::role::SERVER => Some(Role::Server),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `flow-key-request` event: a flow decided in the openssl or boringssl
/// mode waits for its own secret. Addresses and ports are this end's view
/// (`local` is this kernel's socket); both ISNs are the flow's (the
/// connecting end's and the accepting end's), whichever end this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowKeyRequest {
    pub role: Role,
    pub mode: Mode,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub local_pod: Option<String>,
    pub remote_pod: Option<String>,
    pub peer_node: Option<String>,
    pub cipher: Option<Cipher>,
    pub client_isn: u32,
    pub server_isn: u32,
}

/// The answer to a [`FlowKeyRequest`] (`flow-key-set`): this end's view of
/// the flow's tuple, optionally its ISNs (the kernel then checks them), and
/// the flow's 32-byte secret. The secret is wiped when the value is
/// dropped, and `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct FlowKey {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub client_isn: Option<u32>,
    pub server_isn: Option<u32>,
    pub secret: [u8; uapi::PSK_LEN],
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowKey")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("client_isn", &self.client_isn)
            .field("server_isn", &self.server_isn)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl Drop for FlowKey {
    fn drop(&mut self) {
        super::wipe(&mut self.secret);
    }
}

/// How a flow shows up in traces and error messages (never its secret).
pub(crate) fn flow_label(local: SocketAddr, remote: SocketAddr) -> String {
    format!("flow {local} -> {remote}")
}

/// `flow` nest of `flow-key-set`: both ends (IPv4-mapped IPv6 as IPv4, like
/// the kernel reports them), the ISNs if given, the secret.
pub(crate) fn put_flow_key(request: &mut Request, key: &FlowKey) -> Result<(), NetlinkError> {
    if canonical_ip(key.local.ip()).is_ipv4() != canonical_ip(key.remote.ip()).is_ipv4() {
        return Err(NetlinkError::Encode(format!(
            "flow-key-set: {} and {} are of different address families",
            key.local, key.remote
        )));
    }
    request.nest(
        uapi::attr::FLOW,
        flow_label(
            SocketAddr::new(canonical_ip(key.local.ip()), key.local.port()),
            SocketAddr::new(canonical_ip(key.remote.ip()), key.remote.port()),
        ),
        |w| {
            put_ip(
                w,
                key.local.ip(),
                uapi::flow::LOCAL_IPV4,
                uapi::flow::LOCAL_IPV6,
            )?;
            w.put(uapi::flow::LOCAL_PORT, Value::U16(key.local.port()))?;
            put_ip(
                w,
                key.remote.ip(),
                uapi::flow::REMOTE_IPV4,
                uapi::flow::REMOTE_IPV6,
            )?;
            w.put(uapi::flow::REMOTE_PORT, Value::U16(key.remote.port()))?;
            if let Some(isn) = key.client_isn {
                w.put(uapi::flow::CLIENT_ISN, Value::U32(isn))?;
            }
            if let Some(isn) = key.server_isn {
                w.put(uapi::flow::SERVER_ISN, Value::U32(isn))?;
            }
            w.put(uapi::flow::SECRET, Value::Bytes(&key.secret))
        },
    )
}

/// Decodes a `flow-key-request` event. Role, mode, both ends and both ISNs
/// are required; pods, peer node and cipher are kept if present. Unknown
/// attributes are skipped; a secret, should one ever be sent, is ignored.
pub(crate) fn parse_flow_key_request(attrs: &Attrs<'_>) -> Result<FlowKeyRequest, NetlinkError> {
    let what = "flow-key-request event";
    let nest = attrs
        .get(uapi::attr::FLOW)
        .ok_or_else(|| protocol(format!("{what} without flow")))?
        .nested()?;
    let required = |id: u16, name: &str| {
        nest.get(id)
            .ok_or_else(|| protocol(format!("{what} without {name}")))
    };
    let role = {
        let v = required(uapi::flow::ROLE, "role")?.u32()?;
        Role::from_wire(v).ok_or_else(|| protocol(format!("unknown role {v} in {what}")))?
    };
    let mode = {
        let v = required(uapi::flow::MODE, "mode")?.u32()?;
        Mode::from_wire(v).ok_or_else(|| protocol(format!("unknown mode {v} in {what}")))?
    };
    let cipher = match nest.get(uapi::flow::CIPHER) {
        None => None,
        Some(a) => {
            let v = a.u32()?;
            Some(
                Cipher::from_wire(v)
                    .ok_or_else(|| protocol(format!("unknown cipher {v} in {what}")))?,
            )
        }
    };
    let end = |v4, v6, port, name: &str| -> Result<SocketAddr, NetlinkError> {
        let ip = match (nest.get(v4), nest.get(v6)) {
            (Some(a), None) => IpAddr::V4(a.ipv4()?),
            (None, Some(a)) => IpAddr::V6(a.ipv6()?),
            (None, None) => return Err(protocol(format!("{what} without {name} address"))),
            (Some(_), Some(_)) => {
                return Err(protocol(format!(
                    "{what} with both an IPv4 and an IPv6 {name} address"
                )))
            }
        };
        let port = required(port, &format!("{name} port"))?.u16()?;
        Ok(SocketAddr::new(canonical_ip(ip), port))
    };
    let local = end(
        uapi::flow::LOCAL_IPV4,
        uapi::flow::LOCAL_IPV6,
        uapi::flow::LOCAL_PORT,
        "local",
    )?;
    let remote = end(
        uapi::flow::REMOTE_IPV4,
        uapi::flow::REMOTE_IPV6,
        uapi::flow::REMOTE_PORT,
        "remote",
    )?;
    if local.is_ipv4() != remote.is_ipv4() {
        return Err(protocol(format!(
            "{what} with an IPv4 and an IPv6 end ({local}, {remote})"
        )));
    }
    let string = |id| nest.get(id).map(|a| a.string()).transpose();
    Ok(FlowKeyRequest {
        role,
        mode,
        local,
        remote,
        local_pod: string(uapi::flow::LOCAL_POD)?,
        remote_pod: string(uapi::flow::REMOTE_POD)?,
        peer_node: string(uapi::flow::PEER_NODE)?,
        cipher,
        client_isn: required(uapi::flow::CLIENT_ISN, "client-isn")?.u32()?,
        server_isn: required(uapi::flow::SERVER_ISN, "server-isn")?.u32()?,
    })
}

/// Cuts `table` into `map-stage` requests: the first carries `begin`, nodes
/// come before pods (so a pod's node is known by the time it is staged), and
/// each message stays within [`STAGE_MAX_ENTRIES`] and [`STAGE_MAX_BYTES`].
/// Everything is encoded before anything is sent, so an unencodable entry
/// cannot leave a half-staged table behind.
pub(crate) fn stage_requests(table: &PodNodeTable) -> Result<Vec<Request>, NetlinkError> {
    let mut first = Request::new(&schema::MAP_STAGE);
    first.put(uapi::attr::BEGIN, Value::Flag, "begin")?;
    let mut requests = vec![first];
    let mut in_current = 0;
    let mut add = |put: &dyn Fn(&mut Request) -> Result<(), NetlinkError>| {
        let current = requests.last_mut().expect("never empty");
        put(current)?;
        // Too many or too big: the entry goes into a new message.
        if in_current > 0 && (in_current == STAGE_MAX_ENTRIES || current.size() > STAGE_MAX_BYTES) {
            current.pop();
            let mut next = Request::new(&schema::MAP_STAGE);
            put(&mut next)?;
            requests.push(next);
            in_current = 0;
        }
        in_current += 1;
        Ok::<_, NetlinkError>(())
    };
    for node in table.nodes() {
        add(&|r| put_node(r, node))?;
    }
    for pod in table.pods() {
        add(&|r| put_pod(r, pod))?;
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::codec::{GENL_HDRLEN, NLMSG_HDRLEN};

    fn roundtrip(request: Request) -> (Vec<Pod>, Vec<Node>) {
        let enc = request.encode(0x20, 1, 1).unwrap();
        let attrs = Attrs::parse(&enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..]).unwrap();
        (pods_in(&attrs).unwrap(), nodes_in(&attrs).unwrap())
    }

    #[test]
    fn pod_and_node_roundtrip() {
        let pod = Pod::parse(
            "ns/web-1",
            "node-1",
            &["10.0.0.5", "fd00::5", "192.168.1.2"],
        )
        .unwrap();
        let host = Pod {
            host_network: true,
            ..Pod::parse("kube-system/proxy", "node-1", &["10.0.0.5"]).unwrap()
        };
        let node = Node::parse("node-1", Some("[fd00::1]:9000")).unwrap();
        let bare = Node::parse("node-2", None).unwrap();
        let mut r = Request::new(&schema::MAP_STAGE);
        put_pod(&mut r, &pod).unwrap();
        put_pod(&mut r, &host).unwrap();
        put_node(&mut r, &node).unwrap();
        put_node(&mut r, &bare).unwrap();
        assert_eq!(roundtrip(r), (vec![pod, host], vec![node, bare]));
    }

    #[test]
    fn netns_cookie_roundtrip_and_unresolved_paths_refused() {
        let bound = Pod::from_columns("ns/a", "n1", &["10.0.0.1", "netns-cookie=4099"]).unwrap();
        let unbound = Pod::parse("ns/b", "n1", &["10.0.0.2"]).unwrap();
        let mut r = Request::new(&schema::MAP_ADD);
        put_pod(&mut r, &bound).unwrap();
        let enc = r.encode(0x20, 1, 1).unwrap();
        let attrs = Attrs::parse(&enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..]).unwrap();
        let nest = attrs.get(uapi::attr::POD).unwrap().nested().unwrap();
        assert_eq!(
            nest.get(uapi::pod::NETNS_COOKIE).unwrap().payload,
            &4099u64.to_ne_bytes()
        );
        let mut r = Request::new(&schema::MAP_STAGE);
        put_pod(&mut r, &bound).unwrap();
        put_pod(&mut r, &unbound).unwrap();
        assert_eq!(roundtrip(r).0, vec![bound, unbound.clone()]);
        // A reply's 0 is "not bound".
        let mut r = Request::reply(&schema::MAP_GET, false);
        r.nest(uapi::attr::POD, "p", |w| {
            w.put(uapi::pod::NAME, Value::Str("ns/b"))?;
            w.put(uapi::pod::NODE, Value::Str("n1"))?;
            w.put(uapi::pod::IPV4, Value::U32(0x0a00_0002))?;
            w.put(uapi::pod::NETNS_COOKIE, Value::U64(0))
        })
        .unwrap();
        assert_eq!(roundtrip(r).0, vec![unbound]);
        // A path must be resolved first: never sent, never dropped silently.
        let path = Pod::from_columns("ns/c", "n1", &["netns=/run/netns/c"]).unwrap();
        let mut r = Request::new(&schema::MAP_ADD);
        let err = put_pod(&mut r, &path).unwrap_err().to_string();
        assert!(err.contains("/run/netns/c not resolved"), "{err}");
    }

    #[test]
    fn ipv4_is_network_order_port_host_order_and_v4_mapped_is_ipv4() {
        let pod = Pod {
            name: "a".into(),
            node: "b".into(),
            ips: vec!["::ffff:10.1.2.3".parse().unwrap()],
            host_network: false,
            netns: None,
        };
        let mut r = Request::new(&schema::MAP_ADD);
        put_pod(&mut r, &pod).unwrap();
        put_node(&mut r, &Node::parse("b", Some("10.0.0.1")).unwrap()).unwrap();
        let enc = r.encode(0x20, 1, 1).unwrap();
        let attrs = Attrs::parse(&enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..]).unwrap();
        let pod = attrs.get(uapi::attr::POD).unwrap().nested().unwrap();
        assert_eq!(pod.get(uapi::pod::IPV4).unwrap().payload, &[10, 1, 2, 3]);
        assert!(pod.get(uapi::pod::IPV6).is_none());
        assert!(pod.get(uapi::pod::HOST_NETWORK).is_none());
        let node = attrs.get(uapi::attr::NODE).unwrap().nested().unwrap();
        assert_eq!(
            node.get(uapi::node::PORT).unwrap().payload,
            &7443u16.to_ne_bytes()
        );
    }

    #[test]
    fn staging_splits_large_tables() {
        let mut text = String::from("node node-0 10.0.0.1\nnode node-1 [fd00::1]:1\n");
        for i in 0..2500u32 {
            let ip = std::net::Ipv4Addr::from(0x0a80_0000 + i);
            text.push_str(&format!("ns/pod-{i} node-{} {ip}\n", i % 2));
        }
        let table = PodNodeTable::parse_str(&text, "t").unwrap();
        let requests = stage_requests(&table).unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].count(uapi::attr::BEGIN), 1);
        assert_eq!(requests[0].count(uapi::attr::NODE), 2);
        assert!(requests[1..]
            .iter()
            .all(|r| r.count(uapi::attr::BEGIN) == 0));
        for r in &requests {
            assert!(r.count(uapi::attr::POD) + r.count(uapi::attr::NODE) <= STAGE_MAX_ENTRIES);
            assert!(r.size() <= STAGE_MAX_BYTES);
        }
        // Order is preserved across messages.
        let all: Vec<Pod> = requests.into_iter().flat_map(|r| roundtrip(r).0).collect();
        assert_eq!(all, table.pods());
    }

    #[test]
    fn staging_respects_byte_budget() {
        let long = |p: &str, i: usize| format!("{p}{i}-{}", "x".repeat(240));
        let mut text = String::new();
        for i in 0..1000 {
            let ips: Vec<String> = (0..8).map(|j| format!("fd00::{:x}:{j}", i + 1)).collect();
            text.push_str(&format!(
                "{}/{} {} {}\n",
                "n".repeat(63),
                long("p", i),
                long("n", i % 3),
                ips.join(" ")
            ));
        }
        let table = PodNodeTable::parse_str(&text, "t").unwrap();
        let requests = stage_requests(&table).unwrap();
        assert!(requests.len() > 1);
        assert!(requests.iter().all(|r| r.size() <= STAGE_MAX_BYTES));
        let pods: usize = requests.iter().map(|r| r.count(uapi::attr::POD)).sum();
        assert_eq!(pods, 1000);
    }

    #[test]
    fn empty_table_is_a_lone_begin() {
        let requests = stage_requests(&PodNodeTable::new()).unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].count(uapi::attr::BEGIN), 1);
        assert_eq!(requests[0].count(uapi::attr::POD), 0);
    }

    /// The attributes of `request` as the receiver sees them.
    fn attrs_of(request: Request) -> Vec<u8> {
        let enc = request.encode(0x20, 1, 1).unwrap();
        enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..].to_vec()
    }

    fn test_psk() -> Psk {
        Psk::parse(&(0..32).collect::<Vec<u8>>()).unwrap()
    }

    #[test]
    fn peer_set_request() {
        let mut r = Request::new(&schema::PEER_SET);
        put_peer(&mut r, "node-2", None, &test_psk(), Some(7), None).unwrap();
        let enc = r.encode(0x20, 1, 1).unwrap();
        let b = &enc.bytes;
        let top = NLMSG_HDRLEN + GENL_HDRLEN;
        let ty = u16::from_ne_bytes([b[top + 2], b[top + 3]]);
        assert_eq!(ty, uapi::attr::PEER | libc::NLA_F_NESTED as u16);
        let attrs = Attrs::parse(&b[top..]).unwrap();
        let peer = attrs.get(uapi::attr::PEER).unwrap().nested().unwrap();
        assert_eq!(peer.get(uapi::peer::NAME).unwrap().payload, b"node-2\0");
        let psk = peer.get(uapi::peer::PSK).unwrap().payload;
        assert_eq!(psk, test_psk().as_bytes());
        assert_eq!(
            peer.get(uapi::peer::EPOCH).unwrap().payload,
            &7u64.to_ne_bytes()
        );
        assert!(peer.get(uapi::peer::PENDING).is_none());
        // Traces name the peer and the epoch, never the secret.
        assert_eq!(enc.spans[0].label, "peer node-2 epoch 7");
        let line = crate::netlink::codec::describe_request(&enc);
        assert!(line.ends_with(": peer node-2 epoch 7"), "{line}");

        assert!(peer.get(uapi::peer::LIFETIME_MS).is_none());

        // Without an epoch, none is sent; a lifetime goes in as a u32.
        let mut r = Request::new(&schema::PEER_SET);
        put_peer(&mut r, "node-2", None, &test_psk(), None, Some(2000)).unwrap();
        let bytes = attrs_of(r);
        let attrs = Attrs::parse(&bytes).unwrap();
        let peer = attrs.get(uapi::attr::PEER).unwrap().nested().unwrap();
        assert!(peer.get(uapi::peer::EPOCH).is_none());
        assert_eq!(
            peer.get(uapi::peer::LIFETIME_MS).unwrap().payload,
            &2000u32.to_ne_bytes()
        );

        // The encoder holds the psk to the spec's exact length, and the
        // peer-set request to its one attribute.
        let mut r = Request::new(&schema::PEER_SET);
        let err = r
            .nest(uapi::attr::PEER, "p", |w| {
                w.put(uapi::peer::PSK, Value::Bytes(&[0; 31]))
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode request: peer-set: 'psk' has the wrong size (31 bytes)"
        );
        let err = r
            .put(uapi::attr::NODE_NAME, Value::Str("x"), "x")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode request: peer-set: request takes no 'node-name'"
        );
    }

    #[test]
    fn peer_dump_replies() {
        let reply = |name: &str, epoch: Option<u64>, pending: u32| {
            let mut r = Request::reply(&schema::PEER_GET, true);
            r.nest(uapi::attr::PEER, "peer", |w| {
                w.put(uapi::peer::NAME, Value::Str(name))?;
                if let Some(e) = epoch {
                    w.put(uapi::peer::EPOCH, Value::U64(e))?;
                }
                w.put(uapi::peer::PENDING, Value::U32(pending))
            })
            .unwrap();
            attrs_of(r)
        };
        let a = reply("node-2", Some(u64::MAX), 0);
        let b = reply("node-3", None, 4);
        let mut peers = peers_in(&Attrs::parse(&a).unwrap()).unwrap();
        peers.extend(peers_in(&Attrs::parse(&b).unwrap()).unwrap());
        // Without a state (an older module): inferred.
        let bare = |name: &str, state, epoch, pending| Peer {
            name: String::from(name),
            local: None,
            last_epoch: None,
            state,
            epoch,
            pending,
            age_ms: None,
            expires_ms: None,
            error: None,
            error_age_ms: None,
        };
        assert_eq!(
            peers,
            [
                bare("node-2", PeerState::Established, Some(u64::MAX), 0),
                bare("node-3", PeerState::Waiting, None, 4),
            ]
        );
        let c = reply("node-4", None, 0);
        assert_eq!(
            peers_in(&Attrs::parse(&c).unwrap()).unwrap(),
            [bare("node-4", PeerState::None, None, 0)]
        );
        // A peer without a name is a protocol error.
        let mut r = Request::reply(&schema::PEER_GET, true);
        r.nest(uapi::attr::PEER, "peer", |w| {
            w.put(uapi::peer::PENDING, Value::U32(1))
        })
        .unwrap();
        let bytes = attrs_of(r);
        let err = peers_in(&Attrs::parse(&bytes).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "netlink protocol error: peer without name in reply"
        );
        // The reply does not carry the dump's other attributes.
        let mut r = Request::reply(&schema::PEER_GET, true);
        assert!(r.put(uapi::attr::NODE_NAME, Value::Str("x"), "x").is_err());
    }

    /// Every field of a `peer-get` reply, as the module sends them.
    #[test]
    fn peer_dump_with_state_times_and_error() {
        let mut r = Request::reply(&schema::PEER_GET, true);
        r.nest(uapi::attr::PEER, "peer", |w| {
            w.put(uapi::peer::NAME, Value::Str("node-2"))?;
            w.put(uapi::peer::STATE, Value::U32(uapi::peer_state::EXPIRED))?;
            w.put(uapi::peer::EPOCH, Value::U64(4))?;
            w.put(uapi::peer::PENDING, Value::U32(2))?;
            w.put(uapi::peer::AGE_MS, Value::U64(2500))?;
            w.put(uapi::peer::EXPIRES_MS, Value::U64(0))?;
            w.put(uapi::peer::ERROR, Value::Str("handshake: timeout"))?;
            w.put(uapi::peer::ERROR_AGE_MS, Value::U64(900))
        })
        .unwrap();
        let bytes = attrs_of(r);
        assert_eq!(
            peers_in(&Attrs::parse(&bytes).unwrap()).unwrap(),
            [Peer {
                name: "node-2".into(),
                local: None,
                last_epoch: None,
                state: PeerState::Expired,
                epoch: Some(4),
                pending: 2,
                age_ms: Some(2500),
                expires_ms: Some(0),
                error: Some("handshake: timeout".into()),
                error_age_ms: Some(900),
            }]
        );
        // Every state of the spec decodes, by the names the spec gives.
        for s in PeerState::ALL {
            assert_eq!(PeerState::from_wire(s.to_wire()), Some(s));
            assert_eq!(
                schema::PEER_STATE_ENUM.name_of(s.to_wire()),
                Some(s.as_str())
            );
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
        assert_eq!(PeerState::ALL.len(), schema::PEER_STATE_ENUM.entries.len());
        // An unknown state is a protocol error; so is a non-UTF-8 name,
        // while a non-UTF-8 error text is shown as well as it can be.
        let mut r = Request::reply(&schema::PEER_GET, true);
        r.nest(uapi::attr::PEER, "peer", |w| {
            w.put(uapi::peer::NAME, Value::Str("node-2"))?;
            w.put(uapi::peer::STATE, Value::U32(99))
        })
        .unwrap();
        let bytes = attrs_of(r);
        assert_eq!(
            peers_in(&Attrs::parse(&bytes).unwrap())
                .unwrap_err()
                .to_string(),
            "netlink protocol error: unknown peer-state 99 in peer state"
        );
        let mut raw = attrs_of({
            let mut r = Request::reply(&schema::PEER_GET, true);
            r.nest(uapi::attr::PEER, "peer", |w| {
                w.put(uapi::peer::NAME, Value::Str("n"))?;
                w.put(uapi::peer::ERROR, Value::Str("ab"))
            })
            .unwrap();
            r
        });
        let at = raw.windows(3).position(|w| w == b"ab\0").unwrap();
        raw[at] = 0xff;
        let peers = peers_in(&Attrs::parse(&raw).unwrap()).unwrap();
        assert_eq!(peers[0].error.as_deref(), Some("\u{fffd}b"));
    }

    #[test]
    fn peer_fail_request() {
        let mut r = Request::new(&schema::PEER_FAIL);
        put_peer_error(&mut r, "node-2", None, "handshake: certificate expired").unwrap();
        let enc = r.encode(0x20, 1, 1).unwrap();
        assert_eq!(enc.spans[0].label, "peer node-2");
        let attrs = Attrs::parse(&enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..]).unwrap();
        let peer = attrs.get(uapi::attr::PEER).unwrap().nested().unwrap();
        assert_eq!(peer.get(uapi::peer::NAME).unwrap().payload, b"node-2\0");
        assert_eq!(
            peer.get(uapi::peer::ERROR).unwrap().payload,
            b"handshake: certificate expired\0"
        );
        // The spec's bound, the empty text and a NUL are refused before
        // anything is sent.
        let err = |e: &str| {
            let mut r = Request::new(&schema::PEER_FAIL);
            put_peer_error(&mut r, "node-2", None, e)
                .unwrap_err()
                .to_string()
        };
        assert!(put_peer_error(
            &mut Request::new(&schema::PEER_FAIL),
            "n",
            None,
            &"x".repeat(uapi::ERROR_MAX_LEN)
        )
        .is_ok());
        assert_eq!(
            err(&"x".repeat(uapi::ERROR_MAX_LEN + 1)),
            "cannot encode request: peer-fail: 'error' longer than 128 bytes"
        );
        assert_eq!(
            err(""),
            "cannot encode request: peer-fail: 'error' is empty"
        );
        assert_eq!(
            err("a\0b"),
            "cannot encode request: peer-fail: 'error' contains a NUL byte"
        );
        // peer-fail takes the peer nest only.
        let mut r = Request::new(&schema::PEER_FAIL);
        assert!(r.put(uapi::attr::NODE_NAME, Value::Str("x"), "x").is_err());
    }

    /// A flow nest as `flows-get` sends it; `f` writes its attributes.
    fn flow_reply(f: impl FnOnce(&mut Writer<'_>) -> Result<(), NetlinkError>) -> Vec<u8> {
        let mut r = Request::reply(&schema::FLOWS_GET, true);
        r.nest(uapi::attr::FLOW, "flow", f).unwrap();
        attrs_of(r)
    }

    fn parse_flows(bytes: &[u8]) -> Result<Vec<Flow>, NetlinkError> {
        flows_in(&Attrs::parse(bytes).unwrap())
    }

    #[test]
    fn flow_replies() {
        use uapi::flow as f;
        let v4 = flow_reply(|w| {
            w.put(f::ROLE, Value::U32(uapi::role::CLIENT))?;
            w.put(f::STATE, Value::U32(uapi::flow_state::SECURED))?;
            w.put(f::LOCAL_IPV4, Value::U32(0x0a01_0005))?;
            w.put(f::LOCAL_PORT, Value::U16(40000))?;
            w.put(f::REMOTE_IPV4, Value::U32(0x0a02_0007))?;
            w.put(f::REMOTE_PORT, Value::U16(80))?;
            w.put(f::LOCAL_POD, Value::Str("ns/a"))?;
            w.put(f::REMOTE_POD, Value::Str("ns/b"))?;
            w.put(f::PEER_NODE, Value::Str("node-2"))?;
            w.put(f::CIPHER, Value::U32(uapi::cipher::CHACHA20_POLY1305))?;
            w.put(f::AGE_MS, Value::U64(1234))?;
            w.put(f::MODE, Value::U32(uapi::mode::TLSHUB))
        });
        // The local address is big-endian on the wire, the port host order.
        let attrs = Attrs::parse(&v4).unwrap();
        let nest = attrs.get(uapi::attr::FLOW).unwrap().nested().unwrap();
        assert_eq!(nest.get(f::LOCAL_IPV4).unwrap().payload, &[10, 1, 0, 5]);
        assert_eq!(
            nest.get(f::LOCAL_PORT).unwrap().payload,
            &40000u16.to_ne_bytes()
        );
        let six: std::net::Ipv6Addr = "fd00::1:5".parse().unwrap();
        let peer: std::net::Ipv6Addr = "fd00::2:7".parse().unwrap();
        let v6 = flow_reply(|w| {
            w.put(f::ROLE, Value::U32(uapi::role::SERVER))?;
            w.put(f::STATE, Value::U32(uapi::flow_state::KEY_WAIT))?;
            w.put(f::LOCAL_IPV6, Value::Bytes(&six.octets()))?;
            w.put(f::LOCAL_PORT, Value::U16(443))?;
            w.put(f::REMOTE_IPV6, Value::Bytes(&peer.octets()))?;
            w.put(f::REMOTE_PORT, Value::U16(51000))
        });
        let mut flows = parse_flows(&v4).unwrap();
        flows.extend(parse_flows(&v6).unwrap());
        assert_eq!(
            flows,
            [
                Flow {
                    role: "client",
                    state: "secured",
                    local_ip: "10.1.0.5".parse().unwrap(),
                    local_port: 40000,
                    remote_ip: "10.2.0.7".parse().unwrap(),
                    remote_port: 80,
                    local_pod: Some("ns/a".into()),
                    remote_pod: Some("ns/b".into()),
                    peer_node: Some("node-2".into()),
                    cipher: Some(Cipher::Chacha20Poly1305),
                    age_ms: Some(1234),
                    mode: Some(Mode::Tlshub),
                },
                Flow {
                    role: "server",
                    state: "key-wait",
                    local_ip: IpAddr::V6(six),
                    local_port: 443,
                    remote_ip: IpAddr::V6(peer),
                    remote_port: 51000,
                    local_pod: None,
                    remote_pod: None,
                    peer_node: None,
                    cipher: None,
                    age_ms: None,
                    mode: None,
                },
            ]
        );
    }

    #[test]
    fn malformed_flows_are_protocol_errors() {
        use uapi::flow as f;
        let base = |w: &mut Writer<'_>, role: u32, state: u32| {
            w.put(f::ROLE, Value::U32(role))?;
            w.put(f::STATE, Value::U32(state))?;
            w.put(f::LOCAL_PORT, Value::U16(1))?;
            w.put(f::REMOTE_IPV4, Value::U32(1))?;
            w.put(f::REMOTE_PORT, Value::U16(2))
        };
        let err = |bytes: Vec<u8>| parse_flows(&bytes).unwrap_err().to_string();
        assert_eq!(
            err(flow_reply(|w| {
                base(w, 3, 1)?;
                w.put(f::LOCAL_IPV4, Value::U32(1))
            })),
            "netlink protocol error: unknown role 3 in flow role"
        );
        assert_eq!(
            err(flow_reply(|w| {
                base(w, 1, 9)?;
                w.put(f::LOCAL_IPV4, Value::U32(1))
            })),
            "netlink protocol error: unknown flow-state 9 in flow state"
        );
        assert_eq!(
            err(flow_reply(|w| base(w, 1, 1))),
            "netlink protocol error: flow without local address in reply"
        );
        assert_eq!(
            err(flow_reply(|w| {
                base(w, 1, 1)?;
                w.put(f::LOCAL_IPV4, Value::U32(1))?;
                w.put(f::LOCAL_IPV6, Value::Bytes(&[0; 16]))
            })),
            "netlink protocol error: flow with both an IPv4 and an IPv6 local address in reply"
        );
        assert_eq!(
            err(flow_reply(|w| {
                base(w, 1, 1)?;
                w.put(f::LOCAL_IPV4, Value::U32(1))?;
                w.put(f::CIPHER, Value::U32(4))
            })),
            "netlink protocol error: unknown cipher 4 in flow cipher"
        );
        assert_eq!(
            err(flow_reply(|w| {
                w.put(f::STATE, Value::U32(1))?;
                w.put(f::LOCAL_IPV4, Value::U32(1))
            })),
            "netlink protocol error: flow without role in reply"
        );
        // A local-ipv6 of the wrong size: the spec's exact-len, enforced
        // by the encoder already.
        let mut r = Request::reply(&schema::FLOWS_GET, true);
        assert!(r
            .nest(uapi::attr::FLOW, "flow", |w| {
                base(w, 1, 1)?;
                w.put(f::LOCAL_IPV6, Value::Bytes(&[0; 4]))
            })
            .is_err());
    }

    #[test]
    fn key_request_event() {
        let mut r = Request::event(&schema::KEY_REQUEST);
        r.put(uapi::attr::NODE_NAME, Value::Str("node-2"), "n")
            .unwrap();
        r.put(uapi::attr::LOCAL_NODE, Value::Str("node-1"), "l")
            .unwrap();
        let bytes = attrs_of(r);
        assert_eq!(
            parse_key_request(&Attrs::parse(&bytes).unwrap()).unwrap(),
            KeyRequest {
                node: "node-2".into(),
                local_node: "node-1".into()
            }
        );
        let mut r = Request::event(&schema::KEY_REQUEST);
        r.put(uapi::attr::NODE_NAME, Value::Str("node-2"), "n")
            .unwrap();
        let bytes = attrs_of(r);
        assert_eq!(
            parse_key_request(&Attrs::parse(&bytes).unwrap())
                .unwrap_err()
                .to_string(),
            "netlink protocol error: key-request event without local-node"
        );
        // The event carries nothing else, and cannot be requested.
        let mut r = Request::event(&schema::KEY_REQUEST);
        assert!(r.put(uapi::attr::LOCAL_SET, Value::Flag, "x").is_err());
        assert!(Request::new(&schema::KEY_REQUEST).encode(1, 1, 1).is_err());
        assert!(Request::dump(&schema::KEY_REQUEST).encode(1, 1, 1).is_err());
    }

    /// A `flow-key-request` event as the kernel sends it.
    fn flow_key_event(f: impl FnOnce(&mut Writer<'_>) -> Result<(), NetlinkError>) -> Vec<u8> {
        let mut r = Request::event(&schema::FLOW_KEY_REQUEST);
        r.nest(uapi::attr::FLOW, "flow", f).unwrap();
        attrs_of(r)
    }

    fn parse_fkr(bytes: &[u8]) -> Result<FlowKeyRequest, NetlinkError> {
        parse_flow_key_request(&Attrs::parse(bytes).unwrap())
    }

    #[test]
    fn flow_key_request_event() {
        use uapi::flow as f;
        let full = |w: &mut Writer<'_>| {
            w.put(f::ROLE, Value::U32(uapi::role::CLIENT))?;
            w.put(f::LOCAL_IPV4, Value::U32(0x0a01_000b))?;
            w.put(f::LOCAL_PORT, Value::U16(40000))?;
            w.put(f::REMOTE_IPV4, Value::U32(0x0a02_0015))?;
            w.put(f::REMOTE_PORT, Value::U16(8080))?;
            w.put(f::LOCAL_POD, Value::Str("default/a1"))?;
            w.put(f::REMOTE_POD, Value::Str("default/b1"))?;
            w.put(f::PEER_NODE, Value::Str("n2"))?;
            w.put(f::CIPHER, Value::U32(uapi::cipher::AES_128_GCM))?;
            w.put(f::MODE, Value::U32(uapi::mode::OPENSSL))?;
            w.put(f::CLIENT_ISN, Value::U32(0xdead_beef))?;
            w.put(f::SERVER_ISN, Value::U32(7))
        };
        assert_eq!(
            parse_fkr(&flow_key_event(full)).unwrap(),
            FlowKeyRequest {
                role: Role::Client,
                mode: Mode::Openssl,
                local: "10.1.0.11:40000".parse().unwrap(),
                remote: "10.2.0.21:8080".parse().unwrap(),
                local_pod: Some("default/a1".into()),
                remote_pod: Some("default/b1".into()),
                peer_node: Some("n2".into()),
                cipher: Some(Cipher::Aes128Gcm),
                client_isn: 0xdead_beef,
                server_isn: 7,
            }
        );
        let six = |w: &mut Writer<'_>| {
            w.put(f::ROLE, Value::U32(uapi::role::SERVER))?;
            w.put(f::MODE, Value::U32(uapi::mode::BORINGSSL))?;
            w.put(
                f::LOCAL_IPV6,
                Value::Bytes(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x21]),
            )?;
            w.put(f::LOCAL_PORT, Value::U16(7000))?;
            w.put(
                f::REMOTE_IPV6,
                Value::Bytes(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]),
            )?;
            w.put(f::REMOTE_PORT, Value::U16(50000))?;
            w.put(f::CLIENT_ISN, Value::U32(1))?;
            w.put(f::SERVER_ISN, Value::U32(2))
        };
        let e = parse_fkr(&flow_key_event(six)).unwrap();
        assert_eq!(e.role, Role::Server);
        assert_eq!(e.mode, Mode::Boringssl);
        assert_eq!(e.local, "[fd00:2::21]:7000".parse().unwrap());
        assert_eq!(e.remote, "[fd00:1::11]:50000".parse().unwrap());
        assert_eq!((e.local_pod, e.peer_node, e.cipher), (None, None, None));

        let err = |f: &dyn Fn(&mut Writer<'_>) -> Result<(), NetlinkError>| {
            parse_fkr(&flow_key_event(f)).unwrap_err().to_string()
        };
        let base = |w: &mut Writer<'_>| {
            w.put(f::ROLE, Value::U32(uapi::role::CLIENT))?;
            w.put(f::MODE, Value::U32(uapi::mode::OPENSSL))?;
            w.put(f::LOCAL_IPV4, Value::U32(1))?;
            w.put(f::LOCAL_PORT, Value::U16(1))?;
            w.put(f::REMOTE_IPV4, Value::U32(2))?;
            w.put(f::REMOTE_PORT, Value::U16(2))
        };
        assert_eq!(
            err(&|w| {
                base(w)?;
                w.put(f::CLIENT_ISN, Value::U32(1))
            }),
            "netlink protocol error: flow-key-request event without server-isn"
        );
        assert_eq!(
            err(&|w| {
                w.put(f::ROLE, Value::U32(3))?;
                w.put(f::MODE, Value::U32(1))
            }),
            "netlink protocol error: unknown role 3 in flow-key-request event"
        );
        assert_eq!(
            err(&|w| {
                w.put(f::ROLE, Value::U32(1))?;
                w.put(f::MODE, Value::U32(1))?;
                w.put(f::LOCAL_IPV4, Value::U32(1))?;
                w.put(f::LOCAL_PORT, Value::U16(1))?;
                w.put(f::REMOTE_IPV6, Value::Bytes(&[0; 16]))?;
                w.put(f::REMOTE_PORT, Value::U16(2))?;
                w.put(f::CLIENT_ISN, Value::U32(1))?;
                w.put(f::SERVER_ISN, Value::U32(1))
            }),
            "netlink protocol error: flow-key-request event with an IPv4 and an IPv6 end (0.0.0.1:1, [::]:2)"
        );
        let mut r = Request::event(&schema::FLOW_KEY_REQUEST);
        r.put(uapi::attr::NODE_NAME, Value::Str("x"), "x")
            .unwrap_err();
        let bytes = attrs_of(Request::event(&schema::FLOW_KEY_REQUEST));
        assert_eq!(
            parse_fkr(&bytes).unwrap_err().to_string(),
            "netlink protocol error: flow-key-request event without flow"
        );
    }

    #[test]
    fn flow_key_set_request() {
        use uapi::flow as f;
        let key = FlowKey {
            local: "[::ffff:10.2.0.21]:8080".parse().unwrap(),
            remote: "10.1.0.11:40000".parse().unwrap(),
            client_isn: Some(0x0102_0304),
            server_isn: None,
            secret: [0xa5; 32],
        };
        let mut r = Request::new(&schema::FLOW_KEY_SET);
        put_flow_key(&mut r, &key).unwrap();
        let enc = r.encode(0x20, 1, 1).unwrap();
        // Traces name the flow, never the secret.
        let line = crate::netlink::codec::describe_request(&enc);
        assert!(
            line.ends_with(": flow 10.2.0.21:8080 -> 10.1.0.11:40000"),
            "{line}"
        );
        assert!(!format!("{key:?}").contains("165"), "{key:?}");
        let attrs = Attrs::parse(&enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..]).unwrap();
        let nest = attrs.get(uapi::attr::FLOW).unwrap().nested().unwrap();
        // The v4-mapped local end goes as IPv4, big-endian; ports host order.
        assert_eq!(nest.get(f::LOCAL_IPV4).unwrap().payload, &[10, 2, 0, 21]);
        assert!(nest.get(f::LOCAL_IPV6).is_none());
        assert_eq!(
            nest.get(f::LOCAL_PORT).unwrap().payload,
            &8080u16.to_ne_bytes()
        );
        assert_eq!(nest.get(f::REMOTE_IPV4).unwrap().payload, &[10, 1, 0, 11]);
        assert_eq!(
            nest.get(f::REMOTE_PORT).unwrap().payload,
            &40000u16.to_ne_bytes()
        );
        assert_eq!(
            nest.get(f::CLIENT_ISN).unwrap().payload,
            &0x0102_0304u32.to_ne_bytes()
        );
        assert!(nest.get(f::SERVER_ISN).is_none());
        assert_eq!(nest.get(f::SECRET).unwrap().payload, &[0xa5; 32]);
        assert!(nest.get(f::ROLE).is_none());

        // Mixed families are refused before anything is sent.
        let mixed = FlowKey {
            remote: "[fd00:1::11]:40000".parse().unwrap(),
            ..key.clone()
        };
        let mut r = Request::new(&schema::FLOW_KEY_SET);
        assert!(put_flow_key(&mut r, &mixed)
            .unwrap_err()
            .to_string()
            .contains("different address families"));
        // flow-key-set takes the flow nest only.
        let mut r = Request::new(&schema::FLOW_KEY_SET);
        assert!(r.put(uapi::attr::NODE_NAME, Value::Str("x"), "x").is_err());
    }
}
