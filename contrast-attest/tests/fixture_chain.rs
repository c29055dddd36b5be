//! Tests with the generated test PKI in `tests/fixtures` (NOT AMD-signed; see gen.sh): forged
//! roots, pinned anchors, PSS parameters, CRLs, binding mismatches and certificate tables.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use common::*;
use contrast_attest::TcbComponent;
use contrast_attest::chain::{
    self, AmdExtensions, CertRole, ChainCertificates, ChipBinding, LeafKind, NotCheckedReason,
    RevocationStatus, TrustAnchor,
};
use contrast_attest::collateral::{CertTable, CertTableEntry, CertTableError, CollateralMap};
use contrast_attest::report::SigningKey;
use contrast_attest::{CrlPolicy, Error, Product, TcbVersion, UnixTime, VcekCache, verify_report};

const ARK: &[u8] = include_bytes!("fixtures/test_ark.der");
const ASK: &[u8] = include_bytes!("fixtures/test_ask.der");
const VCEK: &[u8] = include_bytes!("fixtures/test_vcek.der");
const VCEK_SALT32: &[u8] = include_bytes!("fixtures/test_vcek_salt32.der");
const VCEK_KEY: &[u8] = include_bytes!("fixtures/test_vcek_key.pk8");
const CRL_EMPTY: &[u8] = include_bytes!("fixtures/test_crl_empty.der");
const CRL_PKCS1: &[u8] = include_bytes!("fixtures/test_crl_pkcs1.der");
const CRL_WRONG_SIGNER: &[u8] = include_bytes!("fixtures/test_crl_wrong_signer.der");
const CRL_ASK_REVOKED: &[u8] = include_bytes!("fixtures/test_crl_ask_revoked.der");

/// Inside the CRLs' thisUpdate (2026-01-01) .. nextUpdate (2026-02-01).
const T_CRL_FRESH: UnixTime = UnixTime::from_secs(1_767_225_600 + 86_400);
const T_CRL_STALE: UnixTime = UnixTime::from_secs(1_769_904_000 + 86_400);
const TCB: TcbVersion = TcbVersion {
    fmc: None,
    bootloader: 3,
    tee: 0,
    snp: 8,
    microcode: 0xd1,
};

fn hwid() -> Vec<u8> {
    hex::decode(include_str!("fixtures/test_hwid.hex").trim()).unwrap()
}

fn pinned() -> TrustAnchor {
    TrustAnchor::Pinned {
        ark_der_sha256: sha256(ARK),
        product: Product::Milan,
    }
}

/// report_milan.hex re-targeted to the test VCEK (chip id, reported TCB) and re-signed.
fn signed_report(mutate: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut report = report_milan();
    report[0x1A0..0x1E0].copy_from_slice(&hwid());
    report[0x180..0x188].copy_from_slice(&TCB.to_bytes(Product::Milan));
    mutate(&mut report);
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, VCEK_KEY).unwrap();
    let sig = key.sign(&SystemRandom::new(), &report[..0x2A0]).unwrap();
    let sig = sig.as_ref();
    report[0x2A0..0x330].fill(0);
    for i in 0..48 {
        report[0x2A0 + i] = sig[47 - i];
        report[0x2E8 + i] = sig[95 - i];
    }
    report
}

fn collateral(crl: Option<&[u8]>) -> CollateralMap {
    let mut map = CollateralMap::new();
    map.insert_vcek(Product::Milan, &hwid(), &TCB, VCEK.to_vec());
    map.insert_ca(Product::Milan, CertRole::Ask, ASK.to_vec());
    map.insert_ca(Product::Milan, CertRole::Ark, ARK.to_vec());
    if let Some(crl) = crl {
        map.insert_crl(Product::Milan, LeafKind::Vcek, crl.to_vec());
    }
    map
}

fn verify(crl: Option<&[u8]>, policy: CrlPolicy, now: UnixTime) -> Result<RevocationStatus, Error> {
    let report = signed_report(|_| {});
    verify_report(&report, &collateral(crl), &pinned(), now, policy, None).map(|e| e.revocation)
}

