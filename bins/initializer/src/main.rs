//! The `initializer` binary: runs as the first (init) container of every Contrast pod.
//!
//! It generates a fresh P-256 key, attests the pod's confidential VM to the Coordinator's mesh
//! API (mutual aTLS on port 7777: the VM's report is bound to the key), and receives the
//! workload's mesh certificate and workload secret. It retries with exponential backoff until
//! the Coordinator answers (each failure logged with its reason), then writes upstream's files
//! to the shared volume and the `done` marker the startup probe waits for.
//!
//! Unlike upstream, the initializer also attests the Coordinator before it trusts anything the
//! Coordinator returns: `contrast generate` puts the Coordinator's identity (its policy hashes
//! and SEV-SNP reference values, `contrast_core::coordinator_identity`) into the container's
//! environment, where the pod's agent policy pins it and the pod's HOST_DATA binds it; the
//! handshake refuses a server whose evidence does not match (`contrast_sdk::identity_validator`).
//! Without that check any TLS server on the way to the Coordinator could hand the pod a CA and a
//! workload secret of its choice, and the pod would mark itself done. Trusting any server is an
//! explicit opt-out (`--insecure-trust-any-coordinator`).

#![forbid(unsafe_code)]

mod cryptsetup;
mod files;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory as _, Parser, ValueEnum};
use contrast_attest::AtlsClient;
use contrast_attest::atls::AtlsKey;
use contrast_core::api::MESH_API_PORT;
use contrast_core::coordinator_identity::CoordinatorIdentity;
use contrast_core::duration::parse_duration;
use contrast_core::kubernetes::{
    COORDINATOR_HOST_ENV, COORDINATOR_IDENTITY_ENV, CRYPTSETUP_SUBCOMMAND, INITIALIZER_DONE_FILE,
    SECRETS_MOUNT_PATH,
};
use contrast_mesh::config::SERVICE_MESH_DISABLED_ENV;
use contrast_sdk::{CoordinatorClient, identity_validator};
use contrast_tee::TeeArgs;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};
use zeroize::Zeroizing;

const LONG_ABOUT: &str = "\
Attests this pod's confidential VM to the Contrast Coordinator and writes the workload's mesh
certificate, key and workload secret to the shared volume.

Flow:
  0. If CONTRAST_SERVICE_MESH_DISABLED is set (the pod has no service-mesh sidecar), remove the
     pod VM's default-deny rule (iptables, filter INPUT); otherwise the sidecar removes it.
  1. Generate a fresh ECDSA P-256 key.
  2. Connect to the Coordinator's mesh API (--coordinator, port 7777 by default) with mutual
     attested TLS: the VM's attestation report (--tee) is bound to the key. The Coordinator
     appraises it against its manifest and looks the VM's HOST_DATA up in the manifest's
     policies.
  3. In the same handshake, attest the Coordinator with --coordinator-identity (set by
     `contrast generate` in CONTRAST_COORDINATOR_IDENTITY): its report must chain to AMD (or
     the pinned simulated ARK), match one of the identity's SEV-SNP reference values, and carry
     one of its policy hashes as HOST_DATA. A server that fails is refused before anything it
     sends is read: a rogue server cannot hand this pod its CA or workload secret.
     --insecure-trust-any-coordinator skips this check (upstream's behaviour; never in
     production).
  4. On failure (Coordinator unreachable, not yet configured, in recovery mode, refusing this
     VM, or refused by step 3), log the reason and retry with exponential backoff (--retry-min
     doubling up to --retry-max), without limit unless --max-attempts is given: the real
     Coordinator may be restarting.
  5. Write, each file atomically (temp file, fsync, rename, fsync of the directory), under
     --root (directories 0755):
       tls-config/mesh-ca.pem              mesh CA certificate             0444
       tls-config/certChain.pem            workload cert + intermediate    0444
       tls-config/key.pem                  the P-256 key, PKCS#8 PEM       0400
       tls-config/coordinator-root-ca.pem  root CA certificate             0444
       secrets/workload-secret-seed        workload secret, lowercase hex  0400
                                           (only if the policy has a WorkloadSecretID)
     Existing files are replaced.
  6. Write the empty marker --done-file (0644) and exit 0.

`initializer cryptsetup` opens an encrypted volume keyed by the workload secret and keeps it
mounted (secure persistence); see `initializer cryptsetup --help`.";

