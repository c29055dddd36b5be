//! Seed engine: upstream golden vectors (contrast-formats.md §9.1), derived vectors (§9.6) and
//! the length rules.
#![allow(clippy::unwrap_used)] // Tests may unwrap; helpers outside #[test] fns too.

use contrast_core::seed::{
    MIN_SEED_SIZE, SALT_SIZE, SEED_SIZE, Salt, Seed, SeedEngine, SeedError, WorkloadSecret,
};
use hex_literal::hex;
use p384::ecdsa::SigningKey;
use rand_core::OsRng;

const SE2_SEED: [u8; 32] = hex!("1adb326866d5b1e04520d9475f6ff41d3370bec96bbb5045d8dd9d16b3c48274");
const SE2_SALT: [u8; 32] = hex!("0d2f1e0360d8476f836b8aa3dde3b1c58a361469a6e4f10cf9ed500a651c1c2b");

const WS_SEED: [u8; 32] = hex!("9c7f285a46704602f8b6d9d4a89193579a979f144a9d8733fddd4f2bbcecd77f");
const WS_SALT: [u8; 32] = hex!("6227b2cae740349beaff040af74aa1566ac330e9b54ce0e58f8d5ee47281745a");

fn se2() -> SeedEngine {
    SeedEngine::new(&SE2_SEED, &SE2_SALT).unwrap()
}

/// SEC1 `ECPrivateKey` DER as Go's `x509.MarshalECPrivateKey` writes it (the form of the
/// upstream vectors): version 1, the 48-byte scalar, `[0]` the named curve secp384r1 and `[1]`
/// the uncompressed public point. RustCrypto's `to_sec1_der` leaves out the optional `[0]`
/// parameters, so the test checks both: the RustCrypto encoding against the vector with the
/// parameters removed, and this layout byte for byte.
fn go_sec1_der(key: &SigningKey) -> Vec<u8> {
    let mut der = hex!("3081a4020101 0430").to_vec();
    der.extend_from_slice(&key.to_bytes());
    der.extend_from_slice(&hex!("a007 0605 2b81040022"));
    der.extend_from_slice(&hex!("a164 036200"));
    der.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
    der
}

fn assert_sec1_matches(key: &SigningKey, expected: &[u8]) {
    assert_eq!(go_sec1_der(key), expected);
    // Same vector without `[0] parameters` (9 bytes after the scalar), outer length 0xa4 - 9.
    let mut without_parameters = expected.to_vec();
    without_parameters.drain(56..65);
    without_parameters[2] = 0x9b;
    let ours = p384::SecretKey::from(key).to_sec1_der().unwrap();
    assert_eq!(ours.as_slice(), without_parameters.as_slice());
    // And the vector parses back to the same key.
    let parsed = p384::SecretKey::from_sec1_der(expected).unwrap();
    assert_eq!(parsed.to_bytes(), key.to_bytes());
}

#[test]
fn se_2_podstate() {
    assert_eq!(
        se2().pod_state_seed(),
        hex!("8964f1750fa69bd4107ffb055f3e093cd93064590f6c3ad459b66c3bb19231fd")
    );
}

#[test]
fn se_2_history() {
    assert_eq!(
        se2().history_seed(),
        hex!("03c95af2f666f44239a92d2cda3a14c3ad9ad776ef06fd97a8873457b9cff7f4")
    );
}

#[test]
fn se_2_rootca() {
    assert_sec1_matches(
        se2().root_ca_key(),
        &hex!(
            "3081a402010104303362d867cd3dfa7db3ca6fb3920aa4a5f198ac05bf2eb0190983c969a7e4f47d94c7bc061551800faaecbc321f541d20a00706052b81040022a16403620004308baf73fc4ff32dc16eaae1cf9354ee6d768b6f7636506225f05d2fada7c55beed8d7987c62815de952449359db6baf4e65b311f3c3f191fba8a17e938f4fe88423d96fc5c6edd54bcaea7e9a3047047160243e8ad1d7e0491145694c55b050"
        ),
    );
}

