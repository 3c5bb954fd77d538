//! Per-flow keys (the openssl and boringssl modes) in one process: the flow
//! context, the worker line protocol, and two nodes' `FlowKeys` driving
//! worker processes on loopback with fake kernels. The workers are a fake
//! written here in Python (the same line protocol, a plain TCP exchange
//! instead of TLS, secret = SHA-256 of the context), and, when they have
//! been built (`helper/target/release/tlshub-worker-{openssl,boring}`), the
//! real ones with certificates made here.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tlshub::agent::flowkeys::{
    decode_context, encode_context, FlowContext, FlowKeys, FlowSettings, WorkerLine, WorkerSpec,
};
use tlshub::agent::kernel::{FailOutcome, FlowKeySetError, KernelPeer};
use tlshub::agent::{Directory, Kernel};
use tlshub::netlink::{FlowKey, FlowKeyRequest, Role};
use tlshub::{Mode, PodNodeTable, Psk};
use tlshub_worker_common::{hex_decode as unhex, hex_encode as hex, Reply};

// --- context and lines ------------------------------------------------------

#[test]
fn context_round_trip() {
    let c: SocketAddr = "10.1.0.11:40000".parse().unwrap();
    let s: SocketAddr = "10.2.0.21:8080".parse().unwrap();
    let ctx = encode_context(c, s, 0xdead_beef, 7);
    assert_eq!(
        hex(&ctx),
        "0a01000b9c400a0200151f90deadbeef00000007",
        "client ip|port|server ip|port|isns, big-endian"
    );
    assert_eq!(
        decode_context(&ctx),
        Some(FlowContext {
            client: c,
            server: s,
            client_isn: 0xdead_beef,
            server_isn: 7
        })
    );
    let c6: SocketAddr = "[fd00:1::11]:50000".parse().unwrap();
    let s6: SocketAddr = "[fd00:2::21]:7000".parse().unwrap();
    let ctx6 = encode_context(c6, s6, 1, u32::MAX);
    assert_eq!(ctx6.len(), 44);
    let d = decode_context(&ctx6).unwrap();
    assert_eq!(
        (d.client, d.server, d.client_isn, d.server_isn),
        (c6, s6, 1, u32::MAX)
    );
    // v4-mapped addresses are IPv4 (the kernel never sends them, and both
    // ends must compute the same bytes).
    let mapped: SocketAddr = "[::ffff:10.1.0.11]:40000".parse().unwrap();
    assert_eq!(encode_context(mapped, s, 0xdead_beef, 7), ctx);
    for len in [0, 19, 21, 43, 45] {
        assert_eq!(decode_context(&vec![0; len]), None, "{len} bytes");
    }
    assert_eq!(unhex(&hex(&ctx6)).unwrap(), ctx6);
    assert_eq!(unhex("0A0b").unwrap(), [10, 11]);
    assert!(unhex("abc").is_none() && unhex("zz").is_none());
}

#[test]
fn worker_lines() {
    let secret = "ab".repeat(32);
    let l = WorkerLine::parse(&format!("secret 42 {secret}\n")).unwrap();
    assert_eq!(
        l,
        WorkerLine(Reply::Secret {
            id: 42,
            secret: [0xab; 32]
        })
    );
    // Debug never shows a secret.
    assert_eq!(format!("{l:?}"), "Secret(42, <hidden>)");
    let l = WorkerLine::parse(&format!("accepted n1 0a0b {secret}")).unwrap();
    assert!(!format!("{l:?}").contains("abab"), "{l:?}");
    assert_eq!(
        WorkerLine::parse("ready 127.0.0.1:7444").unwrap(),
        WorkerLine(Reply::Ready("127.0.0.1:7444".parse().unwrap()))
    );
    assert_eq!(
        WorkerLine::parse("error 3 handshake: certificate unknown").unwrap(),
        WorkerLine(Reply::Error {
            id: 3,
            text: "handshake: certificate unknown".into()
        })
    );
    assert_eq!(
        WorkerLine::parse("refused n9: bad certificate").unwrap(),
        WorkerLine(Reply::Refused {
            text: "n9: bad certificate".into()
        })
    );
    // Malformed lines: the error names the first word, never the rest.
    for bad in [
        format!("secret x {secret}"),
        format!("secret 1 {}", &secret[2..]),
        format!("accepted n1 0a0 {secret}"),
        format!("accepted n1 {secret}"),
        format!("accepted  0a0b {secret}"),
        "hello".to_owned(),
        "ready nowhere".to_owned(),
    ] {
        let e = WorkerLine::parse(&bad).unwrap_err();
        assert!(e.starts_with("malformed '"), "{e}");
        assert!(!e.contains("abab"), "{e}");
    }
}

