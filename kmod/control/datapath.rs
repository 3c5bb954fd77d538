// SPDX-License-Identifier: GPL-2.0
//! Control-plane commands of the datapath (part of the `tlshub` family,
//! `spec/tlshub.yaml`): the nodes this kernel serves, peer node-pair
//! secrets, cipher and key timeout, the flow list, and the datapath
//! counters in `status-get`. The secret is write-only: no reply carries it,
//! and the request buffer is the core's (freed with the message).
//!
//! The key provider's side (`peer-set` with a lifetime, `peer-fail`,
//! `peer-get`) works on the datapath's `Peers` under its lock, and wakes or
//! resets the flows it hands back after unlocking.

use super::{count, ip_of, put_ip, str_of, Control};
use crate::datapath::services::{Cidr, CidrSet};
use crate::datapath::{self, flow, Cidrs};
use crate::keys::peers::{FlowSetError, FlowTuple, PeerKey, PeerState, SetError};
use crate::keys::schedule::NodePairSecret;
use crate::state::ident;
use crate::sys::genl::{Dump, Request, Writer};
use crate::sys::nlattr::Attr;
use crate::sys::rcu::Guard;
use crate::sys::workq;
use crate::uapi::{self, attr, cidr, cmd, peer, stats};
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// Flows per dump round (each message is small).
const FLOWS_PER_ROUND: usize = 32;

fn node_name<'a>(req: &Request<'_>, a: &Attr<'a>) -> Result<&'a [u8]> {
    let n = str_of(req, a)?;
    if !ident::valid_node_name(n) {
        return Err(req.fail(EINVAL, Some(a), c"invalid node name"));
    }
    Ok(n)
}

/// The local node of a pair-secret command: a node this kernel serves,
/// other than the peer.
fn pair_local<'a>(c: &Control, req: &Request<'_>, a: &Attr<'a>, peer: &[u8]) -> Result<&'a [u8]> {
    let l = node_name(req, a)?;
    if l == peer {
        return Err(req.fail(EINVAL, Some(a), c"local: the same node as the peer"));
    }
    let g = Guard::new();
    if !c.dp.local(&g).contains(l) {
        return Err(req.fail(EINVAL, Some(a), c"local: not a node this kernel serves"));
    }
    Ok(l)
}

/// Every `ty` nest of the request (at most `max`, none twice).
fn cidrs_of(req: &Request<'_>, ty: u16, max: usize) -> Result<KVec<Cidr>> {
    let mut list: KVec<Cidr> = KVec::new();
    for a in req.attrs() {
        if a.ty() != ty {
            continue;
        }
        let c = cidr_of(req, &a)?;
        if list.contains(&c) {
            return Err(req.fail(EINVAL, Some(&a), c"CIDR given twice"));
        }
        if list.len() == max {
            return Err(req.fail(E2BIG, Some(&a), c"too many CIDRs"));
        }
        list.push(c, GFP_KERNEL)?;
    }
    Ok(list)
}

/// `set` as `ty` nests.
fn put_cidrs(w: &mut Writer, ty: u16, set: &CidrSet) -> Result {
    for c in set.iter() {
        w.nest(ty, |w| {
            put_ip(w, cidr::IPV4, cidr::IPV6, c.ip())?;
            w.put_u8(cidr::PREFIX_LEN, c.len())
        })?;
    }
    Ok(())
}

