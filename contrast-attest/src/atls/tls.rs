//! rustls integration: per-connection client and server configs whose resolvers issue attested
//! certificates and whose verifiers appraise the peer's.
//!
//! rustls configs are shared by every connection made with them, but aTLS nonces are per
//! connection, so [`AtlsClient::config`] and [`AtlsServer::config`] build a fresh config for
//! each connection (cheap: no keys are made until the handshake) together with the
//! [`PeerSlot`] its verifier fills. Errors are returned, not logged: a failed verification
//! reaches the caller as `rustls::Error::InvalidCertificate(CertificateError::Other(..))`
//! wrapping the [`AtlsError`] ([`atls_error_from_io`] digs it out of a stream's I/O error), and every aTLS error, including the
//! responder's own (which rustls can only report as a missing certificate), is recorded in the
//! slot ([`PeerSlot::error`]).
//!
//! Randomness: nonces come from the caller's RNG; the per-handshake keys and serial numbers,
//! made inside rustls callbacks that take no RNG, come from the OS RNG. Time: rustls's
//! [`TimeProvider`] (a parameter of both builders) gives both the verification time and the
//! issuing time.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rand_core::{CryptoRngCore, OsRng};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::time_provider::{DefaultTimeProvider, TimeProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureAlgorithm, SignatureScheme,
};

use super::cert::AtlsKey;
use super::error::AtlsError;
use super::issuer::Issuer;
use super::nonce::{
    Nonce, alpn_for_nonce, ca_hint_for_nonce, nonce_from_alpn, nonce_from_ca_hints,
};
use super::verify::{AtlsValidator, VerifiedPeer, verify_certificate};
use super::{APPLICATION_PROTOCOLS, NONCE_LEN, issue_certificate};

/// What one connection's aTLS learned about the peer, filled during the handshake.
#[derive(Debug, Default)]
pub struct PeerSlot {
    inner: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    peer: Option<VerifiedPeer>,
    error: Option<Arc<AtlsError>>,
}

impl PeerSlot {
    /// The verified peer certificate (and its appraisal), once the verifier accepted it.
    /// On the server without a client validator: the client's certificate if it sent one.
    #[must_use]
    pub fn peer(&self) -> Option<VerifiedPeer> {
        self.lock().peer.clone()
    }

    /// The aTLS error that failed this connection's handshake, if any.
    #[must_use]
    pub fn error(&self) -> Option<Arc<AtlsError>> {
        self.lock().error.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, result: Result<VerifiedPeer, AtlsError>) -> Result<(), rustls::Error> {
        match result {
            Ok(peer) => {
                self.lock().peer = Some(peer);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(error = %error, "aTLS peer rejected");
                let error = Arc::new(error);
                self.lock().error = Some(Arc::clone(&error));
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(error),
                )))
            }
        }
    }

    fn record_error(&self, error: AtlsError) {
        tracing::warn!(error = %error, "aTLS handshake failed on our side");
        self.lock().error = Some(Arc::new(error));
    }
}

/// The [`AtlsError`] inside a rustls error, if it carries one.
#[must_use]
pub(crate) fn atls_error(error: &rustls::Error) -> Option<&AtlsError> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<AtlsError>()
        }
        _ => None,
    }
}

/// The [`AtlsError`] inside an I/O error from a TLS stream (e.g. tokio-rustls), if any.
#[must_use]
pub fn atls_error_from_io(error: &std::io::Error) -> Option<&AtlsError> {
    let inner = error.get_ref()?;
    if let Some(atls) = inner.downcast_ref::<AtlsError>() {
        return Some(atls);
    }
    inner.downcast_ref::<rustls::Error>().and_then(atls_error)
}

/// The rustls provider of every aTLS connection: aws-lc-rs with its default key exchange groups,
/// signature schemes and cipher suites, the TLS 1.3 suites ordered AES-128-GCM/SHA-256 first.
///
/// The handshake's key exchange (X25519) and certificates (P-256) give 128-bit security, so
/// AES-256 adds none; SHA-256 runs on the SHA extensions of current x86 CPUs while SHA-384 runs
/// in software, and the transcript hash covers both certificates with their attestation
/// documents (several KiB). Go's `crypto/tls`, which upstream Contrast uses, prefers the same
/// suite on AES-NI hardware. The other suites stay enabled for peers that offer only them.
#[must_use]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        // A stable sort: the TLS 1.3 suites keep their relative order after the preferred one.
        provider.cipher_suites.sort_by_key(|suite| {
            (
                suite.tls13().is_none(),
                suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            )
        });
        Arc::new(provider)
    }))
}

