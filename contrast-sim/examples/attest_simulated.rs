//! A simulated SEV-SNP guest appraised against a manifest's reference values, through the
//! production verification path (parse, AMD-format chain, binding, appraisal); only the trust
//! anchor is the simulated ARK, pinned by its fingerprint in the manifest.
//!
//! ```sh
//! cargo run -p contrast-sim --example attest_simulated
//! ```

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use contrast_attest::chain::CertRole;
use contrast_attest::collateral::CollateralMap;
use contrast_attest::{AppraisalPolicy, CrlPolicy, Product, TcbVersion, UnixTime, Verifier};
use contrast_core::hexstring;
use contrast_core::manifest::{GuestPolicy, SnpReferenceValues};
use contrast_sim::{SimulatedGuest, SimulatedPlatform};
use rand_core::{OsRng, RngCore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attest_simulated failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    println!(
        "generating a simulated AMD Milan hierarchy (ARK and ASK are RSA-4096; takes a moment)..."
    );
    let now = SystemTime::now();
    let platform =
        SimulatedPlatform::generate(Product::Milan, now - Duration::from_secs(3600), &mut OsRng)?;
    println!(
        "  simulated ARK fingerprint: {}",
        hexstring::encode(platform.ark_fingerprint())
    );

    // The workload owner's reference values (what `contrast generate` would put in the
    // manifest) and the confidential VM as launched: same measurement and policy, the ID block.
    let measurement = random::<48>();
    let guest_policy = GuestPolicy {
        smt: true,
        ..GuestPolicy::default()
    };
    let tcb = TcbVersion {
        fmc: None,
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 209,
    };
    let reference = platform.reference_values(&measurement, &guest_policy, tcb);
    let mut guest = SimulatedGuest::launched(
        Product::Milan,
        random::<64>(),
        tcb,
        measurement,
        &guest_policy,
    )?;
    guest.host_data = random::<32>();
    let report_data = random::<64>();
    let evidence = guest.evidence(&platform, &report_data)?;

    let mut collateral = CollateralMap::new();
    collateral.insert_vcek(
        Product::Milan,
        &guest.chip_id,
        &guest.reported_tcb,
        evidence.vcek_der.clone(),
    );
    collateral.insert_ca(Product::Milan, CertRole::Ask, evidence.ask_der.clone());
    collateral.insert_ca(Product::Milan, CertRole::Ark, evidence.ark_der.clone());
    // The simulated ARK signs no CRL, so revocation is best effort here.
    let policy = AppraisalPolicy::default().with_crl(CrlPolicy::BestEffort);
    // The reference values are decoded once, here; the verifier then appraises any report.
    let verifier = Verifier::new(std::slice::from_ref(&reference), policy.clone());
    let unix_now = UnixTime::from_secs(now.duration_since(UNIX_EPOCH)?.as_secs());

    let appraisal = verifier.appraise(unix_now, &evidence.report, &collateral, &report_data)?;
    println!(
        "1. report accepted by ReferenceValues.snp[{}]",
        appraisal.matched_index
    );
    println!(
        "   HOST_DATA (look up in Policies): {}",
        hexstring::encode(appraisal.host_data)
    );
    println!("   checks: {:?}", appraisal.checks);

    // The same guest with another measurement (say, a modified image) is refused, with reasons.
    let mut tampered = guest.clone();
    tampered.measurement[0] ^= 1;
    let tampered_evidence = tampered.evidence(&platform, &report_data)?;
    let refused = verifier.appraise(
        unix_now,
        &tampered_evidence.report,
        &collateral,
        &report_data,
    );
    expect_refused("2. modified image", refused.map(drop))?;

    // A manifest entry for real hardware never trusts the simulated root.
    let hardware = SnpReferenceValues {
        platform: "Metal-QEMU-SNP".into(),
        simulated_ark_fingerprint: None,
        ..reference.clone()
    };
    let refused = Verifier::new(&[hardware], policy.clone()).appraise(
        unix_now,
        &evidence.report,
        &collateral,
        &report_data,
    );
    expect_refused(
        "3. the same report against a hardware entry",
        refused.map(drop),
    )?;

    // A replayed report (other report data than the verifier's nonce binding) is refused.
    let refused = verifier.appraise(unix_now, &evidence.report, &collateral, &random::<64>());
    expect_refused("4. a replayed report", refused.map(drop))?;
    Ok(())
}

/// Prints why the appraisal refused, or fails the demo if it accepted.
fn expect_refused(
    what: &str,
    outcome: std::result::Result<(), contrast_attest::Error>,
) -> Result<()> {
    match outcome {
        Err(e) => {
            println!(
                "{what} is refused:\n   {}",
                e.to_string().replace('\n', "\n   ")
            );
            Ok(())
        }
        Ok(()) => Err(format!("{what} was accepted").into()),
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}
