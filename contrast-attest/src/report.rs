//! The SEV-SNP `ATTESTATION_REPORT` (AMD SEV-SNP firmware ABI, versions 2 to 5).
//!
//! A report is a fixed 1184-byte little-endian structure. Bytes `0x000..0x2A0` are signed with
//! ECDSA P-384 / SHA-384 by the VCEK or VLEK; the signature's R and S are 72-byte little-endian
//! integers at `0x2A0` and `0x2E8` (P-384 uses the low 48 bytes; the rest must be zero).
//!
//! Two types model the two trust states:
//!
//! - [`UnverifiedReport`]: framing checked (length, version, signature algorithm). It exposes only
//!   the **untrusted hints** needed to find the signing key (chip id, reported TCB, signer kind,
//!   CPUID). Nothing it returns may be used for a decision.
//! - [`Report`]: obtained from [`UnverifiedReport::verify`] after the signature verified and every
//!   reserved byte and bit was checked. It has typed, zero-copy accessors for every field.
//!
//! Field table (offset, size; "v3+" bytes are reserved before version 3, "v5" before version 5):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0x000 | 4 | VERSION |
//! | 0x004 | 4 | GUEST_SVN |
//! | 0x008 | 8 | POLICY ([`GuestPolicy`]) |
//! | 0x010 | 16 | FAMILY_ID |
//! | 0x020 | 16 | IMAGE_ID |
//! | 0x030 | 4 | VMPL |
//! | 0x034 | 4 | SIGNATURE_ALGO (1 = ECDSA P-384 SHA-384) |
//! | 0x038 | 8 | CURRENT_TCB |
//! | 0x040 | 8 | PLATFORM_INFO ([`PlatformInfo`]) |
//! | 0x048 | 4 | KEY_INFO ([`KeyInfo`]) |
//! | 0x04C | 4 | reserved |
//! | 0x050 | 64 | REPORT_DATA |
//! | 0x090 | 48 | MEASUREMENT |
//! | 0x0C0 | 32 | HOST_DATA |
//! | 0x0E0 | 48 | ID_KEY_DIGEST |
//! | 0x110 | 48 | AUTHOR_KEY_DIGEST |
//! | 0x140 | 32 | REPORT_ID |
//! | 0x160 | 32 | REPORT_ID_MA |
//! | 0x180 | 8 | REPORTED_TCB |
//! | 0x188 | 3 | CPUID family, model, stepping (v3+) |
//! | 0x18B | 21 | reserved |
//! | 0x1A0 | 64 | CHIP_ID (Turin: 8 bytes used, rest zero) |
//! | 0x1E0 | 8 | COMMITTED_TCB |
//! | 0x1E8 | 3 | CURRENT build, minor, major |
//! | 0x1EB | 1 | reserved |
//! | 0x1EC | 3 | COMMITTED build, minor, major |
//! | 0x1EF | 1 | reserved |
//! | 0x1F0 | 8 | LAUNCH_TCB |
//! | 0x1F8 | 8 | LAUNCH_MIT_VECTOR (v5) |
//! | 0x200 | 8 | CURRENT_MIT_VECTOR (v5) |
//! | 0x208 | 152 | reserved |
//! | 0x2A0 | 72 | SIGNATURE R |
//! | 0x2E8 | 72 | SIGNATURE S |
//! | 0x330 | 368 | reserved |

use std::fmt;

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED, ParsedPublicKey};

use crate::Product;
use crate::error::Error;
use crate::tcb::{TcbVersion, reserved_byte_indices};

/// Length of a report in bytes.
pub const REPORT_LEN: usize = 0x4A0;
const _: () = assert!(REPORT_LEN == 1184);
/// Length of the signed part (`0x000..0x2A0`).
pub const SIGNED_LEN: usize = 0x2A0;
/// The only defined SIGNATURE_ALGO: ECDSA P-384 with SHA-384.
pub const SIGNATURE_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Supported report versions.
const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 2..=5;

/// A field or reserved range of the report layout (version 5; AMD SEV-SNP ABI,
/// `ATTESTATION_REPORT`).
///
/// The one definition of the layout: the parser's checks, the simulated platform (which writes
/// reports) and the binaries read offsets and sizes from here. [`Field::ALL`] lists every field in
/// order, covering all 1184 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// VERSION.
    Version,
    /// GUEST_SVN.
    GuestSvn,
    /// POLICY ([`GuestPolicy`]).
    Policy,
    /// FAMILY_ID.
    FamilyId,
    /// IMAGE_ID.
    ImageId,
    /// VMPL.
    Vmpl,
    /// SIGNATURE_ALGO.
    SignatureAlgo,
    /// CURRENT_TCB.
    CurrentTcb,
    /// PLATFORM_INFO ([`PlatformInfo`]).
    PlatformInfo,
    /// KEY_INFO ([`KeyInfo`]).
    KeyInfo,
    /// Reserved after KEY_INFO.
    ReservedAfterKeyInfo,
    /// REPORT_DATA.
    ReportData,
    /// MEASUREMENT.
    Measurement,
    /// HOST_DATA.
    HostData,
    /// ID_KEY_DIGEST.
    IdKeyDigest,
    /// AUTHOR_KEY_DIGEST.
    AuthorKeyDigest,
    /// REPORT_ID.
    ReportId,
    /// REPORT_ID_MA.
    ReportIdMa,
    /// REPORTED_TCB.
    ReportedTcb,
    /// CPUID_FAM_ID (version 3+).
    CpuidFamId,
    /// CPUID_MOD_ID (version 3+).
    CpuidModId,
    /// CPUID_STEP (version 3+).
    CpuidStep,
    /// Reserved after the CPUID bytes.
    ReservedAfterCpuid,
    /// CHIP_ID (Turin: 8 bytes used, rest zero).
    ChipId,
    /// COMMITTED_TCB.
    CommittedTcb,
    /// CURRENT_BUILD.
    CurrentBuild,
    /// CURRENT_MINOR.
    CurrentMinor,
    /// CURRENT_MAJOR.
    CurrentMajor,
    /// Reserved after CURRENT_MAJOR.
    ReservedAfterCurrent,
    /// COMMITTED_BUILD.
    CommittedBuild,
    /// COMMITTED_MINOR.
    CommittedMinor,
    /// COMMITTED_MAJOR.
    CommittedMajor,
    /// Reserved after COMMITTED_MAJOR.
    ReservedAfterCommitted,
    /// LAUNCH_TCB.
    LaunchTcb,
    /// LAUNCH_MIT_VECTOR (version 5).
    LaunchMitVector,
    /// CURRENT_MIT_VECTOR (version 5).
    CurrentMitVector,
    /// Reserved after CURRENT_MIT_VECTOR, to the end of the signed part.
    ReservedAfterMitVector,
    /// SIGNATURE R (72-byte little-endian integer).
    SignatureR,
    /// SIGNATURE S (72-byte little-endian integer).
    SignatureS,
    /// Reserved after the signature, to the end.
    ReservedTail,
}

