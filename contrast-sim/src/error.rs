//! Errors of the simulated platform.

use contrast_attest::{Product, TcbVersion};

/// What went wrong while creating, loading or using a simulated SEV-SNP platform.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// aws-lc-rs could not generate or import a key.
    #[error("could not {action} the {key} key")]
    Key {
        /// Which key (`ARK`, `ASK`, `VCEK`).
        key: &'static str,
        /// What was attempted (`generate`, `import`, `export`).
        action: &'static str,
    },
    /// The HKDF output was not a valid P-384 scalar for any of the tried counters.
    #[error("could not derive a valid p-384 vcek key after {attempts} attempts")]
    VcekDerivation {
        /// How many counters were tried.
        attempts: u8,
    },
    /// Building or signing a certificate failed.
    #[error("could not build the {certificate} certificate: {source}")]
    Certificate {
        /// Which certificate (`ARK`, `ASK`, `VCEK`).
        certificate: &'static str,
        /// The builder's error.
        source: x509_cert::builder::Error,
    },
    /// A DER/PEM encoding step failed.
    #[error("could not encode {what}: {source}")]
    Encoding {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        source: der::Error,
    },
    /// A validity date is outside what X.509 can express.
    #[error("{what} is not representable as an x.509 time (years 1970 to 9999)")]
    Time {
        /// Which date.
        what: &'static str,
    },
    /// Signing the report failed.
    #[error("could not sign the attestation report with the vcek key")]
    ReportSigning,
    /// The ARK could not sign a CRL.
    #[error("could not sign the crl with the ark key")]
    CrlSigning,
    /// A CRL's dates are out of order.
    #[error(
        "the crl's nextUpdate ({next_update}) is not after its thisUpdate ({this_update}), unix seconds"
    )]
    CrlDates {
        /// thisUpdate, unix seconds.
        this_update: u64,
        /// nextUpdate, unix seconds.
        next_update: u64,
    },
    /// A file needed by [`super::SimulatedPlatform::load`] is missing.
    #[error("simulated platform file {name} is missing")]
    MissingFile {
        /// The file name.
        name: &'static str,
    },
    /// A file given to [`super::SimulatedPlatform::load`] is malformed or inconsistent.
    #[error("simulated platform file {name} is invalid: {reason}")]
    InvalidFile {
        /// The file name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The guest is configured for a different product than the platform.
    #[error("guest is configured for {} but the platform is {}", .guest.name(), .platform.name())]
    ProductMismatch {
        /// The platform's product.
        platform: Product,
        /// The guest's product.
        guest: Product,
    },
    /// A TCB value does not fit the product's TCB layout (FMC exists on Turin only).
    #[error(
        "{field} {tcb} does not fit the {} tcb layout: fmc must be {} on {}",
        .product.name(),
        if matches!(.product, Product::Turin) { "present" } else { "absent" },
        .product.name()
    )]
    TcbLayout {
        /// Which TCB (`reported_tcb`, `current_tcb`, …, or `vcek tcb`).
        field: &'static str,
        /// The product whose layout applies.
        product: Product,
        /// The offending value.
        tcb: TcbVersion,
    },
    /// The ID key digest for the launch could not be derived.
    #[error("could not derive the ID key digest: {0}")]
    IdKey(Box<contrast_attest::Error>),
    /// Turin chip IDs have 8 significant bytes; the rest must be zero.
    #[error(
        "turin chip id must be zero after its first 8 bytes, found a non-zero byte at offset {offset}"
    )]
    TurinChipIdTail {
        /// Offset of the first non-zero byte past byte 7.
        offset: usize,
    },
    /// The report version is not one this simulation produces.
    #[error("report version {version} is not supported (expected 2, 3, 4 or 5)")]
    UnsupportedVersion {
        /// The requested version.
        version: u32,
    },
    /// VMPL out of range.
    #[error("vmpl {vmpl} is out of range (expected 0 to 3)")]
    InvalidVmpl {
        /// The requested VMPL.
        vmpl: u32,
    },
    /// A field is set that the requested report version does not have.
    #[error(
        "{field} is non-zero but report version {version} has no such field (needs version {since})"
    )]
    FieldNotInVersion {
        /// The field.
        field: &'static str,
        /// The requested report version.
        version: u32,
        /// The first version with the field.
        since: u32,
    },
}
