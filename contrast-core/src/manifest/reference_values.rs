//! Reference values: what an attestation report must show for a workload to be accepted.
//!
//! Field order is Go struct order (it is the JSON order). SNP entries follow upstream's newest
//! `SNPReferenceValues` plus one field of ours, `SimulatedARKFingerprint`, which pins the ARK of
//! the simulated platform (`Platform == "Simulated-SNP"`). TDX entries are kept and validated as
//! data only.
//!
//! Output assumptions where upstream's struct tags are not confirmed: `AllowedChipIDs` and
//! `AllowedPIIDs` have no `omitempty` (Go writes `null` for a nil list, `[]` for an empty one, so
//! they are `Option<Vec<_>>`), and `APEIP` is written only when present (any `Some`, even empty).

use crate::hexstring::{self, HexError};

/// The `Platform` value that marks a simulated SEV-SNP platform (contrast-rs only).
pub const SIMULATED_SNP_PLATFORM: &str = "Simulated-SNP";

/// Why a typed accessor could not decode a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A hex field is not valid hex or has the wrong length.
    #[error("{field}: {source}")]
    Hex {
        /// Name (and index) of the field.
        field: String,
        /// What was wrong with the hex.
        source: HexError,
    },
    /// `ProductName` is not a supported product.
    #[error("ProductName: unknown product {found:?} (expected Milan, Genoa or Turin)")]
    UnknownProduct {
        /// The value found.
        found: String,
    },
    /// `MinimumAPIVersion` is not `v<positive integer>`.
    #[error("MinimumAPIVersion: expected v<positive integer>, found {found:?}")]
    InvalidApiVersion {
        /// The value found.
        found: String,
    },
}

/// AMD EPYC product generation (`ProductName`).
///
/// Upstream accepts `Milan` and `Genoa`; `Turin` is our extension because the contrast-rs
/// verifier supports Turin certificate chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    /// 3rd generation EPYC.
    Milan,
    /// 4th generation EPYC.
    Genoa,
    /// 5th generation EPYC (contrast-rs extension).
    Turin,
}

impl Product {
    /// Parses a `ProductName` (exact spelling, case-sensitive).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Milan" => Some(Self::Milan),
            "Genoa" => Some(Self::Genoa),
            "Turin" => Some(Self::Turin),
            _ => None,
        }
    }

    /// The `ProductName` string.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
            Self::Turin => "Turin",
        }
    }
}

/// Whether a reference-value entry describes real hardware or the simulated platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlatformKind {
    /// Real hardware. Any platform name other than [`SIMULATED_SNP_PLATFORM`], including unknown
    /// and empty ones, counts as hardware (as upstream counts them as "secure").
    Hardware,
    /// The simulated SEV-SNP platform ([`SIMULATED_SNP_PLATFORM`]).
    Simulated,
}

impl PlatformKind {
    /// Classifies a `Platform` string.
    #[must_use]
    pub fn of(platform: &str) -> Self {
        if platform == SIMULATED_SNP_PLATFORM {
            Self::Simulated
        } else {
            Self::Hardware
        }
    }
}

/// All reference values of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct ReferenceValues {
    /// SEV-SNP entries (JSON `snp`, omitted when empty).
    #[serde(rename = "snp", skip_serializing_if = "Vec::is_empty")]
    pub snp: Vec<SnpReferenceValues>,
    /// TDX entries (JSON `tdx`, omitted when empty).
    #[serde(rename = "tdx", skip_serializing_if = "Vec::is_empty")]
    pub tdx: Vec<TdxReferenceValues>,
}

/// Reference values for one SEV-SNP platform.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct SnpReferenceValues {
    /// Platform marker, e.g. `Metal-QEMU-SNP`, or [`SIMULATED_SNP_PLATFORM`].
    #[serde(rename = "Platform")]
    pub platform: String,
    /// `Milan`, `Genoa` or `Turin`.
    #[serde(rename = "ProductName")]
    pub product_name: String,
    /// Hex of the 48-byte launch measurement.
    #[serde(rename = "TrustedMeasurement")]
    pub trusted_measurement: String,
    /// Minimum TCB; `None` parts still need filling in.
    #[serde(rename = "MinimumTCB")]
    pub minimum_tcb: MinimumTcb,
    /// Required guest policy (go-sev-guest `abi.SnpPolicy`).
    #[serde(rename = "GuestPolicy")]
    pub guest_policy: GuestPolicy,
    /// Required platform info (go-sev-guest `abi.SnpPlatformInfo`).
    #[serde(rename = "PlatformInfo")]
    pub platform_info: PlatformInfo,
    /// Minimum launch and current mitigation vector.
    #[serde(rename = "MinimumMitigationVector")]
    pub minimum_mitigation_vector: u64,
    /// Hex of each allowed 64-byte CHIP_ID; any chip when `None` or empty.
    #[serde(rename = "AllowedChipIDs")]
    pub allowed_chip_ids: Option<Vec<String>>,
    /// Hex of the 4-byte AP EIP (omitted when absent).
    #[serde(rename = "APEIP", skip_serializing_if = "Option::is_none")]
    pub apeip: Option<String>,
    /// contrast-rs: hex SHA-256 of the simulated ARK certificate DER (omitted when absent;
    /// required exactly when `Platform` is [`SIMULATED_SNP_PLATFORM`]).
    #[serde(
        rename = "SimulatedARKFingerprint",
        skip_serializing_if = "Option::is_none"
    )]
    pub simulated_ark_fingerprint: Option<String>,
}