impl Field {
    /// Every field and reserved range of the version-5 layout, in order, covering all 1184
    /// bytes. (The CPUID, mitigation-vector and their neighbouring reserved ranges are reserved
    /// in older versions.)
    pub const ALL: [Self; 40] = [
        Self::Version,
        Self::GuestSvn,
        Self::Policy,
        Self::FamilyId,
        Self::ImageId,
        Self::Vmpl,
        Self::SignatureAlgo,
        Self::CurrentTcb,
        Self::PlatformInfo,
        Self::KeyInfo,
        Self::ReservedAfterKeyInfo,
        Self::ReportData,
        Self::Measurement,
        Self::HostData,
        Self::IdKeyDigest,
        Self::AuthorKeyDigest,
        Self::ReportId,
        Self::ReportIdMa,
        Self::ReportedTcb,
        Self::CpuidFamId,
        Self::CpuidModId,
        Self::CpuidStep,
        Self::ReservedAfterCpuid,
        Self::ChipId,
        Self::CommittedTcb,
        Self::CurrentBuild,
        Self::CurrentMinor,
        Self::CurrentMajor,
        Self::ReservedAfterCurrent,
        Self::CommittedBuild,
        Self::CommittedMinor,
        Self::CommittedMajor,
        Self::ReservedAfterCommitted,
        Self::LaunchTcb,
        Self::LaunchMitVector,
        Self::CurrentMitVector,
        Self::ReservedAfterMitVector,
        Self::SignatureR,
        Self::SignatureS,
        Self::ReservedTail,
    ];

    /// `(offset, size, name)`: the table row.
    const fn spec(self) -> (usize, usize, &'static str) {
        match self {
            Self::Version => (0x000, 4, "VERSION"),
            Self::GuestSvn => (0x004, 4, "GUEST_SVN"),
            Self::Policy => (0x008, 8, "POLICY"),
            Self::FamilyId => (0x010, 16, "FAMILY_ID"),
            Self::ImageId => (0x020, 16, "IMAGE_ID"),
            Self::Vmpl => (0x030, 4, "VMPL"),
            Self::SignatureAlgo => (0x034, 4, "SIGNATURE_ALGO"),
            Self::CurrentTcb => (0x038, 8, "CURRENT_TCB"),
            Self::PlatformInfo => (0x040, 8, "PLATFORM_INFO"),
            Self::KeyInfo => (0x048, 4, "KEY_INFO"),
            Self::ReservedAfterKeyInfo => (0x04C, 4, "reserved"),
            Self::ReportData => (0x050, 64, "REPORT_DATA"),
            Self::Measurement => (0x090, 48, "MEASUREMENT"),
            Self::HostData => (0x0C0, 32, "HOST_DATA"),
            Self::IdKeyDigest => (0x0E0, 48, "ID_KEY_DIGEST"),
            Self::AuthorKeyDigest => (0x110, 48, "AUTHOR_KEY_DIGEST"),
            Self::ReportId => (0x140, 32, "REPORT_ID"),
            Self::ReportIdMa => (0x160, 32, "REPORT_ID_MA"),
            Self::ReportedTcb => (0x180, 8, "REPORTED_TCB"),
            Self::CpuidFamId => (0x188, 1, "CPUID_FAM_ID"),
            Self::CpuidModId => (0x189, 1, "CPUID_MOD_ID"),
            Self::CpuidStep => (0x18A, 1, "CPUID_STEP"),
            Self::ReservedAfterCpuid => (0x18B, 21, "reserved"),
            Self::ChipId => (0x1A0, 64, "CHIP_ID"),
            Self::CommittedTcb => (0x1E0, 8, "COMMITTED_TCB"),
            Self::CurrentBuild => (0x1E8, 1, "CURRENT_BUILD"),
            Self::CurrentMinor => (0x1E9, 1, "CURRENT_MINOR"),
            Self::CurrentMajor => (0x1EA, 1, "CURRENT_MAJOR"),
            Self::ReservedAfterCurrent => (0x1EB, 1, "reserved"),
            Self::CommittedBuild => (0x1EC, 1, "COMMITTED_BUILD"),
            Self::CommittedMinor => (0x1ED, 1, "COMMITTED_MINOR"),
            Self::CommittedMajor => (0x1EE, 1, "COMMITTED_MAJOR"),
            Self::ReservedAfterCommitted => (0x1EF, 1, "reserved"),
            Self::LaunchTcb => (0x1F0, 8, "LAUNCH_TCB"),
            Self::LaunchMitVector => (0x1F8, 8, "LAUNCH_MIT_VECTOR"),
            Self::CurrentMitVector => (0x200, 8, "CURRENT_MIT_VECTOR"),
            Self::ReservedAfterMitVector => (0x208, 152, "reserved"),
            Self::SignatureR => (0x2A0, 72, "SIGNATURE_R"),
            Self::SignatureS => (0x2E8, 72, "SIGNATURE_S"),
            Self::ReservedTail => (0x330, 368, "reserved"),
        }
    }

