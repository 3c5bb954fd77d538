//! The agent's TLS: its node identity (certificate, key, cluster CA), the
//! rustls client and server configurations (TLS 1.3 only, mutual
//! authentication, the `ring` provider), the name checks on the peer's
//! certificate, and the exporter that turns a finished handshake into the
//! node-pair secret.
//!
//! Which names count:
//! - as a client, the agent verifies the server as `ServerName` = the peer
//!   node's name (rustls's WebPKI verifier: chain to the CA, validity dates,
//!   `serverAuth`, SAN);
//! - as a server, [`NodeClientVerifier`] accepts a client certificate only if
//!   it chains to the CA (WebPKI, `clientAuth`) *and* its SAN names a node of
//!   the mapping; after the handshake the session checks that the node the
//!   client claims in its `Hello` is one its certificate names
//!   ([`cert_names`]).
//!
//! Names must match exactly (no wildcard SANs), and there is no session
//! resumption: every session is a full handshake that checks the peer's
//! certificate, its dates and CA, again.
//!
//! Node certificates therefore carry `DNS:<node name>` and both extended key
//! usages (`serverAuth`, `clientAuth`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, ConnectionCommon, DigitallySignedStruct, DistinguishedName,
    RootCertStore, ServerConfig, SignatureScheme,
};

use super::protocol::{pair_context, EXPORTER_LABEL};
use crate::psk::Psk;

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct IdentityError {
    pub path: String,
    pub message: String,
}

fn id_err(path: &Path, message: impl fmt::Display) -> IdentityError {
    IdentityError {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// This node's TLS identity and the cluster CA it trusts.
pub struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads PEM files: the node's certificate (chain), its private key
    /// (PKCS#8, SEC1 or PKCS#1) and the CA certificate(s).
    pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> Result<Identity, IdentityError> {
        let certs = read_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| id_err(key, pem_problem(e)))?;
        let mut roots = RootCertStore::empty();
        for c in read_certs(ca)? {
            roots
                .add(c)
                .map_err(|e| id_err(ca, format!("not a usable CA certificate: {e}")))?;
        }
        Ok(Identity {
            certs,
            key,
            roots: Arc::new(roots),
        })
    }

    /// From DER already in memory (tests).
    pub fn from_der(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca: Vec<CertificateDer<'static>>,
    ) -> Result<Identity, IdentityError> {
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots
                .add(c)
                .map_err(|e| id_err(Path::new("<ca>"), format!("not a usable CA: {e}")))?;
        }
        Ok(Identity {
            certs,
            key,
            roots: Arc::new(roots),
        })
    }

    /// Seconds until our certificate's `notAfter` (negative: expired), if
    /// it parses.
    pub fn expires_in_secs(&self) -> Option<i64> {
        let cert = self.certs.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        Some(parsed.validity().not_after.timestamp() - i64::try_from(now).ok()?)
    }

    /// Does our own certificate name `node`? (A misconfiguration the agent
    /// refuses to start with.)
    pub fn names(&self, node: &str) -> bool {
        self.certs.first().is_some_and(|c| cert_names(c, node))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| id_err(path, pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| id_err(path, pem_problem(e)))?;
    if certs.is_empty() {
        return Err(id_err(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(e) => e.to_string(),
        E::NoItemsFound => "no PEM item of the expected kind in the file".to_owned(),
        other => format!("not valid PEM: {other:?}"),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS setup that cannot be built (a key that does not match, ...).
#[derive(Debug, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct SetupError(String);

/// The client side: TLS 1.3, the CA as the only root, our certificate for
/// client authentication.
pub fn client_config(id: &Identity) -> Result<Arc<ClientConfig>, SetupError> {
    let e = |e: rustls::Error| SetupError(e.to_string());
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(e)?
        .with_root_certificates(id.roots.clone())
        .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
        .map_err(e)?;
    // Every session is a full handshake: a resumed one checks neither the
    // peer's certificate dates nor its CA again (review M2).
    let mut config = config;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The server side: TLS 1.3, client certificates mandatory, accepted only
/// from `nodes` (the mapping's node names).
pub fn server_config(id: &Identity, nodes: Vec<String>) -> Result<Arc<ServerConfig>, SetupError> {
    let e = |e: rustls::Error| SetupError(e.to_string());
    let inner = WebPkiClientVerifier::builder_with_provider(id.roots.clone(), provider())
        .build()
        .map_err(|e| SetupError(e.to_string()))?;
    let verifier = Arc::new(NodeClientVerifier { inner, nodes });
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(e)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.certs.clone(), id.key.clone_key())
        .map_err(e)?;
    // No tickets, no session cache: no resumption (review M2).
    let mut config = config;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Does `cert` name `node` (SAN `DNS:node`)? WebPKI's matching, and then
/// one DNS name must be `node` itself: a wildcard (`*.nodes.example`) would
/// let one certificate speak for many nodes, which the workers refuse too
/// (review L1).
pub fn cert_names(cert: &CertificateDer<'_>, node: &str) -> bool {
    let Ok(name) = ServerName::try_from(node) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert).is_ok_and(|ee| {
        ee.verify_is_valid_for_subject_name(&name).is_ok()
            && ee.valid_dns_names().any(|n| n.eq_ignore_ascii_case(node))
    })
}

/// The DNS names a certificate carries, for log messages only.
pub fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(cert)
        .map(|ee| ee.valid_dns_names().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Client-certificate verification: WebPKI (chain to the cluster CA, dates,
/// `clientAuth`), then the SAN must name a node of the mapping.
#[derive(Debug)]
pub struct NodeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    nodes: Vec<String>,
}

impl ClientCertVerifier for NodeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.nodes.iter().any(|n| cert_names(end_entity, n)) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The node-pair secret of a finished handshake between `a` and `b`: 32
/// bytes of TLS exporter output, label [`EXPORTER_LABEL`], context
/// [`pair_context`].
pub fn export_secret<D>(
    conn: &ConnectionCommon<D>,
    a: &str,
    b: &str,
) -> Result<Psk, rustls::Error> {
    let mut out = [0u8; crate::psk::PSK_LEN];
    let result = conn
        .export_keying_material(&mut out[..], EXPORTER_LABEL, Some(&pair_context(a, b)))
        .map(drop);
    let psk = result.map(|()| Psk::parse(&out));
    crate::netlink::wipe(&mut out);
    match psk {
        Ok(Ok(psk)) => Ok(psk),
        Ok(Err(_)) => Err(rustls::Error::General(
            "exporter output of the wrong size".into(),
        )),
        Err(e) => Err(e),
    }
}

/// One line for a rustls error: what the peer's certificate said when that
/// is the problem.
pub fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => {
            "invalid peer certificate: its SAN names no node of the mapping".to_owned()
        }
        other => other.to_string(),
    }
}
