//! go-sev-guest's `sevsnp.Attestation` (the SEV-SNP evidence under 1.3.9901.2.1): every real
//! AMD report survives report → proto → report byte for byte, every proto field of a signed
//! report is covered by the signature (or refused by width), the Attestation builder and parser,
//! and a proptest round trip over synthetic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use contrast_attest::evidence::{
    AttestationBuilder, CRL_EXTRAS_KEY, EvidenceError, MAX_ATTESTATION_LEN, MAX_EXTRAS,
    SnpEvidence, fms_to_cpuid1_eax, report_from_proto, report_to_proto, sevsnp,
};
use contrast_attest::report::{Field, LeafKey, REPORT_LEN};
use contrast_attest::{Error, LeafKind, Product, TcbVersion, UnverifiedReport};
use contrast_sim::{SimulatedGuest, SimulatedPlatform};
use proptest::prelude::*;
use prost::Message as _;

/// A real report with the leaf that signed it (if published) and its product.
struct Vector {
    name: &'static str,
    report: Vec<u8>,
    leaf: Option<(LeafKind, &'static [u8])>,
    product: Product,
}

fn vectors() -> Vec<Vector> {
    let milan_hex = include_str!("vectors/report_milan.hex");
    vec![
        Vector {
            name: "report_milan.hex",
            report: hex::decode(milan_hex.trim()).unwrap(),
            leaf: Some((LeafKind::Vcek, include_bytes!("vectors/vcek_milan.der"))),
            product: Product::Milan,
        },
        Vector {
            name: "gosevguest_attestation.bin",
            report: include_bytes!("vectors/gosevguest_attestation.bin").to_vec(),
            leaf: Some((
                LeafKind::Vcek,
                include_bytes!("vectors/gosevguest_vcek.der"),
            )),
            product: Product::Milan,
        },
        Vector {
            name: "test-report.bin",
            report: include_bytes!("vectors/test-report.bin").to_vec(),
            leaf: Some((LeafKind::Vcek, include_bytes!("vectors/test-vcek.der"))),
            product: Product::Milan,
        },
        Vector {
            name: "test-vlek-report.bin",
            report: include_bytes!("vectors/test-vlek-report.bin").to_vec(),
            leaf: Some((LeafKind::Vlek, include_bytes!("vectors/test-vlek.der"))),
            product: Product::Milan,
        },
        Vector {
            name: "genoa_v3_report.bin",
            report: include_bytes!("vectors/genoa_v3_report.bin").to_vec(),
            leaf: Some((LeafKind::Vcek, include_bytes!("vectors/genoa_vcek.der"))),
            product: Product::Genoa,
        },
        Vector {
            name: "genoa_azure_report.bin",
            report: include_bytes!("vectors/genoa_azure_report.bin").to_vec(),
            leaf: Some((
                LeafKind::Vcek,
                include_bytes!("vectors/genoa_azure_vcek.der"),
            )),
            product: Product::Genoa,
        },
        Vector {
            name: "milan_gce_report_v4.bin",
            report: include_bytes!("vectors/milan_gce_report_v4.bin").to_vec(),
            leaf: None,
            product: Product::Milan,
        },
    ]
}

fn le_u32(report: &[u8], field: Field) -> u32 {
    u32::from_le_bytes(report[field.range()].try_into().unwrap())
}

fn le_u64(report: &[u8], field: Field) -> u64 {
    u64::from_le_bytes(report[field.range()].try_into().unwrap())
}

/// Every proto field against the report bytes it came from.
fn assert_fields(name: &str, report: &[u8], proto: &sevsnp::Report) {
    let byte = |field: Field| u32::from(report[field.offset()]);
    assert_eq!(proto.version, le_u32(report, Field::Version), "{name}");
    assert_eq!(proto.guest_svn, le_u32(report, Field::GuestSvn), "{name}");
    assert_eq!(proto.policy, le_u64(report, Field::Policy), "{name}");
    assert_eq!(proto.family_id, &report[Field::FamilyId.range()], "{name}");
    assert_eq!(proto.image_id, &report[Field::ImageId.range()], "{name}");
    assert_eq!(proto.vmpl, le_u32(report, Field::Vmpl), "{name}");
    assert_eq!(
        proto.signature_algo,
        le_u32(report, Field::SignatureAlgo),
        "{name}"
    );
    assert_eq!(
        proto.current_tcb,
        le_u64(report, Field::CurrentTcb),
        "{name}"
    );
    assert_eq!(
        proto.platform_info,
        le_u64(report, Field::PlatformInfo),
        "{name}"
    );
    assert_eq!(proto.signer_info, le_u32(report, Field::KeyInfo), "{name}");
    assert_eq!(
        proto.report_data,
        &report[Field::ReportData.range()],
        "{name}"
    );
    assert_eq!(
        proto.measurement,
        &report[Field::Measurement.range()],
        "{name}"
    );
    assert_eq!(proto.host_data, &report[Field::HostData.range()], "{name}");
    assert_eq!(
        proto.id_key_digest,
        &report[Field::IdKeyDigest.range()],
        "{name}"
    );
    assert_eq!(
        proto.author_key_digest,
        &report[Field::AuthorKeyDigest.range()],
        "{name}"
    );
    assert_eq!(proto.report_id, &report[Field::ReportId.range()], "{name}");
    assert_eq!(
        proto.report_id_ma,
        &report[Field::ReportIdMa.range()],
        "{name}"
    );
    assert_eq!(
        proto.reported_tcb,
        le_u64(report, Field::ReportedTcb),
        "{name}"
    );
    assert_eq!(proto.chip_id, &report[Field::ChipId.range()], "{name}");
    assert_eq!(
        proto.committed_tcb,
        le_u64(report, Field::CommittedTcb),
        "{name}"
    );
    assert_eq!(proto.current_build, byte(Field::CurrentBuild), "{name}");
    assert_eq!(proto.current_minor, byte(Field::CurrentMinor), "{name}");
    assert_eq!(proto.current_major, byte(Field::CurrentMajor), "{name}");
    assert_eq!(proto.committed_build, byte(Field::CommittedBuild), "{name}");
    assert_eq!(proto.committed_minor, byte(Field::CommittedMinor), "{name}");
    assert_eq!(proto.committed_major, byte(Field::CommittedMajor), "{name}");
    assert_eq!(proto.launch_tcb, le_u64(report, Field::LaunchTcb), "{name}");
    assert_eq!(proto.signature, &report[0x2A0..0x4A0], "{name}");
    let version = proto.version;
    let cpuid = if version >= 3 {
        fms_to_cpuid1_eax(
            report[Field::CpuidFamId.offset()],
            report[Field::CpuidModId.offset()],
            report[Field::CpuidStep.offset()],
        )
    } else {
        0
    };
    assert_eq!(proto.cpuid1eax_fms, cpuid, "{name}");
    let (launch, current) = if version >= 5 {
        (
            le_u64(report, Field::LaunchMitVector),
            le_u64(report, Field::CurrentMitVector),
        )
    } else {
        (0, 0)
    };
    assert_eq!(proto.launch_mit_vector, launch, "{name}");
    assert_eq!(proto.current_mit_vector, current, "{name}");
}

/// Verifies a rebuilt report's signature (then structure) with `leaf`.
fn verify(report: &[u8], leaf: (LeafKind, &[u8]), product: Product) -> Result<(), Error> {
    let key = LeafKey::from_untrusted_certificate(leaf.1, leaf.0, product)?;
    UnverifiedReport::from_bytes(report)?
        .verify(&key)
        .map(|_| ())
}

#[test]
fn every_real_report_round_trips_byte_for_byte_and_still_verifies() {
    for v in vectors() {
        assert_eq!(v.report.len(), REPORT_LEN, "{}", v.name);
        let proto = report_to_proto(&v.report).unwrap();
        assert_fields(v.name, &v.report, &proto);
        let rebuilt = report_from_proto(&proto).unwrap();
        assert_eq!(rebuilt.as_slice(), v.report.as_slice(), "{}", v.name);
        // Through the wire encoding as well.
        let decoded = sevsnp::Report::decode(proto.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, proto, "{}", v.name);
        if let Some(leaf) = v.leaf {
            verify(&rebuilt[..], leaf, v.product).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        }
    }
}

/// What a mutation of one proto field must lead to.
#[derive(Debug)]
enum Expect {
    /// The rebuilt report's signature does not verify.
    BadSignature,
    /// Rebuilding fails with this error.
    Rebuild(EvidenceError),
    /// The rebuilt report is refused by the report parser with an error this predicate accepts.
    Report(fn(&Error) -> bool),
}

fn check(
    name: &str,
    proto: &sevsnp::Report,
    leaf: (LeafKind, &[u8]),
    product: Product,
    expect: &Expect,
) {
    match (report_from_proto(proto), expect) {
        (Err(found), Expect::Rebuild(expected)) => assert_eq!(&found, expected, "{name}"),
        (Ok(rebuilt), Expect::BadSignature) => match verify(&rebuilt[..], leaf, product) {
            Err(Error::ReportSignatureInvalid { .. }) => {}
            other => panic!("{name}: expected a bad signature, got {other:?}"),
        },
        (Ok(rebuilt), Expect::Report(accept)) => match verify(&rebuilt[..], leaf, product) {
            Err(e) if accept(&e) => {}
            other => panic!("{name}: unexpected {other:?}"),
        },
        (other, _) => panic!("{name}: expected {expect:?}, got {other:?}"),
    }
}

fn width(field: &'static str, expected: usize, found: usize) -> Expect {
    Expect::Rebuild(EvidenceError::FieldWidth {
        field,
        expected,
        found,
    })
}

fn range(field: &'static str, found: u64) -> Expect {
    Expect::Rebuild(EvidenceError::FieldRange {
        field,
        expected: 255,
        width: 1,
        found,
    })
}

type Mutation = (&'static str, fn(&mut sevsnp::Report), Expect);

/// Mutations of every field of a version-2 report (report_milan.hex).
fn mutations_v2() -> Vec<Mutation> {
    vec![
        ("version 2→3", |r| r.version = 3, Expect::BadSignature),
        ("version 2→5", |r| r.version = 5, Expect::BadSignature),
        (
            "version 6",
            |r| r.version = 6,
            Expect::Rebuild(EvidenceError::UnsupportedVersion {
                field: "version",
                expected: "2, 3, 4 or 5",
                found: 6,
            }),
        ),
        ("guest_svn", |r| r.guest_svn ^= 1, Expect::BadSignature),
        ("policy", |r| r.policy ^= 1, Expect::BadSignature),
        (
            "family_id",
            |r| r.family_id[5] ^= 0x80,
            Expect::BadSignature,
        ),
        (
            "family_id 17 bytes",
            |r| r.family_id.push(0),
            width("family_id", 16, 17),
        ),
        ("image_id", |r| r.image_id[0] ^= 1, Expect::BadSignature),
        (
            "image_id 15 bytes",
            |r| {
                r.image_id.pop();
            },
            width("image_id", 16, 15),
        ),
        ("vmpl", |r| r.vmpl ^= 1, Expect::BadSignature),
        (
            "signature_algo",
            |r| r.signature_algo = 2,
            Expect::Report(|e| matches!(e, Error::UnsupportedSignatureAlgorithm { found: 2 })),
        ),
        ("current_tcb", |r| r.current_tcb ^= 1, Expect::BadSignature),
        (
            "platform_info",
            |r| r.platform_info ^= 2,
            Expect::BadSignature,
        ),
        ("signer_info", |r| r.signer_info ^= 1, Expect::BadSignature),
        (
            "report_data",
            |r| r.report_data[63] ^= 1,
            Expect::BadSignature,
        ),
        (
            "report_data empty",
            |r| r.report_data.clear(),
            width("report_data", 64, 0),
        ),
        (
            "measurement",
            |r| r.measurement[0] ^= 1,
            Expect::BadSignature,
        ),
        (
            "measurement 49",
            |r| r.measurement.push(1),
            width("measurement", 48, 49),
        ),
        ("host_data", |r| r.host_data[31] ^= 1, Expect::BadSignature),
        (
            "host_data 33",
            |r| r.host_data.push(0),
            width("host_data", 32, 33),
        ),
        (
            "id_key_digest",
            |r| r.id_key_digest[1] ^= 1,
            Expect::BadSignature,
        ),
        (
            "id_key_digest 0",
            |r| r.id_key_digest.clear(),
            width("id_key_digest", 48, 0),
        ),
        (
            "author_key_digest",
            |r| r.author_key_digest[2] ^= 1,
            Expect::BadSignature,
        ),
        (
            "author_key_digest 47",
            |r| {
                r.author_key_digest.pop();
            },
            width("author_key_digest", 48, 47),
        ),
        ("report_id", |r| r.report_id[3] ^= 1, Expect::BadSignature),
        (
            "report_id 33",
            |r| r.report_id.push(0),
            width("report_id", 32, 33),
        ),
        (
            "report_id_ma",
            |r| r.report_id_ma[4] ^= 1,
            Expect::BadSignature,
        ),
        (
            "report_id_ma 31",
            |r| {
                r.report_id_ma.pop();
            },
            width("report_id_ma", 32, 31),
        ),
        (
            "reported_tcb",
            |r| r.reported_tcb ^= 1 << 56,
            Expect::BadSignature,
        ),
        ("chip_id", |r| r.chip_id[63] ^= 1, Expect::BadSignature),
        (
            "chip_id 65",
            |r| r.chip_id.push(0),
            width("chip_id", 64, 65),
        ),
        (
            "committed_tcb",
            |r| r.committed_tcb ^= 1,
            Expect::BadSignature,
        ),
        (
            "current_build",
            |r| r.current_build ^= 1,
            Expect::BadSignature,
        ),
        (
            "current_build 256",
            |r| r.current_build = 256,
            range("current_build", 256),
        ),
        (
            "current_minor",
            |r| r.current_minor ^= 1,
            Expect::BadSignature,
        ),
        (
            "current_minor 300",
            |r| r.current_minor = 300,
            range("current_minor", 300),
        ),
        (
            "current_major",
            |r| r.current_major ^= 1,
            Expect::BadSignature,
        ),
        (
            "current_major max",
            |r| r.current_major = u32::MAX,
            range("current_major", u64::from(u32::MAX)),
        ),
        (
            "committed_build",
            |r| r.committed_build ^= 1,
            Expect::BadSignature,
        ),
        (
            "committed_build 256",
            |r| r.committed_build = 256,
            range("committed_build", 256),
        ),
        (
            "committed_minor",
            |r| r.committed_minor ^= 1,
            Expect::BadSignature,
        ),
        (
            "committed_minor 1000",
            |r| r.committed_minor = 1000,
            range("committed_minor", 1000),
        ),
        (
            "committed_major",
            |r| r.committed_major ^= 1,
            Expect::BadSignature,
        ),
        (
            "committed_major 256",
            |r| r.committed_major = 256,
            range("committed_major", 256),
        ),
        ("launch_tcb", |r| r.launch_tcb ^= 1, Expect::BadSignature),
        ("signature R", |r| r.signature[0] ^= 1, Expect::BadSignature),
        (
            "signature S",
            |r| r.signature[0x48] ^= 1,
            Expect::BadSignature,
        ),
        (
            "signature R above 48 bytes",
            |r| r.signature[0x30] = 1,
            Expect::Report(|e| matches!(e, Error::SignatureComponentTooLarge { .. })),
        ),
        (
            "signature reserved tail",
            |r| r.signature[0x1FF] = 1,
            Expect::Report(|e| matches!(e, Error::ReservedBytesNotZero { .. })),
        ),
        (
            "signature 511",
            |r| {
                r.signature.pop();
            },
            width("signature", 512, 511),
        ),
        (
            "cpuid1eax_fms in v2",
            |r| r.cpuid1eax_fms = 0x00A0_0F11,
            Expect::Rebuild(EvidenceError::FieldNotInVersion {
                field: "cpuid1eax_fms",
                expected: 3,
                version: 2,
                found: 0x00A0_0F11,
            }),
        ),
        (
            "launch_mit_vector in v2",
            |r| r.launch_mit_vector = 1,
            Expect::Rebuild(EvidenceError::FieldNotInVersion {
                field: "launch_mit_vector",
                expected: 5,
                version: 2,
                found: 1,
            }),
        ),
        (
            "current_mit_vector in v2",
            |r| r.current_mit_vector = 7,
            Expect::Rebuild(EvidenceError::FieldNotInVersion {
                field: "current_mit_vector",
                expected: 5,
                version: 2,
                found: 7,
            }),
        ),
    ]
}

#[test]
fn every_proto_field_of_a_signed_v2_report_is_covered() {
    let v = &vectors()[0];
    let leaf = v.leaf.unwrap();
    let original = report_to_proto(&v.report).unwrap();
    for (name, mutate, expect) in mutations_v2() {
        let mut proto = original.clone();
        mutate(&mut proto);
        assert_ne!(proto, original, "{name} changes nothing");
        check(name, &proto, leaf, v.product, &expect);
    }
}

#[test]
fn cpuid_of_a_signed_v3_report_is_covered() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "genoa_azure_report.bin")
        .unwrap();
    let leaf = v.leaf.unwrap();
    let original = report_to_proto(&v.report).unwrap();
    assert_eq!(original.version, 3);
    let cases: Vec<Mutation> = vec![
        ("stepping", |r| r.cpuid1eax_fms ^= 1, Expect::BadSignature),
        ("model", |r| r.cpuid1eax_fms ^= 1 << 4, Expect::BadSignature),
        (
            "extended family",
            |r| r.cpuid1eax_fms ^= 1 << 20,
            Expect::BadSignature,
        ),
        (
            "reserved bit 28",
            |r| r.cpuid1eax_fms |= 1 << 28,
            Expect::Rebuild(EvidenceError::NonCanonicalCpuid {
                expected: 0x00A1_0F11,
                found: 0x10A1_0F11,
            }),
        ),
        (
            "family split (base 0xE + extended 0xB)",
            |r| r.cpuid1eax_fms = 0x00B1_0E11,
            Expect::Rebuild(EvidenceError::NonCanonicalCpuid {
                expected: 0x00A1_0F11,
                found: 0x00B1_0E11,
            }),
        ),
        (
            "launch_mit_vector in v3",
            |r| r.launch_mit_vector = 2,
            Expect::Rebuild(EvidenceError::FieldNotInVersion {
                field: "launch_mit_vector",
                expected: 5,
                version: 3,
                found: 2,
            }),
        ),
        (
            "version 3→4 (same layout)",
            |r| r.version = 4,
            Expect::BadSignature,
        ),
        (
            "version 3→2",
            |r| r.version = 2,
            Expect::Rebuild(EvidenceError::FieldNotInVersion {
                field: "cpuid1eax_fms",
                expected: 3,
                version: 2,
                found: 0x00A1_0F11,
            }),
        ),
    ];
    assert_eq!(
        original.cpuid1eax_fms, 0x00A1_0F11,
        "Genoa (0x19, 0x11) stepping 1"
    );
    for (name, mutate, expect) in cases {
        let mut proto = original.clone();
        mutate(&mut proto);
        check(name, &proto, leaf, v.product, &expect);
    }
}

