#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The header check against real headers written by `cryptsetup` (tests/fixtures, see
//! make-fixtures.sh there) and a mutation per checked field.

use contrast_luks::{Deviation, ExpectedLayout, HeaderCopy, HeaderError, Luks2Header, check};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const NO_INTEGRITY: &[u8] = include_bytes!("fixtures/no-integrity.luks2");
const INTEGRITY: &[u8] = include_bytes!("fixtures/integrity.luks2");
const HDR: usize = 16 << 10;

fn paths(deviations: &[Deviation]) -> Vec<&str> {
    deviations.iter().map(|d| d.path.as_str()).collect()
}

/// Recomputes the checksum of the copy at `offset`.
fn reseal(bytes: &mut [u8], offset: usize) {
    bytes[offset + 448..offset + 512].fill(0);
    let sum = Sha256::digest(&bytes[offset..offset + HDR]);
    bytes[offset + 448..offset + 480].copy_from_slice(&sum);
}

fn json_of(bytes: &[u8]) -> Value {
    let area = &bytes[4096..HDR];
    let end = area.iter().position(|&b| b == 0).unwrap();
    serde_json::from_slice(&area[..end]).unwrap()
}

/// Writes `text` as the JSON area of both copies and reseals them.
fn with_json_text(base: &[u8], text: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for offset in [0, HDR] {
        let area = &mut bytes[offset + 4096..offset + HDR];
        area.fill(0);
        area[..text.len()].copy_from_slice(text);
        reseal(&mut bytes, offset);
    }
    bytes
}

/// The integrity fixture with its metadata edited by `edit`, both copies resealed.
fn mutated(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut meta = json_of(INTEGRITY);
    edit(&mut meta);
    with_json_text(INTEGRITY, &serde_json::to_vec(&meta).unwrap())
}

/// The deviations of a mutated integrity fixture against upstream's layout.
fn deviations(edit: impl FnOnce(&mut Value)) -> Vec<Deviation> {
    let header = Luks2Header::parse(&mutated(edit)).unwrap();
    check(&header, &ExpectedLayout::upstream()).unwrap_err()
}

fn only(deviations: &[Deviation]) -> &Deviation {
    assert_eq!(deviations.len(), 1, "{deviations:#?}");
    &deviations[0]
}

#[test]
fn real_header_parses_both_copies() {
    let header = Luks2Header::parse(NO_INTEGRITY).unwrap();
    assert_eq!(header.primary.version, 2);
    assert_eq!(header.primary.hdr_size, 16384);
    assert_eq!(header.primary.hdr_offset, 0);
    assert_eq!(header.primary.checksum_alg, "sha256");
    assert_eq!(header.primary.uuid.len(), 36);
    let secondary = header.secondary.as_ref().unwrap();
    assert_eq!(secondary.hdr_offset, 16384);
    assert_eq!(secondary.seqid, header.primary.seqid);
    assert_eq!(header.metadata.keyslots.len(), 1);
    assert_eq!(
        header.metadata.segments["0"].encryption.as_deref(),
        Some("aes-xts-plain64")
    );
    // The primary copy alone is enough.
    let alone = Luks2Header::parse(&NO_INTEGRITY[..HDR]).unwrap();
    assert!(alone.secondary.is_none());
    assert_eq!(alone.metadata, header.metadata);
}

#[test]
fn real_header_without_integrity_is_refused_for_integrity_only() {
    let header = Luks2Header::parse(NO_INTEGRITY).unwrap();
    let deviations = check(&header, &ExpectedLayout::upstream()).unwrap_err();
    // Without integrity there is no HMAC key: the volume key is 64 bytes, not 96.
    assert_eq!(
        paths(&deviations),
        ["keyslots.0.key_size", "segments.0.integrity.type"]
    );
    assert_eq!(
        deviations[1].to_string(),
        "segments.0.integrity.type: expected \"hmac(sha256)\", found none"
    );
    assert_eq!(
        deviations[0].to_string(),
        "keyslots.0.key_size: expected 96, found 64"
    );
    // ... and it is what a layout without integrity expects.
    let mut plain = ExpectedLayout::upstream();
    plain.integrity = None;
    plain.keyslot_key_size = 64;
    check(&header, &plain).unwrap();
}

#[test]
fn integrity_fixture_passes_upstream_layout() {
    let header = Luks2Header::parse(INTEGRITY).unwrap();
    assert!(header.secondary.is_some());
    check(&header, &ExpectedLayout::upstream()).unwrap();
    check(&header, &ExpectedLayout::default()).unwrap();
}

