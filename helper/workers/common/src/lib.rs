//! Shared logic of the tlshub handshake workers (`tlshub-worker-openssl`,
//! `tlshub-worker-boring`): one full TLS 1.3 handshake per secured flow, both
//! ends exporting a 32-byte per-flow secret (spec/key-schedule.md §11).
//!
//! Everything except the TLS library lives here: the command line, the line
//! protocol on stdin/stdout that the agent drives, the flow context, the
//! framing after the handshake, the thread-per-connection server and the
//! client driver. Each library crate only implements [`Tls`] and calls
//! [`run`]. This crate has no TLS dependency, so the agent can use
//! [`encode_context`], [`Request`] and [`Reply`] through a path dependency.
//!
//! # Line protocol (UTF-8, one `\n`-terminated line each)
//!
//! stdout (one writer at a time, flushed after each line):
//! - `ready ADDR:PORT` once, after binding `--listen` (the actual address);
//! - `secret ID SECRET_HEX` / `error ID TEXT` answering `connect ID ...`;
//! - `accepted PEER_NODE CONTEXT_HEX SECRET_HEX` / `refused TEXT` for each
//!   connection a peer's worker made to our listening socket.
//!
//! stdin: `connect ID PEER_NODE HOST:PORT CONTEXT_HEX`; EOF ends the worker
//! (exit 0).
//!
//! # After the handshake (inside TLS)
//!
//! client → server: `u8 len | node name | u16 BE len | context`;
//! server → client: one byte `0x01` once it exported the secret. Both export
//! `TLS-Exporter(EXPORTER_LABEL, context, 32)`.

use std::io::{self, BufRead, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// RFC 8446 §7.5 exporter label of the per-flow secret.
pub const EXPORTER_LABEL: &str = "EXPORTER-tlshub-flow-v1";
/// Length of the exported per-flow secret.
pub const SECRET_LEN: usize = 32;
/// Context length for an IPv4 flow: 4+2+4+2+4+4.
pub const CONTEXT_LEN_V4: usize = 20;
/// Context length for an IPv6 flow: 16+2+16+2+4+4.
pub const CONTEXT_LEN_V6: usize = 44;
/// The server's "I exported the secret" byte.
pub const CONFIRM: u8 = 0x01;
/// Client: TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Client: whole request (connect, handshake, exchange, export).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Server: whole accepted connection (handshake, reads, confirmation).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Server: connections served at once, in all (each costs two threads).
pub const MAX_CONNECTIONS: usize = 64;
/// Server: connections served at once from one source address; more are
/// closed before any TLS (review-agent M1: a pod opening hundreds of silent
/// connections must not hold every slot, nor make the process run out of
/// threads).
pub const MAX_PER_SOURCE: usize = 8;
/// Connections closed over the limits are logged at most this often.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

pub const USAGE: &str = "usage: --node NAME --cert PEM --key PEM --ca PEM --listen ADDR:PORT";

// --- secrets ----------------------------------------------------------------

/// Overwrite `buf` with zeros in a way the optimizer keeps.
pub fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference to a u8.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// A 32-byte per-flow secret, wiped when dropped.
pub struct Secret(pub [u8; SECRET_LEN]);

impl Secret {
    pub fn zero() -> Self {
        Secret([0; SECRET_LEN])
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

// --- hex --------------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append the lowercase hex of `bytes` to `out`.
pub fn hex_encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Lowercase hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    let mut v = Vec::new();
    hex_encode_into(bytes, &mut v);
    String::from_utf8(v).expect("hex is ASCII")
}

/// Decode hex (either case); `None` for odd length or a non-hex digit.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

// --- flow context -----------------------------------------------------------

fn ip_bytes(ip: IpAddr, v6: bool, out: &mut Vec<u8>) {
    match (ip, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), _) => out.extend_from_slice(&a.octets()),
    }
}

