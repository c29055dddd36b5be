//! `contrast-load`: a load generator for the Coordinator's mesh API.
//!
//! Starts a real `coordinator` process in simulated SEV-SNP mode on loopback, sets a manifest
//! with one workload per simulated initializer, then runs N concurrent simulated initializers
//! (each its own chip, hence its own VCEK, and a fresh P-256 key per attestation) against the
//! mesh API. Every attestation is a new TCP connection, a fresh mutual aTLS handshake with a
//! freshly signed report, and a `MeshAPI/NewMeshCert`. Reports throughput, latency
//! percentiles, errors by reason, the Coordinator's memory, and the throughput as a fraction
//! of a per-attestation cost floor measured in the same run (see `floor.rs`).
//!
//! The `recovery` scenario (see `recovery.rs`) instead grows the manifest history through the
//! user API and times a killed Coordinator's way back to ready: start, recovery, readiness.

#![forbid(unsafe_code)]

mod coordinator;
mod floor;
mod issuer;
mod recovery;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use contrast_attest::atls::AtlsKey;
use contrast_attest::{AtlsClient, AtlsValidator, Issuer};
use contrast_core::api::SetManifestRequest;
use contrast_core::manifest::{Manifest, PolicyEntry, Role};
use contrast_core::owner::{SeedshareOwnerPrivateKey, WorkloadOwnerPrivateKey};
use contrast_sdk::{CoordinatorClient, coordinator_validator, verify_deployment};
use contrast_tee::SimulatedEnvironment;
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::coordinator::{CoordinatorProcess, cpu_time, spawn_rss_sampler, status_bytes};
use crate::floor::{Floor, Primitive};
use crate::issuer::Chip;
use crate::stats::{Summary, Tally, reason};

