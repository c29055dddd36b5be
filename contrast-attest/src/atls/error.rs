//! The errors of aTLS: nonce transport, the attestation document, the certificate, issuing and
//! verification.

use crate::ErrorKind;
use std::fmt;

/// Fixed-size bytes shown as full lowercase hex in error messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a nonce could not be read from (or written into) its TLS carrier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// The ClientHello offers no ALPN protocol starting with `atls`.
    #[error("no nonce in the client's alpn protocols: no entry starts with \"atls\"")]
    NoAlpnNonce,
    /// The first `atls` ALPN entry is not `atls:<version>:nonce:<hex>`.
    #[error("malformed atls alpn entry {entry:?}: expected \"atls:v1:nonce:<64 lowercase hex>\"")]
    MalformedAlpn {
        /// The entry as offered (lossy UTF-8).
        entry: String,
    },
    /// The first `atls` ALPN entry names a protocol version other than `v1`.
    #[error("atls version mismatch: the client offers {found:?}, this side supports \"v1\"")]
    UnsupportedVersion {
        /// The version the client offered.
        found: String,
    },
    /// The nonce is not lowercase hex of 32 bytes.
    #[error("nonce in alpn is not 64 lowercase hex digits: {found:?}")]
    BadHex {
        /// The nonce text as offered.
        found: String,
    },
    /// The CertificateRequest does not carry exactly one acceptable-CA name.
    #[error("expected exactly one acceptable-ca name carrying the server nonce, found {found}")]
    CaHintCount {
        /// How many names the server sent.
        found: usize,
    },
    /// The acceptable-CA name is not a DER Name with a CN.
    #[error("acceptable-ca name is not a distinguished name with a common name: {reason}")]
    MalformedCaHint {
        /// What was wrong.
        reason: String,
    },
    /// The CN of the acceptable-CA name is not standard base64 of 32 bytes.
    #[error("acceptable-ca common name is not standard base64 of 32 bytes: {found:?}")]
    BadBase64 {
        /// The common name.
        found: String,
    },
}

/// Why an [`super::Issuer`] could not produce an attestation document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The simulated platform (crate `contrast-sim`) failed.
    #[error("simulated platform: {0}")]
    Simulated(Box<dyn std::error::Error + Send + Sync>),
    /// The platform failed (reason from the platform's interface).
    #[error("attestation platform: {reason}")]
    Platform {
        /// What failed.
        reason: String,
    },
}

