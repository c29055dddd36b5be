//! Report framing, signature mutation over the field table, reserved-byte and reserved-bit
//! checks on crafted bytes, and proptests that arbitrary input never panics.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use contrast_attest::chain::LeafKind;
use contrast_attest::report::{self, Field, LeafKey, UnverifiedReport, check_structure};
use contrast_attest::{Error, Product};
use proptest::prelude::*;

#[test]
fn framing_checks() {
    let good = report_milan();
    assert_eq!(
        UnverifiedReport::from_bytes(&good[..1183]).unwrap_err(),
        Error::ReportLength { found: 1183 }
    );
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        UnverifiedReport::from_bytes(&long).unwrap_err(),
        Error::ReportLength { found: 1185 }
    );
    for version in [0u32, 1, 6, 0xffff_ffff] {
        let mut r = good.clone();
        r[0..4].copy_from_slice(&version.to_le_bytes());
        assert_eq!(
            UnverifiedReport::from_bytes(&r).unwrap_err(),
            Error::UnsupportedReportVersion { found: version }
        );
    }
    let mut r = good.clone();
    r[0x34] = 2;
    assert_eq!(
        UnverifiedReport::from_bytes(&r).unwrap_err(),
        Error::UnsupportedSignatureAlgorithm { found: 2 }
    );
}

#[test]
fn unverified_hints() {
    let r = report_milan();
    let u = UnverifiedReport::from_bytes(&r).unwrap();
    assert_eq!(u.version(), 2);
    assert_eq!(u.reported_tcb_raw(), hex_literal::hex!("0300000000000873"));
    assert_eq!(u.signing_key().unwrap(), report::SigningKey::Vcek);
    assert_eq!(u.cpuid_product().unwrap(), None);
    let v = &vectors()[4];
    let u = UnverifiedReport::from_bytes(&v.report).unwrap();
    assert_eq!(u.cpuid_product().unwrap(), Some(Product::Genoa));
    let mut unknown = v.report.clone();
    unknown[0x188] = 0x17;
    let u = UnverifiedReport::from_bytes(&unknown).unwrap();
    assert_eq!(
        u.cpuid_product().unwrap_err(),
        Error::UnknownCpuid {
            family: 0x17,
            model: 0xa0,
            stepping: 2
        }
    );
}

#[test]
fn field_table_covers_the_report() {
    let mut next = 0;
    for f in Field::ALL {
        assert_eq!(f.offset(), next, "{}", f.name());
        next += f.size();
    }
    assert_eq!(next, report::REPORT_LEN);
}

#[test]
fn flipping_any_signed_field_breaks_the_signature() {
    for v in vectors() {
        let key = LeafKey::from_untrusted_certificate(v.leaf, v.kind, v.product).unwrap();
        UnverifiedReport::from_bytes(&v.report)
            .unwrap()
            .verify(&key)
            .unwrap();
        for field in Field::ALL.into_iter().filter(|f| f.is_signed()) {
            for index in [field.offset(), field.offset() + field.size() - 1] {
                let mut r = v.report.clone();
                r[index] ^= 0x01;
                let result = UnverifiedReport::from_bytes(&r).and_then(|u| u.verify(&key));
                match result {
                    Err(Error::ReportSignatureInvalid { leaf, .. }) => assert_eq!(leaf, v.kind),
                    // Framing fields are rejected before the signature is looked at.
                    Err(
                        Error::UnsupportedReportVersion { .. }
                        | Error::UnsupportedSignatureAlgorithm { .. },
                    ) => {
                        assert!(
                            matches!(field.name(), "VERSION" | "SIGNATURE_ALGO"),
                            "{} {index:#x}",
                            field.name()
                        );
                    }
                    other => panic!("{}: {} at {index:#x}: {other:?}", v.name, field.name()),
                }
            }
        }
        // virtee/sev's negative test: bit 7 of byte 0x15 (FAMILY_ID).
        let mut r = v.report.clone();
        r[0x15] ^= 0x80;
        assert!(matches!(
            UnverifiedReport::from_bytes(&r).unwrap().verify(&key),
            Err(Error::ReportSignatureInvalid { .. })
        ));
    }
}

#[test]
fn signature_upper_bytes_must_be_zero() {
    let v = &vectors()[0];
    let key = LeafKey::from_untrusted_certificate(v.leaf, v.kind, v.product).unwrap();
    for (offset, component) in [(0x2A0 + 48, "R"), (0x2E8 + 71, "S")] {
        let mut r = v.report.clone();
        r[offset] = 1;
        let err = UnverifiedReport::from_bytes(&r)
            .unwrap()
            .verify(&key)
            .unwrap_err();
        assert!(
            matches!(err, Error::SignatureComponentTooLarge { component: c, .. } if c == component),
            "{err}"
        );
    }
}

