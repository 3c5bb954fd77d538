//! The TLSHub agent (`tlshubd`): one per node, it gives the kernel module
//! the node-pair secret for every peer node, made by a mutually
//! authenticated TLS 1.3 handshake between the two nodes' agents.
//!
//! # What a session is
//!
//! An agent listens on its node's TLSHub address (the mapping's `node NAME
//! ADDR[:PORT]`, port 7443 by default). A session with peer node P is one TCP
//! connection to P's agent, a TLS 1.3 handshake with certificates of the
//! cluster CA checked both ways ([`tls`]: the client wants `ServerName` = P;
//! the server wants a client certificate whose SAN names a mapped node, and
//! then that it names the node the client claims in its `Hello`), and then
//! the pair protocol ([`protocol`]):
//!
//! ```text
//!  initiator (client)                          responder (server)
//!  Hello{me, P, epoch I know}  ───────────────►  checks the claim against the certificate
//!                              ◄───────────────  Hello{P, me, epoch it knows}   (or Busy / Refuse)
//!  the pair's leader (lower name, either role):
//!  Install{e = max(both epochs) + 1}  ─────────►  follower installs (peer-set e), then
//!                              ◄───────────────  Installed{e}
//!  leader installs (peer-set e), then
//!  Done{e}                      ───────────────►
//! ```
//!
//! The secret is the TLS exporter of that handshake (label
//! `EXPORTER-tlshub-node-pair-v1`, context lower name · 0x00 · higher name,
//! 32 bytes): both ends compute the same bytes without sending them. The
//! follower installs first, so that by the time the leader's flows use the
//! new secret the follower has it too; flows started during that one round
//! trip, on the side that already switched, get keys the other side does
//! not (the epoch is not on the wire) and fail closed.
//!
//! # Exactly one session per pair
//!
//! Each agent keeps, per peer, the number of sessions running
//! ([`session`]). A key request, the start-up round, a renewal: each asks
//! for a session, and a request for a peer with a session running is
//! coalesced into it (20 flows waiting for a cold peer make one handshake).
//! Both agents may start one at the same moment (both kernels ask: the
//! client's and the server's flows wait). To converge:
//! - the leader answers `Busy` to an incoming session while it has one of
//!   its own for that peer (outgoing or incoming); only its epoch counts;
//! - the follower always serves the leader's incoming session, even with
//!   its own outgoing one running; that one gets `Busy`, and then waits for
//!   the leader's session to install a secret (the per-peer generation
//!   changes) instead of failing;
//! - an outgoing session that finds the pair's secret installed by another
//!   session after it began (while it was connecting) stops before `Hello`.
//!
//! The kernel refuses an epoch older than the current one and different
//! bytes under an existing epoch, so even two sessions that both complete
//! leave both kernels at the higher epoch with the same secret.
//!
//! # Proactive, renewal, restart
//!
//! At start the agent asks the kernel for its peers (`peer-get`): peers with
//! waiting flows are served first (a restarted agent unblocks flows that
//! were already waiting), then every node of the mapping gets a session.
//! The leader renews a secret after 2/3 of its lifetime, the follower after
//! 3/4 if the leader did not. The mapping file is re-read when it changes.
//!
//! # Failures
//!
//! A session that fails (peer unreachable, certificate from another CA,
//! wrong SAN, expired, a refusal) is logged with the reason, never key
//! bytes, and reported to the kernel (`peer-fail`) so that waiting flows
//! fail closed at once (`reset-key-refused`) — unless the kernel still has
//! a valid secret for the peer and nothing waits (a failed renewal does not
//! cut working flows; the secret still expires at the end of its
//! lifetime). Secrets are installed with their lifetime (`peer-set`
//! `lifetime-ms`). Failed sessions are retried with backoff.

pub mod config;
pub mod flowkeys;
pub mod gatekeeper;
pub mod kernel;
pub mod protocol;
pub mod session;
pub mod tls;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use rustls::{ClientConfig, ServerConfig};

