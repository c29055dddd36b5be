//! Tests for `contrast_core::initdata`: the behavioural vectors of upstream's
//! `internal/initdata/initdata_test.go` (contrast-formats.md §9.5), digests, annotation and
//! device encodings, Go-compatible gzip/base64 decoding, limits and proptests.

// Helpers outside `#[test]` functions unwrap too; `allow-*-in-tests` only covers test functions.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use contrast_core::initdata::{
    ANNOTATION_KEY, Algorithm, DEVICE_MAGIC, Initdata, InitdataError, MAX_COMPRESSED_SIZE,
    MAX_DOCUMENT_SIZE, VERSION,
};
use proptest::prelude::*;
use sha2::Digest as _;

const FIXTURE_DOCUMENT: &[u8] = include_bytes!("fixtures/initdata/document.toml");
const FIXTURE_DOCUMENT_SHA256: &str = include_str!("fixtures/initdata/document.sha256");
const FIXTURE_ANNOTATION: &str = include_str!("fixtures/initdata/annotation.b64");
const FIXTURE_ANNOTATION_FNAME: &str = include_str!("fixtures/initdata/annotation-with-fname.b64");
const FIXTURE_ANNOTATION_TWO_MEMBERS: &str =
    include_str!("fixtures/initdata/annotation-two-members.b64");
const FIXTURE_BOMB: &[u8] = include_bytes!("fixtures/initdata/bomb-100MiB-zeros.gz");

/// The document template of upstream's test: optional algorithm, optional version, optional data.
fn template(algorithm: &str, version: &str, data: bool) -> Vec<u8> {
    let mut doc = String::new();
    if !algorithm.is_empty() {
        doc.push_str(&format!("algorithm = \"{algorithm}\"\n"));
    }
    if !version.is_empty() {
        doc.push_str(&format!("version = \"{version}\"\n"));
    }
    if data {
        doc.push_str(
            "\n[data]\nsomekey = \"somevalue\"\n\"imagepuller.toml\" = '''\n\
             socket = 'unix:///run/guest-services/imagepuller.sock'\ncredentials = []\n'''\n",
        );
    }
    doc.into_bytes()
}