#[test]
fn pinned_test_chain_verifies() {
    let report = signed_report(|_| {});
    let e = verify_report(
        &report,
        &collateral(None),
        &pinned(),
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
    assert_eq!(e.anchor, chain::AnchorKind::Pinned);
    assert_eq!(e.chip_binding, ChipBinding::Matched);
    assert_eq!(e.report.reported_tcb(), TCB);
}

#[test]
fn forged_amd_looking_root_is_untrusted() {
    let report = signed_report(|_| {});
    let err = verify_report(
        &report,
        &collateral(None),
        &TrustAnchor::Amd(Product::Milan),
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UntrustedRoot {
                product: Product::Milan,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("untrusted root: the presented ARK"),
        "{err}"
    );
    // Without presenting our ARK, our ASK does not verify under the real ARK.
    let certs = ChainCertificates {
        ark: None,
        intermediate: Some(ASK),
        leaf: VCEK,
    };
    let err = chain::verify_chain(
        &TrustAnchor::Amd(Product::Milan),
        LeafKind::Vcek,
        &certs,
        T_CRL_FRESH,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::CertificateSignatureInvalid {
            role: CertRole::Ask,
            issuer: CertRole::Ark
        }
    );
    // A pinned anchor with a different fingerprint refuses our ARK too.
    let other = TrustAnchor::Pinned {
        ark_der_sha256: [7; 32],
        product: Product::Milan,
    };
    let err = verify_report(
        &report,
        &collateral(None),
        &other,
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::UntrustedRoot { .. }), "{err}");
}

#[test]
fn amd_root_cannot_be_pinned() {
    let anchor = TrustAnchor::Pinned {
        ark_der_sha256: sha256(amd_ark(Product::Genoa)),
        product: Product::Genoa,
    };
    let certs = ChainCertificates {
        ark: Some(amd_ark(Product::Genoa)),
        intermediate: None,
        leaf: VCEK,
    };
    let err = chain::verify_chain(&anchor, LeafKind::Vcek, &certs, T_CRL_FRESH).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PinnedAnchorIsAmdRoot {
                product: Product::Genoa,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn cache_separates_anchors() {
    let cache = VcekCache::new(8);
    let report = signed_report(|_| {});
    verify_report(
        &report,
        &collateral(None),
        &pinned(),
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        Some(&cache),
    )
    .unwrap();
    // Same chip and TCB under the AMD anchor: not served from the pinned entry.
    let err = verify_report(
        &report,
        &collateral(None),
        &TrustAnchor::Amd(Product::Milan),
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        Some(&cache),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UntrustedRoot { .. }), "{err}");
}

#[test]
fn pss_salt_other_than_48_is_rejected() {
    let certs = ChainCertificates {
        ark: Some(ARK),
        intermediate: Some(ASK),
        leaf: VCEK_SALT32,
    };
    let err = chain::verify_chain(&pinned(), LeafKind::Vcek, &certs, T_CRL_FRESH).unwrap_err();
    assert_eq!(
        err,
        Error::PssParameters {
            role: CertRole::Vcek,
            reason: "salt length 32".into()
        }
    );
}

#[test]
fn crl_fresh_and_clean_is_checked() {
    let status = verify(Some(CRL_EMPTY), CrlPolicy::Required, T_CRL_FRESH).unwrap();
    assert!(
        matches!(status, RevocationStatus::Checked { .. }),
        "{status:?}"
    );
    let status = verify(Some(CRL_EMPTY), CrlPolicy::BestEffort, T_CRL_FRESH).unwrap();
    assert!(
        matches!(status, RevocationStatus::Checked { .. }),
        "{status:?}"
    );
}

#[test]
fn crl_revoked_ask_fails_in_both_policies() {
    for policy in [CrlPolicy::Required, CrlPolicy::BestEffort] {
        let err = verify(Some(CRL_ASK_REVOKED), policy, T_CRL_FRESH).unwrap_err();
        assert_eq!(
            err,
            Error::Revoked {
                role: CertRole::Ask,
                serial: vec![1, 0, 1]
            }
        );
        assert_eq!(
            err.to_string(),
            "the ASK (serial 010001) is revoked by the ARK's CRL"
        );
    }
}

#[test]
fn crl_stale_fails_required_and_is_reported_best_effort() {
    // The test certificates are valid until 2035, so only the CRL is stale.
    let err = verify(Some(CRL_EMPTY), CrlPolicy::Required, T_CRL_STALE).unwrap_err();
    assert!(matches!(err, Error::CrlStale { .. }), "{err}");
    let status = verify(Some(CRL_EMPTY), CrlPolicy::BestEffort, T_CRL_STALE).unwrap();
    match status {
        RevocationStatus::NotChecked {
            reason: NotCheckedReason::Unusable(e),
        } => {
            assert!(matches!(*e, Error::CrlStale { .. }));
        }
        other => panic!("{other:?}"),
    }
    let err = verify(
        Some(CRL_EMPTY),
        CrlPolicy::Required,
        UnixTime::from_secs(1_760_000_000),
    )
    .unwrap_err();
    assert!(matches!(err, Error::CrlNotYetValid { .. }), "{err}");
}

#[test]
fn crl_wrong_signer_or_algorithm() {
    let err = verify(Some(CRL_WRONG_SIGNER), CrlPolicy::Required, T_CRL_FRESH).unwrap_err();
    assert_eq!(
        err,
        Error::CertificateSignatureInvalid {
            role: CertRole::Crl,
            issuer: CertRole::Ark
        }
    );
    let status = verify(Some(CRL_WRONG_SIGNER), CrlPolicy::BestEffort, T_CRL_FRESH).unwrap();
    assert!(matches!(
        status,
        RevocationStatus::NotChecked {
            reason: NotCheckedReason::Unusable(_)
        }
    ));
    let err = verify(Some(CRL_PKCS1), CrlPolicy::Required, T_CRL_FRESH).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateSignatureAlgorithm {
                role: CertRole::Crl,
                ..
            }
        ),
        "{err}"
    );
    let err = verify(Some(b"not a crl"), CrlPolicy::Required, T_CRL_FRESH).unwrap_err();
    assert!(matches!(err, Error::CrlParse { .. }), "{err}");
}

