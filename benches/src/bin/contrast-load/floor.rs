//! The per-attestation cost floor: the raw primitives each side must perform for one
//! attestation, timed in this process (one thread, same libraries and key types as the real
//! code), so that the measured throughput can be given as a fraction of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    RsaKeyPair, UnparsedPublicKey,
};
use contrast_attest::atls::{AtlsCertificate, AtlsClient, AtlsKey, AtlsServer};
use contrast_attest::report::{Field, SIGNED_LEN};
use contrast_tee::SimulatedEnvironment;
use rand_core::OsRng;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Serialize;

use crate::issuer::Chip;

/// One timed primitive.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Primitive {
    /// Short name.
    pub(crate) name: &'static str,
    /// `server` or `client` (`both` for the handshake, which runs both sides).
    pub(crate) side: &'static str,
    /// What exactly is timed.
    pub(crate) what: &'static str,
    /// Mean wall time per operation on one core, microseconds.
    pub(crate) micros: f64,
    /// Iterations timed.
    pub(crate) iterations: u64,
}

/// The floor and the primitives it is made of.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Floor {
    /// The primitives counted in the floor (the list).
    pub(crate) counted: Vec<Primitive>,
    /// Further work the protocol does per attestation, timed for context, not in the floor.
    pub(crate) not_counted: Vec<Primitive>,
    /// Sum of `counted`, microseconds of CPU per attestation (both sides).
    pub(crate) micros_per_attestation: f64,
    /// Cores the floor is computed for.
    pub(crate) cores: u32,
    /// `cores / micros_per_attestation`, attestations per second.
    pub(crate) attestations_per_second: f64,
    /// As `micros_per_attestation` with `not_counted` added.
    pub(crate) protocol_micros_per_attestation: f64,
    /// As `attestations_per_second` with `not_counted` added.
    pub(crate) protocol_attestations_per_second: f64,
    /// How the floor is computed, in words.
    pub(crate) method: String,
}