/// A simulated version-5 report (with mitigation vectors) and its VCEK.
fn simulated_v5() -> (Vec<u8>, Vec<u8>) {
    let not_before = SystemTime::now() - Duration::from_secs(3600);
    let platform =
        SimulatedPlatform::generate(Product::Milan, not_before, &mut rand_core::OsRng).unwrap();
    let tcb = TcbVersion {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    };
    let mut guest = SimulatedGuest::new(Product::Milan, [9; 64], tcb);
    guest.version = 5;
    guest.launch_mit_vector = 0x0102_0304_0506_0708;
    guest.current_mit_vector = 0x1112_1314_1516_1718;
    let report = guest.report(&platform, &[4; 64]).unwrap();
    (report, guest.vcek_der(&platform).unwrap())
}

#[test]
fn mitigation_vectors_of_a_signed_v5_report_are_covered() {
    let (report, vcek) = simulated_v5();
    let leaf = (LeafKind::Vcek, vcek.as_slice());
    let original = report_to_proto(&report).unwrap();
    assert_fields("simulated v5", &report, &original);
    assert_eq!(original.launch_mit_vector, 0x0102_0304_0506_0708);
    assert_eq!(
        report_from_proto(&original).unwrap().as_slice(),
        report.as_slice()
    );
    verify(&report, leaf, Product::Milan).unwrap();
    let cases: Vec<Mutation> = vec![
        (
            "launch_mit_vector",
            |r| r.launch_mit_vector ^= 1,
            Expect::BadSignature,
        ),
        (
            "current_mit_vector",
            |r| r.current_mit_vector ^= 1 << 63,
            Expect::BadSignature,
        ),
        (
            "cpuid1eax_fms",
            |r| r.cpuid1eax_fms ^= 2,
            Expect::BadSignature,
        ),
        (
            "version 5→4 keeps the vectors",
            |r| r.version = 4,
            Expect::Rebuild(EvidenceError::FieldNotInVersion {
                field: "launch_mit_vector",
                expected: 5,
                version: 4,
                found: 0x0102_0304_0506_0708,
            }),
        ),
    ];
    for (name, mutate, expect) in cases {
        let mut proto = original.clone();
        mutate(&mut proto);
        check(name, &proto, leaf, Product::Milan, &expect);
    }
}

