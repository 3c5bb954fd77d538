//! Sessions: the per-peer table (how many sessions run, the epoch, when the
//! secret was installed), the outgoing side (connect, handshake, pair
//! protocol as initiator), the listening side (accept, check who the client
//! is, pair protocol as responder), and the install into the kernel.
//!
//! One thread per outgoing session and per accepted connection, blocking
//! I/O with timeouts; the table is one mutex with a condition variable that
//! is signalled whenever a session ends or a secret is installed. The rules
//! that make the two agents of a pair converge are in the module doc of
//! [`crate::agent`].

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection, StreamOwned};

use super::kernel::FailOutcome;
use super::protocol::{
    epoch_plausible, leader, next_epoch, read_msg, write_msg, Msg, ProtocolError, VERSION,
};
use super::tls::{cert_names, describe, dns_names, export_secret};
use super::Agent;
use crate::psk::Psk;

/// An incoming session that knows an older epoch than one installed this
/// recently is answered `Busy`: it began before the other session ended.
const JUST_INSTALLED: Duration = Duration::from_secs(5);

/// Per-peer state.
#[derive(Debug, Default)]
pub struct Slot {
    /// Sessions running with this peer (outgoing and incoming).
    sessions: u32,
    /// Highest epoch known for the pair (installed here, or in the kernel).
    epoch: u64,
    /// When this agent last installed the pair's secret.
    installed_at: Option<Instant>,
    /// Bumped at every install: waiters watch it.
    generation: u64,
    /// Failed sessions in a row, and when to try again proactively.
    failures: u32,
    retry_at: Option<Instant>,
}

/// How a session ended without an error.
enum Outcome {
    Installed,
    /// Another session installed the pair's secret meanwhile.
    Superseded,
}

/// A failed session: the message for the log and the kernel.
type Failure = String;

fn io_failure(what: &str, e: &io::Error) -> Failure {
    // rustls reports handshake errors as io::Errors wrapping its own.
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return format!("{what}: TLS: {}", describe(tls));
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!("{what}: timed out"),
        io::ErrorKind::UnexpectedEof => format!("{what}: connection closed by the peer"),
        _ => format!("{what}: {e}"),
    }
}

fn proto_failure(what: &str, e: ProtocolError) -> Failure {
    match e {
        ProtocolError::Io(e) => io_failure(what, &e),
        other => format!("{what}: {other}"),
    }
}

/// Tells the peer why the session stops (`Refuse`), and returns the same
/// reason as this side's failure.
fn refuse(tls: &mut impl io::Write, peer: &str, reason: String) -> Failure {
    let failure = format!("{peer}: {reason}");
    let _ = write_msg(tls, &Msg::Refuse { reason });
    failure
}

fn unexpected(what: &str, msg: &Msg) -> Failure {
    match msg {
        Msg::Refuse { reason } => format!("{what}: refused: {reason}"),
        other => format!("{what}: unexpected message {}", other.name()),
    }
}

impl Agent {
    fn slot_op<T>(&self, peer: &str, op: impl FnOnce(&mut Slot) -> T) -> T {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = table.entry(peer.to_owned()).or_default();
        let out = op(slot);
        self.changed.notify_all();
        out
    }

    /// Records an epoch the kernel reports for a peer.
    pub(super) fn note_epoch(&self, peer: &str, epoch: u64) {
        self.slot_op(peer, |s| s.epoch = s.epoch.max(epoch));
    }

