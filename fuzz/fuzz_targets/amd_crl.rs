//! Fuzzes CRL parsing and checking against the real Milan chain.
#![no_main]

use std::sync::OnceLock;

use contrast_attest::chain::{
    self, ChainCertificates, CrlPolicy, LeafKind, TrustAnchor, VerifiedChain,
};
use contrast_attest::{Product, UnixTime};
use libfuzzer_sys::fuzz_target;

const NOW: UnixTime = UnixTime::from_secs(1_735_689_600);

fn milan_chain() -> Option<&'static VerifiedChain> {
    static CHAIN: OnceLock<Option<VerifiedChain>> = OnceLock::new();
    CHAIN
        .get_or_init(|| {
            let leaf = include_bytes!("../../contrast-attest/tests/vectors/vcek_milan.der");
            let certs = ChainCertificates {
                ark: None,
                intermediate: None,
                leaf,
            };
            chain::verify_chain(
                &TrustAnchor::Amd(Product::Milan),
                LeafKind::Vcek,
                &certs,
                NOW,
            )
            .ok()
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    if let Some(chain) = milan_chain() {
        let _ = chain::verify_crl(data, chain, NOW);
        let _ = chain::check_revocation(Some(data), CrlPolicy::BestEffort, chain, NOW);
    }
});
