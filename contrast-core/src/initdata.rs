//! The initdata document: the workload identity of a Contrast pod.
//!
//! # Document
//!
//! An initdata document is a TOML file (CoCo trustee convention) with three parts:
//!
//! ```toml
//! version = "0.1.0"          # the only supported version
//! algorithm = "sha256"       # sha256 | sha384 | sha512; "sha-256" etc. accepted on parse
//! [data]                     # string -> string; optional (missing = empty)
//! "policy.rego" = '''...'''
//! ```
//!
//! Unknown top-level keys are ignored, as upstream's decoder into a struct does.
//!
//! # Digest
//!
//! The digest is the document's `algorithm` applied to the **raw bytes** of the document. The
//! bytes come from an external tool (Kata `genpolicy`) and are never re-serialised: a parse and
//! re-encode could change whitespace, quoting or key order and so the digest. [`Initdata`]
//! therefore keeps the raw bytes, and [`Initdata::build`] serialises a new document exactly once.
//!
//! The Kata runtime writes the digest into SNP `HOST_DATA` (32 bytes) and the manifest's
//! `Policies` map is keyed by its hex form, which only admits 32-byte keys; hence
//! [`Initdata::policy_hash`] only accepts `sha256` documents.
//!
//! # Pod annotation
//!
//! Annotation [`ANNOTATION_KEY`] carries `base64(gzip(raw))`: standard alphabet with padding.
//! Decoding follows Go's `encoding/base64` `StdEncoding` (the upstream decoder): `\r` and `\n`
//! anywhere in the value are ignored and non-zero unused bits in the last symbol are accepted;
//! missing padding is an error.
//!
//! # Device image
//!
//! Inside the guest the Kata runtime exposes the document as a block device:
//!
//! ```text
//! offset 0   8 bytes   magic (DEVICE_MAGIC, "initdata", or a caller-chosen value)
//! offset 8   8 bytes   length of the gzip blob, u64 little endian
//! offset 16  length    gzip(raw)
//! ...                  zero padding up to a multiple of 512 bytes (ignored when reading)
//! ```
//!
//! # Gzip semantics
//!
//! Gzip is flate2's. Decoding is multistream like Go's `compress/gzip` reader (upstream's
//! decoder): concatenated members decompress to the concatenation of their contents, each
//! member's CRC-32 and length are checked, and after the last member the input must end: any
//! further bytes are parsed as another member, so trailing garbage (including zero padding) is an
//! error. Empty input and truncation anywhere are errors.
//!
//! Where flate2 differs from Go: reserved header flag bits are rejected (Go ignores them), and
//! header file names and comments may be up to 65535 bytes (Go stops at 511).
//!
//! Unlike Go, decompression stops with [`InitdataError::TooLarge`] once the output would exceed
//! [`MAX_DOCUMENT_SIZE`], so a gzip bomb costs at most twice that much memory (the output
//! buffer grows by doubling).
//!
//! Compression is deterministic: one member with no file name, mtime 0, OS 255 "unknown" (as
//! Go's writer emits), deflate at level 6 (Go's default level). The compressed bytes differ from
//! Go's (different deflate implementation); that is harmless because every digest is over the
//! decompressed bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::str::FromStr;

use base64::Engine as _;
use flate2::bufread::MultiGzDecoder;
use flate2::{Compression, GzBuilder};

/// Pod annotation that carries `base64(gzip(initdata))`.
pub const ANNOTATION_KEY: &str = "io.katacontainers.config.hypervisor.cc_init_data";

/// The only supported `version` of the initdata document.
pub const VERSION: &str = "0.1.0";

/// The magic at the start of the initdata block device that the Kata runtime prepares.
pub const DEVICE_MAGIC: [u8; 8] = *b"initdata";

/// Size of the device header: magic (8 bytes) and compressed length (u64 little endian).
pub const DEVICE_HEADER_LEN: usize = 16;

/// Device images are padded with zeros to a multiple of this many bytes.
pub const DEVICE_SECTOR_SIZE: usize = 512;

/// Largest accepted document (raw TOML bytes): 16 MiB.
///
/// Pod annotations are limited to 256 KiB in total by Kubernetes, so real documents are far
/// smaller; the limit exists so that decompressing a hostile gzip stream cannot exhaust memory.
/// Parsing and building enforce it too, so every [`Initdata`] survives a round trip through the
/// annotation and the device image.
pub const MAX_DOCUMENT_SIZE: usize = 16 * 1024 * 1024;

