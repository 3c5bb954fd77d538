//! Per-flow keys: the agent's side of the openssl and boringssl modes.
//!
//! Why this exists: in those two modes (the seed's other key providers,
//! kept to compare tlshub against a per-connection design) the kernel does
//! not key a flow from the node-pair secret; every secured flow waits for
//! its own 32-byte secret, the exporter of a full TLS 1.3 handshake done
//! for that flow alone between the two nodes' agents with the mode's
//! library (`spec/key-schedule.md` §11). The TLS libraries live in separate
//! worker processes (`tlshub-worker-openssl`, `tlshub-worker-boring`: the
//! two cannot link into one binary); this module starts them, talks their
//! line protocol and feeds their secrets to the kernel.
//!
//! ```text
//!  client node                                          server node
//!  kernel: flow-key-request (role client)               kernel: flow-key-request (role server): nothing to do
//!  agent:  connect ID PEER HOST:PORT CTX ──► worker ═══ TLS 1.3 ═══► worker ──► agent: accepted PEER CTX SECRET
//!  agent ◄── secret ID SECRET                                         checks the mapping, then
//!  flow-key-set (local, remote, ISNs, secret)                         flow-key-set (server, client, ISNs, secret),
//!                                                                     retried on ENOENT (flow not decided yet)
//! ```
//!
//! Each worker listens on this node's agent address, port + 1 (openssl)
//! or port + 2 (boringssl), and reaches the peer's worker at the peer's agent
//! address with the same offset. A worker that exits is restarted (with
//! backoff); a missing worker binary is logged once at start, and flows in
//! its mode then wait and fail closed in the kernel (each logged once). No
//! secret is ever logged: worker lines that carry one are parsed, never
//! echoed, and wiped. The line protocol ([`Request`], [`Reply`]), the flow
//! context and hex come from the workers' own crate
//! (`tlshub-worker-common`), so the agent and the workers cannot drift.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use super::config::Directory;
use super::kernel::{FlowKeySetError, Kernel};
use crate::netlink::{wipe, FlowKey, FlowKeyRequest, Role};
use crate::Mode;
use tlshub_worker_common::{self as wc, Reply, Request};

/// Port offset of the openssl worker from the node's agent port.
pub const OPENSSL_PORT_OFFSET: u16 = 1;
/// Port offset of the boringssl worker.
pub const BORINGSSL_PORT_OFFSET: u16 = 2;

/// The worker binary's file name for `mode` (`None` for tlshub).
pub fn worker_file_name(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Tlshub => None,
        Mode::Openssl => Some("tlshub-worker-openssl"),
        Mode::Boringssl => Some("tlshub-worker-boring"),
    }
}

/// The worker port offset for `mode` (`None` for tlshub).
pub fn port_offset(mode: Mode) -> Option<u16> {
    match mode {
        Mode::Tlshub => None,
        Mode::Openssl => Some(OPENSSL_PORT_OFFSET),
        Mode::Boringssl => Some(BORINGSSL_PORT_OFFSET),
    }
}

/// `addr` with its port moved by the `mode`'s worker offset.
pub fn worker_addr(addr: SocketAddr, mode: Mode) -> Option<SocketAddr> {
    let port = addr.port().checked_add(port_offset(mode)?)?;
    Some(SocketAddr::new(addr.ip(), port))
}

// --- the flow context ---------------------------------------------------------

/// The exporter context of a flow in the client's order (§11), as the
/// workers' crate writes it ([`wc::encode_context`]: `client_ip |
/// client_port | server_ip | server_port | client_isn | server_isn`, 20 or
/// 44 bytes), with IPv4-mapped addresses first made IPv4 so both ends
/// compute the same bytes.
pub fn encode_context(
    client: SocketAddr,
    server: SocketAddr,
    client_isn: u32,
    server_isn: u32,
) -> Vec<u8> {
    wc::encode_context(canon(client), canon(server), client_isn, server_isn)
}

