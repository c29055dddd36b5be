//! Fuzzes the whole verification: report bytes plus an extended-report certificate table.
#![no_main]

use contrast_attest::collateral::{CertTable, CollateralMap, Layered};
use contrast_attest::{CrlPolicy, Product, TrustAnchor, UnixTime, verify_report};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (report, table) = data.split_at(data.len().min(contrast_attest::report::REPORT_LEN));
    let now = UnixTime::from_secs(1_735_689_600);
    let empty = CollateralMap::new();
    let parsed = CertTable::parse(table).unwrap_or_default();
    let sources: [&dyn contrast_attest::collateral::CollateralSource; 2] = [&parsed, &empty];
    for anchor in [
        TrustAnchor::Amd(Product::Milan),
        TrustAnchor::Amd(Product::Turin),
    ] {
        let _ = verify_report(
            report,
            &Layered(&sources),
            &anchor,
            now,
            CrlPolicy::BestEffort,
            None,
        );
    }
});