/// The exporter context of a flow in the client's order (spec §11):
/// `client_ip | client_port | server_ip | server_port | client_isn | server_isn`,
/// addresses 4 (IPv4) or 16 (IPv6) bytes, ports u16 BE, ISNs u32 BE: 20 or 44
/// bytes. Should the two addresses differ in family, the IPv4 one is written
/// IPv4-mapped (16 bytes) so the context stays well formed.
pub fn encode_context(
    client: SocketAddr,
    server: SocketAddr,
    client_isn: u32,
    server_isn: u32,
) -> Vec<u8> {
    let v6 = client.is_ipv6() || server.is_ipv6();
    let mut out = Vec::with_capacity(if v6 { CONTEXT_LEN_V6 } else { CONTEXT_LEN_V4 });
    ip_bytes(client.ip(), v6, &mut out);
    out.extend_from_slice(&client.port().to_be_bytes());
    ip_bytes(server.ip(), v6, &mut out);
    out.extend_from_slice(&server.port().to_be_bytes());
    out.extend_from_slice(&client_isn.to_be_bytes());
    out.extend_from_slice(&server_isn.to_be_bytes());
    out
}

/// Inverse of [`encode_context`]: `(client, server, client_isn, server_isn)`,
/// `None` unless the length is 20 or 44.
pub fn decode_context(ctx: &[u8]) -> Option<(SocketAddr, SocketAddr, u32, u32)> {
    let alen = match ctx.len() {
        CONTEXT_LEN_V4 => 4,
        CONTEXT_LEN_V6 => 16,
        _ => return None,
    };
    let ip = |b: &[u8]| -> IpAddr {
        if alen == 4 {
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).unwrap()))
        } else {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()))
        }
    };
    let u16_at = |i: usize| u16::from_be_bytes([ctx[i], ctx[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes(ctx[i..i + 4].try_into().unwrap());
    let client = SocketAddr::new(ip(&ctx[..alen]), u16_at(alen));
    let s = alen + 2;
    let server = SocketAddr::new(ip(&ctx[s..s + alen]), u16_at(s + alen));
    let i = 2 * alen + 4;
    Some((client, server, u32_at(i), u32_at(i + 4)))
}

// --- names and text ---------------------------------------------------------

/// A node name as the protocol carries it: 1–253 bytes of printable ASCII
/// without spaces (it is a DNS SAN of the node's certificate).
pub fn valid_node_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// `s` made into one protocol-safe line: control characters (newlines
/// included) become spaces, surrounding space is trimmed.
pub fn one_line(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let t = t.trim();
    if t.is_empty() {
        "unknown failure".into()
    } else {
        t.into()
    }
}

// --- command line -----------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's name (a DNS SAN of `cert`), sent to servers we connect to.
    pub node: String,
    /// PEM: node certificate (optionally followed by intermediates).
    pub cert: PathBuf,
    /// PEM: its private key, PKCS#8 or SEC1 (or PKCS#1 RSA).
    pub key: PathBuf,
    /// PEM: the cluster CA certificate(s) trusted for both roles.
    pub ca: PathBuf,
    /// Address the server side listens on; port 0 picks one.
    pub listen: SocketAddr,
}

/// Parse `--node NAME --cert PEM --key PEM --ca PEM --listen ADDR:PORT`
/// (each also as `--flag=value`). The error names the flag at fault.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Config, String> {
    let mut node = None;
    let mut cert = None;
    let mut key = None;
    let mut ca = None;
    let mut listen = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--node" => &mut node,
            "--cert" => &mut cert,
            "--key" => &mut key,
            "--ca" => &mut ca,
            "--listen" => &mut listen,
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("{flag}: missing value"))?,
        };
        if value.is_empty() {
            return Err(format!("{flag}: empty value"));
        }
        if slot.replace(value).is_some() {
            return Err(format!("{flag}: given twice"));
        }
    }
    let node = node.ok_or("--node: missing")?;
    if !valid_node_name(&node) {
        return Err(format!(
            "--node: {node:?} is not a node name (1-253 printable ASCII, no spaces)"
        ));
    }
    let listen = listen.ok_or("--listen: missing")?;
    let listen = listen
        .parse::<SocketAddr>()
        .map_err(|e| format!("--listen: {listen:?}: {e} (want IP:PORT)"))?;
    Ok(Config {
        node,
        cert: cert.ok_or("--cert: missing")?.into(),
        key: key.ok_or("--key: missing")?.into(),
        ca: ca.ok_or("--ca: missing")?.into(),
        listen,
    })
}

