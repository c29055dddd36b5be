//! Owner keys and authorisation rules.
//!
//! Fixtures in `tests/fixtures/owner/` were made with OpenSSL 3.0:
//!
//! ```sh
//! openssl ecparam -name secp384r1 -genkey -noout -out p384.pem        # also p384-other.pem
//! openssl pkcs8 -topk8 -nocrypt -in p384.pem -out p384-pkcs8.pem
//! openssl ec -in p384.pem -pubout -out p384-pub.pem                   # also p384-other-pub.pem
//! openssl ec -in p384.pem -pubout -conv_form compressed -out p384-pub-compressed.pem
//! openssl ecparam -name prime256v1 -genkey -noout -out p256.pem
//! openssl ec -in p256.pem -pubout -out p256-pub.pem
//! openssl ecparam -name secp256k1 -genkey -noout | openssl ec -pubout -out secp256k1-pub.pem
//! openssl genpkey -algorithm ed25519 | openssl pkey -pubout -out ed25519-pub.pem
//! printf %s 7305db9b…e1e2 > transition-hash.hex                      # H-transition-hash
//! openssl dgst -sha256 -sign p384.pem -out p384-transition.sig transition-hash.hex
//! openssl dgst -sha256 -sign p256.pem -out p256-transition.sig transition-hash.hex
//! ```
//!
//! Signatures made by `sign_transition` were checked the other way round while writing this
//! test (the signature written to `ours.sig`):
//! `openssl dgst -sha256 -verify p384-pub.pem -signature ours.sig transition-hash.hex`
//! → `Verified OK`.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

use contrast_core::hexstring;
use contrast_core::owner::{
    AuthorizationError, EcCurve, OwnerKeyError, SeedshareOwnerPrivateKey, SeedshareOwnerPublicKey,
    WorkloadOwnerPrivateKey, WorkloadOwnerPublicKey, authorize_recovery, authorize_update_by_key,
    check_seedshare_owners_unchanged, next_transition_hash, transition_signing_blob,
    verify_update_signature,
};
use hex_literal::hex;

/// Golden vector M-seedshare-key (contrast-formats.md §9.3).
const M_SEEDSHARE_KEY: &str = "3082020a0282020100bc51b1c9cb50002ae95a7ad98569506aadceabd0bb9ee576ad29ab3baecd60a604eee8882323fa8a7b6f4b21cea80bd4d794bf31fd7a5d6dfeb4afa6de30a834b87aa7f90e5ee11683b2f903b393174c436107f7b22467d0f5cee09c43eab28bcbec0137e165d8d34da66f9fc8294d60ebafbf38bf3e0e4dfcf7da84b24d6eaf1b8c4a579d2ec6ab1c280a7ec50854f2269ef8e31e1e2f1a1d24dd3ca8eaa5728c4f59fdf840899dc44bac0749b3d294a3c7446e2859db55cb93e6bf8ac8995665137f74e9898dad7a9f52d8527b16308e422685ed6ba221b6a266728a7cc11403d37a2f1be923685637eabafa4b0bf6095edc6908adf1b623450555ead19f9431d9a72730228379d5711475434e4696eb650469ad981cc0ced54c84909c36dc7e38d1ffda3aad63d2b6841bb2cee07c85116cd8139e528a3ca78a0d301f2deed86f0b7bbc6bcd863594e3ba67d86178db9f661d0aa25965ad05c608b8c7eadb5853284aadf2474b8a3dbbc23ac2992c11b283808108ffd59cf08687ac9a0ef20eb8ca3ec090a3a532ad305203b877a20c0da401386070dc97d2820b97d67eedc21c6a938bb368a7d1b4e9433abc3304d2f928df22d5d3b3bc0d593b1dcc84671809538b5da667a5f2ce89714c39d9c6aed34de3605fe79e9018de14b262ab1c63bb7d24c3ec51dac00b72be7266e6e1e221da1e50e9ea21aba44550c48bcdeb0203010001";
const M_SEEDSHARE_KEY_DIGEST: [u8; 32] =
    hex!("48d8635462d93512bdd0a990cf24a5fbebf94d01efed51f6a46c7185cc3d175d");

