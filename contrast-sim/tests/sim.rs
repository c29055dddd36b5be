//! Tests of the simulated SEV-SNP platform (crate `contrast-sim`): certificate structure and
//! signatures against AMD's real certificates, report layout and signature, the `sev` crate's
//! parse of the same bytes, save/load, and every error.
//!
//! Cross-checked with the OpenSSL CLI while developing (run the ignored `dump_for_openssl` test
//! to write the files):
//!
//! ```text
//! cargo test -p contrast-sim --test sim -- --ignored dump_for_openssl
//! cd "$TMPDIR/contrast-sim-openssl/milan"   # or genoa, turin
//! openssl verify -CAfile ark.pem -untrusted ask.pem vcek.pem        # vcek.pem: OK
//! openssl x509 -in ark.pem -text -noout
//! openssl x509 -in vcek.pem -text -noout
//! openssl asn1parse -in vcek.pem -i
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED, RSA_PSS_2048_8192_SHA384, UnparsedPublicKey};
use contrast_attest::{Product, TcbVersion};
use contrast_sim as sim;
use contrast_sim::{Cpuid, SimError, SimulatedGuest, SimulatedPlatform, SimulatedPlatformFiles};
use der::asn1::ObjectIdentifier;
use der::{Decode, DecodePem, Encode, Tag, Tagged};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use x509_cert::Certificate;

/// The shared vectors beside the repository, relative to this crate.
const SHARED: &str = "../../shared/vectors/snp";
/// 2024-01-01T00:00:00Z: the hierarchies' not_before.
const NOT_BEFORE_UNIX: u64 = 1_704_067_200;

fn not_before() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOT_BEFORE_UNIX)
}

/// One platform per product for the whole test binary (RSA-4096 generation is slow in debug).
fn platform(product: Product) -> &'static SimulatedPlatform {
    static MILAN: OnceLock<SimulatedPlatform> = OnceLock::new();
    static GENOA: OnceLock<SimulatedPlatform> = OnceLock::new();
    static TURIN: OnceLock<SimulatedPlatform> = OnceLock::new();
    let cell = match product {
        Product::Milan => &MILAN,
        Product::Genoa => &GENOA,
        Product::Turin => &TURIN,
    };
    cell.get_or_init(|| {
        SimulatedPlatform::generate(product, not_before(), &mut rand_core::OsRng).unwrap()
    })
}

fn milan_tcb() -> TcbVersion {
    // Microcode 209 >= 0x80 exercises the two-byte INTEGER encoding (02 02 00 d1).
    TcbVersion {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 209,
    }
}

fn turin_tcb() -> TcbVersion {
    TcbVersion {
        fmc: Some(1),
        bootloader: 2,
        tee: 3,
        snp: 4,
        microcode: 0x9A,
    }
}

fn tcb_for(product: Product) -> TcbVersion {
    match product {
        Product::Milan | Product::Genoa => milan_tcb(),
        Product::Turin => turin_tcb(),
    }
}

fn chip_id(product: Product, seed: u8) -> [u8; 64] {
    let mut id = [0u8; 64];
    let significant = match product {
        Product::Turin => 8,
        Product::Milan | Product::Genoa => 64,
    };
    for (i, b) in id.iter_mut().take(significant).enumerate() {
        *b = seed.wrapping_add(u8::try_from(i).unwrap()).wrapping_mul(7) | 1;
    }
    id
}

fn guest(product: Product) -> SimulatedGuest {
    let mut guest = SimulatedGuest::new(product, chip_id(product, 1), tcb_for(product));
    guest.measurement = [0xA1; 48];
    guest.host_data = [0xB2; 32];
    guest.family_id = [0xC3; 16];
    guest.image_id = [0xD4; 16];
    guest.id_key_digest = [0xE5; 48];
    guest.author_key_digest = [0xF6; 48];
    guest.report_id = [0x17; 32];
    guest.guest_svn = 7;
    guest.vmpl = 0;
    guest
}

fn report_data() -> [u8; 64] {
    std::array::from_fn(|i| u8::try_from(i).unwrap())
}

/// Reads the first of `candidates` (relative to this crate) that exists: the crate's own copies
/// of AMD's certificates once merged with the verifier (`roots/`, `tests/vectors/`), else the
/// shared vectors beside the repository.
fn amd_cert(candidates: &[&str]) -> Certificate {
    let dir = env!("CARGO_MANIFEST_DIR");
    let (path, bytes) = candidates
        .iter()
        .find_map(|c| {
            let path = format!("{dir}/{c}");
            std::fs::read(&path).ok().map(|b| (path, b))
        })
        .unwrap_or_else(|| panic!("none of {candidates:?} exists"));
    if path.ends_with(".pem") {
        Certificate::from_pem(&bytes).unwrap()
    } else {
        Certificate::from_der(&bytes).unwrap()
    }
}

fn amd_ark_ask(product: Product) -> (Certificate, Certificate) {
    let p = product.name().to_lowercase();
    let shared = format!("{SHARED}/builtin/{p}");
    (
        amd_cert(&[
            &format!("../contrast-attest/roots/{p}/ark.der"),
            &format!("{shared}/ark.pem"),
        ]),
        amd_cert(&[
            &format!("../contrast-attest/roots/{p}/ask.der"),
            &format!("{shared}/ask.pem"),
        ]),
    )
}

/// A real VCEK of `product` for structure comparisons (Genoa falls back to Milan's, which has
/// the same extensions in the same order, where the Genoa vector is not available).
fn amd_vcek(product: Product) -> Certificate {
    let milan = [
        "../contrast-attest/tests/vectors/vcek_milan.der".to_owned(),
        format!("{SHARED}/vcek_milan.der"),
    ];
    let candidates: Vec<String> = match product {
        Product::Milan => milan.to_vec(),
        Product::Genoa => {
            std::iter::once("../contrast-attest/tests/vectors/genoa_vcek.der".to_owned())
                .chain(milan)
                .collect()
        }
        Product::Turin => vec![
            "../contrast-attest/tests/vectors/vcek_turin.der".to_owned(),
            format!("{SHARED}/vcek_turin.der"),
        ],
    };
    amd_cert(&candidates.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A VCEK as AMD's KDS issues them now (late 2024 on: no explicit PSS trailer field).
fn recent_amd_vcek() -> Certificate {
    amd_cert(&[
        "../contrast-attest/tests/vectors/vcek_turin.der",
        &format!("{SHARED}/vcek_turin.der"),
    ])
}

fn parse(der: &[u8]) -> Certificate {
    let cert = Certificate::from_der(der).unwrap();
    // DER round trip: the re-encoded TBS below is byte-identical to what was signed.
    assert_eq!(cert.to_der().unwrap(), der);
    cert
}

/// RSASSA-PSS SHA-384 (MGF1-SHA-384, salt = 48, enforced by aws-lc-rs) over the TBS.
fn verify_signed_by(cert: &Certificate, issuer: &Certificate) {
    let tbs = cert.tbs_certificate.to_der().unwrap();
    let issuer_key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, issuer_key)
        .verify(&tbs, cert.signature.raw_bytes())
        .unwrap();
}

fn extension_layout(cert: &Certificate) -> Vec<(ObjectIdentifier, bool)> {
    cert.tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.extn_id, e.critical))
        .collect()
}