// --- line protocol ----------------------------------------------------------

/// A line the agent writes to the worker's stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `connect ID PEER_NODE HOST:PORT CONTEXT_HEX`
    Connect {
        id: u64,
        peer_node: String,
        addr: String,
        context: Vec<u8>,
    },
}

impl Request {
    /// The line, with its `\n`.
    pub fn format(&self) -> String {
        match self {
            Request::Connect {
                id,
                peer_node,
                addr,
                context,
            } => format!("connect {id} {peer_node} {addr} {}\n", hex_encode(context)),
        }
    }
}

/// Why a stdin line was rejected; `id` when the line had a usable one (the
/// worker then answers `error ID TEXT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub id: Option<u64>,
    pub text: String,
}

/// Parse one stdin line (without or with its `\n`).
pub fn parse_request(line: &str) -> Result<Request, BadRequest> {
    let line = line.trim_end_matches(['\n', '\r']);
    let f: Vec<&str> = line.split(' ').collect();
    let bad = |id, text: String| BadRequest { id, text };
    match f.first().copied() {
        Some("connect") => {}
        Some(other) => return Err(bad(None, format!("unknown command {:?}", one_line(other)))),
        None => return Err(bad(None, "empty line".into())),
    }
    let id = match f.get(1).map(|s| s.parse::<u64>()) {
        Some(Ok(id)) => id,
        _ => return Err(bad(None, "connect: missing or bad ID".into())),
    };
    if f.len() != 5 {
        return Err(bad(
            Some(id),
            format!(
                "bad request: want 'connect ID PEER_NODE HOST:PORT CONTEXT_HEX', got {} fields",
                f.len()
            ),
        ));
    }
    let peer_node = f[2];
    if !valid_node_name(peer_node) {
        return Err(bad(Some(id), "bad request: bad PEER_NODE".into()));
    }
    let addr = f[3];
    if addr
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(bad(
            Some(id),
            format!("bad request: bad HOST:PORT {:?}", one_line(addr)),
        ));
    }
    let context = hex_decode(f[4])
        .ok_or_else(|| bad(Some(id), "bad request: CONTEXT_HEX is not hex".into()))?;
    if decode_context(&context).is_none() {
        return Err(bad(
            Some(id),
            format!(
                "bad request: context is {} bytes, want {CONTEXT_LEN_V4} or {CONTEXT_LEN_V6}",
                context.len()
            ),
        ));
    }
    Ok(Request::Connect {
        id,
        peer_node: peer_node.into(),
        addr: addr.into(),
        context,
    })
}

/// A line the worker writes to stdout.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Ready(SocketAddr),
    Secret {
        id: u64,
        secret: [u8; SECRET_LEN],
    },
    Error {
        id: u64,
        text: String,
    },
    Accepted {
        peer_node: String,
        context: Vec<u8>,
        secret: [u8; SECRET_LEN],
    },
    Refused {
        text: String,
    },
}

impl Reply {
    /// The line, with its `\n`, as bytes (wipe them after use if they hold a
    /// secret: see [`wipe`]).
    pub fn format(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        match self {
            Reply::Ready(a) => out.extend_from_slice(format!("ready {a}").as_bytes()),
            Reply::Secret { id, secret } => {
                out.extend_from_slice(format!("secret {id} ").as_bytes());
                hex_encode_into(secret, &mut out);
            }
            Reply::Error { id, text } => {
                out.extend_from_slice(format!("error {id} {}", one_line(text)).as_bytes())
            }
            Reply::Accepted {
                peer_node,
                context,
                secret,
            } => {
                out.extend_from_slice(format!("accepted {peer_node} ").as_bytes());
                hex_encode_into(context, &mut out);
                out.push(b' ');
                hex_encode_into(secret, &mut out);
            }
            Reply::Refused { text } => {
                out.extend_from_slice(format!("refused {}", one_line(text)).as_bytes())
            }
        }
        out.push(b'\n');
        out
    }

