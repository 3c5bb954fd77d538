// SPDX-License-Identifier: GPL-2.0
//! The `tlshub` generic netlink family: the whole control plane in one place
//! (as WireGuard's netlink.c). Described by `spec/tlshub.yaml`; numbers come
//! from `spec/uapi.rs`. Plain safe Rust over the `genl` wrapper.

use crate::genl::{eopnotsupp, AttrSet, Dump, FamilySpec, Handler, Kind, OpSpec, Request, Writer};
use crate::hub::{Hub, StageError};
use crate::mapping::{Builder, IpAddr, MapError, NodeAddr, NodeRef, PodRef, MAX_POD_IPS};
use crate::nlattr::Attr;
use crate::uapi::{self, attr, cmd, node, pod, stats};
use core::ffi::CStr;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

static POD_SET: AttrSet = AttrSet {
    max: pod::MAX,
    attrs: &[
        (pod::NAME, Kind::Str),
        (pod::NODE, Kind::Str),
        (pod::IPV4, Kind::U32),
        (pod::IPV6, Kind::Binary),
    ],
};

static NODE_SET: AttrSet = AttrSet {
    max: node::MAX,
    attrs: &[
        (node::NAME, Kind::Str),
        (node::IPV4, Kind::U32),
        (node::IPV6, Kind::Binary),
        (node::PORT, Kind::U16),
    ],
};

static STATS_SET: AttrSet = AttrSet {
    max: stats::MAX,
    attrs: &[
        (stats::LOOKUPS, Kind::U64),
        (stats::LOOKUP_MISSES, Kind::U64),
        (stats::MAP_UPDATES, Kind::U64),
    ],
};

static TOP_SET: AttrSet = AttrSet {
    max: attr::MAX,
    attrs: &[
        (attr::MODE, Kind::U32),
        (attr::VERSION, Kind::Str),
        (attr::POD, Kind::Nest(&POD_SET)),
        (attr::NODE, Kind::Nest(&NODE_SET)),
        (attr::POD_COUNT, Kind::U32),
        (attr::NODE_COUNT, Kind::U32),
        (attr::GENERATION, Kind::U32),
        (attr::BEGIN, Kind::Flag),
        (attr::POD_NAME, Kind::Str),
        (attr::NODE_NAME, Kind::Str),
        (attr::IPV4, Kind::U32),
        (attr::IPV6, Kind::Binary),
        (attr::STATS, Kind::Nest(&STATS_SET)),
    ],
};

const fn op(cmd: u8, admin: bool, doit: bool, dump: bool, request: &'static [u16]) -> OpSpec {
    OpSpec {
        cmd,
        admin,
        doit,
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
        op(cmd::MODE_GET, false, true, false, &[]),
        op(cmd::MODE_SET, true, true, false, &[attr::MODE]),
        op(cmd::STATUS_GET, false, true, false, &[]),
        op(
            cmd::MAP_GET,
            false,
            true,
            true,
            &[attr::POD_NAME, attr::IPV4, attr::IPV6],
        ),
        op(cmd::MAP_ADD, true, true, false, &[attr::POD, attr::NODE]),
        op(
            cmd::MAP_DEL,
            true,
            true,
            false,
            &[attr::POD_NAME, attr::NODE_NAME],
        ),
        op(
            cmd::MAP_STAGE,
            true,
            true,
            false,
            &[attr::BEGIN, attr::POD, attr::NODE],
        ),
        op(cmd::MAP_COMMIT, true, true, false, &[]),
    ],
};

/// Handles the family's requests against the node's [`Hub`].
pub(crate) struct Control {
    pub(crate) hub: Pin<KBox<Hub>>,
}

/// A pod as carried in a `pod` nest.
struct PodMsg<'a> {
    name: &'a [u8],
    node: &'a [u8],
    ips: [IpAddr; MAX_POD_IPS],
    n_ips: usize,
}

impl PodMsg<'_> {
    fn ips(&self) -> &[IpAddr] {
        self.ips.get(..self.n_ips).unwrap_or(&[])
    }
}

/// A node as carried in a `node` nest.
struct NodeMsg<'a> {
    name: &'a [u8],
    addr: Option<NodeAddr>,
}

/// A name attribute: a string of at most 253 bytes (`msg` names it).
fn name_of<'a>(req: &Request<'_>, a: Attr<'a>, msg: &'static CStr) -> Result<&'a [u8]> {
    match a.str_bytes() {
        Ok(s) if s.len() <= uapi::NAME_MAX_LEN => Ok(s),
        _ => Err(req.fail(EINVAL, Some(&a), msg)),
    }
}