const AFTER_HELP: &str = "\
Scenarios:
  steady  --concurrency initializers attest in a closed loop until --attestations are done.
  burst   every initializer attests once; then, --bursts times: the workload owner updates
          the manifest and all initializers re-attest at once. Latency is counted from the
          update's completion, so p99 is the time until (almost) every workload has its new
          certificate.
  mixed   steady, plus --data-owners data owners in a loop: attest the Coordinator on the
          user API, UserAPI/GetManifests, verify the deployment (transition chain, policies).
  recovery  history scale: set a first manifest, then apply distinct manifest updates through
          the user API (workload-owner key) until the history has each of --history-sizes
          entries; at each size kill -9 the Coordinator, restart it over the same state
          directory and time process start -> /probe/startup 200 -> UserAPI/Recover accepted
          (seed-share owner key, seed decrypted from the first set's shares) -> /probe/readiness
          200. Reports each part, the ratios between the sizes and the cost per entry. No
          initializers and no floor.

The floor: before the load, the raw primitives of one attestation are timed on one core
(server: report verify, mesh certificate signature; both: the TLS handshake; client: key
generation, report signature); floor rate = --cores / their sum. The output lists each
primitive, the work the protocol does on top (not counted), and measured rate / floor rate.

Examples:
  # the issue's steady scenario, release build
  cargo run --release -p contrast-benches --bin contrast-load -- --scenario steady
  # burst after manifest updates, JSON output
  cargo run --release -p contrast-benches --bin contrast-load -- --scenario burst --json
  # data owners verifying in parallel, smaller run
  cargo run --release -p contrast-benches --bin contrast-load -- --scenario mixed \\
      --concurrency 64 --attestations 5000 --data-owners 4
  # startup-to-ready after recovery with 1,000 and 10,000 history entries
  cargo run --release -p contrast-benches --bin contrast-load -- --scenario recovery \\
      --history-sizes 1000,10000
  # a tiny smoke run with an existing environment and an explicit coordinator binary
  contrast-load --concurrency 4 --attestations 20 --sim-dir ./sim \\
      --coordinator-bin target/debug/coordinator";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "contrast-load",
    version,
    about = "Load generator: N concurrent simulated initializers against a real Coordinator",
    after_help = AFTER_HELP
)]
struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value = "steady")]
    scenario: Scenario,
    /// Concurrent simulated initializers (each its own chip and workload).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Attestations in total (steady, mixed).
    #[arg(long, default_value_t = 20_000)]
    attestations: u64,
    /// Manifest updates, each followed by a re-attestation of every initializer (burst).
    #[arg(long, default_value_t = 5)]
    bursts: u32,
    /// Data owners verifying the deployment in parallel (mixed).
    #[arg(long, default_value_t = 4)]
    data_owners: u32,
    /// A simulated environment to use (created there if the directory holds none; default:
    /// a fresh one in the work directory).
    #[arg(long, value_name = "DIR")]
    sim_dir: Option<PathBuf>,
    /// The coordinator binary (default: `coordinator` next to this executable).
    #[arg(long, value_name = "PATH")]
    coordinator_bin: Option<PathBuf>,
    /// Where the Coordinator's state and log go (default: a new directory under the system
    /// temp directory, removed at the end unless --keep).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Keep the work directory.
    #[arg(long)]
    keep: bool,
    /// The Coordinator's log filter.
    #[arg(long, default_value = "info")]
    coordinator_log_level: String,
    /// Cores the floor is computed for (the machine's, generator included).
    #[arg(long, default_value_t = 2)]
    cores: u32,
    /// Time spent timing each primitive of the floor, milliseconds.
    #[arg(long, default_value_t = 300)]
    floor_budget_ms: u64,
    /// History lengths (manifests, the first set included) at which the Coordinator is
    /// killed, restarted and recovered, ascending (recovery).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000",
          value_parser = clap::value_parser!(u64).range(1..))]
    history_sizes: Vec<u64>,
    /// Workloads in each manifest besides the Coordinator and the one that makes each update
    /// distinct (recovery).
    #[arg(long, default_value_t = 8)]
    workloads: u32,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// The load scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scenario {
    /// Closed loop at constant concurrency.
    Steady,
    /// Manifest updates, each followed by every initializer re-attesting at once.
    Burst,
    /// Steady, with data owners verifying the deployment in parallel.
    Mixed,
    /// Manifest history growth, then kill -9, restart and recovery at each history size.
    Recovery,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Burst => "burst",
            Self::Mixed => "mixed",
            Self::Recovery => "recovery",
        }
    }
}

/// The run's report (the `--json` document).
#[derive(Debug, Serialize)]
struct Report {
    scenario: Scenario,
    concurrency: u32,
    /// Mesh-certificate attestations of the measured phase.
    attestations: Summary,
    /// burst: the warm-up round before the first update.
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_round: Option<Summary>,
    /// burst: the manifest updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_updates: Option<Summary>,
    /// burst: wall time of each burst (update done → last certificate), milliseconds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    burst_ms: Vec<f64>,
    /// mixed: the data owners' get-manifests + verify operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_owner: Option<Summary>,
    coordinator: CoordinatorStats,
    generator_cpu_seconds: f64,
    floor: Floor,
    /// Measured attestations per second / floor rate.
    fraction_of_floor: f64,
    /// Successful attestations per CPU second actually used (Coordinator + generator), times
    /// the floor's cores: the rate had the cores been ours alone (the machine is shared).
    cpu_normalized_per_second: f64,
    /// `cpu_normalized_per_second` / floor rate.
    cpu_normalized_fraction_of_floor: f64,
    /// Measured attestations per second / protocol floor rate.
    fraction_of_protocol_floor: f64,
    targets: Vec<Target>,
}

/// What `/proc` said about the Coordinator.
#[derive(Debug, Serialize)]
struct CoordinatorStats {
    pid: u32,
    /// VmHWM at the end (peak resident set), MiB.
    peak_rss_mib: f64,
    /// Largest VmRSS sampled every 100 ms during the measured phase, MiB.
    max_sampled_rss_mib: f64,
    /// VmRSS after the setup, before the load, MiB.
    rss_before_load_mib: f64,
    /// User + system CPU during the measured phase, seconds.
    cpu_seconds: f64,
    /// CPU per successful attestation of the measured phase, microseconds.
    cpu_micros_per_attestation: f64,
}

