//! Appraisal against the manifest's SEV-SNP reference values.
//!
//! - Real AMD-signed vectors (through `TrustAnchor::Amd`, i.e. hardware entries): reference
//!   values built from a report's own fields pass with a matching policy and fail with the strict
//!   default for the right reason.
//! - One mutation test per rule: a report signed with the committed test VCEK key (test PKI in
//!   `fixtures/`, trusted through a `Simulated-SNP` entry pinning SHA-256(test_ark.der)) that
//!   passes everything, then changed in one field (or the entry changed in one value).
//! - The ID key: known-answer values computed independently by
//!   `fixtures/appraisal/idkey_kat.py` (pure-Python P-384 arithmetic; both candidate keys checked
//!   with `cryptography` to verify (r, s) = (2, 1) over the ID block).
//! - Entry errors, the per-entry error list, and simulated/real anchor confusion.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use common::*;
use contrast_attest::TcbComponent;
use contrast_attest::Verifier;
use contrast_attest::chain::{CertRole, LeafKind, NotCheckedReason, RevocationStatus, TrustAnchor};
use contrast_attest::collateral::{
    CollateralItem, CollateralMap, CollateralRequest, CollateralSource, FetchCollateral,
};
use contrast_attest::idblock;
use contrast_attest::report::FirmwareVersion;
use contrast_attest::{Appraisal, AppraisalPolicy, ClaimChecks, DeniedBy, VmplSet, trust_anchor};
use contrast_attest::{
    CrlPolicy, Error, Product, TcbVersion, UnixTime, UnverifiedReport, VcekCache,
};
use contrast_core::manifest::{GuestPolicy, MinimumTcb, PlatformInfo, SnpReferenceValues};

const ARK: &[u8] = include_bytes!("fixtures/test_ark.der");
const ASK: &[u8] = include_bytes!("fixtures/test_ask.der");
const VCEK: &[u8] = include_bytes!("fixtures/test_vcek.der");
const VCEK_KEY: &[u8] = include_bytes!("fixtures/test_vcek_key.pk8");
const CRL_EMPTY: &[u8] = include_bytes!("fixtures/test_crl_empty.der");

/// Inside the test CRL's thisUpdate (2026-01-01) .. nextUpdate (2026-02-01).
const NOW: UnixTime = UnixTime::from_secs(1_767_225_600 + 86_400);
/// The TCB of the test VCEK's extensions.
const TCB: TcbVersion = TcbVersion {
    fmc: None,
    bootloader: 3,
    tee: 0,
    snp: 8,
    microcode: 0xd1,
};
const MEASUREMENT: [u8; 48] = [0x4D; 48];
const REPORT_DATA: [u8; 64] = [0x52; 64];
const HOST_DATA: [u8; 32] = [0x48; 32];
const MIT_VECTOR: u64 = 0b101;
const FIRMWARE: [u8; 3] = [0x20, 0x37, 0x01]; // build, minor, major

// Report offsets.
const VERSION: usize = 0x000;
const POLICY: usize = 0x008;
const VMPL: usize = 0x030;
const CURRENT_TCB: usize = 0x038;
const PLATFORM_INFO: usize = 0x040;
const REPORT_DATA_AT: usize = 0x050;
const MEASUREMENT_AT: usize = 0x090;
const HOST_DATA_AT: usize = 0x0C0;
const ID_KEY_DIGEST: usize = 0x0E0;
const REPORTED_TCB: usize = 0x180;
const CPUID: usize = 0x188;
const CHIP_ID: usize = 0x1A0;
const COMMITTED_TCB: usize = 0x1E0;
const CURRENT_VERSION: usize = 0x1E8;
const COMMITTED_VERSION: usize = 0x1EC;
const LAUNCH_TCB: usize = 0x1F0;
const LAUNCH_MIT: usize = 0x1F8;
const CURRENT_MIT: usize = 0x200;