/// One CIDR nest: exactly one address and a prefix length that fits it,
/// no host bit set.
fn cidr_of(req: &Request<'_>, a: &Attr<'_>) -> Result<Cidr> {
    let mut ip = None;
    let mut len = None;
    for x in a.nested() {
        match x.ty() {
            cidr::IPV4 | cidr::IPV6 if ip.is_none() => {
                ip = Some(
                    ip_of(&x).ok_or_else(|| req.fail(EINVAL, Some(&x), c"CIDR: bad address"))?,
                )
            }
            cidr::PREFIX_LEN if len.is_none() => {
                len = Some(
                    x.u8()
                        .map_err(|e| req.fail(e, Some(&x), c"prefix-len: must be 1 byte"))?,
                )
            }
            cidr::IPV4 | cidr::IPV6 | cidr::PREFIX_LEN => {
                return Err(req.fail(EINVAL, Some(&x), c"CIDR: one address, one prefix-len"))
            }
            _ => {}
        }
    }
    let ip = ip.ok_or_else(|| req.fail(EINVAL, Some(a), c"CIDR: address missing"))?;
    let len = len.ok_or_else(|| req.fail(EINVAL, Some(a), c"CIDR: prefix-len missing"))?;
    Cidr::new(ip, len).ok_or_else(|| {
        req.fail(
            EINVAL,
            Some(a),
            c"CIDR: prefix-len too long for the address, or host bits set",
        )
    })
}

impl Control {
    pub(super) fn node_local_set(&self, req: &Request<'_>) -> Result {
        if req.single(attr::LOCAL_SET)?.is_none() {
            return Err(req.missing(attr::LOCAL_SET, c"local-set flag missing"));
        }
        let mut names: KVec<&[u8]> = KVec::new();
        for a in req.attrs() {
            if a.ty() != attr::LOCAL_NODE {
                continue;
            }
            let n = node_name(req, &a)?;
            if names.contains(&n) {
                return Err(req.fail(EINVAL, Some(&a), c"node given twice"));
            }
            if names.len() == uapi::MAX_LOCAL_NODES {
                return Err(req.fail(E2BIG, Some(&a), c"too many local nodes"));
            }
            names.push(n, GFP_KERNEL)?;
        }
        self.dp.set_local(&names)
    }

    /// `service-cidr-set` / `pod-cidr-set`: every CIDR checked before
    /// any is set.
    pub(super) fn cidr_set(&self, req: &Request<'_>, which: Cidrs) -> Result {
        let (flag, ty, missing) = match which {
            Cidrs::Service => (
                attr::SERVICE_SET,
                attr::SERVICE_CIDR,
                c"service-set flag missing",
            ),
            Cidrs::Pod => (attr::POD_SET, attr::POD_CIDR, c"pod-set flag missing"),
        };
        if req.single(flag)?.is_none() {
            return Err(req.missing(flag, missing));
        }
        let list = cidrs_of(req, ty, which.max())?;
        self.dp.set_cidrs(which, list)
    }

    /// `service-cidr-get` / `pod-cidr-get`.
    pub(super) fn cidr_get(&self, req: &Request<'_>, which: Cidrs) -> Result {
        let (cmd, ty) = match which {
            Cidrs::Service => (cmd::SERVICE_CIDR_GET, attr::SERVICE_CIDR),
            Cidrs::Pod => (cmd::POD_CIDR_GET, attr::POD_CIDR),
        };
        let mut r = req.reply(cmd)?;
        let g = Guard::new();
        put_cidrs(&mut r, ty, self.dp.cidrs(&g, which))?;
        drop(g);
        r.send()
    }

