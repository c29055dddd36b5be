//! A simulated SEV-SNP guest: the firmware's `ATTESTATION_REPORT`, signed by the VCEK.

use aws_lc_rs::rand::SystemRandom;

use super::SimError;
use super::platform::{SimulatedPlatform, check_tcb_layout, check_turin_chip_id};
use contrast_attest::{Product, TcbVersion};

/// The report layout: contrast-attest's, the verifier's (one definition).
use contrast_attest::report::{
    Field, REPORT_LEN as REPORT_SIZE, SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNED_LEN as SIGNED_REPORT_SIZE,
};

/// Width of R and S in the report (P-384 uses the low 48 bytes).
const SIGNATURE_COMPONENT_SIZE: usize = 72;
/// P-384 scalar size.
const P384_SCALAR_SIZE: usize = 48;

/// CPUID family, model and stepping as reported from version 3 on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpuid {
    /// Extended family + base family (0x19 Zen 3/4, 0x1A Zen 5).
    pub family: u8,
    /// (Extended model << 4) + base model.
    pub model: u8,
    /// Stepping.
    pub stepping: u8,
}

/// CPUID values of a representative part of `product` (Milan B0, Genoa B1, Turin), inside the
/// ranges verifiers use to identify the product.
#[must_use]
pub fn default_cpuid(product: Product) -> Cpuid {
    match product {
        Product::Milan => Cpuid {
            family: 0x19,
            model: 0x01,
            stepping: 0x00,
        },
        Product::Genoa => Cpuid {
            family: 0x19,
            model: 0x11,
            stepping: 0x01,
        },
        Product::Turin => Cpuid {
            family: 0x1A,
            model: 0x02,
            stepping: 0x01,
        },
    }
}

/// An SEV-SNP firmware version (CURRENT/COMMITTED build, minor, major).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FirmwareVersion {
    /// API major version.
    pub major: u8,
    /// API minor version.
    pub minor: u8,
    /// Build number.
    pub build: u8,
}

/// The configuration of a simulated guest, i.e. everything its attestation report says.
///
/// Fields are written as given, including policy and platform-info bits a real firmware would
/// refuse, so that verifier negative tests can produce such reports; [`SimulatedGuest::report`]
/// rejects only what cannot be laid out (see its errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedGuest {
    /// Product; must be the platform's.
    pub product: Product,
    /// VERSION: 2, 3, 4 or 5 (4 has the version-3 layout).
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// POLICY (guest policy bits; bit 17 must be 1 on real hardware).
    pub policy: u64,
    /// FAMILY_ID.
    pub family_id: [u8; 16],
    /// IMAGE_ID.
    pub image_id: [u8; 16],
    /// VMPL of the requester (0–3).
    pub vmpl: u32,
    /// PLATFORM_INFO.
    pub platform_info: u64,
    /// KEY_INFO bit 0 AUTHOR_KEY_EN.
    pub author_key_en: bool,
    /// MEASUREMENT (launch digest).
    pub measurement: [u8; 48],
    /// HOST_DATA.
    pub host_data: [u8; 32],
    /// ID_KEY_DIGEST.
    pub id_key_digest: [u8; 48],
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: [u8; 48],
    /// REPORT_ID.
    pub report_id: [u8; 32],
    /// REPORT_ID_MA (all 0xFF when there is no migration agent).
    pub report_id_ma: [u8; 32],
    /// CURRENT_TCB.
    pub current_tcb: TcbVersion,
    /// REPORTED_TCB: the TCB the VCEK is issued for.
    pub reported_tcb: TcbVersion,
    /// COMMITTED_TCB.
    pub committed_tcb: TcbVersion,
    /// LAUNCH_TCB.
    pub launch_tcb: TcbVersion,
    /// CPUID_FAM_ID / CPUID_MOD_ID / CPUID_STEP (version 3+; the bytes are reserved, hence zero,
    /// in version 2 and this field is ignored there).
    pub cpuid: Cpuid,
    /// The chip's ID (Turin: 8 significant bytes, then zeros). The VCEK is always issued for it.
    pub chip_id: [u8; 64],
    /// Write CHIP_ID as zeros (the host's MASK_CHIP_ID setting).
    pub mask_chip_id: bool,
    /// CURRENT_BUILD / CURRENT_MINOR / CURRENT_MAJOR.
    pub current_firmware: FirmwareVersion,
    /// COMMITTED_BUILD / COMMITTED_MINOR / COMMITTED_MAJOR.
    pub committed_firmware: FirmwareVersion,
    /// LAUNCH_MIT_VECTOR (version 5+; must be zero before).
    pub launch_mit_vector: u64,
    /// CURRENT_MIT_VECTOR (version 5+; must be zero before).
    pub current_mit_vector: u64,
}

