//! `contrast collateral`: fill an SEV-SNP collateral cache (VCEKs, CA chain, CRL) from the KDS
//! or from files, for verifiers that have no network access.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use contrast_attest::chain::{LeafKind, TrustAnchor};
use contrast_attest::collateral::{CollateralRequest, KDS_BASE_URL};
use contrast_attest::{Product, TcbVersion, UnixTime, UnverifiedReport};
use contrast_core::duration::parse_duration;
use contrast_kds::{ClientConfig, CollateralClient, DiskCache, Origin};
use contrast_tee::SimulatedEnvironment;

use crate::{ExitStatus, GlobalArgs, Outcome, UsageError};

/// Shown by `contrast collateral --help`.
pub const LONG_ABOUT: &str = "\
Fill an SEV-SNP collateral cache for verifiers without network access.

The cache is a directory laid out as the AMD KDS's paths:
  vcek/v1/<product>/<chip id>/<tcb>.der   a VCEK per chip and TCB
  vcek/v1/<product>/cert_chain.pem        the CA chain (ASK, ARK)
  vcek/v1/<product>/crl.der               the ARK-signed CRL
Everything written is verified first against AMD's root for the product (or, with --sim-dir, a
simulated platform's root): a VCEK for exactly its chip and TCB, the CRL's signature and
freshness. Copy the directory to the offline verifier. A CRL is valid until its nextUpdate:
refresh the cache before then, or verifiers that require a CRL refuse.";

/// Shown after the subcommands.
pub const AFTER_LONG_HELP: &str = "\
Examples:
  contrast collateral fetch --cache ./collateral --product Milan \\
      --chip-id <128 hex digits> --tcb 3.0.8.115
  contrast collateral fetch --cache ./collateral --report report.bin
  contrast collateral import --cache ./collateral --product Genoa \\
      --cert-chain cert_chain.pem --vcek vcek.der --crl crl.der";

/// `contrast collateral` subcommands.
#[derive(Debug, clap::Args)]
pub struct CollateralArgs {
    #[command(subcommand)]
    command: CollateralCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CollateralCommand {
    /// Fetch VCEKs, the CA chain and the CRL from the KDS (or a collateral proxy) into the cache.
    Fetch(FetchArgs),
    /// Verify collateral from files (downloaded elsewhere) and put it into the cache.
    Import(ImportArgs),
}

/// Where the collateral is trusted from and goes to (both subcommands).
#[derive(Debug, clap::Args)]
struct Target {
    /// The cache directory (created if missing).
    #[arg(long, value_name = "DIR")]
    cache: PathBuf,
    /// The AMD product.
    #[arg(long, default_value = "Milan", value_parser = ["Milan", "Genoa", "Turin"])]
    product: String,
    /// Trust the simulated platform in DIR (`contrast simulate`) instead of AMD's root.
    #[arg(long, value_name = "DIR")]
    sim_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    #[command(flatten)]
    target: Target,
    /// A chip to fetch the VCEK of: its CHIP_ID, 128 hex digits (16 on Turin). Repeatable.
    #[arg(long, value_name = "HEX")]
    chip_id: Vec<String>,
    /// The TCB of the chips given with --chip-id: BOOTLOADER.TEE.SNP.MICROCODE (Turin:
    /// FMC.BOOTLOADER.TEE.SNP.MICROCODE), e.g. 3.0.8.115.
    #[arg(long, value_name = "TCB")]
    tcb: Option<String>,
    /// A raw attestation report (1184 bytes) naming the chip and TCB. Repeatable.
    #[arg(long, value_name = "FILE")]
    report: Vec<PathBuf>,
    /// The KDS.
    #[arg(long, value_name = "URL", default_value = KDS_BASE_URL)]
    kds_url: String,
    /// A collateral proxy to ask first (KDS paths on its base URL).
    #[arg(long, value_name = "URL")]
    collateral_proxy: Option<String>,
    /// Each HTTP request must finish within this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    #[command(flatten)]
    target: Target,
    /// The KDS `cert_chain` (PEM: ASK, then ARK).
    #[arg(long, value_name = "FILE")]
    cert_chain: PathBuf,
    /// A VCEK (DER). Repeatable.
    #[arg(long, value_name = "FILE")]
    vcek: Vec<PathBuf>,
    /// The KDS CRL (DER).
    #[arg(long, value_name = "FILE")]
    crl: Option<PathBuf>,
}

/// Runs `contrast collateral`.
pub fn run(_global: &GlobalArgs, args: &CollateralArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        CollateralCommand::Fetch(fetch) => run_fetch(fetch),
        CollateralCommand::Import(import) => run_import(import),
    }
}

