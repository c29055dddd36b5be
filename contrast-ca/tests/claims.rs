//! Claim extensions of a real AMD-signed Milan report (virtee's `report_milan.hex`), verified
//! through the production verifier, and a mesh certificate carrying them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use contrast_attest::collateral::CollateralMap;
use contrast_attest::report::UnverifiedReport;
use contrast_attest::{CrlPolicy, Product, TrustAnchor, UnixTime, VerifiedEvidence, verify_report};
use contrast_ca::claims::{WORKLOAD_SECRET_ID_OID, snp_claim_oid};
use contrast_ca::{mesh_cert_extensions, snp_claim_extensions};
use hex_literal::hex;
use rand_core::OsRng;

const REPORT_HEX: &str = include_str!("../../contrast-attest/tests/vectors/report_milan.hex");
const VCEK: &[u8] = include_bytes!("../../contrast-attest/tests/vectors/vcek_milan.der");

fn with_report<T>(f: impl FnOnce(&VerifiedEvidence<'_>) -> T) -> T {
    let report = hex::decode(REPORT_HEX.trim()).unwrap();
    let unverified = UnverifiedReport::from_bytes(&report).unwrap();
    let tcb = unverified.reported_tcb(Product::Milan);
    let mut map = CollateralMap::new();
    map.insert_vcek(Product::Milan, unverified.chip_id(), &tcb, VCEK.to_vec());
    let evidence = verify_report(
        &report,
        &map,
        &TrustAnchor::Amd(Product::Milan),
        UnixTime::from_secs(1_735_689_600),
        CrlPolicy::BestEffort,
        None,
    )
    .unwrap();
    f(&evidence)
}

/// Upstream's emission order (see `contrast_ca::claims`).
const EMISSION_ORDER: [u32; 46] = [
    1, 2, 3, 4, 7, 6, 5, 8, 9, 10, 11, 12, 14, 13, 15, 16, 17, 20, 18, 19, 21, 22, 23, 24, 25, 26,
    27, 28, 30, 29, 31, 32, 33, 35, 34, 36, 37, 38, 39, 40, 41, 42, 43, 45, 44, 46,
];

#[test]
fn claims_of_a_real_report_in_upstream_order() {
    with_report(|evidence| {
        let report = &evidence.report;
        let claims = snp_claim_extensions(report).unwrap();
        let oids: Vec<String> = claims.iter().map(|e| e.extn_id.to_string()).collect();
        let expected: Vec<String> = EMISSION_ORDER
            .iter()
            .map(|n| format!("1.3.9901.2.1.{n}"))
            .collect();
        assert_eq!(oids, expected);
        assert!(claims.iter().all(|e| !e.critical));

        let value = |arc: u32| {
            let oid = snp_claim_oid(arc).unwrap();
            claims
                .iter()
                .find(|e| e.extn_id == oid)
                .unwrap()
                .extn_value
                .as_bytes()
                .to_vec()
        };
        assert_eq!(value(1), hex!("020102")); // version 2
        assert_eq!(value(2), hex!("020100")); // guest SVN 0
        assert_eq!(value(7), hex!("0101ff")); // policy SMT allowed (0x30000)
        assert_eq!(value(5), hex!("010100")); // policy debug off
        assert_eq!(value(16), hex!("0101ff")); // platform SMT enabled
        assert_eq!(value(20), hex!("020100")); // signed by the VCEK
        // Current TCB bl 3, tee 0, snp 8, ucode 115.
        assert_eq!(value(12), hex!("020103"));
        assert_eq!(value(14), hex!("020100"));
        assert_eq!(value(13), hex!("020108"));
        assert_eq!(value(15), hex!("020173"));
        assert_eq!(value(46), hex!("020173"));
        let octets = |bytes: &[u8]| {
            let mut v = vec![0x04, u8::try_from(bytes.len()).unwrap()];
            v.extend_from_slice(bytes);
            v
        };
        assert_eq!(value(22), octets(report.measurement()));
        assert_eq!(value(23), octets(&[0; 32]));
        assert_eq!(value(27), octets(&[0xff; 32]));
        // CHIP_ID is 64 bytes: still a short-form length.
        assert_eq!(value(32), octets(report.chip_id()));
        assert_eq!(value(21)[..4], hex!("0440d447"));
    });
}

#[test]
fn mesh_cert_carries_claims_then_the_secret_id() {
    with_report(|evidence| {
        let exts = mesh_cert_extensions(&evidence.report, "db-secret").unwrap();
        assert_eq!(exts.len(), 47);
        assert_eq!(exts[46].extn_id, WORKLOAD_SECRET_ID_OID);
        assert_eq!(
            mesh_cert_extensions(&evidence.report, "").unwrap().len(),
            46
        );

        let (_, ca) = new_ca(NOW);
        let leaf = ca
            .issue_mesh_cert(&workload_spki(), &sans(&["web"]), &exts, NOW, &mut OsRng)
            .unwrap();
        let cert = parse(&leaf.der);
        let in_cert = cert.tbs_certificate.extensions.unwrap();
        // Five standard extensions, then ours unchanged.
        assert_eq!(&in_cert[5..], &exts[..]);
        webpki_verify(
            &ca.mesh_ca().der,
            &[],
            &leaf.der,
            NOW,
            webpki::KeyUsage::server_auth(),
        )
        .unwrap();
    });
}