    /// Parse one stdout line (for the agent and the tests).
    pub fn parse(line: &str) -> Option<Reply> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (kind, rest) = line.split_once(' ')?;
        let secret = |s: &str| -> Option<[u8; SECRET_LEN]> {
            if s.len() != 2 * SECRET_LEN {
                return None;
            }
            let mut v = hex_decode(s)?;
            let mut out = [0u8; SECRET_LEN];
            out.copy_from_slice(&v);
            // The decoded copy is wiped before it is freed.
            wipe(&mut v);
            Some(out)
        };
        match kind {
            "ready" => Some(Reply::Ready(rest.parse().ok()?)),
            "secret" => {
                let (id, s) = rest.split_once(' ')?;
                Some(Reply::Secret {
                    id: id.parse().ok()?,
                    secret: secret(s)?,
                })
            }
            "error" => {
                let (id, text) = rest.split_once(' ')?;
                Some(Reply::Error {
                    id: id.parse().ok()?,
                    text: text.into(),
                })
            }
            "accepted" => {
                let f: Vec<&str> = rest.split(' ').collect();
                if f.len() != 3 {
                    return None;
                }
                Some(Reply::Accepted {
                    peer_node: f[0].into(),
                    context: hex_decode(f[1])?,
                    secret: secret(f[2])?,
                })
            }
            "refused" => Some(Reply::Refused { text: rest.into() }),
            _ => None,
        }
    }
}

/// stdout, one line at a time.
pub struct Out {
    inner: Mutex<io::Stdout>,
}

impl Out {
    fn new() -> Self {
        Out {
            inner: Mutex::new(io::stdout()),
        }
    }

    /// Write `reply` as one line, flush, wipe the formatted bytes. A broken
    /// stdout means the agent is gone: exit.
    pub fn emit(&self, reply: &Reply) {
        let mut line = reply.format();
        let res = {
            let mut o = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            o.write_all(&line).and_then(|_| o.flush())
        };
        wipe(&mut line);
        if let Err(e) = res {
            eprintln!("stdout: {e}; exiting");
            std::process::exit(1);
        }
    }
}

// --- the TLS library seam ---------------------------------------------------

/// What each TLS library crate implements. Configuration for both roles:
/// TLS 1.3 only, our certificate and key, trust only the CA file.
pub trait Tls: Send + Sync + Sized + 'static {
    type Stream: Read + Write + Send;

    /// Load certificate, key and CA from `cfg`; build client and server
    /// contexts. The error says which file or step failed.
    fn new(cfg: &Config) -> Result<Self, String>;

    /// Client handshake over `tcp`: send our certificate, verify the
    /// server's chain to the CA and that a DNS SAN of its certificate is
    /// `peer_node`. Errors are one-line descriptions.
    fn connect(&self, tcp: TcpStream, peer_node: &str) -> Result<Self::Stream, String>;

    /// Server handshake over `tcp`: require a client certificate chaining to
    /// the CA.
    fn accept(&self, tcp: TcpStream) -> Result<Self::Stream, String>;

    /// The peer certificate's DNS SANs; `None` if there is no peer
    /// certificate.
    fn peer_dns_sans(stream: &Self::Stream) -> Option<Vec<String>>;

    /// RFC 8446 §7.5 exporter with a context.
    fn export(
        stream: &Self::Stream,
        label: &str,
        context: &[u8],
        out: &mut [u8],
    ) -> Result<(), String>;

    /// Best-effort TLS close (close_notify).
    fn close(_stream: &mut Self::Stream) {}

    /// One-line text of an I/O error from `Stream` after the handshake (a
    /// library may unwrap its own error type for a shorter text).
    fn io_text(e: &io::Error) -> String {
        e.to_string()
    }
}

// --- deadlines --------------------------------------------------------------

