// SPDX-License-Identifier: GPL-2.0
//! The `tlshub` generic netlink family: the control plane (as WireGuard's
//! netlink.c). Described by `spec/tlshub.yaml`; numbers come from
//! `spec/uapi.rs`; the policy tables below carry the spec's limits. Plain
//! safe Rust over the `sys::genl` wrapper, acting on the module's
//! [`State`], which it holds a reference to and never owns.
//!
//! Requests run in parallel (the family sets `parallel_ops`); every change
//! takes the state's update mutex, and frees what it replaced after
//! unlocking. A staged replacement belongs to its sending socket (by port
//! id): `ReleaseHandler::released` drops it when that socket closes.

use crate::datapath::{Cidrs, Datapath};
use crate::state::mapping::{
    AddError, IpAddr, MapError, NodeAddr, NodeEntry, Pod, PodSpec, MAX_POD_IPS,
};
use crate::state::{ident, StageError, State};
use crate::sys::genl::{
    eopnotsupp, single_of, AttrSet, Dump, FamilySpec, Handler, Kind, OpSpec, Request, Writer,
};
use crate::sys::nlattr::Attr;
use crate::sys::notify::ReleaseHandler;
use crate::sys::rcu::Guard;
use crate::uapi::{self, attr, cidr, cmd, flow, node, peer, pod, stats};

pub(crate) mod datapath;
use core::ffi::CStr;
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::sync::Arc;

const POD_NAME: Kind = Kind::Str {
    max_len: uapi::POD_NAME_MAX_LEN as u16,
};
const NODE_NAME: Kind = Kind::Str {
    max_len: uapi::NAME_MAX_LEN as u16,
};

static POD_SET: AttrSet = AttrSet {
    max: pod::MAX,
    attrs: &[
        (pod::NAME, POD_NAME),
        (pod::NODE, NODE_NAME),
        (pod::IPV4, Kind::Be32),
        (pod::IPV6, Kind::Exact(16)),
        (pod::HOST_NETWORK, Kind::Flag),
        (pod::NETNS_COOKIE, Kind::U64),
    ],
};

static NODE_SET: AttrSet = AttrSet {
    max: node::MAX,
    attrs: &[
        (node::NAME, NODE_NAME),
        (node::IPV4, Kind::Be32),
        (node::IPV6, Kind::Exact(16)),
        (node::PORT, Kind::U16 { min: 1 }),
    ],
};

static STATS_SET: AttrSet = AttrSet {
    max: stats::MAX,
    attrs: &[
        (stats::LOOKUPS, Kind::U64),
        (stats::LOOKUP_MISSES, Kind::U64),
        (stats::MAP_UPDATES, Kind::U64),
        (stats::FLOWS_SEEN, Kind::U64),
        (stats::FLOWS_SECURED, Kind::U64),
        (stats::BYPASS_LOCAL_NOT_POD, Kind::U64),
        (stats::BYPASS_REMOTE_NOT_POD, Kind::U64),
        (stats::BYPASS_SAME_NODE, Kind::U64),
        (stats::KEY_WAITS, Kind::U64),
        (stats::KEY_REQUESTS, Kind::U64),
        (stats::INSTALL_FAILURES, Kind::U64),
        (stats::RESET_KEY_TIMEOUT, Kind::U64),
        (stats::RESET_INSTALL, Kind::U64),
        (stats::RESET_STALE_SENDER, Kind::U64),
        (stats::RESET_UNSUPPORTED, Kind::U64),
        (stats::RESET_UNLOAD, Kind::U64),
        (stats::FLOWS_TRACKED, Kind::U64),
        (stats::GUARD_DROPS, Kind::U64),
        (stats::RESET_GUARD, Kind::U64),
        (stats::RESET_KEY_REFUSED, Kind::U64),
        (stats::KEY_RESENDS, Kind::U64),
        (stats::GUARD_HOLDS, Kind::U64),
        (stats::RESET_KEY_REPEAT, Kind::U64),
        (stats::REPEAT_WINDOW_FULL, Kind::U64),
        (stats::REPEAT_WINDOW, Kind::U64),
        (stats::RESET_KEY_EPOCH, Kind::U64),
        (stats::FLOWS_SERVICE, Kind::U64),
        (stats::SERVICE_SECURED, Kind::U64),
        (stats::BYPASS_SERVICE, Kind::U64),
        (stats::RESET_SERVICE, Kind::U64),
        (stats::SERVICE_RECORDS, Kind::U64),
        (stats::RESET_IDENTITY, Kind::U64),
        (stats::RESET_UNMAPPED, Kind::U64),
        (stats::RESET_FASTOPEN, Kind::U64),
    ],
};