/// An aTLS failure. In a handshake it reaches the caller inside
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))` (verification) or
/// `rustls::Error::General` text (responder side), and is recorded in the connection's
/// [`super::PeerSlot`]; [`super::atls_error_from_io`] digs it out of an I/O error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AtlsError {
    /// A nonce could not be read from its carrier.
    #[error("atls nonce: {0}")]
    Nonce(#[from] NonceError),
    /// The peer's certificate is not valid DER X.509.
    #[error("atls certificate does not parse: {reason}")]
    CertificateParse {
        /// The decoder's message.
        reason: String,
    },
    /// The certificate's issuer is not its subject.
    #[error("atls certificate is not self-issued: issuer {issuer:?}, subject {subject:?}")]
    NotSelfIssued {
        /// The issuer name.
        issuer: String,
        /// The subject name.
        subject: String,
    },
    /// The signature algorithm and key type are not a supported pair.
    #[error(
        "atls certificate signature algorithm {signature_algorithm} with key algorithm {key_algorithm} is not supported"
    )]
    UnsupportedSignature {
        /// The certificate's signature algorithm OID.
        signature_algorithm: String,
        /// The SPKI algorithm (and curve) OID.
        key_algorithm: String,
    },
    /// The outer and inner (TBS) signature algorithms differ.
    #[error(
        "atls certificate signature algorithm {outer} differs from the to-be-signed algorithm {inner}"
    )]
    SignatureAlgorithmMismatch {
        /// `Certificate.signatureAlgorithm`.
        outer: String,
        /// `TBSCertificate.signature`.
        inner: String,
    },
    /// The self-signature does not verify with the certificate's own key.
    #[error("atls certificate self-signature does not verify with its own public key")]
    BadSelfSignature,
    /// The certificate is not valid yet.
    #[error("atls certificate is not valid before {not_before} (unix), now is {now}")]
    NotYetValid {
        /// notBefore, seconds since the epoch.
        not_before: u64,
        /// The verification time.
        now: u64,
    },
    /// The certificate has expired.
    #[error("atls certificate expired at {not_after} (unix), now is {now}")]
    Expired {
        /// notAfter, seconds since the epoch.
        not_after: u64,
        /// The verification time.
        now: u64,
    },
    /// A critical extension this verifier does not process.
    #[error("atls certificate has an unhandled critical extension {oid}")]
    UnhandledCriticalExtension {
        /// The extension's OID.
        oid: String,
    },
    /// No attestation-document extension.
    #[error("no valid attestation document certificate extensions found")]
    NoAttestationExtension,
    /// More than one attestation-document extension.
    #[error("atls certificate has {count} attestation document extensions, expected one")]
    MultipleAttestationExtensions {
        /// How many there are.
        count: usize,
    },
    /// The attestation extension is upstream's TDX or insecure document: recognised, but this
    /// verifier only validates SEV-SNP evidence (`1.3.9901.2.1`).
    #[error(
        "no matching validators found for attestation document oid {oid} ({name}): only 1.3.9901.2.1 (SEV-SNP) is supported"
    )]
    UnsupportedDocumentOid {
        /// The OID.
        oid: String,
        /// What upstream puts under it.
        name: &'static str,
    },
    /// The attestation extension has an OID of upstream's attestation arc `1.3.9901.2` that
    /// names no known document.
    #[error("unknown attestation document oid {oid}: expected 1.3.9901.2.1 (SEV-SNP)")]
    UnknownDocumentOid {
        /// The OID.
        oid: String,
    },
    /// The SEV-SNP evidence (`sevsnp.Attestation`) does not parse.
    #[error("attestation document: {0}")]
    Evidence(#[from] crate::evidence::EvidenceError),
    /// REPORT_DATA is not SHA-512(peer SPKI ‖ our nonce): a replayed certificate, a wrong
    /// nonce, or a report bound to another key.
    #[error(
        "report data mismatch (replayed certificate, wrong nonce or another key): expected {expected}, found {found}"
    )]
    ReportDataMismatch {
        /// SHA-512(certificate SPKI ‖ nonce).
        expected: Box<Hex<64>>,
        /// REPORT_DATA of the report.
        found: Box<Hex<64>>,
    },
    /// The report did not verify or match the reference values.
    #[error("attestation appraisal failed: {0}")]
    Appraisal(#[source] crate::Error),
    /// The issuer failed.
    #[error("issuing attestation document: {0}")]
    Issue(#[from] IssueError),
    /// Building our own certificate or key failed.
    #[error("building the atls certificate: {what}: {reason}")]
    Build {
        /// What was being built.
        what: &'static str,
        /// The underlying message.
        reason: String,
    },
    /// The clock is unavailable or before 1970.
    #[error("no usable current time for the atls certificate")]
    NoTime,
    /// The peer sent no certificate.
    #[error("the peer sent no certificate")]
    NoPeerCertificate,
}

impl AtlsError {
    /// The kind of check that failed, in the verifier's classes ([`crate::ErrorKind`]): an
    /// appraisal failure has its [`crate::Error::kind`]; a certificate that does not parse or
    /// is not the aTLS shape is [`ErrorKind::Malformed`], a bad self-signature
    /// [`ErrorKind::Signature`], a certificate outside its validity [`ErrorKind::Chain`], report
    /// data for another key or nonce [`ErrorKind::Freshness`], a peer without an (acceptable)
    /// attestation [`ErrorKind::NoAttestation`], and our own failures [`ErrorKind::Local`].
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Appraisal(error) => error.kind(),
            Self::Nonce(_)
            | Self::CertificateParse { .. }
            | Self::NotSelfIssued { .. }
            | Self::UnsupportedSignature { .. }
            | Self::SignatureAlgorithmMismatch { .. }
            | Self::UnhandledCriticalExtension { .. }
            | Self::MultipleAttestationExtensions { .. }
            | Self::Evidence(_) => ErrorKind::Malformed,
            Self::BadSelfSignature => ErrorKind::Signature,
            Self::NotYetValid { .. } | Self::Expired { .. } => ErrorKind::Chain,
            Self::ReportDataMismatch { .. } => ErrorKind::Freshness,
            Self::NoAttestationExtension
            | Self::UnsupportedDocumentOid { .. }
            | Self::UnknownDocumentOid { .. }
            | Self::NoPeerCertificate => ErrorKind::NoAttestation,
            Self::Issue(_) | Self::Build { .. } | Self::NoTime => ErrorKind::Local,
        }
    }
}
