//! Typed requests and responses of the network API (see `ARCHITECTURE.md`, "Network API").
//!
//! The user API (1313) and mesh API (7777) are upstream's gRPC services (`contrast-grpc`
//! converts their protobuf messages to and from the typed requests here, which the
//! Coordinator's core takes). The evidence API (`/attest`, `/capabilities`, 1314) is plain
//! HTTP with JSON bodies as upstream's: binary fields as standard base64 with padding, field
//! names and the error body as upstream's. The `/attest` report data is byte-compatible with
//! upstream. The JSON encodings of the other types serve files (e.g. `seed-shares.json`) and
//! tools.
//!
//! Secret-bearing fields (seed, workload secret, mesh CA key) are [`Zeroizing`] and are never
//! printed by `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// TCP port of the user API (server-attested aTLS).
pub const USER_API_PORT: u16 = 1313;
/// TCP port of the mesh API (mutual aTLS).
pub const MESH_API_PORT: u16 = 7777;
/// TCP port of the evidence API (plain HTTP, evidence in the body).
pub const EVIDENCE_API_PORT: u16 = 1314;
/// TCP port of the probes and `/metrics` (plain HTTP).
pub const OPS_PORT: u16 = 9102;
/// TCP port of the transit engine (HTTPS with a mesh certificate, client certificates
/// required), upstream's Vault-compatible key management for attested workloads. Off unless
/// the Coordinator is told to serve it.
pub const TRANSIT_PORT: u16 = 8200;

/// What a Coordinator serves on `port`, if it is one of its default ports (a noun phrase
/// without article, e.g. "mesh API, ..."): for messages that tell a user who dialled the wrong
/// one where the user API is.
#[must_use]
pub fn coordinator_port_role(port: u16) -> Option<&'static str> {
    match port {
        USER_API_PORT => Some("user API (gRPC over attested TLS)"),
        MESH_API_PORT => Some("mesh API, which initializers use (gRPC over mutual attested TLS)"),
        EVIDENCE_API_PORT => Some("evidence API (/attest, plain HTTP)"),
        OPS_PORT => Some("probe and metrics port (plain HTTP)"),
        TRANSIT_PORT => Some(
            "transit engine (Vault-compatible encrypt/decrypt, HTTPS with a mesh client certificate)",
        ),
        _ => None,
    }
}

/// Largest accepted `/attest` request body, as upstream.
pub const ATTEST_BODY_LIMIT: usize = 1024;
/// Largest accepted manifest-setting request (manifest and policies), as upstream's gRPC
/// server receives at most (grpc-go's default receive limit, 4 MiB). With
/// [`MANIFEST_UPDATES_IN_FLIGHT`] it bounds the memory manifest updates can take (the
/// Coordinator's memory limit, `contrast generate --coordinator-memory`, is sized by it).
pub const MANIFEST_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Manifest updates whose requests a Coordinator reads and processes at once: one by a caller
/// whose TLS key is a workload owner's, one by anybody else (the first set, or an update that
/// may carry a detached signature). A further update is refused with [`ErrorCode::Busy`] before
/// its body is read; the refusal is safe to retry.
pub const MANIFEST_UPDATES_IN_FLIGHT: usize = 2;
/// Upstream's message when no manifest is set yet (GetManifests, `/attest`): clients of an
/// upstream Coordinator, which sends no `contrast-error-code`, recognise the state by it.
pub const NO_MANIFEST_MESSAGE: &str = "no manifest configured";

/// Largest accepted transit engine request body (encrypt or decrypt): the engine wraps keys
/// (Vault's auto-unseal sends a few hundred bytes), so 64 KiB is ample; a larger body is refused
/// with 400 and the error body before it is read further.
pub const TRANSIT_BODY_LIMIT: usize = 64 * 1024;

/// Length of the client nonce in `/attest`.
pub const ATTEST_NONCE_SIZE: usize = 32;

