//! Pod annotation value: base64 of gzip of an initdata document (bounded decompression).
#![no_main]

use contrast_core::initdata::Initdata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Initdata::from_annotation(text);
    }
});
