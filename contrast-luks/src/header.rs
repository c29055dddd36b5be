//! The LUKS2 binary header and its JSON area.
//!
//! Layout (LUKS2 on-disk format, all integers big-endian), verified against headers written by
//! `cryptsetup luksFormat`:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 6 | magic: `LUKS\xba\xbe` (primary), `SKUL\xba\xbe` (secondary) |
//! | 6 | 2 | version (2) |
//! | 8 | 8 | hdr_size: binary header + JSON area |
//! | 16 | 8 | seqid |
//! | 24 | 48 | label (NUL-terminated) |
//! | 72 | 32 | checksum_alg (`sha256`) |
//! | 104 | 64 | salt |
//! | 168 | 40 | uuid |
//! | 208 | 48 | subsystem |
//! | 256 | 8 | hdr_offset: this copy's offset on the device |
//! | 264 | 184 | padding |
//! | 448 | 64 | checksum over hdr_size bytes with this field zeroed |
//! | 512 | 3584 | padding |
//! | 4096 | hdr_size − 4096 | JSON area: the JSON text, then NUL bytes |

use std::collections::HashSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use sha2::{Digest as _, Sha256};

use crate::error::{HeaderCopy, HeaderError};
use crate::metadata::Metadata;

/// Size of the binary part of a header copy.
pub const BINARY_HEADER_SIZE: usize = 4096;
/// The header sizes (binary header + JSON area) the LUKS2 format allows: 16 KiB to 4 MiB.
pub const ALLOWED_HDR_SIZES: [u64; 9] = [
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
];
/// At most this many keyslots (and, separately, tokens, segments, digests): LUKS2's limit.
pub const MAX_OBJECTS: usize = 32;

const PRIMARY_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
const SECONDARY_MAGIC: &[u8; 6] = b"SKUL\xba\xbe";
const CHECKSUM_OFFSET: usize = 448;
const CHECKSUM_LEN: usize = 64;

/// The fields of one binary header copy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BinaryHeader {
    /// Format version (always 2 once parsed).
    pub version: u16,
    /// Size of binary header plus JSON area, one of [`ALLOWED_HDR_SIZES`].
    pub hdr_size: u64,
    /// Sequence id, incremented on every metadata update.
    pub seqid: u64,
    /// The label.
    pub label: String,
    /// The checksum algorithm (always `sha256` once parsed).
    pub checksum_alg: String,
    /// The per-copy salt.
    pub salt: [u8; 64],
    /// The UUID.
    pub uuid: String,
    /// The subsystem.
    pub subsystem: String,
    /// This copy's offset on the device.
    pub hdr_offset: u64,
    /// The stored (and verified) SHA-256 checksum.
    pub checksum: [u8; 32],
}

/// A LUKS2 header whose structure and checksums are valid; no policy applied yet (see
/// [`check`](crate::check)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Luks2Header {
    /// The primary binary header.
    pub primary: BinaryHeader,
    /// The secondary binary header, if the bytes reach that far (it then agrees with the
    /// primary: same size, seqid, uuid and JSON area).
    pub secondary: Option<BinaryHeader>,
    /// The JSON metadata.
    pub metadata: Metadata,
    /// The JSON text (without the NUL padding).
    pub json: String,
}

impl Luks2Header {
    /// Parses the primary header from the start of `bytes` and, if `bytes` holds at least
    /// `2 × hdr_size` bytes, the secondary one after it, which must agree.
    ///
    /// Checks: magic, version 2, `hdr_size` one of [`ALLOWED_HDR_SIZES`], `checksum_alg`
    /// `sha256` and the checksum, `hdr_offset` (0, or `hdr_size` for the secondary), the JSON
    /// area (NUL-terminated, NUL-padded, no duplicate keys, the LUKS2 object structure, decimal
    /// ids, at most [`MAX_OBJECTS`] of each kind, `config.json_size` = the area's size).
    ///
    /// # Errors
    ///
    /// [`HeaderError`] naming the copy and the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let (primary, json, metadata) = parse_copy(bytes, HeaderCopy::Primary)?;
        let hdr_size = primary.hdr_size;
        let secondary = match usize::try_from(hdr_size) {
            Ok(size) if bytes.len() / 2 >= size => {
                let (secondary, secondary_json, _) =
                    parse_copy(&bytes[size..], HeaderCopy::Secondary)?;
                agree(&primary, &secondary, &json, &secondary_json)?;
                Some(secondary)
            }
            _ => None,
        };
        Ok(Self {
            primary,
            secondary,
            metadata,
            json,
        })
    }
}