fn hwid() -> [u8; 64] {
    hex::decode(include_str!("fixtures/test_hwid.hex").trim())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The guest policy of the base entry: ABI 1.2, SMT allowed, every "required" flag required,
/// migration agent, debugging and CXL not allowed.
fn base_guest_policy() -> GuestPolicy {
    GuestPolicy {
        abi_minor: 2,
        abi_major: 1,
        smt: true,
        migrate_ma: false,
        debug: false,
        single_socket: true,
        cxl_allowed: false,
        mem_aes_256_xts: true,
        rapl_dis: true,
        ciphertext_hiding_dram: true,
        page_swap_disable: true,
    }
}

/// The platform info of the base entry: SMT, TSME and TIO not allowed; ECC, RAPL disabled,
/// ciphertext hiding and the alias check required.
fn base_platform_info() -> PlatformInfo {
    PlatformInfo {
        smt_enabled: false,
        tsme_enabled: false,
        ecc_enabled: true,
        rapl_disabled: true,
        ciphertext_hiding_dram_enabled: true,
        alias_check_complete: true,
        tio_enabled: false,
    }
}

fn platform_info_bits(info: &PlatformInfo) -> u64 {
    [
        info.smt_enabled,
        info.tsme_enabled,
        info.ecc_enabled,
        info.rapl_disabled,
        info.ciphertext_hiding_dram_enabled,
        info.alias_check_complete,
        false,
        info.tio_enabled,
    ]
    .iter()
    .enumerate()
    .fold(0, |acc, (bit, set)| if *set { acc | 1 << bit } else { acc })
}

fn minimum(tcb: &TcbVersion) -> MinimumTcb {
    MinimumTcb {
        bootloader_version: Some(tcb.bootloader),
        tee_version: Some(tcb.tee),
        snp_version: Some(tcb.snp),
        microcode_version: Some(tcb.microcode),
    }
}

/// A `Simulated-SNP` entry pinning the test ARK that the base report passes.
fn sim_entry() -> SnpReferenceValues {
    SnpReferenceValues {
        platform: "Simulated-SNP".into(),
        product_name: "Milan".into(),
        trusted_measurement: hex::encode(MEASUREMENT),
        minimum_tcb: minimum(&TCB),
        guest_policy: base_guest_policy(),
        platform_info: base_platform_info(),
        minimum_mitigation_vector: MIT_VECTOR,
        allowed_chip_ids: None,
        apeip: None,
        simulated_ark_fingerprint: Some(hex::encode(sha256(ARK))),
    }
}

fn put(report: &mut [u8], offset: usize, bytes: &[u8]) {
    report[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// A version-5 Milan report that satisfies `entry` in every rule (fields derived from the entry),
/// changed by `mutate`, then signed with the test VCEK key.
fn report_for(entry: &SnpReferenceValues, mutate: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut r = report_milan();
    let measurement: [u8; 48] = hex::decode(&entry.trusted_measurement)
        .unwrap()
        .try_into()
        .unwrap();
    put(&mut r, VERSION, &5u32.to_le_bytes());
    put(&mut r, CPUID, &[0x19, 0x01, 0x01]);
    put(
        &mut r,
        POLICY,
        &idblock::policy_to_bytes(&entry.guest_policy).to_le_bytes(),
    );
    put(&mut r, VMPL, &0u32.to_le_bytes());
    put(
        &mut r,
        PLATFORM_INFO,
        &platform_info_bits(&entry.platform_info).to_le_bytes(),
    );
    put(&mut r, REPORT_DATA_AT, &REPORT_DATA);
    put(&mut r, MEASUREMENT_AT, &measurement);
    put(&mut r, HOST_DATA_AT, &HOST_DATA);
    put(
        &mut r,
        ID_KEY_DIGEST,
        &idblock::id_key_digest(&measurement, &entry.guest_policy).unwrap(),
    );
    let tcb = TCB.to_bytes(Product::Milan);
    for at in [CURRENT_TCB, REPORTED_TCB, COMMITTED_TCB, LAUNCH_TCB] {
        put(&mut r, at, &tcb);
    }
    put(&mut r, CHIP_ID, &hwid());
    put(&mut r, CURRENT_VERSION, &FIRMWARE);
    put(&mut r, COMMITTED_VERSION, &FIRMWARE);
    put(&mut r, LAUNCH_MIT, &MIT_VECTOR.to_le_bytes());
    put(&mut r, CURRENT_MIT, &MIT_VECTOR.to_le_bytes());
    mutate(&mut r);
    sign(&mut r);
    r
}

fn sign(report: &mut [u8]) {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, VCEK_KEY).unwrap();
    let sig = key.sign(&SystemRandom::new(), &report[..0x2A0]).unwrap();
    let sig = sig.as_ref();
    report[0x2A0..0x330].fill(0);
    for i in 0..48 {
        report[0x2A0 + i] = sig[47 - i];
        report[0x2E8 + i] = sig[95 - i];
    }
}

fn set_policy_bit(r: &mut [u8], bit: u32, on: bool) {
    let mut policy = u64::from_le_bytes(r[POLICY..POLICY + 8].try_into().unwrap());
    if on {
        policy |= 1 << bit;
    } else {
        policy &= !(1 << bit);
    }
    put(r, POLICY, &policy.to_le_bytes());
}

fn set_platform_bit(r: &mut [u8], bit: u32, on: bool) {
    let mut info = u64::from_le_bytes(r[PLATFORM_INFO..PLATFORM_INFO + 8].try_into().unwrap());
    if on {
        info |= 1 << bit;
    } else {
        info &= !(1 << bit);
    }
    put(r, PLATFORM_INFO, &info.to_le_bytes());
}

fn set_tcb(r: &mut [u8], at: usize, tcb: TcbVersion) {
    put(r, at, &tcb.to_bytes(Product::Milan));
}

/// The test chain and a fresh CRL, keyed by the test chip.
fn test_collateral() -> CollateralMap {
    let mut map = CollateralMap::new();
    map.insert_vcek(Product::Milan, &hwid(), &TCB, VCEK.to_vec());
    map.insert_ca(Product::Milan, CertRole::Ask, ASK.to_vec());
    map.insert_ca(Product::Milan, CertRole::Ark, ARK.to_vec());
    map.insert_crl(Product::Milan, LeafKind::Vcek, CRL_EMPTY.to_vec());
    map
}

fn run(
    report: &[u8],
    entries: &[SnpReferenceValues],
    policy: &AppraisalPolicy,
) -> Result<Appraisal<'static>, Error> {
    let report: &'static [u8] = Box::leak(report.to_vec().into_boxed_slice());
    Verifier::new(entries, policy.clone()).appraise(NOW, report, &test_collateral(), &REPORT_DATA)
}

/// The single entry's reason.
fn only_reason(result: Result<Appraisal<'_>, Error>) -> Error {
    match result {
        Err(Error::NoReferenceValuesMatched { mut attempts }) => {
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            let (index, error) = attempts.remove(0);
            assert_eq!(index, 0);
            error
        }
        other => panic!("expected NoReferenceValuesMatched, got {other:?}"),
    }
}

/// Appraises `report` against the single `entry` with `policy` and returns the entry's reason.
fn reason(report: &[u8], entry: SnpReferenceValues, policy: &AppraisalPolicy) -> Error {
    only_reason(run(report, &[entry], policy))
}

/// Builds the expected error from the report's POLICY or PLATFORM_INFO value.
type MakeError = fn(u64) -> Error;
/// Recognizes the expected error.
type IsExpected = fn(&Error) -> bool;

fn strict() -> AppraisalPolicy {
    AppraisalPolicy::default()
}

// ---------------------------------------------------------------------------------------------
// The base case.

#[test]
fn base_report_passes_the_strict_default_policy() {
    let entry = sim_entry();
    let report = report_for(&entry, |_| {});
    let appraisal = run(&report, &[entry], &strict()).unwrap();
    assert_eq!(appraisal.matched_index, 0);
    assert_eq!(appraisal.host_data, HOST_DATA);
    assert_eq!(appraisal.report().measurement(), &MEASUREMENT);
    assert_eq!(
        appraisal.checks,
        ClaimChecks {
            id_key_digest: true,
            chip_id_allowlisted: false,
            mitigation_vectors: true,
            host_data: false,
            provisional_firmware: false,
        }
    );
    assert!(matches!(
        appraisal.revocation(),
        RevocationStatus::Checked { .. }
    ));
    assert_eq!(
        appraisal.evidence.chain.anchor(),
        trust_anchor(&sim_entry()).unwrap()
    );
}

#[test]
fn contrast_default_guest_policy_passes() {
    // Contrast's fixed policy: ABI 0.0, SMT allowed, nothing required.
    let entry = SnpReferenceValues {
        guest_policy: GuestPolicy {
            smt: true,
            ..GuestPolicy::default()
        },
        platform_info: PlatformInfo {
            smt_enabled: true,
            ..PlatformInfo::default()
        },
        minimum_mitigation_vector: 0,
        ..sim_entry()
    };
    let report = report_for(&entry, |_| {});
    assert_eq!(
        u64::from_le_bytes(report[POLICY..POLICY + 8].try_into().unwrap()),
        0x3_0000
    );
    run(&report, &[entry], &strict()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// One mutation per rule.

#[test]
fn measurement_mismatch() {
    let report = report_for(&sim_entry(), |r| r[MEASUREMENT_AT] ^= 1);
    let mut found = MEASUREMENT;
    found[0] ^= 1;
    assert_eq!(
        reason(&report, sim_entry(), &strict()),
        Error::MeasurementMismatch {
            expected: MEASUREMENT.to_vec(),
            found: found.to_vec(),
        }
    );
}

#[test]
fn report_data_mismatch() {
    let report = report_for(&sim_entry(), |r| r[REPORT_DATA_AT + 63] ^= 1);
    let mut found = REPORT_DATA;
    found[63] ^= 1;
    assert_eq!(
        reason(&report, sim_entry(), &strict()),
        Error::ReportDataMismatch {
            expected: REPORT_DATA.to_vec(),
            found: found.to_vec(),
        }
    );
}

#[test]
fn host_data_checked_only_when_expected() {
    let report = report_for(&sim_entry(), |_| {});
    let matching = strict().with_expected_host_data(Some(vec![[0; 32], HOST_DATA]));
    let appraisal = run(&report, &[sim_entry()], &matching).unwrap();
    assert!(appraisal.checks.host_data);
    let other = strict().with_expected_host_data(Some(vec![[0x11; 32]]));
    assert_eq!(
        reason(&report, sim_entry(), &other),
        Error::HostDataMismatch {
            expected: vec![[0x11; 32]],
            found: HOST_DATA,
        }
    );
    let none = strict().with_expected_host_data(Some(vec![]));
    assert!(matches!(
        reason(&report, sim_entry(), &none),
        Error::HostDataMismatch { .. }
    ));
}

#[test]
fn guest_policy_abi_below_required() {
    // Entry requires 1.2; the report says 1.1, then 0.255.
    for (major, minor) in [(1u8, 1u8), (0, 255)] {
        let report = report_for(&sim_entry(), |r| {
            r[POLICY] = minor;
            r[POLICY + 1] = major;
        });
        assert_eq!(
            reason(&report, sim_entry(), &strict()),
            Error::GuestPolicyAbiTooLow {
                required_major: 1,
                required_minor: 2,
                found_major: major,
                found_minor: minor,
            }
        );
    }
    // A higher ABI than required is fine.
    let report = report_for(&sim_entry(), |r| {
        r[POLICY] = 0;
        r[POLICY + 1] = 2;
    });
    run(&report, &[sim_entry()], &strict()).unwrap();
}

#[test]
fn guest_policy_capabilities_not_allowed_by_the_reference_values() {
    let policy_bits = idblock::policy_to_bytes(&base_guest_policy());
    let cases: [(u32, Error); 3] = [
        (
            18,
            Error::MigrationAgentNotAllowed {
                denied_by: DeniedBy::ReferenceValues,
                found: policy_bits | 1 << 18,
            },
        ),
        (
            19,
            Error::DebugNotAllowed {
                denied_by: DeniedBy::ReferenceValues,
                found: policy_bits | 1 << 19,
            },
        ),
        (
            21,
            Error::CxlNotAllowed {
                found: policy_bits | 1 << 21,
            },
        ),
    ];
    for (bit, expected) in cases {
        let report = report_for(&sim_entry(), |r| set_policy_bit(r, bit, true));
        assert_eq!(
            reason(&report, sim_entry(), &strict()),
            expected,
            "bit {bit}"
        );
        // Even a permissive appraisal policy cannot widen the manifest.
        let permissive = strict()
            .with_allow_debug(true)
            .with_allow_migration_agent(true);
        assert_eq!(
            reason(&report, sim_entry(), &permissive),
            expected,
            "bit {bit}"
        );
    }
}

#[test]
fn guest_policy_smt_not_allowed() {
    let entry = SnpReferenceValues {
        guest_policy: GuestPolicy {
            smt: false,
            ..base_guest_policy()
        },
        ..sim_entry()
    };
    let report = report_for(&entry, |r| set_policy_bit(r, 16, true));
    let found = idblock::policy_to_bytes(&entry.guest_policy) | 1 << 16;
    assert_eq!(
        reason(&report, entry, &strict()),
        Error::SmtNotAllowed { found }
    );
}

#[test]
fn guest_policy_required_flags_missing() {
    let policy_bits = idblock::policy_to_bytes(&base_guest_policy());
    let cases: [(u32, MakeError); 5] = [
        (20, |found| Error::SingleSocketRequired { found }),
        (22, |found| Error::MemAes256XtsRequired { found }),
        (23, |found| Error::RaplDisableRequired { found }),
        (24, |found| Error::CiphertextHidingRequired { found }),
        (25, |found| Error::PageSwapDisableRequired { found }),
    ];
    for (bit, expected) in cases {
        let report = report_for(&sim_entry(), |r| set_policy_bit(r, bit, false));
        assert_eq!(
            reason(&report, sim_entry(), &strict()),
            expected(policy_bits & !(1 << bit)),
            "bit {bit}"
        );
    }
}

#[test]
fn debug_and_migration_agent_need_both_manifest_and_policy() {
    for (field, bit) in [("debug", 19u32), ("migrate_ma", 18)] {
        let mut guest_policy = base_guest_policy();
        match field {
            "debug" => guest_policy.debug = true,
            _ => guest_policy.migrate_ma = true,
        }
        let entry = SnpReferenceValues {
            guest_policy,
            ..sim_entry()
        };
        let report = report_for(&entry, |_| {});
        let found = idblock::policy_to_bytes(&guest_policy);
        assert_ne!(found & 1 << bit, 0);
        let expected = match field {
            "debug" => Error::DebugNotAllowed {
                denied_by: DeniedBy::AppraisalPolicy,
                found,
            },
            _ => Error::MigrationAgentNotAllowed {
                denied_by: DeniedBy::AppraisalPolicy,
                found,
            },
        };
        assert_eq!(reason(&report, entry.clone(), &strict()), expected);
        let allowing = strict()
            .with_allow_debug(field == "debug")
            .with_allow_migration_agent(field == "migrate_ma");
        run(&report, &[entry], &allowing).unwrap();
    }
}

#[test]
fn vmpl_not_allowed() {
    let report = report_for(&sim_entry(), |r| put(r, VMPL, &1u32.to_le_bytes()));
    assert_eq!(
        reason(&report, sim_entry(), &strict()),
        Error::VmplNotAllowed {
            allowed: VmplSet::only(0),
            found: 1,
        }
    );
    let svsm = strict().with_allowed_vmpls(VmplSet::only(0).with(1));
    run(&report, &[sim_entry()], &svsm).unwrap();
}

#[test]
fn reported_tcb_below_minimum() {
    // REPORTED_TCB must equal the VCEK's TCB, so raise the minimum (and LAUNCH/CURRENT/COMMITTED
    // with it) instead.
    let higher = TcbVersion { snp: 9, ..TCB };
    let entry = SnpReferenceValues {
        minimum_tcb: minimum(&higher),
        ..sim_entry()
    };
    let report = report_for(&entry, |r| {
        for at in [CURRENT_TCB, COMMITTED_TCB, LAUNCH_TCB] {
            set_tcb(r, at, higher);
        }
    });
    assert_eq!(
        reason(&report, entry, &strict()),
        Error::ReportedTcbBelowMinimum {
            component: TcbComponent::Snp,
            minimum: 9,
            found: 8,
        }
    );
}

#[test]
fn launch_tcb_below_minimum() {
    let report = report_for(&sim_entry(), |r| {
        set_tcb(
            r,
            LAUNCH_TCB,
            TcbVersion {
                microcode: 0xd0,
                ..TCB
            },
        );
    });
    assert_eq!(
        reason(&report, sim_entry(), &strict()),
        Error::LaunchTcbBelowMinimum {
            component: TcbComponent::Microcode,
            minimum: 0xd1,
            found: 0xd0,
        }
    );
}

#[test]
fn cert_tcb_above_current() {
    let lower = TcbVersion {
        tee: 0,
        snp: 7,
        ..TCB
    };
    let entry = SnpReferenceValues {
        minimum_tcb: minimum(&lower),
        ..sim_entry()
    };
    let report = report_for(&entry, |r| {
        set_tcb(r, CURRENT_TCB, lower);
        set_tcb(r, COMMITTED_TCB, lower);
        set_tcb(r, LAUNCH_TCB, lower);
    });
    assert_eq!(
        reason(&report, entry, &strict()),
        Error::CertTcbAboveCurrent {
            component: TcbComponent::Snp,
            cert: 8,
            current: 7,
        }
    );
}

#[test]
fn committed_tcb_above_current() {
    let report = report_for(&sim_entry(), |r| {
        set_tcb(
            r,
            COMMITTED_TCB,
            TcbVersion {
                bootloader: 4,
                ..TCB
            },
        );
    });
    assert_eq!(
        reason(&report, sim_entry(), &strict()),
        Error::CommittedTcbAboveCurrent {
            component: TcbComponent::Bootloader,
            committed: 4,
            current: 3,
        }
    );
}

#[test]
fn committed_firmware_above_current() {
    let [build, minor, major] = FIRMWARE;
    for committed in [[build + 1, minor, major], [build, minor + 1, major]] {
        let report = report_for(&sim_entry(), |r| put(r, COMMITTED_VERSION, &committed));
        assert_eq!(
            reason(&report, sim_entry(), &strict()),
            Error::CommittedFirmwareAboveCurrent {
                committed: FirmwareVersion {
                    major: committed[2],
                    minor: committed[1],
                    build: committed[0],
                },
                current: FirmwareVersion {
                    major,
                    minor,
                    build,
                },
            }
        );
    }
}

#[test]
fn provisional_firmware_permitted_by_default_and_refusable() {
    let older = TcbVersion { snp: 7, ..TCB };
    let report = report_for(&sim_entry(), |r| set_tcb(r, COMMITTED_TCB, older));
    let appraisal = run(&report, &[sim_entry()], &strict()).unwrap();
    assert!(appraisal.checks.provisional_firmware);
    let no_provisional = strict().with_permit_provisional_firmware(false);
    let firmware = FirmwareVersion {
        major: FIRMWARE[2],
        minor: FIRMWARE[1],
        build: FIRMWARE[0],
    };
    assert_eq!(
        reason(&report, sim_entry(), &no_provisional),
        Error::ProvisionalFirmwareNotPermitted {
            committed_tcb: older,
            current_tcb: TCB,
            committed: firmware,
            current: firmware,
        }
    );
    // An older committed build is provisional too.
    let report = report_for(&sim_entry(), |r| r[COMMITTED_VERSION] -= 1);
    assert!(matches!(
        reason(&report, sim_entry(), &no_provisional),
        Error::ProvisionalFirmwareNotPermitted { .. }
    ));
    run(&report, &[sim_entry()], &strict()).unwrap();
}

#[test]
fn platform_info_features_not_allowed() {
    let base = platform_info_bits(&base_platform_info());
    let cases: [(u32, MakeError); 3] = [
        (0, |found| Error::PlatformSmtNotAllowed { found }),
        (1, |found| Error::PlatformTsmeNotAllowed { found }),
        (7, |found| Error::PlatformTioNotAllowed { found }),
    ];
    for (bit, expected) in cases {
        let report = report_for(&sim_entry(), |r| set_platform_bit(r, bit, true));
        assert_eq!(
            reason(&report, sim_entry(), &strict()),
            expected(base | 1 << bit),
            "bit {bit}"
        );
    }
}

#[test]
fn platform_info_requirements_missing() {
    let base = platform_info_bits(&base_platform_info());
    let cases: [(u32, MakeError); 4] = [
        (2, |found| Error::PlatformEccRequired { found }),
        (3, |found| Error::PlatformRaplDisabledRequired { found }),
        (4, |found| Error::PlatformCiphertextHidingRequired { found }),
        (5, |found| Error::PlatformAliasCheckRequired { found }),
    ];
    for (bit, expected) in cases {
        let report = report_for(&sim_entry(), |r| set_platform_bit(r, bit, false));
        assert_eq!(
            reason(&report, sim_entry(), &strict()),
            expected(base & !(1 << bit)),
            "bit {bit}"
        );
    }
}

#[test]
fn platform_info_allowed_features_pass() {
    let entry = SnpReferenceValues {
        platform_info: PlatformInfo {
            smt_enabled: true,
            tsme_enabled: true,
            tio_enabled: true,
            ..base_platform_info()
        },
        ..sim_entry()
    };
    let report = report_for(&entry, |_| {});
    run(&report, std::slice::from_ref(&entry), &strict()).unwrap();
    // "Allowed" is a maximum: the report need not have them.
    let report = report_for(&entry, |r| {
        for bit in [0, 1, 7] {
            set_platform_bit(r, bit, false);
        }
    });
    run(&report, &[entry], &strict()).unwrap();
}

#[test]
fn launch_mitigation_vector_missing_bits() {
    let report = report_for(&sim_entry(), |r| {
        put(r, LAUNCH_MIT, &0b100u64.to_le_bytes())
    });
    assert_eq!(
        reason(&report, sim_entry(), &strict()),
        Error::LaunchMitigationVectorMissingBits {
            required: MIT_VECTOR,
            found: 0b100,
        }
    );
}

#[test]
fn current_mitigation_vector_missing_bits() {
    let report = report_for(&sim_entry(), |r| {
        put(r, CURRENT_MIT, &0b1001u64.to_le_bytes())
    });
    let error = reason(&report, sim_entry(), &strict());
    assert_eq!(
        error,
        Error::CurrentMitigationVectorMissingBits {
            required: MIT_VECTOR,
            found: 0b1001,
        }
    );
    assert_eq!(
        error.to_string(),
        "CURRENT_MIT_VECTOR 0x9 lacks required bits 0x4 (minimum 0x5)"
    );
    // Supersets pass.
    let report = report_for(&sim_entry(), |r| {
        put(r, LAUNCH_MIT, &u64::MAX.to_le_bytes());
        put(r, CURRENT_MIT, &0b111u64.to_le_bytes());
    });
    run(&report, &[sim_entry()], &strict()).unwrap();
}

/// Version 2 layout: no CPUID, no mitigation vectors, no ALIAS_CHECK_COMPLETE/TIO bits.
fn make_v2(r: &mut [u8]) {
    put(r, VERSION, &2u32.to_le_bytes());
    put(r, CPUID, &[0, 0, 0]);
    put(r, LAUNCH_MIT, &[0; 16]);
}

#[test]
fn mitigation_vectors_on_older_reports() {
    let entry = SnpReferenceValues {
        platform_info: PlatformInfo {
            alias_check_complete: false,
            ..base_platform_info()
        },
        ..sim_entry()
    };
    let report = report_for(&entry, make_v2);
    assert_eq!(
        reason(&report, entry.clone(), &strict()),
        Error::MitigationVectorsNotReported {
            required: MIT_VECTOR,
            version: 2,
        }
    );
    let no_minimum = SnpReferenceValues {
        minimum_mitigation_vector: 0,
        ..entry
    };
    let appraisal = run(&report, &[no_minimum], &strict()).unwrap();
    assert!(!appraisal.checks.mitigation_vectors);
}

/// Serves the test chain whatever CHIP_ID the report names (so a masked report finds its VCEK).
fn any_chip_collateral() -> impl CollateralSource {
    FetchCollateral(|item: CollateralItem, _: &CollateralRequest<'_>| {
        Some(
            match item {
                CollateralItem::Leaf => VCEK,
                CollateralItem::Intermediate => ASK,
                CollateralItem::Ark => ARK,
                CollateralItem::Crl => CRL_EMPTY,
            }
            .to_vec(),
        )
    })
}

#[test]
fn masked_chip_id_refused_by_default() {
    let report = report_for(&sim_entry(), |r| put(r, CHIP_ID, &[0; 64]));
    let run_masked = |policy: &AppraisalPolicy, entries: &[SnpReferenceValues]| {
        Verifier::new(entries, policy.clone()).appraise(
            NOW,
            &report,
            &any_chip_collateral(),
            &REPORT_DATA,
        )
    };
    assert_eq!(
        only_reason(run_masked(&strict(), &[sim_entry()])),
        Error::MaskedChipIdNotAllowed
    );
    let allow = strict().with_allow_masked_chip_id(true);
    run_masked(&allow, &[sim_entry()]).unwrap();
    // An allowlist never matches a masked chip.
    let listed = SnpReferenceValues {
        allowed_chip_ids: Some(vec![hex::encode(hwid())]),
        ..sim_entry()
    };
    assert!(matches!(
        only_reason(run_masked(&allow, &[listed])),
        Error::ChipIdNotAllowed { allowed: 1, .. }
    ));
}

#[test]
fn chip_id_allowlist() {
    let report = report_for(&sim_entry(), |_| {});
    let other = hex::encode([0x77; 64]);
    let refused = SnpReferenceValues {
        allowed_chip_ids: Some(vec![other.clone()]),
        ..sim_entry()
    };
    assert_eq!(
        reason(&report, refused, &strict()),
        Error::ChipIdNotAllowed {
            found: hwid().to_vec(),
            allowed: 1,
        }
    );
    let listed = SnpReferenceValues {
        allowed_chip_ids: Some(vec![other, hex::encode(hwid())]),
        ..sim_entry()
    };
    let appraisal = run(&report, &[listed], &strict()).unwrap();
    assert!(appraisal.checks.chip_id_allowlisted);
    // Empty list = any chip.
    let empty = SnpReferenceValues {
        allowed_chip_ids: Some(vec![]),
        ..sim_entry()
    };
    assert!(
        !run(&report, &[empty], &strict())
            .unwrap()
            .checks
            .chip_id_allowlisted
    );
}

#[test]
fn id_key_digest_mismatch() {
    let report = report_for(&sim_entry(), |r| r[ID_KEY_DIGEST] ^= 0x80);
    let expected = idblock::id_key_digest(&MEASUREMENT, &base_guest_policy()).unwrap();
    let mut found = expected;
    found[0] ^= 0x80;
    assert_eq!(
        reason(&report, sim_entry(), &strict()),
        Error::IdKeyDigestMismatch {
            expected: expected.to_vec(),
            found: found.to_vec(),
        }
    );
    let no_id_block = strict().with_require_id_block(false);
    let appraisal = run(&report, &[sim_entry()], &no_id_block).unwrap();
    assert!(!appraisal.checks.id_key_digest);
}

#[test]
fn id_key_digest_binds_the_guest_policy() {
    // A report launched under another policy (still within the maximum) carries another digest.
    let looser = GuestPolicy {
        smt: false,
        ..base_guest_policy()
    };
    let report = report_for(&sim_entry(), |r| {
        put(
            r,
            ID_KEY_DIGEST,
            &idblock::id_key_digest(&MEASUREMENT, &looser).unwrap(),
        );
        set_policy_bit(r, 16, false);
    });
    assert!(matches!(
        reason(&report, sim_entry(), &strict()),
        Error::IdKeyDigestMismatch { .. }
    ));
}

/// The cache memoizes the derived ID key digest; it must change nothing a caller can observe: a
/// good report passes again, and a report carrying another policy's digest is still refused
/// after the entry's digest was memoized.
#[test]
fn cached_id_key_digest_gives_the_same_verdicts() {
    let cache = Arc::new(VcekCache::new(4));
    let collateral = test_collateral();
    let good = report_for(&sim_entry(), |_| {});
    let looser = GuestPolicy {
        smt: false,
        ..base_guest_policy()
    };
    let other_digest = report_for(&sim_entry(), |r| {
        put(
            r,
            ID_KEY_DIGEST,
            &idblock::id_key_digest(&MEASUREMENT, &looser).unwrap(),
        );
    });
    let appraise_cached = |report: &[u8]| {
        Verifier::new(&[sim_entry()], strict())
            .with_cache(Arc::clone(&cache))
            .appraise(NOW, report, &collateral, &REPORT_DATA)
            .map(|appraisal| appraisal.checks.id_key_digest)
    };
    assert_eq!(appraise_cached(&good), Ok(true));
    assert_eq!(appraise_cached(&good), Ok(true));
    match appraise_cached(&other_digest) {
        Err(Error::NoReferenceValuesMatched { attempts }) => assert!(
            matches!(
                attempts.as_slice(),
                [(0, Error::IdKeyDigestMismatch { .. })]
            ),
            "{attempts:?}"
        ),
        other => panic!("expected an ID key mismatch, got {other:?}"),
    }
}

#[test]
fn crl_required_by_default() {
    let report = report_for(&sim_entry(), |_| {});
    let mut map = CollateralMap::new();
    map.insert_vcek(Product::Milan, &hwid(), &TCB, VCEK.to_vec());
    map.insert_ca(Product::Milan, CertRole::Ask, ASK.to_vec());
    map.insert_ca(Product::Milan, CertRole::Ark, ARK.to_vec());
    let result = Verifier::new(&[sim_entry()], strict()).appraise(NOW, &report, &map, &REPORT_DATA);
    assert_eq!(
        only_reason(result),
        Error::CrlMissing {
            product: Product::Milan
        }
    );
    let best_effort = strict().with_crl(CrlPolicy::BestEffort);
    let appraisal = Verifier::new(&[sim_entry()], best_effort.clone())
        .appraise(NOW, &report, &map, &REPORT_DATA)
        .unwrap();
    assert_eq!(
        appraisal.revocation(),
        &RevocationStatus::NotChecked {
            reason: NotCheckedReason::NoCrl
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Entry errors.

#[test]
fn entry_errors() {
    let report = report_for(&sim_entry(), |_| {});
    let cases: Vec<(SnpReferenceValues, IsExpected)> = vec![
        (
            SnpReferenceValues {
                minimum_tcb: MinimumTcb {
                    snp_version: None,
                    ..minimum(&TCB)
                },
                ..sim_entry()
            },
            |e| {
                *e == Error::MinimumTcbIncomplete {
                    missing: "SNPVersion",
                }
            },
        ),
        (
            SnpReferenceValues {
                simulated_ark_fingerprint: None,
                ..sim_entry()
            },
            |e| *e == Error::SimulatedArkFingerprintMissing,
        ),
        (
            SnpReferenceValues {
                simulated_ark_fingerprint: Some("00".into()),
                ..sim_entry()
            },
            |e| matches!(e, Error::InvalidReferenceValues { .. }),
        ),
        (
            SnpReferenceValues {
                product_name: "Naples".into(),
                ..sim_entry()
            },
            |e| matches!(e, Error::InvalidReferenceValues { .. }),
        ),
        (
            SnpReferenceValues {
                trusted_measurement: "abcd".into(),
                ..sim_entry()
            },
            |e| {
                matches!(e, Error::InvalidReferenceValues { .. })
                    && e.to_string().contains("TrustedMeasurement")
            },
        ),
        (
            SnpReferenceValues {
                allowed_chip_ids: Some(vec!["zz".into()]),
                ..sim_entry()
            },
            |e| matches!(e, Error::InvalidReferenceValues { .. }),
        ),
        (
            SnpReferenceValues {
                apeip: Some("0000f000".into()),
                ..sim_entry()
            },
            |e| *e == Error::ApEipUnsupported,
        ),
    ];
    for (entry, check) in cases {
        let error = reason(&report, entry.clone(), &strict());
        assert!(check(&error), "{entry:?}: {error:?}");
    }
}

#[test]
fn no_entries() {
    let report = report_for(&sim_entry(), |_| {});
    assert_eq!(
        run(&report, &[], &strict()).unwrap_err(),
        Error::NoSnpReferenceValues
    );
}

// ---------------------------------------------------------------------------------------------
// Several entries.

#[test]
fn every_entry_reason_is_listed() {
    let report = report_for(&sim_entry(), |_| {});
    let wrong_measurement = SnpReferenceValues {
        trusted_measurement: hex::encode([0x05; 48]),
        ..sim_entry()
    };
    let hardware = SnpReferenceValues {
        platform: "Metal-QEMU-SNP".into(),
        simulated_ark_fingerprint: None,
        ..sim_entry()
    };
    let wants_single_socket_off_smt = SnpReferenceValues {
        guest_policy: GuestPolicy {
            smt: false,
            ..base_guest_policy()
        },
        ..sim_entry()
    };
    let entries = [
        wrong_measurement,
        hardware,
        wants_single_socket_off_smt.clone(),
    ];
    let error = run(&report, &entries, &strict()).unwrap_err();
    let Error::NoReferenceValuesMatched { attempts } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts[0],
        (
            0,
            Error::MeasurementMismatch {
                expected: vec![0x05; 48],
                found: MEASUREMENT.to_vec(),
            }
        )
    );
    assert!(matches!(
        attempts[1],
        (
            1,
            Error::UntrustedRoot {
                product: Product::Milan,
                ..
            }
        )
    ));
    assert!(matches!(attempts[2], (2, Error::SmtNotAllowed { .. })));
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "no SEV-SNP reference values accept the report:");
    assert_eq!(
        lines[1],
        format!(
            "ReferenceValues.snp[0]: measurement mismatch: expected {}, found {}",
            "05".repeat(48),
            "4d".repeat(48)
        )
    );
    assert!(
        lines[2].starts_with("ReferenceValues.snp[1]: untrusted root: the presented ARK"),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("ReferenceValues.snp[2]: guest policy 0x"));

    // A matching entry after failing ones is found, with its index.
    let entries = [entries[0].clone(), entries[1].clone(), sim_entry()];
    let appraisal = run(&report, &entries, &strict()).unwrap();
    assert_eq!(appraisal.matched_index, 2);
}

// ---------------------------------------------------------------------------------------------
// Simulated pin vs real entry.

#[test]
fn test_ark_chain_is_not_trusted_by_a_hardware_entry() {
    let report = report_for(&sim_entry(), |_| {});
    for platform in ["Metal-QEMU-SNP", "", "AKS-CLH-SNP"] {
        // Even with the fingerprint field set: a hardware entry ignores it.
        let hardware = SnpReferenceValues {
            platform: platform.into(),
            ..sim_entry()
        };
        assert_eq!(
            trust_anchor(&hardware).unwrap(),
            TrustAnchor::Amd(Product::Milan)
        );
        assert!(matches!(
            reason(&report, hardware, &strict()),
            Error::UntrustedRoot {
                product: Product::Milan,
                ..
            }
        ));
    }
}

/// go-sev-guest's real Milan report with its VCEK and AMD's Milan chain.
fn gosevguest() -> (Vec<u8>, CollateralMap) {
    let report = include_bytes!("vectors/gosevguest_attestation.bin").to_vec();
    let unverified = UnverifiedReport::from_bytes(&report).unwrap();
    let mut map = CollateralMap::new();
    map.insert_vcek(
        Product::Milan,
        unverified.chip_id(),
        &unverified.reported_tcb(Product::Milan),
        include_bytes!("vectors/gosevguest_vcek.der").to_vec(),
    );
    map.insert_cert_chain_pem(
        Product::Milan,
        LeafKind::Vcek,
        include_bytes!("vectors/cert_chain_milan"),
    )
    .unwrap();
    (report, map)
}

#[test]
fn amd_rooted_report_is_not_trusted_by_a_simulated_entry() {
    let (report, map) = gosevguest();
    let entry = entry_from_report(&report, Product::Milan);
    let simulated = SnpReferenceValues {
        platform: "Simulated-SNP".into(),
        simulated_ark_fingerprint: Some(hex::encode(sha256(ARK))),
        ..entry.clone()
    };
    let policy = real_policy();
    let error = only_reason(Verifier::new(&[simulated], policy.clone()).appraise(
        T_2025_01_01,
        &report,
        &map,
        report_data_of(&report),
    ));
    assert!(
        matches!(
            error,
            Error::UntrustedRoot {
                product: Product::Milan,
                ..
            }
        ),
        "{error:?}"
    );
    // Pinning AMD's own ARK as a "simulated" root is refused too.
    let pinning_amd = SnpReferenceValues {
        platform: "Simulated-SNP".into(),
        simulated_ark_fingerprint: Some(hex::encode(sha256(amd_ark(Product::Milan)))),
        ..entry
    };
    let error = only_reason(Verifier::new(&[pinning_amd], policy.clone()).appraise(
        T_2025_01_01,
        &report,
        &map,
        report_data_of(&report),
    ));
    assert!(
        matches!(
            error,
            Error::PinnedAnchorIsAmdRoot {
                product: Product::Milan,
                ..
            }
        ),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Real AMD-signed vectors through hardware entries.

fn report_data_of(report: &[u8]) -> &[u8; 64] {
    report[REPORT_DATA_AT..REPORT_DATA_AT + 64]
        .try_into()
        .unwrap()
}

/// Reference values taken from a report's own fields (hardware entry, AMD root).
fn entry_from_report(report: &[u8], product: Product) -> SnpReferenceValues {
    let u64_at = |at: usize| u64::from_le_bytes(report[at..at + 8].try_into().unwrap());
    let policy = u64_at(POLICY);
    let bit = |value: u64, n: u32| value & 1 << n != 0;
    let info = u64_at(PLATFORM_INFO);
    let tcb = |at: usize| TcbVersion::from_bytes(report[at..at + 8].try_into().unwrap(), product);
    let (reported, launch) = (tcb(REPORTED_TCB), tcb(LAUNCH_TCB));
    let lowest = TcbVersion {
        fmc: None,
        bootloader: reported.bootloader.min(launch.bootloader),
        tee: reported.tee.min(launch.tee),
        snp: reported.snp.min(launch.snp),
        microcode: reported.microcode.min(launch.microcode),
    };
    SnpReferenceValues {
        platform: "Metal-QEMU-SNP".into(),
        product_name: product.name().into(),
        trusted_measurement: hex::encode(&report[MEASUREMENT_AT..MEASUREMENT_AT + 48]),
        minimum_tcb: minimum(&lowest),
        guest_policy: GuestPolicy {
            abi_minor: policy as u8,
            abi_major: (policy >> 8) as u8,
            smt: bit(policy, 16),
            migrate_ma: bit(policy, 18),
            debug: bit(policy, 19),
            single_socket: bit(policy, 20),
            cxl_allowed: bit(policy, 21),
            mem_aes_256_xts: bit(policy, 22),
            rapl_dis: bit(policy, 23),
            ciphertext_hiding_dram: bit(policy, 24),
            page_swap_disable: bit(policy, 25),
        },
        platform_info: PlatformInfo {
            smt_enabled: bit(info, 0),
            tsme_enabled: bit(info, 1),
            ecc_enabled: bit(info, 2),
            rapl_disabled: bit(info, 3),
            ciphertext_hiding_dram_enabled: bit(info, 4),
            alias_check_complete: bit(info, 5),
            tio_enabled: bit(info, 7),
        },
        minimum_mitigation_vector: 0,
        allowed_chip_ids: None,
        apeip: None,
        simulated_ark_fingerprint: None,
    }
}

/// The strict default, except that no real AMD CRL is among the public vectors.
fn real_policy() -> AppraisalPolicy {
    AppraisalPolicy::default().with_crl(CrlPolicy::BestEffort)
}

#[test]
fn gosevguest_report_is_debuggable() {
    let (report, map) = gosevguest();
    let entry = entry_from_report(&report, Product::Milan);
    assert!(entry.guest_policy.debug);
    let attempt = |policy: &AppraisalPolicy| {
        Verifier::new(std::slice::from_ref(&entry), policy.clone()).appraise(
            T_2025_01_01,
            &report,
            &map,
            report_data_of(&report),
        )
    };
    assert_eq!(
        only_reason(attempt(&real_policy())),
        Error::DebugNotAllowed {
            denied_by: DeniedBy::AppraisalPolicy,
            found: 0xb_0000,
        }
    );
    let debuggable = real_policy().with_allow_debug(true);
    // No Contrast ID block in a public vector.
    assert!(matches!(
        only_reason(attempt(&debuggable)),
        Error::IdKeyDigestMismatch { .. }
    ));
    let appraisal = attempt(&debuggable.with_require_id_block(false)).unwrap();
    assert_eq!(
        appraisal.evidence.anchor,
        contrast_attest::chain::AnchorKind::Amd
    );
    assert_eq!(
        appraisal.revocation(),
        &RevocationStatus::NotChecked {
            reason: NotCheckedReason::NoCrl
        }
    );
    assert_eq!(
        &appraisal.host_data[..],
        &report[HOST_DATA_AT..HOST_DATA_AT + 32]
    );
}

#[test]
fn trustee_vlek_report_is_vmpl_1() {
    let report = include_bytes!("vectors/test-vlek-report.bin").to_vec();
    let unverified = UnverifiedReport::from_bytes(&report).unwrap();
    let mut map = CollateralMap::new();
    map.insert_vlek(
        Product::Milan,
        &unverified.reported_tcb(Product::Milan),
        include_bytes!("vectors/test-vlek.der").to_vec(),
    );
    map.insert_cert_chain_pem(
        Product::Milan,
        LeafKind::Vlek,
        include_bytes!("vectors/ask_ark_milan_vlek.pem"),
    )
    .unwrap();
    let entry = entry_from_report(&report, Product::Milan);
    let attempt = |policy: &AppraisalPolicy| {
        Verifier::new(std::slice::from_ref(&entry), policy.clone()).appraise(
            T_2025_06_01,
            &report,
            &map,
            report_data_of(&report),
        )
    };
    assert_eq!(
        only_reason(attempt(&real_policy())),
        Error::VmplNotAllowed {
            allowed: VmplSet::only(0),
            found: 1,
        }
    );
    let vmpl1 = real_policy().with_allowed_vmpls(VmplSet::only(1));
    assert!(matches!(
        only_reason(attempt(&vmpl1)),
        Error::IdKeyDigestMismatch { .. }
    ));
    let appraisal = attempt(&vmpl1.with_require_id_block(false)).unwrap();
    assert_eq!(appraisal.evidence.leaf_kind, LeafKind::Vlek);
}

#[test]
fn real_vcek_reports_pass_with_reference_values_from_their_own_fields() {
    let no_id_block = real_policy().with_require_id_block(false);
    for v in vectors().into_iter().filter(|v| v.kind == LeafKind::Vcek) {
        let unverified = UnverifiedReport::from_bytes(&v.report).unwrap();
        let mut map = CollateralMap::new();
        map.insert_vcek(
            v.product,
            unverified.chip_id(),
            &unverified.reported_tcb(v.product),
            v.leaf.to_vec(),
        );
        let entry = entry_from_report(&v.report, v.product);
        let policy = no_id_block
            .clone()
            .with_allow_debug(entry.guest_policy.debug);
        let attempt = |policy: &AppraisalPolicy, entry: &SnpReferenceValues| {
            Verifier::new(std::slice::from_ref(entry), policy.clone()).appraise(
                v.time,
                &v.report,
                &map,
                report_data_of(&v.report),
            )
        };
        attempt(&policy, &entry).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        // With the ID block required (the default) they fail for that reason alone.
        let with_id_block = policy.clone().with_require_id_block(true);
        assert!(
            matches!(
                only_reason(attempt(&with_id_block, &entry)),
                Error::IdKeyDigestMismatch { .. }
            ),
            "{}",
            v.name
        );
        // Another nonce fails on REPORT_DATA.
        let other_nonce = Verifier::new(std::slice::from_ref(&entry), policy.clone()).appraise(
            v.time,
            &v.report,
            &map,
            &[0xEE; 64],
        );
        assert!(
            matches!(only_reason(other_nonce), Error::ReportDataMismatch { .. }),
            "{}",
            v.name
        );
    }
}

#[test]
fn missing_leaf_certificate_is_reported() {
    // A source without the leaf: the verification error is the entry's reason.
    struct Nothing;
    impl CollateralSource for Nothing {
        fn leaf(&self, _: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
            None
        }
    }
    let report = report_for(&sim_entry(), |_| {});
    let error = only_reason(Verifier::new(&[sim_entry()], strict()).appraise(
        NOW,
        &report,
        &Nothing,
        &REPORT_DATA,
    ));
    assert_eq!(
        error,
        Error::MissingCertificate {
            role: CertRole::Vcek,
            product: Product::Milan
        }
    );
}

#[test]
fn check_claims_refuses_evidence_verified_against_another_anchor() {
    let report = report_for(&sim_entry(), |_| {});
    let evidence = contrast_attest::verify_report(
        &report,
        &test_collateral(),
        &trust_anchor(&sim_entry()).unwrap(),
        NOW,
        CrlPolicy::Required,
        None,
    )
    .unwrap();
    contrast_attest::check_claims(&evidence, &sim_entry(), &REPORT_DATA, &strict()).unwrap();
    let hardware = SnpReferenceValues {
        platform: "Metal-QEMU-SNP".into(),
        ..sim_entry()
    };
    assert_eq!(
        contrast_attest::check_claims(&evidence, &hardware, &REPORT_DATA, &strict()),
        Err(Error::ReferenceAnchorMismatch {
            expected: TrustAnchor::Amd(Product::Milan),
            found: trust_anchor(&sim_entry()).unwrap(),
        })
    );
}
