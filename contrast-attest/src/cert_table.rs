//! The extended-report certificate table (GHCB spec #56421; `SNP_GET_EXT_REPORT`, configfs-tsm
//! `auxblob`): 24-byte entries `GUID ‖ offset (u32 LE) ‖ length (u32 LE)` up to an all-zero
//! entry, offsets counted from the start of the table, the data after the entries. The one
//! parser of it: the verifier reads collateral from it ([`crate::collateral::CollateralSource`]),
//! and `contrast-tee` reads the host's table with it.

/// GUIDs of the extended-report certificate table (byte order as written in the table); public
/// as [`CertTableEntry`].
pub(crate) mod guid {
    /// VCEK: 63da758d-e664-4564-adc5-f4b93be8accd.
    pub(crate) const VCEK: [u8; 16] = hex_literal("63da758de6644564adc5f4b93be8accd");
    /// VLEK: a8074bc2-a25a-483e-aae6-39c045a0b8a1.
    pub(crate) const VLEK: [u8; 16] = hex_literal("a8074bc2a25a483eaae639c045a0b8a1");
    /// ASK or ASVK: 4ab7b379-bbac-4fe4-a02f-05aef327c782.
    pub(crate) const ASK: [u8; 16] = hex_literal("4ab7b379bbac4fe4a02f05aef327c782");
    /// ARK: c0b406a4-a803-4952-9743-3fb6014cd0ae.
    pub(crate) const ARK: [u8; 16] = hex_literal("c0b406a4a803495297433fb6014cd0ae");
    /// CRL (DER), contrast's key for the CRL in the certificate chain extras:
    /// 00569ee4-e480-4fba-bbf4-45b629901180.
    pub(crate) const CRL: [u8; 16] = hex_literal("00569ee4e4804fbabbf445b629901180");

    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0,
        }
    }

    const fn hex_literal(s: &str) -> [u8; 16] {
        let bytes = s.as_bytes();
        let mut out = [0u8; 16];
        let (mut i, mut n) = (0, 0);
        while i < bytes.len() && n < 32 {
            if bytes[i] != b' ' {
                let v = nibble(bytes[i]);
                out[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
                n += 1;
            }
            i += 1;
        }
        out
    }

    /// What the entry with `guid` holds (`"unknown"` for other GUIDs).
    pub(crate) fn name(guid: &[u8; 16]) -> &'static str {
        match *guid {
            VCEK => "vcek",
            VLEK => "vlek",
            ASK => "ask/asvk",
            ARK => "ark",
            CRL => "crl",
            _ => "unknown",
        }
    }

    /// Whether `guid` is one of the entries above.
    pub(crate) fn is_known(guid: &[u8; 16]) -> bool {
        name(guid) != "unknown"
    }

    /// `guid` in the RFC 4122 text form, e.g. `63da758d-e664-4564-adc5-f4b93be8accd`.
    pub(crate) fn text(guid: &[u8; 16]) -> String {
        let h = hex::encode(guid);
        let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default();
        format!(
            "{}-{}-{}-{}-{}",
            part(0..8),
            part(8..12),
            part(12..16),
            part(16..20),
            part(20..32)
        )
    }
}

/// An entry of the certificate table, by what it holds; its GUID is [`CertTableEntry::guid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertTableEntry {
    /// The VCEK: 63da758d-e664-4564-adc5-f4b93be8accd.
    Vcek,
    /// The VLEK: a8074bc2-a25a-483e-aae6-39c045a0b8a1.
    Vlek,
    /// The ASK or ASVK: 4ab7b379-bbac-4fe4-a02f-05aef327c782.
    Ask,
    /// The ARK: c0b406a4-a803-4952-9743-3fb6014cd0ae.
    Ark,
    /// The CRL (DER), contrast's key for the CRL in the certificate chain extras:
    /// 00569ee4-e480-4fba-bbf4-45b629901180.
    Crl,
}

