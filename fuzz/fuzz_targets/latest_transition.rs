//! Signed head (`transitions/latest`): hash ‖ DER signature; decode → encode is the identity,
//! and verification with a fixed key never panics.
#![no_main]

use contrast_core::history::LatestTransition;
use contrast_core::seed::SeedEngine;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static p384::ecdsa::VerifyingKey {
    static KEY: OnceLock<p384::ecdsa::VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SeedEngine::new(&[7u8; 64], &[9u8; 32]).expect("valid lengths").history_verifying_key()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = LatestTransition::decode(data) {
        assert_eq!(head.encode(), data);
        let _ = head.verify(key());
    }
});