fn now() -> UnixTime {
    UnixTime::from(SystemTime::now())
}

impl Target {
    fn product(&self) -> anyhow::Result<Product> {
        Product::from_name(&self.product)
            .ok_or_else(|| UsageError(format!("unknown product {}", self.product)).into())
    }

    /// AMD's root for the product, or the simulated platform's.
    fn anchor(&self, product: Product) -> anyhow::Result<TrustAnchor> {
        let Some(dir) = &self.sim_dir else {
            return Ok(TrustAnchor::Amd(product));
        };
        let environment = SimulatedEnvironment::load(dir)
            .with_context(|| format!("loading the simulated environment in {}", dir.display()))?;
        let platform = environment.platform();
        if platform.product() != product {
            return Err(UsageError(format!(
                "--product {} but the simulated platform in {} is {}",
                product.name(),
                dir.display(),
                platform.product().name()
            ))
            .into());
        }
        Ok(TrustAnchor::Pinned {
            ark_der_sha256: platform.ark_fingerprint(),
            product,
        })
    }
}

/// A chip and TCB to fetch for.
struct Chip {
    product: Product,
    chip_id: [u8; 64],
    tcb: TcbVersion,
}

fn chips(args: &FetchArgs, product: Product) -> anyhow::Result<Vec<Chip>> {
    let mut chips = Vec::new();
    if !args.chip_id.is_empty() {
        let Some(tcb) = &args.tcb else {
            return Err(
                UsageError("--chip-id needs --tcb (the TCB to fetch the VCEK for)".into()).into(),
            );
        };
        let tcb = TcbVersion::parse_dotted(tcb, product)
            .map_err(|reason| UsageError(format!("--tcb: {reason}")))?;
        for text in &args.chip_id {
            chips.push(Chip {
                product,
                chip_id: parse_chip_id(text, product)?,
                tcb,
            });
        }
    } else if args.tcb.is_some() {
        return Err(UsageError("--tcb needs --chip-id".into()).into());
    }
    for path in &args.report {
        let bytes = std::fs::read(path)
            .with_context(|| format!("could not read the report {}", path.display()))?;
        let report = UnverifiedReport::from_bytes(&bytes)
            .with_context(|| format!("{} is not an SEV-SNP attestation report", path.display()))?;
        // The report's CPUID names the product from version 3 on; it must agree with --product.
        let product = report
            .product(product)
            .with_context(|| format!("the report {}", path.display()))?;
        chips.push(Chip {
            product,
            chip_id: *report.chip_id(),
            tcb: report.reported_tcb(product),
        });
    }
    if chips.is_empty() {
        return Err(
            UsageError("nothing to fetch: give --chip-id with --tcb, or --report".into()).into(),
        );
    }
    Ok(chips)
}

fn parse_chip_id(text: &str, product: Product) -> anyhow::Result<[u8; 64]> {
    let bytes = hex::decode(text.trim())
        .map_err(|e| UsageError(format!("--chip-id {text:?} is not hex: {e}")))?;
    let expected = if product == Product::Turin { 8 } else { 64 };
    if bytes.len() != expected && bytes.len() != 64 {
        return Err(UsageError(format!(
            "--chip-id is {} bytes; a {} chip ID is {expected} bytes ({} hex digits)",
            bytes.len(),
            product.name(),
            2 * expected
        ))
        .into());
    }
    let mut chip_id = [0u8; 64];
    chip_id[..bytes.len()].copy_from_slice(&bytes);
    Ok(chip_id)
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Cache => "cache",
        Origin::Proxy => "proxy",
        _ => "KDS",
    }
}