/// One of the targets.
#[derive(Debug, Serialize)]
struct Target {
    what: &'static str,
    target: String,
    measured: String,
    met: bool,
}

/// What a run reports: the load scenarios' report or the recovery scenario's.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Output {
    Load(Box<Report>),
    Recovery(recovery::RecoveryReport),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(output) => {
            if args.json {
                match serde_json::to_string_pretty(&output) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("contrast-load: {e}");
                        return std::process::ExitCode::FAILURE;
                    }
                }
            } else {
                match &output {
                    Output::Load(report) => print_text(report),
                    Output::Recovery(report) => recovery::print_text(report),
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("contrast-load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A workload of the load deployment.
struct Workload {
    name: String,
    policy: Vec<u8>,
}

impl Workload {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            policy: format!("# initdata of {name}\npolicy = \"allow\"\n").into_bytes(),
        }
    }

    fn host_data(&self) -> [u8; 32] {
        contrast_core::sha256(&self.policy)
    }
}

/// Everything a run needs.
struct Setup {
    env: SimulatedEnvironment,
    coordinator_workload: Workload,
    workloads: Vec<Workload>,
    owner: WorkloadOwnerPrivateKey,
    seedshare_owner: SeedshareOwnerPrivateKey,
    /// The seed-share owner key, PKCS#8 DER (the aTLS client key of `UserAPI/Recover`).
    seedshare_pkcs8: Zeroizing<Vec<u8>>,
}

impl Setup {
    /// Fresh owner keys (workload owner P-384, seed-share owner RSA-2048) for `workloads`.
    fn new(env: SimulatedEnvironment, workloads: Vec<Workload>) -> Result<Self> {
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|e| anyhow::anyhow!("generating the seed-share owner key: {e}"))?;
        let rsa_pkcs8 = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa)
            .map_err(|e| anyhow::anyhow!("encoding the seed-share owner key: {e}"))?;
        let seedshare_pkcs8 = Zeroizing::new(rsa_pkcs8.as_ref().to_vec());
        Ok(Self {
            env,
            coordinator_workload: Workload::new("coordinator"),
            workloads,
            owner: WorkloadOwnerPrivateKey::generate(&mut OsRng)
                .context("generating the workload owner key")?,
            seedshare_owner: SeedshareOwnerPrivateKey::from_pkcs8_der(&seedshare_pkcs8)
                .context("the seed-share owner key")?,
            seedshare_pkcs8,
        })
    }

    /// The manifest: the Coordinator, every workload, and `extra` workloads (for updates).
    fn manifest(&self, extra: &[Workload]) -> Result<(Manifest, Vec<u8>, Vec<Vec<u8>>)> {
        let mut manifest = Manifest::default();
        manifest.policies.insert(
            hex::encode(self.coordinator_workload.host_data()),
            PolicyEntry {
                sans: Some(vec!["coordinator".into()]),
                workload_secret_id: String::new(),
                role: Role::Coordinator,
            },
        );
        for workload in self.workloads.iter().chain(extra) {
            manifest.policies.insert(
                hex::encode(workload.host_data()),
                PolicyEntry {
                    sans: Some(vec![workload.name.clone(), "*".into()]),
                    workload_secret_id: format!("default/{}", workload.name),
                    role: Role::None,
                },
            );
        }
        manifest.reference_values.snp = vec![self.env.reference_values()];
        manifest.workload_owner_pub_keys = Some(vec![self.owner.public_key().to_hex()]);
        manifest.seedshare_owner_pub_keys = Some(vec![self.seedshare_owner.public_key().to_hex()]);
        let json = manifest.to_go_json().context("encoding the manifest")?;
        let policies = std::iter::once(&self.coordinator_workload)
            .chain(self.workloads.iter())
            .chain(extra)
            .map(|w| w.policy.clone())
            .collect();
        Ok((manifest, json, policies))
    }

    /// A user-API client authenticated with the workload owner's key.
    fn owner_client(&self, user_addr: &str, manifest: &Manifest) -> Result<CoordinatorClient> {
        let pem = self.owner.to_sec1_pem().context("encoding the owner key")?;
        let key = AtlsKey::from_p384(&p384::ecdsa::SigningKey::from(
            p384::SecretKey::from_sec1_pem(&pem).context("decoding the owner key")?,
        ))?;
        let validator = coordinator_validator(manifest).context("the coordinator validator")?;
        Ok(CoordinatorClient::new(
            user_addr,
            AtlsClient::new(validator).with_key(Arc::new(key)),
        ))
    }

    /// A user-API client authenticated with the seed-share owner's key (for recovery).
    fn seedshare_client(&self, user_addr: &str, manifest: &Manifest) -> Result<CoordinatorClient> {
        let key = AtlsKey::rsa_from_pkcs8_der(&self.seedshare_pkcs8)
            .context("the seed-share owner key as a TLS client key")?;
        let validator = coordinator_validator(manifest).context("the coordinator validator")?;
        Ok(CoordinatorClient::new(
            user_addr,
            AtlsClient::new(validator).with_key(Arc::new(key)),
        ))
    }
}