/// (attribute OID, value tag) of every RDN, and the string values.
fn name_layout(name: &x509_cert::name::Name) -> Vec<(ObjectIdentifier, Tag, String)> {
    name.0
        .iter()
        .map(|rdn| {
            assert_eq!(rdn.0.len(), 1);
            let atv = rdn.0.get(0).unwrap();
            let value = String::from_utf8(atv.value.value().to_vec()).unwrap();
            (atv.oid, atv.value.tag(), value)
        })
        .collect()
}

fn amd_extension<'a>(cert: &'a Certificate, oid: &str) -> Option<&'a [u8]> {
    let oid = ObjectIdentifier::new_unwrap(oid);
    cert.tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn amd_integer(cert: &Certificate, oid: &str) -> u8 {
    u8::from_der(amd_extension(cert, oid).unwrap()).unwrap()
}

const PRODUCTS: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

#[test]
fn chain_signatures_verify_with_rsa_pss_sha384() {
    for product in PRODUCTS {
        let platform = platform(product);
        let ark = parse(platform.ark_der());
        let ask = parse(platform.ask_der());
        let vcek = parse(
            &platform
                .vcek_for(&chip_id(product, 1), tcb_for(product))
                .unwrap(),
        );
        verify_signed_by(&ark, &ark);
        verify_signed_by(&ask, &ark);
        verify_signed_by(&vcek, &ask);
    }
}

#[test]
fn wrong_issuer_does_not_verify() {
    let milan = platform(Product::Milan);
    let genoa = platform(Product::Genoa);
    let ask = parse(milan.ask_der());
    let other_ark = parse(genoa.ark_der());
    let tbs = ask.tbs_certificate.to_der().unwrap();
    let key = other_ark
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    assert!(
        UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, key)
            .verify(&tbs, ask.signature.raw_bytes())
            .is_err()
    );
}

#[test]
fn signature_algorithm_identifiers_are_amds_bytes() {
    let recent_vcek = recent_amd_vcek();
    for product in PRODUCTS {
        let platform = platform(product);
        let (amd_ark, amd_ask) = amd_ark_ask(product);
        let ark = parse(platform.ark_der());
        let ask = parse(platform.ask_der());
        let vcek = parse(
            &platform
                .vcek_for(&chip_id(product, 1), tcb_for(product))
                .unwrap(),
        );
        for (ours, amd) in [(&ark, &amd_ark), (&ask, &amd_ask), (&vcek, &recent_vcek)] {
            assert_eq!(
                ours.signature_algorithm.to_der().unwrap(),
                amd.signature_algorithm.to_der().unwrap(),
                "{product:?}"
            );
            assert_eq!(
                ours.tbs_certificate.signature.to_der().unwrap(),
                amd.tbs_certificate.signature.to_der().unwrap(),
                "{product:?}"
            );
        }
        let params = |c: &Certificate| {
            c.signature_algorithm
                .parameters
                .as_ref()
                .unwrap()
                .to_der()
                .unwrap()
        };
        // CA certificates spell out trailerField 1 ([3] INTEGER 1); VCEKs end at the salt.
        assert!(params(&ark).ends_with(&[0xA3, 0x03, 0x02, 0x01, 0x01]));
        assert!(params(&ask).ends_with(&[0xA3, 0x03, 0x02, 0x01, 0x01]));
        assert!(params(&vcek).ends_with(&[0xA2, 0x03, 0x02, 0x01, 0x30]));
    }
}

#[test]
fn certificate_structure_mirrors_amd() {
    for product in PRODUCTS {
        let platform = platform(product);
        let (amd_ark, amd_ask) = amd_ark_ask(product);
        let amd_vcek = amd_vcek(product);
        let ark = parse(platform.ark_der());
        let ask = parse(platform.ask_der());
        let vcek = parse(
            &platform
                .vcek_for(&chip_id(product, 1), tcb_for(product))
                .unwrap(),
        );
        for (role, ours, amd) in [
            ("ark", &ark, &amd_ark),
            ("ask", &ask, &amd_ask),
            ("vcek", &vcek, &amd_vcek),
        ] {
            let (t, a) = (&ours.tbs_certificate, &amd.tbs_certificate);
            assert_eq!(t.version, a.version, "{product:?} {role}");
            if role == "vcek" {
                // A serial per chip and TCB (AMD's VCEKs are all 0): one can be revoked alone.
                assert_eq!(
                    t.serial_number.as_bytes(),
                    platform.vcek_serial(&chip_id(product, 1), tcb_for(product)),
                    "{product:?} vcek"
                );
            } else {
                assert_eq!(t.serial_number, a.serial_number, "{product:?} {role}");
            }
            assert_eq!(
                extension_layout(ours),
                extension_layout(amd),
                "{product:?} {role} extension order/criticality"
            );
            assert_eq!(
                t.subject_public_key_info.algorithm, a.subject_public_key_info.algorithm,
                "{product:?} {role} key algorithm"
            );
            assert_eq!(
                t.subject_public_key_info
                    .subject_public_key
                    .raw_bytes()
                    .len(),
                a.subject_public_key_info
                    .subject_public_key
                    .raw_bytes()
                    .len(),
                "{product:?} {role} key size"
            );
            // Same attributes, same string types; values differ only in O and CN.
            for (name, amd_name) in [(&t.subject, &a.subject), (&t.issuer, &a.issuer)] {
                let ours = name_layout(name);
                let theirs = name_layout(amd_name);
                assert_eq!(ours.len(), 6);
                for ((oid, tag, value), (amd_oid, amd_tag, amd_value)) in ours.iter().zip(&theirs) {
                    assert_eq!((oid, tag), (amd_oid, amd_tag), "{product:?} {role}");
                    let differs = *oid == ObjectIdentifier::new_unwrap("2.5.4.10")
                        || *oid == ObjectIdentifier::new_unwrap("2.5.4.3");
                    if !differs {
                        assert_eq!(value, amd_value, "{product:?} {role}");
                    }
                }
            }
            // UTCTime like AMD's (all dates are before 2050 here).
            assert_eq!(
                t.validity.not_before.to_der().unwrap()[0],
                a.validity.not_before.to_der().unwrap()[0]
            );
            assert_eq!(
                t.validity.not_after.to_der().unwrap()[0],
                a.validity.not_after.to_der().unwrap()[0]
            );
        }
        let p = product.name();
        let cn = |c: &Certificate| name_layout(&c.tbs_certificate.subject)[5].2.clone();
        let org = |c: &Certificate| name_layout(&c.tbs_certificate.subject)[4].2.clone();
        assert_eq!(cn(&ark), format!("SIM-ARK-{p}"));
        assert_eq!(cn(&ask), format!("SIM-SEV-{p}"));
        assert_eq!(cn(&vcek), "SEV-VCEK");
        for c in [&ark, &ask, &vcek] {
            assert_eq!(org(c), sim::SIMULATED_ORGANIZATION);
        }
        assert_eq!(ark.tbs_certificate.issuer, ark.tbs_certificate.subject);
        assert_eq!(ask.tbs_certificate.issuer, ark.tbs_certificate.subject);
        assert_eq!(vcek.tbs_certificate.issuer, ask.tbs_certificate.subject);
    }
}

