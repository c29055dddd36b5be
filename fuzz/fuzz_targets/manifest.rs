//! Manifest JSON: parse, validate, and check that Go-compatible re-encoding is stable.
#![no_main]

use contrast_core::manifest::ManifestDocument;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = ManifestDocument::parse(data.to_vec()) else {
        return;
    };
    let _ = document.manifest().validate();
    // What we write must read back to the same meaning, and writing it again is byte-identical.
    let written = document.manifest().to_go_json().expect("encoding an in-memory manifest");
    let reread = ManifestDocument::parse(written.clone()).expect("our own output parses");
    assert_eq!(reread.manifest(), document.manifest());
    assert_eq!(reread.manifest().to_go_json().expect("re-encoding"), written);
});
