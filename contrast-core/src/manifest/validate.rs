//! Manifest validation: upstream's `Manifest.Validate` rules plus the simulated-platform rules of
//! contrast-rs. Every violation is reported (upstream stops at a wrong coordinator count), each
//! with the JSON path of the offending value.
//!
//! Rules:
//!
//! - `Policies` keys are 64 hex characters (SHA-256) in **lower case**. Upstream accepts upper
//!   case, but the Coordinator looks entries up by the lowercase hex of the attested HOST_DATA,
//!   so an uppercase key could never match; we reject it instead.
//! - Roles are `""` or `coordinator`; at least one policy has role `coordinator`.
//! - Every SAN of a policy can be a SAN of its workload certificate ([`crate::san::check_san`]:
//!   not empty, ASCII, a valid DNS name, IP address or URI), and at least one is a DNS name: the
//!   certificate's common name is the first DNS SAN, so without one every initializer of the
//!   workload would be refused later (contrast-rs; upstream does not check SANs).
//! - At least one `snp` or `tdx` entry.
//! - SNP: all four `MinimumTCB` parts set (a `null` part "needs filling in"); `ProductName` is
//!   `Milan`, `Genoa` or `Turin` (Turin is our extension: the contrast-rs verifier supports Turin
//!   chains); `TrustedMeasurement` 48 bytes; `GuestPolicy` is Contrast's fixed policy (ABIMajor
//!   0, ABIMinor 0 or 31, SMT true, MigrateMA/Debug/SingleSocket/CXLAllowed/MemAES256XTS/RAPLDis/
//!   CipherTextHidingDRAM false, PageSwapDisable free); each `AllowedChipIDs` entry 64 bytes;
//!   `APEIP` 4 bytes when present.
//! - Simulated platform (contrast-rs): an entry with `Platform == "Simulated-SNP"` carries a
//!   32-byte `SimulatedARKFingerprint`, hardware entries carry none, and one manifest does not
//!   mix simulated and hardware entries (unknown or empty platforms count as hardware).
//! - TDX: `MrTd` and `MrSeam` 48 bytes (an empty `MrSeam` "needs filling in"), exactly four
//!   48-byte `Rtmrs`, `Xfam` 8 bytes, each `AllowedPIIDs` entry 16 bytes.
//! - `WorkloadOwnerKeyDigests` entries are 64 hex characters; `WorkloadOwnerPubKeys` entries are
//!   hex PKIX ECDSA keys; `SeedshareOwnerPubKeys` entries are hex PKCS#1 RSA keys.
//! - `MinimumAPIVersion`, when present, is `v` followed by a positive integer without leading
//!   zeros that fits in 64 bits.

use std::fmt;

use crate::hexstring::{self, HexError};
use crate::san::{San, SanError, check_san, classify_san};

use super::decode::key_path;
use super::{
    GuestPolicy, Manifest, PlatformKind, Product, Role, SIMULATED_SNP_PLATFORM, SnpReferenceValues,
    TdxReferenceValues,
};