fn parse_pod<'a>(req: &Request<'_>, nest: &Attr<'a>) -> Result<PodMsg<'a>> {
    let (mut name, mut node) = (None, None);
    let mut ips = [IpAddr::v4([0; 4]); MAX_POD_IPS];
    let mut n_ips = 0;
    for a in nest.nested() {
        let ip = match a.ty() {
            pod::NAME => {
                name = Some(name_of(req, a, c"pod name: not a string of at most 253 bytes")?);
                continue;
            }
            pod::NODE => {
                node = Some(name_of(req, a, c"pod node: not a string of at most 253 bytes")?);
                continue;
            }
            pod::IPV4 => IpAddr::v4(
                a.array()
                    .map_err(|e| req.fail(e, Some(&a), c"pod ipv4: must be 4 bytes"))?,
            ),
            pod::IPV6 => IpAddr::v6(
                a.array()
                    .map_err(|e| req.fail(e, Some(&a), c"pod ipv6: must be 16 bytes"))?,
            ),
            _ => continue,
        };
        let slot = ips
            .get_mut(n_ips)
            .ok_or_else(|| req.fail(EINVAL, Some(&a), c"pod: more than 8 IP addresses"))?;
        *slot = ip;
        n_ips += 1;
    }
    Ok(PodMsg {
        name: name.ok_or_else(|| req.fail(EINVAL, Some(nest), c"pod: name missing"))?,
        node: node.ok_or_else(|| req.fail(EINVAL, Some(nest), c"pod: node missing"))?,
        ips,
        n_ips,
    })
}

fn parse_node<'a>(req: &Request<'_>, nest: &Attr<'a>) -> Result<NodeMsg<'a>> {
    let mut name = None;
    let mut ip = None;
    let mut port = None;
    for a in nest.nested() {
        match a.ty() {
            node::NAME => {
                name = Some(name_of(
                    req,
                    a,
                    c"node name: not a string of at most 253 bytes",
                )?)
            }
            node::IPV4 | node::IPV6 if ip.is_some() => {
                return Err(req.fail(EINVAL, Some(&a), c"node: more than one address"))
            }
            node::IPV4 => {
                ip = Some(IpAddr::v4(a.array().map_err(|e| {
                    req.fail(e, Some(&a), c"node ipv4: must be 4 bytes")
                })?))
            }
            node::IPV6 => {
                ip = Some(IpAddr::v6(a.array().map_err(|e| {
                    req.fail(e, Some(&a), c"node ipv6: must be 16 bytes")
                })?))
            }
            node::PORT => {
                let p = a
                    .u16()
                    .map_err(|e| req.fail(e, Some(&a), c"node port: must be 2 bytes"))?;
                if p == 0 {
                    return Err(req.fail(EINVAL, Some(&a), c"node port: must not be 0"));
                }
                port = Some(p);
            }
            _ => {}
        }
    }
    let name = name.ok_or_else(|| req.fail(EINVAL, Some(nest), c"node: name missing"))?;
    let addr = match (ip, port) {
        (Some(ip), port) => Some(NodeAddr {
            ip,
            port: port.unwrap_or(uapi::DEFAULT_AGENT_PORT),
        }),
        (None, None) => None,
        (None, Some(_)) => return Err(req.fail(EINVAL, Some(nest), c"node: port without address")),
    };
    Ok(NodeMsg { name, addr })
}