#[test]
fn report_to_proto_refuses_what_the_proto_cannot_carry() {
    let v = &vectors()[0];
    let mut report = v.report.clone();
    assert_eq!(
        report_to_proto(&report[..1183]),
        Err(EvidenceError::ReportLength {
            expected: 1184,
            found: 1183
        })
    );
    report[0] = 6;
    assert!(matches!(
        report_to_proto(&report),
        Err(EvidenceError::UnsupportedVersion { found: 6, .. })
    ));
    // Version 2: the CPUID bytes are reserved.
    let mut report = v.report.clone();
    report[0x189] = 1;
    assert!(matches!(
        report_to_proto(&report),
        Err(EvidenceError::ReservedNotZero {
            version: 2,
            offset: 0x188,
            end: 0x1A0,
            ..
        })
    ));
    for offset in [0x4C, 0x1EB, 0x1EF, 0x1F8, 0x29F] {
        let mut report = v.report.clone();
        report[offset] = 0x10;
        assert!(
            matches!(
                report_to_proto(&report),
                Err(EvidenceError::ReservedNotZero { .. })
            ),
            "{offset:#x}"
        );
    }
    // Version 3: a stepping above 0xF does not fit cpuid1eax_fms.
    let mut report = include_bytes!("vectors/genoa_azure_report.bin").to_vec();
    report[0x18A] = 0x10;
    assert_eq!(
        report_to_proto(&report),
        Err(EvidenceError::SteppingRange {
            expected: 0xF,
            found: 0x10
        })
    );
}

