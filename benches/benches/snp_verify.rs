//! SEV-SNP report verification on the real Milan vector (virtee/sev `report_milan.hex` with its
//! VCEK), four ways in one criterion group so the ratios are taken in one run:
//!
//! - `ours_cached_chain`: `verify_report` with a warm `VcekCache` — parse, one ECDSA P-384
//!   verify, structure and binding checks.
//! - `ours_full_from_der`: `verify_report` without a cache — parse the VCEK DER, verify
//!   ARK (pinned) → ASK → VCEK (three RSA-PSS-4096 verifications), then the report.
//! - `sev_openssl_full_from_der` (feature `peer-sev`): the `sev` crate with its `openssl`
//!   feature — parse ARK, ASK, VCEK from DER and the report from bytes, then
//!   `(&Chain, &AttestationReport)::verify`.
//! - `raw_aws_lc_p384_verify`: one aws-lc-rs ECDSA P-384/SHA-384 verification of the same
//!   1184-byte report's signed part: the floor for (a).
//! - `ours_cached_chain_crl_required`: (a) with AMD's real Milan CRL in the collateral and
//!   `CrlPolicy::Required`, at a time inside the CRL's validity: what a verifier pays per
//!   report now that revocation fails closed (the CRL is verified once, then memoized by its
//!   SHA-256).
//!
//! ```sh
//! cargo bench -p contrast-benches --bench snp_verify --features peer-sev
//! ```

use std::hint::black_box;

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use contrast_attest::collateral::CollateralMap;
use contrast_attest::report::{Field, SIGNED_LEN};
use contrast_attest::{
    CrlPolicy, Product, TrustAnchor, UnixTime, UnverifiedReport, VcekCache, verify_report,
};
use criterion::{Criterion, criterion_group, criterion_main};
use x509_cert::Certificate;
use x509_cert::der::Decode;

const REPORT_HEX: &str = include_str!("../../contrast-attest/tests/vectors/report_milan.hex");
const VCEK_DER: &[u8] = include_bytes!("../../contrast-attest/tests/vectors/vcek_milan.der");
const NOW: UnixTime = UnixTime::from_secs(1_735_689_600); // 2025-01-01, inside the VCEK's validity
const CRL_DER: &[u8] = include_bytes!("../../contrast-attest/tests/vectors/milan_crl9.der");
/// 2026-07-01: inside the CRL's validity (2026-06-22 to 2026-08-08) and the VCEK's.
const CRL_NOW: UnixTime = UnixTime::from_secs(1_782_864_000);

fn report() -> Vec<u8> {
    hex::decode(REPORT_HEX.trim()).unwrap_or_default()
}

fn collateral(report: &[u8]) -> CollateralMap {
    let mut map = CollateralMap::new();
    if let Ok(unverified) = UnverifiedReport::from_bytes(report) {
        let tcb = unverified.reported_tcb(Product::Milan);
        map.insert_vcek(
            Product::Milan,
            unverified.chip_id(),
            &tcb,
            VCEK_DER.to_vec(),
        );
    }
    map
}

/// The VCEK's SEC1 point and the report's signature as the 96-byte big-endian r ‖ s.
fn raw_inputs(report: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let point = Certificate::from_der(VCEK_DER)
        .map(|c| {
            c.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes()
                .to_vec()
        })
        .unwrap_or_default();
    let mut signature = Vec::with_capacity(96);
    for offset in [Field::SignatureR.offset(), Field::SignatureS.offset()] {
        let mut scalar = report
            .get(offset..offset + 48)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        scalar.reverse();
        signature.extend_from_slice(&scalar);
    }
    (point, signature)
}