pub use config::{AgentConfig, Directory, Settings};
pub use flowkeys::{FlowKeys, FlowSettings, WorkerSpec};
pub use kernel::{Kernel, KernelEvent, NetlinkKernel};
use session::Slot;
use tls::Identity;

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Identity(#[from] tls::IdentityError),
    #[error(transparent)]
    Tls(#[from] tls::SetupError),
    #[error("{0}")]
    Mapping(#[from] crate::source::SourceError),
    #[error("{0}")]
    Config(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One log line on stderr: seconds since `started`, node, message.
fn log_line(me: &str, started: Instant, msg: &str) {
    let t = started.elapsed();
    eprintln!(
        "tlshubd[{me}] {:>5}.{:03} {msg}",
        t.as_secs(),
        t.subsec_millis(),
    );
}

/// Start-up sessions are started this many at a time, START_PAUSE apart.
const START_BURST: usize = 16;
const START_PAUSE: Duration = Duration::from_millis(100);

/// A certificate is warned about this long before it expires.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// A warning when the private key file `key` can be read by its group or
/// by others (as `wg` warns about world-readable keys; review-agent L3):
/// the key is the node's identity towards every peer.
pub fn key_mode_warning(key: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "WARNING: {}: the private key is readable by group or others (mode {mode:03o}); chmod 600 it",
            key.display()
        )
    })
}

/// What tells a file changed: its modification time, length and inode
/// (an atomic replace, even through a symlink swap, changes the inode).
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp(Option<SystemTime>, u64, u64);

impl FileStamp {
    fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp(m.modified().ok(), m.len(), m.ino()))
    }
}

/// One node's agent: shared by its threads.
pub struct Agent {
    me: String,
    settings: Settings,
    identity: RwLock<Arc<Identity>>,
    client_tls: RwLock<Arc<ClientConfig>>,
    server_tls: RwLock<Arc<ServerConfig>>,
    /// The certificate, key and CA files, re-read when they change (review
    /// M3); `None` for an agent built in memory.
    identity_files: Option<[PathBuf; 3]>,
    identity_stamp: Mutex<Vec<Option<FileStamp>>>,
    /// When the expiry warning was last logged.
    expiry_warned: Mutex<Option<Instant>>,
    directory: Arc<RwLock<Directory>>,
    mapping: Option<PathBuf>,
    mapping_mtime: Mutex<Option<SystemTime>>,
    kernel: Arc<dyn Kernel>,
    table: Mutex<HashMap<String, Slot>>,
    changed: Condvar,
    started: Instant,
    installs: AtomicU64,
    /// Limits on the port before a peer said who it is.
    gate: Arc<gatekeeper::Gatekeeper>,
    /// The openssl/boringssl modes' per-flow keys, once enabled.
    flow_keys: OnceLock<Arc<FlowKeys>>,
}

impl Agent {
    /// Builds an agent from its configuration (reads the identity and the
    /// mapping); nothing runs yet.
    pub fn new(config: &AgentConfig, kernel: Arc<dyn Kernel>) -> Result<Arc<Agent>, StartError> {
        let identity = Identity::from_files(&config.cert, &config.key, &config.ca)?;
        let files = [config.cert.clone(), config.key.clone(), config.ca.clone()];
        let stamp = files.iter().map(|f| FileStamp::of(f)).collect();
        let directory = Directory::from_file(&config.mapping)?;
        let mtime = std::fs::metadata(&config.mapping)
            .and_then(|m| m.modified())
            .ok();
        let agent = Agent::with_parts(
            &config.node,
            config.settings,
            identity,
            directory,
            Some(config.mapping.clone()),
            kernel,
        )?;
        if let Ok(mut m) = agent.mapping_mtime.lock() {
            *m = mtime;
        }
        // Built fresh above: this Arc is the only one.
        let mut agent = agent;
        if let Some(a) = Arc::get_mut(&mut agent) {
            a.identity_files = Some(files);
            a.identity_stamp = Mutex::new(stamp);
        }
        agent.warn_expiry();
        Ok(agent)
    }