/// Largest accepted compressed length in a device header: [`MAX_DOCUMENT_SIZE`] plus 64 KiB.
///
/// Deflate expands incompressible data by 5 bytes per 64 KiB stored block and gzip adds 18
/// bytes, so the gzip form of any document within [`MAX_DOCUMENT_SIZE`] fits. (Upstream allows
/// 128 GiB here and then allocates that much; this port refuses before allocating.)
pub const MAX_COMPRESSED_SIZE: u64 = MAX_DOCUMENT_SIZE as u64 + 64 * 1024;

/// OS byte "unknown", which Go's `compress/gzip` writer emits.
const GZIP_OS_UNKNOWN: u8 = 255;
/// Deflate level used for new annotations and device images (Go's default level).
const DEFLATE_LEVEL: u32 = 6;

/// Errors from parsing, building, decoding or encoding an initdata document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InitdataError {
    /// The document is not valid UTF-8.
    #[error("initdata is not valid utf-8: invalid byte sequence at offset {offset}")]
    NotUtf8 {
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        offset: usize,
    },
    /// The document is not valid TOML.
    #[error("initdata is not valid toml: {message}")]
    Toml {
        /// The TOML parser's message.
        message: String,
    },
    /// A required top-level key is missing.
    #[error("initdata has no `{field}` key")]
    MissingField {
        /// The missing key.
        field: &'static str,
    },
    /// A top-level key that must be a string has another type.
    #[error("initdata `{field}` must be a string, found a {found}")]
    FieldNotString {
        /// The key.
        field: &'static str,
        /// The TOML type found instead.
        found: &'static str,
    },
    /// `version` is not `0.1.0`.
    #[error("initdata version {found:?} is not supported, only \"0.1.0\" is")]
    UnsupportedVersion {
        /// The version found in the document.
        found: String,
    },
    /// `algorithm` is not one of the supported hash algorithms.
    #[error(
        "initdata algorithm {found:?} is not supported, only sha256, sha384 and sha512 \
         (or sha-256, sha-384, sha-512) are"
    )]
    UnknownAlgorithm {
        /// The algorithm found.
        found: String,
    },
    /// `data` is not a table.
    #[error("initdata `data` must be a table, found a {found}")]
    DataNotTable {
        /// The TOML type found instead.
        found: &'static str,
    },
    /// An entry of the `data` table is not a string.
    #[error("initdata data entry {key:?} must be a string, found a {found}")]
    DataValueNotString {
        /// The key of the offending entry.
        key: String,
        /// The TOML type found instead.
        found: &'static str,
    },
    /// Serialising a new document failed.
    #[error("serialising initdata to toml failed: {message}")]
    Serialize {
        /// The serialiser's message.
        message: String,
    },
    /// The document (or its decompressed form) exceeds [`MAX_DOCUMENT_SIZE`].
    #[error("initdata is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The annotation value is not valid standard base64 with padding.
    #[error("initdata annotation is not valid base64: {message}")]
    Base64 {
        /// The decoder's message.
        message: String,
    },
    /// The compressed form is not a valid gzip stream (bad header, corrupt deflate data,
    /// checksum mismatch, truncation, or trailing bytes that are not a gzip member).
    #[error("initdata gzip stream is invalid: {message}")]
    Gzip {
        /// The gzip decoder's message.
        message: String,
    },
    /// Compressing the document failed.
    #[error("compressing initdata with gzip failed: {message}")]
    Compress {
        /// The gzip encoder's message.
        message: String,
    },
    /// The device image is shorter than the 8-byte magic.
    #[error("initdata device image is {found} bytes, too short for the 8-byte magic")]
    MagicTruncated {
        /// Length of the image.
        found: usize,
    },
    /// The device image does not start with the expected magic.
    #[error("initdata device magic is {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// The magic the caller expected.
        expected: [u8; 8],
        /// The first 8 bytes of the image.
        found: [u8; 8],
    },
    /// The device image ends inside the 8-byte length field.
    #[error(
        "initdata device image has {found} bytes after the magic, too short for the 8-byte length"
    )]
    LengthFieldTruncated {
        /// Number of bytes after the magic.
        found: usize,
    },
    /// The length field of the device image exceeds [`MAX_COMPRESSED_SIZE`].
    #[error("initdata device declares {length} compressed bytes, more than the limit of {limit}")]
    DeviceLengthTooLarge {
        /// The declared compressed length.
        length: u64,
        /// The limit.
        limit: u64,
    },
    /// The device image is shorter than its header says.
    #[error("initdata device image needs {needed} bytes for its header and blob, but has {found}")]
    ImageTruncated {
        /// Header length plus declared compressed length.
        needed: u64,
        /// Actual image length.
        found: u64,
    },
    /// A policy hash (HOST_DATA, manifest `Policies` key) was requested from a document whose
    /// digest is not 32 bytes long.
    #[error(
        "initdata uses {algorithm}, whose digest is {len} bytes; the manifest `Policies` keys and \
         SNP HOST_DATA hold a 32-byte digest, so only sha256 documents can identify a workload"
    )]
    PolicyHashNotSha256 {
        /// The document's algorithm.
        algorithm: Algorithm,
        /// Its digest length.
        len: usize,
    },
}