impl CertTableEntry {
    /// The entry's GUID, in the byte order written in the table.
    #[must_use]
    pub const fn guid(self) -> [u8; 16] {
        match self {
            Self::Vcek => guid::VCEK,
            Self::Vlek => guid::VLEK,
            Self::Ask => guid::ASK,
            Self::Ark => guid::ARK,
            Self::Crl => guid::CRL,
        }
    }
}

/// One table entry: GUID (16 bytes), offset and length (u32 little endian, from the table
/// start).
pub(crate) const CERT_TABLE_ENTRY_LEN: usize = 24;

/// Why a certificate table was rejected. The table is host data, so every offset and length is
/// checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertTableError {
    /// The table ends before its all-zero terminating entry.
    #[error(
        "certificate table of {table_len} bytes has no terminating all-zero entry (entry {index} at offset {offset} is cut off)"
    )]
    Unterminated {
        /// Index of the entry that does not fit.
        index: usize,
        /// Its byte offset.
        offset: usize,
        /// The table's length.
        table_len: usize,
    },
    /// An entry's data lies (partly) outside the table.
    #[error(
        "certificate table entry {guid} points at bytes {offset}..{offset}+{length}, outside the {table_len}-byte table"
    )]
    OutOfBounds {
        /// The entry's GUID.
        guid: String,
        /// Its data offset.
        offset: u32,
        /// Its data length.
        length: u32,
        /// The table's length.
        table_len: usize,
    },
    /// An entry's data overlaps the entry headers.
    #[error(
        "certificate table entry {guid} data at offset {offset} overlaps the entry headers, which end at {headers_end}"
    )]
    OverlapsHeaders {
        /// The entry's GUID.
        guid: String,
        /// Its data offset.
        offset: u32,
        /// Where the headers (terminator included) end.
        headers_end: usize,
    },
    /// A known entry with no data.
    #[error("certificate table entry {guid} ({what}) is empty")]
    Empty {
        /// The entry's GUID.
        guid: String,
        /// What the entry is.
        what: &'static str,
    },
    /// A GUID appears twice.
    #[error("certificate table has entry {guid} ({what}) twice")]
    Duplicate {
        /// The GUID.
        guid: String,
        /// What the entry is.
        what: &'static str,
    },
    /// Both a VCEK and a VLEK.
    #[error("certificate table has both a vcek and a vlek; expected one leaf certificate")]
    VcekAndVlek,
}

/// A parsed extended-report certificate table, borrowing the certificate bytes (unverified).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertTable<'a> {
    entries: Vec<([u8; 16], &'a [u8])>,
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.iter_mut().zip(bytes).for_each(|(w, b)| *w = *b);
    u32::from_le_bytes(word)
}

impl<'a> CertTable<'a> {
    /// Parses the table: entries up to an all-zero entry; every entry's data inside `bytes` and
    /// after the entries; no GUID twice; no known entry empty; not both a VCEK and a VLEK.
    /// Unknown GUIDs are kept (and checked) but name nothing.
    ///
    /// # Errors
    /// [`CertTableError`] naming the entry and the failed check.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CertTableError> {
        let mut headers = Vec::new();
        let mut index = 0usize;
        let headers_end = loop {
            let offset = index.saturating_mul(CERT_TABLE_ENTRY_LEN);
            let Some(entry) = bytes.get(offset..offset.saturating_add(CERT_TABLE_ENTRY_LEN)) else {
                return Err(CertTableError::Unterminated {
                    index,
                    offset,
                    table_len: bytes.len(),
                });
            };
            let (guid_bytes, rest) = entry.split_at(16);
            let mut guid = [0u8; 16];
            guid.copy_from_slice(guid_bytes);
            if guid == [0u8; 16] {
                break offset + CERT_TABLE_ENTRY_LEN;
            }
            let (data_offset, data_len) = rest.split_at(4);
            headers.push((guid, le_u32(data_offset), le_u32(data_len)));
            index += 1;
        };
        let mut entries: Vec<([u8; 16], &'a [u8])> = Vec::with_capacity(headers.len());
        for (guid, offset, length) in headers {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let end = start.checked_add(usize::try_from(length).unwrap_or(usize::MAX));
            let data = end.and_then(|end| bytes.get(start..end)).ok_or_else(|| {
                CertTableError::OutOfBounds {
                    guid: guid::text(&guid),
                    offset,
                    length,
                    table_len: bytes.len(),
                }
            })?;
            if entries.iter().any(|(g, _)| *g == guid) {
                return Err(CertTableError::Duplicate {
                    guid: guid::text(&guid),
                    what: guid::name(&guid),
                });
            }
            if length == 0 && guid::is_known(&guid) {
                return Err(CertTableError::Empty {
                    guid: guid::text(&guid),
                    what: guid::name(&guid),
                });
            }
            if start < headers_end {
                return Err(CertTableError::OverlapsHeaders {
                    guid: guid::text(&guid),
                    offset,
                    headers_end,
                });
            }
            entries.push((guid, data));
        }
        let table = Self { entries };
        if table.get(&guid::VCEK).is_some() && table.get(&guid::VLEK).is_some() {
            return Err(CertTableError::VcekAndVlek);
        }
        Ok(table)
    }