fn data(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Independent gzip (flate2's own encoder, non-zero mtime and a file name).
fn foreign_gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .filename("initdata.toml")
        .mtime(1_700_000_000)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn raw_deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// A gzip member with an explicit header (flags and optional fields) around `bytes`.
fn member_with_header(header: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut member = header.to_vec();
    member.extend_from_slice(&raw_deflate(bytes));
    member.extend_from_slice(&crc32(bytes).to_le_bytes());
    member.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    member
}

fn annotation_of(compressed: &[u8]) -> String {
    STANDARD.encode(compressed)
}

fn device_of(compressed: &[u8]) -> Vec<u8> {
    let mut image = DEVICE_MAGIC.to_vec();
    image.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    image.extend_from_slice(compressed);
    image
}

/// The message of a gzip error; panics on any other error.
fn gzip_message(err: InitdataError) -> String {
    match err {
        InitdataError::Gzip { message } => message,
        other => panic!("expected a gzip error, got {other:?}"),
    }
}

fn annotation_gzip_message(compressed: &[u8]) -> String {
    gzip_message(Initdata::from_annotation(&annotation_of(compressed)).unwrap_err())
}

fn valid_doc() -> Vec<u8> {
    template("sha256", VERSION, true)
}

// ---------------------------------------------------------------------------------------------
// Parse (upstream TestParse)
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_accepts_all_algorithm_spellings() {
    for (spelling, algorithm) in [
        ("sha256", Algorithm::Sha256),
        ("sha-256", Algorithm::Sha256),
        ("sha384", Algorithm::Sha384),
        ("sha-384", Algorithm::Sha384),
        ("sha512", Algorithm::Sha512),
        ("sha-512", Algorithm::Sha512),
    ] {
        let raw = template(spelling, VERSION, true);
        let doc = Initdata::parse(raw.clone()).unwrap();
        assert_eq!(doc.algorithm(), algorithm, "{spelling}");
        assert_eq!(doc.version(), "0.1.0");
        assert_eq!(doc.raw(), raw.as_slice());
        assert_eq!(doc.data()["somekey"], "somevalue");
        assert_eq!(
            doc.data()["imagepuller.toml"],
            "socket = 'unix:///run/guest-services/imagepuller.sock'\ncredentials = []\n"
        );
        assert_eq!(doc.data().len(), 2);
    }
}

#[test]
fn parse_rejects_missing_version() {
    assert_eq!(
        Initdata::parse(template("sha256", "", true)),
        Err(InitdataError::MissingField { field: "version" })
    );
}

#[test]
fn parse_rejects_other_versions() {
    for version in [
        "1.1.0", "0.1", "0.1.1", " 0.1.0", "0.1.0 ", "v0.1.0", "0.2.0",
    ] {
        assert_eq!(
            Initdata::parse(template("sha256", version, true)),
            Err(InitdataError::UnsupportedVersion {
                found: version.to_owned()
            }),
            "{version}"
        );
    }
}

#[test]
fn parse_rejects_missing_algorithm() {
    assert_eq!(
        Initdata::parse(template("", VERSION, true)),
        Err(InitdataError::MissingField { field: "algorithm" })
    );
}

#[test]
fn parse_rejects_unknown_algorithms() {
    for algorithm in [
        "sha123", "SHA256", "sha--256", "sha-", "md5", "sha3-256", "sha_256", "-sha256",
    ] {
        assert_eq!(
            Initdata::parse(template(algorithm, VERSION, true)),
            Err(InitdataError::UnknownAlgorithm {
                found: algorithm.to_owned()
            }),
            "{algorithm}"
        );
    }
}

#[test]
fn parse_without_data_is_empty() {
    let doc = Initdata::parse(template("sha256", VERSION, false)).unwrap();
    assert!(doc.data().is_empty());
    assert_eq!(doc.algorithm(), Algorithm::Sha256);
}

#[test]
fn parse_ignores_unknown_top_level_keys() {
    let raw = b"version = \"0.1.0\"\nalgorithm = \"sha384\"\nextra = 5\n[other]\nx = 1\n[data]\na = \"b\"\n";
    let doc = Initdata::parse(raw.to_vec()).unwrap();
    assert_eq!(doc.algorithm(), Algorithm::Sha384);
    assert_eq!(doc.data(), &data(&[("a", "b")]));
}

#[test]
fn parse_rejects_wrong_types() {
    assert_eq!(
        Initdata::parse(b"version = 1\nalgorithm = \"sha256\"\n".to_vec()),
        Err(InitdataError::FieldNotString {
            field: "version",
            found: "integer"
        })
    );
    assert_eq!(
        Initdata::parse(b"version = \"0.1.0\"\nalgorithm = [\"sha256\"]\n".to_vec()),
        Err(InitdataError::FieldNotString {
            field: "algorithm",
            found: "array"
        })
    );
    assert_eq!(
        Initdata::parse(b"version = \"0.1.0\"\nalgorithm = \"sha256\"\ndata = \"x\"\n".to_vec()),
        Err(InitdataError::DataNotTable { found: "string" })
    );
    assert_eq!(
        Initdata::parse(
            b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nok = \"x\"\nn = 3\n".to_vec()
        ),
        Err(InitdataError::DataValueNotString {
            key: "n".to_owned(),
            found: "integer"
        })
    );
    assert_eq!(
        Initdata::parse(
            b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data.nested]\nk = \"v\"\n".to_vec()
        ),
        Err(InitdataError::DataValueNotString {
            key: "nested".to_owned(),
            found: "table"
        })
    );
}

#[test]
fn parse_rejects_invalid_utf8_and_toml() {
    let mut raw = b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n# ".to_vec();
    let offset = raw.len();
    raw.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(Initdata::parse(raw), Err(InitdataError::NotUtf8 { offset }));

    let err = Initdata::parse(b"version = \"0.1.0\"\nalgorithm = = 1\n".to_vec()).unwrap_err();
    assert!(
        matches!(&err, InitdataError::Toml { message } if message.contains("at byte")),
        "{err}"
    );

    for bad in [
        &b"version = \"0.1.0\"\nversion = \"0.1.0\"\nalgorithm = \"sha256\"\n"[..],
        b"version = \"0.1.0\nalgorithm = \"sha256\"\n",
        b"[data\n",
        b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\na = \"1\"\na = \"2\"\n",
    ] {
        assert!(
            matches!(
                Initdata::parse(bad.to_vec()),
                Err(InitdataError::Toml { .. })
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn parse_rejects_oversized_documents() {
    let mut raw = valid_doc();
    raw.extend(std::iter::repeat_n(
        b'\n',
        MAX_DOCUMENT_SIZE + 1 - raw.len(),
    ));
    assert_eq!(
        Initdata::parse(raw),
        Err(InitdataError::TooLarge {
            limit: MAX_DOCUMENT_SIZE
        })
    );
}

#[test]
fn algorithm_from_str_and_spellings() {
    for (s, a) in [
        ("sha256", Algorithm::Sha256),
        ("sha-256", Algorithm::Sha256),
        ("sha384", Algorithm::Sha384),
        ("sha-384", Algorithm::Sha384),
        ("sha512", Algorithm::Sha512),
        ("sha-512", Algorithm::Sha512),
    ] {
        let parsed: Algorithm = s.parse().unwrap();
        assert_eq!(parsed, a);
        assert!(!parsed.as_str().contains('-'));
        assert_eq!(parsed.to_string(), parsed.as_str());
    }
    assert_eq!(Algorithm::Sha256.as_str(), "sha256");
    assert_eq!(Algorithm::Sha384.as_str(), "sha384");
    assert_eq!(Algorithm::Sha512.as_str(), "sha512");
    assert_eq!(Algorithm::Sha256.digest_len(), 32);
    assert_eq!(Algorithm::Sha384.digest_len(), 48);
    assert_eq!(Algorithm::Sha512.digest_len(), 64);
    assert_eq!(
        "sha123".parse::<Algorithm>(),
        Err(InitdataError::UnknownAlgorithm {
            found: "sha123".to_owned()
        })
    );
    assert!(matches!(
        "".parse::<Algorithm>(),
        Err(InitdataError::UnknownAlgorithm { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Build (upstream TestEncode)
// ---------------------------------------------------------------------------------------------

#[test]
fn build_writes_canonical_spelling_and_round_trips() {
    for algorithm in [Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512] {
        for entries in [
            data(&[("key", "value")]),
            data(&[("key", "value"), ("imagepuller.toml", "something")]),
            BTreeMap::new(),
        ] {
            let doc = Initdata::build(algorithm, entries.clone()).unwrap();
            let text = std::str::from_utf8(doc.raw()).unwrap();
            assert!(text.contains("version = \"0.1.0\""), "{text}");
            assert!(
                text.contains(&format!("algorithm = \"{}\"", algorithm.as_str())),
                "{text}"
            );
            assert!(!text.contains("sha-"), "{text}");
            assert_eq!(doc.algorithm(), algorithm);
            assert_eq!(doc.data(), &entries);

            let reparsed = Initdata::parse(doc.raw().to_vec()).unwrap();
            assert_eq!(reparsed, doc);
            assert_eq!(reparsed.digest(), doc.digest());
        }
    }
}

#[test]
fn build_exact_output() {
    let doc = Initdata::build(
        Algorithm::Sha256,
        data(&[("imagepuller.toml", "a\nb"), ("key", "value")]),
    )
    .unwrap();
    assert_eq!(
        std::str::from_utf8(doc.raw()).unwrap(),
        "version = \"0.1.0\"\nalgorithm = \"sha256\"\n\n[data]\n\"imagepuller.toml\" = \"\"\"\na\nb\"\"\"\nkey = \"value\"\n"
    );
}

#[test]
fn build_is_deterministic_and_escapes() {
    let entries = data(&[
        (
            "policy.rego",
            "package agent_policy\n\ndefault X := false\n\"'''\"\"\"\\",
        ),
        ("weird key \"=[]", "\u{0}\u{7f}\t\r\n\u{1F600}"),
        ("", ""),
        ("contrast.insecure-debug", "true"),
    ]);
    let a = Initdata::build(Algorithm::Sha256, entries.clone()).unwrap();
    let b = Initdata::build(Algorithm::Sha256, entries.clone()).unwrap();
    assert_eq!(a.raw(), b.raw());
    assert_eq!(a.data(), &entries);
    assert_eq!(a.to_annotation().unwrap(), b.to_annotation().unwrap());
    assert_eq!(
        a.to_device(&DEVICE_MAGIC).unwrap(),
        b.to_device(&DEVICE_MAGIC).unwrap()
    );
}

#[test]
fn build_rejects_oversized_data() {
    let entries = data(&[("big", &"x".repeat(MAX_DOCUMENT_SIZE))]);
    assert_eq!(
        Initdata::build(Algorithm::Sha256, entries),
        Err(InitdataError::TooLarge {
            limit: MAX_DOCUMENT_SIZE
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Digest and policy hash
// ---------------------------------------------------------------------------------------------

#[test]
fn digest_is_over_raw_bytes() {
    let compact = b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\na = \"b\"\n".to_vec();
    let spaced =
        b"version   =   \"0.1.0\"\n\nalgorithm = \"sha256\"\n\n[data]\n  a = 'b'\n".to_vec();
    let d1 = Initdata::parse(compact.clone()).unwrap();
    let d2 = Initdata::parse(spaced.clone()).unwrap();
    assert_eq!(d1.data(), d2.data());
    assert_eq!(d1.algorithm(), d2.algorithm());
    assert_ne!(d1.digest(), d2.digest());
    assert_eq!(d1.digest().as_bytes(), &sha2::Sha256::digest(&compact)[..]);
    assert_eq!(d2.digest().as_bytes(), &sha2::Sha256::digest(&spaced)[..]);
    assert_eq!(d1.policy_hash().unwrap().as_slice(), d1.digest().as_bytes());
}

#[test]
fn digest_sha384_and_sha512() {
    let raw384 = template("sha-384", VERSION, true);
    let doc = Initdata::parse(raw384.clone()).unwrap();
    let digest = doc.digest();
    assert_eq!(digest.algorithm(), Algorithm::Sha384);
    assert_eq!(digest.as_bytes().len(), 48);
    assert_eq!(digest.as_bytes(), &sha2::Sha384::digest(&raw384)[..]);
    assert_eq!(
        digest.as_bytes(),
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &raw384).as_ref()
    );

    let raw512 = template("sha512", VERSION, false);
    let doc = Initdata::parse(raw512.clone()).unwrap();
    let digest = doc.digest();
    assert_eq!(digest.algorithm(), Algorithm::Sha512);
    assert_eq!(digest.as_bytes().len(), 64);
    assert_eq!(digest.as_bytes(), &sha2::Sha512::digest(&raw512)[..]);
    assert_eq!(
        digest.as_bytes(),
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, &raw512).as_ref()
    );
}

#[test]
fn digest_known_values() {
    // Known answers from `printf 'version = "0.1.0"\nalgorithm = "<alg>"\n' | <alg>sum`.
    let cases = [
        (
            "sha256",
            "677304ed23ec2f17d776f30f5d5f8a64d2f55dd6942fce1ec88d7baa638963e8",
        ),
        (
            "sha384",
            "cc367223fdb0ecfb2353e2f1f944c1c24a4bcdc08acdfeed73552c2f345925416f920531a08363aa0511d964c76fe5d6",
        ),
        (
            "sha512",
            "cddcef9d3c7926d26146c7bed9a8ee87405f0161dca94b2641bd70bd0a18067f5a2f02f2bbd1bc194b4303f97d844a61a5a807e705a589b05704e9391c710b13",
        ),
    ];
    for (algorithm, expected) in cases {
        let raw = format!("version = \"0.1.0\"\nalgorithm = \"{algorithm}\"\n").into_bytes();
        let doc = Initdata::parse(raw).unwrap();
        assert_eq!(doc.digest().to_hex(), expected, "{algorithm}");
        assert_eq!(doc.digest().to_string(), expected, "{algorithm}");
        assert_eq!(
            hex::encode(doc.digest().as_bytes()),
            expected,
            "{algorithm}"
        );
    }
}

#[test]
fn policy_hash_requires_sha256() {
    for (spelling, algorithm, len) in [
        ("sha384", Algorithm::Sha384, 48),
        ("sha-512", Algorithm::Sha512, 64),
    ] {
        let doc = Initdata::parse(template(spelling, VERSION, true)).unwrap();
        let err = doc.policy_hash().unwrap_err();
        assert_eq!(err, InitdataError::PolicyHashNotSha256 { algorithm, len });
        let message = err.to_string();
        assert!(message.contains("32-byte"), "{message}");
        assert!(message.contains("manifest"), "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Annotation
// ---------------------------------------------------------------------------------------------

#[test]
fn annotation_key() {
    assert_eq!(
        ANNOTATION_KEY,
        "io.katacontainers.config.hypervisor.cc_init_data"
    );
}

#[test]
fn annotation_round_trip_keeps_raw_bytes() {
    let raw = template("sha-256", VERSION, true);
    let doc = Initdata::parse(raw.clone()).unwrap();
    let annotation = doc.to_annotation().unwrap();
    let decoded = Initdata::from_annotation(&annotation).unwrap();
    assert_eq!(decoded.raw(), raw.as_slice());
    assert_eq!(decoded.digest(), doc.digest());
    assert_eq!(decoded, doc);
}

#[test]
fn annotation_gzip_header_is_deterministic() {
    let doc = Initdata::parse(valid_doc()).unwrap();
    let compressed = STANDARD.decode(doc.to_annotation().unwrap()).unwrap();
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown, as Go writes).
    assert_eq!(&compressed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let trailer = &compressed[compressed.len() - 8..];
    assert_eq!(&trailer[..4], &crc32(doc.raw()).to_le_bytes());
    assert_eq!(&trailer[4..], &(doc.raw().len() as u32).to_le_bytes());
    // An independent decoder agrees.
    let mut decoder = flate2::read::GzDecoder::new(compressed.as_slice());
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut decoder, &mut out).unwrap();
    assert_eq!(out, doc.raw());
}

#[test]
fn annotation_from_gzip_cli_fixture() {
    // Made with `printf ... | gzip -n | base64 -w0`; digest from `sha256sum`.
    let doc = Initdata::from_annotation(FIXTURE_ANNOTATION.trim_end()).unwrap();
    assert_eq!(doc.raw(), FIXTURE_DOCUMENT);
    assert_eq!(doc.digest().to_hex(), FIXTURE_DOCUMENT_SHA256.trim_end());
    assert_eq!(
        hex::encode(doc.policy_hash().unwrap()),
        FIXTURE_DOCUMENT_SHA256.trim_end()
    );
    assert_eq!(doc.algorithm(), Algorithm::Sha256);
    assert!(doc.data()["policy.rego"].starts_with("package agent_policy\n"));
    assert!(doc.data().contains_key("imagepuller.toml"));
}

#[test]
fn annotation_from_gzip_cli_with_file_name_and_mtime() {
    // `gzip -c document.toml`: FNAME set and a non-zero mtime.
    let doc = Initdata::from_annotation(FIXTURE_ANNOTATION_FNAME.trim_end()).unwrap();
    assert_eq!(doc.raw(), FIXTURE_DOCUMENT);
    assert_eq!(doc.digest().to_hex(), FIXTURE_DOCUMENT_SHA256.trim_end());
}

#[test]
fn annotation_concatenated_members_are_joined_like_go() {
    // Two `gzip -n` members of the document split at byte 100; Go's multistream reader joins them.
    let doc = Initdata::from_annotation(FIXTURE_ANNOTATION_TWO_MEMBERS.trim_end()).unwrap();
    assert_eq!(doc.raw(), FIXTURE_DOCUMENT);
    assert_eq!(doc.digest().to_hex(), FIXTURE_DOCUMENT_SHA256.trim_end());
}

#[test]
fn annotation_from_independent_encoder() {
    let raw = valid_doc();
    let doc = Initdata::from_annotation(&annotation_of(&foreign_gzip(&raw))).unwrap();
    assert_eq!(doc.raw(), raw.as_slice());
}

#[test]
fn annotation_base64_follows_go_std_encoding() {
    let compressed = foreign_gzip(&valid_doc());
    let encoded = annotation_of(&compressed);

    // Go skips CR and LF anywhere.
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    assert!(Initdata::from_annotation(&(wrapped + "\n")).is_ok());

    // Missing padding, URL alphabet, spaces and garbage are errors.
    let unpadded = encoded.trim_end_matches('=');
    if unpadded.len() != encoded.len() {
        assert!(matches!(
            Initdata::from_annotation(unpadded),
            Err(InitdataError::Base64 { .. })
        ));
    }
    for bad in [
        format!(" {encoded}"),
        format!("{encoded} "),
        encoded.replace('+', "-").replace('/', "_") + "-_",
        "not base64!".to_owned(),
        "QQ=".to_owned(),
    ] {
        assert!(
            matches!(
                Initdata::from_annotation(&bad),
                Err(InitdataError::Base64 { .. })
            ),
            "{bad}"
        );
    }

    // Go's StdEncoding is not strict: non-zero unused bits in the last symbol are accepted.
    // "QR==" decodes to 0x41 with non-zero trailing bits; it then fails as gzip, not base64.
    assert!(matches!(
        Initdata::from_annotation("QR=="),
        Err(InitdataError::Gzip { .. })
    ));
}

#[test]
fn annotation_empty_value_is_a_gzip_error() {
    let message = gzip_message(Initdata::from_annotation("").unwrap_err());
    assert!(message.contains("unexpected end of file"), "{message}");
}

#[test]
fn annotation_invalid_document_errors_pass_through() {
    let compressed = foreign_gzip(&template("sha123", VERSION, true));
    assert_eq!(
        Initdata::from_annotation(&annotation_of(&compressed)),
        Err(InitdataError::UnknownAlgorithm {
            found: "sha123".to_owned()
        })
    );
    let compressed = foreign_gzip(&template("sha256", "1.1.0", true));
    assert!(matches!(
        Initdata::from_annotation(&annotation_of(&compressed)),
        Err(InitdataError::UnsupportedVersion { .. })
    ));
}

#[test]
fn gzip_trailing_garbage_is_rejected_like_go() {
    // After a member the multistream reader parses any further bytes as another member header.
    let member = foreign_gzip(&valid_doc());
    for garbage in [
        &b"\0"[..],
        b"\0\0\0\0\0\0\0\0\0\0\0\0",
        b"garbage!!!!!",
        b"x",
        b"\x1f\x8b",
        b"PK\x03\x04 not gzip at all",
    ] {
        let mut compressed = member.clone();
        compressed.extend_from_slice(garbage);
        annotation_gzip_message(&compressed);
    }
    // Short garbage ends inside the would-be header; longer garbage is not a header.
    let mut compressed = member.clone();
    compressed.push(0);
    let message = annotation_gzip_message(&compressed);
    assert!(message.contains("unexpected end of file"), "{message}");
    let mut compressed = member.clone();
    compressed.extend_from_slice(b"PK\x03\x04 not gzip at all");
    let message = annotation_gzip_message(&compressed);
    assert!(message.contains("invalid gzip header"), "{message}");
}

#[test]
fn gzip_bad_header_is_rejected() {
    let member = foreign_gzip(&valid_doc());
    let mut wrong_method = member.clone();
    wrong_method[2] = 7;
    let mut wrong_magic = member.clone();
    wrong_magic[1] = 0x8c;
    for bad in [wrong_method, wrong_magic] {
        let message = annotation_gzip_message(&bad);
        assert!(message.contains("invalid gzip header"), "{message}");
    }
}

#[test]
fn gzip_checksums_are_verified() {
    let member = foreign_gzip(&valid_doc());
    let n = member.len();

    let mut bad_crc = member.clone();
    bad_crc[n - 8] ^= 1;
    let mut bad_size = member.clone();
    bad_size[n - 4] ^= 1;
    // A corrupted second member is detected too.
    let mut bad_second = member.clone();
    bad_second.extend_from_slice(&bad_crc);
    for bad in [bad_crc, bad_size, bad_second] {
        let message = annotation_gzip_message(&bad);
        assert!(message.contains("checksum"), "{message}");
    }
}

#[test]
fn gzip_corrupt_deflate_is_rejected() {
    // A deflate block type 3 is reserved and invalid.
    let mut compressed = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 0x07, 0, 0, 0];
    compressed.extend_from_slice(&[0; 8]);
    annotation_gzip_message(&compressed);
}

#[test]
fn gzip_truncated_at_every_length_is_an_error() {
    // Truncation anywhere (header, deflate data, trailer) is an error, never a partial document
    // or a panic.
    let raw = valid_doc();
    let own = STANDARD
        .decode(
            Initdata::parse(raw.clone())
                .unwrap()
                .to_annotation()
                .unwrap(),
        )
        .unwrap();
    for compressed in [own, foreign_gzip(&raw)] {
        for len in 0..compressed.len() {
            annotation_gzip_message(&compressed[..len]);
        }
    }

    // With two members, a cut exactly at the member boundary is a complete gzip stream (as in
    // Go); its content, the first 100 bytes of the document, is then not a valid document.
    let two_members = STANDARD
        .decode(FIXTURE_ANNOTATION_TWO_MEMBERS.trim_end())
        .unwrap();
    let mut boundaries = Vec::new();
    for len in 0..two_members.len() {
        match Initdata::from_annotation(&annotation_of(&two_members[..len])) {
            Err(InitdataError::Gzip { .. }) => {}
            Err(InitdataError::Toml { .. }) => boundaries.push(len),
            other => panic!("cut at {len}: {other:?}"),
        }
    }
    assert_eq!(boundaries.len(), 1, "{boundaries:?}");
    assert_eq!(&two_members[boundaries[0]..][..3], &[0x1f, 0x8b, 8]);
}

#[test]
fn gzip_optional_header_fields() {
    let raw = valid_doc();
    // FEXTRA + FNAME + FCOMMENT + FHCRC are honoured.
    let mut header = vec![0x1f, 0x8b, 8, 0b0001_1110, 1, 2, 3, 4, 2, 3];
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(b"XY\0\0");
    header.extend_from_slice(b"name.toml\0");
    header.extend_from_slice(b"a comment\0");
    let hcrc = (crc32(&header) & 0xffff) as u16;
    let mut good = header.clone();
    good.extend_from_slice(&hcrc.to_le_bytes());
    let doc = Initdata::from_annotation(&annotation_of(&member_with_header(&good, &raw))).unwrap();
    assert_eq!(doc.raw(), raw.as_slice());

    let mut bad = header.clone();
    bad.extend_from_slice(&(hcrc ^ 1).to_le_bytes());
    let message = annotation_gzip_message(&member_with_header(&bad, &raw));
    assert!(message.contains("checksum"), "{message}");

    // A reserved flag bit is rejected (flate2 follows RFC 1952 here; Go ignores the bit).
    for reserved in [1u8 << 5, 1 << 6, 1 << 7] {
        let header = [0x1f, 0x8b, 8, reserved, 0, 0, 0, 0, 0, 3];
        let message = annotation_gzip_message(&member_with_header(&header, &raw));
        assert!(
            message.contains("invalid gzip header"),
            "{reserved:#x}: {message}"
        );
    }

    // File names up to 65535 bytes are accepted (Go stops at 511), longer ones are rejected.
    for (len, ok) in [
        (511usize, true),
        (512, true),
        (65_535, true),
        (65_536, false),
    ] {
        let mut header = vec![0x1f, 0x8b, 8, 0b0000_1000, 0, 0, 0, 0, 0, 3];
        header.extend(std::iter::repeat_n(b'n', len));
        header.push(0);
        let result = Initdata::from_annotation(&annotation_of(&member_with_header(&header, &raw)));
        if ok {
            assert_eq!(result.unwrap().raw(), raw.as_slice(), "{len}");
        } else {
            let message = gzip_message(result.unwrap_err());
            assert!(message.contains("too long"), "{len}: {message}");
        }
    }
    // A name without terminator at the end of input.
    let header = [0x1f, 0x8b, 8, 0b0000_1000, 0, 0, 0, 0, 0, 3, b'a', b'b'];
    let message = annotation_gzip_message(&header);
    assert!(message.contains("unexpected end of file"), "{message}");
}

#[test]
fn gzip_bomb_is_too_large_and_fast() {
    // 100 MiB of zeros, `gzip -9`: ~100 KiB compressed.
    let started = Instant::now();
    assert_eq!(
        Initdata::from_annotation(&annotation_of(FIXTURE_BOMB)),
        Err(InitdataError::TooLarge {
            limit: MAX_DOCUMENT_SIZE
        })
    );
    assert_eq!(
        Initdata::from_device(&device_of(FIXTURE_BOMB), &DEVICE_MAGIC),
        Err(InitdataError::TooLarge {
            limit: MAX_DOCUMENT_SIZE
        })
    );
    // Generous for unoptimised builds on a loaded machine; the point is that 100 MiB are never
    // produced.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn gzip_output_exactly_at_limit_is_accepted_by_the_decoder() {
    // A document of exactly MAX_DOCUMENT_SIZE bytes: valid TOML padded with a comment.
    let mut raw = valid_doc();
    raw.extend_from_slice(b"# ");
    raw.extend(std::iter::repeat_n(b'x', MAX_DOCUMENT_SIZE - raw.len()));
    assert_eq!(raw.len(), MAX_DOCUMENT_SIZE);
    let doc = Initdata::parse(raw).unwrap();
    let back = Initdata::from_annotation(&doc.to_annotation().unwrap()).unwrap();
    assert_eq!(back.raw().len(), MAX_DOCUMENT_SIZE);
    // One byte more, split over two members, is too large.
    let mut compressed = foreign_gzip(doc.raw());
    compressed.extend_from_slice(&foreign_gzip(b"\n"));
    assert_eq!(
        Initdata::from_annotation(&annotation_of(&compressed)),
        Err(InitdataError::TooLarge {
            limit: MAX_DOCUMENT_SIZE
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Device image (upstream TestFromDevice)
// ---------------------------------------------------------------------------------------------

fn upstream_device_doc() -> Initdata {
    Initdata::build(Algorithm::Sha256, data(&[("foo", "bar")])).unwrap()
}

#[test]
fn device_layout_is_exact() {
    let doc = upstream_device_doc();
    let image = doc.to_device(&DEVICE_MAGIC).unwrap();
    assert_eq!(&image[0..8], b"initdata");
    let length = u64::from_le_bytes(image[8..16].try_into().unwrap()) as usize;
    assert_eq!(&image[16..18], &[0x1f, 0x8b]);
    assert_eq!(image.len() % 512, 0);
    assert_eq!(image.len(), 512);
    assert!(image[16 + length..].iter().all(|b| *b == 0));
    assert_eq!(
        &image[16..16 + length],
        STANDARD
            .decode(doc.to_annotation().unwrap())
            .unwrap()
            .as_slice()
    );

    let read = Initdata::from_device(&image, &DEVICE_MAGIC).unwrap();
    assert_eq!(read, doc);
    assert_eq!(
        read.digest().as_bytes(),
        &sha2::Sha256::digest(doc.raw())[..]
    );
    assert_eq!(read.data(), &data(&[("foo", "bar")]));
}

#[test]
fn device_with_custom_magic() {
    let doc = upstream_device_doc();
    let magic = *b"CONTRAST";
    let image = doc.to_device(&magic).unwrap();
    assert_eq!(&image[..8], b"CONTRAST");
    assert_eq!(Initdata::from_device(&image, &magic).unwrap(), doc);
    assert_eq!(
        Initdata::from_device(&image, &DEVICE_MAGIC),
        Err(InitdataError::BadMagic {
            expected: DEVICE_MAGIC,
            found: magic
        })
    );
}

#[test]
fn device_truncated_padding_still_parses() {
    let doc = upstream_device_doc();
    let image = doc.to_device(&DEVICE_MAGIC).unwrap();
    let length = u64::from_le_bytes(image[8..16].try_into().unwrap()) as usize;
    assert!(16 + length <= 480);
    let read = Initdata::from_device(&image[..480], &DEVICE_MAGIC).unwrap();
    assert_eq!(read.digest(), doc.digest());
    // No padding at all.
    let read = Initdata::from_device(&image[..16 + length], &DEVICE_MAGIC).unwrap();
    assert_eq!(read, doc);
    // One byte short of the blob.
    assert_eq!(
        Initdata::from_device(&image[..15 + length], &DEVICE_MAGIC),
        Err(InitdataError::ImageTruncated {
            needed: 16 + length as u64,
            found: 15 + length as u64
        })
    );
}

#[test]
fn device_from_independent_encoder() {
    // Kata's layout built by hand around an independent gzip encoder, padded like upstream's test.
    let raw = valid_doc();
    let compressed = foreign_gzip(&raw);
    let mut image = device_of(&compressed);
    image.resize(image.len() + 512 - image.len() % 512, 0);
    let doc = Initdata::from_device(&image, &DEVICE_MAGIC).unwrap();
    assert_eq!(doc.raw(), raw.as_slice());
    assert_eq!(doc.digest().as_bytes(), &sha2::Sha256::digest(&raw)[..]);
}

#[test]
fn device_header_errors() {
    assert_eq!(
        Initdata::from_device(b"LUKS\xba\xbefoobar", &DEVICE_MAGIC),
        Err(InitdataError::BadMagic {
            expected: DEVICE_MAGIC,
            found: *b"LUKS\xba\xbefo"
        })
    );
    assert_eq!(
        Initdata::from_device(b"in", &DEVICE_MAGIC),
        Err(InitdataError::MagicTruncated { found: 2 })
    );
    assert_eq!(
        Initdata::from_device(b"", &DEVICE_MAGIC),
        Err(InitdataError::MagicTruncated { found: 0 })
    );
    assert_eq!(
        Initdata::from_device(b"initdata\x01\x00", &DEVICE_MAGIC),
        Err(InitdataError::LengthFieldTruncated { found: 2 })
    );
    assert_eq!(
        Initdata::from_device(b"initdata", &DEVICE_MAGIC),
        Err(InitdataError::LengthFieldTruncated { found: 0 })
    );
    assert_eq!(
        Initdata::from_device(b"initdata\x00\x00\x00\x00\x00\x00\x00\x10", &DEVICE_MAGIC),
        Err(InitdataError::DeviceLengthTooLarge {
            length: 0x1000_0000_0000_0000,
            limit: MAX_COMPRESSED_SIZE
        })
    );
    assert!(matches!(
        Initdata::from_device(&device_of(&[]), &DEVICE_MAGIC),
        Err(InitdataError::Gzip { .. })
    ));
    // Within the limit but longer than the image.
    let mut image = DEVICE_MAGIC.to_vec();
    image.extend_from_slice(&1000u64.to_le_bytes());
    image.extend_from_slice(&[0; 100]);
    assert_eq!(
        Initdata::from_device(&image, &DEVICE_MAGIC),
        Err(InitdataError::ImageTruncated {
            needed: 1016,
            found: 116
        })
    );
    // Exactly at the limit is not "too large" (it is truncated here).
    let mut image = DEVICE_MAGIC.to_vec();
    image.extend_from_slice(&MAX_COMPRESSED_SIZE.to_le_bytes());
    assert!(matches!(
        Initdata::from_device(&image, &DEVICE_MAGIC),
        Err(InitdataError::ImageTruncated { .. })
    ));
    let mut image = DEVICE_MAGIC.to_vec();
    image.extend_from_slice(&(MAX_COMPRESSED_SIZE + 1).to_le_bytes());
    assert!(matches!(
        Initdata::from_device(&image, &DEVICE_MAGIC),
        Err(InitdataError::DeviceLengthTooLarge { .. })
    ));
    let mut image = DEVICE_MAGIC.to_vec();
    image.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Initdata::from_device(&image, &DEVICE_MAGIC),
        Err(InitdataError::DeviceLengthTooLarge { .. })
    ));
}

#[test]
fn device_blob_garbage_inside_length_is_rejected() {
    // The declared length covers the padding: the zero bytes after the member are trailing
    // garbage to a Go-compatible multistream reader.
    let doc = upstream_device_doc();
    let compressed = STANDARD.decode(doc.to_annotation().unwrap()).unwrap();
    let mut image = DEVICE_MAGIC.to_vec();
    image.extend_from_slice(&((compressed.len() + 20) as u64).to_le_bytes());
    image.extend_from_slice(&compressed);
    image.resize(512, 0);
    let message = gzip_message(Initdata::from_device(&image, &DEVICE_MAGIC).unwrap_err());
    assert!(message.contains("invalid gzip header"), "{message}");
}

#[test]
fn device_large_document_padding() {
    // A document whose gzip does not fit one sector.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..3000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let doc = Initdata::build(Algorithm::Sha512, data(&[("noise", &noise)])).unwrap();
    let image = doc.to_device(&DEVICE_MAGIC).unwrap();
    assert_eq!(image.len() % 512, 0);
    assert!(image.len() > 512);
    let length = u64::from_le_bytes(image[8..16].try_into().unwrap()) as usize;
    assert!(image.len() - (16 + length) < 512);
    assert_eq!(Initdata::from_device(&image, &DEVICE_MAGIC).unwrap(), doc);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn algorithm_strategy() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha384),
        Just(Algorithm::Sha512)
    ]
}

fn data_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(any::<String>(), any::<String>(), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn prop_build_annotation_round_trip(algorithm in algorithm_strategy(), entries in data_strategy()) {
        let doc = Initdata::build(algorithm, entries.clone()).unwrap();
        prop_assert_eq!(doc.data(), &entries);
        prop_assert_eq!(doc.algorithm(), algorithm);
        let back = Initdata::from_annotation(&doc.to_annotation().unwrap()).unwrap();
        prop_assert_eq!(back.raw(), doc.raw());
        prop_assert_eq!(back.digest(), doc.digest());
        prop_assert_eq!(back.digest().as_bytes().len(), algorithm.digest_len());
        // Deterministic.
        let again = Initdata::build(algorithm, entries).unwrap();
        prop_assert_eq!(again.raw(), doc.raw());
        prop_assert_eq!(again.to_annotation().unwrap(), doc.to_annotation().unwrap());
    }

    #[test]
    fn prop_build_device_round_trip(
        algorithm in algorithm_strategy(),
        entries in data_strategy(),
        magic in any::<[u8; 8]>(),
    ) {
        let doc = Initdata::build(algorithm, entries).unwrap();
        let image = doc.to_device(&magic).unwrap();
        prop_assert_eq!(image.len() % 512, 0);
        prop_assert_eq!(&image[..8], &magic[..]);
        let back = Initdata::from_device(&image, &magic).unwrap();
        prop_assert_eq!(back.raw(), doc.raw());
        prop_assert_eq!(back.digest(), doc.digest());
    }

    #[test]
    fn prop_parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Initdata::parse(raw);
    }

    #[test]
    fn prop_parse_text_never_panics(text in "(version|algorithm|data|\\[|\\]|=|\"|'|0\\.1\\.0|sha-?(256|384|512)|\n| |[a-z]){0,40}") {
        if let Ok(doc) = Initdata::parse(text.clone().into_bytes()) {
            prop_assert_eq!(doc.raw(), text.as_bytes());
            prop_assert_eq!(doc.version(), VERSION);
        }
    }

    #[test]
    fn prop_from_annotation_never_panics(value in any::<String>()) {
        let _ = Initdata::from_annotation(&value);
    }

    #[test]
    fn prop_from_annotation_base64_of_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Initdata::from_annotation(&STANDARD.encode(&bytes));
        // Also bytes that start like a gzip member, to reach the inflater.
        let mut gz = vec![0x1f, 0x8b, 8];
        gz.extend_from_slice(&bytes);
        let _ = Initdata::from_annotation(&STANDARD.encode(&gz));
    }

    #[test]
    fn prop_from_device_never_panics(image in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Initdata::from_device(&image, &DEVICE_MAGIC);
        let mut prefixed = DEVICE_MAGIC.to_vec();
        prefixed.extend_from_slice(&image);
        let _ = Initdata::from_device(&prefixed, &DEVICE_MAGIC);
    }

    #[test]
    fn prop_corrupted_annotation_never_panics(
        entries in data_strategy(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let doc = Initdata::build(Algorithm::Sha256, entries).unwrap();
        let mut compressed = STANDARD.decode(doc.to_annotation().unwrap()).unwrap();
        for (index, value) in flips {
            let i = index.index(compressed.len());
            compressed[i] ^= value;
        }
        if let Ok(back) = Initdata::from_annotation(&STANDARD.encode(&compressed)) {
            // CRC-32 makes a silent change of content very unlikely; if it parses it must
            // still be self-consistent.
            prop_assert_eq!(back.digest(), back.algorithm().hash(back.raw()));
        }
    }
}