    /// Offset of the first byte.
    #[must_use]
    pub const fn offset(self) -> usize {
        self.spec().0
    }

    /// Size in bytes.
    #[must_use]
    pub const fn size(self) -> usize {
        self.spec().1
    }

    /// The byte range `offset..offset + size`.
    #[must_use]
    pub const fn range(self) -> std::ops::Range<usize> {
        self.offset()..self.offset() + self.size()
    }

    /// Field name as in the AMD ABI specification (`"reserved"` for the reserved ranges).
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.spec().2
    }

    /// True if the field is covered by the signature.
    #[must_use]
    pub const fn is_signed(self) -> bool {
        self.offset() + self.size() <= SIGNED_LEN
    }
}

// The table is contiguous, ends at REPORT_LEN, and the signature starts where the signed part
// ends: checked at compile time.
const _: () = {
    let mut next = 0;
    let mut i = 0;
    while i < Field::ALL.len() {
        assert!(Field::ALL[i].offset() == next);
        next += Field::ALL[i].size();
        i += 1;
    }
    assert!(next == REPORT_LEN);
    assert!(Field::SignatureR.offset() == SIGNED_LEN);
};

/// Which key signed the report, from KEY_INFO bits 4:2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningKey {
    /// 0: the chip- and TCB-specific VCEK.
    Vcek,
    /// 1: the cloud provider's VLEK.
    Vlek,
    /// 7: the report is not signed.
    None,
}

impl fmt::Display for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vcek => "VCEK",
            Self::Vlek => "VLEK",
            Self::None => "no key",
        })
    }
}

/// The guest policy (POLICY, 0x008).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// Bits that may be set: 0–25 (bit 17 must be set).
    pub const DEFINED_BITS: u64 = (1 << 26) - 1;
    /// Bit 17 is reserved and must be one.
    pub const RESERVED_MUST_BE_ONE: u64 = 1 << 17;

    const fn bit(self, n: u32) -> bool {
        self.0 & (1 << n) != 0
    }
    /// The raw value.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Minimum firmware ABI minor version required by the guest (bits 7:0).
    #[must_use]
    pub const fn abi_minor(self) -> u8 {
        self.0.to_le_bytes()[0]
    }
    /// Minimum firmware ABI major version required by the guest (bits 15:8).
    #[must_use]
    pub const fn abi_major(self) -> u8 {
        self.0.to_le_bytes()[1]
    }
    /// Bit 16: simultaneous multithreading allowed on the host.
    #[must_use]
    pub const fn smt_allowed(self) -> bool {
        self.bit(16)
    }
    /// Bit 18: association with a migration agent allowed.
    #[must_use]
    pub const fn migrate_ma_allowed(self) -> bool {
        self.bit(18)
    }
    /// Bit 19: debugging allowed (the host can read and write guest memory).
    #[must_use]
    pub const fn debug_allowed(self) -> bool {
        self.bit(19)
    }
    /// Bit 20: the guest may run on one socket only.
    #[must_use]
    pub const fn single_socket_required(self) -> bool {
        self.bit(20)
    }
    /// Bit 21: CXL may be populated with guest memory.
    #[must_use]
    pub const fn cxl_allowed(self) -> bool {
        self.bit(21)
    }
    /// Bit 22: AES-256-XTS memory encryption required.
    #[must_use]
    pub const fn mem_aes_256_xts_required(self) -> bool {
        self.bit(22)
    }
    /// Bit 23: running average power limit (RAPL) must be disabled.
    #[must_use]
    pub const fn rapl_disable_required(self) -> bool {
        self.bit(23)
    }
    /// Bit 24: ciphertext hiding must be enabled.
    #[must_use]
    pub const fn ciphertext_hiding_required(self) -> bool {
        self.bit(24)
    }
    /// Bit 25 (version 5): guest page swapping disabled.
    #[must_use]
    pub const fn page_swap_disabled(self) -> bool {
        self.bit(25)
    }
}

/// PLATFORM_INFO (0x040).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlatformInfo(pub u64);

impl PlatformInfo {
    const fn bit(self, n: u32) -> bool {
        self.0 & (1 << n) != 0
    }
    /// Bits defined for a report version: 0–4 in v2, plus 5 (ALIAS_CHECK_COMPLETE) in v3+, plus
    /// 7 (TIO_EN) in v5.
    #[must_use]
    pub const fn defined_bits(version: u32) -> u64 {
        match version {
            0..=2 => 0x1F,
            3 | 4 => 0x3F,
            _ => 0xBF,
        }
    }
    /// The raw value.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Bit 0: SMT is enabled on the host.
    #[must_use]
    pub const fn smt_enabled(self) -> bool {
        self.bit(0)
    }
    /// Bit 1: transparent SME is enabled.
    #[must_use]
    pub const fn tsme_enabled(self) -> bool {
        self.bit(1)
    }
    /// Bit 2: the platform uses error-correcting memory.
    #[must_use]
    pub const fn ecc_enabled(self) -> bool {
        self.bit(2)
    }
    /// Bit 3: RAPL is disabled.
    #[must_use]
    pub const fn rapl_disabled(self) -> bool {
        self.bit(3)
    }
    /// Bit 4: ciphertext hiding is enabled.
    #[must_use]
    pub const fn ciphertext_hiding_enabled(self) -> bool {
        self.bit(4)
    }
    /// Bit 5 (v3+): memory alias check completed.
    #[must_use]
    pub const fn alias_check_complete(self) -> bool {
        self.bit(5)
    }
    /// Bit 7 (v5): SEV-TIO is enabled.
    #[must_use]
    pub const fn tio_enabled(self) -> bool {
        self.bit(7)
    }
}

