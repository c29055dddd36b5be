//! Owner keys from the manifest (hex DER) and from PEM files.
#![no_main]

use contrast_core::owner::{
    SeedshareOwnerPrivateKey, SeedshareOwnerPublicKey, WorkloadOwnerPrivateKey,
    WorkloadOwnerPublicKey,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = WorkloadOwnerPublicKey::from_pkix_der(data) {
        assert_eq!(key.pkix_der(), data);
    }
    if let Ok(key) = SeedshareOwnerPublicKey::from_pkcs1_der(data) {
        assert_eq!(key.pkcs1_der(), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = WorkloadOwnerPublicKey::from_pem(text);
        let _ = WorkloadOwnerPublicKey::from_hex(text);
        let _ = SeedshareOwnerPublicKey::from_hex(text);
        let _ = WorkloadOwnerPrivateKey::from_pem(text);
        let _ = SeedshareOwnerPrivateKey::from_pem(text);
    }
});