#[test]
fn ca_extensions_have_amds_values() {
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, KeyUsage, KeyUsages,
        SubjectKeyIdentifier,
    };
    let platform = platform(Product::Genoa);
    let ark = parse(platform.ark_der());
    let ask = parse(platform.ask_der());
    let ext = |c: &Certificate, oid: &str| amd_extension(c, oid).unwrap().to_vec();

    let ark_ku = KeyUsage::from_der(&ext(&ark, "2.5.29.15")).unwrap();
    assert_eq!(ark_ku.0, KeyUsages::KeyCertSign | KeyUsages::CRLSign);
    let ark_bc = BasicConstraints::from_der(&ext(&ark, "2.5.29.19")).unwrap();
    assert!(ark_bc.ca);
    assert_eq!(ark_bc.path_len_constraint, None);
    let ask_bc = BasicConstraints::from_der(&ext(&ask, "2.5.29.19")).unwrap();
    assert!(ask_bc.ca);
    assert_eq!(ask_bc.path_len_constraint, Some(0));
    let ask_ku = KeyUsage::from_der(&ext(&ask, "2.5.29.15")).unwrap();
    assert!(ask_ku.key_cert_sign() && !ask_ku.crl_sign() && !ask_ku.digital_signature());

    let ark_ski = SubjectKeyIdentifier::from_der(&ext(&ark, "2.5.29.14")).unwrap();
    let ask_aki = AuthorityKeyIdentifier::from_der(&ext(&ask, "2.5.29.35")).unwrap();
    assert_eq!(ask_aki.key_identifier, Some(ark_ski.0));
    assert!(ask_aki.authority_cert_issuer.is_none());
    assert!(ask_aki.authority_cert_serial_number.is_none());

    for cert in [&ark, &ask] {
        let dp = CrlDistributionPoints::from_der(&ext(cert, "2.5.29.31")).unwrap();
        let text = format!("{dp:?}");
        assert!(text.contains("https://kds.simulated-snp.invalid/vcek/v1/Genoa/crl"));
    }
}

#[test]
fn validity_is_25_and_7_years_from_not_before() {
    let platform = platform(Product::Milan);
    assert_eq!(platform.not_before_unix(), NOT_BEFORE_UNIX);
    let ark = parse(platform.ark_der());
    let vcek = parse(
        &platform
            .vcek_for(&chip_id(Product::Milan, 1), milan_tcb())
            .unwrap(),
    );
    let years = |c: &Certificate| {
        let v = &c.tbs_certificate.validity;
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_date_time().year() - v.not_before.to_date_time().year(),
            v.not_after.to_date_time().month(),
            v.not_after.to_date_time().day(),
        )
    };
    assert_eq!(years(&ark), (NOT_BEFORE_UNIX, 25, 1, 1));
    assert_eq!(years(&vcek), (NOT_BEFORE_UNIX, 7, 1, 1));
}

#[test]
fn vcek_extensions_encode_tcb_and_chip_id_like_amd() {
    // Milan and Genoa: structVersion 0, productName, SPLs, 64-byte hwID.
    for (product, name) in [(Product::Milan, "Milan-B0"), (Product::Genoa, "Genoa")] {
        let chip = chip_id(product, 9);
        let vcek = parse(&platform(product).vcek_for(&chip, milan_tcb()).unwrap());
        assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.1"), 0);
        let product_name = amd_extension(&vcek, "1.3.6.1.4.1.3704.1.2").unwrap();
        assert_eq!(product_name[0], 0x16, "IA5String");
        assert_eq!(&product_name[2..], name.as_bytes());
        assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.1"), 3);
        assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.2"), 0);
        assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.3"), 8);
        assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.8"), 209);
        assert_eq!(
            amd_extension(&vcek, "1.3.6.1.4.1.3704.1.3.8").unwrap(),
            [0x02, 0x02, 0x00, 0xD1]
        );
        for reserved in ["4", "5", "6", "7"] {
            let oid = format!("1.3.6.1.4.1.3704.1.3.{reserved}");
            assert_eq!(amd_extension(&vcek, &oid).unwrap(), [0x02, 0x01, 0x00]);
        }
        assert!(amd_extension(&vcek, "1.3.6.1.4.1.3704.1.3.9").is_none());
        // hwID: the raw 64 chip ID bytes, no inner OCTET STRING.
        assert_eq!(amd_extension(&vcek, "1.3.6.1.4.1.3704.1.4").unwrap(), chip);
    }
    // Turin: structVersion 1, fmcSPL, no spl_4, 8-byte hwID.
    let chip = chip_id(Product::Turin, 9);
    let vcek = parse(
        &platform(Product::Turin)
            .vcek_for(&chip, turin_tcb())
            .unwrap(),
    );
    assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.1"), 1);
    assert_eq!(
        amd_extension(&vcek, "1.3.6.1.4.1.3704.1.2").unwrap(),
        b"\x16\x05Turin"
    );
    assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.9"), 1);
    assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.1"), 2);
    assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.2"), 3);
    assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.3"), 4);
    assert_eq!(amd_integer(&vcek, "1.3.6.1.4.1.3704.1.3.8"), 0x9A);
    assert!(amd_extension(&vcek, "1.3.6.1.4.1.3704.1.3.4").is_none());
    assert_eq!(
        amd_extension(&vcek, "1.3.6.1.4.1.3704.1.4").unwrap(),
        &chip[..8]
    );
}