#[test]
fn se_2_txsign() {
    let engine = se2();
    assert_sec1_matches(
        engine.history_signing_key(),
        &hex!(
            "3081a4020101043042ac864deb9da243469f13d6fae37576cfafbc9995bbd094b0e62873f4258099315ef7f2290f84e9163f44559f4a43a0a00706052b81040022a1640362000440d63497d354b85fd794575fe5916a581beeeee59bb63eb99dc3f44627af605040a9f50dfbd351e5b3c65f621e6fe5aedf2f170121201e5baf0e8b958bf8b0eacabe9e204bcd785fd73ae330c2ba8a321ce8aa2b73c52f606861250625cbcbe6"
        ),
    );
    assert_eq!(
        engine.history_verifying_key(),
        *engine.history_signing_key().verifying_key()
    );
}

#[test]
fn engine_keeps_seed_and_salt() {
    let engine = se2();
    assert_eq!(engine.seed(), SE2_SEED);
    assert_eq!(engine.salt(), &SE2_SALT);
}

#[test]
fn se_short_salt() {
    assert_eq!(
        SeedEngine::new(&SE2_SEED, &SE2_SALT[..28]).unwrap_err(),
        SeedError::SaltWrongLength {
            expected: 32,
            found: 28
        }
    );
}

#[test]
fn long_salt_is_rejected() {
    let salt = [7u8; 33];
    assert_eq!(
        SeedEngine::new(&SE2_SEED, &salt).unwrap_err(),
        SeedError::SaltWrongLength {
            expected: 32,
            found: 33
        }
    );
    assert_eq!(
        SeedEngine::new(&SE2_SEED, &[]).unwrap_err(),
        SeedError::SaltWrongLength {
            expected: 32,
            found: 0
        }
    );
}

#[test]
fn short_seed_is_rejected() {
    assert_eq!(
        SeedEngine::new(&SE2_SEED[..31], &SE2_SALT).unwrap_err(),
        SeedError::SeedTooShort { min: 32, found: 31 }
    );
    assert_eq!(
        SeedEngine::new(&[], &SE2_SALT).unwrap_err(),
        SeedError::SeedTooShort { min: 32, found: 0 }
    );
}

#[test]
fn oversized_seed_is_rejected() {
    let seed = vec![1u8; 255 * 32 + 1];
    assert_eq!(
        SeedEngine::new(&seed, &SE2_SALT).unwrap_err(),
        SeedError::SeedTooLong {
            max: 8160,
            found: 8161
        }
    );
}

#[test]
fn ws_workload_1() {
    let engine = SeedEngine::new(&WS_SEED, &WS_SALT).unwrap();
    let secret: WorkloadSecret = engine.workload_secret("workload-1").unwrap();
    assert_eq!(
        secret.as_bytes(),
        hex!("87668b2d30e7538b5643e42bcc0f1a7b532833f47fcd1293f779d9f2abf9e708")
    );
}

#[test]
fn ws_12345() {
    let engine = SeedEngine::new(&WS_SEED, &WS_SALT).unwrap();
    assert_eq!(
        engine.workload_secret("12345").unwrap().as_bytes(),
        hex!("c5dfeb23e39da9807d6260e6825d8367b47052fcb6bb4c79624fc5936921a0d0")
    );
}

#[test]
fn ws_empty() {
    let engine = SeedEngine::new(&WS_SEED, &WS_SALT).unwrap();
    assert_eq!(
        engine.workload_secret("").unwrap_err(),
        SeedError::EmptyWorkloadSecretId
    );
}

#[test]
fn workload_secret_ids_are_not_normalised() {
    let engine = SeedEngine::new(&WS_SEED, &WS_SALT).unwrap();
    let a = engine.workload_secret(" ").unwrap();
    let b = engine.workload_secret("🔑").unwrap();
    let c = engine.workload_secret("workload-1 ").unwrap();
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_ne!(
        c.as_bytes(),
        engine.workload_secret("workload-1").unwrap().as_bytes()
    );
    assert_eq!(a.as_bytes().len(), 32);
}

