//! `contrast simulate`: creates the simulated SEV-SNP environment (a simulated AMD platform and
//! a launch configuration) that `coordinator`, `initializer` and `contrast generate` share with
//! `--tee simulated --sim-dir DIR` / `--reference-values Simulated-SNP --sim-dir DIR`.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use contrast_attest::Product;
use contrast_tee::SimulatedEnvironment;
use rand_core::OsRng;

use crate::{ExitStatus, GlobalArgs, Outcome};

/// Shown by `contrast simulate --help`.
pub const LONG_ABOUT: &str = "\
Create a simulated SEV-SNP environment in DIR: a simulated AMD root of trust (ARK, ASK, VCEK
seed) and a launch configuration (measurement, guest policy, TCB). Processes started with
`--tee simulated --sim-dir DIR` attest with it, and `contrast generate --reference-values
Simulated-SNP --sim-dir DIR` writes reference values that trust it (pinned by the ARK's
fingerprint). Nothing here is protected by hardware: use it to run Contrast on a machine
without SEV-SNP.";

/// Shown after the flags.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  contrast simulate --dir ./sim
  contrast generate --reference-values Simulated-SNP --sim-dir ./sim --insecure-allow-all-policy app.yml";

/// `contrast simulate` flags.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The directory to create the environment in (must not hold one already).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The simulated AMD product.
    #[arg(long, default_value = "Milan", value_parser = ["Milan", "Genoa"])]
    pub product: String,
}

/// Creates the environment.
pub fn run(_global: &GlobalArgs, args: &SimulateArgs) -> anyhow::Result<Outcome> {
    let product = Product::from_name(&args.product)
        .with_context(|| format!("unknown product {}", args.product))?;
    let environment =
        SimulatedEnvironment::create(&args.dir, product, SystemTime::now(), &mut OsRng)
            .with_context(|| {
                format!(
                    "creating the simulated environment in {}",
                    args.dir.display()
                )
            })?;
    let fingerprint = hex::encode(environment.platform().ark_fingerprint());
    Ok(Outcome {
        status: ExitStatus::Ok,
        human: format!(
            "simulated {} environment created in {}\n  ARK fingerprint {fingerprint}\n  measurement     {}\n",
            args.product,
            args.dir.display(),
            environment.launch().measurement
        ),
        json: serde_json::json!({
            "dir": args.dir,
            "product": args.product,
            "ark_fingerprint": fingerprint,
            "measurement": environment.launch().measurement,
        }),
    })
}
