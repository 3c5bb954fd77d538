//! The `pod` and `node` nests of the spec, and how a whole table is cut into
//! `map-stage` messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use neli::types::{Buffer, GenlBuffer};

use super::wire::{attr, attr_type, nest, nested, Attr, Request};
use super::NetlinkError;
use crate::mapping::{Node, Pod, PodNodeTable, DEFAULT_AGENT_PORT};
use crate::uapi;

/// At most this many pods or nodes go into one `map-stage` message.
pub(crate) const STAGE_MAX_ENTRIES: usize = 1000;

/// And a `map-stage` message stays below this many bytes. The kernel refuses
/// messages larger than the socket send buffer (`net.core.wmem_default`,
/// usually 208 KiB) and echoes a failed request in its error reply, so
/// messages are kept well under both.
pub(crate) const STAGE_MAX_BYTES: usize = 64 * 1024;

/// `pod` nest: name, node, then each IPv4 (network byte order) and IPv6.
pub(crate) fn pod_attr(pod: &Pod) -> Result<Attr, NetlinkError> {
    let mut children = vec![
        attr(uapi::pod::NAME, pod.name.as_str())?,
        attr(uapi::pod::NODE, pod.node.as_str())?,
    ];
    for ip in &pod.ips {
        children.push(match ip {
            IpAddr::V4(v4) => attr(uapi::pod::IPV4, v4.octets())?,
            IpAddr::V6(v6) => attr(uapi::pod::IPV6, v6.octets())?,
        });
    }
    nest(uapi::attr::POD, &children)
}

/// `node` nest: name, and the agent's address and port (host byte order) if
/// known.
pub(crate) fn node_attr(node: &Node) -> Result<Attr, NetlinkError> {
    let mut children = vec![attr(uapi::node::NAME, node.name.as_str())?];
    if let Some(agent) = node.agent {
        children.push(match agent.ip() {
            IpAddr::V4(v4) => attr(uapi::node::IPV4, v4.octets())?,
            IpAddr::V6(v6) => attr(uapi::node::IPV6, v6.octets())?,
        });
        children.push(attr(uapi::node::PORT, agent.port())?);
    }
    nest(uapi::attr::NODE, &children)
}

/// How a pod shows up in traces and error messages.
pub(crate) fn pod_label(pod: &Pod) -> String {
    format!("pod {}", pod.name)
}

/// How a node shows up in traces and error messages.
pub(crate) fn node_label(node: &Node) -> String {
    format!("node {}", node.name)
}

fn bad(what: &str) -> NetlinkError {
    NetlinkError::Protocol(format!("malformed {what} attribute in reply"))
}

fn bytes<const N: usize>(a: &Attr, what: &str) -> Result<[u8; N], NetlinkError> {
    <[u8; N]>::try_from(a.nla_payload().as_ref()).map_err(|_| bad(what))
}

pub(crate) fn get_u16(a: &Attr, what: &str) -> Result<u16, NetlinkError> {
    bytes(a, what).map(u16::from_ne_bytes)
}

pub(crate) fn get_u32(a: &Attr, what: &str) -> Result<u32, NetlinkError> {
    bytes(a, what).map(u32::from_ne_bytes)
}

/// A u64 counter; the kernel may send a 4-byte value when it fits.
pub(crate) fn get_u64(a: &Attr, what: &str) -> Result<u64, NetlinkError> {
    match a.nla_payload().len() {
        4 => get_u32(a, what).map(u64::from),
        _ => bytes(a, what).map(u64::from_ne_bytes),
    }
}

/// A NUL-terminated string attribute.
pub(crate) fn get_string(a: &Attr, what: &str) -> Result<String, NetlinkError> {
    let raw = a.nla_payload().as_ref();
    let raw = raw.split(|&c| c == 0).next().unwrap_or_default();
    String::from_utf8(raw.to_vec()).map_err(|_| bad(what))
}

fn ipv4(a: &Attr, what: &str) -> Result<IpAddr, NetlinkError> {
    bytes::<4>(a, what).map(|o| IpAddr::V4(Ipv4Addr::from(o)))
}

fn ipv6(a: &Attr, what: &str) -> Result<IpAddr, NetlinkError> {
    bytes::<16>(a, what).map(|o| IpAddr::V6(Ipv6Addr::from(o)))
}

