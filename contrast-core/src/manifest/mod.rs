//! The Contrast manifest: the JSON document that names the workloads (by initdata digest), the
//! hardware reference values they must attest against, and the keys allowed to update the
//! deployment or recover the Coordinator.
//!
//! # Format
//!
//! The manifest is the JSON that Go's `encoding/json` writes for upstream's `Manifest` struct.
//! Keys are the Go field names (PascalCase); the only tagged keys are `snp` and `tdx`.
//!
//! ```text
//! {
//!   "Policies": { "<hex sha256 initdata digest>": { "SANs": [..], "WorkloadSecretID": "..", "Role": "coordinator" } },
//!   "ReferenceValues": { "snp": [ { "Platform": .., "ProductName": .., ... } ], "tdx": [ .. ] },
//!   "WorkloadOwnerKeyDigests": ["<64 hex>"],   // old schema, written only when present
//!   "WorkloadOwnerPubKeys": ["<hex PKIX DER ECDSA key>"],
//!   "SeedshareOwnerPubKeys": ["<hex PKCS#1 DER RSA key>"],
//!   "MinimumAPIVersion": "v1"                  // written only when present
//! }
//! ```
//!
//! # Identity: raw bytes
//!
//! The manifest hash is SHA-256 over the exact bytes the client submitted; there is no
//! canonicalisation. [`ManifestDocument`] keeps those bytes next to their meaning, and its
//! [`hash`](ManifestDocument::hash) is always over the raw bytes. [`Manifest::to_go_json`]
//! produces what `contrast generate` writes (`json.MarshalIndent(m, "", "  ")` plus `"\n"`), so
//! regenerating a manifest is byte-identical.
//!
//! # Decoding (Go rules)
//!
//! A manifest that Go accepts means the same thing here: object keys match field names exactly
//! or, failing that, case-insensitively (Go's folding: ASCII case, plus `ſ`→`S`, `K` (Kelvin)
//! →`K`, `ı`/`İ`→`I`); unknown keys are ignored; `null` leaves a field at its zero value; hex is
//! accepted in either case. Deviations, all stricter than Go (Go would accept and silently
//! discard or alter data):
//!
//! - two keys that resolve to the same field of one object, or a policy key written twice,
//!   are rejected ([`ManifestError::DuplicateField`], [`ManifestError::DuplicatePolicyKey`])
//!   instead of Go's last-one-wins;
//! - more than four `Rtmrs` are rejected ([`ManifestError::TooManyElements`]) instead of Go's
//!   dropping the extra ones;
//! - an SVN with a fractional part is rejected instead of truncated;
//! - invalid UTF-8 and lone UTF-16 surrogate escapes are rejected instead of replaced with
//!   U+FFFD, numbers beyond the `f64` range are rejected even under unknown keys, and the input
//!   size ([`MAX_MANIFEST_SIZE`]) and nesting depth ([`MAX_NESTING_DEPTH`]) are capped.
//!
//! Unknown keys are ignored as Go ignores them, but [`ManifestDocument::unknown_keys`] lists
//! them with the nearest field name, so tools can report a misspelt field (a manifest whose
//! `WorkloadOwnerPubKeys` is misspelt has no owners, and nobody can ever update it).
//!
//! `WorkloadOwnerKeyDigests` (old schema; the newest Go struct no longer has it and ignores it)
//! is kept in its old position, after `ReferenceValues`, and written only when present.
//!
//! `"Policies": null` and `"Policies": {}` both mean "no policies"; [`Manifest::to_go_json`]
//! writes `{}` (Go would write `null` for the first).
//!
//! # Validation
//!
//! [`ManifestDocument::parse`] does not validate; [`Manifest::validate`] applies upstream's rules
//! plus the simulated-platform rules of contrast-rs, and reports every violation with its JSON
//! path (see [`validate`]).

mod decode;
mod encode;
mod reference_values;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;

pub use reference_values::{
    FieldError, GuestPolicy, MinimumTcb, PlatformInfo, PlatformKind, Product, ReferenceValues,
    SIMULATED_SNP_PLATFORM, SnpReferenceValues, TdxReferenceValues,
};
pub use validate::{ValidationErrors, Violation, ViolationKind};

