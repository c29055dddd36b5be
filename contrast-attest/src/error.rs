//! The single error type of the verifier.
//!
//! Every variant says which check failed, with the expected and the found value where there is
//! one. Messages are meant for a person; hex values are written in full, so they can be copied.

use std::fmt;

use contrast_core::manifest::FieldError;

use crate::Product;
use crate::appraisal::{DeniedBy, VmplSet};
use crate::chain::{CertRole, LeafKind, TrustAnchor};
use crate::hexfmt::full_hex;
use crate::report::{FirmwareVersion, SigningKey};
use crate::tcb::{TcbComponent, TcbVersion};
use crate::time::UnixTime;

/// Why a verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- report framing and structure ---
    /// The report is not exactly 1184 bytes.
    #[error(
        "attestation report must be {} bytes, found {found}",
        crate::report::REPORT_LEN
    )]
    ReportLength {
        /// Length found.
        found: usize,
    },
    /// VERSION is not 2, 3, 4 or 5.
    #[error("unsupported attestation report version {found} (supported: 2 to 5)")]
    UnsupportedReportVersion {
        /// Version found.
        found: u32,
    },
    /// SIGNATURE_ALGO is not 1 (ECDSA P-384 with SHA-384).
    #[error(
        "unsupported report signature algorithm {found} (expected 1, ECDSA P-384 with SHA-384)"
    )]
    UnsupportedSignatureAlgorithm {
        /// Algorithm found.
        found: u32,
    },
    /// A reserved byte range contains a non-zero byte.
    #[error(
        "reserved bytes 0x{start:03x}..0x{end:03x} ({field}) must be zero, found 0x{found:02x} at offset 0x{offset:03x}"
    )]
    ReservedBytesNotZero {
        /// The field the range belongs to (`reserved` or a TCB field with reserved bytes).
        field: &'static str,
        /// First offset of the range.
        start: usize,
        /// End of the range (exclusive).
        end: usize,
        /// Offset of the first non-zero byte.
        offset: usize,
        /// Value of that byte.
        found: u8,
    },
    /// Reserved bits of a bit field are set.
    #[error(
        "{field} (offset 0x{offset:03x}) has reserved bits set: 0x{found:x} (defined bits: 0x{allowed:x})"
    )]
    ReservedBitsSet {
        /// Field name.
        field: &'static str,
        /// Offset of the field.
        offset: usize,
        /// The reserved bits that are set.
        found: u64,
        /// The bits that may be set.
        allowed: u64,
    },
    /// POLICY bit 17 (reserved, must be one) is zero.
    #[error("POLICY bit 17 (offset 0x008; reserved, must be one) is zero")]
    PolicyBit17Clear,
    /// KEY_INFO.SIGNING_KEY has a reserved value.
    #[error(
        "KEY_INFO.SIGNING_KEY (offset 0x048) is {found}, a reserved value (0 = VCEK, 1 = VLEK, 7 = none)"
    )]
    ReservedSigningKey {
        /// Value found.
        found: u8,
    },
    /// The report says it is not signed by a chip key.
    #[error("the report is not signed: {reason}")]
    ReportNotSigned {
        /// Which KEY_INFO bit says so.
        reason: &'static str,
    },
    /// VMPL is larger than 3.
    #[error("VMPL (offset 0x030) must be 0 to 3, found {found}")]
    InvalidVmpl {
        /// Value found.
        found: u32,
    },
    /// The upper 24 bytes of R or S are not zero.
    #[error("report signature {component} has non-zero bytes above 48 (at offset 0x{offset:03x})")]
    SignatureComponentTooLarge {
        /// `R` or `S`.
        component: &'static str,
        /// Offset of the upper part.
        offset: usize,
    },
    /// The report signature does not verify with the leaf key.
    #[error(
        "report signature does not verify with the {leaf} for chip {}",
        full_hex(chip_id)
    )]
    ReportSignatureInvalid {
        /// VCEK or VLEK.
        leaf: LeafKind,
        /// CHIP_ID claimed by the report.
        chip_id: Vec<u8>,
    },
    /// The CPUID bytes name a CPU this verifier does not know.
    #[error(
        "unknown CPU in the report: family 0x{family:02x}, model 0x{model:02x}, stepping {stepping}"
    )]
    UnknownCpuid {
        /// CPUID family.
        family: u8,
        /// CPUID model.
        model: u8,
        /// CPUID stepping.
        stepping: u8,
    },
    /// The report's product differs from the product of the trust anchor / chain.
    #[error("product mismatch: expected {} (trust anchor), found {} (report CPUID)", expected.name(), found.name())]
    ProductMismatch {
        /// The anchor's product.
        expected: Product,
        /// The report's product.
        found: Product,
    },
    /// KEY_INFO.SIGNING_KEY names a different key kind than the leaf certificate.
    #[error("the report says it is signed by the {report}, but the leaf certificate is a {leaf}")]
    SignerKindMismatch {
        /// Signer named by the report.
        report: SigningKey,
        /// Kind of the leaf certificate.
        leaf: LeafKind,
    },

    // --- certificates ---
    /// A required certificate was not supplied.
    #[error("no {role} certificate was supplied for {}", product.name())]
    MissingCertificate {
        /// Which certificate.
        role: CertRole,
        /// For which product.
        product: Product,
    },
    /// A certificate (or PEM bundle) could not be parsed.
    #[error("cannot parse the {role} certificate: {reason}")]
    CertificateParse {
        /// Which certificate.
        role: CertRole,
        /// The parser's message.
        reason: String,
    },
    /// The presented ARK is not the pinned one.
    #[error(
        "untrusted root: the presented ARK (SHA-256 {}) is not the pinned root for {} (SHA-256 {})",
        full_hex(found_sha256), product.name(), full_hex(expected_sha256)
    )]
    UntrustedRoot {
        /// The anchor's product.
        product: Product,
        /// SHA-256 of the pinned ARK DER.
        expected_sha256: [u8; 32],
        /// SHA-256 of the presented ARK DER.
        found_sha256: [u8; 32],
    },
    /// A caller-pinned anchor names an AMD ARK; AMD roots must be used through `TrustAnchor::Amd`.
    #[error("a pinned trust anchor must not be an AMD root (SHA-256 {}); use the AMD anchor for {}", full_hex(sha256), product.name())]
    PinnedAnchorIsAmdRoot {
        /// The AMD product whose ARK was pinned.
        product: Product,
        /// Its fingerprint.
        sha256: [u8; 32],
    },
    /// A certificate is signed with an algorithm other than RSASSA-PSS.
    #[error(
        "the {role} is signed with algorithm {found}, expected RSASSA-PSS (1.2.840.113549.1.1.10)"
    )]
    CertificateSignatureAlgorithm {
        /// Which certificate (or `CRL`).
        role: CertRole,
        /// OID found.
        found: String,
    },
    /// RSASSA-PSS parameters other than SHA-384 / MGF1-SHA-384 / salt 48 / trailer 1.
    #[error("the {role} RSASSA-PSS parameters are not SHA-384, MGF1-SHA-384, salt 48: {reason}")]
    PssParameters {
        /// Which certificate.
        role: CertRole,
        /// What differs.
        reason: String,
    },
    /// The signature algorithm inside the signed part differs from the outer one.
    #[error("the {role} signature algorithm inside the signed part differs from the outer one")]
    SignatureAlgorithmMismatch {
        /// Which certificate.
        role: CertRole,
    },
    /// A certificate or CRL signature does not verify with its issuer's key.
    #[error("the {role} signature does not verify with the {issuer} key")]
    CertificateSignatureInvalid {
        /// The signed object.
        role: CertRole,
        /// The issuer.
        issuer: CertRole,
    },
    /// The issuer's public key is not an RSA key usable for RSASSA-PSS.
    #[error("the {role} public key is not an RSA key usable for RSASSA-PSS (2048 to 8192 bits)")]
    IssuerKey {
        /// The issuer.
        role: CertRole,
    },
    /// The issuer name of a certificate is not the subject of its issuer.
    #[error("the {role} issuer is \"{found}\", expected the {issuer} subject \"{expected}\"")]
    IssuerMismatch {
        /// The certificate.
        role: CertRole,
        /// The issuer's role.
        issuer: CertRole,
        /// The issuer's subject.
        expected: String,
        /// The certificate's issuer name.
        found: String,
    },
    /// The common name is not the one AMD uses for this role and product.
    #[error("the {role} common name is \"{found}\", expected \"{expected}\"")]
    UnexpectedCommonName {
        /// The certificate.
        role: CertRole,
        /// Expected CN.
        expected: String,
        /// CN found.
        found: String,
    },
    /// A CA certificate lacks basic constraints CA:TRUE.
    #[error("the {role} is not a CA certificate (basic constraints CA:TRUE missing)")]
    NotCa {
        /// The certificate.
        role: CertRole,
    },
    /// A leaf certificate claims to be a CA.
    #[error("the {role} is a leaf but its basic constraints say CA:TRUE")]
    LeafIsCa {
        /// The certificate.
        role: CertRole,
    },
    /// A CA certificate lacks a required key usage.
    #[error("the {role} key usage lacks {missing}")]
    KeyUsage {
        /// The certificate.
        role: CertRole,
        /// The missing usage.
        missing: &'static str,
    },
    /// The certificate is not yet valid at the verification time.
    #[error("the {role} is not valid before {not_before} (verification time {now})")]
    CertificateNotYetValid {
        /// The certificate.
        role: CertRole,
        /// Start of validity.
        not_before: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// The certificate expired before the verification time.
    #[error("the {role} expired at {not_after} (verification time {now})")]
    CertificateExpired {
        /// The certificate.
        role: CertRole,
        /// End of validity.
        not_after: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// The leaf key is not an EC P-384 key.
    #[error("the {role} public key must be EC P-384, found {found}")]
    LeafKeyNotP384 {
        /// The certificate.
        role: CertRole,
        /// What was found.
        found: String,
    },
    /// An extension is present twice.
    #[error("the {role} has extension {oid} twice")]
    DuplicateExtension {
        /// The certificate.
        role: CertRole,
        /// The OID.
        oid: String,
    },
    /// An unknown extension is marked critical.
    #[error("the {role} has an unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// The certificate.
        role: CertRole,
        /// The OID.
        oid: String,
    },
    /// An extension could not be decoded.
    #[error("the {role} extension {oid} is malformed: {reason}")]
    MalformedExtension {
        /// The certificate.
        role: CertRole,
        /// The OID.
        oid: String,
        /// What is wrong.
        reason: String,
    },

    // --- binding of report and leaf ---
    /// A TCB extension required for the product is missing from the leaf.
    #[error("the {leaf} lacks the {component} SPL extension")]
    MissingTcbExtension {
        /// VCEK or VLEK.
        leaf: LeafKind,
        /// The component.
        component: TcbComponent,
    },
    /// REPORTED_TCB differs from the leaf's TCB extensions.
    #[error(
        "reported TCB does not match the {leaf}: {component} expected {expected} ({leaf}), found {found} (report)"
    )]
    TcbMismatch {
        /// VCEK or VLEK.
        leaf: LeafKind,
        /// The first differing component.
        component: TcbComponent,
        /// Value in the certificate.
        expected: u8,
        /// Value in REPORTED_TCB.
        found: u8,
    },
    /// The VCEK has no hwID extension.
    #[error("the VCEK lacks the hwID extension (1.3.6.1.4.1.3704.1.4)")]
    MissingHwId,
    /// The hwID extension has the wrong length for the product.
    #[error("the VCEK hwID must be {expected} bytes for {}, found {found}", product.name())]
    HwIdLength {
        /// The product.
        product: Product,
        /// Expected length.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// CHIP_ID differs from the VCEK's hwID.
    #[error(
        "CHIP_ID does not match the VCEK: expected {} (VCEK hwID), found {} (report)",
        full_hex(expected),
        full_hex(found)
    )]
    ChipIdMismatch {
        /// hwID of the VCEK.
        expected: Vec<u8>,
        /// CHIP_ID of the report (the compared prefix).
        found: Vec<u8>,
    },
    /// A VLEK carries a hwID or lacks the csp_id.
    #[error("the VLEK {reason}")]
    VlekExtensions {
        /// What is wrong.
        reason: &'static str,
    },
    /// The productName extension is missing or names another product.
    #[error("the {leaf} productName is {found:?}, expected {}", expected.name())]
    ProductNameMismatch {
        /// VCEK or VLEK.
        leaf: LeafKind,
        /// The anchor's product.
        expected: Product,
        /// The extension value (`None` if absent).
        found: Option<String>,
    },

    // --- CRL ---
    /// The CRL policy is `Required` but no CRL was supplied.
    #[error("a CRL is required but none was supplied for {}", product.name())]
    CrlMissing {
        /// The product.
        product: Product,
    },
    /// The CRL could not be parsed.
    #[error("cannot parse the CRL: {reason}")]
    CrlParse {
        /// The parser's message.
        reason: String,
    },
    /// The CRL issuer is not the ARK.
    #[error("the CRL issuer is \"{found}\", expected the ARK \"{expected}\"")]
    CrlIssuerMismatch {
        /// ARK subject.
        expected: String,
        /// CRL issuer.
        found: String,
    },
    /// The CRL's thisUpdate lies in the future.
    #[error("the CRL is not valid before {this_update} (verification time {now})")]
    CrlNotYetValid {
        /// thisUpdate.
        this_update: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// The CRL has no nextUpdate.
    #[error("the CRL has no nextUpdate, so its freshness cannot be judged")]
    CrlNoNextUpdate,
    /// The CRL's nextUpdate has passed.
    #[error("the CRL is stale: nextUpdate {next_update} is before the verification time {now}")]
    CrlStale {
        /// nextUpdate.
        next_update: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// A certificate of the chain is revoked.
    #[error("the {role} (serial {}) is revoked by the ARK's CRL", full_hex(serial))]
    Revoked {
        /// The revoked certificate.
        role: CertRole,
        /// Its serial number (big-endian).
        serial: Vec<u8>,
    },

    // --- collateral ---
    /// The extended-report certificate table is malformed.
    #[error("malformed certificate table: {0}")]
    CertTable(#[from] crate::collateral::CertTableError),

    // --- appraisal: the reference values themselves ---
    /// The manifest has no SEV-SNP reference values, so no SEV-SNP report can be accepted.
    #[error("the manifest has no SEV-SNP reference values")]
    NoSnpReferenceValues,
    /// No entry of `ReferenceValues.snp` accepted the report; why, for each entry in order.
    #[error(
        "no SEV-SNP reference values accept the report:\n{}",
        Attempts(attempts)
    )]
    NoReferenceValuesMatched {
        /// `(index in ReferenceValues.snp, why that entry did not match)`.
        attempts: Vec<(usize, Error)>,
    },
    /// A field of the reference-value entry cannot be decoded.
    #[error("invalid reference values: {source}")]
    InvalidReferenceValues {
        /// The decoding error (names the field).
        source: FieldError,
    },
    /// A part of `MinimumTCB` is not filled in (`null`).
    #[error("MinimumTCB.{missing} is not set")]
    MinimumTcbIncomplete {
        /// The JSON name of the missing part.
        missing: &'static str,
    },
    /// A `Simulated-SNP` entry lacks `SimulatedARKFingerprint`, so its root cannot be pinned.
    #[error(
        "the Simulated-SNP entry has no SimulatedARKFingerprint, so no root can be trusted for it"
    )]
    SimulatedArkFingerprintMissing,
    /// The entry sets `APEIP`: its measurement is a 1-vCPU seed to be extended per vCPU count.
    #[error(
        "APEIP is set: TrustedMeasurement is a seed to be extended per vCPU count, which this verifier does not implement"
    )]
    ApEipUnsupported,
    /// The evidence was verified against another trust anchor than the entry requires.
    #[error(
        "the evidence was verified against {found:?}, but the reference values require {expected:?}"
    )]
    ReferenceAnchorMismatch {
        /// The entry's anchor.
        expected: TrustAnchor,
        /// The anchor the evidence was verified against.
        found: TrustAnchor,
    },
    /// The ID key could not be recovered from the fixed signature.
    #[error("cannot derive the ID key: {reason}")]
    IdKeyRecovery {
        /// What failed.
        reason: &'static str,
    },

    // --- appraisal: the report against the reference values ---
    /// MEASUREMENT differs from `TrustedMeasurement`.
    #[error(
        "measurement mismatch: expected {}, found {}",
        full_hex(expected),
        full_hex(found)
    )]
    MeasurementMismatch {
        /// `TrustedMeasurement` (48 bytes).
        expected: Vec<u8>,
        /// MEASUREMENT of the report (48 bytes).
        found: Vec<u8>,
    },
    /// REPORT_DATA differs from the expected value (nonce / key binding).
    #[error(
        "REPORT_DATA mismatch: expected {}, found {}",
        full_hex(expected),
        full_hex(found)
    )]
    ReportDataMismatch {
        /// The expected 64 bytes.
        expected: Vec<u8>,
        /// REPORT_DATA of the report.
        found: Vec<u8>,
    },
    /// HOST_DATA is not one of the expected values.
    #[error("HOST_DATA {} is not one of the {} expected value(s){}", full_hex(found), expected.len(), HostDataList(expected))]
    HostDataMismatch {
        /// The accepted values.
        expected: Vec<[u8; 32]>,
        /// HOST_DATA of the report.
        found: [u8; 32],
    },
    /// The guest policy's ABI version is below the required one.
    #[error(
        "guest policy ABI version {found_major}.{found_minor} is below the required {required_major}.{required_minor}"
    )]
    GuestPolicyAbiTooLow {
        /// Required major.
        required_major: u8,
        /// Required minor.
        required_minor: u8,
        /// Major in the report's POLICY.
        found_major: u8,
        /// Minor in the report's POLICY.
        found_minor: u8,
    },
    /// POLICY allows a migration agent (bit 18), which is not permitted.
    #[error(
        "guest policy 0x{found:x} allows a migration agent (POLICY bit 18), which {denied_by} does not permit"
    )]
    MigrationAgentNotAllowed {
        /// Who does not permit it.
        denied_by: DeniedBy,
        /// The report's POLICY.
        found: u64,
    },
    /// POLICY allows debugging (bit 19), which is not permitted.
    #[error(
        "guest policy 0x{found:x} allows debugging (POLICY bit 19), which {denied_by} does not permit"
    )]
    DebugNotAllowed {
        /// Who does not permit it.
        denied_by: DeniedBy,
        /// The report's POLICY.
        found: u64,
    },
    /// POLICY allows SMT (bit 16), which the reference values do not permit.
    #[error(
        "guest policy 0x{found:x} allows SMT (POLICY bit 16), which the reference values do not permit"
    )]
    SmtNotAllowed {
        /// The report's POLICY.
        found: u64,
    },
    /// POLICY allows CXL (bit 21), which the reference values do not permit.
    #[error(
        "guest policy 0x{found:x} allows CXL memory (POLICY bit 21), which the reference values do not permit"
    )]
    CxlNotAllowed {
        /// The report's POLICY.
        found: u64,
    },
    /// The reference values require SINGLE_SOCKET (bit 20), which POLICY lacks.
    #[error(
        "the reference values require SINGLE_SOCKET (POLICY bit 20), which guest policy 0x{found:x} lacks"
    )]
    SingleSocketRequired {
        /// The report's POLICY.
        found: u64,
    },
    /// The reference values require MEM_AES_256_XTS (bit 22), which POLICY lacks.
    #[error(
        "the reference values require MEM_AES_256_XTS (POLICY bit 22), which guest policy 0x{found:x} lacks"
    )]
    MemAes256XtsRequired {
        /// The report's POLICY.
        found: u64,
    },
    /// The reference values require RAPL_DIS (bit 23), which POLICY lacks.
    #[error(
        "the reference values require RAPL_DIS (POLICY bit 23), which guest policy 0x{found:x} lacks"
    )]
    RaplDisableRequired {
        /// The report's POLICY.
        found: u64,
    },
    /// The reference values require CIPHERTEXT_HIDING (bit 24), which POLICY lacks.
    #[error(
        "the reference values require CIPHERTEXT_HIDING (POLICY bit 24), which guest policy 0x{found:x} lacks"
    )]
    CiphertextHidingRequired {
        /// The report's POLICY.
        found: u64,
    },
    /// The reference values require PAGE_SWAP_DISABLE (bit 25), which POLICY lacks.
    #[error(
        "the reference values require PAGE_SWAP_DISABLE (POLICY bit 25), which guest policy 0x{found:x} lacks"
    )]
    PageSwapDisableRequired {
        /// The report's POLICY.
        found: u64,
    },
    /// VMPL is not an allowed level.
    #[error("VMPL {found} is not allowed (allowed: {allowed})")]
    VmplNotAllowed {
        /// The allowed levels.
        allowed: VmplSet,
        /// VMPL of the report.
        found: u32,
    },
    /// REPORTED_TCB is below `MinimumTCB` in a component.
    #[error("REPORTED_TCB {component} is {found}, below the minimum {minimum}")]
    ReportedTcbBelowMinimum {
        /// The first component below the minimum.
        component: TcbComponent,
        /// The minimum.
        minimum: u8,
        /// The report's value.
        found: u8,
    },
    /// LAUNCH_TCB is below the minimum launch TCB (= `MinimumTCB`) in a component.
    #[error("LAUNCH_TCB {component} is {found}, below the minimum {minimum}")]
    LaunchTcbBelowMinimum {
        /// The first component below the minimum.
        component: TcbComponent,
        /// The minimum.
        minimum: u8,
        /// The report's value.
        found: u8,
    },
    /// The certificate's TCB (= REPORTED_TCB) is above CURRENT_TCB in a component.
    #[error("the VCEK/VLEK TCB {component} is {cert}, above CURRENT_TCB {component} {current}")]
    CertTcbAboveCurrent {
        /// The first component above CURRENT_TCB.
        component: TcbComponent,
        /// The certificate's value.
        cert: u8,
        /// CURRENT_TCB's value.
        current: u8,
    },
    /// COMMITTED_TCB is above CURRENT_TCB in a component.
    #[error("COMMITTED_TCB {component} is {committed}, above CURRENT_TCB {component} {current}")]
    CommittedTcbAboveCurrent {
        /// The first component above CURRENT_TCB.
        component: TcbComponent,
        /// COMMITTED_TCB's value.
        committed: u8,
        /// CURRENT_TCB's value.
        current: u8,
    },
    /// The committed firmware build or API version is above the current one.
    #[error("committed firmware {committed} is above the current firmware {current}")]
    CommittedFirmwareAboveCurrent {
        /// COMMITTED_MAJOR/MINOR/BUILD.
        committed: FirmwareVersion,
        /// CURRENT_MAJOR/MINOR/BUILD.
        current: FirmwareVersion,
    },
    /// Provisional firmware is running (committed differs from current) but not permitted.
    #[error(
        "provisional firmware is not permitted: committed TCB ({committed_tcb}) and firmware {committed} differ from current TCB ({current_tcb}) and firmware {current}"
    )]
    ProvisionalFirmwareNotPermitted {
        /// COMMITTED_TCB.
        committed_tcb: TcbVersion,
        /// CURRENT_TCB.
        current_tcb: TcbVersion,
        /// Committed firmware version.
        committed: FirmwareVersion,
        /// Current firmware version.
        current: FirmwareVersion,
    },
    /// PLATFORM_INFO has SMT enabled (bit 0), which the reference values do not permit.
    #[error(
        "PLATFORM_INFO 0x{found:x} has SMT enabled (bit 0), which the reference values do not permit"
    )]
    PlatformSmtNotAllowed {
        /// The report's PLATFORM_INFO.
        found: u64,
    },
    /// PLATFORM_INFO has TSME enabled (bit 1), which the reference values do not permit.
    #[error(
        "PLATFORM_INFO 0x{found:x} has TSME enabled (bit 1), which the reference values do not permit"
    )]
    PlatformTsmeNotAllowed {
        /// The report's PLATFORM_INFO.
        found: u64,
    },
    /// PLATFORM_INFO has SEV-TIO enabled (bit 7), which the reference values do not permit.
    #[error(
        "PLATFORM_INFO 0x{found:x} has SEV-TIO enabled (bit 7), which the reference values do not permit"
    )]
    PlatformTioNotAllowed {
        /// The report's PLATFORM_INFO.
        found: u64,
    },
    /// The reference values require ECC memory (bit 2), which PLATFORM_INFO lacks.
    #[error(
        "the reference values require ECC memory (PLATFORM_INFO bit 2), which PLATFORM_INFO 0x{found:x} lacks"
    )]
    PlatformEccRequired {
        /// The report's PLATFORM_INFO.
        found: u64,
    },
    /// The reference values require RAPL disabled (bit 3), which PLATFORM_INFO lacks.
    #[error(
        "the reference values require RAPL disabled (PLATFORM_INFO bit 3), which PLATFORM_INFO 0x{found:x} lacks"
    )]
    PlatformRaplDisabledRequired {
        /// The report's PLATFORM_INFO.
        found: u64,
    },
    /// The reference values require ciphertext hiding (bit 4), which PLATFORM_INFO lacks.
    #[error(
        "the reference values require ciphertext hiding (PLATFORM_INFO bit 4), which PLATFORM_INFO 0x{found:x} lacks"
    )]
    PlatformCiphertextHidingRequired {
        /// The report's PLATFORM_INFO.
        found: u64,
    },
    /// The reference values require a completed alias check (bit 5), which PLATFORM_INFO lacks.
    #[error(
        "the reference values require ALIAS_CHECK_COMPLETE (PLATFORM_INFO bit 5), which PLATFORM_INFO 0x{found:x} lacks"
    )]
    PlatformAliasCheckRequired {
        /// The report's PLATFORM_INFO.
        found: u64,
    },
    /// LAUNCH_MIT_VECTOR lacks bits of the minimum mitigation vector.
    #[error("LAUNCH_MIT_VECTOR 0x{found:x} lacks required bits 0x{:x} (minimum 0x{required:x})", required & !found)]
    LaunchMitigationVectorMissingBits {
        /// `MinimumMitigationVector`.
        required: u64,
        /// The report's LAUNCH_MIT_VECTOR.
        found: u64,
    },
    /// CURRENT_MIT_VECTOR lacks bits of the minimum mitigation vector.
    #[error("CURRENT_MIT_VECTOR 0x{found:x} lacks required bits 0x{:x} (minimum 0x{required:x})", required & !found)]
    CurrentMitigationVectorMissingBits {
        /// `MinimumMitigationVector`.
        required: u64,
        /// The report's CURRENT_MIT_VECTOR.
        found: u64,
    },
    /// A minimum mitigation vector is required but the report (version < 5) carries none.
    #[error(
        "the reference values require mitigation vector 0x{required:x}, but a version {version} report carries no mitigation vectors (version 5+)"
    )]
    MitigationVectorsNotReported {
        /// `MinimumMitigationVector`.
        required: u64,
        /// The report's version.
        version: u32,
    },
    /// CHIP_ID is masked (all zero), which the appraisal policy does not permit.
    #[error(
        "CHIP_ID is masked (all zero), which the appraisal policy does not permit (allow_masked_chip_id is false)"
    )]
    MaskedChipIdNotAllowed,
    /// CHIP_ID is not in `AllowedChipIDs`.
    #[error(
        "CHIP_ID {} is not one of the {allowed} allowed chip IDs",
        full_hex(found)
    )]
    ChipIdNotAllowed {
        /// CHIP_ID of the report (64 bytes).
        found: Vec<u8>,
        /// Number of entries in `AllowedChipIDs`.
        allowed: usize,
    },
    /// ID_KEY_DIGEST is not the digest of the ID key derived from (measurement, guest policy).
    #[error(
        "ID_KEY_DIGEST mismatch: expected {} (derived from TrustedMeasurement and GuestPolicy), found {}",
        full_hex(expected),
        full_hex(found)
    )]
    IdKeyDigestMismatch {
        /// The derived digest (48 bytes).
        expected: Vec<u8>,
        /// ID_KEY_DIGEST of the report (48 bytes).
        found: Vec<u8>,
    },
}