/// Times `op` for at least `budget` and at least 20 iterations: mean time per operation.
fn time<F>(budget: Duration, mut op: F) -> Result<(f64, u64)>
where
    F: FnMut() -> Result<()>,
{
    // One warm-up call (lazy initialisation, CPU feature detection).
    op()?;
    let start = Instant::now();
    let mut iterations = 0u64;
    while iterations < 20 || start.elapsed() < budget {
        op()?;
        iterations += 1;
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / iterations as f64;
    Ok((micros, iterations))
}

/// Measures every primitive (about `budget` each) and computes the floor for `cores`.
pub(crate) fn measure(
    env: &SimulatedEnvironment,
    chip: &Chip,
    cores: u32,
    budget: Duration,
) -> Result<Floor> {
    let rng = SystemRandom::new();
    let mut counted = Vec::new();
    let mut not_counted = Vec::new();
    let record = |list: &mut Vec<Primitive>,
                  name: &'static str,
                  side: &'static str,
                  what: &'static str,
                  (micros, iterations): (f64, u64)| {
        list.push(Primitive {
            name,
            side,
            what,
            micros,
            iterations,
        });
    };

    // Server: verify the report signature (what the appraisal does per attestation).
    let report = chip.report(&[7; 64])?;
    let vcek = UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, chip.vcek_public_key()?);
    let fixed_signature = fixed_signature_of(&report);
    let body = &report[..SIGNED_LEN];
    vcek.verify(body, &fixed_signature)
        .map_err(|_| anyhow!("the chip's report does not verify under its VCEK"))?;
    record(
        &mut counted,
        "report_verify",
        "server",
        "ECDSA P-384/SHA-384 verify of the 672-byte signed part of a report (aws-lc-rs)",
        time(budget, || {
            vcek.verify(body, &fixed_signature)
                .map_err(|_| anyhow!("report verify failed"))
        })?,
    );

    // Server: sign the mesh certificate with the mesh CA's P-384 key.
    let ca_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow!("generating a P-384 key"))?;
    let ca = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, ca_pkcs8.as_ref())
        .map_err(|_| anyhow!("importing a P-384 key"))?;
    let tbs = vec![0x5Au8; 1024];
    record(
        &mut counted,
        "mesh_cert_sign",
        "server",
        "ECDSA P-384/SHA-384 signature over a 1 KiB TBS certificate (aws-lc-rs)",
        time(budget, || {
            ca.sign(&rng, &tbs)
                .map(|_| ())
                .map_err(|_| anyhow!("signing failed"))
        })?,
    );

    // Both sides: a plain mutual TLS 1.3 handshake (static P-256 certificates).
    let plain = PlainTls::new()?;
    let plain_handshake = time(budget, || plain.handshake())?;
    record(
        &mut counted,
        "tls_handshake",
        "both",
        "one in-memory mutual TLS 1.3 handshake, both sides in this thread (rustls + aws-lc-rs, \
         aTLS's provider: X25519, AES-128-GCM/SHA-256, no resumption): static P-256 certificates, both \
         CertificateVerify signatures and their verification",
        plain_handshake,
    );

    // Client: a fresh P-256 key (each attestation is a new initializer).
    let keygen = time(budget, || {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map(|_| ())
            .map_err(|_| anyhow!("P-256 key generation failed"))
    })?;
    record(
        &mut counted,
        "client_keygen",
        "client",
        "ECDSA P-256 key generation (aws-lc-rs)",
        keygen,
    );

    // Client: the report signature.
    record(
        &mut counted,
        "report_sign",
        "client",
        "ECDSA P-384/SHA-384 signature of a report by the chip's VCEK (aws-lc-rs)",
        time(budget, || chip.report(&[9; 64]).map(|_| ()))?,
    );

    // Not in the floor: the Coordinator attests itself on every handshake.
    record(
        &mut not_counted,
        "server_report_sign",
        "server",
        "the Coordinator's own report for its aTLS certificate: one more ECDSA P-384 \
         signature by its VCEK",
        time(budget, || chip.report(&[3; 64]).map(|_| ()))?,
    );

    // Not in the floor: what aTLS adds to a plain handshake (the server's fresh key and
    // certificate per handshake, both certificates built and checked by contrast-attest).
    let client_key = Arc::new(AtlsKey::generate_p256()?);
    let (atls_micros, atls_iterations) = time(budget, || handshake_in_memory(&client_key))?;
    record(
        &mut not_counted,
        "atls_overhead",
        "both",
        "aTLS handshake (no documents) minus the plain one: the server's fresh P-256 key and \
         self-signed certificate per handshake, the client's self-signed certificate, both \
         self-signatures checked (contrast-attest on aws-lc-rs)",
        ((atls_micros - plain_handshake.0).max(0.0), atls_iterations),
    );
    let (atls_keygen, atls_keygen_iterations) = time(budget, || {
        AtlsKey::generate_p256()?;
        Ok(())
    })?;
    record(
        &mut not_counted,
        "keygen_overhead",
        "client",
        "AtlsKey::generate_p256 (what the initializer uses) minus the raw aws-lc-rs key \
         generation",
        ((atls_keygen - keygen.0).max(0.0), atls_keygen_iterations),
    );

    // Not in the floor: the VCEK chain (ARK -> ASK -> VCEK), two RSA-PSS-4096 verifications.
    let ark_pem = std::fs::read(
        env.dir()
            .join(contrast_tee::simulated::PLATFORM_DIR)
            .join(contrast_sim::files::ARK_KEY),
    )
    .context("reading the simulated ARK key")?;
    let (_, ark_pkcs8) =
        der::pem::decode_vec(&ark_pem).map_err(|e| anyhow!("the ARK key PEM: {e}"))?;
    let ark = RsaKeyPair::from_pkcs8(&ark_pkcs8).map_err(|e| anyhow!("the ARK key: {e}"))?;
    let mut rsa_signature = vec![0u8; ark.public_modulus_len()];
    ark.sign(&signature::RSA_PSS_SHA384, &rng, &tbs, &mut rsa_signature)
        .map_err(|_| anyhow!("RSA signing failed"))?;
    let ark_public = UnparsedPublicKey::new(
        &signature::RSA_PSS_2048_8192_SHA384,
        ark.public_key().as_ref().to_vec(),
    );
    let (micros, iterations) = time(budget, || {
        ark_public
            .verify(&tbs, &rsa_signature)
            .map_err(|_| anyhow!("RSA verify failed"))
    })?;
    record(
        &mut not_counted,
        "vcek_chain_verify",
        "server",
        "the VCEK chain: 2 x RSA-PSS-4096/SHA-384 verification (ASK by ARK, VCEK by ASK), \
         if not cached",
        (micros * 2.0, iterations),
    );

    let micros_per_attestation: f64 = counted.iter().map(|p| p.micros).sum();
    let protocol_micros_per_attestation =
        micros_per_attestation + not_counted.iter().map(|p| p.micros).sum::<f64>();
    let per_second = |micros: f64| f64::from(cores) * 1e6 / micros;
    Ok(Floor {
        method: format!(
            "floor = sum of the counted primitives' mean single-core times (server: report \
             verify + mesh certificate signature; both: the TLS handshake; client: key \
             generation + report signature), each the raw operation in aws-lc-rs / rustls, i.e. \
             the CPU time one attestation needs on both sides together; floor rate = {cores} cores / that time. The protocol rate adds \
             the not-counted work the protocol also does per attestation. Fraction of floor = \
             measured rate / floor rate."
        ),
        attestations_per_second: per_second(micros_per_attestation),
        protocol_attestations_per_second: per_second(protocol_micros_per_attestation),
        counted,
        not_counted,
        micros_per_attestation,
        protocol_micros_per_attestation,
        cores,
    })
}

