//! Seed shares: RSA-OAEP against OpenSSL, and the `seed-shares.json` document.
//!
//! Fixtures in `tests/fixtures/seedshare/` were made with OpenSSL 3.0:
//!
//! ```sh
//! openssl genrsa -traditional -out rsa4096.pem 4096        # PKCS#1, upstream's file format
//! openssl genrsa -traditional -out rsa2048.pem 2048        # for the proptest (speed)
//! openssl pkcs8 -topk8 -nocrypt -in rsa4096.pem -out rsa4096-pkcs8.pem
//! openssl rsa -in rsa4096.pem -pubout -out rsa4096-pub.pem
//! openssl rsa -in rsa4096.pem -RSAPublicKey_out -outform DER -out rsa4096-pub-pkcs1.der
//! openssl rsa -in rsa4096.pem -pubout -outform DER -out rsa4096-pub-spki.der
//! openssl genrsa -traditional 1024 | openssl rsa -RSAPublicKey_out -outform DER -out rsa1024-pub-pkcs1.der
//! openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:3 \
//!   | openssl rsa -RSAPublicKey_out -outform DER -out rsa2048-e3-pub-pkcs1.der
//! head -c 64 /dev/urandom > seed.bin; xxd -p -c 64 seed.bin | tr -d '\n' > seed.hex
//! openssl pkeyutl -encrypt -pubin -inkey rsa4096-pub.pem -pkeyopt rsa_padding_mode:oaep \
//!   -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 \
//!   -pkeyopt rsa_oaep_label:$(printf seedshare | xxd -p) -in seed.bin -out openssl-ciphertext.bin
//! openssl pkeyutl -encrypt -pubin -inkey rsa4096-pub.pem -pkeyopt rsa_padding_mode:oaep \
//!   -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in seed.bin -out openssl-ciphertext-nolabel.bin
//! ```
//!
//! The other direction was checked while writing this test: a share made by
//! `encrypt_seed_shares` for `rsa4096.pem`, written to `ours.bin`, decrypts with
//!
//! ```sh
//! openssl pkeyutl -decrypt -inkey rsa4096.pem -pkeyopt rsa_padding_mode:oaep \
//!   -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 \
//!   -pkeyopt rsa_oaep_label:$(printf seedshare | xxd -p) -in ours.bin
//! ```
//!
//! to the original seed.

// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

use contrast_core::hexstring;
use contrast_core::owner::{OwnerKeyError, SeedshareOwnerPrivateKey, SeedshareOwnerPublicKey};
use contrast_core::seedshare::{
    SeedShare, SeedShareDocument, SeedShareError, ShareScheme, encrypt_seed_shares,
};
use proptest::prelude::*;

const RSA4096_PEM: &str = include_str!("fixtures/seedshare/rsa4096.pem");
const RSA4096_PKCS8_PEM: &str = include_str!("fixtures/seedshare/rsa4096-pkcs8.pem");
const RSA2048_PEM: &str = include_str!("fixtures/seedshare/rsa2048.pem");
const RSA1024_PUB_PKCS1: &[u8] = include_bytes!("fixtures/seedshare/rsa1024-pub-pkcs1.der");
const SEED_HEX: &str = include_str!("fixtures/seedshare/seed.hex");
const OPENSSL_CIPHERTEXT: &[u8] = include_bytes!("fixtures/seedshare/openssl-ciphertext.bin");
const OPENSSL_CIPHERTEXT_NO_LABEL: &[u8] =
    include_bytes!("fixtures/seedshare/openssl-ciphertext-nolabel.bin");