fn run_fetch(args: &FetchArgs) -> anyhow::Result<Outcome> {
    let product = args.target.product()?;
    let anchor = args.target.anchor(product)?;
    let chips = chips(args, product)?;
    let client = CollateralClient::new(ClientConfig {
        kds_base: args.kds_url.clone(),
        proxy: args.collateral_proxy.clone(),
        cache_dir: Some(args.target.cache.clone()),
        timeout: args.timeout,
        ..ClientConfig::default()
    })
    .map_err(|e| UsageError(e.to_string()))?;
    let runtime = crate::connect::runtime()?;
    let now = now();
    let mut human = String::new();
    let mut fetched = Vec::new();
    for chip in &chips {
        let anchor = match anchor {
            TrustAnchor::Amd(_) => TrustAnchor::Amd(chip.product),
            pinned => pinned,
        };
        let request = CollateralRequest::new(chip.product, LeafKind::Vcek, &chip.chip_id, chip.tcb);
        let collateral = runtime
            .block_on(client.vcek_collateral(&request, &anchor, now))
            .with_context(|| format!("chip {}", short_hex(&chip.chip_id)))?;
        human.push_str(&format!(
            "{} chip {} tcb {}: VCEK from {}, CA chain from {}, CRL from {} (next update {}, {} revoked)\n",
            chip.product.name(),
            short_hex(&chip.chip_id),
            chip.tcb.to_dotted(),
            origin_name(collateral.origins.vcek),
            origin_name(collateral.origins.cert_chain),
            origin_name(collateral.origins.crl),
            collateral.crl_info.next_update,
            collateral.crl_info.revoked_serials.len(),
        ));
        fetched.push(serde_json::json!({
            "product": chip.product.name(),
            "chip_id": hex::encode(chip.chip_id),
            "tcb": chip.tcb.to_dotted(),
            "vcek_from": origin_name(collateral.origins.vcek),
            "cert_chain_from": origin_name(collateral.origins.cert_chain),
            "crl_from": origin_name(collateral.origins.crl),
            "crl_next_update": collateral.crl_info.next_update.secs(),
        }));
    }
    human.push_str(&format!(
        "cache {}: copy it to the offline verifier\n",
        args.target.cache.display()
    ));
    Ok(Outcome {
        status: ExitStatus::Ok,
        human,
        json: serde_json::json!({ "cache": args.target.cache, "fetched": fetched }),
    })
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("could not read the {what} {}", path.display()))
}

fn run_import(args: &ImportArgs) -> anyhow::Result<Outcome> {
    let product = args.target.product()?;
    let anchor = args.target.anchor(product)?;
    let cert_chain = read(&args.cert_chain, "CA chain")?;
    let vceks = args
        .vcek
        .iter()
        .map(|path| read(path, "VCEK"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let crl = args.crl.as_deref().map(|p| read(p, "CRL")).transpose()?;
    let cache = DiskCache::new(&args.target.cache);
    let imported =
        contrast_kds::import(&cache, &anchor, &cert_chain, &vceks, crl.as_deref(), now())
            .context("nothing was imported")?;
    let mut human = String::new();
    for path in &imported.written {
        human.push_str(&format!("wrote {}\n", path.display()));
    }
    if let Some(crl) = &imported.crl {
        human.push_str(&format!(
            "CRL valid until {} ({} revoked)\n",
            crl.next_update,
            crl.revoked_serials.len()
        ));
    }
    Ok(Outcome {
        status: ExitStatus::Ok,
        human,
        json: serde_json::json!({
            "cache": args.target.cache,
            "written": imported.written,
            "crl_next_update": imported.crl.as_ref().map(|c| c.next_update.secs()),
        }),
    })
}

fn short_hex(chip_id: &[u8; 64]) -> String {
    format!("{}…", hex::encode(&chip_id[..8]))
}