/// Largest accepted manifest, in bytes: the request that carries it
/// ([`MANIFEST_BODY_LIMIT`](crate::api::MANIFEST_BODY_LIMIT)).
pub const MAX_MANIFEST_SIZE: usize = crate::api::MANIFEST_BODY_LIMIT;

/// Deepest accepted JSON nesting (objects and arrays). The schema itself needs 5 levels; the
/// rest is headroom for unknown keys.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Why manifest bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The input is larger than [`MAX_MANIFEST_SIZE`].
    #[error("manifest is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not valid UTF-8.
    #[error("manifest is not valid utf-8 (first invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The input nests objects and arrays deeper than [`MAX_NESTING_DEPTH`].
    #[error("manifest nests objects and arrays deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The input is not well-formed JSON.
    #[error("manifest is not valid json at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser reported.
        message: String,
    },
    /// A value has the wrong JSON type for its field.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// JSON path of the value (empty for the top level).
        path: String,
        /// The JSON type the field needs.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// Two keys of one object resolve to the same field (exactly or case-insensitively).
    #[error(
        "{path}: keys {first_key:?} and {second_key:?} both set field {field} \
         (go would silently keep the last one)"
    )]
    DuplicateField {
        /// JSON path of the object.
        path: String,
        /// The field both keys resolve to.
        field: &'static str,
        /// The first key, as written.
        first_key: String,
        /// The second key, as written.
        second_key: String,
    },
    /// A key appears twice in the `Policies` object.
    #[error("Policies: key {key:?} appears more than once (go would silently keep the last one)")]
    DuplicatePolicyKey {
        /// The repeated key.
        key: String,
    },
    /// A number does not fit the integer type of its field (or is not an integer).
    #[error("{path}: expected an integer of type {expected_type}, found {found}")]
    InvalidInteger {
        /// JSON path of the value.
        path: String,
        /// The Go type of the field (`uint8`, `uint64`, `int`).
        expected_type: &'static str,
        /// The number as parsed.
        found: String,
    },
    /// An SVN (secure version number) is outside `0..=255`.
    #[error("{path}: svn must be in 0..=255, found {found}")]
    SvnOutOfRange {
        /// JSON path of the value.
        path: String,
        /// The number as parsed.
        found: String,
    },
    /// An SVN (secure version number) has a fractional part.
    #[error("{path}: svn must be a whole number, found {found}")]
    SvnNotIntegral {
        /// JSON path of the value.
        path: String,
        /// The number as parsed.
        found: String,
    },
    /// A fixed-size array has more elements than the field holds.
    #[error("{path}: at most {max} elements allowed, found {found}")]
    TooManyElements {
        /// JSON path of the array.
        path: String,
        /// Capacity of the field.
        max: usize,
        /// Number of elements found.
        found: usize,
    },
    /// Serialising the manifest failed (only possible through a serde_json bug).
    #[error("manifest could not be encoded: {message}")]
    Encode {
        /// The encoder's message.
        message: String,
    },
}

/// Decodes a JSON array of SEV-SNP reference value entries as the manifest's
/// `ReferenceValues.snp` holds them, with the manifest's (Go-compatible) rules: the one decoder
/// of that layout, for the documents that carry reference values outside a manifest (a
/// `--reference-values-file`, the initializer's Coordinator identity). `null` is an empty list.
///
/// # Errors
/// [`ManifestError`] with the JSON path (`snp[0].MinimumTCB.SNPVersion`, …) of what is wrong.
pub fn decode_snp_reference_values(raw: &[u8]) -> Result<Vec<SnpReferenceValues>, ManifestError> {
    decode::decode_snp_list(raw)
}

/// The raw bytes of a manifest together with their decoded meaning.
///
/// The bytes are the identity: [`hash`](Self::hash) is SHA-256 over exactly these bytes and
/// [`raw`](Self::raw) returns them unchanged, never re-serialised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDocument {
    raw: Vec<u8>,
    manifest: Manifest,
    unknown_keys: Vec<UnknownKey>,
}