/// Hash algorithm of an initdata document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256 (32-byte digest); the only algorithm usable in a manifest.
    Sha256,
    /// SHA-384 (48-byte digest).
    Sha384,
    /// SHA-512 (64-byte digest).
    Sha512,
}

impl Algorithm {
    /// The canonical spelling (`sha256`, `sha384`, `sha512`), the one [`Initdata::build`] writes.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// Length of the digest in bytes.
    #[must_use]
    pub const fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The hash of `bytes` with this algorithm.
    #[must_use]
    pub fn hash(self, bytes: &[u8]) -> InitdataDigest {
        let bytes = match self {
            Self::Sha256 => crate::sha256(bytes).to_vec(),
            Self::Sha384 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, bytes)
                .as_ref()
                .to_vec(),
            Self::Sha512 => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, bytes)
                .as_ref()
                .to_vec(),
        };
        InitdataDigest {
            algorithm: self,
            bytes,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = InitdataError;

    /// Accepts `sha256`, `sha384`, `sha512` and the spellings `sha-256`, `sha-384`, `sha-512`
    /// that CoCo components use interchangeably.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" | "sha-256" => Ok(Self::Sha256),
            "sha384" | "sha-384" => Ok(Self::Sha384),
            "sha512" | "sha-512" => Ok(Self::Sha512),
            _ => Err(InitdataError::UnknownAlgorithm {
                found: s.to_owned(),
            }),
        }
    }
}

/// The digest of an initdata document: its algorithm applied to its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InitdataDigest {
    algorithm: Algorithm,
    bytes: Vec<u8>,
}

impl InitdataDigest {
    /// The algorithm that produced the digest.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The digest bytes (`algorithm().digest_len()` of them).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lowercase hex of the digest, the form used as manifest `Policies` key.
    #[must_use]
    pub fn to_hex(&self) -> String {
        crate::hexstring::encode(&self.bytes)
    }
}

impl fmt::Display for InitdataDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A parsed and validated initdata document that keeps its raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Initdata {
    raw: Vec<u8>,
    algorithm: Algorithm,
    data: BTreeMap<String, String>,
}

/// Shape of a document written by [`Initdata::build`]; field order is the output order.
#[derive(serde::Serialize)]
struct DocumentOut<'a> {
    version: &'static str,
    algorithm: &'static str,
    data: &'a BTreeMap<String, String>,
}

