//! The pod-node mapping: which peers are pods, which node each one runs on,
//! and where each node's TLSHub agent listens.
//!
//! This is the seed's `pod_mapping` API (`init_pod_node_mapping`,
//! `get_node_by_pod`, `print_pod_node_mapping`, `free_pod_node_mapping`) as a
//! Rust type: [`PodNodeTable::from_file`], [`PodNodeTable::node_of`],
//! [`PodNodeTable::print`] / [`fmt::Display`], and `Drop`.
//!
//! # File format
//!
//! A backward-compatible extension of the seed's `pod_name node_name` lines:
//!
//! ```text
//! # comment; blank lines are ignored, and so is the seed's example header:
//! pod_name node_name
//! node node-1 10.0.0.1:7443      # node NAME [ADDR[:PORT]], port defaults to 7443
//! node node-2 [fd00::2]:7443     # IPv6 agent addresses are bracketed
//! web-pod-1 node-1 10.1.0.5      # POD NODE [IP ...], at most 8 IPs
//! shop/api-1 node-2 10.1.0.9 fd00:1::9             # NAMESPACE/NAME
//! kube-system/kube-proxy-x node-1 10.0.0.1 hostNetwork
//! shop/db-0 node-1 10.1.0.7 netns=/run/netns/cni-4f1c   # bound to its netns
//! shop/db-1 node-2 10.2.0.8 netns-cookie=4099           # the same, by cookie
//! ```
//!
//! * Tokens are separated by spaces and tabs; CRLF line endings are accepted.
//! * A `#` at the start of a line or after a blank starts a comment.
//! * A pod is `NAMESPACE/NAME` (a DNS-1123 label of at most 63 characters,
//!   `/`, a DNS-1123 subdomain) or a bare subdomain as in the seed's files;
//!   node names are DNS-1123 subdomains (at most 253 characters of lowercase
//!   letters, digits, `-` and `.`, every dot-separated label starting and
//!   ending with a letter or digit). The rules live in `kmod/state/ident.rs`,
//!   shared with the kernel. A pod cannot be called `node`: that word starts
//!   a node line. The same name in two namespaces is two pods.
//! * The token `hostNetwork` after the node marks a pod that shares its
//!   node's network namespace. Its IPs are the node's: they are kept for
//!   display but belong to no pod, so they may repeat across hostNetwork
//!   pods and other pods may use them too; looking such an IP up never finds
//!   the hostNetwork pod.
//! * A last token `netns=PATH` (a network namespace file such as
//!   `/run/netns/NAME` or `/proc/PID/ns/net`, an absolute path) binds the
//!   pod to its network namespace: the kernel then keys a flow as this pod
//!   only if its socket lives there. Before the mapping is sent, tlshubctl
//!   resolves the path to the namespace's cookie ([`PodNodeTable::bind_netns`],
//!   [`crate::netns::cookie_of`]), for the pods of the nodes this kernel
//!   serves only: the same file is loaded on every node and a path exists
//!   on its pod's node alone, so other nodes' pods stay unbound. A path
//!   that cannot be resolved there is an error and nothing is sent.
//!   `netns-cookie=N` (a decimal number above 0) gives the cookie itself,
//!   as `mapping show` prints it. At most one of the two, never with
//!   `hostNetwork` (such a pod has its node's namespace).
//! * An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is taken as the IPv4
//!   address it stands for.
//! * A pod's node needs no `node` line; one is only needed to say where the
//!   node's agent listens.
//! * A pod listed twice with exactly the same node and IPs is accepted once
//!   (the seed kept such duplicates); any other repetition of a pod, a node
//!   line or an IP is an error.
//! * Lines that look like settings (`key = value`, or an identifier with `_`
//!   such as `log_level debug`) are reported as unknown directives instead of
//!   as bad pod names, since that is almost always what they are.
//!
//! Errors carry `FILE:LINE:` and nothing is returned on error: a table is
//! either completely valid or not built at all.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::source::{self, SourceError};
use crate::{ident, uapi};

