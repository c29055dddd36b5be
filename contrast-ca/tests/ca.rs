//! Golden checks of the CA hierarchy and mesh certificates against the reference, and chain
//! verification with openssl and rustls-webpki.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE,
    ID_CE_SUBJECT_ALT_NAME, ID_CE_SUBJECT_KEY_IDENTIFIER,
};
use contrast_ca::claims::{
    WORKLOAD_SECRET_ID_OID, boolean_extension, integer_extension, octet_string_extension,
    snp_claim_oid,
};
use contrast_ca::san::{San, classify_san};
use contrast_ca::{
    Ca, CaError, INTERMEDIATE_CN, MeshCaKey, ROOT_CN, UnixTime, workload_secret_id_extension,
};
use der::{Encode, Tagged};
use hex_literal::hex;
use rand_core::OsRng;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::time::Time;

fn cn(cert: &Certificate, issuer: bool) -> (der::Tag, String) {
    let name = if issuer {
        &cert.tbs_certificate.issuer
    } else {
        &cert.tbs_certificate.subject
    };
    assert_eq!(name.0.len(), 1, "only one RDN");
    let rdn = &name.0[0].0;
    assert_eq!(rdn.len(), 1, "only one attribute");
    let atv = rdn.iter().next().unwrap();
    assert_eq!(atv.oid, const_oid::db::rfc4519::CN);
    (
        atv.value.tag(),
        String::from_utf8(atv.value.value().to_vec()).unwrap(),
    )
}

/// (OID, critical) of every extension, in order.
fn ext_list(cert: &Certificate) -> Vec<(ObjectIdentifier, bool)> {
    cert.tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.extn_id, e.critical))
        .collect()
}

fn ext_value(cert: &Certificate, oid: ObjectIdentifier) -> Vec<u8> {
    cert.tbs_certificate
        .extensions
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == oid)
        .unwrap()
        .extn_value
        .as_bytes()
        .to_vec()
}

fn unix(t: &Time) -> u64 {
    t.to_unix_duration().as_secs()
}

const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