/// KEY_INFO / signer info (0x048).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyInfo(pub u32);

impl KeyInfo {
    /// Bits that may be set (0–4).
    pub const DEFINED_BITS: u32 = 0x1F;

    /// The raw value.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Bit 0: the digest of the author key is present in AUTHOR_KEY_DIGEST.
    #[must_use]
    pub const fn author_key_en(self) -> bool {
        self.0 & 1 != 0
    }
    /// Bit 1: MASK_CHIP_KEY (the report is not signed with a chip key).
    #[must_use]
    pub const fn mask_chip_key(self) -> bool {
        self.0 & 2 != 0
    }
    /// Bits 4:2, the raw SIGNING_KEY value.
    #[must_use]
    pub const fn signing_key_raw(self) -> u8 {
        ((self.0 >> 2) & 7) as u8
    }
    /// The signing key, or an error for the reserved values 2–6.
    ///
    /// # Errors
    /// [`Error::ReservedSigningKey`].
    pub const fn signing_key(self) -> Result<SigningKey, Error> {
        match self.signing_key_raw() {
            0 => Ok(SigningKey::Vcek),
            1 => Ok(SigningKey::Vlek),
            7 => Ok(SigningKey::None),
            found => Err(Error::ReservedSigningKey { found }),
        }
    }
}

/// A firmware version (build, minor, major as stored in the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FirmwareVersion {
    /// API major version.
    pub major: u8,
    /// API minor version.
    pub minor: u8,
    /// Build number.
    pub build: u8,
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} build {}", self.major, self.minor, self.build)
    }
}

/// CPUID family, model and stepping of the chip (report version 3+).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpuid {
    /// Extended family + base family (0x19 Zen 3/4, 0x1A Zen 5).
    pub family: u8,
    /// (Extended model << 4) + base model.
    pub model: u8,
    /// Stepping.
    pub stepping: u8,
}

impl Cpuid {
    /// The product generation of this CPU, if it is one this verifier knows.
    #[must_use]
    pub const fn product(self) -> Option<Product> {
        match (self.family, self.model) {
            (0x19, 0x00..=0x0F) => Some(Product::Milan),
            (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(Product::Genoa),
            (0x1A, 0x00..=0x11) => Some(Product::Turin),
            _ => None,
        }
    }
}

/// Borrowed views of every field, computed once from a 1184-byte slice.
#[derive(Clone, Copy, Debug)]
struct Fields<'a> {
    all: &'a [u8; REPORT_LEN],
    signed: &'a [u8; SIGNED_LEN],
    version: &'a [u8; 4],
    guest_svn: &'a [u8; 4],
    policy: &'a [u8; 8],
    family_id: &'a [u8; 16],
    image_id: &'a [u8; 16],
    vmpl: &'a [u8; 4],
    signature_algo: &'a [u8; 4],
    current_tcb: &'a [u8; 8],
    platform_info: &'a [u8; 8],
    key_info: &'a [u8; 4],
    report_data: &'a [u8; 64],
    measurement: &'a [u8; 48],
    host_data: &'a [u8; 32],
    id_key_digest: &'a [u8; 48],
    author_key_digest: &'a [u8; 48],
    report_id: &'a [u8; 32],
    report_id_ma: &'a [u8; 32],
    reported_tcb: &'a [u8; 8],
    cpuid: &'a [u8; 3],
    chip_id: &'a [u8; 64],
    committed_tcb: &'a [u8; 8],
    current_version: &'a [u8; 3],
    committed_version: &'a [u8; 3],
    launch_tcb: &'a [u8; 8],
    launch_mit_vector: &'a [u8; 8],
    current_mit_vector: &'a [u8; 8],
    signature_r: &'a [u8; 72],
    signature_s: &'a [u8; 72],
}

/// Splits fixed-size chunks off the front of a slice.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self) -> Result<&'a [u8; N], Error> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(Error::ReportLength { found: 0 })?;
        self.rest = tail;
        Ok(head)
    }
}

impl<'a> Fields<'a> {
    fn split(bytes: &'a [u8]) -> Result<Self, Error> {
        let all: &'a [u8; REPORT_LEN] = bytes
            .try_into()
            .map_err(|_| Error::ReportLength { found: bytes.len() })?;
        let mut c = Cursor { rest: all };
        let signed = Cursor { rest: all }.take::<SIGNED_LEN>()?;
        let version = c.take()?;
        let guest_svn = c.take()?;
        let policy = c.take()?;
        let family_id = c.take()?;
        let image_id = c.take()?;
        let vmpl = c.take()?;
        let signature_algo = c.take()?;
        let current_tcb = c.take()?;
        let platform_info = c.take()?;
        let key_info = c.take()?;
        c.take::<4>()?;
        let report_data = c.take()?;
        let measurement = c.take()?;
        let host_data = c.take()?;
        let id_key_digest = c.take()?;
        let author_key_digest = c.take()?;
        let report_id = c.take()?;
        let report_id_ma = c.take()?;
        let reported_tcb = c.take()?;
        let cpuid = c.take()?;
        c.take::<21>()?;
        let chip_id = c.take()?;
        let committed_tcb = c.take()?;
        let current_version = c.take()?;
        c.take::<1>()?;
        let committed_version = c.take()?;
        c.take::<1>()?;
        let launch_tcb = c.take()?;
        let launch_mit_vector = c.take()?;
        let current_mit_vector = c.take()?;
        c.take::<152>()?;
        let signature_r = c.take()?;
        let signature_s = c.take()?;
        Ok(Self {
            all,
            signed,
            version,
            guest_svn,
            policy,
            family_id,
            image_id,
            vmpl,
            signature_algo,
            current_tcb,
            platform_info,
            key_info,
            report_data,
            measurement,
            host_data,
            id_key_digest,
            author_key_digest,
            report_id,
            report_id_ma,
            reported_tcb,
            cpuid,
            chip_id,
            committed_tcb,
            current_version,
            committed_version,
            launch_tcb,
            launch_mit_vector,
            current_mit_vector,
            signature_r,
            signature_s,
        })
    }