#[test]
fn vcek_keys_are_deterministic_per_chip_and_tcb() {
    let platform = platform(Product::Milan);
    let spki = |chip: u8, tcb: TcbVersion| {
        let vcek = parse(
            &platform
                .vcek_for(&chip_id(Product::Milan, chip), tcb)
                .unwrap(),
        );
        (
            vcek.tbs_certificate
                .subject_public_key_info
                .to_der()
                .unwrap(),
            vcek.tbs_certificate.to_der().unwrap(),
        )
    };
    let (key_a, tbs_a) = spki(1, milan_tcb());
    let (key_a2, tbs_a2) = spki(1, milan_tcb());
    assert_eq!(key_a, key_a2);
    assert_eq!(tbs_a, tbs_a2);
    // One platform hands out the same bytes for the same chip and TCB.
    let chip = chip_id(Product::Milan, 1);
    assert_eq!(
        platform.vcek_for(&chip, milan_tcb()).unwrap(),
        platform.vcek_for(&chip, milan_tcb()).unwrap()
    );
    let (key_b, _) = spki(2, milan_tcb());
    assert_ne!(key_a, key_b, "different chips have different VCEK keys");
    let newer = TcbVersion {
        snp: 9,
        ..milan_tcb()
    };
    let (key_c, _) = spki(1, newer);
    assert_ne!(key_a, key_c, "different TCBs have different VCEK keys");
    // Same chip and TCB on another platform: another key.
    let other = parse(
        &crate::platform(Product::Genoa)
            .vcek_for(&chip_id(Product::Milan, 1), milan_tcb())
            .unwrap(),
    );
    assert_ne!(
        key_a,
        other
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap()
    );
}

#[test]
fn cert_chain_pem_is_ask_then_ark() {
    let platform = platform(Product::Genoa);
    let pem = platform.cert_chain_pem().unwrap();
    let certs = Certificate::load_pem_chain(pem.as_bytes()).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].to_der().unwrap(), platform.ask_der());
    assert_eq!(certs[1].to_der().unwrap(), platform.ark_der());
}

#[test]
fn ark_fingerprint_is_sha256_of_ark_der() {
    let platform = platform(Product::Turin);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, platform.ark_der());
    assert_eq!(platform.ark_fingerprint().as_slice(), digest.as_ref());
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

fn vcek_point(vcek_der: &[u8]) -> Vec<u8> {
    parse(vcek_der)
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

/// ECDSA P-384/SHA-384 over 0x000–0x29F, R and S converted from 72-byte little endian.
fn report_signature_verifies(report: &[u8], vcek_der: &[u8]) -> bool {
    let be = |field: &[u8]| -> Vec<u8> { field[..48].iter().rev().copied().collect() };
    let mut sig = be(&report[0x2A0..0x2E8]);
    sig.extend(be(&report[0x2E8..0x330]));
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, vcek_point(vcek_der))
        .verify(&report[..0x2A0], &sig)
        .is_ok()
}

fn le_u32(report: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(report[at..at + 4].try_into().unwrap())
}

fn le_u64(report: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(report[at..at + 8].try_into().unwrap())
}

fn assert_zero(report: &[u8], ranges: &[(usize, usize)]) {
    for &(start, end) in ranges {
        assert!(
            report[start..end].iter().all(|b| *b == 0),
            "reserved 0x{start:03X}..0x{end:03X} is not zero"
        );
    }
}

#[test]
fn report_signature_verifies_with_the_vcek() {
    for product in PRODUCTS {
        let platform = platform(product);
        let guest = guest(product);
        let evidence = guest.evidence(platform, &report_data()).unwrap();
        assert_eq!(evidence.report.len(), contrast_attest::report::REPORT_LEN);
        assert!(report_signature_verifies(
            &evidence.report,
            &evidence.vcek_der
        ));
        assert_eq!(evidence.ark_der, platform.ark_der());
        assert_eq!(evidence.ask_der, platform.ask_der());

        // A flipped bit in the signed part breaks the signature.
        let mut tampered = evidence.report.clone();
        tampered[0x90] ^= 1;
        assert!(!report_signature_verifies(&tampered, &evidence.vcek_der));
        // Another chip's VCEK does not verify it.
        let other = platform
            .vcek_for(&chip_id(product, 2), tcb_for(product))
            .unwrap();
        assert!(!report_signature_verifies(&evidence.report, &other));
    }
}

#[test]
fn report_fields_land_at_their_offsets() {
    let platform = platform(Product::Milan);
    let mut guest = guest(Product::Milan);
    guest.current_tcb = TcbVersion {
        microcode: 210,
        ..milan_tcb()
    };
    guest.policy = 0x3_001F;
    guest.platform_info = 0x25;
    guest.vmpl = 2;
    guest.author_key_en = true;
    let report = guest.report(platform, &report_data()).unwrap();

    assert_eq!(le_u32(&report, 0x000), 3);
    assert_eq!(le_u32(&report, 0x004), 7);
    assert_eq!(le_u64(&report, 0x008), 0x3_001F);
    assert_eq!(report[0x010..0x020], [0xC3; 16]);
    assert_eq!(report[0x020..0x030], [0xD4; 16]);
    assert_eq!(le_u32(&report, 0x030), 2);
    assert_eq!(le_u32(&report, 0x034), 1, "SIGNATURE_ALGO");
    assert_eq!(report[0x038..0x040], [3, 0, 0, 0, 0, 0, 8, 210]);
    assert_eq!(le_u64(&report, 0x040), 0x25);
    assert_eq!(le_u32(&report, 0x048), 1, "AUTHOR_KEY_EN, VCEK signing key");
    assert_eq!(report[0x050..0x090], report_data());
    assert_eq!(report[0x090..0x0C0], [0xA1; 48]);
    assert_eq!(report[0x0C0..0x0E0], [0xB2; 32]);
    assert_eq!(report[0x0E0..0x110], [0xE5; 48]);
    assert_eq!(report[0x110..0x140], [0xF6; 48]);
    assert_eq!(report[0x140..0x160], [0x17; 32]);
    assert_eq!(report[0x160..0x180], [0xFF; 32]);
    assert_eq!(report[0x180..0x188], [3, 0, 0, 0, 0, 0, 8, 209]);
    assert_eq!(report[0x188..0x18B], [0x19, 0x01, 0x00]);
    assert_eq!(report[0x1A0..0x1E0], chip_id(Product::Milan, 1));
    assert_eq!(report[0x1E0..0x1E8], [3, 0, 0, 0, 0, 0, 8, 209]);
    assert_eq!(report[0x1E8..0x1EB], [40, 55, 1], "build, minor, major");
    assert_eq!(report[0x1EC..0x1EF], [40, 55, 1]);
    assert_eq!(report[0x1F0..0x1F8], [3, 0, 0, 0, 0, 0, 8, 209]);
    assert_zero(
        &report,
        &[
            (0x04C, 0x050),
            (0x18B, 0x1A0),
            (0x1EB, 0x1EC),
            (0x1EF, 0x1F0),
            (0x1F8, 0x2A0),
            (0x2A0 + 48, 0x2E8),
            (0x2E8 + 48, 0x330),
            (0x330, 0x4A0),
        ],
    );
}

