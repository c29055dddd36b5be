//! Mesh certificate issuance against its floor, in one criterion group:
//!
//! - `issue_mesh_cert`: `Ca::issue_mesh_cert` for a P-256 workload key with three SANs and the
//!   47 claim extensions of the real Milan report plus a workload secret ID — SAN
//!   classification, name and extension encoding, TBS assembly, one randomized ECDSA P-384
//!   signature with the mesh key (aws-lc-rs), certificate and PEM encoding (leaf, chain, copies
//!   of the CA PEMs).
//! - `raw_aws_lc_p384_sign_tbs`: one randomized ECDSA P-384/SHA-384 DER signature with aws-lc-rs
//!   and the same key over the TBS bytes of a certificate issued the same way: the floor.
//! - `rustcrypto_p384_sign_tbs`: the same signature with the pure-Rust `p384` signer, which
//!   issuance used before (for the record of why it changed).
//!
//! ```sh
//! cargo bench -p contrast-benches --bench issue_mesh_cert
//! ```
// A bench whose setup fails must stop loudly rather than time something else.
#![allow(clippy::panic)]

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
    let mut scalar = [0u8; 48];
    scalar.copy_from_slice(&signer.to_bytes());
    let aws_signer = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_and_public_key(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        &scalar,
        signer.verifying_key().to_encoded_point(false).as_bytes(),
    )
    .unwrap_or_else(|e| panic!("aws-lc-rs key: {e}"));
    let system_random = aws_lc_rs::rand::SystemRandom::new();
    group.bench_function("raw_aws_lc_p384_sign_tbs", |b| {
        b.iter(|| aws_signer.sign(&system_random, black_box(&tbs)).is_ok());
    });
    group.bench_function("rustcrypto_p384_sign_tbs", |b| {
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