    fn version(&self) -> u32 {
        u32::from_le_bytes(*self.version)
    }

    fn key_info(&self) -> KeyInfo {
        KeyInfo(u32::from_le_bytes(*self.key_info))
    }

    fn cpuid(&self) -> Option<Cpuid> {
        let [family, model, stepping] = *self.cpuid;
        (self.version() >= 3).then_some(Cpuid {
            family,
            model,
            stepping,
        })
    }

    fn framing(&self) -> Result<(), Error> {
        let version = self.version();
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Error::UnsupportedReportVersion { found: version });
        }
        let algo = u32::from_le_bytes(*self.signature_algo);
        if algo != SIGNATURE_ALGO_ECDSA_P384_SHA384 {
            return Err(Error::UnsupportedSignatureAlgorithm { found: algo });
        }
        Ok(())
    }
}

/// A report whose framing is valid but whose signature has not been checked.
///
/// Every accessor returns an **untrusted hint**: a value the host could have forged. Use them
/// only to locate the signing key and its certificates, then call [`UnverifiedReport::verify`].
#[derive(Clone, Copy, Debug)]
pub struct UnverifiedReport<'a> {
    fields: Fields<'a>,
}

impl<'a> UnverifiedReport<'a> {
    /// Borrows a report: exactly [`REPORT_LEN`] bytes, VERSION in 2..=5, SIGNATURE_ALGO 1.
    ///
    /// # Errors
    /// [`Error::ReportLength`], [`Error::UnsupportedReportVersion`],
    /// [`Error::UnsupportedSignatureAlgorithm`].
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        let fields = Fields::split(bytes)?;
        fields.framing()?;
        Ok(Self { fields })
    }

    /// Untrusted hint: the report version (2..=5).
    #[must_use]
    pub fn version(&self) -> u32 {
        self.fields.version()
    }

    /// Untrusted hint: CHIP_ID (all zero if masked; on Turin only the first 8 bytes are used).
    #[must_use]
    pub fn chip_id(&self) -> &'a [u8; 64] {
        self.fields.chip_id
    }

    /// Untrusted hint: the raw REPORTED_TCB bytes (decode with [`TcbVersion::from_bytes`] once the
    /// product is known).
    #[must_use]
    pub fn reported_tcb_raw(&self) -> [u8; 8] {
        *self.fields.reported_tcb
    }

    /// Untrusted hint: which key claims to have signed the report (KEY_INFO bits 4:2).
    ///
    /// # Errors
    /// [`Error::ReservedSigningKey`] for the reserved values 2–6.
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        self.fields.key_info().signing_key()
    }

    /// Untrusted hint: the product generation from the CPUID bytes (version 3+). `Ok(None)` for
    /// version 2, which carries no CPUID.
    ///
    /// # Errors
    /// [`Error::UnknownCpuid`] for a CPU this verifier does not know.
    pub fn cpuid_product(&self) -> Result<Option<Product>, Error> {
        match self.fields.cpuid() {
            None => Ok(None),
            Some(cpuid) => cpuid.product().map(Some).ok_or(Error::UnknownCpuid {
                family: cpuid.family,
                model: cpuid.model,
                stepping: cpuid.stepping,
            }),
        }
    }

    /// The product whose layout decodes this report: the CPUID product (v3+), which must equal
    /// `configured`, or `configured` for version 2.
    ///
    /// # Errors
    /// [`Error::UnknownCpuid`], [`Error::ProductMismatch`].
    pub fn product(&self, configured: Product) -> Result<Product, Error> {
        match self.cpuid_product()? {
            None => Ok(configured),
            Some(found) if found == configured => Ok(found),
            Some(found) => Err(Error::ProductMismatch {
                expected: configured,
                found,
            }),
        }
    }

    /// Untrusted hint: REPORTED_TCB decoded for `product`.
    #[must_use]
    pub fn reported_tcb(&self, product: Product) -> TcbVersion {
        TcbVersion::from_bytes(self.fields.reported_tcb, product)
    }

    /// Verifies the signature over bytes `0x000..0x2A0` with `key`, **then** checks the structure
    /// (reserved bytes and bits, signer kind, product) and returns the verified report.
    ///
    /// The product used to decode TCB values is `key.product()` (the product of the certificate
    /// chain); a v3+ report must name the same product in its CPUID bytes.
    ///
    /// # Errors
    /// [`Error::SignatureComponentTooLarge`], [`Error::ReportSignatureInvalid`], then any error of
    /// [`check_structure`], [`Error::ProductMismatch`] or [`Error::SignerKindMismatch`].
    pub fn verify(self, key: &LeafKey) -> Result<Report<'a>, Error> {
        let fields = self.fields;
        let signature = fixed_signature(fields.signature_r, fields.signature_s)?;
        key.key.verify_sig(fields.signed, &signature).map_err(|_| {
            Error::ReportSignatureInvalid {
                leaf: key.kind,
                chip_id: fields.chip_id.to_vec(),
            }
        })?;
        let product = self.product(key.product)?;
        check_structure(fields.all, product)?;
        let signing_key = self.signing_key()?;
        let expected = match key.kind {
            crate::LeafKind::Vcek => SigningKey::Vcek,
            crate::LeafKind::Vlek => SigningKey::Vlek,
        };
        if signing_key != expected {
            return Err(Error::SignerKindMismatch {
                report: signing_key,
                leaf: key.kind,
            });
        }
        Ok(Report {
            fields,
            product,
            signing_key,
        })
    }
}

