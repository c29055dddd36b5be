//! The initializer's Coordinator identity (CONTRAST_COORDINATOR_IDENTITY): parse, and check that
//! what we write reads back to the same identity and is written the same way again.
#![no_main]

use contrast_core::coordinator_identity::CoordinatorIdentity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(identity) = CoordinatorIdentity::from_json(text) else {
        return;
    };
    let written = identity.to_json();
    let reread = CoordinatorIdentity::from_json(&written).expect("our own output parses");
    assert_eq!(reread, identity);
    assert_eq!(reread.to_json(), written);
});
