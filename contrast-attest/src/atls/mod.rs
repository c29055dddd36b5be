//! Attested TLS (aTLS) for rustls.
//!
//! The **initiator** sends a 32-byte nonce; the **responder** makes a fresh key, gets a TEE
//! report whose REPORT_DATA is `SHA-512(SPKI DER of that key ‖ the initiator's nonce)`
//! ([`report_data`]), and presents a self-signed certificate for the key carrying the report as
//! an attestation document. The initiator checks the certificate's self-signature and validity,
//! recomputes the report data from the certificate's key and its own nonce, and appraises the
//! report against the manifest's reference values. Both directions can be attested.
//!
//! # On the wire
//!
//! - Client nonce: ALPN entry `atls:v1:nonce:<64 lowercase hex>`, offered before the one
//!   application protocol `h2` (exactly upstream's offer); the server takes the first entry
//!   starting with `atls`, rejects other versions ([`nonce_from_alpn`]), and selects `h2`
//!   (gRPC); a client that does not offer `h2` is refused.
//! - TLS 1.2 or 1.3 (upstream's minimum is 1.2); between two aTLS peers TLS 1.3 with
//!   AES-128-GCM/SHA-256 ([`crypto_provider`]); no session tickets and no resumption, since a
//!   resumed session would carry no fresh attestation.
//! - Server nonce (mutual aTLS): the single acceptable-CA name of the CertificateRequest, the DER
//!   Name `CN = base64std(nonce)` (PrintableString).
//! - Responder certificate ([`AtlsCertificate::build`], [`AtlsCertificate::parse`]): self-signed, `CN=Contrast`, valid `now ± 2h`, random
//!   positive 128-bit serial, ECDSA P-256 by default (P-384, or RSA signed
//!   sha256WithRSAEncryption, for a caller-supplied client key); the attestation document in a
//!   non-critical extension whose extnValue is the raw document.
//!
//! # Attestation documents and OIDs
//!
//! As upstream Contrast: an SEV-SNP responder (real hardware or the simulated platform) puts
//! the protobuf of go-sev-guest's `sevsnp.Attestation` ([`crate::evidence`]) under
//! [`SNP_ATTESTATION_OID`] (`1.3.9901.2.1`). Every extension under upstream's attestation arc
//! `1.3.9901.2` is taken as an attestation extension (at most one per certificate); upstream's
//! TDX ([`TDX_ATTESTATION_OID`]) and insecure ([`INSECURE_ATTESTATION_OID`]) documents are
//! recognised but refused with [`AtlsError::UnsupportedDocumentOid`] (upstream's "no matching
//! validators"), any other OID of the arc with [`AtlsError::UnknownDocumentOid`]. Real and
//! simulated evidence share the OID: trust comes only from the reference values (a simulated
//! ARK is trusted only where a `Simulated-SNP` entry pins its fingerprint), never from the OID.
//!
//! # Pieces
//!
//! - The nonce transport (read by [`nonce_from_alpn`] and [`nonce_from_ca_hints`]) and the
//!   certificate ([`AtlsCertificate`]): the wire formats, pure; the evidence format is
//!   [`crate::evidence`].
//! - [`Issuer`]: produces documents (`contrast_sim::SimulatedIssuer` on the simulated platform,
//!   `contrast_tee`'s SEV-SNP issuer on hardware), built with
//!   [`crate::evidence::AttestationBuilder`].
//! - [`verify_certificate`]: the initiator's check, pure (time is a parameter).
//! - [`AtlsServer`], [`AtlsClient`]: per-connection rustls configs (aws-lc-rs provider) and the
//!   [`PeerSlot`] carrying the verified peer (or the error) to the application.
//!
//! Not done: the SNI fallback for G1 clients' nonces (rustls exposes only DNS-name SNI, which
//! base64 is not). RSA keys are client keys only (the seed-share owner's, for recovery;
//! `contrast_core::owner::rsa_pkcs1_from_spki` gives the Coordinator the key it authorises); servers
//! always use a fresh P-256 key.

mod cert;
mod error;
mod issuer;
mod nonce;
mod tls;
mod verify;

use std::time::Duration;

use const_oid::ObjectIdentifier;
use rand_core::CryptoRngCore;

pub use cert::{AtlsCertificate, AtlsKey};
pub use error::{AtlsError, Hex, IssueError, NonceError};
pub use issuer::Issuer;
pub use nonce::{Nonce, nonce_from_alpn, nonce_from_ca_hints};
pub use tls::{AtlsClient, AtlsServer, PeerSlot, atls_error_from_io, crypto_provider};
pub use verify::{AtlsValidator, AttestedPeer, VerifiedPeer, verify_certificate};

