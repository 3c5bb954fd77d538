//! `tlshub-worker-boring`: the tlshub per-flow handshake worker built on
//! BoringSSL (the `boring` crate; boring-sys builds BoringSSL from source
//! with cmake). All protocol logic is in `tlshub-worker-common`; this file
//! only configures the library.

use std::net::TcpStream;

use boring::error::ErrorStack;
use boring::pkey::PKey;
use boring::ssl::{
    HandshakeError, Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslStream,
    SslVerifyMode, SslVersion,
};
use boring::x509::verify::X509CheckFlags;
use tlshub_worker_common::{run, Config, Tls};

struct Boring {
    client: SslContext,
    server: SslContext,
}

fn errs(e: &ErrorStack) -> String {
    // Reason strings only, BoringSSL's CERTIFICATE_VERIFY_FAILED as
    // "certificate verify failed" (OpenSSL's wording), no file:line noise.
    let r: Vec<String> = e
        .errors()
        .iter()
        .map(|e| {
            e.reason()
                .unwrap_or("unknown error")
                .to_ascii_lowercase()
                .replace('_', " ")
        })
        .collect();
    if r.is_empty() {
        "unknown error".into()
    } else {
        r.join("; ")
    }
}

fn ssl_err(err: &boring::ssl::Error) -> String {
    match err.ssl_error() {
        Some(stack) => errs(stack),
        None => match err.io_error() {
            Some(io) => io.to_string(),
            None => err.to_string(),
        },
    }
}

fn handshake_err(e: HandshakeError<TcpStream>) -> String {
    match e {
        HandshakeError::SetupFailure(e) => format!("setup: {}", errs(&e)),
        HandshakeError::Failure(m) | HandshakeError::WouldBlock(m) => {
            let text = ssl_err(m.error());
            // Say why the chain or name did not verify.
            match m.ssl().verify_result() {
                Err(v) if text.contains("certificate verify failed") => {
                    format!("{text} ({})", v.error_string())
                }
                _ => text,
            }
        }
    }
}

fn context(cfg: &Config, server: bool) -> Result<SslContext, String> {
    let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(|e| errs(&e))?;
    b.set_min_proto_version(Some(SslVersion::TLS1_3))
        .and_then(|_| b.set_max_proto_version(Some(SslVersion::TLS1_3)))
        .map_err(|e| format!("TLS 1.3 only: {}", errs(&e)))?;
    b.set_certificate_chain_file(&cfg.cert)
        .map_err(|e| format!("--cert {}: {}", cfg.cert.display(), errs(&e)))?;
    let pem = std::fs::read(&cfg.key).map_err(|e| format!("--key {}: {e}", cfg.key.display()))?;
    let key = PKey::private_key_from_pem(&pem)
        .map_err(|e| format!("--key {}: {}", cfg.key.display(), errs(&e)))?;
    b.set_private_key(&key)
        .and_then(|_| b.check_private_key())
        .map_err(|e| {
            format!(
                "--key {}: does not match --cert: {}",
                cfg.key.display(),
                errs(&e)
            )
        })?;
    b.set_ca_file(&cfg.ca)
        .map_err(|e| format!("--ca {}: {}", cfg.ca.display(), errs(&e)))?;
    b.set_mode(SslMode::AUTO_RETRY);
    if server {
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    } else {
        b.set_verify(SslVerifyMode::PEER);
    }
    Ok(b.build())
}

impl Tls for Boring {
    type Stream = SslStream<TcpStream>;

    fn new(cfg: &Config) -> Result<Self, String> {
        Ok(Boring {
            client: context(cfg, false)?,
            server: context(cfg, true)?,
        })
    }

    fn connect(&self, tcp: TcpStream, peer_node: &str) -> Result<Self::Stream, String> {
        let mut ssl = Ssl::new(&self.client).map_err(|e| errs(&e))?;
        ssl.set_hostname(peer_node).map_err(|e| errs(&e))?; // SNI
        let p = ssl.param_mut();
        p.set_hostflags(X509CheckFlags::NO_WILDCARDS | X509CheckFlags::NEVER_CHECK_SUBJECT);
        p.set_host(peer_node).map_err(|e| errs(&e))?;
        ssl.connect(tcp).map_err(handshake_err)
    }

    fn accept(&self, tcp: TcpStream) -> Result<Self::Stream, String> {
        Ssl::new(&self.server)
            .map_err(|e| errs(&e))?
            .accept(tcp)
            .map_err(handshake_err)
    }

    fn peer_dns_sans(s: &Self::Stream) -> Option<Vec<String>> {
        let cert = s.ssl().peer_certificate()?;
        Some(
            cert.subject_alt_names()
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|n| n.dnsname().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    fn export(s: &Self::Stream, label: &str, context: &[u8], out: &mut [u8]) -> Result<(), String> {
        s.ssl()
            .export_keying_material(out, label, Some(context))
            .map_err(|e| errs(&e))
    }

    fn close(s: &mut Self::Stream) {
        let _ = s.shutdown();
    }

    fn io_text(e: &std::io::Error) -> String {
        match e
            .get_ref()
            .and_then(|i| i.downcast_ref::<boring::ssl::Error>())
        {
            Some(err) => ssl_err(err),
            None => e.to_string(),
        }
    }
}

fn main() {
    run::<Boring>("tlshub-worker-boring")
}