/// One line per failed reference-value entry.
struct Attempts<'a>(&'a [(usize, Error)]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (index, error)) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "ReferenceValues.snp[{index}]: {error}")?;
        }
        Ok(())
    }
}

/// The expected HOST_DATA values, in full.
struct HostDataList<'a>(&'a [[u8; 32]]);

impl fmt::Display for HostDataList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, value) in self.0.iter().enumerate() {
            f.write_str(if n == 0 { ": " } else { ", " })?;
            write!(f, "{}", full_hex(value))?;
        }
        Ok(())
    }
}

/// What kind of check an [`Error`] (or an [`crate::AtlsError`]) failed: for callers that act on
/// classes of failures (metrics, retries, messages to an operator) without matching every
/// variant. New kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The report, a certificate, a CRL or the certificate table breaks its format (length,
    /// version, reserved bytes or bits, DER, extensions).
    Malformed,
    /// A signature does not verify: the report's, or a certificate's over its issuer's key.
    Signature,
    /// A certificate does not chain to the trust anchor, or breaks a chain rule (issuer, CA
    /// flags, key usage, validity period, algorithms).
    Chain,
    /// The report does not match its signing certificate (product, signer kind, TCB, chip ID).
    Binding,
    /// Collateral is missing or unusable: a certificate or the CRL was not supplied, or the CRL
    /// is stale, unparsable or not the ARK's.
    Collateral,
    /// A certificate of the chain is revoked.
    Revoked,
    /// The reference values themselves are unusable (a configuration error, not the peer's):
    /// none given, bad hex, an incomplete minimum TCB, no pinned simulated ARK.
    ReferenceValues,
    /// The report does not carry the expected report data (a replay, or another peer's key).
    Freshness,
    /// A genuine report that the reference values or the [`crate::AppraisalPolicy`] do not
    /// accept (measurement, HOST_DATA, guest policy, TCB, platform, chip ID, ID key).
    Policy,
    /// The peer presented no attestation (no certificate, no attestation extension, or a
    /// document type no validator accepts). aTLS only.
    NoAttestation,
    /// Our own side failed (issuing our document, building our certificate, no clock). aTLS
    /// only.
    Local,
}

