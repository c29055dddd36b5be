//! Why a byte string is not a LUKS2 header this crate reads.

use std::fmt;

/// Which of the two header copies an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderCopy {
    /// The primary header at offset 0 (magic `LUKS\xba\xbe`).
    Primary,
    /// The secondary header at offset `hdr_size` (magic `SKUL\xba\xbe`).
    Secondary,
}

impl fmt::Display for HeaderCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderCopy::Primary => "primary header",
            HeaderCopy::Secondary => "secondary header",
        })
    }
}

/// The bytes are not a well-formed LUKS2 header (before any policy is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than the header needs.
    #[error("{copy}: truncated: {field} needs {expected} bytes, found {found}")]
    Truncated {
        /// The copy being read.
        copy: HeaderCopy,
        /// What was being read (`binary header`, `hdr_size`).
        field: &'static str,
        /// Bytes needed.
        expected: u64,
        /// Bytes available.
        found: u64,
    },
    /// A binary header field holds a value this reader refuses.
    #[error("{copy}: {field}: expected {expected}, found {found}")]
    Field {
        /// The copy being read.
        copy: HeaderCopy,
        /// The field (`magic`, `version`, `hdr_size`, `checksum_alg`, `hdr_offset`, ...).
        field: &'static str,
        /// What is accepted.
        expected: String,
        /// What the header holds.
        found: String,
    },
    /// The SHA-256 checksum over the header does not match the one stored in it.
    #[error("{copy}: checksum: expected {expected}, found {found}")]
    Checksum {
        /// The copy being read.
        copy: HeaderCopy,
        /// The checksum computed over the header (hex).
        expected: String,
        /// The checksum stored in the header (hex).
        found: String,
    },
    /// The JSON area is not NUL-terminated JSON followed by NUL padding.
    #[error("{copy}: JSON area: {reason}")]
    JsonArea {
        /// The copy being read.
        copy: HeaderCopy,
        /// What is wrong with it.
        reason: String,
    },
    /// The JSON text does not parse as LUKS2 metadata.
    #[error("{copy}: JSON metadata: {reason}")]
    Json {
        /// The copy being read.
        copy: HeaderCopy,
        /// serde_json's message (with line and column).
        reason: String,
    },
    /// The JSON metadata breaks a structural rule of LUKS2 (ids, counts, sizes).
    #[error("{copy}: {field}: expected {expected}, found {found}")]
    Metadata {
        /// The copy being read.
        copy: HeaderCopy,
        /// The JSON path.
        field: String,
        /// What is accepted.
        expected: String,
        /// What the metadata holds.
        found: String,
    },
    /// The secondary header does not agree with the primary one.
    #[error(
        "secondary header disagrees with the primary one: {field}: primary {primary}, secondary {secondary}"
    )]
    Disagree {
        /// The field (`seqid`, `uuid`, `hdr_size`, `JSON area`, ...).
        field: &'static str,
        /// The primary's value.
        primary: String,
        /// The secondary's value.
        secondary: String,
    },
}
