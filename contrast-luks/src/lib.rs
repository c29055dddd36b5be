//! The LUKS2 header check of contrast-rs: before the initializer opens an untrusted block
//! device, its LUKS2 header must be exactly what Contrast formats. The host controls the
//! device and can rewrite the header (its checksum is not keyed): a header with a weaker
//! cipher, no integrity, an extra keyslot or a token still opens with the workload secret, so
//! it is refused here, with every difference named.
//!
//! Pure: bytes in, verdict out.
//!
//! 1. [`Luks2Header::parse`] reads the primary binary header (magic, version 2, `hdr_size`,
//!    SHA-256 checksum, offsets) and its JSON area into typed structs ([`metadata`]), keeping
//!    unknown fields; if the bytes also hold the secondary header, it must be valid and agree.
//! 2. [`check`] compares the metadata with an [`ExpectedLayout`] (by default upstream
//!    Contrast's: one argon2id keyslot of a 96-byte key, one `aes-xts-plain64` segment with
//!    `hmac(sha256)` integrity and 4096-byte sectors, one PBKDF2-SHA256 digest linking the two,
//!    no tokens) and returns every [`Deviation`] as path, expected and found.
//!
//! 3. [`cryptsetup`] spells the `cryptsetup` command lines that format, back up and open such a
//!    volume, and its device-mapper name.
//!
//! ```
//! # fn example(device_start: &[u8]) -> Result<(), String> {
//! use contrast_luks::{check, ExpectedLayout, Luks2Header};
//!
//! let header = Luks2Header::parse(device_start).map_err(|e| e.to_string())?;
//! check(&header, &ExpectedLayout::upstream()).map_err(|deviations| {
//!     deviations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
//! })
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod cryptsetup;
mod error;
mod header;
pub mod metadata;
mod policy;

pub use error::{HeaderCopy, HeaderError};
pub use header::{ALLOWED_HDR_SIZES, BINARY_HEADER_SIZE, BinaryHeader, Luks2Header, MAX_OBJECTS};
pub use policy::{Deviation, ExpectedIntegrity, ExpectedLayout, check};