/// Most IP addresses one pod may have (dual-stack pods have two; the rest is
/// headroom for multi-network pods).
pub const MAX_POD_IPS: usize = uapi::MAX_POD_IPS;

/// Port of a node's TLSHub agent when a `node` line gives only an address.
pub const DEFAULT_AGENT_PORT: u16 = uapi::DEFAULT_AGENT_PORT;

/// Longest node name (a DNS-1123 subdomain), as in the netlink spec.
pub const NAME_MAX_LEN: usize = uapi::NAME_MAX_LEN;

/// Longest pod name (`namespace/name`), as in the netlink spec.
pub const POD_NAME_MAX_LEN: usize = uapi::POD_NAME_MAX_LEN;

/// The token after a pod's node that marks it as a hostNetwork pod.
pub const HOST_NETWORK: &str = "hostNetwork";

/// `netns=PATH`: the pod's network namespace, by a file of it.
pub const NETNS_PATH: &str = "netns=";

/// `netns-cookie=N`: the pod's network namespace, by its cookie.
pub const NETNS_COOKIE: &str = "netns-cookie=";

/// Where the seed's tools looked for the mapping.
pub const DEFAULT_PATH: &str = "/etc/tlshub/pod_node_mapping.conf";

/// The header line of the seed's documented example file. It was never meant
/// as a mapping, so it is skipped rather than rejected (`_` is not valid in a
/// name).
const LEGACY_HEADER: [&str; 2] = ["pod_name", "node_name"];

/// One pod: its name, its node, and the addresses it is reachable at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pod {
    /// `namespace/name`, or a bare name.
    pub name: String,
    pub node: String,
    pub ips: Vec<IpAddr>,
    /// Shares its node's network namespace: its IPs are the node's, never
    /// looked up as a pod's.
    pub host_network: bool,
    /// The network namespace the pod lives in, if the mapping binds it
    /// (JSON: `netns` or `netns_cookie`, absent when unbound).
    #[serde(flatten)]
    pub netns: Option<Netns>,
}

/// Which network namespace a pod lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Netns {
    /// `netns=PATH`: a file of the namespace, to be resolved to its cookie
    /// on the pod's node ([`PodNodeTable::bind_netns`]) before it is sent.
    #[serde(rename = "netns")]
    Path(PathBuf),
    /// `netns-cookie=N`: the namespace's cookie (`SO_NETNS_COOKIE`), never 0.
    #[serde(rename = "netns_cookie")]
    Cookie(u64),
}

impl Netns {
    /// Parses a `netns=PATH` or `netns-cookie=N` token; `None` if `token`
    /// is neither.
    pub fn from_token(token: &str) -> Option<Result<Netns, EntryError>> {
        if let Some(path) = token.strip_prefix(NETNS_PATH) {
            return Some(if path.starts_with('/') {
                Ok(Netns::Path(PathBuf::from(path)))
            } else {
                Err(EntryError::InvalidNetnsPath {
                    text: path.to_owned(),
                })
            });
        }
        let text = token.strip_prefix(NETNS_COOKIE)?;
        // Digits only: `u64::from_str` would also take a leading `+`.
        Some(match text.parse::<u64>() {
            Ok(n) if n != 0 && text.bytes().all(|c| c.is_ascii_digit()) => Ok(Netns::Cookie(n)),
            _ => Err(EntryError::InvalidNetnsCookie {
                text: text.to_owned(),
            }),
        })
    }

    /// The cookie, once known.
    pub fn cookie(&self) -> Option<u64> {
        match self {
            Netns::Cookie(c) => Some(*c),
            Netns::Path(_) => None,
        }
    }
}

/// As a token of a mapping line.
impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netns::Path(p) => write!(f, "{NETNS_PATH}{}", p.display()),
            Netns::Cookie(c) => write!(f, "{NETNS_COOKIE}{c}"),
        }
    }
}