impl Initdata {
    /// Parses and validates a document, keeping `raw` as the bytes to hash.
    ///
    /// # Errors
    ///
    /// [`InitdataError::TooLarge`] above [`MAX_DOCUMENT_SIZE`], [`InitdataError::NotUtf8`],
    /// [`InitdataError::Toml`], a missing or non-string `version`/`algorithm`, a version other
    /// than `0.1.0`, an unknown algorithm, or a `data` entry that is not a string.
    pub fn parse(raw: Vec<u8>) -> Result<Self, InitdataError> {
        if raw.len() > MAX_DOCUMENT_SIZE {
            return Err(InitdataError::TooLarge {
                limit: MAX_DOCUMENT_SIZE,
            });
        }
        let text = std::str::from_utf8(&raw).map_err(|e| InitdataError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let table: toml::Table = toml::from_str(text).map_err(|e| InitdataError::Toml {
            message: match e.span() {
                Some(span) => format!("{} (at byte {})", e.message().trim_end(), span.start),
                None => e.message().trim_end().to_owned(),
            },
        })?;

        let version = string_field(&table, "version")?;
        if version != VERSION {
            return Err(InitdataError::UnsupportedVersion {
                found: version.to_owned(),
            });
        }
        let algorithm = string_field(&table, "algorithm")?.parse::<Algorithm>()?;

        let data = match table.get("data") {
            None => BTreeMap::new(),
            Some(toml::Value::Table(entries)) => entries
                .iter()
                .map(|(key, value)| match value {
                    toml::Value::String(s) => Ok((key.clone(), s.clone())),
                    other => Err(InitdataError::DataValueNotString {
                        key: key.clone(),
                        found: other.type_str(),
                    }),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(InitdataError::DataNotTable {
                    found: other.type_str(),
                });
            }
        };

        Ok(Self {
            raw,
            algorithm,
            data,
        })
    }

    /// Serialises a new document (version `0.1.0`, canonical algorithm spelling, `[data]`
    /// table) and parses it; the serialised bytes are the document's raw bytes from then on.
    ///
    /// Equal input gives byte-identical output.
    ///
    /// # Errors
    ///
    /// [`InitdataError::Serialize`] if the TOML writer fails, and [`InitdataError::TooLarge`]
    /// if the document exceeds [`MAX_DOCUMENT_SIZE`].
    pub fn build(
        algorithm: Algorithm,
        data: BTreeMap<String, String>,
    ) -> Result<Self, InitdataError> {
        let document = DocumentOut {
            version: VERSION,
            algorithm: algorithm.as_str(),
            data: &data,
        };
        let text = toml::to_string(&document).map_err(|e| InitdataError::Serialize {
            message: e.to_string(),
        })?;
        Self::parse(text.into_bytes())
    }

    /// The raw document bytes, exactly as parsed or built.
    #[must_use]
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Consumes the document and returns its raw bytes.
    #[must_use]
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// The document version (always [`VERSION`] for a valid document).
    #[must_use]
    pub const fn version(&self) -> &'static str {
        VERSION
    }

    /// The document's hash algorithm.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `[data]` table (empty if the document has none).
    #[must_use]
    pub const fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }

    /// The document digest: its algorithm applied to the raw bytes.
    #[must_use]
    pub fn digest(&self) -> InitdataDigest {
        self.algorithm.hash(&self.raw)
    }

    /// The 32-byte workload identity: SNP `HOST_DATA`, TDX `MR_CONFIG_ID[0..32]` and (in hex)
    /// the manifest `Policies` key. It is the SHA-256 digest of the raw bytes.
    ///
    /// # Errors
    ///
    /// [`InitdataError::PolicyHashNotSha256`] for `sha384`/`sha512` documents: their digest does
    /// not fit the 32-byte key the manifest admits.
    pub fn policy_hash(&self) -> Result<[u8; 32], InitdataError> {
        match self.algorithm {
            Algorithm::Sha256 => Ok(crate::sha256(&self.raw)),
            other => Err(InitdataError::PolicyHashNotSha256 {
                algorithm: other,
                len: other.digest_len(),
            }),
        }
    }

    /// Decodes a pod annotation value: base64 (Go `StdEncoding` rules), gunzip, parse.
    ///
    /// # Errors
    ///
    /// [`InitdataError::Base64`], [`InitdataError::Gzip`], [`InitdataError::TooLarge`] for
    /// output above [`MAX_DOCUMENT_SIZE`], or any [`Initdata::parse`] error.
    pub fn from_annotation(value: &str) -> Result<Self, InitdataError> {
        let compressed =
            crate::gocompat::decode_std_base64(value).map_err(|e| InitdataError::Base64 {
                message: e.to_string(),
            })?;
        Self::parse(gunzip(&compressed)?)
    }

    /// Encodes the raw bytes as a pod annotation value: `base64(gzip(raw))`, deterministic.
    ///
    /// # Errors
    ///
    /// [`InitdataError::Compress`] if the gzip encoder fails.
    pub fn to_annotation(&self) -> Result<String, InitdataError> {
        Ok(base64::engine::general_purpose::STANDARD.encode(gzip(&self.raw)?))
    }

