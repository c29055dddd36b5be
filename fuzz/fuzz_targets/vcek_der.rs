//! Fuzzes certificate parsing, the AMD extensions and chain verification of a leaf.
#![no_main]

use contrast_attest::chain::{
    self, AmdExtensions, CertRole, ChainCertificates, LeafKind, TrustAnchor,
};
use contrast_attest::report::{LeafKey, SigningKey};
use contrast_attest::{Product, UnixTime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ext) = AmdExtensions::from_certificate_der(data, CertRole::Vcek) {
        for product in [Product::Milan, Product::Turin] {
            let _ = chain::check_binding(
                LeafKind::Vcek,
                &ext,
                product,
                SigningKey::Vcek,
                &[0; 8],
                &[1; 64],
            );
        }
    }
    let _ = LeafKey::from_untrusted_certificate(data, LeafKind::Vcek, Product::Milan);
    let certs = ChainCertificates {
        ark: None,
        intermediate: None,
        leaf: data,
    };
    let _ = chain::verify_chain(
        &TrustAnchor::Amd(Product::Milan),
        LeafKind::Vcek,
        &certs,
        UnixTime::from_secs(1_750_000_000),
    );
    let certs = ChainCertificates {
        ark: Some(data),
        intermediate: Some(data),
        leaf: data,
    };
    let anchor = TrustAnchor::Pinned {
        ark_der_sha256: contrast_core::sha256(data),
        product: Product::Genoa,
    };
    let _ = chain::verify_chain(
        &anchor,
        LeafKind::Vlek,
        &certs,
        UnixTime::from_secs(1_750_000_000),
    );
});