// --- a fake kernel ----------------------------------------------------------

/// Records flow-key-set calls; answers ENOENT to the first `enoent` calls.
#[derive(Default)]
struct FakeKernel {
    keys: Mutex<Vec<FlowKey>>,
    enoent: Mutex<u32>,
    calls: Mutex<u32>,
    local: Vec<String>,
}

impl Kernel for FakeKernel {
    fn install(&self, _: &str, _: &Psk, epoch: u64, _: Duration) -> Result<u64, String> {
        Ok(epoch)
    }
    fn fail(&self, _: &str, _: &str) -> Result<FailOutcome, String> {
        Ok(FailOutcome::Told)
    }
    fn peers(&self) -> Result<Vec<KernelPeer>, String> {
        Ok(Vec::new())
    }
    fn flow_key_set(&self, key: &FlowKey) -> Result<(), FlowKeySetError> {
        *self.calls.lock().unwrap() += 1;
        let mut enoent = self.enoent.lock().unwrap();
        if *enoent > 0 {
            *enoent -= 1;
            return Err(FlowKeySetError::NoSuchFlow);
        }
        self.keys.lock().unwrap().push(key.clone());
        Ok(())
    }
    fn local_nodes(&self) -> Result<Vec<String>, String> {
        Ok(self.local.clone())
    }
}

