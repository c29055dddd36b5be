//! Hex formatting for error messages: long values are abbreviated as `7a1e…841f`.

use std::fmt;

/// Displays bytes as lowercase hex; values longer than 8 bytes show the first and last 2 bytes.
pub(crate) struct Abbrev<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Abbrev<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if bytes.is_empty() {
            return f.write_str("(empty)");
        }
        if bytes.len() <= 8 {
            return f.write_str(&hex::encode(bytes));
        }
        let head = bytes.get(..2).unwrap_or_default();
        let tail = bytes.get(bytes.len() - 2..).unwrap_or_default();
        write!(f, "{}…{}", hex::encode(head), hex::encode(tail))
    }
}

/// Shorthand for [`Abbrev`].
pub(crate) fn abbrev(bytes: &[u8]) -> Abbrev<'_> {
    Abbrev(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviates_long_values() {
        assert_eq!(
            abbrev(&[0x7a, 0x1e, 1, 2, 3, 4, 5, 6, 0x84, 0x1f]).to_string(),
            "7a1e…841f"
        );
        assert_eq!(abbrev(&[1, 2, 3]).to_string(), "010203");
        assert_eq!(abbrev(&[]).to_string(), "(empty)");
    }
}