/// Golden vectors H-hello, H-world and H-transition-hash (contrast-formats.md §9.2).
const H_HELLO: [u8; 32] = hex!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
const H_WORLD: [u8; 32] = hex!("486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7");
const H_TRANSITION: [u8; 32] =
    hex!("7305db9b2abccd706c256db3d97e5ff48d677cfe4d3a5904afb7da0e3950e1e2");

const P384_PEM: &str = include_str!("fixtures/owner/p384.pem");
const P384_PKCS8_PEM: &str = include_str!("fixtures/owner/p384-pkcs8.pem");
const P384_PUB_PEM: &str = include_str!("fixtures/owner/p384-pub.pem");
const P384_OTHER_PEM: &str = include_str!("fixtures/owner/p384-other.pem");
const P384_OTHER_PUB_PEM: &str = include_str!("fixtures/owner/p384-other-pub.pem");
const P384_COMPRESSED_PUB_PEM: &str = include_str!("fixtures/owner/p384-pub-compressed.pem");
const P256_PEM: &str = include_str!("fixtures/owner/p256.pem");
const P256_PUB_PEM: &str = include_str!("fixtures/owner/p256-pub.pem");
const SECP256K1_PUB_PEM: &str = include_str!("fixtures/owner/secp256k1-pub.pem");
const ED25519_PUB_PEM: &str = include_str!("fixtures/owner/ed25519-pub.pem");
const TRANSITION_HASH_HEX: &str = include_str!("fixtures/owner/transition-hash.hex");
const P384_TRANSITION_SIG: &[u8] = include_bytes!("fixtures/owner/p384-transition.sig");
const P256_TRANSITION_SIG: &[u8] = include_bytes!("fixtures/owner/p256-transition.sig");

const RSA4096_PEM: &str = include_str!("fixtures/seedshare/rsa4096.pem");
const RSA4096_PKCS8_PEM: &str = include_str!("fixtures/seedshare/rsa4096-pkcs8.pem");
const RSA4096_PUB_PKCS1: &[u8] = include_bytes!("fixtures/seedshare/rsa4096-pub-pkcs1.der");
const RSA4096_PUB_SPKI: &[u8] = include_bytes!("fixtures/seedshare/rsa4096-pub-spki.der");
const RSA1024_PUB_PKCS1: &[u8] = include_bytes!("fixtures/seedshare/rsa1024-pub-pkcs1.der");
const RSA2048_E3_PUB_PKCS1: &[u8] = include_bytes!("fixtures/seedshare/rsa2048-e3-pub-pkcs1.der");

fn p384_pub() -> WorkloadOwnerPublicKey {
    WorkloadOwnerPublicKey::from_pem(P384_PUB_PEM).unwrap()
}

