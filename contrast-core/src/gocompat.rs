//! The Go `encoding/json` and `encoding/base64` behaviour that upstream's formats depend on,
//! shared by every module that reads or writes one of them.
//!
//! - [`marshal_indent`]: what `json.MarshalIndent(v, "", "  ")` writes. The types' `Serialize`
//!   implementations give Go's field order and `omitempty` behaviour; serde_json's pretty printer
//!   gives Go's indentation (`{}`/`[]` for empty containers, `": "` after keys); the formatter here
//!   adds Go's HTML-safe escaping. serde_json already escapes control characters the way Go
//!   (1.22 and later) does: `\b \f \n \r \t` short, the rest as lowercase `\u00XX`.
//! - [`fold_field_name`]: Go's case folding of object keys when matching struct fields.
//! - [`decode_std_base64`]: Go's `base64.StdEncoding` decoder, as used for `[]byte` in JSON.

use std::io;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

/// Go's `base64.StdEncoding` for decoding: standard alphabet, padding required, unused trailing
/// bits ignored.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decodes like Go's `base64.StdEncoding.DecodeString`, which skips `\r` and `\n` anywhere.
pub(crate) fn decode_std_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if text.contains(['\r', '\n']) {
        let cleaned: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        GO_STD_BASE64.decode(cleaned)
    } else {
        GO_STD_BASE64.decode(text)
    }
}

/// Go's case folding of object keys (`encoding/json` `foldName`): ASCII letters to upper case,
/// other characters to `ToUpper(ToLower(c))`. Field names are ASCII, so only the non-ASCII
/// characters that fold to ASCII matter: `ſ` → `S`, Kelvin sign → `K`, `ı` and `İ` → `I`.
pub(crate) fn fold_field_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\u{017f}' => 'S',
            '\u{212a}' => 'K',
            '\u{0131}' | '\u{0130}' => 'I',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Whether the JSON object key `key` selects the struct field `field` under Go's rules (exact
/// match or case-folded match).
pub(crate) fn field_name_matches(key: &str, field: &str) -> bool {
    key == field || fold_field_name(key) == fold_field_name(field)
}

/// serde_json's two-space pretty printer, plus Go's escaping of `<`, `>`, `&`, U+2028, U+2029.
struct GoFormatter {
    pretty: PrettyFormatter<'static>,
}

impl GoFormatter {
    fn new() -> Self {
        Self {
            pretty: PrettyFormatter::with_indent(b"  "),
        }
    }
}

/// Go's replacement for a character it escapes even though JSON does not require it.
fn go_extra_escape(c: char) -> Option<&'static str> {
    match c {
        '<' => Some("\\u003c"),
        '>' => Some("\\u003e"),
        '&' => Some("\\u0026"),
        '\u{2028}' => Some("\\u2028"),
        '\u{2029}' => Some("\\u2029"),
        _ => None,
    }
}

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c, escape)) = rest
            .char_indices()
            .find_map(|(at, c)| go_extra_escape(c).map(|e| (at, c, e)))
        {
            let (before, after) = rest.split_at(at);
            writer.write_all(before.as_bytes())?;
            writer.write_all(escape.as_bytes())?;
            rest = after.get(c.len_utf8()..).unwrap_or_default();
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_object_key(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(writer)
    }
}

/// Serialises `value` with Go's `MarshalIndent(v, "", "  ")` layout and escaping (no trailing
/// newline; callers that write files add what upstream adds).
pub(crate) fn marshal_indent<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter::new());
    value.serialize(&mut serializer)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let out = marshal_indent(&"a<b>&c\u{2028}\u{2029}\"\\\n\u{1}\u{8}\u{c}\u{7f}/é").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\\"\\\\\\n\\u0001\\b\\f\u{7f}/é\""
        );
    }

    #[test]
    fn decodes_base64_like_go() {
        assert_eq!(decode_std_base64("aGVs\r\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_std_base64("aGVsbG9=").unwrap(), b"hello"); // non-zero trailing bits
        assert!(decode_std_base64("aGVsbG8").is_err()); // padding required
    }

    #[test]
    fn folds_field_names_like_go() {
        assert!(field_name_matches("policies", "Policies"));
        assert!(field_name_matches("\u{17f}ANs", "SANs"));
        assert!(field_name_matches("\u{212a}ey", "Key"));
        assert!(!field_name_matches("Policy", "Policies"));
    }

    #[test]
    fn indents_like_go() {
        let value = serde_json::json!({"a": [], "b": {}, "c": [1, {"d": null}]});
        let out = marshal_indent(&value).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": null\n    }\n  ]\n}"
        );
    }
}