const AFTER_HELP: &str = "\
Exit codes:
  0    the files and the done marker were written
  1    failure: invalid TEE flags, no certificate within --max-attempts, or the files could
       not be written (the log says which)
  2    invalid command line (also: neither --coordinator-identity nor
       --insecure-trust-any-coordinator, or an identity that does not parse)
  130  interrupted by SIGINT while waiting for the Coordinator (128 + 2)
  143  terminated by SIGTERM while waiting for the Coordinator (128 + 15)

Example (simulated TEE, local Coordinator):
  initializer --coordinator 127.0.0.1:7777 --root ./pod --done-file ./pod/done \\
    --coordinator-identity <JSON, as generate writes it in CONTRAST_COORDINATOR_IDENTITY> \\
    --tee simulated --sim-dir ./sim --sim-host-data <initdata digest>";

/// The initializer's command line: the main run (attest, write the files), or a subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "initializer",
    version = contrast_tee::binary_version!(),
    long_version = contrast_tee::binary_long_version!(),
    about = "Attest this pod to the Contrast Coordinator and write its mesh certificate",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Subcommand>,
    #[command(flatten)]
    run: Args,
}

/// The initializer's subcommands.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Open (formatting it first if it is not LUKS) an encrypted volume keyed by the workload
    /// secret, mount it, and keep it mounted until signalled (secure persistence).
    #[command(
        name = CRYPTSETUP_SUBCOMMAND,
        long_about = cryptsetup::LONG_ABOUT,
        after_help = cryptsetup::AFTER_HELP
    )]
    Cryptsetup(cryptsetup::CryptsetupArgs),
}

/// The main run's flags.
#[derive(Debug, clap::Args)]
// The doc comments of these flags are their `--help` text, written for a terminal:
// `HOST[:PORT]` is meant literally, not as an intra-doc link.
#[allow(rustdoc::broken_intra_doc_links)]
struct Args {
    /// The Coordinator's mesh API, HOST[:PORT] (port 7777 when absent).
    #[arg(long, env = COORDINATOR_HOST_ENV, value_name = "HOST[:PORT]", required = true)]
    coordinator: Option<String>,
    /// The Coordinator's identity, a JSON document {"PolicyHashes": [...],
    /// "SnpReferenceValues": [...]} (written by `contrast generate`): only a Coordinator whose
    /// evidence matches it is trusted.
    #[arg(
        long,
        env = COORDINATOR_IDENTITY_ENV,
        value_name = "JSON",
        value_parser = parse_identity,
        hide_env_values = true
    )]
    coordinator_identity: Option<CoordinatorIdentity>,
    /// INSECURE: trust any server as the Coordinator, without attesting it (upstream's
    /// behaviour): a rogue server can hand this pod a CA and workload secret of its choice.
    /// For development only.
    #[arg(long, conflicts_with = "coordinator_identity")]
    insecure_trust_any_coordinator: bool,
    /// Where the files go (the shared volume).
    #[arg(long, value_name = "DIR", default_value = SECRETS_MOUNT_PATH)]
    root: PathBuf,
    /// The empty marker written last (the startup probe's condition).
    #[arg(long, value_name = "PATH", default_value = INITIALIZER_DONE_FILE)]
    done_file: PathBuf,
    /// First delay between attempts (e.g. 500ms, 2s).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    retry_min: Duration,
    /// Largest delay between attempts; the delay doubles up to it.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    retry_max: Duration,
    /// Give up after this many failed attempts (default: retry until stopped).
    #[arg(long, value_name = "N")]
    max_attempts: Option<NonZeroU32>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    tee: TeeArgs,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How the run ended, short of an error.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The files and the marker are written.
    Done,
    /// Stopped by a signal (its number) while waiting for the Coordinator.
    Signalled(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = cli.run;
    if let Some(Subcommand::Cryptsetup(args)) = cli.command {
        return run_cryptsetup(args);
    }
    if args.coordinator_identity.is_none() && !args.insecure_trust_any_coordinator {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!(
                    "the coordinator's identity is missing: pass --coordinator-identity JSON or set \
                     {COORDINATOR_IDENTITY_ENV} (contrast generate injects it into the pod); \
                     --insecure-trust-any-coordinator trusts any server instead (never in \
                     production)"
                ),
            )
            .exit();
    }
    init_logging(args.log_format);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(args)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Signalled(signal)) => {
            warn!(
                signal,
                "stopped by a signal before the certificate was received"
            );
            ExitCode::from(128 + signal)
        }
        Err(e) => {
            error!(
                error = contrast_core::error_chain::describe(e.as_ref()),
                "initializer failed"
            );
            ExitCode::FAILURE
        }
    }
}