/// Decodes a `pod` nest. Unknown attributes are skipped so that a newer
/// module can add some.
pub(crate) fn parse_pod(a: &Attr) -> Result<Pod, NetlinkError> {
    let (mut name, mut node, mut ips) = (None, None, Vec::new());
    for child in nested(a)?.iter() {
        match attr_type(child) {
            uapi::pod::NAME => name = Some(get_string(child, "pod name")?),
            uapi::pod::NODE => node = Some(get_string(child, "pod node")?),
            uapi::pod::IPV4 => ips.push(ipv4(child, "pod ipv4")?),
            uapi::pod::IPV6 => ips.push(ipv6(child, "pod ipv6")?),
            _ => {}
        }
    }
    match (name, node) {
        (Some(name), Some(node)) => Ok(Pod { name, node, ips }),
        _ => Err(NetlinkError::Protocol(
            "pod without name or node in reply".to_owned(),
        )),
    }
}

/// Decodes a `node` nest.
pub(crate) fn parse_node(a: &Attr) -> Result<Node, NetlinkError> {
    let (mut name, mut ip, mut port) = (None, None, None);
    for child in nested(a)?.iter() {
        match attr_type(child) {
            uapi::node::NAME => name = Some(get_string(child, "node name")?),
            uapi::node::IPV4 => ip = Some(ipv4(child, "node ipv4")?),
            uapi::node::IPV6 => ip = Some(ipv6(child, "node ipv6")?),
            uapi::node::PORT => port = Some(get_u16(child, "node port")?),
            _ => {}
        }
    }
    let name =
        name.ok_or_else(|| NetlinkError::Protocol("node without name in reply".to_owned()))?;
    let agent = ip.map(|ip| SocketAddr::new(ip, port.unwrap_or(DEFAULT_AGENT_PORT)));
    Ok(Node { name, agent })
}

/// Cuts `table` into `map-stage` requests: the first carries `begin`, nodes
/// come before pods (so a pod's node is always known by the time it is
/// staged), and each message stays within [`STAGE_MAX_ENTRIES`] and
/// [`STAGE_MAX_BYTES`]. Everything is encoded before anything is sent, so an
/// unencodable entry cannot leave a half-staged table behind.
pub(crate) fn stage_requests(table: &PodNodeTable) -> Result<Vec<Request>, NetlinkError> {
    let begin = || -> Result<Request, NetlinkError> {
        Ok(Request::new(uapi::cmd::MAP_STAGE)
            .with(attr(uapi::attr::BEGIN, Buffer::new())?, "begin"))
    };
    let entries = table
        .nodes()
        .iter()
        .map(|n| Ok((node_attr(n)?, node_label(n))))
        .chain(
            table
                .pods()
                .iter()
                .map(|p| Ok((pod_attr(p)?, pod_label(p)))),
        );

    let mut requests = vec![begin()?];
    let mut in_current = 0;
    for entry in entries {
        let (a, label): (Attr, String) = entry?;
        let current = requests.last().map_or(0, Request::size);
        if in_current == STAGE_MAX_ENTRIES
            || (in_current > 0 && current + attr_size(&a) > STAGE_MAX_BYTES)
        {
            requests.push(Request::new(uapi::cmd::MAP_STAGE));
            in_current = 0;
        }
        if let Some(request) = requests.last_mut() {
            request.push(a, label);
        }
        in_current += 1;
    }
    Ok(requests)
}

fn attr_size(a: &Attr) -> usize {
    use neli::Size;
    a.padded_size()
}

/// Every `pod` nest at the top level of `attrs`.
pub(crate) fn pods_in(attrs: &GenlBuffer<u16, Buffer>) -> Result<Vec<Pod>, NetlinkError> {
    attrs
        .iter()
        .filter(|a| attr_type(a) == uapi::attr::POD)
        .map(parse_pod)
        .collect()
}

/// Every `node` nest at the top level of `attrs`.
pub(crate) fn nodes_in(attrs: &GenlBuffer<u16, Buffer>) -> Result<Vec<Node>, NetlinkError> {
    attrs
        .iter()
        .filter(|a| attr_type(a) == uapi::attr::NODE)
        .map(parse_node)
        .collect()
}