/// Nonce length in bytes.
const NONCE_LEN: usize = 32;
/// The ALPN prefix of the client nonce (protocol version 1).
const ALPN_NONCE_PREFIX: &str = "atls:v1:nonce:";
/// HTTP/2, the only application protocol (gRPC), as upstream: the client offers exactly
/// `[atls:v1:nonce:<hex>, h2]`, the server selects `h2` and refuses a client without it.
pub const ALPN_H2: &[u8] = b"h2";
/// The application protocols both sides list.
const APPLICATION_PROTOCOLS: [&[u8]; 1] = [ALPN_H2];
/// Subject and issuer CN of every aTLS certificate.
const CERT_COMMON_NAME: &str = "Contrast";
/// The certificate is valid from `now` minus this to `now` plus this.
const CERT_VALIDITY_MARGIN: Duration = Duration::from_secs(2 * 60 * 60);

/// Upstream's `RawSNPReport`: the SEV-SNP evidence, a serialised go-sev-guest
/// `sevsnp.Attestation` ([`crate::evidence::SnpEvidence`]), real or simulated.
pub const SNP_ATTESTATION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.9901.2.1");
/// Upstream's `RawTDXReport` (go-tdx-guest `QuoteV4`): recognised, not supported.
pub const TDX_ATTESTATION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.9901.2.2");
/// Upstream's `RawInsecureReport` (non-CC development platform): recognised, not supported.
pub const INSECURE_ATTESTATION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.9901.2.3");
/// Upstream's attestation arc: every extension under it is an attestation extension.
const ATTESTATION_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.9901.2");

/// True if `oid` is under upstream's attestation arc `1.3.9901.2`.
fn is_attestation_oid(oid: &ObjectIdentifier) -> bool {
    oid.parent() == Some(ATTESTATION_ARC)
}

/// `SHA-512(spki_der ‖ nonce)`: the report data binding a responder's key to the peer's nonce.
#[must_use]
pub fn report_data(spki_der: &[u8], nonce: &Nonce) -> [u8; 64] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA512);
    ctx.update(spki_der);
    ctx.update(nonce);
    let mut out = [0u8; 64];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The responder's certificate for `key`: the document from `issuer` for
/// `report_data(SPKI(key), peer_nonce)` under the issuer's OID, or no attestation extension
/// without an issuer. `now` is the time since the Unix epoch.
///
/// # Errors
/// [`AtlsError::Issue`], [`AtlsError::Build`], [`AtlsError::NoTime`].
pub fn issue_certificate(
    key: &AtlsKey,
    issuer: Option<&dyn Issuer>,
    peer_nonce: &Nonce,
    now: Duration,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, AtlsError> {
    match issuer {
        None => AtlsCertificate::build(key, None, now, rng),
        Some(issuer) => {
            let document = issuer.issue(&report_data(&key.spki_der()?, peer_nonce))?;
            AtlsCertificate::build(key, Some((issuer.oid(), &document)), now, rng)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn report_data_is_sha512_of_spki_then_nonce() {
        let spki = b"spki";
        let nonce = [3u8; 32];
        let mut input = spki.to_vec();
        input.extend_from_slice(&nonce);
        let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, &input);
        assert_eq!(report_data(spki, &nonce).as_slice(), expected.as_ref());
    }

    #[test]
    fn certificate_round_trip_p256_and_p384() {
        let now = Duration::from_secs(1_800_000_000);
        for key in [
            AtlsKey::generate_p256().unwrap(),
            AtlsKey::generate_p384().unwrap(),
        ] {
            let der = AtlsCertificate::build(
                &key,
                Some((SNP_ATTESTATION_OID, b"doc")),
                now,
                &mut rand_core::OsRng,
            )
            .unwrap();
            let cert = AtlsCertificate::parse(&der).unwrap();
            assert_eq!(cert.spki_der, key.spki_der().unwrap());
            assert_eq!(cert.not_before, 1_800_000_000 - 7200);
            assert_eq!(cert.not_after, 1_800_000_000 + 7200);
            assert_eq!(
                cert.attestation,
                Some((SNP_ATTESTATION_OID, b"doc".to_vec()))
            );
            assert!(cert.check_validity(1_800_007_200).is_ok());
            assert!(matches!(
                cert.check_validity(1_800_007_201),
                Err(AtlsError::Expired { .. })
            ));
            assert!(matches!(
                cert.check_validity(1_799_992_799),
                Err(AtlsError::NotYetValid { .. })
            ));
            // A flipped bit in the signed part breaks the self-signature.
            let mut tampered = der.clone();
            let pos = tampered.windows(3).position(|w| w == b"doc").unwrap();
            tampered[pos] ^= 1;
            assert!(matches!(
                AtlsCertificate::parse(&tampered),
                Err(AtlsError::BadSelfSignature)
            ));
        }
    }
}