static CIDR_SET: AttrSet = AttrSet {
    max: cidr::MAX,
    attrs: &[
        (cidr::IPV4, Kind::Be32),
        (cidr::IPV6, Kind::Exact(16)),
        (cidr::PREFIX_LEN, Kind::U8 { max: 128 }),
    ],
};

static PEER_SET: AttrSet = AttrSet {
    max: peer::MAX,
    attrs: &[
        (peer::NAME, NODE_NAME),
        (peer::PSK, Kind::Exact(uapi::PSK_LEN as u16)),
        (peer::EPOCH, Kind::U64),
        (peer::PENDING, Kind::U32 { max: None }),
        // 0 = never expires; any u32 of milliseconds.
        (peer::LIFETIME_MS, Kind::U32 { max: None }),
        // Unbounded here: its limit (uapi::ERROR_MAX_LEN) is checked in
        // Rust, EINVAL naming the attribute.
        (peer::ERROR, Kind::Str { max_len: 0 }),
        (
            peer::STATE,
            Kind::U32 {
                max: Some(uapi::peer_state::NONE as u16),
            },
        ),
        (peer::AGE_MS, Kind::U64),
        (peer::EXPIRES_MS, Kind::U64),
        (peer::ERROR_AGE_MS, Kind::U64),
        (peer::LOCAL, NODE_NAME),
        (peer::LAST_EPOCH, Kind::U64),
    ],
};

static FLOW_SET: AttrSet = AttrSet {
    max: flow::MAX,
    attrs: &[
        (
            flow::ROLE,
            Kind::U32 {
                max: Some(uapi::role::SERVER as u16),
            },
        ),
        (
            flow::STATE,
            Kind::U32 {
                max: Some(uapi::flow_state::FAILED as u16),
            },
        ),
        (flow::LOCAL_IPV4, Kind::Be32),
        (flow::LOCAL_IPV6, Kind::Exact(16)),
        (flow::LOCAL_PORT, Kind::U16 { min: 1 }),
        (flow::REMOTE_IPV4, Kind::Be32),
        (flow::REMOTE_IPV6, Kind::Exact(16)),
        (flow::REMOTE_PORT, Kind::U16 { min: 1 }),
        (flow::LOCAL_POD, POD_NAME),
        (flow::REMOTE_POD, POD_NAME),
        (flow::PEER_NODE, NODE_NAME),
        (
            flow::CIPHER,
            Kind::U32 {
                max: Some(uapi::cipher::MAX as u16),
            },
        ),
        (flow::AGE_MS, Kind::U64),
        (
            flow::MODE,
            Kind::U32 {
                max: Some(uapi::mode::MAX as u16),
            },
        ),
        (flow::SECRET, Kind::Exact(uapi::PSK_LEN as u16)),
        (flow::CLIENT_ISN, Kind::U32 { max: None }),
        (flow::SERVER_ISN, Kind::U32 { max: None }),
    ],
};

