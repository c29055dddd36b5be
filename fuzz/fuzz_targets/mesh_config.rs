//! Fuzzes the service mesh's configuration parsers (upstream's annotation syntax: ingress,
//! egress, admin port) and the iptables rules built from a parsed ingress.
#![no_main]

use contrast_mesh::config::{EGRESS_ENV, INGRESS_ENV, parse_admin_port, parse_egress, parse_ingress};
use contrast_mesh::iptables::ingress_rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let egress = parse_egress(EGRESS_ENV, text).unwrap_or_default();
    if let Ok(ingress) = parse_ingress(INGRESS_ENV, text) {
        // Every accepted entry becomes exactly one rule, between the fixed lines.
        if let Some(rules) = ingress_rules(&ingress) {
            assert!(rules.ends_with("COMMIT\n"));
        }
        let _ = parse_admin_port(text, &egress);
    }
});