    /// Encodes a table of `entries` (GUID, data) as a host writes it: the entries, the all-zero
    /// terminator, then the data packed in entry order. The inverse of [`CertTable::parse`],
    /// for tests and for anything that hands a table on. Offsets and lengths beyond `u32` (a
    /// table over 4 GiB) saturate, and such a table does not parse back.
    #[must_use]
    pub fn encode(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        let headers = (entries.len() + 1) * CERT_TABLE_ENTRY_LEN;
        let mut out = Vec::new();
        let mut data = Vec::new();
        for (guid, bytes) in entries {
            let offset = u32::try_from(headers + data.len()).unwrap_or(u32::MAX);
            let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(guid);
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&length.to_le_bytes());
            data.extend_from_slice(bytes);
        }
        out.extend_from_slice(&[0; CERT_TABLE_ENTRY_LEN]);
        out.extend_from_slice(&data);
        out
    }

    /// The data of the entry with `guid`.
    #[must_use]
    pub fn get(&self, guid: &[u8; 16]) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|(g, _)| g == guid)
            .map(|(_, d)| *d)
    }

    /// All entries in table order.
    #[must_use]
    pub fn entries(&self) -> &[([u8; 16], &'a [u8])] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        CertTable::encode(entries)
    }

    fn set_entry(table: &mut [u8], index: usize, offset: u32, length: u32) {
        let at = index * CERT_TABLE_ENTRY_LEN + 16;
        table[at..at + 4].copy_from_slice(&offset.to_le_bytes());
        table[at + 4..at + 8].copy_from_slice(&length.to_le_bytes());
    }

    #[test]
    fn certificate_table_round_trip_keeps_unknown_guids_apart() {
        let other = [0x11; 16];
        let bytes = table(&[
            (guid::VCEK, b"vcek"),
            (other, b"extra platform info"),
            (guid::ASK, b"ask"),
            (guid::ARK, b"ark"),
            (guid::CRL, b"crl"),
        ]);
        let parsed = CertTable::parse(&bytes).unwrap();
        assert_eq!(parsed.get(&guid::VCEK), Some(&b"vcek"[..]));
        assert_eq!(parsed.get(&guid::VLEK), None);
        assert_eq!(parsed.get(&guid::ASK), Some(&b"ask"[..]));
        assert_eq!(parsed.get(&guid::ARK), Some(&b"ark"[..]));
        assert_eq!(parsed.get(&guid::CRL), Some(&b"crl"[..]));
        assert_eq!(parsed.get(&other), Some(&b"extra platform info"[..]));
        assert_eq!(parsed.entries().len(), 5);
        assert_eq!(
            CertTable::parse(&[0; CERT_TABLE_ENTRY_LEN]).unwrap(),
            CertTable::default()
        );
        assert_eq!(
            guid::text(&guid::VCEK),
            "63da758d-e664-4564-adc5-f4b93be8accd"
        );
    }

    #[test]
    fn encode_writes_the_host_layout() {
        let mut expected = guid::ARK.to_vec();
        expected.extend_from_slice(&48u32.to_le_bytes());
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.extend_from_slice(&[0; CERT_TABLE_ENTRY_LEN]);
        expected.extend_from_slice(b"ab");
        assert_eq!(CertTable::encode(&[(guid::ARK, b"ab")]), expected);
    }

    #[test]
    fn certificate_table_without_terminator_is_rejected() {
        let mut bytes = table(&[(guid::VCEK, b"vcek")]);
        bytes.truncate(CERT_TABLE_ENTRY_LEN + 10);
        assert_eq!(
            CertTable::parse(&bytes),
            Err(CertTableError::Unterminated {
                index: 1,
                offset: CERT_TABLE_ENTRY_LEN,
                table_len: CERT_TABLE_ENTRY_LEN + 10,
            })
        );
        assert!(matches!(
            CertTable::parse(&[0; 5]),
            Err(CertTableError::Unterminated { index: 0, .. })
        ));
        assert!(matches!(
            CertTable::parse(&[]),
            Err(CertTableError::Unterminated { index: 0, .. })
        ));
    }

    #[test]
    fn certificate_table_entry_outside_the_table_is_rejected() {
        let mut bytes = table(&[(guid::VCEK, b"vcek")]);
        let len = bytes.len();
        set_entry(&mut bytes, 0, 48, 5);
        assert_eq!(
            CertTable::parse(&bytes),
            Err(CertTableError::OutOfBounds {
                guid: "63da758d-e664-4564-adc5-f4b93be8accd".into(),
                offset: 48,
                length: 5,
                table_len: len,
            })
        );
        // offset + length overflows u32 and usize arithmetic must not wrap.
        set_entry(&mut bytes, 0, u32::MAX, u32::MAX);
        assert!(matches!(
            CertTable::parse(&bytes),
            Err(CertTableError::OutOfBounds {
                offset: u32::MAX,
                ..
            })
        ));
    }

    #[test]
    fn certificate_table_entry_overlapping_the_headers_is_rejected() {
        let mut bytes = table(&[(guid::ARK, b"ark-certificate-bytes")]);
        set_entry(&mut bytes, 0, 8, 4);
        assert_eq!(
            CertTable::parse(&bytes),
            Err(CertTableError::OverlapsHeaders {
                guid: "c0b406a4-a803-4952-9743-3fb6014cd0ae".into(),
                offset: 8,
                headers_end: 2 * CERT_TABLE_ENTRY_LEN,
            })
        );
        // Unknown entries too: nothing may point into the headers.
        let mut bytes = table(&[([0x11; 16], b"extra")]);
        set_entry(&mut bytes, 0, 0, 4);
        assert!(matches!(
            CertTable::parse(&bytes),
            Err(CertTableError::OverlapsHeaders { offset: 0, .. })
        ));
    }

    #[test]
    fn certificate_table_empty_known_entry_is_rejected() {
        let bytes = table(&[(guid::ASK, b"")]);
        assert_eq!(
            CertTable::parse(&bytes),
            Err(CertTableError::Empty {
                guid: "4ab7b379-bbac-4fe4-a02f-05aef327c782".into(),
                what: "ask/asvk",
            })
        );
    }

    #[test]
    fn certificate_table_duplicate_guid_is_rejected() {
        let bytes = table(&[(guid::VCEK, b"one"), (guid::VCEK, b"two")]);
        assert_eq!(
            CertTable::parse(&bytes),
            Err(CertTableError::Duplicate {
                guid: "63da758d-e664-4564-adc5-f4b93be8accd".into(),
                what: "vcek",
            })
        );
    }

    #[test]
    fn certificate_table_with_vcek_and_vlek_is_rejected() {
        let bytes = table(&[(guid::VCEK, b"vcek"), (guid::VLEK, b"vlek")]);
        assert_eq!(CertTable::parse(&bytes), Err(CertTableError::VcekAndVlek));
    }
}