/// `initializer cryptsetup`: see [`cryptsetup`].
fn run_cryptsetup(args: cryptsetup::CryptsetupArgs) -> ExitCode {
    init_logging(LogFormat::Text);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(cryptsetup::run(args)) {
        Ok(cryptsetup::Ended::Closed(_)) => ExitCode::SUCCESS,
        Ok(cryptsetup::Ended::Interrupted(signal)) => {
            warn!(signal, "stopped by a signal before the volume was mounted");
            ExitCode::from(128 + signal)
        }
        Err(e) => {
            error!(
                error = contrast_core::error_chain::describe(e.as_ref()),
                "secure persistence failed"
            );
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            None
        }
    }
}

fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Upstream's first step: a pod without a service mesh has no sidecar to remove the pod VM's
/// default-deny rule once it is ready, so the initializer does (before it waits for anything).
fn open_inbound_without_mesh() -> Result<()> {
    use contrast_mesh::iptables::{IPTABLES, NO_SUCH_RULE, default_deny};
    if std::env::var_os(SERVICE_MESH_DISABLED_ENV).is_none_or(|value| value.is_empty()) {
        return Ok(());
    }
    let output = std::process::Command::new(IPTABLES)
        .args(default_deny("-D"))
        .output()
        .with_context(|| {
            format!("cannot run {IPTABLES} to remove the default-deny rule ({SERVICE_MESH_DISABLED_ENV} is set)")
        })?;
    match output.status.code() {
        Some(0) => info!("no service mesh: removed the default-deny rule"),
        Some(NO_SUCH_RULE) => info!("no service mesh, and no default-deny rule to remove"),
        _ => anyhow::bail!(
            "cannot remove the default-deny rule ({SERVICE_MESH_DISABLED_ENV} is set): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
    Ok(())
}

async fn run(args: Args) -> Result<Outcome> {
    open_inbound_without_mesh()?;
    // Required by clap unless a subcommand is given.
    let coordinator = args
        .coordinator
        .as_deref()
        .context("--coordinator is missing")?;
    let addr = coordinator_addr(coordinator);
    args.tee
        .check_simulated_allowed("initializer", cfg!(feature = "simulated"))?;
    let tee = args
        .tee
        .open(&mut rand_core::OsRng)
        .context("cannot set up the TEE (check the --tee flags)")?;
    if let Some(dir) = &tee.sim_dir {
        warn!(sim_dir = %dir.display(), "attesting with the SIMULATED SEV-SNP platform");
    }
    // VCEK, CA chain and CRL from the KDS (or proxy, or cache) into every document; until the
    // first fetch a document without them is refused and the attempt retried.
    let _collateral = tee.collateral.map(|feed| tokio::spawn(feed.run()));
    let issuer = tee.issuer;
    let key = Arc::new(AtlsKey::generate_p256().context("cannot generate the workload key")?);
    let key_pem: Zeroizing<String> = key
        .pkcs8_der()
        .context("cannot encode the workload key")?
        .to_pem("PRIVATE KEY", der::pem::LineEnding::LF)
        .context("cannot encode the workload key as pem")?;
    let atls = match &args.coordinator_identity {
        Some(identity) => {
            info!(
                coordinator_policy_hashes = ?identity
                    .policy_hashes()
                    .iter()
                    .map(hex::encode)
                    .collect::<Vec<_>>(),
                reference_values = identity.snp_reference_values().len(),
                "the coordinator must attest with this identity"
            );
            AtlsClient::new(identity_validator(identity))
        }
        None => {
            warn!(
                "--insecure-trust-any-coordinator: the coordinator is NOT attested; any server \
                 can hand this pod a CA and workload secret of its choice"
            );
            AtlsClient::dangerous_without_server_attestation()
        }
    };
    let client = CoordinatorClient::new(addr.clone(), atls.with_issuer(issuer).with_key(key));

    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut delay = args.retry_min;
    let mut attempt: u32 = 0;
    info!(coordinator = %addr, "requesting the mesh certificate");
    let response = loop {
        attempt = attempt.saturating_add(1);
        let result = tokio::select! {
            result = client.mesh_cert() => result,
            _ = sigterm.recv() => return Ok(Outcome::Signalled(15)),
            _ = sigint.recv() => return Ok(Outcome::Signalled(2)),
        };
        match result {
            Ok(attested) => break attested.value,
            Err(e) => {
                if args.max_attempts.is_some_and(|max| attempt >= max.get()) {
                    return Err(anyhow::Error::new(e).context(format!(
                        "no mesh certificate after {attempt} attempt(s) (--max-attempts)"
                    )));
                }
                match e.coordinator_not_ready() {
                    Some(state) => info!(
                        attempt,
                        retry_in = ?delay,
                        "waiting: {state}"
                    ),
                    None => warn!(
                        attempt,
                        error = %e,
                        retry_in = ?delay,
                        "mesh certificate request failed; retrying"
                    ),
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = sigterm.recv() => return Ok(Outcome::Signalled(15)),
            _ = sigint.recv() => return Ok(Outcome::Signalled(2)),
        }
        delay = delay
            .saturating_mul(2)
            .min(args.retry_max)
            .max(args.retry_min);
    };

    let written = files::write_outputs(&args.root, &response, &key_pem)?;
    files::write_done_marker(&args.done_file)?;
    info!(
        attempts = attempt,
        root = %args.root.display(),
        files = written.len(),
        workload_secret = !response.workload_secret.is_empty(),
        done_file = %args.done_file.display(),
        "mesh certificate written"
    );
    Ok(Outcome::Done)
}

/// `--coordinator-identity`: the document, parsed with its errors as the message.
fn parse_identity(text: &str) -> Result<CoordinatorIdentity, String> {
    CoordinatorIdentity::from_json(text).map_err(|e| e.to_string())
}

/// `HOST[:PORT]` with the mesh API port when absent; a bare IPv6 address gets brackets.
fn coordinator_addr(value: &str) -> String {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        // [v6] or [v6]:port
        return match rest.split_once(']') {
            Some((_, "")) => format!("{value}:{MESH_API_PORT}"),
            _ => value.to_owned(),
        };
    }
    match value.matches(':').count() {
        0 => format!("{value}:{MESH_API_PORT}"),
        1 => value.to_owned(),
        _ => format!("[{value}]:{MESH_API_PORT}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn coordinator_port_defaults_to_the_mesh_api() {
        assert_eq!(
            coordinator_addr("coordinator-ready"),
            "coordinator-ready:7777"
        );
        assert_eq!(coordinator_addr("10.0.0.1:1234"), "10.0.0.1:1234");
        assert_eq!(coordinator_addr("[::1]"), "[::1]:7777");
        assert_eq!(coordinator_addr("[::1]:99"), "[::1]:99");
        assert_eq!(coordinator_addr("fd00::1"), "[fd00::1]:7777");
    }

    #[test]
    fn command_line_parses_with_defaults() {
        let cli = Cli::try_parse_from([
            "initializer",
            "--coordinator",
            "c",
            "--insecure-trust-any-coordinator",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let args = cli.run;
        assert_eq!(args.root, PathBuf::from("/contrast"));
        assert_eq!(args.done_file, PathBuf::from("/done"));
        assert_eq!(args.retry_min, Duration::from_millis(500));
        assert_eq!(args.retry_max, Duration::from_secs(5));
        assert_eq!(args.max_attempts, None);
    }

    #[test]
    fn the_command_line_generate_writes_for_the_sidecar_parses() {
        let argv = std::iter::once("initializer".to_owned()).chain(
            contrast_core::kubernetes::cryptsetup_args("/dev/csi0", "/state"),
        );
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Subcommand::Cryptsetup(args)) = cli.command else {
            panic!("not the cryptsetup subcommand: {cli:?}");
        };
        assert_eq!(args.device_path, PathBuf::from("/dev/csi0"));
        assert_eq!(args.mount_point, PathBuf::from("/state"));
        assert_eq!(args.done_file, PathBuf::from("/done"));
        assert_eq!(args.secret_timeout, None);
    }

    #[test]
    fn the_main_run_needs_the_coordinator_and_the_subcommand_does_not() {
        let error =
            Cli::try_parse_from(["initializer", "--insecure-trust-any-coordinator"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert!(error.to_string().contains("--coordinator"), "{error}");
        let error = Cli::try_parse_from(["initializer", "cryptsetup", "-d", "/dev/x"]).unwrap_err();
        assert!(error.to_string().contains("--mount-point"), "{error}");
        // Main-run flags do not mix with the subcommand.
        assert!(
            Cli::try_parse_from([
                "initializer",
                "--coordinator",
                "c",
                "cryptsetup",
                "-d",
                "/dev/x",
                "-m",
                "/m"
            ])
            .is_err()
        );
    }
}