/// A temporary work directory removed on drop (unless kept).
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn run(args: &Args) -> Result<Output> {
    let work = match &args.work_dir {
        Some(dir) => WorkDir {
            path: dir.clone(),
            remove: false,
        },
        None => WorkDir {
            path: std::env::temp_dir().join(format!("contrast-load-{}", std::process::id())),
            remove: !args.keep,
        },
    };
    std::fs::create_dir_all(&work.path)
        .with_context(|| format!("creating {}", work.path.display()))?;
    let coordinator_bin = coordinator_binary(args.coordinator_bin.as_deref())?;

    let sim_dir = args
        .sim_dir
        .clone()
        .unwrap_or_else(|| work.path.join("sim"));
    let env = if sim_dir.join(contrast_tee::simulated::LAUNCH_FILE).exists() {
        SimulatedEnvironment::load(&sim_dir).context("loading the simulated environment")?
    } else {
        progress(args, "creating a simulated SEV-SNP environment");
        SimulatedEnvironment::create(
            &sim_dir,
            contrast_attest::Product::Milan,
            SystemTime::now(),
            &mut OsRng,
        )
        .context("creating the simulated environment")?
    };
    if args.scenario == Scenario::Recovery {
        return recovery::run(args, env, &work.path, &coordinator_bin).map(Output::Recovery);
    }
    let concurrency = args.concurrency as usize;
    let run_tag = OsRng.next_u64();
    let workloads: Vec<Workload> = (0..concurrency)
        .map(|i| Workload::new(&format!("load-{run_tag:016x}-{i}")))
        .collect();
    progress(
        args,
        &format!("simulating {concurrency} chips (one VCEK each)"),
    );
    let chips: Vec<Arc<dyn Issuer>> = workloads
        .iter()
        .map(|workload| {
            let mut chip_id = [0u8; 64];
            OsRng.fill_bytes(&mut chip_id);
            Chip::new(&env, chip_id, workload.host_data()).map(|chip| chip.issuer())
        })
        .collect::<Result<_>>()?;

    progress(args, "timing the primitives of the floor");
    let floor_chip = {
        let mut chip_id = [0u8; 64];
        OsRng.fill_bytes(&mut chip_id);
        Chip::new(&env, chip_id, [0; 32])?
    };
    let floor = floor::measure(
        &env,
        &floor_chip,
        args.cores,
        Duration::from_millis(args.floor_budget_ms),
    )?;

    let setup = Setup::new(env, workloads)?;

    progress(args, "starting the coordinator");
    let state_dir = work.path.join("coordinator-state");
    let mut process = CoordinatorProcess::start(
        &coordinator_bin,
        setup.env.dir(),
        &hex::encode(setup.coordinator_workload.host_data()),
        &state_dir,
        &args.coordinator_log_level,
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(scenario(args, &setup, &process, chips, floor));
    if !process.is_running() {
        bail!(
            "the coordinator died during the run; log {}",
            process.log.display()
        );
    }
    let mut report = result?;
    if args.keep || args.work_dir.is_some() {
        progress(args, &format!("coordinator log: {}", process.log.display()));
    }
    report.targets = targets(&report);
    drop(process);
    Ok(Output::Load(Box::new(report)))
}

/// `--coordinator-bin`, or `coordinator` next to this executable (built with cargo when
/// running under `cargo run` and missing, as `contrast demo` does).
fn coordinator_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--coordinator-bin {} does not exist", path.display());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let sibling = exe.with_file_name("coordinator");
    if sibling.is_file() {
        return Ok(sibling);
    }
    if let Some(cargo) = std::env::var_os("CARGO") {
        let release = exe
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|profile| profile == "release");
        eprintln!(
            "contrast-load: building the coordinator ({} profile)",
            if release { "release" } else { "dev" }
        );
        let mut command = std::process::Command::new(cargo);
        command.args(["build", "-p", "coordinator"]);
        if release {
            command.arg("--release");
        }
        let status = command.status().context("running cargo build")?;
        if status.success() && sibling.is_file() {
            return Ok(sibling);
        }
    }
    bail!(
        "the coordinator binary is missing next to {} ({}); build it with `cargo build -p \
         coordinator` (add --release for a release contrast-load) or pass --coordinator-bin",
        exe.display(),
        sibling.display()
    )
}