fn bench(c: &mut Criterion) {
    let report = report();
    let map = collateral(&report);
    let anchor = TrustAnchor::Amd(Product::Milan);

    // Every variant must accept the vector before it is timed.
    let cache = VcekCache::new(16);
    let warm = verify_report(
        &report,
        &map,
        &anchor,
        NOW,
        CrlPolicy::BestEffort,
        Some(&cache),
    );
    assert!(
        warm.is_ok(),
        "our verifier rejects the vector: {:?}",
        warm.err()
    );
    let (point, signature) = raw_inputs(&report);
    let raw_key = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point);
    assert!(
        raw_key.verify(&report[..SIGNED_LEN], &signature).is_ok(),
        "raw verify rejects the vector"
    );

    let mut group = c.benchmark_group("snp_verify_milan");
    group.bench_function("ours_cached_chain", |b| {
        b.iter(|| {
            verify_report(
                black_box(&report),
                &map,
                &anchor,
                NOW,
                CrlPolicy::BestEffort,
                Some(&cache),
            )
            .is_ok()
        })
    });
    group.bench_function("ours_full_from_der", |b| {
        b.iter(|| {
            verify_report(
                black_box(&report),
                &map,
                &anchor,
                NOW,
                CrlPolicy::BestEffort,
                None,
            )
            .is_ok()
        })
    });
    let mut with_crl = collateral(&report);
    with_crl.insert_crl(
        Product::Milan,
        contrast_attest::LeafKind::Vcek,
        CRL_DER.to_vec(),
    );
    let crl_cache = VcekCache::new(16);
    let checked = verify_report(
        &report,
        &with_crl,
        &anchor,
        CRL_NOW,
        CrlPolicy::Required,
        Some(&crl_cache),
    );
    assert!(
        matches!(
            checked.as_ref().map(|v| &v.revocation),
            Ok(contrast_attest::RevocationStatus::Checked { .. })
        ),
        "the CRL was not checked: {:?}",
        checked.err()
    );
    group.bench_function("ours_cached_chain_crl_required", |b| {
        b.iter(|| {
            verify_report(
                black_box(&report),
                &with_crl,
                &anchor,
                CRL_NOW,
                CrlPolicy::Required,
                Some(&crl_cache),
            )
            .is_ok()
        })
    });
    #[cfg(feature = "peer-sev")]
    peer::bench_sev(&mut group, &report);
    group.bench_function("raw_aws_lc_p384_verify", |b| {
        b.iter(|| {
            raw_key
                .verify(black_box(&report[..SIGNED_LEN]), &signature)
                .is_ok()
        })
    });
    group.finish();
}

#[cfg(feature = "peer-sev")]
mod peer {
    use super::{VCEK_DER, black_box};
    use criterion::BenchmarkGroup;
    use criterion::measurement::WallTime;
    use sev::certs::snp::{Certificate, Chain, Verifiable, ca};
    use sev::firmware::guest::AttestationReport;
    use sev::parser::ByteParser;

    const ARK_DER: &[u8] = include_bytes!("../../contrast-attest/roots/milan/ark.der");
    const ASK_DER: &[u8] = include_bytes!("../../contrast-attest/roots/milan/ask.der");

    fn full(report: &[u8]) -> bool {
        let parsed = (
            Certificate::from_der(ARK_DER),
            Certificate::from_der(ASK_DER),
            Certificate::from_der(VCEK_DER),
            AttestationReport::from_bytes(report),
        );
        let (Ok(ark), Ok(ask), Ok(vek), Ok(report)) = parsed else {
            return false;
        };
        let chain = Chain {
            ca: ca::Chain { ark, ask },
            vek,
        };
        (&chain, &report).verify().is_ok()
    }

    pub(super) fn bench_sev(group: &mut BenchmarkGroup<'_, WallTime>, report: &[u8]) {
        assert!(full(report), "the sev crate rejects the vector");
        group.bench_function("sev_openssl_full_from_der", |b| {
            b.iter(|| full(black_box(report)))
        });
    }
}

mod harness {
    #![allow(missing_docs)]
    use super::{Criterion, bench, criterion_group};
    criterion_group! {
        name = benches;
        config = Criterion::default();
        targets = bench
    }
}

criterion_main!(harness::benches);