    /// Builds an agent from parts already in memory (tests).
    pub fn with_parts(
        me: &str,
        settings: Settings,
        identity: Identity,
        directory: Directory,
        mapping: Option<PathBuf>,
        kernel: Arc<dyn Kernel>,
    ) -> Result<Arc<Agent>, StartError> {
        if !directory.contains(me) {
            return Err(StartError::Config(format!(
                "node {me} is not in the mapping"
            )));
        }
        if !identity.names(me) {
            return Err(StartError::Config(format!(
                "the certificate does not name this node ({me}): its SAN must hold DNS:{me}"
            )));
        }
        let client_tls = tls::client_config(&identity)?;
        let server_tls = tls::server_config(&identity, directory.names())?;
        Ok(Arc::new(Agent {
            me: me.to_owned(),
            settings,
            identity: RwLock::new(Arc::new(identity)),
            client_tls: RwLock::new(client_tls),
            server_tls: RwLock::new(server_tls),
            identity_files: None,
            identity_stamp: Mutex::new(Vec::new()),
            expiry_warned: Mutex::new(None),
            directory: Arc::new(RwLock::new(directory)),
            mapping,
            mapping_mtime: Mutex::new(None),
            kernel,
            table: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            started: Instant::now(),
            installs: AtomicU64::new(0),
            gate: gatekeeper::Gatekeeper::start(settings.io_timeout),
            flow_keys: OnceLock::new(),
        }))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.me
    }

    /// Secrets installed by this agent since it started.
    pub fn installs(&self) -> u64 {
        self.installs.load(Ordering::Relaxed)
    }

    /// Connections closed before they said who they are (not a node's
    /// address, too many at once, past the handshake deadline).
    pub fn refusals(&self) -> &gatekeeper::Refusals {
        &self.gate.refusals
    }

    /// Accepted connections being served now.
    pub fn incoming(&self) -> usize {
        self.gate.active()
    }

    /// One log line on stderr: seconds since start, node, message.
    pub fn log(&self, msg: impl AsRef<str>) {
        log_line(&self.me, self.started, msg.as_ref());
    }

    /// The address to listen on: `listen`, or this node's agent address in
    /// the mapping.
    pub fn listen_addr(&self, listen: Option<SocketAddr>) -> Result<SocketAddr, StartError> {
        listen
            .or_else(|| self.dir().agent(&self.me))
            .ok_or_else(|| {
                StartError::Config(format!(
                    "node {} has no address in the mapping (`node {} ADDR[:PORT]`) and no --listen was given",
                    self.me, self.me
                ))
            })
    }

    /// Binds the listening socket.
    pub fn bind(&self, addr: SocketAddr) -> Result<TcpListener, StartError> {
        TcpListener::bind(addr).map_err(|source| StartError::Listen { addr, source })
    }

    /// Runs the agent's threads: the listener, the start-up round (resync
    /// with the kernel, then a session with every peer) and the ticker
    /// (renewals, mapping changes). Returns once they are started.
    pub fn start(self: &Arc<Self>, listener: TcpListener) {
        if let Some([_, key, _]) = &self.identity_files {
            if let Some(w) = key_mode_warning(key) {
                self.log(w);
            }
        }
        self.listen(listener);
        self.resync("start");
        // Every peer gets a session, START_BURST at a time (review-agent
        // L5: 1000 peers are not 1000 handshakes in the same instant).
        let agent = self.clone();
        let peers = self.peers();
        let spread = thread::Builder::new().name("start".into()).spawn(move || {
            for (i, peer) in peers.iter().enumerate() {
                if i > 0 && i % START_BURST == 0 {
                    thread::sleep(START_PAUSE);
                }
                agent.request(peer, "start");
            }
        });
        let agent = self.clone();
        let tick = thread::Builder::new()
            .name("tick".into())
            .spawn(move || agent.tick_loop());
        if let Err(e) = spread.and(tick) {
            self.log(format!(
                "cannot start a thread: {e} (renewals will not run)"
            ));
        }
    }

    /// Serves incoming sessions on `listener` (a thread), and nothing else.
    pub fn listen(self: &Arc<Self>, listener: TcpListener) {
        let agent = self.clone();
        thread::spawn(move || agent.accept_loop(listener));
    }