#[test]
fn unsigned_reserved_area_is_checked_after_the_signature() {
    let v = &vectors()[0];
    let key = LeafKey::from_untrusted_certificate(v.leaf, v.kind, v.product).unwrap();
    let mut r = v.report.clone();
    r[0x400] = 9;
    let err = UnverifiedReport::from_bytes(&r)
        .unwrap()
        .verify(&key)
        .unwrap_err();
    assert_eq!(
        err,
        Error::ReservedBytesNotZero {
            field: "reserved",
            start: 0x330,
            end: 0x4A0,
            offset: 0x400,
            found: 9
        }
    );
    assert_eq!(
        err.to_string(),
        "reserved bytes 0x330..0x4a0 (reserved) must be zero, found 0x09 at offset 0x400"
    );
}

fn set_version(r: &mut [u8], version: u32) {
    r[0..4].copy_from_slice(&version.to_le_bytes());
}

#[test]
fn reserved_ranges_per_version() {
    // (version, offset, expected range start, end)
    let cases: &[(u32, usize, usize, usize)] = &[
        (2, 0x04C, 0x04C, 0x050),
        (2, 0x04F, 0x04C, 0x050),
        (2, 0x188, 0x188, 0x1A0),
        (2, 0x19F, 0x188, 0x1A0),
        (3, 0x18B, 0x18B, 0x1A0),
        (3, 0x19F, 0x18B, 0x1A0),
        (2, 0x1EB, 0x1EB, 0x1EC),
        (3, 0x1EF, 0x1EF, 0x1F0),
        (2, 0x1F8, 0x1F8, 0x2A0),
        (4, 0x200, 0x1F8, 0x2A0),
        (4, 0x29F, 0x1F8, 0x2A0),
        (5, 0x208, 0x208, 0x2A0),
        (5, 0x29F, 0x208, 0x2A0),
        (5, 0x330, 0x330, 0x4A0),
        (2, 0x49F, 0x330, 0x4A0),
    ];
    for &(version, offset, start, end) in cases {
        let mut r = report_milan();
        set_version(&mut r, version);
        if version >= 3 {
            r[0x188] = 0x19; // Milan CPUID
        }
        check_structure(&r, Product::Milan).unwrap_or_else(|e| panic!("v{version} baseline: {e}"));
        r[offset] = 0x5a;
        assert_eq!(
            check_structure(&r, Product::Milan).unwrap_err(),
            Error::ReservedBytesNotZero {
                field: "reserved",
                start,
                end,
                offset,
                found: 0x5a
            },
            "v{version} offset {offset:#x}"
        );
    }
}

#[test]
fn v3_cpuid_and_v5_mitigation_vectors_are_not_reserved() {
    let mut r = report_milan();
    set_version(&mut r, 3);
    r[0x188..0x18B].copy_from_slice(&[0x19, 0x01, 0x01]);
    check_structure(&r, Product::Milan).unwrap();
    set_version(&mut r, 5);
    r[0x1F8] = 1;
    r[0x207] = 0x80;
    check_structure(&r, Product::Milan).unwrap();
}

#[test]
fn tcb_reserved_bytes_per_generation() {
    for (name, field) in [
        ("CURRENT_TCB", 0x038),
        ("REPORTED_TCB", 0x180),
        ("COMMITTED_TCB", 0x1E0),
        ("LAUNCH_TCB", 0x1F0),
    ] {
        for index in [2usize, 5] {
            let mut r = report_milan();
            r[field + index] = 1;
            let err = check_structure(&r, Product::Milan).unwrap_err();
            assert_eq!(
                err,
                Error::ReservedBytesNotZero {
                    field: name,
                    start: field + index,
                    end: field + index + 1,
                    offset: field + index,
                    found: 1
                }
            );
        }
        // Byte 6 is SNP on Milan but reserved on Turin.
        let mut r = report_milan();
        r[0x1A8..0x1E0].fill(0);
        for tcb in [0x038, 0x180, 0x1E0, 0x1F0] {
            r[tcb..tcb + 8].copy_from_slice(&[0, 3, 0, 8, 0, 0, 0, 0x73]);
        }
        check_structure(&r, Product::Turin).unwrap();
        r[field + 6] = 1;
        assert!(
            matches!(check_structure(&r, Product::Turin), Err(Error::ReservedBytesNotZero { field: f, .. }) if f == name)
        );
    }
}

#[test]
fn turin_chip_id_tail_must_be_zero() {
    let r = report_milan(); // Milan chip id uses all 64 bytes
    assert_eq!(
        check_structure(&r, Product::Turin).unwrap_err(),
        Error::ReservedBytesNotZero {
            field: "reserved",
            start: 0x1A8,
            end: 0x1E0,
            offset: 0x1A8,
            found: r[0x1A8]
        }
    );
}