#[test]
fn weaker_segment_cipher_is_refused() {
    for cipher in ["aes-cbc-essiv:sha256", "cipher_null-ecb", "aes-xts-plain"] {
        let d = deviations(|m| m["segments"]["0"]["encryption"] = json!(cipher));
        assert_eq!(
            only(&d).to_string(),
            format!("segments.0.encryption: expected \"aes-xts-plain64\", found \"{cipher}\"")
        );
    }
}

#[test]
fn keyslot_area_cipher_is_checked() {
    let d = deviations(|m| m["keyslots"]["0"]["area"]["encryption"] = json!("cipher_null-ecb"));
    assert_eq!(only(&d).path, "keyslots.0.area.encryption");
    let d = deviations(|m| m["keyslots"]["0"]["area"]["key_size"] = json!(32));
    assert_eq!(
        only(&d).to_string(),
        "keyslots.0.area.key_size: expected 64, found 32"
    );
    let d = deviations(|m| m["keyslots"]["0"]["area"]["type"] = json!("datashift"));
    assert_eq!(only(&d).path, "keyslots.0.area.type");
}

#[test]
fn integrity_removed_or_weakened_is_refused() {
    let d = deviations(|m| {
        m["segments"]["0"]
            .as_object_mut()
            .unwrap()
            .remove("integrity");
    });
    assert_eq!(
        only(&d).to_string(),
        "segments.0.integrity.type: expected \"hmac(sha256)\", found none"
    );
    let d = deviations(|m| m["segments"]["0"]["integrity"]["type"] = json!("crc32c"));
    assert_eq!(
        only(&d).to_string(),
        "segments.0.integrity.type: expected \"hmac(sha256)\", found \"crc32c\""
    );
    let d = deviations(|m| {
        m["segments"]["0"]["integrity"]["journal_integrity"] = json!("crc32");
    });
    assert_eq!(only(&d).path, "segments.0.integrity.journal_integrity");
    let d = deviations(|m| {
        m["segments"]["0"]["integrity"]["journal_encryption"] = json!("cbc(aes)");
    });
    assert_eq!(only(&d).path, "segments.0.integrity.journal_encryption");
    let d = deviations(|m| m["segments"]["0"]["integrity"]["extra"] = json!(1));
    assert_eq!(
        only(&d).to_string(),
        "segments.0.integrity.extra: expected none, found 1"
    );
}

#[test]
fn key_size_change_is_refused() {
    let d = deviations(|m| m["keyslots"]["0"]["key_size"] = json!(64));
    assert_eq!(
        only(&d).to_string(),
        "keyslots.0.key_size: expected 96, found 64"
    );
}

#[test]
fn extra_keyslot_is_refused() {
    let d = deviations(|m| {
        let slot = m["keyslots"]["0"].clone();
        m["keyslots"]["1"] = slot;
    });
    assert_eq!(paths(&d), ["keyslots", "keyslots.1"]);
    assert_eq!(d[0].to_string(), "keyslots: expected exactly 1, found 2");
}

#[test]
fn keyslot_zero_missing_is_refused() {
    let d = deviations(|m| {
        let slot = m["keyslots"].as_object_mut().unwrap().remove("0").unwrap();
        m["keyslots"]["3"] = slot;
    });
    assert_eq!(paths(&d), ["keyslots.3", "keyslots.0"]);
}

#[test]
fn token_is_refused() {
    let d = deviations(|m| {
        m["tokens"]["0"] =
            json!({"type": "luks2-keyring", "keyslots": ["0"], "key_description": "x"});
    });
    assert_eq!(only(&d).to_string(), "tokens: expected none, found 1");
}

#[test]
fn other_kdf_is_refused() {
    let d = deviations(|m| {
        m["keyslots"]["0"]["kdf"] = json!({
            "type": "pbkdf2", "hash": "sha256", "iterations": 1000,
            "salt": "Z2pRvMu8cNydt8p9DUkl/DJ7AufLFvTHS//iUOTaeg8="
        });
    });
    assert_eq!(
        paths(&d),
        [
            "keyslots.0.kdf.type",
            "keyslots.0.kdf.time",
            "keyslots.0.kdf.memory",
            "keyslots.0.kdf.cpus",
            "keyslots.0.kdf.hash",
            "keyslots.0.kdf.iterations",
        ]
    );
    assert_eq!(
        d[0].to_string(),
        "keyslots.0.kdf.type: expected \"argon2id\", found \"pbkdf2\""
    );
    let d = deviations(|m| m["keyslots"]["0"]["kdf"]["type"] = json!("argon2i"));
    assert_eq!(only(&d).path, "keyslots.0.kdf.type");
    let d = deviations(|m| {
        m["keyslots"]["0"]["kdf"]
            .as_object_mut()
            .unwrap()
            .remove("salt");
    });
    assert_eq!(
        only(&d).to_string(),
        "keyslots.0.kdf.salt: expected a salt, found none"
    );
}