fn production_engine() -> SeedEngine {
    let seed: Vec<u8> = (0x00..=0x3f).collect();
    let salt: Vec<u8> = (0x40..=0x5f).collect();
    SeedEngine::new(&seed, &salt).unwrap()
}

#[test]
fn d_prod_podstate() {
    assert_eq!(
        production_engine().pod_state_seed(),
        hex!(
            "367ca3d359e38b68b50fe3ba0e83dff75c5a7eb04028f1962c29aab0b36994939baef30744bb4133e7cd20f82b4057d71923b951288af19550d4e4b96494f279"
        )
    );
}

#[test]
fn d_prod_history() {
    assert_eq!(
        production_engine().history_seed(),
        hex!(
            "c38cb977983946940bcb88f4ec7d139fb7c31f460eeb352d592c49a1dbcdcd3f1df85574e2c365fe319aadd7315fc1784f4b440c002feda74ce8793aeec2fa8f"
        )
    );
}

#[test]
fn production_workload_secret_is_seed_length() {
    let secret = production_engine().workload_secret("workload-1").unwrap();
    assert_eq!(secret.as_bytes().len(), 64);
}

#[test]
fn seed_generate_and_from_bytes() {
    let seed = Seed::generate(&mut OsRng);
    assert_eq!(seed.as_bytes().len(), SEED_SIZE);
    let salt = Salt::generate(&mut OsRng);
    let engine = SeedEngine::from_parts(&seed, &salt).unwrap();
    assert_eq!(engine.seed(), seed.as_bytes());
    assert_eq!(engine.salt(), salt.as_bytes());

    let again = Seed::from_bytes(seed.as_bytes().to_vec()).unwrap();
    assert_eq!(again.as_bytes(), seed.as_bytes());
    assert_eq!(
        Seed::from_bytes(vec![0; MIN_SEED_SIZE])
            .unwrap()
            .as_bytes()
            .len(),
        32
    );
    assert_eq!(
        Seed::from_bytes(vec![0; MIN_SEED_SIZE - 1]).unwrap_err(),
        SeedError::SeedTooShort { min: 32, found: 31 }
    );
}

#[test]
fn salt_from_slice_requires_exact_length() {
    assert_eq!(Salt::from_slice(&SE2_SALT).unwrap().as_bytes(), &SE2_SALT);
    assert_eq!(
        Salt::from_slice(&[0; SALT_SIZE - 1]).unwrap_err(),
        SeedError::SaltWrongLength {
            expected: 32,
            found: 31
        }
    );
    assert_eq!(
        Salt::from_slice(&[0; SALT_SIZE + 1]).unwrap_err(),
        SeedError::SaltWrongLength {
            expected: 32,
            found: 33
        }
    );
}

#[test]
fn debug_redacts_secrets() {
    let engine = se2();
    let debug = format!("{engine:?}");
    assert!(!debug.contains("1adb3268"), "{debug}");
    assert!(!debug.contains("8964f175"), "{debug}");
    let seed = Seed::from_bytes(SE2_SEED.to_vec()).unwrap();
    assert_eq!(format!("{seed:?}"), "Seed(32 bytes, redacted)");
    let secret = SeedEngine::new(&WS_SEED, &WS_SALT)
        .unwrap()
        .workload_secret("12345")
        .unwrap();
    assert_eq!(format!("{secret:?}"), "WorkloadSecret(32 bytes, redacted)");
}

#[test]
fn error_messages_are_precise() {
    assert_eq!(
        SeedError::SaltWrongLength {
            expected: 32,
            found: 28
        }
        .to_string(),
        "salt has wrong length: expected 32 bytes, found 28"
    );
    assert_eq!(
        SeedError::SeedTooShort { min: 32, found: 31 }.to_string(),
        "seed too short: expected at least 32 bytes, found 31"
    );
    assert_eq!(
        SeedError::EmptyWorkloadSecretId.to_string(),
        "workload secret id must not be empty"
    );
}