/// Converts the 72-byte little-endian R and S into the 96-byte big-endian fixed form.
fn fixed_signature(r: &[u8; 72], s: &[u8; 72]) -> Result<[u8; 96], Error> {
    let mut out = [0u8; 96];
    for (name, offset, component, target) in [
        ("R", Field::SignatureR.offset(), r, 0..48usize),
        ("S", Field::SignatureS.offset(), s, 48..96usize),
    ] {
        let (low, high) = component.split_at(48);
        if high.iter().any(|&b| b != 0) {
            return Err(Error::SignatureComponentTooLarge {
                component: name,
                offset: offset + 48,
            });
        }
        if let Some(dst) = out.get_mut(target) {
            for (d, s) in dst.iter_mut().zip(low.iter().rev()) {
                *d = *s;
            }
        }
    }
    Ok(out)
}

/// The public key of a VCEK or VLEK, ready to verify report signatures.
///
/// Obtained from [`crate::chain::verify_chain`] (chain verified) or, for diagnostics only, from
/// [`LeafKey::from_untrusted_certificate`].
#[derive(Clone)]
pub struct LeafKey {
    pub(crate) kind: crate::LeafKind,
    pub(crate) product: Product,
    pub(crate) key: ParsedPublicKey,
}

impl fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafKey")
            .field("kind", &self.kind)
            .field("product", &self.product)
            .finish_non_exhaustive()
    }
}

impl LeafKey {
    /// Builds a key from an uncompressed SEC1 P-384 point (97 bytes, `04 || X || Y`).
    pub(crate) fn from_point(
        kind: crate::LeafKind,
        product: Product,
        point: &[u8],
    ) -> Result<Self, Error> {
        let key = ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point).map_err(|_| {
            Error::LeafKeyNotP384 {
                role: kind.role(),
                found: "invalid P-384 point".into(),
            }
        })?;
        Ok(Self { kind, product, key })
    }

    /// The public key of a VCEK/VLEK certificate **without verifying its chain**: a report that
    /// verifies with it proves nothing about AMD. For diagnostics and tests only.
    ///
    /// # Errors
    /// [`Error::CertificateParse`], [`Error::LeafKeyNotP384`].
    pub fn from_untrusted_certificate(
        der: &[u8],
        kind: crate::LeafKind,
        product: Product,
    ) -> Result<Self, Error> {
        let cert = crate::chain::ParsedCert::parse(der, kind.role())?;
        let point = crate::chain::leaf_point(&cert)?;
        Self::from_point(kind, product, point)
    }

    /// VCEK or VLEK.
    #[must_use]
    pub fn kind(&self) -> crate::LeafKind {
        self.kind
    }

    /// The product of the certificate chain.
    #[must_use]
    pub fn product(&self) -> Product {
        self.product
    }
}

/// Checks the structure of a report for `product` without its signature: framing, every
/// reserved byte range and reserved bit of the version's layout, POLICY bit 17, KEY_INFO,
/// VMPL ≤ 3, the reserved bytes of the four TCB fields, the upper 24 bytes of R and S, and on
/// Turin the unused CHIP_ID bytes 8..64.
///
/// [`UnverifiedReport::verify`] runs this after the signature verified; it is public so the
/// checks can be tested (and fuzzed) on crafted bytes.
///
/// # Errors
/// [`Error::ReportLength`], [`Error::UnsupportedReportVersion`],
/// [`Error::UnsupportedSignatureAlgorithm`], [`Error::ReservedBytesNotZero`],
/// [`Error::ReservedBitsSet`], [`Error::PolicyBit17Clear`], [`Error::ReservedSigningKey`],
/// [`Error::ReportNotSigned`], [`Error::InvalidVmpl`], [`Error::SignatureComponentTooLarge`].
pub fn check_structure(bytes: &[u8], product: Product) -> Result<(), Error> {
    let fields = Fields::split(bytes)?;
    fields.framing()?;
    let version = fields.version();
    let all = fields.all;

    let range = |field: Field| (field.offset(), field.size());
    let mut reserved: Vec<(usize, usize)> = vec![
        range(Field::ReservedAfterKeyInfo),
        range(Field::ReservedAfterCurrent),
        range(Field::ReservedAfterCommitted),
        range(Field::ReservedTail),
    ];
    // Before version 3 the CPUID bytes are reserved, before version 5 the mitigation vectors.
    reserved.push(if version >= 3 {
        range(Field::ReservedAfterCpuid)
    } else {
        (
            Field::CpuidFamId.offset(),
            Field::ChipId.offset() - Field::CpuidFamId.offset(),
        )
    });
    reserved.push(if version >= 5 {
        range(Field::ReservedAfterMitVector)
    } else {
        (
            Field::LaunchMitVector.offset(),
            SIGNED_LEN - Field::LaunchMitVector.offset(),
        )
    });
    // Turin's CHIP_ID is 8 bytes.
    if product == Product::Turin {
        reserved.push((Field::ChipId.offset() + 8, 56));
    }
    for (offset, size) in reserved {
        check_zero(all, offset, size, "reserved")?;
    }
    for (name, offset) in [
        ("CURRENT_TCB", Field::CurrentTcb.offset()),
        ("REPORTED_TCB", Field::ReportedTcb.offset()),
        ("COMMITTED_TCB", Field::CommittedTcb.offset()),
        ("LAUNCH_TCB", Field::LaunchTcb.offset()),
    ] {
        for &index in reserved_byte_indices(product) {
            check_zero(all, offset + index, 1, name)?;
        }
    }

    let policy = GuestPolicy(u64::from_le_bytes(*fields.policy));
    check_bits(
        "POLICY",
        Field::Policy.offset(),
        policy.0,
        GuestPolicy::DEFINED_BITS,
    )?;
    if policy.0 & GuestPolicy::RESERVED_MUST_BE_ONE == 0 {
        return Err(Error::PolicyBit17Clear);
    }
    let platform = u64::from_le_bytes(*fields.platform_info);
    check_bits(
        "PLATFORM_INFO",
        Field::PlatformInfo.offset(),
        platform,
        PlatformInfo::defined_bits(version),
    )?;
    let key_info = fields.key_info();
    check_bits(
        "KEY_INFO",
        Field::KeyInfo.offset(),
        u64::from(key_info.0),
        u64::from(KeyInfo::DEFINED_BITS),
    )?;
    if key_info.signing_key()? == SigningKey::None {
        return Err(Error::ReportNotSigned {
            reason: "KEY_INFO.SIGNING_KEY is 7 (none)",
        });
    }
    if key_info.mask_chip_key() {
        return Err(Error::ReportNotSigned {
            reason: "KEY_INFO.MASK_CHIP_KEY is set",
        });
    }
    let vmpl = u32::from_le_bytes(*fields.vmpl);
    if vmpl > 3 {
        return Err(Error::InvalidVmpl { found: vmpl });
    }
    fixed_signature(fields.signature_r, fields.signature_s)?;
    Ok(())
}