fn progress(args: &Args, message: &str) {
    if !args.json {
        eprintln!("contrast-load: {message}");
    }
}

/// Sets the manifest and runs the scenario.
async fn scenario(
    args: &Args,
    setup: &Setup,
    process: &CoordinatorProcess,
    chips: Vec<Arc<dyn Issuer>>,
    floor: Floor,
) -> Result<Report> {
    let (manifest, json, policies) = setup.manifest(&[])?;
    let owner = setup.owner_client(&process.user, &manifest)?;
    owner
        .set_manifest(&SetManifestRequest {
            manifest: json,
            policies,
            previous_transition_hash: None,
            signature: None,
        })
        .await
        .context("setting the manifest")?;

    let pid = process.pid();
    let pid_text = pid.to_string();
    let rss_before = status_bytes(pid, "VmRSS").unwrap_or(0);
    let chips = Arc::new(chips);
    let mesh = process.mesh.clone();
    // What each initializer attests the Coordinator with: the identity of this manifest.
    let coordinator = coordinator_validator(&manifest).context("the coordinator validator")?;

    let mut initial_round = None;
    let mut manifest_updates = None;
    let mut burst_ms = Vec::new();
    let mut data_owner = None;

    let (stop_sampler, sampler) = spawn_rss_sampler(pid, Duration::from_millis(100));
    let cpu_before = cpu_time(&pid_text);
    let own_cpu_before = cpu_time("self");
    let attestations = match args.scenario {
        Scenario::Steady => {
            progress(
                args,
                &format!(
                    "steady: {} attestations by {} concurrent initializers",
                    args.attestations, args.concurrency
                ),
            );
            closed_loop(&mesh, &coordinator, &chips, args.attestations).await
        }
        Scenario::Mixed => {
            progress(
                args,
                &format!(
                    "mixed: {} attestations by {} concurrent initializers, {} data owners",
                    args.attestations, args.concurrency, args.data_owners
                ),
            );
            let done = Arc::new(AtomicBool::new(false));
            let owners: Vec<_> = (0..args.data_owners)
                .map(|_| {
                    let client = coordinator_validator(&manifest).map(|validator| {
                        CoordinatorClient::new(process.user.clone(), AtlsClient::new(validator))
                    });
                    let done = Arc::clone(&done);
                    tokio::spawn(data_owner_loop(client, done))
                })
                .collect();
            let start = Instant::now();
            let summary = closed_loop(&mesh, &coordinator, &chips, args.attestations).await;
            done.store(true, Ordering::SeqCst);
            let elapsed = start.elapsed();
            let mut tally = Tally::default();
            for owner in owners {
                tally.merge(owner.await.context("a data-owner task failed")?);
            }
            data_owner = Some(tally.summary(elapsed));
            summary
        }
        Scenario::Recovery => bail!("the recovery scenario does not run attestations"),
        Scenario::Burst => {
            progress(
                args,
                &format!(
                    "burst: {} initializers attest, then {} manifest updates each followed by \
                     all of them re-attesting at once",
                    args.concurrency, args.bursts
                ),
            );
            let start = Instant::now();
            let first = burst(&mesh, &coordinator, &chips, start).await;
            initial_round = Some(first.summary(start.elapsed()));
            let mut updates = Tally::default();
            let mut update_time = Duration::ZERO;
            let mut bursts = Tally::default();
            let mut burst_time = Duration::ZERO;
            for round in 0..args.bursts {
                let extra = [Workload::new(&format!("update-{round}"))];
                let (_, json, policies) = setup.manifest(&extra)?;
                let started = Instant::now();
                match owner
                    .set_manifest(&SetManifestRequest {
                        manifest: json,
                        policies,
                        previous_transition_hash: None,
                        signature: None,
                    })
                    .await
                {
                    Ok(_) => updates.ok(started.elapsed()),
                    Err(e) => updates.error(reason(&e), e.to_string()),
                }
                update_time += started.elapsed();
                let start = Instant::now();
                let tally = burst(&mesh, &coordinator, &chips, start).await;
                let elapsed = start.elapsed();
                burst_ms.push(elapsed.as_secs_f64() * 1e3);
                burst_time += elapsed;
                bursts.merge(tally);
            }
            manifest_updates = Some(updates.summary(update_time));
            Ok(bursts.summary(burst_time))
        }
    }?;
    let cpu_after = cpu_time(&pid_text);
    let own_cpu_after = cpu_time("self");
    let _ = stop_sampler.send(true);
    let max_sampled = sampler.await.unwrap_or(0);
    let peak = status_bytes(pid, "VmHWM").unwrap_or(0);

    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let seconds = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b).as_secs_f64(),
        _ => f64::NAN,
    };
    let cpu_seconds = seconds(cpu_before, cpu_after);
    let fraction_of_floor = attestations.per_second / floor.attestations_per_second;
    let generator_cpu_seconds = seconds(own_cpu_before, own_cpu_after);
    let cpu_normalized_per_second = attestations.succeeded as f64 * f64::from(floor.cores)
        / (cpu_seconds + generator_cpu_seconds);
    let fraction_of_protocol_floor =
        attestations.per_second / floor.protocol_attestations_per_second;
    Ok(Report {
        scenario: args.scenario,
        concurrency: args.concurrency,
        coordinator: CoordinatorStats {
            pid,
            peak_rss_mib: mib(peak),
            max_sampled_rss_mib: mib(max_sampled),
            rss_before_load_mib: mib(rss_before),
            cpu_seconds,
            cpu_micros_per_attestation: cpu_seconds * 1e6 / attestations.succeeded.max(1) as f64,
        },
        generator_cpu_seconds,
        cpu_normalized_per_second,
        cpu_normalized_fraction_of_floor: cpu_normalized_per_second / floor.attestations_per_second,
        attestations,
        initial_round,
        manifest_updates,
        burst_ms,
        data_owner,
        fraction_of_floor,
        fraction_of_protocol_floor,
        floor,
        targets: Vec::new(),
    })
}