/// What is wrong with one value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ViolationKind {
    /// A value that still needs filling in (a `null` TCB part, an empty `MrSeam`).
    #[error("missing")]
    Missing,
    /// A simulated-platform entry without its ARK fingerprint (needs filling in).
    #[error("missing: required for platform {SIMULATED_SNP_PLATFORM:?}")]
    MissingSimulatedArkFingerprint,
    /// Not valid hex.
    #[error("invalid hex: {0}")]
    InvalidHex(HexError),
    /// Valid hex of the wrong length.
    #[error("expected {expected} bytes ({} hex characters), found {found} bytes", expected * 2)]
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// A policy key with uppercase hex digits.
    #[error(
        "policy key must be lowercase hex: the attested host data is looked up as lowercase hex, \
         so this entry could never match"
    )]
    UppercaseHex,
    /// A role other than `""` and `coordinator`.
    #[error("unknown role {role:?}")]
    UnknownRole {
        /// The role found.
        role: String,
    },
    /// A SAN that cannot be a SAN of the workload certificate.
    #[error("invalid subject alternative name: {0}")]
    InvalidSan(SanError),
    /// A policy whose SANs hold no DNS name: its workload certificate would have no common name.
    #[error(
        "expected at least one DNS name (the workload certificate's common name is the first \
         DNS SAN), found {found} SANs and none is a DNS name"
    )]
    NoDnsSan {
        /// How many SANs the policy has (IP addresses and URIs only).
        found: usize,
    },
    /// No policy has role `coordinator`.
    #[error("expected at least 1 policy with role \"coordinator\", found none")]
    NoCoordinator,
    /// Neither `snp` nor `tdx` reference values.
    #[error("expected at least one snp or tdx entry, found none")]
    NoReferenceValues,
    /// `ProductName` is not a supported product.
    #[error("unknown product {found:?} (expected Milan, Genoa or Turin)")]
    UnknownProduct {
        /// The value found.
        found: String,
    },
    /// A `GuestPolicy` field differs from Contrast's fixed guest policy.
    #[error("contrast requires {expected}, found {found}")]
    UnexpectedGuestPolicy {
        /// The allowed value(s).
        expected: &'static str,
        /// The value found.
        found: String,
    },
    /// A hardware entry carries a `SimulatedARKFingerprint`.
    #[error("only allowed with platform {SIMULATED_SNP_PLATFORM:?}, found platform {platform:?}")]
    ArkFingerprintOnHardware {
        /// The entry's platform.
        platform: String,
    },
    /// A TDX entry claims the simulated platform, which is SEV-SNP only.
    #[error("platform {SIMULATED_SNP_PLATFORM:?} is sev-snp only and cannot be used for tdx")]
    SimulatedTdx,
    /// Simulated and hardware entries in one manifest.
    #[error(
        "mixes simulated ({SIMULATED_SNP_PLATFORM:?}) and hardware platforms; a manifest must \
         use only one kind"
    )]
    MixedPlatforms,
    /// A `WorkloadOwnerPubKeys` entry that is not a PKIX ECDSA public key.
    #[error("invalid workload owner key: {reason}")]
    InvalidWorkloadOwnerKey {
        /// What the key parser reported.
        reason: String,
    },
    /// A `SeedshareOwnerPubKeys` entry that is not a PKCS#1 RSA public key.
    #[error("invalid seedshare owner key: {reason}")]
    InvalidSeedshareOwnerKey {
        /// What the key parser reported.
        reason: String,
    },
    /// `MinimumAPIVersion` is not `v<positive integer>`.
    #[error("expected v<positive integer without leading zeros>, found {found:?}")]
    InvalidApiVersion {
        /// The value found.
        found: String,
    },
}

/// One rule violation: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the value, e.g. `ReferenceValues.snp[0].MinimumTCB.SNPVersion`.
    pub path: String,
    /// What is wrong.
    pub kind: ViolationKind,
}

impl Violation {
    fn new(path: impl Into<String>, kind: ViolationKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }

    /// Whether the value merely needs filling in (as `contrast generate` leaves TCB parts
    /// `null`), as opposed to being wrong.
    #[must_use]
    pub fn is_missing_value(&self) -> bool {
        matches!(
            self.kind,
            ViolationKind::Missing | ViolationKind::MissingSimulatedArkFingerprint
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)
    }
}

/// All violations found in a manifest (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    violations: Vec<Violation>,
}

impl ValidationErrors {
    /// The violations, in document order.
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Whether every violation only needs filling in.
    #[must_use]
    pub fn only_missing_values(&self) -> bool {
        self.violations.iter().all(Violation::is_missing_value)
    }

