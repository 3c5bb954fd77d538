//! The TLSHub agent in one process: certificates made here (rcgen), agents
//! on loopback with fake kernels that record what they were given.

use std::collections::HashMap;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tlshub::agent::kernel::{FailOutcome, KernelPeer};
use tlshub::agent::protocol::{self, pair_context, read_msg, write_msg, Msg, EXPORTER_LABEL};
use tlshub::agent::tls::{self, cert_names, Identity};
use tlshub::agent::{Agent, Directory, Kernel, Settings};
use tlshub::{PodNodeTable, Psk};

// --- certificates ----------------------------------------------------------

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: String,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct subjects: two clusters' CAs.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("test cluster CA {n}"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        params,
        key,
    }
}

/// A node certificate for `names` signed by `ca`, `expired` if asked, and
/// its key.
fn leaf_cert(ca: &Ca, names: &[&str], expired: bool) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    (params.signed_by(&key, &issuer).unwrap(), key)
}

/// [`leaf_cert`] as DER.
fn leaf(
    ca: &Ca,
    names: &[&str],
    expired: bool,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let (cert, key) = leaf_cert(ca, names, expired);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key)
}

/// [`leaf_cert`] as PEM files: (certificate, PKCS#8 key).
fn leaf_pem(ca: &Ca, names: &[&str], expired: bool) -> (String, String) {
    let (cert, key) = leaf_cert(ca, names, expired);
    (cert.pem(), key.serialize_pem())
}

fn identity(ca: &Ca, names: &[&str], trust: &Ca) -> Identity {
    let (cert, key) = leaf(ca, names, false);
    Identity::from_der(vec![cert], key, vec![trust.der.clone()]).unwrap()
}

// --- a fake kernel ---------------------------------------------------------

#[derive(Default)]
struct FakeKernel {
    secrets: Mutex<HashMap<String, (u64, [u8; 32])>>,
    fails: Mutex<Vec<(String, String)>>,
}

impl Kernel for FakeKernel {
    fn install(&self, peer: &str, secret: &Psk, epoch: u64, _: Duration) -> Result<u64, String> {
        let mut s = self.secrets.lock().unwrap();
        if let Some((old, bytes)) = s.get(peer) {
            if *old == epoch && bytes != secret.as_bytes() {
                return Err("EEXIST".into());
            }
            if epoch < *old {
                return Err("old epoch".into());
            }
        }
        s.insert(peer.to_owned(), (epoch, *secret.as_bytes()));
        Ok(epoch)
    }
    fn fail(&self, peer: &str, reason: &str) -> Result<FailOutcome, String> {
        self.fails
            .lock()
            .unwrap()
            .push((peer.into(), reason.into()));
        Ok(FailOutcome::Told)
    }
    fn peers(&self) -> Result<Vec<KernelPeer>, String> {
        Ok(self
            .secrets
            .lock()
            .unwrap()
            .iter()
            .map(|(n, (e, _))| KernelPeer {
                name: n.clone(),
                epoch: Some(*e),
                last_epoch: *e,
                pending: 0,
                valid: true,
            })
            .collect())
    }
}

impl FakeKernel {
    fn secret(&self, peer: &str) -> Option<(u64, [u8; 32])> {
        self.secrets.lock().unwrap().get(peer).copied()
    }
    /// `node del`: the kernel forgets the peer's secret.
    fn forget(&self, peer: &str) {
        self.secrets.lock().unwrap().remove(peer);
    }
    fn failures(&self) -> Vec<(String, String)> {
        self.fails.lock().unwrap().clone()
    }
}

// --- agents on loopback ----------------------------------------------------

fn settings() -> Settings {
    Settings {
        lifetime: Duration::from_secs(3600),
        io_timeout: Duration::from_secs(10),
        connect_retry: Duration::from_millis(500),
        busy_wait: Duration::from_secs(10),
        tick: Duration::from_millis(100),
    }
}

