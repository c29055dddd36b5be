//! The transit engine's request and ciphertext parsers: any bytes, no panic; a parsed
//! ciphertext prints back to a string that parses to the same value.
#![no_main]

use contrast_coordinator::transit::{Ciphertext, DecryptRequest, EncryptRequest, Operation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = EncryptRequest::parse(data);
    let _ = DecryptRequest::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Operation::route(text);
        if let Ok(parsed) = Ciphertext::parse(text) {
            assert_eq!(Ciphertext::parse(&parsed.to_string()).ok(), Some(parsed));
        }
    }
});
