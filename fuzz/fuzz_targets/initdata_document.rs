//! Initdata TOML document: parse, digest, and the annotation/device round trips.
#![no_main]

use contrast_core::initdata::{DEVICE_MAGIC, Initdata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = Initdata::parse(data.to_vec()) else {
        return;
    };
    let digest = document.digest();
    let _ = document.policy_hash();
    let annotation = document.to_annotation().expect("compressing in memory");
    let back = Initdata::from_annotation(&annotation).expect("our annotation decodes");
    assert_eq!(back.raw(), data);
    assert_eq!(back.digest(), digest);
    let image = document.to_device(&DEVICE_MAGIC).expect("compressing in memory");
    assert_eq!(Initdata::from_device(&image, &DEVICE_MAGIC).expect("our image reads").raw(), data);
});