fn directory(nodes: &[(&str, SocketAddr)]) -> Directory {
    let text: String = nodes
        .iter()
        .map(|(n, a)| format!("node {n} {a}\n"))
        .collect();
    Directory::from_table(&PodNodeTable::parse_str(&text, "test").unwrap())
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

struct Node {
    agent: Arc<Agent>,
    kernel: Arc<FakeKernel>,
}

fn node(me: &str, id: Identity, dir: &Directory, l: TcpListener, start: bool) -> Node {
    node_with(settings(), me, id, dir, l, start)
}

fn node_with(
    settings: Settings,
    me: &str,
    id: Identity,
    dir: &Directory,
    l: TcpListener,
    start: bool,
) -> Node {
    let kernel = Arc::new(FakeKernel::default());
    let agent = Agent::with_parts(
        me,
        settings,
        id,
        dir.clone(),
        None,
        kernel.clone() as Arc<dyn Kernel>,
    )
    .unwrap();
    if start {
        agent.start(l);
    } else {
        // Serve sessions, start none.
        agent.listen(l);
    }
    Node { agent, kernel }
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

/// Two started agents n1, n2 of one CA: both sides end with one equal secret.
fn pair() -> (Node, Node) {
    let ca = ca();
    let (l1, a1) = listener();
    let (l2, a2) = listener();
    let dir = directory(&[("n1", a1), ("n2", a2)]);
    let n1 = node("n1", identity(&ca, &["n1"], &ca), &dir, l1, true);
    let n2 = node("n2", identity(&ca, &["n2"], &ca), &dir, l2, true);
    assert!(
        wait_until(20, || agreed(&n1, &n2).is_some()),
        "no common secret: n1 {:?} n2 {:?}",
        n1.kernel.secret("n2").map(|s| s.0),
        n2.kernel.secret("n1").map(|s| s.0)
    );
    (n1, n2)
}

/// The pair's (epoch, secret) if both kernels hold the same.
fn agreed(n1: &Node, n2: &Node) -> Option<(u64, [u8; 32])> {
    let (s1, s2) = (n1.kernel.secret("n2")?, n2.kernel.secret("n1")?);
    (s1 == s2).then_some(s1)
}

/// Settles: no session running for a while.
fn settle(n1: &Node, n2: &Node) {
    let mut last = (n1.agent.installs(), n2.agent.installs());
    loop {
        thread::sleep(Duration::from_millis(700));
        let now = (n1.agent.installs(), n2.agent.installs());
        if now == last {
            return;
        }
        last = now;
    }
}

// --- tests -----------------------------------------------------------------

#[test]
fn san_checks() {
    let ca = ca();
    let (cert, _) = leaf(&ca, &["n1", "node-1.cluster"], false);
    assert!(cert_names(&cert, "n1"));
    assert!(cert_names(&cert, "node-1.cluster"));
    assert!(!cert_names(&cert, "n2"));
    assert!(!cert_names(&cert, "n"));
    assert!(!cert_names(&cert, "not a name"));
    assert_eq!(tls::dns_names(&cert), ["n1", "node-1.cluster"]);
    assert!(identity(&ca, &["n1"], &ca).names("n1"));
    assert!(!identity(&ca, &["n1"], &ca).names("n2"));
}

#[test]
fn wildcard_sans_are_refused() {
    // WebPKI would match `*.nodes` for `n1.nodes`; one certificate must not
    // speak for many nodes (review-agent L1).
    let ca = ca();
    let (wild, _) = leaf(&ca, &["*.nodes"], false);
    assert!(!cert_names(&wild, "n1.nodes"));
    let (exact, _) = leaf(&ca, &["n1.nodes"], false);
    assert!(cert_names(&exact, "n1.nodes"));
    assert!(cert_names(&exact, "N1.nodes"));
}

#[test]
fn wildcard_certificate_cannot_start_an_agent() {
    let ca = ca();
    let (_l, a) = listener();
    let dir = directory(&[("n2.nodes", a)]);
    let r = Agent::with_parts(
        "n2.nodes",
        settings(),
        identity(&ca, &["*.nodes"], &ca),
        dir,
        None,
        Arc::new(FakeKernel::default()) as Arc<dyn Kernel>,
    );
    let why = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(why.contains("does not name this node"), "{why}");
}

/// Two handshakes in memory between the agent's own configs.
fn handshake(
    client: &Arc<rustls::ClientConfig>,
    server: &Arc<rustls::ServerConfig>,
) -> rustls::HandshakeKind {
    let mut c = rustls::ClientConnection::new(
        client.clone(),
        ServerName::try_from("n2".to_owned()).unwrap(),
    )
    .unwrap();
    let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            break;
        }
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    c.handshake_kind().unwrap()
}

#[test]
fn sessions_are_never_resumed() {
    // A resumed session would check neither expiry nor the CA again
    // (review-agent M2): every session must be a full handshake.
    let ca = ca();
    let client = tls::client_config(&identity(&ca, &["n1"], &ca)).unwrap();
    let server = tls::server_config(&identity(&ca, &["n2"], &ca), vec!["n1".into()]).unwrap();
    for _ in 0..3 {
        assert_eq!(handshake(&client, &server), rustls::HandshakeKind::Full);
    }
}

#[test]
fn peer_text_is_checked_and_escaped() {
    // Node names must be printable ASCII; a Refuse reason is escaped
    // (review-agent L4); implausible epochs are refused (L2).
    let hello = |node: &[u8]| {
        let mut payload = vec![protocol::VERSION];
        payload.extend_from_slice(&0u64.to_be_bytes());
        for name in [node, b"n2"] {
            payload.push(name.len() as u8);
            payload.extend_from_slice(name);
        }
        Msg::decode(1, &payload)
    };
    assert!(hello(b"n1").is_ok());
    assert!(hello(b"n1\x1b[2J").is_err());
    assert!(hello(b"n1\nFAKE").is_err());
    match Msg::decode(6, b"no\nFAKE LOG LINE \x1b[31m").unwrap() {
        Msg::Refuse { reason } => {
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
            assert!(reason.contains("\\n"), "{reason:?}");
        }
        other => panic!("{}", other.name()),
    }
    assert!(protocol::epoch_plausible(7, 7 + (1 << 32)));
    assert!(!protocol::epoch_plausible(7, 8 + (1 << 32)));
    assert!(!protocol::epoch_plausible(u64::MAX - 2, u64::MAX - 1));
}

/// Replace `path` atomically (write aside, rename), as cert-manager does.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn identity_files_are_reloaded() {
    // n1 starts with an expired certificate: n2 refuses it. Its files are
    // replaced while it runs: the next session uses the new certificate,
    // no restart (review-agent M3); a set that does not name n1 is refused
    // and the working identity stays.
    let ca = ca();
    let dir = std::env::temp_dir().join(format!("tlshub-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (l1, a1) = listener();
    let (l2, a2) = listener();
    let mapping = dir.join("mapping.conf");
    std::fs::write(&mapping, format!("node n1 {a1}\nnode n2 {a2}\n")).unwrap();
    let (cert, key, ca_file) = (dir.join("n1.pem"), dir.join("n1.key"), dir.join("ca.pem"));
    let (c, k) = leaf_pem(&ca, &["n1"], true);
    replace_file(&cert, &c);
    replace_file(&key, &k);
    replace_file(&ca_file, &ca.pem);
    let kernel1 = Arc::new(FakeKernel::default());
    let config = tlshub::agent::AgentConfig {
        node: "n1".into(),
        mapping: mapping.clone(),
        cert: cert.clone(),
        key: key.clone(),
        ca: ca_file.clone(),
        settings: settings(),
        listen: None,
    };
    let n1 = Agent::new(&config, kernel1.clone() as Arc<dyn Kernel>).unwrap();
    n1.start(l1);
    let _n2 = node(
        "n2",
        identity(&ca, &["n2"], &ca),
        &directory(&[("n1", a1), ("n2", a2)]),
        l2,
        false,
    );
    n1.request("n2", "test");
    assert!(
        wait_until(20, || !kernel1.failures().is_empty()),
        "the expired certificate was not refused"
    );
    assert!(kernel1.secret("n2").is_none());
    // A certificate for another node: refused, nothing changes.
    let (c, k) = leaf_pem(&ca, &["n3"], false);
    replace_file(&key, &k);
    replace_file(&cert, &c);
    thread::sleep(Duration::from_millis(500));
    // The right one.
    let (c, k) = leaf_pem(&ca, &["n1"], false);
    replace_file(&key, &k);
    replace_file(&cert, &c);
    assert!(
        wait_until(30, || {
            n1.request("n2", "test");
            thread::sleep(Duration::from_millis(300));
            kernel1.secret("n2").is_some()
        }),
        "the replaced certificate was not used: {:?}",
        kernel1.failures()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exporter_context_is_symmetric() {
    assert_eq!(pair_context("n1", "n2"), pair_context("n2", "n1"));
    assert_eq!(pair_context("b", "a"), b"a\0b".to_vec());
    assert_eq!(EXPORTER_LABEL, b"EXPORTER-tlshub-node-pair-v1");
}

#[test]
fn loopback_pair_agrees_on_one_secret() {
    let (n1, n2) = pair();
    settle(&n1, &n2);
    let (epoch, secret) = agreed(&n1, &n2).unwrap();
    assert_eq!(epoch, 1, "both started at once: one session, epoch 1");
    assert_ne!(secret, [0u8; 32]);
    assert_eq!(n1.agent.installs(), 1, "n1 installed more than once");
    assert_eq!(n2.agent.installs(), 1, "n2 installed more than once");
    assert!(
        n1.kernel.failures().is_empty(),
        "{:?}",
        n1.kernel.failures()
    );
    assert!(
        n2.kernel.failures().is_empty(),
        "{:?}",
        n2.kernel.failures()
    );
}

#[test]
fn concurrent_requests_make_one_session() {
    let (n1, n2) = pair();
    settle(&n1, &n2);
    let (before1, before2) = (n1.agent.installs(), n2.agent.installs());
    let (epoch0, secret0) = agreed(&n1, &n2).unwrap();
    // Both kernels forget the secret; 20 key requests at once on one side
    // (the follower: n2).
    n1.kernel.forget("n2");
    n2.kernel.forget("n1");
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let a = n2.agent.clone();
            thread::spawn(move || a.key_request("n1"))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert!(wait_until(20, || n2.agent.installs() > before2));
    // A late duplicate (the kernel has the secret, nothing waits): ignored.
    n2.agent.key_request("n1");
    settle(&n1, &n2);
    assert_eq!(n1.agent.installs(), before1 + 1);
    assert_eq!(n2.agent.installs(), before2 + 1);
    let (epoch, secret) = agreed(&n1, &n2).expect("secrets differ");
    assert_eq!(epoch, epoch0 + 1);
    assert_ne!(secret, secret0, "a new handshake, a new secret");
}

#[test]
fn both_sides_at_once_converge() {
    let (n1, n2) = pair();
    settle(&n1, &n2);
    for round in 0..5 {
        let (e0, _) = agreed(&n1, &n2).unwrap();
        let (a, b) = (n1.agent.clone(), n2.agent.clone());
        n1.kernel.forget("n2");
        n2.kernel.forget("n1");
        let t1 = thread::spawn(move || a.key_request("n2"));
        let t2 = thread::spawn(move || b.key_request("n1"));
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(wait_until(20, || agreed(&n1, &n2).is_some_and(|(e, _)| e > e0)));
        settle(&n1, &n2);
        let (e, _) = agreed(&n1, &n2).unwrap_or_else(|| panic!("round {round}: secrets differ"));
        assert!(e > e0);
        assert!(
            n1.kernel.failures().is_empty(),
            "{:?}",
            n1.kernel.failures()
        );
        assert!(
            n2.kernel.failures().is_empty(),
            "{:?}",
            n2.kernel.failures()
        );
    }
}

/// n1 asks for a session with n2; returns n1's failures once one is there.
fn refused(n1: &Node) -> String {
    n1.agent.request("n2", "test");
    assert!(
        wait_until(20, || !n1.kernel.failures().is_empty()),
        "no failure reported"
    );
    let fails = n1.kernel.failures();
    assert_eq!(fails[0].0, "n2");
    fails[0].1.clone()
}

fn pair_with(id1: Identity, id2: Identity) -> (Node, Node) {
    let (l1, a1) = listener();
    let (l2, a2) = listener();
    let dir = directory(&[("n1", a1), ("n2", a2)]);
    (
        node("n1", id1, &dir, l1, false),
        node("n2", id2, &dir, l2, false),
    )
}

#[test]
fn wrong_ca_is_refused_both_ways() {
    let (ca, other) = (ca(), ca());
    // n2's certificate comes from another CA (and it trusts that one only).
    let (n1, n2) = pair_with(
        identity(&ca, &["n1"], &ca),
        identity(&other, &["n2"], &other),
    );
    let why = refused(&n1);
    assert!(why.contains("UnknownIssuer"), "{why}");
    // And n2 asking n1: n1's certificate is unknown to n2.
    n2.agent.request("n1", "test");
    assert!(wait_until(20, || !n2.kernel.failures().is_empty()));
    let why = n2.kernel.failures()[0].1.clone();
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(n1.kernel.secret("n2").is_none() && n2.kernel.secret("n1").is_none());
}

#[test]
fn server_with_the_wrong_name_is_refused() {
    let ca = ca();
    // The mapping says n2 is there, but the agent there is n3.
    let (n1, _n3) = {
        let (l1, a1) = listener();
        let (l3, a3) = listener();
        let dir1 = directory(&[("n1", a1), ("n2", a3)]);
        let dir3 = directory(&[("n1", a1), ("n3", a3)]);
        (
            node("n1", identity(&ca, &["n1"], &ca), &dir1, l1, false),
            node("n3", identity(&ca, &["n3"], &ca), &dir3, l3, false),
        )
    };
    let why = refused(&n1);
    assert!(
        why.contains("NotValidForName") || why.contains("not valid for name"),
        "{why}"
    );
}

#[test]
fn expired_certificate_is_refused() {
    let ca = ca();
    let (cert, key) = leaf(&ca, &["n2"], true);
    let expired = Identity::from_der(vec![cert], key, vec![ca.der.clone()]).unwrap();
    let (n1, _n2) = pair_with(identity(&ca, &["n1"], &ca), expired);
    let why = refused(&n1);
    assert!(why.contains("Expired") || why.contains("expired"), "{why}");
}

/// A raw client with `cert_names` certificate that claims to be `claim`.
fn raw_claim(server: SocketAddr, ca: &Ca, names: &[&str], claim: &str) -> Result<Msg, String> {
    let config = tls::client_config(&identity(ca, names, ca)).unwrap();
    let conn =
        rustls::ClientConnection::new(config, ServerName::try_from("n1".to_owned()).unwrap())
            .unwrap();
    let mut s = rustls::StreamOwned::new(conn, TcpStream::connect(server).unwrap());
    let hello = Msg::Hello {
        version: protocol::VERSION,
        epoch: 0,
        node: claim.into(),
        peer: "n1".into(),
    };
    write_msg(&mut s, &hello).map_err(|e| e.to_string())?;
    read_msg(&mut s).map_err(|e| e.to_string())
}

#[test]
fn client_must_be_the_node_it_claims() {
    let ca = ca();
    let (l1, a1) = listener();
    let dir = directory(&[
        ("n1", a1),
        ("n2", "127.0.0.1:9".parse().unwrap()),
        ("n3", "127.0.0.1:9".parse().unwrap()),
    ]);
    let n1 = node("n1", identity(&ca, &["n1"], &ca), &dir, l1, false);
    // A certificate for n3 (a mapped node) claiming to be n2: refused after hello.
    match raw_claim(a1, &ca, &["n3"], "n2") {
        Ok(Msg::Refuse { reason }) => assert!(reason.contains("names n3"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A certificate naming no mapped node: refused in the handshake.
    let err = raw_claim(a1, &ca, &["n9"], "n9").unwrap_err();
    assert!(!err.is_empty());
    // The same n3 certificate claiming n3: accepted (n1 answers hello).
    match raw_claim(a1, &ca, &["n3"], "n3") {
        Ok(Msg::Hello { node, peer, .. }) => {
            assert_eq!((node.as_str(), peer.as_str()), ("n1", "n3"))
        }
        other => panic!("expected hello, got {other:?}"),
    }
    assert!(n1.kernel.secret("n2").is_none());
}

#[test]
fn capture_conf_agent_keys() {
    let text = "local_nodes = n1\nagent_cert = pki/n1.pem\nagent_key = /k/n1.key\n\
                agent_ca = ca.pem\nsecret_lifetime = 600\n";
    let c =
        tlshub::CaptureConfig::parse_str(text, std::path::Path::new("/etc/tlshub/capture.conf"))
            .unwrap();
    assert_eq!(
        c.agent.cert.as_deref(),
        Some(std::path::Path::new("/etc/tlshub/pki/n1.pem"))
    );
    assert_eq!(
        c.agent.key.as_deref(),
        Some(std::path::Path::new("/k/n1.key"))
    );
    assert_eq!(
        c.agent.ca.as_deref(),
        Some(std::path::Path::new("/etc/tlshub/ca.pem"))
    );
    assert_eq!(c.agent.secret_lifetime, Some(600));
    for bad in [
        "secret_lifetime = 4\n",
        "secret_lifetime = soon\n",
        "agent_ca = a\nagent_ca = b\n",
    ] {
        assert!(
            tlshub::CaptureConfig::parse_str(bad, std::path::Path::new("c.conf")).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn secrets_are_renewed_before_they_expire() {
    let ca = ca();
    let (l1, a1) = listener();
    let (l2, a2) = listener();
    let dir = directory(&[("n1", a1), ("n2", a2)]);
    let short = Settings {
        lifetime: Duration::from_secs(3),
        ..settings()
    };
    let n1 = node_with(short, "n1", identity(&ca, &["n1"], &ca), &dir, l1, true);
    let n2 = node_with(short, "n2", identity(&ca, &["n2"], &ca), &dir, l2, true);
    // The leader renews every 2 s (2/3 of 3 s): epoch 3 within ~5 s, with
    // no request from anyone.
    assert!(wait_until(20, || agreed(&n1, &n2).is_some_and(|(e, _)| e >= 3)));
    assert!(n1.kernel.failures().is_empty() && n2.kernel.failures().is_empty());
}

// --- the port before authentication (review-agent H1) ------------------------

/// A TCP connection to `to` from source address `from` (loopback aliases).
fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else {
        unreachable!()
    };
    let sin = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns, with
    // addresses that live across the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let src = sin(from, 0);
        if libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let dst = sin(to.ip().octets(), to.port());
        if libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Whether the server closed `c` (EOF or reset) within `secs`.
fn closed_within(c: &mut TcpStream, secs: u64) -> bool {
    use std::io::Read;
    c.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    let mut b = [0u8; 1];
    match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Connections from an address that is no node's are closed before TLS,
/// however many, and never hold a slot: a session between two agents goes
/// through while 200 of them keep coming.
#[test]
fn unmapped_sources_are_closed_before_tls() {
    let ca = ca();
    let (l1, a1) = listener();
    let (l2, a2) = listener();
    let dir = directory(&[("n1", a1), ("n2", a2)]);
    let n1 = node("n1", identity(&ca, &["n1"], &ca), &dir, l1, false);
    let t = Instant::now();
    let mut c = connect_from([127, 0, 0, 9], a1).unwrap();
    assert!(
        closed_within(&mut c, 5),
        "a connection from 127.0.0.9 stayed open"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "closed only after {:?}",
        t.elapsed()
    );
    let flood = thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..200 {
            if let Ok(c) = connect_from([127, 0, 0, 9], a1) {
                held.push(c);
            }
        }
        held
    });
    let n2 = node("n2", identity(&ca, &["n2"], &ca), &dir, l2, true);
    assert!(
        wait_until(20, || agreed(&n1, &n2).is_some()),
        "no session while unmapped connections arrived"
    );
    let held = flood.join().unwrap();
    assert!(wait_until(10, || n1
        .agent
        .refusals()
        .unmapped
        .load(std::sync::atomic::Ordering::Relaxed)
        >= 201));
    assert_eq!(
        n1.agent.incoming(),
        0,
        "an unmapped connection holds a slot"
    );
    drop(held);
}

/// From a node's address (a hostNetwork pod shares it): at most
/// MAX_PER_SOURCE at once, the rest closed at once; silent ones are shut at
/// the handshake deadline even if they trickle; then a session goes through.
#[test]
fn silent_connections_are_capped_and_cut_at_the_deadline() {
    use std::io::Write;
    use std::sync::atomic::Ordering::Relaxed;
    use tlshub::agent::gatekeeper::MAX_PER_SOURCE;
    let ca = ca();
    let (l1, a1) = listener();
    let (l2, a2) = listener();
    let dir = directory(&[("n1", a1), ("n2", a2)]);
    let mut s = settings();
    s.io_timeout = Duration::from_secs(2);
    let n1 = node_with(s, "n1", identity(&ca, &["n1"], &ca), &dir, l1, false);
    let mut silent: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(a1).unwrap()).collect();
    assert!(
        wait_until(10, || n1.agent.refusals().busy.load(Relaxed)
            >= (100 - MAX_PER_SOURCE) as u64),
        "busy refusals: {}",
        n1.agent.refusals().busy.load(Relaxed)
    );
    assert!(
        n1.agent.incoming() <= MAX_PER_SOURCE,
        "{} served at once",
        n1.agent.incoming()
    );
    // A slow partial record: the header of a 4 KiB handshake record, then
    // a byte every 300 ms (TLS waits for the whole record): the deadline
    // still cuts the admitted ones after 2 s.
    for c in silent.iter_mut() {
        let _ = c.write_all(&[0x16, 0x03, 0x01, 0x10, 0x00]);
    }
    let t = Instant::now();
    while n1.agent.incoming() > 0 && t.elapsed() < Duration::from_secs(10) {
        for c in silent.iter_mut() {
            let _ = c.write_all(&[0]);
        }
        thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        n1.agent.incoming(),
        0,
        "trickling connections outlived the deadline"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cut only after {:?}",
        t.elapsed()
    );
    assert!(n1.agent.refusals().timed_out.load(Relaxed) >= 1);
    drop(silent);
    let n2 = node("n2", identity(&ca, &["n2"], &ca), &dir, l2, true);
    assert!(
        wait_until(20, || agreed(&n1, &n2).is_some()),
        "no session afterwards"
    );
}

#[test]
fn renewals_are_spread_per_peer() {
    // 1000 pairs keyed at once do not renew in one tick (review-agent L5):
    // each peer's renewal age is its own, within 1/24 of the lifetime
    // before 2/3 (leader) and before 3/4 (follower), stable per name.
    let s = settings();
    let ages: Vec<Duration> = (0..1000)
        .map(|i| s.renew_after_for(true, &format!("node-{i}")))
        .collect();
    let (lo, hi) = (s.lifetime * 2 / 3 - s.lifetime / 24, s.lifetime * 2 / 3);
    assert!(ages.iter().all(|a| *a >= lo && *a <= hi));
    let mut secs: Vec<u64> = ages.iter().map(Duration::as_secs).collect();
    secs.sort_unstable();
    secs.dedup();
    assert!(
        secs.len() > 100,
        "only {} distinct renewal seconds",
        secs.len()
    );
    assert_eq!(s.renew_after_for(true, "n7"), s.renew_after_for(true, "n7"));
    assert!(s.renew_after_for(false, "n7") > s.renew_after_for(true, "n7"));
}

// --- PKI forms (issue 17): chains, CA bundles, RSA and ECDSA key encodings --

/// Runs `openssl ARGS` in `dir`; a missing `openssl` fails the test (it is
/// installed by scripts/setup), never skips it.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NAME.key` as asked: "rsa-pkcs1" (BEGIN RSA PRIVATE KEY), "rsa-pkcs8",
/// "ec-sec1" (BEGIN EC PRIVATE KEY), "ec-pkcs8" (BEGIN PRIVATE KEY).
fn openssl_key(dir: &std::path::Path, name: &str, form: &str) {
    let key = format!("{name}.key");
    match form {
        "rsa-pkcs1" => openssl(dir, &["genrsa", "-traditional", "-out", &key, "2048"]),
        "rsa-pkcs8" => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &key,
            ],
        ),
        "ec-sec1" => openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ],
        ),
        "ec-pkcs8" => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &key,
            ],
        ),
        other => panic!("unknown key form {other}"),
    }
    let text = std::fs::read_to_string(dir.join(&key)).unwrap();
    let header = match form {
        "rsa-pkcs1" => "-----BEGIN RSA PRIVATE KEY-----",
        "ec-sec1" => "-----BEGIN EC PRIVATE KEY-----",
        _ => "-----BEGIN PRIVATE KEY-----",
    };
    assert!(text.contains(header), "{key} is not {form}: {text:.40}");
}

/// Signs `csr` with CA `ca` (`ca.pem`, `ca.key`) for two days, with the
/// extensions of `ext`, into `pem`.
fn openssl_sign(dir: &std::path::Path, csr: &str, ca: &str, ext: &str, pem: &str) {
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            pem,
        ],
    );
}