    /// Enables per-flow keys (the openssl and boringssl modes) and starts
    /// these workers ([`flowkeys`]); a worker whose binary is missing is
    /// logged, and its mode's flows fail closed. Once only: later calls
    /// return the first instance.
    pub fn enable_flow_keys(
        self: &Arc<Self>,
        workers: Vec<WorkerSpec>,
        settings: FlowSettings,
    ) -> Arc<FlowKeys> {
        let mut fresh = false;
        let fk = self.flow_keys.get_or_init(|| {
            fresh = true;
            let (me, started) = (self.me.clone(), self.started);
            let log: flowkeys::Log = Arc::new(move |m: &str| log_line(&me, started, m));
            FlowKeys::new(
                &self.me,
                self.kernel.clone(),
                self.directory.clone(),
                log,
                settings,
            )
        });
        if fresh {
            for w in workers {
                fk.start_worker(w);
            }
        }
        fk.clone()
    }

    /// The per-flow keys, if enabled.
    pub fn flow_keys(&self) -> Option<&Arc<FlowKeys>> {
        self.flow_keys.get()
    }

    /// Handles a kernel event (from [`kernel::watch_key_requests`]).
    pub fn on_kernel_event(self: &Arc<Self>, event: KernelEvent) {
        match event {
            KernelEvent::KeyRequest(peer) => self.key_request(&peer),
            KernelEvent::FlowKeyRequest(req) => match self.flow_keys.get() {
                Some(fk) => fk.on_request(&req),
                None => self.log(format!(
                    "flow {} -> {} ({}) waits for its own key, but per-flow keys are not enabled: it times out",
                    req.local, req.remote, req.mode
                )),
            },
            KernelEvent::Resync => self.resync("resync"),
        }
    }

    /// A key request: a session, unless the kernel already has a secret for
    /// the peer and nothing waits (a request sent just before the last
    /// install and read after it).
    pub fn key_request(self: &Arc<Self>, peer: &str) {
        if let Ok(peers) = self.kernel.peers() {
            if let Some(p) = peers.iter().find(|p| p.name == peer && p.valid) {
                if let (Some(epoch), 0) = (p.epoch, p.pending) {
                    self.log(format!(
                        "key request for {peer}: stale (the kernel has epoch {epoch}, no flow waits)"
                    ));
                    return;
                }
            }
        }
        self.request(peer, "key request");
    }

    /// Serves every peer the kernel has flows waiting for.
    pub fn resync(self: &Arc<Self>, why: &str) {
        match self.kernel.peers() {
            Ok(peers) => {
                for p in peers {
                    self.note_epoch(&p.name, p.last_epoch.max(p.epoch.unwrap_or(0)));
                    if p.pending > 0 {
                        self.log(format!(
                            "{why}: {} flow(s) waiting for peer {}",
                            p.pending, p.name
                        ));
                        self.request(&p.name, "flows waiting");
                    }
                }
            }
            Err(e) => self.log(format!("{why}: cannot read the kernel's peers: {e}")),
        }
    }

    /// The mapping's nodes other than this one.
    pub fn peers(&self) -> Vec<String> {
        self.dir()
            .names()
            .into_iter()
            .filter(|n| *n != self.me)
            .collect()
    }

