//! The errors of the SEV-SNP evidence encoding.

/// Why a report or a `sevsnp.Attestation` could not be converted, built or parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The attestation is larger than the parser accepts.
    #[error("sevsnp.Attestation is {found} bytes, expected at most {expected}")]
    TooLarge {
        /// The size limit in bytes.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// The bytes are not a protobuf `sevsnp.Attestation`.
    #[error("sevsnp.Attestation does not decode: {reason}")]
    Decode {
        /// prost's description of the first problem.
        reason: String,
    },
    /// A required field is absent.
    #[error("sevsnp.Attestation: required field {field} is missing")]
    Missing {
        /// The field's proto path, e.g. `report`.
        field: &'static str,
    },
    /// A raw report is not 1184 bytes.
    #[error("report is {found} bytes, expected {expected}")]
    ReportLength {
        /// The report length, 1184.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A report version whose layout this crate does not know.
    #[error("report field {field}: version {found} is not supported, expected {expected}")]
    UnsupportedVersion {
        /// Always `version`.
        field: &'static str,
        /// The supported versions.
        expected: &'static str,
        /// The version found.
        found: u32,
    },
    /// A bytes field whose length is not the report field's width.
    #[error("report field {field} is {found} bytes, expected {expected}")]
    FieldWidth {
        /// The proto field name.
        field: &'static str,
        /// The width in the report.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// An integer field whose value does not fit the report field's width.
    #[error(
        "report field {field} is {found}, expected at most {expected} (it is {width} byte(s) wide in the report)"
    )]
    FieldRange {
        /// The proto field name.
        field: &'static str,
        /// The largest value the report can hold.
        expected: u64,
        /// The width in bytes.
        width: usize,
        /// The value found.
        found: u64,
    },
    /// A field that the report's version does not have is set (non-zero).
    #[error(
        "report field {field} is {found:#x}, expected 0: report version {version} has no such field (it needs version {expected} or later)"
    )]
    FieldNotInVersion {
        /// The proto field name.
        field: &'static str,
        /// The first version with this field.
        expected: u32,
        /// The report's version.
        version: u32,
        /// The value found.
        found: u64,
    },
    /// `cpuid1eax_fms` is not the canonical CPUID(1).EAX encoding of a family, model and
    /// stepping (reserved bits set, or a family split other than go-sev-guest's).
    #[error(
        "report field cpuid1eax_fms is {found:#010x}, expected the canonical cpuid(1).eax encoding {expected:#010x}"
    )]
    NonCanonicalCpuid {
        /// The canonical encoding of the decoded family, model and stepping.
        expected: u32,
        /// The value found.
        found: u32,
    },
    /// The report's CPUID stepping does not fit the 4 bits CPUID(1).EAX has for it.
    #[error(
        "report CPUID_STEP is {found:#04x}, expected at most {expected:#04x} (cpuid1eax_fms holds 4 bits)"
    )]
    SteppingRange {
        /// 0x0F.
        expected: u8,
        /// The stepping byte found.
        found: u8,
    },
    /// A reserved byte of the raw report is not zero: the protobuf form cannot carry it.
    #[error(
        "report bytes {offset:#x}..{end:#x} are reserved for version {version} and must be zero, found {found}"
    )]
    ReservedNotZero {
        /// The report version.
        version: u32,
        /// First byte of the reserved range.
        offset: usize,
        /// End of the reserved range (exclusive).
        end: usize,
        /// The range as found (hex).
        found: String,
    },
    /// `product.name` is not a `SevProductName` value.
    #[error(
        "sevsnp.Attestation field product.name is {found}, expected one of 0 (unknown), 1 (Milan), 2 (Genoa), 3 (Turin)"
    )]
    UnknownProductName {
        /// The enum value found.
        found: i32,
    },
    /// `product.name` names another product than the report's CPUID bytes.
    #[error(
        "sevsnp.Attestation field product.name is {found}, but the report's cpuid says {expected}"
    )]
    ProductMismatch {
        /// The product from the report's CPUID bytes.
        expected: &'static str,
        /// The product named.
        found: &'static str,
    },
    /// `certificate_chain.extras` has more entries than the parser accepts.
    #[error(
        "sevsnp.Attestation field certificate_chain.extras has {found} entries, expected at most {expected}"
    )]
    TooManyExtras {
        /// The limit.
        expected: usize,
        /// The count found.
        found: usize,
    },
}
