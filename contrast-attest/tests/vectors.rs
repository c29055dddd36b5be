//! End-to-end verification of every real AMD-signed vector with the pinned roots.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use contrast_attest::chain::{
    self, AmdExtensions, CertRole, ChainCertificates, ChipBinding, LeafKind, NotCheckedReason,
    RevocationStatus, TrustAnchor,
};
use contrast_attest::collateral::{CollateralMap, CollateralSource, FetchCollateral};
use contrast_attest::report::{LeafKey, SigningKey, UnverifiedReport};
use contrast_attest::{CrlPolicy, Error, Product, TcbVersion, UnixTime, VcekCache, verify_report};

fn map_for(v: &Vector) -> CollateralMap {
    let unverified = UnverifiedReport::from_bytes(&v.report).unwrap();
    let tcb = unverified.reported_tcb(v.product);
    let mut map = CollateralMap::new();
    match v.kind {
        LeafKind::Vcek => map.insert_vcek(v.product, unverified.chip_id(), &tcb, v.leaf.to_vec()),
        LeafKind::Vlek => map.insert_vlek(v.product, &tcb, v.leaf.to_vec()),
    }
    map
}

#[test]
fn every_real_vector_verifies_end_to_end() {
    for v in vectors() {
        let map = map_for(&v);
        let evidence = verify_report(
            &v.report,
            &map,
            &TrustAnchor::Amd(v.product),
            v.time,
            CrlPolicy::BestEffort,
            None,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(evidence.leaf_kind, v.kind, "{}", v.name);
        assert_eq!(evidence.report.version(), v.version, "{}", v.name);
        assert_eq!(evidence.report.product(), v.product, "{}", v.name);
        assert_eq!(
            evidence.revocation,
            RevocationStatus::NotChecked {
                reason: NotCheckedReason::NoCrl
            }
        );
        let expected_binding = if v.kind == LeafKind::Vlek {
            ChipBinding::NotApplicable
        } else {
            ChipBinding::Matched
        };
        assert_eq!(evidence.chip_binding, expected_binding, "{}", v.name);
        assert!(!evidence.chain_from_cache);
    }
}

#[test]
fn report_milan_fields() {
    let v = &vectors()[0];
    let e = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
    let r = e.report;
    assert_eq!(r.guest_svn(), 0);
    assert_eq!(r.policy().bits(), 0x30000);
    assert!(r.policy().smt_allowed());
    assert!(!r.policy().debug_allowed());
    assert_eq!(r.vmpl(), 0);
    assert_eq!(r.signature_algo(), 1);
    let tcb = TcbVersion {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    };
    assert_eq!(r.current_tcb(), tcb);
    assert_eq!(r.reported_tcb(), tcb);
    assert_eq!(r.committed_tcb(), tcb);
    assert_eq!(r.launch_tcb(), tcb);
    assert_eq!(r.platform_info().bits(), 1);
    assert!(r.platform_info().smt_enabled());
    assert_eq!(r.signing_key(), SigningKey::Vcek);
    assert!(!r.author_key_en());
    assert_eq!(
        hex::encode(r.measurement()),
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(
        hex::encode(r.report_data()),
        "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd"
    );
    assert_eq!(
        hex::encode(r.chip_id()),
        "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6"
    );
    assert_eq!(
        hex::encode(r.report_id()),
        "92b3b47d59f0a2a10a74c5678868a80238cf593c01a82f3cffb878e904c28d5b"
    );
    assert_eq!(r.report_id_ma(), &[0xff; 32]);
    assert_eq!(r.host_data(), &[0; 32]);
    assert_eq!(r.cpuid(), None);
    assert_eq!(
        (r.current_major(), r.current_minor(), r.current_build()),
        (1, 52, 4)
    );
    assert_eq!(r.committed_version().to_string(), "1.52 build 4");
    assert_eq!(r.launch_mit_vector(), None);
}

#[test]
fn trustee_reports_fields() {
    let all = vectors();
    let v = &all[2];
    let e = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
    let r = e.report;
    assert_eq!(r.guest_svn(), 4);
    assert_eq!(r.policy().abi_minor(), 31);
    assert_eq!(r.policy().abi_major(), 0);
    assert_eq!(r.family_id()[0], 1);
    assert_eq!(r.image_id()[0], 2);
    assert_eq!(r.current_tcb().microcode, 206);
    assert_eq!(r.reported_tcb().microcode, 115);
    assert!(r.reported_tcb().is_component_wise_at_most(&r.current_tcb()));

    let v = &all[3];
    let e = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
    let r = e.report;
    assert_eq!(r.vmpl(), 1);
    assert_eq!(r.signing_key(), SigningKey::Vlek);
    assert_eq!(r.platform_info().bits(), 0x27);
    assert!(r.platform_info().alias_check_complete());
    assert!(r.platform_info().tsme_enabled());
    assert_eq!(r.chip_id(), &[0; 64]);
    assert_eq!(
        (r.cpuid_fam_id(), r.cpuid_mod_id(), r.cpuid_step()),
        (Some(0x19), Some(1), Some(1))
    );
    assert_eq!(r.reported_tcb().microcode, 217);
    assert_eq!(r.committed_tcb().microcode, 219);
    assert_eq!(r.current_tcb().microcode, 220);
    assert_eq!(
        e.chain.extensions().csp_id.as_deref(),
        Some("CN=cc-us-east-2.amazonaws.com")
    );

    let v = &all[4];
    let e = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Genoa),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
    let r = e.report;
    assert_eq!(r.cpuid().unwrap().product(), Some(Product::Genoa));
    assert_eq!(
        r.reported_tcb(),
        TcbVersion {
            fmc: None,
            bootloader: 10,
            tee: 0,
            snp: 23,
            microcode: 25
        }
    );
    assert_eq!(r.current_version().to_string(), "1.55 build 40");
}

#[test]
fn go_sev_guest_report_allows_debug() {
    let v = &vectors()[1];
    let e = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
    assert!(e.report.policy().debug_allowed());
    assert_eq!(e.report.report_data()[..5], [1, 2, 3, 4, 5]);
}

#[test]
fn expired_vlek_fails_after_expiry() {
    let v = &vectors()[3];
    let after = UnixTime::from_secs(1_765_411_200); // 2025-12-11
    let err = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        after,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateExpired {
                role: CertRole::Vlek,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("the VLEK expired at 2025-12-10T22:14:21Z"),
        "{err}"
    );
    let before = UnixTime::from_secs(1_700_000_000); // 2023-11
    let err = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        before,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateNotYetValid {
                role: CertRole::Vlek,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn vcek_expires_too() {
    let v = &vectors()[0];
    let after = UnixTime::from_secs(1_900_000_000); // 2030-03 is before expiry; use 2030-06
    let after = UnixTime::from_secs(after.secs() + 10_000_000);
    let err = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        after,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateExpired {
                role: CertRole::Vcek,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn turin_vcek_chain_verifies() {
    let leaf = include_bytes!("vectors/vcek_turin.der");
    let pem = include_bytes!("vectors/cert_chain_turin");
    let [ask, ark] = contrast_attest::collateral::parse_cert_chain_pem(pem, CertRole::Ask).unwrap();
    let certs = ChainCertificates {
        ark: Some(&ark),
        intermediate: Some(&ask),
        leaf,
    };
    let chain = chain::verify_chain(
        &TrustAnchor::Amd(Product::Turin),
        LeafKind::Vcek,
        &certs,
        T_2026_01_01,
    )
    .unwrap();
    let ext = chain.extensions();
    assert_eq!(ext.struct_version, Some(1));
    assert_eq!(ext.product_name.as_deref(), Some("Turin"));
    assert_eq!(
        (
            ext.fmc_spl,
            ext.bl_spl,
            ext.tee_spl,
            ext.snp_spl,
            ext.ucode_spl
        ),
        (Some(0), Some(0), Some(0), Some(0), Some(9))
    );
    assert_eq!(
        ext.hw_id.as_deref(),
        Some(&hex::decode("1e550a8ee5cf9f4d").unwrap()[..])
    );
    assert_eq!(ext.reserved_spl, [None, Some(0), Some(0), Some(0)]);

    // Binding against a crafted Turin REPORTED_TCB / CHIP_ID (fmc, bl, tee, snp, 0,0,0, ucode).
    let mut chip_id = [0u8; 64];
    chip_id[..8].copy_from_slice(&hex::decode("1e550a8ee5cf9f4d").unwrap());
    let tcb = [0, 0, 0, 0, 0, 0, 0, 9];
    assert_eq!(
        chain::check_binding(
            LeafKind::Vcek,
            ext,
            Product::Turin,
            SigningKey::Vcek,
            &tcb,
            &chip_id
        )
        .unwrap(),
        ChipBinding::Matched
    );
    let err = chain::check_binding(
        LeafKind::Vcek,
        ext,
        Product::Turin,
        SigningKey::Vcek,
        &[1, 0, 0, 0, 0, 0, 0, 9],
        &chip_id,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "reported TCB does not match the VCEK: fmc expected 0 (VCEK), found 1 (report)"
    );

    // Milan's ASK does not issue the Turin VCEK.
    let certs = ChainCertificates {
        ark: None,
        intermediate: None,
        leaf,
    };
    let err = chain::verify_chain(
        &TrustAnchor::Amd(Product::Milan),
        LeafKind::Vcek,
        &certs,
        T_2026_01_01,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::IssuerMismatch {
                role: CertRole::Vcek,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn milan_cert_chain_bundles_are_accepted() {
    let v = &vectors()[0];
    let mut map = map_for(v);
    map.insert_cert_chain_pem(
        Product::Milan,
        LeafKind::Vcek,
        include_bytes!("vectors/cert_chain_milan"),
    )
    .unwrap();
    verify_report(
        &v.report,
        &map,
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();

    let v = &vectors()[3];
    let mut map = map_for(v);
    map.insert_cert_chain_pem(
        Product::Milan,
        LeafKind::Vlek,
        include_bytes!("vectors/ask_ark_milan_vlek.pem"),
    )
    .unwrap();
    verify_report(
        &v.report,
        &map,
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
}

#[test]
fn wrong_vcek_fails_signature() {
    let all = vectors();
    let mut v = vectors().remove(0);
    v.leaf = all[2].leaf; // trustee VCEK (another chip) for the virtee report
    let key = LeafKey::from_untrusted_certificate(v.leaf, LeafKind::Vcek, Product::Milan).unwrap();
    let err = UnverifiedReport::from_bytes(&v.report)
        .unwrap()
        .verify(&key)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ReportSignatureInvalid {
            leaf: LeafKind::Vcek,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "report signature does not verify with the VCEK for chip {}",
            hex::encode(UnverifiedReport::from_bytes(&v.report).unwrap().chip_id())
        )
    );
}

#[test]
fn flipped_vcek_byte_fails_chain() {
    let v = &vectors()[0];
    let mut leaf = v.leaf.to_vec();
    leaf[40] ^= 0x80;
    let certs = ChainCertificates {
        ark: None,
        intermediate: None,
        leaf: &leaf,
    };
    assert!(
        chain::verify_chain(
            &TrustAnchor::Amd(Product::Milan),
            LeafKind::Vcek,
            &certs,
            v.time
        )
        .is_err()
    );
    // A flip inside the SPKI point of the TBS fails the ASK signature specifically.
    let mut leaf = v.leaf.to_vec();
    let n = leaf.len();
    let spot = n - 600;
    leaf[spot] ^= 1;
    let certs = ChainCertificates {
        ark: None,
        intermediate: None,
        leaf: &leaf,
    };
    let err = chain::verify_chain(
        &TrustAnchor::Amd(Product::Milan),
        LeafKind::Vcek,
        &certs,
        v.time,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CertificateSignatureInvalid { .. }
                | Error::CertificateParse { .. }
                | Error::LeafKeyNotP384 { .. }
        ),
        "{err}"
    );
}

#[test]
fn product_mismatch_between_anchor_and_cpuid() {
    let v = &vectors()[4]; // Genoa v3
    let err = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::ProductMismatch {
            expected: Product::Milan,
            found: Product::Genoa
        }
    );
}

#[test]
fn missing_leaf_is_reported() {
    let v = &vectors()[0];
    let err = verify_report(
        &v.report,
        &CollateralMap::new(),
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::MissingCertificate {
            role: CertRole::Vcek,
            product: Product::Milan
        }
    );
}

#[test]
fn required_crl_missing_fails() {
    let v = &vectors()[0];
    let err = verify_report(
        &v.report,
        &map_for(v),
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::Required,
        None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::CrlMissing {
            product: Product::Milan
        }
    );
}

#[test]
fn cache_makes_second_report_skip_the_chain() {
    let cache = VcekCache::new(2);
    let v = &vectors()[0];
    let calls = std::cell::Cell::new(0);
    let fetch = FetchCollateral(
        |item, _req: &contrast_attest::collateral::CollateralRequest<'_>| {
            calls.set(calls.get() + 1);
            (item == contrast_attest::collateral::CollateralItem::Leaf).then(|| v.leaf.to_vec())
        },
    );
    let first = verify_report(
        &v.report,
        &fetch,
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        Some(&cache),
    )
    .unwrap();
    assert!(!first.chain_from_cache);
    let after_first = calls.get();
    let second = verify_report(
        &v.report,
        &fetch,
        &TrustAnchor::Amd(Product::Milan),
        v.time,
        CrlPolicy::BestEffort,
        Some(&cache),
    )
    .unwrap();
    assert!(second.chain_from_cache);
    assert_eq!(
        calls.get(),
        after_first + 1,
        "only the CRL is asked for on a cache hit"
    );
    // Dates are re-checked on a hit.
    let err = verify_report(
        &v.report,
        &fetch,
        &TrustAnchor::Amd(Product::Milan),
        UnixTime::from_secs(2_000_000_000),
        CrlPolicy::BestEffort,
        Some(&cache),
    )
    .unwrap_err();
    assert!(matches!(err, Error::CertificateExpired { .. }), "{err}");
    // Bounded, oldest evicted; VLEK (no chip id) keyed by leaf hash.
    for w in vectors().iter().skip(1) {
        verify_report(
            &w.report,
            &map_for(w),
            &TrustAnchor::Amd(w.product),
            w.time,
            CrlPolicy::BestEffort,
            Some(&cache),
        )
        .unwrap();
    }
    assert_eq!(cache.len(), 2);
    let w = &vectors()[3];
    let again = verify_report(
        &w.report,
        &map_for(w),
        &TrustAnchor::Amd(w.product),
        w.time,
        CrlPolicy::BestEffort,
        Some(&cache),
    )
    .unwrap();
    assert!(again.chain_from_cache);
}

#[test]
fn amd_extensions_of_real_leaves() {
    let ext = AmdExtensions::from_certificate_der(
        include_bytes!("vectors/test-vlek.der"),
        CertRole::Vlek,
    )
    .unwrap();
    assert_eq!(ext.ucode_spl, Some(217));
    assert_eq!(ext.product_name.as_deref(), Some("Milan"));
    assert!(ext.hw_id.is_none());
    let ext = AmdExtensions::from_certificate_der(
        include_bytes!("vectors/genoa_vcek.der"),
        CertRole::Vcek,
    )
    .unwrap();
    assert_eq!(
        (ext.bl_spl, ext.snp_spl, ext.ucode_spl),
        (Some(10), Some(23), Some(25))
    );
    assert_eq!(ext.hw_id.as_ref().map(Vec::len), Some(64));
}

#[allow(dead_code)]
fn _assert_source_object_safe(_: &dyn CollateralSource) {}

/// The compiled-in ARK/ASK signatures are verified once per process; a presented ASK that differs
/// from the compiled-in one in a single signature bit is still checked, before and after the
/// compiled-in chain has been verified (and remembered).
#[test]
fn tampered_presented_ask_fails_even_after_the_compiled_in_chain_verified() {
    let v = &vectors()[0];
    let mut ask = AMD_ASK_MILAN.to_vec();
    let last = ask.len() - 1;
    ask[last] ^= 1; // the last byte of the signature BIT STRING
    let tampered = ChainCertificates {
        ark: None,
        intermediate: Some(&ask),
        leaf: v.leaf,
    };
    let compiled_in = ChainCertificates {
        ark: None,
        intermediate: None,
        leaf: v.leaf,
    };
    let anchor = TrustAnchor::Amd(Product::Milan);
    for _ in 0..2 {
        let err = chain::verify_chain(&anchor, LeafKind::Vcek, &tampered, v.time).unwrap_err();
        assert_eq!(
            err,
            Error::CertificateSignatureInvalid {
                role: CertRole::Ask,
                issuer: CertRole::Ark,
            }
        );
        chain::verify_chain(&anchor, LeafKind::Vcek, &compiled_in, v.time).unwrap();
        // The same bytes presented explicitly take the remembered path and still verify.
        let presented = ChainCertificates {
            intermediate: Some(AMD_ASK_MILAN),
            ..compiled_in
        };
        chain::verify_chain(&anchor, LeafKind::Vcek, &presented, v.time).unwrap();
    }
}

/// An empty KDS answer or cache file is an error, not a panic (x509-cert's `load_pem_chain`
/// underflows on it; found by the `kds_answer` fuzz target).
#[test]
fn an_empty_cert_chain_is_refused() {
    for empty in [&b""[..], b"\n", b"\r\n\r\n"] {
        let error =
            contrast_attest::collateral::parse_cert_chain_pem(empty, CertRole::Ask).unwrap_err();
        assert!(
            matches!(
                error,
                contrast_attest::Error::CertificateParse {
                    role: CertRole::Ask,
                    ..
                }
            ),
            "{error:?}"
        );
    }
}
