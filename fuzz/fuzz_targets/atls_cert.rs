//! Fuzzes the parse of a peer's aTLS certificate (DER X.509, self-signature, extensions) and of
//! the SEV-SNP evidence it carries, and the nonce carriers. The evidence parser alone is the
//! `snp_attestation` target.
#![no_main]

use contrast_attest::atls;
use contrast_attest::evidence::SnpEvidence;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = atls::AtlsCertificate::parse(data) {
        let _ = cert.check_validity(1_750_000_000);
        if let Some((_, document)) = &cert.attestation {
            let _ = SnpEvidence::parse(document);
        }
    }
    let _ = atls::nonce_from_ca_hints(&[data]);
    let _ = atls::nonce_from_alpn([data].into_iter());
});