/// The first top-level attribute of type `ty`.
pub(crate) fn find(attrs: &GenlBuffer<u16, Buffer>, ty: u16) -> Option<&Attr> {
    attrs.iter().find(|a| attr_type(a) == ty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::wire::{parse_attrs, GENL_HDRLEN, NLMSG_HDRLEN};
    use neli::consts::nl::NlmF;

    fn roundtrip_attrs(request: Request) -> GenlBuffer<u16, Buffer> {
        let enc = request.encode(0x20, 1, NlmF::ACK, 1).unwrap();
        parse_attrs(&enc.bytes[NLMSG_HDRLEN + GENL_HDRLEN..]).unwrap()
    }

    #[test]
    fn pod_and_node_roundtrip() {
        let pod = Pod::parse("web-1", "node-1", &["10.0.0.5", "fd00::5", "192.168.1.2"]).unwrap();
        let node = Node::parse("node-1", Some("[fd00::1]:9000")).unwrap();
        let bare = Node::parse("node-2", None).unwrap();
        let attrs = roundtrip_attrs(
            Request::new(uapi::cmd::MAP_ADD)
                .with(pod_attr(&pod).unwrap(), "p")
                .with(node_attr(&node).unwrap(), "n")
                .with(node_attr(&bare).unwrap(), "b"),
        );
        assert_eq!(pods_in(&attrs).unwrap(), vec![pod]);
        assert_eq!(nodes_in(&attrs).unwrap(), vec![node, bare]);
    }

    #[test]
    fn ipv4_is_network_order_and_port_host_order() {
        let pod = Pod::parse("a", "b", &["10.1.2.3"]).unwrap();
        let children = nested(&pod_attr(&pod).unwrap()).unwrap();
        let ip = children
            .iter()
            .find(|a| attr_type(a) == uapi::pod::IPV4)
            .unwrap();
        assert_eq!(ip.nla_payload().as_ref(), &[10, 1, 2, 3]);
        let node = Node::parse("b", Some("10.0.0.1")).unwrap();
        let children = nested(&node_attr(&node).unwrap()).unwrap();
        let port = children
            .iter()
            .find(|a| attr_type(a) == uapi::node::PORT)
            .unwrap();
        assert_eq!(port.nla_payload().as_ref(), &7443u16.to_ne_bytes());
    }

    #[test]
    fn staging_splits_large_tables() {
        let mut text = String::from("node node-0 10.0.0.1\nnode node-1 [fd00::1]:1\n");
        for i in 0..2500u32 {
            let ip = std::net::Ipv4Addr::from(0x0a80_0000 + i);
            text.push_str(&format!("pod-{i} node-{} {ip}\n", i % 2));
        }
        let table = PodNodeTable::from_str(&text, "t").unwrap();
        let requests = stage_requests(&table).unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].count(uapi::attr::BEGIN), 1);
        assert_eq!(requests[0].count(uapi::attr::NODE), 2);
        assert!(requests[1..]
            .iter()
            .all(|r| r.count(uapi::attr::BEGIN) == 0));
        let pods: usize = requests.iter().map(|r| r.count(uapi::attr::POD)).sum();
        assert_eq!(pods, 2500);
        for r in &requests {
            assert!(r.count(uapi::attr::POD) + r.count(uapi::attr::NODE) <= STAGE_MAX_ENTRIES);
            assert!(r.size() <= STAGE_MAX_BYTES);
        }
        // Order is preserved across messages.
        let all: Vec<Pod> = requests
            .into_iter()
            .flat_map(|r| pods_in(&roundtrip_attrs(r)).unwrap())
            .collect();
        assert_eq!(all, table.pods());
    }

    #[test]
    fn staging_respects_byte_budget() {
        let long = |p: &str, i: usize| format!("{p}{i}-{}", "x".repeat(240));
        let mut text = String::new();
        for i in 0..1000 {
            let ips: Vec<String> = (0..8).map(|j| format!("fd00::{:x}:{j}", i + 1)).collect();
            text.push_str(&format!(
                "{} {} {}\n",
                long("p", i),
                long("n", i % 3),
                ips.join(" ")
            ));
        }
        let table = PodNodeTable::from_str(&text, "t").unwrap();
        let requests = stage_requests(&table).unwrap();
        assert!(requests.len() > 1);
        assert!(requests.iter().all(|r| r.size() <= STAGE_MAX_BYTES));
    }

    #[test]
    fn empty_table_is_a_lone_begin() {
        let requests = stage_requests(&PodNodeTable::new()).unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].count(uapi::attr::BEGIN), 1);
        assert_eq!(requests[0].count(uapi::attr::POD), 0);
    }
}
