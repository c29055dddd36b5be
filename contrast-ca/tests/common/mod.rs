//! Shared helpers for the contrast-ca integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::{Duration, SystemTime};

use contrast_ca::{Ca, MeshCaKey, UnixTime};
use contrast_core::seed::SeedEngine;
use der::Decode;
use p256::pkcs8::EncodePublicKey;
use rand_core::OsRng;
use x509_cert::Certificate;

/// A fixed time: 2025-06-15T12:34:56Z.
pub const NOW: UnixTime = UnixTime::from_secs(1_749_990_896);

pub fn seed_engine(byte: u8) -> SeedEngine {
    SeedEngine::new(&[byte; 32], &[0x5a; 32]).unwrap()
}

pub fn ca_at(engine: &SeedEngine, mesh_key: MeshCaKey, now: UnixTime) -> Ca {
    Ca::new(engine.root_ca_key(), mesh_key, now, &mut OsRng).unwrap()
}

pub fn new_ca(now: UnixTime) -> (SeedEngine, Ca) {
    let engine = seed_engine(7);
    let ca = ca_at(&engine, MeshCaKey::generate(&mut OsRng), now);
    (engine, ca)
}

/// A fresh P-256 workload key's SPKI DER (what the initializer presents).
pub fn workload_spki() -> Vec<u8> {
    let key = p256::ecdsa::SigningKey::random(&mut OsRng);
    key.verifying_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

pub fn sans(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

pub fn parse(der: &[u8]) -> Certificate {
    Certificate::from_der(der).unwrap()
}

pub fn system_now() -> UnixTime {
    UnixTime::from(SystemTime::now())
}

pub fn webpki_time(now: UnixTime) -> rustls_pki_types::UnixTime {
    rustls_pki_types::UnixTime::since_unix_epoch(Duration::from_secs(now.secs()))
}

/// Verifies `leaf` to `anchor` via `intermediates` with rustls-webpki for `usage`.
pub fn webpki_verify(
    anchor: &[u8],
    intermediates: &[&[u8]],
    leaf: &[u8],
    now: UnixTime,
    usage: webpki::KeyUsage,
) -> Result<(), webpki::Error> {
    let anchor_der = rustls_pki_types::CertificateDer::from(anchor);
    let anchor = webpki::anchor_from_trusted_cert(&anchor_der)?;
    let intermediates: Vec<_> = intermediates
        .iter()
        .map(|d| rustls_pki_types::CertificateDer::from(*d))
        .collect();
    let leaf_der = rustls_pki_types::CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        webpki_time(now),
        usage,
        None,
        None,
    )
    .map(|_| ())
}