fn p384_other_pub() -> WorkloadOwnerPublicKey {
    WorkloadOwnerPublicKey::from_pem(P384_OTHER_PUB_PEM).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---- seed-share owner public keys ----------------------------------------------------------

#[test]
fn m_seedshare_key_parses_and_has_the_golden_digest() {
    let key = SeedshareOwnerPublicKey::from_hex(M_SEEDSHARE_KEY).unwrap();
    assert_eq!(key.digest(), M_SEEDSHARE_KEY_DIGEST);
    assert_eq!(key.modulus_bits(), 4096);
    assert_eq!(key.to_hex(), M_SEEDSHARE_KEY);
    assert_eq!(key.pkcs1_der(), hexstring::decode(M_SEEDSHARE_KEY).unwrap());
    let same = SeedshareOwnerPublicKey::from_pkcs1_der(key.pkcs1_der()).unwrap();
    assert_eq!(same, key);
    // Uppercase hex is accepted and the key keeps its bytes.
    let upper = SeedshareOwnerPublicKey::from_hex(&M_SEEDSHARE_KEY.to_uppercase()).unwrap();
    assert_eq!(upper.to_hex(), M_SEEDSHARE_KEY);
}

#[test]
fn seedshare_public_key_rejects_garbage_hex() {
    assert!(matches!(
        SeedshareOwnerPublicKey::from_hex("invalid"),
        Err(OwnerKeyError::Hex { .. })
    ));
}

#[test]
fn seedshare_public_key_rejects_garbage_der() {
    assert!(matches!(
        SeedshareOwnerPublicKey::from_pkcs1_der(&[0x01, 0x02, 0x03]),
        Err(OwnerKeyError::MalformedDer {
            structure: "PKCS#1 RSAPublicKey",
            ..
        })
    ));
    assert!(matches!(
        SeedshareOwnerPublicKey::from_pkcs1_der(&[]),
        Err(OwnerKeyError::MalformedDer { .. })
    ));
}

#[test]
fn seedshare_public_key_rejects_truncated_der() {
    let der = hexstring::decode(M_SEEDSHARE_KEY).unwrap();
    for cut in [1, 3, 200] {
        let truncated = der.get(..der.len() - cut).unwrap();
        assert!(
            matches!(
                SeedshareOwnerPublicKey::from_pkcs1_der(truncated),
                Err(OwnerKeyError::MalformedDer { .. })
            ),
            "cut {cut}"
        );
    }
    // Trailing data is rejected too.
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(matches!(
        SeedshareOwnerPublicKey::from_pkcs1_der(&trailing),
        Err(OwnerKeyError::MalformedDer { .. })
    ));
}

#[test]
fn seedshare_public_key_rejects_spki() {
    let err = SeedshareOwnerPublicKey::from_pkcs1_der(RSA4096_PUB_SPKI).unwrap_err();
    match err {
        OwnerKeyError::SpkiInsteadOfPkcs1 { algorithm } => {
            assert_eq!(algorithm, "1.2.840.113549.1.1.1");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn seedshare_public_key_rejects_1024_bit_keys() {
    let err = SeedshareOwnerPublicKey::from_pkcs1_der(RSA1024_PUB_PKCS1).unwrap_err();
    assert!(
        matches!(
            err,
            OwnerKeyError::RsaKeyTooSmall {
                bits: 1024,
                minimum: 2048
            }
        ),
        "{err:?}"
    );
}

#[test]
fn seedshare_public_key_rejects_exponent_3() {
    let err = SeedshareOwnerPublicKey::from_pkcs1_der(RSA2048_E3_PUB_PKCS1).unwrap_err();
    match err {
        OwnerKeyError::UnsupportedRsaExponent { exponent_hex } => assert_eq!(exponent_hex, "03"),
        other => panic!("unexpected error {other:?}"),
    }
}

// ---- seed-share owner private keys ---------------------------------------------------------

#[test]
fn seedshare_private_key_from_pkcs1_and_pkcs8_pem() {
    let pkcs1 = SeedshareOwnerPrivateKey::from_pem(RSA4096_PEM).unwrap();
    let pkcs8 = SeedshareOwnerPrivateKey::from_pem(RSA4096_PKCS8_PEM).unwrap();
    assert_eq!(pkcs1.public_key(), pkcs8.public_key());
    assert_eq!(pkcs1.public_key().pkcs1_der(), RSA4096_PUB_PKCS1);
    assert_eq!(pkcs1.public_key().modulus_bits(), 4096);
}

#[test]
fn seedshare_private_key_debug_hides_the_key() {
    let key = SeedshareOwnerPrivateKey::from_pem(RSA4096_PEM).unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains("SeedshareOwnerPrivateKey"));
    assert!(debug.contains(&hexstring::encode(key.public_key().digest())));
    assert!(debug.len() < 300, "{debug}");
}

#[test]
fn seedshare_private_key_rejects_other_pem_blocks() {
    assert!(matches!(
        SeedshareOwnerPrivateKey::from_pem(P384_PEM),
        Err(OwnerKeyError::UnexpectedPemLabel { ref found, .. }) if found == "EC PRIVATE KEY"
    ));
    // A PKCS#8 EC key: right label, wrong algorithm.
    assert!(matches!(
        SeedshareOwnerPrivateKey::from_pem(P384_PKCS8_PEM),
        Err(OwnerKeyError::UnsupportedAlgorithm { ref found, .. }) if found == "1.2.840.10045.2.1"
    ));
    assert!(matches!(
        SeedshareOwnerPrivateKey::from_pem("not pem"),
        Err(OwnerKeyError::Pem { .. })
    ));
    // Right label, garbage content.
    let garbage = "-----BEGIN RSA PRIVATE KEY-----\nAAECAw==\n-----END RSA PRIVATE KEY-----\n";
    assert!(matches!(
        SeedshareOwnerPrivateKey::from_pem(garbage),
        Err(OwnerKeyError::MalformedDer {
            structure: "PKCS#1 RSAPrivateKey",
            ..
        })
    ));
}

// ---- workload owner public keys ------------------------------------------------------------

#[test]
fn workload_owner_public_key_p384() {
    let key = p384_pub();
    assert_eq!(key.curve(), EcCurve::P384);
    assert_eq!(key.digest(), contrast_core::sha256(key.pkix_der()));
    assert_eq!(
        WorkloadOwnerPublicKey::from_hex(&key.to_hex()).unwrap(),
        key
    );
    assert_eq!(
        WorkloadOwnerPublicKey::from_pkix_der(key.pkix_der()).unwrap(),
        key
    );
    // 0x30 0x76: SEQUENCE of 118 bytes, the usual P-384 SPKI size.
    assert_eq!(key.pkix_der().len(), 120);
}

#[test]
fn workload_owner_public_key_p256() {
    let key = WorkloadOwnerPublicKey::from_pem(P256_PUB_PEM).unwrap();
    assert_eq!(key.curve(), EcCurve::P256);
}

#[test]
fn workload_owner_public_key_rejects_other_curves_and_algorithms() {
    match WorkloadOwnerPublicKey::from_pem(SECP256K1_PUB_PEM).unwrap_err() {
        OwnerKeyError::UnsupportedCurve { found, .. } => assert_eq!(found, "1.3.132.0.10"),
        other => panic!("unexpected error {other:?}"),
    }
    match WorkloadOwnerPublicKey::from_pem(ED25519_PUB_PEM).unwrap_err() {
        OwnerKeyError::UnsupportedAlgorithm { found, .. } => assert_eq!(found, "1.3.101.112"),
        other => panic!("unexpected error {other:?}"),
    }
    match WorkloadOwnerPublicKey::from_pkix_der(RSA4096_PUB_SPKI).unwrap_err() {
        OwnerKeyError::UnsupportedAlgorithm { found, .. } => {
            assert_eq!(found, "1.2.840.113549.1.1.1");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn workload_owner_public_key_rejects_bad_points() {
    assert!(matches!(
        WorkloadOwnerPublicKey::from_pem(P384_COMPRESSED_PUB_PEM),
        Err(OwnerKeyError::InvalidEcPoint {
            curve: EcCurve::P384,
            ..
        })
    ));
    // Change the last byte of y: the point leaves the curve.
    let mut der = p384_pub().pkix_der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert!(matches!(
        WorkloadOwnerPublicKey::from_pkix_der(&der),
        Err(OwnerKeyError::InvalidEcPoint {
            curve: EcCurve::P384,
            ..
        })
    ));
}

#[test]
fn workload_owner_public_key_rejects_malformed_input() {
    assert!(matches!(
        WorkloadOwnerPublicKey::from_pkix_der(&[0x30, 0x00]),
        Err(OwnerKeyError::MalformedDer { .. })
    ));
    let der = p384_pub().pkix_der().to_vec();
    assert!(matches!(
        WorkloadOwnerPublicKey::from_pkix_der(der.get(..der.len() - 1).unwrap()),
        Err(OwnerKeyError::MalformedDer { .. })
    ));
    assert!(matches!(
        WorkloadOwnerPublicKey::from_hex("aaa"),
        Err(OwnerKeyError::Hex { .. })
    ));
    assert!(matches!(
        WorkloadOwnerPublicKey::from_pem(P384_PEM),
        Err(OwnerKeyError::UnexpectedPemLabel { .. })
    ));
    // M-seedshare-key is PKCS#1, not PKIX.
    assert!(matches!(
        WorkloadOwnerPublicKey::from_hex(M_SEEDSHARE_KEY),
        Err(OwnerKeyError::MalformedDer { .. })
    ));
}

// ---- workload owner private keys -----------------------------------------------------------

#[test]
fn workload_owner_private_key_sec1_round_trip_is_byte_exact() {
    let key = WorkloadOwnerPrivateKey::from_pem(P384_PEM).unwrap();
    assert_eq!(key.public_key(), p384_pub());
    // OpenSSL and Go write the same SEC1 layout (named curve and public key included).
    assert_eq!(key.to_sec1_pem().unwrap().as_str(), P384_PEM);
}

#[test]
fn workload_owner_private_key_from_pkcs8() {
    let key = WorkloadOwnerPrivateKey::from_pem(P384_PKCS8_PEM).unwrap();
    assert_eq!(key.public_key(), p384_pub());
    assert_eq!(key.to_sec1_pem().unwrap().as_str(), P384_PEM);
}

#[test]
fn workload_owner_private_key_rejects_other_keys() {
    match WorkloadOwnerPrivateKey::from_pem(P256_PEM).unwrap_err() {
        OwnerKeyError::UnsupportedCurve { found, .. } => assert_eq!(found, "1.2.840.10045.3.1.7"),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(matches!(
        WorkloadOwnerPrivateKey::from_pem(RSA4096_PEM),
        Err(OwnerKeyError::UnexpectedPemLabel { ref found, .. }) if found == "RSA PRIVATE KEY"
    ));
    assert!(matches!(
        WorkloadOwnerPrivateKey::from_pem(RSA4096_PKCS8_PEM),
        Err(OwnerKeyError::UnsupportedAlgorithm { ref found, .. }) if found == "1.2.840.113549.1.1.1"
    ));
}

#[test]
fn workload_owner_private_key_rejects_mismatched_public_key() {
    // Splice the other key's public point into this key's SEC1 structure.
    let der = der_of(P384_PEM);
    let other_der = der_of(P384_OTHER_PEM);
    let mut spliced = der.clone();
    let point_len = 97;
    let start = spliced.len() - point_len;
    spliced[start..].copy_from_slice(&other_der[other_der.len() - point_len..]);
    assert!(matches!(
        WorkloadOwnerPrivateKey::from_sec1_der(&spliced),
        Err(OwnerKeyError::InvalidEcPrivateKey { .. })
    ));
    assert!(WorkloadOwnerPrivateKey::from_sec1_der(&der).is_ok());
}

fn der_of(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn workload_owner_private_key_debug_hides_the_scalar() {
    let key = WorkloadOwnerPrivateKey::from_pem(P384_PEM).unwrap();
    let debug = format!("{key:?}");
    let der = der_of(P384_PEM);
    // The scalar sits at offset 8..56 of the SEC1 DER (30 81 a4 02 01 01 04 30 ‖ d).
    let scalar = hexstring::encode(&der[8..56]);
    assert!(!debug.contains(&scalar));
    assert!(debug.contains(&hexstring::encode(key.public_key().digest())));
}

// ---- transitions and signatures -----------------------------------------------------------

#[test]
fn next_transition_hash_matches_golden_vectors() {
    assert_eq!(next_transition_hash(&H_HELLO, &H_WORLD), H_TRANSITION);
    // D-chain-1 and D-chain-2 (contrast-formats.md §9.6).
    let chain_1 = next_transition_hash(&contrast_core::sha256(b"old"), &[0; 32]);
    assert_eq!(
        chain_1,
        hex!("b92f647865a12cc273ca24ccca2cbb8bec1aa3bce2ecb883689d2af49b4e168a")
    );
    let chain_2 = next_transition_hash(&contrast_core::sha256(b"expected"), &chain_1);
    assert_eq!(
        chain_2,
        hex!("a2273881542b80861b760e6b4c7a7ce65cccb1c205a8320252eb8f401b693fd4")
    );
}

#[test]
fn signing_blob_is_the_lowercase_hex() {
    assert_eq!(transition_signing_blob(&H_TRANSITION), TRANSITION_HASH_HEX);
    assert_eq!(transition_signing_blob(&H_TRANSITION).len(), 64);
}

#[test]
fn openssl_p384_signature_verifies() {
    let keys = strings(&[&p384_pub().to_hex()]);
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, P384_TRANSITION_SIG),
        Ok(0)
    );
    let keys = strings(&[&p384_other_pub().to_hex(), &p384_pub().to_hex()]);
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, P384_TRANSITION_SIG),
        Ok(1)
    );
}

#[test]
fn openssl_p256_signature_verifies() {
    let p256 = WorkloadOwnerPublicKey::from_pem(P256_PUB_PEM).unwrap();
    let keys = strings(&[&p384_pub().to_hex(), &p256.to_hex()]);
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, P256_TRANSITION_SIG),
        Ok(1)
    );
}

#[test]
fn signature_for_another_hash_is_rejected() {
    let keys = strings(&[&p384_pub().to_hex()]);
    assert_eq!(
        verify_update_signature(&keys, &H_HELLO, P384_TRANSITION_SIG),
        Err(AuthorizationError::BadSignature { keys_tried: 1 })
    );
}

#[test]
fn signature_by_another_key_is_rejected() {
    let keys = strings(&[&p384_other_pub().to_hex()]);
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, P384_TRANSITION_SIG),
        Err(AuthorizationError::BadSignature { keys_tried: 1 })
    );
}