/// Golden vector M-seedshare-key (contrast-formats.md §9.3); its private key is unknown.
const M_SEEDSHARE_KEY: &str = "3082020a0282020100bc51b1c9cb50002ae95a7ad98569506aadceabd0bb9ee576ad29ab3baecd60a604eee8882323fa8a7b6f4b21cea80bd4d794bf31fd7a5d6dfeb4afa6de30a834b87aa7f90e5ee11683b2f903b393174c436107f7b22467d0f5cee09c43eab28bcbec0137e165d8d34da66f9fc8294d60ebafbf38bf3e0e4dfcf7da84b24d6eaf1b8c4a579d2ec6ab1c280a7ec50854f2269ef8e31e1e2f1a1d24dd3ca8eaa5728c4f59fdf840899dc44bac0749b3d294a3c7446e2859db55cb93e6bf8ac8995665137f74e9898dad7a9f52d8527b16308e422685ed6ba221b6a266728a7cc11403d37a2f1be923685637eabafa4b0bf6095edc6908adf1b623450555ead19f9431d9a72730228379d5711475434e4696eb650469ad981cc0ced54c84909c36dc7e38d1ffda3aad63d2b6841bb2cee07c85116cd8139e528a3ca78a0d301f2deed86f0b7bbc6bcd863594e3ba67d86178db9f661d0aa25965ad05c608b8c7eadb5853284aadf2474b8a3dbbc23ac2992c11b283808108ffd59cf08687ac9a0ef20eb8ca3ec090a3a532ad305203b877a20c0da401386070dc97d2820b97d67eedc21c6a938bb368a7d1b4e9433abc3304d2f928df22d5d3b3bc0d593b1dcc84671809538b5da667a5f2ce89714c39d9c6aed34de3605fe79e9018de14b262ab1c63bb7d24c3ec51dac00b72be7266e6e1e221da1e50e9ea21aba44550c48bcdeb0203010001";

const SALT: [u8; 32] = [0x5a; 32];

fn rsa4096() -> SeedshareOwnerPrivateKey {
    SeedshareOwnerPrivateKey::from_pem(RSA4096_PEM).unwrap()
}

fn rsa2048() -> SeedshareOwnerPrivateKey {
    SeedshareOwnerPrivateKey::from_pem(RSA2048_PEM).unwrap()
}

fn seed() -> Vec<u8> {
    hexstring::decode(SEED_HEX.trim()).unwrap()
}

// ---- RSA-OAEP -----------------------------------------------------------------------------

#[test]
fn openssl_ciphertext_decrypts() {
    let key = rsa4096();
    let share = SeedShare {
        public_key: key.public_key().to_hex(),
        encrypted_seed: OPENSSL_CIPHERTEXT.to_vec(),
    };
    assert_eq!(share.decrypt(&key).unwrap().as_slice(), seed());
    // The PKCS#8 form of the same key works the same.
    let pkcs8 = SeedshareOwnerPrivateKey::from_pem(RSA4096_PKCS8_PEM).unwrap();
    assert_eq!(share.decrypt(&pkcs8).unwrap().as_slice(), seed());
}

#[test]
fn shares_are_made_per_key_in_manifest_order() {
    let big = rsa4096();
    let small = rsa2048();
    let owners = vec![big.public_key().to_hex(), small.public_key().to_hex()];
    let doc = encrypt_seed_shares(&seed(), &SALT, &owners).unwrap();
    assert_eq!(doc.salt, SALT);
    assert_eq!(doc.scheme(), ShareScheme::WholeSeed);
    assert_eq!(doc.seed_shares.len(), 2);
    assert_eq!(doc.seed_shares[0].public_key, owners[0]);
    assert_eq!(doc.seed_shares[1].public_key, owners[1]);
    assert_eq!(doc.seed_shares[0].encrypted_seed.len(), 512);
    assert_eq!(doc.seed_shares[1].encrypted_seed.len(), 256);
    assert_eq!(doc.seed_shares[0].decrypt(&big).unwrap().as_slice(), seed());
    assert_eq!(
        doc.seed_shares[1].decrypt(&small).unwrap().as_slice(),
        seed()
    );
    // OAEP is randomised: encrypting again gives another ciphertext.
    let again = encrypt_seed_shares(&seed(), &SALT, &owners).unwrap();
    assert_ne!(
        again.seed_shares[0].encrypted_seed,
        doc.seed_shares[0].encrypted_seed
    );
}