fn check_zero(all: &[u8], offset: usize, size: usize, field: &'static str) -> Result<(), Error> {
    let range = all.get(offset..offset + size).unwrap_or_default();
    match range.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(index) => Err(Error::ReservedBytesNotZero {
            field,
            start: offset,
            end: offset + size,
            offset: offset + index,
            found: range.get(index).copied().unwrap_or_default(),
        }),
    }
}

fn check_bits(field: &'static str, offset: usize, value: u64, defined: u64) -> Result<(), Error> {
    let extra = value & !defined;
    if extra == 0 {
        Ok(())
    } else {
        Err(Error::ReservedBitsSet {
            field,
            offset,
            found: extra,
            allowed: defined,
        })
    }
}

/// A report whose signature verified and whose structure is valid. Zero-copy: every accessor
/// reads from the borrowed bytes.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    fields: Fields<'a>,
    product: Product,
    signing_key: SigningKey,
}

impl<'a> Report<'a> {
    /// Rebuilds a report from bytes that passed [`UnverifiedReport::verify`] earlier (kept in a
    /// private field of an appraised peer), without checking the signature again.
    pub(crate) fn from_verified_parts(
        bytes: &'a [u8],
        product: Product,
        signing_key: SigningKey,
    ) -> Result<Self, Error> {
        let fields = Fields::split(bytes)?;
        Ok(Self {
            fields,
            product,
            signing_key,
        })
    }

