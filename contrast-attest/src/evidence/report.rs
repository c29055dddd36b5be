//! The raw 1184-byte `ATTESTATION_REPORT` ⇄ go-sev-guest's `sevsnp.Report`.
//!
//! One proto field per report field, as go-sev-guest's `abi.ReportToProto` /
//! `abi.ReportToAbiBytes` do: integers little-endian in the report, byte strings copied, the
//! `signature` field the whole 512-byte signature area (`0x2A0..0x4A0`, R, S and the reserved
//! tail), `cpuid1eax_fms` the CPUID(1).EAX encoding of the CPUID bytes (version 3 and later),
//! the mitigation vectors version 5 only. Version 4 has the version-3 layout.
//!
//! Both directions are strict, so that a report survives report → proto → report byte for byte
//! and a proto is the image of exactly one report:
//! - report → proto refuses reserved bytes that are not zero (the proto cannot carry them), an
//!   unknown version, and a CPUID stepping above 0xF (CPUID(1).EAX has 4 bits for it);
//! - proto → report refuses a byte field of the wrong width, an integer that does not fit its
//!   report field, a field the version does not have set to non-zero, and a non-canonical
//!   `cpuid1eax_fms`. Reserved bytes are zero by construction.
//!
//! Neither direction checks the signature or the report's semantics: the verifier checks the
//! signature over the rebuilt bytes and then parses them ([`crate::report`]).

use super::error::EvidenceError;
use super::sevsnp;
use crate::report::{Field, REPORT_LEN};

/// The report versions whose layout this module knows.
const VERSIONS: std::ops::RangeInclusive<u32> = 2..=5;
const VERSIONS_TEXT: &str = "2, 3, 4 or 5";
/// The first version with the CPUID bytes.
const CPUID_VERSION: u32 = 3;
/// The first version with the mitigation vectors.
const MIT_VECTOR_VERSION: u32 = 5;

// CPUID(1).EAX bit positions (AMD64 APM vol. 3, CPUID Fn0000_0001_EAX).
const EXTENDED_FAMILY_SHIFT: u32 = 20;
const EXTENDED_MODEL_SHIFT: u32 = 16;
const FAMILY_SHIFT: u32 = 8;
const MODEL_SHIFT: u32 = 4;

/// CPUID(1).EAX for a family, model and stepping, as go-sev-guest's `FmsToCpuid1Eax`: a family
/// of 0xF or more is base family 0xF plus the extended family; the model's high nibble is the
/// extended model. Only the low 4 bits of `stepping` are representable.
#[must_use]
pub fn fms_to_cpuid1_eax(family: u8, model: u8, stepping: u8) -> u32 {
    let (extended_family, base_family) = if family >= 0xF {
        (family - 0xF, 0xF)
    } else {
        (0, family)
    };
    (u32::from(extended_family) << EXTENDED_FAMILY_SHIFT)
        | (u32::from(model >> 4) << EXTENDED_MODEL_SHIFT)
        | (u32::from(base_family) << FAMILY_SHIFT)
        | (u32::from(model & 0xF) << MODEL_SHIFT)
        | u32::from(stepping & 0xF)
}

/// Family, model and stepping of a CPUID(1).EAX value, as go-sev-guest's `FmsFromCpuid1Eax`
/// (family = base + extended family, wrapping in a byte like Go's `byte` addition).
#[must_use]
pub fn fms_from_cpuid1_eax(eax: u32) -> (u8, u8, u8) {
    let byte = |shift: u32, mask: u32| u8::try_from((eax >> shift) & mask).unwrap_or(0);
    let family = byte(EXTENDED_FAMILY_SHIFT, 0xFF).wrapping_add(byte(FAMILY_SHIFT, 0xF));
    let model = (byte(EXTENDED_MODEL_SHIFT, 0xF) << 4) | byte(MODEL_SHIFT, 0xF);
    (family, model, byte(0, 0xF))
}

fn get<const N: usize>(report: &[u8; REPORT_LEN], field: Field) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(bytes) = report.get(field.range())
        && bytes.len() == N
    {
        out.copy_from_slice(bytes);
    }
    out
}

fn u32_at(report: &[u8; REPORT_LEN], field: Field) -> u32 {
    u32::from_le_bytes(get(report, field))
}

