//! The transit engine's rules: upstream's Vault-compatible subset of the transit secrets engine
//! (`POST /v1/transit/encrypt/{name}`, `POST /v1/transit/decrypt/{name}`), keyed by workload
//! secrets, for workloads such as Vault or OpenBao that auto-unseal against the Coordinator.
//!
//! - **Who**: only a client whose mesh certificate (verified against the mesh CA by the
//!   transport) carries the workload-secret ID `{name}` in its extension `1.3.9901.3.1` may use
//!   key `{name}` ([`authorize`]); anything else is 403 with `Unauthorized: …`.
//! - **Key**: the first 32 bytes of the workload secret for the ID `<key_version>_<name>`
//!   ([`key`]), so every replica, and every Coordinator recovered with the same seed, has it.
//! - **Ciphertext**: `vault:v<key_version>:<base64(nonce[12] ‖ AES-256-GCM ciphertext ‖ tag)>`
//!   ([`Ciphertext`], [`seal`], [`open`]), with the request's `associated_data` as AAD.
//! - **Bodies** ([`EncryptRequest`], [`DecryptRequest`]): JSON as upstream, binary fields
//!   standard base64; at most [`TRANSIT_BODY_LIMIT`]; `Content-Type`, if present, must start with
//!   `application/json`. Unknown fields are ignored (as Go's decoder does).
//! - **Answers**: `{"data":{"ciphertext":…}}`, `{"data":{"plaintext":…}}`; refusals
//!   `{"errors":["…"]}` with the status of [`TransitError::status`].
//!
//! Stricter than upstream where upstream would panic or accept garbage: the ciphertext must
//! start with `vault:`, carry at least a nonce and a tag, and `plaintext` must be present.
//!
//! The nonce comes from the Coordinator's [`Entropy`](crate::Entropy); [`seal`] takes it as an
//! argument so that known-answer tests can pin the output.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use contrast_ca::claims::WORKLOAD_SECRET_ID_OID;
use contrast_core::api::{TRANSIT_BODY_LIMIT, path};
use contrast_core::manifest::Role;
use contrast_core::seed::{SeedEngine, SeedError};
use contrast_store::Store;
use der::Decode as _;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use rand_core::RngCore as _;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::coordinator::Coordinator;
use crate::error::Error;
use crate::state::State;

/// AES-256-GCM key size.
pub const KEY_SIZE: usize = 32;
/// AES-GCM nonce size, the first bytes of the encoded ciphertext.
pub const NONCE_SIZE: usize = 12;
/// AES-GCM tag size, the last bytes of the encoded ciphertext.
pub const TAG_SIZE: usize = 16;
/// The ciphertext's prefix before the key version.
pub const CIPHERTEXT_PREFIX: &str = "vault:";

/// The two operations of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/transit/encrypt/{name}`.
    Encrypt,
    /// `POST /v1/transit/decrypt/{name}`.
    Decrypt,
}

impl Operation {
    /// Its name in logs and metrics (`encrypt`, `decrypt`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
        }
    }

    /// The operation and key name a request path (as sent: percent-encoded) names: one
    /// non-empty segment after the operation's prefix, percent-decoded (`default%2Fvault` names
    /// `default/vault`, as Go's router decodes a wildcard segment).
    ///
    /// # Errors
    /// [`TransitError::NotFound`] for any other path (a literal `/` in the name, an empty name,
    /// another prefix), as upstream's router answers 404.
    pub fn route(request_path: &str) -> Result<(Self, String), TransitError> {
        let not_found = || TransitError::NotFound {
            path: truncated(request_path),
        };
        let (operation, raw) =
            if let Some(raw) = request_path.strip_prefix(path::TRANSIT_ENCRYPT_PREFIX) {
                (Self::Encrypt, raw)
            } else if let Some(raw) = request_path.strip_prefix(path::TRANSIT_DECRYPT_PREFIX) {
                (Self::Decrypt, raw)
            } else {
                return Err(not_found());
            };
        if raw.is_empty() || raw.contains('/') {
            return Err(not_found());
        }
        let name = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| not_found())?;
        Ok((operation, name.into_owned()))
    }
}