/// Paths of the plain-HTTP endpoints (evidence API, transit engine; the user and mesh APIs are gRPC:
/// `contrast_grpc::method`).
pub mod path {
    /// `POST`: attestation evidence for a nonce (evidence API, upstream-compatible).
    pub const ATTEST: &str = "/attest";
    /// `GET`: supported API versions (evidence API).
    pub const CAPABILITIES: &str = "/capabilities";
    /// `POST /v1/transit/encrypt/{name}` (transit engine): the prefix before the key name.
    pub const TRANSIT_ENCRYPT_PREFIX: &str = "/v1/transit/encrypt/";
    /// `POST /v1/transit/decrypt/{name}` (transit engine): the prefix before the key name.
    pub const TRANSIT_DECRYPT_PREFIX: &str = "/v1/transit/decrypt/";
}

/// Serde adapters for standard base64 (with padding), as Go encodes `[]byte`.
pub mod base64_serde {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    fn decode<E: serde::de::Error>(s: &str) -> Result<Vec<u8>, E> {
        STANDARD
            .decode(s)
            .map_err(|e| E::custom(format_args!("invalid base64: {e}")))
    }

    /// Bytes as one base64 string.
    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(value))
    }

    /// Bytes from one base64 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        decode(&s)
    }

    /// A list of byte strings as a list of base64 strings.
    pub mod list {
        use super::{Deserialize, Deserializer, STANDARD, Serializer};
        use base64::Engine as _;
        use serde::ser::SerializeSeq;

        /// Serializes each element as base64.
        pub fn serialize<S: Serializer>(
            value: &[Vec<u8>],
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(value.len()))?;
            for item in value {
                seq.serialize_element(&STANDARD.encode(item))?;
            }
            seq.end()
        }

        /// Deserializes a list of base64 strings; `null` is the empty list, as in Go.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Vec<Vec<u8>>, D::Error> {
            let items = Option::<Vec<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
            items
                .unwrap_or_default()
                .iter()
                .map(|s| super::decode(s))
                .collect()
        }
    }

    /// Optional bytes: absent or `null` is `None`.
    pub mod option {
        use super::{Deserialize, Deserializer, STANDARD, Serializer};
        use base64::Engine as _;

        /// Serializes `Some` as base64 (pair with `skip_serializing_if = "Option::is_none"`).
        pub fn serialize<S: Serializer>(
            value: &Option<Vec<u8>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(bytes) => serializer.serialize_str(&STANDARD.encode(bytes)),
                None => serializer.serialize_none(),
            }
        }

        /// Deserializes base64 or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?
                .map(|s| super::decode(&s))
                .transpose()
        }
    }

    /// Secret bytes, zeroized when dropped.
    pub mod secret {
        use super::{Deserialize, Deserializer, STANDARD, Serializer, Zeroizing};
        use base64::Engine as _;

        /// Serializes as base64; the encoded copy is zeroized too.
        pub fn serialize<S: Serializer>(
            value: &Zeroizing<Vec<u8>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            let encoded = Zeroizing::new(STANDARD.encode(value.as_slice()));
            serializer.serialize_str(&encoded)
        }

        /// Deserializes base64 into zeroizing storage.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Zeroizing<Vec<u8>>, D::Error> {
            let s = Zeroizing::new(String::deserialize(deserializer)?);
            super::decode(&s).map(Zeroizing::new)
        }
    }
}

/// `UserAPI/SetManifest` request.
///
/// The first set needs no authorisation. A later set is authorised by the caller's client
/// certificate (an owner key of the current manifest) or by a detached workload-owner
/// `signature` over the next transition hash (see [`crate::owner`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetManifestRequest {
    /// The manifest, exactly as its hash is to be computed.
    #[serde(with = "base64_serde")]
    pub manifest: Vec<u8>,
    /// The raw initdata documents referenced by the manifest's `Policies`.
    #[serde(with = "base64_serde::list", default)]
    pub policies: Vec<Vec<u8>>,
    /// For an atomic update: the transition hash the caller expects to be the current head.
    #[serde(
        with = "base64_serde::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_transition_hash: Option<Vec<u8>>,
    /// A detached workload-owner signature (ECDSA, DER) over the next transition hash.
    #[serde(
        with = "base64_serde::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub signature: Option<Vec<u8>>,
}