fn agree(
    primary: &BinaryHeader,
    secondary: &BinaryHeader,
    json: &str,
    secondary_json: &str,
) -> Result<(), HeaderError> {
    let disagree = |field, primary: String, secondary: String| HeaderError::Disagree {
        field,
        primary,
        secondary,
    };
    if primary.hdr_size != secondary.hdr_size {
        return Err(disagree(
            "hdr_size",
            primary.hdr_size.to_string(),
            secondary.hdr_size.to_string(),
        ));
    }
    if primary.seqid != secondary.seqid {
        return Err(disagree(
            "seqid",
            primary.seqid.to_string(),
            secondary.seqid.to_string(),
        ));
    }
    if primary.uuid != secondary.uuid {
        return Err(disagree(
            "uuid",
            format!("{:?}", primary.uuid),
            format!("{:?}", secondary.uuid),
        ));
    }
    if primary.label != secondary.label {
        return Err(disagree(
            "label",
            format!("{:?}", primary.label),
            format!("{:?}", secondary.label),
        ));
    }
    if primary.subsystem != secondary.subsystem {
        return Err(disagree(
            "subsystem",
            format!("{:?}", primary.subsystem),
            format!("{:?}", secondary.subsystem),
        ));
    }
    if json != secondary_json {
        return Err(disagree(
            "JSON area",
            format!("{} bytes of JSON", json.len()),
            format!("{} different bytes of JSON", secondary_json.len()),
        ));
    }
    Ok(())
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(buf)
}

fn field_err(copy: HeaderCopy, field: &'static str, expected: &str, found: String) -> HeaderError {
    HeaderError::Field {
        copy,
        field,
        expected: expected.to_owned(),
        found,
    }
}