/// Shuts the socket down when `limit` passes before it is dropped, so any
/// blocked read or write in the TLS library returns.
struct Watchdog {
    _stop: mpsc::Sender<()>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(tcp: &TcpStream, limit: Duration) -> io::Result<Watchdog> {
        let sock = tcp.try_clone()?;
        let (stop, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                    f.store(true, Ordering::SeqCst);
                    let _ = sock.shutdown(Shutdown::Both);
                }
            })?;
        Ok(Watchdog { _stop: stop, fired })
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// A failed step: which one and why.
struct Fail {
    step: &'static str,
    detail: String,
}

fn fail<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> Fail {
    move |e| Fail {
        step,
        detail: e.to_string(),
    }
}

impl Fail {
    fn text(&self, dog: Option<&Watchdog>, limit: Duration) -> String {
        if dog.is_some_and(|d| d.fired()) {
            format!("{}: timed out ({} s limit)", self.step, limit.as_secs())
        } else {
            format!("{}: {}", self.step, one_line(&self.detail))
        }
    }
}

fn read_eof_msg<T: Tls>(e: io::Error, what: &str) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        format!("peer closed the connection before sending {what}")
    } else {
        T::io_text(&e)
    }
}

fn io_fail<T: Tls>(step: &'static str) -> impl FnOnce(io::Error) -> Fail {
    move |e| Fail {
        step,
        detail: T::io_text(&e),
    }
}

// --- client -----------------------------------------------------------------

/// Run one `connect` request: the secret, or the `error` text.
pub fn client_flow<T: Tls>(
    tls: &T,
    node: &str,
    peer_node: &str,
    addr: &str,
    context: &[u8],
) -> Result<Secret, String> {
    let start = Instant::now();
    let remaining = || REQUEST_TIMEOUT.saturating_sub(start.elapsed());
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {}", one_line(&e.to_string())))?
        .collect();
    let mut tcp = None;
    let mut last = String::from("no address");
    for a in &addrs {
        let t = CONNECT_TIMEOUT.min(remaining());
        if t.is_zero() {
            last = "timed out".into();
            break;
        }
        match TcpStream::connect_timeout(a, t) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let tcp = tcp.ok_or_else(|| format!("connect {addr}: {}", one_line(&last)))?;
    let left = remaining();
    let dog = Watchdog::start(&tcp, left).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(left.max(Duration::from_millis(1))));
    let _ = tcp.set_write_timeout(Some(left.max(Duration::from_millis(1))));
    client_steps(tls, tcp, node, peer_node, context)
        .map_err(|f| f.text(Some(&dog), REQUEST_TIMEOUT))
}

fn client_steps<T: Tls>(
    tls: &T,
    tcp: TcpStream,
    node: &str,
    peer_node: &str,
    context: &[u8],
) -> Result<Secret, Fail> {
    let mut s = tls.connect(tcp, peer_node).map_err(fail("handshake"))?;
    // The library checked the name already; insist on an exact DNS SAN
    // (no wildcard, no case folding), as the agent maps names exactly.
    let sans = T::peer_dns_sans(&s).unwrap_or_default();
    if !sans.iter().any(|n| n == peer_node) {
        return Err(Fail {
            step: "handshake",
            detail: format!("server certificate has no DNS SAN {peer_node} (has {sans:?})"),
        });
    }
    let ctx_len = u16::try_from(context.len()).map_err(fail("send"))?;
    let name_len = u8::try_from(node.len()).map_err(fail("send"))?;
    let mut msg = Vec::with_capacity(3 + node.len() + context.len());
    msg.push(name_len);
    msg.extend_from_slice(node.as_bytes());
    msg.extend_from_slice(&ctx_len.to_be_bytes());
    msg.extend_from_slice(context);
    s.write_all(&msg)
        .and_then(|_| s.flush())
        .map_err(io_fail::<T>("send"))?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).map_err(|e| Fail {
        step: "confirmation",
        detail: read_eof_msg::<T>(e, "its confirmation (the server refused the flow)"),
    })?;
    if b[0] != CONFIRM {
        return Err(Fail {
            step: "confirmation",
            detail: format!("server sent 0x{:02x}, not 0x01", b[0]),
        });
    }
    let mut secret = Secret::zero();
    T::export(&s, EXPORTER_LABEL, context, &mut secret.0).map_err(fail("export"))?;
    T::close(&mut s);
    Ok(secret)
}