/// `UserAPI/SetManifest` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetManifestResponse {
    /// Version of the Coordinator that answered.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Root CA certificate, PEM.
    #[serde(with = "base64_serde")]
    pub root_ca: Vec<u8>,
    /// Mesh CA certificate of the new generation, PEM.
    #[serde(with = "base64_serde")]
    pub mesh_ca: Vec<u8>,
    /// The encrypted seed shares; present only in the response to the first set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_shares_doc: Option<SeedSharesDoc>,
}

/// Seed shares in the HTTP API's snake-case shape (the CLI writes `seed-shares.json` in
/// upstream's gRPC shape, [`crate::seedshare::SeedShareDocument`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSharesDoc {
    /// One share per seed-share owner, in manifest order.
    pub seed_shares: Vec<ApiSeedShare>,
    /// The 32-byte salt.
    #[serde(with = "base64_serde")]
    pub salt: Vec<u8>,
}

/// One encrypted seed share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSeedShare {
    /// The owner's key exactly as written in the manifest (hex of PKCS#1 DER).
    pub public_key: String,
    /// RSA-OAEP ciphertext of the seed.
    #[serde(with = "base64_serde")]
    pub encrypted_seed: Vec<u8>,
}

impl From<&crate::seedshare::SeedShareDocument> for SeedSharesDoc {
    fn from(document: &crate::seedshare::SeedShareDocument) -> Self {
        Self {
            seed_shares: document
                .seed_shares
                .iter()
                .map(|share| ApiSeedShare {
                    public_key: share.public_key.clone(),
                    encrypted_seed: share.encrypted_seed.clone(),
                })
                .collect(),
            salt: document.salt.clone(),
        }
    }
}

impl From<SeedSharesDoc> for crate::seedshare::SeedShareDocument {
    /// The shape `contrast set` writes to `seed-shares.json` (upstream's gRPC field names).
    fn from(document: SeedSharesDoc) -> Self {
        Self {
            seed_shares: document
                .seed_shares
                .into_iter()
                .map(|share| crate::seedshare::SeedShare {
                    public_key: share.public_key,
                    encrypted_seed: share.encrypted_seed,
                })
                .collect(),
            salt: document.salt,
        }
    }
}

/// `UserAPI/GetManifests` response: the whole history and the signed head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetManifestsResponse {
    /// Version of the Coordinator that answered.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Every manifest of the history, oldest first, raw bytes.
    #[serde(with = "base64_serde::list")]
    pub manifests: Vec<Vec<u8>>,
    /// Every initdata document referenced by any manifest of the history.
    #[serde(with = "base64_serde::list")]
    pub policies: Vec<Vec<u8>>,
    /// Root CA certificate, PEM.
    #[serde(with = "base64_serde")]
    pub root_ca: Vec<u8>,
    /// Mesh CA certificate of the current generation, PEM.
    #[serde(with = "base64_serde")]
    pub mesh_ca: Vec<u8>,
    /// The signed head of the history.
    pub latest_transition: ApiLatestTransition,
}

/// The signed head of the history, as two fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiLatestTransition {
    /// The 32-byte transition hash.
    #[serde(with = "base64_serde")]
    pub transition_hash: Vec<u8>,
    /// DER ECDSA signature by the seed-derived history key over the raw hash.
    #[serde(with = "base64_serde")]
    pub signature: Vec<u8>,
}

impl From<&crate::history::LatestTransition> for ApiLatestTransition {
    fn from(head: &crate::history::LatestTransition) -> Self {
        let encoded = head.encode();
        let (hash, signature) = encoded.split_at(crate::history::HASH_SIZE.min(encoded.len()));
        Self {
            transition_hash: hash.to_vec(),
            signature: signature.to_vec(),
        }
    }
}

impl ApiLatestTransition {
    /// The head in its stored encoding (hash ‖ signature), ready for
    /// [`crate::history::LatestTransition::decode`] or [`crate::history::verify_history`].
    #[must_use]
    pub fn to_stored_encoding(&self) -> Vec<u8> {
        [self.transition_hash.as_slice(), self.signature.as_slice()].concat()
    }
}

