//! The contrast-rs SEV-SNP attestation document: a report and its collateral, self-contained.
//!
//! Upstream Contrast puts the protobuf of go-sev-guest's `sevsnp.Attestation` under OID
//! `1.3.9901.2.1`. Until that encoding is reproduced byte for byte, contrast-rs uses its own
//! format under its own OIDs ([`super::SNP_DOCUMENT_OID`], [`super::SIMULATED_SNP_DOCUMENT_OID`]),
//! so a document is never mistaken for upstream's.
//!
//! # Format (version 1)
//!
//! ```text
//! magic   4 bytes  "CRAD" (43 52 41 44)
//! version 1 byte   0x01
//! entries until the end: tag (1 byte) ‖ length (4 bytes, big endian) ‖ value (length bytes)
//! ```
//!
//! | tag | entry | value | |
//! |---|---|---|---|
//! | 0x01 | report | the 1184-byte `ATTESTATION_REPORT` | required |
//! | 0x02 | VCEK | DER certificate | exactly one of VCEK, VLEK |
//! | 0x03 | VLEK | DER certificate | |
//! | 0x04 | ASK | DER certificate (with a VCEK only) | optional |
//! | 0x05 | ASVK | DER certificate (with a VLEK only) | optional |
//! | 0x06 | ARK | DER certificate | optional |
//! | 0x07 | CRL | DER CRL signed by the ARK | optional |
//!
//! The parser is strict: tags strictly increasing (so each at most once, in one canonical
//! order), no unknown tags, no empty values, no bytes after the last entry, lengths within the
//! input. Absent intermediates and ARKs let an AMD trust anchor use its compiled-in copies; the
//! certificates are only ever *presented* here, trust comes from the verifier's anchor.

use std::borrow::Cow;

use super::error::{DocumentError, Hex};
use crate::chain::LeafKind;
use crate::collateral::{CollateralRequest, CollateralSource};

/// The magic at the start of every document.
pub(super) const MAGIC: [u8; 4] = *b"CRAD";
/// The format version this module writes and reads.
pub(super) const VERSION: u8 = 1;
use crate::report::REPORT_LEN;

const TAG_REPORT: u8 = 0x01;
const TAG_VCEK: u8 = 0x02;
const TAG_VLEK: u8 = 0x03;
const TAG_ASK: u8 = 0x04;
const TAG_ASVK: u8 = 0x05;
const TAG_ARK: u8 = 0x06;
const TAG_CRL: u8 = 0x07;

fn tag_name(tag: u8) -> &'static str {
    match tag {
        TAG_REPORT => "report",
        TAG_VCEK => "vcek",
        TAG_VLEK => "vlek",
        TAG_ASK => "ask",
        TAG_ASVK => "asvk",
        TAG_ARK => "ark",
        TAG_CRL => "crl",
        _ => "unknown",
    }
}

/// A parsed (or to-be-encoded) SEV-SNP attestation document, borrowing its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpDocument<'a> {
    /// The 1184-byte report (unverified).
    pub report: &'a [u8],
    /// Whether the leaf is a VCEK or a VLEK.
    pub leaf_kind: LeafKind,
    /// The VCEK or VLEK (DER).
    pub leaf: &'a [u8],
    /// The ASK (with a VCEK) or ASVK (with a VLEK), if carried.
    pub intermediate: Option<&'a [u8]>,
    /// The ARK, if carried.
    pub ark: Option<&'a [u8]>,
    /// The ARK-signed CRL, if carried.
    pub crl: Option<&'a [u8]>,
}