#[test]
fn signature_with_a_flipped_byte_is_rejected() {
    let keys = strings(&[&p384_pub().to_hex()]);
    // Flip a byte inside s (the last byte): still DER, no longer valid.
    let mut flipped = P384_TRANSITION_SIG.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, &flipped),
        Err(AuthorizationError::BadSignature { keys_tried: 1 })
    );
    // Flip the SEQUENCE tag: no longer DER.
    let mut flipped = P384_TRANSITION_SIG.to_vec();
    flipped[0] ^= 0x01;
    assert!(matches!(
        verify_update_signature(&keys, &H_TRANSITION, &flipped),
        Err(AuthorizationError::MalformedSignature { .. })
    ));
}

#[test]
fn malformed_signatures_are_told_apart() {
    let keys = strings(&[&p384_pub().to_hex()]);
    for bad in [
        &[][..],
        &P384_TRANSITION_SIG[..P384_TRANSITION_SIG.len() - 1],
        b"not a signature",
        // A raw (r ‖ s) signature is not DER either.
        &[0x42; 96],
    ] {
        assert!(
            matches!(
                verify_update_signature(&keys, &H_TRANSITION, bad),
                Err(AuthorizationError::MalformedSignature { .. })
            ),
            "{bad:02x?}"
        );
    }
    let mut trailing = P384_TRANSITION_SIG.to_vec();
    trailing.push(0);
    assert!(matches!(
        verify_update_signature(&keys, &H_TRANSITION, &trailing),
        Err(AuthorizationError::MalformedSignature { .. })
    ));
}