/// Minimum TCB version parts (SVNs, 0..=255). `None` = JSON `null` = not filled in yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct MinimumTcb {
    /// Bootloader SVN.
    #[serde(rename = "BootloaderVersion")]
    pub bootloader_version: Option<u8>,
    /// TEE (PSP OS) SVN.
    #[serde(rename = "TEEVersion")]
    pub tee_version: Option<u8>,
    /// SNP firmware SVN.
    #[serde(rename = "SNPVersion")]
    pub snp_version: Option<u8>,
    /// Microcode SVN.
    #[serde(rename = "MicrocodeVersion")]
    pub microcode_version: Option<u8>,
}

/// The SEV-SNP guest policy (go-sev-guest `abi.SnpPolicy`), in its JSON key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct GuestPolicy {
    /// Minimum ABI minor version.
    #[serde(rename = "ABIMinor")]
    pub abi_minor: u8,
    /// Minimum ABI major version.
    #[serde(rename = "ABIMajor")]
    pub abi_major: u8,
    /// SMT allowed.
    #[serde(rename = "SMT")]
    pub smt: bool,
    /// Migration agent allowed.
    #[serde(rename = "MigrateMA")]
    pub migrate_ma: bool,
    /// Debugging allowed.
    #[serde(rename = "Debug")]
    pub debug: bool,
    /// Single socket only.
    #[serde(rename = "SingleSocket")]
    pub single_socket: bool,
    /// CXL memory allowed.
    #[serde(rename = "CXLAllowed")]
    pub cxl_allowed: bool,
    /// AES-256-XTS memory encryption required.
    #[serde(rename = "MemAES256XTS")]
    pub mem_aes_256_xts: bool,
    /// RAPL disabled required.
    #[serde(rename = "RAPLDis")]
    pub rapl_dis: bool,
    /// Ciphertext hiding for DRAM required.
    #[serde(rename = "CipherTextHidingDRAM")]
    pub ciphertext_hiding_dram: bool,
    /// Page swap commands disabled.
    #[serde(rename = "PageSwapDisable")]
    pub page_swap_disable: bool,
}

/// The SEV-SNP platform info (go-sev-guest `abi.SnpPlatformInfo`), in its JSON key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct PlatformInfo {
    /// SMT enabled on the host.
    #[serde(rename = "SMTEnabled")]
    pub smt_enabled: bool,
    /// TSME enabled.
    #[serde(rename = "TSMEEnabled")]
    pub tsme_enabled: bool,
    /// ECC memory enabled.
    #[serde(rename = "ECCEnabled")]
    pub ecc_enabled: bool,
    /// RAPL disabled.
    #[serde(rename = "RAPLDisabled")]
    pub rapl_disabled: bool,
    /// Ciphertext hiding for DRAM enabled.
    #[serde(rename = "CiphertextHidingDRAMEnabled")]
    pub ciphertext_hiding_dram_enabled: bool,
    /// Alias check completed.
    #[serde(rename = "AliasCheckComplete")]
    pub alias_check_complete: bool,
    /// TIO enabled.
    #[serde(rename = "TIOEnabled")]
    pub tio_enabled: bool,
}