#[test]
fn anti_forensic_splitter_is_checked() {
    let d = deviations(|m| m["keyslots"]["0"]["af"]["stripes"] = json!(1));
    assert_eq!(
        only(&d).to_string(),
        "keyslots.0.af.stripes: expected 4000, found 1"
    );
    let d = deviations(|m| m["keyslots"]["0"]["af"]["hash"] = json!("sha1"));
    assert_eq!(only(&d).path, "keyslots.0.af.hash");
    let d = deviations(|m| m["keyslots"]["0"]["af"]["type"] = json!("luks2"));
    assert_eq!(only(&d).path, "keyslots.0.af.type");
}

#[test]
fn keyslot_type_and_priority_are_checked() {
    let d = deviations(|m| m["keyslots"]["0"]["type"] = json!("reencrypt"));
    assert_eq!(only(&d).path, "keyslots.0.type");
    let d = deviations(|m| m["keyslots"]["0"]["priority"] = json!(2));
    assert_eq!(
        only(&d).to_string(),
        "keyslots.0.priority: expected none, found 2"
    );
}

#[test]
fn second_segment_is_refused() {
    let d = deviations(|m| {
        let seg = m["segments"]["0"].clone();
        m["segments"]["1"] = seg;
    });
    assert_eq!(paths(&d), ["segments", "segments.1"]);
    assert_eq!(d[0].to_string(), "segments: expected exactly 1, found 2");
}

#[test]
fn segment_type_flags_and_iv_tweak_are_checked() {
    let d = deviations(|m| m["segments"]["0"]["type"] = json!("linear"));
    assert_eq!(
        only(&d).to_string(),
        "segments.0.type: expected \"crypt\", found \"linear\""
    );
    let d = deviations(|m| m["segments"]["0"]["flags"] = json!(["backup-previous"]));
    assert_eq!(
        only(&d).to_string(),
        "segments.0.flags: expected none, found [\"backup-previous\"]"
    );
    // An empty list of flags is no flag.
    let header = Luks2Header::parse(&mutated(|m| m["segments"]["0"]["flags"] = json!([]))).unwrap();
    check(&header, &ExpectedLayout::upstream()).unwrap();
    let d = deviations(|m| m["segments"]["0"]["iv_tweak"] = json!("8"));
    assert_eq!(
        only(&d).to_string(),
        "segments.0.iv_tweak: expected \"0\", found \"8\""
    );
    let d = deviations(|m| m["segments"]["0"]["size"] = json!("4096"));
    assert_eq!(only(&d).path, "segments.0.size");
}

#[test]
fn sector_size_is_checked() {
    let d = deviations(|m| m["segments"]["0"]["sector_size"] = json!(512));
    assert_eq!(
        only(&d).to_string(),
        "segments.0.sector_size: expected 4096, found 512"
    );
}

#[test]
fn digest_must_link_keyslot_zero_and_segment_zero() {
    let d = deviations(|m| m["digests"]["0"]["keyslots"] = json!([]));
    assert_eq!(
        only(&d).to_string(),
        "digests.0.keyslots: expected [\"0\"], found []"
    );
    let d = deviations(|m| m["digests"]["0"]["segments"] = json!(["0", "1"]));
    assert_eq!(only(&d).path, "digests.0.segments");
    let d = deviations(|m| {
        m["digests"]["0"]
            .as_object_mut()
            .unwrap()
            .remove("segments");
    });
    assert_eq!(
        only(&d).to_string(),
        "digests.0.segments: expected [\"0\"], found none"
    );
    let d = deviations(|m| m["digests"]["0"]["hash"] = json!("sha1"));
    assert_eq!(only(&d).path, "digests.0.hash");
    let d = deviations(|m| m["digests"]["0"]["type"] = json!("argon2"));
    assert_eq!(only(&d).path, "digests.0.type");
    let d = deviations(|m| {
        let dig = m["digests"]["0"].clone();
        m["digests"]["1"] = dig;
    });
    assert_eq!(paths(&d), ["digests", "digests.1"]);
}