/// One attestation by the initializer of `chip`: a fresh P-256 key, a fresh connection and
/// mutual aTLS handshake in which the initializer attests the Coordinator with `coordinator` (as
/// the real initializer does with its Coordinator identity), `MeshAPI/NewMeshCert`.
async fn attest(
    mesh: &str,
    coordinator: &AtlsValidator,
    chip: &Arc<dyn Issuer>,
) -> Result<(), (String, String)> {
    let key = Arc::new(AtlsKey::generate_p256().map_err(|e| ("key".to_owned(), e.to_string()))?);
    let client = CoordinatorClient::new(
        mesh,
        AtlsClient::new(coordinator.clone())
            .with_issuer(Arc::clone(chip))
            .with_key(key),
    );
    let response = client
        .mesh_cert()
        .await
        .map_err(|e| (reason(&e), e.to_string()))?;
    if response.value.cert_chain.is_empty() || response.value.workload_secret.is_empty() {
        return Err((
            "empty_response".into(),
            "the mesh certificate response lacks the chain or the workload secret".into(),
        ));
    }
    Ok(())
}

/// `concurrency` initializers attesting in a closed loop until `total` attempts are made.
async fn closed_loop(
    mesh: &str,
    coordinator: &AtlsValidator,
    chips: &Arc<Vec<Arc<dyn Issuer>>>,
    total: u64,
) -> Result<Summary> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..chips.len())
        .map(|index| {
            let next = Arc::clone(&next);
            let chips = Arc::clone(chips);
            let mesh = mesh.to_owned();
            let coordinator = coordinator.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut first = true;
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let started = Instant::now();
                    let result = attest(&mesh, &coordinator, &chips[index]).await;
                    // The first round starts every initializer at once, with cold caches.
                    let cold = std::mem::replace(&mut first, false);
                    match result {
                        Ok(()) if cold => tally.ok(started.elapsed()),
                        Ok(()) => tally.ok_warm(started.elapsed()),
                        Err((reason, message)) => tally.error(reason, message),
                    }
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.context("an initializer task failed")?);
    }
    Ok(tally.summary(start.elapsed()))
}