/// Reference values for one TDX platform (newest upstream schema; data only).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct TdxReferenceValues {
    /// Platform marker.
    #[serde(rename = "Platform")]
    pub platform: String,
    /// Minimum TCB evaluation data number (used when > 0).
    #[serde(rename = "MinTCBEvaluationDataNumber")]
    pub min_tcb_evaluation_data_number: i64,
    /// Hex of the 48-byte MRTD.
    #[serde(rename = "MrTd")]
    pub mr_td: String,
    /// Hex of the 48-byte MRSEAM.
    #[serde(rename = "MrSeam")]
    pub mr_seam: String,
    /// Hex of the four 48-byte RTMRs (Go `[4]HexString`: always four entries).
    #[serde(rename = "Rtmrs")]
    pub rtmrs: [String; 4],
    /// Hex of the 8-byte XFAM.
    #[serde(rename = "Xfam")]
    pub xfam: String,
    /// Hex of each allowed 16-byte PIID; any when `None` or empty.
    #[serde(rename = "AllowedPIIDs")]
    pub allowed_piids: Option<Vec<String>>,
    /// Require memory integrity.
    #[serde(rename = "MemoryIntegrity")]
    pub memory_integrity: bool,
    /// Require SMT disabled.
    #[serde(rename = "SMTDisabled")]
    pub smt_disabled: bool,
    /// Require a static (non-dynamic) platform.
    #[serde(rename = "StaticPlatform")]
    pub static_platform: bool,
}

impl MinimumTcb {
    /// The four parts `[bootloader, tee, snp, microcode]` when all are filled in.
    #[must_use]
    pub fn complete(&self) -> Option<[u8; 4]> {
        Some([
            self.bootloader_version?,
            self.tee_version?,
            self.snp_version?,
            self.microcode_version?,
        ])
    }
}

impl SnpReferenceValues {
    /// Hardware or simulated, from `Platform`.
    #[must_use]
    pub fn platform_kind(&self) -> PlatformKind {
        PlatformKind::of(&self.platform)
    }

    /// The product generation.
    pub fn product(&self) -> Result<Product, FieldError> {
        Product::from_name(&self.product_name).ok_or_else(|| FieldError::UnknownProduct {
            found: self.product_name.clone(),
        })
    }

    /// The 48-byte launch measurement.
    pub fn trusted_measurement(&self) -> Result<[u8; 48], FieldError> {
        decode_hex_array("TrustedMeasurement", &self.trusted_measurement)
    }

    /// The allowed 64-byte chip IDs (empty = any chip).
    pub fn allowed_chip_ids(&self) -> Result<Vec<[u8; 64]>, FieldError> {
        decode_hex_array_list("AllowedChipIDs", self.allowed_chip_ids.as_deref())
    }

    /// The 4-byte AP EIP, when present.
    pub fn apeip(&self) -> Result<Option<[u8; 4]>, FieldError> {
        self.apeip
            .as_deref()
            .map(|s| decode_hex_array("APEIP", s))
            .transpose()
    }

    /// The SHA-256 fingerprint of the simulated ARK certificate DER, when present.
    pub fn simulated_ark_fingerprint(&self) -> Result<Option<[u8; 32]>, FieldError> {
        self.simulated_ark_fingerprint
            .as_deref()
            .map(|s| decode_hex_array("SimulatedARKFingerprint", s))
            .transpose()
    }
}

impl TdxReferenceValues {
    /// Hardware or simulated, from `Platform`.
    #[must_use]
    pub fn platform_kind(&self) -> PlatformKind {
        PlatformKind::of(&self.platform)
    }

    /// The 48-byte MRTD.
    pub fn mr_td(&self) -> Result<[u8; 48], FieldError> {
        decode_hex_array("MrTd", &self.mr_td)
    }

    /// The 48-byte MRSEAM.
    pub fn mr_seam(&self) -> Result<[u8; 48], FieldError> {
        decode_hex_array("MrSeam", &self.mr_seam)
    }

    /// The four 48-byte RTMRs.
    pub fn rtmrs(&self) -> Result<[[u8; 48]; 4], FieldError> {
        let [r0, r1, r2, r3] = &self.rtmrs;
        Ok([
            decode_hex_array("Rtmrs[0]", r0)?,
            decode_hex_array("Rtmrs[1]", r1)?,
            decode_hex_array("Rtmrs[2]", r2)?,
            decode_hex_array("Rtmrs[3]", r3)?,
        ])
    }

    /// The 8-byte XFAM.
    pub fn xfam(&self) -> Result<[u8; 8], FieldError> {
        decode_hex_array("Xfam", &self.xfam)
    }

    /// The allowed 16-byte PIIDs (empty = any).
    pub fn allowed_piids(&self) -> Result<Vec<[u8; 16]>, FieldError> {
        decode_hex_array_list("AllowedPIIDs", self.allowed_piids.as_deref())
    }
}

fn decode_hex_array<const N: usize>(field: &str, s: &str) -> Result<[u8; N], FieldError> {
    hexstring::decode_array(s).map_err(|source| FieldError::Hex {
        field: field.to_owned(),
        source,
    })
}

pub(super) fn decode_hex_array_list<const N: usize>(
    field: &str,
    list: Option<&[String]>,
) -> Result<Vec<[u8; N]>, FieldError> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| decode_hex_array(&format!("{field}[{i}]"), s))
        .collect()
}