/// Report a mapping error about `at` (the attribute that caused it).
fn map_err(req: &Request<'_>, at: Option<&Attr<'_>>, e: MapError) -> Error {
    let msg: &'static CStr = match e {
        MapError::InvalidName => c"invalid name (DNS-1123 subdomain, at most 253 characters)",
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

fn put_node(w: &mut Writer, n: &NodeRef<'_>) -> Result {
    w.nest(attr::NODE, |w| {
        w.put_str(node::NAME, n.name)?;
        if let Some(a) = n.addr {
            match (a.ip.as_v4(), a.ip.as_v6()) {
                (Some(v4), _) => w.put_bytes(node::IPV4, &v4)?,
                (_, Some(v6)) => w.put_bytes(node::IPV6, &v6)?,
                _ => {}
            }
            w.put_u16(node::PORT, a.port)?;
        }
        Ok(())
    })
}

fn put_pod(w: &mut Writer, p: &PodRef<'_>) -> Result {
    w.nest(attr::POD, |w| {
        w.put_str(pod::NAME, p.name)?;
        w.put_str(pod::NODE, p.node.name)?;
        for ip in p.ips() {
            match (ip.as_v4(), ip.as_v6()) {
                (Some(v4), _) => w.put_bytes(pod::IPV4, &v4)?,
                (_, Some(v6)) => w.put_bytes(pod::IPV6, &v6)?,
                _ => {}
            }
        }
        Ok(())
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Control {
    fn mode_get(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::MODE_GET)?;
        r.put_u32(attr::MODE, self.hub.mode())?;
        r.send()
    }

    fn mode_set(&self, req: &Request<'_>) -> Result {
        let a = req
            .attr(attr::MODE)
            .ok_or_else(|| req.missing(attr::MODE, c"mode missing"))?;
        let mode = a
            .u32()
            .map_err(|e| req.fail(e, Some(&a), c"mode: must be 4 bytes"))?;
        if mode > uapi::mode::MAX {
            return Err(req.fail(
                EINVAL,
                Some(&a),
                c"mode: out of range (tlshub=0, openssl=1, boringssl=2)",
            ));
        }
        self.hub.set_mode(mode);
        Ok(())
    }

    fn status_get(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::STATUS_GET)?;
        r.put_str(attr::VERSION, crate::VERSION.as_bytes())?;
        r.put_u32(attr::MODE, self.hub.mode())?;
        let (pods, nodes, gen) = self
            .hub
            .with_table(|t| (count(t.pod_count()), count(t.node_count()), t.generation()));
        r.put_u32(attr::POD_COUNT, pods)?;
        r.put_u32(attr::NODE_COUNT, nodes)?;
        r.put_u32(attr::GENERATION, gen)?;
        let s = &self.hub.stats;
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
            )
        })?;
        r.send()
    }

    fn map_get(&self, req: &Request<'_>) -> Result {
        let keys = [attr::POD_NAME, attr::IPV4, attr::IPV6];
        let mut sel = req.attrs().filter(|a| keys.contains(&a.ty()));
        let (Some(key), None) = (sel.next(), sel.next()) else {
            return Err(req.fail(EINVAL, None, c"need exactly one of pod-name, ipv4, ipv6"));
        };
        let ip = match key.ty() {
            attr::IPV4 => {
                Some(IpAddr::v4(key.array().map_err(|e| {
                    req.fail(e, Some(&key), c"ipv4: must be 4 bytes")
                })?))
            }
            attr::IPV6 => {
                Some(IpAddr::v6(key.array().map_err(|e| {
                    req.fail(e, Some(&key), c"ipv6: must be 16 bytes")
                })?))
            }
            _ => None,
        };
        let name = match ip {
            None => name_of(req, key, c"pod-name: not a string of at most 253 bytes")?,
            Some(_) => &[],
        };
        // Allocate before entering the RCU section: filling does not sleep.
        let mut r = req.reply(cmd::MAP_GET)?;
        let found = self.hub.with_table(|t| {
            let p = match &ip {
                Some(ip) => t.pod_by_ip(ip),
                None => t.pod_by_name(name),
            };
            p.map(|p| put_pod(&mut r, &p).and_then(|()| put_node(&mut r, &p.node)))
        });
        self.hub.count_lookup(found.is_some());
        match found {
            None => Err(req.fail(ENOENT, Some(&key), c"pod not found")),
            Some(res) => {
                res?;
                r.send()
            }
        }
    }

    fn map_add(&self, req: &Request<'_>) -> Result {
        let pod_a = req.attr(attr::POD);
        let node_a = req.attr(attr::NODE);
        if pod_a.is_none() && node_a.is_none() {
            return Err(req.fail(EINVAL, None, c"need a pod or a node"));
        }
        let p = pod_a.as_ref().map(|a| parse_pod(req, a)).transpose()?;
        let n = node_a.as_ref().map(|a| parse_node(req, a)).transpose()?;
        self.hub.modify(|old| {
            let mut b = Builder::copy_of(old, p.as_ref().map(|p| p.name), None)
                .map_err(|e| map_err(req, None, e))?;
            if let Some(n) = &n {
                b.add_node(n.name, n.addr, true)
                    .map_err(|e| map_err(req, node_a.as_ref(), e))?;
            }
            if let Some(p) = &p {
                b.add_pod(p.name, p.node, p.ips())
                    .map_err(|e| map_err(req, pod_a.as_ref(), e))?;
            }
            Ok(b)
        })
    }

    fn map_del(&self, req: &Request<'_>) -> Result {
        match (req.attr(attr::POD_NAME), req.attr(attr::NODE_NAME)) {
            (Some(a), None) => {
                let name = name_of(req, a, c"pod-name: not a string of at most 253 bytes")?;
                self.hub
                    .modify(|old| {
                        old.pod_by_name(name).ok_or(MapError::NoSuchPod)?;
                        Builder::copy_of(old, Some(name), None)
                    })
                    .map_err(|e| map_err(req, Some(&a), e))
            }
            (None, Some(a)) => {
                let name = name_of(req, a, c"node-name: not a string of at most 253 bytes")?;
                self.hub
                    .modify(|old| {
                        old.node_by_name(name).ok_or(MapError::NoSuchNode)?;
                        Builder::copy_of(old, None, Some(name))
                    })
                    .map_err(|e| map_err(req, Some(&a), e))
            }
            _ => Err(req.fail(EINVAL, None, c"need exactly one of pod-name, node-name")),
        }
    }

    fn map_stage(&self, req: &Request<'_>) -> Result {
        let begin = match req.attr(attr::BEGIN) {
            None => false,
            Some(a) => a
                .flag()
                .map_err(|e| req.fail(e, Some(&a), c"begin: a flag carries no payload"))?,
        };
        // The replacement belongs to the sending socket: its slot holds the
        // staging ticket, and closing the socket drops what it staged.
        let slot = req.sock_slot()?;
        let res = self.hub.stage(slot.get(), begin, |b| -> Result {
            for a in req.attrs() {
                match a.ty() {
                    attr::NODE => {
                        let n = parse_node(req, &a)?;
                        b.add_node(n.name, n.addr, false)
                            .map_err(|e| map_err(req, Some(&a), e))?;
                    }
                    attr::POD => {
                        let p = parse_pod(req, &a)?;
                        b.add_pod(p.name, p.node, p.ips())
                            .map_err(|e| map_err(req, Some(&a), e))?;
                    }
                    _ => {}
                }
            }
            Ok(())
        });
        match res {
            Ok(ticket) => {
                slot.set(ticket);
                Ok(())
            }
            Err(StageError::NotStaging) => {
                Err(req.fail(EINVAL, None, c"no replacement staged: send begin first"))
            }
            Err(StageError::Busy) => {
                Err(req.fail(EBUSY, None, c"another mapping replacement is in progress"))
            }
            Err(StageError::Entry(e)) => Err(e),
        }
    }

    fn map_commit(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::MAP_COMMIT)?;
        let (gen, pods, nodes) = self.hub.commit_staged(req.sock_slot()?.get()).map_err(|e| match e {
            StageError::NotStaging => req.fail(EINVAL, None, c"no replacement staged"),
            StageError::Busy => {
                req.fail(EBUSY, None, c"another mapping replacement is in progress")
            }
            StageError::Entry(e) => map_err(req, None, e),
        })?;
        r.put_u32(attr::POD_COUNT, count(pods))?;
        r.put_u32(attr::NODE_COUNT, count(nodes))?;
        r.put_u32(attr::GENERATION, gen)?;
        r.send()
    }
}