#[test]
fn ca_certificates_match_the_reference() {
    let (engine, ca) = new_ca(NOW);
    let root = parse(&ca.root().der);
    let inter = parse(&ca.intermediate().der);
    let mesh = parse(&ca.mesh_ca().der);

    // Names; CNs are PrintableStrings, as Go writes them.
    assert_eq!(
        cn(&root, false),
        (der::Tag::PrintableString, ROOT_CN.into())
    );
    assert_eq!(cn(&root, true).1, ROOT_CN);
    assert_eq!(cn(&inter, false).1, INTERMEDIATE_CN);
    assert_eq!(cn(&inter, true).1, ROOT_CN);
    assert_eq!(cn(&mesh, false).1, INTERMEDIATE_CN);
    assert_eq!(cn(&mesh, true).1, INTERMEDIATE_CN);

    // SKIDs: first 20 bytes of SHA-256 of the public key bits.
    let root_point = engine.root_ca_key().verifying_key().to_encoded_point(false);
    let root_skid: [u8; 20] = contrast_core::sha256(root_point.as_bytes())[..20]
        .try_into()
        .unwrap();
    assert_eq!(ca.root_key_identifier(), root_skid);
    let mesh_point = ca.mesh_key().verifying_key().to_encoded_point(false);
    let mesh_skid: [u8; 20] = contrast_core::sha256(mesh_point.as_bytes())[..20]
        .try_into()
        .unwrap();
    assert_eq!(ca.mesh_key_identifier(), mesh_skid);

    // Extensions: Go's order and criticality; AKID only on the intermediate.
    let ca_exts = vec![
        (ID_CE_KEY_USAGE, true),
        (ID_CE_BASIC_CONSTRAINTS, true),
        (ID_CE_SUBJECT_KEY_IDENTIFIER, false),
    ];
    assert_eq!(ext_list(&root), ca_exts);
    assert_eq!(ext_list(&mesh), ca_exts);
    let mut inter_exts = ca_exts.clone();
    inter_exts.push((ID_CE_AUTHORITY_KEY_IDENTIFIER, false));
    assert_eq!(ext_list(&inter), inter_exts);

    for cert in [&root, &inter, &mesh] {
        // KeyUsage DigitalSignature + CertSign: BIT STRING 100001 (2 unused bits), as Go.
        assert_eq!(ext_value(cert, ID_CE_KEY_USAGE), hex!("03020284"));
        // BasicConstraints CA:true, no path length.
        assert_eq!(ext_value(cert, ID_CE_BASIC_CONSTRAINTS), hex!("30030101ff"));
        assert_eq!(
            cert.tbs_certificate.version,
            x509_cert::certificate::Version::V3
        );
        assert_eq!(cert.signature_algorithm.oid, ECDSA_WITH_SHA384);
        assert!(cert.signature_algorithm.parameters.is_none());
        // Validity now − 1 h … now + 10 years (2035-06-15T12:34:56Z), UTCTime.
        let v = &cert.tbs_certificate.validity;
        assert_eq!(unix(&v.not_before), NOW.secs() - 3600);
        assert_eq!(unix(&v.not_after), 2_065_523_696);
        assert!(matches!(v.not_before, Time::UtcTime(_)));
        assert!(matches!(v.not_after, Time::UtcTime(_)));
        // Positive serial of at most 128 bits.
        let serial = cert.tbs_certificate.serial_number.as_bytes();
        assert!(serial.len() <= 17);
        assert!(serial.len() < 17 || serial[0] == 0);
    }
    let mut skid_der = vec![0x04, 20];
    skid_der.extend_from_slice(&root_skid);
    assert_eq!(ext_value(&root, ID_CE_SUBJECT_KEY_IDENTIFIER), skid_der);
    let mut mesh_skid_der = vec![0x04, 20];
    mesh_skid_der.extend_from_slice(&mesh_skid);
    assert_eq!(
        ext_value(&inter, ID_CE_SUBJECT_KEY_IDENTIFIER),
        mesh_skid_der
    );
    assert_eq!(
        ext_value(&mesh, ID_CE_SUBJECT_KEY_IDENTIFIER),
        mesh_skid_der
    );
    let mut akid = vec![0x30, 22, 0x80, 20];
    akid.extend_from_slice(&root_skid);
    assert_eq!(ext_value(&inter, ID_CE_AUTHORITY_KEY_IDENTIFIER), akid);

    // Intermediate and mesh CA hold the mesh key; the root the seed-derived key.
    let spki = |c: &Certificate| {
        c.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec()
    };
    assert_eq!(spki(&root), root_point.as_bytes());
    assert_eq!(spki(&inter), mesh_point.as_bytes());
    assert_eq!(spki(&mesh), mesh_point.as_bytes());

    // PEM as Go writes it.
    assert!(ca.root().pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(ca.root().pem.ends_with("-----END CERTIFICATE-----\n"));
    assert!(ca.root().pem.lines().all(|l| l.len() <= 64));
}

#[test]
fn leaf_matches_the_reference() {
    let (_, ca) = new_ca(NOW);
    let spki = workload_spki();
    let exts = vec![
        integer_extension(snp_claim_oid(1).unwrap(), 2).unwrap(),
        workload_secret_id_extension("db").unwrap().unwrap(),
    ];
    let leaf = ca
        .issue_mesh_cert(
            &spki,
            &sans(&["10.0.0.1", "web", "https://x", "::1", "*", "spiffe://a/b"]),
            &exts,
            NOW,
            &mut OsRng,
        )
        .unwrap();
    let cert = parse(&leaf.der);
    assert_eq!(cn(&cert, false), (der::Tag::PrintableString, "web".into()));
    assert_eq!(cn(&cert, true).1, INTERMEDIATE_CN);
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap(),
        spki
    );
    assert_eq!(
        ext_list(&cert),
        vec![
            (ID_CE_KEY_USAGE, true),
            (ID_CE_EXT_KEY_USAGE, false),
            (ID_CE_BASIC_CONSTRAINTS, true),
            (ID_CE_AUTHORITY_KEY_IDENTIFIER, false),
            (ID_CE_SUBJECT_ALT_NAME, false),
            (snp_claim_oid(1).unwrap(), false),
            (WORKLOAD_SECRET_ID_OID, false),
        ]
    );
    // KeyUsage DigitalSignature only: 1 bit, 7 unused.
    assert_eq!(ext_value(&cert, ID_CE_KEY_USAGE), hex!("03020780"));
    // EKU clientAuth, serverAuth in that order.
    assert_eq!(
        ext_value(&cert, ID_CE_EXT_KEY_USAGE),
        hex!("301406082b0601050507030206082b06010505070301")
    );
    // BasicConstraints CA:false is the empty SEQUENCE.
    assert_eq!(ext_value(&cert, ID_CE_BASIC_CONSTRAINTS), hex!("3000"));
    let mut akid = vec![0x30, 22, 0x80, 20];
    akid.extend_from_slice(&ca.mesh_key_identifier());
    assert_eq!(ext_value(&cert, ID_CE_AUTHORITY_KEY_IDENTIFIER), akid);
    // SANs: DNS names, then IPs, then URIs.
    let san: SubjectAltName =
        der::Decode::from_der(&ext_value(&cert, ID_CE_SUBJECT_ALT_NAME)).unwrap();
    let rendered: Vec<String> = san
        .0
        .iter()
        .map(|g| match g {
            GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
            GeneralName::IpAddress(ip) => format!("IP:{}", hex::encode(ip.as_bytes())),
            GeneralName::UniformResourceIdentifier(u) => format!("URI:{}", u.as_str()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        rendered,
        vec![
            "DNS:web",
            "DNS:*",
            "IP:0a000001",
            "IP:00000000000000000000000000000001",
            "URI:https://x",
            "URI:spiffe://a/b",
        ]
    );
    // Claim values as given; the workload secret ID is the DER OCTET STRING of its bytes.
    assert_eq!(ext_value(&cert, snp_claim_oid(1).unwrap()), hex!("020102"));
    assert_eq!(ext_value(&cert, WORKLOAD_SECRET_ID_OID), hex!("04026462"));
    // Validity now − 1 h … now + 1 year (2026-06-15T12:34:56Z).
    let v = &cert.tbs_certificate.validity;
    assert_eq!(unix(&v.not_before), NOW.secs() - 3600);
    assert_eq!(unix(&v.not_after), 1_781_526_896);
    assert_eq!(cert.signature_algorithm.oid, ECDSA_WITH_SHA384);

    // The files the initializer writes.
    assert_eq!(
        leaf.cert_chain_pem,
        format!("{}{}", leaf.pem, ca.intermediate().pem)
    );
    assert_eq!(leaf.mesh_ca_pem, ca.mesh_ca().pem);
    assert_eq!(leaf.root_ca_pem, ca.root().pem);
}

#[test]
fn year_arithmetic_follows_go_add_date() {
    // 2028-02-29T00:30:00Z: + 10 years is 2038-03-01 (Go normalises), − 1 h is the 28th.
    let leap = UnixTime::from_secs(1_835_397_000);
    let (_, ca) = new_ca(leap);
    let root = parse(&ca.root().der);
    let v = &root.tbs_certificate.validity;
    assert_eq!(
        v.not_after.to_date_time().to_string(),
        "2038-03-01T00:30:00Z"
    );
    assert_eq!(
        v.not_before.to_date_time().to_string(),
        "2028-02-28T23:30:00Z"
    );
    // After 2040 the CA's notAfter crosses 2050 and becomes a GeneralizedTime, as Go.
    let late = UnixTime::from_secs(2_240_611_200); // 2041-01-01
    let (_, ca) = new_ca(late);
    let root = parse(&ca.root().der);
    assert!(matches!(
        root.tbs_certificate.validity.not_after,
        Time::GeneralTime(_)
    ));
    assert!(matches!(
        root.tbs_certificate.validity.not_before,
        Time::UtcTime(_)
    ));
}

#[test]
fn too_early_now_is_refused() {
    let engine = seed_engine(1);
    let err = Ca::new(
        engine.root_ca_key(),
        MeshCaKey::generate(&mut OsRng),
        UnixTime::from_secs(10),
        &mut OsRng,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        CaError::TimeOutOfRange {
            bound: "notBefore",
            seconds: 10
        }
    ));
}

#[test]
fn san_classification() {
    assert_eq!(
        classify_san("10.1.2.3"),
        San::Ip("10.1.2.3".parse().unwrap())
    );
    assert_eq!(classify_san("fe80::1"), San::Ip("fe80::1".parse().unwrap()));
    assert_eq!(classify_san("https://x"), San::Uri("https://x".into()));
    assert_eq!(
        classify_san("spiffe://a/b"),
        San::Uri("spiffe://a/b".into())
    );
    assert_eq!(classify_san("*"), San::Dns("*".into()));
    assert_eq!(classify_san("web"), San::Dns("web".into()));
    assert_eq!(classify_san("*.ns.svc"), San::Dns("*.ns.svc".into()));
    // No DNS SAN: an error, not a panic.
    let (_, ca) = new_ca(NOW);
    let err = ca
        .issue_mesh_cert(
            &workload_spki(),
            &sans(&["10.0.0.1", "https://x"]),
            &[],
            NOW,
            &mut OsRng,
        )
        .unwrap_err();
    assert!(matches!(err, CaError::NoDnsSan { count: 2 }));
    let err = ca
        .issue_mesh_cert(&workload_spki(), &[], &[], NOW, &mut OsRng)
        .unwrap_err();
    assert!(matches!(err, CaError::NoDnsSan { count: 0 }));
}

#[test]
fn ipv4_mapped_ipv6_is_written_as_four_bytes() {
    let (_, ca) = new_ca(NOW);
    let leaf = ca
        .issue_mesh_cert(
            &workload_spki(),
            &sans(&["w", "::ffff:1.2.3.4"]),
            &[],
            NOW,
            &mut OsRng,
        )
        .unwrap();
    let cert = parse(&leaf.der);
    let san: SubjectAltName =
        der::Decode::from_der(&ext_value(&cert, ID_CE_SUBJECT_ALT_NAME)).unwrap();
    assert!(matches!(&san.0[1], GeneralName::IpAddress(ip) if ip.as_bytes() == [1, 2, 3, 4]));
}

#[test]
fn common_name_string_type_follows_go() {
    let (_, ca) = new_ca(NOW);
    for (name, tag) in [
        ("*", der::Tag::Utf8String),
        ("my_svc", der::Tag::Utf8String),
        ("web.default.svc", der::Tag::PrintableString),
    ] {
        let leaf = ca
            .issue_mesh_cert(&workload_spki(), &sans(&[name]), &[], NOW, &mut OsRng)
            .unwrap();
        assert_eq!(cn(&parse(&leaf.der), false), (tag, name.to_owned()));
    }
}

#[test]
fn bad_inputs_get_specific_errors() {
    let (_, ca) = new_ca(NOW);
    let err = ca
        .issue_mesh_cert(b"not der", &sans(&["web"]), &[], NOW, &mut OsRng)
        .unwrap_err();
    assert!(matches!(err, CaError::InvalidPublicKey { .. }));
    let err = ca
        .issue_mesh_cert(&workload_spki(), &sans(&["wéb"]), &[], NOW, &mut OsRng)
        .unwrap_err();
    assert!(matches!(err, CaError::NonAsciiSan { kind: "DNS", .. }));
    let err = ca
        .issue_mesh_cert(
            &workload_spki(),
            &sans(&["web", "https://é"]),
            &[],
            NOW,
            &mut OsRng,
        )
        .unwrap_err();
    assert!(matches!(err, CaError::NonAsciiSan { kind: "URI", .. }));
    let twice = integer_extension(snp_claim_oid(2).unwrap(), 1).unwrap();
    let err = ca
        .issue_mesh_cert(
            &workload_spki(),
            &sans(&["web"]),
            &[twice.clone(), twice],
            NOW,
            &mut OsRng,
        )
        .unwrap_err();
    assert!(matches!(err, CaError::DuplicateExtension { oid } if oid == snp_claim_oid(2).unwrap()));
    let shadow = octet_string_extension(ID_CE_SUBJECT_ALT_NAME, b"x").unwrap();
    let err = ca
        .issue_mesh_cert(
            &workload_spki(),
            &sans(&["web"]),
            &[shadow],
            NOW,
            &mut OsRng,
        )
        .unwrap_err();
    assert!(matches!(err, CaError::DuplicateExtension { oid } if oid == ID_CE_SUBJECT_ALT_NAME));
}

#[test]
fn claim_value_encodings() {
    let oid = snp_claim_oid(11).unwrap();
    assert_eq!(oid.to_string(), "1.3.9901.2.1.11");
    let int = |v| {
        integer_extension(oid, v)
            .unwrap()
            .extn_value
            .as_bytes()
            .to_vec()
    };
    assert_eq!(int(0), hex!("020100"));
    assert_eq!(int(127), hex!("02017f"));
    assert_eq!(int(128), hex!("02020080"));
    assert_eq!(int(0x1234), hex!("02021234"));
    assert_eq!(int(u64::MAX), hex!("020900ffffffffffffffff"));
    let b = |v| {
        boolean_extension(oid, v)
            .unwrap()
            .extn_value
            .as_bytes()
            .to_vec()
    };
    assert_eq!(b(true), hex!("0101ff"));
    assert_eq!(b(false), hex!("010100"));
    let o = octet_string_extension(oid, &[0xde, 0xad]).unwrap();
    assert_eq!(o.extn_value.as_bytes(), hex!("0402dead"));
    assert!(!o.critical);
    assert_eq!(workload_secret_id_extension("").unwrap(), None);
    let id = workload_secret_id_extension("ü").unwrap().unwrap();
    assert_eq!(id.extn_id.to_string(), "1.3.9901.3.1");
    assert_eq!(id.extn_value.as_bytes(), hex!("0402c3bc"));
}

#[test]
fn mesh_key_pem_round_trips() {
    let key = MeshCaKey::generate(&mut OsRng);
    let pem = key.to_sec1_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    // Same bytes as openssl's SEC1 writer (named curve and public key included, like Go's
    // `x509.MarshalECPrivateKey`).
    if std::path::Path::new("/usr/bin/openssl").exists() {
        let mut child = std::process::Command::new("/usr/bin/openssl")
            .args(["ec", "-outform", "PEM"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(pem.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), pem.as_str());
    } else {
        println!("skipping the openssl comparison: /usr/bin/openssl is missing");
    }
    let back = MeshCaKey::from_pem(&pem).unwrap();
    assert_eq!(back.verifying_key(), key.verifying_key());
    assert!(!format!("{key:?}").contains(&hex::encode(key.signing_key().to_bytes())));
    let err = MeshCaKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(matches!(err, CaError::MeshCaKey { .. }));
}

#[test]
fn webpki_verifies_both_paths_for_both_usages() {
    let (_, ca) = new_ca(NOW);
    let leaf = ca
        .issue_mesh_cert(
            &workload_spki(),
            &sans(&["web", "10.0.0.1"]),
            &[],
            NOW,
            &mut OsRng,
        )
        .unwrap();
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        webpki_verify(
            &ca.root().der,
            &[&ca.intermediate().der],
            &leaf.der,
            NOW,
            usage,
        )
        .unwrap();
        webpki_verify(&ca.mesh_ca().der, &[], &leaf.der, NOW, usage).unwrap();
    }
    // Without the intermediate the root does not reach the leaf.
    assert!(
        webpki_verify(
            &ca.root().der,
            &[],
            &leaf.der,
            NOW,
            webpki::KeyUsage::server_auth()
        )
        .is_err()
    );
    // The leaf is valid for its DNS name and IP.
    let leaf_der = rustls_pki_types::CertificateDer::from(leaf.der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    ee.verify_is_valid_for_subject_name(&rustls_pki_types::ServerName::try_from("web").unwrap())
        .unwrap();
    ee.verify_is_valid_for_subject_name(
        &rustls_pki_types::ServerName::try_from("10.0.0.1").unwrap(),
    )
    .unwrap();
    // And expired a year and a day later.
    let later = UnixTime::from_secs(NOW.secs() + 366 * 86_400);
    assert!(matches!(
        webpki_verify(
            &ca.mesh_ca().der,
            &[],
            &leaf.der,
            later,
            webpki::KeyUsage::server_auth()
        ),
        Err(webpki::Error::CertExpired { .. })
    ));
}

#[test]
fn openssl_verifies_both_paths() {
    let openssl = std::path::Path::new("/usr/bin/openssl");
    if !openssl.exists() {
        println!("skipping: /usr/bin/openssl is missing");
        return;
    }
    // openssl checks against the wall clock.
    let now = system_now();
    let (_, ca) = new_ca(now);
    let leaf = ca
        .issue_mesh_cert(
            &workload_spki(),
            &sans(&["web", "10.0.0.1", "spiffe://a/b"]),
            &[integer_extension(snp_claim_oid(1).unwrap(), 3).unwrap()],
            now,
            &mut OsRng,
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let root = write("root.pem", &ca.root().pem);
    let inter = write("intermediate.pem", &ca.intermediate().pem);
    let mesh = write("mesh.pem", &ca.mesh_ca().pem);
    let leaf_path = write("leaf.pem", &leaf.pem);
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(openssl)
            .arg("verify")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), format!("{stdout}{stderr}"))
    };
    for purpose in ["sslserver", "sslclient"] {
        let (ok, log) = run(&[
            "-x509_strict".as_ref(),
            "-purpose".as_ref(),
            purpose.as_ref(),
            "-CAfile".as_ref(),
            root.as_os_str(),
            "-untrusted".as_ref(),
            inter.as_os_str(),
            leaf_path.as_os_str(),
        ]);
        assert!(ok, "root via intermediate, {purpose}: {log}");
        let (ok, log) = run(&[
            "-x509_strict".as_ref(),
            "-purpose".as_ref(),
            purpose.as_ref(),
            "-CAfile".as_ref(),
            mesh.as_os_str(),
            leaf_path.as_os_str(),
        ]);
        assert!(ok, "mesh CA, {purpose}: {log}");
    }
    // The root alone does not verify the leaf.
    let (ok, _) = run(&["-CAfile".as_ref(), root.as_os_str(), leaf_path.as_os_str()]);
    assert!(!ok);
}