    /// Asks for a session with `peer` unless one is running (then this
    /// request is served by it).
    pub fn request(self: &Arc<Self>, peer: &str, why: &str) {
        if peer == self.me {
            return;
        }
        let addr = {
            let dir = self.dir();
            if !dir.contains(peer) {
                drop(dir);
                self.log(format!("{why}: peer {peer} is not a node of the mapping"));
                self.report_failure(peer, "not a node of the mapping");
                return;
            }
            dir.agent(peer)
        };
        let Some(addr) = addr else {
            self.log(format!(
                "{why}: node {peer} has no agent address in the mapping (`node {peer} ADDR[:PORT]`)"
            ));
            self.report_failure(peer, "no agent address in the mapping");
            return;
        };
        let start = self.slot_op(peer, |s| {
            if s.sessions > 0 {
                return None;
            }
            s.sessions += 1;
            Some(s.generation)
        });
        let Some(generation) = start else {
            self.log(format!(
                "{why}: session with {peer} already running, joined"
            ));
            return;
        };
        self.log(format!("{why}: starting session with {peer} at {addr}"));
        let agent = self.clone();
        let peer = peer.to_owned();
        thread::spawn(move || agent.initiate(&peer, addr, generation));
    }

    /// An outgoing session, from start to the table's bookkeeping.
    fn initiate(self: &Arc<Self>, peer: &str, addr: SocketAddr, generation: u64) {
        let result = self.client_session(peer, addr, generation);
        match &result {
            Ok(Outcome::Installed) => {}
            Ok(Outcome::Superseded) => self.log(format!(
                "session with {peer}: the pair's secret was installed by the other side's session"
            )),
            Err(reason) => self.log(format!("session with {peer} FAILED: {reason}")),
        }
        let failed = result.is_err();
        self.slot_op(peer, |s| {
            s.sessions = s.sessions.saturating_sub(1);
            if failed {
                s.failures += 1;
                let backoff = 5u64.saturating_mul(1 << s.failures.min(4)).min(60);
                s.retry_at = Some(Instant::now() + Duration::from_secs(backoff));
            }
        });
        if let Err(reason) = result {
            self.report_failure(peer, &reason);
        }
    }

    /// Tells the kernel that flows waiting for `peer` get no secret now.
    fn report_failure(&self, peer: &str, reason: &str) {
        // The kernel keeps 128 bytes of the reason.
        let mut end = reason.len().min(128);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        match self.kernel.fail(peer, &reason[..end]) {
            Ok(FailOutcome::Told) => self.log(format!(
                "peer {peer}: failure reported to the kernel (waiting flows reset)"
            )),
            Ok(FailOutcome::KeptValidSecret) => self.log(format!(
                "peer {peer}: the kernel's current secret is still valid, kept"
            )),
            Err(e) => self.log(format!("peer {peer}: cannot report the failure: {e}")),
        }
    }

    fn generation(&self, peer: &str) -> u64 {
        self.slot_op(peer, |s| s.generation)
    }

    /// The highest epoch this node knows for the pair: its table, which
    /// the start-up resync fills from one kernel dump and every install
    /// raises (review-agent L5: no dump per session). A kernel that refused
    /// an install (an operator set a higher epoch) is read again then.
    fn known_epoch(&self, peer: &str) -> u64 {
        self.slot_op(peer, |s| s.epoch)
    }

    /// Re-reads the kernel's epoch for `peer` (after a refused install).
    fn reread_epoch(&self, peer: &str) {
        if let Some(p) = self
            .kernel
            .peers()
            .ok()
            .and_then(|ps| ps.into_iter().find(|p| p.name == peer))
        {
            self.note_epoch(peer, p.last_epoch.max(p.epoch.unwrap_or(0)));
        }
    }