fn milan_chain() -> (&'static [u8], &'static [u8]) {
    (
        include_bytes!("../roots/milan/ask.der"),
        include_bytes!("../roots/milan/ark.der"),
    )
}

#[test]
fn builder_and_parser_carry_certificates_crl_and_product() {
    let v = &vectors()[0];
    let (ask, ark) = milan_chain();
    let crl = include_bytes!("vectors/milan_crl9.der");
    let (kind, vcek) = v.leaf.unwrap();
    let builder = AttestationBuilder::new(&v.report)
        .leaf(kind, vcek)
        .intermediate(Some(ask))
        .ark(Some(ark))
        .crl(Some(crl));
    let proto = builder.build().unwrap();
    // v2 has no CPUID: the product comes from the VCEK's productName (Milan-B0).
    let product = proto.product.unwrap();
    assert_eq!(
        product.name,
        sevsnp::sev_product::SevProductName::SevProductMilan as i32
    );
    assert_eq!(product.machine_stepping, Some(0));
    let chain = proto.certificate_chain.clone().unwrap();
    assert_eq!(chain.extras.len(), 1);
    assert_eq!(chain.extras[CRL_EXTRAS_KEY], crl);
    assert!(chain.vlek_cert.is_empty());

    let bytes = builder.encode().unwrap();
    assert_eq!(bytes, proto.encode_to_vec());
    let evidence = SnpEvidence::parse(&bytes).unwrap();
    assert_eq!(evidence.report().as_slice(), v.report.as_slice());
    assert_eq!(evidence.leaf(LeafKind::Vcek), Some(vcek));
    assert_eq!(evidence.leaf(LeafKind::Vlek), None);
    assert_eq!(evidence.intermediate(), Some(ask));
    assert_eq!(evidence.ark(), Some(ark));
    assert_eq!(evidence.crl(), Some(&crl[..]));
    assert_eq!(evidence.claimed_product(), Some(Product::Milan));
    assert_eq!(evidence.report_data(), v.report[0x50..0x90]);

    // Without certificates: only the report and the product (UNKNOWN for v2 without a leaf).
    let bare = AttestationBuilder::new(&v.report).build().unwrap();
    assert_eq!(bare.product.unwrap().name, 0);
    let bare = SnpEvidence::parse(&bare.encode_to_vec()).unwrap();
    assert_eq!(bare.leaf(LeafKind::Vcek), None);
    assert_eq!(bare.crl(), None);
    assert_eq!(bare.claimed_product(), None);
}