static TOP_SET: AttrSet = AttrSet {
    max: attr::MAX,
    attrs: &[
        (
            attr::MODE,
            Kind::U32 {
                max: Some(uapi::mode::MAX as u16),
            },
        ),
        (attr::VERSION, Kind::Str { max_len: 32 }),
        (attr::POD, Kind::Nest(&POD_SET)),
        (attr::NODE, Kind::Nest(&NODE_SET)),
        (attr::POD_COUNT, Kind::U32 { max: None }),
        (attr::NODE_COUNT, Kind::U32 { max: None }),
        (attr::GENERATION, Kind::U32 { max: None }),
        (attr::BEGIN, Kind::Flag),
        (attr::POD_NAME, POD_NAME),
        (attr::NODE_NAME, NODE_NAME),
        (attr::IPV4, Kind::Be32),
        (attr::IPV6, Kind::Exact(16)),
        (attr::STATS, Kind::Nest(&STATS_SET)),
        (attr::LOCAL_NODE, NODE_NAME),
        (
            attr::CIPHER,
            Kind::U32 {
                max: Some(uapi::cipher::MAX as u16),
            },
        ),
        // 100..600000: checked in Rust (the core's u32 range is 16-bit here).
        (attr::KEY_TIMEOUT_MS, Kind::U32 { max: None }),
        (attr::PEER, Kind::Nest(&PEER_SET)),
        (attr::FLOW, Kind::Nest(&FLOW_SET)),
        (attr::LOCAL_SET, Kind::Flag),
        (attr::SERVICE_CIDR, Kind::Nest(&CIDR_SET)),
        (attr::SERVICE_SET, Kind::Flag),
        (attr::POD_CIDR, Kind::Nest(&CIDR_SET)),
        (attr::POD_SET, Kind::Flag),
    ],
};

/// A dump-only command.
const fn dump_op(cmd: u8, admin: bool) -> OpSpec {
    OpSpec {
        cmd,
        admin,
        doit: false,
        dump: true,
        request: &[],
    }
}

const fn op(cmd: u8, admin: bool, dump: bool, request: &'static [u16]) -> OpSpec {
    OpSpec {
        cmd,
        admin,
        doit: true,
        dump,
        request,
    }
}

/// The family as `spec/tlshub.yaml` describes it.
pub(crate) static FAMILY: FamilySpec = FamilySpec {
    name: c"tlshub",
    version: uapi::FAMILY_VERSION,
    attrs: &TOP_SET,
    ops: &[
        op(cmd::MODE_GET, false, false, &[]),
        op(cmd::MODE_SET, true, false, &[attr::MODE]),
        op(cmd::STATUS_GET, false, false, &[]),
        op(
            cmd::MAP_GET,
            true,
            true,
            &[attr::POD_NAME, attr::IPV4, attr::IPV6],
        ),
        op(cmd::MAP_ADD, true, false, &[attr::POD, attr::NODE]),
        op(
            cmd::MAP_DEL,
            true,
            false,
            &[attr::POD_NAME, attr::NODE_NAME],
        ),
        op(
            cmd::MAP_STAGE,
            true,
            false,
            &[attr::BEGIN, attr::POD, attr::NODE],
        ),
        op(cmd::MAP_COMMIT, true, false, &[]),
        op(
            cmd::NODE_LOCAL_SET,
            true,
            false,
            &[attr::LOCAL_SET, attr::LOCAL_NODE],
        ),
        op(cmd::NODE_LOCAL_GET, false, false, &[]),
        op(cmd::PEER_SET, true, false, &[attr::PEER]),
        op(
            cmd::PEER_DEL,
            true,
            false,
            &[attr::NODE_NAME, attr::LOCAL_NODE],
        ),
        dump_op(cmd::PEER_GET, true),
        op(
            cmd::CONFIG_SET,
            true,
            false,
            &[attr::CIPHER, attr::KEY_TIMEOUT_MS],
        ),
        op(cmd::CONFIG_GET, false, false, &[]),
        dump_op(cmd::FLOWS_GET, true),
        op(cmd::PEER_FAIL, true, false, &[attr::PEER]),
        op(cmd::FLOW_KEY_SET, true, false, &[attr::FLOW]),
        op(cmd::DRAIN, true, false, &[]),
        op(
            cmd::SERVICE_CIDR_SET,
            true,
            false,
            &[attr::SERVICE_SET, attr::SERVICE_CIDR],
        ),
        op(cmd::SERVICE_CIDR_GET, false, false, &[]),
        op(
            cmd::POD_CIDR_SET,
            true,
            false,
            &[attr::POD_SET, attr::POD_CIDR],
        ),
        op(cmd::POD_CIDR_GET, false, false, &[]),
    ],
    mcgrps: &[c"keys"],
};