#[test]
fn recovery_keeps_the_root_and_rotates_the_mesh_ca() {
    let engine = seed_engine(9);
    let old = ca_at(&engine, MeshCaKey::generate(&mut OsRng), NOW);
    let old_leaf = old
        .issue_mesh_cert(&workload_spki(), &sans(&["web"]), &[], NOW, &mut OsRng)
        .unwrap();

    // Recovery: same seed (a new engine from it), new mesh key.
    let later = UnixTime::from_secs(NOW.secs() + 600);
    let recovered_engine = seed_engine(9);
    let new = ca_at(&recovered_engine, MeshCaKey::generate(&mut OsRng), later);
    let new_leaf = new
        .issue_mesh_cert(&workload_spki(), &sans(&["web"]), &[], later, &mut OsRng)
        .unwrap();

    let (old_root, new_root) = (parse(&old.root().der), parse(&new.root().der));
    assert_ne!(old.root().der, new.root().der, "new certificate bytes");
    assert_eq!(old.root_key_identifier(), new.root_key_identifier());
    assert_eq!(
        old_root.tbs_certificate.subject,
        new_root.tbs_certificate.subject
    );
    assert_eq!(
        old_root.tbs_certificate.subject_public_key_info,
        new_root.tbs_certificate.subject_public_key_info
    );
    assert_ne!(old.mesh_key_identifier(), new.mesh_key_identifier());
    assert_ne!(
        parse(&old.mesh_ca().der)
            .tbs_certificate
            .subject_public_key_info,
        parse(&new.mesh_ca().der)
            .tbs_certificate
            .subject_public_key_info
    );

    let usage = webpki::KeyUsage::server_auth;
    // The old leaf no longer verifies against the new mesh CA ...
    assert!(webpki_verify(&new.mesh_ca().der, &[], &old_leaf.der, later, usage()).is_err());
    // ... the new one does, and chains to the re-issued root through the new intermediate.
    webpki_verify(&new.mesh_ca().der, &[], &new_leaf.der, later, usage()).unwrap();
    webpki_verify(
        &new.root().der,
        &[&new.intermediate().der],
        &new_leaf.der,
        later,
        usage(),
    )
    .unwrap();
    // The root still vouches for the old generation (its old intermediate), and the old root
    // for the new one: both root certificates name the same key.
    webpki_verify(
        &new.root().der,
        &[&old.intermediate().der],
        &old_leaf.der,
        later,
        usage(),
    )
    .unwrap();
    webpki_verify(
        &old.root().der,
        &[&new.intermediate().der],
        &new_leaf.der,
        later,
        usage(),
    )
    .unwrap();

    // Peer recovery: the mesh key travels as PEM and yields the same mesh key identifier.
    let pem = new.mesh_key().to_sec1_pem().unwrap();
    let peer = ca_at(&recovered_engine, MeshCaKey::from_pem(&pem).unwrap(), later);
    assert_eq!(peer.mesh_key_identifier(), new.mesh_key_identifier());
    webpki_verify(&peer.mesh_ca().der, &[], &new_leaf.der, later, usage()).unwrap();
}