#[test]
fn public_key_string_is_kept_exactly() {
    let key = rsa2048();
    let upper = key.public_key().to_hex().to_uppercase();
    let doc = encrypt_seed_shares(&seed(), &SALT, std::slice::from_ref(&upper)).unwrap();
    assert_eq!(doc.seed_shares[0].public_key, upper);
    assert_eq!(doc.seed_shares[0].decrypt(&key).unwrap().as_slice(), seed());
    // `share_for` compares the lowercase hex string, like `contrast recover`.
    assert!(doc.share_for(&key.public_key()).is_none());
}

#[test]
fn share_for_finds_the_owners_share() {
    let big = rsa4096();
    let small = rsa2048();
    let owners = vec![
        M_SEEDSHARE_KEY.to_owned(),
        big.public_key().to_hex(),
        small.public_key().to_hex(),
    ];
    let doc = encrypt_seed_shares(&seed(), &SALT, &owners).unwrap();
    assert_eq!(
        doc.share_for(&small.public_key()),
        Some(&doc.seed_shares[2])
    );
    assert_eq!(doc.share_for(&big.public_key()), Some(&doc.seed_shares[1]));
    let m_key = SeedshareOwnerPublicKey::from_hex(M_SEEDSHARE_KEY).unwrap();
    assert_eq!(doc.share_for(&m_key), Some(&doc.seed_shares[0]));
    let only_big = encrypt_seed_shares(&seed(), &SALT, &owners[1..2]).unwrap();
    assert!(only_big.share_for(&small.public_key()).is_none());
}

#[test]
fn decrypting_with_another_key_is_refused() {
    let big = rsa4096();
    let small = rsa2048();
    let doc = encrypt_seed_shares(&seed(), &SALT, &[big.public_key().to_hex()]).unwrap();
    match doc.seed_shares[0].decrypt(&small).unwrap_err() {
        SeedShareError::ShareKeyMismatch { key_digest } => {
            assert_eq!(key_digest, hexstring::encode(small.public_key().digest()));
        }
        other => panic!("unexpected error {other:?}"),
    }
    // A share relabelled for another key does not decrypt under it either.
    let relabelled = SeedShare {
        public_key: small.public_key().to_hex(),
        encrypted_seed: doc.seed_shares[0].encrypted_seed.clone(),
    };
    assert!(matches!(
        relabelled.decrypt(&small),
        Err(SeedShareError::CiphertextLength {
            expected: 256,
            found: 512
        })
    ));
}

#[test]
fn tampered_ciphertext_fails() {
    let key = rsa4096();
    let mut share = SeedShare {
        public_key: key.public_key().to_hex(),
        encrypted_seed: OPENSSL_CIPHERTEXT.to_vec(),
    };
    share.encrypted_seed[100] ^= 0x01;
    assert!(matches!(
        share.decrypt(&key),
        Err(SeedShareError::DecryptionFailed)
    ));
    share.encrypted_seed.truncate(511);
    assert!(matches!(
        share.decrypt(&key),
        Err(SeedShareError::CiphertextLength {
            expected: 512,
            found: 511
        })
    ));
}

#[test]
fn ciphertext_without_the_label_fails() {
    // Same key and seed, OAEP-SHA-256 without `rsa_oaep_label` (empty label).
    let key = rsa4096();
    let share = SeedShare {
        public_key: key.public_key().to_hex(),
        encrypted_seed: OPENSSL_CIPHERTEXT_NO_LABEL.to_vec(),
    };
    assert!(matches!(
        share.decrypt(&key),
        Err(SeedShareError::DecryptionFailed)
    ));
}