#[test]
fn turin_report_uses_the_turin_tcb_layout_and_short_chip_id() {
    let platform = platform(Product::Turin);
    let mut guest = guest(Product::Turin);
    guest.version = 5;
    guest.launch_mit_vector = 0x0102;
    guest.current_mit_vector = 0x0304;
    let report = guest.report(platform, &report_data()).unwrap();
    assert_eq!(le_u32(&report, 0x000), 5);
    assert_eq!(report[0x180..0x188], [1, 2, 3, 4, 0, 0, 0, 0x9A]);
    assert_eq!(report[0x188..0x18B], [0x1A, 0x02, 0x01]);
    assert_eq!(report[0x1A0..0x1A8], chip_id(Product::Turin, 1)[..8]);
    assert_eq!(le_u64(&report, 0x1F8), 0x0102);
    assert_eq!(le_u64(&report, 0x200), 0x0304);
    assert_zero(&report, &[(0x1A8, 0x1E0), (0x208, 0x2A0), (0x330, 0x4A0)]);
    let vcek = guest.vcek_der(platform).unwrap();
    assert!(report_signature_verifies(&report, &vcek));
}

#[test]
fn version_2_report_has_no_cpuid_and_masked_chip_id_is_zero() {
    let platform = platform(Product::Genoa);
    let mut guest = guest(Product::Genoa);
    guest.version = 2;
    guest.cpuid = Cpuid {
        family: 0x19,
        model: 0x11,
        stepping: 1,
    };
    let report = guest.report(platform, &report_data()).unwrap();
    assert_eq!(le_u32(&report, 0), 2);
    assert_zero(&report, &[(0x188, 0x1A0), (0x1F8, 0x2A0)]);
    assert!(report_signature_verifies(
        &report,
        &guest.vcek_der(platform).unwrap()
    ));

    guest.version = 3;
    guest.mask_chip_id = true;
    let report = guest.report(platform, &report_data()).unwrap();
    assert_zero(&report, &[(0x1A0, 0x1E0)]);
    // The VCEK is still the chip's.
    assert!(report_signature_verifies(
        &report,
        &guest.vcek_der(platform).unwrap()
    ));
}

fn sev_tcb(t: &sev::firmware::host::TcbVersion) -> TcbVersion {
    TcbVersion {
        fmc: t.fmc,
        bootloader: t.bootloader,
        tee: t.tee,
        snp: t.snp,
        microcode: t.microcode,
    }
}

