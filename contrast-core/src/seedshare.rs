//! Seed shares: the Coordinator's seed, RSA-OAEP encrypted to each seed-share owner, and the
//! `seed-shares.json` document the CLI writes.
//!
//! On the first manifest the Coordinator generates the seed (64 bytes) and salt (32 bytes) and
//! encrypts the seed to every `SeedshareOwnerPubKeys` entry, in manifest order, with
//! **RSA-OAEP, SHA-256, MGF1-SHA-256, label ASCII `seedshare`**. Every share holds the whole
//! seed ([`ShareScheme::WholeSeed`]): any single owner can recover.
//!
//! The encryption uses aws-lc. Its OAEP padding randomness comes from aws-lc's own DRBG: aws-lc-rs
//! takes no RNG parameter for RSA encryption, so this is the one place in the crate where
//! randomness is not passed in. Ciphertexts are therefore not reproducible; tests check them by
//! decryption.
//!
//! `seed-shares.json` is Go's `json.MarshalIndent(doc, "", "  ")` of the protobuf
//! `SeedShareDocument`, which upstream's `contrast set` writes without a trailing newline:
//!
//! ```json
//! {
//!   "SeedShares": [
//!     {
//!       "PublicKey": "<hex of the PKCS#1 key, exactly as in the manifest>",
//!       "EncryptedSeed": "<standard base64>"
//!     }
//!   ],
//!   "salt": "<standard base64>"
//! }
//! ```
//!
//! Empty fields are omitted (`omitempty`). Reading follows Go's `encoding/json`: keys match
//! field names case-insensitively, unknown keys are ignored, `null` leaves a field empty, and
//! the last of duplicate keys wins.

use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use base64::Engine as _;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::hexstring;
use crate::owner::{OwnerKeyError, SeedshareOwnerPrivateKey, SeedshareOwnerPublicKey};

/// The OAEP label of every seed share.
pub const SEED_SHARE_OAEP_LABEL: &[u8] = b"seedshare";

/// How the seed is split among the seed-share owners.
///
/// Upstream has one scheme: every share is the whole seed, encrypted to one owner, so any one
/// owner can recover. A threshold (k-of-n) variant can be added later; it would add fields to
/// [`SeedShareDocument`] without changing the meaning of the existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ShareScheme {
    /// Every share holds the whole seed (upstream's scheme).
    #[default]
    WholeSeed,
}

/// Why seed shares could not be made, read or decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedShareError {
    /// A `SeedshareOwnerPubKeys` entry is not an acceptable key.
    #[error("seedshare owner key {index} is invalid: {source}")]
    InvalidOwnerKey {
        /// Position in the manifest list.
        index: usize,
        /// Why the key was rejected.
        source: OwnerKeyError,
    },
    /// The seed does not fit into one OAEP block of this key.
    #[error(
        "seed of {len} bytes is too long for seedshare owner key {index} (at most {max} bytes)"
    )]
    SeedTooLong {
        /// Position of the key in the manifest list.
        index: usize,
        /// Seed length.
        len: usize,
        /// Largest plaintext the key takes.
        max: usize,
    },
    /// aws-lc failed to encrypt.
    #[error("RSA-OAEP encryption to seedshare owner key {index} failed")]
    EncryptionFailed {
        /// Position of the key in the manifest list.
        index: usize,
    },
    /// The private key is not usable for decryption.
    #[error("seedshare owner private key is unusable: {source}")]
    PrivateKey {
        /// Why the key was rejected.
        source: OwnerKeyError,
    },
    /// The share is encrypted to another key.
    #[error("seed share is not encrypted to the given key (key SHA-256 {key_digest})")]
    ShareKeyMismatch {
        /// Hex SHA-256 of the given key's PKCS#1 DER.
        key_digest: String,
    },
    /// The ciphertext length is not the key's modulus length.
    #[error("encrypted seed has {found} bytes, expected {expected} for this key")]
    CiphertextLength {
        /// The modulus length in bytes.
        expected: usize,
        /// The ciphertext length found.
        found: usize,
    },
    /// OAEP decryption failed: corrupted ciphertext, other label or other parameters.
    #[error("RSA-OAEP decryption of the seed share failed")]
    DecryptionFailed,
    /// The document is not valid JSON of the expected shape.
    #[error("malformed seed share document: {source}")]
    Json {
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// A bytes field is not standard base64.
    #[error("seed share document field {field} is not valid base64: {source}")]
    InvalidBase64 {
        /// The field, e.g. `SeedShares[0].EncryptedSeed`.
        field: String,
        /// The base64 error.
        source: base64::DecodeError,
    },
    /// Serialising the document failed (only possible through a serde_json bug).
    #[error("seed share document could not be encoded: {message}")]
    Encode {
        /// The encoder's message.
        message: String,
    },
}

/// One owner's share: the seed encrypted to one seed-share owner key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SeedShare {
    /// The owner's key, hex of the PKCS#1 DER, exactly as in the manifest.
    #[serde(rename = "PublicKey", skip_serializing_if = "String::is_empty")]
    pub public_key: String,
    /// RSA-OAEP ciphertext of the seed (standard base64 in JSON).
    #[serde(
        rename = "EncryptedSeed",
        serialize_with = "serialize_base64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub encrypted_seed: Vec<u8>,
}

