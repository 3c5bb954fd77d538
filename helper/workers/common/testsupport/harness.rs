//! Shared integration tests of the handshake workers, included by each
//! library crate's tests (`#[path = ...] mod harness;`): certificates from
//! rcgen, workers spawned as child processes and driven over stdin/stdout.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tlshub_worker_common::{encode_context, hex_encode, Reply, SECRET_LEN};

// --- certificates ------------------------------------------------------------

pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

pub fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        params,
        key,
    }
}

/// A node certificate with DNS SANs `names`, signed by `ca`: (cert, key) PEM.
pub fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A fresh directory for one test's files, removed when dropped.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(tag: &str) -> Scratch {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "tlshub-worker-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// Files for one node: --cert, --key, --ca.
pub struct NodeFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

pub fn node_files(dir: &Path, tag: &str, cert_ca: &Ca, names: &[&str], trust: &Ca) -> NodeFiles {
    let (cert, key) = leaf(cert_ca, names);
    let f = NodeFiles {
        cert: dir.join(format!("{tag}.crt")),
        key: dir.join(format!("{tag}.key")),
        ca: dir.join(format!("{tag}-ca.crt")),
    };
    std::fs::write(&f.cert, cert).unwrap();
    std::fs::write(&f.key, key).unwrap();
    std::fs::write(&f.ca, &trust.pem).unwrap();
    f
}

// --- workers -------------------------------------------------------------------

pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub addr: SocketAddr,
}