fn u64_at(report: &[u8; REPORT_LEN], field: Field) -> u64 {
    u64::from_le_bytes(get(report, field))
}

fn u8_at(report: &[u8; REPORT_LEN], field: Field) -> u8 {
    get::<1>(report, field)[0]
}

fn bytes_at(report: &[u8; REPORT_LEN], field: Field) -> Vec<u8> {
    report.get(field.range()).unwrap_or_default().to_vec()
}

/// The byte ranges that are reserved (must be zero) in a report of `version`, outside the
/// signature area.
fn reserved_ranges(version: u32) -> Vec<std::ops::Range<usize>> {
    let mut out = vec![
        Field::ReservedAfterKeyInfo.range(),
        Field::ReservedAfterCurrent.range(),
        Field::ReservedAfterCommitted.range(),
    ];
    out.push(if version >= CPUID_VERSION {
        Field::ReservedAfterCpuid.range()
    } else {
        Field::CpuidFamId.offset()..Field::ChipId.offset()
    });
    out.push(if version >= MIT_VECTOR_VERSION {
        Field::ReservedAfterMitVector.range()
    } else {
        Field::LaunchMitVector.offset()..Field::SignatureR.offset()
    });
    out
}

/// The 512-byte signature area `0x2A0..0x4A0` (R, S, reserved tail).
const SIGNATURE_AREA: std::ops::Range<usize> = Field::SignatureR.offset()..REPORT_LEN;

/// A raw report as a `sevsnp.Report` (every field; see the module docs).
///
/// # Errors
/// [`EvidenceError::ReportLength`], [`EvidenceError::UnsupportedVersion`],
/// [`EvidenceError::ReservedNotZero`], [`EvidenceError::SteppingRange`].
pub fn report_to_proto(report: &[u8]) -> Result<sevsnp::Report, EvidenceError> {
    let report: &[u8; REPORT_LEN] = report.try_into().map_err(|_| EvidenceError::ReportLength {
        expected: REPORT_LEN,
        found: report.len(),
    })?;
    let version = u32_at(report, Field::Version);
    if !VERSIONS.contains(&version) {
        return Err(EvidenceError::UnsupportedVersion {
            field: "version",
            expected: VERSIONS_TEXT,
            found: version,
        });
    }
    for range in reserved_ranges(version) {
        let bytes = report.get(range.clone()).unwrap_or_default();
        if bytes.iter().any(|b| *b != 0) {
            return Err(EvidenceError::ReservedNotZero {
                version,
                offset: range.start,
                end: range.end,
                found: hex::encode(bytes),
            });
        }
    }
    let cpuid1eax_fms = if version >= CPUID_VERSION {
        let stepping = u8_at(report, Field::CpuidStep);
        if stepping > 0xF {
            return Err(EvidenceError::SteppingRange {
                expected: 0xF,
                found: stepping,
            });
        }
        fms_to_cpuid1_eax(
            u8_at(report, Field::CpuidFamId),
            u8_at(report, Field::CpuidModId),
            stepping,
        )
    } else {
        0
    };
    let (launch_mit_vector, current_mit_vector) = if version >= MIT_VECTOR_VERSION {
        (
            u64_at(report, Field::LaunchMitVector),
            u64_at(report, Field::CurrentMitVector),
        )
    } else {
        (0, 0)
    };
    Ok(sevsnp::Report {
        version,
        guest_svn: u32_at(report, Field::GuestSvn),
        policy: u64_at(report, Field::Policy),
        family_id: bytes_at(report, Field::FamilyId),
        image_id: bytes_at(report, Field::ImageId),
        vmpl: u32_at(report, Field::Vmpl),
        signature_algo: u32_at(report, Field::SignatureAlgo),
        current_tcb: u64_at(report, Field::CurrentTcb),
        platform_info: u64_at(report, Field::PlatformInfo),
        signer_info: u32_at(report, Field::KeyInfo),
        report_data: bytes_at(report, Field::ReportData),
        measurement: bytes_at(report, Field::Measurement),
        host_data: bytes_at(report, Field::HostData),
        id_key_digest: bytes_at(report, Field::IdKeyDigest),
        author_key_digest: bytes_at(report, Field::AuthorKeyDigest),
        report_id: bytes_at(report, Field::ReportId),
        report_id_ma: bytes_at(report, Field::ReportIdMa),
        reported_tcb: u64_at(report, Field::ReportedTcb),
        chip_id: bytes_at(report, Field::ChipId),
        committed_tcb: u64_at(report, Field::CommittedTcb),
        current_build: u32::from(u8_at(report, Field::CurrentBuild)),
        current_minor: u32::from(u8_at(report, Field::CurrentMinor)),
        current_major: u32::from(u8_at(report, Field::CurrentMajor)),
        committed_build: u32::from(u8_at(report, Field::CommittedBuild)),
        committed_minor: u32::from(u8_at(report, Field::CommittedMinor)),
        committed_major: u32::from(u8_at(report, Field::CommittedMajor)),
        launch_tcb: u64_at(report, Field::LaunchTcb),
        signature: report.get(SIGNATURE_AREA).unwrap_or_default().to_vec(),
        cpuid1eax_fms,
        launch_mit_vector,
        current_mit_vector,
    })
}