#[test]
fn signature_without_owner_keys_means_updates_disabled() {
    assert_eq!(
        verify_update_signature(&[], &H_TRANSITION, P384_TRANSITION_SIG),
        Err(AuthorizationError::UpdatesDisabled)
    );
}

#[test]
fn invalid_owner_entries_are_skipped_when_verifying() {
    let keys = strings(&["invalid", M_SEEDSHARE_KEY, &p384_pub().to_hex()]);
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, P384_TRANSITION_SIG),
        Ok(2)
    );
    let keys = strings(&["invalid"]);
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, P384_TRANSITION_SIG),
        Err(AuthorizationError::BadSignature { keys_tried: 1 })
    );
}

#[test]
fn our_signatures_verify_and_are_deterministic() {
    let key = WorkloadOwnerPrivateKey::from_pem(P384_PEM).unwrap();
    let signature = key.sign_transition(&H_TRANSITION).unwrap();
    assert_eq!(signature, key.sign_transition(&H_TRANSITION).unwrap());
    let keys = strings(&[&key.public_key().to_hex()]);
    assert_eq!(
        verify_update_signature(&keys, &H_TRANSITION, &signature),
        Ok(0)
    );
    assert_eq!(
        verify_update_signature(&keys, &H_HELLO, &signature),
        Err(AuthorizationError::BadSignature { keys_tried: 1 })
    );
}

