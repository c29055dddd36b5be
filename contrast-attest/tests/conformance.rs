//! Conformance with an independent protobuf implementation (Google's Python runtime, see
//! `conformance/sevsnp_fixtures.py`, run by `.ci/conformance-python`).
//!
//! For every entry of `conformance/fixtures.json`:
//! - our `AttestationBuilder` output must equal the committed `fixtures/sevsnp/rust/<name>.pb`
//!   (which the Python script decodes and checks field for field); with
//!   `CONTRAST_UPDATE_FIXTURES=1` the test writes it instead;
//! - the Python-built `fixtures/sevsnp/python/<name>.pb` must parse with `SnpEvidence`, its
//!   report rebuilt byte-identical to the vector report, its fields equal to ours, its
//!   certificates and CRL equal to the files, and (without Python-only extras) its bytes equal
//!   to ours;
//! - a Python-built fixture with a leaf verifies end to end against AMD's pinned roots at the
//!   entry's `verify_at`, and the one with a CRL with the CRL required.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use contrast_attest::evidence::{
    AttestationBuilder, CRL_EXTRAS_KEY, SnpEvidence, report_to_proto, sevsnp,
};
use contrast_attest::{
    CrlPolicy, LeafKind, Product, RevocationStatus, TrustAnchor, UnixTime, verify_report,
};
use prost::Message as _;
use serde_json::Value;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn read(path: &str) -> Vec<u8> {
    let bytes = std::fs::read(tests_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    if path.ends_with(".hex") {
        hex::decode(String::from_utf8(bytes).unwrap().trim()).unwrap()
    } else {
        bytes
    }
}

fn entries() -> Vec<Value> {
    let json = std::fs::read(tests_dir().join("conformance/fixtures.json")).unwrap();
    let Value::Array(entries) = serde_json::from_slice(&json).unwrap() else {
        panic!("fixtures.json is not an array");
    };
    entries
}

fn opt(entry: &Value, key: &str) -> Option<Vec<u8>> {
    entry.get(key).and_then(Value::as_str).map(read)
}

fn product(entry: &Value) -> Product {
    match entry["product"].as_str().unwrap() {
        "MILAN" => Product::Milan,
        "GENOA" => Product::Genoa,
        "TURIN" => Product::Turin,
        other => panic!("product {other}"),
    }
}

fn ours(entry: &Value) -> Vec<u8> {
    let report = read(entry["report"].as_str().unwrap());
    let vcek = opt(entry, "vcek");
    let vlek = opt(entry, "vlek");
    let ask = opt(entry, "ask");
    let ark = opt(entry, "ark");
    let crl = opt(entry, "crl");
    let mut builder = AttestationBuilder::new(&report)
        .intermediate(ask.as_deref())
        .ark(ark.as_deref())
        .crl(crl.as_deref());
    if let Some(vcek) = &vcek {
        builder = builder.leaf(LeafKind::Vcek, vcek);
    }
    if let Some(vlek) = &vlek {
        builder = builder.leaf(LeafKind::Vlek, vlek);
    }
    builder.encode().unwrap()
}

#[test]
fn our_fixtures_are_current() {
    let update = std::env::var_os("CONTRAST_UPDATE_FIXTURES").is_some();
    for entry in entries() {
        let name = entry["name"].as_str().unwrap();
        let path = tests_dir().join(format!("fixtures/sevsnp/rust/{name}.pb"));
        let bytes = ours(&entry);
        if update {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{name}: {} is not what AttestationBuilder writes; rerun with CONTRAST_UPDATE_FIXTURES=1",
                path.display()
            );
        }
    }
}

#[test]
fn python_fixtures_parse_field_for_field() {
    for entry in entries() {
        let name = entry["name"].as_str().unwrap();
        let python = read(&format!("fixtures/sevsnp/python/{name}.pb"));
        let report = read(entry["report"].as_str().unwrap());

        let evidence = SnpEvidence::parse(&python).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(evidence.report().as_slice(), report.as_slice(), "{name}");
        assert_eq!(
            evidence.leaf(LeafKind::Vcek),
            opt(&entry, "vcek").as_deref(),
            "{name}"
        );
        assert_eq!(
            evidence.leaf(LeafKind::Vlek),
            opt(&entry, "vlek").as_deref(),
            "{name}"
        );
        assert_eq!(
            evidence.intermediate(),
            opt(&entry, "ask").as_deref(),
            "{name}"
        );
        assert_eq!(evidence.ark(), opt(&entry, "ark").as_deref(), "{name}");
        assert_eq!(evidence.crl(), opt(&entry, "crl").as_deref(), "{name}");
        assert_eq!(evidence.claimed_product(), Some(product(&entry)), "{name}");

        // Field for field, the message Python wrote is the one we derive from the report.
        let decoded = sevsnp::Attestation::decode(python.as_slice()).unwrap();
        assert_eq!(
            decoded.report.as_ref(),
            Some(&report_to_proto(&report).unwrap()),
            "{name}"
        );
        let product_msg = decoded.product.unwrap();
        assert_eq!(product_msg.machine_stepping, Some(0), "{name}");
        let chain = decoded.certificate_chain.unwrap();
        let extras = entry.get("python_only_extras").and_then(Value::as_object);
        let expected_extras =
            usize::from(entry.get("crl").is_some()) + extras.map_or(0, |e| e.len());
        assert_eq!(chain.extras.len(), expected_extras, "{name}");
        if let Some(extras) = extras {
            for (key, value) in extras {
                assert_eq!(
                    chain.extras[key],
                    hex::decode(value.as_str().unwrap()).unwrap()
                );
            }
            assert!(!chain.extras.contains_key(CRL_EXTRAS_KEY) || entry.get("crl").is_some());
        } else {
            // Two implementations, one encoding.
            assert_eq!(
                python,
                ours(&entry),
                "{name}: Python's bytes differ from ours"
            );
        }
    }
}

#[test]
fn python_fixtures_verify_against_the_amd_roots() {
    let mut crl_checked = 0;
    for entry in entries() {
        let Some(at) = entry.get("verify_at").and_then(Value::as_u64) else {
            continue;
        };
        let name = entry["name"].as_str().unwrap();
        let python = read(&format!("fixtures/sevsnp/python/{name}.pb"));
        let evidence = SnpEvidence::parse(&python).unwrap();
        let policy = if evidence.crl().is_some() {
            CrlPolicy::Required
        } else {
            CrlPolicy::BestEffort
        };
        let verified = verify_report(
            evidence.report(),
            &evidence,
            &TrustAnchor::Amd(product(&entry)),
            UnixTime::from_secs(at),
            policy,
            None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        if policy == CrlPolicy::Required {
            assert!(
                matches!(verified.revocation, RevocationStatus::Checked { .. }),
                "{name}"
            );
            crl_checked += 1;
        }
    }
    assert_eq!(crl_checked, 1);
}
