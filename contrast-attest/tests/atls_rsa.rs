//! RSA client keys in aTLS (the seed-share owner's key for `contrast recover`): handshakes
//! against a server without a client validator, the PKCS#1 extraction the Coordinator hashes,
//! and the self-signature checks of RSA certificates (PKCS#1 v1.5 and RSASSA-PSS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::RsaKeyPair;
use contrast_attest::atls::{
    AtlsCertificate, AtlsClient, AtlsError, AtlsKey, AtlsServer, SNP_ATTESTATION_OID,
};
use contrast_core::owner::{
    OwnerKeyError, SeedshareOwnerPrivateKey, authorize_recovery,
    rsa_pkcs1_from_spki as rsa_pkcs1_public_key_from_spki,
};
use der::{Decode, Encode};
use p384::pkcs8::PrivateKeyInfo;
use rand_core::OsRng;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_cert::Certificate;

/// PKCS#8 DER of one RSA key per size, generated once per test binary (slow in debug builds).
fn rsa_pkcs8(size: KeySize) -> &'static [u8] {
    static RSA_2048: OnceLock<Vec<u8>> = OnceLock::new();
    static RSA_4096: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = match size {
        KeySize::Rsa2048 => &RSA_2048,
        KeySize::Rsa4096 => &RSA_4096,
        _ => panic!("only 2048 and 4096 are used here"),
    };
    cell.get_or_init(|| {
        let pair = RsaKeyPair::generate(size).unwrap();
        let der: Pkcs8V1Der<'static> = pair.as_der().unwrap();
        der.as_ref().to_vec()
    })
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 document (what `RSA PRIVATE KEY` PEM holds).
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    PrivateKeyInfo::from_der(pkcs8)
        .unwrap()
        .private_key
        .to_vec()
}

const NOW: Duration = Duration::from_secs(1_800_000_000);

/// One handshake (client writes "ping", server answers "pong"); returns the SPKI the server's
/// slot recorded for the client.
async fn handshake_spki(client_key: Arc<AtlsKey>) -> Vec<u8> {
    let (server_config, server_slot) = AtlsServer::new(None).config(&mut OsRng).unwrap();
    let (client_config, client_slot) = AtlsClient::dangerous_without_server_attestation()
        .with_key(client_key)
        .config(&mut OsRng)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<(), std::io::Error>(())
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(client_config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    server.await.unwrap().unwrap();
    assert!(client_slot.error().is_none(), "{:?}", client_slot.error());
    assert!(server_slot.error().is_none(), "{:?}", server_slot.error());
    let peer = server_slot.peer().expect("the server recorded the client");
    assert!(
        peer.attestation.is_none(),
        "nothing is appraised without a validator"
    );
    peer.spki_der
}

#[tokio::test]
async fn rsa_2048_and_4096_client_keys_complete_a_handshake_and_the_server_sees_the_spki() {
    for (size, bits) in [(KeySize::Rsa2048, 2048), (KeySize::Rsa4096, 4096)] {
        let key = Arc::new(AtlsKey::rsa_from_pkcs8_der(rsa_pkcs8(size)).unwrap());
        assert_eq!(format!("{key:?}"), format!("AtlsKey::Rsa({bits} bits, ..)"));
        let seen = handshake_spki(Arc::clone(&key)).await;
        assert_eq!(seen, key.spki_der().unwrap());
        // The Coordinator's view: the PKCS#1 key is the one in the client's private key.
        let pkcs1_der = pkcs1_of(rsa_pkcs8(size));
        let pkcs1_private = pkcs1::RsaPrivateKey::from_der(&pkcs1_der).unwrap();
        assert_eq!(
            rsa_pkcs1_public_key_from_spki(&seen).unwrap(),
            pkcs1_private.public_key().to_der().unwrap()
        );
    }
}

#[test]
fn pkcs1_extraction_matches_the_seedshare_owner_public_key_and_authorises_recovery() {
    let pkcs8 = rsa_pkcs8(KeySize::Rsa4096);
    let owner = SeedshareOwnerPrivateKey::from_pkcs8_der(pkcs8).unwrap();
    let from_pkcs1 = AtlsKey::rsa_from_pkcs1_der(&pkcs1_of(pkcs8)).unwrap();
    let from_pkcs8 = AtlsKey::rsa_from_pkcs8_der(pkcs8).unwrap();
    assert_eq!(
        from_pkcs1.spki_der().unwrap(),
        from_pkcs8.spki_der().unwrap()
    );

    let extracted = rsa_pkcs1_public_key_from_spki(&from_pkcs1.spki_der().unwrap()).unwrap();
    assert_eq!(extracted, owner.public_key().pkcs1_der());
    let other = SeedshareOwnerPrivateKey::from_pkcs8_der(rsa_pkcs8(KeySize::Rsa2048)).unwrap();
    let listed = [other.public_key().to_hex(), owner.public_key().to_hex()];
    assert_eq!(authorize_recovery(&listed, &extracted).unwrap(), 1);
}

#[test]
fn pkcs1_extraction_refuses_an_ec_key_naming_its_oid_and_malformed_input() {
    let p256 = AtlsKey::generate_p256().unwrap().spki_der().unwrap();
    match rsa_pkcs1_public_key_from_spki(&p256) {
        Err(OwnerKeyError::UnsupportedAlgorithm { found, .. }) => {
            assert_eq!(found, "1.2.840.10045.2.1");
        }
        other => panic!("expected UnsupportedAlgorithm, got {other:?}"),
    }
    let message = rsa_pkcs1_public_key_from_spki(&p256)
        .unwrap_err()
        .to_string();
    assert!(message.contains("1.2.840.10045.2.1"), "{message}");

    match rsa_pkcs1_public_key_from_spki(b"\x30\x03\x02\x01\x00") {
        Err(OwnerKeyError::MalformedDer { structure, .. }) => {
            assert_eq!(structure, "PKIX SubjectPublicKeyInfo");
        }
        other => panic!("expected MalformedDer, got {other:?}"),
    }
}

#[test]
fn rsa_keys_that_aws_lc_rejects_are_build_errors() {
    for (result, what) in [
        (
            AtlsKey::rsa_from_pkcs1_der(b"not a key"),
            "the rsa key from pkcs#1 der",
        ),
        (
            AtlsKey::rsa_from_pkcs8_der(b"not a key"),
            "the rsa key from pkcs#8 der",
        ),
    ] {
        match result {
            Err(AtlsError::Build { what: found, .. }) => assert_eq!(found, what),
            other => panic!("expected Build, got {other:?}"),
        }
    }
    // An EC key in PKCS#8 is not an RSA key.
    let ec = AtlsKey::generate_p256().unwrap().pkcs8_der().unwrap();
    assert!(matches!(
        AtlsKey::rsa_from_pkcs8_der(ec.as_bytes()),
        Err(AtlsError::Build {
            what: "the rsa key from pkcs#8 der",
            ..
        })
    ));
}

#[test]
fn rsa_certificate_is_sha256_with_rsa_and_a_tampered_one_fails_the_self_signature() {
    let key = AtlsKey::rsa_from_pkcs8_der(rsa_pkcs8(KeySize::Rsa2048)).unwrap();
    let der = AtlsCertificate::build(
        &key,
        Some((SNP_ATTESTATION_OID, b"document")),
        NOW,
        &mut OsRng,
    )
    .unwrap();
    let cert = Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.signature_algorithm.oid,
        const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION
    );
    let parsed = AtlsCertificate::parse(&der).unwrap();
    assert_eq!(parsed.spki_der, key.spki_der().unwrap());
    assert_eq!(parsed.not_before, NOW.as_secs() - 7200);
    assert_eq!(parsed.not_after, NOW.as_secs() + 7200);
    assert_eq!(
        parsed.attestation,
        Some((SNP_ATTESTATION_OID, b"document".to_vec()))
    );

    let mut tampered = der.clone();
    let pos = tampered.windows(8).position(|w| w == b"document").unwrap();
    tampered[pos] ^= 1;
    assert!(matches!(
        AtlsCertificate::parse(&tampered),
        Err(AtlsError::BadSelfSignature)
    ));
    // A flipped signature bit, too.
    let mut bad_signature = der;
    let last = bad_signature.len() - 1;
    bad_signature[last] ^= 1;
    assert!(matches!(
        AtlsCertificate::parse(&bad_signature),
        Err(AtlsError::BadSelfSignature)
    ));
}

