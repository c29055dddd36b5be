//! Mesh certificate issuance against its floor, in one criterion group:
//!
//! - `issue_mesh_cert`: `Ca::issue_mesh_cert` for a P-256 workload key with three SANs and the
//!   47 claim extensions of the real Milan report plus a workload secret ID — SAN
//!   classification, name and extension encoding, TBS assembly, one randomized ECDSA P-384
//!   signature with the mesh key, certificate and PEM encoding (leaf, chain, copies of the CA
//!   PEMs).
//! - `raw_p384_sign_tbs`: one randomized ECDSA P-384/SHA-384 signature (DER) with the same
//!   `p384` signing key over the TBS bytes of a certificate issued the same way: the floor.
//!
//! ```sh
//! cargo bench -p contrast-benches --bench issue_mesh_cert
//! ```

use std::hint::black_box;

use contrast_attest::collateral::CollateralMap;
use contrast_attest::{CrlPolicy, Product, TrustAnchor, UnixTime, UnverifiedReport, verify_report};
use contrast_ca::{Ca, MeshCaKey, mesh_cert_extensions};
use contrast_core::seed::SeedEngine;
use criterion::{Criterion, criterion_group, criterion_main};
use p256::pkcs8::EncodePublicKey;
use p384::ecdsa::DerSignature;
use p384::ecdsa::signature::RandomizedSigner;
use rand_core::OsRng;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

const REPORT_HEX: &str = include_str!("../../contrast-attest/tests/vectors/report_milan.hex");
const VCEK_DER: &[u8] = include_bytes!("../../contrast-attest/tests/vectors/vcek_milan.der");
const NOW: UnixTime = UnixTime::from_secs(1_735_689_600);

fn bench(c: &mut Criterion) {
    let report = hex::decode(REPORT_HEX.trim()).unwrap_or_default();
    let Ok(unverified) = UnverifiedReport::from_bytes(&report) else {
        return;
    };
    let mut map = CollateralMap::new();
    let tcb = unverified.reported_tcb(Product::Milan);
    map.insert_vcek(
        Product::Milan,
        unverified.chip_id(),
        &tcb,
        VCEK_DER.to_vec(),
    );
    let Ok(evidence) = verify_report(
        &report,
        &map,
        &TrustAnchor::Amd(Product::Milan),
        NOW,
        CrlPolicy::BestEffort,
        None,
    ) else {
        return;
    };
    let Ok(extensions) = mesh_cert_extensions(&evidence.report, "db-secret") else {
        return;
    };
    let Ok(engine) = SeedEngine::new(&[7; 32], &[9; 32]) else {
        return;
    };
    let Ok(ca) = Ca::new(
        engine.root_ca_key(),
        MeshCaKey::generate(&mut OsRng),
        NOW,
        &mut OsRng,
    ) else {
        return;
    };
    let workload = p256::ecdsa::SigningKey::random(&mut OsRng);
    let Ok(spki) = workload.verifying_key().to_public_key_der() else {
        return;
    };
    let sans: Vec<String> = ["web", "web.default.svc.cluster.local", "10.0.0.7"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let Ok(sample) = ca.issue_mesh_cert(spki.as_bytes(), &sans, &extensions, NOW, &mut OsRng)
    else {
        return;
    };
    let Ok(tbs) = Certificate::from_der(&sample.der).and_then(|c| c.tbs_certificate.to_der())
    else {
        return;
    };

    let mut group = c.benchmark_group("issue_mesh_cert");
    group.bench_function("issue_mesh_cert", |b| {
        b.iter(|| {
            ca.issue_mesh_cert(
                black_box(spki.as_bytes()),
                black_box(&sans),
                black_box(&extensions),
                NOW,
                &mut OsRng,
            )
        });
    });
    let signer = ca.mesh_key().signing_key();
    group.bench_function("raw_p384_sign_tbs", |b| {
        b.iter(|| -> DerSignature { signer.sign_with_rng(&mut OsRng, black_box(&tbs)) });
    });
    group.finish();
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
