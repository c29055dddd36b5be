//! The LUKS2 JSON metadata, typed.
//!
//! Every field the LUKS2 format defines for the objects Contrast uses is a typed `Option` (a
//! missing field is a finding for the policy, not a parse error); every other field is kept as
//! a raw JSON value in `unknown`, so that [`check`](crate::check) can refuse it by name.
//! Numbers that LUKS2 stores as strings (offsets, sizes) stay strings.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Fields this crate does not know, by name, with their raw values.
pub type Unknown = BTreeMap<String, Value>;

/// The whole JSON area.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// Keyslots by id (a decimal string).
    pub keyslots: BTreeMap<String, Keyslot>,
    /// Tokens by id, raw: any token is refused.
    pub tokens: BTreeMap<String, Value>,
    /// Segments by id.
    pub segments: BTreeMap<String, Segment>,
    /// Digests by id.
    pub digests: BTreeMap<String, Digest>,
    /// The `config` object.
    pub config: Config,
    /// Other top-level fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A keyslot.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Keyslot {
    /// `type` (`luks2`, or `reencrypt` during reencryption).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Size of the volume key the slot holds, in bytes.
    pub key_size: Option<u64>,
    /// The anti-forensic splitter.
    pub af: Option<KeyslotAf>,
    /// The keyslot's binary area.
    pub area: Option<KeyslotArea>,
    /// The passphrase KDF.
    pub kdf: Option<Kdf>,
    /// `priority` (absent means normal).
    pub priority: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A keyslot's anti-forensic splitter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct KeyslotAf {
    /// `type` (`luks1`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Number of stripes.
    pub stripes: Option<u64>,
    /// The splitter's hash.
    pub hash: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A keyslot's binary area.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct KeyslotArea {
    /// `type` (`raw`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Byte offset on the device (a decimal string).
    pub offset: Option<String>,
    /// Byte length (a decimal string).
    pub size: Option<String>,
    /// The cipher the area is encrypted with.
    pub encryption: Option<String>,
    /// The area cipher's key size in bytes.
    pub key_size: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A keyslot's passphrase KDF.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Kdf {
    /// `type` (`argon2id`, `argon2i`, `pbkdf2`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Argon2 time cost.
    pub time: Option<u64>,
    /// Argon2 memory cost in KiB.
    pub memory: Option<u64>,
    /// Argon2 parallelism.
    pub cpus: Option<u64>,
    /// PBKDF2 hash.
    pub hash: Option<String>,
    /// PBKDF2 iterations.
    pub iterations: Option<u64>,
    /// The salt (base64).
    pub salt: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A data segment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Segment {
    /// `type` (`crypt`, `linear`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Byte offset of the data (a decimal string).
    pub offset: Option<String>,
    /// Byte length (a decimal string, or `dynamic` for the rest of the device).
    pub size: Option<String>,
    /// The IV offset (a decimal string).
    pub iv_tweak: Option<String>,
    /// The data cipher.
    pub encryption: Option<String>,
    /// The encryption sector size in bytes.
    pub sector_size: Option<u64>,
    /// The dm-integrity layer.
    pub integrity: Option<Integrity>,
    /// Segment flags (raw: any flag is refused).
    pub flags: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A segment's integrity object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Integrity {
    /// The integrity algorithm (`hmac(sha256)`, ...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The journal's encryption (`none`).
    pub journal_encryption: Option<String>,
    /// The journal's integrity (`none`).
    pub journal_integrity: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// A digest of the volume key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Digest {
    /// `type` (`pbkdf2`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The keyslots whose key this digest verifies.
    pub keyslots: Option<Vec<String>>,
    /// The segments that key opens.
    pub segments: Option<Vec<String>>,
    /// PBKDF2 hash.
    pub hash: Option<String>,
    /// PBKDF2 iterations.
    pub iterations: Option<u64>,
    /// The salt (base64).
    pub salt: Option<String>,
    /// The digest (base64).
    pub digest: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// The `config` object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Config {
    /// Size of the JSON area in bytes (a decimal string).
    pub json_size: Option<String>,
    /// Size of the keyslots area in bytes (a decimal string).
    pub keyslots_size: Option<String>,
    /// Persistent activation flags (raw: any flag is refused).
    pub flags: Option<Value>,
    /// Requirements (raw: any requirement is refused).
    pub requirements: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub unknown: Unknown,
}