/// True for a `netns=PATH` or `netns-cookie=N` token.
fn is_netns_token(token: &str) -> bool {
    token.starts_with(NETNS_PATH) || token.starts_with(NETNS_COOKIE)
}

impl Pod {
    /// Builds a (regular) pod from its textual parts, validating all of them.
    pub fn parse<S: AsRef<str>>(name: &str, node: &str, ips: &[S]) -> Result<Pod, EntryError> {
        check_pod_name(name)?;
        check_node_name(node)?;
        if ips.len() > MAX_POD_IPS {
            return Err(EntryError::TooManyIps {
                pod: name.to_owned(),
                count: ips.len(),
            });
        }
        let ips = ips
            .iter()
            .map(|ip| parse_pod_ip(ip.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let pod = Pod {
            name: name.to_owned(),
            node: node.to_owned(),
            ips,
            host_network: false,
            netns: None,
        };
        check_pod(&pod)?;
        Ok(pod)
    }

    /// Builds a pod from the columns of a mapping line or the command line:
    /// `NAME NODE [IP...] [hostNetwork | netns=PATH | netns-cookie=N]`.
    pub fn from_columns<S: AsRef<str>>(
        name: &str,
        node: &str,
        rest: &[S],
    ) -> Result<Pod, EntryError> {
        let host = rest.iter().filter(|t| t.as_ref() == HOST_NETWORK).count();
        if host > 1 {
            return Err(EntryError::RepeatedHostNetwork);
        }
        let mut netns = None;
        let mut ips = Vec::new();
        for token in rest.iter().map(AsRef::as_ref) {
            if token == HOST_NETWORK {
                continue;
            }
            match Netns::from_token(token) {
                None => ips.push(token),
                Some(_) if netns.is_some() => return Err(EntryError::RepeatedNetns),
                Some(n) => netns = Some(n?),
            }
        }
        if host == 1 && netns.is_some() {
            return Err(EntryError::NetnsWithHostNetwork);
        }
        let mut pod = Pod::parse(name, node, &ips)?;
        pod.host_network = host == 1;
        pod.netns = netns;
        Ok(pod)
    }
}

/// A pod as a line of the mapping file.
impl fmt::Display for Pod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.node)?;
        for ip in &self.ips {
            write!(f, " {ip}")?;
        }
        if self.host_network {
            write!(f, " {HOST_NETWORK}")?;
        }
        if let Some(netns) = &self.netns {
            write!(f, " {netns}")?;
        }
        Ok(())
    }
}

/// One node and, if known, where its TLSHub agent listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    pub agent: Option<SocketAddr>,
}

impl Node {
    /// Builds a node from its name and an optional `ADDR[:PORT]`.
    pub fn parse(name: &str, agent: Option<&str>) -> Result<Node, EntryError> {
        check_node_name(name)?;
        Ok(Node {
            name: name.to_owned(),
            agent: agent.map(parse_agent).transpose()?,
        })
    }
}

/// A node as a line of the mapping file.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.agent {
            Some(agent) => write!(f, "node {} {agent}", self.name),
            None => write!(f, "node {}", self.name),
        }
    }
}

/// Which kind of name failed validation; only used to word messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Pod,
    Namespace,
    Node,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Pod => "pod",
            NameKind::Namespace => "namespace",
            NameKind::Node => "node",
        })
    }
}