/// At most 200 characters of a client-chosen string, for error messages.
fn truncated(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Why the transit engine refused or failed a request. [`TransitError::status`] is the HTTP
/// status, [`TransitError::body`] upstream's error body, [`TransitError::reason`] a fixed label
/// for metrics. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransitError {
    /// The path names no operation and key (404).
    #[error("no endpoint {path}")]
    NotFound {
        /// The path as sent (truncated).
        path: String,
    },
    /// A method other than POST (or PUT, which Vault treats alike) (405).
    #[error("{method} is not allowed; use POST")]
    MethodNotAllowed {
        /// The method sent.
        method: String,
    },
    /// The connection carries no verified client certificate (403).
    #[error("Unauthorized: no client certificate")]
    NoClientCertificate,
    /// The client certificate does not parse (403).
    #[error("Unauthorized: the client certificate does not parse: {0}")]
    ClientCertificate(#[source] der::Error),
    /// The client certificate carries no (or a malformed) workload-secret ID (403).
    #[error("Unauthorized: the client certificate carries no workload secret ID ({found})")]
    NoWorkloadSecretId {
        /// What was found instead.
        found: &'static str,
    },
    /// The client's workload-secret ID is not the key's name (403).
    #[error(
        "Unauthorized: the client certificate's workload secret ID {found:?} does not match the key name {expected:?}"
    )]
    Unauthorized {
        /// The key name of the request.
        expected: String,
        /// The workload-secret ID in the client's certificate.
        found: String,
    },
    /// `Content-Type` is present and not JSON (400).
    #[error("invalid content-type: {found} (want application/json)")]
    ContentType {
        /// The header's value (truncated).
        found: String,
    },
    /// The body is larger than [`TRANSIT_BODY_LIMIT`] (400).
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not the operation's JSON (400).
    #[error("parsing {operation} request: {source}")]
    Body {
        /// `encryption` or `decryption`.
        operation: &'static str,
        /// Where it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A required field is missing (400).
    #[error("parsing {operation} request: missing field {field:?}")]
    MissingField {
        /// `encryption` or `decryption`.
        operation: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A binary field is not standard base64 (400).
    #[error("parsing request: {field} is not standard base64: {source}")]
    Base64 {
        /// The field.
        field: &'static str,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// The ciphertext is not `vault:v<N>:<base64>` with a nonce and a tag (400).
    #[error(
        "parsing decryption request: invalid ciphertext: {field}: expected {expected}, found {found}"
    )]
    Ciphertext {
        /// The part that is wrong (`prefix`, `key version`, `payload`).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is (a description, never the ciphertext).
        found: String,
    },
    /// The ciphertext does not open under the key (wrong key, version, associated data, or
    /// tampered) (400, as upstream).
    #[error("decrypting: message authentication failed")]
    Decryption,
    /// The workload secret could not be derived (500).
    #[error("key derivation: {0}")]
    KeyDerivation(#[source] SeedError),
    /// The AEAD or the server key failed (500).
    #[error("{0}")]
    Crypto(&'static str),
    /// The Coordinator serves no state, or not the one the connection was accepted under
    /// (503; reconnect).
    #[error("{0}")]
    NotServing(#[source] Error),
    /// The server certificate cannot be issued (500).
    #[error("issuing the transit server certificate: {0}")]
    ServerCertificate(String),
}

impl TransitError {
    /// The HTTP status upstream answers with (upstream is silent on 404/405/503: chosen here).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::NoClientCertificate
            | Self::ClientCertificate(_)
            | Self::NoWorkloadSecretId { .. }
            | Self::Unauthorized { .. } => 403,
            Self::ContentType { .. }
            | Self::BodyTooLarge { .. }
            | Self::Body { .. }
            | Self::MissingField { .. }
            | Self::Base64 { .. }
            | Self::Ciphertext { .. }
            | Self::Decryption => 400,
            Self::NotServing(_) => 503,
            Self::KeyDerivation(_) | Self::Crypto(_) | Self::ServerCertificate(_) => 500,
        }
    }

    /// A short stable label for metrics.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::NoClientCertificate
            | Self::ClientCertificate(_)
            | Self::NoWorkloadSecretId { .. }
            | Self::Unauthorized { .. } => "unauthorized",
            Self::ContentType { .. }
            | Self::BodyTooLarge { .. }
            | Self::Body { .. }
            | Self::MissingField { .. }
            | Self::Base64 { .. }
            | Self::Ciphertext { .. } => "bad_request",
            Self::Decryption => "decryption_failed",
            Self::NotServing(_) => "not_serving",
            Self::KeyDerivation(_) | Self::Crypto(_) | Self::ServerCertificate(_) => "internal",
        }
    }

    /// Upstream's (Vault's) error body: `{"errors":["<message>"]}`.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        error_body(&self.to_string())
    }
}

/// `{"errors":[message]}`, Vault's error body.
#[must_use]
pub fn error_body(message: &str) -> Vec<u8> {
    let mut body = serde_json::json!({ "errors": [message] })
        .to_string()
        .into_bytes();
    body.push(b'\n');
    body
}

/// A transit key: one key version of one key name. Zeroized on drop; `Debug` shows only the
/// version.
pub struct TransitKey {
    version: u32,
    bytes: Zeroizing<[u8; KEY_SIZE]>,
}

impl fmt::Debug for TransitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransitKey(v{}, redacted)", self.version)
    }
}