/// Every initializer attests once, all started at `start`; latency counts from `start`.
async fn burst(
    mesh: &str,
    coordinator: &AtlsValidator,
    chips: &Arc<Vec<Arc<dyn Issuer>>>,
    start: Instant,
) -> Tally {
    let tasks: Vec<_> = (0..chips.len())
        .map(|index| {
            let chips = Arc::clone(chips);
            let mesh = mesh.to_owned();
            let coordinator = coordinator.clone();
            tokio::spawn(async move { attest(&mesh, &coordinator, &chips[index]).await })
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => tally.ok(start.elapsed()),
            Ok(Err((reason, message))) => tally.error(reason, message),
            Err(e) => tally.error("task".into(), e.to_string()),
        }
    }
    tally
}

/// A data owner: attest the Coordinator, fetch the history, verify it; until `done` (at
/// least once).
async fn data_owner_loop(
    client: Result<CoordinatorClient, contrast_sdk::DeploymentError>,
    done: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            tally.error("validator".into(), e.to_string());
            return tally;
        }
    };
    // At least once, however short the run.
    loop {
        let started = Instant::now();
        match client.get_manifests().await {
            Ok(response) => match verify_deployment(&response.value) {
                Ok(_) => tally.ok(started.elapsed()),
                Err(e) => tally.error("verify_deployment".into(), e.to_string()),
            },
            Err(e) => tally.error(reason(&e), e.to_string()),
        }
        if done.load(Ordering::SeqCst) {
            return tally;
        }
    }
}

/// The targets against this run.
fn targets(report: &Report) -> Vec<Target> {
    let a = &report.attestations;
    vec![
        Target {
            what: "throughput, generator on the same cores",
            target: "≥ 1000 attestations/s".into(),
            measured: format!("{:.0}/s", a.per_second),
            met: a.per_second >= 1000.0,
        },
        Target {
            what: "fraction of the floor",
            target: "≥ 50%".into(),
            measured: format!("{:.1}%", report.fraction_of_floor * 100.0),
            met: report.fraction_of_floor >= 0.5,
        },
        Target {
            what: "p99 latency",
            target: "< 100 ms".into(),
            measured: format!("{:.1} ms", a.latency_ms.p99),
            met: a.latency_ms.p99 < 100.0,
        },
        Target {
            what: "errors",
            target: "0".into(),
            measured: format!("{}", a.failed),
            met: a.failed == 0,
        },
        Target {
            what: "coordinator peak RSS",
            target: "< 128 MiB".into(),
            measured: format!("{:.1} MiB", report.coordinator.peak_rss_mib),
            met: report.coordinator.peak_rss_mib < 128.0,
        },
    ]
}