#[test]
fn generated_keys_sign_verifiably() {
    let key = WorkloadOwnerPrivateKey::generate(&mut rand_core::OsRng).unwrap();
    let other = WorkloadOwnerPrivateKey::generate(&mut rand_core::OsRng).unwrap();
    assert_ne!(key.public_key(), other.public_key());
    let signature = key.sign_transition(&H_WORLD).unwrap();
    let keys = strings(&[&other.public_key().to_hex(), &key.public_key().to_hex()]);
    assert_eq!(verify_update_signature(&keys, &H_WORLD, &signature), Ok(1));
}

// ---- update authorisation by key ------------------------------------------------------------

#[test]
fn update_by_listed_key_is_authorised() {
    let caller = p384_pub();
    let keys = strings(&[&p384_other_pub().to_hex(), &caller.to_hex()]);
    assert_eq!(authorize_update_by_key(Some(&keys), None, &caller), Ok(()));
    // Byte comparison: case does not matter.
    let upper = strings(&[&caller.to_hex().to_uppercase()]);
    assert_eq!(authorize_update_by_key(Some(&upper), None, &caller), Ok(()));
}

#[test]
fn update_by_old_schema_digest_is_authorised() {
    let caller = p384_pub();
    let digests = strings(&[
        &hexstring::encode(p384_other_pub().digest()),
        &hexstring::encode(caller.digest()).to_uppercase(),
    ]);
    assert_eq!(
        authorize_update_by_key(None, Some(&digests), &caller),
        Ok(())
    );
    assert_eq!(
        authorize_update_by_key(Some(&[]), Some(&digests), &caller),
        Ok(())
    );
}