/// Why a single entry was rejected, independent of where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("{kind} name too long ({len} characters, at most {max})")]
    NameTooLong {
        kind: NameKind,
        len: usize,
        max: usize,
    },
    #[error("empty {kind} name")]
    EmptyName { kind: NameKind },
    #[error(
        "invalid {kind} name '{name}': use lowercase letters, digits, '-' and '.', \
         starting and ending with a letter or digit"
    )]
    InvalidName { kind: NameKind, name: String },
    #[error(
        "invalid pod namespace '{namespace}': use lowercase letters, digits and '-', \
         starting and ending with a letter or digit"
    )]
    InvalidNamespace { namespace: String },
    #[error("invalid IP address '{text}'")]
    InvalidIp { text: String },
    #[error("{ip} is not a unicast address")]
    NotUnicast { ip: IpAddr },
    #[error("pod '{pod}' has {count} IP addresses, at most {MAX_POD_IPS} are allowed")]
    TooManyIps { pod: String, count: usize },
    #[error("IP {ip} listed twice for pod '{pod}'")]
    RepeatedIp { ip: IpAddr, pod: String },
    #[error("'{HOST_NETWORK}' given twice")]
    RepeatedHostNetwork,
    #[error(
        "network namespace given twice ('{NETNS_PATH}PATH' or '{NETNS_COOKIE}N', at most one)"
    )]
    RepeatedNetns,
    #[error(
        "a '{HOST_NETWORK}' pod has its node's network namespace: \
         '{NETNS_PATH}' and '{NETNS_COOKIE}' are not allowed with it"
    )]
    NetnsWithHostNetwork,
    #[error("invalid network namespace path '{text}' (expected an absolute path, such as /run/netns/NAME)")]
    InvalidNetnsPath { text: String },
    #[error("invalid network namespace cookie '{text}' (expected a decimal number above 0)")]
    InvalidNetnsCookie { text: String },
    #[error("invalid agent address '{text}' (expected IPV4[:PORT] or [IPV6][:PORT])")]
    InvalidAgent { text: String },
    #[error("invalid port '{text}' (expected 1-65535)")]
    InvalidPort { text: String },
    /// The pod is already in the table (with a different node or IPs).
    #[error("duplicate pod '{name}'")]
    DuplicatePod { name: String },
    #[error("duplicate node '{name}'")]
    DuplicateNode { name: String },
    /// The IP already belongs to pod `owner`.
    #[error("duplicate IP {ip} (already used by pod '{owner}')")]
    DuplicateIp { ip: IpAddr, owner: String },
}

/// The pod-node mapping, in file order, indexed by pod name, pod IP and node
/// name.
#[derive(Debug, Clone, Default)]
pub struct PodNodeTable {
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    pod_index: HashMap<String, usize>,
    ip_index: HashMap<IpAddr, usize>,
    node_index: HashMap<String, usize>,
    /// The `FILE` of the text the table was parsed from, and the line of
    /// each pod (0: not from a file), for errors found after parsing.
    source: String,
    pod_lines: Vec<usize>,
}