/// Re-signs `der` (an RSA certificate of `pair`) with RSASSA-PSS over SHA-256, declaring
/// `salt_len` in the parameters but always signing with a 32-byte salt (what aws-lc does).
fn resign_pss(der: &[u8], pair: &RsaKeyPair, salt_len: u8) -> Vec<u8> {
    let mut cert = Certificate::from_der(der).unwrap();
    let params = pkcs1::RsaPssParams::new::<sha2::Sha256>(salt_len);
    let algorithm = spki::AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::ID_RSASSA_PSS,
        parameters: Some(der::Any::encode_from(&params).unwrap()),
    };
    cert.tbs_certificate.signature = algorithm.clone();
    cert.signature_algorithm = algorithm;
    let tbs = cert.tbs_certificate.to_der().unwrap();
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PSS_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &tbs,
        &mut signature,
    )
    .unwrap();
    cert.signature = der::asn1::BitString::from_bytes(&signature).unwrap();
    cert.to_der().unwrap()
}

#[test]
fn rsassa_pss_self_signatures_verify_and_other_pss_profiles_are_unsupported() {
    let pkcs8 = rsa_pkcs8(KeySize::Rsa2048);
    let key = AtlsKey::rsa_from_pkcs8_der(pkcs8).unwrap();
    let pair = RsaKeyPair::from_pkcs8(pkcs8).unwrap();
    let der = AtlsCertificate::build(&key, None, NOW, &mut OsRng).unwrap();

    let pss = resign_pss(&der, &pair, 32);
    assert_eq!(
        AtlsCertificate::parse(&pss).unwrap().spki_der,
        key.spki_der().unwrap()
    );

    // A flipped notBefore digit (UTCTime, as RFC 5280 wants before 2050): still parses, no
    // longer matches the signature.
    let mut tampered = pss;
    let validity = tampered.windows(2).position(|w| w == [0x17, 0x0d]).unwrap();
    tampered[validity + 3] ^= 1;
    assert!(matches!(
        AtlsCertificate::parse(&tampered),
        Err(AtlsError::BadSelfSignature)
    ));

    match AtlsCertificate::parse(&resign_pss(&der, &pair, 20)) {
        Err(AtlsError::UnsupportedSignature {
            signature_algorithm,
            key_algorithm,
        }) => {
            assert_eq!(signature_algorithm, "1.2.840.113549.1.1.10");
            assert_eq!(key_algorithm, "1.2.840.113549.1.1.1");
        }
        other => panic!("expected UnsupportedSignature, got {other:?}"),
    }
}
