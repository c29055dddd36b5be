//! The `contrast` command-line tool of contrast-rs: the tool workload owners, seed-share owners
//! and data owners use.
//!
//! Each subcommand lives in its own module with one `run(...) -> anyhow::Result<Outcome>`.
//! Adding a subcommand is one [`Command`] variant plus one module; `main` only parses the
//! command line, sets up logging, dispatches and prints the [`Outcome`].

#![forbid(unsafe_code)]
// The modules' `pub` items are the interface between subcommand modules of this binary.
#![allow(unreachable_pub)]

mod collateral;
mod command_line;
mod connect;
mod coordinator_resources;
mod demo;
mod generate;
mod kube;
mod recover;
mod set;
mod sign;
mod simulate;
mod verify;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes of every command (documented in `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// The command did what was asked.
    Ok,
    /// The command failed; the message on stderr says why and what to do.
    Error,
    /// The command line or the combination of flags was not valid.
    Usage,
    /// `verify`: the Coordinator's newest manifest is not the local manifest file.
    ManifestMismatch,
    /// `verify`: the Coordinator's history does not extend the head seen last (it was rolled
    /// back or forked).
    HistoryNotExtending,
    /// The Coordinator's attestation was refused (the failed check is printed).
    AttestationRefused,
    /// `verify`: the history the Coordinator sent does not verify on its own (a manifest was
    /// changed, removed or reordered, or the head does not match the manifests).
    InconsistentHistory,
    /// `verify`: the Coordinator's root CA key is not the one seen last: it was re-initialised
    /// (a new seed), deliberately or not.
    RootChanged,
}

impl ExitStatus {
    /// The process exit code.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Error => 1,
            Self::Usage => 2,
            Self::ManifestMismatch => 3,
            Self::HistoryNotExtending => 4,
            Self::AttestationRefused => 5,
            Self::InconsistentHistory => 6,
            Self::RootChanged => 7,
        }
    }
}

/// What a command reports when it finishes: a text for people and a JSON value for scripts.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status.
    pub status: ExitStatus,
    /// Printed to stdout without `--json`.
    pub human: String,
    /// Printed to stdout (pretty JSON) with `--json`.
    pub json: serde_json::Value,
}

/// An error in how the tool was called that the parser could not see (e.g. a flag that another
/// flag requires). Exits with [`ExitStatus::Usage`].
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A failure with its own exit status (see [`ExitStatus`]); the message says what to do.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub status: ExitStatus,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  error (the message on stderr says what went wrong and what to do)
  2  usage error (unknown flag, missing argument, flags that cannot be combined)
  3  verify: the Coordinator's newest manifest differs from the local manifest
  4  verify: the Coordinator's history does not extend the head seen last (rolled back/forked)
  5  set, verify, recover: the Coordinator's attestation was refused
  6  verify: the Coordinator's history is inconsistent (changed, truncated or reordered)";

/// `contrast --version`: the version, the commit (set by `bins/build_commit.rs`) and what the
/// tool verifies.
const LONG_VERSION: &str = concat!(
    contrast_tee::version_line!(env!("CONTRAST_BUILD_COMMIT")),
    "\n",
    contrast_tee::verified_platforms!(),
    "\n",
    "simulated SEV-SNP platform: built in (`contrast simulate`, `contrast demo`; development and tests only)"
);

/// Command line of the `contrast` tool.
#[derive(Debug, Parser)]
#[command(
    name = "contrast",
    version = contrast_tee::version_line!(env!("CONTRAST_BUILD_COMMIT")),
    long_version = LONG_VERSION,
    about = "Deploy and verify confidential Kubernetes workloads with Contrast",
    after_long_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Directory for the default input and output files (manifest.json, owner keys, ...).
    #[arg(long, global = true, default_value = ".")]
    pub workspace_dir: PathBuf,
    /// Log level on stderr: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: tracing::Level,
    /// Print a machine-readable JSON summary on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands.
// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Add initdata and the initializer to Kubernetes resources and write manifest.json.
    #[command(
        long_about = generate::LONG_ABOUT,
        after_long_help = generate::AFTER_LONG_HELP
    )]
    Generate(generate::GenerateArgs),
    /// Create a simulated SEV-SNP environment for running without hardware.
    #[command(
        long_about = simulate::LONG_ABOUT,
        after_long_help = simulate::AFTER_LONG_HELP
    )]
    Simulate(simulate::SimulateArgs),
    /// Attest the Coordinator and set the manifest and policies.
    #[command(long_about = set::LONG_ABOUT, after_long_help = set::AFTER_LONG_HELP)]
    Set(set::SetArgs),
    /// Sign a manifest update with a workload owner key, or prepare the bytes to sign.
    #[command(long_about = sign::LONG_ABOUT, after_long_help = sign::AFTER_LONG_HELP)]
    Sign(sign::SignArgs),
    /// Attest the Coordinator and check its manifest history as a data owner.
    #[command(long_about = verify::LONG_ABOUT, after_long_help = verify::AFTER_LONG_HELP)]
    Verify(verify::VerifyArgs),
    /// Recover a restarted Coordinator with the seed-share owner's share.
    #[command(long_about = recover::LONG_ABOUT, after_long_help = recover::AFTER_LONG_HELP)]
    Recover(recover::RecoverArgs),
    /// Fill an SEV-SNP collateral cache (VCEK, CA chain, CRL) for offline verifiers.
    #[command(
        long_about = collateral::LONG_ABOUT,
        after_long_help = collateral::AFTER_LONG_HELP
    )]
    Collateral(collateral::CollateralArgs),
    /// Run the whole flow locally: Coordinator, set, initializers, verify, update, recovery.
    #[command(long_about = demo::LONG_ABOUT, after_long_help = demo::AFTER_LONG_HELP)]
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help/version to stdout with exit 0 and usage errors with exit 2.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                ExitStatus::Usage.code()
            } else {
                ExitStatus::Ok.code()
            });
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(cli.global.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();

    let result = match &cli.command {
        Command::Generate(args) => generate::run(&cli.global, args),
        Command::Simulate(args) => simulate::run(&cli.global, args),
        Command::Set(args) => set::run(&cli.global, args),
        Command::Sign(args) => sign::run(&cli.global, args),
        Command::Verify(args) => verify::run(&cli.global, args),
        Command::Recover(args) => recover::run(&cli.global, args),
        Command::Collateral(args) => collateral::run(&cli.global, args),
        Command::Demo(args) => demo::run(&cli.global, args),
    };
    match result {
        Ok(outcome) => {
            if cli.global.json {
                match serde_json::to_string_pretty(&outcome.json) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("error: the JSON summary could not be encoded: {error}")
                    }
                }
            } else if !outcome.human.is_empty() {
                print!("{}", outcome.human);
            }
            ExitCode::from(outcome.status.code())
        }
        Err(error) => {
            let status = if let Some(failure) = error.downcast_ref::<Failure>() {
                failure.status
            } else if error.downcast_ref::<UsageError>().is_some() {
                ExitStatus::Usage
            } else {
                ExitStatus::Error
            };
            let message = contrast_core::error_chain::describe(error.as_ref());
            eprintln!("error: {message}");
            if cli.global.json {
                println!("{}", serde_json::json!({ "error": message }));
            }
            ExitCode::from(status.code())
        }
    }
}