impl Error {
    /// The kind of check that failed. For [`Error::NoReferenceValuesMatched`]: the kind shared
    /// by every entry's reason, or [`ErrorKind::Policy`] when the entries failed for different
    /// kinds of reasons.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoReferenceValuesMatched { attempts } => {
                let mut kinds = attempts.iter().map(|(_, error)| error.kind());
                match kinds.next() {
                    Some(first) if kinds.all(|kind| kind == first) => first,
                    _ => ErrorKind::Policy,
                }
            }
            Self::PolicyBit17Clear { .. }
            | Self::ReportLength { .. }
            | Self::UnsupportedReportVersion { .. }
            | Self::UnsupportedSignatureAlgorithm { .. }
            | Self::ReservedBytesNotZero { .. }
            | Self::ReservedBitsSet { .. }
            | Self::ReservedSigningKey { .. }
            | Self::ReportNotSigned { .. }
            | Self::InvalidVmpl { .. }
            | Self::SignatureComponentTooLarge { .. }
            | Self::UnknownCpuid { .. }
            | Self::CertificateParse { .. }
            | Self::DuplicateExtension { .. }
            | Self::MalformedExtension { .. }
            | Self::CertTable { .. } => ErrorKind::Malformed,
            Self::ReportSignatureInvalid { .. } | Self::CertificateSignatureInvalid { .. } => {
                ErrorKind::Signature
            }
            Self::LeafKeyNotP384 { .. }
            | Self::UntrustedRoot { .. }
            | Self::PinnedAnchorIsAmdRoot { .. }
            | Self::CertificateSignatureAlgorithm { .. }
            | Self::PssParameters { .. }
            | Self::SignatureAlgorithmMismatch { .. }
            | Self::IssuerKey { .. }
            | Self::IssuerMismatch { .. }
            | Self::UnexpectedCommonName { .. }
            | Self::NotCa { .. }
            | Self::LeafIsCa { .. }
            | Self::KeyUsage { .. }
            | Self::CertificateNotYetValid { .. }
            | Self::CertificateExpired { .. }
            | Self::UnknownCriticalExtension { .. } => ErrorKind::Chain,
            Self::ProductMismatch { .. }
            | Self::SignerKindMismatch { .. }
            | Self::MissingTcbExtension { .. }
            | Self::TcbMismatch { .. }
            | Self::MissingHwId { .. }
            | Self::HwIdLength { .. }
            | Self::ChipIdMismatch { .. }
            | Self::VlekExtensions { .. }
            | Self::ProductNameMismatch { .. } => ErrorKind::Binding,
            Self::MissingCertificate { .. }
            | Self::CrlMissing { .. }
            | Self::CrlParse { .. }
            | Self::CrlIssuerMismatch { .. }
            | Self::CrlNotYetValid { .. }
            | Self::CrlNoNextUpdate { .. }
            | Self::CrlStale { .. } => ErrorKind::Collateral,
            Self::Revoked { .. } => ErrorKind::Revoked,
            Self::NoSnpReferenceValues { .. }
            | Self::InvalidReferenceValues { .. }
            | Self::MinimumTcbIncomplete { .. }
            | Self::SimulatedArkFingerprintMissing { .. }
            | Self::ApEipUnsupported { .. }
            | Self::IdKeyRecovery { .. } => ErrorKind::ReferenceValues,
            Self::ReportDataMismatch { .. } => ErrorKind::Freshness,
            Self::MemAes256XtsRequired { .. }
            | Self::ReferenceAnchorMismatch { .. }
            | Self::MeasurementMismatch { .. }
            | Self::HostDataMismatch { .. }
            | Self::GuestPolicyAbiTooLow { .. }
            | Self::MigrationAgentNotAllowed { .. }
            | Self::DebugNotAllowed { .. }
            | Self::SmtNotAllowed { .. }
            | Self::CxlNotAllowed { .. }
            | Self::SingleSocketRequired { .. }
            | Self::RaplDisableRequired { .. }
            | Self::CiphertextHidingRequired { .. }
            | Self::PageSwapDisableRequired { .. }
            | Self::VmplNotAllowed { .. }
            | Self::ReportedTcbBelowMinimum { .. }
            | Self::LaunchTcbBelowMinimum { .. }
            | Self::CertTcbAboveCurrent { .. }
            | Self::CommittedTcbAboveCurrent { .. }
            | Self::CommittedFirmwareAboveCurrent { .. }
            | Self::ProvisionalFirmwareNotPermitted { .. }
            | Self::PlatformSmtNotAllowed { .. }
            | Self::PlatformTsmeNotAllowed { .. }
            | Self::PlatformTioNotAllowed { .. }
            | Self::PlatformEccRequired { .. }
            | Self::PlatformRaplDisabledRequired { .. }
            | Self::PlatformCiphertextHidingRequired { .. }
            | Self::PlatformAliasCheckRequired { .. }
            | Self::LaunchMitigationVectorMissingBits { .. }
            | Self::CurrentMitigationVectorMissingBits { .. }
            | Self::MitigationVectorsNotReported { .. }
            | Self::MaskedChipIdNotAllowed { .. }
            | Self::ChipIdNotAllowed { .. }
            | Self::IdKeyDigestMismatch { .. } => ErrorKind::Policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::CertRole;

    #[test]
    fn kinds_classify_without_matching_every_variant() {
        assert_eq!(
            Error::ReportLength { found: 3 }.kind(),
            ErrorKind::Malformed
        );
        assert_eq!(
            Error::Revoked {
                role: CertRole::Ask,
                serial: vec![1],
            }
            .kind(),
            ErrorKind::Revoked
        );
        assert_eq!(
            Error::CrlMissing {
                product: Product::Milan,
            }
            .kind(),
            ErrorKind::Collateral
        );
        let measurement = || Error::MeasurementMismatch {
            expected: vec![0; 48],
            found: vec![1; 48],
        };
        assert_eq!(measurement().kind(), ErrorKind::Policy);
        assert_eq!(
            Error::NoSnpReferenceValues.kind(),
            ErrorKind::ReferenceValues
        );
        // No entry matched: the shared kind, or Policy when the entries disagree.
        let revoked = || Error::Revoked {
            role: CertRole::Vcek,
            serial: vec![2],
        };
        assert_eq!(
            Error::NoReferenceValuesMatched {
                attempts: vec![(0, revoked()), (1, revoked())],
            }
            .kind(),
            ErrorKind::Revoked
        );
        assert_eq!(
            Error::NoReferenceValuesMatched {
                attempts: vec![(0, revoked()), (1, measurement())],
            }
            .kind(),
            ErrorKind::Policy
        );
    }

    #[test]
    fn atls_errors_share_the_kinds() {
        use crate::atls::AtlsError;
        assert_eq!(
            AtlsError::NoAttestationExtension.kind(),
            ErrorKind::NoAttestation
        );
        assert_eq!(AtlsError::BadSelfSignature.kind(), ErrorKind::Signature);
        assert_eq!(AtlsError::NoTime.kind(), ErrorKind::Local);
        assert_eq!(
            AtlsError::Appraisal(Error::Revoked {
                role: CertRole::Ask,
                serial: vec![3],
            })
            .kind(),
            ErrorKind::Revoked
        );
    }
}