#[test]
fn builder_takes_the_product_from_cpuid_and_a_vlek() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "test-vlek-report.bin")
        .unwrap();
    let (kind, vlek) = v.leaf.unwrap();
    let bytes = AttestationBuilder::new(&v.report)
        .leaf(kind, vlek)
        .encode()
        .unwrap();
    let evidence = SnpEvidence::parse(&bytes).unwrap();
    assert_eq!(evidence.leaf(LeafKind::Vlek), Some(vlek));
    assert_eq!(evidence.leaf(LeafKind::Vcek), None);
    assert_eq!(evidence.claimed_product(), Some(Product::Milan));
    let genoa = vectors()
        .into_iter()
        .find(|v| v.name == "genoa_azure_report.bin")
        .unwrap();
    let bytes = AttestationBuilder::new(&genoa.report).encode().unwrap();
    assert_eq!(
        SnpEvidence::parse(&bytes).unwrap().claimed_product(),
        Some(Product::Genoa)
    );
}

fn attestation(report: &[u8]) -> sevsnp::Attestation {
    AttestationBuilder::new(report).build().unwrap()
}

#[test]
fn parser_rejections() {
    let v = &vectors()[0];
    let genoa = include_bytes!("vectors/genoa_azure_report.bin");

    let too_large = vec![0u8; MAX_ATTESTATION_LEN + 1];
    assert_eq!(
        SnpEvidence::parse(&too_large),
        Err(EvidenceError::TooLarge {
            expected: MAX_ATTESTATION_LEN,
            found: MAX_ATTESTATION_LEN + 1
        })
    );
    assert!(matches!(
        SnpEvidence::parse(b"\xff\xff"),
        Err(EvidenceError::Decode { .. })
    ));
    // A truncated message.
    let bytes = attestation(&v.report).encode_to_vec();
    assert!(matches!(
        SnpEvidence::parse(&bytes[..bytes.len() - 1]),
        Err(EvidenceError::Decode { .. })
    ));
    assert_eq!(
        SnpEvidence::parse(b""),
        Err(EvidenceError::Missing { field: "report" })
    );

    // A report field of the wrong width inside the message.
    let mut a = attestation(&v.report);
    a.report.as_mut().unwrap().family_id.push(0);
    assert_eq!(
        SnpEvidence::parse(&a.encode_to_vec()),
        Err(EvidenceError::FieldWidth {
            field: "family_id",
            expected: 16,
            found: 17
        })
    );

    // product.name outside the enum, and a name the report's CPUID contradicts.
    let mut a = attestation(genoa);
    a.product.as_mut().unwrap().name = 7;
    assert_eq!(
        SnpEvidence::parse(&a.encode_to_vec()),
        Err(EvidenceError::UnknownProductName { found: 7 })
    );
    let mut a = attestation(genoa);
    a.product.as_mut().unwrap().name = 1;
    assert_eq!(
        SnpEvidence::parse(&a.encode_to_vec()),
        Err(EvidenceError::ProductMismatch {
            expected: "Genoa",
            found: "Milan"
        })
    );

    // Extras: unknown keys are ignored, but only MAX_EXTRAS of them.
    let mut a = attestation(&v.report);
    let chain = a.certificate_chain.as_mut().unwrap();
    chain.extras.insert(
        "ecae0c0f-9502-43b1-afa2-0ae2e0d565b6".into(),
        vec![8, 0, 0, 0],
    );
    let parsed = SnpEvidence::parse(&a.encode_to_vec()).unwrap();
    assert_eq!(parsed.crl(), None);
    let chain = a.certificate_chain.as_mut().unwrap();
    for i in 0..MAX_EXTRAS {
        chain.extras.insert(format!("extra-{i}"), vec![1]);
    }
    assert_eq!(
        SnpEvidence::parse(&a.encode_to_vec()),
        Err(EvidenceError::TooManyExtras {
            expected: MAX_EXTRAS,
            found: MAX_EXTRAS + 1
        })
    );
}