fn now_duration(time: &dyn TimeProvider) -> Result<Duration, AtlsError> {
    time.current_time()
        .map(|t| Duration::from_secs(t.as_secs()))
        .ok_or(AtlsError::NoTime)
}

fn certified_key(key: Arc<AtlsKey>, cert_der: Vec<u8>) -> Result<Arc<CertifiedKey>, AtlsError> {
    let ec = |scheme| -> Arc<dyn SigningKey> {
        Arc::new(EcSigningKey {
            key: Arc::clone(&key),
            scheme,
        })
    };
    let signing_key = match key.as_ref() {
        AtlsKey::P256(_) => ec(SignatureScheme::ECDSA_NISTP256_SHA256),
        AtlsKey::P384(_) => ec(SignatureScheme::ECDSA_NISTP384_SHA384),
        AtlsKey::Rsa(_) => {
            // RSA's scheme choice (PSS or PKCS#1, by size) is rustls's; it loads the key from
            // PKCS#8, borrowed so the only copy stays in the zeroizing SecretDocument.
            let pkcs8 = key.pkcs8_der()?;
            rustls::crypto::aws_lc_rs::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
                PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
            ))
            .map_err(|e| AtlsError::Build {
                what: "the tls signing key",
                reason: e.to_string(),
            })?
        }
    };
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(cert_der)],
        signing_key,
    )))
}

/// rustls's view of an EC [`AtlsKey`]: handshakes are signed by the aws-lc key pair itself
/// (rustls's own constructors would re-import a PKCS#8 export of it for every handshake).
#[derive(Debug)]
struct EcSigningKey {
    key: Arc<AtlsKey>,
    scheme: SignatureScheme,
}

