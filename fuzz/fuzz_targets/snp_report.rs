//! Fuzzes the SEV-SNP report framing, hints and structural checks.
#![no_main]

use contrast_attest::Product;
use contrast_attest::report::{UnverifiedReport, check_structure};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = UnverifiedReport::from_bytes(data) {
        let _ = report.signing_key();
        let _ = report.cpuid_product();
        let _ = report.product(Product::Milan);
        let _ = report.reported_tcb(Product::Turin);
    }
    for product in [Product::Milan, Product::Genoa, Product::Turin] {
        let _ = check_structure(data, product);
    }
});