/// A decoded flow context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowContext {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_isn: u32,
    pub server_isn: u32,
}

/// Inverse of [`encode_context`] ([`wc::decode_context`]); `None` unless 20
/// or 44 bytes. IPv4-mapped addresses come back as IPv4.
pub fn decode_context(ctx: &[u8]) -> Option<FlowContext> {
    let (client, server, client_isn, server_isn) = wc::decode_context(ctx)?;
    Some(FlowContext {
        client: canon(client),
        server: canon(server),
        client_isn,
        server_isn,
    })
}

fn canon(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(crate::mapping::canonical_ip(addr.ip()), addr.port())
}

// --- worker lines ---------------------------------------------------------------

/// A line a worker writes on its stdout: the workers' crate's [`Reply`],
/// wiped when dropped. `Debug` never shows a secret.
#[derive(PartialEq, Eq)]
pub struct WorkerLine(pub Reply);

impl std::fmt::Debug for WorkerLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Reply::Ready(a) => write!(f, "Ready({a})"),
            Reply::Secret { id, .. } => write!(f, "Secret({id}, <hidden>)"),
            Reply::Error { id, text } => write!(f, "Error({id}, {text:?})"),
            Reply::Accepted {
                peer_node, context, ..
            } => write!(
                f,
                "Accepted({peer_node}, {}, <hidden>)",
                wc::hex_encode(context)
            ),
            Reply::Refused { text } => write!(f, "Refused({text:?})"),
        }
    }
}

impl Drop for WorkerLine {
    fn drop(&mut self) {
        match &mut self.0 {
            Reply::Secret { secret, .. } | Reply::Accepted { secret, .. } => wipe(secret),
            _ => {}
        }
    }
}

impl WorkerLine {
    /// Parses one line (without or with its newline) with [`Reply::parse`].
    /// The error names the line's first word only: the rest may be a
    /// secret.
    pub fn parse(line: &str) -> Result<WorkerLine, String> {
        let bad = || {
            let line = line.trim_end_matches(['\n', '\r']);
            let kind = line.split_once(' ').map_or(line, |(k, _)| k);
            let shown: String = kind.chars().take(16).collect();
            format!("malformed '{}' line from the worker", shown.escape_debug())
        };
        let parsed = WorkerLine(Reply::parse(line).ok_or_else(bad)?);
        // The agent maps node names exactly: an empty one is no name.
        if matches!(&parsed.0, Reply::Accepted { peer_node, .. } if peer_node.is_empty()) {
            return Err(bad());
        }
        Ok(parsed)
    }
}

// --- settings and workers ---------------------------------------------------------

/// How one worker is started.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub mode: Mode,
    /// The binary.
    pub program: PathBuf,
    /// Its arguments (`--node ... --listen ...`).
    pub args: Vec<OsString>,
}

impl WorkerSpec {
    /// The worker of `mode` for node `node` with this identity, listening
    /// on `agent` (this node's agent address) moved by the mode's offset.
    pub fn new(
        mode: Mode,
        program: PathBuf,
        node: &str,
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
        agent: SocketAddr,
    ) -> Option<WorkerSpec> {
        let listen = worker_addr(agent, mode)?;
        let args = vec![
            "--node".into(),
            node.into(),
            "--cert".into(),
            cert.into(),
            "--key".into(),
            key.into(),
            "--ca".into(),
            ca.into(),
            "--listen".into(),
            listen.to_string().into(),
        ];
        Some(WorkerSpec {
            mode,
            program,
            args,
        })
    }
}

/// Timings.
#[derive(Debug, Clone, Copy)]
pub struct FlowSettings {
    /// How often a `flow-key-set` answered `ENOENT` is retried ...
    pub retry_every: Duration,
    /// ... and for how long.
    pub retry_for: Duration,
    /// First delay before a worker that exited is restarted (doubles up to
    /// `restart_max`; back to this after a worker ran for a minute).
    pub restart_min: Duration,
    pub restart_max: Duration,
    /// A request without an answer from the worker is forgotten after this.
    pub forget_after: Duration,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            retry_every: Duration::from_millis(10),
            retry_for: Duration::from_secs(2),
            restart_min: Duration::from_secs(1),
            restart_max: Duration::from_secs(30),
            forget_after: Duration::from_secs(60),
        }
    }
}

