//! Our side of `benches/peer-go/run.sh`: the same cases as the Go standard-library program in
//! `benches/peer-go/main.go`, on the same real Milan vector, timed the same way (calibrate the
//! iteration count to about 0.3 s per sample, median ns/op of 7 samples). Output lines are
//! `rust <case> <ns/op>`.
//!
//! The primitives are the ones `contrast-attest` uses: aws-lc-rs ECDSA P-384/SHA-384 for the
//! report, aws-lc-rs RSASSA-PSS SHA-384 for the chain, `x509-cert` for DER. Two more cases run
//! the real verifier, `contrast_attest::verify_report`, with and without a warm `VcekCache`.
//!
//! ```sh
//! cargo run --release -p contrast-benches --example peer_go -- [sample_ms] [samples]
//! ```

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED, ParsedPublicKey, RSA_PSS_2048_8192_SHA384, UnparsedPublicKey,
};
use contrast_attest::collateral::CollateralMap;
use contrast_attest::{
    CrlPolicy, Product, TrustAnchor, UnixTime, UnverifiedReport, VcekCache, verify_report,
};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

const REPORT_HEX: &str = include_str!("../../contrast-attest/tests/vectors/report_milan.hex");
const VCEK_DER: &[u8] = include_bytes!("../../contrast-attest/tests/vectors/vcek_milan.der");
const ASK_DER: &[u8] = include_bytes!("../../contrast-attest/roots/milan/ask.der");
const ARK_DER: &[u8] = include_bytes!("../../contrast-attest/roots/milan/ark.der");
const NOW: UnixTime = UnixTime::from_secs(1_735_689_600); // 2025-01-01, inside the VCEK's validity
const SIG_OFFSET: usize = contrast_attest::report::Field::SignatureR.offset();

/// A certificate's to-be-signed bytes, signature and public key bytes (SEC1 point or PKCS#1).
struct Parts {
    tbs: Vec<u8>,
    signature: Vec<u8>,
    key: Vec<u8>,
}

fn parts(der: &[u8]) -> Option<Parts> {
    let cert = Certificate::from_der(der).ok()?;
    Some(Parts {
        tbs: cert.tbs_certificate.to_der().ok()?,
        signature: cert.signature.as_bytes()?.to_vec(),
        key: cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()?
            .to_vec(),
    })
}

/// The report's little-endian 72-byte r and s as the 96-byte big-endian r ‖ s aws-lc-rs takes.
fn fixed_signature(report: &[u8]) -> [u8; 96] {
    let mut out = [0u8; 96];
    for (half, offset) in [SIG_OFFSET, SIG_OFFSET + 72].into_iter().enumerate() {
        for i in 0..48 {
            out[half * 48 + 47 - i] = report.get(offset + i).copied().unwrap_or_default();
        }
    }
    out
}

/// Median ns/op over `samples` samples of about `target` each.
fn measure(f: &dyn Fn() -> bool, target: Duration, samples: usize) -> Option<f64> {
    if !f() {
        return None;
    }
    let mut n: u64 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        let elapsed = start.elapsed();
        if elapsed >= target / 4 {
            n = ((n as f64) * target.as_secs_f64() / elapsed.as_secs_f64()).max(1.0) as u64;
            break;
        }
        n *= 4;
    }
    let mut results = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        for _ in 0..n {
            if !black_box(f()) {
                return None;
            }
        }
        results.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    results.sort_by(f64::total_cmp);
    results.get(samples / 2).copied()
}

fn pss(issuer: &ParsedPublicKey, cert: &Parts) -> bool {
    issuer.verify_sig(&cert.tbs, &cert.signature).is_ok()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let sample_ms = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let samples = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    let target = Duration::from_millis(sample_ms);

    let report = hex::decode(REPORT_HEX.trim()).unwrap_or_default();
    let (Some(vcek), Some(ask), Some(ark)) = (parts(VCEK_DER), parts(ASK_DER), parts(ARK_DER))
    else {
        eprintln!("cannot parse the vector's certificates");
        return ExitCode::FAILURE;
    };
    let (Ok(ask_key), Ok(ark_key), Ok(vcek_key)) = (
        ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, &ask.key),
        ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, &ark.key),
        ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &vcek.key),
    ) else {
        eprintln!("cannot parse the vector's public keys");
        return ExitCode::FAILURE;
    };
    let Some(signed) = report.get(..SIG_OFFSET) else {
        eprintln!("the report is too short");
        return ExitCode::FAILURE;
    };
    let fixed = fixed_signature(&report);

    let mut map = CollateralMap::new();
    if let Ok(unverified) = UnverifiedReport::from_bytes(&report) {
        let tcb = unverified.reported_tcb(Product::Milan);
        map.insert_vcek(
            Product::Milan,
            unverified.chip_id(),
            &tcb,
            VCEK_DER.to_vec(),
        );
    }
    let anchor = TrustAnchor::Amd(Product::Milan);
    let cache = VcekCache::new(16);

    // As the Go side: the report check converts the signature and takes the key from the VCEK's
    // point on every call (Go's CheckSignature builds its key from the parsed certificate).
    let report_ecdsa = || {
        let signature = fixed_signature(black_box(&report));
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &vcek.key)
            .verify(signed, &signature)
            .is_ok()
    };
    let report_ecdsa_raw = || vcek_key.verify_sig(black_box(signed), &fixed).is_ok();
    let vcek_by_ask = || pss(&ask_key, black_box(&vcek));
    let ask_by_ark = || pss(&ark_key, black_box(&ask));
    let ark_self = || pss(&ark_key, black_box(&ark));
    let parse_vcek = || Certificate::from_der(black_box(VCEK_DER)).is_ok();
    let parse_3 = || {
        [ARK_DER, ASK_DER, VCEK_DER]
            .iter()
            .all(|der| Certificate::from_der(black_box(der)).is_ok())
    };
    let floor = || report_ecdsa() && vcek_by_ask() && ask_by_ark();
    let full = || {
        verify_report(
            black_box(&report),
            &map,
            &anchor,
            NOW,
            CrlPolicy::BestEffort,
            None,
        )
        .is_ok()
    };
    let cached = || {
        verify_report(
            black_box(&report),
            &map,
            &anchor,
            NOW,
            CrlPolicy::BestEffort,
            Some(&cache),
        )
        .is_ok()
    };
    let cases: [(&str, &dyn Fn() -> bool); 10] = [
        ("report_ecdsa", &report_ecdsa),
        ("report_ecdsa_raw", &report_ecdsa_raw),
        ("vcek_by_ask_pss", &vcek_by_ask),
        ("ask_by_ark_pss", &ask_by_ark),
        ("ark_self_pss", &ark_self),
        ("parse_vcek", &parse_vcek),
        ("parse_3_certs", &parse_3),
        ("floor_total", &floor),
        ("full_from_der", &full),
        ("verify_report_cached", &cached),
    ];
    for (name, f) in &cases {
        let Some(ns) = measure(*f, target, samples) else {
            eprintln!("{name}: verification failed");
            return ExitCode::FAILURE;
        };
        println!("rust {name} {ns:.0}");
    }
    ExitCode::SUCCESS
}
