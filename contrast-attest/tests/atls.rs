//! aTLS end to end over 127.0.0.1 with tokio-rustls: a simulated SEV-SNP guest attests a server
//! to a client, both sides to each other (mutual aTLS), and each rejection carries its specific
//! error to the caller.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contrast_attest::atls::{
    self, AtlsClient, AtlsError, AtlsKey, AtlsServer, AtlsValidator, Issuer, NonceError, PeerSlot,
    SNP_ATTESTATION_OID, VerifiedPeer, atls_error_from_io, nonce_from_alpn, report_data,
};
use contrast_attest::evidence::{EvidenceError, SnpEvidence};
use contrast_attest::{AppraisalPolicy, CrlPolicy, Error, LeafKind, Product, TcbVersion, Verifier};
use contrast_core::manifest::GuestPolicy;
use contrast_sim::{SimulatedGuest, SimulatedIssuer, SimulatedPlatform};
use prost::Message as _;
use rand_core::{OsRng, RngCore};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TCB: TcbVersion = TcbVersion {
    fmc: None,
    bootloader: 3,
    tee: 0,
    snp: 8,
    microcode: 209,
};

fn guest_policy() -> GuestPolicy {
    GuestPolicy {
        smt: true,
        ..GuestPolicy::default()
    }
}

/// One Milan hierarchy for the whole binary (RSA-4096 generation is slow in debug builds).
fn platform() -> &'static SimulatedPlatform {
    static PLATFORM: OnceLock<SimulatedPlatform> = OnceLock::new();
    PLATFORM.get_or_init(|| {
        let not_before = SystemTime::now() - Duration::from_secs(24 * 3600);
        SimulatedPlatform::generate(Product::Milan, not_before, &mut OsRng).unwrap()
    })
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A guest launched with `measurement`, Contrast's ID block and a random HOST_DATA.
fn guest(measurement: [u8; 48]) -> SimulatedGuest {
    let mut guest = SimulatedGuest::launched(
        Product::Milan,
        random::<64>(),
        TCB,
        measurement,
        &guest_policy(),
    )
    .unwrap();
    guest.host_data = random::<32>();
    guest
}

fn issuer(guest: &SimulatedGuest) -> Arc<dyn Issuer> {
    Arc::new(SimulatedIssuer::new(platform(), guest.clone()))
}

fn validator(measurement: [u8; 48]) -> AtlsValidator {
    AtlsValidator::new(Verifier::new(
        &[platform().reference_values(&measurement, &guest_policy(), TCB)],
        // The simulated ARK signs no CRL.
        AppraisalPolicy::default().with_crl(CrlPolicy::BestEffort),
    ))
}

struct Outcome {
    client: Result<Vec<u8>, std::io::Error>,
    server: Result<(), std::io::Error>,
    server_cert: Option<Vec<u8>>,
    /// TLS 1.3 session tickets the client received (by the time it read "pong").
    tickets_received: u32,
    /// The negotiated cipher suite (client side).
    suite: Option<rustls::CipherSuite>,
}

/// One connection: the client writes "ping", the server answers "pong". Returns the negotiated
/// ALPN (client side), the server's result and the certificate the client saw.
async fn connect(client: ClientConfig, server: ServerConfig) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<(), std::io::Error>(())
    });
    let connector = TlsConnector::from(Arc::new(client));
    let mut server_cert = None;
    let mut tickets_received = 0;
    let mut suite = None;
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let (_, conn) = tls.get_ref();
        server_cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        let alpn = conn.alpn_protocol().unwrap_or_default().to_vec();
        suite = conn.negotiated_cipher_suite().map(|s| s.suite());
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");
        tickets_received = tls.get_ref().1.tls13_tickets_received();
        Ok(alpn)
    }
    .await;
    let server = server_task.await.unwrap();
    Outcome {
        client,
        server,
        server_cert,
        tickets_received,
        suite,
    }
}

