//! The nests of the spec (`pod`, `node`, `peer`, `flow`), the `key-request`
//! event, and how a whole table is cut into `map-stage` messages.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::codec::{Attrs, RawAttr, Request, Value, Writer};
use super::{schema, NetlinkError};
use crate::mapping::{canonical_ip, Node, Pod, PodNodeTable, DEFAULT_AGENT_PORT};
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

/// `pod` nest: name, node, each IPv4 and IPv6, and `host-network`.
pub(crate) fn put_pod(request: &mut Request, pod: &Pod) -> Result<(), NetlinkError> {
    request.nest(uapi::attr::POD, pod_label(pod), |w| {
        w.put(uapi::pod::NAME, Value::Str(&pod.name))?;
        w.put(uapi::pod::NODE, Value::Str(&pod.node))?;
        for &ip in &pod.ips {
            put_ip(w, ip, uapi::pod::IPV4, uapi::pod::IPV6)?;
        }
        if pod.host_network {
            w.put(uapi::pod::HOST_NETWORK, Value::Flag)?;
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
    Ok(Pod {
        name,
        node,
        ips,
        host_network: attrs.get(uapi::pod::HOST_NETWORK).is_some(),
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

/// A peer node's node-pair secret, as `peer-get` reports it (never the
/// secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// The peer node.
    pub name: String,
    /// Epoch of the secret; `None` while there is no secret (flows wait).
    pub epoch: Option<u64>,
    /// Flows waiting for this peer's secret.
    pub pending: u32,
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
/// secret's epoch. Traces and errors name it `peer NODE`; the secret is
/// never shown.
pub(crate) fn put_peer(
    request: &mut Request,
    name: &str,
    psk: &Psk,
    epoch: Option<u64>,
) -> Result<(), NetlinkError> {
    let label = match epoch {
        Some(epoch) => format!("peer {name} epoch {epoch}"),
        None => format!("peer {name}"),
    };
    request.nest(uapi::attr::PEER, label, |w| {
        w.put(uapi::peer::NAME, Value::Str(name))?;
        w.put(uapi::peer::PSK, Value::Bytes(psk.as_bytes()))?;
        if let Some(epoch) = epoch {
            w.put(uapi::peer::EPOCH, Value::U64(epoch))?;
        }
        Ok(())
    })
}

fn protocol(what: String) -> NetlinkError {
    NetlinkError::Protocol(what)
}

/// Decodes a `peer` nest. A reply never carries the secret; if one did, it
/// is ignored, not kept.
pub(crate) fn parse_peer(a: RawAttr<'_>) -> Result<Peer, NetlinkError> {
    let attrs = a.nested()?;
    let name = attrs
        .get(uapi::peer::NAME)
        .ok_or_else(|| protocol("peer without name in reply".to_owned()))?
        .string()?;
    Ok(Peer {
        epoch: attrs.get(uapi::peer::EPOCH).map(|a| a.u64()).transpose()?,
        pending: attrs.get(uapi::peer::PENDING).map_or(Ok(0), |a| a.u32())?,
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
    fn ipv4_is_network_order_port_host_order_and_v4_mapped_is_ipv4() {
        let pod = Pod {
            name: "a".into(),
            node: "b".into(),
            ips: vec!["::ffff:10.1.2.3".parse().unwrap()],
            host_network: false,
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
}