    /// Reads a document from an initdata device image (see the module docs for the layout).
    /// Padding after the gzip blob may be truncated or absent.
    ///
    /// # Errors
    ///
    /// [`InitdataError::MagicTruncated`], [`InitdataError::BadMagic`],
    /// [`InitdataError::LengthFieldTruncated`], [`InitdataError::DeviceLengthTooLarge`],
    /// [`InitdataError::ImageTruncated`], then any gunzip or [`Initdata::parse`] error.
    pub fn from_device(image: &[u8], magic: &[u8; 8]) -> Result<Self, InitdataError> {
        let (found_magic, rest) = image
            .split_first_chunk::<8>()
            .ok_or(InitdataError::MagicTruncated { found: image.len() })?;
        if found_magic != magic {
            return Err(InitdataError::BadMagic {
                expected: *magic,
                found: *found_magic,
            });
        }
        let (length_field, rest) = rest
            .split_first_chunk::<8>()
            .ok_or(InitdataError::LengthFieldTruncated { found: rest.len() })?;
        let length = u64::from_le_bytes(*length_field);
        if length > MAX_COMPRESSED_SIZE {
            return Err(InitdataError::DeviceLengthTooLarge {
                length,
                limit: MAX_COMPRESSED_SIZE,
            });
        }
        let truncated = || InitdataError::ImageTruncated {
            needed: length.saturating_add(DEVICE_HEADER_LEN as u64),
            found: image.len() as u64,
        };
        let blob = usize::try_from(length)
            .ok()
            .and_then(|len| rest.get(..len))
            .ok_or_else(truncated)?;
        Self::parse(gunzip(blob)?)
    }

    /// Builds a device image: `magic ‖ u64le(len(gzip)) ‖ gzip(raw)`, zero-padded to a multiple
    /// of 512 bytes (no padding if already aligned). Deterministic.
    ///
    /// # Errors
    ///
    /// [`InitdataError::Compress`] if the gzip encoder fails.
    pub fn to_device(&self, magic: &[u8; 8]) -> Result<Vec<u8>, InitdataError> {
        let compressed = gzip(&self.raw)?;
        let unpadded = DEVICE_HEADER_LEN + compressed.len();
        let padded = unpadded.div_ceil(DEVICE_SECTOR_SIZE) * DEVICE_SECTOR_SIZE;
        let mut image = Vec::with_capacity(padded);
        image.extend_from_slice(magic);
        image.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
        image.extend_from_slice(&compressed);
        image.resize(padded, 0);
        Ok(image)
    }
}

impl fmt::Debug for Initdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initdata")
            .field("algorithm", &self.algorithm)
            .field("raw_len", &self.raw.len())
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A required top-level string field.
fn string_field<'a>(table: &'a toml::Table, field: &'static str) -> Result<&'a str, InitdataError> {
    match table.get(field) {
        None => Err(InitdataError::MissingField { field }),
        Some(toml::Value::String(s)) => Ok(s),
        Some(other) => Err(InitdataError::FieldNotString {
            field,
            found: other.type_str(),
        }),
    }
}

/// Deterministic gzip: one member with mtime 0, no file name, OS 255, deflate level 6.
fn gzip(input: &[u8]) -> Result<Vec<u8>, InitdataError> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(
            Vec::with_capacity(input.len() / 2 + 64),
            Compression::new(DEFLATE_LEVEL),
        );
    encoder
        .write_all(input)
        .and_then(|()| encoder.finish())
        .map_err(|e| InitdataError::Compress {
            message: e.to_string(),
        })
}

/// Multistream gunzip that stops at [`MAX_DOCUMENT_SIZE`] (see the module docs).
fn gunzip(input: &[u8]) -> Result<Vec<u8>, InitdataError> {
    // One byte past the limit is enough to tell "too large" from "exactly at the limit".
    let limit = MAX_DOCUMENT_SIZE as u64 + 1;
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(64 * 1024));
    MultiGzDecoder::new(input)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| InitdataError::Gzip {
            message: e.to_string(),
        })?;
    if out.len() > MAX_DOCUMENT_SIZE {
        return Err(InitdataError::TooLarge {
            limit: MAX_DOCUMENT_SIZE,
        });
    }
    Ok(out)
}
