//! Hex formatting for error messages: values are written in full, so that a value a refusal
//! names can be copied into a manifest or compared byte for byte.

use std::fmt;

/// Displays bytes as lowercase hex, every byte of them; empty values as `(empty)`.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(empty)");
        }
        f.write_str(&hex::encode(self.0))
    }
}

/// Shorthand for [`Hex`].
pub(crate) fn full_hex(bytes: &[u8]) -> Hex<'_> {
    Hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_byte() {
        let long: Vec<u8> = (0..48).collect();
        assert_eq!(full_hex(&long).to_string(), hex::encode(&long));
        assert_eq!(full_hex(&[1, 2, 3]).to_string(), "010203");
        assert_eq!(full_hex(&[]).to_string(), "(empty)");
    }
}