impl TransitKey {
    /// A key from raw bytes (tests and known-answer fixtures).
    #[must_use]
    pub fn from_bytes(version: u32, bytes: [u8; KEY_SIZE]) -> Self {
        Self {
            version,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Its key version.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    fn aead(&self) -> Result<LessSafeKey, TransitError> {
        UnboundKey::new(&AES_256_GCM, &self.bytes[..])
            .map(LessSafeKey::new)
            .map_err(|_| TransitError::Crypto("setting up AES-256-GCM"))
    }
}

/// The key `version` of key `name`: the first [`KEY_SIZE`] bytes of the workload secret for the
/// ID `<version>_<name>` (upstream's `DeriveWorkloadSecret(fmt.Sprintf("%d_%s", …))`).
///
/// # Errors
/// [`TransitError::KeyDerivation`] if the seed engine refuses (never for a non-empty name).
pub fn key(seed_engine: &SeedEngine, name: &str, version: u32) -> Result<TransitKey, TransitError> {
    let secret = seed_engine
        .workload_secret(&format!("{version}_{name}"))
        .map_err(TransitError::KeyDerivation)?;
    let mut bytes = Zeroizing::new([0; KEY_SIZE]);
    let prefix = secret
        .as_bytes()
        .get(..KEY_SIZE)
        .ok_or(TransitError::Crypto(
            "the workload secret is shorter than a key",
        ))?;
    bytes.copy_from_slice(prefix);
    Ok(TransitKey { version, bytes })
}

/// A parsed `vault:v<N>:<base64(nonce ‖ ciphertext ‖ tag)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ciphertext {
    /// The key version `N`.
    pub key_version: u32,
    /// The nonce.
    pub nonce: [u8; NONCE_SIZE],
    /// The AES-GCM ciphertext followed by its tag.
    pub sealed: Vec<u8>,
}

impl Ciphertext {
    /// Parses the ciphertext string strictly: the prefix `vault:`, `v` and decimal digits
    /// fitting a u32 (leading zeros allowed, as Go's `ParseUint`), `:`, then standard base64
    /// of at least a nonce and a tag.
    ///
    /// # Errors
    /// [`TransitError::Ciphertext`] naming the part that is wrong.
    pub fn parse(encoded: &str) -> Result<Self, TransitError> {
        let wrong = |field, expected, found: String| TransitError::Ciphertext {
            field,
            expected,
            found,
        };
        let rest = encoded.strip_prefix(CIPHERTEXT_PREFIX).ok_or_else(|| {
            wrong(
                "prefix",
                "\"vault:\"",
                format!("{} characters without it", encoded.chars().count()),
            )
        })?;
        let (version, payload) = rest
            .split_once(':')
            .ok_or_else(|| wrong("key version", "v<N>:", "no second ':'".to_owned()))?;
        let digits = version
            .strip_prefix('v')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| wrong("key version", "v followed by digits", truncated(version)))?;
        let key_version = digits
            .parse::<u32>()
            .map_err(|_| wrong("key version", "a number below 2^32", truncated(digits)))?;
        let bytes = STANDARD
            .decode(payload)
            .map_err(|e| wrong("payload", "standard base64", e.to_string()))?;
        if bytes.len() < NONCE_SIZE + TAG_SIZE {
            return Err(wrong(
                "payload",
                "at least 28 bytes (a 12-byte nonce and a 16-byte tag)",
                format!("{} bytes", bytes.len()),
            ));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_SIZE);
        let mut fixed = [0; NONCE_SIZE];
        fixed.copy_from_slice(nonce);
        Ok(Self {
            key_version,
            nonce: fixed,
            sealed: sealed.to_vec(),
        })
    }
}

impl fmt::Display for Ciphertext {
    /// `vault:v<N>:<base64>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = Vec::with_capacity(NONCE_SIZE + self.sealed.len());
        payload.extend_from_slice(&self.nonce);
        payload.extend_from_slice(&self.sealed);
        write!(
            f,
            "{CIPHERTEXT_PREFIX}v{}:{}",
            self.key_version,
            STANDARD.encode(payload)
        )
    }
}

/// Encrypts `plaintext` with `associated_data` under `key` and `nonce`: the ciphertext string
/// `vault:v<key version>:…`. Pure, for known-answer tests; the engine draws the nonce from its
/// entropy.
///
/// # Errors
/// [`TransitError::Crypto`] if the AEAD fails (plaintext beyond AES-GCM's limit).
pub fn seal(
    key: &TransitKey,
    nonce: &[u8; NONCE_SIZE],
    plaintext: &[u8],
    associated_data: &[u8],
) -> Result<String, TransitError> {
    let aead = key.aead()?;
    let mut in_out = plaintext.to_vec();
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(associated_data),
        &mut in_out,
    )
    .map_err(|_| TransitError::Crypto("encrypting"))?;
    Ok(Ciphertext {
        key_version: key.version,
        nonce: *nonce,
        sealed: in_out,
    }
    .to_string())
}