// --- server -----------------------------------------------------------------

/// What a served connection yields: peer node, context, secret.
pub struct Accepted {
    pub peer_node: String,
    pub context: Vec<u8>,
    pub secret: Secret,
}

/// Serve one accepted connection: the `accepted` data or the `refused` text.
pub fn server_flow<T: Tls>(tls: &T, tcp: TcpStream, peer: SocketAddr) -> Result<Accepted, String> {
    let dog = Watchdog::start(&tcp, SERVER_TIMEOUT).map_err(|e| format!("{peer}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(SERVER_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(SERVER_TIMEOUT));
    server_steps(tls, tcp).map_err(|f| format!("{peer}: {}", f.text(Some(&dog), SERVER_TIMEOUT)))
}

fn server_steps<T: Tls>(tls: &T, tcp: TcpStream) -> Result<Accepted, Fail> {
    let mut s = tls.accept(tcp).map_err(fail("handshake"))?;
    let sans = T::peer_dns_sans(&s).ok_or_else(|| Fail {
        step: "handshake",
        detail: "no client certificate".into(),
    })?;
    let rd = |e| read_eof_msg::<T>(e, "its node name and context");
    let mut b1 = [0u8; 1];
    s.read_exact(&mut b1).map_err(|e| Fail {
        step: "read",
        detail: rd(e),
    })?;
    let mut name = vec![0u8; b1[0] as usize];
    s.read_exact(&mut name).map_err(|e| Fail {
        step: "read",
        detail: rd(e),
    })?;
    let name = String::from_utf8(name)
        .ok()
        .filter(|n| valid_node_name(n))
        .ok_or_else(|| Fail {
            step: "node name",
            detail: "claimed node name is not a valid name".into(),
        })?;
    let mut b2 = [0u8; 2];
    s.read_exact(&mut b2).map_err(|e| Fail {
        step: "read",
        detail: rd(e),
    })?;
    let clen = u16::from_be_bytes(b2) as usize;
    if clen != CONTEXT_LEN_V4 && clen != CONTEXT_LEN_V6 {
        return Err(Fail {
            step: "context",
            detail: format!(
                "{name} sent a {clen}-byte context (want {CONTEXT_LEN_V4} or {CONTEXT_LEN_V6})"
            ),
        });
    }
    let mut context = vec![0u8; clen];
    s.read_exact(&mut context).map_err(|e| Fail {
        step: "read",
        detail: rd(e),
    })?;
    if !sans.contains(&name) {
        return Err(Fail {
            step: "node name",
            detail: format!(
                "claimed node {name} is not a DNS SAN of the client certificate {sans:?}"
            ),
        });
    }
    let mut secret = Secret::zero();
    T::export(&s, EXPORTER_LABEL, &context, &mut secret.0).map_err(fail("export"))?;
    s.write_all(&[CONFIRM])
        .and_then(|_| s.flush())
        .map_err(io_fail::<T>("confirm"))?;
    T::close(&mut s);
    Ok(Accepted {
        peer_node: name,
        context,
        secret,
    })
}

// --- the worker -------------------------------------------------------------

/// Who holds the server's slots: per source address, and in all.
#[derive(Default)]
struct Slots {
    held: Mutex<(usize, std::collections::HashMap<IpAddr, usize>)>,
    /// Connections closed over a limit, and when that was last said.
    refused: Mutex<(u64, Option<Instant>)>,
}

/// One slot, given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.1.get(&ip).copied().unwrap_or(0);
        if held.0 >= MAX_CONNECTIONS || mine >= MAX_PER_SOURCE {
            return None;
        }
        held.0 += 1;
        held.1.insert(ip, mine + 1);
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }

    /// A connection closed over a limit: one stderr line every
    /// [`REFUSAL_LOG_EVERY`] at most (the agent's own limit lines go at
    /// the same pace), with the total so far.
    fn refuse(&self, peer: SocketAddr) {
        let mut r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        r.0 += 1;
        if r.1.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
            r.1 = Some(Instant::now());
            eprintln!(
                "over the connection limits ({MAX_PER_SOURCE} per source, {MAX_CONNECTIONS} in all): closed one from {peer} ({} so far)",
                r.0
            );
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        held.0 = held.0.saturating_sub(1);
        if let Some(n) = held.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.1.remove(&self.ip);
            }
        }
    }
}