impl ManifestDocument {
    /// Decodes manifest bytes with Go's rules. Does not validate (see [`Manifest::validate`]).
    pub fn parse(raw: Vec<u8>) -> Result<Self, ManifestError> {
        let (manifest, unknown_keys) = decode::decode_manifest(&raw)?;
        Ok(Self {
            raw,
            manifest,
            unknown_keys,
        })
    }

    /// The keys that name no field of the schema, at every level, in document order. Go (and
    /// [`parse`](Self::parse)) ignore them, so a misspelt field (`WorkloadOwnerPubKey`) is
    /// silently absent; tools report them before the manifest is used. Keys of `Policies` are
    /// policy hashes, not field names, and are never unknown.
    #[must_use]
    pub fn unknown_keys(&self) -> &[UnknownKey] {
        &self.unknown_keys
    }

    /// The exact bytes, as submitted.
    #[must_use]
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The manifest hash: SHA-256 of the exact bytes.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        crate::sha256(&self.raw)
    }

    /// The decoded content.
    #[must_use]
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Gives back the exact bytes.
    #[must_use]
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }
}

/// A key of a manifest object that selects no field (exactly or case-insensitively, as Go
/// matches), which decoding ignores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKey {
    /// JSON path of the object that holds the key (empty for the top level), e.g.
    /// `ReferenceValues.snp[0]`.
    pub object_path: String,
    /// The key, exactly as written.
    pub key: String,
    /// The object's field whose name is nearest to the key (ignoring case), when it is near
    /// enough to be a likely typo.
    pub nearest: Option<&'static str>,
}

impl UnknownKey {
    /// The JSON path of the key itself, e.g. `WorkloadOwnerPubKey` or
    /// `Policies["<hash>"].SAN` (a key that is no identifier is quoted).
    #[must_use]
    pub fn path(&self) -> String {
        let plain = !self.key.is_empty()
            && self
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        match (self.object_path.is_empty(), plain) {
            (true, true) => self.key.clone(),
            (false, true) => format!("{}.{}", self.object_path, self.key),
            (_, false) => decode::key_path(&self.object_path, &self.key),
        }
    }
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: unknown key {:?}", self.path(), self.key)?;
        match self.nearest {
            Some(nearest) => write!(f, " (did you mean {nearest:?}?)"),
            None => f.write_str(" (no field of this object has a similar name)"),
        }
    }
}

/// The decoded content of a manifest (newest upstream schema plus the old
/// `WorkloadOwnerKeyDigests` field).
///
/// Hex fields stay strings, as written: upstream compares hex strings exactly (a policy key in
/// upper case never matches an attested HOST_DATA). Lists are `None` when absent or `null` and
/// `Some(vec![])` when written as `[]`, because Go writes the two differently.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct Manifest {
    /// Workloads by hex initdata digest (the SNP HOST_DATA / TDX MR_CONFIG_ID[0..32]).
    #[serde(rename = "Policies")]
    pub policies: BTreeMap<String, PolicyEntry>,
    /// Hardware reference values; a workload is accepted if any entry validates it.
    #[serde(rename = "ReferenceValues")]
    pub reference_values: ReferenceValues,
    /// Old schema: hex SHA-256 of each workload owner's PKIX DER public key.
    #[serde(
        rename = "WorkloadOwnerKeyDigests",
        skip_serializing_if = "Option::is_none"
    )]
    pub workload_owner_key_digests: Option<Vec<String>>,
    /// Hex PKIX DER ECDSA public keys allowed to sign manifest updates.
    #[serde(rename = "WorkloadOwnerPubKeys")]
    pub workload_owner_pub_keys: Option<Vec<String>>,
    /// Hex PKCS#1 DER RSA public keys that receive seed shares.
    #[serde(rename = "SeedshareOwnerPubKeys")]
    pub seedshare_owner_pub_keys: Option<Vec<String>>,
    /// Lowest API version clients must speak, e.g. `v1`.
    #[serde(rename = "MinimumAPIVersion", skip_serializing_if = "Option::is_none")]
    pub minimum_api_version: Option<String>,
}

