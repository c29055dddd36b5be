//! The transit engine against known answers computed independently with Python's
//! `cryptography` (`tests/fixtures/transit/kat.py`): the key derivation from a fixed seed, and
//! AES-256-GCM with fixed nonces, both ways. Our engine must reproduce Python's ciphertexts
//! byte for byte and decrypt them; the ciphertexts our engine writes for other nonces
//! (`ours.json`) are decrypted by Python in `.ci/conformance-transit` (`kat.py --check`).
//!
//! Regenerate after an intended change: `python3 tests/fixtures/transit/kat.py`, then
//! `CONTRAST_UPDATE_FIXTURES=1 cargo test -p contrast-coordinator --test transit_known_answers`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use contrast_coordinator::transit::{self, Ciphertext};
use contrast_core::seed::SeedEngine;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transit")
        .join(name)
}

fn decode(value: &serde_json::Value) -> Vec<u8> {
    value
        .as_str()
        .map(|text| STANDARD.decode(text).unwrap())
        .unwrap_or_default()
}

fn known_answers() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("kat.json")).unwrap()).unwrap()
}

fn engine(kat: &serde_json::Value) -> SeedEngine {
    SeedEngine::new(
        &hex::decode(kat["seed_hex"].as_str().unwrap()).unwrap(),
        &hex::decode(kat["salt_hex"].as_str().unwrap()).unwrap(),
    )
    .unwrap()
}

#[test]
fn the_engine_reproduces_and_decrypts_pythons_ciphertexts() {
    let kat = known_answers();
    let engine = engine(&kat);
    let cases = kat["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let version = u32::try_from(case["key_version"].as_u64().unwrap()).unwrap();
        let key = transit::key(&engine, name, version).unwrap();
        let nonce: [u8; 12] = hex::decode(case["nonce_hex"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let plaintext = decode(&case["plaintext_b64"]);
        let aad = decode(&case["associated_data_b64"]);
        // Same key and nonce: the same bytes as Python's AES-GCM.
        assert_eq!(
            transit::seal(&key, &nonce, &plaintext, &aad).unwrap(),
            case["ciphertext"].as_str().unwrap(),
            "{name} v{version}"
        );
        let parsed = Ciphertext::parse(case["ciphertext"].as_str().unwrap()).unwrap();
        assert_eq!(parsed.key_version, version);
        assert_eq!(*transit::open(&key, &parsed, &aad).unwrap(), plaintext);
        // The raw key is the one Python derived.
        let raw: [u8; 32] = hex::decode(case["key_hex"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let pinned = transit::TransitKey::from_bytes(version, raw);
        assert_eq!(
            transit::seal(&pinned, &nonce, &plaintext, &aad).unwrap(),
            case["ciphertext"].as_str().unwrap()
        );
        // Another version of the same name is another key.
        let other = transit::key(&engine, name, version.wrapping_add(1)).unwrap();
        assert!(
            transit::open(&other, &parsed, &aad).is_err(),
            "{name} v{version}"
        );
    }
}

/// Our ciphertexts under other nonces, for Python to decrypt: the committed `ours.json` must be
/// exactly what the engine writes now.
#[test]
fn our_ciphertexts_are_the_committed_ones_python_decrypts() {
    let kat = known_answers();
    let engine = engine(&kat);
    let mut ours = Vec::new();
    for (index, case) in kat["cases"].as_array().unwrap().iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let version = u32::try_from(case["key_version"].as_u64().unwrap()).unwrap();
        let key = transit::key(&engine, name, version).unwrap();
        let nonce = [0xa0 + u8::try_from(index).unwrap(); 12];
        let plaintext = decode(&case["plaintext_b64"]);
        let aad = decode(&case["associated_data_b64"]);
        ours.push(serde_json::json!({
            "name": name,
            "key_version": version,
            "plaintext_b64": case["plaintext_b64"],
            "associated_data_b64": case["associated_data_b64"],
            "ciphertext": transit::seal(&key, &nonce, &plaintext, &aad).unwrap(),
        }));
    }
    let text = serde_json::to_string_pretty(&serde_json::json!({ "cases": ours })).unwrap() + "\n";
    let path = fixture("ours.json");
    if std::env::var_os("CONTRAST_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "{} is stale: run with CONTRAST_UPDATE_FIXTURES=1",
        path.display()
    );
}