/// Handles the family's requests against the node's [`State`].
pub(crate) struct Control {
    state: Arc<State>,
    dp: Arc<Datapath>,
}

impl Control {
    pub(crate) fn new(state: Arc<State>, dp: Arc<Datapath>) -> Self {
        Self { state, dp }
    }
}

/// A pod as carried in a `pod` nest.
struct PodMsg<'a> {
    name: &'a [u8],
    node: &'a [u8],
    ips: [IpAddr; MAX_POD_IPS],
    n_ips: usize,
    host_network: bool,
    netns: u64,
}

impl PodMsg<'_> {
    fn spec(&self) -> PodSpec<'_> {
        PodSpec {
            name: self.name,
            node: self.node,
            ips: self.ips.get(..self.n_ips).unwrap_or(&[]),
            host_network: self.host_network,
            netns: self.netns,
        }
    }
}

/// A node as carried in a `node` nest.
struct NodeMsg<'a> {
    name: &'a [u8],
    addr: Option<NodeAddr>,
}

/// A string attribute (length already checked by the policy).
fn str_of<'a>(req: &Request<'_>, a: &Attr<'a>) -> Result<&'a [u8]> {
    a.str_bytes()
        .map_err(|e| req.fail(e, Some(a), c"string with an embedded NUL"))
}

/// An address attribute (size already checked by the policy), canonical.
fn ip_of(a: &Attr<'_>) -> Option<IpAddr> {
    match a.data().len() {
        4 => a.array().ok().map(IpAddr::v4),
        16 => a.array().ok().map(IpAddr::v6),
        _ => None,
    }
}

/// Fail with a message naming `a` unless `ok`.
fn check(req: &Request<'_>, ok: bool, a: &Attr<'_>, msg: &'static CStr) -> Result {
    if ok {
        Ok(())
    } else {
        Err(req.fail(EINVAL, Some(a), msg))
    }
}

/// The one name attribute `ty` inside `nest`: present (else `miss-type` in
/// `nest`), single, and valid by `valid` (else EINVAL naming it).
fn required_name<'a>(
    req: &Request<'_>,
    nest: &Attr<'a>,
    ty: u16,
    valid: fn(&[u8]) -> bool,
    missing: &'static CStr,
    invalid: &'static CStr,
) -> Result<&'a [u8]> {
    let a = single_of(req, nest.nested(), ty)?
        .ok_or_else(|| req.missing_in(Some(nest), ty, missing))?;
    let name = str_of(req, &a)?;
    check(req, valid(name), &a, invalid)?;
    Ok(name)
}

