//! A mapping from a real cluster: the JSON of `kubectl get pods -A -o json`
//! and, optionally, `kubectl get nodes -o json`.
//!
//! * Every pod becomes `namespace/name node IPs...` (`status.podIPs`, so
//!   dual-stack pods get both addresses; `status.podIP` on clusters that
//!   predate it), with `hostNetwork` for `spec.hostNetwork` pods, whose
//!   addresses are their node's.
//! * Pods without `spec.nodeName` (not scheduled yet) are skipped: they have
//!   no node and no address.
//! * Pods in phase `Succeeded` or `Failed` are skipped: they no longer run,
//!   and their addresses are handed out again to new pods.
//! * Each node with an `InternalIP` becomes `node NAME ADDR` (the first
//!   `InternalIP`, the agent on the default port).
//!
//! The result is validated as any mapping file is, so two running pods that
//! claim one address are an error here rather than in the kernel.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::mapping::{parse_pod_ip, EntryError, Node, Pod, PodNodeTable, DEFAULT_AGENT_PORT};

/// The cluster's JSON could not be turned into a mapping.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("not the JSON of a kubectl list: {0}")]
    Json(#[from] serde_json::Error),
    #[error("pod {pod}: {source}")]
    Pod { pod: String, source: EntryError },
    #[error("node {node}: {source}")]
    Node { node: String, source: EntryError },
}

/// A mapping converted from a cluster, and what was left out.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub table: PodNodeTable,
    /// Pods not scheduled to a node yet (`namespace/name`).
    pub unscheduled: Vec<String>,
    /// Pods that have finished (`Succeeded` or `Failed`).
    pub finished: Vec<String>,
}

#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct K8sPod {
    metadata: Metadata,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    node_name: Option<String>,
    #[serde(default)]
    host_network: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    phase: Option<String>,
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Vec<PodIp>,
}

#[derive(Deserialize)]
struct PodIp {
    ip: String,
}

#[derive(Deserialize)]
struct K8sNode {
    metadata: Metadata,
    #[serde(default)]
    status: NodeStatus,
}

#[derive(Deserialize, Default)]
struct NodeStatus {
    #[serde(default)]
    addresses: Vec<NodeAddress>,
}

#[derive(Deserialize)]
struct NodeAddress {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

/// Converts `kubectl get pods -A -o json` output (and optionally
/// `kubectl get nodes -o json` output) into a mapping.
pub fn convert(pods_json: &str, nodes_json: Option<&str>) -> Result<Conversion, K8sError> {
    let mut conversion = Conversion {
        table: PodNodeTable::new(),
        unscheduled: Vec::new(),
        finished: Vec::new(),
    };
    if let Some(nodes_json) = nodes_json {
        let nodes: List<K8sNode> = serde_json::from_str(nodes_json)?;
        for n in nodes.items {
            let name = n.metadata.name;
            let node = node_of(&name, &n.status.addresses)
                .and_then(|node| conversion.table.insert_node(node));
            node.map_err(|source| K8sError::Node { node: name, source })?;
        }
    }
    let pods: List<K8sPod> = serde_json::from_str(pods_json)?;
    for p in pods.items {
        let namespace = p.metadata.namespace.as_deref().unwrap_or("default");
        let name = format!("{namespace}/{}", p.metadata.name);
        let Some(node) = p.spec.node_name.filter(|n| !n.is_empty()) else {
            conversion.unscheduled.push(name);
            continue;
        };
        if matches!(p.status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            conversion.finished.push(name);
            continue;
        }
        let mut ips: Vec<&str> = p.status.pod_ips.iter().map(|i| i.ip.as_str()).collect();
        if ips.is_empty() {
            ips.extend(p.status.pod_ip.as_deref().filter(|ip| !ip.is_empty()));
        }
        let pod = Pod::parse(&name, &node, &ips)
            .map(|pod| Pod {
                host_network: p.spec.host_network,
                ..pod
            })
            .and_then(|pod| conversion.table.insert_pod(pod));
        pod.map_err(|source| K8sError::Pod { pod: name, source })?;
    }
    Ok(conversion)
}

/// A node line: the node's first `InternalIP`, if it has one.
fn node_of(name: &str, addresses: &[NodeAddress]) -> Result<Node, EntryError> {
    let mut node = Node::parse(name, None)?;
    if let Some(a) = addresses.iter().find(|a| a.kind == "InternalIP") {
        node.agent = Some(SocketAddr::new(
            parse_pod_ip(&a.address)?,
            DEFAULT_AGENT_PORT,
        ));
    }
    Ok(node)
}