impl SimulatedGuest {
    /// A guest on chip `chip_id` of `product` whose four TCBs are all `tcb`, with defaults:
    /// version 3, the product's [`default_cpuid`], policy 0x30000 (SMT allowed, reserved bit 17),
    /// platform info 0x1 (SMT enabled), VMPL 0, firmware 1.55 build 40, REPORT_ID_MA all 0xFF,
    /// every other field zero.
    #[must_use]
    pub fn new(product: Product, chip_id: [u8; 64], tcb: TcbVersion) -> Self {
        let firmware = FirmwareVersion {
            major: 1,
            minor: 55,
            build: 40,
        };
        Self {
            product,
            version: 3,
            guest_svn: 0,
            policy: 0x30000,
            family_id: [0; 16],
            image_id: [0; 16],
            vmpl: 0,
            platform_info: 0x1,
            author_key_en: false,
            measurement: [0; 48],
            host_data: [0; 32],
            id_key_digest: [0; 48],
            author_key_digest: [0; 48],
            report_id: [0; 32],
            report_id_ma: [0xFF; 32],
            current_tcb: tcb,
            reported_tcb: tcb,
            committed_tcb: tcb,
            launch_tcb: tcb,
            cpuid: default_cpuid(product),
            chip_id,
            mask_chip_id: false,
            current_firmware: firmware,
            committed_firmware: firmware,
            launch_mit_vector: 0,
            current_mit_vector: 0,
        }
    }

    /// A guest launched the way Contrast launches its confidential VMs: MEASUREMENT as given,
    /// POLICY encoded from the manifest's `policy`, and ID_KEY_DIGEST derived from both (the ID
    /// block the runtime supplies at launch). Everything else as [`SimulatedGuest::new`].
    ///
    /// # Errors
    /// [`SimError::IdKey`] if the ID key cannot be derived.
    pub fn launched(
        product: Product,
        chip_id: [u8; 64],
        tcb: TcbVersion,
        measurement: [u8; 48],
        policy: &contrast_core::manifest::GuestPolicy,
    ) -> Result<Self, SimError> {
        let mut guest = Self::new(product, chip_id, tcb);
        guest.measurement = measurement;
        guest.policy = contrast_attest::idblock::policy_to_bytes(policy);
        guest.id_key_digest = contrast_attest::idblock::id_key_digest(&measurement, policy)
            .map_err(|e| SimError::IdKey(Box::new(e)))?;
        Ok(guest)
    }

    /// The VCEK (DER) for this guest's chip at its REPORTED_TCB, as the platform issues it.
    ///
    /// # Errors
    /// As [`SimulatedPlatform::vcek_for`], and [`SimError::ProductMismatch`].
    pub fn vcek_der(&self, platform: &SimulatedPlatform) -> Result<Vec<u8>, SimError> {
        self.check_product(platform)?;
        platform.vcek_for(&self.chip_id, self.reported_tcb)
    }

    /// The 1184-byte attestation report carrying `report_data`, signed with the VCEK key of
    /// this guest's chip at its REPORTED_TCB.
    ///
    /// # Errors
    /// [`SimError::ProductMismatch`], [`SimError::UnsupportedVersion`],
    /// [`SimError::InvalidVmpl`], [`SimError::TcbLayout`], [`SimError::TurinChipIdTail`],
    /// [`SimError::FieldNotInVersion`] (mitigation vectors before version 5), or a key or
    /// signing error.
    pub fn report(
        &self,
        platform: &SimulatedPlatform,
        report_data: &[u8; 64],
    ) -> Result<Vec<u8>, SimError> {
        self.check_product(platform)?;
        let body = self.signed_body(report_data)?;
        let key = platform.vcek_key(&self.chip_id, self.reported_tcb)?;
        // aws-lc-rs ignores the RNG argument and draws the nonce from its own DRBG.
        let signature = key
            .sign(&SystemRandom::new(), &body)
            .map_err(|_| SimError::ReportSigning)?;
        let (r, s) = signature
            .as_ref()
            .split_at_checked(P384_SCALAR_SIZE)
            .ok_or(SimError::ReportSigning)?;
        if s.len() != P384_SCALAR_SIZE {
            return Err(SimError::ReportSigning);
        }
        let mut w = ReportWriter { bytes: body };
        w.put(Field::SignatureR.offset(), &little_endian_component(r));
        w.put(Field::SignatureS.offset(), &little_endian_component(s));
        Ok(w.finish(REPORT_SIZE))
    }

