//! Initdata block-device image: magic, little-endian length, gzip, padding.
#![no_main]

use contrast_core::initdata::{DEVICE_MAGIC, Initdata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Initdata::from_device(data, &DEVICE_MAGIC);
});