/// `UserAPI/Recover` request (authorised by the seed-share owner's client certificate).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverRequest {
    /// The decrypted seed.
    #[serde(with = "base64_serde::secret")]
    pub seed: Zeroizing<Vec<u8>>,
    /// The salt from `seed-shares.json`.
    #[serde(with = "base64_serde")]
    pub salt: Vec<u8>,
    /// Recover even though ready peers exist.
    #[serde(default)]
    pub force: bool,
    /// A transition hash the caller saw earlier (contrast-rs extension): recover only if the
    /// stored history contains it, so a rolled-back store is refused before anything changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_contains: Option<Vec<u8>>,
}

impl fmt::Debug for RecoverRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoverRequest")
            .field("seed", &"<redacted>")
            .field("salt", &crate::hexstring::encode(&self.salt))
            .field("force", &self.force)
            .field(
                "history_contains",
                &self
                    .history_contains
                    .as_deref()
                    .map(crate::hexstring::encode),
            )
            .finish()
    }
}

/// `UserAPI/Recover` response: what the Coordinator recovered to (contrast-rs extension;
/// empty from an upstream Coordinator).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverResponse {
    /// The transition hash of the recovered head (empty from an upstream Coordinator).
    #[serde(default, with = "base64_serde")]
    pub latest_transition_hash: Vec<u8>,
    /// The number of manifests in the recovered history (0 from an upstream Coordinator).
    #[serde(default)]
    pub generation: u64,
}

/// `MeshAPI/NewMeshCert` response: what the initializer writes to the shared volume.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshCertResponse {
    /// Mesh CA certificate, PEM.
    #[serde(with = "base64_serde")]
    pub mesh_ca_cert: Vec<u8>,
    /// The workload certificate PEM followed by the intermediate certificate PEM.
    #[serde(with = "base64_serde")]
    pub cert_chain: Vec<u8>,
    /// Root CA certificate, PEM.
    #[serde(with = "base64_serde")]
    pub root_ca_cert: Vec<u8>,
    /// Workload secret derived for the entry's `WorkloadSecretID`; empty when it has none.
    #[serde(with = "base64_serde::secret", default)]
    pub workload_secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for MeshCertResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshCertResponse")
            .field("mesh_ca_cert", &String::from_utf8_lossy(&self.mesh_ca_cert))
            .field("cert_chain", &String::from_utf8_lossy(&self.cert_chain))
            .field("root_ca_cert", &String::from_utf8_lossy(&self.root_ca_cert))
            .field("workload_secret", &"<redacted>")
            .finish()
    }
}

/// `MeshAPI/Recover` response: what a ready peer hands to a recovering one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshRecoverResponse {
    /// The seed.
    #[serde(with = "base64_serde::secret")]
    pub seed: Zeroizing<Vec<u8>>,
    /// The salt.
    #[serde(with = "base64_serde")]
    pub salt: Vec<u8>,
    /// The current mesh CA key, PEM `EC PRIVATE KEY` (SEC1).
    #[serde(with = "base64_serde::secret")]
    pub mesh_ca_key: Zeroizing<Vec<u8>>,
    /// The current manifest, raw bytes.
    #[serde(with = "base64_serde")]
    pub latest_manifest: Vec<u8>,
}

impl fmt::Debug for MeshRecoverResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshRecoverResponse")
            .field("seed", &"<redacted>")
            .field("salt", &crate::hexstring::encode(&self.salt))
            .field("mesh_ca_key", &"<redacted>")
            .field("latest_manifest_len", &self.latest_manifest.len())
            .finish()
    }
}

/// `POST /attest` request (upstream-compatible).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestRequest {
    /// Exactly [`ATTEST_NONCE_SIZE`] random bytes chosen by the client.
    #[serde(with = "base64_serde")]
    pub nonce: Vec<u8>,
}