impl<'a> SnpDocument<'a> {
    /// Parses a version-1 document (see the module docs).
    ///
    /// # Errors
    /// The [`DocumentError`] of the first violation.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DocumentError> {
        let (magic, rest) = split(bytes, 0, 4, "the magic")?;
        if magic != MAGIC {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(DocumentError::BadMagic {
                expected: Hex(MAGIC),
                found: Hex(found),
            });
        }
        let (version, mut rest) = split(rest, 4, 1, "the version")?;
        let version = version.first().copied().unwrap_or_default();
        if version != VERSION {
            return Err(DocumentError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let mut entries: [Option<&'a [u8]>; 8] = [None; 8];
        let mut previous = 0u8;
        let mut offset = 5usize;
        while !rest.is_empty() {
            let (header, after) = split(rest, offset, 5, "an entry header")?;
            let (tag, len) = match header {
                [tag, a, b, c, d] => (*tag, u32::from_be_bytes([*a, *b, *c, *d])),
                _ => (0, 0),
            };
            if !(TAG_REPORT..=TAG_CRL).contains(&tag) {
                return Err(DocumentError::UnknownTag { tag, offset });
            }
            if tag <= previous {
                return Err(DocumentError::TagOrder {
                    tag,
                    previous,
                    offset,
                });
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let (value, after) = split(after, offset + 5, len, tag_name(tag))?;
            if value.is_empty() {
                return Err(DocumentError::EmptyEntry {
                    field: tag_name(tag),
                });
            }
            if let Some(slot) = entries.get_mut(usize::from(tag)) {
                *slot = Some(value);
            }
            previous = tag;
            offset += 5 + len;
            rest = after;
        }
        let get = |tag: u8| entries.get(usize::from(tag)).copied().flatten();
        let report = get(TAG_REPORT).ok_or(DocumentError::Missing { field: "report" })?;
        if report.len() != REPORT_LEN {
            return Err(DocumentError::ReportLength {
                found: report.len(),
                expected: REPORT_LEN,
            });
        }
        let (leaf_kind, leaf) = match (get(TAG_VCEK), get(TAG_VLEK)) {
            (Some(vcek), None) => (LeafKind::Vcek, vcek),
            (None, Some(vlek)) => (LeafKind::Vlek, vlek),
            (Some(_), Some(_)) => {
                return Err(DocumentError::Conflict {
                    first: "vcek",
                    second: "vlek",
                });
            }
            (None, None) => {
                return Err(DocumentError::Missing {
                    field: "vcek or vlek",
                });
            }
        };
        let intermediate = match (leaf_kind, get(TAG_ASK), get(TAG_ASVK)) {
            (_, Some(_), Some(_)) => {
                return Err(DocumentError::Conflict {
                    first: "ask",
                    second: "asvk",
                });
            }
            (LeafKind::Vcek, _, Some(_)) => {
                return Err(DocumentError::Conflict {
                    first: "vcek",
                    second: "asvk",
                });
            }
            (LeafKind::Vlek, Some(_), _) => {
                return Err(DocumentError::Conflict {
                    first: "vlek",
                    second: "ask",
                });
            }
            (LeafKind::Vcek, ask, None) => ask,
            (LeafKind::Vlek, None, asvk) => asvk,
        };
        Ok(Self {
            report,
            leaf_kind,
            leaf,
            intermediate,
            ark: get(TAG_ARK),
            crl: get(TAG_CRL),
        })
    }

    /// Encodes the document (version 1). Empty optional values are left out.
    ///
    /// # Errors
    /// [`DocumentError::ReportLength`] if the report is not 1184 bytes,
    /// [`DocumentError::EmptyEntry`] if the leaf is empty, [`DocumentError::EntryTooLong`] for a
    /// value of 4 GiB or more.
    pub fn encode(&self) -> Result<Vec<u8>, DocumentError> {
        if self.report.len() != REPORT_LEN {
            return Err(DocumentError::ReportLength {
                found: self.report.len(),
                expected: REPORT_LEN,
            });
        }
        if self.leaf.is_empty() {
            return Err(DocumentError::EmptyEntry { field: "leaf" });
        }
        let (leaf_tag, intermediate_tag) = match self.leaf_kind {
            LeafKind::Vcek => (TAG_VCEK, TAG_ASK),
            LeafKind::Vlek => (TAG_VLEK, TAG_ASVK),
        };
        let entries = [
            (TAG_REPORT, Some(self.report)),
            (leaf_tag, Some(self.leaf)),
            (intermediate_tag, self.intermediate),
            (TAG_ARK, self.ark),
            (TAG_CRL, self.crl),
        ];
        let mut out = Vec::with_capacity(
            5 + entries
                .iter()
                .map(|(_, v)| v.map_or(0, |v| 5 + v.len()))
                .sum::<usize>(),
        );
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        for (tag, value) in entries {
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let len = u32::try_from(value.len()).map_err(|_| DocumentError::EntryTooLong {
                field: tag_name(tag),
                len: value.len(),
            })?;
            out.push(tag);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(value);
        }
        Ok(out)
    }

    /// REPORT_DATA of the (unverified) report: bytes 0x50..0x90.
    #[must_use]
    pub fn report_data(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        if let Some(field) = self.report.get(0x50..0x90) {
            out.copy_from_slice(field);
        }
        out
    }
}

fn split<'a>(
    bytes: &'a [u8],
    offset: usize,
    need: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DocumentError> {
    bytes
        .split_at_checked(need)
        .ok_or(DocumentError::Truncated {
            offset,
            what,
            need,
            have: bytes.len(),
        })
}

/// The document presents its own collateral; a verifier still decides trust by its anchor.
impl CollateralSource for SnpDocument<'_> {
    fn leaf(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        (request.leaf_kind == self.leaf_kind).then_some(Cow::Borrowed(self.leaf))
    }
    fn intermediate(&self, request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        if request.leaf_kind == self.leaf_kind {
            self.intermediate.map(Cow::Borrowed)
        } else {
            None
        }
    }
    fn ark(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.ark.map(Cow::Borrowed)
    }
    fn crl(&self, _request: &CollateralRequest<'_>) -> Option<Cow<'_, [u8]>> {
        self.crl.map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Vec<u8> {
        SnpDocument {
            report: &[7u8; REPORT_LEN],
            leaf_kind: LeafKind::Vcek,
            leaf: b"vcek",
            intermediate: Some(b"ask"),
            ark: Some(b"ark"),
            crl: None,
        }
        .encode()
        .unwrap()
    }

    fn entry(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn doc(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"CRAD\x01".to_vec();
        for e in entries {
            out.extend_from_slice(e);
        }
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let bytes = sample();
        assert_eq!(&bytes[..5], b"CRAD\x01");
        assert_eq!(&bytes[5..10], &[0x01, 0, 0, 0x04, 0xA0]);
        let parsed = SnpDocument::parse(&bytes).unwrap();
        assert_eq!(parsed.leaf, b"vcek");
        assert_eq!(parsed.intermediate, Some(&b"ask"[..]));
        assert_eq!(parsed.ark, Some(&b"ark"[..]));
        assert_eq!(parsed.crl, None);
        assert_eq!(parsed.encode().unwrap(), bytes);
        assert_eq!(parsed.report_data(), [7u8; 64]);
    }

    #[test]
    fn every_prefix_and_bit_flip_is_handled() {
        let bytes = sample();
        // A prefix parses only if it ends on an entry boundary (after the leaf), and then it is
        // a canonical document of its own.
        for end in 0..bytes.len() {
            if let Ok(parsed) = SnpDocument::parse(&bytes[..end]) {
                assert_eq!(parsed.encode().unwrap(), &bytes[..end], "prefix {end}");
            }
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x80;
            if let Ok(parsed) = SnpDocument::parse(&flipped) {
                assert_eq!(parsed.encode().unwrap(), flipped);
            }
        }
    }

    #[test]
    fn vlek_with_asvk() {
        let report = [1u8; REPORT_LEN];
        let bytes = doc(&[entry(1, &report), entry(3, b"vlek"), entry(5, b"asvk")]);
        let parsed = SnpDocument::parse(&bytes).unwrap();
        assert_eq!(parsed.leaf_kind, LeafKind::Vlek);
        assert_eq!(parsed.intermediate, Some(&b"asvk"[..]));
    }

    #[test]
    fn rejects_each_violation() {
        let report = [1u8; REPORT_LEN];
        let cases: Vec<(Vec<u8>, DocumentError)> = vec![
            (
                b"CRA".to_vec(),
                DocumentError::Truncated {
                    offset: 0,
                    what: "the magic",
                    need: 4,
                    have: 3,
                },
            ),
            (
                b"XRAD\x01".to_vec(),
                DocumentError::BadMagic {
                    expected: Hex(MAGIC),
                    found: Hex(*b"XRAD"),
                },
            ),
            (
                b"CRAD\x02".to_vec(),
                DocumentError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                },
            ),
            (
                doc(&[entry(1, &report), entry(8, b"x")]),
                DocumentError::UnknownTag {
                    tag: 8,
                    offset: 5 + 5 + REPORT_LEN,
                },
            ),
            (
                doc(&[entry(2, b"v"), entry(1, &report)]),
                DocumentError::TagOrder {
                    tag: 1,
                    previous: 2,
                    offset: 11,
                },
            ),
            (
                doc(&[entry(1, &report), entry(1, &report)]),
                DocumentError::TagOrder {
                    tag: 1,
                    previous: 1,
                    offset: 5 + 5 + REPORT_LEN,
                },
            ),
            (
                doc(&[entry(1, &report), entry(2, b"")]),
                DocumentError::EmptyEntry { field: "vcek" },
            ),
            (
                doc(&[entry(2, b"v")]),
                DocumentError::Missing { field: "report" },
            ),
            (
                doc(&[entry(1, &report[..100]), entry(2, b"v")]),
                DocumentError::ReportLength {
                    found: 100,
                    expected: REPORT_LEN,
                },
            ),
            (
                doc(&[entry(1, &report)]),
                DocumentError::Missing {
                    field: "vcek or vlek",
                },
            ),
            (
                doc(&[entry(1, &report), entry(2, b"v"), entry(3, b"v")]),
                DocumentError::Conflict {
                    first: "vcek",
                    second: "vlek",
                },
            ),
            (
                doc(&[entry(1, &report), entry(2, b"v"), entry(5, b"a")]),
                DocumentError::Conflict {
                    first: "vcek",
                    second: "asvk",
                },
            ),
            (
                doc(&[entry(1, &report), entry(3, b"v"), entry(4, b"a")]),
                DocumentError::Conflict {
                    first: "vlek",
                    second: "ask",
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(SnpDocument::parse(&bytes), Err(expected));
        }
        // A length beyond the input, and a header cut short.
        let mut long = doc(&[entry(1, &report)]);
        long[9] = 0xA1;
        assert!(matches!(
            SnpDocument::parse(&long),
            Err(DocumentError::Truncated {
                what: "report",
                need: 0x4A1,
                have: REPORT_LEN,
                ..
            })
        ));
        let mut cut = sample();
        cut.extend_from_slice(&[6, 0, 0]);
        assert!(matches!(
            SnpDocument::parse(&cut),
            Err(DocumentError::Truncated {
                what: "an entry header",
                need: 5,
                have: 3,
                ..
            })
        ));
    }
}
