//! `seed-shares.json`: Go-compatible JSON with base64 fields; parse → write → parse is stable.
#![no_main]

use contrast_core::seedshare::SeedShareDocument;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = SeedShareDocument::from_json(data) {
        let written = document.to_json().expect("encoding in memory");
        assert_eq!(SeedShareDocument::from_json(&written).expect("our output parses"), document);
    }
});
