//! The mesh's TLS configurations, built from the files the initializer writes: the mesh CA,
//! the workload's chain (leaf + intermediate) and its key.
//!
//! - Ingress with mutual TLS: the client's chain must lead to the mesh CA.
//! - Ingress without client certificates (ports declared `disableTLS=false`).
//! - Egress: the server's chain must lead to the mesh CA, and the workload's chain is
//!   presented. The server's name is not compared with its certificate: the mesh certificate
//!   names the workload, while the application dials whatever name its configuration has (a
//!   Service, an IP); membership of the deployment is what the mesh CA attests (as upstream's
//!   Envoy, which validates the chain only).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// The directory the initializer writes the files to, under its root.
pub const TLS_CONFIG_DIR: &str = "tls-config";
/// The mesh CA (PEM), under [`TLS_CONFIG_DIR`].
pub const MESH_CA_FILE: &str = "mesh-ca.pem";
/// The workload's certificate and the intermediate (PEM), under [`TLS_CONFIG_DIR`].
pub const CERT_CHAIN_FILE: &str = "certChain.pem";
/// The workload's key (PKCS#8 PEM), under [`TLS_CONFIG_DIR`].
pub const KEY_FILE: &str = "key.pem";

/// Why the files do not make a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file holds no certificate, or a malformed one.
    #[error("{file}: {problem}")]
    Pem {
        /// Which file.
        file: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The chain does not lead to the mesh CA, or the key does not belong to the leaf (the
    /// files are from different runs of the initializer, e.g. half-way through a rewrite).
    #[error("the files do not belong together: {0}")]
    Inconsistent(String),
    /// rustls refused the configuration.
    #[error("the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The three files' contents.
#[derive(Clone)]
pub struct MeshFiles {
    /// `mesh-ca.pem`.
    pub mesh_ca_pem: Vec<u8>,
    /// `certChain.pem`.
    pub cert_chain_pem: Vec<u8>,
    /// `key.pem`.
    pub key_pem: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for MeshFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshFiles")
            .field("fingerprint", &hex_prefix(&self.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl MeshFiles {
    /// SHA-256 over the three files (lengths included): tells whether they changed.
    #[must_use]
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [
            &self.mesh_ca_pem[..],
            &self.cert_chain_pem[..],
            &self.key_pem[..],
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.finalize().into()
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The three TLS configurations of one set of files.
#[derive(Debug, Clone)]
pub struct MeshTls {
    /// Ingress requiring a client certificate from the mesh CA.
    pub mutual_server: Arc<rustls::ServerConfig>,
    /// Ingress without client certificates.
    pub server: Arc<rustls::ServerConfig>,
    /// Egress: verifies the server against the mesh CA, presents the workload's chain.
    pub client: Arc<rustls::ClientConfig>,
    /// [`MeshFiles::fingerprint`] of the files they were built from.
    pub fingerprint: [u8; 32],
    /// The mesh CA certificate (DER), for logs and tests.
    pub mesh_ca_der: CertificateDer<'static>,
}

impl MeshTls {
    /// Builds the configurations, after checking that the chain leads to the mesh CA and the
    /// key belongs to the leaf.
    ///
    /// # Errors
    ///
    /// [`TlsError`] naming the file or the inconsistency.
    pub fn build(
        files: &MeshFiles,
        provider: &Arc<CryptoProvider>,
        now: UnixTime,
    ) -> Result<Self, TlsError> {
        let mesh_ca = certificates(MESH_CA_FILE, &files.mesh_ca_pem)?;
        let chain = certificates(CERT_CHAIN_FILE, &files.cert_chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&files.key_pem).map_err(|e| TlsError::Pem {
            file: KEY_FILE,
            problem: e.to_string(),
        })?;
        let mut roots = RootCertStore::empty();
        for cert in &mesh_ca {
            roots.add(cert.clone()).map_err(|e| TlsError::Pem {
                file: MESH_CA_FILE,
                problem: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(provider))
                .build()
                .map_err(|e| TlsError::Inconsistent(e.to_string()))?;
        // Our own chain must be one the peers accept.
        if let [leaf, intermediates @ ..] = &chain[..] {
            client_verifier
                .verify_client_cert(leaf, intermediates, now)
                .map_err(|e| {
                    TlsError::Inconsistent(format!(
                        "{CERT_CHAIN_FILE} does not lead to {MESH_CA_FILE}: {e}"
                    ))
                })?;
        }
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(provider))
                .build()
                .map_err(|e| TlsError::Inconsistent(e.to_string()))?;

        let mutual_server = rustls::ServerConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(key_error)?;
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(key_error)?;
        let client = rustls::ClientConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(MeshServerVerifier {
                inner: server_verifier,
            }))
            .with_client_auth_cert(chain, key)
            .map_err(key_error)?;
        let mesh_ca_der = mesh_ca.into_iter().next().ok_or_else(|| TlsError::Pem {
            file: MESH_CA_FILE,
            problem: "no certificate".to_owned(),
        })?;
        Ok(Self {
            mutual_server: Arc::new(mutual_server),
            server: Arc::new(server),
            client: Arc::new(client),
            fingerprint: files.fingerprint(),
            mesh_ca_der,
        })
    }
}

fn key_error(error: rustls::Error) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(_) => TlsError::Inconsistent(format!(
            "{KEY_FILE} is not the key of the certificate in {CERT_CHAIN_FILE}"
        )),
        other => TlsError::Rustls(other),
    }
}

fn certificates(file: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            file,
            problem: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            file,
            problem: "no CERTIFICATE in it".to_owned(),
        });
    }
    Ok(certs)
}

/// The egress verifier: the mesh CA's chain validation, without the name check (see the
/// module's documentation). rustls-webpki validates the chain before it compares names, so a
/// name mismatch means the chain was valid.
#[derive(Debug)]
struct MeshServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
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