impl Handler for Control {
    /// A socket closed: drop the replacement it staged and did not commit.
    fn sock_released(&self, ticket: u64) {
        if ticket != 0 {
            self.hub.release_staging(ticket);
        }
    }

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
            _ => Err(eopnotsupp()),
        }
    }

    /// map-get dump: every node, then every pod, in load order. Cursor 0 is
    /// the next entry; a table swap between rounds marks the dump interrupted.
    fn dumpit(&self, c: u8, dump: &mut Dump<'_>) -> Result {
        if c != cmd::MAP_GET {
            return Err(eopnotsupp());
        }
        let mut i = dump.cursor(0);
        self.hub.with_table(|t| -> Result {
            dump.set_seq(t.generation().max(1));
            let gen = t.generation();
            loop {
                let more = if let Some(n) = t.node(i) {
                    dump.entry(cmd::MAP_GET, |w| {
                        put_node(w, &n)?;
                        w.put_u32(attr::GENERATION, gen)
                    })?
                } else if let Some(p) = t.pod(i - t.node_count()) {
                    dump.entry(cmd::MAP_GET, |w| {
                        put_pod(w, &p)?;
                        w.put_u32(attr::GENERATION, gen)
                    })?
                } else {
                    return Ok(());
                };
                if !more {
                    return Ok(());
                }
                i += 1;
            }
        })?;
        dump.set_cursor(0, i);
        Ok(())
    }
}
