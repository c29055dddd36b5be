//! Lowercase hex strings, as Go's `hex.EncodeToString` writes them and `hex.DecodeString` reads
//! them (either case accepted on input).

use serde::{Deserialize, Deserializer, Serializer};

/// Why a hex string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// The string has an odd number of characters.
    #[error("odd number of hex characters ({len})")]
    OddLength {
        /// Number of characters found.
        len: usize,
    },
    /// A character is not a hex digit.
    #[error("invalid hex character {found:?} at offset {offset}")]
    InvalidCharacter {
        /// Offset of the character, in bytes.
        offset: usize,
        /// The character found.
        found: char,
    },
    /// The decoded value has the wrong length.
    #[error("expected {expected} bytes ({} hex characters), found {found} bytes", expected * 2)]
    WrongLength {
        /// Number of bytes expected.
        expected: usize,
        /// Number of bytes found.
        found: usize,
    },
}

/// Decodes hex of any length (upper or lower case).
pub fn decode(s: &str) -> Result<Vec<u8>, HexError> {
    hex::decode(s).map_err(|e| match e {
        hex::FromHexError::OddLength => HexError::OddLength { len: s.len() },
        hex::FromHexError::InvalidHexCharacter { c, index } => HexError::InvalidCharacter {
            offset: index,
            found: c,
        },
        // Only produced by the fixed-size decoders, which are not used here.
        hex::FromHexError::InvalidStringLength => HexError::OddLength { len: s.len() },
    })
}

/// Decodes hex of exactly `N` bytes.
pub fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let bytes = decode(s)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| HexError::WrongLength {
        expected: N,
        found: bytes.len(),
    })
}

/// Encodes bytes as lowercase hex.
#[must_use]
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// Serde adapter: a byte vector as a lowercase hex JSON string.
pub mod bytes {
    use super::{Deserialize, Deserializer, Serializer};

    /// Serializes as lowercase hex.
    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::encode(value))
    }

    /// Deserializes hex of any case.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::decode(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter: a fixed-size array as a lowercase hex JSON string.
pub mod array {
    use super::{Deserialize, Deserializer, Serializer};

    /// Serializes as lowercase hex.
    pub fn serialize<S: Serializer, const N: usize>(
        value: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::encode(value))
    }

    /// Deserializes hex of any case and exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::decode_array(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden vector M-hexstring.
    #[test]
    fn encodes_lowercase_and_round_trips() {
        for (bytes, text) in [
            (&[0x00][..], "00"),
            (&[0x01], "01"),
            (&[0x0f], "0f"),
            (&[0x10], "10"),
            (&[0x11], "11"),
            (&[0xff], "ff"),
            (&[0x00, 0x01], "0001"),
        ] {
            assert_eq!(encode(bytes), text);
            assert_eq!(decode(text).unwrap(), bytes);
            assert_eq!(decode(&text.to_uppercase()).unwrap(), bytes);
        }
    }

    #[test]
    fn rejects_bad_hex_with_position() {
        assert_eq!(decode("abc"), Err(HexError::OddLength { len: 3 }));
        assert_eq!(
            decode("zz"),
            Err(HexError::InvalidCharacter {
                offset: 0,
                found: 'z'
            })
        );
        assert_eq!(
            decode_array::<2>("aabbcc"),
            Err(HexError::WrongLength {
                expected: 2,
                found: 3
            })
        );
    }
}