fn parse_pod<'a>(req: &Request<'_>, nest: &Attr<'a>) -> Result<PodMsg<'a>> {
    let name_s = required_name(
        req,
        nest,
        pod::NAME,
        ident::valid_pod_name,
        c"pod: name missing",
        c"pod name: not namespace/name of DNS-1123 names",
    )?;
    let node_s = required_name(
        req,
        nest,
        pod::NODE,
        ident::valid_node_name,
        c"pod: node missing",
        c"pod node: not a DNS-1123 subdomain",
    )?;
    let host_network = single_of(req, nest.nested(), pod::HOST_NETWORK)?.is_some();
    let netns = match single_of(req, nest.nested(), pod::NETNS_COOKIE)? {
        Some(a) => {
            let c = a
                .array::<8>()
                .map(u64::from_ne_bytes)
                .map_err(|e| req.fail(e, Some(&a), c"netns-cookie: must be 8 bytes"))?;
            check(req, c != 0, &a, c"netns-cookie: 0 is no namespace")?;
            check(
                req,
                !host_network,
                &a,
                c"netns-cookie: a hostNetwork pod has its node's namespace",
            )?;
            c
        }
        None => 0,
    };
    let mut ips = [IpAddr::v4([0; 4]); MAX_POD_IPS];
    let mut n_ips = 0;
    for a in nest
        .nested()
        .filter(|a| a.ty() == pod::IPV4 || a.ty() == pod::IPV6)
    {
        let ip = ip_of(&a).ok_or_else(|| req.fail(EINVAL, Some(&a), c"pod: bad address"))?;
        let slot = ips
            .get_mut(n_ips)
            .ok_or_else(|| req.fail(EINVAL, Some(&a), c"pod: more than 8 IP addresses"))?;
        *slot = ip;
        n_ips += 1;
    }
    Ok(PodMsg {
        name: name_s,
        node: node_s,
        ips,
        n_ips,
        host_network,
        netns,
    })
}

fn parse_node<'a>(req: &Request<'_>, nest: &Attr<'a>) -> Result<NodeMsg<'a>> {
    let name_s = required_name(
        req,
        nest,
        node::NAME,
        ident::valid_node_name,
        c"node: name missing",
        c"node name: not a DNS-1123 subdomain",
    )?;
    let v4 = single_of(req, nest.nested(), node::IPV4)?;
    let v6 = single_of(req, nest.nested(), node::IPV6)?;
    let port = single_of(req, nest.nested(), node::PORT)?;
    let ip = match (&v4, &v6) {
        (Some(_), Some(b)) => {
            return Err(req.fail(EINVAL, Some(b), c"node: more than one address"))
        }
        (Some(a), None) | (None, Some(a)) => {
            Some(ip_of(a).ok_or_else(|| req.fail(EINVAL, Some(a), c"node: bad address"))?)
        }
        (None, None) => None,
    };
    let port = match &port {
        Some(p) => Some(
            p.u16()
                .map_err(|e| req.fail(e, Some(p), c"node port: must be 2 bytes"))?,
        ),
        None => None,
    };
    let addr = match (ip, port) {
        (Some(ip), port) => Some(NodeAddr {
            ip,
            port: port.unwrap_or(uapi::DEFAULT_AGENT_PORT),
        }),
        (None, None) => None,
        (None, Some(_)) => return Err(req.fail(EINVAL, Some(nest), c"node: port without address")),
    };
    Ok(NodeMsg { name: name_s, addr })
}

/// Report a mapping error about `at` (the attribute that caused it).
fn map_err(req: &Request<'_>, at: Option<&Attr<'_>>, e: MapError) -> Error {
    let msg: &'static CStr = match e {
        MapError::InvalidName => c"invalid name (DNS-1123; pods may be namespace/name)",
        MapError::TooManyIps => c"pod has more than 8 IP addresses",
        MapError::DuplicatePod => c"duplicate pod",
        MapError::DuplicateIp => c"IP address already belongs to a pod",
        MapError::DuplicateNode => c"duplicate node",
        MapError::NoSuchPod => c"pod not found",
        MapError::NoSuchNode => c"node not found",
        MapError::NodeHasPods => c"node still has pods",
        MapError::TooBig => c"mapping too large",
        MapError::NoMem => c"out of memory",
    };
    req.fail(e.into(), at, msg)
}

fn put_ip(w: &mut Writer, v4: u16, v6: u16, ip: &IpAddr) -> Result {
    match (ip.as_v4(), ip.as_v6()) {
        (Some(a), _) => w.put_bytes(v4, &a),
        (_, Some(a)) => w.put_bytes(v6, &a),
        _ => Ok(()),
    }
}