/// `POST /attest` response (upstream-compatible).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestResponse {
    /// Version of the Coordinator that answered.
    pub version: String,
    /// The attestation document (the same bytes as the aTLS certificate extension value).
    #[serde(with = "base64_serde")]
    pub raw_attestation_doc: Vec<u8>,
    /// OID of the attestation document type, as Go encodes `asn1.ObjectIdentifier`: an array
    /// of integers (`[1,3,9901,2,1]` for SEV-SNP).
    pub attestation_type: Vec<u64>,
    /// Every manifest of the history, oldest first.
    #[serde(with = "base64_serde::list")]
    pub manifests: Vec<Vec<u8>>,
    /// Every initdata document referenced by the history.
    #[serde(with = "base64_serde::list")]
    pub policies: Vec<Vec<u8>>,
    /// Root CA certificate, PEM.
    #[serde(with = "base64_serde")]
    pub root_ca: Vec<u8>,
    /// Mesh CA certificate, PEM.
    #[serde(with = "base64_serde")]
    pub mesh_ca: Vec<u8>,
}

/// `GET /capabilities` response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    /// Supported versioned APIs, e.g. `["v1"]`.
    pub api_versions: Vec<String>,
}

/// The `/attest` report data: `SHA-256(nonce ‖ transition hash ‖ SHA-256(root CA PEM) ‖
/// SHA-256(mesh CA PEM))`, right-padded with zeros to 64 bytes (upstream's unversioned formula).
#[must_use]
pub fn attest_report_data(
    nonce: &[u8; ATTEST_NONCE_SIZE],
    latest_transition_hash: &[u8; 32],
    root_ca_pem: &[u8],
    mesh_ca_pem: &[u8],
) -> [u8; 64] {
    report_data_from_parts(&[
        nonce,
        latest_transition_hash,
        &crate::sha256(root_ca_pem),
        &crate::sha256(mesh_ca_pem),
    ])
}

/// The `/v1/attest` report data: as [`attest_report_data`], with the SHA-256 of the
/// `/capabilities` body appended before the outer hash, so a downgrade of the negotiated API
/// version is detectable.
#[must_use]
pub fn attest_report_data_v1(
    nonce: &[u8; ATTEST_NONCE_SIZE],
    latest_transition_hash: &[u8; 32],
    root_ca_pem: &[u8],
    mesh_ca_pem: &[u8],
    capabilities_body: &[u8],
) -> [u8; 64] {
    report_data_from_parts(&[
        nonce,
        latest_transition_hash,
        &crate::sha256(root_ca_pem),
        &crate::sha256(mesh_ca_pem),
        &crate::sha256(capabilities_body),
    ])
}

fn report_data_from_parts(parts: &[&[u8]]) -> [u8; 64] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 64];
    for (dst, src) in out.iter_mut().zip(ctx.finish().as_ref()) {
        *dst = *src;
    }
    out
}

/// The machine-readable code of an API error (upstream's names). Unknown codes from a newer
/// server are kept, as upstream requires clients to tolerate them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or the manifest invalid (400).
    InvalidArgument,
    /// A detached signature did not verify (403).
    InvalidSignature,
    /// The caller is not authorised (403).
    PermissionDenied,
    /// No manifest has been set yet (412).
    NoManifest,
    /// The Coordinator must be recovered first (412).
    NeedsRecovery,
    /// Recovery was requested but the Coordinator is already active (412).
    AlreadyRecovered,
    /// Another update won the race, or the expected previous transition is not the head (412).
    ManifestConflict,
    /// The manifest demands a newer API version than the endpoint's (403).
    ApiVersionTooOld,
    /// The store holds a history head no replica of the deployment can have written; the
    /// Coordinator refuses to serve until the store is repaired (412; contrast-rs only).
    HistoryTampered,
    /// Too many manifest updates are in progress; nothing of the request was read, retry
    /// later (503; contrast-rs only).
    Busy,
    /// Anything else went wrong on the server (500).
    Internal,
    /// A code this version does not know.
    Other(String),
}