/// A synthetic report: random bytes with the reserved ranges of its version zeroed, a known
/// version and a stepping that fits 4 bits.
fn synthetic_report() -> impl Strategy<Value = Vec<u8>> {
    (2u32..=5, proptest::collection::vec(any::<u8>(), REPORT_LEN)).prop_map(|(version, mut r)| {
        r[0..4].copy_from_slice(&version.to_le_bytes());
        let mut zero = |range: std::ops::Range<usize>| r[range].fill(0);
        zero(Field::ReservedAfterKeyInfo.range());
        zero(Field::ReservedAfterCurrent.range());
        zero(Field::ReservedAfterCommitted.range());
        if version >= 3 {
            zero(Field::ReservedAfterCpuid.range());
        } else {
            zero(0x188..0x1A0);
        }
        if version >= 5 {
            zero(Field::ReservedAfterMitVector.range());
        } else {
            zero(0x1F8..0x2A0);
        }
        r[Field::CpuidStep.offset()] &= 0xF;
        r
    })
}

proptest! {
    #[test]
    fn synthetic_reports_round_trip(report in synthetic_report()) {
        let proto = report_to_proto(&report).unwrap();
        assert_fields("synthetic", &report, &proto);
        let rebuilt = report_from_proto(&proto).unwrap();
        prop_assert_eq!(rebuilt.as_slice(), report.as_slice());
        let wire = AttestationBuilder::new(&report).encode().unwrap();
        let parsed = SnpEvidence::parse(&wire).unwrap();
        prop_assert_eq!(parsed.report().as_slice(), report.as_slice());
    }
}
