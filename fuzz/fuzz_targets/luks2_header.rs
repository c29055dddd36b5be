//! Fuzzes the LUKS2 header parser (binary headers, checksums, JSON area) and the strict check.
//!
//! The input is tried twice: as raw device bytes, and as the JSON area of a primary header that
//! is otherwise valid (checksum computed here), so the JSON parser and the policy are reached
//! without the fuzzer having to forge SHA-256.
#![no_main]

use contrast_luks::{ExpectedLayout, Luks2Header, check};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest as _, Sha256};

const HDR: usize = 16 << 10;

fn parse_and_check(bytes: &[u8]) {
    if let Ok(header) = Luks2Header::parse(bytes) {
        let _ = check(&header, &ExpectedLayout::upstream());
    }
}

fuzz_target!(|data: &[u8]| {
    parse_and_check(data);

    // The corpus holds whole headers: their JSON area is the interesting part to mutate.
    let json = match data.get(4096..) {
        Some(area) if data.starts_with(b"LUKS") => area,
        _ => data,
    };
    let mut header = vec![0u8; HDR];
    header[..6].copy_from_slice(b"LUKS\xba\xbe");
    header[6..8].copy_from_slice(&2u16.to_be_bytes());
    header[8..16].copy_from_slice(&(HDR as u64).to_be_bytes());
    header[72..78].copy_from_slice(b"sha256");
    header[168..204].copy_from_slice(b"00000000-0000-0000-0000-000000000000");
    let len = json.len().min(HDR - 4096);
    header[4096..4096 + len].copy_from_slice(&json[..len]);
    let sum = Sha256::digest(&header);
    header[448..480].copy_from_slice(&sum);
    parse_and_check(&header);
});