#[test]
fn config_flags_requirements_and_unknown_fields_are_refused() {
    let d = deviations(|m| m["config"]["flags"] = json!(["allow-discards"]));
    assert_eq!(only(&d).path, "config.flags");
    let d =
        deviations(|m| m["config"]["requirements"] = json!({"mandatory": ["online-reencrypt"]}));
    assert_eq!(only(&d).path, "config.requirements");
    let d = deviations(|m| m["future"] = json!({}));
    assert_eq!(only(&d).to_string(), "future: expected none, found {}");
    let d = deviations(|m| m["keyslots"]["0"]["cipher_hint"] = json!("x"));
    assert_eq!(only(&d).path, "keyslots.0.cipher_hint");
}

#[test]
fn every_deviation_is_reported_together() {
    let d = deviations(|m| {
        m["segments"]["0"]["encryption"] = json!("cipher_null-ecb");
        m["tokens"]["0"] = json!({"type": "x"});
        m["keyslots"]["0"]["key_size"] = json!(32);
    });
    assert_eq!(
        paths(&d),
        ["keyslots.0.key_size", "segments.0.encryption", "tokens"]
    );
}

// Binary header and JSON-area structure.

#[test]
fn bad_magic_is_refused() {
    let mut bytes = INTEGRITY.to_vec();
    bytes[0] = b'X';
    reseal(&mut bytes, 0);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Field {
                copy: HeaderCopy::Primary,
                field: "magic",
                ..
            }
        ),
        "{err}"
    );
    let mut bytes = INTEGRITY.to_vec();
    bytes[HDR..HDR + 6].copy_from_slice(b"LUKS\xba\xbe");
    reseal(&mut bytes, HDR);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Field {
                copy: HeaderCopy::Secondary,
                field: "magic",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn version_one_is_refused() {
    let mut bytes = INTEGRITY.to_vec();
    bytes[6..8].copy_from_slice(&1u16.to_be_bytes());
    reseal(&mut bytes, 0);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "primary header: version: expected 2, found 1"
    );
}