impl FakeKernel {
    fn key(&self, local: SocketAddr, remote: SocketAddr) -> Option<FlowKey> {
        self.keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.local == local && k.remote == remote)
            .cloned()
    }
    fn count(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

// --- workers ------------------------------------------------------------------

/// The line protocol of the real workers with a plain TCP exchange instead
/// of TLS: the client sends `NODE CONTEXT_HEX`, the server answers `ok`;
/// both derive SHA-256("fake" | context). `--node` is the name it claims.
const FAKE_WORKER: &str = r#"#!/usr/bin/env python3
import hashlib, socket, sys, threading
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
node, listen = args["--node"], args["--listen"]
host, port = listen.rsplit(":", 1)
host = host.strip("[]")
srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, int(port)))
srv.listen(64)
lock = threading.Lock()
def out(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
def secret(ctx):
    return hashlib.sha256(b"fake" + bytes.fromhex(ctx)).hexdigest()
def serve():
    while True:
        c, _ = srv.accept()
        f = c.makefile("rw")
        w = f.readline().split()
        if len(w) == 2:
            out("accepted %s %s %s" % (w[0], w[1], secret(w[1])))
            f.write("ok\n")
            f.flush()
        c.close()
threading.Thread(target=serve, daemon=True).start()
out("ready " + listen)
def go(id, peer, target, ctx):
    try:
        h, p = target.rsplit(":", 1)
        s = socket.create_connection((h.strip("[]"), int(p)), timeout=5)
        f = s.makefile("rw")
        f.write("%s %s\n" % (node, ctx))
        f.flush()
        if f.readline().strip() != "ok":
            raise Exception("no confirmation from " + peer)
        out("secret %s %s" % (id, secret(ctx)))
    except Exception as e:
        out("error %s %s" % (id, str(e).replace("\n", " ")))
for line in sys.stdin:
    w = line.split()
    if len(w) == 5 and w[0] == "connect":
        threading.Thread(target=go, args=w[1:], daemon=True).start()
"#;

fn fake_worker(dir: &Path) -> PathBuf {
    let path = dir.join("fake-worker");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(FAKE_WORKER.as_bytes()).unwrap();
    drop(f);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn fake_secret(ctx: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fake");
    h.update(ctx);
    h.finalize().into()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tlshub-flowkeys-{tag}-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port P with P, P+1 and P+2 free on loopback (the agent's and its two
/// workers').
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p > 65000 {
            continue;
        }
        let others: Vec<_> = (1..=2)
            .map(|o| TcpListener::bind(("127.0.0.1", p + o)))
            .collect();
        if others.iter().all(|o| o.is_ok()) {
            return p;
        }
    }
    panic!("no three free ports in a row");
}

// --- two nodes ------------------------------------------------------------------

struct Node {
    fk: Arc<FlowKeys>,
    kernel: Arc<FakeKernel>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn logged(&self, text: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
    fn all_logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.fk.stop();
    }
}

const A1: &str = "10.1.0.11";
const B1: &str = "10.2.0.21";

fn mapping(p1: u16, p2: u16) -> Arc<RwLock<Directory>> {
    let text = format!(
        "node n1 127.0.0.1:{p1}\nnode n2 127.0.0.1:{p2}\n\
         default/a1 n1 {A1} fd00:1::11\ndefault/b1 n2 {B1} fd00:2::21\n"
    );
    Arc::new(RwLock::new(Directory::from_table(
        &PodNodeTable::parse_str(&text, "test").unwrap(),
    )))
}

fn settings() -> FlowSettings {
    FlowSettings {
        restart_min: Duration::from_millis(100),
        restart_max: Duration::from_millis(400),
        ..FlowSettings::default()
    }
}

/// Node `me` with workers `(mode, program, claimed node, identity files)`.
fn node(
    me: &str,
    dir: &Arc<RwLock<Directory>>,
    agent_port: u16,
    workers: &[(Mode, PathBuf, &str, [PathBuf; 3])],
    enoent: u32,
) -> Node {
    let kernel = Arc::new(FakeKernel {
        local: vec![me.to_owned()],
        enoent: Mutex::new(enoent),
        ..FakeKernel::default()
    });
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let tag = me.to_owned();
    let fk = FlowKeys::new(
        me,
        kernel.clone() as Arc<dyn Kernel>,
        dir.clone(),
        Arc::new(move |m: &str| {
            eprintln!("[{tag}] {m}");
            sink.lock().unwrap().push(m.to_owned());
        }),
        settings(),
    );
    let agent: SocketAddr = format!("127.0.0.1:{agent_port}").parse().unwrap();
    for (mode, program, claim, [cert, key, ca]) in workers {
        let spec = WorkerSpec::new(*mode, program.clone(), claim, cert, key, ca, agent).unwrap();
        if fk.start_worker(spec) {
            assert!(
                fk.wait_ready(*mode, Duration::from_secs(30)).is_some(),
                "{me}: the {mode} worker did not get ready"
            );
        }
    }
    Node { fk, kernel, logs }
}

fn request(role: Role, mode: Mode, local: &str, remote: &str, peer: &str) -> FlowKeyRequest {
    FlowKeyRequest {
        role,
        mode,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        local_pod: None,
        remote_pod: None,
        peer_node: Some(peer.to_owned()),
        cipher: None,
        client_isn: 0x1111_2222,
        server_isn: 0x3333_4444,
    }
}

fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// One flow from `client` (a1 on n1) to `server` (b1 on n2): both kernels
/// end with the same secret, each with its own view of the tuple and both
/// ISNs. Returns the secret.
fn one_flow(n1: &Node, n2: &Node, mode: Mode, client: &str, server: &str) -> [u8; 32] {
    // Both kernels send their event; the server's may come first.
    n2.fk
        .on_request(&request(Role::Server, mode, server, client, "n1"));
    n1.fk
        .on_request(&request(Role::Client, mode, client, server, "n2"));
    let (c, s): (SocketAddr, SocketAddr) = (client.parse().unwrap(), server.parse().unwrap());
    assert!(
        wait_until(30, || n1.kernel.key(c, s).is_some()
            && n2.kernel.key(s, c).is_some()),
        "flow {client} -> {server} ({mode}) not keyed on both ends:\n{}\n{}",
        n1.all_logs(),
        n2.all_logs()
    );
    let (k1, k2) = (n1.kernel.key(c, s).unwrap(), n2.kernel.key(s, c).unwrap());
    assert_eq!(k1.secret, k2.secret, "both ends got the same secret");
    for k in [&k1, &k2] {
        assert_eq!(
            (k.client_isn, k.server_isn),
            (Some(0x1111_2222), Some(0x3333_4444))
        );
    }
    // Never a secret in the logs.
    let h = hex(&k1.secret);
    assert!(!n1.all_logs().contains(&h) && !n2.all_logs().contains(&h));
    k1.secret
}

fn no_identity() -> [PathBuf; 3] {
    [PathBuf::from("c"), PathBuf::from("k"), PathBuf::from("ca")]
}

#[test]
fn fake_workers_key_both_ends() {
    let d = tempdir("fake");
    let w = fake_worker(&d);
    let (p1, p2) = (free_base_port(), free_base_port());
    let dir = mapping(p1, p2);
    let ws = |claim| {
        vec![
            (Mode::Openssl, w.clone(), claim, no_identity()),
            (Mode::Boringssl, w.clone(), claim, no_identity()),
        ]
    };
    let n1 = node("n1", &dir, p1, &ws("n1"), 0);
    // n2's kernel does not know the flow yet for the first 5 tries (ENOENT).
    let n2 = node("n2", &dir, p2, &ws("n2"), 5);
    let client = format!("{A1}:40000");
    let server = format!("{B1}:8080");
    let secret = one_flow(&n1, &n2, Mode::Openssl, &client, &server);
    let ctx = encode_context(
        client.parse().unwrap(),
        server.parse().unwrap(),
        0x1111_2222,
        0x3333_4444,
    );
    assert_eq!(secret, fake_secret(&ctx), "the worker's secret, untouched");
    assert_eq!(
        *n2.kernel.calls.lock().unwrap(),
        6,
        "5 x ENOENT, then keyed"
    );
    assert_eq!(n2.logged("6 tries"), 1, "{}", n2.all_logs());
    one_flow(
        &n1,
        &n2,
        Mode::Boringssl,
        "[fd00:1::11]:40001",
        "[fd00:2::21]:7000",
    );
    let (s1, s2) = (n1.fk.stats(), n2.fk.stats());
    assert_eq!((s1.connects, s1.secrets, s1.keyed), (2, 2, 2));
    assert_eq!((s2.server_events, s2.accepted, s2.keyed), (2, 2, 2));
    assert_eq!((s1.errors, s2.refused_claims, s2.set_failures), (0, 0, 0));
    assert_eq!(n1.logged("keyed (openssl, client, peer n2)"), 1);
    assert_eq!(n2.logged("keyed (boringssl, server, peer n1"), 1);

    // A tlshub-mode event is not ours; nothing reaches a worker.
    n1.fk
        .on_request(&request(Role::Client, Mode::Tlshub, &client, &server, "n2"));
    assert_eq!(n1.fk.stats().dropped, 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn forged_claims_are_refused() {
    let d = tempdir("forged");
    let w = fake_worker(&d);
    let (p1, p2) = (free_base_port(), free_base_port());
    let dir = mapping(p1, p2);
    // n1's worker claims to be n3 (the real worker's certificate check
    // would have to agree; the mapping still places a1 on n1).
    let n1 = node(
        "n1",
        &dir,
        p1,
        &[(Mode::Openssl, w.clone(), "n3", no_identity())],
        0,
    );
    let n2 = node(
        "n2",
        &dir,
        p2,
        &[(Mode::Openssl, w.clone(), "n2", no_identity())],
        0,
    );
    let (c, s) = (format!("{A1}:40000"), format!("{B1}:8080"));
    n1.fk
        .on_request(&request(Role::Client, Mode::Openssl, &c, &s, "n2"));
    assert!(wait_until(20, || n2.fk.stats().refused_claims == 1));
    assert_eq!(
        n2.logged("refusing flow 10.1.0.11:40000 -> 10.2.0.21:8080 from n3: the mapping places 10.1.0.11 on node n1, not n3"),
        1,
        "{}",
        n2.all_logs()
    );
    // A server address on a node this kernel does not serve: n2 (claiming
    // n2, rightly) asks n1's worker for a flow b1 -> b1, and n1 serves n1
    // only. n2's client end gets its secret (the fake server confirms
    // anyway); n1 keys nothing.
    n2.fk.on_request(&request(
        Role::Client,
        Mode::Openssl,
        &format!("{B1}:5000"),
        &format!("{B1}:9"),
        "n1",
    ));
    assert!(wait_until(20, || n1.fk.stats().refused_claims == 1));
    assert_eq!(
        n1.logged("10.2.0.21 is on node n2, which this kernel does not serve"),
        1,
        "{}",
        n1.all_logs()
    );
    assert!(wait_until(20, || n2.kernel.count() == 1));
    thread::sleep(Duration::from_millis(200));
    let (b5000, b9) = (format!("{B1}:5000"), format!("{B1}:9"));
    assert!(n1
        .kernel
        .key(b9.parse().unwrap(), b5000.parse().unwrap())
        .is_none());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn missing_worker_fails_closed_and_worker_restarts() {
    let d = tempdir("restart");
    let w = fake_worker(&d);
    let (p1, p2) = (free_base_port(), free_base_port());
    let dir = mapping(p1, p2);
    let missing = d.join("no-such-worker");
    let n1 = node(
        "n1",
        &dir,
        p1,
        &[
            (Mode::Openssl, w.clone(), "n1", no_identity()),
            (Mode::Boringssl, missing.clone(), "n1", no_identity()),
        ],
        0,
    );
    let n2 = node(
        "n2",
        &dir,
        p2,
        &[(Mode::Openssl, w.clone(), "n2", no_identity())],
        0,
    );
    assert_eq!(n1.logged("warning: no boringssl worker at"), 1);
    // boringssl flows: logged, dropped, never keyed (the kernel resets them
    // at the key timeout).
    n1.fk.on_request(&request(
        Role::Client,
        Mode::Boringssl,
        &format!("{A1}:40000"),
        &format!("{B1}:8080"),
        "n2",
    ));
    assert_eq!(n1.fk.stats().dropped, 1);
    assert_eq!(n1.logged("no boringssl worker ("), 1, "{}", n1.all_logs());
    // n2 has no boringssl worker: n1's handshake fails (connection refused),
    // logged as an error, the flow is not keyed.
    let n1b = node(
        "n1",
        &dir,
        p1 + 10,
        &[(Mode::Boringssl, w.clone(), "n1", no_identity())],
        0,
    );
    n1b.fk.on_request(&request(
        Role::Client,
        Mode::Boringssl,
        &format!("{A1}:40001"),
        &format!("{B1}:8080"),
        "n2",
    ));
    assert!(
        wait_until(20, || n1b.fk.stats().errors == 1),
        "{}",
        n1b.all_logs()
    );
    assert_eq!(n1b.logged("handshake with n2 FAILED"), 1);
    assert_eq!(n1b.kernel.count(), 0);

    // Kill the openssl worker: it is restarted, and flows work again.
    let pid = n1.fk.worker_pid(Mode::Openssl).unwrap();
    assert!(pid > 0);
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        wait_until(20, || {
            let p = n1.fk.worker_pid(Mode::Openssl).unwrap();
            p != 0 && p != pid && n1.fk.wait_ready(Mode::Openssl, Duration::ZERO).is_some()
        }),
        "{}",
        n1.all_logs()
    );
    assert!(n1.logged("openssl worker exited") >= 1);
    assert_eq!(n1.fk.stats().worker_starts, 2);
    one_flow(
        &n1,
        &n2,
        Mode::Openssl,
        &format!("{A1}:40002"),
        &format!("{B1}:8080"),
    );
    let _ = std::fs::remove_dir_all(&d);
}

// --- the real workers, when built --------------------------------------------

fn built_worker(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/release")
        .join(name);
    p.is_file().then_some(p)
}

/// A CA and node certificates n1, n2 (SAN DNS:nN, serverAuth+clientAuth)
/// as PEM files.
fn pki(d: &Path) -> HashMap<&'static str, [PathBuf; 3]> {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "flowkeys test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let ca_path = d.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let mut out = HashMap::new();
    for n in ["n1", "n2"] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![n.to_owned()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, n);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &issuer).unwrap();
        let (c, k) = (d.join(format!("{n}.pem")), d.join(format!("{n}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        out.insert(n, [c, k, ca_path.clone()]);
    }
    out
}

#[test]
fn real_workers_key_both_ends() {
    let workers: Vec<(Mode, PathBuf)> = [
        (Mode::Openssl, "tlshub-worker-openssl"),
        (Mode::Boringssl, "tlshub-worker-boring"),
    ]
    .into_iter()
    .filter_map(|(m, n)| built_worker(n).map(|p| (m, p)))
    .collect();
    if workers.is_empty() {
        eprintln!("skipped: no tlshub-worker-* built in target/release");
        return;
    }
    let d = tempdir("real");
    let ids = pki(&d);
    let (p1, p2) = (free_base_port(), free_base_port());
    let dir = mapping(p1, p2);
    let ws = |n: &'static str| -> Vec<(Mode, PathBuf, &str, [PathBuf; 3])> {
        workers
            .iter()
            .map(|(m, p)| (*m, p.clone(), n, ids[n].clone()))
            .collect()
    };
    let n1 = node("n1", &dir, p1, &ws("n1"), 0);
    let n2 = node("n2", &dir, p2, &ws("n2"), 3);
    for (i, (mode, _)) in workers.iter().enumerate() {
        let secret = one_flow(
            &n1,
            &n2,
            *mode,
            &format!("{A1}:{}", 41000 + i),
            &format!("{B1}:8080"),
        );
        assert_ne!(secret, [0; 32]);
        // Another flow of the same pair gets another secret.
        let again = one_flow(
            &n1,
            &n2,
            *mode,
            &format!("[fd00:1::11]:{}", 42000 + i),
            "[fd00:2::21]:8080",
        );
        assert_ne!(secret, again);
    }
    let _ = std::fs::remove_dir_all(&d);
}

// --- through the agent ----------------------------------------------------------

/// `Agent::on_kernel_event` hands `flow-key-request` events to the per-flow
/// logic once `enable_flow_keys` started the workers (as tlshubd does); the
/// agent's mapping is the one the claims are checked against.
#[test]
fn agent_routes_flow_key_requests() {
    use tlshub::agent::tls::Identity;
    use tlshub::agent::{Agent, KernelEvent, Settings};
    let d = tempdir("agent");
    let w = fake_worker(&d);
    let ids = pki(&d);
    let (p1, p2) = (free_base_port(), free_base_port());
    let dir = mapping(p1, p2);
    let [cert, key, ca] = ids["n1"].clone();
    let kernel = Arc::new(FakeKernel {
        local: vec!["n1".into()],
        ..FakeKernel::default()
    });
    let agent = Agent::with_parts(
        "n1",
        Settings::default(),
        Identity::from_files(&cert, &key, &ca).unwrap(),
        dir.read().unwrap().clone(),
        None,
        kernel.clone() as Arc<dyn Kernel>,
    )
    .unwrap();
    // Before per-flow keys are enabled, such an event is only logged.
    let (c, s) = (format!("{A1}:40000"), format!("{B1}:8080"));
    let event = || KernelEvent::FlowKeyRequest(request(Role::Client, Mode::Openssl, &c, &s, "n2"));
    agent.on_kernel_event(event());
    assert!(agent.flow_keys().is_none());
    let agent_addr: SocketAddr = format!("127.0.0.1:{p1}").parse().unwrap();
    let spec =
        WorkerSpec::new(Mode::Openssl, w.clone(), "n1", &cert, &key, &ca, agent_addr).unwrap();
    let fk = agent.enable_flow_keys(vec![spec.clone()], settings());
    assert!(fk
        .wait_ready(Mode::Openssl, Duration::from_secs(30))
        .is_some());
    // Enabled once: a second call returns the same instance, starts nothing.
    assert!(Arc::ptr_eq(
        &fk,
        &agent.enable_flow_keys(vec![spec], settings())
    ));
    let n2 = node(
        "n2",
        &dir,
        p2,
        &[(Mode::Openssl, w.clone(), "n2", no_identity())],
        0,
    );
    agent.on_kernel_event(event());
    let (cs, ss): (SocketAddr, SocketAddr) = (c.parse().unwrap(), s.parse().unwrap());
    assert!(wait_until(20, || kernel.key(cs, ss).is_some()
        && n2.kernel.key(ss, cs).is_some()));
    assert_eq!(
        kernel.key(cs, ss).unwrap().secret,
        n2.kernel.key(ss, cs).unwrap().secret
    );
    assert_eq!(fk.stats().worker_starts, 1);
    fk.stop();
    let _ = std::fs::remove_dir_all(&d);
}

/// A worker that says `ready`, then reports `refused` handshakes as a
/// flooded port would: many, fast.
const REFUSING_WORKER: &str = r#"#!/usr/bin/env python3
import sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
print("ready " + args["--listen"], flush=True)
for i in range(50):
    print("refused 10.2.0.21:%d: handshake: wrong version number" % (40000 + i), flush=True)
print("refused 10.2.0.21:1: the last one", flush=True)
sys.stdin.read()
"#;

#[test]
fn refused_handshakes_are_counted_and_logged_rate_limited() {
    // Anyone who reaches a worker's port makes `refused` lines: the agent
    // counts each one and logs at most one line per REFUSED_LOG_EVERY, with
    // the count it did not log (issue 17: a flood must not flood the log).
    let d = tempdir("refused");
    let w = d.join("refusing-worker");
    std::fs::write(&w, REFUSING_WORKER).unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p1 = free_base_port();
    let dir = mapping(p1, free_base_port());
    let n1 = node(
        "n1",
        &dir,
        p1,
        &[(Mode::Openssl, w, "n1", no_identity())],
        0,
    );
    assert!(
        wait_until(20, || n1.fk.stats().refused_handshakes == 51),
        "refused handshakes counted: {}",
        n1.fk.stats().refused_handshakes
    );
    assert_eq!(
        n1.logged("worker refused a handshake"),
        1,
        "{}",
        n1.all_logs()
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn worker_output_lines_are_split_and_wiped() {
    // Lines split across reads, several in one read, a last one without a
    // newline (kept for the next read); what was handed out is zeroed.
    use tlshub::agent::flowkeys::WipedLines;
    let secret = "ab".repeat(32);
    let text = format!("ready 127.0.0.1:7444\nsecret 1 {secret}\nrefused x\npartial");
    let mut src = std::io::Cursor::new(text.into_bytes());
    struct Trickle<'a>(&'a mut std::io::Cursor<Vec<u8>>);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }
    let mut lines = WipedLines::new();
    let mut got = Vec::new();
    while lines.fill(&mut Trickle(&mut src)).unwrap() {
        lines.each(|l| got.push(l.to_owned()));
    }
    assert_eq!(
        got,
        [
            "ready 127.0.0.1:7444",
            &format!("secret 1 {secret}"),
            "refused x"
        ]
    );
    // Only the unfinished "partial" is left in the buffer, the rest zeroed.
    let mut rest = Vec::new();
    lines.each(|l| rest.push(l.to_owned()));
    assert!(rest.is_empty());
    let raw = lines.raw();
    assert_eq!(&raw[..7], b"partial");
    assert!(raw[7..].iter().all(|&b| b == 0), "bytes left behind");
}