/// The report's signature as the fixed-width big-endian `r ‖ s` aws-lc-rs verifies.
fn fixed_signature_of(report: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    for offset in [Field::SignatureR.offset(), Field::SignatureS.offset()] {
        out.extend(report[offset..offset + 48].iter().rev());
    }
    out
}

/// One mutual aTLS handshake (no documents) between in-memory rustls connections, the client
/// presenting `client_key`.
fn handshake_in_memory(client_key: &Arc<AtlsKey>) -> Result<()> {
    let client_key = Arc::clone(client_key);
    let (server_config, _) = AtlsServer::new(None).config(&mut OsRng)?;
    let (client_config, _) = AtlsClient::dangerous_without_server_attestation()
        .with_key(client_key)
        .config(&mut OsRng)?;
    let server = rustls::ServerConnection::new(Arc::new(server_config))?;
    let client = rustls::ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from("coordinator")?.to_owned(),
    )?;
    complete(client, server)
}

/// Runs a handshake between two in-memory connections to its end.
fn complete(
    mut client: rustls::ClientConnection,
    mut server: rustls::ServerConnection,
) -> Result<()> {
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        pump(&mut client, &mut server)?;
        pump(&mut server, &mut client)?;
    }
    Err(anyhow!("the in-memory handshake did not finish"))
}

fn pump<A, B, DA, DB>(from: &mut A, to: &mut B) -> Result<()>
where
    A: std::ops::DerefMut<Target = rustls::ConnectionCommon<DA>>,
    B: std::ops::DerefMut<Target = rustls::ConnectionCommon<DB>>,
{
    let mut buffer = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buffer)?;
    }
    let mut rest = buffer.as_slice();
    while !rest.is_empty() {
        to.read_tls(&mut rest)?;
        to.process_new_packets()?;
    }
    Ok(())
}

/// Static configs for a plain mutual TLS 1.3 handshake: P-256 certificates made once,
/// verifiers that accept the certificates but verify the handshake signatures.
struct PlainTls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl PlainTls {
    fn new() -> Result<Self> {
        // The provider aTLS uses, so the handshake runs the same cipher suite.
        let provider = contrast_attest::atls::crypto_provider();
        let identity = || -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
            let key = AtlsKey::generate_p256()?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            let cert = AtlsCertificate::build(&key, None, now, &mut OsRng)?;
            let pkcs8 = key.pkcs8_der()?;
            Ok((
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec())),
            ))
        };
        let verifier = Arc::new(AcceptCertificates(Arc::clone(&provider)));
        let (server_chain, server_key) = identity()?;
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(server_chain, server_key)?;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let (client_chain, client_key) = identity()?;
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(client_chain, client_key)?;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    fn handshake(&self) -> Result<()> {
        let server = rustls::ServerConnection::new(Arc::clone(&self.server))?;
        let client = rustls::ClientConnection::new(
            Arc::clone(&self.client),
            ServerName::try_from("coordinator")?.to_owned(),
        )?;
        complete(client, server)
    }
}

/// Accepts any certificate; verifies the TLS handshake signatures made with it.
#[derive(Debug)]
struct AcceptCertificates(Arc<rustls::crypto::CryptoProvider>);

impl AcceptCertificates {
    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for AcceptCertificates {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for AcceptCertificates {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