/// A CA `name` (self-signed, or signed by `issuer`: an intermediate).
fn openssl_ca(dir: &std::path::Path, name: &str, form: &str, issuer: Option<&str>) {
    openssl_key(dir, name, form);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let subj = format!("/CN={name}");
    match issuer {
        None => openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &key,
                "-days",
                "2",
                "-subj",
                &subj,
                "-out",
                &pem,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ),
        Some(ca) => {
            openssl(
                dir,
                &["req", "-new", "-key", &key, "-subj", &subj, "-out", &csr],
            );
            openssl_sign(dir, &csr, ca, &ext, &pem);
        }
    }
}

/// A node certificate `name.pem` for SAN `node`, signed by `ca`.
fn openssl_leaf(dir: &std::path::Path, name: &str, node: &str, form: &str, ca: &str) {
    openssl_key(dir, name, form);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{node}\nextendedKeyUsage=serverAuth,clientAuth\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n"
        ),
    )
    .unwrap();
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={node}"),
            "-out",
            &csr,
        ],
    );
    openssl_sign(dir, &csr, ca, &ext, &pem);
}

#[test]
fn chains_bundles_and_key_forms() {
    // The cluster's root (EC) issues an RSA intermediate, which issues
    // n1's certificate; n1's file is the chain (leaf, then intermediate).
    // n2's certificate comes from the root directly. Each agent's CA file is
    // a bundle of two roots, an unrelated one first. Every usual PEM key
    // form is used on each side in turn: RSA PKCS#1 and PKCS#8, ECDSA SEC1
    // and PKCS#8. Agents are made from the files, as tlshubd makes them.
    // (With the bundle holding only the unrelated root, the first session
    // fails with UnknownIssuer: checked when this test was written.)
    let dir = std::env::temp_dir().join(format!("tlshub-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    openssl_ca(&dir, "root", "ec-pkcs8", None);
    openssl_ca(&dir, "other-root", "rsa-pkcs8", None);
    openssl_ca(&dir, "intermediate", "rsa-pkcs1", Some("root"));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    std::fs::write(
        dir.join("bundle.pem"),
        read("other-root.pem") + &read("root.pem"),
    )
    .unwrap();
    for (form1, form2) in [
        ("rsa-pkcs1", "ec-sec1"),
        ("rsa-pkcs8", "ec-pkcs8"),
        ("ec-sec1", "rsa-pkcs1"),
        ("ec-pkcs8", "rsa-pkcs8"),
    ] {
        openssl_leaf(&dir, "n1-leaf", "n1", form1, "intermediate");
        std::fs::write(
            dir.join("n1.pem"),
            read("n1-leaf.pem") + &read("intermediate.pem"),
        )
        .unwrap();
        std::fs::copy(dir.join("n1-leaf.key"), dir.join("n1.key")).unwrap();
        openssl_leaf(&dir, "n2", "n2", form2, "root");
        let (l1, a1) = listener();
        let (l2, a2) = listener();
        std::fs::write(
            dir.join("mapping.conf"),
            format!("node n1 {a1}\nnode n2 {a2}\n"),
        )
        .unwrap();
        let start = |me: &str, l: TcpListener| {
            let kernel = Arc::new(FakeKernel::default());
            let config = tlshub::agent::AgentConfig {
                node: me.into(),
                mapping: dir.join("mapping.conf"),
                cert: dir.join(format!("{me}.pem")),
                key: dir.join(format!("{me}.key")),
                ca: dir.join("bundle.pem"),
                settings: settings(),
                listen: None,
            };
            let agent = Agent::new(&config, kernel.clone() as Arc<dyn Kernel>)
                .unwrap_or_else(|e| panic!("{me} ({form1}/{form2}): {e}"));
            agent.listen(l);
            Node { agent, kernel }
        };
        let n1 = start("n1", l1);
        let n2 = start("n2", l2);
        // Each side leads once: n1 client (verifies n2 against the bundle),
        // then n2 client (verifies n1's chain through the intermediate).
        n1.agent.request("n2", "test");
        assert!(
            wait_until(20, || agreed(&n1, &n2).is_some()),
            "n1 -> n2 ({form1}/{form2}): {:?} {:?}",
            n1.kernel.failures(),
            n2.kernel.failures()
        );
        let first = agreed(&n1, &n2).unwrap().0;
        n2.agent.request("n1", "test");
        assert!(
            wait_until(20, || agreed(&n1, &n2).is_some_and(|(e, _)| e > first)),
            "n2 -> n1 ({form1}/{form2}): {:?} {:?}",
            n1.kernel.failures(),
            n2.kernel.failures()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readable_key_files_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("tlshub-keymode-{}.key", std::process::id()));
    std::fs::write(&path, "not a key").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(tlshub::agent::key_mode_warning(&path), None);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let w = tlshub::agent::key_mode_warning(&path).unwrap();
    assert!(w.contains("mode 640") && w.contains("chmod 600"), "{w}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
    assert!(tlshub::agent::key_mode_warning(&path).is_some());
    let _ = std::fs::remove_file(&path);
}