fn print_summary(label: &str, summary: &Summary) {
    let l = &summary.latency_ms;
    println!(
        "{label}: {} ok, {} failed in {:.2} s = {:.0}/s; latency ms p50 {:.1} p90 {:.1} p99 {:.1} \
         max {:.1}",
        summary.succeeded,
        summary.failed,
        summary.seconds,
        summary.per_second,
        l.p50,
        l.p90,
        l.p99,
        l.max
    );
    if let Some(w) = &summary.warm_latency_ms {
        println!(
            "  after each initializer's first attestation (all start at once, caches cold): \
             p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
            w.p50, w.p90, w.p99, w.max
        );
    }
    for (reason, count) in &summary.errors {
        println!("  error {reason}: {} (e.g. {})", count.count, count.example);
    }
}

/// One line per primitive of the floor: name, side, mean µs, what it is.
fn print_primitives(primitives: &[Primitive]) {
    for p in primitives {
        println!(
            "  {:<18} {:<6} {:>8.1} µs  {}",
            p.name, p.side, p.micros, p.what
        );
    }
}

fn print_text(report: &Report) {
    println!(
        "scenario {}, {} concurrent simulated initializers (own chip each, fresh P-256 key \
         and aTLS handshake per attestation)",
        report.scenario.name(),
        report.concurrency
    );
    if let Some(initial) = &report.initial_round {
        print_summary("initial round", initial);
    }
    if let Some(updates) = &report.manifest_updates {
        print_summary("manifest updates", updates);
    }
    print_summary("attestations", &report.attestations);
    if !report.burst_ms.is_empty() {
        let bursts: Vec<String> = report
            .burst_ms
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect();
        println!("  burst wall times ms: {}", bursts.join(", "));
    }
    if let Some(owner) = &report.data_owner {
        print_summary("data owner get+verify", owner);
    }
    let c = &report.coordinator;
    println!(
        "coordinator: peak RSS (VmHWM) {:.1} MiB, max sampled VmRSS {:.1} MiB (before load {:.1} \
         MiB); CPU {:.2} s = {:.0} µs/attestation; generator CPU {:.2} s",
        c.peak_rss_mib,
        c.max_sampled_rss_mib,
        c.rss_before_load_mib,
        c.cpu_seconds,
        c.cpu_micros_per_attestation,
        report.generator_cpu_seconds
    );
    let f = &report.floor;
    println!("floor (single-core means, measured in this run):");
    print_primitives(&f.counted);
    println!(
        "  = {:.1} µs per attestation -> floor {:.0} attestations/s on {} cores",
        f.micros_per_attestation, f.attestations_per_second, f.cores
    );
    println!("  not counted (the protocol's further work):");
    print_primitives(&f.not_counted);
    println!(
        "  = {:.1} µs per attestation -> protocol floor {:.0} attestations/s",
        f.protocol_micros_per_attestation, f.protocol_attestations_per_second
    );
    println!("  method: {}", f.method);
    println!(
        "throughput = {:.1}% of the floor, {:.1}% of the protocol floor",
        report.fraction_of_floor * 100.0,
        report.fraction_of_protocol_floor * 100.0
    );
    println!(
        "CPU-normalized: {:.0} attestations/s = {} cores x successes / (coordinator + generator \
         CPU seconds); {:.1}% of the floor",
        report.cpu_normalized_per_second,
        f.cores,
        report.cpu_normalized_fraction_of_floor * 100.0
    );
    println!("targets:");
    for t in &report.targets {
        println!(
            "  [{}] {}: {} (target {})",
            if t.met { "met" } else { "NOT MET" },
            t.what,
            t.measured,
            t.target
        );
    }
}
