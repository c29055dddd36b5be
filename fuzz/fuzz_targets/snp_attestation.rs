//! Fuzzes the parse of go-sev-guest's `sevsnp.Attestation` (the SEV-SNP evidence of the aTLS
//! extension 1.3.9901.2.1): protobuf decode, size budgets, the proto → report rebuild. Whatever
//! parses must convert back: the rebuilt report → proto → report is the identity.
#![no_main]

use contrast_attest::evidence::{SnpEvidence, report_from_proto, report_to_proto};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(evidence) = SnpEvidence::parse(data) {
        let _ = evidence.report_data();
        let _ = (evidence.crl(), evidence.ark(), evidence.intermediate());
        let proto = report_to_proto(evidence.report()).expect("a rebuilt report converts back");
        let again = report_from_proto(&proto).expect("and rebuilds");
        assert_eq!(&again[..], &evidence.report()[..]);
    }
    // The same bytes as a raw report.
    if let Ok(proto) = report_to_proto(data) {
        let rebuilt = report_from_proto(&proto).expect("a converted report rebuilds");
        assert_eq!(&rebuilt[..], data);
    }
});