    /// Connects (retrying refused connects a while: the peer's agent may be
    /// restarting), handshakes, and runs the pair protocol as initiator.
    fn client_session(
        &self,
        peer: &str,
        addr: SocketAddr,
        generation: u64,
    ) -> Result<Outcome, Failure> {
        let deadline = Instant::now() + self.settings.connect_retry;
        let mut pause = Duration::from_millis(100);
        let tcp = loop {
            match TcpStream::connect_timeout(&addr, self.settings.io_timeout) {
                Ok(tcp) => break tcp,
                Err(e) if Instant::now() + pause < deadline => {
                    if self.generation(peer) != generation {
                        return Ok(Outcome::Superseded);
                    }
                    let _ = e;
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(io_failure(&format!("connect to {addr}"), &e)),
            }
        };
        self.prepare(&tcp);
        let name = ServerName::try_from(peer.to_owned())
            .map_err(|e| format!("{peer} is not a valid server name: {e}"))?;
        let conn = ClientConnection::new(self.client_tls(), name)
            .map_err(|e| format!("TLS: {}", describe(&e)))?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| io_failure(&format!("handshake with {peer} at {addr}"), &e))?;
        }
        // rustls accepts a wildcard SAN for the peer's name; the agent (as
        // the workers) wants the node's own name (review L1).
        if !tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .is_some_and(|c| cert_names(c, peer))
        {
            return Err(format!(
                "{peer} at {addr}: its certificate does not name {peer} exactly (wildcards are refused)"
            ));
        }
        if self.generation(peer) != generation {
            return Ok(Outcome::Superseded);
        }
        let secret = export_secret(&tls.conn, &self.me, peer)
            .map_err(|e| format!("exporter: {}", describe(&e)))?;
        let mine = self.known_epoch(peer);
        let hello = Msg::Hello {
            version: VERSION,
            epoch: mine,
            node: self.me.clone(),
            peer: peer.to_owned(),
        };
        write_msg(&mut tls, &hello).map_err(|e| io_failure("sending hello", &e))?;
        let theirs = match read_msg(&mut tls).map_err(|e| proto_failure("reading hello", e))? {
            Msg::Hello {
                version,
                epoch,
                node,
                peer: them_for_us,
            } => {
                if version != VERSION || node != peer || them_for_us != self.me {
                    return Err(format!(
                        "{peer} answered as {node} (for {them_for_us}, version {version})"
                    ));
                }
                epoch
            }
            Msg::Busy => return self.wait_for_leader(peer, generation),
            other => return Err(unexpected(peer, &other)),
        };
        self.exchange(&mut tls, peer, &secret, mine, theirs, "initiator")
            .map(|_| Outcome::Installed)
    }

    /// Our session was answered `Busy` by the leader: its own session is
    /// running and will install the secret here too.
    fn wait_for_leader(&self, peer: &str, generation: u64) -> Result<Outcome, Failure> {
        self.log(format!(
            "session with {peer}: {peer} answered busy, waiting for its session"
        ));
        let deadline = Instant::now() + self.settings.busy_wait;
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if table.get(peer).is_some_and(|s| s.generation != generation) {
                return Ok(Outcome::Superseded);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{peer} said its own session was running, but none installed a secret within {}s",
                    self.settings.busy_wait.as_secs()
                ));
            }
            table = self
                .changed
                .wait_timeout(table, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn prepare(&self, tcp: &TcpStream) {
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(self.settings.io_timeout));
        let _ = tcp.set_write_timeout(Some(self.settings.io_timeout));
    }

    /// After both hellos: the leader assigns the epoch, the follower
    /// installs first, then the leader. Returns the epoch installed here.
    fn exchange(
        &self,
        tls: &mut (impl io::Read + io::Write),
        peer: &str,
        secret: &Psk,
        mine: u64,
        theirs: u64,
        role: &str,
    ) -> Result<u64, Failure> {
        if !epoch_plausible(mine, theirs) {
            return Err(refuse(
                tls,
                peer,
                format!("epoch {theirs} is implausible (this node knows {mine})"),
            ));
        }
        if leader(&self.me, peer) == self.me {
            let epoch = next_epoch(mine, theirs);
            write_msg(tls, &Msg::Install { epoch })
                .map_err(|e| io_failure("sending install", &e))?;
            match read_msg(tls).map_err(|e| proto_failure("waiting for installed", e))? {
                Msg::Installed { epoch: e } if e == epoch => {}
                other => {
                    return Err(unexpected(
                        &format!("{peer} installing epoch {epoch}"),
                        &other,
                    ))
                }
            }
            if let Err(e) = self.install(peer, secret, epoch, role, "leader") {
                let _ = write_msg(tls, &Msg::Refuse { reason: e.clone() });
                // The follower has the new secret and we do not: renew soon.
                self.slot_op(peer, |s| s.retry_at = Some(Instant::now()));
                return Err(e);
            }
            write_msg(tls, &Msg::Done { epoch }).map_err(|e| io_failure("sending done", &e))?;
            Ok(epoch)
        } else {
            let epoch = match read_msg(tls).map_err(|e| proto_failure("waiting for install", e))? {
                Msg::Install { epoch } => epoch,
                other => return Err(unexpected(peer, &other)),
            };
            // Both hellos fix the epoch: the leader may not pick another.
            let expected = next_epoch(mine, theirs);
            if epoch != expected {
                return Err(refuse(
                    tls,
                    peer,
                    format!("install of epoch {epoch}, expected {expected}"),
                ));
            }
            if let Err(e) = self.install(peer, secret, epoch, role, "follower") {
                let _ = write_msg(tls, &Msg::Refuse { reason: e.clone() });
                return Err(e);
            }
            write_msg(tls, &Msg::Installed { epoch })
                .map_err(|e| io_failure("sending installed", &e))?;
            match read_msg(tls).map_err(|e| proto_failure("waiting for done", e))? {
                Msg::Done { epoch: e } if e == epoch => Ok(epoch),
                other => {
                    // We installed, the leader did not: renew soon.
                    self.slot_op(peer, |s| {
                        s.installed_at = None;
                        s.retry_at = Some(Instant::now());
                    });
                    Err(unexpected(
                        &format!("{peer} (leader) after our install of epoch {epoch}"),
                        &other,
                    ))
                }
            }
        }
    }

    /// peer-set, and the table's bookkeeping.
    fn install(
        &self,
        peer: &str,
        secret: &Psk,
        epoch: u64,
        role: &str,
        lead: &str,
    ) -> Result<(), Failure> {
        if let Err(e) = self
            .kernel
            .install(peer, secret, epoch, self.settings.lifetime)
        {
            self.reread_epoch(peer);
            return Err(format!(
                "kernel refused the secret for {peer} epoch {epoch}: {e}"
            ));
        }
        self.slot_op(peer, |s| {
            s.epoch = s.epoch.max(epoch);
            s.installed_at = Some(Instant::now());
            s.generation += 1;
            s.failures = 0;
            s.retry_at = None;
        });
        self.installs.fetch_add(1, Ordering::Relaxed);
        self.log(format!(
            "session with {peer}: secret installed, epoch {epoch} ({role}, {lead})"
        ));
        Ok(())
    }

    /// Peers whose secret is due for renewal, or whose last session failed
    /// and whose retry time has come.
    pub(super) fn due_peers(&self) -> Vec<String> {
        let peers = self.peers();
        let table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        peers
            .into_iter()
            .filter(|peer| {
                let Some(s) = table.get(peer) else {
                    return false;
                };
                if s.sessions > 0 {
                    return false;
                }
                let lead = leader(&self.me, peer) == self.me;
                let renew = s.installed_at.is_some_and(|t| {
                    now.duration_since(t) >= self.settings.renew_after_for(lead, peer)
                });
                renew || s.retry_at.is_some_and(|r| now >= r)
            })
            .collect()
    }

    /// Accepts connections forever, one thread each.
    pub(super) fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        for conn in listener.incoming() {
            let tcp = match conn {
                Ok(tcp) => tcp,
                Err(e) => {
                    self.log(format!("accept: {e}"));
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let Ok(from) = tcp.peer_addr() else { continue };
            let ip = match from.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            };
            let mapped = self.dir().node_at(ip).is_some();
            // Refused: `tcp` is dropped (closed) here, before any TLS.
            let ticket = match self.gate.admit(&tcp, ip, mapped) {
                Ok(t) => t,
                Err((_, line)) => {
                    if let Some(line) = line {
                        self.log(line);
                    }
                    continue;
                }
            };
            let agent = self.clone();
            let spawned = thread::Builder::new()
                .name("agent-conn".into())
                .spawn(move || agent.serve(tcp, &ticket));
            if let Err(e) = spawned {
                self.log(format!("accept: cannot start a thread: {e}"));
            }
        }
    }

    /// One accepted connection; `ticket` is its place among the limits.
    fn serve(self: &Arc<Self>, tcp: TcpStream, ticket: &super::gatekeeper::Ticket) {
        let from = tcp
            .peer_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let who = tcp
            .peer_addr()
            .ok()
            .and_then(|a| self.dir().node_at(a.ip()).map(str::to_owned))
            .map_or_else(|| from.clone(), |n| format!("{from} ({n}?)"));
        self.prepare(&tcp);
        let config = self
            .server_tls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let conn = match ServerConnection::new(config) {
            Ok(c) => c,
            Err(e) => return self.log(format!("connection from {who}: TLS: {}", describe(&e))),
        };
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                return self.log(format!(
                    "REFUSED connection from {who}: {}",
                    io_failure("handshake", &e)
                ));
            }
        }
        let cert = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned();
        let hello = match read_msg(&mut tls) {
            Ok(m) => m,
            Err(ProtocolError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
            {
                // An initiator that found the secret installed meanwhile.
                return;
            }
            Err(e) => {
                return self.log(format!(
                    "connection from {who}: {}",
                    proto_failure("hello", e)
                ))
            }
        };
        let Msg::Hello {
            version,
            epoch: theirs,
            node,
            peer: for_us,
        } = hello
        else {
            return self.log(format!(
                "connection from {who}: {}",
                unexpected("hello", &hello)
            ));
        };
        let refusal = if version != VERSION {
            Some(format!(
                "protocol version {version}, this agent speaks {VERSION}"
            ))
        } else if for_us != self.me {
            Some(format!("this is node {}, not {for_us}", self.me))
        } else if node == self.me || !self.dir().contains(&node) {
            Some(format!("{node} is not a peer node of the mapping"))
        } else if !cert.as_ref().is_some_and(|c| cert_names(c, &node)) {
            let names = cert.as_ref().map(dns_names).unwrap_or_default();
            Some(format!(
                "client claims to be {node} but its certificate names {}",
                if names.is_empty() {
                    "no DNS name".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.log(format!("REFUSED session from {who}: {reason}"));
            let _ = write_msg(&mut tls, &Msg::Refuse { reason });
            return;
        }
        // It said who it is, and proved it: no pre-authentication deadline.
        ticket.authenticated();
        let peer = node;
        let lead = leader(&self.me, &peer) == self.me;
        let refused = self.slot_op(&peer, |s| {
            if lead && s.sessions > 0 {
                return Some("our own session with it runs and we lead the pair".to_owned());
            }
            if theirs < s.epoch && s.installed_at.is_some_and(|t| t.elapsed() < JUST_INSTALLED) {
                // It began before it learnt of the session that just ended.
                return Some(format!(
                    "epoch {} was just installed (it knows {theirs})",
                    s.epoch
                ));
            }
            s.sessions += 1;
            None
        });
        if let Some(why) = refused {
            self.log(format!("session from {peer}: busy: {why}"));
            let _ = write_msg(&mut tls, &Msg::Busy);
            return;
        }
        let result = (|| {
            let secret = export_secret(&tls.conn, &self.me, &peer)
                .map_err(|e| format!("exporter: {}", describe(&e)))?;
            let mine = self.known_epoch(&peer);
            let hello = Msg::Hello {
                version: VERSION,
                epoch: mine,
                node: self.me.clone(),
                peer: peer.clone(),
            };
            write_msg(&mut tls, &hello).map_err(|e| io_failure("sending hello", &e))?;
            self.exchange(&mut tls, &peer, &secret, mine, theirs, "responder")
        })();
        let others = self.slot_op(&peer, |s| {
            s.sessions = s.sessions.saturating_sub(1);
            s.sessions
        });
        if let Err(reason) = result {
            self.log(format!("session from {peer} FAILED: {reason}"));
            if others == 0 {
                self.report_failure(&peer, &reason);
            }
        }
    }
}
