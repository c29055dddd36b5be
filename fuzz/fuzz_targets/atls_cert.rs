//! Fuzzes the parse of a peer's aTLS certificate (DER X.509, self-signature, extensions) and of
//! the attestation document it carries, and the nonce carriers.
#![no_main]

use contrast_attest::atls::{self, SnpDocument};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = atls::AtlsCertificate::parse(data) {
        let _ = cert.check_validity(1_750_000_000);
        if let Some((_, document)) = &cert.attestation {
            let _ = SnpDocument::parse(document);
        }
    }
    // The same bytes as a bare document (most inputs never get past the signature check).
    if let Ok(document) = SnpDocument::parse(data) {
        let _ = document.report_data();
        let _ = document.encode();
    }
    let _ = atls::nonce_from_ca_hints(&[data]);
    let _ = atls::nonce_from_alpn([data].into_iter());
});