impl Worker {
    pub fn start(bin: &Path, node: &str, f: &NodeFiles) -> Worker {
        let mut child = Command::new(bin)
            .args(["--node", node, "--listen", "127.0.0.1:0"])
            .arg("--cert")
            .arg(&f.cert)
            .arg("--key")
            .arg(&f.key)
            .arg("--ca")
            .arg(&f.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let ready = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{}: no ready line", bin.display()));
        let addr = match Reply::parse(&ready) {
            Some(Reply::Ready(a)) => a,
            _ => panic!("first line {ready:?}"),
        };
        assert_ne!(addr.port(), 0);
        Worker {
            child,
            stdin,
            lines,
            addr,
        }
    }

    pub fn send(&mut self, line: &str) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(line.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        s.flush().unwrap();
    }

    pub fn connect(&mut self, id: u64, peer: &str, addr: SocketAddr, ctx: &[u8]) {
        self.send(&format!("connect {id} {peer} {addr} {}", hex_encode(ctx)));
    }

    pub fn next(&self, within: Duration) -> Reply {
        let l = self.lines.recv_timeout(within).expect("no line in time");
        Reply::parse(&l).unwrap_or_else(|| panic!("unparsable line {l:?}"))
    }

    pub fn next_raw(&self, within: Duration) -> String {
        self.lines.recv_timeout(within).expect("no line in time")
    }

    /// Close stdin: the worker must exit 0.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "exit status {st}");
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "worker did not exit on stdin EOF"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const T: Duration = Duration::from_secs(15);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ctx4() -> Vec<u8> {
    encode_context(
        sa("10.0.0.1:40000"),
        sa("10.0.1.2:8080"),
        0x11223344,
        0x55667788,
    )
}

fn is_hex64(s: &[u8; SECRET_LEN]) -> bool {
    let h = hex_encode(s);
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// --- the scenarios ---------------------------------------------------------------

/// A good flow: both print the same secret; distinct contexts give distinct
/// secrets; several requests in parallel; IPv6 contexts; stdin EOF exits 0.
pub fn good_flow(client_bin: &Path, server_bin: &Path) {
    let d = scratch("good");
    let ca = ca("cluster");
    let fa = node_files(&d, "a", &ca, &["node-a"], &ca);
    let fb = node_files(&d, "b", &ca, &["node-b", "node-b.example"], &ca);
    let mut a = Worker::start(client_bin, "node-a", &fa);
    let b = Worker::start(server_bin, "node-b", &fb);
    let ctx = ctx4();
    a.connect(7, "node-b", b.addr, &ctx);
    let s_client = match a.next(T) {
        Reply::Secret { id: 7, secret } => secret,
        r => panic!("client: {r:?}"),
    };
    let s_server = match b.next(T) {
        Reply::Accepted {
            peer_node,
            context,
            secret,
        } => {
            assert_eq!(peer_node, "node-a");
            assert_eq!(context, ctx);
            secret
        }
        r => panic!("server: {r:?}"),
    };
    assert_eq!(s_client, s_server);
    assert!(is_hex64(&s_client));
    assert_ne!(s_client, [0; 32]);

    // Concurrent requests, IPv4 and IPv6 contexts: all distinct, all matched.
    let mut want = std::collections::HashMap::new();
    for i in 0..8u32 {
        let c = if i % 2 == 0 {
            encode_context(sa("10.0.0.1:40000"), sa("10.0.1.2:8080"), i, 1)
        } else {
            encode_context(sa("[fd00::1]:40000"), sa("[fd00::2]:8080"), i, 1)
        };
        a.connect(100 + i as u64, "node-b", b.addr, &c);
        want.insert(100 + i as u64, c);
    }
    let mut secrets = std::collections::HashMap::new();
    for _ in 0..8 {
        match a.next(T) {
            Reply::Secret { id, secret } => {
                secrets.insert(want[&id].clone(), secret);
            }
            r => panic!("client: {r:?}"),
        }
    }
    for _ in 0..8 {
        match b.next(T) {
            Reply::Accepted {
                context, secret, ..
            } => assert_eq!(secrets[&context], secret),
            r => panic!("server: {r:?}"),
        }
    }
    let mut all: Vec<_> = secrets.values().collect();
    all.push(&s_client);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 9, "secrets must differ per context");
    a.finish();
    b.finish();
}

/// The server's certificate does not name the node asked for.
pub fn wrong_server_san(client_bin: &Path, server_bin: &Path) {
    let d = scratch("san");
    let ca = ca("cluster");
    let fa = node_files(&d, "a", &ca, &["node-a"], &ca);
    let fb = node_files(&d, "b", &ca, &["node-x"], &ca);
    let mut a = Worker::start(client_bin, "node-a", &fa);
    let b = Worker::start(server_bin, "node-b", &fb);
    a.connect(1, "node-b", b.addr, &ctx4());
    match a.next(T) {
        Reply::Error { id: 1, text } => assert!(text.starts_with("handshake: "), "{text}"),
        r => panic!("client: {r:?}"),
    }
    match b.next(T) {
        Reply::Refused { text } => assert!(text.starts_with("127.0.0.1:"), "{text}"),
        r => panic!("server: {r:?}"),
    }
}

/// The client's certificate comes from another CA.
pub fn client_from_other_ca(client_bin: &Path, server_bin: &Path) {
    let d = scratch("ca");
    let ca = ca("cluster");
    let other = ca_other();
    let fa = node_files(&d, "a", &other, &["node-a"], &ca);
    let fb = node_files(&d, "b", &ca, &["node-b"], &ca);
    let mut a = Worker::start(client_bin, "node-a", &fa);
    let b = Worker::start(server_bin, "node-b", &fb);
    a.connect(2, "node-b", b.addr, &ctx4());
    match b.next(T) {
        Reply::Refused { text } => assert!(text.contains("handshake"), "{text}"),
        r => panic!("server: {r:?}"),
    }
    match a.next(T) {
        Reply::Error { id: 2, .. } => {}
        r => panic!("client: {r:?}"),
    }
}

fn ca_other() -> Ca {
    ca("some other cluster")
}

/// The client claims a node name its certificate does not carry.
pub fn claimed_name_not_in_sans(client_bin: &Path, server_bin: &Path) {
    let d = scratch("claim");
    let ca = ca("cluster");
    let fa = node_files(&d, "a", &ca, &["node-a"], &ca);
    let fb = node_files(&d, "b", &ca, &["node-b"], &ca);
    let mut a = Worker::start(client_bin, "node-c", &fa);
    let b = Worker::start(server_bin, "node-b", &fb);
    a.connect(3, "node-b", b.addr, &ctx4());
    match b.next(T) {
        Reply::Refused { text } => assert!(text.contains("node-c"), "{text}"),
        r => panic!("server: {r:?}"),
    }
    match a.next(T) {
        Reply::Error { id: 3, text } => assert!(text.starts_with("confirmation: "), "{text}"),
        r => panic!("client: {r:?}"),
    }
}

/// Bad requests, a refused TCP connect, and a silent server (timeout).
pub fn request_failures(bin: &Path) {
    let d = scratch("fail");
    let ca = ca("cluster");
    let fa = node_files(&d, "a", &ca, &["node-a"], &ca);
    let mut a = Worker::start(bin, "node-a", &fa);
    a.send("connect 5 node-b 127.0.0.1:1");
    match a.next(T) {
        Reply::Error { id: 5, text } => assert!(text.contains("bad request"), "{text}"),
        r => panic!("{r:?}"),
    }
    // Nobody listens there (a port we bound and closed).
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    a.connect(6, "node-b", closed, &ctx4());
    match a.next(T) {
        Reply::Error { id: 6, text } => assert!(text.starts_with("connect "), "{text}"),
        r => panic!("{r:?}"),
    }
    // Accepts but never speaks TLS: the 5 s request limit.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    a.connect(8, "node-b", silent.local_addr().unwrap(), &ctx4());
    match a.next(T) {
        Reply::Error { id: 8, text } => assert!(text.contains("timed out"), "{text}"),
        r => panic!("{r:?}"),
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(8),
        "{took:?}"
    );
    a.finish();
}

/// A peer that sends garbage instead of a ClientHello is refused, and the
/// worker keeps serving.
pub fn server_refuses_garbage(bin: &Path) {
    let d = scratch("garbage");
    let ca = ca("cluster");
    let fb = node_files(&d, "b", &ca, &["node-b"], &ca);
    let b = Worker::start(bin, "node-b", &fb);
    let mut s = std::net::TcpStream::connect(b.addr).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    match b.next(T) {
        Reply::Refused { text } => {
            assert!(text.contains("handshake"), "{text}");
            assert!(!text.contains('\n'));
        }
        r => panic!("{r:?}"),
    }
}

/// Bad command lines exit 2 naming the flag.
pub fn bad_args(bin: &Path) {
    let out = Command::new(bin)
        .args(["--node", "n", "--cert", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen"), "{err}");
    let out = Command::new(bin)
        .args([
            "--node", "n", "--cert", "c", "--key", "k", "--ca", "a", "--listen", "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    // Files that do not exist: a load error naming the flag, exit 1.
    let out = Command::new(bin)
        .args([
            "--node",
            "n",
            "--cert",
            "/nonexistent/c",
            "--key",
            "k",
            "--ca",
            "a",
        ])
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cert"));
    assert!(out.stdout.is_empty());
}

/// A source that opens many silent connections gets at most
/// `MAX_PER_SOURCE` served; the rest are closed at once, before TLS, and a
/// real handshake still goes through once the silent ones go (review-agent
/// M1).
pub fn server_limits_connections(bin: &Path) {
    use std::io::Read;
    let d = scratch("limits");
    let ca = ca("cluster");
    let fa = node_files(&d, "a", &ca, &["node-a"], &ca);
    let fb = node_files(&d, "b", &ca, &["node-b"], &ca);
    let mut a = Worker::start(bin, "node-a", &fa);
    let b = Worker::start(bin, "node-b", &fb);
    let silent: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(b.addr).unwrap())
        .collect();
    let mut closed = 0;
    for s in &silent {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        match (&*s).read(&mut [0u8; 1]) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    let limit = tlshub_worker_common::MAX_PER_SOURCE;
    assert_eq!(
        closed,
        40 - limit,
        "connections over the per-source limit were not closed"
    );
    drop(silent);
    // The served ones end (EOF in the handshake): refused, slots back.
    for _ in 0..limit {
        match b.next(T) {
            Reply::Refused { text } => assert!(text.contains("handshake"), "{text}"),
            r => panic!("server: {r:?}"),
        }
    }
    let ctx = ctx4();
    a.connect(9, "node-b", b.addr, &ctx);
    match a.next(T) {
        Reply::Secret { id: 9, .. } => {}
        r => panic!("client after the flood: {r:?}"),
    }
}