    pub(super) fn node_local_get(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::NODE_LOCAL_GET)?;
        put_local(&mut r, &self.dp)?;
        r.send()
    }

    pub(super) fn peer_set(&self, req: &Request<'_>) -> Result {
        let a = req
            .single(attr::PEER)?
            .ok_or_else(|| req.missing(attr::PEER, c"peer missing"))?;
        let mut name = None;
        let mut local = None;
        let mut psk = None;
        let mut epoch = None;
        let mut lifetime = None;
        for x in a.nested() {
            match x.ty() {
                peer::NAME if name.is_none() => name = Some(node_name(req, &x)?),
                peer::LOCAL if local.is_none() => local = Some(x),
                peer::PSK if psk.is_none() => {
                    // The message is wiped once we are done (the core
                    // would echo it in an error ack, then free it unwiped).
                    req.wipe_after(&x);
                    psk = Some(x.data());
                }
                peer::EPOCH if epoch.is_none() => {
                    let e = x
                        .array::<8>()
                        .map_err(|e| req.fail(e, Some(&x), c"epoch: must be 8 bytes"))?;
                    epoch = Some(u64::from_ne_bytes(e));
                }
                peer::LIFETIME_MS if lifetime.is_none() => {
                    let ms = x
                        .u32()
                        .map_err(|e| req.fail(e, Some(&x), c"lifetime-ms: must be 4 bytes"))?;
                    lifetime = Some(ms);
                }
                peer::NAME | peer::LOCAL | peer::PSK | peer::EPOCH | peer::LIFETIME_MS => {
                    return Err(req.fail(EINVAL, Some(&x), c"duplicate attribute"))
                }
                _ => {}
            }
        }
        let name =
            name.ok_or_else(|| req.missing_in(Some(&a), peer::NAME, c"peer name missing"))?;
        let local = match &local {
            Some(x) => Some(pair_local(self, req, x, name)?),
            None => None,
        };
        let key = PeerKey { name, local };
        let psk = psk.ok_or_else(|| req.missing_in(Some(&a), peer::PSK, c"psk missing"))?;
        if psk.len() != uapi::PSK_LEN {
            return Err(req.fail(EINVAL, Some(&a), c"psk: must be 32 bytes"));
        }
        // 0: never expires, as when absent.
        let res = match lifetime.filter(|&ms| ms != 0) {
            None => self.dp.set_secret(key, psk, epoch)?,
            Some(ms) => self.set_expiring(key, psk, epoch, workq::ms_to_jiffies(ms))?,
        };
        let epoch = match res {
            Ok(e) => e,
            Err(SetError::EpochConflict) => {
                return Err(req.fail(
                    EEXIST,
                    Some(&a),
                    c"a different secret (or an expired one) has this epoch",
                ))
            }
            Err(SetError::EpochOld) => {
                return Err(req.fail(
                    EINVAL,
                    Some(&a),
                    c"epoch older than the current (or a deleted) one",
                ))
            }
        };
        let mut r = req.reply(cmd::PEER_SET)?;
        r.nest(attr::PEER, |w| {
            w.put_str(peer::NAME, name)?;
            if let Some(l) = local {
                w.put_str(peer::LOCAL, l)?;
            }
            w.put_u64(peer::EPOCH, epoch, peer::PAD)
        })?;
        r.send()
    }

    /// `peer-set` with a lifetime (in jiffies): install the secret and key
    /// the flows that waited for it (as `Datapath::set_secret`).
    fn set_expiring(
        &self,
        key: PeerKey<'_>,
        psk: &[u8],
        epoch: Option<u64>,
        lifetime: u64,
    ) -> Result<core::result::Result<u64, SetError>> {
        let mut woken = KVec::new();
        let res = self.dp.update_peers(|peers| {
            let epoch = match epoch {
                Some(e) => e,
                None => peers.next_epoch(key),
            };
            let secret = NodePairSecret::from_slice(psk, epoch).ok_or(EINVAL)?;
            peers.set_with(key, &secret, Some(lifetime), &mut woken)
        });
        // The secret and its PRK passed through the frames below (L2).
        crate::keys::schedule::burn_stack();
        let res = res?;
        for f in woken {
            self.dp.kick(&f);
        }
        Ok(res)
    }

    /// `peer-fail`: the key provider cannot get a secret for a peer. Every
    /// input is checked before anything changes.
    pub(super) fn peer_fail(&self, req: &Request<'_>) -> Result {
        let a = req
            .single(attr::PEER)?
            .ok_or_else(|| req.missing(attr::PEER, c"peer missing"))?;
        let mut name = None;
        let mut local = None;
        let mut error = None;
        for x in a.nested() {
            match x.ty() {
                peer::NAME if name.is_none() => name = Some(node_name(req, &x)?),
                peer::LOCAL if local.is_none() => local = Some(x),
                peer::ERROR if error.is_none() => {
                    let e = str_of(req, &x)?;
                    if e.len() > uapi::ERROR_MAX_LEN {
                        return Err(req.fail(EINVAL, Some(&x), c"error: longer than 128 bytes"));
                    }
                    if e.is_empty() {
                        return Err(req.fail(EINVAL, Some(&x), c"error: empty"));
                    }
                    error = Some(e);
                }
                peer::NAME | peer::LOCAL | peer::ERROR => {
                    return Err(req.fail(EINVAL, Some(&x), c"duplicate attribute"))
                }
                _ => {}
            }
        }
        let name =
            name.ok_or_else(|| req.missing_in(Some(&a), peer::NAME, c"peer name missing"))?;
        let local = match &local {
            Some(x) => Some(pair_local(self, req, x, name)?),
            None => None,
        };
        let error = error.ok_or_else(|| req.missing_in(Some(&a), peer::ERROR, c"error missing"))?;
        let mut refused = KVec::new();
        self.dp
            .update_peers(|p| p.fail(PeerKey { name, local }, error, &mut refused))?;
        for f in refused {
            // A flow is parked by its worker, which holds the flow's lock
            // until it has marked the flow waiting: taking the lock once
            // orders the reset after that mark, so it cannot be undone.
            drop(f.inner.lock());
            self.dp.fail(&f, flow::Reason::KeyRefused);
        }
        Ok(())
    }

    /// `flow-key-set`: a waiting flow's own secret (openssl/boringssl
    /// modes), named by this end's view of its tuple. Every input is
    /// checked before anything changes.
    pub(super) fn flow_key_set(&self, req: &Request<'_>) -> Result {
        use uapi::flow as fa;
        let a = req
            .single(attr::FLOW)?
            .ok_or_else(|| req.missing(attr::FLOW, c"flow missing"))?;
        let (mut lip, mut lport, mut rip, mut rport) = (None, None, None, None);
        let (mut secret, mut cisn, mut sisn) = (None, None, None);
        for x in a.nested() {
            let dup = match x.ty() {
                fa::LOCAL_IPV4 | fa::LOCAL_IPV6 => lip.replace(x).is_some(),
                fa::REMOTE_IPV4 | fa::REMOTE_IPV6 => rip.replace(x).is_some(),
                fa::LOCAL_PORT => lport.replace(x).is_some(),
                fa::REMOTE_PORT => rport.replace(x).is_some(),
                fa::SECRET => {
                    req.wipe_after(&x);
                    secret.replace(x).is_some()
                }
                fa::CLIENT_ISN => cisn.replace(x).is_some(),
                fa::SERVER_ISN => sisn.replace(x).is_some(),
                _ => false,
            };
            if dup {
                return Err(req.fail(EINVAL, Some(&x), c"duplicate attribute"));
            }
        }
        let nest = Some(&a);
        let lip =
            lip.ok_or_else(|| req.missing_in(nest, fa::LOCAL_IPV4, c"local address missing"))?;
        let rip =
            rip.ok_or_else(|| req.missing_in(nest, fa::REMOTE_IPV4, c"remote address missing"))?;
        let lport =
            lport.ok_or_else(|| req.missing_in(nest, fa::LOCAL_PORT, c"local-port missing"))?;
        let rport =
            rport.ok_or_else(|| req.missing_in(nest, fa::REMOTE_PORT, c"remote-port missing"))?;
        let secret = secret.ok_or_else(|| req.missing_in(nest, fa::SECRET, c"secret missing"))?;
        let ip = |x: &Attr<'_>| ip_of(x).ok_or_else(|| req.fail(EINVAL, Some(x), c"bad address"));
        let (local_ip, remote_ip) = (ip(&lip)?, ip(&rip)?);
        if local_ip.as_v4().is_some() != remote_ip.as_v4().is_some() {
            return Err(req.fail(
                EINVAL,
                Some(&rip),
                c"local and remote address families differ",
            ));
        }
        let port = |x: &Attr<'_>| {
            x.u16()
                .map_err(|e| req.fail(e, Some(x), c"port: must be 2 bytes"))
        };
        let isn = |x: &Attr<'_>| {
            x.u32()
                .map_err(|e| req.fail(e, Some(x), c"isn: must be 4 bytes"))
        };
        let isns = match (cisn, sisn) {
            (None, None) => None,
            (Some(c), Some(s)) => Some((isn(&c)?, isn(&s)?)),
            (Some(x), None) | (None, Some(x)) => {
                return Err(req.fail(EINVAL, Some(&x), c"client-isn and server-isn go together"))
            }
        };
        let t = FlowTuple {
            local_ip,
            local_port: port(&lport)?,
            remote_ip,
            remote_port: port(&rport)?,
            isns,
        };
        match self.dp.set_flow_secret(&t, secret.data())? {
            Ok(()) => Ok(()),
            Err(FlowSetError::NotWaiting) => Err(req.fail(
                ENOENT,
                nest,
                c"no flow with this tuple waits for a key of its own",
            )),
            Err(FlowSetError::Already) => {
                Err(req.fail(EEXIST, nest, c"this flow has its secret already"))
            }
        }
    }

    /// `drain`: see [`datapath::Datapath::drain`]. Logs what still holds
    /// the module (calls inside kTLS that entered through the gate, sockets
    /// being released): `rmmod` succeeds once they are gone.
    pub(super) fn drain(&self, _req: &Request<'_>) -> Result {
        let refs = self.dp.drain();
        if refs < 0 {
            // A reference dropped twice: `rmmod` would hit BUG_ON.
            pr_err!(
                "drained; module reference count {} (underflow): do not unload\n",
                refs
            );
        } else {
            pr_info!("drained; module references left: {}\n", refs);
        }
        Ok(())
    }

    pub(super) fn peer_del(&self, req: &Request<'_>) -> Result {
        let a = req
            .single(attr::NODE_NAME)?
            .ok_or_else(|| req.missing(attr::NODE_NAME, c"node-name missing"))?;
        let n = node_name(req, &a)?;
        let local = match req.single(attr::LOCAL_NODE)? {
            Some(x) => Some(pair_local(self, req, &x, n)?),
            None => None,
        };
        if !self.dp.del_secret(PeerKey { name: n, local })? {
            return Err(req.fail(ENOENT, Some(&a), c"no secret for this node (pair)"));
        }
        Ok(())
    }

    pub(super) fn config_set(&self, req: &Request<'_>) -> Result {
        let c = req.single(attr::CIPHER)?;
        let t = req.single(attr::KEY_TIMEOUT_MS)?;
        if c.is_none() && t.is_none() {
            return Err(req.fail(EINVAL, None, c"nothing to set: cipher or key-timeout-ms"));
        }
        // Validate both before changing either.
        let cipher = match &c {
            Some(a) => {
                let v = a
                    .u32()
                    .map_err(|e| req.fail(e, Some(a), c"cipher: must be 4 bytes"))?;
                if v == 0 || v > uapi::cipher::MAX {
                    return Err(req.fail(ERANGE, Some(a), c"cipher: unknown"));
                }
                Some(v)
            }
            None => None,
        };
        let timeout = match &t {
            Some(a) => {
                let v = a
                    .u32()
                    .map_err(|e| req.fail(e, Some(a), c"key-timeout-ms: must be 4 bytes"))?;
                if !(100..=600_000).contains(&v) {
                    return Err(req.fail(ERANGE, Some(a), c"key-timeout-ms: 100..600000"));
                }
                Some(v)
            }
            None => None,
        };
        if let Some(v) = cipher {
            self.dp.set_cipher(v)?;
        }
        if let Some(v) = timeout {
            self.dp.set_key_timeout_ms(v);
        }
        Ok(())
    }

    pub(super) fn config_get(&self, req: &Request<'_>) -> Result {
        let mut r = req.reply(cmd::CONFIG_GET)?;
        r.put_u32(attr::CIPHER, self.dp.cipher())?;
        r.put_u32(attr::KEY_TIMEOUT_MS, self.dp.key_timeout_ms())?;
        r.send()
    }

    /// The datapath's part of `status-get`.
    pub(super) fn put_datapath_status(&self, w: &mut Writer) -> Result {
        w.put_u32(attr::CIPHER, self.dp.cipher())?;
        w.put_u32(attr::KEY_TIMEOUT_MS, self.dp.key_timeout_ms())?;
        put_local(w, &self.dp)
    }

    /// The datapath counters, inside the `stats` nest.
    pub(super) fn put_datapath_stats(&self, w: &mut Writer) -> Result {
        let c = &self.dp.counters;
        let all = [
            (stats::FLOWS_SEEN, &c.seen),
            (stats::FLOWS_SECURED, &c.secured),
            (stats::BYPASS_LOCAL_NOT_POD, &c.bypass_local_not_pod),
            (stats::BYPASS_REMOTE_NOT_POD, &c.bypass_remote_not_pod),
            (stats::BYPASS_SAME_NODE, &c.bypass_same_node),
            (stats::KEY_WAITS, &c.key_waits),
            (stats::KEY_REQUESTS, &c.key_requests),
            (stats::INSTALL_FAILURES, &c.install_failures),
            (stats::RESET_KEY_TIMEOUT, &c.reset_key_timeout),
            (stats::RESET_INSTALL, &c.reset_install),
            (stats::RESET_STALE_SENDER, &c.reset_stale_sender),
            (stats::RESET_UNSUPPORTED, &c.reset_unsupported),
            (stats::RESET_UNLOAD, &c.reset_unload),
            (stats::FLOWS_TRACKED, &c.tracked),
            (stats::GUARD_DROPS, &c.guard_drops),
            (stats::RESET_GUARD, &c.reset_guard),
            (stats::RESET_KEY_REFUSED, &c.reset_key_refused),
            (stats::KEY_RESENDS, &c.key_resends),
            (stats::GUARD_HOLDS, &c.guard_holds),
            (stats::RESET_KEY_REPEAT, &c.reset_key_repeat),
            (stats::REPEAT_WINDOW_FULL, &c.repeat_window_full),
            (stats::RESET_KEY_EPOCH, &c.reset_key_epoch),
            (stats::FLOWS_SERVICE, &c.flows_service),
            (stats::SERVICE_SECURED, &c.service_secured),
            (stats::BYPASS_SERVICE, &c.bypass_service),
            (stats::RESET_SERVICE, &c.reset_service),
            (stats::RESET_IDENTITY, &c.reset_identity),
            (stats::RESET_UNMAPPED, &c.reset_unmapped),
            (stats::RESET_FASTOPEN, &c.reset_fastopen),
        ];
        for (ty, v) in all {
            w.put_u64(ty, v.load(Ordering::Relaxed), stats::PAD)?;
        }
        w.put_u64(stats::SERVICE_RECORDS, self.dp.nat.count(), stats::PAD)?;
        w.put_u64(
            stats::REPEAT_WINDOW,
            self.dp.repeats.len() as u64,
            stats::PAD,
        )
    }

    /// peer-get dump: one message per peer; cursor 0 is the index. Expired
    /// secrets are wiped first.
    pub(super) fn peer_dump(&self, dump: &mut Dump<'_>) -> Result {
        let mut i = dump.cursor(0);
        let now = workq::jiffies();
        let mut peers = self.dp.peers();
        peers.sweep(now);
        for p in peers.iter().skip(i) {
            let more = dump.entry(cmd::PEER_GET, |w| {
                w.nest(attr::PEER, |w| {
                    w.put_str(peer::NAME, p.name())?;
                    if let Some(l) = p.local() {
                        w.put_str(peer::LOCAL, l)?;
                    }
                    w.put_u32(peer::STATE, peer_state(p.state(now)))?;
                    if let Some(e) = p.epoch() {
                        w.put_u64(peer::EPOCH, e, peer::PAD)?;
                    }
                    if p.last_epoch() != 0 {
                        w.put_u64(peer::LAST_EPOCH, p.last_epoch(), peer::PAD)?;
                    }
                    w.put_u32(peer::PENDING, count(p.pending()))?;
                    if let Some(ms) = p.age_ms(now) {
                        w.put_u64(peer::AGE_MS, ms, peer::PAD)?;
                    }
                    if let Some(ms) = p.expires_ms(now) {
                        w.put_u64(peer::EXPIRES_MS, ms, peer::PAD)?;
                    }
                    if let Some((text, ms)) = p.error(now) {
                        w.put_str(peer::ERROR, text)?;
                        w.put_u64(peer::ERROR_AGE_MS, ms, peer::PAD)?;
                    }
                    Ok(())
                })
            })?;
            if !more {
                break;
            }
            i += 1;
        }
        drop(peers);
        dump.set_cursor(0, i);
        Ok(())
    }

    /// flows-get dump: cursors 2 and 0 are the table shard and the sock
    /// key to continue from, 0 and 0 at the start; cursor 1 set once done.
    pub(super) fn flows_dump(&self, dump: &mut Dump<'_>) -> Result {
        if dump.cursor(1) != 0 {
            return Ok(());
        }
        let from = (dump.cursor(2), dump.cursor(0));
        let (flows, next) = self.dp.flows.flows_from(from, FLOWS_PER_ROUND)?;
        let mut resume = None;
        for f in flows.iter() {
            let more = dump.entry(cmd::FLOWS_GET, |w| put_flow(w, f))?;
            if !more {
                resume = Some((flow::shard_of(f.sk.key()), f.sk.key()));
                break;
            }
        }
        match (resume, next) {
            (Some((s, k)), _) | (None, Some((s, k))) => {
                dump.set_cursor(2, s);
                dump.set_cursor(0, k);
            }
            (None, None) => dump.set_cursor(1, 1),
        }
        Ok(())
    }
}

