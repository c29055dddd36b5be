//! Stored transition: exactly 64 bytes; decode → encode is the identity.
#![no_main]

use contrast_core::history::Transition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(transition) = Transition::decode(data) {
        assert_eq!(transition.encode().as_slice(), data);
    }
});