impl PodNodeTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads and validates a mapping file (the seed's `init_pod_node_mapping`);
    /// `-` reads standard input.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        Self::parse_str(&source::read_text(path)?, &source::name_of(path))
    }

    /// Parses mapping text; `source_name` is the `FILE` of error messages.
    pub fn parse_str(text: &str, source_name: &str) -> Result<Self, SourceError> {
        let mut parser = Parser::default();
        parser.table.source = source_name.to_owned();
        for (lineno, line) in source::lines(text) {
            parser
                .line(lineno, line)
                .map_err(|message| SourceError::Syntax {
                    file: source_name.to_owned(),
                    line: lineno,
                    message,
                })?;
        }
        Ok(parser.table)
    }

    /// Adds a pod after the existing ones; its IPv4-mapped addresses become
    /// IPv4.
    ///
    /// Adding a pod that is already present with the same node and IPs is a
    /// no-op, so that files repeating a line stay loadable. A hostNetwork
    /// pod's IPs are not indexed and not checked against other pods'.
    pub fn insert_pod(&mut self, mut pod: Pod) -> Result<(), EntryError> {
        for ip in &mut pod.ips {
            *ip = canonical_ip(*ip);
        }
        check_pod(&pod)?;
        if let Some(&i) = self.pod_index.get(&pod.name) {
            return if self.pods[i] == pod {
                Ok(())
            } else {
                Err(EntryError::DuplicatePod { name: pod.name })
            };
        }
        let index = self.pods.len();
        if !pod.host_network {
            for ip in &pod.ips {
                if let Some(&owner) = self.ip_index.get(ip) {
                    return Err(EntryError::DuplicateIp {
                        ip: *ip,
                        owner: self.pods[owner].name.clone(),
                    });
                }
            }
            self.ip_index.extend(pod.ips.iter().map(|&ip| (ip, index)));
        }
        self.pod_index.insert(pod.name.clone(), index);
        self.pods.push(pod);
        self.pod_lines.push(0);
        Ok(())
    }

    /// Adds a node declaration; each node may be declared once.
    pub fn insert_node(&mut self, mut node: Node) -> Result<(), EntryError> {
        check_node_name(&node.name)?;
        if let Some(agent) = &mut node.agent {
            agent.set_ip(canonical_ip(agent.ip()));
            check_unicast(agent.ip())?;
            if agent.port() == 0 {
                return Err(EntryError::InvalidPort {
                    text: "0".to_owned(),
                });
            }
        }
        if self.node_index.contains_key(&node.name) {
            return Err(EntryError::DuplicateNode { name: node.name });
        }
        self.node_index.insert(node.name.clone(), self.nodes.len());
        self.nodes.push(node);
        Ok(())
    }

    /// The node a pod runs on (the seed's `get_node_by_pod`).
    pub fn node_of(&self, pod: &str) -> Option<&str> {
        self.pod(pod).map(|p| p.node.as_str())
    }

    /// The pod called `name`.
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pod_index.get(name).map(|&i| &self.pods[i])
    }

    /// The pod that owns `ip` (never a hostNetwork pod).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        self.ip_index.get(&canonical_ip(ip)).map(|&i| &self.pods[i])
    }

    /// The declaration of node `name`, if the file had a `node` line for it.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.node_index.get(name).map(|&i| &self.nodes[i])
    }

    /// All pods, in file order.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// All declared nodes, in file order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Number of pods (what the seed called entries).
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// True when there are no pods.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Binds the pods of the nodes this kernel serves to their network
    /// namespaces, before the table is sent: each `netns=PATH` of such a pod
    /// becomes the namespace's cookie ([`crate::netns::cookie_of`]), and
    /// a `netns-cookie=N` stays. Pods of other nodes are left unbound (their
    /// paths exist on their own nodes, and cookies are per kernel).
    /// `local`: the nodes this kernel serves; `None` (unknown): every pod is
    /// taken as local.
    ///
    /// All or nothing: a path that cannot be resolved is an error naming
    /// `FILE:LINE` and the path, and the table is left as it was. Returns
    /// how many pods are bound.
    pub fn bind_netns(&mut self, local: Option<&[String]>) -> Result<usize, SourceError> {
        self.bind_netns_with(local, crate::netns::cookie_of)
    }

    /// [`Self::bind_netns`] with `resolve` turning a path into its cookie.
    pub fn bind_netns_with(
        &mut self,
        local: Option<&[String]>,
        mut resolve: impl FnMut(&Path) -> io::Result<u64>,
    ) -> Result<usize, SourceError> {
        let is_local = |node: &str| local.is_none_or(|l| l.iter().any(|n| n == node));
        let mut bound = Vec::with_capacity(self.pods.len());
        for (i, pod) in self.pods.iter().enumerate() {
            let netns = match &pod.netns {
                Some(_) if !is_local(&pod.node) => None,
                Some(Netns::Path(path)) => {
                    let cookie = resolve(path).map_err(|e| SourceError::Syntax {
                        file: match self.source.is_empty() {
                            true => "mapping".to_owned(),
                            false => self.source.clone(),
                        },
                        line: self.pod_lines.get(i).copied().unwrap_or(0),
                        message: format!(
                            "pod '{}': {NETNS_PATH}{}: cannot resolve the network namespace: {e}",
                            pod.name,
                            path.display()
                        ),
                    })?;
                    // The kernel takes 0 as "not bound"; no namespace has it.
                    Some(Netns::Cookie(cookie)).filter(|_| cookie != 0)
                }
                other => other.clone(),
            };
            bound.push(netns);
        }
        let count = bound.iter().filter(|n| n.is_some()).count();
        for (pod, netns) in self.pods.iter_mut().zip(bound) {
            pod.netns = netns;
        }
        Ok(count)
    }

    /// Writes the seed's `print_pod_node_mapping` output.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        write!(out, "{self}")
    }

    /// Writes the table as a mapping file: node lines, then pod lines.
    /// Parsing the output gives the same table.
    pub fn write_conf(&self, out: &mut impl Write) -> io::Result<()> {
        for node in &self.nodes {
            writeln!(out, "{node}")?;
        }
        for pod in &self.pods {
            writeln!(out, "{pod}")?;
        }
        Ok(())
    }
}