/// The seed shares and the salt, as returned by the first `SetManifest` and written to
/// `seed-shares.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SeedShareDocument {
    /// One share per seed-share owner, in manifest order.
    #[serde(rename = "SeedShares", skip_serializing_if = "Vec::is_empty")]
    pub seed_shares: Vec<SeedShare>,
    /// The seed engine's salt (standard base64 in JSON).
    #[serde(
        rename = "salt",
        serialize_with = "serialize_base64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub salt: Vec<u8>,
}

/// Encrypts `seed` to every seed-share owner key (`SeedshareOwnerPubKeys` entries, hex PKCS#1
/// DER), in order, and returns the document with `salt`.
///
/// OAEP randomness comes from aws-lc's internal DRBG (see the module docs).
pub fn encrypt_seed_shares(
    seed: &[u8],
    salt: &[u8; 32],
    owner_keys: &[String],
) -> Result<SeedShareDocument, SeedShareError> {
    let seed_shares = owner_keys
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let key = SeedshareOwnerPublicKey::from_hex(entry)
                .map_err(|source| SeedShareError::InvalidOwnerKey { index, source })?;
            Ok(SeedShare {
                public_key: entry.clone(),
                encrypted_seed: encrypt_seed(seed, &key, index)?,
            })
        })
        .collect::<Result<Vec<_>, SeedShareError>>()?;
    Ok(SeedShareDocument {
        seed_shares,
        salt: salt.to_vec(),
    })
}

fn encrypt_seed(
    seed: &[u8],
    key: &SeedshareOwnerPublicKey,
    index: usize,
) -> Result<Vec<u8>, SeedShareError> {
    let public_key = key
        .to_aws_lc()
        .map_err(|source| SeedShareError::InvalidOwnerKey { index, source })?;
    let oaep = OaepPublicEncryptingKey::new(public_key)
        .map_err(|_| SeedShareError::EncryptionFailed { index })?;
    let max = oaep.max_plaintext_size(&OAEP_SHA256_MGF1SHA256);
    if seed.len() > max {
        return Err(SeedShareError::SeedTooLong {
            index,
            len: seed.len(),
            max,
        });
    }
    let mut ciphertext = vec![0u8; oaep.ciphertext_size()];
    let written = oaep
        .encrypt(
            &OAEP_SHA256_MGF1SHA256,
            seed,
            &mut ciphertext,
            Some(SEED_SHARE_OAEP_LABEL),
        )
        .map_err(|_| SeedShareError::EncryptionFailed { index })?
        .len();
    ciphertext.truncate(written);
    Ok(ciphertext)
}

impl SeedShare {
    /// Decrypts the seed with the owner's private key. Fails with
    /// [`SeedShareError::ShareKeyMismatch`] when the share names another key.
    pub fn decrypt(
        &self,
        key: &SeedshareOwnerPrivateKey,
    ) -> Result<Zeroizing<Vec<u8>>, SeedShareError> {
        let public_key = key.public_key();
        let names_this_key =
            hexstring::decode(&self.public_key).is_ok_and(|der| der == public_key.pkcs1_der());
        if !names_this_key {
            return Err(SeedShareError::ShareKeyMismatch {
                key_digest: hexstring::encode(public_key.digest()),
            });
        }
        let private_key = key
            .to_aws_lc()
            .map_err(|source| SeedShareError::PrivateKey { source })?;
        let oaep = OaepPrivateDecryptingKey::new(private_key)
            .map_err(|_| SeedShareError::DecryptionFailed)?;
        if self.encrypted_seed.len() != oaep.key_size_bytes() {
            return Err(SeedShareError::CiphertextLength {
                expected: oaep.key_size_bytes(),
                found: self.encrypted_seed.len(),
            });
        }
        let mut plaintext = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let written = oaep
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                &self.encrypted_seed,
                &mut plaintext,
                Some(SEED_SHARE_OAEP_LABEL),
            )
            .map_err(|_| SeedShareError::DecryptionFailed)?
            .len();
        plaintext.truncate(written);
        Ok(plaintext)
    }
}

impl SeedShareDocument {
    /// The sharing scheme of this document (always [`ShareScheme::WholeSeed`] for now).
    #[must_use]
    pub fn scheme(&self) -> ShareScheme {
        ShareScheme::WholeSeed
    }

    /// The share for `key`: the first whose `PublicKey` string equals the lowercase hex of the
    /// key's PKCS#1 DER (as `contrast recover` looks it up).
    #[must_use]
    pub fn share_for(&self, key: &SeedshareOwnerPublicKey) -> Option<&SeedShare> {
        let wanted = key.to_hex();
        self.seed_shares
            .iter()
            .find(|share| share.public_key == wanted)
    }

