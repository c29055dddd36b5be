//! Manifest JSON: parse, validate, list unknown keys, and check that Go-compatible re-encoding is
//! stable.
#![no_main]

use contrast_core::manifest::ManifestDocument;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = ManifestDocument::parse(data.to_vec()) else {
        return;
    };
    let _ = document.manifest().validate();
    for unknown in document.unknown_keys() {
        // Every unknown key names where it is and prints in full.
        assert!(unknown.to_string().contains(&format!("{:?}", unknown.key)));
        assert!(!unknown.path().is_empty());
    }
    // What we write must read back to the same meaning, and writing it again is byte-identical.
    let written = document.manifest().to_go_json().expect("encoding an in-memory manifest");
    let reread = ManifestDocument::parse(written.clone()).expect("our own output parses");
    assert_eq!(reread.manifest(), document.manifest());
    assert_eq!(reread.manifest().to_go_json().expect("re-encoding"), written);
    // We write only known keys.
    assert!(reread.unknown_keys().is_empty(), "{:?}", reread.unknown_keys());
});
