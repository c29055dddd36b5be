//! The SNP issuer supplied by the collateral feed: a guest whose host hands it no certificates
//! (a configfs-tsm entry with an empty auxblob) gets its VCEK, CA chain and CRL from a KDS
//! stand-in, and its documents then verify with the CRL required.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::SystemTime;

use contrast_attest::atls::Issuer;
use contrast_attest::chain::{CrlPolicy, TrustAnchor};
use contrast_attest::evidence::SnpEvidence;
use contrast_attest::{Product, RevocationStatus, UnixTime, verify_report};
use contrast_kds::{ClientConfig, CollateralClient};
use contrast_tee::collateral::CollateralFeed;
use contrast_tee::snp::{MissingVcek, ReportSource, SnpIssuer};
use contrast_testkit::fixtures::environment;
use contrast_testkit::kds::{Fault, KdsStandIn};

const CHIP: [u8; 64] = [0x2b; 64];
const REPORT_DATA: [u8; 64] = [0x91; 64];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_without_host_certificates_attests_with_fetched_collateral() {
    let env = &environment().1;
    let platform = env.platform();
    let guest = env.guest(CHIP, [0; 32]).unwrap();
    let evidence = guest.evidence(platform, &REPORT_DATA).unwrap();

    // A configfs-tsm entry after the kernel answered, with no certificate table.
    let entry = tempfile::tempdir().unwrap();
    std::fs::write(entry.path().join("provider"), "sev_guest\n").unwrap();
    std::fs::write(entry.path().join("generation"), "3\n").unwrap();
    std::fs::write(entry.path().join("outblob"), &evidence.report).unwrap();
    std::fs::write(entry.path().join("auxblob"), b"").unwrap();
    let issuer = Arc::new(
        SnpIssuer::with_source(
            ReportSource::ConfigfsTsmEntry {
                entry: entry.path().to_path_buf(),
            },
            None,
            MissingVcek::Supplied,
        )
        .unwrap(),
    );
    assert!(issuer.issue(&REPORT_DATA).is_err(), "issued without a VCEK");

    let kds = KdsStandIn::start("").await;
    let tcb = env.launch().tcb.into();
    kds.serve(
        &format!("/vcek/v1/Milan/{}", hex::encode(CHIP)),
        platform.vcek_for(&CHIP, tcb).unwrap(),
    );
    kds.serve(
        "/vcek/v1/Milan/cert_chain",
        platform.cert_chain_pem().unwrap().into_bytes(),
    );
    kds.serve("/vcek/v1/Milan/crl", env.crl(SystemTime::now()).unwrap());
    let anchor = TrustAnchor::Pinned {
        ark_der_sha256: platform.ark_fingerprint(),
        product: Product::Milan,
    };
    let client = || {
        CollateralClient::new(ClientConfig {
            kds_base: kds.url.clone(),
            ..ClientConfig::default()
        })
        .unwrap()
    };
    let feed = CollateralFeed::new(Arc::clone(&issuer), client(), anchor, Product::Milan);
    feed.refresh().await.unwrap();

    let document = issuer.issue(&REPORT_DATA).unwrap();
    let parsed = SnpEvidence::parse(&document).unwrap();
    assert!(parsed.crl().is_some());
    let verified = verify_report(
        parsed.report(),
        &parsed,
        &anchor,
        UnixTime::from(SystemTime::now()),
        CrlPolicy::Required,
        None,
    )
    .unwrap();
    assert!(matches!(
        verified.revocation,
        RevocationStatus::Checked { .. }
    ));

    // The KDS fails: the refresh says where, and the issuer keeps what it had.
    kds.always(Fault::Status(500, None));
    let fresh = CollateralFeed::new(Arc::clone(&issuer), client(), anchor, Product::Milan);
    let error = fresh.refresh().await.unwrap_err().to_string();
    assert!(
        error.contains(&kds.url) && error.contains("HTTP 500"),
        "{error}"
    );
    assert!(issuer.issue(&REPORT_DATA).is_ok());
}
