//! A client of the Coordinator's transit engine (`--transit-addr`): HTTPS/1.1 with a mesh
//! certificate as the client certificate (the files an initializer writes under
//! `tls-config/`), trusting the mesh CA and expecting the server name `coordinator` (the SAN
//! of the test manifest's coordinator policy).

// Test support fails loudly (see the crate documentation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The server name the transit engine's certificate carries in the tests.
pub const SERVER_NAME: &str = "coordinator";

/// What a client presents: a chain and key in PEM, or nothing.
#[derive(Debug, Clone)]
pub enum ClientIdentity {
    /// No client certificate.
    None,
    /// `certChain.pem` and `key.pem` contents.
    Pem {
        /// Leaf then intermediate.
        chain: Vec<u8>,
        /// PKCS#8 key.
        key: Vec<u8>,
    },
}

impl ClientIdentity {
    /// The identity an initializer wrote under `root` (`tls-config/certChain.pem`, `key.pem`).
    pub fn from_initializer(root: &Path) -> Self {
        let tls = root.join("tls-config");
        Self::Pem {
            chain: std::fs::read(tls.join("certChain.pem")).unwrap(),
            key: std::fs::read(tls.join("key.pem")).unwrap(),
        }
    }
}

/// The mesh CA an initializer wrote under `root`.
pub fn mesh_ca(root: &Path) -> Vec<u8> {
    std::fs::read(root.join("tls-config/mesh-ca.pem")).unwrap()
}

/// The client's TLS config: trust `mesh_ca_pem`, present `identity`.
pub fn client_config(mesh_ca_pem: &[u8], identity: &ClientIdentity) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(mesh_ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match identity {
        ClientIdentity::None => builder.with_no_client_auth(),
        ClientIdentity::Pem { chain, key } => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .map(Result::unwrap)
                .collect();
            builder
                .with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key).unwrap())
                .unwrap()
        }
    }
}

/// POSTs `body` (JSON) to `path` on the transit engine at `addr`: the status and body, or the
/// connection's error (a refused handshake) as text.
pub async fn post(
    addr: &str,
    config: rustls::ClientConfig,
    path: &str,
    body: &[u8],
) -> Result<(u16, serde_json::Value), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(connection);
    let request = http::Request::post(path)
        .header(http::header::HOST, SERVER_NAME)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    Ok((status, value))
}

/// The path of `operation` (`encrypt`/`decrypt`) on key `name` (percent-encoding its `/`).
pub fn path(operation: &str, name: &str) -> String {
    format!("/v1/transit/{operation}/{}", name.replace('/', "%2F"))
}
