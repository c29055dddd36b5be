//! Why the CA refused to build a certificate.

use contrast_core::owner::OwnerKeyError;

/// Why a certificate or key could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The workload's SAN list has no DNS name, so the leaf has no common name (upstream reads
    /// `dnsNames[0]` and panics).
    #[error(
        "none of the {count} subject alternative names is a DNS name; the common name is the first DNS name"
    )]
    NoDnsSan {
        /// How many SANs were given (all IP addresses or URIs).
        count: usize,
    },
    /// A DNS or URI SAN is not ASCII (an IA5String holds ASCII only).
    #[error("subject alternative name {value:?} is not ASCII, so it cannot be a {kind} name")]
    NonAsciiSan {
        /// The offending SAN.
        value: String,
        /// How it was classified: `DNS` or `URI`.
        kind: &'static str,
    },
    /// Two extensions share an OID (a caller's extension repeats another or a standard one).
    #[error("extension {oid} appears twice in the certificate")]
    DuplicateExtension {
        /// The repeated OID.
        oid: der::asn1::ObjectIdentifier,
    },
    /// The workload public key is not a DER `SubjectPublicKeyInfo`.
    #[error("workload public key is not a DER SubjectPublicKeyInfo: {source}")]
    InvalidPublicKey {
        /// The DER error.
        #[source]
        source: der::Error,
    },
    /// A validity bound is not representable as an X.509 time (before 1970 or after 9999).
    #[error("{bound} of {seconds} s after the epoch is outside the representable range")]
    TimeOutOfRange {
        /// `notBefore` or `notAfter`.
        bound: &'static str,
        /// The Unix time that was asked for (saturated on overflow).
        seconds: u64,
    },
    /// A DER structure could not be encoded.
    #[error("encoding {structure}: {source}")]
    Encoding {
        /// What was being encoded.
        structure: &'static str,
        /// The DER error.
        #[source]
        source: der::Error,
    },
    /// Signing the TBS certificate failed.
    #[error("signing the {certificate} certificate: {reason}")]
    Signing {
        /// Which certificate: `root`, `intermediate`, `mesh CA` or `leaf`.
        certificate: &'static str,
        /// What failed.
        reason: &'static str,
    },
    /// The mesh CA key PEM could not be read or written.
    #[error("mesh CA key: {source}")]
    MeshCaKey {
        /// Why the key was rejected.
        #[source]
        source: OwnerKeyError,
    },
    /// The mesh CA key PEM passed the owner-key checks but the scalar was still refused.
    #[error("mesh CA key: {reason}")]
    InvalidMeshCaKey {
        /// What was wrong.
        reason: &'static str,
    },
}

/// Maps a DER error to [`CaError::Encoding`] for `structure`.
pub(crate) fn encoding(structure: &'static str) -> impl Fn(der::Error) -> CaError {
    move |source| CaError::Encoding { structure, source }
}