fn client_error(outcome: &Outcome) -> &AtlsError {
    let error = outcome.client.as_ref().expect_err("the client must fail");
    atls_error_from_io(error).unwrap_or_else(|| panic!("no aTLS error in {error:?}"))
}

fn attested(slot: &PeerSlot) -> atls::AttestedPeer {
    slot.peer()
        .and_then(|p| p.attestation)
        .expect("an appraised peer")
}

#[tokio::test]
async fn server_attests_to_client_and_unknown_host_data_is_left_to_the_caller() {
    let measurement = random::<48>();
    let server_guest = guest(measurement);
    let (server_config, server_slot) = AtlsServer::new(Some(issuer(&server_guest)))
        .config(&mut OsRng)
        .unwrap();
    let (client_config, client_slot) = AtlsClient::new(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    assert!(server_slot.error().is_none(), "{:?}", server_slot.error());
    assert!(outcome.server.is_ok(), "{:?}", outcome.server);
    assert_eq!(outcome.client.unwrap(), b"h2");
    outcome.server.unwrap();

    // HOST_DATA is random (in no manifest): the handshake succeeds and exposes it.
    let peer = attested(&client_slot);
    assert_eq!(peer.host_data, server_guest.host_data);
    assert_eq!(peer.measurement, measurement);
    assert_eq!(peer.matched_index, 0);
    assert_eq!(peer.document_oid, SNP_ATTESTATION_OID);
    assert_eq!(peer.chip_id, server_guest.chip_id);
    assert_eq!(peer.report_bytes().len(), 1184);
    // The verified report is available without another signature check, and agrees.
    let report = peer.report().unwrap();
    assert_eq!(report.host_data(), &server_guest.host_data);
    assert_eq!(report.as_bytes().as_slice(), peer.report_bytes());
    assert!(client_slot.error().is_none());

    // The server's certificate: CN=Contrast, ±2h, the document under the simulated OID.
    let cert = atls::AtlsCertificate::parse(&outcome.server_cert.unwrap()).unwrap();
    assert_eq!(cert.not_after - cert.not_before, 4 * 3600);
    assert_eq!(cert.spki_der, client_slot.peer().unwrap().spki_der);

    // Server-only aTLS: the client's certificate was requested, not required, not appraised;
    // its key still reaches the server.
    let client_peer: VerifiedPeer = server_slot.peer().expect("the client's certificate");
    assert!(client_peer.attestation.is_none());
}

#[tokio::test]
async fn mutual_atls_each_side_appraises_the_other() {
    let server_measurement = random::<48>();
    let client_measurement = random::<48>();
    let server_guest = guest(server_measurement);
    let client_guest = guest(client_measurement);
    // The client presents a caller-supplied P-384 key (as a workload owner's key would be).
    let client_key = Arc::new(AtlsKey::generate_p384().unwrap());

    let (server_config, server_slot) = AtlsServer::new(Some(issuer(&server_guest)))
        .with_client_validator(validator(client_measurement))
        .config(&mut OsRng)
        .unwrap();
    let (client_config, client_slot) = AtlsClient::new(validator(server_measurement))
        .with_issuer(issuer(&client_guest))
        .with_key(Arc::clone(&client_key))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    assert_eq!(outcome.client.unwrap(), b"h2");
    outcome.server.unwrap();

    assert_eq!(attested(&client_slot).host_data, server_guest.host_data);
    let client_peer = server_slot.peer().unwrap();
    assert_eq!(client_peer.spki_der, client_key.spki_der().unwrap());
    assert_eq!(
        client_peer.attestation.unwrap().host_data,
        client_guest.host_data
    );
}

/// A resumed session would carry no fresh attestation, so aTLS servers issue no session tickets
/// and keep no session cache.
#[tokio::test]
async fn no_session_tickets_are_issued() {
    let measurement = random::<48>();
    let atls_server = AtlsServer::new(Some(issuer(&guest(measurement))));
    let (server_config, _) = atls_server.config(&mut OsRng).unwrap();
    assert_eq!(server_config.send_tls13_tickets, 0);
    assert!(!server_config.session_storage.can_cache());
    let client = AtlsClient::new(validator(measurement));
    let outcome = connect(client.config(&mut OsRng).unwrap().0, server_config).await;
    outcome.client.unwrap();
    assert_eq!(outcome.tickets_received, 0);

    // Control: the same connection with rustls' default of two tickets shows them arriving.
    let (mut ticketing, _) = atls_server.config(&mut OsRng).unwrap();
    ticketing.send_tls13_tickets = 2;
    ticketing.session_storage = rustls::server::ServerSessionMemoryCache::new(16);
    let outcome = connect(client.config(&mut OsRng).unwrap().0, ticketing).await;
    outcome.client.unwrap();
    assert_eq!(outcome.tickets_received, 2);
}

/// TLS 1.3 with AES-128-GCM/SHA-256 between our peers; a peer offering only AES-256-GCM still
/// connects.
#[tokio::test]
async fn aes_128_gcm_sha256_is_preferred_and_the_others_still_connect() {
    let measurement = random::<48>();
    let atls_server = AtlsServer::new(Some(issuer(&guest(measurement))));
    let client = AtlsClient::new(validator(measurement));
    let outcome = connect(
        client.config(&mut OsRng).unwrap().0,
        atls_server.config(&mut OsRng).unwrap().0,
    )
    .await;
    outcome.client.unwrap();
    assert_eq!(
        outcome.suite,
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    );

    let mut provider = (*atls::crypto_provider()).clone();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    let (only_aes_256, _) = client
        .with_crypto_provider(Arc::new(provider))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(only_aes_256, atls_server.config(&mut OsRng).unwrap().0).await;
    outcome.client.unwrap();
    assert_eq!(
        outcome.suite,
        Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
}

#[tokio::test]
async fn mutual_atls_server_rejects_a_client_with_another_measurement() {
    let measurement = random::<48>();
    let (server_config, server_slot) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .with_client_validator(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    let (client_config, _) = AtlsClient::new(validator(measurement))
        .with_issuer(issuer(&guest(random::<48>())))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    assert!(outcome.client.is_err());
    let error = outcome
        .server
        .expect_err("the server must refuse the client");
    let error = atls_error_from_io(&error).expect("an aTLS error");
    assert_measurement_mismatch(error);
    assert_measurement_mismatch(&server_slot.error().unwrap());
}

#[tokio::test]
async fn deferred_rejection_completes_the_handshake_and_keeps_the_error() {
    let measurement = random::<48>();
    let (server_config, server_slot) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .with_client_validator(validator(measurement))
        .with_deferred_client_rejection()
        .config(&mut OsRng)
        .unwrap();
    let (client_config, _) = AtlsClient::new(validator(measurement))
        .with_issuer(issuer(&guest(random::<48>())))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    // Both sides complete: the application is left to refuse, with the reason in the slot.
    assert_eq!(outcome.client.unwrap(), b"h2");
    outcome.server.unwrap();
    assert!(server_slot.peer().is_none(), "a rejected client is no peer");
    assert_measurement_mismatch(&server_slot.error().unwrap());

    // A certificate without attestation is deferred the same way, and never becomes a peer.
    let (server_config, server_slot) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .with_client_validator(validator(measurement))
        .with_deferred_client_rejection()
        .config(&mut OsRng)
        .unwrap();
    let (client_config, _) = AtlsClient::dangerous_without_server_attestation()
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    outcome.server.unwrap();
    assert!(server_slot.peer().is_none());
    assert!(matches!(
        server_slot.error().as_deref(),
        Some(AtlsError::NoAttestationExtension)
    ));
}

#[tokio::test]
async fn mutual_atls_server_requires_a_client_certificate() {
    let measurement = random::<48>();
    let (server_config, _) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .with_client_validator(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    // A client with no issuer presents a plain certificate: no attestation extension.
    let (client_config, _) = AtlsClient::dangerous_without_server_attestation()
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    let error = outcome
        .server
        .expect_err("the server must refuse the client");
    assert!(matches!(
        atls_error_from_io(&error),
        Some(AtlsError::NoAttestationExtension)
    ));
    assert_eq!(
        atls_error_from_io(&error).map(AtlsError::kind),
        Some(contrast_attest::ErrorKind::NoAttestation)
    );
}

fn assert_measurement_mismatch(error: &AtlsError) {
    let AtlsError::Appraisal(Error::NoReferenceValuesMatched { attempts }) = error else {
        panic!("expected an appraisal failure, got {error:?}");
    };
    assert!(
        matches!(
            attempts.as_slice(),
            [(0, Error::MeasurementMismatch { .. })]
        ),
        "{attempts:?}"
    );
    // Callers that classify (metrics) see a genuine report the reference values refuse.
    assert_eq!(error.kind(), contrast_attest::ErrorKind::Policy);
}

#[tokio::test]
async fn rejects_a_measurement_not_in_the_reference_values() {
    let (server_config, _) = AtlsServer::new(Some(issuer(&guest(random::<48>()))))
        .config(&mut OsRng)
        .unwrap();
    let (client_config, client_slot) = AtlsClient::new(validator(random::<48>()))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    assert_measurement_mismatch(client_error(&outcome));
    assert_measurement_mismatch(&client_slot.error().unwrap());
    assert!(client_slot.peer().is_none());
}

#[tokio::test]
async fn rejects_a_certificate_without_attestation_extension() {
    let (server_config, _) = AtlsServer::new(None).config(&mut OsRng).unwrap();
    let (client_config, _) = AtlsClient::new(validator(random::<48>()))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    assert!(matches!(
        client_error(&outcome),
        AtlsError::NoAttestationExtension
    ));
}

#[derive(Debug)]
struct FixedTime(rustls::pki_types::UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        Some(self.0)
    }
}

#[tokio::test]
async fn rejects_an_expired_certificate() {
    let measurement = random::<48>();
    let (server_config, _) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .config(&mut OsRng)
        .unwrap();
    let later =
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(3 * 3600);
    let (client_config, _) = AtlsClient::new(validator(measurement))
        .with_time_provider(Arc::new(FixedTime(
            rustls::pki_types::UnixTime::since_unix_epoch(later),
        )))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    let AtlsError::Expired { not_after, now } = client_error(&outcome) else {
        panic!("expected Expired, got {:?}", client_error(&outcome));
    };
    assert_eq!(*now, later.as_secs());
    assert!(*not_after < *now);
}

/// A server that presents a fixed certificate chain with a key of its own.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn certified(cert: Vec<u8>, key: &AtlsKey) -> Arc<CertifiedKey> {
    let pkcs8 = key.pkcs8_der().unwrap();
    let signing = rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&PrivateKeyDer::Pkcs8(
        PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
    ))
    .unwrap();
    Arc::new(CertifiedKey::new(vec![CertificateDer::from(cert)], signing))
}

fn plain_server(resolver: Arc<dyn ResolvesServerCert>) -> ServerConfig {
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

#[tokio::test]
async fn rejects_a_replayed_certificate() {
    let measurement = random::<48>();
    let (server_config, _) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .config(&mut OsRng)
        .unwrap();
    let (client_config, _) = AtlsClient::new(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    let first = connect(client_config, server_config).await;
    first.client.unwrap();
    let captured = first.server_cert.unwrap();

    // An attacker replays the genuine certificate to a new client (with a key of its own: it
    // cannot have the enclave's). The new nonce makes the report data differ.
    let replay = plain_server(Arc::new(FixedCert(certified(
        captured.clone(),
        &AtlsKey::generate_p256().unwrap(),
    ))));
    let (client_config, client_slot) = AtlsClient::new(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, replay).await;
    let AtlsError::ReportDataMismatch { expected, found } = client_error(&outcome) else {
        panic!(
            "expected ReportDataMismatch, got {:?}",
            client_error(&outcome)
        );
    };
    assert_ne!(expected, found);
    assert_eq!(
        client_error(&outcome).kind(),
        contrast_attest::ErrorKind::Freshness
    );
    assert!(client_slot.peer().is_none());

    // The same check, pure: the captured certificate against some other nonce.
    let now = contrast_attest::UnixTime::from_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    assert!(matches!(
        atls::verify_certificate(
            &captured,
            &random::<32>(),
            now,
            Some(&validator(measurement))
        ),
        Err(AtlsError::ReportDataMismatch { .. })
    ));
}

/// A server whose report data is bound to another key than the one in its certificate.
#[derive(Debug)]
struct OtherKeyResolver {
    issuer: Arc<dyn Issuer>,
    bound: Mutex<Option<[u8; 64]>>,
}

impl ResolvesServerCert for OtherKeyResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let nonce = nonce_from_alpn(hello.alpn()?).ok()?;
        let tls_key = AtlsKey::generate_p256().unwrap();
        let other_key = AtlsKey::generate_p256().unwrap();
        let data = report_data(&other_key.spki_der().unwrap(), &nonce);
        *self.bound.lock().unwrap() = Some(data);
        let document = self.issuer.issue(&data).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let cert = atls::AtlsCertificate::build(
            &tls_key,
            Some((self.issuer.oid(), &document)),
            now,
            &mut OsRng,
        )
        .unwrap();
        Some(certified(cert, &tls_key))
    }
}

#[tokio::test]
async fn rejects_report_data_bound_to_another_key() {
    let measurement = random::<48>();
    let resolver = Arc::new(OtherKeyResolver {
        issuer: issuer(&guest(measurement)),
        bound: Mutex::new(None),
    });
    let server = plain_server(resolver.clone());
    let (client_config, _) = AtlsClient::new(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server).await;
    let AtlsError::ReportDataMismatch { expected, found } = client_error(&outcome) else {
        panic!(
            "expected ReportDataMismatch, got {:?}",
            client_error(&outcome)
        );
    };
    assert_eq!(Some(found.0), *resolver.bound.lock().unwrap());
    assert_ne!(expected, found);
}

#[tokio::test]
async fn server_rejects_another_atls_version() {
    let (server_config, server_slot) = AtlsServer::new(Some(issuer(&guest(random::<48>()))))
        .config(&mut OsRng)
        .unwrap();
    let (mut client_config, _) = AtlsClient::dangerous_without_server_attestation()
        .config(&mut OsRng)
        .unwrap();
    client_config.alpn_protocols = vec![b"atls:v2:nonce:00".to_vec(), b"h2".to_vec()];
    let outcome = connect(client_config, server_config).await;
    assert!(outcome.client.is_err());
    assert!(outcome.server.is_err());
    assert!(matches!(
        server_slot.error().as_deref(),
        Some(AtlsError::Nonce(NonceError::UnsupportedVersion { found })) if found == "v2"
    ));
}

#[tokio::test]
async fn the_client_offers_the_nonce_then_h2_and_gets_h2() {
    let measurement = random::<48>();
    let (server_config, server_slot) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .config(&mut OsRng)
        .unwrap();
    let (client_config, _) = AtlsClient::new(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    // Exactly upstream's offer: the nonce entry, then h2.
    assert_eq!(client_config.alpn_protocols.len(), 2);
    let nonce = String::from_utf8(client_config.alpn_protocols[0].clone()).unwrap();
    let hex = nonce.strip_prefix("atls:v1:nonce:").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(client_config.alpn_protocols[1], b"h2");
    let outcome = connect(client_config, server_config).await;
    assert!(server_slot.error().is_none(), "{:?}", server_slot.error());
    assert_eq!(outcome.client.unwrap(), b"h2");
    outcome.server.unwrap();
}

#[tokio::test]
async fn a_client_offering_only_http11_is_refused() {
    let measurement = random::<48>();
    let (server_config, _) = AtlsServer::new(Some(issuer(&guest(measurement))))
        .config(&mut OsRng)
        .unwrap();
    let (mut client_config, _) = AtlsClient::new(validator(measurement))
        .config(&mut OsRng)
        .unwrap();
    // The nonce entry stays (else the nonce is missing), h2 is replaced by HTTP/1.1.
    client_config.alpn_protocols.truncate(1);
    client_config.alpn_protocols.push(b"http/1.1".to_vec());
    let outcome = connect(client_config, server_config).await;
    // rustls: "peer doesn't support any known protocol" (NoApplicationProtocol).
    let error = outcome.server.unwrap_err();
    assert!(error.to_string().contains("known protocol"), "{error}");
    assert!(outcome.client.is_err());
}

fn unix_now() -> contrast_attest::UnixTime {
    contrast_attest::UnixTime::from_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

#[test]
fn rejects_other_oids_and_malformed_documents() {
    let key = AtlsKey::generate_p256().unwrap();
    let nonce = random::<32>();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let validator = validator(random::<48>());
    let cert_with = |oid: &str, document: &[u8]| {
        atls::AtlsCertificate::build(
            &key,
            Some((const_oid::ObjectIdentifier::new_unwrap(oid), document)),
            now,
            &mut OsRng,
        )
        .unwrap()
    };

    // Upstream's TDX and insecure documents are recognised but refused ("no matching
    // validators"), naming what they are.
    for (oid, name) in [
        ("1.3.9901.2.2", "Intel TDX quote"),
        ("1.3.9901.2.3", "insecure development report"),
    ] {
        let cert = cert_with(oid, b"\x0a\x00");
        match atls::verify_certificate(&cert, &nonce, unix_now(), Some(&validator)) {
            Err(AtlsError::UnsupportedDocumentOid {
                oid: found,
                name: n,
            }) => {
                assert_eq!(found, oid);
                assert_eq!(n, name);
            }
            other => panic!("{oid}: expected UnsupportedDocumentOid, got {other:?}"),
        }
    }
    // Any other OID of upstream's attestation arc is unknown.
    let unknown = cert_with("1.3.9901.2.99", b"\x0a\x00");
    assert!(matches!(
        atls::verify_certificate(&unknown, &nonce, unix_now(), Some(&validator)),
        Err(AtlsError::UnknownDocumentOid { oid }) if oid == "1.3.9901.2.99"
    ));
    // The retired private contrast-rs OID is not an attestation extension at all.
    let retired = cert_with("1.3.6.1.4.1.59999.1.2", b"CRAD\x01");
    assert!(matches!(
        atls::verify_certificate(&retired, &nonce, unix_now(), Some(&validator)),
        Err(AtlsError::NoAttestationExtension)
    ));
    // The SEV-SNP OID with bytes that are not a sevsnp.Attestation.
    let garbage = cert_with("1.3.9901.2.1", b"CRAD\x07");
    assert!(matches!(
        atls::verify_certificate(&garbage, &nonce, unix_now(), Some(&validator)),
        Err(AtlsError::Evidence(EvidenceError::Decode { .. }))
    ));
    // A well-formed message without a report.
    let empty = cert_with("1.3.9901.2.1", b"");
    assert!(matches!(
        atls::verify_certificate(&empty, &nonce, unix_now(), Some(&validator)),
        Err(AtlsError::Evidence(EvidenceError::Missing {
            field: "report"
        }))
    ));

    // Without a validator nothing is appraised: the same certificate passes, key exposed.
    let peer = atls::verify_certificate(&garbage, &nonce, unix_now(), None).unwrap();
    assert_eq!(peer.spki_der, key.spki_der().unwrap());
    assert!(peer.attestation.is_none());

    // A certificate not yet valid (clock behind by more than the 2h margin).
    let early = contrast_attest::UnixTime::from_secs(now.as_secs() - 3 * 3600);
    assert!(matches!(
        atls::verify_certificate(&garbage, &nonce, early, None),
        Err(AtlsError::NotYetValid { .. })
    ));
}

#[test]
fn issued_document_round_trips_and_binds_the_key() {
    let measurement = random::<48>();
    let guest = guest(measurement);
    let issuer = issuer(&guest);
    let key = AtlsKey::generate_p384().unwrap();
    let nonce = random::<32>();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let der =
        atls::issue_certificate(&key, Some(issuer.as_ref()), &nonce, now, &mut OsRng).unwrap();
    let peer =
        atls::verify_certificate(&der, &nonce, unix_now(), Some(&validator(measurement))).unwrap();
    let attested = peer.attestation.unwrap();
    assert_eq!(attested.host_data, guest.host_data);
    assert_eq!(
        attested.report_data,
        report_data(&key.spki_der().unwrap(), &nonce)
    );
    let cert = atls::AtlsCertificate::parse(&der).unwrap();
    let (oid, document) = cert.attestation.unwrap();
    assert_eq!(oid, SNP_ATTESTATION_OID);
    let document = SnpEvidence::parse(&document).unwrap();
    let vcek = guest.vcek_der(platform()).unwrap();
    assert_eq!(document.leaf(LeafKind::Vcek), Some(vcek.as_slice()));
    assert_eq!(document.leaf(LeafKind::Vlek), None);
    assert_eq!(document.intermediate(), Some(platform().ask_der()));
    assert_eq!(document.ark(), Some(platform().ark_der()));
    assert_eq!(document.crl(), None);
    // The product is the simulated platform's, machine_stepping present and 0.
    assert_eq!(document.claimed_product(), Some(Product::Milan));
    let proto =
        contrast_attest::evidence::sevsnp::Attestation::decode(cert_document(&der).as_slice())
            .unwrap();
    assert_eq!(proto.product.unwrap().machine_stepping, Some(0));
}

/// Records every event's fields as `name=value` lines (a minimal subscriber; no extra crates).
#[derive(Default)]
struct CapturedLog(std::sync::Mutex<Vec<String>>);

struct FieldWriter<'a>(&'a mut String);

impl tracing::field::Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for &'static CapturedLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{} ", event.metadata().level());
        event.record(&mut FieldWriter(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A rejected peer is never silent: the appraisal error reaches the log as well as the caller.
#[tokio::test]
async fn rejections_are_logged_with_the_appraisal_error() {
    // Process-wide, not `set_default`: tracing caches callsite interest globally, so a
    // thread-scoped subscriber can miss events while other tests run concurrently.
    static LOG: OnceLock<CapturedLog> = OnceLock::new();
    let log = LOG.get_or_init(CapturedLog::default);
    let _ = tracing::subscriber::set_global_default(log);

    let (server_config, _) = AtlsServer::new(Some(issuer(&guest(random::<48>()))))
        .config(&mut OsRng)
        .unwrap();
    let (client_config, _) = AtlsClient::new(validator(random::<48>()))
        .config(&mut OsRng)
        .unwrap();
    let outcome = connect(client_config, server_config).await;
    assert_measurement_mismatch(client_error(&outcome));

    let lines = log.0.lock().unwrap().clone();
    assert!(
        lines.iter().any(|line| line.starts_with("WARN")
            && line.contains("aTLS peer rejected")
            && line.contains("measurement mismatch")),
        "no warning with the appraisal error in {lines:#?}"
    );
}

fn cert_document(der: &[u8]) -> Vec<u8> {
    atls::AtlsCertificate::parse(der)
        .unwrap()
        .attestation
        .unwrap()
        .1
}