impl fmt::Display for PodNodeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SeedTable(&self.pods).fmt(f)
    }
}

/// Formats pods exactly like the seed's `print_pod_node_mapping`, byte for
/// byte, for scripts that scrape it.
///
/// That is `printf("%-30s %-30s\n", ...)` rows under a header and 60 dashes.
/// `%-30s` pads to 30 *bytes* and never truncates, and the padding of the
/// last column stays as trailing blanks. A hostNetwork pod (which the seed
/// did not know) gets ` hostNetwork` after its padded node, and a pod bound
/// to its network namespace ` netns-cookie=N` (or ` netns=PATH`).
pub struct SeedTable<'a>(pub &'a [Pod]);

impl fmt::Display for SeedTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn row(f: &mut fmt::Formatter<'_>, a: &str, b: &str, tail: &str) -> fmt::Result {
            let pad = |s: &str| " ".repeat(30usize.saturating_sub(s.len()));
            writeln!(f, "{a}{} {b}{}{tail}", pad(a), pad(b))
        }
        writeln!(f, "Pod-Node Mapping Table ({} entries):", self.0.len())?;
        row(f, "Pod Name", "Node Name", "")?;
        writeln!(f, "{}", "-".repeat(60))?;
        for pod in self.0 {
            let mut tail = String::new();
            if pod.host_network {
                tail.push_str(" hostNetwork");
            }
            if let Some(netns) = &pod.netns {
                tail = format!("{tail} {netns}");
            }
            row(f, &pod.name, &pod.node, &tail)?;
        }
        Ok(())
    }
}

/// An address in the one form kernel and helper agree on: an IPv4-mapped
/// IPv6 address (`::ffff:a.b.c.d`) is its IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match ident::v4_mapped(&v6.octets()) {
            Some(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
            None => ip,
        },
        v4 => v4,
    }
}

/// Checks a node name: a DNS-1123 subdomain of at most 253 bytes.
pub fn check_node_name(name: &str) -> Result<(), EntryError> {
    check_subdomain(NameKind::Node, name)
}