    /// `seed-shares.json` exactly as upstream's CLI writes it: Go's
    /// `json.MarshalIndent(doc, "", "  ")`, no trailing newline.
    ///
    /// # Errors
    ///
    /// [`SeedShareError::Encode`] if serialisation fails (not possible in practice with an
    /// in-memory writer; surfaced rather than hidden).
    pub fn to_json(&self) -> Result<Vec<u8>, SeedShareError> {
        crate::gocompat::marshal_indent(self).map_err(|e| SeedShareError::Encode {
            message: e.to_string(),
        })
    }

    /// Parses `seed-shares.json` (Go `encoding/json` rules, see the module docs). A top-level
    /// `null` is an empty document, as in Go.
    pub fn from_json(json: &[u8]) -> Result<Self, SeedShareError> {
        let raw: Option<RawDocument> =
            serde_json::from_slice(json).map_err(|source| SeedShareError::Json { source })?;
        raw.unwrap_or_default().into_document()
    }
}

/// Go writes `[]byte` as standard base64 with padding.
fn serialize_base64<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

// ---------------------------------------------------------------------------------------------
// JSON reading (Go `encoding/json` rules)
// ---------------------------------------------------------------------------------------------

/// The document with bytes fields still as base64 text.
#[derive(Default)]
struct RawDocument {
    seed_shares: Vec<RawShare>,
    salt: Option<String>,
}

#[derive(Default)]
struct RawShare {
    public_key: String,
    encrypted_seed: Option<String>,
}

fn decode_go_base64(
    field: impl FnOnce() -> String,
    text: Option<&str>,
) -> Result<Vec<u8>, SeedShareError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    crate::gocompat::decode_std_base64(text).map_err(|source| SeedShareError::InvalidBase64 {
        field: field(),
        source,
    })
}

impl RawDocument {
    fn into_document(self) -> Result<SeedShareDocument, SeedShareError> {
        let seed_shares = self
            .seed_shares
            .into_iter()
            .enumerate()
            .map(|(i, share)| {
                Ok(SeedShare {
                    encrypted_seed: decode_go_base64(
                        || format!("SeedShares[{i}].EncryptedSeed"),
                        share.encrypted_seed.as_deref(),
                    )?,
                    public_key: share.public_key,
                })
            })
            .collect::<Result<Vec<_>, SeedShareError>>()?;
        let salt = decode_go_base64(|| "salt".to_owned(), self.salt.as_deref())?;
        Ok(SeedShareDocument { seed_shares, salt })
    }
}

impl<'de> Deserialize<'de> for RawDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocumentVisitor;
        impl<'de> Visitor<'de> for DocumentVisitor {
            type Value = RawDocument;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a seed share document object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDocument, A::Error> {
                let mut doc = RawDocument::default();
                while let Some(key) = map.next_key::<String>()? {
                    if crate::gocompat::field_name_matches(&key, "SeedShares") {
                        // `null` resets a slice to nil in Go.
                        doc.seed_shares = map
                            .next_value::<Option<Vec<RawShare>>>()?
                            .unwrap_or_default();
                    } else if crate::gocompat::field_name_matches(&key, "salt") {
                        doc.salt = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(doc)
            }
        }
        deserializer.deserialize_map(DocumentVisitor)
    }
}

impl<'de> Deserialize<'de> for RawShare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShareVisitor;
        impl<'de> Visitor<'de> for ShareVisitor {
            type Value = RawShare;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a seed share object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawShare, A::Error> {
                let mut share = RawShare::default();
                while let Some(key) = map.next_key::<String>()? {
                    if crate::gocompat::field_name_matches(&key, "PublicKey") {
                        // `null` leaves a string unchanged in Go.
                        if let Some(value) = map.next_value::<Option<String>>()? {
                            share.public_key = value;
                        }
                    } else if crate::gocompat::field_name_matches(&key, "EncryptedSeed") {
                        share.encrypted_seed = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(share)
            }
        }
        deserializer.deserialize_map(ShareVisitor)
    }
}

impl<'de> Deserialize<'de> for SeedShareDocument {
    /// Same rules as [`SeedShareDocument::from_json`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawDocument::deserialize(deserializer)?
            .into_document()
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_field_names_fold_like_go() {
        assert!(crate::gocompat::field_name_matches("salt", "salt"));
        assert!(crate::gocompat::field_name_matches("SALT", "salt"));
        assert!(crate::gocompat::field_name_matches("\u{17f}alt", "salt"));
        assert!(crate::gocompat::field_name_matches(
            "publicKey",
            "PublicKey"
        ));
        assert!(crate::gocompat::field_name_matches(
            "Public\u{212a}ey",
            "PublicKey"
        ));
        assert!(!crate::gocompat::field_name_matches("salts", "salt"));
        assert!(!crate::gocompat::field_name_matches("sal", "salt"));
        assert!(!crate::gocompat::field_name_matches(
            "public_key",
            "PublicKey"
        ));
    }

    #[test]
    fn empty_document_is_an_empty_object() {
        assert_eq!(SeedShareDocument::default().to_json().unwrap(), b"{}");
        let doc = SeedShareDocument {
            seed_shares: vec![SeedShare::default()],
            salt: vec![],
        };
        assert_eq!(
            doc.to_json().unwrap(),
            b"{\n  \"SeedShares\": [\n    {}\n  ]\n}"
        );
    }
}