fn peer_state(s: PeerState) -> u32 {
    use uapi::peer_state as ps;
    match s {
        PeerState::Waiting => ps::WAITING,
        PeerState::Established => ps::ESTABLISHED,
        PeerState::Expired => ps::EXPIRED,
        PeerState::Failed => ps::FAILED,
        PeerState::None => ps::NONE,
    }
}

fn put_local(w: &mut Writer, dp: &datapath::Datapath) -> Result {
    let g = Guard::new();
    for n in dp.local(&g).names() {
        w.put_str(attr::LOCAL_NODE, n)?;
    }
    Ok(())
}

/// A `flow` nest, for `flows-get` and the `flow-key-request` event. The
/// ISNs are in both: an agent that restarts finds in `flows-get` what it
/// needs to key a flow waiting for a secret of its own.
pub(crate) fn put_flow(w: &mut Writer, f: &flow::Flow) -> Result {
    use uapi::flow as fa;
    w.nest(attr::FLOW, |w| {
        w.put_u32(
            fa::ROLE,
            if f.client {
                uapi::role::CLIENT
            } else {
                uapi::role::SERVER
            },
        )?;
        let state = match f.phase() {
            flow::SECURED => uapi::flow_state::SECURED,
            flow::KEYED => uapi::flow_state::KEYED,
            flow::FAILED | flow::CLOSED => uapi::flow_state::FAILED,
            _ => uapi::flow_state::KEY_WAIT,
        };
        w.put_u32(fa::STATE, state)?;
        let (lp, rp) = f.ports();
        put_ip(w, fa::LOCAL_IPV4, fa::LOCAL_IPV6, &f.local_ip)?;
        w.put_u16(fa::LOCAL_PORT, lp)?;
        put_ip(w, fa::REMOTE_IPV4, fa::REMOTE_IPV6, &f.remote_ip)?;
        w.put_u16(fa::REMOTE_PORT, rp)?;
        w.put_str(fa::LOCAL_POD, f.local_pod.name())?;
        if !f.service {
            // A tentative Service connect has no remote pod yet.
            w.put_str(fa::REMOTE_POD, f.remote_pod.name())?;
            w.put_str(fa::PEER_NODE, f.remote_pod.node())?;
        }
        w.put_u32(fa::CIPHER, u32::from(f.cipher_id()))?;
        w.put_u64(fa::AGE_MS, datapath::age_ms(f), fa::PAD)?;
        if f.phase() != flow::CONNECTING {
            let (_, i) = f.tuple_isns();
            w.put_u32(fa::CLIENT_ISN, i.client)?;
            w.put_u32(fa::SERVER_ISN, i.server)?;
        }
        w.put_u32(fa::MODE, f.mode())
    })
}