#[test]
fn update_without_owners_is_disabled() {
    let caller = p384_pub();
    assert_eq!(
        authorize_update_by_key(None, None, &caller),
        Err(AuthorizationError::UpdatesDisabled)
    );
    assert_eq!(
        authorize_update_by_key(Some(&[]), Some(&[]), &caller),
        Err(AuthorizationError::UpdatesDisabled)
    );
    assert_eq!(
        AuthorizationError::UpdatesDisabled
            .to_string()
            .split(':')
            .next(),
        Some("setting manifest is disabled")
    );
}

#[test]
fn update_by_unlisted_key_is_rejected() {
    let caller = p384_pub();
    let keys = strings(&[&p384_other_pub().to_hex(), "invalid"]);
    let digests = strings(&[&hexstring::encode(p384_other_pub().digest()), "aaaa"]);
    let expected = Err(AuthorizationError::NotAnOwner {
        caller_digest: hexstring::encode(caller.digest()),
    });
    assert_eq!(
        authorize_update_by_key(Some(&keys), None, &caller),
        expected
    );
    assert_eq!(
        authorize_update_by_key(None, Some(&digests), &caller),
        expected
    );
    assert_eq!(
        authorize_update_by_key(Some(&keys), Some(&digests), &caller),
        expected
    );
    // The caller's key listed as a digest in the key list, or as a key in the digest list,
    // does not count.
    let swapped_keys = strings(&[&hexstring::encode(caller.digest())]);
    let swapped_digests = strings(&[&caller.to_hex()]);
    assert_eq!(
        authorize_update_by_key(Some(&swapped_keys), Some(&swapped_digests), &caller),
        expected
    );
}

// ---- recovery authorisation ---------------------------------------------------------------

#[test]
fn recovery_by_listed_key_is_authorised() {
    let caller = hexstring::decode(M_SEEDSHARE_KEY).unwrap();
    let other = SeedshareOwnerPrivateKey::from_pem(RSA4096_PEM)
        .unwrap()
        .public_key();
    let keys = strings(&[&other.to_hex(), M_SEEDSHARE_KEY]);
    assert_eq!(authorize_recovery(&keys, &caller), Ok(1));
    let upper = strings(&[&M_SEEDSHARE_KEY.to_uppercase()]);
    assert_eq!(authorize_recovery(&upper, &caller), Ok(0));
}

#[test]
fn recovery_by_unlisted_key_is_rejected() {
    let caller = SeedshareOwnerPrivateKey::from_pem(RSA4096_PEM)
        .unwrap()
        .public_key();
    let keys = strings(&[M_SEEDSHARE_KEY, "invalid"]);
    assert_eq!(
        authorize_recovery(&keys, caller.pkcs1_der()),
        Err(AuthorizationError::RecoveryKeyNotListed {
            caller_digest: hexstring::encode(caller.digest())
        })
    );
    // The SPKI form of a listed key is a different key for this rule (upstream compares PKCS#1).
    let keys = strings(&[&caller.to_hex()]);
    assert!(matches!(
        authorize_recovery(&keys, RSA4096_PUB_SPKI),
        Err(AuthorizationError::RecoveryKeyNotListed { .. })
    ));
}

#[test]
fn recovery_without_seedshare_owners_is_rejected() {
    let caller = hexstring::decode(M_SEEDSHARE_KEY).unwrap();
    assert_eq!(
        authorize_recovery(&[], &caller),
        Err(AuthorizationError::NoSeedshareOwners)
    );
}