fn put_node(w: &mut Writer, n: &NodeEntry) -> Result {
    w.nest(attr::NODE, |w| {
        w.put_str(node::NAME, n.name())?;
        if let Some(a) = n.addr() {
            put_ip(w, node::IPV4, node::IPV6, &a.ip)?;
            w.put_u16(node::PORT, a.port)?;
        }
        Ok(())
    })
}

fn put_pod(w: &mut Writer, p: &Pod) -> Result {
    w.nest(attr::POD, |w| {
        w.put_str(pod::NAME, p.name())?;
        w.put_str(pod::NODE, p.node())?;
        for ip in p.ips() {
            put_ip(w, pod::IPV4, pod::IPV6, ip)?;
        }
        if p.host_network() {
            w.put_flag(pod::HOST_NETWORK)?;
        }
        if let Some(c) = p.netns() {
            w.put_u64(pod::NETNS_COOKIE, c, pod::PAD)?;
        }
        Ok(())
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn stage_err(req: &Request<'_>, e: StageError<Error>) -> Error {
    match e {
        StageError::NotStaging => {
            req.fail(EINVAL, None, c"no replacement staged: send begin first")
        }
        StageError::Busy => req.fail(EBUSY, None, c"another mapping replacement is in progress"),
        StageError::NoMem => ENOMEM,
        StageError::Entry(e) => e,
    }
}

impl Control {
    fn mode_get(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::MODE_GET)?;
        r.put_u32(attr::MODE, self.state.mode())?;
        r.send()
    }

    fn mode_set(&self, req: &Request<'_>) -> Result {
        let a = req
            .single(attr::MODE)?
            .ok_or_else(|| req.missing(attr::MODE, c"mode missing"))?;
        // The policy bounds the value (uapi::mode::MAX).
        let mode = a
            .u32()
            .map_err(|e| req.fail(e, Some(&a), c"mode: must be 4 bytes"))?;
        self.state.set_mode(mode);
        Ok(())
    }

    fn status_get(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::STATUS_GET)?;
        r.put_str(attr::VERSION, crate::VERSION.as_bytes())?;
        r.put_u32(attr::MODE, self.state.mode())?;
        let (pods, nodes, gen) = {
            let up = self.state.lock();
            (
                count(up.map().pod_count()),
                count(up.map().node_count()),
                up.generation(),
            )
        };
        r.put_u32(attr::POD_COUNT, pods)?;
        r.put_u32(attr::NODE_COUNT, nodes)?;
        r.put_u32(attr::GENERATION, gen)?;
        let s = &self.state.stats;
        r.nest(attr::STATS, |w| {
            w.put_u64(
                stats::LOOKUPS,
                s.lookups.load(Ordering::Relaxed),
                stats::PAD,
            )?;
            w.put_u64(
                stats::LOOKUP_MISSES,
                s.lookup_misses.load(Ordering::Relaxed),
                stats::PAD,
            )?;
            w.put_u64(
                stats::MAP_UPDATES,
                s.map_updates.load(Ordering::Relaxed),
                stats::PAD,
            )?;
            self.put_datapath_stats(w)
        })?;
        self.put_datapath_status(&mut r)?;
        r.send()
    }

    fn map_get(&self, req: &Request<'_>) -> Result {
        let by_name = req.single(attr::POD_NAME)?;
        let by_v4 = req.single(attr::IPV4)?;
        let by_v6 = req.single(attr::IPV6)?;
        let key = match (by_name, by_v4, by_v6) {
            (Some(k), None, None) | (None, Some(k), None) | (None, None, Some(k)) => k,
            _ => return Err(req.fail(EINVAL, None, c"need exactly one of pod-name, ipv4, ipv6")),
        };
        let mut r = req.reply(cmd::MAP_GET)?;
        // By address: the datapath's own lock-free lookup. The node entry
        // (agent address) is control-plane data, read under the lock.
        let (found, node_name) = if key.ty() == attr::POD_NAME {
            let name = str_of(req, &key)?;
            let up = self.state.lock();
            match up.map().pod(name) {
                Some(p) => {
                    put_pod(&mut r, p)?;
                    if let Some(n) = up.map().node(p.node()) {
                        put_node(&mut r, n)?;
                    }
                    (true, None)
                }
                None => (false, None),
            }
        } else {
            let ip = ip_of(&key).ok_or_else(|| req.fail(EINVAL, Some(&key), c"bad address"))?;
            // Room for the node's name, made before the read section.
            let mut node_name = KVec::with_capacity(uapi::NAME_MAX_LEN, GFP_KERNEL)?;
            let g = Guard::new();
            let found = match self.state.peer_pod(&g, &ip) {
                Some(p) => {
                    // Writing into the preallocated reply does not sleep.
                    put_pod(&mut r, p)?;
                    node_name.extend_from_slice(p.node(), GFP_ATOMIC)?;
                    true
                }
                None => false,
            };
            drop(g);
            (found, Some(node_name))
        };
        if let Some(n) = node_name.filter(|_| found) {
            let up = self.state.lock();
            if let Some(n) = up.map().node(&n) {
                put_node(&mut r, n)?;
            }
        }
        self.state.count_lookup(found);
        if !found {
            return Err(req.fail(ENOENT, Some(&key), c"pod not found"));
        }
        r.send()
    }

    fn map_add(&self, req: &Request<'_>) -> Result {
        let pod_a = req.single(attr::POD)?;
        let node_a = req.single(attr::NODE)?;
        if pod_a.is_none() && node_a.is_none() {
            return Err(req.fail(EINVAL, None, c"need a pod or a node"));
        }
        let p = pod_a.as_ref().map(|a| parse_pod(req, a)).transpose()?;
        let n = node_a.as_ref().map(|a| parse_node(req, a)).transpose()?;
        let spec = p.as_ref().map(|p| p.spec());
        self.state
            .add(n.as_ref().map(|n| (n.name, n.addr)), spec.as_ref())
            .map_err(|e| match e {
                AddError::Node(e) => map_err(req, node_a.as_ref(), e),
                AddError::Pod(e) => map_err(req, pod_a.as_ref(), e),
            })
    }

    fn map_del(&self, req: &Request<'_>) -> Result {
        match (req.single(attr::POD_NAME)?, req.single(attr::NODE_NAME)?) {
            (Some(a), None) => {
                let name = str_of(req, &a)?;
                self.state
                    .del_pod(name)
                    .map_err(|e| map_err(req, Some(&a), e))
            }
            (None, Some(a)) => {
                let name = str_of(req, &a)?;
                self.state
                    .del_node(name)
                    .map_err(|e| map_err(req, Some(&a), e))
            }
            _ => Err(req.fail(EINVAL, None, c"need exactly one of pod-name, node-name")),
        }
    }

    fn map_stage(&self, req: &Request<'_>) -> Result {
        let begin = req.single(attr::BEGIN)?.is_some();
        // Parse everything before touching the staging: a malformed message
        // changes nothing... except that a refused entry drops the staged
        // table (all or nothing), handled in `State::stage`.
        self.state
            .stage(req.portid(), begin, |m, w, r| -> Result {
                for a in req.attrs() {
                    match a.ty() {
                        attr::NODE => {
                            let n = parse_node(req, &a)?;
                            m.add_node(n.name, n.addr, false)
                                .map_err(|e| map_err(req, Some(&a), e))?;
                        }
                        attr::POD => {
                            let p = parse_pod(req, &a)?;
                            m.add_pod(&p.spec(), false, w, r)
                                .map_err(|e| map_err(req, Some(&a), e))?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
            .map_err(|e| stage_err(req, e))
    }

    fn map_commit(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::MAP_COMMIT)?;
        let (gen, pods, nodes) = self
            .state
            .commit_staged(req.portid())
            .map_err(|e| match e {
                StageError::NotStaging => req.fail(EINVAL, None, c"no replacement staged"),
                StageError::Busy => {
                    req.fail(EBUSY, None, c"another mapping replacement is in progress")
                }
                StageError::NoMem => ENOMEM,
                StageError::Entry(e) => map_err(req, None, e),
            })?;
        r.put_u32(attr::POD_COUNT, count(pods))?;
        r.put_u32(attr::NODE_COUNT, count(nodes))?;
        r.put_u32(attr::GENERATION, gen)?;
        // The table is swapped whatever happens to the reply: a failed send
        // (receiver's buffer full) must not claim the commit failed.
        let _ = r.send();
        Ok(())
    }
}

impl Handler for Control {
    fn doit(&self, c: u8, req: &Request<'_>) -> Result {
        match c {
            cmd::MODE_GET => self.mode_get(req),
            cmd::MODE_SET => self.mode_set(req),
            cmd::STATUS_GET => self.status_get(req),
            cmd::MAP_GET => self.map_get(req),
            cmd::MAP_ADD => self.map_add(req),
            cmd::MAP_DEL => self.map_del(req),
            cmd::MAP_STAGE => self.map_stage(req),
            cmd::MAP_COMMIT => self.map_commit(req),
            cmd::NODE_LOCAL_SET => self.node_local_set(req),
            cmd::NODE_LOCAL_GET => self.node_local_get(req),
            cmd::PEER_SET => self.peer_set(req),
            cmd::PEER_DEL => self.peer_del(req),
            cmd::PEER_FAIL => self.peer_fail(req),
            cmd::FLOW_KEY_SET => self.flow_key_set(req),
            cmd::DRAIN => self.drain(req),
            cmd::CONFIG_SET => self.config_set(req),
            cmd::CONFIG_GET => self.config_get(req),
            cmd::SERVICE_CIDR_SET => self.cidr_set(req, Cidrs::Service),
            cmd::SERVICE_CIDR_GET => self.cidr_get(req, Cidrs::Service),
            cmd::POD_CIDR_SET => self.cidr_set(req, Cidrs::Pod),
            cmd::POD_CIDR_GET => self.cidr_get(req, Cidrs::Pod),
            _ => Err(eopnotsupp()),
        }
    }

    /// map-get dump: every node, then every pod, in load order. Cursor 0 is
    /// the next slab position; any committed change between rounds marks
    /// the dump interrupted (the generation is the dump's sequence).
    fn dumpit(&self, c: u8, dump: &mut Dump<'_>) -> Result {
        match c {
            cmd::MAP_GET => {}
            cmd::PEER_GET => return self.peer_dump(dump),
            cmd::FLOWS_GET => return self.flows_dump(dump),
            _ => return Err(eopnotsupp()),
        }
        let mut i = dump.cursor(0);
        let up = self.state.lock();
        let (m, gen) = (up.map(), up.generation());
        dump.set_seq(gen);
        let nodes = m.node_slots();
        loop {
            let more = if i < nodes {
                match m.node_at(i) {
                    Some(n) => dump.entry(cmd::MAP_GET, |w| {
                        put_node(w, n)?;
                        w.put_u32(attr::GENERATION, gen)
                    })?,
                    None => true,
                }
            } else if i - nodes < m.pod_slots() {
                match m.pod_at(i - nodes) {
                    Some(p) => dump.entry(cmd::MAP_GET, |w| {
                        put_pod(w, p)?;
                        w.put_u32(attr::GENERATION, gen)
                    })?,
                    None => true,
                }
            } else {
                break;
            };
            if !more {
                break;
            }
            i += 1;
        }
        drop(up);
        dump.set_cursor(0, i);
        Ok(())
    }
}

/// Released sockets drop their staged replacement.
pub(crate) struct StagingOwners {
    state: Arc<State>,
}

impl StagingOwners {
    pub(crate) fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

impl ReleaseHandler for StagingOwners {
    fn released(&self, portid: u32) {
        self.state.release_staging(portid);
    }
}