fn check_subdomain(kind: NameKind, name: &str) -> Result<(), EntryError> {
    if name.is_empty() {
        return Err(EntryError::EmptyName { kind });
    }
    if name.len() > ident::SUBDOMAIN_MAX_LEN {
        return Err(EntryError::NameTooLong {
            kind,
            len: name.len(),
            max: ident::SUBDOMAIN_MAX_LEN,
        });
    }
    if !ident::valid_node_name(name.as_bytes()) {
        return Err(EntryError::InvalidName {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a pod name: `namespace/name` or a bare name, as the kernel does
/// (`ident::valid_pod_name`), with a message saying which part is wrong.
pub fn check_pod_name(name: &str) -> Result<(), EntryError> {
    if let Some((namespace, rest)) = name.split_once('/') {
        if namespace.len() > ident::LABEL_MAX_LEN {
            return Err(EntryError::NameTooLong {
                kind: NameKind::Namespace,
                len: namespace.len(),
                max: ident::LABEL_MAX_LEN,
            });
        }
        if namespace.is_empty() {
            return Err(EntryError::EmptyName {
                kind: NameKind::Namespace,
            });
        }
        // A namespace is a DNS-1123 label: a subdomain without dots.
        if namespace.contains('.') || !ident::valid_node_name(namespace.as_bytes()) {
            return Err(EntryError::InvalidNamespace {
                namespace: namespace.to_owned(),
            });
        }
        check_subdomain(NameKind::Pod, rest)?;
    } else {
        check_subdomain(NameKind::Pod, name)?;
    }
    // The shared rule has the last word.
    if ident::valid_pod_name(name.as_bytes()) {
        Ok(())
    } else {
        Err(EntryError::InvalidName {
            kind: NameKind::Pod,
            name: name.to_owned(),
        })
    }
}

/// Parses one pod address: a plain IPv4 or IPv6 unicast literal, in its
/// [canonical](canonical_ip) form.
pub fn parse_pod_ip(text: &str) -> Result<IpAddr, EntryError> {
    let ip: IpAddr = text.parse().map_err(|_| EntryError::InvalidIp {
        text: text.to_owned(),
    })?;
    let ip = canonical_ip(ip);
    check_unicast(ip)?;
    Ok(ip)
}

/// Parses a node agent address: `IPV4[:PORT]` or `[IPV6][:PORT]`.
///
/// A bare IPv6 address is refused because `fd00::2:7443` is ambiguous.
pub fn parse_agent(text: &str) -> Result<SocketAddr, EntryError> {
    let invalid = || EntryError::InvalidAgent {
        text: text.to_owned(),
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        let host: std::net::Ipv6Addr = host.parse().map_err(|_| invalid())?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(invalid)?),
        };
        (canonical_ip(IpAddr::V6(host)), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host: std::net::Ipv4Addr = host.parse().map_err(|_| invalid())?;
        (IpAddr::V4(host), port)
    };
    check_unicast(host)?;
    let port = match port {
        None => DEFAULT_AGENT_PORT,
        Some(p) => parse_port(p)?,
    };
    Ok(SocketAddr::new(host, port))
}

fn parse_port(text: &str) -> Result<u16, EntryError> {
    // Digits only: `u16::from_str` would also take a leading `+`.
    match text.parse::<u16>() {
        Ok(port) if port != 0 && text.bytes().all(|c| c.is_ascii_digit()) => Ok(port),
        _ => Err(EntryError::InvalidPort {
            text: text.to_owned(),
        }),
    }
}

fn check_unicast(ip: IpAddr) -> Result<(), EntryError> {
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if bad {
        Err(EntryError::NotUnicast { ip })
    } else {
        Ok(())
    }
}

/// Checks what `Pod::parse` checks, for pods built field by field.
fn check_pod(pod: &Pod) -> Result<(), EntryError> {
    check_pod_name(&pod.name)?;
    check_node_name(&pod.node)?;
    if pod.ips.len() > MAX_POD_IPS {
        return Err(EntryError::TooManyIps {
            pod: pod.name.clone(),
            count: pod.ips.len(),
        });
    }
    for (i, &ip) in pod.ips.iter().enumerate() {
        check_unicast(ip)?;
        if pod.ips[..i].contains(&ip) {
            return Err(EntryError::RepeatedIp {
                ip,
                pod: pod.name.clone(),
            });
        }
    }
    match &pod.netns {
        Some(_) if pod.host_network => return Err(EntryError::NetnsWithHostNetwork),
        Some(Netns::Cookie(0)) => {
            return Err(EntryError::InvalidNetnsCookie {
                text: "0".to_owned(),
            })
        }
        Some(Netns::Path(p)) if !p.is_absolute() => {
            return Err(EntryError::InvalidNetnsPath {
                text: p.display().to_string(),
            })
        }
        _ => {}
    }
    Ok(())
}

/// Parses a file line by line into a table, remembering where each entry came
/// from so duplicates can point at their first occurrence.
#[derive(Default)]
struct Parser {
    table: PodNodeTable,
    node_lines: Vec<usize>,
}

impl Parser {
    fn line(&mut self, lineno: usize, line: &str) -> Result<(), String> {
        let content = source::strip_comment(line);
        let tokens: Vec<&str> = content
            .split([' ', '\t'])
            .filter(|t| !t.is_empty())
            .collect();
        match tokens.as_slice() {
            [] => Ok(()),
            t if t == LEGACY_HEADER => Ok(()),
            // `netns=PATH` / `netns-cookie=N` after a pod's node are no
            // settings.
            t if t
                .iter()
                .enumerate()
                .any(|(i, t)| t.contains('=') && (i < 2 || !is_netns_token(t))) =>
            {
                let key = content.split('=').next().unwrap_or("").trim();
                Err(format!("unknown directive '{key}'"))
            }
            ["node", rest @ ..] => self.node_line(lineno, rest),
            [first, ..] if looks_like_setting(first) => Err(format!(
                "unknown directive '{first}' (pod names cannot contain '_')"
            )),
            [pod] => Err(format!("missing node column after pod '{pod}'")),
            [pod, node, rest @ ..] => self.pod_line(lineno, pod, node, rest),
        }
    }

    fn pod_line(
        &mut self,
        lineno: usize,
        pod: &str,
        node: &str,
        rest: &[&str],
    ) -> Result<(), String> {
        if rest
            .iter()
            .filter(|&&t| t != HOST_NETWORK && !is_netns_token(t))
            .count()
            > MAX_POD_IPS
        {
            return Err(format!(
                "too many columns ({}): expected POD NODE and at most {MAX_POD_IPS} IPs",
                rest.len() + 2
            ));
        }
        let pod = Pod::from_columns(pod, node, rest).map_err(|e| e.to_string())?;
        let before = self.table.len();
        self.table.insert_pod(pod).map_err(|e| self.locate(e))?;
        if self.table.len() > before {
            if let Some(last) = self.table.pod_lines.last_mut() {
                *last = lineno;
            }
        }
        Ok(())
    }

    fn node_line(&mut self, lineno: usize, args: &[&str]) -> Result<(), String> {
        let node = match args {
            [] => return Err("missing node name after 'node'".to_owned()),
            [name] => Node::parse(name, None),
            [name, agent] => Node::parse(name, Some(agent)),
            _ => {
                return Err(format!(
                    "too many columns ({}): expected 'node NAME [ADDR[:PORT]]'",
                    args.len() + 1
                ))
            }
        };
        let node = node.map_err(|e| e.to_string())?;
        self.table.insert_node(node).map_err(|e| self.locate(e))?;
        self.node_lines.push(lineno);
        Ok(())
    }

    /// Words a table error, adding the line of the entry it collides with.
    fn locate(&self, err: EntryError) -> String {
        let pod_line = |name: &str| {
            self.table
                .pod_index
                .get(name)
                .map(|&i| self.table.pod_lines[i])
        };
        match &err {
            EntryError::DuplicatePod { name } => match pod_line(name) {
                Some(first) => format!("{err} (first at line {first})"),
                None => err.to_string(),
            },
            EntryError::DuplicateNode { name } => {
                match self.table.node_index.get(name).map(|&i| self.node_lines[i]) {
                    Some(first) => format!("{err} (first at line {first})"),
                    None => err.to_string(),
                }
            }
            EntryError::DuplicateIp { ip, owner } => match pod_line(owner) {
                Some(at) => {
                    format!("duplicate IP {ip} (already used by pod '{owner}' at line {at})")
                }
                None => err.to_string(),
            },
            _ => err.to_string(),
        }
    }
}

/// True for `log_level`-style words: settings, not (invalid) pod names.
fn looks_like_setting(token: &str) -> bool {
    token.contains('_')
        && token
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}