impl SigningKey for EcSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&self.scheme).then(|| {
            Box::new(EcSigner {
                key: Arc::clone(&self.key),
                scheme: self.scheme,
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct EcSigner {
    key: Arc<AtlsKey>,
    scheme: SignatureScheme,
}

impl Signer for EcSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key
            .sign(message)
            .map_err(|e| rustls::Error::General(e.to_string()))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

fn random_nonce(rng: &mut impl CryptoRngCore) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    nonce
}

fn to_attest_time(now: UnixTime) -> crate::UnixTime {
    crate::UnixTime::from_secs(now.as_secs())
}

fn verification_schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
    provider
        .signature_verification_algorithms
        .supported_schemes()
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// The server side of aTLS: attests itself to each client (with a fresh P-256 key per
/// handshake) and, with a client validator, requires and appraises the client's attestation
/// (mutual aTLS). Without one, a client certificate is requested but optional and only its
/// self-signature and validity are checked (the user API reads the client's key from the slot).
#[derive(Clone, Debug)]
pub struct AtlsServer {
    issuer: Option<Arc<dyn Issuer>>,
    client_validator: Option<AtlsValidator>,
    defer_client_rejection: bool,
    provider: Arc<CryptoProvider>,
    time: Arc<dyn TimeProvider>,
}

impl AtlsServer {
    /// A server attesting with `issuer` (`None`: its certificate carries no attestation).
    #[must_use]
    pub fn new(issuer: Option<Arc<dyn Issuer>>) -> Self {
        Self {
            issuer,
            client_validator: None,
            defer_client_rejection: false,
            provider: crypto_provider(),
            time: Arc::new(DefaultTimeProvider),
        }
    }

    /// Requires client certificates and appraises them (mutual aTLS).
    #[must_use]
    pub fn with_client_validator(mut self, validator: AtlsValidator) -> Self {
        self.client_validator = Some(validator);
        self
    }

    /// Completes the handshake even when the client's attestation fails appraisal, so that
    /// the application can tell the client why in its own protocol (the Coordinator answers
    /// such a client's every request with the reason). The failure is still recorded in the
    /// [`PeerSlot`]: [`PeerSlot::peer`] stays `None` and [`PeerSlot::error`] holds it, so the
    /// application must check the slot before serving anything. A client that sends no
    /// certificate, or one whose TLS signature does not verify, still fails the handshake.
    #[must_use]
    pub fn with_deferred_client_rejection(mut self) -> Self {
        self.defer_client_rejection = true;
        self
    }

    /// The clock for issuing and verifying (default: the system clock).
    #[must_use]
    pub fn with_time_provider(mut self, time: Arc<dyn TimeProvider>) -> Self {
        self.time = time;
        self
    }

    /// The rustls crypto provider (default: [`crypto_provider`]), e.g. one restricted to
    /// certain cipher suites or key exchange groups.
    #[must_use]
    pub fn with_crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// A config for one connection: a fresh server nonce (sent as the single acceptable-CA
    /// name), ALPN `h2` only (a client offering no `h2` is refused), no session tickets or session cache (aTLS
    /// never resumes), and the slot its client verifier fills.
    ///
    /// # Errors
    /// [`AtlsError::Build`] if rustls rejects the configuration.
    pub fn config(
        &self,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ServerConfig, Arc<PeerSlot>), AtlsError> {
        let nonce = random_nonce(rng);
        let slot = Arc::new(PeerSlot::default());
        let hint = ca_hint_for_nonce(&nonce)?;
        let verifier = Arc::new(AtlsClientCertVerifier {
            nonce,
            hints: vec![DistinguishedName::from(hint)],
            validator: self.client_validator.clone(),
            defer_rejection: self.defer_client_rejection,
            provider: Arc::clone(&self.provider),
            slot: Arc::clone(&slot),
        });
        let resolver = Arc::new(AtlsServerCertResolver {
            issuer: self.issuer.clone(),
            time: Arc::clone(&self.time),
            slot: Arc::clone(&slot),
        });
        let mut config =
            ServerConfig::builder_with_details(Arc::clone(&self.provider), Arc::clone(&self.time))
                .with_safe_default_protocol_versions()
                .map_err(rustls_build)?
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(resolver);
        // gRPC: h2 only; rustls refuses a client whose offer does not include it.
        config.alpn_protocols = APPLICATION_PROTOCOLS.map(<[u8]>::to_vec).to_vec();
        // A resumed session would carry no fresh attestation: issue no tickets, keep no sessions.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok((config, slot))
    }
}

fn rustls_build(e: rustls::Error) -> AtlsError {
    AtlsError::Build {
        what: "the rustls config",
        reason: e.to_string(),
    }
}

#[derive(Debug)]
struct AtlsServerCertResolver {
    issuer: Option<Arc<dyn Issuer>>,
    time: Arc<dyn TimeProvider>,
    slot: Arc<PeerSlot>,
}

impl AtlsServerCertResolver {
    fn respond(&self, client_hello: &ClientHello<'_>) -> Result<Arc<CertifiedKey>, AtlsError> {
        let protocols = client_hello
            .alpn()
            .ok_or(super::error::NonceError::NoAlpnNonce)?;
        let nonce = nonce_from_alpn(protocols)?;
        let key = Arc::new(AtlsKey::generate_p256()?);
        let now = now_duration(self.time.as_ref())?;
        let cert = issue_certificate(&key, self.issuer.as_deref(), &nonce, now, &mut OsRng)?;
        certified_key(key, cert)
    }
}

impl ResolvesServerCert for AtlsServerCertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.respond(&client_hello)
            .map_err(|e| self.slot.record_error(e))
            .ok()
    }
}

#[derive(Debug)]
struct AtlsClientCertVerifier {
    nonce: Nonce,
    hints: Vec<DistinguishedName>,
    validator: Option<AtlsValidator>,
    defer_rejection: bool,
    provider: Arc<CryptoProvider>,
    slot: Arc<PeerSlot>,
}

impl ClientCertVerifier for AtlsClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.validator.is_some()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let result = verify_certificate(
            end_entity,
            &self.nonce,
            to_attest_time(now),
            self.validator.as_ref(),
        );
        match self.slot.record(result) {
            Ok(()) => Ok(ClientCertVerified::assertion()),
            // Recorded in the slot; the application refuses the connection's requests.
            Err(_) if self.defer_rejection => Ok(ClientCertVerified::assertion()),
            Err(error) => Err(error),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        verification_schemes(&self.provider)
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// The client side of aTLS: offers a fresh nonce per connection, verifies (and, with a
/// validator, appraises) the server's certificate, and presents its own certificate when asked,
/// attested by its issuer against the server nonce (mutual aTLS).
#[derive(Clone, Debug)]
pub struct AtlsClient {
    validator: Option<AtlsValidator>,
    issuer: Option<Arc<dyn Issuer>>,
    key: Option<Arc<AtlsKey>>,
    provider: Arc<CryptoProvider>,
    time: Arc<dyn TimeProvider>,
}

impl AtlsClient {
    /// A client appraising the server with `validator`: the handshake fails unless the
    /// server's attestation matches.
    #[must_use]
    pub fn new(validator: AtlsValidator) -> Self {
        Self::with_optional_validator(Some(validator))
    }

    /// A client that does **not** attest the server: its certificate is only checked for
    /// self-signature and validity. For a peer whose answers are checked otherwise (the
    /// initializer: the Coordinator's mesh CA is verified later by the workloads; tests and load
    /// generators). Anyone on the path can impersonate the server to such a client.
    #[must_use]
    pub fn dangerous_without_server_attestation() -> Self {
        Self::with_optional_validator(None)
    }

    fn with_optional_validator(validator: Option<AtlsValidator>) -> Self {
        Self {
            validator,
            issuer: None,
            key: None,
            provider: crypto_provider(),
            time: Arc::new(DefaultTimeProvider),
        }
    }

    /// Attests the client's certificate with `issuer` (for mutual aTLS).
    #[must_use]
    pub fn with_issuer(mut self, issuer: Arc<dyn Issuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Uses `key` for the client certificate (e.g. a workload owner's P-384 key) instead of a
    /// fresh P-256 key per handshake.
    #[must_use]
    pub fn with_key(mut self, key: Arc<AtlsKey>) -> Self {
        self.key = Some(key);
        self
    }

    /// The clock for issuing and verifying (default: the system clock).
    #[must_use]
    pub fn with_time_provider(mut self, time: Arc<dyn TimeProvider>) -> Self {
        self.time = time;
        self
    }

    /// The rustls crypto provider (default: [`crypto_provider`]), e.g. one restricted to
    /// certain cipher suites or key exchange groups.
    #[must_use]
    pub fn with_crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// A config for one connection: a fresh client nonce offered as
    /// `atls:v1:nonce:<hex>` followed by `h2`, resumption disabled, and the slot
    /// its server verifier fills.
    ///
    /// # Errors
    /// [`AtlsError::Build`] if rustls rejects the configuration.
    pub fn config(
        &self,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ClientConfig, Arc<PeerSlot>), AtlsError> {
        let nonce = random_nonce(rng);
        let slot = Arc::new(PeerSlot::default());
        let verifier = Arc::new(AtlsServerCertVerifier {
            nonce,
            validator: self.validator.clone(),
            provider: Arc::clone(&self.provider),
            slot: Arc::clone(&slot),
        });
        let resolver = Arc::new(AtlsClientCertResolver {
            issuer: self.issuer.clone(),
            key: self.key.clone(),
            time: Arc::clone(&self.time),
            slot: Arc::clone(&slot),
        });
        let mut config =
            ClientConfig::builder_with_details(Arc::clone(&self.provider), Arc::clone(&self.time))
                .with_safe_default_protocol_versions()
                .map_err(rustls_build)?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_cert_resolver(resolver);
        config.alpn_protocols = std::iter::once(alpn_for_nonce(&nonce))
            .chain(APPLICATION_PROTOCOLS.map(<[u8]>::to_vec))
            .collect();
        // Every connection attests afresh; a resumed session would skip the appraisal.
        config.resumption = Resumption::disabled();
        Ok((config, slot))
    }
}

#[derive(Debug)]
struct AtlsServerCertVerifier {
    nonce: Nonce,
    validator: Option<AtlsValidator>,
    provider: Arc<CryptoProvider>,
    slot: Arc<PeerSlot>,
}

impl ServerCertVerifier for AtlsServerCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = verify_certificate(
            end_entity,
            &self.nonce,
            to_attest_time(now),
            self.validator.as_ref(),
        );
        self.slot.record(result)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        verification_schemes(&self.provider)
    }
}

#[derive(Debug)]
struct AtlsClientCertResolver {
    issuer: Option<Arc<dyn Issuer>>,
    key: Option<Arc<AtlsKey>>,
    time: Arc<dyn TimeProvider>,
    slot: Arc<PeerSlot>,
}

impl AtlsClientCertResolver {
    fn respond(&self, root_hint_subjects: &[&[u8]]) -> Result<Arc<CertifiedKey>, AtlsError> {
        let key = match &self.key {
            Some(key) => Arc::clone(key),
            None => Arc::new(AtlsKey::generate_p256()?),
        };
        let now = now_duration(self.time.as_ref())?;
        let cert = match self.issuer.as_deref() {
            Some(issuer) => {
                let nonce = nonce_from_ca_hints(root_hint_subjects)?;
                issue_certificate(&key, Some(issuer), &nonce, now, &mut OsRng)?
            }
            // Without an issuer the nonce is unused; the certificate just carries the key.
            None => issue_certificate(&key, None, &[0; NONCE_LEN], now, &mut OsRng)?,
        };
        certified_key(key, cert)
    }
}

impl ResolvesClientCert for AtlsClientCertResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.respond(root_hint_subjects)
            .map_err(|e| self.slot.record_error(e))
            .ok()
    }

    fn has_certs(&self) -> bool {
        true
    }
}