/// A NUL-terminated string field: UTF-8 before the first NUL, only NULs after it.
fn c_string(copy: HeaderCopy, field: &'static str, bytes: &[u8]) -> Result<String, HeaderError> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if end == bytes.len() || bytes[end..].iter().any(|&b| b != 0) {
        return Err(field_err(
            copy,
            field,
            "a NUL-terminated, NUL-padded string",
            format!("{:?}", String::from_utf8_lossy(bytes)),
        ));
    }
    String::from_utf8(bytes[..end].to_vec()).map_err(|_| {
        field_err(
            copy,
            field,
            "UTF-8",
            format!("{:?}", String::from_utf8_lossy(&bytes[..end])),
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_copy(
    bytes: &[u8],
    copy: HeaderCopy,
) -> Result<(BinaryHeader, String, Metadata), HeaderError> {
    if bytes.len() < BINARY_HEADER_SIZE {
        return Err(HeaderError::Truncated {
            copy,
            field: "binary header",
            expected: BINARY_HEADER_SIZE as u64,
            found: bytes.len() as u64,
        });
    }
    let magic = match copy {
        HeaderCopy::Primary => PRIMARY_MAGIC,
        HeaderCopy::Secondary => SECONDARY_MAGIC,
    };
    if &bytes[..6] != magic {
        return Err(field_err(
            copy,
            "magic",
            &format!("\"{}\"", magic.escape_ascii()),
            format!("\"{}\"", bytes[..6].escape_ascii()),
        ));
    }
    let version = u16::from_be_bytes([bytes[6], bytes[7]]);
    if version != 2 {
        return Err(field_err(copy, "version", "2", version.to_string()));
    }
    let hdr_size = be_u64(bytes, 8);
    if !ALLOWED_HDR_SIZES.contains(&hdr_size) {
        return Err(field_err(
            copy,
            "hdr_size",
            "16 KiB, 32 KiB, ... or 4 MiB",
            hdr_size.to_string(),
        ));
    }
    // hdr_size is at most 4 MiB (checked above), so it fits in usize.
    let size = usize::try_from(hdr_size).unwrap_or(usize::MAX);
    if bytes.len() < size {
        return Err(HeaderError::Truncated {
            copy,
            field: "hdr_size",
            expected: hdr_size,
            found: bytes.len() as u64,
        });
    }
    let checksum_alg = c_string(copy, "checksum_alg", &bytes[72..104])?;
    if checksum_alg != "sha256" {
        return Err(field_err(
            copy,
            "checksum_alg",
            "\"sha256\"",
            format!("{checksum_alg:?}"),
        ));
    }
    let stored = &bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + CHECKSUM_LEN];
    let mut hasher = Sha256::new();
    hasher.update(&bytes[..CHECKSUM_OFFSET]);
    hasher.update([0u8; CHECKSUM_LEN]);
    hasher.update(&bytes[CHECKSUM_OFFSET + CHECKSUM_LEN..size]);
    let computed: [u8; 32] = hasher.finalize().into();
    if stored[..32] != computed || stored[32..].iter().any(|&b| b != 0) {
        return Err(HeaderError::Checksum {
            copy,
            expected: hex(&computed),
            found: hex(stored),
        });
    }
    let hdr_offset = be_u64(bytes, 256);
    let expected_offset = match copy {
        HeaderCopy::Primary => 0,
        HeaderCopy::Secondary => hdr_size,
    };
    if hdr_offset != expected_offset {
        return Err(field_err(
            copy,
            "hdr_offset",
            &expected_offset.to_string(),
            hdr_offset.to_string(),
        ));
    }
    let mut salt = [0; 64];
    salt.copy_from_slice(&bytes[104..168]);
    let mut checksum = [0; 32];
    checksum.copy_from_slice(&stored[..32]);
    let header = BinaryHeader {
        version,
        hdr_size,
        seqid: be_u64(bytes, 16),
        label: c_string(copy, "label", &bytes[24..72])?,
        checksum_alg,
        salt,
        uuid: c_string(copy, "uuid", &bytes[168..208])?,
        subsystem: c_string(copy, "subsystem", &bytes[208..256])?,
        hdr_offset,
        checksum,
    };
    let (json, metadata) = parse_json_area(copy, &bytes[BINARY_HEADER_SIZE..size])?;
    Ok((header, json, metadata))
}

fn parse_json_area(copy: HeaderCopy, area: &[u8]) -> Result<(String, Metadata), HeaderError> {
    let area_err = |reason: String| HeaderError::JsonArea { copy, reason };
    let Some(end) = area.iter().position(|&b| b == 0) else {
        return Err(area_err("no NUL after the JSON text".to_owned()));
    };
    if let Some(at) = area[end..].iter().position(|&b| b != 0) {
        return Err(area_err(format!(
            "a non-NUL byte in the padding at offset {}",
            BINARY_HEADER_SIZE + end + at
        )));
    }
    let text = std::str::from_utf8(&area[..end])
        .map_err(|e| area_err(format!("the JSON text is not UTF-8: {e}")))?;
    let json_err = |e: serde_json::Error| HeaderError::Json {
        copy,
        reason: e.to_string(),
    };
    // Duplicate keys would let two readers see two different headers: refused outright.
    let mut deserializer = serde_json::Deserializer::from_str(text);
    NoDuplicateKeys
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(json_err)?;
    let metadata: Metadata = serde_json::from_str(text).map_err(json_err)?;
    structure(copy, &metadata, area.len())?;
    Ok((text.to_owned(), metadata))
}

/// LUKS2's structural rules that do not depend on Contrast's layout.
fn structure(copy: HeaderCopy, metadata: &Metadata, area_len: usize) -> Result<(), HeaderError> {
    let meta_err = |field: String, expected: &str, found: String| HeaderError::Metadata {
        copy,
        field,
        expected: expected.to_owned(),
        found,
    };
    let sections: [(&str, Vec<&String>); 4] = [
        ("keyslots", metadata.keyslots.keys().collect()),
        ("tokens", metadata.tokens.keys().collect()),
        ("segments", metadata.segments.keys().collect()),
        ("digests", metadata.digests.keys().collect()),
    ];
    for (name, ids) in sections {
        if ids.len() > MAX_OBJECTS {
            return Err(meta_err(
                name.to_owned(),
                &format!("at most {MAX_OBJECTS} entries"),
                ids.len().to_string(),
            ));
        }
        for id in ids {
            if !is_decimal_id(id) {
                return Err(meta_err(
                    format!("{name}.{id}"),
                    "a decimal id",
                    format!("{id:?}"),
                ));
            }
        }
    }
    let area_size = area_len.to_string();
    match &metadata.config.json_size {
        Some(size) if *size == area_size => Ok(()),
        found => Err(meta_err(
            "config.json_size".to_owned(),
            &format!("{area_size:?} (the JSON area's size)"),
            found
                .as_ref()
                .map_or_else(|| "none".to_owned(), |s| format!("{s:?}")),
        )),
    }
}

fn is_decimal_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 10
        && id.bytes().all(|b| b.is_ascii_digit())
        && (id == "0" || !id.starts_with('0'))
}

/// Walks any JSON value and fails on an object with the same key twice.
struct NoDuplicateKeys;

impl<'de> DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicateKeys)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            map.next_value_seed(NoDuplicateKeys)?;
        }
        Ok(())
    }
}
