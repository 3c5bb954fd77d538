//! What an agent is told: its node name, identity files, the mapping it
//! learns the other nodes' agent addresses from, and its timings; and the
//! [`Directory`] of nodes read from that mapping.
//!
//! Kept apart from the command line (`src/bin/tlshubd.rs`) so that tests
//! build agents directly.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::mapping::{canonical_ip, PodNodeTable};
use crate::source::SourceError;

/// Default lifetime of a node-pair secret.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Everything an agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's name (the name its certificate carries).
    pub node: String,
    /// The pod-node mapping file (`node NAME ADDR[:PORT]` lines).
    pub mapping: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub settings: Settings,
    /// Where to listen; default: this node's address in the mapping.
    pub listen: Option<SocketAddr>,
}

/// Timings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a secret lives; the leader renews it after 2/3 of this, the
    /// follower (if the leader did not) after 3/4.
    pub lifetime: Duration,
    /// Read/write timeout of a session's socket.
    pub io_timeout: Duration,
    /// How long an outgoing session keeps retrying a refused or failed TCP
    /// connect (the peer's agent restarting) before it gives up.
    pub connect_retry: Duration,
    /// How long a follower whose session the leader answered `Busy` waits
    /// for the leader's session to install a secret.
    pub busy_wait: Duration,
    /// How often the mapping file is checked for changes and renewals are
    /// due.
    pub tick: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lifetime: DEFAULT_LIFETIME,
            io_timeout: Duration::from_secs(20),
            connect_retry: Duration::from_secs(4),
            busy_wait: Duration::from_secs(10),
            tick: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// When a secret of this age is renewed by the leader (`true`) or the
    /// follower.
    pub fn renew_after(&self, leader: bool) -> Duration {
        if leader {
            self.lifetime * 2 / 3
        } else {
            self.lifetime * 3 / 4
        }
    }

    /// [`Settings::renew_after`] for one peer: earlier by up to 1/24 of the
    /// lifetime, by a fixed amount per peer name (review-agent L5), so the
    /// pairs keyed together at start (1000 peers) do not all renew in the
    /// same tick. The leader still renews before the follower would.
    pub fn renew_after_for(&self, leader: bool, peer: &str) -> Duration {
        // FNV-1a of the name: stable across restarts and nodes.
        let h = peer.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let spread = self.lifetime / 24;
        let jitter = spread.mul_f64((h % 1000) as f64 / 1000.0);
        self.renew_after(leader).saturating_sub(jitter)
    }
}

/// The nodes of the mapping and their agents' addresses, and which node
/// each pod address is on (per-flow keys check a peer's claims with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    nodes: BTreeMap<String, Option<SocketAddr>>,
    /// Pod address (canonical: IPv4-mapped as IPv4) -> node; hostNetwork
    /// pods are left out (their addresses are their node's).
    pods: HashMap<IpAddr, String>,
}

impl Directory {
    pub fn from_table(table: &PodNodeTable) -> Directory {
        let mut nodes = BTreeMap::new();
        for node in table.nodes() {
            nodes.insert(node.name.clone(), node.agent);
        }
        // A node named only by pods is a node too (it has no agent address).
        let mut pods = HashMap::new();
        for pod in table.pods() {
            nodes.entry(pod.node.clone()).or_insert(None);
            if !pod.host_network {
                for &ip in &pod.ips {
                    pods.insert(canonical_ip(ip), pod.node.clone());
                }
            }
        }
        Directory { nodes, pods }
    }

    pub fn from_file(path: &std::path::Path) -> Result<Directory, SourceError> {
        PodNodeTable::from_file(path).map(|t| Directory::from_table(&t))
    }

    pub fn contains(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// The agent address of `node`, if the mapping gives one.
    pub fn agent(&self, node: &str) -> Option<SocketAddr> {
        self.nodes.get(node).copied().flatten()
    }

    /// Every node name.
    pub fn names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// The node of the pod with address `ip` (hostNetwork pods excluded).
    pub fn node_of_ip(&self, ip: IpAddr) -> Option<&str> {
        self.pods.get(&canonical_ip(ip)).map(String::as_str)
    }

    /// The node whose agent address has this IP, for log messages about
    /// connections that did not get far enough to say who they are.
    pub fn node_at(&self, ip: std::net::IpAddr) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, a)| a.is_some_and(|a| a.ip() == ip))
            .map(|(n, _)| n.as_str())
    }
}