fn accept_loop<T: Tls>(tls: Arc<T>, listener: TcpListener, out: Arc<Out>) {
    let slots = Arc::new(Slots::default());
    loop {
        match listener.accept() {
            Ok((tcp, peer)) => {
                // Over a limit: closed here, before any TLS or thread.
                let Some(slot) = slots.take(peer.ip()) else {
                    drop(tcp);
                    slots.refuse(peer);
                    continue;
                };
                let tls = tls.clone();
                let out2 = out.clone();
                let spawned = thread::Builder::new().name("serve".into()).spawn(move || {
                    let _slot = slot;
                    let mut reply = match server_flow(&*tls, tcp, peer) {
                        Ok(mut a) => Reply::Accepted {
                            peer_node: std::mem::take(&mut a.peer_node),
                            context: std::mem::take(&mut a.context),
                            secret: a.secret.0,
                        },
                        Err(text) => Reply::Refused { text },
                    };
                    out2.emit(&reply);
                    if let Reply::Accepted { secret, .. } = &mut reply {
                        wipe(secret);
                    }
                });
                if let Err(e) = spawned {
                    out.emit(&Reply::Refused {
                        text: format!("{peer}: cannot start a thread: {e}"),
                    });
                }
            }
            Err(e) => {
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn handle_line<T: Tls>(tls: &Arc<T>, node: &Arc<str>, out: &Arc<Out>, line: &str) {
    match parse_request(line) {
        Ok(Request::Connect {
            id,
            peer_node,
            addr,
            context,
        }) => {
            let (tls, node, out2) = (tls.clone(), node.clone(), out.clone());
            let spawned =
                thread::Builder::new().name(format!("connect-{id}")).spawn(
                    move || match client_flow(&*tls, &node, &peer_node, &addr, &context) {
                        Ok(secret) => {
                            let mut r = Reply::Secret {
                                id,
                                secret: secret.0,
                            };
                            out2.emit(&r);
                            if let Reply::Secret { secret, .. } = &mut r {
                                wipe(secret);
                            }
                        }
                        Err(text) => out2.emit(&Reply::Error { id, text }),
                    },
                );
            if let Err(e) = spawned {
                out.emit(&Reply::Error {
                    id,
                    text: format!("cannot start a thread: {e}"),
                });
            }
        }
        Err(BadRequest { id: Some(id), text }) => out.emit(&Reply::Error { id, text }),
        Err(BadRequest { id: None, text }) => eprintln!("stdin: ignored line: {text}"),
    }
}

/// The whole worker: parse the command line (exit 2 on a bad one), load the
/// TLS configuration (exit 1), bind, print `ready`, serve, and answer stdin
/// until EOF (exit 0). `prog` names the binary in messages.
pub fn run<T: Tls>(prog: &str) -> ! {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{prog}: {e}\n{prog}: {USAGE}");
            std::process::exit(2);
        }
    };
    let tls = match T::new(&cfg) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("{prog}: {}", one_line(&e));
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(cfg.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{prog}: --listen {}: {e}", cfg.listen);
            std::process::exit(1);
        }
    };
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{prog}: --listen {}: {e}", cfg.listen);
            std::process::exit(1);
        }
    };
    let out = Arc::new(Out::new());
    out.emit(&Reply::Ready(bound));
    {
        let (tls, out) = (tls.clone(), out.clone());
        thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(tls, listener, out))
            .unwrap_or_else(|e| {
                eprintln!("{prog}: cannot start the accept thread: {e}");
                std::process::exit(1);
            });
    }
    let node: Arc<str> = cfg.node.into();
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf) {
            Ok(0) => std::process::exit(0),
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if line.trim().is_empty() {
                    continue;
                }
                handle_line(&tls, &node, &out, &line);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("{prog}: stdin: {e}");
                std::process::exit(0);
            }
        }
    }
}