    /// The report and the certificates a verifier needs for it: what an attestation issuer
    /// hands out for 64 bytes of report data.
    ///
    /// # Errors
    /// As [`SimulatedGuest::report`].
    pub fn evidence(
        &self,
        platform: &SimulatedPlatform,
        report_data: &[u8; 64],
    ) -> Result<SimulatedEvidence, SimError> {
        Ok(SimulatedEvidence {
            report: self.report(platform, report_data)?,
            vcek_der: self.vcek_der(platform)?,
            ask_der: platform.ask_der().to_vec(),
            ark_der: platform.ark_der().to_vec(),
        })
    }

    fn check_product(&self, platform: &SimulatedPlatform) -> Result<(), SimError> {
        if self.product == platform.product() {
            Ok(())
        } else {
            Err(SimError::ProductMismatch {
                platform: platform.product(),
                guest: self.product,
            })
        }
    }

    /// Bytes 0x000–0x29F, every reserved byte zero.
    fn signed_body(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, SimError> {
        let version = self.version;
        if !(2..=5).contains(&version) {
            return Err(SimError::UnsupportedVersion { version });
        }
        if self.vmpl > 3 {
            return Err(SimError::InvalidVmpl { vmpl: self.vmpl });
        }
        for (field, tcb) in [
            ("current_tcb", self.current_tcb),
            ("reported_tcb", self.reported_tcb),
            ("committed_tcb", self.committed_tcb),
            ("launch_tcb", self.launch_tcb),
        ] {
            check_tcb_layout(self.product, field, tcb)?;
        }
        if self.product == Product::Turin {
            check_turin_chip_id(&self.chip_id)?;
        }
        if version < 5 {
            for (field, value) in [
                ("launch_mit_vector", self.launch_mit_vector),
                ("current_mit_vector", self.current_mit_vector),
            ] {
                if value != 0 {
                    return Err(SimError::FieldNotInVersion {
                        field,
                        version,
                        since: 5,
                    });
                }
            }
        }

        let product = self.product;
        // Bit 0 AUTHOR_KEY_EN; MASK_CHIP_KEY 0 and SIGNING_KEY 0 (VCEK) since the VCEK signs.
        let key_info = u32::from(self.author_key_en);
        let mut w = ReportWriter::default();
        w.put(Field::Version.offset(), &version.to_le_bytes());
        w.put(Field::GuestSvn.offset(), &self.guest_svn.to_le_bytes());
        w.put(Field::Policy.offset(), &self.policy.to_le_bytes());
        w.put(Field::FamilyId.offset(), &self.family_id);
        w.put(Field::ImageId.offset(), &self.image_id);
        w.put(Field::Vmpl.offset(), &self.vmpl.to_le_bytes());
        w.put(
            Field::SignatureAlgo.offset(),
            &SIGNATURE_ALGO_ECDSA_P384_SHA384.to_le_bytes(),
        );
        w.put(
            Field::CurrentTcb.offset(),
            &self.current_tcb.to_bytes(product),
        );
        w.put(
            Field::PlatformInfo.offset(),
            &self.platform_info.to_le_bytes(),
        );
        w.put(Field::KeyInfo.offset(), &key_info.to_le_bytes());
        w.put(Field::ReportData.offset(), report_data);
        w.put(Field::Measurement.offset(), &self.measurement);
        w.put(Field::HostData.offset(), &self.host_data);
        w.put(Field::IdKeyDigest.offset(), &self.id_key_digest);
        w.put(Field::AuthorKeyDigest.offset(), &self.author_key_digest);
        w.put(Field::ReportId.offset(), &self.report_id);
        w.put(Field::ReportIdMa.offset(), &self.report_id_ma);
        w.put(
            Field::ReportedTcb.offset(),
            &self.reported_tcb.to_bytes(product),
        );
        if version >= 3 {
            let cpuid = self.cpuid;
            w.put(
                Field::CpuidFamId.offset(),
                &[cpuid.family, cpuid.model, cpuid.stepping],
            );
        }
        if !self.mask_chip_id {
            w.put(Field::ChipId.offset(), &self.chip_id);
        }
        w.put(
            Field::CommittedTcb.offset(),
            &self.committed_tcb.to_bytes(product),
        );
        let fw = |v: FirmwareVersion| [v.build, v.minor, v.major];
        w.put(Field::CurrentBuild.offset(), &fw(self.current_firmware));
        w.put(Field::CommittedBuild.offset(), &fw(self.committed_firmware));
        w.put(
            Field::LaunchTcb.offset(),
            &self.launch_tcb.to_bytes(product),
        );
        if version >= 5 {
            w.put(
                Field::LaunchMitVector.offset(),
                &self.launch_mit_vector.to_le_bytes(),
            );
            w.put(
                Field::CurrentMitVector.offset(),
                &self.current_mit_vector.to_le_bytes(),
            );
        }
        Ok(w.finish(SIGNED_REPORT_SIZE))
    }
}

/// A report with its certificate chain (leaf first in spirit: VCEK, ASK, ARK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedEvidence {
    /// The 1184-byte attestation report.
    pub report: Vec<u8>,
    /// The VCEK certificate (DER) for the report's chip and REPORTED_TCB.
    pub vcek_der: Vec<u8>,
    /// The ASK certificate (DER).
    pub ask_der: Vec<u8>,
    /// The ARK certificate (DER).
    pub ark_der: Vec<u8>,
}