/// Counters (for tests and logs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowStats {
    /// `flow-key-request` events with role client handed to a worker.
    pub connects: u64,
    /// Events with role server (nothing to do).
    pub server_events: u64,
    /// Secrets a worker returned for our connects.
    pub secrets: u64,
    /// `error` lines.
    pub errors: u64,
    /// `accepted` lines.
    pub accepted: u64,
    /// `accepted` lines refused by the mapping check.
    pub refused_claims: u64,
    /// Flows keyed (`flow-key-set` succeeded), either role.
    pub keyed: u64,
    /// `flow-key-set` failures (after retries).
    pub set_failures: u64,
    /// Events not handed to a worker (no worker, no peer address, ...).
    pub dropped: u64,
    /// Worker (re)starts.
    pub worker_starts: u64,
    /// Incoming handshakes a worker refused (garbage, timeouts, bad
    /// certificates: anyone who reaches its port).
    pub refused_handshakes: u64,
}

/// Refused handshakes are logged at most this often (anyone who reaches a
/// worker's port can make them), with the count since the last line.
pub const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

/// A running (or restarting) worker process.
struct Worker {
    spec: WorkerSpec,
    stdin: Mutex<Option<ChildStdin>>,
    ready: Mutex<Option<SocketAddr>>,
    ready_changed: Condvar,
    pid: AtomicU64,
}

/// A `connect` sent and not answered yet.
struct Pending {
    mode: Mode,
    local: SocketAddr,
    remote: SocketAddr,
    client_isn: u32,
    server_isn: u32,
    peer: String,
    sent: Instant,
}

/// Lines read from a worker's output, which carries secrets (`secret`
/// and `accepted` lines): one fixed buffer that never reallocates, each
/// line wiped once handled and the whole buffer when dropped (a
/// `BufReader` kept them in its own buffer, unwiped: review-agent L3).
pub struct WipedLines {
    buf: Box<[u8; WipedLines::SIZE]>,
    len: usize,
}

impl WipedLines {
    /// The longest line kept; a longer one is handed out in pieces (and
    /// refused by the line parser).
    pub const SIZE: usize = 8192;

    pub fn new() -> WipedLines {
        WipedLines {
            buf: Box::new([0; WipedLines::SIZE]),
            len: 0,
        }
    }