#[test]
fn crl_is_memoized_in_the_cache() {
    let cache = VcekCache::new(4);
    let report = signed_report(|_| {});
    for _ in 0..2 {
        let e = verify_report(
            &report,
            &collateral(Some(CRL_EMPTY)),
            &pinned(),
            T_CRL_FRESH,
            CrlPolicy::Required,
            Some(&cache),
        )
        .unwrap();
        assert!(matches!(e.revocation, RevocationStatus::Checked { .. }));
    }
    let err = verify_report(
        &report,
        &collateral(Some(CRL_ASK_REVOKED)),
        &pinned(),
        T_CRL_FRESH,
        CrlPolicy::Required,
        Some(&cache),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Revoked { .. }));
}

fn test_extensions() -> AmdExtensions {
    AmdExtensions::from_certificate_der(VCEK, CertRole::Vcek).unwrap()
}

fn chip() -> [u8; 64] {
    hwid().try_into().unwrap()
}

#[test]
fn binding_tcb_component_mismatch() {
    let ext = test_extensions();
    let base = TCB.to_bytes(Product::Milan);
    for (index, component, expected) in [
        (0usize, TcbComponent::Bootloader, 3u8),
        (1, TcbComponent::Tee, 0),
        (6, TcbComponent::Snp, 8),
        (7, TcbComponent::Microcode, 0xd1),
    ] {
        let mut tcb = base;
        tcb[index] = tcb[index].wrapping_add(1);
        let err = chain::check_binding(
            LeafKind::Vcek,
            &ext,
            Product::Milan,
            SigningKey::Vcek,
            &tcb,
            &chip(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::TcbMismatch {
                leaf: LeafKind::Vcek,
                component,
                expected,
                found: expected.wrapping_add(1)
            }
        );
    }
    let mut tcb = base;
    tcb[0] = 4;
    let err = chain::check_binding(
        LeafKind::Vcek,
        &ext,
        Product::Milan,
        SigningKey::Vcek,
        &tcb,
        &chip(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "reported TCB does not match the VCEK: bootloader expected 3 (VCEK), found 4 (report)"
    );
}

#[test]
fn binding_missing_tcb_extension() {
    let mut ext = test_extensions();
    ext.snp_spl = None;
    let err = chain::check_binding(
        LeafKind::Vcek,
        &ext,
        Product::Milan,
        SigningKey::Vcek,
        &TCB.to_bytes(Product::Milan),
        &chip(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::MissingTcbExtension {
            leaf: LeafKind::Vcek,
            component: TcbComponent::Snp
        }
    );
    let mut ext = test_extensions();
    ext.fmc_spl = Some(0);
    let err = chain::check_binding(
        LeafKind::Vcek,
        &ext,
        Product::Milan,
        SigningKey::Vcek,
        &TCB.to_bytes(Product::Milan),
        &chip(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MalformedExtension { .. }), "{err}");
    let mut ext = test_extensions();
    ext.reserved_spl[2] = Some(1);
    let err = chain::check_binding(
        LeafKind::Vcek,
        &ext,
        Product::Milan,
        SigningKey::Vcek,
        &TCB.to_bytes(Product::Milan),
        &chip(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MalformedExtension { .. }), "{err}");
}

#[test]
fn binding_chip_id_mismatch_and_mask() {
    let ext = test_extensions();
    let tcb = TCB.to_bytes(Product::Milan);
    let mut other = chip();
    other[63] ^= 1;
    let err = chain::check_binding(
        LeafKind::Vcek,
        &ext,
        Product::Milan,
        SigningKey::Vcek,
        &tcb,
        &other,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ChipIdMismatch { .. }), "{err}");
    // Full values, so a refusal can be copied into a manifest.
    assert_eq!(
        err.to_string(),
        format!(
            "CHIP_ID does not match the VCEK: expected {} (VCEK hwID), found {} (report)",
            hex::encode(chip()),
            hex::encode(other)
        )
    );
    assert_eq!(
        chain::check_binding(
            LeafKind::Vcek,
            &ext,
            Product::Milan,
            SigningKey::Vcek,
            &tcb,
            &[0; 64]
        )
        .unwrap(),
        ChipBinding::Masked
    );
    let mut short = test_extensions();
    short.hw_id = Some(vec![1; 8]);
    let err = chain::check_binding(
        LeafKind::Vcek,
        &short,
        Product::Milan,
        SigningKey::Vcek,
        &tcb,
        &chip(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::HwIdLength {
            product: Product::Milan,
            expected: 64,
            found: 8
        }
    );
    let mut none = test_extensions();
    none.hw_id = None;
    let err = chain::check_binding(
        LeafKind::Vcek,
        &none,
        Product::Milan,
        SigningKey::Vcek,
        &tcb,
        &chip(),
    )
    .unwrap_err();
    assert_eq!(err, Error::MissingHwId);
}

#[test]
fn binding_leaf_kind_mismatch() {
    let ext = test_extensions();
    let tcb = TCB.to_bytes(Product::Milan);
    let err = chain::check_binding(
        LeafKind::Vcek,
        &ext,
        Product::Milan,
        SigningKey::Vlek,
        &tcb,
        &chip(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::SignerKindMismatch {
            report: SigningKey::Vlek,
            leaf: LeafKind::Vcek
        }
    );
    assert_eq!(
        err.to_string(),
        "the report says it is signed by the VLEK, but the leaf certificate is a VCEK"
    );
    // End to end: a correctly signed report that claims VLEK while the VCEK signed it.
    let report = signed_report(|r| r[0x48] = 0x4);
    let mut map = collateral(None);
    map.insert_vlek(Product::Milan, &TCB, VCEK.to_vec());
    map.insert_ca(Product::Milan, CertRole::Asvk, ASK.to_vec());
    let err = verify_report(
        &report,
        &map,
        &pinned(),
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::VlekExtensions { .. }), "{err}");
}

#[test]
fn signed_report_with_wrong_tcb_fails_binding_end_to_end() {
    // The VCEK signs a report whose REPORTED_TCB differs from its certificate (a leaked-key
    // scenario): the signature verifies, the binding does not.
    let report = signed_report(|r| r[0x187] = 0xd2);
    let mut map = collateral(None);
    let claimed = TcbVersion {
        microcode: 0xd2,
        ..TCB
    };
    map.insert_vcek(Product::Milan, &hwid(), &claimed, VCEK.to_vec());
    let err = verify_report(
        &report,
        &map,
        &pinned(),
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::TcbMismatch {
            leaf: LeafKind::Vcek,
            component: TcbComponent::Microcode,
            expected: 0xd1,
            found: 0xd2
        }
    );
    // And a wrong chip id.
    let report = signed_report(|r| r[0x1A0] ^= 0xff);
    let mut other = hwid();
    other[0] ^= 0xff;
    let mut map = collateral(None);
    map.insert_vcek(Product::Milan, &other, &TCB, VCEK.to_vec());
    let err = verify_report(
        &report,
        &map,
        &pinned(),
        T_CRL_FRESH,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ChipIdMismatch { .. }), "{err}");
}

fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let header = 24 * (entries.len() + 1);
    let mut out = Vec::new();
    let mut data = Vec::new();
    for (g, d) in entries {
        out.extend_from_slice(g);
        out.extend_from_slice(&u32::try_from(header + data.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(d.len()).unwrap().to_le_bytes());
        data.extend_from_slice(d);
    }
    out.extend_from_slice(&[0; 24]);
    out.extend_from_slice(&data);
    out
}

#[test]
fn cert_table_collateral() {
    let bytes = table(&[
        (CertTableEntry::Vcek.guid(), VCEK),
        (CertTableEntry::Ask.guid(), ASK),
        (CertTableEntry::Ark.guid(), ARK),
        (CertTableEntry::Crl.guid(), CRL_EMPTY),
    ]);
    let parsed = CertTable::parse(&bytes).unwrap();
    assert_eq!(parsed.entries().len(), 4);
    assert_eq!(parsed.get(&CertTableEntry::Vcek.guid()), Some(VCEK));
    let report = signed_report(|_| {});
    let e = verify_report(
        &report,
        &parsed,
        &pinned(),
        T_CRL_FRESH,
        CrlPolicy::Required,
        None,
    )
    .unwrap();
    assert!(matches!(e.revocation, RevocationStatus::Checked { .. }));
    assert_eq!(
        CertTableEntry::Vcek.guid(),
        hex_literal::hex!("63da758de6644564adc5f4b93be8accd")
    );
    assert_eq!(
        CertTableEntry::Ark.guid(),
        hex_literal::hex!("c0b406a4a803495297433fb6014cd0ae")
    );
}

#[test]
fn cert_table_rejects_malformed() {
    let bytes = table(&[(CertTableEntry::Vcek.guid(), VCEK)]);
    assert!(matches!(
        CertTable::parse(&bytes[..24]),
        Err(CertTableError::Unterminated { index: 1, .. })
    ));
    let mut bad = bytes.clone();
    bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        CertTable::parse(&bad),
        Err(CertTableError::OutOfBounds { .. })
    ));
    let mut inside = bytes.clone();
    inside[16..20].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        CertTable::parse(&inside),
        Err(CertTableError::OverlapsHeaders { offset: 0, .. })
    ));
    let dup = table(&[
        (CertTableEntry::Vcek.guid(), VCEK),
        (CertTableEntry::Vcek.guid(), VCEK),
    ]);
    assert!(matches!(
        CertTable::parse(&dup),
        Err(CertTableError::Duplicate { what: "vcek", .. })
    ));
    assert_eq!(CertTable::parse(&[0; 24]).unwrap().entries().len(), 0);
}
