//! `contrast collateral`: filling a cache from a KDS stand-in and from files, then working from
//! the cache with the KDS down (an air-gapped verifier's situation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;
use std::time::SystemTime;

use contrast_attest::TcbVersion;
use contrast_testkit::fixtures::{environment, sim_dir};
use contrast_testkit::kds::{Fault, KdsStandIn};

const CHIP: [u8; 64] = [0x6d; 64];

fn contrast(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_contrast"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn tcb() -> TcbVersion {
    environment().1.launch().tcb.into()
}

fn dotted() -> String {
    tcb().to_dotted()
}

/// A KDS stand-in serving the test environment's collateral for [`CHIP`].
async fn kds() -> KdsStandIn {
    let env = &environment().1;
    let platform = env.platform();
    let kds = KdsStandIn::start("").await;
    kds.serve(
        &format!("/vcek/v1/Milan/{}", hex::encode(CHIP)),
        platform.vcek_for(&CHIP, tcb()).unwrap(),
    );
    kds.serve(
        "/vcek/v1/Milan/cert_chain",
        platform.cert_chain_pem().unwrap().into_bytes(),
    );
    kds.serve("/vcek/v1/Milan/crl", env.crl(SystemTime::now()).unwrap());
    kds
}

async fn fetch(cache: &Path, kds: &KdsStandIn, chip: &[u8; 64]) -> Output {
    let (cache, url, chip, tcb) = (
        cache.to_str().unwrap().to_owned(),
        kds.url.clone(),
        hex::encode(chip),
        dotted(),
    );
    tokio::task::spawn_blocking(move || {
        contrast(&[
            "collateral",
            "fetch",
            "--cache",
            &cache,
            "--sim-dir",
            sim_dir().to_str().unwrap(),
            "--kds-url",
            &url,
            "--chip-id",
            &chip,
            "--tcb",
            &tcb,
            "--timeout",
            "2s",
        ])
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_fills_the_cache_and_a_second_run_needs_no_kds() {
    let kds = kds().await;
    let cache = tempfile::tempdir().unwrap();
    let output = fetch(cache.path(), &kds, &CHIP).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("VCEK from KDS, CA chain from KDS, CRL from KDS"),
        "{}",
        text(&output)
    );
    assert!(cache.path().join("vcek/v1/Milan/cert_chain.pem").is_file());
    assert!(cache.path().join("vcek/v1/Milan/crl.der").is_file());

    // The KDS is gone: everything comes from the cache.
    kds.always(Fault::Status(503, None));
    let requests = kds.log().len();
    let output = fetch(cache.path(), &kds, &CHIP).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("VCEK from cache, CA chain from cache, CRL from cache"),
        "{}",
        text(&output)
    );
    assert_eq!(kds.log().len(), requests, "the KDS was asked");

    // A chip the cache does not have, with the KDS down: refused, every attempt named.
    let output = fetch(cache.path(), &kds, &[0x7e; 64]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not get the VCEK for Milan")
            && stderr.contains("(attempt 3): HTTP 503"),
        "{stderr}"
    );
}

#[test]
fn import_verifies_every_file_and_writes_all_or_nothing() {
    let env = &environment().1;
    let platform = env.platform();
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str| files.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("cert_chain.pem"), platform.cert_chain_pem().unwrap()).unwrap();
    std::fs::write(path("vcek.der"), platform.vcek_for(&CHIP, tcb()).unwrap()).unwrap();
    std::fs::write(path("crl.der"), env.crl(SystemTime::now()).unwrap()).unwrap();
    std::fs::write(path("garbage.der"), b"not a certificate").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("collateral");
    let import = |vcek: &str| {
        contrast(&[
            "collateral",
            "import",
            "--cache",
            cache_dir.to_str().unwrap(),
            "--sim-dir",
            sim_dir().to_str().unwrap(),
            "--cert-chain",
            &path("cert_chain.pem"),
            "--vcek",
            &path(vcek),
            "--crl",
            &path("crl.der"),
        ])
    };

    let output = import("garbage.der");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the VCEK does not verify"),
        "{}",
        text(&output)
    );
    assert!(!cache_dir.exists(), "a refused import wrote something");

    let output = import("vcek.der");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let vcek = cache_dir
        .join("vcek/v1/Milan")
        .join(hex::encode(CHIP))
        .join(format!(
            "{}.der",
            hex::encode(tcb().to_bytes(contrast_attest::Product::Milan))
        ));
    assert!(vcek.is_file(), "{}", text(&output));
    assert!(
        text(&output).contains("CRL valid until"),
        "{}",
        text(&output)
    );
}

#[test]
fn fetch_explains_what_it_needs() {
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path().to_str().unwrap();
    for (args, expected) in [
        (vec!["--chip-id", "00"], "--chip-id needs --tcb"),
        (vec!["--tcb", "1.0.8.115"], "--tcb needs --chip-id"),
        (vec![], "nothing to fetch"),
        (
            vec!["--chip-id", &"ab".repeat(64), "--tcb", "1.0.8"],
            "BOOTLOADER.TEE.SNP.MICROCODE",
        ),
        (
            vec!["--chip-id", "abcd", "--tcb", "1.0.8.115"],
            "a Milan chip ID is 64 bytes",
        ),
    ] {
        let mut full = vec!["collateral", "fetch", "--cache", cache];
        full.extend(args);
        let output = contrast(&full);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{expected}: {}",
            text(&output)
        );
    }
}