#[test]
fn invalid_owner_keys_are_reported_with_their_index() {
    let good = rsa2048().public_key().to_hex();
    let err =
        encrypt_seed_shares(&seed(), &SALT, &[good.clone(), "invalid".to_owned()]).unwrap_err();
    assert!(
        matches!(
            err,
            SeedShareError::InvalidOwnerKey {
                index: 1,
                source: OwnerKeyError::Hex { .. }
            }
        ),
        "{err:?}"
    );
    let small = hexstring::encode(RSA1024_PUB_PKCS1);
    let err = encrypt_seed_shares(&seed(), &SALT, &[small]).unwrap_err();
    assert!(
        matches!(
            err,
            SeedShareError::InvalidOwnerKey {
                index: 0,
                source: OwnerKeyError::RsaKeyTooSmall { bits: 1024, .. }
            }
        ),
        "{err:?}"
    );
}

#[test]
fn seed_longer_than_one_oaep_block_is_rejected() {
    let key = rsa2048().public_key().to_hex();
    // 2048-bit modulus: 256 - 2 * 32 - 2 = 190 bytes at most.
    assert!(encrypt_seed_shares(&[1; 190], &SALT, std::slice::from_ref(&key)).is_ok());
    let err = encrypt_seed_shares(&[1; 191], &SALT, &[key]).unwrap_err();
    assert!(
        matches!(
            err,
            SeedShareError::SeedTooLong {
                index: 0,
                len: 191,
                max: 190
            }
        ),
        "{err:?}"
    );
}

#[test]
fn no_owners_give_an_empty_share_list() {
    let doc = encrypt_seed_shares(&seed(), &SALT, &[]).unwrap();
    assert!(doc.seed_shares.is_empty());
    assert_eq!(doc.salt, SALT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn random_seeds_round_trip(seed in proptest::collection::vec(any::<u8>(), 64)) {
        let key = rsa2048();
        let doc = encrypt_seed_shares(&seed, &SALT, &[key.public_key().to_hex()]).unwrap();
        let share = doc.share_for(&key.public_key()).unwrap();
        let decrypted = share.decrypt(&key).unwrap();
        prop_assert_eq!(decrypted.as_slice(), seed.as_slice());
    }
}

// ---- seed-shares.json ---------------------------------------------------------------------

fn golden_document() -> SeedShareDocument {
    SeedShareDocument {
        seed_shares: vec![SeedShare {
            public_key: "0a0b".to_owned(),
            encrypted_seed: vec![0, 1, 2, 3],
        }],
        salt: (0x40..0x60).collect(),
    }
}

/// Go's `json.MarshalIndent(doc, "", "  ")`, written out by hand: two-space indentation,
/// `": "` after keys, no trailing newline, standard padded base64.
const GOLDEN_JSON: &str = r#"{
  "SeedShares": [
    {
      "PublicKey": "0a0b",
      "EncryptedSeed": "AAECAw=="
    }
  ],
  "salt": "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="
}"#;

#[test]
fn document_serialises_like_go_marshal_indent() {
    assert_eq!(
        String::from_utf8(golden_document().to_json().unwrap()).unwrap(),
        GOLDEN_JSON
    );
}

#[test]
fn document_parses_back() {
    assert_eq!(
        SeedShareDocument::from_json(GOLDEN_JSON.as_bytes()).unwrap(),
        golden_document()
    );
    let doc = encrypt_seed_shares(&seed(), &SALT, &[rsa2048().public_key().to_hex()]).unwrap();
    assert_eq!(
        SeedShareDocument::from_json(&doc.to_json().unwrap()).unwrap(),
        doc
    );
}

#[test]
fn serde_serialisation_has_the_same_shape() {
    let via_serde = serde_json::to_value(golden_document()).unwrap();
    let via_go_writer: serde_json::Value = serde_json::from_str(GOLDEN_JSON).unwrap();
    assert_eq!(via_serde, via_go_writer);
    let parsed: SeedShareDocument = serde_json::from_str(GOLDEN_JSON).unwrap();
    assert_eq!(parsed, golden_document());
}