impl ErrorCode {
    /// The wire spelling.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::InvalidSignature => "invalid_signature",
            Self::PermissionDenied => "permission_denied",
            Self::NoManifest => "no_manifest",
            Self::NeedsRecovery => "needs_recovery",
            Self::AlreadyRecovered => "already_recovered",
            Self::ManifestConflict => "manifest_conflict",
            Self::ApiVersionTooOld => "api_version_too_old",
            Self::HistoryTampered => "history_tampered",
            Self::Busy => "busy",
            Self::Internal => "internal",
            Self::Other(code) => code,
        }
    }

    /// The HTTP status upstream maps this code to.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::InvalidSignature | Self::PermissionDenied | Self::ApiVersionTooOld => 403,
            Self::NoManifest
            | Self::NeedsRecovery
            | Self::AlreadyRecovered
            | Self::ManifestConflict
            | Self::HistoryTampered => 412,
            Self::Busy => 503,
            Self::Internal | Self::Other(_) => 500,
        }
    }

    /// The code named by its wire spelling ([`ErrorCode::as_str`]); an unknown spelling is
    /// kept as [`ErrorCode::Other`].
    #[must_use]
    pub fn from_wire(code: &str) -> Self {
        match code {
            "invalid_argument" => Self::InvalidArgument,
            "invalid_signature" => Self::InvalidSignature,
            "permission_denied" => Self::PermissionDenied,
            "no_manifest" => Self::NoManifest,
            "needs_recovery" => Self::NeedsRecovery,
            "already_recovered" => Self::AlreadyRecovered,
            "manifest_conflict" => Self::ManifestConflict,
            "api_version_too_old" => Self::ApiVersionTooOld,
            "history_tampered" => Self::HistoryTampered,
            "busy" => Self::Busy,
            "internal" => Self::Internal,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Self::from_wire(&code))
    }
}

/// The JSON body of every API error: `{"version", "status_code", "code", "error"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Version of the Coordinator that answered.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The HTTP status code, repeated in the body.
    pub status_code: u16,
    /// The machine-readable code.
    pub code: ErrorCode,
    /// The human-readable explanation.
    pub error: String,
}

impl ErrorResponse {
    /// An error body whose status follows from its code.
    #[must_use]
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        Self {
            version: String::new(),
            status_code: code.http_status(),
            code,
            error: error.into(),
        }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status_code, self.error)
    }
}