#[test]
fn reserved_bits() {
    let mut r = report_milan();
    r[0x008 + 3] = 0x04; // policy bit 26
    assert_eq!(
        check_structure(&r, Product::Milan).unwrap_err(),
        Error::ReservedBitsSet {
            field: "POLICY",
            offset: 0x008,
            found: 1 << 26,
            allowed: (1 << 26) - 1
        }
    );
    let mut r = report_milan();
    r[0x008 + 2] = 0x01; // clear bit 17
    assert_eq!(
        check_structure(&r, Product::Milan).unwrap_err(),
        Error::PolicyBit17Clear
    );
    let mut r = report_milan();
    r[0x008 + 3] = 0x02; // bit 25, page swap disable: defined
    check_structure(&r, Product::Milan).unwrap();

    // PLATFORM_INFO: bit 5 only from v3, bit 7 only from v5, bit 6 never.
    for (version, bit, ok) in [
        (2u32, 5u32, false),
        (3, 5, true),
        (4, 7, false),
        (5, 7, true),
        (5, 6, false),
        (5, 8, false),
    ] {
        let mut r = report_milan();
        set_version(&mut r, version);
        if version >= 3 {
            r[0x188] = 0x19;
        }
        r[0x040..0x048].copy_from_slice(&(1u64 << bit).to_le_bytes());
        let result = check_structure(&r, Product::Milan);
        if ok {
            result.unwrap();
        } else {
            assert!(
                matches!(result, Err(Error::ReservedBitsSet { field: "PLATFORM_INFO", offset: 0x040, found, .. }) if found == 1 << bit),
                "v{version} bit {bit}: {result:?}"
            );
        }
    }

    let mut r = report_milan();
    r[0x048] = 0x20; // KEY_INFO bit 5
    assert_eq!(
        check_structure(&r, Product::Milan).unwrap_err(),
        Error::ReservedBitsSet {
            field: "KEY_INFO",
            offset: 0x048,
            found: 0x20,
            allowed: 0x1F
        }
    );
    for raw in 2u8..=6 {
        let mut r = report_milan();
        r[0x048] = raw << 2;
        assert_eq!(
            check_structure(&r, Product::Milan).unwrap_err(),
            Error::ReservedSigningKey { found: raw }
        );
    }
    let mut r = report_milan();
    r[0x048] = 7 << 2;
    assert!(matches!(
        check_structure(&r, Product::Milan),
        Err(Error::ReportNotSigned { .. })
    ));
    let mut r = report_milan();
    r[0x048] = 0x02;
    assert!(matches!(
        check_structure(&r, Product::Milan),
        Err(Error::ReportNotSigned { .. })
    ));
    let mut r = report_milan();
    r[0x030] = 4;
    assert_eq!(
        check_structure(&r, Product::Milan).unwrap_err(),
        Error::InvalidVmpl { found: 4 }
    );
}

#[test]
fn unsigned_report_is_refused_by_verify_report() {
    let mut r = report_milan();
    r[0x048] = 7 << 2;
    let err = contrast_attest::verify_report(
        &r,
        &contrast_attest::collateral::CollateralMap::new(),
        &contrast_attest::TrustAnchor::Amd(Product::Milan),
        T_2025_01_01,
        contrast_attest::CrlPolicy::BestEffort,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ReportNotSigned { .. }));
    let _ = LeafKind::Vcek;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 1184)) {
        if let Ok(u) = UnverifiedReport::from_bytes(&bytes) {
            let _ = (u.version(), u.chip_id(), u.reported_tcb_raw(), u.signing_key(), u.cpuid_product());
            let _ = u.product(Product::Milan);
        }
        for product in [Product::Milan, Product::Genoa, Product::Turin] {
            let _ = check_structure(&bytes, product);
        }
    }

    #[test]
    fn framed_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 1184), version in 2u32..=5) {
        bytes[0..4].copy_from_slice(&version.to_le_bytes());
        bytes[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
        let u = UnverifiedReport::from_bytes(&bytes).unwrap();
        let _ = (u.signing_key(), u.cpuid_product(), u.reported_tcb(Product::Turin));
        for product in [Product::Milan, Product::Genoa, Product::Turin] {
            let _ = check_structure(&bytes, product);
        }
    }

    #[test]
    fn arbitrary_lengths_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        prop_assume!(bytes.len() != 1184);
        prop_assert_eq!(UnverifiedReport::from_bytes(&bytes).unwrap_err(), Error::ReportLength { found: bytes.len() });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cert_table_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = contrast_attest::collateral::CertTable::parse(&bytes);
    }

    #[test]
    fn cert_table_with_plausible_entries_never_panics(
        guid in any::<[u8; 16]>(), offset in 0u32..300, len in 0u32..300, tail in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        let mut bytes = guid.to_vec();
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&[0; 24]);
        bytes.extend_from_slice(&tail);
        if let Ok(table) = contrast_attest::collateral::CertTable::parse(&bytes) {
            for (_, data) in table.entries() {
                prop_assert!(data.len() <= tail.len());
            }
        }
    }
}