    /// All 1184 bytes of the report.
    #[must_use]
    pub fn as_bytes(&self) -> &'a [u8; REPORT_LEN] {
        self.fields.all
    }
    /// The product generation (CPUID for v3+, the chain's product for v2).
    #[must_use]
    pub fn product(&self) -> Product {
        self.product
    }
    /// VERSION (0x000): 2..=5.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.fields.version()
    }
    /// GUEST_SVN (0x004), from the ID block.
    #[must_use]
    pub fn guest_svn(&self) -> u32 {
        u32::from_le_bytes(*self.fields.guest_svn)
    }
    /// POLICY (0x008).
    #[must_use]
    pub fn policy(&self) -> GuestPolicy {
        GuestPolicy(u64::from_le_bytes(*self.fields.policy))
    }
    /// FAMILY_ID (0x010), from the ID block.
    #[must_use]
    pub fn family_id(&self) -> &'a [u8; 16] {
        self.fields.family_id
    }
    /// IMAGE_ID (0x020), from the ID block.
    #[must_use]
    pub fn image_id(&self) -> &'a [u8; 16] {
        self.fields.image_id
    }
    /// VMPL (0x030) of the requester, 0..=3.
    #[must_use]
    pub fn vmpl(&self) -> u32 {
        u32::from_le_bytes(*self.fields.vmpl)
    }
    /// SIGNATURE_ALGO (0x034): always 1 (ECDSA P-384 with SHA-384).
    #[must_use]
    pub fn signature_algo(&self) -> u32 {
        u32::from_le_bytes(*self.fields.signature_algo)
    }
    /// CURRENT_TCB (0x038).
    #[must_use]
    pub fn current_tcb(&self) -> TcbVersion {
        TcbVersion::from_bytes(self.fields.current_tcb, self.product)
    }
    /// PLATFORM_INFO (0x040).
    #[must_use]
    pub fn platform_info(&self) -> PlatformInfo {
        PlatformInfo(u64::from_le_bytes(*self.fields.platform_info))
    }
    /// KEY_INFO (0x048).
    #[must_use]
    pub fn key_info(&self) -> KeyInfo {
        self.fields.key_info()
    }
    /// KEY_INFO.AUTHOR_KEY_EN.
    #[must_use]
    pub fn author_key_en(&self) -> bool {
        self.key_info().author_key_en()
    }
    /// KEY_INFO.MASK_CHIP_KEY (always false in a verified report).
    #[must_use]
    pub fn mask_chip_key(&self) -> bool {
        self.key_info().mask_chip_key()
    }
    /// KEY_INFO.SIGNING_KEY: VCEK or VLEK (matches the verified leaf).
    #[must_use]
    pub fn signing_key(&self) -> SigningKey {
        self.signing_key
    }
    /// REPORT_DATA (0x050): guest-supplied.
    #[must_use]
    pub fn report_data(&self) -> &'a [u8; 64] {
        self.fields.report_data
    }
    /// MEASUREMENT (0x090): the launch digest.
    #[must_use]
    pub fn measurement(&self) -> &'a [u8; 48] {
        self.fields.measurement
    }
    /// HOST_DATA (0x0C0): supplied by the hypervisor at launch.
    #[must_use]
    pub fn host_data(&self) -> &'a [u8; 32] {
        self.fields.host_data
    }
    /// ID_KEY_DIGEST (0x0E0).
    #[must_use]
    pub fn id_key_digest(&self) -> &'a [u8; 48] {
        self.fields.id_key_digest
    }
    /// AUTHOR_KEY_DIGEST (0x110).
    #[must_use]
    pub fn author_key_digest(&self) -> &'a [u8; 48] {
        self.fields.author_key_digest
    }
    /// REPORT_ID (0x140).
    #[must_use]
    pub fn report_id(&self) -> &'a [u8; 32] {
        self.fields.report_id
    }
    /// REPORT_ID_MA (0x160): all 0xFF when there is no migration agent.
    #[must_use]
    pub fn report_id_ma(&self) -> &'a [u8; 32] {
        self.fields.report_id_ma
    }
    /// REPORTED_TCB (0x180): the TCB the signing key was derived for.
    #[must_use]
    pub fn reported_tcb(&self) -> TcbVersion {
        TcbVersion::from_bytes(self.fields.reported_tcb, self.product)
    }
    /// REPORTED_TCB as the 8 raw bytes.
    #[must_use]
    pub fn reported_tcb_raw(&self) -> [u8; 8] {
        *self.fields.reported_tcb
    }
    /// CPUID family/model/stepping (0x188, version 3+).
    #[must_use]
    pub fn cpuid(&self) -> Option<Cpuid> {
        self.fields.cpuid()
    }
    /// CPUID_FAM_ID (0x188, version 3+).
    #[must_use]
    pub fn cpuid_fam_id(&self) -> Option<u8> {
        self.cpuid().map(|c| c.family)
    }
    /// CPUID_MOD_ID (0x189, version 3+).
    #[must_use]
    pub fn cpuid_mod_id(&self) -> Option<u8> {
        self.cpuid().map(|c| c.model)
    }
    /// CPUID_STEP (0x18A, version 3+).
    #[must_use]
    pub fn cpuid_step(&self) -> Option<u8> {
        self.cpuid().map(|c| c.stepping)
    }
    /// CHIP_ID (0x1A0): all zero if masked; on Turin bytes 8..64 are zero.
    #[must_use]
    pub fn chip_id(&self) -> &'a [u8; 64] {
        self.fields.chip_id
    }
    /// COMMITTED_TCB (0x1E0).
    #[must_use]
    pub fn committed_tcb(&self) -> TcbVersion {
        TcbVersion::from_bytes(self.fields.committed_tcb, self.product)
    }
    /// CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR (0x1E8).
    #[must_use]
    pub fn current_version(&self) -> FirmwareVersion {
        let [build, minor, major] = *self.fields.current_version;
        FirmwareVersion {
            major,
            minor,
            build,
        }
    }
    /// CURRENT_BUILD (0x1E8).
    #[must_use]
    pub fn current_build(&self) -> u8 {
        self.current_version().build
    }
    /// CURRENT_MINOR (0x1E9).
    #[must_use]
    pub fn current_minor(&self) -> u8 {
        self.current_version().minor
    }
    /// CURRENT_MAJOR (0x1EA).
    #[must_use]
    pub fn current_major(&self) -> u8 {
        self.current_version().major
    }
    /// COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR (0x1EC).
    #[must_use]
    pub fn committed_version(&self) -> FirmwareVersion {
        let [build, minor, major] = *self.fields.committed_version;
        FirmwareVersion {
            major,
            minor,
            build,
        }
    }
    /// COMMITTED_BUILD (0x1EC).
    #[must_use]
    pub fn committed_build(&self) -> u8 {
        self.committed_version().build
    }
    /// COMMITTED_MINOR (0x1ED).
    #[must_use]
    pub fn committed_minor(&self) -> u8 {
        self.committed_version().minor
    }
    /// COMMITTED_MAJOR (0x1EE).
    #[must_use]
    pub fn committed_major(&self) -> u8 {
        self.committed_version().major
    }
    /// LAUNCH_TCB (0x1F0).
    #[must_use]
    pub fn launch_tcb(&self) -> TcbVersion {
        TcbVersion::from_bytes(self.fields.launch_tcb, self.product)
    }
    /// LAUNCH_MIT_VECTOR (0x1F8, version 5+).
    #[must_use]
    pub fn launch_mit_vector(&self) -> Option<u64> {
        (self.version() >= 5).then(|| u64::from_le_bytes(*self.fields.launch_mit_vector))
    }
    /// CURRENT_MIT_VECTOR (0x200, version 5+).
    #[must_use]
    pub fn current_mit_vector(&self) -> Option<u64> {
        (self.version() >= 5).then(|| u64::from_le_bytes(*self.fields.current_mit_vector))
    }
    /// SIGNATURE R (0x2A0), 72 bytes little-endian.
    #[must_use]
    pub fn signature_r(&self) -> &'a [u8; 72] {
        self.fields.signature_r
    }
    /// SIGNATURE S (0x2E8), 72 bytes little-endian.
    #[must_use]
    pub fn signature_s(&self) -> &'a [u8; 72] {
        self.fields.signature_s
    }
}