impl std::error::Error for ErrorResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    // Expected values computed independently with Python's hashlib:
    //   h = hashlib.sha256
    //   nonce = bytes(range(32)); th = bytes(range(32, 64))
    //   rd = h(nonce + th + h(b"root").digest() + h(b"mesh").digest()).digest()
    //   rd_v1 = h(nonce + th + h(b"root").digest() + h(b"mesh").digest()
    //             + h(b'{"api_versions":["v1"]}').digest()).digest()
    const NONCE: [u8; 32] =
        hex!("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    const TRANSITION: [u8; 32] =
        hex!("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f");

    #[test]
    fn attest_report_data_matches_independent_computation() {
        let rd = attest_report_data(&NONCE, &TRANSITION, b"root", b"mesh");
        assert_eq!(
            rd[..32],
            hex!("0dd9c7436c98527c1846794aea032603c85b24b5e77c5b125f78d433e30aafcf")
        );
        assert_eq!(rd[32..], [0u8; 32]);
    }

    #[test]
    fn attest_report_data_v1_binds_capabilities() {
        let rd = attest_report_data_v1(
            &NONCE,
            &TRANSITION,
            b"root",
            b"mesh",
            br#"{"api_versions":["v1"]}"#,
        );
        assert_eq!(
            rd[..32],
            hex!("a85ca70cb7857d5adad1ea1ee08d2d9a8eea17f454915294e9b26389638828dd")
        );
        assert_eq!(rd[32..], [0u8; 32]);
    }

    #[test]
    fn seed_shares_convert_between_api_and_file_shapes() {
        let api = SeedSharesDoc {
            seed_shares: vec![ApiSeedShare {
                public_key: "ab".into(),
                encrypted_seed: vec![1, 2],
            }],
            salt: vec![3; 32],
        };
        let file: crate::seedshare::SeedShareDocument = api.clone().into();
        assert_eq!(file.seed_shares[0].public_key, "ab");
        assert_eq!(SeedSharesDoc::from(&file), api);
    }

    #[test]
    fn latest_transition_splits_and_rejoins() {
        use rand_core::OsRng;
        let engine = crate::seed::SeedEngine::new(&[1; 32], &[2; 32]).unwrap();
        let head = crate::history::LatestTransition::sign(
            [7; 32],
            engine.history_signing_key(),
            &mut OsRng,
        )
        .unwrap();
        let api = ApiLatestTransition::from(&head);
        assert_eq!(api.transition_hash, [7; 32]);
        assert_eq!(api.to_stored_encoding(), head.encode());
        let decoded = crate::history::LatestTransition::decode(&api.to_stored_encoding()).unwrap();
        decoded.verify(&engine.history_verifying_key()).unwrap();
    }

    #[test]
    fn binary_fields_are_standard_base64() {
        let request = SetManifestRequest {
            manifest: b"{}".to_vec(),
            policies: vec![vec![0xff, 0xfe], vec![]],
            previous_transition_hash: None,
            signature: Some(vec![1, 2, 3]),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"manifest":"e30=","policies":["//4=",""],"signature":"AQID"}"#
        );
        assert_eq!(
            serde_json::from_str::<SetManifestRequest>(&json).unwrap(),
            request
        );
    }

    #[test]
    fn null_policies_decode_as_empty_like_go() {
        let request: SetManifestRequest =
            serde_json::from_str(r#"{"manifest":"e30=","policies":null}"#).unwrap();
        assert!(request.policies.is_empty());
    }

    #[test]
    fn invalid_base64_is_rejected_with_reason() {
        let err = serde_json::from_str::<AttestRequest>(r#"{"nonce":"!!"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let response = MeshRecoverResponse {
            seed: Zeroizing::new(vec![0x42; 64]),
            salt: vec![0; 32],
            mesh_ca_key: Zeroizing::new(b"-----BEGIN EC PRIVATE KEY-----".to_vec()),
            latest_manifest: vec![],
        };
        let debug = format!("{response:?}");
        assert!(!debug.contains("4242"), "{debug}");
        assert!(!debug.contains("BEGIN EC PRIVATE KEY"), "{debug}");
        let request = RecoverRequest {
            seed: Zeroizing::new(vec![0x42; 64]),
            salt: vec![],
            force: false,
            history_contains: None,
        };
        assert!(!format!("{request:?}").contains("4242"));
    }

    #[test]
    fn error_codes_round_trip_and_tolerate_unknown() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::InvalidSignature,
            ErrorCode::PermissionDenied,
            ErrorCode::NoManifest,
            ErrorCode::NeedsRecovery,
            ErrorCode::AlreadyRecovered,
            ErrorCode::ManifestConflict,
            ErrorCode::ApiVersionTooOld,
            ErrorCode::HistoryTampered,
            ErrorCode::Busy,
            ErrorCode::Internal,
        ] {
            let body = ErrorResponse::new(code.clone(), "x");
            let json = serde_json::to_string(&body).unwrap();
            let back: ErrorResponse = serde_json::from_str(&json).unwrap();
            assert_eq!(back.code, code);
            assert_eq!(back.status_code, code.http_status());
        }
        let body: ErrorResponse = serde_json::from_str(
            r#"{"version":"v","status_code":418,"code":"teapot","error":"short and stout"}"#,
        )
        .unwrap();
        assert_eq!(body.code, ErrorCode::Other("teapot".into()));
        assert_eq!(body.code.http_status(), 500);
    }

    #[test]
    fn status_mapping_follows_upstream() {
        assert_eq!(ErrorCode::InvalidArgument.http_status(), 400);
        assert_eq!(ErrorCode::PermissionDenied.http_status(), 403);
        assert_eq!(ErrorCode::ManifestConflict.http_status(), 412);
        assert_eq!(ErrorCode::NeedsRecovery.http_status(), 412);
        assert_eq!(ErrorCode::Internal.http_status(), 500);
    }

    #[test]
    fn attest_type_is_an_integer_array() {
        let response = AttestResponse {
            version: "0.1.0".into(),
            raw_attestation_doc: vec![],
            attestation_type: vec![1, 3, 9901, 2, 1],
            manifests: vec![],
            policies: vec![],
            root_ca: vec![],
            mesh_ca: vec![],
        };
        let json = serde_json::to_string(&response).unwrap();
        assert!(
            json.contains(r#""attestation_type":[1,3,9901,2,1]"#),
            "{json}"
        );
    }
}