/// Writes fields in ascending offset order, zero-filling the gaps (the reserved bytes).
#[derive(Default)]
struct ReportWriter {
    bytes: Vec<u8>,
}

impl ReportWriter {
    fn put(&mut self, offset: usize, field: &[u8]) {
        // Offsets are constants in ascending order, so the gap is never negative.
        self.bytes.resize(offset.max(self.bytes.len()), 0);
        self.bytes.extend_from_slice(field);
    }

    fn finish(mut self, len: usize) -> Vec<u8> {
        self.bytes.resize(len, 0);
        self.bytes
    }
}

/// A big-endian P-384 scalar as the report's 72-byte little-endian field.
fn little_endian_component(big_endian: &[u8]) -> [u8; SIGNATURE_COMPONENT_SIZE] {
    let mut out = [0u8; SIGNATURE_COMPONENT_SIZE];
    for (dst, src) in out.iter_mut().zip(big_endian.iter().rev()) {
        *dst = *src;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_ascend_and_fit() {
        let all = [
            Field::Version.offset(),
            Field::GuestSvn.offset(),
            Field::Policy.offset(),
            Field::FamilyId.offset(),
            Field::ImageId.offset(),
            Field::Vmpl.offset(),
            Field::SignatureAlgo.offset(),
            Field::CurrentTcb.offset(),
            Field::PlatformInfo.offset(),
            Field::KeyInfo.offset(),
            Field::ReportData.offset(),
            Field::Measurement.offset(),
            Field::HostData.offset(),
            Field::IdKeyDigest.offset(),
            Field::AuthorKeyDigest.offset(),
            Field::ReportId.offset(),
            Field::ReportIdMa.offset(),
            Field::ReportedTcb.offset(),
            Field::CpuidFamId.offset(),
            Field::ChipId.offset(),
            Field::CommittedTcb.offset(),
            Field::CurrentBuild.offset(),
            Field::CommittedBuild.offset(),
            Field::LaunchTcb.offset(),
            Field::LaunchMitVector.offset(),
            Field::CurrentMitVector.offset(),
            SIGNED_REPORT_SIZE,
            Field::SignatureS.offset(),
            REPORT_SIZE,
        ];
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Field::SignatureR.offset(), SIGNED_REPORT_SIZE);
        assert_eq!(Field::SignatureS.offset(), Field::SignatureR.offset() + 72);
    }

    #[test]
    fn little_endian_component_reverses_and_pads() {
        let be: Vec<u8> = (1..=48).collect();
        let le = little_endian_component(&be);
        assert_eq!(le[0], 48);
        assert_eq!(le[47], 1);
        assert!(le[48..].iter().all(|b| *b == 0));
    }

    #[test]
    fn writer_zero_fills_gaps() {
        let mut w = ReportWriter::default();
        w.put(2, &[7]);
        w.put(5, &[8, 9]);
        assert_eq!(w.finish(8), vec![0, 0, 7, 0, 0, 8, 9, 0]);
    }
}