    /// Reads what `from` has; `false` at its end.
    pub fn fill(&mut self, from: &mut impl std::io::Read) -> std::io::Result<bool> {
        loop {
            match from.read(&mut self.buf[self.len..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.len += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The whole buffer, for tests that check what is left in it.
    pub fn raw(&self) -> &[u8] {
        &self.buf[..]
    }

    /// Calls `f` with each complete line (without its newline; invalid
    /// UTF-8 replaced), wipes it, and keeps the unfinished rest.
    pub fn each(&mut self, mut f: impl FnMut(&str)) {
        let mut start = 0;
        while let Some(nl) = self.buf[start..self.len].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            f(&String::from_utf8_lossy(&self.buf[start..end]));
            wipe(&mut self.buf[start..=end]);
            start = end + 1;
        }
        if self.len == Self::SIZE && start == 0 {
            f(&String::from_utf8_lossy(&self.buf[..self.len]));
            start = self.len;
        }
        self.buf.copy_within(start..self.len, 0);
        let rest = self.len - start;
        wipe(&mut self.buf[rest..self.len]);
        self.len = rest;
    }
}

impl Default for WipedLines {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for WipedLines {
    fn drop(&mut self) {
        wipe(&mut self.buf[..]);
    }
}

/// Log sink.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// The per-flow key logic of one agent: workers, pending connects, answers
/// to the kernel.
pub struct FlowKeys {
    me: String,
    kernel: Arc<dyn Kernel>,
    directory: Arc<RwLock<Directory>>,
    log: Log,
    settings: FlowSettings,
    workers: Mutex<HashMap<Mode, Arc<Worker>>>,
    /// Modes whose worker binary was missing at start.
    missing: Mutex<HashMap<Mode, PathBuf>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    stats: Arc<Mutex<FlowStats>>,
    local_nodes: Mutex<Option<(Instant, Vec<String>)>>,
    stopping: AtomicBool,
    /// When a refused handshake was last logged, and how many were not.
    refused_log: Mutex<(Option<Instant>, u64)>,
}

impl FlowKeys {
    pub fn new(
        me: &str,
        kernel: Arc<dyn Kernel>,
        directory: Arc<RwLock<Directory>>,
        log: Log,
        settings: FlowSettings,
    ) -> Arc<FlowKeys> {
        Arc::new(FlowKeys {
            me: me.to_owned(),
            kernel,
            directory,
            log,
            settings,
            workers: Mutex::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stats: Arc::new(Mutex::new(FlowStats::default())),
            local_nodes: Mutex::new(None),
            stopping: AtomicBool::new(false),
            refused_log: Mutex::new((None, 0)),
        })
    }

    fn log(&self, msg: impl AsRef<str>) {
        (self.log)(msg.as_ref());
    }

    fn count(&self, f: impl FnOnce(&mut FlowStats)) {
        f(&mut lock(&self.stats));
    }

    /// The counters so far.
    pub fn stats(&self) -> FlowStats {
        *lock(&self.stats)
    }

    /// Starts the worker of `spec.mode` (and keeps restarting it), unless
    /// its binary is missing: that is logged, and flows in that mode then
    /// fail closed. Returns whether it was started.
    pub fn start_worker(self: &Arc<Self>, spec: WorkerSpec) -> bool {
        if !spec.program.is_file() {
            self.log(format!(
                "warning: no {} worker at {}: flows in {} mode will wait and fail closed",
                spec.mode,
                spec.program.display(),
                spec.mode
            ));
            lock(&self.missing).insert(spec.mode, spec.program);
            return false;
        }
        let worker = Arc::new(Worker {
            spec,
            stdin: Mutex::new(None),
            ready: Mutex::new(None),
            ready_changed: Condvar::new(),
            pid: AtomicU64::new(0),
        });
        lock(&self.workers).insert(worker.spec.mode, worker.clone());
        let me = self.clone();
        thread::spawn(move || me.supervise(worker));
        true
    }

    /// Waits until the worker of `mode` said `ready`; its address.
    pub fn wait_ready(&self, mode: Mode, timeout: Duration) -> Option<SocketAddr> {
        let worker = lock(&self.workers).get(&mode).cloned()?;
        let deadline = Instant::now() + timeout;
        let mut ready = lock(&worker.ready);
        loop {
            if let Some(a) = *ready {
                return Some(a);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            ready = worker
                .ready_changed
                .wait_timeout(ready, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The worker's process id (0: not running).
    pub fn worker_pid(&self, mode: Mode) -> Option<u32> {
        let worker = lock(&self.workers).get(&mode).cloned()?;
        Some(worker.pid.load(Ordering::Relaxed) as u32)
    }

    /// Stops the workers (their stdin is closed, they exit) and does not
    /// restart them.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for w in lock(&self.workers).values() {
            lock(&w.stdin).take();
        }
    }

    /// Runs one worker after the other, forever (until [`FlowKeys::stop`]).
    fn supervise(self: Arc<Self>, worker: Arc<Worker>) {
        let mode = worker.spec.mode;
        let mut delay = self.settings.restart_min;
        while !self.stopping.load(Ordering::SeqCst) {
            let started = Instant::now();
            self.run_worker(&worker);
            *lock(&worker.ready) = None;
            lock(&worker.stdin).take();
            worker.pid.store(0, Ordering::Relaxed);
            self.fail_pending(mode, "the worker exited before answering");
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                delay = self.settings.restart_min;
            }
            self.log(format!(
                "{mode} worker: restarting in {} ms",
                delay.as_millis()
            ));
            thread::sleep(delay);
            delay = (delay * 2).min(self.settings.restart_max);
        }
    }

    /// One run of the worker process: spawn, read its lines until EOF, reap.
    fn run_worker(&self, worker: &Worker) {
        let mode = worker.spec.mode;
        let mut child = match Command::new(&worker.spec.program)
            .args(&worker.spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                self.log(format!(
                    "{mode} worker: cannot start {}: {e}",
                    worker.spec.program.display()
                ));
                return;
            }
        };
        self.count(|s| s.worker_starts += 1);
        worker.pid.store(u64::from(child.id()), Ordering::Relaxed);
        let stdout = child.stdout.take();
        *lock(&worker.stdin) = child.stdin.take();
        if self.stopping.load(Ordering::SeqCst) {
            lock(&worker.stdin).take();
        }
        if let Some(mut stdout) = stdout {
            let mut lines = WipedLines::new();
            loop {
                match lines.fill(&mut stdout) {
                    Ok(false) => break,
                    Ok(true) => lines.each(|line| self.on_line(worker, line)),
                    Err(e) => {
                        self.log(format!("{mode} worker: reading its output: {e}"));
                        break;
                    }
                }
            }
        }
        lock(&worker.stdin).take();
        match child.wait() {
            Ok(status) if self.stopping.load(Ordering::SeqCst) => {
                self.log(format!("{mode} worker stopped ({status})"))
            }
            Ok(status) => self.log(format!("{mode} worker exited ({status})")),
            Err(e) => self.log(format!("{mode} worker: wait: {e}")),
        }
    }

    /// Forgets every pending connect of `mode` (their flows time out).
    fn fail_pending(&self, mode: Mode, why: &str) {
        let gone: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.mode == mode)
                .map(|(&id, _)| id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in gone {
            self.log(format!(
                "flow {} -> {} ({mode}, peer {}): {why}; the flow times out",
                p.local, p.remote, p.peer
            ));
        }
    }

    // --- the kernel's side ---------------------------------------------------

    /// A `flow-key-request` event. Role client: a handshake by the mode's
    /// worker with the peer's; role server: nothing (the peer's agent
    /// connects, and the `accepted` line keys the flow here).
    pub fn on_request(&self, req: &FlowKeyRequest) {
        if req.role == Role::Server {
            self.count(|s| s.server_events += 1);
            return;
        }
        let flow = format!("flow {} -> {} ({})", req.local, req.remote, req.mode);
        let drop_it = |why: String| {
            self.count(|s| s.dropped += 1);
            self.log(format!("{flow}: {why}; the flow times out"));
        };
        if port_offset(req.mode).is_none() {
            return drop_it("a flow-key-request in tlshub mode".to_owned());
        }
        let Some(worker) = lock(&self.workers).get(&req.mode).cloned() else {
            let why = match lock(&self.missing).get(&req.mode) {
                Some(path) => format!("no {} worker ({} is missing)", req.mode, path.display()),
                None => format!("no {} worker configured", req.mode),
            };
            return drop_it(why);
        };
        let (peer, agent) = {
            let dir = read(&self.directory);
            let peer = req
                .peer_node
                .clone()
                .or_else(|| dir.node_of_ip(req.remote.ip()).map(str::to_owned));
            let agent = peer.as_deref().and_then(|p| dir.agent(p));
            (peer, agent)
        };
        let Some(peer) = peer else {
            return drop_it("the peer's node is not known".to_owned());
        };
        let Some(target) = agent.and_then(|a| worker_addr(a, req.mode)) else {
            return drop_it(format!("the mapping has no agent address for node {peer}"));
        };
        let context = encode_context(req.local, req.remote, req.client_isn, req.server_isn);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut pending = lock(&self.pending);
            let forget = self.settings.forget_after;
            pending.retain(|_, p| p.sent.elapsed() < forget);
            pending.insert(
                id,
                Pending {
                    mode: req.mode,
                    local: req.local,
                    remote: req.remote,
                    client_isn: req.client_isn,
                    server_isn: req.server_isn,
                    peer: peer.clone(),
                    sent: Instant::now(),
                },
            );
        }
        let line = Request::Connect {
            id,
            peer_node: peer.clone(),
            addr: target.to_string(),
            context,
        }
        .format();
        let sent = match lock(&worker.stdin).as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush())
                .map_err(|e| e.to_string()),
            None => Err("not running".to_owned()),
        };
        match sent {
            Ok(()) => self.count(|s| s.connects += 1),
            Err(e) => {
                lock(&self.pending).remove(&id);
                drop_it(format!("the {} worker is {e}", req.mode));
            }
        }
    }

    /// One line of a worker's output.
    fn on_line(&self, worker: &Worker, text: &str) {
        let mode = worker.spec.mode;
        let line = match WorkerLine::parse(text) {
            Ok(l) => l,
            Err(e) => return self.log(format!("{mode} worker: {e}")),
        };
        match &line.0 {
            Reply::Ready(addr) => {
                self.log(format!(
                    "{mode} worker ready on {addr} (pid {})",
                    worker.pid.load(Ordering::Relaxed)
                ));
                *lock(&worker.ready) = Some(*addr);
                worker.ready_changed.notify_all();
            }
            Reply::Secret { id, secret } => {
                let Some(p) = lock(&self.pending).remove(id) else {
                    return self.log(format!(
                        "{mode} worker: a secret for unknown request {id} (ignored)"
                    ));
                };
                self.count(|s| s.secrets += 1);
                let key = FlowKey {
                    local: p.local,
                    remote: p.remote,
                    client_isn: Some(p.client_isn),
                    server_isn: Some(p.server_isn),
                    secret: *secret,
                };
                self.set(key, format!("client, peer {}", p.peer), mode);
            }
            Reply::Error { id, text } => {
                self.count(|s| s.errors += 1);
                match lock(&self.pending).remove(id) {
                    Some(p) => self.log(format!(
                        "flow {} -> {} ({mode}): handshake with {} FAILED: {text}; the flow times out",
                        p.local, p.remote, p.peer
                    )),
                    None => self.log(format!("{mode} worker: error for unknown request {id}: {text}")),
                }
            }
            Reply::Accepted {
                peer_node: peer,
                context,
                secret,
            } => {
                self.count(|s| s.accepted += 1);
                let Some(ctx) = decode_context(context) else {
                    self.count(|s| s.refused_claims += 1);
                    return self.log(format!(
                        "{mode}: a handshake from {peer} with a malformed flow context ({} bytes): ignored",
                        context.len()
                    ));
                };
                if let Err(why) = self.check_claim(peer, &ctx) {
                    self.count(|s| s.refused_claims += 1);
                    return self.log(format!(
                        "{mode}: refusing flow {} -> {} from {peer}: {why}",
                        ctx.client, ctx.server
                    ));
                }
                let key = FlowKey {
                    local: ctx.server,
                    remote: ctx.client,
                    client_isn: Some(ctx.client_isn),
                    server_isn: Some(ctx.server_isn),
                    secret: *secret,
                };
                self.set(key, format!("server, peer {peer}"), mode);
            }
            Reply::Refused { text } => {
                self.count(|s| s.refused_handshakes += 1);
                let unlogged = {
                    let mut last = lock(&self.refused_log);
                    let now = Instant::now();
                    if last
                        .0
                        .is_some_and(|t| now.duration_since(t) < REFUSED_LOG_EVERY)
                    {
                        last.1 += 1;
                        return;
                    }
                    last.0 = Some(now);
                    std::mem::take(&mut last.1)
                };
                match unlogged {
                    0 => self.log(format!("{mode} worker refused a handshake: {text}")),
                    n => self.log(format!(
                        "{mode} worker refused a handshake: {text} ({n} more refused since the last such line)"
                    )),
                }
            }
        }
    }

    /// A server-side claim: the client's address is a pod of node `peer`
    /// (whose certificate the worker checked), the server's a pod of a node
    /// this kernel serves.
    fn check_claim(&self, peer: &str, ctx: &FlowContext) -> Result<(), String> {
        let (client_node, server_node) = {
            let dir = read(&self.directory);
            (
                dir.node_of_ip(ctx.client.ip()).map(str::to_owned),
                dir.node_of_ip(ctx.server.ip()).map(str::to_owned),
            )
        };
        match client_node {
            Some(n) if n == peer => {}
            Some(n) => {
                return Err(format!(
                    "the mapping places {} on node {n}, not {peer}",
                    ctx.client.ip()
                ))
            }
            None => return Err(format!("{} is no pod of the mapping", ctx.client.ip())),
        }
        let Some(server_node) = server_node else {
            return Err(format!("{} is no pod of the mapping", ctx.server.ip()));
        };
        if self.is_local(&server_node) {
            Ok(())
        } else {
            Err(format!(
                "{} is on node {server_node}, which this kernel does not serve",
                ctx.server.ip()
            ))
        }
    }

    /// Whether this kernel serves `node` (`node local`, cached for 2 s and
    /// re-read on a miss; this agent's own node if the kernel names none).
    fn is_local(&self, node: &str) -> bool {
        if node == self.me {
            return true;
        }
        let mut cache = lock(&self.local_nodes);
        if let Some((at, nodes)) = cache.as_ref() {
            if nodes.iter().any(|n| n == node) {
                return true;
            }
            if at.elapsed() < Duration::from_millis(200) {
                return false;
            }
        }
        match self.kernel.local_nodes() {
            Ok(nodes) => {
                let found = nodes.iter().any(|n| n == node);
                *cache = Some((Instant::now(), nodes));
                found
            }
            Err(e) => {
                self.log(format!("cannot read the kernel's local nodes: {e}"));
                false
            }
        }
    }

    /// `flow-key-set`, retried on `ENOENT` (the flow not decided yet) every
    /// `retry_every` for up to `retry_for`, in a thread of its own so the
    /// worker's other lines are not held up.
    fn set(&self, key: FlowKey, what: String, mode: Mode) {
        let result = self.kernel.flow_key_set(&key);
        if result != Err(FlowKeySetError::NoSuchFlow) {
            return report(&self.stats, &self.log, &key, &what, mode, 1, result);
        }
        let kernel = self.kernel.clone();
        let (stats, log, settings) = (self.stats.clone(), self.log.clone(), self.settings);
        thread::spawn(move || {
            let start = Instant::now();
            let mut tries = 1;
            let result = loop {
                thread::sleep(settings.retry_every);
                tries += 1;
                match kernel.flow_key_set(&key) {
                    Err(FlowKeySetError::NoSuchFlow) if start.elapsed() < settings.retry_for => {}
                    other => break other,
                }
            };
            report(&stats, &log, &key, &what, mode, tries, result);
        });
    }
}

/// Counts and logs how a `flow-key-set` ended (never the secret).
fn report(
    stats: &Mutex<FlowStats>,
    log: &Log,
    key: &FlowKey,
    what: &str,
    mode: Mode,
    tries: u32,
    result: Result<(), FlowKeySetError>,
) {
    let tries = if tries > 1 {
        format!(", {tries} tries")
    } else {
        String::new()
    };
    let line = match result {
        Ok(()) => {
            lock(stats).keyed += 1;
            format!(
                "flow {} -> {} keyed ({mode}, {what}{tries})",
                key.local, key.remote
            )
        }
        Err(e) => {
            lock(stats).set_failures += 1;
            format!(
                "flow {} -> {} ({mode}, {what}): flow-key-set FAILED{tries}: {e}",
                key.local, key.remote
            )
        }
    };
    log(&line);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