/// Decrypts `ciphertext` with `associated_data` under `key` (whose version the caller chose by
/// the ciphertext's).
///
/// # Errors
/// [`TransitError::Decryption`] if it does not authenticate.
pub fn open(
    key: &TransitKey,
    ciphertext: &Ciphertext,
    associated_data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, TransitError> {
    let aead = key.aead()?;
    let mut in_out = Zeroizing::new(ciphertext.sealed.clone());
    let length = aead
        .open_in_place(
            Nonce::assume_unique_for_key(ciphertext.nonce),
            Aad::from(associated_data),
            &mut in_out,
        )
        .map_err(|_| TransitError::Decryption)?
        .len();
    in_out.truncate(length);
    Ok(in_out)
}

/// The JSON of an encryption request, as sent.
#[derive(Deserialize)]
struct RawEncrypt {
    plaintext: Option<String>,
    #[serde(default)]
    key_version: u32,
    associated_data: Option<String>,
}

/// The JSON of a decryption request, as sent.
#[derive(Deserialize)]
struct RawDecrypt {
    ciphertext: Option<String>,
    associated_data: Option<String>,
}

fn base64_field(field: &'static str, value: &str) -> Result<Vec<u8>, TransitError> {
    STANDARD
        .decode(value)
        .map_err(|source| TransitError::Base64 { field, source })
}

/// An encryption request: `{"plaintext": b64, "key_version": u32 (default 0),
/// "associated_data": b64 (optional)}`.
#[derive(Debug)]
#[non_exhaustive]
pub struct EncryptRequest {
    /// The plaintext (zeroized on drop).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key version to encrypt with.
    pub key_version: u32,
    /// The associated data (empty when absent).
    pub associated_data: Vec<u8>,
}

impl EncryptRequest {
    /// Parses a body (at most [`TRANSIT_BODY_LIMIT`] bytes).
    ///
    /// # Errors
    /// [`TransitError::BodyTooLarge`], [`TransitError::Body`], [`TransitError::MissingField`],
    /// [`TransitError::Base64`].
    pub fn parse(body: &[u8]) -> Result<Self, TransitError> {
        check_size(body)?;
        let raw: RawEncrypt =
            serde_json::from_slice(body).map_err(|source| TransitError::Body {
                operation: "encryption",
                source,
            })?;
        let encoded = Zeroizing::new(raw.plaintext.ok_or(TransitError::MissingField {
            operation: "encryption",
            field: "plaintext",
        })?);
        Ok(Self {
            plaintext: Zeroizing::new(base64_field("plaintext", &encoded)?),
            key_version: raw.key_version,
            associated_data: raw
                .associated_data
                .map(|ad| base64_field("associated_data", &ad))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// A decryption request: `{"ciphertext": "vault:v<N>:…", "associated_data": b64 (optional)}`.
#[derive(Debug)]
#[non_exhaustive]
pub struct DecryptRequest {
    /// The ciphertext.
    pub ciphertext: Ciphertext,
    /// The associated data (empty when absent).
    pub associated_data: Vec<u8>,
}

impl DecryptRequest {
    /// Parses a body (at most [`TRANSIT_BODY_LIMIT`] bytes).
    ///
    /// # Errors
    /// [`TransitError::BodyTooLarge`], [`TransitError::Body`], [`TransitError::MissingField`],
    /// [`TransitError::Ciphertext`], [`TransitError::Base64`].
    pub fn parse(body: &[u8]) -> Result<Self, TransitError> {
        check_size(body)?;
        let raw: RawDecrypt =
            serde_json::from_slice(body).map_err(|source| TransitError::Body {
                operation: "decryption",
                source,
            })?;
        let ciphertext = raw.ciphertext.ok_or(TransitError::MissingField {
            operation: "decryption",
            field: "ciphertext",
        })?;
        Ok(Self {
            ciphertext: Ciphertext::parse(&ciphertext)?,
            associated_data: raw
                .associated_data
                .map(|ad| base64_field("associated_data", &ad))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

fn check_size(body: &[u8]) -> Result<(), TransitError> {
    if body.len() > TRANSIT_BODY_LIMIT {
        return Err(TransitError::BodyTooLarge {
            limit: TRANSIT_BODY_LIMIT,
        });
    }
    Ok(())
}

/// Upstream's rule for the `Content-Type` header: absent, or starting with `application/json`.
///
/// # Errors
/// [`TransitError::ContentType`].
pub fn check_content_type(content_type: Option<&[u8]>) -> Result<(), TransitError> {
    match content_type {
        None => Ok(()),
        Some(value) if value.starts_with(b"application/json") => Ok(()),
        Some(value) => Err(TransitError::ContentType {
            found: truncated(&String::from_utf8_lossy(value)),
        }),
    }
}

/// The workload-secret ID in a (verified) client certificate: the UTF-8 of the DER OCTET STRING
/// in extension `1.3.9901.3.1`.
///
/// # Errors
/// [`TransitError::ClientCertificate`] if the certificate does not parse;
/// [`TransitError::NoWorkloadSecretId`] without the extension, with it twice, or with a value
/// that is not an OCTET STRING of UTF-8.
pub fn workload_secret_id(client_certificate_der: &[u8]) -> Result<String, TransitError> {
    let certificate = x509_cert::Certificate::from_der(client_certificate_der)
        .map_err(TransitError::ClientCertificate)?;
    let mut found = certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|extension| extension.extn_id == WORKLOAD_SECRET_ID_OID);
    let extension = found.next().ok_or(TransitError::NoWorkloadSecretId {
        found: "no extension 1.3.9901.3.1",
    })?;
    if found.next().is_some() {
        return Err(TransitError::NoWorkloadSecretId {
            found: "extension 1.3.9901.3.1 twice",
        });
    }
    let value =
        der::asn1::OctetString::from_der(extension.extn_value.as_bytes()).map_err(|_| {
            TransitError::NoWorkloadSecretId {
                found: "a value that is no DER OCTET STRING",
            }
        })?;
    String::from_utf8(value.as_bytes().to_vec()).map_err(|_| TransitError::NoWorkloadSecretId {
        found: "a value that is not UTF-8",
    })
}

/// Whether the client of `client_certificate_der` may use key `name`: its workload-secret ID
/// must be `name`.
///
/// # Errors
/// As [`workload_secret_id`], and [`TransitError::Unauthorized`] for another ID.
pub fn authorize(name: &str, client_certificate_der: &[u8]) -> Result<(), TransitError> {
    let id = workload_secret_id(client_certificate_der)?;
    if id != name {
        return Err(TransitError::Unauthorized {
            expected: truncated(name),
            found: truncated(&id),
        });
    }
    Ok(())
}

/// `{"data":{"ciphertext":…}}`.
#[must_use]
pub fn encrypt_response(ciphertext: &str) -> Vec<u8> {
    let mut body = serde_json::json!({ "data": { "ciphertext": ciphertext } })
        .to_string()
        .into_bytes();
    body.push(b'\n');
    body
}

/// `{"data":{"plaintext":…}}` (zeroized on drop).
#[must_use]
pub fn decrypt_response(plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
    let encoded = Zeroizing::new(STANDARD.encode(plaintext));
    let mut body = Zeroizing::new(Vec::with_capacity(encoded.len() + 32));
    body.extend_from_slice(b"{\"data\":{\"plaintext\":\"");
    body.extend_from_slice(encoded.as_bytes());
    body.extend_from_slice(b"\"}}\n");
    body
}

/// One transit request as the transport received it.
#[derive(Debug, Clone, Copy)]
pub struct TransitRequest<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The request path as sent (percent-encoded).
    pub path: &'a str,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a [u8]>,
    /// The body (the transport stops reading beyond [`TRANSIT_BODY_LIMIT`]).
    pub body: &'a [u8],
    /// The DER of the client's leaf certificate, verified against the mesh CA of the state the
    /// connection was accepted under; `None` if there was none.
    pub client_certificate: Option<&'a [u8]>,
}

/// The answer to a transit request: the operation and the 200 body (zeroized on drop).
#[derive(Debug)]
#[non_exhaustive]
pub struct TransitAnswer {
    /// The operation served.
    pub operation: Operation,
    /// The key name.
    pub name: String,
    /// The JSON body.
    pub body: Zeroizing<Vec<u8>>,
}

/// The transit listener's server identity for one state: a certificate from the state's mesh
/// CA for a fresh key, with the SANs of the manifest's `coordinator`-role policies.
#[non_exhaustive]
pub struct TransitServerIdentity {
    /// Leaf then intermediate, DER.
    pub cert_chain_der: Vec<Vec<u8>>,
    /// The key, PKCS#8 DER (zeroized on drop).
    pub key_pkcs8_der: Zeroizing<Vec<u8>>,
    /// The mesh CA certificate, DER: the only trust anchor for client certificates.
    pub mesh_ca_der: Vec<u8>,
}

impl fmt::Debug for TransitServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitServerIdentity")
            .field("certificates", &self.cert_chain_der.len())
            .finish_non_exhaustive()
    }
}

impl<S: Store, P> Coordinator<S, P> {
    /// Answers one transit request on a connection accepted under `state`: the route
    /// ([`Operation::route`]), the method (POST or PUT), the state still in force, the client
    /// ([`authorize`]), the content type and body, then the operation with the key of the
    /// requested (encrypt) or the ciphertext's (decrypt) key version.
    ///
    /// # Errors
    /// Every [`TransitError`]; [`TransitError::NotServing`] when the state is no longer in
    /// force (a manifest was set or recovered since: the client reconnects).
    pub fn transit(
        &self,
        state: &State,
        request: &TransitRequest<'_>,
    ) -> Result<TransitAnswer, TransitError> {
        let (operation, name) = Operation::route(request.path)?;
        if request.method != "POST" && request.method != "PUT" {
            return Err(TransitError::MethodNotAllowed {
                method: truncated(request.method),
            });
        }
        self.still_in_force(state)
            .map_err(TransitError::NotServing)?;
        let certificate = request
            .client_certificate
            .ok_or(TransitError::NoClientCertificate)?;
        authorize(&name, certificate)?;
        check_content_type(request.content_type)?;
        let body = match operation {
            Operation::Encrypt => {
                let parsed = EncryptRequest::parse(request.body)?;
                let key = key(state.seed_engine(), &name, parsed.key_version)?;
                let mut nonce = [0; NONCE_SIZE];
                self.guard.rng().fill_bytes(&mut nonce);
                let ciphertext = seal(&key, &nonce, &parsed.plaintext, &parsed.associated_data)?;
                Zeroizing::new(encrypt_response(&ciphertext))
            }
            Operation::Decrypt => {
                let parsed = DecryptRequest::parse(request.body)?;
                let key = key(state.seed_engine(), &name, parsed.ciphertext.key_version)?;
                let plaintext = open(&key, &parsed.ciphertext, &parsed.associated_data)?;
                decrypt_response(&plaintext)
            }
        };
        Ok(TransitAnswer {
            operation,
            name,
            body,
        })
    }

    /// The transit listener's server identity under `state` (see [`TransitServerIdentity`]):
    /// build it once per state, as the mesh CA changes with every state.
    ///
    /// # Errors
    /// [`TransitError::ServerCertificate`] if the manifest's `coordinator`-role policies name no
    /// DNS SAN, or issuing fails.
    pub fn transit_server_identity(
        &self,
        state: &State,
    ) -> Result<TransitServerIdentity, TransitError> {
        let mut sans: Vec<String> = Vec::new();
        for entry in state.manifest().manifest().policies.values() {
            if entry.role == Role::Coordinator {
                for san in entry.sans.iter().flatten() {
                    if !sans.contains(san) {
                        sans.push(san.clone());
                    }
                }
            }
        }
        let secret = p256::SecretKey::random(&mut self.guard.rng());
        let spki = secret
            .public_key()
            .to_public_key_der()
            .map_err(|e| TransitError::ServerCertificate(format!("encoding the key: {e}")))?;
        let key_pkcs8_der = Zeroizing::new(
            secret
                .to_pkcs8_der()
                .map_err(|e| TransitError::ServerCertificate(format!("encoding the key: {e}")))?
                .as_bytes()
                .to_vec(),
        );
        let leaf = state
            .ca()
            .issue_mesh_cert(
                spki.as_bytes(),
                &sans,
                &[],
                self.guard.clock().now(),
                &mut self.guard.rng(),
            )
            .map_err(|e| {
                TransitError::ServerCertificate(format!(
                    "{e} (SANs of the coordinator-role policies: {sans:?})"
                ))
            })?;
        let intermediate = state.ca().intermediate().der.clone();
        Ok(TransitServerIdentity {
            cert_chain_der: vec![leaf.der, intermediate],
            key_pkcs8_der,
            mesh_ca_der: state.mesh_ca().der.clone(),
        })
    }
}

/// The DER OCTET STRING of `bytes` (tests).
#[cfg(test)]
fn octet_string_der(bytes: &[u8]) -> Vec<u8> {
    use der::Encode as _;
    der::asn1::OctetString::new(bytes.to_vec())
        .and_then(|s| s.to_der())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn engine() -> SeedEngine {
        SeedEngine::new(&[7; 64], &[9; 32]).unwrap()
    }

    const NONCE: [u8; NONCE_SIZE] = [1; NONCE_SIZE];

    #[test]
    fn key_is_the_workload_secret_prefix_of_version_and_name() {
        let engine = engine();
        let k = key(&engine, "default/vault", 3).unwrap();
        let secret = engine.workload_secret("3_default/vault").unwrap();
        assert_eq!(&k.bytes[..], &secret.as_bytes()[..KEY_SIZE]);
        assert_eq!(k.version(), 3);
        assert_ne!(
            &key(&engine, "default/vault", 4).unwrap().bytes[..],
            &k.bytes[..]
        );
        assert!(!format!("{k:?}").contains(&hex::encode(&k.bytes[..4])));
    }

    #[test]
    fn seal_then_open_round_trips_with_version_prefix() {
        let k = key(&engine(), "n", 2).unwrap();
        let sealed = seal(&k, &NONCE, b"secret", b"aad").unwrap();
        assert!(sealed.starts_with("vault:v2:"), "{sealed}");
        let parsed = Ciphertext::parse(&sealed).unwrap();
        assert_eq!(parsed.key_version, 2);
        assert_eq!(parsed.nonce, NONCE);
        assert_eq!(parsed.sealed.len(), 6 + TAG_SIZE);
        assert_eq!(parsed.to_string(), sealed);
        assert_eq!(&open(&k, &parsed, b"aad").unwrap()[..], b"secret");
    }

    #[test]
    fn known_answer_matches_aes_gcm_of_the_derived_key() {
        // Independent AES-256-GCM over the same key, nonce and input (aws-lc-rs directly).
        let k = key(&engine(), "default/vault", 0).unwrap();
        let sealed = seal(&k, &NONCE, b"plain", b"").unwrap();
        let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k.bytes[..]).unwrap());
        let mut expected = b"plain".to_vec();
        aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(NONCE),
            Aad::empty(),
            &mut expected,
        )
        .unwrap();
        let mut payload = NONCE.to_vec();
        payload.extend_from_slice(&expected);
        assert_eq!(sealed, format!("vault:v0:{}", STANDARD.encode(payload)));
    }

    #[test]
    fn open_refuses_mutations() {
        let engine = engine();
        let k = key(&engine, "n", 1).unwrap();
        let sealed = Ciphertext::parse(&seal(&k, &NONCE, b"secret", b"aad").unwrap()).unwrap();
        // Wrong associated data.
        assert!(matches!(
            open(&k, &sealed, b"other"),
            Err(TransitError::Decryption)
        ));
        // Another key version.
        let other = key(&engine, "n", 2).unwrap();
        assert!(matches!(
            open(&other, &sealed, b"aad"),
            Err(TransitError::Decryption)
        ));
        // Another name.
        let stranger = key(&engine, "m", 1).unwrap();
        assert!(matches!(
            open(&stranger, &sealed, b"aad"),
            Err(TransitError::Decryption)
        ));
        // A flipped tag bit.
        let mut bad_tag = sealed.clone();
        if let Some(last) = bad_tag.sealed.last_mut() {
            *last ^= 1;
        }
        assert!(matches!(
            open(&k, &bad_tag, b"aad"),
            Err(TransitError::Decryption)
        ));
        // A truncated ciphertext that still has a tag's length.
        let mut truncated = sealed.clone();
        truncated.sealed.remove(0);
        assert!(matches!(
            open(&k, &truncated, b"aad"),
            Err(TransitError::Decryption)
        ));
        // Another seed.
        let foreign = key(&SeedEngine::new(&[8; 64], &[9; 32]).unwrap(), "n", 1).unwrap();
        assert!(matches!(
            open(&foreign, &sealed, b"aad"),
            Err(TransitError::Decryption)
        ));
    }

    fn field_of(result: Result<Ciphertext, TransitError>) -> &'static str {
        match result {
            Err(TransitError::Ciphertext { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ciphertext_format_is_strict() {
        let payload = STANDARD.encode([0u8; NONCE_SIZE + TAG_SIZE]);
        assert!(Ciphertext::parse(&format!("vault:v0:{payload}")).is_ok());
        assert_eq!(
            Ciphertext::parse(&format!("vault:v007:{payload}"))
                .unwrap()
                .key_version,
            7
        );
        assert_eq!(
            Ciphertext::parse(&format!("vault:v4294967295:{payload}"))
                .unwrap()
                .key_version,
            u32::MAX
        );
        for (input, field) in [
            (format!("vaulx:v0:{payload}"), "prefix"),
            (format!("v0:{payload}"), "prefix"),
            (format!("vault:v0{payload}"), "key version"),
            (format!("vault:0:{payload}"), "key version"),
            (format!("vault:v:{payload}"), "key version"),
            (format!("vault:v-1:{payload}"), "key version"),
            (format!("vault:v+1:{payload}"), "key version"),
            (format!("vault:v4294967296:{payload}"), "key version"),
            ("vault:v0:not base64!".to_owned(), "payload"),
            (
                format!(
                    "vault:v0:{}",
                    STANDARD.encode([0u8; NONCE_SIZE + TAG_SIZE - 1])
                ),
                "payload",
            ),
            ("vault:v0:".to_owned(), "payload"),
            ("vault:v1:AAAA".to_owned(), "payload"),
        ] {
            assert_eq!(field_of(Ciphertext::parse(&input)), field, "{input}");
        }
    }

    #[test]
    fn encrypt_request_parsing() {
        let parsed = EncryptRequest::parse(
            br#"{"plaintext":"aGk=","key_version":2,"associated_data":"YQ==","context":"x"}"#,
        )
        .unwrap();
        assert_eq!(&parsed.plaintext[..], b"hi");
        assert_eq!(parsed.key_version, 2);
        assert_eq!(parsed.associated_data, b"a");
        let default = EncryptRequest::parse(br#"{"plaintext":""}"#).unwrap();
        assert_eq!(default.key_version, 0);
        assert!(default.plaintext.is_empty());
        for (body, status) in [
            (&br#"{}"#[..], "missing"),
            (br#"{"plaintext":"aGk=","key_version":-1}"#, "body"),
            (br#"{"plaintext":"aGk=","key_version":4294967296}"#, "body"),
            (br#"{"plaintext":"thi$$"}"#, "base64"),
            (br#"{"plaintext":"aGk=","associated_data":"%%"}"#, "base64"),
            (br#"not json"#, "body"),
            (br#""#, "body"),
        ] {
            let kind = match EncryptRequest::parse(body) {
                Err(TransitError::MissingField { .. }) => "missing",
                Err(TransitError::Body { .. }) => "body",
                Err(TransitError::Base64 { .. }) => "base64",
                other => panic!("{other:?}"),
            };
            assert_eq!(kind, status, "{}", String::from_utf8_lossy(body));
        }
        let large = vec![b' '; TRANSIT_BODY_LIMIT + 1];
        let error = EncryptRequest::parse(&large).unwrap_err();
        assert!(matches!(error, TransitError::BodyTooLarge { .. }));
        assert_eq!(error.status(), 400);
    }

    #[test]
    fn decrypt_request_parsing() {
        let payload = STANDARD.encode([0u8; NONCE_SIZE + TAG_SIZE]);
        let body = format!(r#"{{"ciphertext":"vault:v3:{payload}","associated_data":"YQ=="}}"#);
        let parsed = DecryptRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(parsed.ciphertext.key_version, 3);
        assert_eq!(parsed.associated_data, b"a");
        assert!(matches!(
            DecryptRequest::parse(b"{}"),
            Err(TransitError::MissingField { .. })
        ));
        assert!(matches!(
            DecryptRequest::parse(br#"{"ciphertext":"vaul"}"#),
            Err(TransitError::Ciphertext { .. })
        ));
    }

    #[test]
    fn routes() {
        assert_eq!(
            Operation::route("/v1/transit/encrypt/default%2Fvault").unwrap(),
            (Operation::Encrypt, "default/vault".to_owned())
        );
        assert_eq!(
            Operation::route("/v1/transit/decrypt/autounseal").unwrap(),
            (Operation::Decrypt, "autounseal".to_owned())
        );
        for path in [
            "/v1/transit/encrypt/",
            "/v1/transit/encrypt/wrong/url",
            "/v1/transit/keys/x",
            "/v2/transit/encrypt/x",
            "/",
        ] {
            let error = Operation::route(path).unwrap_err();
            assert_eq!(error.status(), 404, "{path}");
        }
    }

    #[test]
    fn content_type_rule() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some(b"application/json")).is_ok());
        assert!(check_content_type(Some(b"application/json; charset=utf-8")).is_ok());
        let error = check_content_type(Some(b"text/plain")).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.body(),
            b"{\"errors\":[\"invalid content-type: text/plain (want application/json)\"]}\n"
        );
    }

    fn certificate_with(extensions: Vec<x509_cert::ext::Extension>) -> Vec<u8> {
        use rand_core::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let root = p384::ecdsa::SigningKey::random(&mut rng);
        let ca = contrast_ca::Ca::new(
            &root,
            contrast_ca::MeshCaKey::generate(&mut rng),
            contrast_ca::UnixTime::from_secs(1_700_000_000),
            &mut rng,
        )
        .unwrap();
        let leaf = p256::SecretKey::random(&mut rng);
        let spki = leaf.public_key().to_public_key_der().unwrap();
        ca.issue_mesh_cert(
            spki.as_bytes(),
            &["workload".to_owned()],
            &extensions,
            contrast_ca::UnixTime::from_secs(1_700_000_000),
            &mut rng,
        )
        .unwrap()
        .der
    }

    fn id_extension(value_der: Vec<u8>) -> x509_cert::ext::Extension {
        x509_cert::ext::Extension {
            extn_id: WORKLOAD_SECRET_ID_OID,
            critical: false,
            extn_value: der::asn1::OctetString::new(value_der).unwrap(),
        }
    }

    #[test]
    fn authorisation_reads_the_workload_secret_id() {
        let own = certificate_with(vec![id_extension(octet_string_der(b"default/vault"))]);
        assert_eq!(workload_secret_id(&own).unwrap(), "default/vault");
        assert!(authorize("default/vault", &own).is_ok());
        let error = authorize("default/other", &own).unwrap_err();
        assert_eq!(error.status(), 403);
        assert!(error.to_string().starts_with("Unauthorized: "), "{error}");

        let none = certificate_with(Vec::new());
        assert!(matches!(
            authorize("default/vault", &none),
            Err(TransitError::NoWorkloadSecretId { .. })
        ));
        let not_octets = certificate_with(vec![id_extension(vec![0x05, 0x00])]);
        assert!(matches!(
            workload_secret_id(&not_octets),
            Err(TransitError::NoWorkloadSecretId { .. })
        ));
        let not_utf8 = certificate_with(vec![id_extension(octet_string_der(&[0xff, 0xfe]))]);
        assert!(matches!(
            workload_secret_id(&not_utf8),
            Err(TransitError::NoWorkloadSecretId { .. })
        ));
        assert!(matches!(
            workload_secret_id(b"garbage"),
            Err(TransitError::ClientCertificate(_))
        ));
    }

    #[test]
    fn answers_are_upstreams_json() {
        assert_eq!(
            encrypt_response("vault:v0:AA=="),
            b"{\"data\":{\"ciphertext\":\"vault:v0:AA==\"}}\n"
        );
        assert_eq!(
            &decrypt_response(b"hi")[..],
            b"{\"data\":{\"plaintext\":\"aGk=\"}}\n"
        );
        let error = TransitError::Decryption;
        let body: serde_json::Value = serde_json::from_slice(&error.body()).unwrap();
        assert_eq!(
            body["errors"][0],
            "decrypting: message authentication failed"
        );
    }
}