/// One workload's entry in `Policies`.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct PolicyEntry {
    /// Subject alternative names for the workload's mesh certificate (Go always writes this,
    /// `null` when `None`).
    #[serde(rename = "SANs")]
    pub sans: Option<Vec<String>>,
    /// Identifier the workload secret is derived from (omitted when empty).
    #[serde(rename = "WorkloadSecretID", skip_serializing_if = "String::is_empty")]
    pub workload_secret_id: String,
    /// The workload's role (omitted when [`Role::None`]).
    #[serde(rename = "Role", skip_serializing_if = "Role::is_none")]
    pub role: Role,
}

/// The role of a workload.
#[derive(Clone, Debug, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub enum Role {
    /// No special role (JSON `""` or absent).
    #[default]
    None,
    /// The Coordinator (JSON `"coordinator"`).
    Coordinator,
    /// Any other string. It parses, but fails validation. Holds neither `""` nor
    /// `"coordinator"` when built by [`Role::from_name`].
    Other(String),
}

impl Role {
    /// The role named by a JSON string.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        match name {
            "" => Self::None,
            "coordinator" => Self::Coordinator,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The JSON string of this role.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::None => "",
            Self::Coordinator => "coordinator",
            Self::Other(name) => name,
        }
    }

    /// Whether this is [`Role::None`].
    #[must_use]
    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Manifest {
    /// The policy entry for an attested HOST_DATA (or TDX MR_CONFIG_ID[0..32]): looked up by
    /// lowercase hex, exactly as upstream does.
    #[must_use]
    pub fn policy_for_host_data(&self, host_data: &[u8; 32]) -> Option<&PolicyEntry> {
        self.policies.get(&crate::hexstring::encode(host_data))
    }

    /// The `Policies` keys whose role is `coordinator`, in key order.
    pub fn coordinator_policy_hashes(&self) -> impl Iterator<Item = &str> {
        self.policies
            .iter()
            .filter(|(_, entry)| entry.role == Role::Coordinator)
            .map(|(key, _)| key.as_str())
    }

    /// Writes the manifest exactly as Go's `json.MarshalIndent(m, "", "  ")` followed by `"\n"`
    /// does: Go field order, two-space indent, sorted map keys, `null` for absent lists, and
    /// Go's HTML-safe escaping of `<`, `>`, `&`, U+2028 and U+2029.
    ///
    /// # Errors
    ///
    /// [`ManifestError::Encode`] if serialisation fails, which an in-memory writer and
    /// string-keyed maps do not make possible in practice; the error is surfaced, not hidden.
    pub fn to_go_json(&self) -> Result<Vec<u8>, ManifestError> {
        encode::to_go_json(self)
    }

    /// The workload owner public keys, hex-decoded to PKIX DER (empty when `None`).
    pub fn workload_owner_pub_keys_der(&self) -> Result<Vec<Vec<u8>>, FieldError> {
        decode_hex_list(
            "WorkloadOwnerPubKeys",
            self.workload_owner_pub_keys.as_deref(),
        )
    }

    /// The seed-share owner public keys, hex-decoded to PKCS#1 DER (empty when `None`).
    pub fn seedshare_owner_pub_keys_der(&self) -> Result<Vec<Vec<u8>>, FieldError> {
        decode_hex_list(
            "SeedshareOwnerPubKeys",
            self.seedshare_owner_pub_keys.as_deref(),
        )
    }

    /// The old-schema workload owner key digests, hex-decoded (empty when `None`).
    pub fn workload_owner_key_digests_bytes(&self) -> Result<Vec<[u8; 32]>, FieldError> {
        reference_values::decode_hex_array_list(
            "WorkloadOwnerKeyDigests",
            self.workload_owner_key_digests.as_deref(),
        )
    }

    /// The number of `MinimumAPIVersion` (`v3` → 3), `None` when absent.
    pub fn minimum_api_version_number(&self) -> Result<Option<u64>, FieldError> {
        match &self.minimum_api_version {
            None => Ok(None),
            Some(version) => validate::parse_api_version(version)
                .map(Some)
                .ok_or_else(|| FieldError::InvalidApiVersion {
                    found: version.clone(),
                }),
        }
    }
}

fn decode_hex_list(field: &str, list: Option<&[String]>) -> Result<Vec<Vec<u8>>, FieldError> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            crate::hexstring::decode(s).map_err(|source| FieldError::Hex {
                field: format!("{field}[{i}]"),
                source,
            })
        })
        .collect()
}