/// Writes the report fields into a zeroed buffer, checking widths.
struct Writer {
    out: Box<[u8; REPORT_LEN]>,
}

impl Writer {
    fn put(&mut self, field: Field, bytes: &[u8]) {
        if let Some(slot) = self.out.get_mut(field.range())
            && slot.len() == bytes.len()
        {
            slot.copy_from_slice(bytes);
        }
    }

    fn bytes(
        &mut self,
        field: Field,
        name: &'static str,
        value: &[u8],
    ) -> Result<(), EvidenceError> {
        if value.len() != field.size() {
            return Err(EvidenceError::FieldWidth {
                field: name,
                expected: field.size(),
                found: value.len(),
            });
        }
        self.put(field, value);
        Ok(())
    }

    fn byte(&mut self, field: Field, name: &'static str, value: u32) -> Result<(), EvidenceError> {
        let byte = u8::try_from(value).map_err(|_| EvidenceError::FieldRange {
            field: name,
            expected: u64::from(u8::MAX),
            width: 1,
            found: u64::from(value),
        })?;
        self.put(field, &[byte]);
        Ok(())
    }
}

/// Rebuilds the exact 1184-byte report a `sevsnp.Report` stands for (see the module docs).
/// Reserved bytes are zero; the result still has to pass signature verification and
/// [`crate::report`]'s structure checks.
///
/// # Errors
/// [`EvidenceError::UnsupportedVersion`], [`EvidenceError::FieldWidth`],
/// [`EvidenceError::FieldRange`], [`EvidenceError::FieldNotInVersion`],
/// [`EvidenceError::NonCanonicalCpuid`].
pub fn report_from_proto(report: &sevsnp::Report) -> Result<Box<[u8; REPORT_LEN]>, EvidenceError> {
    let version = report.version;
    if !VERSIONS.contains(&version) {
        return Err(EvidenceError::UnsupportedVersion {
            field: "version",
            expected: VERSIONS_TEXT,
            found: version,
        });
    }
    let mut w = Writer {
        out: Box::new([0u8; REPORT_LEN]),
    };
    w.put(Field::Version, &version.to_le_bytes());
    w.put(Field::GuestSvn, &report.guest_svn.to_le_bytes());
    w.put(Field::Policy, &report.policy.to_le_bytes());
    w.bytes(Field::FamilyId, "family_id", &report.family_id)?;
    w.bytes(Field::ImageId, "image_id", &report.image_id)?;
    w.put(Field::Vmpl, &report.vmpl.to_le_bytes());
    w.put(Field::SignatureAlgo, &report.signature_algo.to_le_bytes());
    w.put(Field::CurrentTcb, &report.current_tcb.to_le_bytes());
    w.put(Field::PlatformInfo, &report.platform_info.to_le_bytes());
    w.put(Field::KeyInfo, &report.signer_info.to_le_bytes());
    w.bytes(Field::ReportData, "report_data", &report.report_data)?;
    w.bytes(Field::Measurement, "measurement", &report.measurement)?;
    w.bytes(Field::HostData, "host_data", &report.host_data)?;
    w.bytes(Field::IdKeyDigest, "id_key_digest", &report.id_key_digest)?;
    w.bytes(
        Field::AuthorKeyDigest,
        "author_key_digest",
        &report.author_key_digest,
    )?;
    w.bytes(Field::ReportId, "report_id", &report.report_id)?;
    w.bytes(Field::ReportIdMa, "report_id_ma", &report.report_id_ma)?;
    w.put(Field::ReportedTcb, &report.reported_tcb.to_le_bytes());
    if version >= CPUID_VERSION {
        let (family, model, stepping) = fms_from_cpuid1_eax(report.cpuid1eax_fms);
        let canonical = fms_to_cpuid1_eax(family, model, stepping);
        if canonical != report.cpuid1eax_fms {
            return Err(EvidenceError::NonCanonicalCpuid {
                expected: canonical,
                found: report.cpuid1eax_fms,
            });
        }
        w.put(Field::CpuidFamId, &[family]);
        w.put(Field::CpuidModId, &[model]);
        w.put(Field::CpuidStep, &[stepping]);
    } else if report.cpuid1eax_fms != 0 {
        return Err(EvidenceError::FieldNotInVersion {
            field: "cpuid1eax_fms",
            expected: CPUID_VERSION,
            version,
            found: u64::from(report.cpuid1eax_fms),
        });
    }
    w.bytes(Field::ChipId, "chip_id", &report.chip_id)?;
    w.put(Field::CommittedTcb, &report.committed_tcb.to_le_bytes());
    w.byte(Field::CurrentBuild, "current_build", report.current_build)?;
    w.byte(Field::CurrentMinor, "current_minor", report.current_minor)?;
    w.byte(Field::CurrentMajor, "current_major", report.current_major)?;
    w.byte(
        Field::CommittedBuild,
        "committed_build",
        report.committed_build,
    )?;
    w.byte(
        Field::CommittedMinor,
        "committed_minor",
        report.committed_minor,
    )?;
    w.byte(
        Field::CommittedMajor,
        "committed_major",
        report.committed_major,
    )?;
    w.put(Field::LaunchTcb, &report.launch_tcb.to_le_bytes());
    if version >= MIT_VECTOR_VERSION {
        w.put(
            Field::LaunchMitVector,
            &report.launch_mit_vector.to_le_bytes(),
        );
        w.put(
            Field::CurrentMitVector,
            &report.current_mit_vector.to_le_bytes(),
        );
    } else {
        for (field, value) in [
            ("launch_mit_vector", report.launch_mit_vector),
            ("current_mit_vector", report.current_mit_vector),
        ] {
            if value != 0 {
                return Err(EvidenceError::FieldNotInVersion {
                    field,
                    expected: MIT_VECTOR_VERSION,
                    version,
                    found: value,
                });
            }
        }
    }
    if report.signature.len() != SIGNATURE_AREA.len() {
        return Err(EvidenceError::FieldWidth {
            field: "signature",
            expected: SIGNATURE_AREA.len(),
            found: report.signature.len(),
        });
    }
    if let Some(slot) = w.out.get_mut(SIGNATURE_AREA) {
        slot.copy_from_slice(&report.signature);
    }
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cpuid_encoding_matches_go_sev_guest() {
        // Milan B1 (family 0x19, model 0x01, stepping 1) and Genoa (0x19, 0x11), Turin (0x1A, 0x02).
        assert_eq!(fms_to_cpuid1_eax(0x19, 0x01, 0x1), 0x00A0_0F11);
        assert_eq!(fms_to_cpuid1_eax(0x19, 0x11, 0x1), 0x00A1_0F11);
        assert_eq!(fms_to_cpuid1_eax(0x1A, 0x02, 0x0), 0x00B0_0F20);
        assert_eq!(fms_to_cpuid1_eax(0x06, 0x3A, 0x9), 0x0003_06A9);
        for family in 0..=u8::MAX {
            for model in [0u8, 1, 0x11, 0xA0, 0xFF] {
                for stepping in 0..=0xF {
                    let eax = fms_to_cpuid1_eax(family, model, stepping);
                    assert_eq!(fms_from_cpuid1_eax(eax), (family, model, stepping));
                }
            }
        }
    }
}