#[test]
fn empty_fields_are_omitted() {
    let doc = SeedShareDocument {
        seed_shares: vec![SeedShare {
            public_key: "0a0b".to_owned(),
            encrypted_seed: vec![],
        }],
        salt: vec![],
    };
    assert_eq!(
        String::from_utf8(doc.to_json().unwrap()).unwrap(),
        "{\n  \"SeedShares\": [\n    {\n      \"PublicKey\": \"0a0b\"\n    }\n  ]\n}"
    );
    let doc = SeedShareDocument {
        seed_shares: vec![],
        salt: vec![1],
    };
    assert_eq!(
        String::from_utf8(doc.to_json().unwrap()).unwrap(),
        "{\n  \"salt\": \"AQ==\"\n}"
    );
}

#[test]
fn go_decoding_rules_apply() {
    // Case-insensitive keys, unknown keys ignored, compact layout.
    let json = br#"{"seedshares":[{"publickey":"0a0b","ENCRYPTEDSEED":"AAECAw==","extra":1}],"SALT":"QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=","other":{"a":[1,2]}}"#;
    assert_eq!(
        SeedShareDocument::from_json(json).unwrap(),
        golden_document()
    );
    // Duplicate keys: the last one wins.
    let json = br#"{"salt":"AQ==","salt":"Ag=="}"#;
    assert_eq!(SeedShareDocument::from_json(json).unwrap().salt, vec![2]);
    // null fields are empty; a null document is an empty document.
    let json = br#"{"SeedShares":null,"salt":null}"#;
    assert_eq!(
        SeedShareDocument::from_json(json).unwrap(),
        SeedShareDocument::default()
    );
    assert_eq!(
        SeedShareDocument::from_json(b"null").unwrap(),
        SeedShareDocument::default()
    );
    assert_eq!(
        SeedShareDocument::from_json(b"{}").unwrap(),
        SeedShareDocument::default()
    );
    let json = br#"{"SeedShares":[{"PublicKey":null,"EncryptedSeed":null}]}"#;
    assert_eq!(
        SeedShareDocument::from_json(json).unwrap().seed_shares,
        vec![SeedShare::default()]
    );
    // Go's base64 decoder skips line breaks.
    let json = br#"{"salt":"QUJD\nREVG"}"#;
    assert_eq!(SeedShareDocument::from_json(json).unwrap().salt, b"ABCDEF");
}

#[test]
fn malformed_documents_are_rejected() {
    for json in [
        &b"{"[..],
        b"[]",
        b"\"x\"",
        br#"{"SeedShares":{}}"#,
        br#"{"SeedShares":[1]}"#,
        br#"{"salt":1}"#,
    ] {
        assert!(
            matches!(
                SeedShareDocument::from_json(json),
                Err(SeedShareError::Json { .. })
            ),
            "{}",
            String::from_utf8_lossy(json)
        );
    }
}

#[test]
fn invalid_base64_names_the_field() {
    let json = br#"{"SeedShares":[{"PublicKey":"0a","EncryptedSeed":"AAECAw=="},{"PublicKey":"0b","EncryptedSeed":"not base64!"}]}"#;
    match SeedShareDocument::from_json(json).unwrap_err() {
        SeedShareError::InvalidBase64 { field, .. } => {
            assert_eq!(field, "SeedShares[1].EncryptedSeed")
        }
        other => panic!("unexpected error {other:?}"),
    }
    // Go's StdEncoding requires padding.
    match SeedShareDocument::from_json(br#"{"salt":"AQ"}"#).unwrap_err() {
        SeedShareError::InvalidBase64 { field, .. } => assert_eq!(field, "salt"),
        other => panic!("unexpected error {other:?}"),
    }
}