    fn dir(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-reads the mapping if its file changed: new peer addresses, and the
    /// server accepts client certificates of the new node set.
    fn reload_mapping_if_changed(self: &Arc<Self>) {
        let Some(path) = &self.mapping else { return };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        {
            let Ok(mut last) = self.mapping_mtime.lock() else {
                return;
            };
            if *last == mtime {
                return;
            }
            *last = mtime;
        }
        let directory = match Directory::from_file(path) {
            Ok(d) if d.contains(&self.me) => d,
            Ok(_) => {
                self.log(format!(
                    "mapping {}: node {} is gone from it; keeping the previous mapping",
                    path.display(),
                    self.me
                ));
                return;
            }
            Err(e) => {
                self.log(format!("mapping reload: {e}; keeping the previous mapping"));
                return;
            }
        };
        match tls::server_config(&self.identity(), directory.names()) {
            Ok(server) => {
                if let Ok(mut s) = self.server_tls.write() {
                    *s = server;
                }
            }
            Err(e) => {
                self.log(format!("mapping reload: {e}"));
                return;
            }
        }
        let new: Vec<String> = directory
            .names()
            .into_iter()
            .filter(|n| !self.dir().contains(n) && *n != self.me)
            .collect();
        if let Ok(mut d) = self.directory.write() {
            *d = directory;
        }
        self.log(format!("mapping {} re-read", path.display()));
        for peer in new {
            self.request(&peer, "new node in the mapping");
        }
    }

    fn identity(&self) -> Arc<Identity> {
        self.identity
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The client side's TLS configuration (replaced when the identity is).
    pub(crate) fn client_tls(&self) -> Arc<ClientConfig> {
        self.client_tls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the certificate, key and CA when one of their files changed
    /// (cert-manager and kubelet replace them atomically): new sessions use
    /// them, running ones are not cut. A set that does not load, or whose
    /// certificate does not name this node, is refused with a log line and
    /// the previous identity stays (review M3).
    fn reload_identity_if_changed(&self) {
        let Some(files) = &self.identity_files else {
            return;
        };
        let stamp: Vec<Option<FileStamp>> = files.iter().map(|f| FileStamp::of(f)).collect();
        {
            let Ok(mut last) = self.identity_stamp.lock() else {
                return;
            };
            if *last == stamp {
                return;
            }
            *last = stamp;
        }
        let [cert, key, ca] = files;
        let loaded = Identity::from_files(cert, key, ca)
            .map_err(|e| e.to_string())
            .and_then(|id| {
                if id.names(&self.me) {
                    Ok(id)
                } else {
                    Err(format!(
                        "{}: does not name this node ({})",
                        cert.display(),
                        self.me
                    ))
                }
            })
            .and_then(|id| {
                let client = tls::client_config(&id).map_err(|e| e.to_string())?;
                let server =
                    tls::server_config(&id, self.dir().names()).map_err(|e| e.to_string())?;
                Ok((id, client, server))
            });
        match loaded {
            Ok((id, client, server)) => {
                if let Ok(mut c) = self.client_tls.write() {
                    *c = client;
                }
                if let Ok(mut s) = self.server_tls.write() {
                    *s = server;
                }
                if let Ok(mut i) = self.identity.write() {
                    *i = Arc::new(id);
                }
                self.log(format!(
                    "identity re-read: {}, {}, {} (new sessions use it)",
                    cert.display(),
                    key.display(),
                    ca.display()
                ));
                if let Ok(mut w) = self.expiry_warned.lock() {
                    *w = None;
                }
                self.warn_expiry();
            }
            Err(e) => self.log(format!(
                "identity files changed but cannot be used: {e}; keeping the previous identity"
            )),
        }
    }

    /// Logs a warning when the certificate expires within
    /// [`EXPIRY_WARNING`] (or has expired), at most once an hour.
    fn warn_expiry(&self) {
        let Some(left) = self.identity().expires_in_secs() else {
            return;
        };
        if left > EXPIRY_WARNING.as_secs() as i64 {
            return;
        }
        let Ok(mut last) = self.expiry_warned.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(3600)) {
            return;
        }
        *last = Some(Instant::now());
        if left <= 0 {
            self.log(format!(
                "WARNING: this node's certificate expired {}s ago: peers refuse it",
                -left
            ));
        } else {
            self.log(format!(
                "WARNING: this node's certificate expires in {}h {}m: replace it",
                left / 3600,
                left % 3600 / 60
            ));
        }
    }

    /// Every `tick`: mapping and identity changes, renewals and retries
    /// that are due.
    fn tick_loop(self: Arc<Self>) {
        loop {
            thread::sleep(self.settings.tick);
            self.reload_mapping_if_changed();
            self.reload_identity_if_changed();
            self.warn_expiry();
            for peer in self.due_peers() {
                self.request(&peer, "renewal");
            }
        }
    }
}