    /// Gives back the violations.
    #[must_use]
    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl Manifest {
    /// Checks every rule (see the [module docs](crate::manifest::validate)) and returns all violations.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut out = Vec::new();
        self.validate_policies(&mut out);
        self.validate_reference_values(&mut out);
        self.validate_owner_keys(&mut out);
        if let Some(version) = &self.minimum_api_version
            && parse_api_version(version).is_none()
        {
            out.push(Violation::new(
                "MinimumAPIVersion",
                ViolationKind::InvalidApiVersion {
                    found: version.clone(),
                },
            ));
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors { violations: out })
        }
    }

    fn validate_policies(&self, out: &mut Vec<Violation>) {
        for (key, entry) in &self.policies {
            let path = key_path("Policies", key);
            if let Some(kind) = check_hex(key, 32) {
                out.push(Violation::new(path.clone(), kind));
            } else if key.bytes().any(|b| b.is_ascii_uppercase()) {
                out.push(Violation::new(path.clone(), ViolationKind::UppercaseHex));
            }
            validate_sans(&path, entry.sans.as_deref().unwrap_or_default(), out);
            if let Role::Other(role) = &entry.role {
                out.push(Violation::new(
                    format!("{path}.Role"),
                    ViolationKind::UnknownRole { role: role.clone() },
                ));
            }
        }
        if self.coordinator_policy_hashes().next().is_none() {
            out.push(Violation::new("Policies", ViolationKind::NoCoordinator));
        }
    }

    fn validate_reference_values(&self, out: &mut Vec<Violation>) {
        let values = &self.reference_values;
        if values.snp.is_empty() && values.tdx.is_empty() {
            out.push(Violation::new(
                "ReferenceValues",
                ViolationKind::NoReferenceValues,
            ));
        }
        let kinds = values
            .snp
            .iter()
            .map(SnpReferenceValues::platform_kind)
            .chain(values.tdx.iter().map(TdxReferenceValues::platform_kind));
        let (mut simulated, mut hardware) = (false, false);
        for kind in kinds {
            match kind {
                PlatformKind::Simulated => simulated = true,
                PlatformKind::Hardware => hardware = true,
            }
        }
        if simulated && hardware {
            out.push(Violation::new(
                "ReferenceValues",
                ViolationKind::MixedPlatforms,
            ));
        }
        for (i, snp) in values.snp.iter().enumerate() {
            validate_snp(&format!("ReferenceValues.snp[{i}]"), snp, out);
        }
        for (i, tdx) in values.tdx.iter().enumerate() {
            validate_tdx(&format!("ReferenceValues.tdx[{i}]"), tdx, out);
        }
    }

    fn validate_owner_keys(&self, out: &mut Vec<Violation>) {
        for (i, digest) in self.workload_owner_key_digests.iter().flatten().enumerate() {
            if let Some(kind) = check_hex(digest, 32) {
                out.push(Violation::new(
                    format!("WorkloadOwnerKeyDigests[{i}]"),
                    kind,
                ));
            }
        }
        for (i, key) in self.workload_owner_pub_keys.iter().flatten().enumerate() {
            let kind = match hexstring::decode(key) {
                Err(e) => Some(ViolationKind::InvalidHex(e)),
                Ok(der) => crate::owner::WorkloadOwnerPublicKey::from_pkix_der(&der)
                    .err()
                    .map(|e| ViolationKind::InvalidWorkloadOwnerKey {
                        reason: e.to_string(),
                    }),
            };
            if let Some(kind) = kind {
                out.push(Violation::new(format!("WorkloadOwnerPubKeys[{i}]"), kind));
            }
        }
        for (i, key) in self.seedshare_owner_pub_keys.iter().flatten().enumerate() {
            let kind = match hexstring::decode(key) {
                Err(e) => Some(ViolationKind::InvalidHex(e)),
                Ok(der) => crate::owner::SeedshareOwnerPublicKey::from_pkcs1_der(&der)
                    .err()
                    .map(|e| ViolationKind::InvalidSeedshareOwnerKey {
                        reason: e.to_string(),
                    }),
            };
            if let Some(kind) = kind {
                out.push(Violation::new(format!("SeedshareOwnerPubKeys[{i}]"), kind));
            }
        }
    }
}

/// Every SAN must be usable ([`check_san`]) and one must be a DNS name. A DNS name that is
/// itself invalid counts as one (it is reported already).
fn validate_sans(policy_path: &str, sans: &[String], out: &mut Vec<Violation>) {
    for (index, san) in sans.iter().enumerate() {
        if let Err(error) = check_san(san) {
            out.push(Violation::new(
                format!("{policy_path}.SANs[{index}]"),
                ViolationKind::InvalidSan(error),
            ));
        }
    }
    let has_dns = sans
        .iter()
        .any(|san| !san.is_empty() && matches!(classify_san(san), San::Dns(_)));
    if !has_dns {
        out.push(Violation::new(
            format!("{policy_path}.SANs"),
            ViolationKind::NoDnsSan { found: sans.len() },
        ));
    }
}

fn validate_snp(path: &str, snp: &SnpReferenceValues, out: &mut Vec<Violation>) {
    let at = |field: &str| format!("{path}.{field}");
    let tcb = &snp.minimum_tcb;
    for (name, part) in [
        ("BootloaderVersion", tcb.bootloader_version),
        ("TEEVersion", tcb.tee_version),
        ("SNPVersion", tcb.snp_version),
        ("MicrocodeVersion", tcb.microcode_version),
    ] {
        if part.is_none() {
            out.push(Violation::new(
                at(&format!("MinimumTCB.{name}")),
                ViolationKind::Missing,
            ));
        }
    }
    if Product::from_name(&snp.product_name).is_none() {
        out.push(Violation::new(
            at("ProductName"),
            ViolationKind::UnknownProduct {
                found: snp.product_name.clone(),
            },
        ));
    }
    if let Some(kind) = check_hex(&snp.trusted_measurement, 48) {
        out.push(Violation::new(at("TrustedMeasurement"), kind));
    }
    validate_guest_policy(&at("GuestPolicy"), &snp.guest_policy, out);
    for (i, chip_id) in snp.allowed_chip_ids.iter().flatten().enumerate() {
        if let Some(kind) = check_hex(chip_id, 64) {
            out.push(Violation::new(at(&format!("AllowedChipIDs[{i}]")), kind));
        }
    }
    if let Some(apeip) = &snp.apeip
        && let Some(kind) = check_hex(apeip, 4)
    {
        out.push(Violation::new(at("APEIP"), kind));
    }
    match (snp.platform_kind(), &snp.simulated_ark_fingerprint) {
        (PlatformKind::Simulated, None) => out.push(Violation::new(
            at("SimulatedARKFingerprint"),
            ViolationKind::MissingSimulatedArkFingerprint,
        )),
        (PlatformKind::Simulated, Some(fingerprint)) => {
            if let Some(kind) = check_hex(fingerprint, 32) {
                out.push(Violation::new(at("SimulatedARKFingerprint"), kind));
            }
        }
        (PlatformKind::Hardware, Some(_)) => out.push(Violation::new(
            at("SimulatedARKFingerprint"),
            ViolationKind::ArkFingerprintOnHardware {
                platform: snp.platform.clone(),
            },
        )),
        (PlatformKind::Hardware, None) => {}
    }
}

