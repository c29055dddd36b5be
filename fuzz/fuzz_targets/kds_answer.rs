//! Fuzzes what a KDS, a collateral proxy or the collateral cache hands the collateral client:
//! a `Retry-After` value, a `cert_chain` PEM (split, then verified against the Milan root), and
//! a CRL checked with the real Milan issuers.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use contrast_attest::chain::{self, CertRole, LeafKind, TrustAnchor, VerifiedIssuers};
use contrast_attest::collateral::parse_cert_chain_pem;
use contrast_attest::{Product, UnixTime};
use libfuzzer_sys::fuzz_target;

const NOW: UnixTime = UnixTime::from_secs(1_735_689_600);

fn milan_issuers() -> Option<&'static VerifiedIssuers> {
    static ISSUERS: OnceLock<Option<VerifiedIssuers>> = OnceLock::new();
    ISSUERS
        .get_or_init(|| {
            chain::verify_issuers(&TrustAnchor::Amd(Product::Milan), LeafKind::Vcek, None, None, NOW)
                .ok()
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_735_689_600);
    let _ = contrast_kds::policy::retry_after(&String::from_utf8_lossy(data), now);
    if let Ok([intermediate, ark]) = parse_cert_chain_pem(data, CertRole::Ask) {
        let _ = chain::verify_issuers(
            &TrustAnchor::Amd(Product::Milan),
            LeafKind::Vcek,
            Some(&ark),
            Some(&intermediate),
            NOW,
        );
    }
    if let Some(issuers) = milan_issuers() {
        let _ = chain::verify_crl_with_issuers(data, issuers, NOW);
    }
});