#[test]
fn sev_crate_parses_the_report_with_equal_fields() {
    for (product, version) in [
        (Product::Milan, 3),
        (Product::Milan, 2),
        (Product::Genoa, 3),
        (Product::Turin, 3),
        (Product::Turin, 5),
    ] {
        let platform = platform(product);
        let mut guest = guest(product);
        guest.version = version;
        guest.current_tcb = TcbVersion {
            microcode: tcb_for(product).microcode + 1,
            ..tcb_for(product)
        };
        if version >= 5 {
            guest.launch_mit_vector = 3;
            guest.current_mit_vector = 5;
        }
        let bytes = guest.report(platform, &report_data()).unwrap();
        let parsed = AttestationReport::from_bytes(&bytes).unwrap();
        assert_eq!(
            parsed.to_bytes().unwrap().as_slice(),
            bytes.as_slice(),
            "{product:?} v{version}: sev re-encodes the same bytes"
        );
        assert_eq!(parsed.version, version);
        assert_eq!(parsed.guest_svn, guest.guest_svn);
        assert_eq!(u64::from(parsed.policy), guest.policy);
        assert_eq!(parsed.family_id, guest.family_id);
        assert_eq!(parsed.image_id, guest.image_id);
        assert_eq!(parsed.vmpl, guest.vmpl);
        assert_eq!(parsed.sig_algo, 1);
        assert_eq!(sev_tcb(&parsed.current_tcb), guest.current_tcb);
        assert_eq!(sev_tcb(&parsed.reported_tcb), guest.reported_tcb);
        assert_eq!(sev_tcb(&parsed.committed_tcb), guest.committed_tcb);
        assert_eq!(sev_tcb(&parsed.launch_tcb), guest.launch_tcb);
        assert_eq!(u64::from(parsed.plat_info), guest.platform_info);
        assert!(!parsed.key_info.author_key_en());
        assert_eq!(parsed.report_data, report_data());
        assert_eq!(parsed.measurement, guest.measurement);
        assert_eq!(parsed.host_data, guest.host_data);
        assert_eq!(parsed.id_key_digest, guest.id_key_digest);
        assert_eq!(parsed.author_key_digest, guest.author_key_digest);
        assert_eq!(parsed.report_id, guest.report_id);
        assert_eq!(parsed.report_id_ma, guest.report_id_ma);
        assert_eq!(parsed.chip_id, guest.chip_id);
        let cpuid = (version >= 3).then_some(guest.cpuid);
        assert_eq!(
            parsed
                .cpuid_fam_id
                .zip(parsed.cpuid_mod_id)
                .zip(parsed.cpuid_step),
            cpuid.map(|c| ((c.family, c.model), c.stepping))
        );
        let fw = guest.current_firmware;
        assert_eq!(
            (
                parsed.current.major,
                parsed.current.minor,
                parsed.current.build
            ),
            (fw.major, fw.minor, fw.build)
        );
        let fw = guest.committed_firmware;
        assert_eq!(
            (
                parsed.committed.major,
                parsed.committed.minor,
                parsed.committed.build
            ),
            (fw.major, fw.minor, fw.build)
        );
        if version >= 5 {
            assert_eq!(parsed.launch_mit_vector, Some(3));
            assert_eq!(parsed.current_mit_vector, Some(5));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Save / load
// ---------------------------------------------------------------------------------------------

#[test]
fn save_load_round_trip() {
    let original = platform(Product::Milan);
    let files = original.save().unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n).collect();
    assert_eq!(names, sim::files::ALL);
    let ark_pem = std::str::from_utf8(files.get(sim::files::ARK_CERT).unwrap()).unwrap();
    assert!(ark_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    let key_pem = std::str::from_utf8(files.get(sim::files::ARK_KEY).unwrap()).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(
        Certificate::from_pem(ark_pem).unwrap().to_der().unwrap(),
        original.ark_der()
    );

    let loaded = SimulatedPlatform::load(&files).unwrap();
    assert_eq!(loaded.product(), Product::Milan);
    assert_eq!(loaded.ark_der(), original.ark_der());
    assert_eq!(loaded.ask_der(), original.ask_der());
    assert_eq!(loaded.ark_fingerprint(), original.ark_fingerprint());
    assert_eq!(loaded.not_before_unix(), original.not_before_unix());

    let chip = chip_id(Product::Milan, 1);
    let tbs = |p: &SimulatedPlatform| {
        parse(&p.vcek_for(&chip, milan_tcb()).unwrap())
            .tbs_certificate
            .to_der()
            .unwrap()
    };
    assert_eq!(
        tbs(&loaded),
        tbs(original),
        "same VCEK for the same chip/TCB"
    );
    // A VCEK issued by the loaded platform still chains to the original ASK.
    let vcek = parse(&loaded.vcek_for(&chip, milan_tcb()).unwrap());
    verify_signed_by(&vcek, &parse(original.ask_der()));
    // Reports from the loaded platform verify with the original platform's VCEK.
    let guest = guest(Product::Milan);
    let report = guest.report(&loaded, &report_data()).unwrap();
    assert!(report_signature_verifies(
        &report,
        &guest.vcek_der(original).unwrap()
    ));
    // Saving again yields the same files.
    let again = loaded.save().unwrap();
    for name in sim::files::ALL {
        assert_eq!(again.get(name), files.get(name), "{name}");
    }
}

#[test]
fn debug_output_shows_no_secrets() {
    let platform = platform(Product::Milan);
    let files = platform.save().unwrap();
    let text = format!("{files:?} {platform:?}");
    assert!(!text.contains("PRIVATE"));
    assert!(!text.contains("SEED"));
    assert!(text.contains("ark-key.pem"));
    assert!(text.contains(&hex::encode(platform.ark_fingerprint())));
}

fn without(files: &SimulatedPlatformFiles, name: &str) -> SimulatedPlatformFiles {
    files
        .iter()
        .filter(|(n, _)| *n != name)
        .map(|(n, c)| (n.to_owned(), c.to_vec()))
        .collect()
}

fn replaced(files: &SimulatedPlatformFiles, name: &str, contents: &[u8]) -> SimulatedPlatformFiles {
    let mut out = without(files, name);
    out.insert(name, contents.to_vec());
    out
}

fn invalid_file(result: Result<SimulatedPlatform, SimError>) -> (&'static str, String) {
    match result {
        Err(SimError::InvalidFile { name, reason }) => (name, reason),
        other => panic!("expected InvalidFile, got {other:?}"),
    }
}

#[test]
fn load_rejects_missing_and_inconsistent_files() {
    let milan = platform(Product::Milan).save().unwrap();
    let genoa = platform(Product::Genoa).save().unwrap();

    for name in sim::files::ALL {
        assert!(matches!(
            SimulatedPlatform::load(&without(&milan, name)),
            Err(SimError::MissingFile { name: n }) if n == name
        ));
    }

    // The ARK key of another platform does not match the ARK certificate.
    let mixed = replaced(
        &milan,
        sim::files::ARK_KEY,
        genoa.get(sim::files::ARK_KEY).unwrap(),
    );
    let (name, reason) = invalid_file(SimulatedPlatform::load(&mixed));
    assert_eq!(name, sim::files::ARK_KEY);
    assert!(reason.contains("does not match"), "{reason}");

    // The ASK key swapped in for the ARK key.
    let swapped = replaced(
        &milan,
        sim::files::ARK_KEY,
        milan.get(sim::files::ASK_KEY).unwrap(),
    );
    assert_eq!(
        invalid_file(SimulatedPlatform::load(&swapped)).0,
        sim::files::ARK_KEY
    );

    // Another platform's ASK is not issued by this ARK's name... of another product.
    let foreign_ask = replaced(
        &milan,
        sim::files::ASK_CERT,
        genoa.get(sim::files::ASK_CERT).unwrap(),
    );
    assert_eq!(
        invalid_file(SimulatedPlatform::load(&foreign_ask)).0,
        sim::files::ASK_CERT
    );

    // An ARK that is not a simulated one (AMD's real Milan ARK).
    let amd_ark = der::pem::encode_string(
        "CERTIFICATE",
        der::pem::LineEnding::LF,
        &amd_ark_ask(Product::Milan).0.to_der().unwrap(),
    )
    .unwrap();
    let (name, reason) = invalid_file(SimulatedPlatform::load(&replaced(
        &milan,
        sim::files::ARK_CERT,
        amd_ark.as_bytes(),
    )));
    assert_eq!(name, sim::files::ARK_CERT);
    assert!(reason.contains("not a simulated ark name"), "{reason}");

    // Wrong PEM labels and garbage.
    let (name, reason) = invalid_file(SimulatedPlatform::load(&replaced(
        &milan,
        sim::files::ASK_CERT,
        milan.get(sim::files::ASK_KEY).unwrap(),
    )));
    assert_eq!(name, sim::files::ASK_CERT);
    assert!(reason.contains("pem label"), "{reason}");
    let (name, _) = invalid_file(SimulatedPlatform::load(&replaced(
        &milan,
        sim::files::VCEK_SEED,
        b"not pem",
    )));
    assert_eq!(name, sim::files::VCEK_SEED);

    // A seed of the wrong length.
    let short_seed = der::pem::encode_string(
        "CONTRAST SIM VCEK SEED",
        der::pem::LineEnding::LF,
        &[1u8; 32],
    )
    .unwrap();
    let (name, reason) = invalid_file(SimulatedPlatform::load(&replaced(
        &milan,
        sim::files::VCEK_SEED,
        short_seed.as_bytes(),
    )));
    assert_eq!(name, sim::files::VCEK_SEED);
    assert!(reason.contains("expected 48"), "{reason}");
}

#[test]
fn files_insert_replaces() {
    let mut files = SimulatedPlatformFiles::new();
    files.insert("a", vec![1]);
    files.insert("b", vec![2]);
    files.insert("a", vec![3]);
    assert_eq!(files.get("a"), Some([3u8].as_slice()));
    assert_eq!(files.iter().count(), 2);
    assert_eq!(files.get("c"), None);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn report_rejects_what_cannot_be_laid_out() {
    let milan = platform(Product::Milan);
    let data = report_data();

    let turin_guest = guest(Product::Turin);
    assert!(matches!(
        turin_guest.report(milan, &data),
        Err(SimError::ProductMismatch {
            platform: Product::Milan,
            guest: Product::Turin
        })
    ));
    assert!(matches!(
        turin_guest.vcek_der(milan),
        Err(SimError::ProductMismatch { .. })
    ));

    for version in [0, 1, 6] {
        let mut g = guest(Product::Milan);
        g.version = version;
        assert!(matches!(
            g.report(milan, &data),
            Err(SimError::UnsupportedVersion { version: v }) if v == version
        ));
    }

    let mut g = guest(Product::Milan);
    g.vmpl = 4;
    assert!(matches!(
        g.report(milan, &data),
        Err(SimError::InvalidVmpl { vmpl: 4 })
    ));

    let mut g = guest(Product::Milan);
    g.launch_tcb = TcbVersion {
        fmc: Some(0),
        ..milan_tcb()
    };
    assert!(matches!(
        g.report(milan, &data),
        Err(SimError::TcbLayout {
            field: "launch_tcb",
            product: Product::Milan,
            ..
        })
    ));

    let mut g = guest(Product::Milan);
    g.current_mit_vector = 1;
    let err = g.report(milan, &data).unwrap_err();
    assert!(matches!(
        err,
        SimError::FieldNotInVersion {
            field: "current_mit_vector",
            version: 3,
            since: 5
        }
    ));
    assert_eq!(
        err.to_string(),
        "current_mit_vector is non-zero but report version 3 has no such field (needs version 5)"
    );

    let turin = platform(Product::Turin);
    let mut g = guest(Product::Turin);
    g.chip_id[20] = 1;
    assert!(matches!(
        g.report(turin, &data),
        Err(SimError::TurinChipIdTail { offset: 20 })
    ));
    let mut g = guest(Product::Turin);
    g.reported_tcb.fmc = None;
    let err = g.report(turin, &data).unwrap_err();
    assert!(matches!(
        err,
        SimError::TcbLayout {
            field: "reported_tcb",
            product: Product::Turin,
            ..
        }
    ));
    assert!(
        err.to_string().contains("fmc must be present on Turin"),
        "{err}"
    );
}

#[test]
fn vcek_for_rejects_layout_mismatches() {
    let turin = platform(Product::Turin);
    let mut chip = chip_id(Product::Turin, 1);
    assert!(matches!(
        turin.vcek_for(&chip, milan_tcb()),
        Err(SimError::TcbLayout {
            field: "vcek tcb",
            product: Product::Turin,
            ..
        })
    ));
    chip[63] = 1;
    assert!(matches!(
        turin.vcek_for(&chip, turin_tcb()),
        Err(SimError::TurinChipIdTail { offset: 63 })
    ));
    let milan = platform(Product::Milan);
    let err = milan
        .vcek_for(&chip_id(Product::Milan, 1), turin_tcb())
        .unwrap_err();
    assert!(matches!(
        err,
        SimError::TcbLayout {
            product: Product::Milan,
            ..
        }
    ));
    assert!(
        err.to_string().contains("fmc must be absent on Milan"),
        "{err}"
    );
}

#[test]
fn generate_rejects_times_before_the_epoch() {
    let before = UNIX_EPOCH - Duration::from_secs(1);
    // Fails before any key is generated, so this is fast.
    assert!(matches!(
        SimulatedPlatform::generate(Product::Milan, before, &mut rand_core::OsRng),
        Err(SimError::Time { .. })
    ));
}

/// Writes each product's ARK, ASK and a VCEK as PEM for the OpenSSL commands in the module
/// docs.
#[test]
#[ignore = "writes files for a manual openssl check"]
fn dump_for_openssl() {
    let root = std::env::temp_dir().join("contrast-sim-openssl");
    for product in PRODUCTS {
        let platform = platform(product);
        let dir = root.join(product.name().to_lowercase());
        std::fs::create_dir_all(&dir).unwrap();
        let pem = |der: &[u8]| {
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap()
        };
        let vcek = platform
            .vcek_for(&chip_id(product, 1), tcb_for(product))
            .unwrap();
        std::fs::write(dir.join("ark.pem"), pem(platform.ark_der())).unwrap();
        std::fs::write(dir.join("ask.pem"), pem(platform.ask_der())).unwrap();
        std::fs::write(dir.join("vcek.pem"), pem(&vcek)).unwrap();
        let report = guest(product).report(platform, &report_data()).unwrap();
        std::fs::write(dir.join("report.bin"), report).unwrap();
    }
    println!("wrote {}", root.display());
}

// ---------------------------------------------------------------- CRL

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn crl_contents(revoked: Vec<sim::Revocation>) -> sim::CrlContents {
    sim::CrlContents {
        revoked,
        this_update: at(NOT_BEFORE_UNIX + 86_400),
        next_update: at(NOT_BEFORE_UNIX + 40 * 86_400),
        number: 9,
    }
}

fn verified_chain(product: Product, chip: &[u8; 64]) -> contrast_attest::chain::VerifiedChain {
    use contrast_attest::chain::{ChainCertificates, LeafKind, TrustAnchor, verify_chain};
    let platform = platform(product);
    let vcek = platform.vcek_for(chip, tcb_for(product)).unwrap();
    verify_chain(
        &TrustAnchor::Pinned {
            ark_der_sha256: platform.ark_fingerprint(),
            product,
        },
        LeafKind::Vcek,
        &ChainCertificates {
            ark: Some(platform.ark_der()),
            intermediate: Some(platform.ask_der()),
            leaf: &vcek,
        },
        contrast_attest::UnixTime::from_secs(NOT_BEFORE_UNIX + 2 * 86_400),
    )
    .unwrap()
}

fn amd_crl(name: &str) -> x509_cert::crl::CertificateList {
    let der = std::fs::read(format!("{SHARED}/crl/{name}")).unwrap();
    x509_cert::crl::CertificateList::from_der(&der).unwrap()
}

/// Field by field as AMD's: version 2, the PSS parameters without trailer (the same bytes as
/// the signature field), the name layout, UTCTime dates, the AKI then the CRL number (neither
/// critical), revoked entries without extensions; the AKI is the ARK's key identifier.
#[test]
fn crl_structure_mirrors_amds() {
    for (product, amd_name) in [
        (Product::Milan, "milan_crl9.der"),
        (Product::Genoa, "genoa_crl4.der"),
    ] {
        let platform = platform(product);
        let revoked = vec![sim::Revocation {
            serial: platform.ask_serial(),
            revoked_at: at(NOT_BEFORE_UNIX + 3600),
        }];
        let ours = x509_cert::crl::CertificateList::from_der(
            &platform.crl(&crl_contents(revoked)).unwrap(),
        )
        .unwrap();
        let amd = amd_crl(amd_name);
        let (t, a) = (&ours.tbs_cert_list, &amd.tbs_cert_list);
        assert_eq!(t.version, a.version, "{product:?}");
        assert_eq!(
            ours.signature_algorithm.to_der().unwrap(),
            amd.signature_algorithm.to_der().unwrap(),
            "{product:?} signature algorithm"
        );
        assert_eq!(t.signature, ours.signature_algorithm);
        assert_eq!(name_layout(&t.issuer).len(), name_layout(&a.issuer).len());
        for (field, ours, amd) in [
            ("thisUpdate", t.this_update, a.this_update),
            ("nextUpdate", t.next_update.unwrap(), a.next_update.unwrap()),
        ] {
            assert_eq!(
                std::mem::discriminant(&ours),
                std::mem::discriminant(&amd),
                "{product:?} {field} time type"
            );
        }
        let layout = |extensions: &Option<Vec<x509_cert::ext::Extension>>| {
            extensions
                .iter()
                .flatten()
                .map(|e| (e.extn_id, e.critical))
                .collect::<Vec<_>>()
        };
        assert_eq!(layout(&t.crl_extensions), layout(&a.crl_extensions));
        let aki = &t.crl_extensions.as_ref().unwrap()[0];
        let ark = parse(platform.ark_der());
        let ski = ark
            .tbs_certificate
            .extensions
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
            .unwrap();
        // AKI = SEQUENCE { [0] keyIdentifier }, SKI = OCTET STRING keyIdentifier.
        assert!(
            aki.extn_value
                .as_bytes()
                .ends_with(&ski.extn_value.as_bytes()[2..]),
            "{product:?} the AKI names the ARK's key"
        );
        let entry = &t.revoked_certificates.as_ref().unwrap()[0];
        assert!(entry.crl_entry_extensions.is_none());
        if let Some(amd_entry) = a.revoked_certificates.as_ref().and_then(|r| r.first()) {
            assert_eq!(
                std::mem::discriminant(&entry.revocation_date),
                std::mem::discriminant(&amd_entry.revocation_date)
            );
        }
    }
}

/// The production verifier accepts the CRL under the simulated chain, and refuses exactly the
/// certificates it lists: one chip's VCEK (named with its serial), or the ASK (every chip).
#[test]
fn crl_verifies_and_revokes_one_vcek_or_the_ask() {
    use contrast_attest::chain::{CertRole, CrlPolicy, RevocationStatus, check_revocation};
    let product = Product::Milan;
    let platform = platform(product);
    let (revoked_chip, other_chip) = (chip_id(product, 1), chip_id(product, 2));
    let now = contrast_attest::UnixTime::from_secs(NOT_BEFORE_UNIX + 2 * 86_400);
    let vcek_serial = platform.vcek_serial(&revoked_chip, tcb_for(product));
    assert_ne!(
        vcek_serial,
        platform.vcek_serial(&other_chip, tcb_for(product))
    );
    let revoke = |serial: Vec<u8>| {
        platform
            .crl(&crl_contents(vec![sim::Revocation {
                serial,
                revoked_at: at(NOT_BEFORE_UNIX + 3600),
            }]))
            .unwrap()
    };

    let vcek_crl = revoke(vcek_serial.clone());
    let error = check_revocation(
        Some(&vcek_crl),
        CrlPolicy::Required,
        &verified_chain(product, &revoked_chip),
        now,
    )
    .unwrap_err();
    assert_eq!(
        error,
        contrast_attest::Error::Revoked {
            role: CertRole::Vcek,
            serial: vcek_serial
        }
    );
    assert!(matches!(
        check_revocation(
            Some(&vcek_crl),
            CrlPolicy::Required,
            &verified_chain(product, &other_chip),
            now
        ),
        Ok(RevocationStatus::Checked { .. })
    ));

    let ask_crl = revoke(platform.ask_serial());
    for chip in [revoked_chip, other_chip] {
        assert_eq!(
            check_revocation(
                Some(&ask_crl),
                CrlPolicy::Required,
                &verified_chain(product, &chip),
                now
            )
            .unwrap_err(),
            contrast_attest::Error::Revoked {
                role: CertRole::Ask,
                serial: vec![0x01, 0x00, 0x01]
            }
        );
    }

    // Past nextUpdate it is stale; another platform's CRL does not verify.
    let stale = contrast_attest::UnixTime::from_secs(NOT_BEFORE_UNIX + 41 * 86_400);
    assert!(matches!(
        check_revocation(
            Some(&ask_crl),
            CrlPolicy::Required,
            &verified_chain(product, &other_chip),
            stale
        ),
        Err(contrast_attest::Error::CrlStale { .. })
    ));
    let foreign = self::platform(Product::Genoa)
        .crl(&crl_contents(Vec::new()))
        .unwrap();
    assert!(
        check_revocation(
            Some(&foreign),
            CrlPolicy::Required,
            &verified_chain(product, &other_chip),
            now
        )
        .is_err()
    );
}

/// OpenSSL, not our verifier, checks the CRL's signature against the simulated ARK and reads
/// the revoked serial.
#[test]
fn openssl_verifies_the_simulated_crl() {
    let platform = platform(Product::Genoa);
    let chip = chip_id(Product::Genoa, 3);
    let serial = platform.vcek_serial(&chip, tcb_for(Product::Genoa));
    let crl = platform
        .crl(&crl_contents(vec![sim::Revocation {
            serial: serial.clone(),
            revoked_at: at(NOT_BEFORE_UNIX + 3600),
        }]))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (crl_path, ark_path) = (dir.path().join("crl.der"), dir.path().join("ark.pem"));
    std::fs::write(&crl_path, &crl).unwrap();
    std::fs::write(
        &ark_path,
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, platform.ark_der())
            .unwrap(),
    )
    .unwrap();
    let output = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-in"])
        .arg(&crl_path)
        .arg("-CAfile")
        .arg(&ark_path)
        .args(["-noout", "-text"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("verify OK"), "{stderr}");
    assert!(
        stdout.contains(&format!("Serial Number: {}", hex::encode_upper(&serial))),
        "{stdout}"
    );
    assert!(stdout.contains("CN=SIM-ARK-Genoa") || stdout.contains("CN = SIM-ARK-Genoa"));
}

#[test]
fn crl_dates_out_of_order_are_refused() {
    let mut contents = crl_contents(Vec::new());
    contents.next_update = contents.this_update;
    assert!(matches!(
        platform(Product::Milan).crl(&contents),
        Err(SimError::CrlDates { .. })
    ));
}