fn validate_guest_policy(path: &str, policy: &GuestPolicy, out: &mut Vec<Violation>) {
    let mut require = |field: &str, ok: bool, expected: &'static str, found: String| {
        if !ok {
            out.push(Violation::new(
                format!("{path}.{field}"),
                ViolationKind::UnexpectedGuestPolicy { expected, found },
            ));
        }
    };
    require(
        "ABIMinor",
        matches!(policy.abi_minor, 0 | 31),
        "0 or 31",
        policy.abi_minor.to_string(),
    );
    require(
        "ABIMajor",
        policy.abi_major == 0,
        "0",
        policy.abi_major.to_string(),
    );
    require("SMT", policy.smt, "true", policy.smt.to_string());
    for (field, value) in [
        ("MigrateMA", policy.migrate_ma),
        ("Debug", policy.debug),
        ("SingleSocket", policy.single_socket),
        ("CXLAllowed", policy.cxl_allowed),
        ("MemAES256XTS", policy.mem_aes_256_xts),
        ("RAPLDis", policy.rapl_dis),
        ("CipherTextHidingDRAM", policy.ciphertext_hiding_dram),
    ] {
        require(field, !value, "false", value.to_string());
    }
}

fn validate_tdx(path: &str, tdx: &TdxReferenceValues, out: &mut Vec<Violation>) {
    let at = |field: &str| format!("{path}.{field}");
    if tdx.platform_kind() == PlatformKind::Simulated {
        out.push(Violation::new(at("Platform"), ViolationKind::SimulatedTdx));
    }
    if let Some(kind) = check_hex(&tdx.mr_td, 48) {
        out.push(Violation::new(at("MrTd"), kind));
    }
    if tdx.mr_seam.is_empty() {
        out.push(Violation::new(at("MrSeam"), ViolationKind::Missing));
    } else if let Some(kind) = check_hex(&tdx.mr_seam, 48) {
        out.push(Violation::new(at("MrSeam"), kind));
    }
    for (i, rtmr) in tdx.rtmrs.iter().enumerate() {
        if let Some(kind) = check_hex(rtmr, 48) {
            out.push(Violation::new(at(&format!("Rtmrs[{i}]")), kind));
        }
    }
    if let Some(kind) = check_hex(&tdx.xfam, 8) {
        out.push(Violation::new(at("Xfam"), kind));
    }
    for (i, piid) in tdx.allowed_piids.iter().flatten().enumerate() {
        if let Some(kind) = check_hex(piid, 16) {
            out.push(Violation::new(at(&format!("AllowedPIIDs[{i}]")), kind));
        }
    }
}

/// The violation of a hex field that must decode to `expected` bytes, if any.
fn check_hex(value: &str, expected: usize) -> Option<ViolationKind> {
    match hexstring::decode(value) {
        Err(HexError::WrongLength { expected, found }) => {
            Some(ViolationKind::WrongLength { expected, found })
        }
        Err(e) => Some(ViolationKind::InvalidHex(e)),
        Ok(bytes) if bytes.len() != expected => Some(ViolationKind::WrongLength {
            expected,
            found: bytes.len(),
        }),
        Ok(_) => None,
    }
}

/// The number of a `v<positive integer>` API version; `None` when malformed.
pub(super) fn parse_api_version(version: &str) -> Option<u64> {
    let digits = version.strip_prefix('v')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        assert_eq!(parse_api_version("v1"), Some(1));
        assert_eq!(parse_api_version("v42"), Some(42));
        for bad in [
            "",
            "v",
            "v0",
            "v01",
            "1",
            "V1",
            "v1.0",
            "v+1",
            "v-1",
            "v99999999999999999999",
        ] {
            assert_eq!(parse_api_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_checks() {
        assert_eq!(check_hex(&"ab".repeat(4), 4), None);
        assert_eq!(
            check_hex("abcd", 4),
            Some(ViolationKind::WrongLength {
                expected: 4,
                found: 2
            })
        );
        assert!(matches!(
            check_hex("zz", 1),
            Some(ViolationKind::InvalidHex(_))
        ));
        assert!(matches!(
            check_hex("abc", 1),
            Some(ViolationKind::InvalidHex(_))
        ));
    }
}