#[test]
fn wrong_checksum_is_refused() {
    for at in [20, 300, 448, 5000, HDR - 1] {
        let mut bytes = INTEGRITY.to_vec();
        bytes[at] ^= 1;
        let err = Luks2Header::parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                HeaderError::Checksum {
                    copy: HeaderCopy::Primary,
                    ..
                }
            ),
            "{at}: {err}"
        );
    }
    let mut bytes = INTEGRITY.to_vec();
    bytes[HDR + 5000] ^= 1;
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Checksum {
                copy: HeaderCopy::Secondary,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn other_checksum_algorithm_is_refused() {
    let mut bytes = INTEGRITY.to_vec();
    bytes[72..78].copy_from_slice(b"sha512");
    reseal(&mut bytes, 0);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Field {
                field: "checksum_alg",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn hdr_size_outside_the_allowed_sizes_is_refused() {
    for size in [0u64, 4096, 16383, 20 << 10, 8 << 20, u64::MAX] {
        let mut bytes = INTEGRITY.to_vec();
        bytes[8..16].copy_from_slice(&size.to_be_bytes());
        let err = Luks2Header::parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                HeaderError::Field {
                    field: "hdr_size",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn truncated_input_is_refused() {
    for len in [0, 5, 4095, 4096, HDR - 1] {
        let err = Luks2Header::parse(&INTEGRITY[..len]).unwrap_err();
        assert!(matches!(err, HeaderError::Truncated { .. }), "{len}: {err}");
    }
    // A partial secondary copy is not read.
    let header = Luks2Header::parse(&INTEGRITY[..2 * HDR - 1]).unwrap();
    assert!(header.secondary.is_none());
}

#[test]
fn disagreeing_secondary_is_refused() {
    // Another seqid.
    let mut bytes = INTEGRITY.to_vec();
    bytes[HDR + 16..HDR + 24].copy_from_slice(&7u64.to_be_bytes());
    reseal(&mut bytes, HDR);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(err, HeaderError::Disagree { field: "seqid", .. }),
        "{err}"
    );
    // Another uuid.
    let mut bytes = INTEGRITY.to_vec();
    bytes[HDR + 168] = b'0';
    reseal(&mut bytes, HDR);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(err, HeaderError::Disagree { field: "uuid", .. }),
        "{err}"
    );
    // Other metadata: the weak secondary's JSON, valid on its own.
    let weak = mutated(|m| m["segments"]["0"]["encryption"] = json!("cipher_null-ecb"));
    let mut bytes = INTEGRITY.to_vec();
    bytes[HDR..].copy_from_slice(&weak[HDR..]);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Disagree {
                field: "JSON area",
                ..
            }
        ),
        "{err}"
    );
    // Wrong hdr_offset in the secondary.
    let mut bytes = INTEGRITY.to_vec();
    bytes[HDR + 256..HDR + 264].copy_from_slice(&0u64.to_be_bytes());
    reseal(&mut bytes, HDR);
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::Field {
                field: "hdr_offset",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn json_area_structure_is_enforced() {
    // Garbage after the JSON text's NUL.
    let mut bytes = INTEGRITY.to_vec();
    bytes[HDR - 10] = b'x';
    reseal(&mut bytes, 0);
    let err = Luks2Header::parse(&bytes[..HDR]).unwrap_err();
    assert!(matches!(err, HeaderError::JsonArea { .. }), "{err}");
    // No NUL at all.
    let mut bytes = INTEGRITY.to_vec();
    bytes[4096..HDR].fill(b' ');
    reseal(&mut bytes, 0);
    let err = Luks2Header::parse(&bytes[..HDR]).unwrap_err();
    assert!(matches!(err, HeaderError::JsonArea { .. }), "{err}");
    // Not JSON, not LUKS2 metadata.
    for text in [&b"{"[..], b"[]", b"{}", b"null", br#"{"keyslots":{}}"#] {
        let err = Luks2Header::parse(&with_json_text(INTEGRITY, text)).unwrap_err();
        assert!(matches!(err, HeaderError::Json { .. }), "{err}");
    }
}

#[test]
fn duplicate_json_keys_are_refused() {
    let text = serde_json::to_string(&json_of(INTEGRITY)).unwrap();
    let doubled = text.replacen(
        "\"tokens\":{}",
        "\"tokens\":{},\"tokens\":{\"0\":{\"type\":\"x\"}}",
        1,
    );
    assert_ne!(text, doubled);
    let err = Luks2Header::parse(&with_json_text(INTEGRITY, doubled.as_bytes())).unwrap_err();
    assert!(
        err.to_string().contains("duplicate key \"tokens\""),
        "{err}"
    );
}

#[test]
fn ids_counts_and_json_size_are_enforced() {
    let bytes = mutated(|m| {
        let slot = m["keyslots"]["0"].clone();
        m["keyslots"]["00"] = slot;
    });
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "primary header: keyslots.00: expected a decimal id, found \"00\""
    );
    let bytes = mutated(|m| {
        for i in 0..33 {
            m["tokens"][i.to_string()] = json!({});
        }
    });
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(err, HeaderError::Metadata { ref field, .. } if field == "tokens"),
        "{err}"
    );
    let bytes = mutated(|m| m["config"]["json_size"] = json!("4096"));
    let err = Luks2Header::parse(&bytes).unwrap_err();
    assert!(
        matches!(err, HeaderError::Metadata { ref field, .. } if field == "config.json_size"),
        "{err}"
    );
}

#[test]
fn found_values_are_clipped() {
    let d = deviations(|m| m["segments"]["0"]["encryption"] = json!("x".repeat(5000)));
    assert!(only(&d).found.len() < 300);
}

#[test]
fn no_byte_mutation_of_the_json_panics() {
    // Every byte of the JSON text replaced by a few structural characters, resealed so the
    // checksum passes: parse and check return, whatever they decide.
    let area = &INTEGRITY[4096..HDR];
    let text = &area[..area.iter().position(|&b| b == 0).unwrap()];
    let mut accepted = 0;
    for at in 0..text.len() {
        for byte in [b'"', b'}', b'0', b'\\', 0xff] {
            let mut json = text.to_vec();
            json[at] = byte;
            let bytes = with_json_text(INTEGRITY, &json);
            if let Ok(header) = Luks2Header::parse(&bytes[..HDR])
                && check(&header, &ExpectedLayout::upstream()).is_ok()
            {
                accepted += 1;
            }
        }
    }
    // Only edits inside base64 salts and digests, or the area offset, keep the layout intact.
    assert!(accepted > 0);
}