// ---- seed-share owners are immutable ------------------------------------------------------

#[test]
fn unchanged_seedshare_owners_pass() {
    let owners = strings(&["aa", "bb"]);
    assert_eq!(
        check_seedshare_owners_unchanged(Some(&owners), Some(&owners.clone())),
        Ok(())
    );
    assert_eq!(check_seedshare_owners_unchanged(None, None), Ok(()));
    assert_eq!(check_seedshare_owners_unchanged(None, Some(&[])), Ok(()));
    assert_eq!(check_seedshare_owners_unchanged(Some(&[]), None), Ok(()));
}

#[test]
fn changed_seedshare_owners_are_rejected() {
    let current = strings(&["aa", "bb"]);
    let cases: [(Vec<String>, usize); 5] = [
        (strings(&["aa", "cc"]), 1),       // replaced
        (strings(&["bb", "aa"]), 0),       // reordered
        (strings(&["aa", "bb", "cc"]), 2), // added
        (strings(&["aa"]), 1),             // removed
        (strings(&["AA", "bb"]), 0), // same bytes, different string: upstream compares strings
    ];
    for (new, first_difference) in cases {
        assert_eq!(
            check_seedshare_owners_unchanged(Some(&current), Some(&new)),
            Err(AuthorizationError::SeedshareOwnersChanged {
                current_len: 2,
                new_len: new.len(),
                first_difference,
            }),
            "{new:?}"
        );
    }
    let err = check_seedshare_owners_unchanged(Some(&current), None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("changes to seedshare owners are not allowed")
    );
    assert!(matches!(
        check_seedshare_owners_unchanged(None, Some(&current)),
        Err(AuthorizationError::SeedshareOwnersChanged {
            current_len: 0,
            new_len: 2,
            first_difference: 0
        })
    ));
}

// ---- keys as users hand them over (public or private PEM) ----------------------------------

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

#[test]
fn seedshare_owner_key_from_any_pem_form_is_the_same_key() {
    let expected = SeedshareOwnerPublicKey::from_pkcs1_der(RSA4096_PUB_PKCS1)
        .unwrap()
        .to_hex();
    for (form, text) in [
        ("PKCS#1 public", pem("RSA PUBLIC KEY", RSA4096_PUB_PKCS1)),
        ("PKIX public", pem("PUBLIC KEY", RSA4096_PUB_SPKI)),
        ("PKCS#1 private", RSA4096_PEM.to_owned()),
        ("PKCS#8 private", RSA4096_PKCS8_PEM.to_owned()),
    ] {
        let key = SeedshareOwnerPublicKey::from_public_or_private_pem(&text)
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(key.to_hex(), expected, "{form}");
    }
}

#[test]
fn seedshare_owner_key_from_pem_keeps_the_size_check_and_refuses_other_keys() {
    assert!(matches!(
        SeedshareOwnerPublicKey::from_public_or_private_pem(&pem(
            "RSA PUBLIC KEY",
            RSA1024_PUB_PKCS1
        )),
        Err(OwnerKeyError::RsaKeyTooSmall { .. })
    ));
    // An EC `PUBLIC KEY` is not an RSA key; a labelled public key is not retried as private.
    assert!(SeedshareOwnerPublicKey::from_public_or_private_pem(P384_PUB_PEM).is_err());
    assert!(SeedshareOwnerPublicKey::from_public_or_private_pem(P384_PEM).is_err());
    assert!(SeedshareOwnerPublicKey::from_public_or_private_pem("not a pem").is_err());
}

#[test]
fn workload_owner_key_from_public_or_private_pem_is_the_same_key() {
    for (form, text) in [
        ("PKIX public", P384_PUB_PEM),
        ("SEC1 private", P384_PEM),
        ("PKCS#8 private", P384_PKCS8_PEM),
    ] {
        let key = WorkloadOwnerPublicKey::from_public_or_private_pem(text)
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(key, p384_pub(), "{form}");
    }
    assert!(WorkloadOwnerPublicKey::from_public_or_private_pem(RSA4096_PEM).is_err());
    assert!(WorkloadOwnerPublicKey::from_public_or_private_pem("not a pem").is_err());
}
